//! `PortalSessionHandler`: the Portal's registry of every client connection and
//! its end of the relay to the Server.
//!
//! It owns the Portal's copy of each session record (the source of truth while
//! the Server restarts), allocates session ids, paces new connections, applies
//! the per-session input limits, and queues input while the Server is away so
//! that nothing typed during a reload is lost. It never runs game logic and
//! never touches a socket: sessions and the link are other actors.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use super::backlog::{Backlog, Replay};
use super::handover::{SessionHandover, TelnetHandover};
use super::limits::{
    queued_message, too_long, CommandRate, ConnectionQueue, RateVerdict, COMMAND_RATE_WARNING,
    INPUT_QUEUE_FULL_WARNING, LOGIN_TIMEOUT_MESSAGE, MAX_CHAR_LIMIT_WARNING,
    TOO_MANY_UNAUTHENTICATED_MESSAGE,
};
use super::link::{CloseLink, SendToServer, ServerLinkConnection};
use super::metrics::{PortalMetrics, RegistrySnapshot, SessionLabels};
use super::sessid::SessionIdAllocator;
use super::ControlEvent;
use crate::protocols::link::{
    link_proof, Input, LinkRole, Output, PortalToServer, RestartMode, ServerToPortal,
};
use crate::session::{now_millis, ProtocolFlags, SessionId, SessionSyncData, UnixMillis};
use crate::settings::Settings;

/// Shown to a connection that arrives while no Server is connected.
pub const SERVER_AWAY_MESSAGE: &str =
    "The game is starting or restarting. You will be connected in a moment ...";
/// Shown to every session when a reload begins.
pub const RELOAD_MESSAGE: &str = "Server restarting, please wait ...";
/// Shown to every session when the Server disappears without being asked to.
pub const SERVER_LOST_MESSAGE: &str =
    "The game server stopped unexpectedly and is being restarted. You stay connected; \
     what you type meanwhile will run when it is back.";
/// How often the status file is refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// A connection handed to the next Portal image: its socket (closed on exec
/// until the handover clears that) and its negotiated state.
pub type HandedOver = (std::os::fd::OwnedFd, TelnetHandover);

/// Where a session answers [`ToSession::HandOver`]: its connection, or `None`
/// for one that cannot move to another process (TLS, MCCP3 input, web).
#[derive(Debug, Clone)]
pub struct HandoverSlot(
    Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Sender<Option<HandedOver>>>>>,
);

impl HandoverSlot {
    pub fn new() -> (Self, tokio::sync::oneshot::Receiver<Option<HandedOver>>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Self(Arc::new(std::sync::Mutex::new(Some(tx)))), rx)
    }

    /// Answers once; later answers are ignored.
    pub fn answer(&self, answer: Option<HandedOver>) {
        let sender = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(answer);
        }
    }
}

/// What the Portal asks of a session actor (telnet, websocket).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ToSession {
    Output(Output),
    /// The player changed client options on the Server (encoding, screenreader).
    Flags(ProtocolFlags),
    /// Show `reason` (if not empty), flush, and close the connection.
    Close {
        reason: String,
    },
    /// The Portal replaces its binary: flush, stop reading, and answer the
    /// connection and its state (or `None`) without closing the socket.
    HandOver(HandoverSlot),
}

/// A new connection registers itself; answers with its session id.
#[derive(Message)]
#[rtype(result = "SessionId")]
pub struct OpenSession {
    pub protocol_key: &'static str,
    pub address: String,
    pub flags: ProtocolFlags,
    pub endpoint: Recipient<ToSession>,
}

/// Input from a session.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionInput {
    pub sessid: SessionId,
    pub input: Input,
}

/// The session's protocol flags changed (telnet negotiation, a resized
/// window); the Server is told so the flags survive a reload.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionFlagsChanged {
    pub sessid: SessionId,
    pub flags: ProtocolFlags,
}

/// A session's connection is gone.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionClosed {
    pub sessid: SessionId,
    /// Which connection of the session closed (0 for the first); a
    /// resumed web session has a newer one, and the old one's close is
    /// ignored.
    pub connection: u64,
}

/// A web session's connection went away without the page's `websocket_close`
/// or the game ending it (a reload, a closed tab, a dropped network): the
/// session is kept for `portal.websocket_resume_window` seconds, so the page
/// can come back to it with its token, and its output meanwhile goes to its
/// backlog.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SessionDetached {
    pub sessid: SessionId,
    pub connection: u64,
}

/// Issue a new resume token for a session (the old one stops working).
#[derive(Message, Debug)]
#[rtype(result = "Option<String>")]
pub struct IssueToken {
    pub sessid: SessionId,
}

/// A (re)loading web page asks for its session back with its token. The
/// session may be detached, or still attached to an older connection that has
/// not closed yet (a reload can overtake the old page's close; a dead network
/// keeps a socket open until the ping timeout): that connection is closed and
/// the new one takes over. Answers `None` for an unknown, used or expired
/// token, and the page gets a fresh session.
#[derive(Message)]
#[rtype(result = "Option<Resumed>")]
pub struct ResumeSession {
    pub token: String,
    pub endpoint: Recipient<ToSession>,
}

/// A session taken over by a new connection.
#[derive(Debug)]
pub struct Resumed {
    pub sessid: SessionId,
    /// The number of the new connection, for its `SessionClosed`/`SessionDetached`.
    pub connection: u64,
    /// The session is logged in (the page shows it as such).
    pub logged_in: bool,
    /// What the session was sent while no connection held it.
    pub replay: Replay,
}

