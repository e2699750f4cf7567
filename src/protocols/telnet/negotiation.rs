//! The MUD option suite a telnet session offers and the client's answers, as
//! a sans-IO state machine: telnet events in, effects out (bytes to send,
//! flags that changed, out-of-band input, compression to start).
//!
//! It knows nothing of sockets or actors; `TelnetSession` carries out the
//! effects. Options offered at connect: SGA, ECHO (on request only), NAWS,
//! TTYPE with the MTTS cycle, MCCP2, GMCP, MSDP, MSSP, EOR and CHARSET.

use std::collections::BTreeSet;

use super::mssp::{mssp_payload, MsspInfo, OPT_MSSP};
use super::mtts::{ttype_send, TtypeCycle, TtypeStep, OPT_TTYPE};
use super::oob::{gmcp_decode, msdp_decode, OPT_GMCP, OPT_MSDP};
use super::parser::{subnegotiation, Encoding, TelnetEvent, TelnetParser, OPT_ECHO, OPT_SGA};
use crate::protocols::link::OobMessage;
use crate::session::ProtocolFlags;

/// Negotiate About Window Size (RFC 1073).
pub const OPT_NAWS: u8 = 31;
/// End of Record (RFC 885): marks the end of a prompt.
pub const OPT_EOR: u8 = 25;
/// CHARSET (RFC 2066).
pub const OPT_CHARSET: u8 = 42;
/// MUD Client Compression Protocol v2: zlib output from the server.
pub const OPT_MCCP2: u8 = 86;
/// MCCP3: zlib input from the client.
pub const OPT_MCCP3: u8 = 87;

const CHARSET_REQUEST: u8 = 1;
const CHARSET_ACCEPTED: u8 = 2;

/// What the session must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write these bytes as they are (before any compression that follows).
    Send(Vec<u8>),
    /// Everything written from now on is zlib-compressed (MCCP2).
    StartCompression,
    /// Stop compressing (the client turned MCCP2 off).
    StopCompression,
    /// Everything the client sends from here on is zlib-compressed (MCCP3).
    StartDecompression,
    /// The text encoding agreed by CHARSET.
    SetEncoding(Encoding),
    /// Protocol flags changed; the Server should hear of it.
    FlagsChanged,
    /// An out-of-band call from the client (GMCP or MSDP).
    Oob(OobMessage),
    /// Every offered option has been answered (or the wait timed out).
    Settled,
}

/// Options we offer to do ourselves (WILL) and ask the client to do (DO).
const LOCAL_OFFERS: [u8; 8] = [
    OPT_SGA,
    OPT_MCCP2,
    OPT_MCCP3,
    OPT_GMCP,
    OPT_MSDP,
    OPT_MSSP,
    OPT_EOR,
    OPT_CHARSET,
];
const REMOTE_OFFERS: [u8; 2] = [OPT_NAWS, OPT_TTYPE];

/// The negotiation state of one session.
#[derive(Debug)]
pub struct Negotiator {
    /// Offers not answered yet.
    pending: BTreeSet<(u8, bool)>,
    ttype: Option<TtypeCycle>,
    settled: bool,
    mssp: MsspInfo,
}

impl Negotiator {
    pub fn new(mssp: MsspInfo) -> Self {
        Self {
            pending: BTreeSet::new(),
            ttype: None,
            settled: false,
            mssp,
        }
    }

    /// A negotiator for a connection whose negotiation another Portal process
    /// finished: nothing is offered or awaited.
    pub fn resumed(mssp: MsspInfo) -> Self {
        Self {
            settled: true,
            ..Self::new(mssp)
        }
    }

    /// The opening offers; registers every supported option with `parser`.
    pub fn offer(&mut self, parser: &mut TelnetParser) -> Vec<u8> {
        parser.support_local(OPT_ECHO);
        let mut out = Vec::new();
        for option in LOCAL_OFFERS {
            parser.support_local(option);
            if let Some(bytes) = parser.request_local(option, true) {
                out.extend_from_slice(&bytes);
                self.pending.insert((option, true));
            }
        }
        for option in REMOTE_OFFERS {
            parser.support_remote(option);
            if let Some(bytes) = parser.request_remote(option, true) {
                out.extend_from_slice(&bytes);
                self.pending.insert((option, false));
            }
        }
        out
    }

    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// The negotiation wait is over: whatever is still unanswered is taken as
    /// refused (clients that negotiate nothing still work as line terminals).
    pub fn timeout(&mut self, effects: &mut Vec<Effect>) {
        // A slow client may still finish its TTYPE answers; they are used
        // when they come.
        self.pending.clear();
        self.settle(effects);
    }

