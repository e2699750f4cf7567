//! The Portal process: it holds every client connection and survives the
//! Server's reloads and crashes.
//!
//! [`run`] binds the listeners, starts the `PortalSessionHandler`, the link
//! listener and (when supervising) the `ServerProcess`, then turns signals and
//! requests into the reload and shutdown sequences. The Portal holds no game
//! state.

pub mod backlog;
pub mod handler;
pub mod handover;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod sessid;
pub mod socket;
pub mod supervisor;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::prelude::*;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::control::{BoundPorts, GameDir, PORTAL_PID_FILE, PORTS_FILE, SESSID_FILE, STATUS_FILE};
use crate::protocols::telnet::mssp::MsspInfo;
use crate::protocols::telnet::{self, TelnetConfig, TelnetSessionLimits};
use crate::protocols::tls::{self, TlsError};
use crate::protocols::websocket::WebSocketConfig;
use crate::session::now_millis;
use crate::settings::{Settings, SettingsError};
use handler::{
    AdoptedSession, BeginHandover, BeginReload, BeginShutdown, CloseAllSessions, LinesInFlight,
    PauseInput, PortalSessionHandler, UpgradeRefused,
};
use handover::{HandoverState, ListenerFds, HANDOVER_ENV, HANDOVER_FILE};
use sessid::SessionIdAllocator;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use supervisor::{ExpectReload, RestartNow, ServerCommand, ServerPid, ServerProcess, StopServer};

/// Shown to every player when the game shuts down.
pub const SHUTDOWN_MESSAGE: &str = "Server is being SHUT DOWN!";

/// Requests that reach the Portal's control loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Restart the Server, keeping every session (SIGHUP, CLI, in-game).
    Reload,
    /// Replace this Portal's binary with the one on disk, keeping every
    /// connection (SIGUSR2, `gatehouse upgrade`).
    Upgrade,
    /// Stop the Server and the Portal (SIGTERM, SIGINT, in-game).
    Shutdown { reason: String },
}

#[derive(Debug, Error)]
pub enum PortalError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot write to the game dir: {0}")]
    GameDir(#[from] std::io::Error),
    #[error("cannot take over from the previous Portal: {0}")]
    Handover(String),
}

/// How to run the Portal.
pub struct PortalOptions {
    pub game_dir: GameDir,
    pub settings: Settings,
    /// Start and supervise a Server child process (`run`, `start`).
    pub supervise: Option<ServerCommand>,
    /// The binary to upgrade to (the path this one was started from) and the
    /// arguments to start it with.
    pub program: PathBuf,
    pub args: Vec<std::ffi::OsString>,
}

/// Every listening socket of the Portal.
struct Listeners {
    link: TcpListener,
    telnet: Vec<TcpListener>,
    ssl: Vec<TcpListener>,
    web: std::net::TcpListener,
    websocket: std::net::TcpListener,
}

impl Listeners {
    /// The sockets the previous image handed over.
    fn adopt(fds: &ListenerFds) -> Result<Self, PortalError> {
        let tokio_listener = |fd| -> Result<TcpListener, PortalError> {
            Ok(TcpListener::from_std(std_listener(fd)?)?)
        };
        Ok(Self {
            link: tokio_listener(fds.link)?,
            telnet: fds
                .telnet
                .iter()
                .map(|&fd| tokio_listener(fd))
                .collect::<Result<_, _>>()?,
            ssl: fds
                .ssl
                .iter()
                .map(|&fd| tokio_listener(fd))
                .collect::<Result<_, _>>()?,
            web: std_listener(fds.web)?,
            websocket: std_listener(fds.websocket)?,
        })
    }

    /// Duplicates of every socket, kept for a handover: the originals belong to
    /// the accept loops and the web servers.
    fn duplicates(&self) -> Result<KeptListeners, PortalError> {
        let dup = |fd: BorrowedFd<'_>| handover::duplicate(fd).map_err(handover_error);
        Ok(KeptListeners {
            link: dup(self.link.as_fd())?,
            telnet: self
                .telnet
                .iter()
                .map(|l| dup(l.as_fd()))
                .collect::<Result<_, _>>()?,
            ssl: self
                .ssl
                .iter()
                .map(|l| dup(l.as_fd()))
                .collect::<Result<_, _>>()?,
            web: dup(self.web.as_fd())?,
            websocket: dup(self.websocket.as_fd())?,
        })
    }
}

