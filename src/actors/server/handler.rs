//! `ServerSessionHandler`: the Server's registry of sessions and accounts.
//!
//! It mirrors the Portal's session records, creates a `ServerSession` actor
//! per session and an `Account` actor per logged-in account, routes input,
//! logs sessions in and out, applies the idle timeout, and rebuilds all of
//! it from the Portal's resync after a reload or crash. It owns no socket and
//! formats no player text beyond announcements.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::account::{Account, AttachSession, DetachSession};
use super::context::ServerContext;
use super::link::{FlushAndClose, PortalLink};
use super::metrics::{ServerMetrics, ServerSnapshot};
use super::portals::Portals;
use super::receipt::InputReceipt;
use super::session::{ServerSession, SessionCommand, StopSession};
use super::throttle::{Throttle, CREATION_THROTTLED, LOGIN_THROTTLED};
use super::world::World;
use super::StopRequest;
use crate::actors::db::{AccountRecord, DbExecutor};
use crate::commands::account::{self as text, apply_option, booted, IDLE_TIMEOUT_REASON};
use crate::commands::inputfuncs::apply_client_options;
use crate::protocols::link::{Input, Output, PortalToServer, RestartMode, ServerToPortal};
use crate::session::{
    now_millis, AccountId, CharacterId, ProtocolFlags, SessionId, SessionSyncData,
};
use crate::settings::Settings;

/// Announced to everyone once the Server is back after a reload or crash.
pub const SERVER_RESTARTED_MESSAGE: &str = " ... Server restarted.";
/// How often throttle entries whose window passed are dropped.
const THROTTLE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How long a stopping Server waits for commands already under way.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often idle sessions are looked for (only when `idle_timeout > 0`).
const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long a Server that has just started waits for every Portal in
/// `server.portal_addrs` before it tells players it is back without the
/// Portals that have not welcomed it yet.
const RESTORE_PORTALS_WAIT: Duration = Duration::from_secs(5);

/// A message from a Portal, with the link it came on.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FromPortal {
    pub link: Addr<PortalLink>,
    pub message: PortalToServer,
}

/// A link to a Portal went down.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PortalLinkDown {
    pub link: Addr<PortalLink>,
}

/// What the Server knows of one Portal it serves.
struct PortalState {
    link: Addr<PortalLink>,
    /// Changes every time that Portal process starts.
    epoch: u64,
    /// The link is up: what is sent now arrives.
    up: bool,
    /// Sessions this Server disconnected while the link was down: the
    /// Portal never heard of it, so the next `Welcome` lists them again and
    /// they must be disconnected then instead of restored.
    disconnected_while_down: HashMap<SessionId, String>,
}

/// Log `sessid` in to `account`; answers with the account actor.
#[derive(Message, Debug)]
#[rtype(result = "Option<Addr<Account>>")]
pub struct Login {
    pub sessid: SessionId,
    pub account: AccountRecord,
}

/// Disconnect one session, showing it `reason`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DisconnectSession {
    pub sessid: SessionId,
    pub reason: String,
}

/// Records of the sessions of `account`, or of every session.
#[derive(Message, Debug)]
#[rtype(result = "Vec<SessionSyncData>")]
pub struct GetSessions {
    pub account: Option<AccountId>,
}

/// The text of `who` for players. Built at most once per second and again
/// whenever someone logs in or out: with thousands online it is the
/// costliest reply there is (2,000 sorted rows), and the figures it shows
/// are whole seconds anyway.
#[derive(Message, Debug)]
#[rtype(result = "Arc<str>")]
pub struct GetWho;

/// The last `who` text, and what it was built from.
#[derive(Debug)]
struct WhoCache {
    second: u64,
    generation: u64,
    text: Arc<str>,
}

/// An account vanished from the database: its sessions go back to the login screen.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AccountGone {
    pub account: AccountId,
}

/// A session's puppet changed; the record is synced to the Portal so a
/// reload or crash restores it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetPuppet {
    pub sessid: SessionId,
    pub puppet: Option<CharacterId>,
}

/// `option NAME = VALUE` for one session; answers the player's text.
#[derive(Message, Debug)]
#[rtype(result = "Result<String, String>")]
pub struct ChangeOption {
    pub sessid: SessionId,
    pub name: String,
    pub value: String,
}

/// One session's record.
#[derive(Message, Debug)]
#[rtype(result = "Option<SessionSyncData>")]
pub struct GetSession {
    pub sessid: SessionId,
}

