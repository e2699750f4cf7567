//! The Server's own HTTP port (`server.http_addr`): `/metrics` in Prometheus text and
//! `/healthz` as JSON, so a Server on its own host is watched like the Portal.

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use super::handler::{GetHealth, RenderMetrics, ServerSessionHandler};

/// Seconds the HTTP server waits for a scrape in progress when the Server stops.
const SHUTDOWN_SECS: u64 = 1;

async fn metrics(handler: web::Data<Addr<ServerSessionHandler>>) -> HttpResponse {
    crate::actors::metrics_response(handler.send(RenderMetrics).await, "Server")
}

async fn healthz(handler: web::Data<Addr<ServerSessionHandler>>) -> HttpResponse {
    match handler.send(GetHealth).await {
        Ok(health) => HttpResponse::Ok().json(json!({
            "server": "up",
            "pid": std::process::id(),
            "portal_connected": health.portal_connected,
            "sessions": health.sessions,
            "accounts_online": health.accounts_online,
            "puppets": health.puppets,
        })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "server": "stopping" })),
    }
}

/// Serves both pages on `listener`; answers the handle that stops it.
pub fn start(
    listener: std::net::TcpListener,
    handler: Addr<ServerSessionHandler>,
) -> std::io::Result<ServerHandle> {
    let data = web::Data::new(handler);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_SECS)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(handle)
}
