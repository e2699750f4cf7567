//! TTYPE (telnet option 24) and MTTS: the three-round terminal-type cycle that tells
//! what the client is and which colours and encodings it handles.
//!
//! This module owns the cycle's state and Evennia's rules for turning answers into
//! [`ClientInfo`]. It never writes to a socket: the caller sends `IAC DO TTYPE`, and for
//! every [`TtypeStep::Ask`] frames [`ttype_send`] with
//! [`super::parser::subnegotiation`]; it feeds each `IAC SB TTYPE IS ... IAC SE` payload
//! to [`TtypeCycle::on_is`].
//!
//! Rounds, as in Evennia: (1) the client name, upper-cased (`MUDLET 4.17`, `TINTIN++`);
//! (2) the terminal type, kept as sent (`XTERM-256COLOR`, `ANSI`); (3) `MTTS <bits>`.
//! The cycle ends after three answers, or as soon as an answer repeats the one before
//! (a client without MTTS repeats itself, and one at the end of its list repeats the
//! last entry).
//!
//! Rules: every answered client gets `ansi`. Client names MUDLET (version 1.1 or later,
//! or no version), XTERM*, *-256COLOR, ATLANTIS, CMUD, KILDCLIENT, MUSHCLIENT, PUTTY,
//! BEIP, POTATO and TINYFUGUE get `xterm256`; *-TRUECOLOR, AXMUD and TINTIN* get
//! `truecolor` and `xterm256` (TINTIN* because TinTin++ answers `TINTIN++`). A terminal
//! type ending in -256COLOR or XTERM gets `xterm256`, one ending in -TRUECOLOR
//! `truecolor` and `xterm256`. MTTS bits only ever switch flags on, as Evennia's
//! `protocol_flags.update` does. Answers longer than [`MAX_TTYPE_BYTES`] are cut there.

/// Telnet option number of TTYPE.
pub const OPT_TTYPE: u8 = 24;
/// TTYPE subnegotiation: the client's answer follows.
pub const TTYPE_IS: u8 = 0;
/// TTYPE subnegotiation: the server asks for the next answer.
pub const TTYPE_SEND: u8 = 1;
/// Longest answer read; the rest is ignored.
pub const MAX_TTYPE_BYTES: usize = 256;
/// Answers asked for before the cycle ends.
pub const TTYPE_ROUNDS: u8 = 3;

/// MTTS bit: ANSI colour.
pub const MTTS_ANSI: u32 = 1;
/// MTTS bit: VT100 codes.
pub const MTTS_VT100: u32 = 2;
/// MTTS bit: UTF-8.
pub const MTTS_UTF8: u32 = 4;
/// MTTS bit: 256 colours.
pub const MTTS_256_COLORS: u32 = 8;
/// MTTS bit: mouse tracking.
pub const MTTS_MOUSE_TRACKING: u32 = 16;
/// MTTS bit: OSC colour palette.
pub const MTTS_OSC_COLOR_PALETTE: u32 = 32;
/// MTTS bit: a screen reader is in use.
pub const MTTS_SCREEN_READER: u32 = 64;
/// MTTS bit: the client is a proxy.
pub const MTTS_PROXY: u32 = 128;
/// MTTS bit: 24-bit colour.
pub const MTTS_TRUECOLOR: u32 = 256;
/// MTTS bit: MNES.
pub const MTTS_MNES: u32 = 512;
/// MTTS bit: MSLP links.
pub const MTTS_MSLP: u32 = 1024;
/// MTTS bit: TLS.
pub const MTTS_SSL: u32 = 2048;

/// Client names that handle xterm 256 colours (Evennia's list).
const XTERM256_CLIENTS: [&str; 9] = [
    "ATLANTIS",
    "CMUD",
    "KILDCLIENT",
    "MUDLET",
    "MUSHCLIENT",
    "PUTTY",
    "BEIP",
    "POTATO",
    "TINYFUGUE",
];

/// The subnegotiation payload that asks for the next answer: `[SEND]`.
pub fn ttype_send() -> Vec<u8> {
    vec![TTYPE_SEND]
}

/// What the TTYPE/MTTS cycle learned about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// First answer, upper-cased (Evennia's `CLIENTNAME`).
    pub client_name: Option<String>,
    /// Second answer as sent (Evennia's `TERM`).
    pub term: Option<String>,
    pub ansi: bool,
    pub xterm256: bool,
    pub truecolor: bool,
    pub utf8: bool,
    pub screenreader: bool,
    /// The MTTS bitfield of the third answer.
    pub mtts: Option<u32>,
}

