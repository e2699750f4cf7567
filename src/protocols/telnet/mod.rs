//! Telnet: the sans-IO state machine ([`parser`]) and the `TelnetSession` actor
//! that wires it to one TCP connection.
//!
//! The actor turns socket bytes into lines for the `PortalSessionHandler` and
//! the handler's output into telnet bytes. It holds no game state; a session
//! that misbehaves (overlong lines, a client that never reads) costs only its
//! own connection.

pub mod mccp;
pub mod parser;

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

use crate::actors::outbound::Outbound;
use crate::actors::portal::handler::{
    OpenSession, PortalSessionHandler, SessionClosed, SessionInput, ToSession,
};
use crate::actors::portal::limits::MAX_CHAR_LIMIT_WARNING;
use crate::protocols::link::{Input, Output};
use crate::session::{ProtocolFlags, SessionId};
use parser::{
    encode_output, Encoding, TelnetError, TelnetEvent, TelnetLimits, TelnetParser, OPT_ECHO,
};

/// The protocol key sessions of this kind carry.
pub const PROTOCOL_KEY: &str = "telnet";
/// Longest subnegotiation accepted before it is refused (NAWS and TTYPE are a
/// few bytes; GMCP payloads are larger).
pub const MAX_SUBNEGOTIATION_BYTES: usize = 64 * 1024;
/// The answer to a web browser that opened the telnet port.
pub const HTTP_ON_TELNET: &str =
    "This is a telnet port for MUD clients, not a web page. Connect with a MUD client or telnet.";
/// How long a closing session waits for its last output to be written.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Limits a telnet session enforces itself.
#[derive(Debug, Clone, Copy)]
pub struct TelnetSessionLimits {
    pub max_line_chars: usize,
    pub output_buffer_limit: usize,
}

/// One telnet connection.
pub struct TelnetSession {
    sessid: Option<SessionId>,
    peer: SocketAddr,
    handler: Addr<PortalSessionHandler>,
    parser: TelnetParser,
    encoding: Encoding,
    limits: TelnetSessionLimits,
    out: Option<Outbound>,
    writer: Option<JoinHandle<()>>,
    events: Vec<TelnetEvent>,
    /// No line has arrived yet: the first one is checked for a stray HTTP request.
    first_line: bool,
}

impl TelnetSession {
    /// Starts the actor for an accepted connection.
    pub fn start(
        stream: TcpStream,
        peer: SocketAddr,
        handler: Addr<PortalSessionHandler>,
        limits: TelnetSessionLimits,
    ) -> Addr<Self> {
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("telnet {peer}: cannot set TCP_NODELAY: {e}");
        }
        Self::create(move |ctx| {
            let (read, write) = stream.into_split();
            ctx.add_stream(ReaderStream::new(read));
            let (out, writer) = Outbound::spawn(write);
            let mut parser = TelnetParser::new(TelnetLimits {
                max_line_chars: limits.max_line_chars,
                max_subnegotiation_bytes: MAX_SUBNEGOTIATION_BYTES,
            });
            parser.support_local(OPT_ECHO);
            Self {
                sessid: None,
                peer,
                handler,
                parser,
                encoding: Encoding::Utf8,
                limits,
                out: Some(out),
                writer: Some(writer),
                events: Vec::new(),
                first_line: true,
            }
        })
    }

    fn write(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        let Some(out) = &self.out else {
            return;
        };
        match out.send(bytes) {
            Ok(queued) if queued > self.limits.output_buffer_limit => {
                log::warn!(
                    "telnet session {:?} from {}: {queued} bytes of output not read; disconnecting",
                    self.sessid,
                    self.peer
                );
                // The client does not read: nothing more will get through,
                // so the writer and its buffer go now, and the socket with them.
                self.out = None;
                if let Some(writer) = self.writer.take() {
                    writer.abort();
                }
                ctx.stop();
            }
            Ok(_) => {}
            Err(_) => ctx.stop(),
        }
    }

    fn write_text(&mut self, text: &str, line_end: bool, ctx: &mut Context<Self>) {
        let mut buf = BytesMut::with_capacity(text.len() + 2);
        encode_output(text, self.encoding, &mut buf);
        if line_end && !text.ends_with('\n') {
            buf.extend_from_slice(b"\r\n");
        }
        self.write(buf.freeze(), ctx);
    }

    fn close(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if !reason.is_empty() {
            self.write_text(reason, true, ctx);
        }
        // Dropping the queue lets the writer finish and shut the socket down.
        self.out = None;
        let writer = self.writer.take();
        ctx.wait(
            async move {
                if let Some(writer) = writer {
                    finish_writer(writer).await;
                }
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }

    fn on_event(&mut self, event: TelnetEvent, ctx: &mut Context<Self>) {
        match event {
            TelnetEvent::Line(line) => {
                if std::mem::take(&mut self.first_line) && is_http_request(&line) {
                    log::info!(
                        "telnet {}: an HTTP request on the telnet port; closing",
                        self.peer
                    );
                    self.close(HTTP_ON_TELNET, ctx);
                    return;
                }
                if let Some(sessid) = self.sessid {
                    self.handler.do_send(SessionInput {
                        sessid,
                        input: Input::Text(line),
                    });
                }
            }
            TelnetEvent::Error(e @ TelnetError::LineTooLong { .. }) => {
                log::info!("telnet session {:?}: {e}", self.sessid);
                self.write_text(MAX_CHAR_LIMIT_WARNING, true, ctx);
            }
            TelnetEvent::Error(e) => {
                log::info!("telnet session {:?}: {e}; ignored", self.sessid);
            }
            TelnetEvent::Send(bytes) => self.write(Bytes::from(bytes), ctx),
            TelnetEvent::Subnegotiation { .. }
            | TelnetEvent::OptionEnabled { .. }
            | TelnetEvent::OptionDisabled { .. } => {}
        }
    }
}

impl Actor for TelnetSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let open = OpenSession {
            protocol_key: PROTOCOL_KEY,
            address: self.peer.ip().to_string(),
            flags: ProtocolFlags::default(),
            endpoint: ctx.address().recipient(),
        };
        // Nothing is read or written until the session has its id.
        ctx.wait(
            self.handler
                .send(open)
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(sessid) => act.sessid = Some(sessid),
                    Err(_) => ctx.stop(),
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(writer) = self.writer.take() {
            actix_rt::spawn(finish_writer(writer));
        }
        if let Some(sessid) = self.sessid {
            self.handler.do_send(SessionClosed { sessid });
        }
    }
}