/// The listening sockets as the next image will find them.
struct KeptListeners {
    link: OwnedFd,
    telnet: Vec<OwnedFd>,
    ssl: Vec<OwnedFd>,
    web: OwnedFd,
    websocket: OwnedFd,
}

impl KeptListeners {
    fn fds(&self) -> ListenerFds {
        ListenerFds {
            link: self.link.as_raw_fd(),
            telnet: self.telnet.iter().map(AsRawFd::as_raw_fd).collect(),
            ssl: self.ssl.iter().map(AsRawFd::as_raw_fd).collect(),
            web: self.web.as_raw_fd(),
            websocket: self.websocket.as_raw_fd(),
        }
    }
}

/// A handed-over listening socket, closed on exec again and non-blocking.
fn std_listener(fd: RawFd) -> Result<std::net::TcpListener, PortalError> {
    handover::close_on_exec(fd).map_err(handover_error)?;
    // SAFETY: the previous image handed this descriptor over for exactly this,
    // and nothing else in this process owns it.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn handover_error(e: handover::HandoverError) -> PortalError {
    PortalError::Handover(e.to_string())
}

/// The certificate and key paths when telnet over TLS is configured, resolved
/// against the game dir. Setting only one of the two is a mistake, not a way
/// to turn TLS off.
fn tls_paths(
    settings: &Settings,
    game_dir: &GameDir,
) -> Result<Option<(PathBuf, PathBuf)>, SettingsError> {
    let missing = |key: &str, other: &str| SettingsError::Invalid {
        key: key.to_owned(),
        message: format!("is required when {other} is set (telnet over TLS needs both)"),
    };
    match (&settings.portal.tls_cert, &settings.portal.tls_key) {
        (Some(cert), Some(key)) => Ok(Some((
            game_dir.root().join(cert),
            game_dir.root().join(key),
        ))),
        (Some(_), None) => Err(missing("portal.tls_key", "portal.tls_cert")),
        (None, Some(_)) => Err(missing("portal.tls_cert", "portal.tls_key")),
        (None, None) => Ok(None),
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, PortalError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| PortalError::Bind { what, addr, source })
}

/// Binds a listener for actix-web, which takes std listeners.
fn bind_std(what: &'static str, addr: SocketAddr) -> Result<std::net::TcpListener, PortalError> {
    std::net::TcpListener::bind(addr).map_err(|source| PortalError::Bind { what, addr, source })
}

/// Binds every listener the settings name.
async fn bind_all(settings: &Settings, tls: bool) -> Result<Listeners, PortalError> {
    let link = bind("the Server link", settings.link_socket_addr()?).await?;
    let mut telnet = Vec::new();
    for ip in settings.telnet_interface_addrs()? {
        for &port in &settings.portal.telnet_ports {
            telnet.push(bind("telnet", SocketAddr::new(ip, port)).await?);
        }
    }
    let mut ssl = Vec::new();
    if tls {
        for ip in settings.telnet_interface_addrs()? {
            for &port in &settings.portal.ssl_ports {
                ssl.push(bind("telnet over TLS", SocketAddr::new(ip, port)).await?);
            }
        }
    }
    let http_ip = settings
        .telnet_interface_addrs()?
        .first()
        .copied()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let web = bind_std(
        "the web page",
        SocketAddr::new(http_ip, settings.portal.web_port),
    )?;
    let websocket = bind_std(
        "the websocket",
        SocketAddr::new(http_ip, settings.portal.websocket_port),
    )?;
    Ok(Listeners {
        link,
        telnet,
        ssl,
        web,
        websocket,
    })
}

