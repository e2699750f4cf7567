//! `Account`: one actor per logged-in account. It runs the account's
//! commands, enforces MULTISESSION_MODE and puppet ownership over its
//! sessions and characters, and routes replies.
//!
//! The rules live in [`PuppetRules`], a plain struct tested without a
//! `System`; this actor turns its outcomes into messages to the sessions, the
//! session handler (puppet changes are synced to the Portal) and the world.
//! It is started at the account's first login and stopped when its last
//! session leaves.

use std::collections::{BTreeMap, HashMap, HashSet};

use actix::prelude::*;

use super::context::ServerContext;
use super::handler::{
    AccountGone, Announce, Boot, ChangeOption, DisconnectSession, GetSessions, GetWho, SetPuppet,
    Settle,
};
use super::receipt::{acknowledge_when_done, InputReceipt};
use super::rules::{DeleteError, PuppetRules, Release};
use super::world::{
    Act, Action, EnterWorld, ForgetCharacter, Go, LeaveWorld, Locate, Puppeted, World,
};
use crate::actors::db::{
    answer, ChangePassword, CharacterRecord, CreateCharacter, DbExecutor, DeleteCharacter,
    GetAccount, LoadCharacters,
};
use crate::commands::account::{self as text, AccountCommand, CharacterLine};
use crate::commands::character::{self as ic_text, CharacterCommand};
use crate::commands::not_available;
use crate::models::DbError;
use crate::protocols::link::{Input, Output, ServerToPortal};
use crate::session::{now_millis, AccountId, CharacterId, SessionId, SessionSyncData};

/// A session joined this account.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AttachSession {
    pub sessid: SessionId,
    /// `Some(puppet)` when rebuilt from a Portal resync: no kicks, no
    /// greeting, and the puppet comes back silently.
    pub restored: Option<Option<CharacterId>>,
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
    /// When it arrived over the link: the start of its latency.
    pub received: std::time::Instant,
    /// Acknowledged to the Portal once the command has finished.
    pub receipt: Option<InputReceipt>,
}

pub struct Account {
    id: AccountId,
    name: String,
    superuser: bool,
    rules: PuppetRules,
    characters: BTreeMap<CharacterId, CharacterRecord>,
    last_puppet: Option<CharacterId>,
    /// Sessions that were asked to confirm a `chardelete`.
    pending_delete: HashMap<SessionId, CharacterId>,
    /// The account and its characters came from the database.
    loaded: bool,
    /// Sessions that arrived before `loaded`.
    deferred: Vec<AttachSession>,
    /// Deferred logins already told that the account cannot be loaded yet.
    told_to_wait: HashSet<SessionId>,
    server: ServerContext,
}

/// How long to wait before loading an account again after a database error.
const LOAD_RETRY: std::time::Duration = std::time::Duration::from_secs(2);
/// The answer to a command while the account cannot be loaded.
const NOT_READY: &str =
    "The game cannot load your account right now; please try again in a moment.";

impl Account {
    pub fn new(id: AccountId, name: String, server: ServerContext) -> Self {
        let s = &server.settings.server;
        let rules = PuppetRules::new(
            s.multisession_mode,
            s.max_nr_simultaneous_puppets,
            s.max_nr_characters,
            false,
        );
        Self {
            id,
            name,
            superuser: false,
            rules,
            characters: BTreeMap::new(),
            last_puppet: None,
            pending_delete: HashMap::new(),
            loaded: false,
            deferred: Vec::new(),
            told_to_wait: HashSet::new(),
            server,
        }
    }

    /// Text to one session only.
    fn say(&self, sessid: SessionId, text: impl Into<String>) {
        self.server.say(sessid, text);
    }