/// What to do after an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtypeStep {
    /// Send another `IAC SB TTYPE SEND IAC SE`.
    Ask,
    /// The cycle is over; nothing more to send.
    Done(ClientInfo),
}

/// The TTYPE/MTTS cycle of one connection.
#[derive(Debug, Clone, Default)]
pub struct TtypeCycle {
    /// Answers taken so far.
    rounds: u8,
    /// The previous answer, upper-cased, to notice a client that repeats itself.
    previous: Option<String>,
    info: ClientInfo,
    done: bool,
}

impl TtypeCycle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one TTYPE subnegotiation payload (a leading [`TTYPE_IS`] is skipped).
    /// After the cycle is done every further answer gives the same `Done` again.
    pub fn on_is(&mut self, payload: &[u8]) -> TtypeStep {
        if self.done {
            return TtypeStep::Done(self.info.clone());
        }
        let answer = read_answer(payload);
        let upper = answer.to_uppercase();
        if self.previous.as_deref() == Some(upper.as_str()) {
            return self.finish();
        }
        self.rounds += 1;
        match self.rounds {
            1 => self.on_client_name(&upper),
            2 => self.on_term(answer, &upper),
            _ => self.on_mtts(&upper),
        }
        self.previous = Some(upper);
        if self.rounds >= TTYPE_ROUNDS {
            self.finish()
        } else {
            TtypeStep::Ask
        }
    }

    /// What is known so far.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// Whether the cycle has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn finish(&mut self) -> TtypeStep {
        self.done = true;
        TtypeStep::Done(self.info.clone())
    }

    fn on_client_name(&mut self, name: &str) {
        let xterm256 = name.starts_with("XTERM")
            || name.ends_with("-256COLOR")
            || XTERM256_CLIENTS.contains(&name)
            || mudlet_has_xterm256(name);
        let truecolor =
            name.ends_with("-TRUECOLOR") || name == "AXMUD" || name.starts_with("TINTIN");
        self.info.ansi = true;
        self.info.xterm256 |= xterm256 || truecolor;
        self.info.truecolor |= truecolor;
        self.info.client_name = Some(name.to_owned());
    }

    fn on_term(&mut self, term: String, upper: &str) {
        if upper.ends_with("-256COLOR") || upper.ends_with("XTERM") {
            self.info.ansi = true;
            self.info.xterm256 = true;
        }
        if upper.ends_with("-TRUECOLOR") {
            self.info.ansi = true;
            self.info.xterm256 = true;
            self.info.truecolor = true;
        }
        self.info.term = Some(term);
    }

    fn on_mtts(&mut self, answer: &str) {
        let Some(bits) = answer
            .strip_prefix("MTTS")
            .and_then(|rest| rest.trim().parse::<u32>().ok())
        else {
            return;
        };
        let has = |bit: u32| bits & bit != 0;
        self.info.ansi |= has(MTTS_ANSI);
        self.info.utf8 |= has(MTTS_UTF8);
        self.info.xterm256 |= has(MTTS_256_COLORS);
        self.info.screenreader |= has(MTTS_SCREEN_READER);
        self.info.truecolor |= has(MTTS_TRUECOLOR);
        self.info.mtts = Some(bits);
    }
}