/// Shown to an older connection of a web session when a newer one takes the
/// session over with its token.
pub const TAKEN_OVER_MESSAGE: &str = "(This session was resumed by a newer connection.)";

/// A Server completed the handshake on `link`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerLinkUp {
    pub link: Addr<ServerLinkConnection>,
    pub server_pid: u32,
    /// The Server's challenge, answered in the `Welcome`.
    pub server_nonce: Vec<u8>,
    /// The Server acknowledges numbered input (`InputDone`), so the Portal
    /// keeps each line until it is done.
    pub acks_input: bool,
    /// The Server dialled from this host, so its pid means a process here.
    pub local: bool,
}

/// The link to the Server closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerLinkDown {
    pub link: Addr<ServerLinkConnection>,
}

/// A message that arrived from the Server.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FromServer(pub ServerToPortal);

/// Tell players and ask the Server to stop for a restart.
#[derive(Message, Debug)]
#[rtype(result = "bool")]
pub struct BeginReload;

/// Tell players and ask the Server to stop for good.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct BeginShutdown {
    pub reason: String,
}

/// Close every session with `reason`; answers when all are gone or the
/// deadline passed.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct CloseAllSessions {
    pub reason: String,
}

/// The page `/metrics` serves.
#[derive(Message, Debug)]
#[rtype(result = "String")]
pub struct RenderMetrics;

impl Handler<RenderMetrics> for PortalSessionHandler {
    type Result = String;

    fn handle(&mut self, _: RenderMetrics, _: &mut Context<Self>) -> String {
        self.metrics.render(&self.snapshot())
    }
}

/// A snapshot for `gatehouse status`.
#[derive(Message, Debug)]
#[rtype(result = "PortalStatus")]
pub struct GetStatus;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortalStatus {
    pub portal_pid: u32,
    pub server_connected: bool,
    pub server_pid: Option<u32>,
    pub sessions: usize,
    pub logged_in: usize,
    pub queued_connections: usize,
    /// The version of the binary this Portal runs now.
    #[serde(default)]
    pub version: String,
    /// When this Portal started (milliseconds since the epoch); kept by an upgrade.
    #[serde(default)]
    pub started: UnixMillis,
    /// When its binary was last replaced in place, if ever.
    #[serde(default)]
    pub upgraded: Option<UnixMillis>,
    /// Why the last upgrade was refused, if it was.
    #[serde(default)]
    pub upgrade_error: Option<String>,
}

/// Stop handing input to the Server (it is queued) before a handover.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct PauseInput;

/// How many lines the Server has taken and not yet finished, over all sessions.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct LinesInFlight;

/// An upgrade was refused before anything was handed over; the Portal goes on.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct UpgradeRefused {
    pub why: String,
}

/// Close the link and take every session from its connection for the next
/// image: answers what that image needs.
#[derive(Message)]
#[rtype(result = "HandoverExport")]
pub struct BeginHandover;

/// The registry as the next image takes it over.
pub struct HandoverExport {
    pub epoch: u64,
    pub started: UnixMillis,
    pub sessions: Vec<SessionHandover>,
    /// The handed-over sockets, kept open until the exec.
    pub sockets: Vec<std::os::fd::OwnedFd>,
}

/// A session the previous image handed over, with its new connection (or
/// none: a web session waits for its page).
pub struct AdoptedSession {
    pub state: SessionHandover,
    pub endpoint: Option<Recipient<ToSession>>,
}

/// The Portal's view of one connection.
struct PortalSession {
    endpoint: Recipient<ToSession>,
    record: SessionSyncData,
    /// The Server has been told of this session (PCONN or Welcome).
    released: bool,
    /// [`crate::session::source_key`] of its address, for per-source limits.
    source: String,
    /// When the connection was let through to the login screen: the login
    /// timeout counts from here, not from a wait in the connection queue.
    released_at: Option<Instant>,
    rate: CommandRate,
    /// Input waiting for the Server, in the order typed.
    pending: VecDeque<QueuedInput>,
    /// Lines handed to the Server and not yet acknowledged, oldest first: they
    /// go back to the front of `pending` if the Server goes away before it
    /// says they are done.
    in_flight: VecDeque<(u64, Input)>,
    /// The number of the last line handed to the Server.
    last_seq: u64,
    /// Told once per outage that the queue is full.
    warned_queue_full: bool,
    /// The web page's resume token.
    token: Option<String>,
    /// Which connection is the current one (a resume makes a new one).
    connection: u64,
    /// Since when the connection is gone and the session waits for a resume.
    detached: Option<Instant>,
    /// Output sent while `detached`, for the page that resumes it.
    backlog: Backlog,
}

/// A line waiting for the Server.
struct QueuedInput {
    input: Input,
    /// Its number, once it has been handed to a Server that did not finish it.
    seq: Option<u64>,
}

impl QueuedInput {
    fn new(input: Input) -> Self {
        Self { input, seq: None }
    }
}

impl PortalSession {
    /// Sends one output to the connection, or keeps it in the backlog while
    /// there is none.
    fn deliver(&mut self, output: Output) {
        if self.detached.is_some() {
            self.backlog.push(output);
        } else {
            self.endpoint.do_send(ToSession::Output(output));
        }
    }

