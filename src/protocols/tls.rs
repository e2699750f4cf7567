//! Telnet over TLS: loading the certificate and key into a rustls acceptor,
//! and the accept loop that does the TLS handshake before a connection
//! becomes an ordinary `TelnetSession` with the protocol key `telnet/ssl`.
//!
//! Only this file knows rustls. It never reads settings: the Portal resolves
//! the paths and hands them in. A client that fails the handshake, or is too
//! slow to finish it, costs only its own connection; the loop never stops.

use std::fs;
use std::io::{self, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::actors::portal::handler::PortalSessionHandler;
use crate::actors::portal::socket;
use crate::protocols::proxy::{self, TrustedProxies};
use crate::protocols::telnet::{TelnetConfig, TelnetSession, TLS_PROTOCOL_KEY};

/// How long a client has to finish the TLS handshake before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the certificate and key could not be made into an acceptor. Each
/// variant names the file at fault; the underlying cause is its `source`,
/// which `{:#}` (as `main` prints errors) appends.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} file {}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the TLS {what} file {} is not valid PEM", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("no PEM certificate (BEGIN CERTIFICATE) in the TLS certificate file {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "no PEM private key (PKCS#8, RSA or SEC1) in the TLS key file {}",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error(
        "rustls rejected the TLS certificate {} with the key {}",
        cert.display(),
        key.display()
    )]
    Rejected {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("the certificate authority file {} cannot be trusted", path.display())]
    BadAuthority {
        path: PathBuf,
        source: rustls::Error,
    },
}

/// Why one client's handshake did not complete.
#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("TLS handshake failed: {0}")]
    Failed(#[from] io::Error),
    #[error("TLS handshake not finished within {0:?}")]
    TimedOut(Duration),
}

