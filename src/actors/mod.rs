//! Every actor of both processes: the Portal's (connections, link listener,
//! Server supervisor), the Server's (sessions, accounts, link client) and the
//! database executor, plus the socket write queue they share.

pub mod db;
pub mod outbound;
pub mod portal;
pub mod server;

/// Mailbox size of the actors every session's traffic passes through (the
/// session handlers and the link ends). Bursts wait in the mailbox instead of
/// making `send` callers wait; `do_send` is never limited.
pub const HUB_MAILBOX_CAPACITY: usize = 1 << 20;

/// A `/metrics` answer for either process: the page a session handler rendered, or
/// 503 when `process` ("Portal", "Server") is stopping and its handler is gone.
pub fn metrics_response(
    page: Result<String, actix::MailboxError>,
    process: &str,
) -> actix_web::HttpResponse {
    match page {
        Ok(page) => actix_web::HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(page),
        Err(_) => actix_web::HttpResponse::ServiceUnavailable()
            .body(format!("the {process} is stopping\n")),
    }
}