/// `client_options` for one session: applies `set` (nothing to set: just
/// reports); answers the flags and the option names that were not understood.
#[derive(Message, Debug)]
#[rtype(result = "Option<(ProtocolFlags, Vec<String>)>")]
pub struct ClientOptions {
    pub sessid: SessionId,
    pub set: serde_json::Map<String, serde_json::Value>,
}

/// Disconnect the sessions of an account (by name) or one session (by id);
/// answers how many were disconnected.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Boot {
    pub target: String,
    pub by: String,
    pub reason: String,
}

/// A message to every session, logged in or not.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Announce {
    pub text: String,
}

/// Which per-address throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    Login,
    Creation,
}

/// An attempt from `address`: answers the refusal text if the address is
/// throttled; otherwise counts the attempt at once, so parallel attempts
/// from one address cannot all slip through before the first one fails.
#[derive(Message, Debug)]
#[rtype(result = "Option<&'static str>")]
pub struct ThrottleAttempt {
    pub kind: ThrottleKind,
    pub address: String,
}

/// The attempt counted by `ThrottleAttempt` does not count after all (the
/// login succeeded, or the request was refused before any work was done).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ForgiveAttempt {
    pub kind: ThrottleKind,
    pub address: String,
}

/// Answered once everything queued before it in an actor's mailbox is done.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Settle;

/// Let commands under way finish, then sync every session to the Portal and
/// say goodbye on the link; answers when that is queued.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PrepareStop;

struct Entry {
    record: SessionSyncData,
    actor: Addr<ServerSession>,
    /// The number of the newest line this Server has taken from the Portal: a
    /// line the Portal sends again after a cut link is not run twice.
    last_seq: u64,
    /// The newest line that has finished (see [`InputReceipt`]).
    done: Arc<AtomicU64>,
}

/// The world is being rebuilt from a `Welcome`: input waits, so that every
/// character is back in its room before anyone's replayed `say` is heard, and
/// players are told the Server is back only when they all are.
#[derive(Debug, Default)]
struct Restoring {
    /// Presence barriers (one per `Welcome`) still under way.
    barriers: usize,
    /// Wait for the other Portals until then (the first restore of a Server
    /// that has just started).
    portals_until: Option<Instant>,
    /// Sessions to tell ` ... Server restarted.` once everything is back.
    announce: Vec<SessionId>,
    /// Input that arrived meanwhile, in arrival order.
    held: VecDeque<(SessionId, u64, Input, Instant)>,
}

/// A presence barrier of the restore finished.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct PresenceRestored;

pub struct ServerSessionHandler {
    settings: Arc<Settings>,
    portals: Portals,
    db: Addr<DbExecutor>,
    world: Addr<World>,
    login_throttle: Throttle,
    creation_throttle: Throttle,
    stop: mpsc::UnboundedSender<StopRequest>,
    sessions: HashMap<SessionId, Entry>,
    accounts: HashMap<AccountId, Addr<Account>>,
    /// Every Portal that has welcomed this Server, by `portal.id`.
    portal_states: HashMap<u16, PortalState>,
    /// How many Portals this Server connects to, and the links they refused.
    links_total: usize,
    refused_links: HashSet<Addr<PortalLink>>,
    /// Bumped whenever a session comes, goes or logs in: what `who` lists.
    who_generation: u64,
    who_cache: Option<WhoCache>,
    metrics: Arc<ServerMetrics>,
    restoring: Option<Restoring>,
    /// The first restore of this process has waited for the other Portals.
    waited_for_portals: bool,
}

impl ServerSessionHandler {
    pub fn new(
        settings: Arc<Settings>,
        portals: Portals,
        db: Addr<DbExecutor>,
        world: Addr<World>,
        stop: mpsc::UnboundedSender<StopRequest>,
        metrics: Arc<ServerMetrics>,
        links_total: usize,
    ) -> Self {
        let t = &settings.throttle;
        Self {
            login_throttle: Throttle::new(t.login_limit, Duration::from_secs(t.login_timeout)),
            creation_throttle: Throttle::new(
                t.creation_limit,
                Duration::from_secs(t.creation_timeout),
            ),
            settings,
            portals,
            db,
            world,
            stop,
            sessions: HashMap::new(),
            accounts: HashMap::new(),
            portal_states: HashMap::new(),
            links_total,
            refused_links: HashSet::new(),
            who_generation: 0,
            who_cache: None,
            metrics,
            restoring: None,
            waited_for_portals: false,
        }
    }

