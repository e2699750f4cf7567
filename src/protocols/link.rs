//! The Portal <-> Server wire: the two message enums named by direction, and the
//! length-prefixed MessagePack codec that carries them.
//!
//! Every frame is a 4-byte big-endian length followed by one rmp-serde encoded
//! message (struct fields by name, so a newer Server can add fields that an older
//! Portal ignores). Only this module knows MessagePack.
//!
//! The handshake authenticates both ends with `portal.link_secret` and never
//! sends it: the Portal opens with a random challenge, the Server answers with
//! `Hello` carrying HMAC-SHA256(secret, challenge) and a challenge of its own,
//! and the Portal's `Welcome` answers that one the same way.
//!
//! Decoding never fails the stream: an oversized or undecodable frame becomes an
//! `Err` item ([`LinkError`]) and the decoder moves on to the next frame, so one
//! bad frame is logged and dropped and never kills the link.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use tokio_util::codec::Decoder;

use crate::session::{SessionId, SessionSyncData, UnixMillis};

/// Bumped whenever a change to these enums is not backwards compatible.
pub const LINK_PROTOCOL_VERSION: u32 = 1;

/// Bytes of a handshake challenge.
pub const NONCE_BYTES: usize = 32;

/// The largest frame either side sends or accepts. A full session sync of
/// 10,000 sessions is about 3 MB; input lines are capped far lower by the Portal.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

/// Size of the length prefix.
const LENGTH_BYTES: usize = 4;

/// Why the Server (re)connected: tells it which start-up hooks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartMode {
    /// A reload was asked for: sessions and puppets are kept, players were told.
    Reload,
    /// The Server went away without being asked (crash, kill): sessions are
    /// kept all the same.
    Crash,
    /// The Server started for the first time in this Portal's life.
    ColdStart,
}

/// An out-of-band call in Evennia's shape: `name`, `[args]`, `{kwargs}`. The
/// same shape serves GMCP, MSDP and the websocket's JSON frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OobMessage {
    pub name: String,
    pub args: Vec<serde_json::Value>,
    pub kwargs: serde_json::Map<String, serde_json::Value>,
}

/// One piece of player input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A command line, without its line ending.
    Text(String),
    /// An input function call (GMCP, MSDP, websocket JSON).
    Oob(OobMessage),
}

/// One piece of output for a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// Text with markup; lines separated by `\n`.
    Text(String),
    /// A prompt: text without a line ending.
    Prompt(String),
    /// Hide (`true`) or show what the player types next, e.g. for a password.
    Echo(bool),
    /// An out-of-band message (GMCP package, websocket cmdname).
    Oob(OobMessage),
}

/// Messages from the Portal to the Server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PortalToServer {
    /// The first frame on a new link: prove you know the link secret.
    Challenge { nonce: Vec<u8> },
    /// Handshake answer and full resync (Evennia's PSYNC): every Portal session,
    /// logged in or not. The Server replaces its sessions with these.
    Welcome {
        version: u32,
        /// Answers the Server's challenge: [`link_proof`] with [`LinkRole::Portal`].
        proof: Vec<u8>,
        /// Changes every time a Portal process starts. A Server that sees a new
        /// epoch drops every session it had, so a new connection can never
        /// inherit a stale one.
        portal_epoch: u64,
        portal_started: UnixMillis,
        restart_mode: RestartMode,
        sessions: Vec<SessionSyncData>,
        /// The Portal's `portal.id`: the range its session ids come from.
        #[serde(default)]
        portal_id: u16,
        /// The Portal process replaced its own binary and reconnects: the
        /// Server never went away, so players are not told it restarted.
        #[serde(default)]
        portal_upgraded: bool,
    },
    /// The handshake failed; the Portal closes the link after this.
    Refused { reason: String },
    /// A new connection was released to the game (PCONN).
    SessionConnected { session: SessionSyncData },
    /// Protocol data changed, e.g. after telnet negotiation (PCONNSYNC).
    SessionUpdated { session: SessionSyncData },
    /// The client went away (PDISCONN).
    SessionDisconnected { sessid: SessionId },
    /// Input from a session. `seq` numbers the session's lines from 1 in the
    /// order typed (0: not numbered); the Server acknowledges them with
    /// [`ServerToPortal::InputDone`], and the Portal replays what was not
    /// acknowledged to the next Server. A line keeps its number when it is
    /// replayed, so a Server that already has it can tell.
    DataIn {
        sessid: SessionId,
        input: Input,
        #[serde(default)]
        seq: u64,
    },
    /// The Portal is going down and every session with it (PDISCONNALL).
    AllDisconnected,
    /// Stop now and expect to be started again (SRELOAD).
    Reload,
    /// Stop now for good (SSHUTD).
    Shutdown,
}

