//! The Portal's HTTP side: the websocket endpoint on `portal.websocket_port`,
//! and on `portal.web_port` the web client page (`/`: one document with its
//! script and style inlined, built into the binary: no CDN, no second
//! request) and `/healthz`, served by actix-web.
//!
//! It only routes: websocket sessions are `WebSocketSession` actors that
//! register with the `PortalSessionHandler` like telnet sessions, and the
//! health answer comes from the handler's status.

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use super::handler::{GetStatus, PortalSessionHandler, RenderMetrics};
use super::socket;
use crate::protocols::websocket;

/// How long a stopping HTTP server waits for its connections.
const SHUTDOWN_SECS: u64 = 1;

const INDEX_HTML: &str = include_str!("../../protocols/webclient/index.html");
const CLIENT_JS: &str = include_str!("../../protocols/webclient/client.js");
const CLIENT_CSS: &str = include_str!("../../protocols/webclient/client.css");

/// What the page needs to know: the game's name and where the websocket is.
#[derive(Clone)]
struct PageInfo {
    index: String,
}

impl PageInfo {
    fn new(game_name: &str, websocket_port: u16) -> Self {
        let escaped = game_name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;");
        Self {
            index: INDEX_HTML
                .replace("{{CLIENT_CSS}}", CLIENT_CSS)
                .replace("{{CLIENT_JS}}", CLIENT_JS)
                .replace("{{GAME_NAME}}", &escaped)
                .replace("{{WEBSOCKET_PORT}}", &websocket_port.to_string()),
        }
    }
}

async fn index(page: web::Data<PageInfo>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page.index.clone())
}

/// Prometheus (OpenMetrics) text: sessions by protocol and state, logins, commands,
/// bytes each way, the link, Server restarts and the queues.
async fn metrics(handler: web::Data<Addr<PortalSessionHandler>>) -> HttpResponse {
    crate::actors::metrics_response(handler.send(RenderMetrics).await, "Portal")
}

async fn healthz(handler: web::Data<Addr<PortalSessionHandler>>) -> HttpResponse {
    match handler.send(GetStatus).await {
        Ok(status) => HttpResponse::Ok().json(json!({
            "portal": "up",
            "server_connected": status.server_connected,
            "sessions": status.sessions,
            "logged_in": status.logged_in,
        })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "portal": "stopping" })),
    }
}

/// Bounds an accepted websocket connection's kernel send buffer, as for telnet.
fn bound_send_buffer(connection: &dyn std::any::Any, bytes: usize) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    if let Err(e) = socket::bound_send_buffer(stream, bytes) {
        log::debug!("websocket: cannot set SO_SNDBUF: {e}");
    }
}

/// Starts both HTTP servers on already bound listeners; answers their
/// handles, for a clean stop.
pub fn start(
    web_listener: std::net::TcpListener,
    websocket_listener: std::net::TcpListener,
    handler: Addr<PortalSessionHandler>,
    game_name: &str,
    websocket_limits: websocket::WebSocketConfig,
) -> std::io::Result<Vec<ServerHandle>> {
    let send_buffer = websocket_limits.socket_send_buffer;
    let limits = web::Data::new(websocket_limits);
    let page = web::Data::new(PageInfo::new(
        game_name,
        websocket_listener.local_addr()?.port(),
    ));
    let data = web::Data::new(handler);
    let ws_data = data.clone();
    let websocket_server = HttpServer::new(move || {
        App::new()
            .app_data(ws_data.clone())
            .app_data(limits.clone())
            .route("/", web::get().to(websocket::upgrade))
            .route("/websocket", web::get().to(websocket::upgrade))
    })
    .on_connect(move |connection, _| bound_send_buffer(connection, send_buffer))
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_SECS)
    .listen(websocket_listener)?
    .run();
    let web_server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(page.clone())
            .route("/", web::get().to(index))
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_SECS)
    .listen(web_listener)?
    .run();
    let handles = vec![websocket_server.handle(), web_server.handle()];
    actix_rt::spawn(websocket_server);
    actix_rt::spawn(web_server);
    Ok(handles)
}