    fn context(&self, ctx: &Context<Self>) -> ServerContext {
        ServerContext {
            settings: Arc::clone(&self.settings),
            handler: ctx.address(),
            portals: self.portals.clone(),
            db: self.db.clone(),
            world: self.world.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }

    fn snapshot(&self) -> ServerSnapshot {
        let logged_in = || self.sessions.values().filter(|e| e.record.logged_in);
        let accounts: HashSet<_> = logged_in().filter_map(|e| e.record.account_id).collect();
        let puppets: HashSet<_> = logged_in().filter_map(|e| e.record.puppet_id).collect();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        ServerSnapshot {
            portal_connected: self.portal_states.values().any(|p| p.up),
            sessions: count(self.sessions.len()),
            accounts_online: count(accounts.len()),
            puppets: count(puppets.len()),
        }
    }

    fn to_portal(&self, message: ServerToPortal) {
        self.portals.send(message);
    }

    fn account_actor(
        &mut self,
        id: AccountId,
        name: &str,
        ctx: &mut Context<Self>,
    ) -> Addr<Account> {
        if let Some(addr) = self.accounts.get(&id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let addr = Account::new(id, name.to_owned(), self.context(ctx)).start();
        self.accounts.insert(id, addr.clone());
        addr
    }

    fn start_session(&mut self, record: SessionSyncData, greet: bool, ctx: &mut Context<Self>) {
        let account = match (record.logged_in, record.account_id) {
            (true, Some(id)) => {
                let name = record.account_name.clone().unwrap_or_default();
                let addr = self.account_actor(id, &name, ctx);
                addr.do_send(AttachSession {
                    sessid: record.sessid,
                    restored: Some(record.puppet_id),
                });
                Some(addr)
            }
            _ => None,
        };
        let actor = ServerSession::new(
            record.sessid,
            record.address.clone(),
            record.protocol_flags.clone(),
            account,
            greet,
            self.context(ctx),
        )
        .start();
        self.sessions.insert(
            record.sessid,
            Entry {
                record,
                actor,
                last_seq: 0,
                done: Arc::new(AtomicU64::new(0)),
            },
        );
        self.who_generation += 1;
    }

    /// Forgets a session and stops its actor; stops its account actor when it
    /// was the last one.
    fn remove_session(&mut self, sessid: SessionId) -> Option<SessionSyncData> {
        let entry = self.sessions.remove(&sessid)?;
        self.who_generation += 1;
        entry.actor.do_send(StopSession);
        if let Some(account) = entry.record.account_id {
            let remaining = self
                .sessions
                .values()
                .filter(|e| e.record.account_id == Some(account))
                .count();
            if let Some(addr) = self.accounts.get(&account) {
                addr.do_send(DetachSession {
                    sessid,
                    last: remaining == 0,
                });
            }
            if remaining == 0 {
                self.accounts.remove(&account);
            }
            log::info!(
                "Logged out: {} session {sessid} ({remaining} session(s) remaining)",
                entry.record.account_name.as_deref().unwrap_or("?")
            );
        }
        Some(entry.record)
    }

    /// Removes every session of Portal `portal_id`.
    fn remove_portal_sessions(&mut self, portal_id: u16) {
        let ids: Vec<SessionId> = self
            .sessions
            .keys()
            .filter(|id| id.portal() == portal_id)
            .copied()
            .collect();
        for id in ids {
            self.remove_session(id);
        }
        if self.sessions.is_empty() {
            self.accounts.clear();
        }
    }

    /// The Portal a link carries, once its `Welcome` named it.
    fn portal_of(&self, link: &Addr<PortalLink>) -> Option<u16> {
        self.portal_states
            .iter()
            .find(|(_, p)| p.link == *link)
            .map(|(id, _)| *id)
    }

    fn announce(&self, text: &str) {
        let sessids: Vec<SessionId> = self.sessions.keys().copied().collect();
        if !sessids.is_empty() {
            self.to_portal(ServerToPortal::DataOutMany {
                sessids,
                output: Output::Text(text.to_owned()),
            });
        }
    }

    fn on_welcome(
        &mut self,
        link: Addr<PortalLink>,
        portal_id: u16,
        portal_epoch: u64,
        restart_mode: Option<RestartMode>,
        sessions: Vec<SessionSyncData>,
        ctx: &mut Context<Self>,
    ) {
        if let Some(other) = self.portal_states.get(&portal_id) {
            if other.up && other.link != link && other.link.connected() {
                log::error!(
                    "a second Portal says it is Portal {portal_id} (portal.id must differ); \
                     closing its link"
                );
                link.do_send(FlushAndClose);
                return;
            }
        }
        let previous = self.portal_states.remove(&portal_id);
        if previous.as_ref().is_some_and(|p| p.epoch != portal_epoch) {
            // A new Portal process: none of its old sessions can be trusted,
            // and none may be inherited by its new connections.
            log::warn!("Portal {portal_id} restarted; dropping its old sessions");
            self.remove_portal_sessions(portal_id);
        }
        let same_portal = previous.as_ref().is_some_and(|p| p.epoch == portal_epoch);
        let undone = previous
            .map(|p| p.disconnected_while_down)
            .unwrap_or_default();
        self.portals.register(portal_id, link.clone());
        self.portal_states.insert(
            portal_id,
            PortalState {
                link,
                epoch: portal_epoch,
                up: true,
                disconnected_while_down: HashMap::new(),
            },
        );
        let (sessions, gone): (Vec<SessionSyncData>, Vec<SessionSyncData>) = sessions
            .into_iter()
            .partition(|s| !(same_portal && undone.contains_key(&s.sessid)));
        for s in gone {
            let reason = undone.get(&s.sessid).cloned().unwrap_or_default();
            self.to_portal(ServerToPortal::Disconnect {
                sessid: s.sessid,
                reason,
            });
        }
        let listed: std::collections::HashSet<SessionId> =
            sessions.iter().map(|s| s.sessid).collect();
        let stale: Vec<SessionId> = self
            .sessions
            .keys()
            .filter(|id| id.portal() == portal_id && !listed.contains(id))
            .copied()
            .collect();
        for id in stale {
            self.remove_session(id);
        }
        let count = sessions.len();
        let mut newer_here = Vec::new();
        let mut resynced = Vec::new();
        for mut record in sessions {
            resynced.push(record.sessid);
            if let Some(entry) = self.sessions.get_mut(&record.sessid) {
                // Same Portal, and this Server never stopped: its own login
                // state is the newer one (a LoggedIn may have been lost with
                // the link), so keep it and tell the Portal.
                record.logged_in = entry.record.logged_in;
                record.account_id = entry.record.account_id;
                record.account_name = entry.record.account_name.clone();
                record.puppet_id = entry.record.puppet_id;
                record.conn_time = entry.record.conn_time;
                entry.record = record;
                newer_here.push(entry.record.clone());
            } else {
                self.start_session(record, false, ctx);
            }
        }
        if !newer_here.is_empty() {
            self.to_portal(ServerToPortal::SessionsSync {
                sessions: newer_here,
            });
        }
        log::info!("resynced {count} sessions from Portal {portal_id} ({restart_mode:?})");
        self.begin_restore(restart_mode, resynced, ctx);
    }

    /// Holds input until the sessions of a `Welcome` are back in the world:
    /// every account they belong to has attached them (and sent the `World`
    /// their puppets), then the `World` has taken those in. The first restore
    /// after a start also waits for every Portal to welcome this Server.
    /// Without a `restart_mode` (a Portal upgraded itself) nobody is told.
    fn begin_restore(
        &mut self,
        restart_mode: Option<RestartMode>,
        resynced: Vec<SessionId>,
        ctx: &mut Context<Self>,
    ) {
        let restarted = restart_mode.is_some_and(|m| m != RestartMode::ColdStart);
        let wait_for_portals =
            restarted && !self.waited_for_portals && !self.all_portals_welcomed();
        self.waited_for_portals = true;
        let restoring = self.restoring.get_or_insert_with(Restoring::default);
        if wait_for_portals {
            restoring.portals_until = Some(Instant::now() + RESTORE_PORTALS_WAIT);
            ctx.run_later(RESTORE_PORTALS_WAIT, |act, _| act.finish_restore());
        }
        if restarted {
            restoring.announce.extend(resynced);
        }
        restoring.barriers += 1;
        let accounts: Vec<Addr<Account>> = self.accounts.values().cloned().collect();
        let world = self.world.clone();
        ctx.spawn(
            async move {
                settle(accounts, "restored accounts").await;
                settle(vec![world], "the world").await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.notify(PresenceRestored)),
        );
    }

    /// Every Portal this Server serves has welcomed it (or refused it).
    fn all_portals_welcomed(&self) -> bool {
        let up = self.portal_states.values().filter(|p| p.up).count();
        up + self.refused_links.len() >= self.links_total
    }

    /// Ends the restore once its barriers are done and, on the first one,
    /// every Portal is back (or the wait is over): announces the restart,
    /// then runs the held input in the order it came.
    fn finish_restore(&mut self) {
        let Some(restoring) = &self.restoring else {
            return;
        };
        if restoring.barriers > 0 {
            return;
        }
        if restoring
            .portals_until
            .is_some_and(|until| Instant::now() < until && !self.all_portals_welcomed())
        {
            return;
        }
        let Some(restoring) = self.restoring.take() else {
            return;
        };
        let announce: Vec<SessionId> = restoring
            .announce
            .into_iter()
            .filter(|id| self.sessions.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !announce.is_empty() {
            self.to_portal(ServerToPortal::DataOutMany {
                sessids: announce,
                output: Output::Text(SERVER_RESTARTED_MESSAGE.to_owned()),
            });
        }
        log::info!(
            "sessions restored; running {} lines typed meanwhile",
            restoring.held.len()
        );
        for (sessid, seq, input, received) in restoring.held {
            self.take_input(sessid, seq, input, received);
        }
    }

    /// Hands one line to its session's actor, unless this Server already took
    /// it (the Portal sends a line again when a link is cut before the line's
    /// acknowledgement arrived): then it is acknowledged again if it is done.
    fn take_input(&mut self, sessid: SessionId, seq: u64, input: Input, received: Instant) {
        let idle_command = &self.settings.server.idle_command;
        let Some(entry) = self.sessions.get_mut(&sessid) else {
            return;
        };
        if seq > 0 && seq <= entry.last_seq {
            let done = entry.done.load(Ordering::Acquire);
            log::debug!("session {sessid}: line {seq} arrived again (done up to {done})");
            if done >= seq {
                self.portals
                    .send(ServerToPortal::InputDone { sessid, seq: done });
            }
            return;
        }
        entry.last_seq = entry.last_seq.max(seq);
        if let Input::Text(line) = &input {
            entry.record.record_input(line, idle_command, now_millis());
        }
        entry.actor.do_send(SessionCommand {
            input,
            received,
            receipt: InputReceipt::new(sessid, seq, Arc::clone(&entry.done)),
        });
    }

    fn check_idle(&mut self) {
        let timeout = self.settings.server.idle_timeout;
        if timeout <= 0 {
            return;
        }
        let limit = u64::try_from(timeout)
            .unwrap_or(u64::MAX)
            .saturating_mul(1000);
        let now = now_millis();
        let idle: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|e| now.saturating_sub(e.record.cmd_last) > limit)
            .map(|e| e.record.sessid)
            .collect();
        for sessid in idle {
            log::info!("session {sessid}: idle timeout");
            self.disconnect(sessid, IDLE_TIMEOUT_REASON.to_owned());
        }
    }

    fn disconnect(&mut self, sessid: SessionId, reason: String) {
        if self.remove_session(sessid).is_some() {
            if let Some(portal) = self.portal_states.get_mut(&sessid.portal()) {
                if !portal.up {
                    portal
                        .disconnected_while_down
                        .insert(sessid, reason.clone());
                }
            }
            self.to_portal(ServerToPortal::Disconnect { sessid, reason });
        }
    }
}

impl Actor for ServerSessionHandler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::actors::HUB_MAILBOX_CAPACITY);
        if self.settings.server.idle_timeout > 0 {
            ctx.run_interval(IDLE_CHECK_INTERVAL, |act, _| act.check_idle());
        }
        ctx.run_interval(THROTTLE_SWEEP_INTERVAL, |act, _| {
            let now = Instant::now();
            act.login_throttle.sweep(now);
            act.creation_throttle.sweep(now);
        });
    }
}

