//! The web client's connection: a `WebSocketSession` actor per browser tab,
//! speaking Evennia's webclient protocol (`v1.evennia.com`): every frame is a
//! text frame holding a JSON array `[cmdname, args, kwargs]`.
//!
//! To the `PortalSessionHandler` it is one more session, exactly like a
//! telnet one (same ids, limits and sync data, protocol key `websocket`).
//! Text output is rendered from markup to HTML here. A malformed frame gets
//! an error message back and changes nothing else; a tab that stops
//! answering pings is closed.
//!
//! A connection that goes away leaves its session detached, to be resumed
//! with its token, unless the page ended it with `websocket_close` or the game
//! closed it: a page reload and a closed tab look the same from here (both
//! send a close frame), and only the resume window tells them apart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde_json::{json, Map, Value};

use crate::actors::portal::handler::{
    IssueToken, OpenSession, PortalSessionHandler, ResumeSession, Resumed, SessionClosed,
    SessionDetached, SessionInput, ToSession,
};
use crate::actors::portal::limits::{InputPacer, OutputStall, OUTPUT_CHECK_INTERVAL};
use crate::actors::portal::metrics::PortalMetrics;
use crate::protocols::link::{Input, OobMessage, Output};
use crate::protocols::proxy::TrustedProxies;
use crate::protocols::text::to_html;
use crate::session::{without_controls, ProtocolFlags, SessionId};

/// Shown to a tab closed for sending beyond `portal.max_input_rate`.
const INPUT_FLOOD_MESSAGE: &str = "Your client sent too much too fast; disconnecting.";
/// Shown to a page that got its session back.
pub const RESUMED_MESSAGE: &str = "(Reconnected: you are back in your session.)";
/// Shown before the replay when some of the output sent while the page was
/// away did not fit `portal.websocket_resume_backlog`.
pub const BACKLOG_DROPPED_MESSAGE: &str =
    "(Some earlier output from while you were away is no longer kept.)";

/// The protocol key of web client sessions.
pub const PROTOCOL_KEY: &str = "websocket";
/// Pings per timeout period: a tab gets this many chances to answer.
const PINGS_PER_TIMEOUT: u32 = 3;
/// Output between two pings that measure what the tab has read (see
/// [`WebSocketSession::unread`]); at most a quarter of the limit, so that a tab
/// that reads has the rest of the limit as slack for the pong's round trip.
const PING_EVERY_BYTES: u64 = 64 * 1024;

/// What every tab's connection gets from the settings.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// A tab that has not answered for this long is gone (`portal.websocket_timeout`).
    pub timeout: Duration,
    /// Output a tab may leave unread before it is dropped
    /// (`portal.output_buffer_limit`, as for telnet).
    pub output_buffer_limit: usize,
    /// `portal.max_input_rate`: bytes per second a tab may send after a burst of four
    /// seconds' worth (0: no limit). A websocket cannot be read more slowly, so a tab
    /// beyond it is closed.
    pub max_input_rate: usize,
    /// Take the client's address from `X-Forwarded-For` when these proxies send it
    /// (`portal.websocket_forwarded_for`).
    pub forwarded_for: Option<TrustedProxies>,
    /// Where the bytes each way are counted.
    pub metrics: Arc<PortalMetrics>,
    /// A tab with unread output whose read count stands still this long is closed
    /// (`portal.output_stall_timeout`; `None`: off).
    pub output_stall_timeout: Option<Duration>,
    /// `SO_SNDBUF` of each websocket connection (`portal.socket_send_buffer`; 0: the
    /// kernel's autotuning), set by the web server as it accepts.
    pub socket_send_buffer: usize,
}

/// The largest frame accepted from a browser.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// One decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Input(Input),
    /// The page says it is closing.
    Close,
}