/// Reads a PEM certificate chain and private key and builds an acceptor that
/// asks clients for no certificate.
pub fn load_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = read_certificates(cert)?;
    let private_key = read_private_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private_key)
        })
        .map_err(|source| TlsError::Rejected {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A connector for the Server's end of a TLS link: it trusts the certificates in
/// `ca` (a CA, or the Portal's own certificate) and nothing else.
pub fn load_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(ca)? {
        roots.add(cert).map_err(|source| TlsError::BadAuthority {
            path: ca.to_owned(),
            source,
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::BadAuthority {
            path: ca.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    let bytes = read_pem("certificate", path)?;
    let chain = rustls_pemfile::certs(&mut BufReader::new(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_private_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    let bytes = read_pem("key", path)?;
    rustls_pemfile::private_key(&mut BufReader::new(bytes.as_slice()))
        .map_err(|source| TlsError::Pem {
            what: "key",
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: path.to_owned(),
        })
}

/// Runs the TLS handshake on an accepted connection, giving up after `limit`.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(HandshakeError::Failed(e)),
        Err(_) => Err(HandshakeError::TimedOut(limit)),
    }
}

/// TLS handshakes allowed in progress at once.
pub const MAX_CONCURRENT_HANDSHAKES: usize = 256;

/// Accepts TLS clients on `listener` forever. Each connection shakes hands in
/// its own task, so a slow client never holds up the next one.
pub async fn accept_tls_clients(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Addr<PortalSessionHandler>,
    config: Arc<TelnetConfig>,
    proxies: Option<TrustedProxies>,
) {
    // Handshakes in progress at once: beyond this, new connections wait
    // (in the kernel's backlog) instead of each holding a socket for up to
    // the handshake timeout.
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    log::debug!("{TLS_PROTOCOL_KEY} {peer}: cannot set TCP_NODELAY: {e}");
                }
                if let Err(e) = socket::bound_send_buffer(&stream, config.socket_send_buffer) {
                    log::debug!("{TLS_PROTOCOL_KEY} {peer}: cannot set SO_SNDBUF: {e}");
                }
                let (acceptor, handler, config, proxies) = (
                    acceptor.clone(),
                    handler.clone(),
                    Arc::clone(&config),
                    proxies.clone(),
                );
                actix_rt::spawn(async move {
                    start_session(acceptor, stream, peer, handler, config, proxies).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, never give up the port.
                log::warn!("{TLS_PROTOCOL_KEY}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn start_session(
    acceptor: TlsAcceptor,
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: Addr<PortalSessionHandler>,
    config: Arc<TelnetConfig>,
    proxies: Option<TrustedProxies>,
) {
    // A trusted proxy's PROXY header comes before the TLS handshake.
    let client = match &proxies {
        Some(proxies) => match proxy::client_address(&mut stream, peer, proxies).await {
            Ok(client) => client,
            Err(e) => {
                log::warn!("{TLS_PROTOCOL_KEY} {peer} (a trusted proxy): {e}; closing");
                return;
            }
        },
        None => peer,
    };
    match handshake(&acceptor, stream, HANDSHAKE_TIMEOUT).await {
        Ok(tls) => {
            TelnetSession::start(tls, client, TLS_PROTOCOL_KEY, handler, config);
        }
        Err(e) => log::info!("{TLS_PROTOCOL_KEY} {peer}: {e}; connection dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    struct Pair {
        dir: tempfile::TempDir,
        cert: PathBuf,
        key: PathBuf,
        der: rustls::pki_types::CertificateDer<'static>,
    }

    fn self_signed() -> Pair {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("ssl.cert");
        let key = dir.path().join("ssl.key");
        fs::write(&cert, made.cert.pem()).unwrap();
        fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        Pair {
            dir,
            cert,
            key,
            der: made.cert.der().clone(),
        }
    }

    fn connector(trusted: rustls::pki_types::CertificateDer<'static>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(trusted).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    fn error_of(result: Result<TlsAcceptor, TlsError>) -> TlsError {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_self_signed_pair_loads() {
        let pair = self_signed();
        load_acceptor(&pair.cert, &pair.key).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let pair = self_signed();
        let missing = pair.dir.path().join("nope.cert");
        let e = error_of(load_acceptor(&missing, &pair.key));
        assert!(matches!(
            e,
            TlsError::Read {
                what: "certificate",
                ..
            }
        ));
        assert!(e.to_string().contains("nope.cert"), "{e}");

        let missing = pair.dir.path().join("nope.key");
        let e = error_of(load_acceptor(&pair.cert, &missing));
        assert!(matches!(e, TlsError::Read { what: "key", .. }));
        assert!(e.to_string().contains("nope.key"), "{e}");
    }

    #[test]
    fn a_certificate_file_without_a_certificate_is_named() {
        let pair = self_signed();
        // The key file holds no certificate.
        let e = error_of(load_acceptor(&pair.key, &pair.key));
        assert!(matches!(e, TlsError::NoCertificate { .. }), "{e}");
        assert!(e.to_string().contains("ssl.key"), "{e}");
    }

    #[test]
    fn a_key_file_without_a_key_is_named() {
        let pair = self_signed();
        // The certificate file holds no key.
        let e = error_of(load_acceptor(&pair.cert, &pair.cert));
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
        assert!(e.to_string().contains("ssl.cert"), "{e}");

        let empty = pair.dir.path().join("empty.key");
        fs::write(&empty, "").unwrap();
        let e = error_of(load_acceptor(&pair.cert, &empty));
        assert!(matches!(e, TlsError::NoKey { .. }), "{e}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_rejected() {
        let pair = self_signed();
        let other = self_signed();
        let e = error_of(load_acceptor(&pair.cert, &other.key));
        assert!(matches!(e, TlsError::Rejected { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains(&pair.cert.display().to_string()), "{text}");
        assert!(text.contains(&other.key.display().to_string()), "{text}");
    }

    #[test]
    fn a_key_rustls_cannot_parse_is_rejected() {
        let pair = self_signed();
        let garbage = pair.dir.path().join("garbage.key");
        fs::write(
            &garbage,
            "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = error_of(load_acceptor(&pair.cert, &garbage));
        assert!(matches!(e, TlsError::Rejected { .. }), "{e}");
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[tokio::test]
    async fn a_client_that_trusts_the_certificate_shakes_hands() {
        let pair = self_signed();
        let acceptor = load_acceptor(&pair.cert, &pair.key).unwrap();
        let (listener, addr) = listener().await;
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector(pair.der).connect(name, tcp).await.unwrap();
            tls.write_all(b"look\r\n").await.unwrap();
            let mut reply = [0u8; 2];
            tls.read_exact(&mut reply).await.unwrap();
            reply
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = handshake(&acceptor, tcp, HANDSHAKE_TIMEOUT).await.unwrap();
        let mut line = [0u8; 6];
        tls.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"look\r\n");
        tls.write_all(b"ok").await.unwrap();
        tls.flush().await.unwrap();
        assert_eq!(&client.await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn a_plain_text_client_fails_the_handshake() {
        let pair = self_signed();
        let acceptor = load_acceptor(&pair.cert, &pair.key).unwrap();
        let (listener, addr) = listener().await;
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain.write_all(b"connect alice secret\r\n").await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let e = handshake(&acceptor, tcp, HANDSHAKE_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(e, HandshakeError::Failed(_)), "{e}");
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let pair = self_signed();
        let acceptor = load_acceptor(&pair.cert, &pair.key).unwrap();
        let (listener, addr) = listener().await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let e = handshake(&acceptor, tcp, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, HandshakeError::TimedOut(_)), "{e}");
    }
}