impl Handler<FromPortal> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: FromPortal, ctx: &mut Context<Self>) {
        match msg.message {
            PortalToServer::Welcome {
                version: _,
                proof: _,
                portal_epoch,
                portal_started: _,
                restart_mode,
                sessions,
                portal_id,
                portal_upgraded,
            } => self.on_welcome(
                msg.link,
                portal_id,
                portal_epoch,
                // A Portal that upgraded itself lost no Server: nothing to announce.
                (!portal_upgraded).then_some(restart_mode),
                sessions,
                ctx,
            ),
            PortalToServer::Challenge { .. } => {
                log::warn!("link: a challenge after the handshake; ignored");
            }
            PortalToServer::Refused { reason } => {
                // One Portal's refusal closes that link; the Server stops only
                // when no Portal will have it.
                log::error!("a Portal refused this Server: {reason}");
                msg.link.do_send(FlushAndClose);
                self.refused_links.insert(msg.link);
                if self.refused_links.len() >= self.links_total {
                    let _ = self.stop.send(StopRequest::Refused);
                }
                self.finish_restore();
            }
            PortalToServer::SessionConnected { session } => {
                if self.sessions.contains_key(&session.sessid) {
                    log::warn!("session {} connected twice; ignored", session.sessid);
                    return;
                }
                self.start_session(session, true, ctx);
            }
            PortalToServer::SessionUpdated { session } => {
                if let Some(entry) = self.sessions.get_mut(&session.sessid) {
                    // The Portal sends this only when the connection changed
                    // something; it already holds the options set here (they
                    // reach it with every sync), so its copy is whole.
                    entry.record.protocol_flags = session.protocol_flags;
                }
            }
            PortalToServer::SessionDisconnected { sessid } => {
                self.remove_session(sessid);
            }
            PortalToServer::DataIn { sessid, input, seq } => {
                let received = Instant::now();
                match &mut self.restoring {
                    Some(restoring) => restoring.held.push_back((sessid, seq, input, received)),
                    None => self.take_input(sessid, seq, input, received),
                }
            }
            PortalToServer::AllDisconnected => {
                if let Some(portal) = self.portal_of(&msg.link) {
                    self.remove_portal_sessions(portal);
                }
            }
            PortalToServer::Reload => {
                let _ = self.stop.send(StopRequest::Reload);
            }
            PortalToServer::Shutdown => {
                let _ = self.stop.send(StopRequest::Shutdown);
            }
        }
    }
}