/// Runs the Portal until it is shut down. Call inside an actix `System`.
pub async fn run(options: PortalOptions) -> Result<(), PortalError> {
    let PortalOptions {
        game_dir,
        settings,
        supervise,
        program,
        args,
    } = options;
    game_dir.prepare()?;

    // After an upgrade in place, the previous image's state and sockets.
    let inherited: Option<HandoverState> = match std::env::var_os(HANDOVER_ENV) {
        Some(path) => {
            std::env::remove_var(HANDOVER_ENV);
            Some(handover::take_state(Path::new(&path)).map_err(handover_error)?)
        }
        None => None,
    };
    // The acceptor is loaded before any TLS port is bound, so a bad
    // certificate stops the Portal before it listens anywhere for TLS.
    let tls_acceptor = match tls_paths(&settings, &game_dir)? {
        Some((cert, key)) => Some(tls::load_acceptor(&cert, &key)?),
        None => None,
    };
    let listeners = match &inherited {
        Some(state) => Listeners::adopt(&state.listeners)?,
        None => bind_all(&settings, tls_acceptor.is_some()).await?,
    };
    let kept = listeners.duplicates()?;
    let Listeners {
        link: link_listener,
        telnet: telnet_listeners,
        ssl: ssl_listeners,
        web: web_listener,
        websocket: websocket_listener,
    } = listeners;
    let link_addr = link_listener.local_addr()?;
    let telnet_ports = telnet_listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()?;
    let ssl_ports = ssl_listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()?;
    let ports = BoundPorts {
        telnet: telnet_ports,
        ssl: ssl_ports,
        link: link_addr.to_string(),
        web: web_listener.local_addr()?.port(),
        websocket: websocket_listener.local_addr()?.port(),
    };
    log::info!(
        "Portal listening: telnet {:?}, telnet over TLS {:?}, web {}, websocket {}, Server link {}",
        ports.telnet,
        ports.ssl,
        ports.web,
        ports.websocket,
        ports.link
    );

    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    let ids = SessionIdAllocator::persistent(&game_dir.run_file(SESSID_FILE))
        .for_portal(settings.portal.id);
    let handler = PortalSessionHandler::new(
        settings.clone(),
        ids,
        control_tx.clone(),
        Some(game_dir.run_file(STATUS_FILE)),
    );
    let mut handler = handler;
    let players = handler.player_counter();
    let metrics = handler.metrics();
    let telnet_config = Arc::new(TelnetConfig {
        max_command_rate: settings.portal.max_command_rate,
        default_size: (
            settings.client.default_width,
            settings.client.default_height,
        ),
        limits: TelnetSessionLimits {
            max_line_chars: settings.portal.max_char_limit,
            output_buffer_limit: settings.portal.output_buffer_limit,
            output_stall_timeout: settings.output_stall_timeout(),
            max_input_rate: settings.portal.max_input_rate,
        },
        mssp: MsspInfo {
            name: settings.server.name.clone(),
            players: 0,
            uptime: now_millis() / 1000,
            // Crawlers take the last port as the main one.
            ports: ports.telnet.iter().rev().copied().collect(),
            codebase: format!("gatehouse {}", env!("CARGO_PKG_VERSION")),
            // The first is advertised as SSL: the first one configured.
            ssl_ports: ports.ssl.clone(),
            gmcp: true,
            msdp: true,
        },
        players,
        metrics: Arc::clone(&metrics),
        socket_send_buffer: settings.portal.socket_send_buffer,
    });
    // The handler's address exists before it runs, so handed-over connections
    // can be given it while the registry is filled.
    let handler_context = Context::new();
    let handler_addr = handler_context.address();
    let mut server_pid = None;
    if let Some(state) = inherited {
        let sessions = adopt_sessions(state.sessions, &handler_addr, &telnet_config);
        log::info!(
            "took over from the previous Portal: {} sessions, Server pid {:?}",
            sessions.len(),
            state.server_pid
        );
        handler.adopt(
            state.portal_epoch,
            state.portal_started,
            state.upgraded,
            sessions,
        );
        server_pid = state.server_pid;
    }
    let handler = handler_context.run(handler);
    let http = web::start(
        web_listener,
        websocket_listener,
        handler.clone(),
        &settings.server.name,
        WebSocketConfig {
            timeout: std::time::Duration::from_secs(settings.portal.websocket_timeout),
            output_buffer_limit: settings.portal.output_buffer_limit,
            max_input_rate: settings.portal.max_input_rate,
            forwarded_for: settings
                .portal
                .websocket_forwarded_for
                .then(|| settings.trusted_proxies())
                .transpose()?,
            metrics: Arc::clone(&metrics),
            output_stall_timeout: settings.output_stall_timeout(),
            socket_send_buffer: settings.portal.socket_send_buffer,
        },
    )?;

    let mut tasks = Vec::new();
    let link_tls = match (&tls_acceptor, settings.portal.link_tls) {
        (Some(acceptor), true) => Some(acceptor.clone()),
        (None, true) => {
            return Err(SettingsError::Invalid {
                key: "portal.link_tls".to_owned(),
                message: "needs portal.tls_cert and portal.tls_key (the link uses the same \
                          certificate)"
                    .to_owned(),
            }
            .into())
        }
        (_, false) => None,
    };
    tasks.push(actix_rt::spawn(link::accept_servers(
        link_listener,
        handler.clone(),
        settings.portal.link_secret.clone(),
        link_tls,
    )));
    let proxies = settings.trusted_proxies()?;
    let behind = |on: bool| on.then(|| proxies.clone());
    for listener in telnet_listeners {
        tasks.push(actix_rt::spawn(telnet::accept_clients(
            listener,
            handler.clone(),
            Arc::clone(&telnet_config),
            behind(settings.portal.telnet_proxy_protocol),
        )));
    }
    if let Some(acceptor) = tls_acceptor {
        for listener in ssl_listeners {
            tasks.push(actix_rt::spawn(tls::accept_tls_clients(
                listener,
                acceptor.clone(),
                handler.clone(),
                Arc::clone(&telnet_config),
                behind(settings.portal.ssl_proxy_protocol),
            )));
        }
    }

    let supervisor = supervise.map(|mut command| {
        // The Server must find the link where it really is (port 0 → a real port).
        command.env.push((
            "GATEHOUSE__PORTAL__LINK_ADDR".into(),
            link_addr.to_string().into(),
        ));
        match server_pid {
            Some(pid) => ServerProcess::adopt(command, pid).start(),
            None => ServerProcess::new(command).start(),
        }
    });

    game_dir.write_pid(PORTAL_PID_FILE, std::process::id())?;
    game_dir.write_ports(&ports)?;
    tasks.push(actix_rt::spawn(forward_signals(control_tx)));

    while let Some(event) = control_rx.recv().await {
        match event {
            ControlEvent::Upgrade => {
                let candidate = program.clone();
                let checked =
                    tokio::task::spawn_blocking(move || handover::check_candidate(&candidate))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                if let Err(why) = checked {
                    log::error!("upgrade refused: {why}");
                    handler.do_send(UpgradeRefused { why });
                    continue;
                }
                log::info!("upgrading the Portal to {}", program.display());
                let why = hand_over(
                    &handler,
                    supervisor.as_ref(),
                    &mut tasks,
                    &kept,
                    &game_dir,
                    &program,
                    &args,
                )
                .await;
                // Only a failed exec comes back here, with every session gone.
                log::error!("the upgrade failed after the handover: {why}; stopping");
                break;
            }
            ControlEvent::Reload => {
                log::info!("reloading the Server");
                if let Some(sup) = &supervisor {
                    sup.do_send(ExpectReload);
                }
                let reached = handler.send(BeginReload).await.unwrap_or(false);
                if !reached {
                    if let Some(sup) = &supervisor {
                        sup.do_send(RestartNow);
                    }
                }
            }
            ControlEvent::Shutdown { reason } => {
                if reason.is_empty() {
                    log::info!("shutting down");
                } else {
                    log::info!("shutting down: {reason}");
                }
                let text = if reason.is_empty() {
                    SHUTDOWN_MESSAGE.to_owned()
                } else {
                    format!("{SHUTDOWN_MESSAGE} {reason}")
                };
                let _ = handler
                    .send(BeginShutdown {
                        reason: text.clone(),
                    })
                    .await;
                if let Some(sup) = &supervisor {
                    let _ = sup.send(StopServer).await;
                }
                let _ = handler
                    .send(CloseAllSessions {
                        reason: String::new(),
                    })
                    .await;
                break;
            }
        }
    }
    for server in http {
        server.stop(true).await;
    }
    for task in tasks {
        task.abort();
    }
    game_dir.remove_run_file(PORTAL_PID_FILE);
    game_dir.remove_run_file(PORTS_FILE);
    game_dir.remove_run_file(STATUS_FILE);
    log::info!("Portal stopped");
    Ok(())
}