    /// Sends `request` to the database and runs `then` with its answer; the
    /// account's next command waits for it.
    fn ask_db<M, T>(
        &self,
        request: M,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Result<T, DbError>) + 'static,
    ) where
        M: Message<Result = Result<T, DbError>> + Send + 'static,
        T: Send + 'static,
        DbExecutor: Handler<M>,
    {
        ctx.wait(
            self.server
                .db
                .send(request)
                .into_actor(self)
                .map(move |result, act, _| then(act, answer(result))),
        );
    }

    /// A database request failed for a reason the player cannot fix: logged
    /// once, and the player is told to try again (never the internals).
    fn database_failed(&self, sessid: SessionId, what: &str, e: &DbError) {
        log::error!("account {}: {what}: {e}", self.id);
        self.say(sessid, format!("{what} right now. Please try again later."));
    }

    /// A message to the account: every one of its sessions.
    fn tell_account(&self, text: impl Into<String>) {
        self.server.say_many(self.rules.sessions(), text);
    }

    /// The reply to a command: the session that typed it, and in modes 1 and
    /// 3 every session sharing its puppet.
    fn reply(&self, sessid: SessionId, text: impl Into<String>) {
        let targets = self.rules.reply_targets(sessid);
        self.server.say_many(targets, text);
    }

    fn character_named(&self, name: &str) -> Option<&CharacterRecord> {
        let key = name.trim().to_lowercase();
        self.characters
            .values()
            .find(|c| c.name.to_lowercase() == key)
    }

    fn names(&self) -> HashMap<CharacterId, String> {
        self.characters
            .iter()
            .map(|(id, c)| (*id, c.name.clone()))
            .collect()
    }

    /// Tells the world that `sessions` let go of a puppet; the world takes
    /// the character out when no session is left on it.
    fn release_in_world(&self, release: Option<Release>, sessions: Vec<SessionId>) {
        if let Some(release) = release {
            self.server.world.do_send(LeaveWorld {
                character: release.character,
                sessions,
            });
        }
    }

    /// Hands `msg` to the world and holds this account's next command until
    /// the world has sent its output, so a player's output stays in the order
    /// of their commands.
    fn in_world<M>(&self, msg: M, ctx: &mut Context<Self>)
    where
        M: Message<Result = ()> + Send + 'static,
        World: Handler<M>,
    {
        ctx.wait(
            self.server
                .world
                .send(msg)
                .into_actor(self)
                .map(|_, _, _| ()),
        );
    }

    fn set_puppet(&self, sessid: SessionId, puppet: Option<CharacterId>) {
        self.server.handler.do_send(SetPuppet { sessid, puppet });
    }

    /// `ic`: puppets `character` from `sessid` and tells everyone concerned.
    fn puppet(&mut self, sessid: SessionId, character: CharacterId, ctx: &mut Context<Self>) {
        let Some(record) = self.characters.get(&character).cloned() else {
            self.say(sessid, "That is not a valid character choice.");
            return;
        };
        let change = match self.rules.puppet(sessid, character) {
            Ok(change) => change,
            Err(e) => {
                self.say(sessid, e.message());
                return;
            }
        };
        let mut switched = vec![sessid];
        switched.extend(change.followers.iter().copied());
        // A switch lets go of the old character before the new one appears;
        // a takeover adds the new holder before the old one is removed, so
        // the character never looks empty and leaves for a moment.
        if change
            .released
            .is_some_and(|old| old.character != character)
        {
            self.release_in_world(change.released, switched.clone());
        }
        self.in_world(
            EnterWorld {
                character,
                name: record.name.clone(),
                description: record.description.clone(),
                location: record.location,
                sessions: switched.clone(),
                announce: change.entered,
                look_to: Vec::new(),
            },
            ctx,
        );
        if !change.taken_from.is_empty() {
            self.release_in_world(
                Some(Release {
                    character,
                    left_world: false,
                }),
                change.taken_from.clone(),
            );
        }
        for s in &change.taken_from {
            self.say(*s, text::taken_over(&record.name));
            self.set_puppet(*s, None);
        }
        for s in &change.shared_with {
            self.say(*s, text::now_shared(&record.name));
        }
        if !change.taken_from.is_empty() {
            self.say(sessid, text::taking_over(&record.name));
        }
        if !change.shared_with.is_empty() {
            self.say(sessid, text::sharing(&record.name));
        }
        for s in &switched {
            self.say(*s, ic_text::you_become(&record.name));
            self.set_puppet(*s, Some(character));
        }
        self.in_world(
            Act {
                character,
                action: Action::Look,
                reply_to: switched,
            },
            ctx,
        );
        self.last_puppet = Some(character);
        // Saved with the world's next save, and settled before a stop.
        self.server.world.do_send(Puppeted {
            character,
            account: self.id,
        });
    }

    fn unpuppet(&mut self, sessid: SessionId, ctx: &mut Context<Self>) {
        match self.rules.unpuppet(sessid) {
            None => self.say(sessid, text::ALREADY_OOC),
            Some(out) => {
                self.release_in_world(Some(out.release), out.sessions.clone());
                for s in out.sessions {
                    self.set_puppet(s, None);
                    self.say(s, text::GO_OOC);
                }
                self.ooc_look(sessid, ctx);
            }
        }
    }

    /// Fetches session records (this account's, or all), then answers.
    fn with_sessions(
        &self,
        all: bool,
        ctx: &mut Context<Self>,
        then: impl FnOnce(&mut Self, Vec<SessionSyncData>, &mut Context<Self>) + 'static,
    ) {
        let account = (!all).then_some(self.id);
        ctx.wait(
            self.server
                .handler
                .send(GetSessions { account })
                .into_actor(self)
                .map(move |result, act, ctx| {
                    if let Ok(sessions) = result {
                        then(act, sessions, ctx);
                    }
                }),
        );
    }

    fn ooc_look(&self, sessid: SessionId, ctx: &mut Context<Self>) {
        self.with_sessions(false, ctx, move |act, sessions, _| {
            let lines: Vec<CharacterLine<'_>> = act
                .characters
                .values()
                .map(|c| CharacterLine {
                    name: &c.name,
                    played_in: act.rules.sessions_of(c.id),
                })
                .collect();
            let max = act.rules.character_limit();
            let out = text::ooc_look(&act.name, &sessions, sessid, &lines, max);
            act.say(sessid, out);
        });
    }

    fn run(&mut self, sessid: SessionId, line: &str, ctx: &mut Context<Self>) {
        if let Some(character) = self.pending_delete.remove(&sessid) {
            self.confirm_delete(sessid, character, text::is_yes(line), ctx);
            return;
        }
        if let Some(puppet) = self.rules.puppet_of(sessid) {
            if let Some(command) = ic_text::parse(line) {
                let action = match command {
                    CharacterCommand::Look => Action::Look,
                    CharacterCommand::LookAt(what) => Action::LookAt(what),
                    CharacterCommand::Say(t) => Action::Say(t),
                    CharacterCommand::Pose(t) => Action::Pose(t),
                };
                let reply_to = self.rules.reply_targets(sessid);
                self.in_world(
                    Act {
                        character: puppet,
                        action,
                        reply_to,
                    },
                    ctx,
                );
                return;
            }
        }
        let Some(command) = text::parse(line, &self.server.settings.server.idle_command) else {
            return;
        };
        match command {
            AccountCommand::Idle => {}
            AccountCommand::Look => self.ooc_look(sessid, ctx),
            AccountCommand::Sessions => self.with_sessions(false, ctx, move |act, s, _| {
                let out = text::sessions(&s, sessid, &act.names(), now_millis());
                act.reply(sessid, out);
            }),
            AccountCommand::Who => self.who(sessid, ctx),
            AccountCommand::Help => self.reply(sessid, text::help_text(self.superuser)),
            AccountCommand::Quit { all: false } => {
                let remaining = self.rules.sessions().len().saturating_sub(1);
                self.server.handler.do_send(DisconnectSession {
                    sessid,
                    reason: text::quit_message(remaining),
                });
            }
            AccountCommand::Quit { all: true } => {
                for s in self.rules.sessions() {
                    self.server.handler.do_send(DisconnectSession {
                        sessid: s,
                        reason: text::QUIT_ALL.to_owned(),
                    });
                }
            }
            AccountCommand::Ic { name } if name.is_empty() => match self.last_puppet {
                Some(last) => self.puppet(sessid, last, ctx),
                None => self.say(sessid, text::IC_USAGE),
            },
            AccountCommand::Ic { name } => match self.character_named(&name).map(|c| c.id) {
                Some(id) => self.puppet(sessid, id, ctx),
                None => self.say(sessid, "That is not a valid character choice."),
            },
            AccountCommand::Ooc => self.unpuppet(sessid, ctx),
            AccountCommand::CharCreate { name, description } => {
                self.create_character(sessid, name, description, ctx)
            }
            AccountCommand::CharDelete { name } => match self
                .character_named(&name)
                .map(|c| (c.id, c.name.clone()))
            {
                None => self.reply(sessid, text::NO_SUCH_CHARACTER),
                Some((id, name)) => match self.rules.check_delete(id) {
                    Err(DeleteError::Puppeted) => self.reply(sessid, text::PUPPETED_CANNOT_DELETE),
                    Err(DeleteError::NotOwned) => self.reply(sessid, text::NO_SUCH_CHARACTER),
                    Ok(()) => {
                        self.pending_delete.insert(sessid, id);
                        self.say(sessid, text::delete_question(&name));
                    }
                },
            },
            AccountCommand::Password { old, new } => self.change_password(sessid, old, new, ctx),
            AccountCommand::Option { name, value } => self.option(sessid, name, value, ctx),
            AccountCommand::Usage(usage) => self.reply(sessid, usage),
            AccountCommand::Reload { reason } if self.superuser => {
                log::info!("{} asked for a reload", self.name);
                self.server
                    .portals
                    .send(ServerToPortal::RequestReload { reason });
            }
            AccountCommand::Shutdown { reason } if self.superuser => {
                log::info!("{} asked for a shutdown", self.name);
                self.reply(sessid, "Shutting down server ...");
                self.server
                    .portals
                    .send(ServerToPortal::RequestShutdown { reason });
            }
            AccountCommand::Boot { target, reason } if self.superuser => {
                let by = self.name.clone();
                ctx.wait(
                    self.server
                        .handler
                        .send(Boot {
                            target: target.clone(),
                            by,
                            reason,
                        })
                        .into_actor(self)
                        .map(move |result, act, _| match result {
                            Ok(0) | Err(_) => act.reply(
                                sessid,
                                format!("No account or session '{target}' is connected."),
                            ),
                            Ok(n) => {
                                act.reply(sessid, format!("Booted {n} session(s) of '{target}'."))
                            }
                        }),
                );
            }
            AccountCommand::Announce { text: words } if self.superuser => {
                self.server.handler.do_send(Announce {
                    text: text::announcement(&self.name, &words),
                });
            }
            AccountCommand::Reload { .. } => self.reply(sessid, not_available("reload")),
            AccountCommand::Shutdown { .. } => self.reply(sessid, not_available("shutdown")),
            AccountCommand::Boot { .. } => self.reply(sessid, not_available("boot")),
            AccountCommand::Announce { .. } => self.reply(sessid, not_available("announce")),
            AccountCommand::Unknown(verb) => self.walk_or_refuse(sessid, verb, ctx),
        }
    }

    /// An unknown word from a character may be an exit name.
    fn walk_or_refuse(&mut self, sessid: SessionId, verb: String, ctx: &mut Context<Self>) {
        let Some(puppet) = self.rules.puppet_of(sessid) else {
            self.reply(sessid, not_available(&verb));
            return;
        };
        ctx.wait(
            self.server
                .world
                .send(Go {
                    character: puppet,
                    word: verb.clone(),
                })
                .into_actor(self)
                .map(move |walked, act, _| {
                    if !matches!(walked, Ok(true)) {
                        act.reply(sessid, not_available(&verb));
                    }
                }),
        );
    }

    fn who(&self, sessid: SessionId, ctx: &mut Context<Self>) {
        if !self.superuser {
            ctx.wait(self.server.handler.send(GetWho).into_actor(self).map(
                move |result, act, _| {
                    if let Ok(text) = result {
                        act.reply(sessid, text.to_string());
                    }
                },
            ));
            return;
        }
        self.with_sessions(true, ctx, move |act, sessions, ctx| {
            let game = act.server.settings.server.name.clone();
            let puppets: Vec<CharacterId> = sessions.iter().filter_map(|s| s.puppet_id).collect();
            ctx.wait(
                act.server
                    .world
                    .send(Locate {
                        characters: puppets,
                    })
                    .into_actor(act)
                    .map(move |located, act, _| {
                        let located = located.unwrap_or_default();
                        act.reply(
                            sessid,
                            text::who_detailed(&sessions, &located, now_millis(), &game),
                        );
                    }),
            );
        });
    }

    fn create_character(
        &mut self,
        sessid: SessionId,
        name: String,
        description: String,
        ctx: &mut Context<Self>,
    ) {
        if let Err(max) = self.rules.check_new_character() {
            self.reply(sessid, DbError::CharacterLimit(max).to_string());
            return;
        }
        let description = if description.is_empty() {
            text::DEFAULT_DESCRIPTION.to_owned()
        } else {
            description
        };
        let request = CreateCharacter {
            account: self.id,
            name,
            description,
            max_characters: self.rules.character_limit(),
        };
        self.ask_db(request, ctx, move |act, result| match result {
            Ok(record) => {
                act.reply(sessid, text::created_character(&record.name));
                act.rules.add_owned(record.id);
                act.characters.insert(record.id, record);
            }
            Err(
                e @ (DbError::NameTaken | DbError::InvalidName(_) | DbError::CharacterLimit(_)),
            ) => act.reply(sessid, e.to_string()),
            Err(e) => act.database_failed(sessid, "The character could not be created", &e),
        });
    }

    fn confirm_delete(
        &mut self,
        sessid: SessionId,
        character: CharacterId,
        yes: bool,
        ctx: &mut Context<Self>,
    ) {
        let name = self
            .characters
            .get(&character)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        if !yes {
            self.reply(sessid, text::DELETE_ABORTED);
            return;
        }
        // Someone may have started playing it while we asked.
        if self.rules.check_delete(character).is_err() {
            self.reply(sessid, text::PUPPETED_CANNOT_DELETE);
            return;
        }
        let request = DeleteCharacter {
            account: self.id,
            character,
        };
        self.ask_db(request, ctx, move |act, result| match result {
            Ok(true) => {
                act.characters.remove(&character);
                act.rules.remove_owned(character);
                if act.last_puppet == Some(character) {
                    act.last_puppet = None;
                }
                act.server.world.do_send(ForgetCharacter { character });
                act.reply(sessid, text::deleted(&name));
            }
            Ok(false) => act.reply(sessid, text::NO_SUCH_CHARACTER),
            Err(e) => act.database_failed(sessid, "The character could not be deleted", &e),
        });
    }

    fn change_password(
        &mut self,
        sessid: SessionId,
        old: String,
        new: String,
        ctx: &mut Context<Self>,
    ) {
        let request = ChangePassword {
            account: self.id,
            old_password: old,
            new_password: new,
            min_password_length: self.server.settings.server.password_min_length,
        };
        self.ask_db(request, ctx, move |act, result| match result {
            Ok(true) => {
                log::info!("account {}: password changed", act.id);
                // Every session hears of it: a change nobody expected
                // is a warning.
                act.tell_account(text::PASSWORD_CHANGED);
            }
            Ok(false) => act.say(sessid, text::PASSWORD_WRONG),
            Err(DbError::WeakPassword(why)) => act.say(sessid, why),
            Err(e) => act.database_failed(sessid, "The password could not be changed", &e),
        });
    }

    fn option(
        &mut self,
        sessid: SessionId,
        name: String,
        value: Option<String>,
        ctx: &mut Context<Self>,
    ) {
        match value {
            Some(value) => ctx.wait(
                self.server
                    .handler
                    .send(ChangeOption {
                        sessid,
                        name,
                        value,
                    })
                    .into_actor(self)
                    .map(move |result, act, _| {
                        if let Ok(Ok(answer) | Err(answer)) = result {
                            act.say(sessid, answer);
                        }
                    }),
            ),
            None => self.with_sessions(false, ctx, move |act, sessions, _| {
                if let Some(s) = sessions.iter().find(|s| s.sessid == sessid) {
                    act.say(
                        sessid,
                        text::option_table(&s.protocol_flags, &s.protocol_key),
                    );
                }
            }),
        }
    }
}