impl Handler<PresenceRestored> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, _: PresenceRestored, _: &mut Context<Self>) {
        if let Some(restoring) = &mut self.restoring {
            restoring.barriers = restoring.barriers.saturating_sub(1);
        }
        self.finish_restore();
    }
}

impl Handler<PortalLinkDown> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: PortalLinkDown, ctx: &mut Context<Self>) {
        let Some(portal_id) = self.portal_of(&msg.link) else {
            return;
        };
        if let Some(portal) = self.portal_states.get_mut(&portal_id) {
            portal.up = false;
        }
        let kept = self
            .sessions
            .keys()
            .filter(|id| id.portal() == portal_id)
            .count();
        // Sessions stay: the Portal resyncs them when the link is back. A Portal
        // that stays away that long is gone, and its players with it.
        log::warn!("link to Portal {portal_id} lost; {kept} sessions kept for now");
        let grace = Duration::from_secs(self.settings.server.portal_grace);
        let epoch = self.portal_states.get(&portal_id).map(|p| p.epoch);
        ctx.run_later(grace, move |act, _| {
            let still_down = act
                .portal_states
                .get(&portal_id)
                .is_some_and(|p| !p.up && Some(p.epoch) == epoch);
            if still_down {
                log::warn!(
                    "Portal {portal_id} has been away {} s; its sessions are gone",
                    grace.as_secs()
                );
                act.remove_portal_sessions(portal_id);
            }
        });
    }
}