/// Messages from the Server to the Portal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerToPortal {
    /// The Server's answer to the Portal's challenge.
    Hello {
        version: u32,
        pid: u32,
        /// [`link_proof`] of the Portal's challenge with [`LinkRole::Server`].
        proof: Vec<u8>,
        /// The Server's own challenge for the Portal.
        nonce: Vec<u8>,
        /// The Server acknowledges numbered input with
        /// [`ServerToPortal::InputDone`]; absent (`false`) from a Server that
        /// predates it, whose Portal then keeps no copies.
        #[serde(default)]
        acks_input: bool,
    },
    /// Every line of `sessid` up to and including `seq` has run, and its output
    /// was sent before this message: the Portal forgets its copies.
    InputDone { sessid: SessionId, seq: u64 },
    /// Output for one session.
    DataOut { sessid: SessionId, output: Output },
    /// The same output for many sessions (announcements, room messages).
    DataOutMany {
        sessids: Vec<SessionId>,
        output: Output,
    },
    /// A session logged in (SLOGIN); carries its updated record.
    LoggedIn { session: SessionSyncData },
    /// Session records changed on the Server (SSYNC): login state, puppet,
    /// client options. Portal sessions absent from the list are left alone
    /// (they may have connected while the sync was in flight).
    SessionsSync { sessions: Vec<SessionSyncData> },
    /// Close one session after showing it `reason` (SDISCONN).
    Disconnect { sessid: SessionId, reason: String },
    /// Close every session after showing them `reason` (SDISCONNALL).
    DisconnectAll { reason: String },
    /// In-game `reload`: please restart me.
    RequestReload { reason: String },
    /// In-game `shutdown`: stop me and the Portal.
    RequestShutdown { reason: String },
    /// Sent last before a Server exits on request; nothing follows it.
    Stopping,
}

