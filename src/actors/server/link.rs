//! `PortalLink`: the Server's end of the link. It connects to the Portal (and
//! reconnects with backoff, as Evennia's AMP client does), answers the
//! Portal's challenge with `Hello`, checks the Portal's own proof in
//! `Welcome`, and relays frames between the socket and the
//! `ServerSessionHandler`.
//!
//! A frame that fails to decode is logged and dropped; the link stays up.

use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_util::codec::FramedRead;

use super::handler::{FromPortal, PortalLinkDown, ServerSessionHandler};
use crate::actors::outbound::Outbound;
use crate::protocols::link::{
    check_version, link_proof, new_nonce, verify_proof, LinkDecoder, LinkError, LinkRole,
    PortalToServer, ServerToPortal, LINK_PROTOCOL_VERSION, MAX_FRAME_BYTES,
};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How long a stopping Server waits for its last frames to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A message for the Portal.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ToPortal(pub ServerToPortal);

/// Write everything queued and close the link; answers when done.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FlushAndClose;

/// The handler that receives what the Portal sends.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHandler(pub Addr<ServerSessionHandler>);

/// The link's byte stream: plain TCP, or TLS over it.
type LinkStream = Box<dyn LinkIo>;

/// What a link stream must be.
trait LinkIo: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> LinkIo for T {}

/// Connects to the Portal at `addr` (`host:port`), with TLS when `tls` is set.
async fn open(addr: &str, tls: Option<TlsConnector>) -> std::io::Result<LinkStream> {
    let tcp = TcpStream::connect(addr).await?;
    if let Err(e) = tcp.set_nodelay(true) {
        log::debug!("link: cannot set TCP_NODELAY: {e}");
    }
    let Some(connector) = tls else {
        return Ok(Box::new(tcp));
    };
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    Ok(Box::new(connector.connect(name, tcp).await?))
}

pub struct PortalLink {
    /// The Portal's link, `host:port` (a name is resolved at every attempt).
    portal: String,
    /// TLS to the Portal (`server.link_tls_ca`), checked against the host part.
    tls: Option<TlsConnector>,
    handler: Option<Addr<ServerSessionHandler>>,
    out: Option<Outbound>,
    writer: Option<JoinHandle<()>>,
    retry: Duration,
    closing: bool,
    secret: String,
    /// The challenge sent in `Hello`; `None` until the Portal's challenge came.
    nonce: Option<Vec<u8>>,
    /// The Portal proved itself in `Welcome`: frames are relayed.
    established: bool,
}