/// The page `/metrics` serves.
#[derive(Message, Debug)]
#[rtype(result = "String")]
pub struct RenderMetrics;

impl Handler<RenderMetrics> for ServerSessionHandler {
    type Result = String;

    fn handle(&mut self, _: RenderMetrics, _: &mut Context<Self>) -> String {
        self.metrics.render(self.snapshot())
    }
}

/// What `/healthz` answers.
#[derive(Message, Debug)]
#[rtype(result = "ServerSnapshot")]
pub struct GetHealth;

impl Handler<GetHealth> for ServerSessionHandler {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<Login> for ServerSessionHandler {
    type Result = MessageResult<Login>;

    fn handle(&mut self, msg: Login, ctx: &mut Context<Self>) -> Self::Result {
        let Some(entry) = self.sessions.get_mut(&msg.sessid) else {
            // The connection went away while the password was checked.
            return MessageResult(None);
        };
        entry
            .record
            .log_in(msg.account.id, &msg.account.name, now_millis());
        self.who_generation += 1;
        self.metrics.logins.inc();
        let record = entry.record.clone();
        let addr = self.account_actor(msg.account.id, &msg.account.name, ctx);
        addr.do_send(AttachSession {
            sessid: msg.sessid,
            restored: None,
        });
        let total = self
            .sessions
            .values()
            .filter(|e| e.record.account_id == Some(msg.account.id))
            .count();
        log::info!(
            "Logged in: {} {} ({total} session(s) total)",
            msg.account.name,
            record.address
        );
        self.to_portal(ServerToPortal::LoggedIn { session: record });
        MessageResult(Some(addr))
    }
}

impl Handler<DisconnectSession> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: DisconnectSession, _: &mut Context<Self>) {
        self.disconnect(msg.sessid, msg.reason);
    }
}

