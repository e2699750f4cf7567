//! Telnet: the sans-IO state machine ([`parser`]), the MUD option suite
//! ([`negotiation`] with [`mtts`], [`mssp`], [`oob`], [`mccp`]) and the
//! `TelnetSession` actor that wires them to one connection (plain TCP or TLS).
//!
//! The actor turns socket bytes into lines and out-of-band calls for the
//! `PortalSessionHandler`, and the handler's output into telnet bytes:
//! rendered markup, prompts ended with EOR or GA, GMCP/MSDP messages, all
//! compressed once MCCP2 is on. It holds no game state; a session that
//! misbehaves (overlong lines, a client that never reads) costs only its own
//! connection.

pub mod mccp;
pub mod mssp;
pub mod mtts;
pub mod negotiation;
pub mod oob;
pub mod parser;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

use crate::actors::outbound::Outbound;
use crate::actors::portal::handler::{
    HandoverSlot, OpenSession, PortalSessionHandler, SessionClosed, SessionFlagsChanged,
    SessionInput, ToSession,
};
use crate::actors::portal::handover::TelnetHandover;
use crate::actors::portal::limits::{
    CommandRate, InputPacer, OutputStall, RateVerdict, COMMAND_RATE_WARNING,
    MAX_CHAR_LIMIT_WARNING, OUTPUT_CHECK_INTERVAL,
};
use crate::actors::portal::metrics::PortalMetrics;
use crate::actors::portal::socket::{self, KernelGauge};
use crate::protocols::link::{Input, OobMessage, Output};
use crate::protocols::proxy::{self, TrustedProxies};
use crate::protocols::text::{to_ansi, RenderOptions};
use crate::session::{ProtocolFlags, SessionId, SessionSyncData};
use mccp::{Mccp2, Mccp3};
use mssp::MsspInfo;
use negotiation::{Effect, Negotiator, OPT_MCCP2, OPT_MCCP3};
use oob::{gmcp_encode, msdp_encode, OPT_GMCP, OPT_MSDP};
use parser::{
    encode_output, subnegotiation, Encoding, TelnetError, TelnetEvent, TelnetLimits, TelnetParser,
    EOR, GA, IAC, NOP, OPT_ECHO,
};

/// The protocol key sessions of this kind carry.
pub const PROTOCOL_KEY: &str = "telnet";
/// The protocol key of telnet over TLS.
pub const TLS_PROTOCOL_KEY: &str = "telnet/ssl";
/// Longest subnegotiation accepted before it is refused (NAWS and TTYPE are a
/// few bytes; GMCP payloads are larger).
pub const MAX_SUBNEGOTIATION_BYTES: usize = 64 * 1024;
/// Told to a client whose connection cannot move to an upgraded Portal.
pub const UPGRADE_RECONNECT_MESSAGE: &str =
    "The game's front door is being upgraded; please connect again in a moment.";
/// The answer to a web browser that opened the telnet port.
pub const HTTP_ON_TELNET: &str =
    "This is a telnet port for MUD clients, not a web page. Connect with a MUD client or telnet.";
/// How long a closing session waits for its last output to be written.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the option negotiation may take before the session settles
/// with what it has (Evennia waits 2 s too).
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Most plain bytes one read of MCCP3 input may inflate to; more is a zlib
/// bomb and closes that session. Reads are at most 64 KiB on the wire.
const MAX_INFLATE_PER_READ: usize = 256 * 1024;
/// Event buffer capacity kept between reads.
const EVENTS_KEPT: usize = 256;
/// How often an idle connection gets an IAC NOP, which keeps NAT mappings
/// alive and lets a dead peer be noticed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Limits a telnet session enforces itself.
#[derive(Debug, Clone, Copy)]
pub struct TelnetSessionLimits {
    pub max_line_chars: usize,
    /// `portal.output_buffer_limit`: bytes queued in the Portal plus bytes the
    /// kernel holds unacknowledged.
    pub output_buffer_limit: usize,
    /// `portal.output_stall_timeout` (`None`: off).
    pub output_stall_timeout: Option<Duration>,
    /// `portal.max_input_rate`: bytes per second read from the client (0: no limit).
    pub max_input_rate: usize,
}

