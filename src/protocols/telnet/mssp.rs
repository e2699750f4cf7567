//! MSSP (telnet option 70): the table MUD crawlers read, as one subnegotiation payload.
//!
//! This module owns which variables are advertised and how they are written. It never
//! counts players, reads a clock or touches a socket: the caller fills [`MsspInfo`] and
//! frames the payload with [`super::parser::subnegotiation`] after the client's `DO MSSP`.
//!
//! The payload is `MSSP_VAR name MSSP_VAL value` pairs, in this order: `NAME`, `PLAYERS`,
//! `UPTIME` (unix seconds of the portal's start), `PORT` (one `MSSP_VAL` per port, in the
//! order given; left out when there is none), `CRAWL DELAY` -1, `CODEBASE`, `FAMILY`
//! Custom, `ANSI` 1, `GMCP` and `MSDP` (1 or 0), `MCCP` 1, `MCP` 0, `MSP` 0, `MXP` 0,
//! `PUEBLO` 0, `SSL` (the first TLS port, 0 without one), `UTF-8` 1, `VT100` 1,
//! `XTERM 256 COLORS` 1, `XTERM TRUE COLORS` 1. `HOSTNAME` is left out: the crawler
//! already knows how it reached us. Bytes 0, 1, 2 and 255 are removed from every name
//! and value, so no setting can break the framing.

/// Telnet option number of MSSP.
pub const OPT_MSSP: u8 = 70;
/// MSSP: a variable name follows.
pub const MSSP_VAR: u8 = 1;
/// MSSP: a value follows.
pub const MSSP_VAL: u8 = 2;

/// What the MSSP table reports; the caller gathers it when the client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsspInfo {
    /// The game's name (`NAME`).
    pub name: String,
    /// Players logged in now (`PLAYERS`).
    pub players: usize,
    /// Unix seconds of the portal's start (`UPTIME`): players stay connected across
    /// Server restarts, so the portal's age is the one crawlers care about.
    pub uptime: u64,
    /// Telnet ports (`PORT`), in the order they are advertised.
    pub ports: Vec<u16>,
    /// Codebase and version (`CODEBASE`).
    pub codebase: String,
    /// Telnet-over-TLS ports; the first is advertised as `SSL`.
    pub ssl_ports: Vec<u16>,
    /// Whether GMCP is offered (`GMCP`).
    pub gmcp: bool,
    /// Whether MSDP is offered (`MSDP`).
    pub msdp: bool,
}

/// The MSSP subnegotiation payload for `info`, without `IAC SB MSSP` and `IAC SE`.
pub fn mssp_payload(info: &MsspInfo) -> Vec<u8> {
    let flag = |on: bool| if on { "1" } else { "0" };
    let ports: Vec<String> = info.ports.iter().map(u16::to_string).collect();
    let ssl = info.ssl_ports.first().copied().unwrap_or(0).to_string();

    let mut out = Vec::with_capacity(512);
    push(&mut out, "NAME", &[&info.name]);
    push(&mut out, "PLAYERS", &[&info.players.to_string()]);
    push(&mut out, "UPTIME", &[&info.uptime.to_string()]);
    if !ports.is_empty() {
        let ports: Vec<&str> = ports.iter().map(String::as_str).collect();
        push(&mut out, "PORT", &ports);
    }
    push(&mut out, "CRAWL DELAY", &["-1"]);
    push(&mut out, "CODEBASE", &[&info.codebase]);
    push(&mut out, "FAMILY", &["Custom"]);
    push(&mut out, "ANSI", &["1"]);
    push(&mut out, "GMCP", &[flag(info.gmcp)]);
    push(&mut out, "MSDP", &[flag(info.msdp)]);
    push(&mut out, "MCCP", &["1"]);
    push(&mut out, "MCP", &["0"]);
    push(&mut out, "MSP", &["0"]);
    push(&mut out, "MXP", &["0"]);
    push(&mut out, "PUEBLO", &["0"]);
    push(&mut out, "SSL", &[&ssl]);
    push(&mut out, "UTF-8", &["1"]);
    push(&mut out, "VT100", &["1"]);
    push(&mut out, "XTERM 256 COLORS", &["1"]);
    push(&mut out, "XTERM TRUE COLORS", &["1"]);
    out
}

/// Appends `MSSP_VAR name (MSSP_VAL value)*`.
fn push(out: &mut Vec<u8>, name: &str, values: &[&str]) {
    out.push(MSSP_VAR);
    push_clean(out, name);
    for value in values {
        out.push(MSSP_VAL);
        push_clean(out, value);
    }
}

/// Appends `text` without the bytes that would end a name or value or the framing.
fn push_clean(out: &mut Vec<u8>, text: &str) {
    out.extend(
        text.bytes()
            .filter(|byte| !matches!(*byte, 0 | MSSP_VAR | MSSP_VAL | 255)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> MsspInfo {
        MsspInfo {
            name: "gatehouse".to_owned(),
            players: 3,
            uptime: 1_700_000_000,
            ports: vec![4000, 4001],
            codebase: "gatehouse 0.1.0".to_owned(),
            ssl_ports: vec![4003, 4004],
            gmcp: true,
            msdp: false,
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn golden_payload() {
        let expected: &[u8] = b"\x01NAME\x02gatehouse\
\x01PLAYERS\x023\
\x01UPTIME\x021700000000\
\x01PORT\x024000\x024001\
\x01CRAWL DELAY\x02-1\
\x01CODEBASE\x02gatehouse 0.1.0\
\x01FAMILY\x02Custom\
\x01ANSI\x021\
\x01GMCP\x021\
\x01MSDP\x020\
\x01MCCP\x021\
\x01MCP\x020\
\x01MSP\x020\
\x01MXP\x020\
\x01PUEBLO\x020\
\x01SSL\x024003\
\x01UTF-8\x021\
\x01VT100\x021\
\x01XTERM 256 COLORS\x021\
\x01XTERM TRUE COLORS\x021";
        assert_eq!(mssp_payload(&info()), expected.to_vec());
    }

    #[test]
    fn name_and_one_val_per_port() {
        for ports in [vec![], vec![4000], vec![4000, 4001, 4002]] {
            let payload = mssp_payload(&MsspInfo {
                ports: ports.clone(),
                ..info()
            });
            assert!(contains(&payload, b"\x01NAME\x02gatehouse"));
            let vals_in_port = match payload.windows(5).position(|w| w == b"\x01PORT") {
                Some(start) => payload[start + 1..]
                    .iter()
                    .take_while(|byte| **byte != MSSP_VAR)
                    .filter(|byte| **byte == MSSP_VAL)
                    .count(),
                None => 0,
            };
            assert_eq!(vals_in_port, ports.len());
        }
    }

    #[test]
    fn no_ssl_port_is_zero_and_no_hostname() {
        let payload = mssp_payload(&MsspInfo {
            ssl_ports: vec![],
            ..info()
        });
        assert!(contains(&payload, b"\x01SSL\x020\x01"));
        assert!(!contains(&payload, b"HOSTNAME"));
    }

    #[test]
    fn framing_bytes_are_removed_from_values() {
        let payload = mssp_payload(&MsspInfo {
            name: "ga\u{0}te\u{1}ho\u{2}use".to_owned(),
            codebase: "x\u{1}y".to_owned(),
            ..info()
        });
        assert!(contains(&payload, b"\x01NAME\x02gatehouse\x01"));
        assert!(contains(&payload, b"\x01CODEBASE\x02xy\x01"));
        assert!(!payload.contains(&0) && !payload.contains(&255));
    }
}