impl Handler<GetSessions> for ServerSessionHandler {
    type Result = MessageResult<GetSessions>;

    fn handle(&mut self, msg: GetSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.sessions
                .values()
                .filter(|e| msg.account.is_none() || e.record.account_id == msg.account)
                .map(|e| e.record.clone())
                .collect(),
        )
    }
}

impl Handler<GetWho> for ServerSessionHandler {
    type Result = MessageResult<GetWho>;

    fn handle(&mut self, _: GetWho, _: &mut Context<Self>) -> Self::Result {
        let now = now_millis();
        let second = now / 1000;
        let fresh = self
            .who_cache
            .as_ref()
            .filter(|c| c.second == second && c.generation == self.who_generation);
        if let Some(cache) = fresh {
            return MessageResult(Arc::clone(&cache.text));
        }
        let text: Arc<str> = text::who(
            self.sessions.values().map(|e| &e.record),
            now,
            &self.settings.server.name,
        )
        .into();
        self.who_cache = Some(WhoCache {
            second,
            generation: self.who_generation,
            text: Arc::clone(&text),
        });
        MessageResult(text)
    }
}

impl Handler<SetPuppet> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: SetPuppet, _: &mut Context<Self>) {
        if let Some(entry) = self.sessions.get_mut(&msg.sessid) {
            if entry.record.puppet_id != msg.puppet {
                entry.record.puppet_id = msg.puppet;
                let record = entry.record.clone();
                self.to_portal(ServerToPortal::SessionsSync {
                    sessions: vec![record],
                });
            }
        }
    }
}

impl Handler<ChangeOption> for ServerSessionHandler {
    type Result = Result<String, String>;

    fn handle(&mut self, msg: ChangeOption, _: &mut Context<Self>) -> Self::Result {
        let entry = self
            .sessions
            .get_mut(&msg.sessid)
            .ok_or_else(|| "Session not found.".to_owned())?;
        let answer = apply_option(&mut entry.record.protocol_flags, &msg.name, &msg.value)?;
        let record = entry.record.clone();
        self.to_portal(ServerToPortal::SessionsSync {
            sessions: vec![record],
        });
        Ok(answer)
    }
}

impl Handler<GetSession> for ServerSessionHandler {
    type Result = Option<SessionSyncData>;

    fn handle(&mut self, msg: GetSession, _: &mut Context<Self>) -> Self::Result {
        self.sessions.get(&msg.sessid).map(|e| e.record.clone())
    }
}

impl Handler<ClientOptions> for ServerSessionHandler {
    type Result = Option<(ProtocolFlags, Vec<String>)>;

    fn handle(&mut self, msg: ClientOptions, _: &mut Context<Self>) -> Self::Result {
        let entry = self.sessions.get_mut(&msg.sessid)?;
        let before = entry.record.protocol_flags.clone();
        let rejected = apply_client_options(&mut entry.record.protocol_flags, &msg.set);
        let flags = entry.record.protocol_flags.clone();
        if flags != before {
            let record = entry.record.clone();
            self.to_portal(ServerToPortal::SessionsSync {
                sessions: vec![record],
            });
        }
        Some((flags, rejected))
    }
}

impl Handler<Boot> for ServerSessionHandler {
    type Result = usize;