    fn answered(&mut self, option: u8, local: bool, effects: &mut Vec<Effect>) {
        self.pending.remove(&(option, local));
        if self.pending.is_empty() && self.ttype.is_none() {
            self.settle(effects);
        }
    }

    fn settle(&mut self, effects: &mut Vec<Effect>) {
        if !self.settled {
            self.settled = true;
            effects.push(Effect::FlagsChanged);
            effects.push(Effect::Settled);
        }
    }

    /// Updates the MSSP figures sent to crawlers.
    pub fn set_players(&mut self, players: usize) {
        self.mssp.players = players;
    }

    /// Handles one parser event that concerns options.
    pub fn on_event(
        &mut self,
        event: TelnetEvent,
        flags: &mut ProtocolFlags,
        effects: &mut Vec<Effect>,
    ) {
        match event {
            TelnetEvent::OptionEnabled { option, local } => {
                self.enabled(option, local, flags, effects);
                self.answered(option, local, effects);
            }
            TelnetEvent::OptionDisabled { option, local } => {
                self.disabled(option, local, flags, effects);
                self.answered(option, local, effects);
            }
            TelnetEvent::Subnegotiation { option, data } => {
                self.subnegotiation(option, &data, flags, effects)
            }
            TelnetEvent::Line(_) | TelnetEvent::Error(_) | TelnetEvent::Send(_) => {}
        }
    }

    fn enabled(
        &mut self,
        option: u8,
        local: bool,
        flags: &mut ProtocolFlags,
        effects: &mut Vec<Effect>,
    ) {
        match (option, local) {
            (OPT_MCCP2, true) => {
                // The marker goes out uncompressed; everything after it is
                // compressed.
                effects.push(Effect::Send(subnegotiation(OPT_MCCP2, &[])));
                effects.push(Effect::StartCompression);
                flags.mccp = true;
            }
            (OPT_MCCP3, true) => flags.mccp3 = true,
            (OPT_GMCP, true) => {
                flags.gmcp = true;
                flags.oob = true;
            }
            (OPT_MSDP, true) => {
                flags.msdp = true;
                flags.oob = true;
            }
            (OPT_MSSP, true) => effects.push(Effect::Send(subnegotiation(
                OPT_MSSP,
                &mssp_payload(&self.mssp),
            ))),
            (OPT_EOR, true) => flags.eor = true,
            (OPT_SGA, true) => flags.nogoahead = true,
            (OPT_CHARSET, true) => {
                let mut request = vec![CHARSET_REQUEST];
                request.extend_from_slice(b";UTF-8;ISO-8859-1");
                effects.push(Effect::Send(subnegotiation(OPT_CHARSET, &request)));
            }
            (OPT_NAWS, false) => flags.naws = true,
            (OPT_TTYPE, false) => {
                self.ttype = Some(TtypeCycle::new());
                effects.push(Effect::Send(subnegotiation(OPT_TTYPE, &ttype_send())));
            }
            _ => return,
        }
        effects.push(Effect::FlagsChanged);
    }

    fn disabled(
        &mut self,
        option: u8,
        local: bool,
        flags: &mut ProtocolFlags,
        effects: &mut Vec<Effect>,
    ) {
        match (option, local) {
            (OPT_MCCP2, true) => {
                if flags.mccp {
                    effects.push(Effect::StopCompression);
                }
                flags.mccp = false;
            }
            (OPT_MCCP3, true) => flags.mccp3 = false,
            (OPT_GMCP, true) => flags.gmcp = false,
            (OPT_MSDP, true) => flags.msdp = false,
            (OPT_EOR, true) => flags.eor = false,
            (OPT_SGA, true) => flags.nogoahead = false,
            (OPT_NAWS, false) => flags.naws = false,
            (OPT_TTYPE, false) => self.ttype = None,
            _ => return,
        }
        flags.oob = flags.gmcp || flags.msdp;
        effects.push(Effect::FlagsChanged);
    }

