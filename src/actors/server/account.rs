//! `Account`: one actor per logged-in account. It runs the account's
//! commands and enforces MULTISESSION_MODE over its sessions.
//!
//! The rules live in [`AccountSessions`], a plain struct tested without a
//! `System`; the actor only wires them to messages. The actor is started at
//! the account's first login and stopped when its last session leaves.

use actix::prelude::*;

use super::context::ServerContext;
use super::handler::{AccountGone, DisconnectSession, GetSessions, Settle};
use super::link::ToPortal;
use crate::actors::db::GetAccount;
use crate::commands::account::{self as text, AccountCommand, LOGGED_IN_ELSEWHERE, QUIT_ALL};
use crate::commands::not_available;
use crate::protocols::link::{Input, ServerToPortal};
use crate::session::{now_millis, AccountId, SessionId};

/// The sessions of one account and the MULTISESSION_MODE rules over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountSessions {
    sessions: Vec<SessionId>,
}

impl AccountSessions {
    /// Adds a session; answers the sessions that must be disconnected. In mode
    /// 0 a new login kicks every older session; a session restored by a resync
    /// kicks nobody.
    pub fn attach(&mut self, sessid: SessionId, mode: u8, restored: bool) -> Vec<SessionId> {
        let kicked = if mode == 0 && !restored {
            std::mem::take(&mut self.sessions)
                .into_iter()
                .filter(|s| *s != sessid)
                .collect()
        } else {
            Vec::new()
        };
        if !self.sessions.contains(&sessid) {
            self.sessions.push(sessid);
        }
        kicked
    }

    pub fn detach(&mut self, sessid: SessionId) {
        self.sessions.retain(|s| *s != sessid);
    }

    pub fn all(&self) -> &[SessionId] {
        &self.sessions
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// A session joined this account.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AttachSession {
    pub sessid: SessionId,
    /// Rebuilt from a Portal resync: no kicks, no greeting.
    pub restored: bool,
}

/// A session left this account; `last` stops the actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DetachSession {
    pub sessid: SessionId,
    pub last: bool,
}

/// Input from one of this account's sessions.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AccountInput {
    pub sessid: SessionId,
    pub input: Input,
}

pub struct Account {
    id: AccountId,
    name: String,
    superuser: bool,
    sessions: AccountSessions,
    server: ServerContext,
}

impl Account {
    pub fn new(id: AccountId, name: String, server: ServerContext) -> Self {
        Self {
            id,
            name,
            superuser: false,
            sessions: AccountSessions::default(),
            server,
        }
    }

    fn say(&self, sessid: SessionId, text: impl Into<String>) {
        self.server.say(sessid, text);
    }

    /// Fetches this account's sessions (or all), then answers with `render`.
    fn reply_with_sessions(
        &self,
        sessid: SessionId,
        all: bool,
        ctx: &mut Context<Self>,
        render: impl FnOnce(&Self, Vec<crate::session::SessionSyncData>) -> String + 'static,
    ) {
        let account = (!all).then_some(self.id);
        ctx.wait(
            self.server
                .handler
                .send(GetSessions { account })
                .into_actor(self)
                .map(move |result, act, _| {
                    if let Ok(sessions) = result {
                        let out = render(act, sessions);
                        act.say(sessid, out);
                    }
                }),
        );
    }

    fn run(&mut self, sessid: SessionId, line: &str, ctx: &mut Context<Self>) {
        let Some(command) = text::parse(line, &self.server.settings.server.idle_command) else {
            return;
        };
        match command {
            AccountCommand::Idle => {}
            AccountCommand::Look => self.reply_with_sessions(sessid, false, ctx, move |act, s| {
                text::ooc_look(&act.name, &s, sessid)
            }),
            AccountCommand::Sessions => {
                self.reply_with_sessions(sessid, false, ctx, move |_, s| {
                    text::sessions(&s, sessid, now_millis())
                })
            }
            AccountCommand::Who => self.reply_with_sessions(sessid, true, ctx, |act, s| {
                text::who(&s, now_millis(), &act.server.settings.server.name)
            }),
            AccountCommand::Help => self.say(sessid, text::help_text(self.superuser)),
            AccountCommand::Quit { all: false } => {
                let remaining = self.sessions.all().len().saturating_sub(1);
                self.server.handler.do_send(DisconnectSession {
                    sessid,
                    reason: text::quit_message(remaining),
                });
            }
            AccountCommand::Quit { all: true } => {
                for s in self.sessions.all() {
                    self.server.handler.do_send(DisconnectSession {
                        sessid: *s,
                        reason: QUIT_ALL.to_owned(),
                    });
                }
            }
            AccountCommand::Reload { reason } if self.superuser => {
                log::info!("{} asked for a reload", self.name);
                self.server
                    .link
                    .do_send(ToPortal(ServerToPortal::RequestReload { reason }));
            }
            AccountCommand::Shutdown { reason } if self.superuser => {
                log::info!("{} asked for a shutdown", self.name);
                self.say(sessid, "Shutting down server ...");
                self.server
                    .link
                    .do_send(ToPortal(ServerToPortal::RequestShutdown { reason }));
            }
            AccountCommand::Reload { .. } => self.say(sessid, not_available("reload")),
            AccountCommand::Shutdown { .. } => self.say(sessid, not_available("shutdown")),
            AccountCommand::Unknown(verb) => self.say(sessid, not_available(&verb)),
        }
    }
}