    fn handle(&mut self, msg: Boot, _: &mut Context<Self>) -> usize {
        let by_id = msg
            .target
            .trim_start_matches('#')
            .parse::<u64>()
            .ok()
            .map(SessionId);
        let name = msg.target.to_lowercase();
        let targets: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|e| {
                Some(e.record.sessid) == by_id
                    || (e.record.logged_in
                        && e.record
                            .account_name
                            .as_deref()
                            .map(str::to_lowercase)
                            .as_deref()
                            == Some(name.as_str()))
            })
            .map(|e| e.record.sessid)
            .collect();
        log::info!(
            "{} boots {} ({} session(s))",
            msg.by,
            msg.target,
            targets.len()
        );
        for sessid in &targets {
            self.disconnect(*sessid, booted(&msg.by, &msg.reason));
        }
        targets.len()
    }
}

impl Handler<Announce> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: Announce, _: &mut Context<Self>) {
        self.announce(&msg.text);
    }
}

impl ServerSessionHandler {
    fn exempt(&self, address: &str) -> bool {
        self.settings.throttle.exempt_loopback && crate::session::is_loopback_address(address)
    }

    fn throttle(&mut self, kind: ThrottleKind) -> &mut Throttle {
        match kind {
            ThrottleKind::Login => &mut self.login_throttle,
            ThrottleKind::Creation => &mut self.creation_throttle,
        }
    }
}

impl Handler<ThrottleAttempt> for ServerSessionHandler {
    type Result = Option<&'static str>;

    fn handle(&mut self, msg: ThrottleAttempt, _: &mut Context<Self>) -> Self::Result {
        if self.exempt(&msg.address) {
            return None;
        }
        let now = Instant::now();
        let throttle = self.throttle(msg.kind);
        if !throttle.is_blocked(&msg.address, now) {
            throttle.record(&msg.address, now);
            return None;
        }
        log::warn!("{:?} throttle refuses {}", msg.kind, msg.address);
        Some(match msg.kind {
            ThrottleKind::Login => LOGIN_THROTTLED,
            ThrottleKind::Creation => CREATION_THROTTLED,
        })
    }
}

impl Handler<ForgiveAttempt> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: ForgiveAttempt, _: &mut Context<Self>) {
        if !self.exempt(&msg.address) {
            self.throttle(msg.kind).forgive(&msg.address);
        }
    }
}

impl Handler<AccountGone> for ServerSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: AccountGone, _: &mut Context<Self>) {
        let ids: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|e| e.record.account_id == Some(msg.account))
            .map(|e| e.record.sessid)
            .collect();
        for id in ids {
            self.disconnect(id, "Your account no longer exists.".to_owned());
        }
    }
}

/// Waits until every actor in `actors` has handled `Settle`, or the timeout.
async fn settle<A>(actors: Vec<Addr<A>>, what: &'static str)
where
    A: Actor + Handler<Settle>,
    A::Context: actix::dev::ToEnvelope<A, Settle>,
{
    let settled = join_all(actors.iter().map(|a| a.send(Settle)));
    if tokio::time::timeout(SETTLE_TIMEOUT, settled).await.is_err() {
        log::warn!("some {what} did not settle within {SETTLE_TIMEOUT:?}");
    }
}

impl Handler<PrepareStop> for ServerSessionHandler {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: PrepareStop, _: &mut Context<Self>) -> Self::Result {
        // A barrier: every session, then every account, answers `Settle` only
        // after the commands already in its mailbox (a `connect` waiting for
        // its password check, say) are done, so no accepted command is lost
        // and the sync below includes its result. Accounts are collected
        // after the sessions settled: a login that just finished has started
        // a new one.
        let sessions: Vec<Addr<ServerSession>> =
            self.sessions.values().map(|e| e.actor.clone()).collect();
        Box::pin(
            settle(sessions, "sessions")
                .into_actor(self)
                .then(|(), act, _| {
                    let accounts: Vec<Addr<Account>> = act.accounts.values().cloned().collect();
                    settle(accounts, "accounts").into_actor(act)
                })
                .then(|(), act, _| settle(vec![act.world.clone()], "world writes").into_actor(act))
                .map(|(), act, _| {
                    let sessions: Vec<SessionSyncData> =
                        act.sessions.values().map(|e| e.record.clone()).collect();
                    act.to_portal(ServerToPortal::SessionsSync { sessions });
                    act.to_portal(ServerToPortal::Stopping);
                }),
        )
    }
}
