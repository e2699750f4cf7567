//! The Portal process: it holds every client connection and survives the
//! Server's reloads and crashes.
//!
//! [`run`] binds the listeners, starts the `PortalSessionHandler`, the link
//! listener and (when supervising) the `ServerProcess`, then turns signals and
//! requests into the reload and shutdown sequences. The Portal holds no game
//! state.

pub mod backlog;
pub mod handler;
pub mod limits;
pub mod link;
pub mod metrics;
pub mod sessid;
pub mod socket;
pub mod supervisor;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
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
use handler::{BeginReload, BeginShutdown, CloseAllSessions, PortalSessionHandler};
use sessid::SessionIdAllocator;
use supervisor::{ExpectReload, RestartNow, ServerCommand, ServerProcess, StopServer};

/// Shown to every player when the game shuts down.
pub const SHUTDOWN_MESSAGE: &str = "Server is being SHUT DOWN!";

/// Requests that reach the Portal's control loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlEvent {
    /// Restart the Server, keeping every session (SIGHUP, CLI, in-game).
    Reload,
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
}

/// How to run the Portal.
pub struct PortalOptions {
    pub game_dir: GameDir,
    pub settings: Settings,
    /// Start and supervise a Server child process (`run`, `start`).
    pub supervise: Option<ServerCommand>,
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

/// Runs the Portal until it is shut down. Call inside an actix `System`.
pub async fn run(options: PortalOptions) -> Result<(), PortalError> {
    let PortalOptions {
        game_dir,
        settings,
        supervise,
    } = options;
    game_dir.prepare()?;

    let link_listener = bind("the Server link", settings.link_socket_addr()?).await?;
    let link_addr = link_listener.local_addr()?;
    let mut telnet_listeners = Vec::new();
    let mut telnet_ports = Vec::new();
    for ip in settings.telnet_interface_addrs()? {
        for &port in &settings.portal.telnet_ports {
            let listener = bind("telnet", SocketAddr::new(ip, port)).await?;
            telnet_ports.push(listener.local_addr()?.port());
            telnet_listeners.push(listener);
        }
    }
    // The acceptor is loaded before any TLS port is bound, so a bad
    // certificate stops the Portal before it listens anywhere for TLS.
    let tls_acceptor = match tls_paths(&settings, &game_dir)? {
        Some((cert, key)) => Some(tls::load_acceptor(&cert, &key)?),
        None => None,
    };
    let mut ssl_listeners = Vec::new();
    let mut ssl_ports = Vec::new();
    if tls_acceptor.is_some() {
        for ip in settings.telnet_interface_addrs()? {
            for &port in &settings.portal.ssl_ports {
                let listener = bind("telnet over TLS", SocketAddr::new(ip, port)).await?;
                ssl_ports.push(listener.local_addr()?.port());
                ssl_listeners.push(listener);
            }
        }
    }
    let http_ip = settings
        .telnet_interface_addrs()?
        .first()
        .copied()
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let web_listener = bind_std(
        "the web page",
        SocketAddr::new(http_ip, settings.portal.web_port),
    )?;
    let websocket_listener = bind_std(
        "the websocket",
        SocketAddr::new(http_ip, settings.portal.websocket_port),
    )?;
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
    let players = handler.player_counter();
    let metrics = handler.metrics();
    let handler = handler.start();
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
        metrics,
        socket_send_buffer: settings.portal.socket_send_buffer,
    });
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
        ServerProcess::new(command).start()
    });

    game_dir.write_pid(PORTAL_PID_FILE, std::process::id())?;
    game_dir.write_ports(&ports)?;
    tasks.push(actix_rt::spawn(forward_signals(control_tx)));

    while let Some(event) = control_rx.recv().await {
        match event {
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

async fn forward_signals(control: mpsc::UnboundedSender<ControlEvent>) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers; use the in-game commands");
        return;
    };
    loop {
        let event = tokio::select! {
            _ = hup.recv() => ControlEvent::Reload,
            _ = term.recv() => ControlEvent::Shutdown { reason: String::new() },
            _ = int.recv() => ControlEvent::Shutdown { reason: String::new() },
        };
        if control.send(event).is_err() {
            return;
        }
    }
}