    /// Hands one input to the Server. A new line is numbered and counted here,
    /// when the Server first gets it, so a line queued during a reload is
    /// counted once on both sides; a replayed line keeps its number, so a
    /// Server that already has it can tell. With `keep`, the Portal keeps a
    /// copy until the Server acknowledges it.
    fn forward(
        &mut self,
        queued: QueuedInput,
        idle_command: &str,
        link: &Addr<ServerLinkConnection>,
        keep: bool,
    ) {
        let QueuedInput { input, seq } = queued;
        let seq = seq.unwrap_or_else(|| {
            if let Input::Text(line) = &input {
                self.record.record_input(line, idle_command, now_millis());
            }
            self.last_seq += 1;
            self.last_seq
        });
        if keep {
            if self.in_flight.len() >= MAX_UNFINISHED_KEPT {
                // A client flooding a Server that cannot keep up: the oldest
                // copy goes, and with it that line's replay after a crash.
                self.in_flight.pop_front();
            }
            self.in_flight.push_back((seq, input.clone()));
        }
        link.do_send(SendToServer(PortalToServer::DataIn {
            sessid: self.record.sessid,
            input,
            seq,
        }));
    }

    /// The Server finished every line up to `seq`.
    fn acknowledge(&mut self, seq: u64) {
        while self.in_flight.front().is_some_and(|(s, _)| *s <= seq) {
            self.in_flight.pop_front();
        }
    }

    /// The Server went away: what it did not finish waits for the next one,
    /// ahead of what was typed since.
    fn requeue_in_flight(&mut self) {
        while let Some((seq, input)) = self.in_flight.pop_back() {
            self.pending.push_front(QueuedInput {
                input,
                seq: Some(seq),
            });
        }
    }
}

/// Lines of one session kept until the Server finishes them. A player types a
/// few a second; only a flood with the command rate limit off comes near it.
const MAX_UNFINISHED_KEPT: usize = 1024;

/// Why no Server is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Away {
    NeverStarted,
    Reloading,
    Lost,
    ShuttingDown,
    /// This process is handing everything to its next image.
    HandingOver,
    /// This image took over from the previous one; the Server never stopped.
    Upgraded,
}

enum ServerState {
    Up {
        link: Addr<ServerLinkConnection>,
        pid: u32,
        /// The Server said it is stopping; its link closing is expected.
        stopping: bool,
        /// It acknowledges input, so copies are kept until it does.
        acks_input: bool,
        /// It runs on this host (its link is on loopback).
        local: bool,
    },
    Away(Away),
}

pub struct PortalSessionHandler {
    settings: Settings,
    ids: SessionIdAllocator,
    sessions: HashMap<SessionId, PortalSession>,
    connect_queue: ConnectionQueue,
    release_scheduled: bool,
    server: ServerState,
    reload_requested: bool,
    epoch: u64,
    started: UnixMillis,
    control: mpsc::UnboundedSender<ControlEvent>,
    status_file: Option<PathBuf>,
    close_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
    /// Logged-in sessions, for MSSP; refreshed with the status file.
    players: Arc<AtomicUsize>,
    metrics: Arc<PortalMetrics>,
    /// When this process's binary last replaced the previous one in place.
    upgraded: Option<UnixMillis>,
    upgrade_error: Option<String>,
    /// Stands in for the connection of a session that has none (a web session
    /// waiting for its page after an upgrade).
    no_connection: Option<Recipient<ToSession>>,
}

impl PortalSessionHandler {
    pub fn new(
        settings: Settings,
        ids: SessionIdAllocator,
        control: mpsc::UnboundedSender<ControlEvent>,
        status_file: Option<PathBuf>,
    ) -> Self {
        let started = now_millis();
        Self {
            connect_queue: ConnectionQueue::new(settings.portal.max_connection_rate),
            settings,
            ids,
            sessions: HashMap::new(),
            release_scheduled: false,
            server: ServerState::Away(Away::NeverStarted),
            reload_requested: false,
            // Distinct for every Portal process: start time plus pid.
            epoch: started ^ (u64::from(std::process::id()) << 48),
            started,
            control,
            status_file,
            close_waiters: Vec::new(),
            players: Arc::new(AtomicUsize::new(0)),
            metrics: PortalMetrics::new(),
            upgraded: None,
            upgrade_error: None,
            no_connection: None,
        }
    }

    /// Takes over the registry the previous image handed over: the same epoch
    /// (so the Server keeps every session), start time, sessions, queued and
    /// unfinished input, and resume tokens. Call before the actor starts.
    pub fn adopt(
        &mut self,
        epoch: u64,
        started: UnixMillis,
        upgraded: UnixMillis,
        sessions: Vec<AdoptedSession>,
    ) {
        self.epoch = epoch;
        self.started = started;
        self.upgraded = Some(upgraded);
        self.server = ServerState::Away(Away::Upgraded);
        let gone = NoConnection.start().recipient();
        let now = Instant::now();
        for AdoptedSession { state, endpoint } in sessions {
            let sessid = state.record.sessid;
            let source = crate::session::source_key(&state.record.address);
            let detached = endpoint.is_none().then_some(now);
            if !state.released {
                self.connect_queue.push(&source, sessid);
            }
            self.sessions.insert(
                sessid,
                PortalSession {
                    endpoint: endpoint.unwrap_or_else(|| gone.clone()),
                    record: state.record,
                    released: state.released,
                    source,
                    released_at: state.released.then_some(now),
                    rate: CommandRate::new(now),
                    pending: state
                        .pending
                        .into_iter()
                        .map(|(seq, input)| QueuedInput { input, seq })
                        .collect(),
                    in_flight: VecDeque::new(),
                    last_seq: state.last_seq,
                    warned_queue_full: false,
                    token: state.token,
                    connection: state.connection,
                    detached,
                    backlog: Backlog::new(self.settings.portal.websocket_resume_backlog),
                },
            );
        }
        self.no_connection = Some(gone);
    }