/// Why a frame could not be used; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("messages must be JSON arrays: [cmdname, args, kwargs]")]
    NotAnArray,
    #[error("the first element must be the command name")]
    NoName,
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// Parses one `[cmdname, args, kwargs]` frame.
pub fn parse_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text).map_err(|e| FrameError::Json(e.to_string()))?;
    let Value::Array(parts) = value else {
        return Err(FrameError::NotAnArray);
    };
    let mut parts = parts.into_iter();
    let Some(Value::String(name)) = parts.next() else {
        return Err(FrameError::NoName);
    };
    let args = match parts.next() {
        Some(Value::Array(a)) => a,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other],
    };
    let kwargs = match parts.next() {
        Some(Value::Object(o)) => o,
        _ => Map::new(),
    };
    let name = name.trim().to_lowercase();
    Ok(match name.as_str() {
        "text" => {
            let line = args.first().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            // A browser can send any character. Line breaks become spaces, so a
            // `say` cannot show others a line of its own; other controls go.
            let line = line.unwrap_or_default().replace(['\r', '\n'], " ");
            ClientFrame::Input(Input::Text(without_controls(line)))
        }
        "websocket_close" => ClientFrame::Close,
        _ => ClientFrame::Input(Input::Oob(OobMessage { name, args, kwargs })),
    })
}

/// Encodes one output for the client.
pub fn encode_output(output: &Output) -> Option<String> {
    let value = match output {
        Output::Text(text) => json!(["text", [to_html(text)], {}]),
        Output::Prompt(text) => json!(["prompt", [to_html(text)], {}]),
        // Browsers handle their own input echo.
        Output::Echo(_) => return None,
        Output::Oob(msg) => json!([msg.name, msg.args, msg.kwargs]),
    };
    Some(value.to_string())
}

fn error_frame(text: &str) -> String {
    json!(["text", [to_html(text)], {"type": "error"}]).to_string()
}

/// The limits one tab's connection keeps with it.
#[derive(Debug, Clone, Copy)]
struct Limits {
    timeout: Duration,
    output_buffer_limit: usize,
}

/// One browser tab.
pub struct WebSocketSession {
    sessid: Option<SessionId>,
    /// Which connection of the session this is (a resume makes a new one).
    connection: u64,
    /// The token the page came back with, to resume its session.
    resume: Option<String>,
    /// The page (`websocket_close`) or the game ended the session; otherwise
    /// the connection went away and the session waits for a resume.
    clean_close: bool,
    address: String,
    handler: Addr<PortalSessionHandler>,
    last_heard: Instant,
    /// A tab that has not answered for `limits.timeout` is gone (Evennia has no
    /// such check; its users saw sessions linger for weeks).
    limits: Limits,
    metrics: Arc<PortalMetrics>,
    /// What the tab may send.
    input: InputPacer,
    /// Bytes of text frames written to this tab so far.
    written: u64,
    /// `written` when the last ping went out; each ping carries it.
    pinged_at: u64,
    /// The highest `written` a pong has echoed: the tab has read that far.
    read_up_to: u64,
    /// A look at the tab's reading is scheduled (it has unread output).
    check_due: bool,
    /// Whether `read_up_to` stands still while output is unread.
    stall: OutputStall,
}

impl WebSocketSession {
    pub fn new(
        address: String,
        handler: Addr<PortalSessionHandler>,
        config: &WebSocketConfig,
        resume: Option<String>,
    ) -> Self {
        Self {
            sessid: None,
            connection: 0,
            resume,
            clean_close: false,
            address,
            handler,
            last_heard: Instant::now(),
            limits: Limits {
                timeout: config.timeout,
                output_buffer_limit: config.output_buffer_limit,
            },
            metrics: Arc::clone(&config.metrics),
            input: InputPacer::new(config.max_input_rate, Instant::now()),
            written: 0,
            pinged_at: 0,
            read_up_to: 0,
            check_due: false,
            stall: OutputStall::new(config.output_stall_timeout, Instant::now()),
        }
    }

    /// Output the tab has not read yet, as far as pings can tell: a pong echoes the
    /// byte count its ping carried, and a browser answers a ping only after reading
    /// everything sent before it. The web server's own buffers give no such count.
    fn unread(&self) -> u64 {
        self.written - self.read_up_to
    }