impl PortalLink {
    pub fn new(portal: String, secret: String, tls: Option<TlsConnector>) -> Self {
        Self {
            portal,
            tls,
            handler: None,
            out: None,
            writer: None,
            retry: FIRST_RETRY,
            closing: false,
            secret,
            nonce: None,
            established: false,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let addr = self.portal.clone();
        let tls = self.tls.clone();
        ctx.wait(
            async move { open(&addr, tls).await }
                .into_actor(self)
                .map(|result, act, ctx| match result {
                    Ok(stream) => act.connected(stream, ctx),
                    Err(e) => {
                        log::warn!(
                            "link: cannot reach the Portal at {}: {e}; retrying in {:?}",
                            act.portal,
                            act.retry
                        );
                        act.schedule_reconnect(ctx);
                    }
                }),
        );
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        let delay = self.retry;
        self.retry = (self.retry * 3 / 2).min(MAX_RETRY);
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn connected(&mut self, stream: LinkStream, ctx: &mut Context<Self>) {
        log::info!("link: connected to the Portal at {}", self.portal);
        self.retry = FIRST_RETRY;
        let (read, write) = tokio::io::split(stream);
        ctx.add_stream(FramedRead::new(
            read,
            LinkDecoder::<PortalToServer>::new(MAX_FRAME_BYTES),
        ));
        let (out, writer) = Outbound::spawn(write);
        self.out = Some(out);
        self.writer = Some(writer);
        self.nonce = None;
        self.established = false;
    }

    /// The handshake: answer the challenge, then check the `Welcome`.
    fn handshake(&mut self, message: PortalToServer, ctx: &Context<Self>) {
        match (message, &self.nonce) {
            (PortalToServer::Challenge { nonce: challenge }, None) => {
                let nonce = new_nonce();
                let Some(out) = &self.out else {
                    return;
                };
                out.send_frame(&ServerToPortal::Hello {
                    version: LINK_PROTOCOL_VERSION,
                    pid: std::process::id(),
                    proof: link_proof(&self.secret, LinkRole::Server, &challenge),
                    nonce: nonce.clone(),
                    acks_input: true,
                });
                self.nonce = Some(nonce);
            }
            (welcome @ PortalToServer::Welcome { .. }, Some(nonce)) => {
                let PortalToServer::Welcome { version, proof, .. } = &welcome else {
                    return;
                };
                match check_version(*version)
                    .and_then(|()| verify_proof(&self.secret, LinkRole::Portal, nonce, proof))
                {
                    Ok(()) => {
                        self.established = true;
                        self.to_handler(welcome, ctx);
                    }
                    Err(e) => {
                        log::error!(
                            "link: the Portal at {} failed the handshake: {e}",
                            self.portal
                        );
                        self.to_handler(
                            PortalToServer::Refused {
                                reason: e.to_string(),
                            },
                            ctx,
                        );
                    }
                }
            }
            (refused @ PortalToServer::Refused { .. }, _) => self.to_handler(refused, ctx),
            (_, _) => log::error!("link: unexpected frame during the handshake; dropped"),
        }
    }

    fn to_handler(&self, message: PortalToServer, ctx: &Context<Self>) {
        if let Some(handler) = &self.handler {
            handler.do_send(FromPortal {
                link: ctx.address(),
                message,
            });
        }
    }

    /// Sends to the Portal once the handshake is done; before that (and
    /// while the link is down) messages are dropped: the Portal resyncs
    /// everything in its `Welcome`.
    fn send(&self, message: &ServerToPortal) {
        match &self.out {
            Some(out) if self.established => out.send_frame(message),
            _ => log::debug!("link: not established, dropped a message for the Portal"),
        }
    }
}

impl Actor for PortalLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Connecting waits for `SetHandler`, so no frame arrives with nobody
        // to take it.
        ctx.set_mailbox_capacity(crate::actors::HUB_MAILBOX_CAPACITY);
    }
}

type Frame = Result<Result<PortalToServer, LinkError>, std::io::Error>;

impl StreamHandler<Frame> for PortalLink {
    fn handle(&mut self, frame: Frame, ctx: &mut Self::Context) {
        match frame {
            Ok(Ok(message)) if self.established => self.to_handler(message, ctx),
            Ok(Ok(message)) => self.handshake(message, ctx),
            Ok(Err(e)) => log::error!("link: dropped a bad frame from the Portal: {e}"),
            Err(e) => log::warn!("link: read failed: {e}"),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.out = None;
        self.writer = None;
        self.established = false;
        self.nonce = None;
        if self.closing {
            return;
        }
        log::warn!("link: the Portal closed the link; reconnecting");
        if let Some(handler) = &self.handler {
            handler.do_send(PortalLinkDown {
                link: ctx.address(),
            });
        }
        self.schedule_reconnect(ctx);
    }
}

impl Handler<ToPortal> for PortalLink {
    type Result = ();

    fn handle(&mut self, msg: ToPortal, _: &mut Self::Context) {
        self.send(&msg.0);
    }
}

impl Handler<SetHandler> for PortalLink {
    type Result = ();

    fn handle(&mut self, msg: SetHandler, ctx: &mut Self::Context) {
        let first = self.handler.is_none();
        self.handler = Some(msg.0);
        if first {
            self.connect(ctx);
        }
    }
}

impl Handler<FlushAndClose> for PortalLink {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: FlushAndClose, _: &mut Self::Context) -> Self::Result {
        self.closing = true;
        self.out = None;
        let writer = self.writer.take();
        Box::pin(
            async move {
                if let Some(writer) = writer {
                    let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer).await;
                }
            }
            .into_actor(self),
        )
    }
}