    /// The logged-in count that telnet sessions report to MUD crawlers.
    pub fn player_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.players)
    }

    /// The figures `/metrics` shows; sessions add their byte counts.
    pub fn metrics(&self) -> Arc<PortalMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The registry's gauges for `/metrics`.
    fn snapshot(&self) -> RegistrySnapshot {
        let mut counts: HashMap<SessionLabels, i64> = HashMap::new();
        for s in self.sessions.values() {
            let state = if s.detached.is_some() {
                "detached"
            } else if !s.released {
                "queued"
            } else if s.record.logged_in {
                "logged_in"
            } else {
                "unauthenticated"
            };
            let labels = SessionLabels {
                protocol: s.record.protocol_key.clone(),
                state: state.to_owned(),
            };
            *counts.entry(labels).or_default() += 1;
        }
        let mut sessions: Vec<(SessionLabels, i64)> = counts.into_iter().collect();
        sessions.sort_by(|a, b| (&a.0.protocol, &a.0.state).cmp(&(&b.0.protocol, &b.0.state)));
        RegistrySnapshot {
            sessions,
            server_connected: self.link().is_some(),
            connection_queue: i64::try_from(self.connect_queue.len()).unwrap_or(i64::MAX),
            input_queue: self
                .sessions
                .values()
                .map(|s| i64::try_from(s.pending.len()).unwrap_or(i64::MAX))
                .sum(),
        }
    }

    fn link(&self) -> Option<&Addr<ServerLinkConnection>> {
        self.live_link().map(|(link, _)| link)
    }

    /// The link to a Server that takes input now, and whether it acknowledges it.
    fn live_link(&self) -> Option<(&Addr<ServerLinkConnection>, bool)> {
        match &self.server {
            ServerState::Up {
                link,
                stopping: false,
                acks_input,
                ..
            } => Some((link, *acks_input)),
            _ => None,
        }
    }

    fn send_to_server(&self, message: PortalToServer) -> bool {
        match self.link() {
            Some(link) => {
                link.do_send(SendToServer(message));
                true
            }
            None => false,
        }
    }

    fn tell(&mut self, sessid: SessionId, text: &str) {
        if let Some(s) = self.sessions.get_mut(&sessid) {
            s.deliver(Output::Text(text.to_owned()));
        }
    }

    fn tell_all(&mut self, text: &str) {
        for s in self.sessions.values_mut() {
            s.deliver(Output::Text(text.to_owned()));
        }
    }

    /// Releases queued connections to the Server, each source at the configured pace.
    fn release_queued(&mut self, ctx: &mut Context<Self>) {
        let Some((link, keep)) = self.live_link().map(|(l, k)| (l.clone(), k)) else {
            return;
        };
        let (ready, next) = self.connect_queue.release(Instant::now());
        for sessid in ready {
            let Some(session) = self.sessions.get_mut(&sessid) else {
                continue;
            };
            session.released = true;
            session.released_at = Some(Instant::now());
            link.do_send(SendToServer(PortalToServer::SessionConnected {
                session: session.record.clone(),
            }));
            while let Some(input) = session.pending.pop_front() {
                session.forward(input, &self.settings.server.idle_command, &link, keep);
            }
        }
        if let Some(wait) = next {
            if !self.release_scheduled {
                self.release_scheduled = true;
                ctx.run_later(wait, |act, ctx| {
                    act.release_scheduled = false;
                    act.release_queued(ctx);
                });
            }
        }
    }

    fn accept_input(&mut self, sessid: SessionId, input: Input) {
        let max_chars = self.settings.portal.max_char_limit;
        let max_rate = self.settings.portal.max_command_rate;
        let queue_limit = self.settings.portal.input_queue_limit;
        let link = match &self.server {
            ServerState::Up {
                link,
                stopping: false,
                acks_input,
                ..
            } => Some((link, *acks_input)),
            _ => None,
        };
        let Some(session) = self.sessions.get_mut(&sessid) else {
            return;
        };
        if let Input::Text(line) = &input {
            if too_long(line, max_chars) {
                self.tell(sessid, MAX_CHAR_LIMIT_WARNING);
                return;
            }
        }
        match session.rate.check(max_rate, Instant::now()) {
            RateVerdict::Accept => {
                self.metrics.commands.inc();
            }
            RateVerdict::DropAndWarn => {
                self.tell(sessid, COMMAND_RATE_WARNING);
                return;
            }
            RateVerdict::Drop => return,
        }
        match link {
            Some((link, keep)) if session.released => {
                session.forward(
                    QueuedInput::new(input),
                    &self.settings.server.idle_command,
                    link,
                    keep,
                );
            }
            _ if session.pending.len() < queue_limit => {
                session.pending.push_back(QueuedInput::new(input));
            }
            _ if !session.warned_queue_full => {
                session.warned_queue_full = true;
                self.tell(sessid, INPUT_QUEUE_FULL_WARNING);
            }
            _ => {}
        }
    }

    /// Applies the Server's view of a session; the Portal keeps its own
    /// counters, which it updates itself on every line.
    fn merge_from_server(&mut self, update: SessionSyncData) {
        if let Some(s) = self.sessions.get_mut(&update.sessid) {
            let r = &mut s.record;
            r.logged_in = update.logged_in;
            r.account_id = update.account_id;
            r.account_name = update.account_name;
            r.puppet_id = update.puppet_id;
            r.conn_time = update.conn_time;
            // The Server's copy may predate the latest negotiation: take only
            // what the player or game can change.
            let mut merged = r.protocol_flags.clone();
            merged.adopt_user_options(&update.protocol_flags);
            if r.protocol_flags != merged {
                r.protocol_flags = merged;
                s.endpoint
                    .do_send(ToSession::Flags(r.protocol_flags.clone()));
            }
        }
    }

    /// Removes a session from the registry and returns it.
    fn forget(&mut self, sessid: SessionId) -> Option<PortalSession> {
        let session = self.sessions.remove(&sessid)?;
        self.connect_queue.remove(&session.source, sessid);
        self.check_close_waiters();
        Some(session)
    }

    /// The Server closes a session: show `reason` and close it.
    fn drop_session(&mut self, sessid: SessionId, reason: String) {
        if let Some(s) = self.forget(sessid) {
            s.endpoint.do_send(ToSession::Close { reason });
        }
    }

    fn check_close_waiters(&mut self) {
        if self.sessions.is_empty() {
            for w in self.close_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn status(&self) -> PortalStatus {
        let (server_connected, server_pid) = match &self.server {
            ServerState::Up { pid, .. } => (true, Some(*pid)),
            ServerState::Away(_) => (false, None),
        };
        PortalStatus {
            portal_pid: std::process::id(),
            server_connected,
            server_pid,
            sessions: self.sessions.len(),
            logged_in: self
                .sessions
                .values()
                .filter(|s| s.record.logged_in)
                .count(),
            queued_connections: self.connect_queue.len(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started: self.started,
            upgraded: self.upgraded,
            upgrade_error: self.upgrade_error.clone(),
        }
    }

    fn write_status_file(&self) {
        let status = self.status();
        self.players.store(status.logged_in, Ordering::Relaxed);
        let Some(path) = &self.status_file else {
            return;
        };
        match toml::to_string(&status) {
            Ok(text) => {
                let tmp = path.with_extension("tmp");
                if let Err(e) =
                    std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path))
                {
                    log::warn!("cannot write {}: {e}", path.display());
                }
            }
            Err(e) => log::warn!("cannot encode status: {e}"),
        }
    }

    fn on_server_message(&mut self, msg: ServerToPortal) {
        match msg {
            ServerToPortal::Hello { .. } => {
                log::warn!("link: ignoring a second Hello from the Server");
            }
            ServerToPortal::DataOut { sessid, output } => {
                if let Some(s) = self.sessions.get_mut(&sessid) {
                    s.deliver(output);
                }
            }
            ServerToPortal::InputDone { sessid, seq } => {
                if let Some(s) = self.sessions.get_mut(&sessid) {
                    s.acknowledge(seq);
                }
            }
            ServerToPortal::DataOutMany { sessids, output } => {
                for sessid in sessids {
                    if let Some(s) = self.sessions.get_mut(&sessid) {
                        s.deliver(output.clone());
                    }
                }
            }
            ServerToPortal::LoggedIn { session } => {
                self.metrics.logins.inc();
                log::info!(
                    "session {} logged in as {}",
                    session.sessid,
                    session.account_name.as_deref().unwrap_or("?")
                );
                self.merge_from_server(session);
            }
            ServerToPortal::SessionsSync { sessions } => {
                for s in sessions {
                    self.merge_from_server(s);
                }
            }
            ServerToPortal::Disconnect { sessid, reason } => {
                self.drop_session(sessid, reason);
            }
            ServerToPortal::DisconnectAll { reason } => {
                let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
                for id in ids {
                    self.drop_session(id, reason.clone());
                }
            }
            ServerToPortal::RequestReload { reason } => {
                log::info!("the Server asked for a reload ({reason})");
                let _ = self.control.send(ControlEvent::Reload);
            }
            ServerToPortal::RequestShutdown { reason } => {
                log::info!("the Server asked for a shutdown ({reason})");
                let _ = self.control.send(ControlEvent::Shutdown { reason });
            }
            ServerToPortal::Stopping => {
                if let ServerState::Up { stopping, .. } = &mut self.server {
                    *stopping = true;
                }
            }
        }
    }
}