    fn ping(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.pinged_at = self.written;
        ctx.ping(&self.written.to_be_bytes());
    }

    /// Writes one text frame; drops a tab that has left more than the limit unread.
    fn send_text(&mut self, frame: String, ctx: &mut ws::WebsocketContext<Self>) {
        self.written += frame.len() as u64;
        self.metrics.bytes_sent.inc_by(frame.len() as u64);
        ctx.text(frame);
        let ping_every = PING_EVERY_BYTES.min(self.limits.output_buffer_limit as u64 / 4);
        if self.written - self.pinged_at >= ping_every {
            self.ping(ctx);
        }
        if self.unread() > self.limits.output_buffer_limit as u64 {
            log::warn!(
                "websocket session {:?} from {}: {} bytes of output not read; disconnecting",
                self.sessid,
                self.address,
                self.unread()
            );
            ctx.stop();
            return;
        }
        if !std::mem::replace(&mut self.check_due, true) {
            ctx.run_later(OUTPUT_CHECK_INTERVAL, |act, ctx| act.check_output(ctx));
        }
    }

    /// Once a second while output is unread: asks the tab how far it has read, and
    /// closes it once that count has stood still for `portal.output_stall_timeout`.
    fn check_output(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.check_due = false;
        let unread = self.unread();
        // A pong confirms only what its ping asked about: without a ping behind
        // the latest output, a tab that reads it all could never show it.
        if unread > 0 && self.written > self.pinged_at {
            self.ping(ctx);
        }
        if let Some(stalled) = self.stall.observe(unread, self.read_up_to, Instant::now()) {
            log::warn!(
                "websocket session {:?} from {}: output stalled, nothing read for {}s; \
                 {unread} bytes stuck; disconnecting",
                self.sessid,
                self.address,
                stalled.as_secs()
            );
            ctx.stop();
            return;
        }
        if unread > 0 {
            self.check_due = true;
            ctx.run_later(OUTPUT_CHECK_INTERVAL, |act, ctx| act.check_output(ctx));
        }
    }
}

impl WebSocketSession {
    /// Brings a resumed page up to date: the notice, what it missed (oldest
    /// first), then `logged_in` if it is, since a reloaded page starts blank.
    fn replay(&mut self, resumed: Resumed, ctx: &mut ws::WebsocketContext<Self>) {
        let system = |text: &str| json!(["text", [text], {"type": "system"}]).to_string();
        self.send_text(system(RESUMED_MESSAGE), ctx);
        if resumed.replay.dropped {
            self.send_text(system(BACKLOG_DROPPED_MESSAGE), ctx);
        }
        for output in &resumed.replay.outputs {
            if let Some(frame) = encode_output(output) {
                self.send_text(frame, ctx);
            }
        }
        if resumed.logged_in {
            let logged_in = json!(["logged_in", [], {}]).to_string();
            self.send_text(logged_in, ctx);
        }
    }

    /// Gives the page a fresh resume token (the previous one stops working).
    fn send_token(&self, ctx: &mut ws::WebsocketContext<Self>) {
        let Some(sessid) = self.sessid else {
            return;
        };
        ctx.wait(
            self.handler
                .send(IssueToken { sessid })
                .into_actor(self)
                .map(|token, act, ctx| {
                    if let Ok(Some(token)) = token {
                        act.send_text(json!(["session_token", [token], {}]).to_string(), ctx);
                    }
                }),
        );
    }
}

