//! The Portal's end of the link: a listener on `portal.link_addr` and one
//! `ServerLinkConnection` actor per connected Server.
//!
//! The connection actor does the handshake (it sends a challenge; the
//! Server's `Hello` must come first, speak our version and prove it knows the
//! link secret), then relays frames both ways between the socket and the
//! `PortalSessionHandler`. After the handshake a frame that fails to decode is
//! logged and dropped, and the link stays up. Before it, a peer gets frames of at
//! most 4 KiB, 10 seconds, and no second chance: a bad frame closes the connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::FramedRead;

use super::handler::{FromServer, PortalSessionHandler, ServerLinkDown, ServerLinkUp};
use crate::actors::outbound::Outbound;
use crate::protocols::link::{
    check_version, new_nonce, verify_proof, LinkDecoder, LinkError, LinkRole, PortalToServer,
    ServerToPortal, MAX_FRAME_BYTES,
};
use crate::protocols::tls;

/// The largest frame a peer may send before it has proved itself (a `Hello` is
/// about 100 bytes).
const HANDSHAKE_FRAME_BYTES: usize = 4096;
/// How long a peer has to prove itself.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A message for the Server on this link.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SendToServer(pub PortalToServer);

/// One connected Server.
pub struct ServerLinkConnection {
    peer: SocketAddr,
    handler: Addr<PortalSessionHandler>,
    out: Outbound,
    /// The handshake is done: frames are relayed to the handler.
    established: bool,
    secret: String,
    /// The challenge this connection sent.
    nonce: Vec<u8>,
    /// The decoder's frame limit: small until the handshake is done.
    frame_limit: Arc<AtomicUsize>,
}

impl ServerLinkConnection {
    /// Starts the actor for an accepted connection (plain TCP, or TLS).
    pub fn start<S>(
        stream: S,
        peer: SocketAddr,
        handler: Addr<PortalSessionHandler>,
        secret: String,
    ) -> Addr<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        Self::create(move |ctx| {
            let (read, write) = tokio::io::split(stream);
            let frame_limit = Arc::new(AtomicUsize::new(HANDSHAKE_FRAME_BYTES));
            ctx.add_stream(FramedRead::new(
                read,
                LinkDecoder::<ServerToPortal>::with_limit(Arc::clone(&frame_limit)),
            ));
            let (out, _writer) = Outbound::spawn(write);
            let nonce = new_nonce();
            out.send_frame(&PortalToServer::Challenge {
                nonce: nonce.clone(),
            });
            Self {
                peer,
                handler,
                out,
                established: false,
                secret,
                nonce,
                frame_limit,
            }
        })
    }

    fn send(&self, message: &PortalToServer) {
        self.out.send_frame(message);
    }
}

impl Actor for ServerLinkConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::actors::HUB_MAILBOX_CAPACITY);
        log::info!("link: connection from {}", self.peer);
        ctx.run_later(HANDSHAKE_TIMEOUT, |act, ctx| {
            if !act.established {
                log::warn!(
                    "link: {} did not complete the handshake in {} s; closing",
                    act.peer,
                    HANDSHAKE_TIMEOUT.as_secs()
                );
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        log::info!("link: connection from {} closed", self.peer);
        if self.established {
            self.handler.do_send(ServerLinkDown {
                link: ctx.address(),
            });
        }
    }
}

type Frame = Result<Result<ServerToPortal, LinkError>, std::io::Error>;

impl StreamHandler<Frame> for ServerLinkConnection {
    fn handle(&mut self, frame: Frame, ctx: &mut Self::Context) {
        let message = match frame {
            Ok(Ok(message)) => message,
            Ok(Err(e)) if self.established => {
                log::error!("link: dropped a bad frame from {}: {e}", self.peer);
                return;
            }
            Ok(Err(e)) => {
                log::warn!(
                    "link: {} sent a bad frame before the handshake ({e}); closing",
                    self.peer
                );
                ctx.stop();
                return;
            }
            Err(e) => {
                log::warn!("link: read from {} failed: {e}", self.peer);
                ctx.stop();
                return;
            }
        };
        if self.established {
            self.handler.do_send(FromServer(message));
            return;
        }
        match message {
            ServerToPortal::Hello {
                version,
                pid,
                proof,
                nonce,
                acks_input,
            } => match check_version(version)
                .and_then(|()| verify_proof(&self.secret, LinkRole::Server, &self.nonce, &proof))
            {
                Ok(()) => {
                    self.established = true;
                    self.frame_limit.store(MAX_FRAME_BYTES, Ordering::Relaxed);
                    self.handler.do_send(ServerLinkUp {
                        link: ctx.address(),
                        server_pid: pid,
                        server_nonce: nonce,
                        acks_input,
                        local: self.peer.ip().is_loopback(),
                    });
                }
                Err(e) => {
                    log::error!("link: refusing Server pid {pid}: {e}");
                    self.send(&PortalToServer::Refused {
                        reason: e.to_string(),
                    });
                    ctx.stop();
                }
            },
            _ => {
                log::error!(
                    "link: {} sent something other than Hello first; closing",
                    self.peer
                );
                ctx.stop();
            }
        }
    }
}

/// Close the link now (the Portal hands over to its next image; the Server
/// reconnects to it).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct CloseLink;

impl Handler<CloseLink> for ServerLinkConnection {
    type Result = ();

    fn handle(&mut self, _: CloseLink, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<SendToServer> for ServerLinkConnection {
    type Result = ();

    fn handle(&mut self, msg: SendToServer, ctx: &mut Self::Context) {
        let refused = matches!(msg.0, PortalToServer::Refused { .. });
        self.send(&msg.0);
        if refused {
            ctx.stop();
        }
    }
}

/// Accepts Servers on `listener` for as long as the Portal runs; with `tls`, each
/// link is TLS (`portal.link_tls`).
pub async fn accept_servers(
    listener: TcpListener,
    handler: Addr<PortalSessionHandler>,
    secret: String,
    tls: Option<TlsAcceptor>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("link: cannot set TCP_NODELAY: {e}");
                }
                let Some(acceptor) = &tls else {
                    ServerLinkConnection::start(stream, peer, handler.clone(), secret.clone());
                    continue;
                };
                let (acceptor, handler, secret) =
                    (acceptor.clone(), handler.clone(), secret.clone());
                actix_rt::spawn(async move {
                    match tls::handshake(&acceptor, stream, tls::HANDSHAKE_TIMEOUT).await {
                        Ok(stream) => {
                            ServerLinkConnection::start(stream, peer, handler, secret);
                        }
                        Err(e) => log::warn!("link: {peer}: {e}; closed"),
                    }
                });
            }
            Err(e) => {
                log::warn!("link: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