impl Actor for PortalSessionHandler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Session traffic all passes through here; a large mailbox keeps
        // bursts from back-pressuring every session at once.
        ctx.set_mailbox_capacity(crate::actors::HUB_MAILBOX_CAPACITY);
        self.write_status_file();
        ctx.run_interval(STATUS_INTERVAL, |act, _| {
            act.write_status_file();
            act.expire_detached();
            act.expire_unauthenticated();
        });
    }
}

impl Handler<OpenSession> for PortalSessionHandler {
    type Result = MessageResult<OpenSession>;

    fn handle(&mut self, msg: OpenSession, ctx: &mut Context<Self>) -> Self::Result {
        let sessid = self.ids.allocate();
        let source = crate::session::source_key(&msg.address);
        if self.too_many_logging_in(&source, &msg.address) {
            log::warn!(
                "session {sessid} from {} refused: {} connections from {source} not logged in",
                msg.address,
                self.settings.portal.max_unauthenticated_per_source
            );
            msg.endpoint.do_send(ToSession::Close {
                reason: TOO_MANY_UNAUTHENTICATED_MESSAGE.to_owned(),
            });
            return MessageResult(sessid);
        }
        let mut flags = msg.flags;
        flags.screen_width = self.settings.client.default_width;
        flags.screen_height = self.settings.client.default_height;
        let record =
            SessionSyncData::new(sessid, msg.protocol_key, &msg.address, now_millis(), flags);
        log::info!(
            "session {sessid} connected: {} from {}",
            msg.protocol_key,
            msg.address
        );
        self.sessions.insert(
            sessid,
            PortalSession {
                endpoint: msg.endpoint,
                record,
                released: false,
                source: source.clone(),
                released_at: None,
                rate: CommandRate::new(Instant::now()),
                pending: VecDeque::new(),
                in_flight: VecDeque::new(),
                last_seq: 0,
                warned_queue_full: false,
                token: None,
                connection: 0,
                detached: None,
                backlog: Backlog::new(self.settings.portal.websocket_resume_backlog),
            },
        );
        self.connect_queue.push(&source, sessid);
        if self.link().is_none() {
            self.tell(sessid, SERVER_AWAY_MESSAGE);
        }
        self.release_queued(ctx);
        if let Some(wait) = self.connect_queue.wait_estimate_secs(&source, sessid) {
            if self.link().is_some() {
                self.tell(sessid, &queued_message(&self.settings.server.name, wait));
            }
        }
        MessageResult(sessid)
    }
}