    fn subnegotiation(
        &mut self,
        option: u8,
        data: &[u8],
        flags: &mut ProtocolFlags,
        effects: &mut Vec<Effect>,
    ) {
        match option {
            OPT_NAWS => {
                if let [w1, w0, h1, h0] = data {
                    let width = u16::from_be_bytes([*w1, *w0]);
                    let height = u16::from_be_bytes([*h1, *h0]);
                    // 0 means "unknown" in NAWS; keep what we had.
                    if width > 0 {
                        flags.screen_width = width;
                    }
                    if height > 0 {
                        flags.screen_height = height;
                    }
                    effects.push(Effect::FlagsChanged);
                }
            }
            OPT_TTYPE => {
                let Some(cycle) = &mut self.ttype else {
                    return;
                };
                match cycle.on_is(data) {
                    TtypeStep::Ask => {
                        effects.push(Effect::Send(subnegotiation(OPT_TTYPE, &ttype_send())))
                    }
                    TtypeStep::Done(info) => {
                        self.ttype = None;
                        flags.client_name = info.client_name;
                        flags.term = info.term;
                        flags.ansi = info.ansi;
                        flags.xterm256 = info.xterm256;
                        flags.truecolor = info.truecolor;
                        flags.utf8 = info.utf8 || flags.utf8;
                        flags.screenreader = info.screenreader || flags.screenreader;
                        flags.mtts = info.mtts;
                        flags.ttype = true;
                        effects.push(Effect::FlagsChanged);
                        if self.pending.is_empty() {
                            self.settle(effects);
                        }
                    }
                }
            }
            OPT_CHARSET => {
                if let Some((&CHARSET_ACCEPTED, name)) = data.split_first() {
                    let name = String::from_utf8_lossy(name);
                    if let Some(encoding) = Encoding::from_name(name.trim()) {
                        flags.encoding = encoding.name().to_owned();
                        effects.push(Effect::SetEncoding(encoding));
                        effects.push(Effect::FlagsChanged);
                    }
                }
                // CHARSET REJECTED (3) or anything else: stay with the default.
            }
            OPT_MCCP3 if flags.mccp3 => effects.push(Effect::StartDecompression),
            OPT_GMCP => {
                if let Some(msg) = gmcp_decode(data) {
                    effects.push(Effect::Oob(msg));
                }
            }
            OPT_MSDP => {
                for msg in msdp_decode(data) {
                    effects.push(Effect::Oob(msg));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::telnet::parser::{TelnetLimits, DO, IAC, SB, SE, WILL};

    fn setup() -> (Negotiator, TelnetParser, ProtocolFlags) {
        let info = MsspInfo {
            name: "Test".into(),
            players: 3,
            uptime: 1,
            ports: vec![4000],
            codebase: "gatehouse".into(),
            ssl_ports: vec![],
            gmcp: true,
            msdp: true,
        };
        let mut parser = TelnetParser::new(TelnetLimits {
            max_line_chars: 100,
            max_subnegotiation_bytes: 1000,
        });
        let mut n = Negotiator::new(info);
        let offers = n.offer(&mut parser);
        assert!(offers.windows(3).any(|w| w == [IAC, WILL, OPT_MCCP2]));
        assert!(offers.windows(3).any(|w| w == [IAC, DO, OPT_NAWS]));
        (n, parser, ProtocolFlags::default())
    }

    /// Feeds client bytes through the parser and the negotiator.
    fn feed(
        n: &mut Negotiator,
        p: &mut TelnetParser,
        f: &mut ProtocolFlags,
        bytes: &[u8],
    ) -> Vec<Effect> {
        let mut events = Vec::new();
        p.feed(bytes, &mut events);
        let mut effects = Vec::new();
        for e in events {
            n.on_event(e, f, &mut effects);
        }
        effects
    }

    #[test]
    fn naws_sets_the_window_size() {
        let (mut n, mut p, mut f) = setup();
        feed(&mut n, &mut p, &mut f, &[IAC, WILL, OPT_NAWS]);
        let fx = feed(
            &mut n,
            &mut p,
            &mut f,
            &[IAC, SB, OPT_NAWS, 0, 132, 0, 50, IAC, SE],
        );
        assert_eq!((f.screen_width, f.screen_height), (132, 50));
        assert!(f.naws);
        assert!(fx.contains(&Effect::FlagsChanged));
        // A width of 255 arrives doubled and is read as one byte.
        feed(
            &mut n,
            &mut p,
            &mut f,
            &[IAC, SB, OPT_NAWS, 0, IAC, IAC, 0, 0, IAC, SE],
        );
        assert_eq!(
            (f.screen_width, f.screen_height),
            (255, 50),
            "0 height keeps the old one"
        );
    }

    #[test]
    fn mccp2_sends_the_marker_then_compresses() {
        let (mut n, mut p, mut f) = setup();
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, DO, OPT_MCCP2]);
        assert_eq!(fx[0], Effect::Send(vec![IAC, SB, OPT_MCCP2, IAC, SE]));
        assert_eq!(fx[1], Effect::StartCompression);
        assert!(f.mccp);
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, 254, OPT_MCCP2]);
        assert!(fx.contains(&Effect::StopCompression));
        assert!(!f.mccp);
    }