impl Actor for Account {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.load(ctx);
    }
}

impl Account {
    /// Loads permissions and characters from the database, never from the
    /// session record. Commands wait for it (`ctx.wait`); if the database is
    /// unavailable it is tried again, and sessions that arrive meanwhile are
    /// attached once it has worked, so a restored puppet is never dropped for
    /// want of a character list.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let db = self.server.db.clone();
        let id = self.id;
        ctx.wait(
            async move {
                let account = db.send(GetAccount { id }).await;
                let characters = db.send(LoadCharacters { account: id }).await;
                (account, characters)
            }
            .into_actor(self)
            .map(|(account, characters), act, ctx| {
                let record = match account {
                    Ok(Ok(Some(record))) => record,
                    Ok(Ok(None)) => {
                        log::warn!("account {} no longer exists", act.id);
                        act.server.handler.do_send(AccountGone { account: act.id });
                        ctx.stop();
                        return;
                    }
                    Ok(Err(e)) => return act.retry_load(&e.to_string(), ctx),
                    Err(e) => return act.retry_load(&e.to_string(), ctx),
                };
                let list = match characters {
                    Ok(Ok(list)) => list,
                    Ok(Err(e)) => return act.retry_load(&e.to_string(), ctx),
                    Err(e) => return act.retry_load(&e.to_string(), ctx),
                };
                act.name = record.name;
                act.superuser = record.is_superuser;
                act.rules.set_superuser(record.is_superuser);
                // The last one played; a new account's only character counts
                // as its last (Evennia sets it at creation).
                act.last_puppet = list
                    .iter()
                    .filter(|c| c.last_puppeted_at.is_some())
                    .max_by_key(|c| c.last_puppeted_at)
                    .or(match list.as_slice() {
                        [only] => Some(only),
                        _ => None,
                    })
                    .map(|c| c.id);
                act.rules.set_owned(list.iter().map(|c| c.id));
                act.characters = list.into_iter().map(|c| (c.id, c)).collect();
                act.loaded = true;
                act.told_to_wait.clear();
                for attach in std::mem::take(&mut act.deferred) {
                    act.attach(attach, ctx);
                }
            }),
        );
    }

    /// Tells the sessions waiting for the account why nothing happens yet
    /// (each at its first failed load), then loads again after a pause.
    fn retry_load(&mut self, why: &str, ctx: &mut Context<Self>) {
        log::error!(
            "account {}: cannot load ({why}); retrying in {LOAD_RETRY:?}",
            self.id
        );
        // A login waits for its welcome; a restored session waits for nothing
        // and hears NOT_READY at its next command.
        for waiting in self.deferred.iter().filter(|a| a.restored.is_none()) {
            if self.told_to_wait.insert(waiting.sessid) {
                self.server.say(waiting.sessid, NOT_READY);
            }
        }
        ctx.run_later(LOAD_RETRY, |act, ctx| act.load(ctx));
    }
}