impl Handler<SessionInput> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: SessionInput, _: &mut Context<Self>) {
        self.accept_input(msg.sessid, msg.input);
    }
}

impl Handler<SessionFlagsChanged> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: SessionFlagsChanged, _: &mut Context<Self>) {
        let Some(session) = self.sessions.get_mut(&msg.sessid) else {
            return;
        };
        if session.record.protocol_flags == msg.flags {
            return;
        }
        session.record.protocol_flags = msg.flags;
        if session.released {
            let record = session.record.clone();
            self.send_to_server(PortalToServer::SessionUpdated { session: record });
        }
    }
}

impl PortalSessionHandler {
    /// `portal.max_unauthenticated_per_source` connections from `source`
    /// are already connected and not logged in.
    fn too_many_logging_in(&self, source: &str, address: &str) -> bool {
        let cap = self.settings.portal.max_unauthenticated_per_source;
        if cap == 0
            || (self.settings.throttle.exempt_loopback
                && crate::session::is_loopback_address(address))
        {
            return false;
        }
        self.sessions
            .values()
            .filter(|s| !s.record.logged_in && s.source == source)
            .count()
            >= cap
    }

    /// Closes connections that were shown the login screen more than
    /// `portal.login_timeout` seconds ago and never logged in (slowloris:
    /// each would hold a socket and a session for good).
    fn expire_unauthenticated(&mut self) {
        let timeout = self.settings.portal.login_timeout;
        if timeout == 0 {
            return;
        }
        let limit = Duration::from_secs(timeout);
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                !s.record.logged_in
                    && s.detached.is_none()
                    && s.released_at.is_some_and(|t| t.elapsed() >= limit)
            })
            .map(|(id, _)| *id)
            .collect();
        for sessid in expired {
            if let Some(session) = self.forget(sessid) {
                log::info!("session {sessid}: not logged in after {timeout} s; closed");
                self.send_to_server(PortalToServer::SessionDisconnected { sessid });
                session.endpoint.do_send(ToSession::Close {
                    reason: LOGIN_TIMEOUT_MESSAGE.to_owned(),
                });
            }
        }
    }

    /// Ends web sessions whose connection has been gone longer than the
    /// resume window; only now does the Server hear they are gone.
    fn expire_detached(&mut self) {
        let window = Duration::from_secs(self.settings.portal.websocket_resume_window);
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.detached.is_some_and(|t| t.elapsed() >= window))
            .map(|(id, _)| *id)
            .collect();
        for sessid in expired {
            if let Some(session) = self.forget(sessid) {
                log::info!("session {sessid}: not resumed in time; closed");
                if session.released {
                    self.send_to_server(PortalToServer::SessionDisconnected { sessid });
                }
            }
        }
    }
}

impl Handler<SessionDetached> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: SessionDetached, _: &mut Context<Self>) {
        if let Some(s) = self.sessions.get_mut(&msg.sessid) {
            if s.connection == msg.connection {
                log::info!("session {} detached; kept for a resume", msg.sessid);
                s.detached = Some(Instant::now());
            }
        }
    }
}

impl Handler<IssueToken> for PortalSessionHandler {
    type Result = Option<String>;

    fn handle(&mut self, msg: IssueToken, _: &mut Context<Self>) -> Self::Result {
        let session = self.sessions.get_mut(&msg.sessid)?;
        let token = new_token();
        session.token = Some(token.clone());
        Some(token)
    }
}

impl Handler<ResumeSession> for PortalSessionHandler {
    type Result = Option<Resumed>;

    fn handle(&mut self, msg: ResumeSession, _: &mut Context<Self>) -> Self::Result {
        let (sessid, session) = self.sessions.iter_mut().find(|(_, s)| {
            s.token
                .as_deref()
                .is_some_and(|t| same_token(t, &msg.token))
        })?;
        // A token works once; the page gets a new one.
        session.token = None;
        session.connection += 1;
        let old = std::mem::replace(&mut session.endpoint, msg.endpoint);
        if session.detached.take().is_some() {
            log::info!("session {sessid} resumed by a new connection");
        } else {
            // The old connection's own close carries an older number and is ignored.
            log::info!("session {sessid} taken over by a new connection");
            old.do_send(ToSession::Close {
                reason: TAKEN_OVER_MESSAGE.to_owned(),
            });
        }
        Some(Resumed {
            sessid: *sessid,
            connection: session.connection,
            logged_in: session.record.logged_in,
            replay: session.backlog.take(),
        })
    }
}

