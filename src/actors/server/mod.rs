//! The Server process: accounts, the game, the database. It can be stopped
//! and started again at any time while the Portal keeps every player
//! connected.
//!
//! [`run`] opens the database (running migrations), starts the database
//! executor, the `ServerSessionHandler` and the `PortalLink`, then waits for
//! a reason to stop: a reload or shutdown from the Portal, or a signal. Before
//! exiting it syncs every session to the Portal and flushes the link.

pub mod account;
pub mod context;
pub mod handler;
pub mod http;
pub mod link;
pub mod metrics;
pub mod portals;
pub mod receipt;
pub mod rules;
pub mod session;
pub mod throttle;
pub mod world;

use std::sync::Arc;

use actix::prelude::*;
use thiserror::Error;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::actors::db;
use crate::control::{write_atomically, GameDir, SERVER_HTTP_FILE, SERVER_PID_FILE};
use crate::models::{self, DbError};
use crate::settings::{Settings, SettingsError};
use handler::{PrepareStop, ServerSessionHandler};
use link::{FlushAndClose, PortalLink, SetHandler};
use portals::Portals;
use world::World;

/// Why the Server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    Reload,
    Shutdown,
    Signal,
    /// The Portal would not take this Server (version, another Server).
    Refused,
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("cannot write to the game dir: {0}")]
    GameDir(#[from] std::io::Error),
    #[error("the Portal refused this Server; see the log above")]
    Refused,
    #[error("server.link_tls_ca: {0}")]
    Tls(#[from] crate::protocols::tls::TlsError),
}

/// Opens the configured database, applies pending migrations, and opens the
/// writer's pool beside the readers'.
pub fn open_database(game_dir: &GameDir, settings: &Settings) -> Result<db::DbPools, ServerError> {
    let target = settings.database_target(game_dir.root())?;
    let pool = models::open_pool(&target, settings.database.pool_size)?;
    let applied = models::run_migrations(&pool)?;
    if applied > 0 {
        log::info!("applied {applied} database migration(s) to {target}");
    }
    let write = models::open_write_pool(&target, &pool, settings.database.write_timeout())?;
    Ok(db::DbPools { read: pool, write })
}

/// Runs the Server until it is told to stop. Call inside an actix `System`.
pub async fn run(game_dir: GameDir, settings: Settings) -> Result<StopRequest, ServerError> {
    game_dir.prepare()?;
    let pools = open_database(&game_dir, &settings)?;
    let portal_addrs = settings.portal_link_addrs()?;
    let settings = Arc::new(settings);
    let threads = usize::try_from(settings.database.pool_size).unwrap_or(1);
    let metrics = metrics::ServerMetrics::new();
    let db = db::start(
        pools,
        threads,
        settings.database.write_timeout(),
        Arc::clone(&metrics),
    );

    let (stop_tx, mut stop_rx) = mpsc::unbounded_channel();
    let tls = match &settings.server.link_tls_ca {
        Some(ca) => Some(crate::protocols::tls::load_connector(
            &game_dir.root().join(ca),
        )?),
        None => None,
    };
    let links: Vec<Addr<PortalLink>> = portal_addrs
        .into_iter()
        .map(|addr| PortalLink::new(addr, settings.portal.link_secret.clone(), tls.clone()).start())
        .collect();
    let portals = Portals::default();
    let world = World::new(portals.clone(), db.clone())
        .save_every(settings.database.save_interval())
        .start();
    let handler = ServerSessionHandler::new(
        Arc::clone(&settings),
        portals,
        db,
        world,
        stop_tx.clone(),
        metrics,
        links.len(),
    )
    .start();
    let http = match settings.server_http_addr()? {
        Some(addr) => start_http(&game_dir, addr, handler.clone()),
        None => None,
    };
    for link in &links {
        link.do_send(SetHandler(handler.clone()));
    }
    game_dir.write_pid(SERVER_PID_FILE, std::process::id())?;
    let signals = actix_rt::spawn(forward_signals(stop_tx));

    let reason = stop_rx.recv().await.unwrap_or(StopRequest::Signal);
    log::info!("Server stopping: {reason:?}");
    if reason != StopRequest::Refused {
        let _ = handler.send(PrepareStop).await;
    }
    for link in &links {
        let _ = link.send(FlushAndClose).await;
    }
    signals.abort();
    if let Some(http) = http {
        http.stop(true).await;
        game_dir.remove_run_file(SERVER_HTTP_FILE);
    }
    game_dir.remove_run_file(SERVER_PID_FILE);
    if reason == StopRequest::Refused {
        return Err(ServerError::Refused);
    }
    Ok(reason)
}

/// Serves `/metrics` and `/healthz` on `addr`. They are for operators: a port that is
/// taken costs them (with an error in the log), never the game.
fn start_http(
    game_dir: &GameDir,
    addr: std::net::SocketAddr,
    handler: Addr<ServerSessionHandler>,
) -> Option<actix_web::dev::ServerHandle> {
    let started = std::net::TcpListener::bind(addr).and_then(|listener| {
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        write_atomically(&game_dir.run_file(SERVER_HTTP_FILE), &format!("{bound}\n"))?;
        log::info!("metrics and health on http://{bound}/metrics and /healthz");
        http::start(listener, handler)
    });
    match started {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::error!("server.http_addr {addr}: {e}; no /metrics or /healthz for the Server");
            None
        }
    }
}

async fn forward_signals(stop: mpsc::UnboundedSender<StopRequest>) {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = stop.send(StopRequest::Signal);
}