/// What every telnet session of one Portal shares.
#[derive(Debug)]
pub struct TelnetConfig {
    pub limits: TelnetSessionLimits,
    /// `portal.max_command_rate`, applied here too so a flood is dropped
    /// before it reaches the shared session handler.
    pub max_command_rate: f64,
    /// `client.default_width` / `default_height` until NAWS says otherwise.
    pub default_size: (u16, u16),
    /// The server status for MUD crawlers; `players` is filled in when sent.
    pub mssp: MsspInfo,
    /// Logged-in players, kept current by the session handler.
    pub players: Arc<AtomicUsize>,
    /// Where the bytes each way are counted.
    pub metrics: Arc<PortalMetrics>,
    /// `portal.socket_send_buffer`: `SO_SNDBUF` of each accepted socket (0: the
    /// kernel's autotuning).
    pub socket_send_buffer: usize,
}

/// One telnet connection.
pub struct TelnetSession {
    sessid: Option<SessionId>,
    peer: SocketAddr,
    protocol_key: &'static str,
    handler: Addr<PortalSessionHandler>,
    parser: TelnetParser,
    negotiator: Negotiator,
    flags: ProtocolFlags,
    encoding: Encoding,
    limits: TelnetSessionLimits,
    players: Arc<AtomicUsize>,
    metrics: Arc<PortalMetrics>,
    out: Option<Outbound>,
    writer: Option<JoinHandle<()>>,
    /// What the kernel holds for the client: output written to the socket and not
    /// yet acknowledged counts against the output limit too.
    gauge: KernelGauge,
    /// Bytes queued for the client since the connection opened.
    sent: u64,
    /// What the kernel held unacknowledged at the last look.
    kernel_held: usize,
    /// A look at what the client has accepted is scheduled (there is output
    /// waiting, or there was at the last look).
    check_due: bool,
    /// Whether the client's acknowledged count stands still while output waits.
    stall: OutputStall,
    /// Set once the client agreed to MCCP2: everything written goes through it.
    mccp: Option<Mccp2>,
    /// Set once the client started MCCP3: everything read goes through it.
    inflater: Option<Mccp3>,
    events: Vec<TelnetEvent>,
    effects: Vec<Effect>,
    rate: CommandRate,
    max_command_rate: f64,
    /// Flags changed while handling a read; sent once at its end.
    flags_dirty: bool,
    /// No line has arrived yet: the first one is checked for a stray HTTP request.
    first_line: bool,
    /// The connection went to the Portal's next image: stopping must not close it.
    handed_over: bool,
}

/// The socket's input as a stream of reads, paced by an [`InputPacer`]: after a read
/// that spent more than the budget, the next read waits, so a flood stays in the
/// client's own buffers and the kernel's instead of costing the Portal CPU.
fn paced_reads<R>(read: R, rate: usize) -> impl Stream<Item = std::io::Result<Bytes>>
where
    R: AsyncRead + Unpin + 'static,
{
    let state = (
        ReaderStream::new(read),
        InputPacer::new(rate, Instant::now()),
        Duration::ZERO,
    );
    futures_util::stream::unfold(state, |(mut reads, mut pacer, wait)| async move {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let chunk = reads.next().await?;
        let wait = match &chunk {
            Ok(bytes) => pacer.spend(bytes.len(), tokio::time::Instant::now().into_std()),
            Err(_) => Duration::ZERO,
        };
        Some((chunk, (reads, pacer, wait)))
    })
}

impl TelnetSession {
    /// Starts the actor for an accepted connection.
    pub fn start<S>(
        stream: S,
        peer: SocketAddr,
        protocol_key: &'static str,
        handler: Addr<PortalSessionHandler>,
        config: Arc<TelnetConfig>,
    ) -> Addr<Self>
    where
        S: AsyncRead + AsyncWrite + AsRawFd + Unpin + 'static,
    {
        Self::create(move |ctx| Self::build(stream, peer, protocol_key, handler, &config, ctx))
    }