/// A resume token: 32 random bytes as hex.
fn new_token() -> String {
    use rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares tokens without an early exit, so timing says nothing about
/// how much of a guess was right.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Handler<SessionClosed> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _: &mut Context<Self>) {
        if self
            .sessions
            .get(&msg.sessid)
            .is_some_and(|s| s.connection != msg.connection)
        {
            return;
        }
        let Some(session) = self.forget(msg.sessid) else {
            return;
        };
        log::info!("session {} closed", msg.sessid);
        if session.released {
            self.send_to_server(PortalToServer::SessionDisconnected { sessid: msg.sessid });
        }
    }
}

impl Handler<ServerLinkUp> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: ServerLinkUp, ctx: &mut Context<Self>) {
        if let ServerState::Up {
            link,
            pid,
            local,
            stopping,
            ..
        } = &self.server
        {
            if link.connected() {
                // A busy Portal may not yet have read the end of a link whose
                // Server is already dead: a new local Server then takes over
                // at once instead of being refused until the old link closes.
                if !(*local && msg.local && *pid != msg.server_pid && !process_exists(*pid)) {
                    log::warn!("link: refusing a second Server while one is connected");
                    msg.link.do_send(SendToServer(PortalToServer::Refused {
                        reason: "another Server is already connected to this Portal".to_owned(),
                    }));
                    return;
                }
                log::warn!(
                    "link: Server pid {pid} is gone but its link is not closed yet; \
                     taking Server pid {}",
                    msg.server_pid
                );
                link.do_send(CloseLink);
                let away = self.why_away(*stopping);
                if away == Away::Lost {
                    self.tell_all(SERVER_LOST_MESSAGE);
                }
                self.lose_server(away);
            }
        }
        let portal_upgraded = matches!(self.server, ServerState::Away(Away::Upgraded));
        let restart_mode = match &self.server {
            ServerState::Away(Away::NeverStarted) => RestartMode::ColdStart,
            ServerState::Away(Away::Reloading | Away::Upgraded) => RestartMode::Reload,
            _ if self.reload_requested => RestartMode::Reload,
            _ => RestartMode::Crash,
        };
        self.reload_requested = false;
        if restart_mode != RestartMode::ColdStart && !portal_upgraded {
            self.metrics
                .server_restarted(restart_mode == RestartMode::Reload);
        }
        log::info!(
            "link: Server (pid {}) connected, {restart_mode:?}; resyncing {} sessions",
            msg.server_pid,
            self.sessions.len()
        );
        let sessions: Vec<SessionSyncData> = self
            .sessions
            .values()
            .filter(|s| s.released)
            .map(|s| s.record.clone())
            .collect();
        msg.link.do_send(SendToServer(PortalToServer::Welcome {
            version: crate::protocols::link::LINK_PROTOCOL_VERSION,
            proof: link_proof(
                &self.settings.portal.link_secret,
                LinkRole::Portal,
                &msg.server_nonce,
            ),
            portal_epoch: self.epoch,
            portal_started: self.started,
            restart_mode,
            sessions,
            portal_id: self.settings.portal.id,
            portal_upgraded,
        }));
        // Input typed while the Server was away runs now, in order.
        let mut ids: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.released && !s.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        for sessid in ids {
            if let Some(s) = self.sessions.get_mut(&sessid) {
                s.warned_queue_full = false;
                while let Some(input) = s.pending.pop_front() {
                    s.forward(
                        input,
                        &self.settings.server.idle_command,
                        &msg.link,
                        msg.acks_input,
                    );
                }
            }
        }
        self.server = ServerState::Up {
            link: msg.link,
            pid: msg.server_pid,
            stopping: false,
            acks_input: msg.acks_input,
            local: msg.local,
        };
        self.release_queued(ctx);
        self.write_status_file();
    }
}

impl Handler<ServerLinkDown> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: ServerLinkDown, _: &mut Context<Self>) {
        let ServerState::Up { link, stopping, .. } = &self.server else {
            return;
        };
        if *link != msg.link {
            return;
        }
        let away = self.why_away(*stopping);
        if away == Away::Lost {
            log::warn!("link: the Server went away unexpectedly");
            self.tell_all(SERVER_LOST_MESSAGE);
        } else {
            log::info!("link: Server disconnected ({away:?})");
        }
        self.lose_server(away);
        self.write_status_file();
    }
}

impl PortalSessionHandler {
    /// Why the Server's link went: a stop it announced or a reload asked for,
    /// or neither (it was lost).
    fn why_away(&self, stopping: bool) -> Away {
        if stopping || self.reload_requested {
            Away::Reloading
        } else {
            Away::Lost
        }
    }

    /// The Server is gone: whatever it had not finished runs on the next one.
    fn lose_server(&mut self, away: Away) {
        let mut replayed = 0;
        for s in self.sessions.values_mut() {
            replayed += s.in_flight.len();
            s.requeue_in_flight();
        }
        if replayed > 0 {
            log::info!("link: {replayed} unfinished lines will run on the next Server");
        }
        self.server = ServerState::Away(away);
    }
}

