//! What the Portal and the Server both know about a session: typed ids, the
//! synced session record ([`SessionSyncData`]), its protocol flags and the
//! input counters.
//!
//! This is plain data with no I/O. The Portal keeps one record per connection
//! and is its source of truth across Server restarts; the Server keeps a mirror.
//! Both update the counters with the same [`SessionSyncData::record_input`], so
//! the two copies never drift.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A connection's id, allocated by the Portal and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

/// Session ids of Portal `n` start at `n * PORTAL_ID_STRIDE`, so several Portals
/// serving one Server never hand out the same id (Portal 0, the default, counts
/// from 1 as before).
pub const PORTAL_ID_STRIDE: u64 = 1_000_000_000_000_000;

/// The highest `portal.id` (its ids must still fit in a `u64`).
pub const MAX_PORTAL_ID: u16 = 9_999;

impl SessionId {
    /// The `portal.id` of the Portal that allocated this id.
    pub fn portal(self) -> u16 {
        u16::try_from(self.0 / PORTAL_ID_STRIDE).unwrap_or(u16::MAX)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An account's database id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub i32);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A character's database id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CharacterId(pub i32);

impl fmt::Display for CharacterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A room's database id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub i32);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Milliseconds since the Unix epoch: comparable across the two processes.
pub type UnixMillis = u64;

/// The wall clock in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What a protocol negotiated or a player chose for their client.
///
/// Every field has a default so that a record written by an older build still
/// decodes after a reload brings a newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolFlags {
    /// Character encoding of input and output (`utf-8`, `latin-1`).
    pub encoding: String,
    /// Strip colour and decoration for screen readers.
    pub screenreader: bool,
    /// Strip colour.
    pub nocolor: bool,
    pub ansi: bool,
    pub xterm256: bool,
    pub truecolor: bool,
    pub utf8: bool,
    /// Output is zlib-compressed (MCCP2).
    pub mccp: bool,
    /// The client may compress its input (MCCP3 agreed).
    pub mccp3: bool,
    /// The client takes out-of-band data (GMCP or MSDP).
    pub oob: bool,
    pub gmcp: bool,
    pub msdp: bool,
    /// Prompts end with IAC EOR.
    pub eor: bool,
    /// Suppress Go-Ahead was agreed: no IAC GA after prompts.
    pub nogoahead: bool,
    /// The client reports its window size (NAWS).
    pub naws: bool,
    /// The client answered TTYPE.
    pub ttype: bool,
    pub client_name: Option<String>,
    /// The terminal type from the second TTYPE answer.
    pub term: Option<String>,
    /// The MTTS bit field from the third TTYPE answer.
    pub mtts: Option<u32>,
    pub screen_width: u16,
    pub screen_height: u16,
}

impl Default for ProtocolFlags {
    fn default() -> Self {
        Self {
            encoding: "utf-8".to_owned(),
            screenreader: false,
            nocolor: false,
            // A client that negotiates nothing still gets ANSI colour, as
            // in Evennia; `option nocolor = on` turns it off.
            ansi: true,
            xterm256: false,
            truecolor: false,
            utf8: true,
            mccp: false,
            mccp3: false,
            oob: false,
            gmcp: false,
            msdp: false,
            eor: false,
            nogoahead: false,
            naws: false,
            ttype: false,
            client_name: None,
            term: None,
            mtts: None,
            screen_width: 78,
            screen_height: 45,
        }
    }
}

impl ProtocolFlags {
    /// Takes the options a player or game can change (`option`,
    /// `client_options`, `screenreader`, `encoding`) from `other`, and keeps
    /// what this side negotiated with the client (compression, OOB, EOR, GA,
    /// NAWS, TTYPE), which only the connection knows. The window size is the
    /// connection's too: NAWS reports it, and a size set with `option` holds
    /// on the Server until the client next reports one.
    pub fn adopt_user_options(&mut self, other: &ProtocolFlags) {
        self.encoding = other.encoding.clone();
        self.screenreader = other.screenreader;
        self.nocolor = other.nocolor;
        self.ansi = other.ansi;
        self.xterm256 = other.xterm256;
        self.truecolor = other.truecolor;
        self.utf8 = other.utf8;
        self.client_name = other.client_name.clone();
    }
}

/// The synced session record (Evennia's `SESSION_SYNC_ATTRS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSyncData {
    pub sessid: SessionId,
    /// `telnet`, `telnet/ssl` or `websocket`.
    pub protocol_key: String,
    /// The client's IP address.
    pub address: String,
    /// When the connection was made; reset at login.
    pub conn_time: UnixMillis,
    /// Last input of any kind, the idle keepalive included.
    pub cmd_last: UnixMillis,
    /// Last real command: what `who` shows as idle time.
    pub cmd_last_visible: UnixMillis,
    /// Number of real commands.
    pub cmd_total: u64,
    #[serde(default)]
    pub protocol_flags: ProtocolFlags,
    pub logged_in: bool,
    pub account_id: Option<AccountId>,
    pub account_name: Option<String>,
    pub puppet_id: Option<CharacterId>,
}