/// What can go wrong on the link; each error ends at most one frame.
#[derive(Debug, Error)]
pub enum LinkError {
    #[error("frame of {size} bytes is larger than the {max} byte limit")]
    FrameTooLarge { size: usize, max: usize },
    #[error("frame could not be decoded: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("message could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("peer speaks link version {peer}, this build speaks {ours}")]
    VersionMismatch { peer: u32, ours: u32 },
    #[error("the peer does not know the link secret")]
    BadProof,
    #[error("link i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `message` as one complete frame (length prefix included).
pub fn encode_frame<T: Serialize>(message: &T, max: usize) -> Result<Bytes, LinkError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    let mut writer = (&mut buf).writer();
    rmp_serde::encode::write_named(&mut writer, message)?;
    let size = buf.len() - LENGTH_BYTES;
    if size > max {
        return Err(LinkError::FrameTooLarge { size, max });
    }
    let len = u32::try_from(size).map_err(|_| LinkError::FrameTooLarge { size, max })?;
    buf[..LENGTH_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes length-prefixed frames into `T`. Yields `Err` items for bad frames
/// and keeps going; returns `Ok(None)` while a frame is incomplete.
#[derive(Debug)]
pub struct LinkDecoder<T> {
    /// The largest frame accepted; shared, so the owner of a stream can raise it
    /// once the peer has proved itself.
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of an oversized frame still to be thrown away.
    discarding: usize,
    _message: std::marker::PhantomData<fn() -> T>,
}

impl<T> LinkDecoder<T> {
    pub fn new(max: usize) -> Self {
        Self::with_limit(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(
            max,
        )))
    }

    /// A decoder whose frame limit is `max`, as it is when each frame starts.
    pub fn with_limit(max: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        Self {
            max,
            discarding: 0,
            _message: std::marker::PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Decoder for LinkDecoder<T> {
    type Item = Result<T, LinkError>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if self.discarding > 0 {
            let n = self.discarding.min(src.len());
            src.advance(n);
            self.discarding -= n;
            if self.discarding > 0 {
                return Ok(None);
            }
        }
        if src.len() < LENGTH_BYTES {
            return Ok(None);
        }
        let mut prefix = [0u8; LENGTH_BYTES];
        prefix.copy_from_slice(&src[..LENGTH_BYTES]);
        let size = u32::from_be_bytes(prefix) as usize;
        let max = self.max.load(std::sync::atomic::Ordering::Relaxed);
        if size > max {
            src.advance(LENGTH_BYTES);
            let n = size.min(src.len());
            src.advance(n);
            self.discarding = size - n;
            return Ok(Some(Err(LinkError::FrameTooLarge { size, max })));
        }
        if src.len() < LENGTH_BYTES + size {
            src.reserve(LENGTH_BYTES + size - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_BYTES);
        let frame = src.split_to(size);
        Ok(Some(rmp_serde::from_slice(&frame).map_err(LinkError::from)))
    }
}

/// Which end computes a proof; part of the MAC input so that one end's proof
/// can never be replayed as the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    Portal,
    Server,
}

impl LinkRole {
    fn label(self) -> &'static [u8] {
        match self {
            LinkRole::Portal => b"gatehouse-link portal",
            LinkRole::Server => b"gatehouse-link server",
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

#[expect(clippy::expect_used, reason = "HMAC accepts keys of any length")]
fn proof_mac(secret: &str, role: LinkRole, nonce: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(role.label());
    mac.update(nonce);
    mac
}

/// HMAC-SHA256 of `nonce` under the link secret, for `role`.
pub fn link_proof(secret: &str, role: LinkRole, nonce: &[u8]) -> Vec<u8> {
    proof_mac(secret, role, nonce)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks a proof in constant time.
pub fn verify_proof(
    secret: &str,
    role: LinkRole,
    nonce: &[u8],
    proof: &[u8],
) -> Result<(), LinkError> {
    proof_mac(secret, role, nonce)
        .verify_slice(proof)
        .map_err(|_| LinkError::BadProof)
}

/// A fresh random challenge.
pub fn new_nonce() -> Vec<u8> {
    let mut nonce = vec![0u8; NONCE_BYTES];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// Checks the peer's version from its first frame.
pub fn check_version(peer: u32) -> Result<(), LinkError> {
    if peer == LINK_PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(LinkError::VersionMismatch {
            peer,
            ours: LINK_PROTOCOL_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{AccountId, CharacterId, ProtocolFlags};

    fn record(id: u64) -> SessionSyncData {
        let mut s = SessionSyncData::new(
            SessionId(id),
            "telnet",
            "192.0.2.7",
            1_700_000_000_000,
            ProtocolFlags::default(),
        );
        s.log_in(AccountId(9), "Alice", 1_700_000_001_000);
        s.puppet_id = Some(CharacterId(4));
        s.record_input("look", "idle", 1_700_000_002_000);
        s
    }

    fn oob(name: &str) -> OobMessage {
        let mut kwargs = serde_json::Map::new();
        kwargs.insert("hp".into(), serde_json::json!(10));
        OobMessage {
            name: name.to_owned(),
            args: vec![serde_json::json!("a"), serde_json::json!([1, 2])],
            kwargs,
        }
    }

    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(msg: T) {
        let frame = encode_frame(&msg, MAX_FRAME_BYTES).unwrap();
        let mut buf = BytesMut::from(&frame[..]);
        let mut dec = LinkDecoder::<T>::new(MAX_FRAME_BYTES);
        let got = dec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert_eq!(got, msg);
        assert!(buf.is_empty());
    }

    #[test]
    fn every_portal_message_round_trips() {
        for msg in [
            PortalToServer::Challenge { nonce: new_nonce() },
            PortalToServer::Welcome {
                version: LINK_PROTOCOL_VERSION,
                proof: vec![1, 2, 3],
                portal_epoch: 42,
                portal_started: 5,
                restart_mode: RestartMode::Reload,
                sessions: vec![record(1), record(2)],
                portal_id: 7,
                portal_upgraded: true,
            },
            PortalToServer::Refused {
                reason: "no".into(),
            },
            PortalToServer::SessionConnected { session: record(3) },
            PortalToServer::SessionUpdated { session: record(3) },
            PortalToServer::SessionDisconnected {
                sessid: SessionId(3),
            },
            PortalToServer::DataIn {
                sessid: SessionId(3),
                input: Input::Text("say héllo".into()),
                seq: 12,
            },
            PortalToServer::DataIn {
                sessid: SessionId(3),
                input: Input::Oob(oob("Core.Hello")),
                seq: 13,
            },
            PortalToServer::AllDisconnected,
            PortalToServer::Reload,
            PortalToServer::Shutdown,
        ] {
            round_trip(msg);
        }
    }

    /// A Portal and a Server of different builds meet after a reload or an
    /// upgrade: what one leaves out, the other reads as "not numbered".
    #[test]
    fn input_numbers_and_acknowledgements_are_optional_on_the_wire() {
        #[derive(Serialize)]
        enum OldPortalToServer {
            DataIn { sessid: SessionId, input: Input },
        }
        #[derive(Serialize)]
        enum OldServerToPortal {
            Hello {
                version: u32,
                pid: u32,
                proof: Vec<u8>,
                nonce: Vec<u8>,
            },
        }
        let old = OldPortalToServer::DataIn {
            sessid: SessionId(3),
            input: Input::Text("look".into()),
        };
        let mut buf = BytesMut::from(&encode_frame(&old, MAX_FRAME_BYTES).unwrap()[..]);
        let got = LinkDecoder::<PortalToServer>::new(MAX_FRAME_BYTES)
            .decode(&mut buf)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            PortalToServer::DataIn {
                sessid: SessionId(3),
                input: Input::Text("look".into()),
                seq: 0
            }
        );
        let old = OldServerToPortal::Hello {
            version: LINK_PROTOCOL_VERSION,
            pid: 1,
            proof: vec![1],
            nonce: vec![2],
        };
        let mut buf = BytesMut::from(&encode_frame(&old, MAX_FRAME_BYTES).unwrap()[..]);
        let got = LinkDecoder::<ServerToPortal>::new(MAX_FRAME_BYTES)
            .decode(&mut buf)
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(
            got,
            ServerToPortal::Hello {
                acks_input: false,
                ..
            }
        ));
    }

    #[test]
    fn every_server_message_round_trips() {
        for msg in [
            ServerToPortal::Hello {
                version: LINK_PROTOCOL_VERSION,
                pid: 77,
                proof: vec![9; 32],
                nonce: new_nonce(),
                acks_input: true,
            },
            ServerToPortal::InputDone {
                sessid: SessionId(1),
                seq: 40,
            },
            ServerToPortal::DataOut {
                sessid: SessionId(1),
                output: Output::Text("hi\n".into()),
            },
            ServerToPortal::DataOut {
                sessid: SessionId(1),
                output: Output::Prompt("> ".into()),
            },
            ServerToPortal::DataOut {
                sessid: SessionId(1),
                output: Output::Echo(true),
            },
            ServerToPortal::DataOut {
                sessid: SessionId(1),
                output: Output::Oob(oob("logged_in")),
            },
            ServerToPortal::DataOutMany {
                sessids: vec![SessionId(1), SessionId(2)],
                output: Output::Text("all".into()),
            },
            ServerToPortal::LoggedIn { session: record(1) },
            ServerToPortal::SessionsSync {
                sessions: vec![record(1), record(2)],
            },
            ServerToPortal::Disconnect {
                sessid: SessionId(1),
                reason: "bye".into(),
            },
            ServerToPortal::DisconnectAll {
                reason: "down".into(),
            },
            ServerToPortal::RequestReload {
                reason: "new code".into(),
            },
            ServerToPortal::RequestShutdown {
                reason: String::new(),
            },
            ServerToPortal::Stopping,
        ] {
            round_trip(msg);
        }
    }

    #[test]
    fn split_frames_wait_for_the_rest() {
        let frame = encode_frame(&PortalToServer::Reload, MAX_FRAME_BYTES).unwrap();
        let mut dec = LinkDecoder::<PortalToServer>::new(MAX_FRAME_BYTES);
        let mut buf = BytesMut::new();
        for byte in &frame[..frame.len() - 1] {
            buf.put_u8(*byte);
            assert!(dec.decode(&mut buf).unwrap().is_none());
        }
        buf.put_u8(frame[frame.len() - 1]);
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap().unwrap(),
            PortalToServer::Reload
        );
    }

    #[test]
    fn oversized_frame_is_a_typed_error_and_the_next_frame_still_decodes() {
        let mut dec = LinkDecoder::<PortalToServer>::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(40);
        buf.put_slice(&[0xAB; 10]);
        match dec.decode(&mut buf).unwrap() {
            Some(Err(LinkError::FrameTooLarge { size: 40, max: 16 })) => {}
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        // The rest of the oversized frame arrives with a good frame behind it.
        buf.put_slice(&[0xAB; 30]);
        buf.put_slice(&encode_frame(&PortalToServer::Shutdown, 16).unwrap());
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap().unwrap(),
            PortalToServer::Shutdown
        );
    }

    #[test]
    fn garbage_frame_is_a_typed_error_and_the_next_frame_still_decodes() {
        let mut dec = LinkDecoder::<ServerToPortal>::new(MAX_FRAME_BYTES);
        let mut buf = BytesMut::new();
        buf.put_u32(5);
        buf.put_slice(b"\xc1\xff\x00junk"[..5].as_ref());
        buf.put_slice(&encode_frame(&ServerToPortal::Stopping, MAX_FRAME_BYTES).unwrap());
        assert!(matches!(
            dec.decode(&mut buf).unwrap(),
            Some(Err(LinkError::Decode(_)))
        ));
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap().unwrap(),
            ServerToPortal::Stopping
        );
    }

    #[test]
    fn encoding_refuses_frames_over_the_cap() {
        let big = ServerToPortal::DataOut {
            sessid: SessionId(1),
            output: Output::Text("x".repeat(100)),
        };
        assert!(matches!(
            encode_frame(&big, 50),
            Err(LinkError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn proofs_verify_only_with_the_same_secret_role_and_nonce() {
        let nonce = new_nonce();
        let proof = link_proof("s3cret", LinkRole::Server, &nonce);
        assert!(verify_proof("s3cret", LinkRole::Server, &nonce, &proof).is_ok());
        assert!(verify_proof("other", LinkRole::Server, &nonce, &proof).is_err());
        assert!(verify_proof("s3cret", LinkRole::Portal, &nonce, &proof).is_err());
        assert!(verify_proof("s3cret", LinkRole::Server, &new_nonce(), &proof).is_err());
        assert!(verify_proof("s3cret", LinkRole::Server, &nonce, &proof[..16]).is_err());
        assert_ne!(new_nonce(), nonce);
    }

    #[test]
    fn versions_are_checked() {
        assert!(check_version(LINK_PROTOCOL_VERSION).is_ok());
        assert!(matches!(
            check_version(LINK_PROTOCOL_VERSION + 1),
            Err(LinkError::VersionMismatch { .. })
        ));
    }
}