/// Whether process `pid` exists on this host (a zombie counts: not yet reaped).
fn process_exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl Handler<FromServer> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: FromServer, _: &mut Context<Self>) {
        self.on_server_message(msg.0);
    }
}

impl Handler<BeginReload> for PortalSessionHandler {
    type Result = bool;

    fn handle(&mut self, _: BeginReload, _: &mut Context<Self>) -> bool {
        self.reload_requested = true;
        self.tell_all(RELOAD_MESSAGE);
        let sent = self.send_to_server(PortalToServer::Reload);
        if let ServerState::Up { stopping, .. } = &mut self.server {
            *stopping = true;
        }
        sent
    }
}

impl Handler<BeginShutdown> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: BeginShutdown, _: &mut Context<Self>) {
        self.tell_all(&msg.reason);
        self.send_to_server(PortalToServer::Shutdown);
        self.server = ServerState::Away(Away::ShuttingDown);
    }
}

impl Handler<CloseAllSessions> for PortalSessionHandler {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: CloseAllSessions, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.close_waiters.push(tx);
        self.send_to_server(PortalToServer::AllDisconnected);
        // Detached web sessions have no connection left to close.
        self.sessions.retain(|_, s| s.detached.is_none());
        for s in self.sessions.values() {
            s.endpoint.do_send(ToSession::Close {
                reason: msg.reason.clone(),
            });
        }
        self.check_close_waiters();
        Box::pin(
            async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
            }
            .into_actor(self),
        )
    }
}

impl Handler<GetStatus> for PortalSessionHandler {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

/// The endpoint of a session without a connection: what is sent to it is
/// dropped (a detached web session keeps its output in its backlog first).
struct NoConnection;

impl Actor for NoConnection {
    type Context = Context<Self>;
}

impl Handler<ToSession> for NoConnection {
    type Result = ();

    fn handle(&mut self, msg: ToSession, _: &mut Context<Self>) {
        if let ToSession::HandOver(slot) = msg {
            slot.answer(None);
        }
    }
}

impl Handler<PauseInput> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, _: PauseInput, _: &mut Context<Self>) {
        // Input is queued from now on, as during a reload.
        if let ServerState::Up { stopping, .. } = &mut self.server {
            *stopping = true;
        }
    }
}

impl Handler<LinesInFlight> for PortalSessionHandler {
    type Result = usize;

    fn handle(&mut self, _: LinesInFlight, _: &mut Context<Self>) -> usize {
        self.sessions.values().map(|s| s.in_flight.len()).sum()
    }
}

impl Handler<UpgradeRefused> for PortalSessionHandler {
    type Result = ();

    fn handle(&mut self, msg: UpgradeRefused, _: &mut Context<Self>) {
        // Input flows again if it was paused.
        if let ServerState::Up { stopping, .. } = &mut self.server {
            *stopping = false;
        }
        self.upgrade_error = Some(msg.why);
        self.write_status_file();
    }
}

/// How long sessions have to flush their output and answer a handover.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);

impl Handler<BeginHandover> for PortalSessionHandler {
    type Result = ResponseActFuture<Self, HandoverExport>;

    fn handle(&mut self, _: BeginHandover, _: &mut Context<Self>) -> Self::Result {
        if let ServerState::Up { link, .. } = &self.server {
            // The Server reconnects to the next image on the same listener.
            link.do_send(CloseLink);
        }
        self.server = ServerState::Away(Away::HandingOver);
        let mut answers = Vec::new();
        for (sessid, s) in &self.sessions {
            if s.detached.is_none() {
                let (slot, rx) = HandoverSlot::new();
                s.endpoint.do_send(ToSession::HandOver(slot));
                answers.push((*sessid, rx));
            }
        }
        Box::pin(
            async move {
                let answers = answers.into_iter().map(|(sessid, rx)| async move {
                    let answer = tokio::time::timeout(HANDOVER_TIMEOUT, rx)
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten();
                    (sessid, answer)
                });
                futures_util::future::join_all(answers).await
            }
            .into_actor(self)
            .map(|answers, act, _| act.export(answers.into_iter().collect())),
        )
    }
}

impl PortalSessionHandler {
    /// The registry for the next image. A session whose connection moved is
    /// handed over with it; a web session with a resume token waits for its
    /// page; anything else (TLS, a client compressing its input) was told to
    /// reconnect and is left out, so the Server drops it.
    fn export(&mut self, mut moved: HashMap<SessionId, Option<HandedOver>>) -> HandoverExport {
        let mut sessions = Vec::new();
        let mut sockets = Vec::new();
        for (sessid, mut s) in self.sessions.drain() {
            let telnet = match moved.remove(&sessid).flatten() {
                Some((fd, mut telnet)) => {
                    telnet.fd = std::os::fd::AsRawFd::as_raw_fd(&fd);
                    sockets.push(fd);
                    Some(telnet)
                }
                None if s.token.is_some() => None,
                None => {
                    log::info!("session {sessid}: cannot be handed over; left to reconnect");
                    continue;
                }
            };
            s.requeue_in_flight();
            sessions.push(SessionHandover {
                record: s.record,
                released: s.released,
                pending: s.pending.into_iter().map(|q| (q.seq, q.input)).collect(),
                last_seq: s.last_seq,
                token: s.token,
                connection: s.connection,
                telnet,
            });
        }
        log::info!(
            "handing over {} sessions ({} connections)",
            sessions.len(),
            sockets.len()
        );
        HandoverExport {
            epoch: self.epoch,
            started: self.started,
            sessions,
            sockets,
        }
    }
}