impl SessionSyncData {
    /// A fresh, not-logged-in session.
    pub fn new(
        sessid: SessionId,
        protocol_key: &str,
        address: &str,
        now: UnixMillis,
        protocol_flags: ProtocolFlags,
    ) -> Self {
        Self {
            sessid,
            protocol_key: protocol_key.to_owned(),
            address: address.to_owned(),
            conn_time: now,
            cmd_last: now,
            cmd_last_visible: now,
            cmd_total: 0,
            protocol_flags,
            logged_in: false,
            account_id: None,
            account_name: None,
            puppet_id: None,
        }
    }

    /// Updates the counters for one line of input. The idle keepalive (the
    /// configured idle command, or `idle`) only refreshes `cmd_last`.
    pub fn record_input(&mut self, line: &str, idle_command: &str, now: UnixMillis) {
        self.cmd_last = now;
        if !is_idle_command(line, idle_command) {
            self.cmd_last_visible = now;
            self.cmd_total += 1;
        }
    }

    /// Marks the session logged in to `account`; as in Evennia the connection
    /// time restarts at login.
    pub fn log_in(&mut self, account_id: AccountId, account_name: &str, now: UnixMillis) {
        self.logged_in = true;
        self.account_id = Some(account_id);
        self.account_name = Some(account_name.to_owned());
        self.puppet_id = None;
        self.conn_time = now;
    }

    /// Seconds since the last real command.
    pub fn idle_secs(&self, now: UnixMillis) -> u64 {
        now.saturating_sub(self.cmd_last_visible) / 1000
    }

    /// Seconds since connection (or login).
    pub fn connected_secs(&self, now: UnixMillis) -> u64 {
        now.saturating_sub(self.conn_time) / 1000
    }
}

/// True for the keepalive line that must never be answered.
pub fn is_idle_command(line: &str, idle_command: &str) -> bool {
    let line = line.trim();
    line == idle_command || line == "idle"
}

/// A player's input line without control characters (C0, DEL and C1) other than tab.
///
/// They mean nothing in a command, and a line such as `say` passes its text on to other
/// players' terminals, where ESC or the 8-bit CSI (U+009B) would start an escape
/// sequence. Every protocol's input goes through this before it reaches the game.
pub fn without_controls(line: String) -> String {
    if line.chars().any(|c| c.is_control() && c != '\t') {
        line.chars()
            .filter(|&c| !c.is_control() || c == '\t')
            .collect()
    } else {
        line
    }
}

/// The key every per-source limit counts under: the IPv4 address, or the
/// IPv6 /64 (one subscriber's whole network); an IPv4-mapped IPv6 address
/// counts as its IPv4 address.
pub fn source_key(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// True for a connection from this machine (127.0.0.0/8, ::1, or ::1's
/// IPv4-mapped form of 127.0.0.0/8).
pub fn is_loopback_address(address: &str) -> bool {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_addresses_in_every_spelling() {
        for address in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback_address(address), "{address}");
        }
        for address in [
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "not an address",
        ] {
            assert!(!is_loopback_address(address), "{address}");
        }
    }

    use super::*;

    fn session() -> SessionSyncData {
        SessionSyncData::new(
            SessionId(7),
            "telnet",
            "127.0.0.1",
            1_000,
            ProtocolFlags::default(),
        )
    }

    #[test]
    fn idle_keepalive_refreshes_only_cmd_last() {
        let mut s = session();
        s.record_input("idle", "idle", 5_000);
        assert_eq!(s.cmd_last, 5_000);
        assert_eq!(s.cmd_last_visible, 1_000);
        assert_eq!(s.cmd_total, 0);
        s.record_input("  ping  ", "ping", 6_000);
        assert_eq!(
            s.cmd_total, 0,
            "the configured idle command is a keepalive too"
        );
    }

    #[test]
    fn real_commands_count() {
        let mut s = session();
        s.record_input("look", "idle", 9_000);
        s.record_input("who", "idle", 12_500);
        assert_eq!(s.cmd_total, 2);
        assert_eq!(s.cmd_last_visible, 12_500);
        assert_eq!(s.idle_secs(15_600), 3);
    }

    #[test]
    fn adopting_user_options_keeps_what_the_connection_negotiated() {
        let mut portal = ProtocolFlags {
            mccp: true,
            gmcp: true,
            eor: true,
            mtts: Some(137),
            ..ProtocolFlags::default()
        };
        let server = ProtocolFlags {
            screenreader: true,
            encoding: "latin-1".into(),
            ..ProtocolFlags::default()
        };
        portal.adopt_user_options(&server);
        assert!(portal.screenreader && portal.mccp && portal.gmcp && portal.eor);
        assert_eq!(portal.encoding, "latin-1");
        assert_eq!(portal.mtts, Some(137));
    }

    #[test]
    fn login_restarts_connection_time() {
        let mut s = session();
        s.log_in(AccountId(3), "Alice", 20_000);
        assert!(s.logged_in);
        assert_eq!(s.account_name.as_deref(), Some("Alice"));
        assert_eq!(s.connected_secs(21_000), 1);
    }

    #[test]
    fn input_lines_lose_every_control_character_but_tab() {
        assert_eq!(without_controls("look".to_owned()), "look");
        assert_eq!(
            without_controls("say \u{1b}[31mred\u{9b}2J\u{85}\tok\u{7f}\r\n".to_owned()),
            "say [31mred2J\tok"
        );
    }
}