    #[test]
    fn mccp3_watches_for_the_start_marker_only_once_agreed() {
        let (mut n, mut p, mut f) = setup();
        let early = feed(&mut n, &mut p, &mut f, &[IAC, SB, OPT_MCCP3, IAC, SE]);
        assert!(
            !early.contains(&Effect::StartDecompression),
            "not agreed yet"
        );
        feed(&mut n, &mut p, &mut f, &[IAC, DO, OPT_MCCP3]);
        assert!(f.mccp3);
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, SB, OPT_MCCP3, IAC, SE]);
        assert!(fx.contains(&Effect::StartDecompression));
    }

    #[test]
    fn the_ttype_cycle_fills_in_the_client() {
        let (mut n, mut p, mut f) = setup();
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, WILL, OPT_TTYPE]);
        assert!(fx.contains(&Effect::Send(subnegotiation(OPT_TTYPE, &ttype_send()))));
        for answer in ["TINTIN++", "XTERM", "MTTS 13"] {
            let mut bytes = vec![IAC, SB, OPT_TTYPE, 0];
            bytes.extend_from_slice(answer.as_bytes());
            bytes.extend_from_slice(&[IAC, SE]);
            feed(&mut n, &mut p, &mut f, &bytes);
        }
        assert_eq!(f.client_name.as_deref(), Some("TINTIN++"));
        assert!(f.truecolor && f.ansi && f.utf8 && f.ttype);
        assert_eq!(f.mtts, Some(13));
    }

    #[test]
    fn charset_agrees_on_an_encoding() {
        let (mut n, mut p, mut f) = setup();
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, DO, OPT_CHARSET]);
        assert!(matches!(&fx[0], Effect::Send(b) if b.starts_with(&[IAC, SB, OPT_CHARSET, 1])));
        let mut accepted = vec![IAC, SB, OPT_CHARSET, 2];
        accepted.extend_from_slice(b"ISO-8859-1");
        accepted.extend_from_slice(&[IAC, SE]);
        let fx = feed(&mut n, &mut p, &mut f, &accepted);
        assert!(fx.contains(&Effect::SetEncoding(Encoding::Latin1)));
        assert_eq!(f.encoding, "latin-1");
    }

    #[test]
    fn mssp_and_gmcp() {
        let (mut n, mut p, mut f) = setup();
        let fx = feed(&mut n, &mut p, &mut f, &[IAC, DO, OPT_MSSP]);
        assert!(matches!(&fx[0], Effect::Send(b) if b.windows(4).any(|w| w == b"Test")));
        feed(&mut n, &mut p, &mut f, &[IAC, DO, OPT_GMCP]);
        assert!(f.gmcp && f.oob);
        let mut hello = vec![IAC, SB, OPT_GMCP];
        hello.extend_from_slice(br#"Core.Hello {"client":"x"}"#);
        hello.extend_from_slice(&[IAC, SE]);
        let fx = feed(&mut n, &mut p, &mut f, &hello);
        assert!(matches!(&fx[0], Effect::Oob(m) if m.name == "hello"));
    }

    #[test]
    fn a_client_that_answers_nothing_settles_at_the_timeout() {
        let (mut n, _p, _f) = setup();
        assert!(!n.is_settled());
        let mut fx = Vec::new();
        n.timeout(&mut fx);
        assert!(n.is_settled());
        assert!(fx.contains(&Effect::Settled));
        let mut again = Vec::new();
        n.timeout(&mut again);
        assert!(again.is_empty(), "settles once");
    }

    #[test]
    fn refusing_everything_settles_without_a_timeout() {
        let (mut n, mut p, mut f) = setup();
        let mut refusals = Vec::new();
        for o in LOCAL_OFFERS {
            refusals.extend_from_slice(&[IAC, 254, o]);
        }
        for o in REMOTE_OFFERS {
            refusals.extend_from_slice(&[IAC, 252, o]);
        }
        let fx = feed(&mut n, &mut p, &mut f, &refusals);
        assert!(fx.contains(&Effect::Settled));
    }
}