impl Actor for Account {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Permissions come from the database, never from the session record;
        // commands wait until they are known.
        ctx.wait(
            self.server
                .db
                .send(GetAccount { id: self.id })
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(Ok(Some(record))) => {
                        act.name = record.name;
                        act.superuser = record.is_superuser;
                    }
                    Ok(Ok(None)) => {
                        log::warn!("account {} no longer exists", act.id);
                        act.server.handler.do_send(AccountGone { account: act.id });
                        ctx.stop();
                    }
                    Ok(Err(e)) => log::error!("account {}: cannot load: {e}", act.id),
                    Err(e) => log::error!("account {}: database unreachable: {e}", act.id),
                }),
        );
    }
}

impl Handler<AttachSession> for Account {
    type Result = ();

    fn handle(&mut self, msg: AttachSession, ctx: &mut Context<Self>) {
        let kicked = self.sessions.attach(
            msg.sessid,
            self.server.settings.server.multisession_mode,
            msg.restored,
        );
        for sessid in kicked {
            self.server.handler.do_send(DisconnectSession {
                sessid,
                reason: LOGGED_IN_ELSEWHERE.to_owned(),
            });
        }
        if !msg.restored {
            let sessid = msg.sessid;
            self.say(
                sessid,
                format!("\nWelcome, {}! You are logged in.", self.name),
            );
            self.reply_with_sessions(sessid, false, ctx, move |act, s| {
                text::ooc_look(&act.name, &s, sessid)
            });
        }
    }
}

impl Handler<DetachSession> for Account {
    type Result = ();

    fn handle(&mut self, msg: DetachSession, ctx: &mut Context<Self>) {
        self.sessions.detach(msg.sessid);
        if msg.last {
            ctx.stop();
        }
    }
}

impl Handler<AccountInput> for Account {
    type Result = ();

    fn handle(&mut self, msg: AccountInput, ctx: &mut Context<Self>) {
        match msg.input {
            Input::Text(line) => self.run(msg.sessid, &line, ctx),
            Input::Oob(oob) => {
                log::debug!("account {}: OOB {} not handled", self.id, oob.name)
            }
        }
    }
}

impl Handler<Settle> for Account {
    type Result = ();

    fn handle(&mut self, _: Settle, _: &mut Context<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_0_login_kicks_every_older_session() {
        let mut a = AccountSessions::default();
        assert!(a.attach(SessionId(1), 0, false).is_empty());
        assert_eq!(a.attach(SessionId(2), 0, false), vec![SessionId(1)]);
        assert_eq!(a.all(), &[SessionId(2)]);
    }

    #[test]
    fn restored_sessions_kick_nobody() {
        let mut a = AccountSessions::default();
        a.attach(SessionId(1), 0, true);
        assert!(a.attach(SessionId(2), 0, true).is_empty());
        assert_eq!(a.all().len(), 2);
    }

    #[test]
    fn modes_1_to_3_keep_every_session() {
        for mode in 1..=3 {
            let mut a = AccountSessions::default();
            a.attach(SessionId(1), mode, false);
            assert!(a.attach(SessionId(2), mode, false).is_empty());
            assert_eq!(a.all().len(), 2);
        }
    }

    #[test]
    fn detach_removes_and_empties() {
        let mut a = AccountSessions::default();
        a.attach(SessionId(1), 1, false);
        a.detach(SessionId(1));
        assert!(a.is_empty());
    }
}