/// The signals the control loop handles.
fn control_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    set
}

async fn forward_signals(control: mpsc::UnboundedSender<ControlEvent>) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        log::error!("cannot install signal handlers; use the in-game commands");
        return;
    };
    // Blocked by the previous image across an upgrade's exec; any that came
    // meanwhile is delivered now.
    if let Err(e) = control_signals().thread_unblock() {
        log::warn!("cannot unblock the control signals: {e}");
    }
    loop {
        let event = tokio::select! {
            _ = hup.recv() => ControlEvent::Reload,
            _ = term.recv() => ControlEvent::Shutdown { reason: String::new() },
            _ = int.recv() => ControlEvent::Shutdown { reason: String::new() },
            _ = usr2.recv() => ControlEvent::Upgrade,
        };
        if control.send(event).is_err() {
            return;
        }
    }
}

/// Starts a connection actor for each handed-over telnet connection; a web
/// session waits for its page.
fn adopt_sessions(
    sessions: Vec<handover::SessionHandover>,
    handler: &Addr<PortalSessionHandler>,
    config: &Arc<TelnetConfig>,
) -> Vec<AdoptedSession> {
    sessions
        .into_iter()
        .filter_map(|state| {
            let endpoint = match &state.telnet {
                Some(telnet) => match adopt_stream(telnet.fd) {
                    Ok(stream) => Some(
                        telnet::TelnetSession::adopt(
                            stream,
                            telnet,
                            &state.record,
                            handler.clone(),
                            Arc::clone(config),
                        )
                        .recipient(),
                    ),
                    Err(e) => {
                        log::warn!("session {}: {e}; dropped", state.record.sessid);
                        return None;
                    }
                },
                None => None,
            };
            Some(AdoptedSession { state, endpoint })
        })
        .collect()
}