impl Handler<AttachSession> for Account {
    type Result = ();

    fn handle(&mut self, msg: AttachSession, ctx: &mut Context<Self>) {
        if self.loaded {
            self.attach(msg, ctx);
        } else {
            self.deferred.push(msg);
        }
    }
}

impl Account {
    fn attach(&mut self, msg: AttachSession, ctx: &mut Context<Self>) {
        let sessid = msg.sessid;
        let kicked = self.rules.attach(sessid, msg.restored);
        for old in kicked {
            // Mode 0: the older session goes now, its puppet with it.
            let release = self.rules.detach(old);
            self.release_in_world(release, vec![old]);
            self.server.handler.do_send(DisconnectSession {
                sessid: old,
                reason: text::LOGGED_IN_ELSEWHERE.to_owned(),
            });
        }
        match msg.restored {
            Some(Some(_)) => {
                if let Some(puppet) = self.rules.puppet_of(sessid) {
                    if let Some(record) = self.characters.get(&puppet) {
                        self.server.world.do_send(EnterWorld {
                            character: puppet,
                            name: record.name.clone(),
                            description: record.description.clone(),
                            location: record.location,
                            sessions: self.rules.sessions_of(puppet),
                            announce: false,
                            look_to: Vec::new(),
                        });
                    }
                } else {
                    // The character is gone: the Portal must not keep it.
                    self.set_puppet(sessid, None);
                }
            }
            Some(None) => {}
            None => {
                self.say(
                    sessid,
                    format!("\nWelcome, {}! You are logged in.", self.name),
                );
                // Web clients and GMCP clients learn of the login out of band.
                self.server.portals.send(ServerToPortal::DataOut {
                    sessid,
                    output: Output::Oob(crate::commands::inputfuncs::oob(
                        "logged_in",
                        Vec::new(),
                        serde_json::Map::new(),
                    )),
                });
                let target = if self.server.settings.server.auto_puppet_on_login {
                    self.rules.auto_puppet_target(sessid, self.last_puppet)
                } else {
                    None
                };
                match target {
                    Some(character) => self.puppet(sessid, character, ctx),
                    None => self.ooc_look(sessid, ctx),
                }
            }
        }
    }
}

impl Handler<DetachSession> for Account {
    type Result = ();

    fn handle(&mut self, msg: DetachSession, ctx: &mut Context<Self>) {
        self.pending_delete.remove(&msg.sessid);
        self.deferred.retain(|a| a.sessid != msg.sessid);
        self.told_to_wait.remove(&msg.sessid);
        let release = self.rules.detach(msg.sessid);
        self.release_in_world(release, vec![msg.sessid]);
        if msg.last {
            ctx.stop();
        }
    }
}

impl Handler<AccountInput> for Account {
    type Result = ();

    fn handle(&mut self, msg: AccountInput, ctx: &mut Context<Self>) {
        acknowledge_when_done(msg.receipt, &self.server.portals, ctx);
        if !self.loaded {
            self.say(msg.sessid, NOT_READY);
            return;
        }
        if !self.rules.has_session(msg.sessid) {
            return;
        }
        match msg.input {
            Input::Text(line) => {
                self.run(msg.sessid, &line, ctx);
                let took = msg.received.elapsed().as_secs_f64();
                self.server.metrics.command_seconds.observe(took);
            }
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