    /// Starts the actor for a connection the previous Portal image handed over:
    /// session `record`, with the options both sides agreed to and, if it was
    /// compressing, a new MCCP2 stream (the old one was ended properly).
    pub fn adopt(
        stream: tokio::net::TcpStream,
        handover: &TelnetHandover,
        record: &SessionSyncData,
        handler: Addr<PortalSessionHandler>,
        config: Arc<TelnetConfig>,
    ) -> Addr<Self> {
        let (peer, options, compressing) = (
            handover.peer,
            handover.options.clone(),
            handover.compressing,
        );
        let (sessid, flags) = (record.sessid, record.protocol_flags.clone());
        Self::create(move |ctx| {
            let mut session = Self::build(stream, peer, PROTOCOL_KEY, handler, &config, ctx);
            session.sessid = Some(sessid);
            session.negotiator = Negotiator::resumed(config.mssp.clone());
            session.parser.restore_options(&options);
            if let Some(encoding) = Encoding::from_name(&flags.encoding) {
                session.encoding = encoding;
                session.parser.set_encoding(encoding);
            }
            session.flags = flags;
            session.first_line = false;
            if compressing {
                session.write(&subnegotiation(OPT_MCCP2, &[]), ctx);
                session.mccp = Some(Mccp2::new());
            }
            session
        })
    }