/// The text of an answer: a leading IS skipped, cut at [`MAX_TTYPE_BYTES`], control
/// characters dropped, trimmed.
fn read_answer(payload: &[u8]) -> String {
    let payload = payload.strip_prefix(&[TTYPE_IS]).unwrap_or(payload);
    let cut = &payload[..payload.len().min(MAX_TTYPE_BYTES)];
    String::from_utf8_lossy(cut)
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `MUDLET` with no version or a version of at least 1.1.
fn mudlet_has_xterm256(name: &str) -> bool {
    let Some(version) = name.strip_prefix("MUDLET") else {
        return false;
    };
    let version = version.trim();
    if version.is_empty() {
        return true;
    }
    let mut parts = version.split('.').map(leading_number);
    let major = parts.next().flatten();
    let minor = parts.next().flatten().unwrap_or(0);
    major.is_some_and(|major| (major, minor) >= (1, 1))
}

/// The number at the start of `part` (`17` of `17-dev`), `None` without one.
fn leading_number(part: &str) -> Option<u32> {
    let digits = part
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(part.len());
    part[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(text: &str) -> Vec<u8> {
        let mut payload = vec![TTYPE_IS];
        payload.extend_from_slice(text.as_bytes());
        payload
    }

    #[test]
    fn send_payload() {
        assert_eq!(ttype_send(), vec![1]);
    }

    #[test]
    fn mudlet_cycle() {
        let mut cycle = TtypeCycle::new();
        assert_eq!(cycle.on_is(&is("Mudlet 4.17")), TtypeStep::Ask);
        assert_eq!(cycle.on_is(&is("XTERM-256COLOR")), TtypeStep::Ask);
        let expected = ClientInfo {
            client_name: Some("MUDLET 4.17".to_owned()),
            term: Some("XTERM-256COLOR".to_owned()),
            ansi: true,
            xterm256: true,
            truecolor: false,
            utf8: false,
            screenreader: false,
            mtts: Some(137),
        };
        assert_eq!(
            cycle.on_is(&is("MTTS 137")),
            TtypeStep::Done(expected.clone())
        );
        assert!(cycle.is_done());
        assert_eq!(cycle.on_is(&is("MTTS 137")), TtypeStep::Done(expected));
    }

    #[test]
    fn repeating_client_stops_the_cycle() {
        let mut cycle = TtypeCycle::new();
        assert_eq!(cycle.on_is(&is("TINTIN++")), TtypeStep::Ask);
        let expected = ClientInfo {
            client_name: Some("TINTIN++".to_owned()),
            ansi: true,
            xterm256: true,
            truecolor: true,
            ..ClientInfo::default()
        };
        assert_eq!(cycle.on_is(&is("tintin++")), TtypeStep::Done(expected));
    }

    #[test]
    fn last_entry_repeated_stops_after_two() {
        let mut cycle = TtypeCycle::new();
        assert_eq!(cycle.on_is(&is("MUSHCLIENT")), TtypeStep::Ask);
        assert_eq!(cycle.on_is(&is("ANSI")), TtypeStep::Ask);
        let step = cycle.on_is(&is("ANSI"));
        assert_eq!(
            step,
            TtypeStep::Done(ClientInfo {
                client_name: Some("MUSHCLIENT".to_owned()),
                term: Some("ANSI".to_owned()),
                ansi: true,
                xterm256: true,
                ..ClientInfo::default()
            })
        );
    }

    #[test]
    fn mtts_bits() {
        let mut cycle = TtypeCycle::new();
        cycle.on_is(&is("SOMECLIENT"));
        cycle.on_is(&is("VT100"));
        let TtypeStep::Done(info) = cycle.on_is(&is("MTTS 2047")) else {
            panic!("three answers end the cycle");
        };
        assert!(info.ansi && info.xterm256 && info.utf8 && info.screenreader && info.truecolor);
        assert_eq!(info.mtts, Some(2047));

        let mut plain = TtypeCycle::new();
        plain.on_is(&is("SOMECLIENT"));
        plain.on_is(&is("VT100"));
        let TtypeStep::Done(info) = plain.on_is(&is("MTTS lots")) else {
            panic!("three answers end the cycle");
        };
        assert_eq!(
            info,
            ClientInfo {
                client_name: Some("SOMECLIENT".to_owned()),
                term: Some("VT100".to_owned()),
                ansi: true,
                ..ClientInfo::default()
            }
        );
    }

    #[test]
    fn client_name_rules() {
        let first = |name: &str| {
            let mut cycle = TtypeCycle::new();
            cycle.on_is(&is(name));
            cycle.info().clone()
        };
        for name in [
            "MUDLET",
            "MUDLET 1.1",
            "Mudlet 4.17-dev",
            "xterm",
            "screen-256color",
            "CMUD",
            "PUTTY",
            "TINYFUGUE",
        ] {
            let info = first(name);
            assert!(info.xterm256 && info.ansi && !info.truecolor, "{name}");
        }
        for name in ["MUDLET 1.0", "MUDLET beta", "ZMUD", ""] {
            let info = first(name);
            assert!(info.ansi && !info.xterm256 && !info.truecolor, "{name}");
        }
        for name in ["AXMUD", "TINTIN", "TINTIN++", "xterm-truecolor"] {
            let info = first(name);
            assert!(info.xterm256 && info.truecolor, "{name}");
        }
    }

    #[test]
    fn long_and_odd_payloads_are_safe() {
        let mut cycle = TtypeCycle::new();
        let mut long = vec![TTYPE_IS];
        long.extend(std::iter::repeat_n(0xE2, 10_000));
        assert_eq!(cycle.on_is(&long), TtypeStep::Ask);
        let name_len = cycle.info().client_name.as_ref().map(|n| n.chars().count());
        assert!(name_len.is_some_and(|len| len <= MAX_TTYPE_BYTES));
        assert_eq!(cycle.on_is(&[]), TtypeStep::Ask);
        assert!(matches!(
            cycle.on_is(&[TTYPE_IS, 0xFF, b'\n']),
            TtypeStep::Done(_)
        ));
        assert!(cycle.is_done());
        assert_eq!(cycle.info().mtts, None);
    }
}