impl Actor for WebSocketSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let flags = ProtocolFlags {
            client_name: Some("gatehouse web client".to_owned()),
            ansi: true,
            xterm256: true,
            truecolor: true,
            oob: true,
            ..ProtocolFlags::default()
        };
        let open = OpenSession {
            protocol_key: PROTOCOL_KEY,
            address: self.address.clone(),
            flags,
            endpoint: ctx.address().recipient(),
        };
        let handler = self.handler.clone();
        let resume = self.resume.take().map(|token| ResumeSession {
            token,
            endpoint: ctx.address().recipient(),
        });
        // Resumed with the page's token if it is still valid, new otherwise.
        // Nothing is read or written until the session is known (output the
        // handler sends meanwhile waits in the mailbox, behind the replay).
        ctx.wait(
            async move {
                if let Some(resume) = resume {
                    if let Ok(Some(resumed)) = handler.send(resume).await {
                        return Some(Opened::Resumed(resumed));
                    }
                }
                handler.send(open).await.ok().map(Opened::New)
            }
            .into_actor(self)
            .map(|opened, act, ctx| {
                match opened {
                    Some(Opened::New(sessid)) => act.sessid = Some(sessid),
                    Some(Opened::Resumed(resumed)) => {
                        act.sessid = Some(resumed.sessid);
                        act.connection = resumed.connection;
                        act.replay(resumed, ctx);
                    }
                    None => {
                        ctx.stop();
                        return;
                    }
                }
                act.send_token(ctx);
            }),
        );
        ctx.run_interval(self.limits.timeout / PINGS_PER_TIMEOUT, |act, ctx| {
            if act.last_heard.elapsed() > act.limits.timeout {
                log::info!(
                    "websocket session {:?} from {}: no answer to pings; closing",
                    act.sessid,
                    act.address
                );
                ctx.stop();
            } else {
                act.ping(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let Some(sessid) = self.sessid else {
            return;
        };
        let connection = self.connection;
        if self.clean_close {
            self.handler.do_send(SessionClosed { sessid, connection });
        } else {
            self.handler.do_send(SessionDetached { sessid, connection });
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WebSocketSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match msg {
            Ok(msg) => msg,
            Err(e) => {
                // An oversized or broken frame: tell the client, close this tab.
                log::info!("websocket session {:?}: {e}", self.sessid);
                ctx.text(error_frame(&format!(
                    "Your client sent a message that could not be read ({e})."
                )));
                ctx.close(Some(ws::CloseCode::Size.into()));
                ctx.stop();
                return;
            }
        };
        if let ws::Message::Text(text) = &msg {
            self.metrics.bytes_received.inc_by(text.len() as u64);
            if !self.input.spend(text.len(), Instant::now()).is_zero() {
                log::warn!(
                    "websocket session {:?} from {}: input beyond portal.max_input_rate; closing",
                    self.sessid,
                    self.address
                );
                ctx.text(error_frame(INPUT_FLOOD_MESSAGE));
                self.clean_close = true;
                ctx.close(Some(ws::CloseCode::Policy.into()));
                ctx.stop();
                return;
            }
        }
        match msg {
            ws::Message::Text(text) => match parse_frame(&text) {
                Ok(ClientFrame::Input(input)) => {
                    if let Some(sessid) = self.sessid {
                        self.handler.do_send(SessionInput { sessid, input });
                    }
                }
                Ok(ClientFrame::Close) => {
                    self.clean_close = true;
                    ctx.close(None);
                    ctx.stop();
                }
                Err(e) => ctx.text(error_frame(&format!("Malformed message: {e}"))),
            },
            ws::Message::Binary(_) => ctx.text(error_frame(
                "Malformed message: binary frames are not understood",
            )),
            ws::Message::Ping(bytes) => ctx.pong(&bytes),
            ws::Message::Pong(bytes) => {
                if let Ok(count) = <[u8; 8]>::try_from(&bytes[..]) {
                    // Never beyond what was written: a pong cannot forge room.
                    let count = u64::from_be_bytes(count).min(self.written);
                    self.read_up_to = self.read_up_to.max(count);
                }
            }
            ws::Message::Nop | ws::Message::Continuation(_) => {}
            ws::Message::Close(reason) => {
                // Whatever the code: a browser sends 1001 for a reload and for
                // a closed tab alike. The session waits out the resume window.
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl Handler<ToSession> for WebSocketSession {
    type Result = ();

    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        match msg {
            ToSession::Output(output) => {
                if let Some(frame) = encode_output(&output) {
                    self.send_text(frame, ctx);
                }
            }
            ToSession::Flags(_) => {}
            ToSession::Close { reason } => {
                self.clean_close = true;
                if !reason.is_empty() {
                    if let Some(frame) = encode_output(&Output::Text(reason)) {
                        ctx.text(frame);
                    }
                }
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            ToSession::HandOver(slot) => {
                // A websocket cannot move to another process: the page comes
                // back with its resume token to the next Portal image.
                slot.answer(None);
                ctx.close(Some(ws::CloseCode::Restart.into()));
                ctx.stop();
            }
        }
    }
}

/// How a connection got its session.
enum Opened {
    New(SessionId),
    Resumed(Resumed),
}

/// `?token=...`: the page comes back to its session.
#[derive(Debug, serde::Deserialize)]
pub struct ResumeQuery {
    token: Option<String>,
}

/// The websocket endpoint: upgrades the request and starts a session.
pub async fn upgrade(
    req: HttpRequest,
    stream: web::Payload,
    handler: web::Data<Addr<PortalSessionHandler>>,
    config: web::Data<WebSocketConfig>,
) -> Result<HttpResponse, actix_web::Error> {
    let address = match (req.peer_addr(), &config.forwarded_for) {
        (Some(peer), Some(proxies)) => {
            let header = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            proxies.forwarded_client(peer.ip(), header).to_string()
        }
        (Some(peer), None) => peer.ip().to_string(),
        (None, _) => "unknown".to_owned(),
    };
    let resume = web::Query::<ResumeQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .filter(|t| !t.is_empty() && t.len() <= 128);
    ws::WsResponseBuilder::new(
        WebSocketSession::new(address, handler.get_ref().clone(), config.get_ref(), resume),
        &req,
        stream,
    )
    .frame_size(MAX_FRAME_BYTES)
    .start()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_into_inputs() {
        assert_eq!(
            parse_frame(r#"["text", ["look"], {}]"#),
            Ok(ClientFrame::Input(Input::Text("look".into())))
        );
        match parse_frame(r#"["echo", ["hi", 2], {"a": 1}]"#) {
            Ok(ClientFrame::Input(Input::Oob(m))) => {
                assert_eq!(m.name, "echo");
                assert_eq!(m.args, vec![json!("hi"), json!(2)]);
                assert_eq!(m.kwargs["a"], json!(1));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_frame(r#"["websocket_close", [], {}]"#),
            Ok(ClientFrame::Close)
        );
        assert_eq!(
            parse_frame(r#"["text"]"#),
            Ok(ClientFrame::Input(Input::Text(String::new())))
        );
    }

    #[test]
    fn a_text_frame_cannot_carry_escapes_or_line_breaks() {
        assert_eq!(
            parse_frame(r#"["text", ["say hi\nAdmin shouts, \"reboot\"\u001b[2J\u009b1m"], {}]"#),
            Ok(ClientFrame::Input(Input::Text(
                "say hi Admin shouts, \"reboot\"[2J1m".into()
            )))
        );
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(
            parse_frame(r#"{"cmd": "look"}"#),
            Err(FrameError::NotAnArray)
        );
        assert_eq!(parse_frame(r#"[1, 2]"#), Err(FrameError::NoName));
        assert!(matches!(parse_frame("not json"), Err(FrameError::Json(_))));
    }

    #[test]
    fn output_is_json_with_html_text() {
        assert_eq!(
            encode_output(&Output::Text("a < b".into())).unwrap(),
            r#"["text",["a &lt; b"],{}]"#
        );
        let oob = OobMessage {
            name: "logged_in".into(),
            args: vec![],
            kwargs: Map::new(),
        };
        assert_eq!(
            encode_output(&Output::Oob(oob)).unwrap(),
            r#"["logged_in",[],{}]"#
        );
        assert_eq!(encode_output(&Output::Echo(true)), None);
    }
}