/// A handed-over client socket, closed on exec again and non-blocking.
fn adopt_stream(fd: RawFd) -> Result<tokio::net::TcpStream, PortalError> {
    handover::close_on_exec(fd).map_err(handover_error)?;
    // SAFETY: the previous image handed this descriptor over for this session.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    stream.set_nonblocking(true)?;
    Ok(tokio::net::TcpStream::from_std(stream)?)
}

/// How long a handover waits for the Server to finish the lines it has.
const HANDOVER_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The upgrade in place: input is held and the Server's lines finish, the
/// accept loops stop (their sockets stay open in `kept`), every session hands
/// its connection over, the state is written, and the binary is exec'd. Returns
/// only if the exec failed, with why.
async fn hand_over(
    handler: &Addr<PortalSessionHandler>,
    supervisor: Option<&Addr<ServerProcess>>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    kept: &KeptListeners,
    game_dir: &GameDir,
    program: &Path,
    args: &[std::ffi::OsString],
) -> String {
    let _ = handler.send(PauseInput).await;
    let settle_until = std::time::Instant::now() + HANDOVER_SETTLE;
    while handler.send(LinesInFlight).await.unwrap_or(0) > 0
        && std::time::Instant::now() < settle_until
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for task in tasks.drain(..) {
        task.abort();
    }
    let export = match handler.send(BeginHandover).await {
        Ok(export) => export,
        Err(e) => return e.to_string(),
    };
    let server_pid = match supervisor {
        Some(sup) => sup.send(ServerPid).await.ok().flatten(),
        None => None,
    };
    let state = HandoverState {
        version: handover::HANDOVER_VERSION,
        portal_epoch: export.epoch,
        portal_started: export.started,
        upgraded: now_millis(),
        listeners: kept.fds(),
        server_pid,
        sessions: export.sessions,
    };
    let path = game_dir.run_file(HANDOVER_FILE);
    let prepared = state
        .listeners
        .all()
        .into_iter()
        .chain(export.sockets.iter().map(AsRawFd::as_raw_fd))
        .try_for_each(handover::keep_across_exec)
        .and_then(|()| handover::write_state(&path, &state));
    if let Err(e) = prepared {
        return e.to_string();
    }
    // A control signal in the instant between the exec and the new image's
    // handlers would kill the process: it waits, blocked, for the new image.
    let _ = control_signals().thread_block();
    let failed = handover::exec(program, args, &path);
    log::error!(
        "cannot exec {}: {failed}; going back to this binary",
        program.display()
    );
    // The running image is still on disk as /proc/self/exe even if its file was
    // replaced: it takes the state back.
    let again = handover::exec(Path::new("/proc/self/exe"), args, &path);
    drop(export.sockets);
    format!("{failed}; and the running binary: {again}")
}