    fn build<S>(
        stream: S,
        peer: SocketAddr,
        protocol_key: &'static str,
        handler: Addr<PortalSessionHandler>,
        config: &TelnetConfig,
        ctx: &mut Context<Self>,
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + AsRawFd + Unpin + 'static,
    {
        {
            let (stream, gauge) = socket::gauged(stream);
            let (read, write) = tokio::io::split(stream);
            ctx.add_stream(paced_reads(read, config.limits.max_input_rate));
            let (out, writer) = Outbound::spawn(write);
            let mut parser = TelnetParser::new(TelnetLimits {
                max_line_chars: config.limits.max_line_chars,
                max_subnegotiation_bytes: MAX_SUBNEGOTIATION_BYTES,
            });
            // Always stop after an MCCP3 start marker: whether it counts is
            // decided with the events of the same read, in order, so a DO
            // MCCP3 and the marker in one read still work.
            parser.pause_after_subnegotiation(Some(OPT_MCCP3));
            Self {
                sessid: None,
                peer,
                protocol_key,
                handler,
                parser,
                negotiator: Negotiator::new(config.mssp.clone()),
                flags: ProtocolFlags {
                    screen_width: config.default_size.0,
                    screen_height: config.default_size.1,
                    ..ProtocolFlags::default()
                },
                encoding: Encoding::Utf8,
                limits: config.limits,
                players: Arc::clone(&config.players),
                metrics: Arc::clone(&config.metrics),
                out: Some(out),
                writer: Some(writer),
                gauge,
                sent: 0,
                kernel_held: 0,
                check_due: false,
                stall: OutputStall::new(config.limits.output_stall_timeout, Instant::now()),
                mccp: None,
                inflater: None,
                events: Vec::new(),
                effects: Vec::new(),
                rate: CommandRate::new(Instant::now()),
                max_command_rate: config.max_command_rate,
                flags_dirty: false,
                first_line: true,
                handed_over: false,
            }
        }
    }

    /// Hands the connection to the Portal's next image: the output queued so
    /// far is written, a compressed stream is ended, and the socket is answered
    /// as a duplicate that outlives this actor, which stops without closing the
    /// connection. TLS (the keys live in this process) and MCCP3 input (the
    /// client's zlib stream cannot be resumed) cannot move: such a client is
    /// told to reconnect.
    fn hand_over(&mut self, slot: HandoverSlot, ctx: &mut Context<Self>) {
        if self.protocol_key != PROTOCOL_KEY || self.inflater.is_some() {
            slot.answer(None);
            self.close(UPGRADE_RECONNECT_MESSAGE, ctx);
            return;
        }
        let compressing = self.mccp.is_some();
        if let Some(mut z) = self.mccp.take() {
            let tail = z.finish();
            self.enqueue(Bytes::from(tail), ctx);
        }
        let options = self.parser.snapshot_options();
        let out = self.out.clone();
        ctx.wait(
            async move {
                let until = tokio::time::Instant::now() + CLOSE_FLUSH_TIMEOUT;
                while out.as_ref().is_some_and(|o| o.queued() > 0) {
                    if tokio::time::Instant::now() >= until {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                true
            }
            .into_actor(self)
            .map(move |written, act, ctx| {
                let fd = act.gauge.duplicate();
                act.out = None;
                if let Some(writer) = act.writer.take() {
                    writer.abort();
                }
                match fd {
                    Some(Ok(fd)) if written => {
                        act.handed_over = true;
                        slot.answer(Some((
                            fd,
                            TelnetHandover {
                                fd: -1,
                                peer: act.peer,
                                options,
                                compressing,
                            },
                        )));
                    }
                    _ => {
                        log::info!(
                            "telnet session {:?}: output not written in time; not handed over",
                            act.sessid
                        );
                        slot.answer(None);
                    }
                }
                ctx.stop();
            }),
        );
    }

    /// Queues bytes for the client, compressed once MCCP2 is on.
    fn write(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        let bytes = match &mut self.mccp {
            Some(z) => Bytes::from(z.compress(bytes)),
            None => Bytes::copy_from_slice(bytes),
        };
        self.enqueue(bytes, ctx);
    }

    /// As [`Self::write`], without a copy when nothing is compressed.
    fn write_buffer(&mut self, buf: BytesMut, ctx: &mut Context<Self>) {
        match &mut self.mccp {
            Some(z) => {
                let compressed = Bytes::from(z.compress(&buf));
                self.enqueue(compressed, ctx);
            }
            None => self.enqueue(buf.freeze(), ctx),
        }
    }

    /// Queues bytes. No system call: the kernel's share of the output limit is the
    /// one from the last look, asked again only when the sum is over the limit.
    fn enqueue(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        let Some(out) = &self.out else {
            return;
        };
        let len = bytes.len();
        self.metrics.bytes_sent.inc_by(len as u64);
        let Ok(queued) = out.send(bytes) else {
            ctx.stop();
            return;
        };
        self.sent += len as u64;
        let limit = self.limits.output_buffer_limit;
        if queued + self.kernel_held > limit {
            if queued <= limit {
                self.kernel_held = self.gauge.unacknowledged().unwrap_or(0);
            }
            if queued + self.kernel_held > limit {
                self.cut_unread(queued, ctx);
                return;
            }
        }
        self.schedule_check(ctx);
    }

    fn schedule_check(&mut self, ctx: &mut Context<Self>) {
        if !std::mem::replace(&mut self.check_due, true) {
            ctx.run_later(OUTPUT_CHECK_INTERVAL, |act, ctx| act.check_output(ctx));
        }
    }

    /// Looks at what the client has accepted, a second after output was queued and
    /// then each second while any of it waits: one `SIOCOUTQ` per look.
    fn check_output(&mut self, ctx: &mut Context<Self>) {
        self.check_due = false;
        let Some(out) = &self.out else {
            return;
        };
        let queued = out.queued();
        self.kernel_held = self.gauge.unacknowledged().unwrap_or(0);
        let unread = queued + self.kernel_held;
        if unread > self.limits.output_buffer_limit {
            self.cut_unread(queued, ctx);
            return;
        }
        // Handed to the socket, less what the kernel still holds: what the client
        // has acknowledged. Over TLS the kernel holds ciphertext, so this is an
        // estimate that dips by the framing; it still rises only when the client
        // acknowledges.
        let handed = self.sent.saturating_sub(queued as u64);
        let accepted = handed.saturating_sub(self.kernel_held as u64);
        if let Some(stalled) = self.stall.observe(unread as u64, accepted, Instant::now()) {
            log::warn!(
                "telnet session {:?} from {}: output stalled, no byte accepted for {}s; \
                 {unread} bytes stuck ({queued} in the Portal, {} in the kernel); disconnecting",
                self.sessid,
                self.peer,
                stalled.as_secs(),
                self.kernel_held
            );
            self.cut(ctx);
            return;
        }
        if unread > 0 {
            self.schedule_check(ctx);
        }
    }

    fn cut_unread(&mut self, queued: usize, ctx: &mut Context<Self>) {
        // Asked once more for the log line: the last look may be up to a second old.
        self.kernel_held = self.gauge.unacknowledged().unwrap_or(self.kernel_held);
        log::warn!(
            "telnet session {:?} from {}: {} bytes of output not read ({queued} in the \
             Portal, {} in the kernel); disconnecting",
            self.sessid,
            self.peer,
            queued + self.kernel_held,
            self.kernel_held
        );
        self.cut(ctx);
    }

    /// Drops a client that does not read: nothing more will get through, so the
    /// writer, its queue and the kernel's buffer go now (a reset, not a close
    /// that would keep the unsent bytes), and the socket with them.
    fn cut(&mut self, ctx: &mut Context<Self>) {
        self.gauge.reset_on_close();
        self.out = None;
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        ctx.stop();
    }

    fn render(&self, text: &str) -> String {
        to_ansi(text, RenderOptions::for_client(&self.flags))
    }

    fn write_text(&mut self, text: &str, line_end: bool, ctx: &mut Context<Self>) {
        let rendered = self.render(text);
        // `encode_output` reserves room for the line ends it adds, in one
        // allocation: a smaller buffer here would be grown to twice its size, and a
        // client that does not read would hold that slack for every line queued.
        let mut buf = BytesMut::new();
        encode_output(&rendered, self.encoding, &mut buf);
        if line_end && !rendered.ends_with('\n') {
            buf.extend_from_slice(b"\r\n");
        }
        self.write_buffer(buf, ctx);
    }

    /// A prompt has no line end; EOR (or GA) tells the client where it stops.
    fn write_prompt(&mut self, text: &str, ctx: &mut Context<Self>) {
        let rendered = self.render(text);
        let mut buf = BytesMut::new();
        encode_output(&rendered, self.encoding, &mut buf);
        // Clients find the end of a prompt by EOR, or else by GA: sent even
        // after SGA, since nearly every client agrees to SGA and would
        // otherwise get no marker at all.
        if self.flags.eor {
            buf.extend_from_slice(&[IAC, EOR]);
        } else {
            buf.extend_from_slice(&[IAC, GA]);
        }
        self.write_buffer(buf, ctx);
    }

    fn write_oob(&mut self, msg: &OobMessage, ctx: &mut Context<Self>) {
        if self.flags.gmcp {
            let payload = gmcp_encode(msg);
            if !payload.is_empty() {
                self.write(&subnegotiation(OPT_GMCP, &payload), ctx);
            }
        }
        if self.flags.msdp {
            let payload = msdp_encode(msg);
            if !payload.is_empty() {
                self.write(&subnegotiation(OPT_MSDP, &payload), ctx);
            }
        }
    }

    fn close(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if !reason.is_empty() {
            self.write_text(reason, true, ctx);
        }
        // A compressed stream is ended properly, or the client reports an error.
        if let Some(mut z) = self.mccp.take() {
            let tail = z.finish();
            self.enqueue(Bytes::from(tail), ctx);
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

    /// Sends the flags once if anything changed (a burst of NAWS packets
    /// makes one update, not one per packet).
    fn sync_flags(&mut self) {
        if !std::mem::take(&mut self.flags_dirty) {
            return;
        }
        if let Some(sessid) = self.sessid {
            self.handler.do_send(SessionFlagsChanged {
                sessid,
                flags: self.flags.clone(),
            });
        }
    }

    fn apply_effects(&mut self, ctx: &mut Context<Self>) {
        let effects = std::mem::take(&mut self.effects);
        for effect in effects {
            match effect {
                Effect::Send(bytes) => self.write(&bytes, ctx),
                Effect::StartCompression => {
                    if self.mccp.is_none() {
                        self.mccp = Some(Mccp2::new());
                    }
                }
                Effect::StopCompression => {
                    if let Some(mut z) = self.mccp.take() {
                        let tail = z.finish();
                        self.enqueue(Bytes::from(tail), ctx);
                    }
                }
                Effect::StartDecompression => {
                    if self.inflater.is_none() {
                        self.inflater = Some(Mccp3::new());
                    }
                }
                Effect::SetEncoding(encoding) => {
                    self.encoding = encoding;
                    self.parser.set_encoding(encoding);
                }
                Effect::FlagsChanged => self.flags_dirty = true,
                Effect::Oob(msg) => {
                    if let Some(sessid) = self.sessid {
                        self.handler.do_send(SessionInput {
                            sessid,
                            input: Input::Oob(msg),
                        });
                    }
                }
                Effect::Settled => {
                    log::debug!("telnet session {:?}: negotiation settled", self.sessid);
                }
            }
        }
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
                match self.rate.check(self.max_command_rate, Instant::now()) {
                    RateVerdict::Accept => {}
                    RateVerdict::DropAndWarn => {
                        self.write_text(COMMAND_RATE_WARNING, true, ctx);
                        return;
                    }
                    RateVerdict::Drop => return,
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
            TelnetEvent::Send(bytes) => self.write(&bytes, ctx),
            other => {
                self.negotiator
                    .set_players(self.players.load(Ordering::Relaxed));
                let mut effects = std::mem::take(&mut self.effects);
                self.negotiator
                    .on_event(other, &mut self.flags, &mut effects);
                self.effects = effects;
                self.apply_effects(ctx);
            }
        }
    }
}

impl Actor for TelnetSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.sessid.is_some() {
            // Handed over by the previous Portal image: registered and negotiated.
            ctx.run_interval(KEEPALIVE_INTERVAL, |act, ctx| act.write(&[IAC, NOP], ctx));
            return;
        }
        let open = OpenSession {
            protocol_key: self.protocol_key,
            address: self.peer.ip().to_string(),
            flags: self.flags.clone(),
            endpoint: ctx.address().recipient(),
        };
        // Nothing is read or written until the session has its id.
        ctx.wait(
            self.handler
                .send(open)
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(sessid) => {
                        act.sessid = Some(sessid);
                        let offers = act.negotiator.offer(&mut act.parser);
                        act.write(&offers, ctx);
                        ctx.run_later(NEGOTIATION_TIMEOUT, |act, ctx| {
                            if !act.negotiator.is_settled() {
                                let mut effects = std::mem::take(&mut act.effects);
                                act.negotiator.timeout(&mut effects);
                                act.effects = effects;
                                act.apply_effects(ctx);
                            }
                        });
                        ctx.run_interval(KEEPALIVE_INTERVAL, |act, ctx| {
                            act.write(&[IAC, NOP], ctx)
                        });
                    }
                    Err(_) => ctx.stop(),
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if self.handed_over {
            // The connection lives on in the next image.
            return;
        }
        if let Some(writer) = self.writer.take() {
            actix_rt::spawn(finish_writer(writer));
        }
        if let Some(sessid) = self.sessid {
            self.handler.do_send(SessionClosed {
                sessid,
                connection: 0,
            });
        }
    }
}

impl TelnetSession {
    /// Runs parsed events; answers false if the session is closing.
    fn run_events(&mut self, ctx: &mut Context<Self>) {
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            self.on_event(event, ctx);
        }
        self.events = events;
    }

    /// Feeds one read, switching to decompression where the client starts
    /// MCCP3 (even in the middle of the read) and back where it ends it.
    fn read(&mut self, mut rest: &[u8], ctx: &mut Context<Self>) {
        // One budget for the whole read: ending a stream and starting a new
        // one in the same read does not earn a fresh allowance.
        let mut budget = MAX_INFLATE_PER_READ;
        while !rest.is_empty() {
            if let Some(z) = &mut self.inflater {
                match z.inflate(rest, budget) {
                    Ok(out) => {
                        budget -= out.data.len().min(budget);
                        let mut events = std::mem::take(&mut self.events);
                        self.parser.feed(&out.data, &mut events);
                        self.events = events;
                        self.run_events(ctx);
                        rest = &rest[out.consumed.min(rest.len())..];
                        if out.ended {
                            self.inflater = None;
                        } else if out.consumed == 0 {
                            break;
                        }
                    }
                    Err(e) => {
                        log::warn!(
                            "telnet session {:?} from {}: {e}; disconnecting",
                            self.sessid,
                            self.peer
                        );
                        self.inflater = None;
                        self.close(
                            "Your client's compressed input could not be read; disconnecting.",
                            ctx,
                        );
                        return;
                    }
                }
            } else {
                let mut events = std::mem::take(&mut self.events);
                let used = self.parser.feed_partial(rest, &mut events);
                self.events = events;
                self.run_events(ctx);
                rest = &rest[used.min(rest.len())..];
            }
        }
        // A flood of tiny lines must not leave a huge buffer behind.
        self.events.shrink_to(EVENTS_KEPT);
        self.sync_flags();
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
        self.metrics.bytes_received.inc_by(chunk.len() as u64);
        self.read(&chunk, ctx);
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
            ToSession::Output(Output::Prompt(text)) => self.write_prompt(&text, ctx),
            ToSession::Output(Output::Echo(hide)) => {
                if let Some(bytes) = self.parser.request_local(OPT_ECHO, hide) {
                    self.write(&bytes, ctx);
                }
            }
            ToSession::Output(Output::Oob(msg)) => self.write_oob(&msg, ctx),
            ToSession::Flags(flags) => {
                // The Server changed client options (`option`, `encoding`):
                // adopt them without echoing them back.
                if let Some(encoding) = Encoding::from_name(&flags.encoding) {
                    self.encoding = encoding;
                    self.parser.set_encoding(encoding);
                }
                // Negotiated state (compression, OOB, EOR) stays this side's.
                self.flags.adopt_user_options(&flags);
            }
            ToSession::Close { reason } => self.close(&reason, ctx),
            ToSession::HandOver(slot) => self.hand_over(slot, ctx),
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
    config: Arc<TelnetConfig>,
    proxies: Option<TrustedProxies>,
) {
    loop {
        match listener.accept().await {
            Ok((mut stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("telnet {peer}: cannot set TCP_NODELAY: {e}");
                }
                if let Err(e) = socket::bound_send_buffer(&stream, config.socket_send_buffer) {
                    log::debug!("telnet {peer}: cannot set SO_SNDBUF: {e}");
                }
                let Some(proxies) = proxies.as_ref().filter(|p| p.contains(peer.ip())) else {
                    TelnetSession::start(
                        stream,
                        peer,
                        PROTOCOL_KEY,
                        handler.clone(),
                        Arc::clone(&config),
                    );
                    continue;
                };
                // A trusted proxy names the client first; waiting for it must not
                // hold up the next accept.
                let (proxies, handler, config) =
                    (proxies.clone(), handler.clone(), Arc::clone(&config));
                actix_rt::spawn(async move {
                    match proxy::client_address(&mut stream, peer, &proxies).await {
                        Ok(client) => {
                            TelnetSession::start(stream, client, PROTOCOL_KEY, handler, config);
                        }
                        Err(e) => log::warn!("telnet {peer} (a trusted proxy): {e}; closing"),
                    }
                });
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

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_read_at_the_input_rate_and_nothing_is_dropped() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'x'; 10_000]).await.unwrap();
        drop(client);
        let started = tokio::time::Instant::now();
        let mut reads = std::pin::pin!(paced_reads(server, 1000));
        let mut total = 0;
        while let Some(chunk) = reads.next().await {
            total += chunk.unwrap().len();
        }
        assert_eq!(total, 10_000);
        // 4,000 bytes of burst, then 1,000 per second: the last read starts after
        // about six seconds (of the test's virtual clock).
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(5_500), "{took:?}");
        assert!(took <= Duration::from_millis(6_500), "{took:?}");
    }

    #[test]
    fn http_request_lines_are_recognised_and_commands_are_not() {
        assert!(is_http_request("GET / HTTP/1.1"));
        assert!(is_http_request("POST /login HTTP/1.0"));
        assert!(!is_http_request("get / http/1.1 please"));
        assert!(!is_http_request("connect GET HTTP/1.1"));
        assert!(!is_http_request("look"));
    }
}