impl StreamHandler<std::io::Result<Bytes>> for TelnetSession {
    fn handle(&mut self, chunk: std::io::Result<Bytes>, ctx: &mut Self::Context) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                log::debug!("telnet session {:?}: read failed: {e}", self.sessid);
                ctx.stop();
                return;
            }
        };
        let mut events = std::mem::take(&mut self.events);
        self.parser.feed(&chunk, &mut events);
        for event in events.drain(..) {
            self.on_event(event, ctx);
        }
        self.events = events;
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<ToSession> for TelnetSession {
    type Result = ();

    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        match msg {
            ToSession::Output(Output::Text(text)) => self.write_text(&text, true, ctx),
            ToSession::Output(Output::Prompt(text)) => self.write_text(&text, false, ctx),
            ToSession::Output(Output::Echo(hide)) => {
                if let Some(bytes) = self.parser.request_local(OPT_ECHO, hide) {
                    self.write(Bytes::from(bytes), ctx);
                }
            }
            // Out-of-band data needs GMCP or MSDP, which this connection has
            // not negotiated.
            ToSession::Output(Output::Oob(_)) => {}
            ToSession::Flags(flags) => {
                if let Some(encoding) = Encoding::from_name(&flags.encoding) {
                    self.encoding = encoding;
                    self.parser.set_encoding(encoding);
                }
            }
            ToSession::Close { reason } => self.close(&reason, ctx),
        }
    }
}

/// True for an HTTP request line such as `GET / HTTP/1.1`.
fn is_http_request(line: &str) -> bool {
    const METHODS: [&str; 7] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT"];
    let mut words = line.split_whitespace();
    matches!(
        (words.next(), words.next(), words.next(), words.next()),
        (Some(method), Some(_), Some(version), None)
            if METHODS.contains(&method) && version.starts_with("HTTP/")
    )
}

/// Lets a writer flush what is queued, but not for longer than
/// [`CLOSE_FLUSH_TIMEOUT`]: a peer that stopped reading would otherwise hold
/// the socket and its buffer forever.
async fn finish_writer(mut writer: JoinHandle<()>) {
    if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Accepts telnet connections on `listener` for as long as the Portal runs.
pub async fn accept_clients(
    listener: TcpListener,
    handler: Addr<PortalSessionHandler>,
    limits: TelnetSessionLimits,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                TelnetSession::start(stream, peer, handler.clone(), limits);
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, never give up the port.
                log::warn!("telnet: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_lines_are_recognised_and_commands_are_not() {
        assert!(is_http_request("GET / HTTP/1.1"));
        assert!(is_http_request("POST /login HTTP/1.0"));
        assert!(!is_http_request("get / http/1.1 please"));
        assert!(!is_http_request("connect GET HTTP/1.1"));
        assert!(!is_http_request("look"));
    }
}
