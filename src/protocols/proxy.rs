//! The client's real address behind a reverse proxy or load balancer: HAProxy's PROXY
//! protocol (v1 text, v2 binary, parsed by the `ppp` crate) at the start of a telnet or
//! TLS connection, and `X-Forwarded-For` on the websocket's upgrade request.
//!
//! Both are believed only from `portal.trusted_proxies`, and only where turned on
//! (`portal.telnet_proxy_protocol`, `portal.ssl_proxy_protocol`,
//! `portal.websocket_forwarded_for`). Anyone else's connection keeps its own address,
//! whatever it sends, so nobody can pick the address that throttles, bans and
//! `sessions` see.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ppp::v1;
use ppp::v2;
use ppp::HeaderResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a trusted proxy has to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest v1 header (the specification's own bound).
const V1_MAX_BYTES: usize = 107;
/// The longest v2 header accepted, TLVs included.
const V2_MAX_BYTES: usize = 4096;
/// How a v2 header starts.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The proxies whose word on a client's address is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpAddr>);

impl TrustedProxies {
    pub fn new(addresses: Vec<IpAddr>) -> Self {
        Self(addresses)
    }

    /// An IPv4-mapped IPv6 peer counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address.to_canonical())
    }

    /// The client behind a chain of proxies, from an `X-Forwarded-For` value sent by
    /// `peer`: the rightmost address that is not a trusted proxy (each proxy appends
    /// the address it heard from, so everything left of that may be forged). Without
    /// a usable header, or from an untrusted peer, the peer itself.
    pub fn forwarded_client(&self, peer: IpAddr, header: Option<&str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let Some(header) = header else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            let Ok(address) = hop.trim().parse::<IpAddr>() else {
                // Garbage in the chain: nothing further left can be trusted.
                break;
            };
            client = address.to_canonical();
            if !self.contains(client) {
                break;
            }
        }
        client
    }
}

/// Why a trusted proxy's connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header within {} s", HEADER_TIMEOUT.as_secs())]
    Timeout,
    #[error("not a PROXY protocol header")]
    NotAHeader,
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(String),
    #[error("reading the PROXY protocol header failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The address of the client on `stream`: from the PROXY protocol header a trusted
/// proxy sends first (read exactly, so what follows is the client's own bytes), or
/// `peer` itself for anyone else. A `LOCAL`/`UNKNOWN` header (a proxy's health
/// check) keeps `peer`.
pub async fn client_address(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &TrustedProxies,
) -> Result<SocketAddr, ProxyHeaderError> {
    if !trusted.contains(peer.ip()) {
        return Ok(peer);
    }
    let header = tokio::time::timeout(HEADER_TIMEOUT, read_header(stream))
        .await
        .map_err(|_| ProxyHeaderError::Timeout)??;
    source_of(&header, peer)
}

/// Reads exactly one v1 or v2 header.
async fn read_header(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyHeaderError> {
    let mut header = vec![0u8; 8];
    stream.read_exact(&mut header).await?;
    if header.starts_with(b"PROXY ") {
        // v1: up to CR LF, byte by byte so nothing after it is consumed.
        while !header.ends_with(b"\r\n") {
            if header.len() >= V1_MAX_BYTES {
                return Err(ProxyHeaderError::Invalid("v1 header too long".into()));
            }
            header.push(stream.read_u8().await?);
        }
        Ok(header)
    } else if V2_SIGNATURE.starts_with(&header) {
        // v2: 16 fixed bytes, the last two giving the length of the rest.
        header.resize(16, 0);
        stream.read_exact(&mut header[8..]).await?;
        if !header.starts_with(V2_SIGNATURE) {
            return Err(ProxyHeaderError::NotAHeader);
        }
        let rest = usize::from(u16::from_be_bytes([header[14], header[15]]));
        if 16 + rest > V2_MAX_BYTES {
            return Err(ProxyHeaderError::Invalid(format!(
                "v2 header of {rest} bytes"
            )));
        }
        header.resize(16 + rest, 0);
        stream.read_exact(&mut header[16..]).await?;
        Ok(header)
    } else {
        Err(ProxyHeaderError::NotAHeader)
    }
}

/// The client address a complete header names.
fn source_of(header: &[u8], peer: SocketAddr) -> Result<SocketAddr, ProxyHeaderError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => SocketAddr::new(a.source_address.into(), a.source_port),
            v1::Addresses::Tcp6(a) => SocketAddr::new(a.source_address.into(), a.source_port),
            v1::Addresses::Unknown => peer,
        }),
        HeaderResult::V2(Ok(h)) => Ok(match (h.command, h.addresses) {
            (v2::Command::Local, _) => peer,
            (_, v2::Addresses::IPv4(a)) => SocketAddr::new(a.source_address.into(), a.source_port),
            (_, v2::Addresses::IPv6(a)) => SocketAddr::new(a.source_address.into(), a.source_port),
            (_, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => peer,
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyHeaderError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyHeaderError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn peer() -> SocketAddr {
        "10.0.0.5:40000".parse().unwrap()
    }

    #[test]
    fn v1_and_v2_headers_name_the_client() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 4000\r\n";
        assert_eq!(
            source_of(v1, peer()).unwrap(),
            "203.0.113.7:51000".parse().unwrap()
        );
        let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 4000\r\n";
        assert_eq!(source_of(v1_6, peer()).unwrap().ip(), ip("2001:db8::7"));
        assert_eq!(source_of(b"PROXY UNKNOWN\r\n", peer()).unwrap(), peer());

        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0, 12]); // PROXY, TCP over IPv4, 12 bytes
        v2.extend_from_slice(&[198, 51, 100, 9, 10, 0, 0, 1]);
        v2.extend_from_slice(&[0xc3, 0x50, 0x0f, 0xa0]); // ports 50000, 4000
        assert_eq!(
            source_of(&v2, peer()).unwrap(),
            "198.51.100.9:50000".parse().unwrap()
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]); // LOCAL: a health check
        assert_eq!(source_of(&local, peer()).unwrap(), peer());
        assert!(source_of(b"PROXY TCP4 nonsense\r\n", peer()).is_err());
    }

    #[test]
    fn forwarded_for_is_read_from_the_right_and_only_from_a_trusted_peer() {
        let trusted = TrustedProxies::new(vec![ip("10.0.0.5"), ip("10.0.0.6")]);
        let header = Some("1.2.3.4, 203.0.113.7, 10.0.0.6");
        // The forged 1.2.3.4 is left of the first untrusted hop: ignored.
        assert_eq!(
            trusted.forwarded_client(ip("10.0.0.5"), header),
            ip("203.0.113.7")
        );
        // From anyone else the header means nothing.
        assert_eq!(
            trusted.forwarded_client(ip("198.51.100.1"), header),
            ip("198.51.100.1")
        );
        assert_eq!(
            trusted.forwarded_client(ip("10.0.0.5"), None),
            ip("10.0.0.5")
        );
        assert_eq!(
            trusted.forwarded_client(ip("10.0.0.5"), Some("garbage")),
            ip("10.0.0.5")
        );
        assert_eq!(
            trusted.forwarded_client("::ffff:10.0.0.5".parse().unwrap(), Some("2001:db8::9")),
            ip("2001:db8::9")
        );
    }
}
