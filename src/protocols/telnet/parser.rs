//! Sans-IO telnet state machine: bytes from the client go in, [`TelnetEvent`]s come out.
//!
//! This module owns the telnet byte grammar (RFC 854: IAC commands, option negotiation,
//! subnegotiation framing), the per-option negotiation state (RFC 1143 "Q method", for
//! our side and the client's side), line assembly with its limits, and input/output text
//! encoding. It never touches a socket, a clock, an actor or a log sink: the caller
//! writes every [`TelnetEvent::Send`] to the client and decides what lines and
//! subnegotiations mean. Every input limit ends in a typed [`TelnetError`] event, never in
//! silent truncation and never in unbounded buffering.

use bytes::BytesMut;

use crate::session::without_controls;

/// Interpret As Command: starts every telnet command; doubled in data.
pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
/// Subnegotiation begin: `IAC SB <option> <data> IAC SE`.
pub const SB: u8 = 250;
/// Go Ahead.
pub const GA: u8 = 249;
/// Erase Line: drops the line being typed.
pub const EL: u8 = 248;
/// Erase Character: drops the last character of the line being typed.
pub const EC: u8 = 247;
/// Are You There.
pub const AYT: u8 = 246;
/// Abort Output.
pub const AO: u8 = 245;
/// Interrupt Process.
pub const IP: u8 = 244;
/// Break.
pub const BRK: u8 = 243;
/// Data Mark.
pub const DM: u8 = 242;
/// No Operation (clients use it as a keep-alive).
pub const NOP: u8 = 241;
/// Subnegotiation end.
pub const SE: u8 = 240;
/// End Of Record (RFC 885), the prompt marker used with the EOR option.
pub const EOR: u8 = 239;

/// Echo (RFC 857): when we WILL ECHO, the client stops echoing what the user types.
pub const OPT_ECHO: u8 = 1;
/// Suppress Go Ahead (RFC 858).
pub const OPT_SGA: u8 = 3;

/// Upper bound on one buffered input line in bytes, whatever the settings say, so a
/// client that never sends a line end cannot grow the buffer without bound.
pub const HARD_MAX_LINE_BYTES: usize = 64 * 1024;
/// Upper bound on one buffered subnegotiation payload in bytes, for the same reason.
pub const HARD_MAX_SUBNEGOTIATION_BYTES: usize = 64 * 1024;

const NUL: u8 = 0x00;
const BS: u8 = 0x08;
const TAB: u8 = 0x09;
const LF: u8 = 0x0a;
const CR: u8 = 0x0d;
const DEL: u8 = 0x7f;

/// Input limits, taken from the settings by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelnetLimits {
    /// Longest accepted input line in characters (decoded characters, not bytes, so a
    /// player typing in Cyrillic gets the same room as one typing in English). 0 means
    /// no limit from the settings; [`HARD_MAX_LINE_BYTES`] still applies, in bytes.
    pub max_line_chars: usize,
    /// Longest accepted subnegotiation payload in bytes (after IAC IAC unescaping, not
    /// counting the option byte). 0 means no limit from the settings;
    /// [`HARD_MAX_SUBNEGOTIATION_BYTES`] still applies.
    pub max_subnegotiation_bytes: usize,
}

/// A limit the client went over. The parser recovers by itself; the caller decides
/// whether to warn the player or end the session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TelnetError {
    /// `limit` is the effective limit in characters (the settings value, or
    /// [`HARD_MAX_LINE_BYTES`] when the settings give none or a larger one).
    #[error("input line longer than {limit} characters")]
    LineTooLong { limit: usize },
    #[error("subnegotiation for telnet option {option} longer than {limit} bytes")]
    SubnegotiationTooLong { option: u8, limit: usize },
}

/// What the parser produced from the input, in input order.
#[derive(Debug, PartialEq, Eq)]
pub enum TelnetEvent {
    /// One input line, decoded, without its line ending and control characters.
    Line(String),
    /// A limit was hit; the offending line or subnegotiation is dropped.
    Error(TelnetError),
    /// Bytes to write to the client (negotiation replies), already telnet-framed.
    Send(Vec<u8>),
    /// A complete `IAC SB option ... IAC SE`, with IAC IAC unescaped. Emitted for every
    /// option, supported or not: the caller ignores the ones it does not handle.
    Subnegotiation { option: u8, data: Vec<u8> },
    /// The option's Q-method state became YES. `local` is our side (we WILL), otherwise
    /// the client's side (it WILL). Never emitted twice without an `OptionDisabled`
    /// between, so a caller can start a stream (e.g. compression) on it.
    OptionEnabled { option: u8, local: bool },
    /// The option's Q-method state became NO after it had been reported enabled, or
    /// our own request to enable it was refused (so a caller waiting on a handshake
    /// stops waiting).
    OptionDisabled { option: u8, local: bool },
}

/// Text encoding used for input lines and output text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Utf8,
    Latin1,
}

impl Encoding {
    /// Parses the names players and settings use, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        const UTF8: [&str; 2] = ["utf-8", "utf8"];
        const LATIN1: [&str; 3] = ["latin-1", "latin1", "iso-8859-1"];
        let name = name.trim();
        if UTF8.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            Some(Self::Utf8)
        } else if LATIN1.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            Some(Self::Latin1)
        } else {
            None
        }
    }

    /// The canonical name, accepted back by [`Encoding::from_name`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::Utf8 => "utf-8",
            Self::Latin1 => "latin-1",
        }
    }
}

/// RFC 1143 state of one side of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum QState {
    #[default]
    No,
    Yes,
    /// We sent the disabling command and wait for the answer.
    WantNo,
    /// We sent the enabling command and wait for the answer.
    WantYes,
}

/// What a Q-method step asks of the caller: a command to send and a state change to
/// report. `send` is `Some(true)` for the enabling command (WILL or DO).
#[derive(Debug, Default, PartialEq, Eq)]
struct Step {
    send: Option<bool>,
    report: Option<bool>,
}

/// What one option's negotiation came to, as [`TelnetParser::snapshot_options`]
/// records it for a connection that moves to another Portal process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OptionSnapshot {
    pub option: u8,
    /// Enabled on our side (we sent WILL and the client agreed).
    pub local: bool,
    /// Enabled on the client's side.
    pub remote: bool,
    pub local_supported: bool,
    pub remote_supported: bool,
}

/// One side (ours or the client's) of one option.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    state: QState,
    /// RFC 1143's queue bit: the caller asked for the opposite of what is being
    /// negotiated, to be started once the current answer arrives.
    opposite: bool,
    /// Whether we agree when the other end asks to enable this side.
    supported: bool,
    /// The last state reported through an event, so `OptionEnabled` never repeats.
    reported_enabled: bool,
}

impl Side {
    /// A side whose negotiation is over, as another process left it.
    fn agreed(enabled: bool, supported: bool) -> Self {
        Self {
            state: if enabled { QState::Yes } else { QState::No },
            opposite: false,
            supported,
            reported_enabled: enabled,
        }
    }
}

impl Side {
    fn enter_yes(&mut self) -> Option<bool> {
        self.state = QState::Yes;
        self.opposite = false;
        if self.reported_enabled {
            None
        } else {
            self.reported_enabled = true;
            Some(true)
        }
    }

    /// `refused` is true when our own enable request was turned down, which is
    /// reported even though the option was never reported enabled.
    fn enter_no(&mut self, refused: bool) -> Option<bool> {
        self.state = QState::No;
        self.opposite = false;
        if self.reported_enabled || refused {
            self.reported_enabled = false;
            Some(false)
        } else {
            None
        }
    }

    /// The other end asks to enable (WILL for the client's side, DO for ours).
    fn receive_enable(&mut self) -> Step {
        match (self.state, self.opposite) {
            (QState::No, _) if self.supported => Step {
                send: Some(true),
                report: self.enter_yes(),
            },
            // Refusing from NO leaves the state at NO, so a peer that follows RFC 1143
            // does not answer again and the exchange ends here.
            (QState::No, _) => Step {
                send: Some(false),
                report: None,
            },
            (QState::Yes, _) => Step::default(),
            // The peer answered our disable with an enable: RFC 1143 treats the option
            // as off rather than arguing, which is what keeps negotiation loop-free.
            (QState::WantNo, false) => Step {
                send: None,
                report: self.enter_no(false),
            },
            (QState::WantNo, true) => Step {
                send: None,
                report: self.enter_yes(),
            },
            (QState::WantYes, false) => Step {
                send: None,
                report: self.enter_yes(),
            },
            (QState::WantYes, true) => {
                self.state = QState::WantNo;
                self.opposite = false;
                Step {
                    send: Some(false),
                    report: None,
                }
            }
        }
    }

    /// The other end asks to disable (WONT for the client's side, DONT for ours).
    fn receive_disable(&mut self) -> Step {
        match (self.state, self.opposite) {
            // Already off: acknowledging would invite another acknowledgement.
            (QState::No, _) => Step::default(),
            (QState::Yes, _) => Step {
                send: Some(false),
                report: self.enter_no(false),
            },
            (QState::WantNo, false) => Step {
                send: None,
                report: self.enter_no(false),
            },
            (QState::WantNo, true) => {
                self.state = QState::WantYes;
                self.opposite = false;
                Step {
                    send: Some(true),
                    report: None,
                }
            }
            (QState::WantYes, _) => Step {
                send: None,
                report: self.enter_no(true),
            },
        }
    }

    /// We want this side enabled or disabled. Returns the command to send, if any;
    /// requests that repeat the current state or the pending one send nothing.
    fn request(&mut self, enable: bool) -> Option<bool> {
        match (self.state, self.opposite, enable) {
            (QState::No, _, true) => {
                self.state = QState::WantYes;
                Some(true)
            }
            (QState::Yes, _, false) => {
                self.state = QState::WantNo;
                Some(false)
            }
            // Mid-negotiation the request is queued (or unqueued) instead of sent, so
            // at most one command per side is ever in flight.
            (QState::WantNo, _, true) => {
                self.opposite = true;
                None
            }
            (QState::WantNo, _, false) => {
                self.opposite = false;
                None
            }
            (QState::WantYes, _, false) => {
                self.opposite = true;
                None
            }
            (QState::WantYes, _, true) => {
                self.opposite = false;
                None
            }
            (QState::No, _, false) | (QState::Yes, _, true) => None,
        }
    }
}

/// Both sides of one option.
#[derive(Debug, Clone, Copy, Default)]
struct OptionEntry {
    /// Our side: we send WILL/WONT, the client sends DO/DONT.
    local: Side,
    /// The client's side: it sends WILL/WONT, we send DO/DONT.
    remote: Side,
}

/// Where the parser is in the telnet byte grammar. Each state survives the end of a
/// `feed()` call, which is what lets any sequence be split at any byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After IAC in data.
    Iac,
    /// After IAC WILL/WONT/DO/DONT, waiting for the option byte.
    Negotiate(u8),
    /// After IAC SB, waiting for the option byte.
    SbOption,
    /// Inside a subnegotiation payload.
    SbData,
    /// After IAC inside a subnegotiation payload.
    SbIac,
}

/// The telnet state machine for one connection.
#[derive(Debug)]
pub struct TelnetParser {
    limits: TelnetLimits,
    encoding: Encoding,
    state: State,
    options: [OptionEntry; 256],
    /// Bytes of the line being typed, never longer than the line byte cap.
    line: Vec<u8>,
    /// Characters in `line` as the current encoding counts them.
    line_chars: usize,
    /// The current line went over the limit: its remaining bytes are dropped until
    /// the next line end, so memory stays bounded.
    discarding_line: bool,
    /// The last data byte was CR, which already ended a line; a following LF or NUL
    /// completes that ending instead of starting an empty line.
    after_cr: bool,
    sb_option: u8,
    /// Payload of the subnegotiation being read, never longer than its limit.
    sb_data: Vec<u8>,
    discarding_sb: bool,
    /// `feed_partial` stops after a subnegotiation for this option.
    pause_after: Option<u8>,
}

impl TelnetParser {
    pub fn new(limits: TelnetLimits) -> Self {
        Self {
            limits,
            encoding: Encoding::default(),
            state: State::Data,
            options: [OptionEntry::default(); 256],
            line: Vec::new(),
            line_chars: 0,
            discarding_line: false,
            after_cr: false,
            sb_option: 0,
            sb_data: Vec::new(),
            discarding_sb: false,
            pause_after: None,
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Changes how input lines are decoded from now on; a partly typed line is kept
    /// and decoded with the new encoding when it ends.
    pub fn set_encoding(&mut self, encoding: Encoding) {
        self.encoding = encoding;
        // The character count depends on the encoding, and the limit check uses it.
        self.line_chars = count_chars(&self.line, encoding);
    }

    /// We agree to enable this option on our side when the client sends DO.
    pub fn support_local(&mut self, option: u8) {
        self.entry_mut(option).local.supported = true;
    }

    /// Starts (or queues) WILL/WONT negotiation for our side of `option`. Returns the
    /// bytes to send, or `None` when the Q method says nothing needs sending (already
    /// in that state, or a negotiation is in flight and the request was queued).
    /// Requesting does not imply [`TelnetParser::support_local`]: without it, a later
    /// DO from the client after the option went back to NO is refused.
    pub fn request_local(&mut self, option: u8, enable: bool) -> Option<Vec<u8>> {
        let send = self.entry_mut(option).local.request(enable)?;
        Some(command(if send { WILL } else { WONT }, option).to_vec())
    }

    /// We agree to let the client enable this option on its side when it sends WILL.
    pub fn support_remote(&mut self, option: u8) {
        self.entry_mut(option).remote.supported = true;
    }

    /// Starts (or queues) DO/DONT negotiation for the client's side of `option`; see
    /// [`TelnetParser::request_local`].
    pub fn request_remote(&mut self, option: u8, enable: bool) -> Option<Vec<u8>> {
        let send = self.entry_mut(option).remote.request(enable)?;
        Some(command(if send { DO } else { DONT }, option).to_vec())
    }

    /// True only in the Q-method YES state: while a disable is in flight the option
    /// already counts as off, while an enable is in flight it does not yet count as on.
    pub fn is_local_enabled(&self, option: u8) -> bool {
        self.entry(option).local.state == QState::Yes
    }

    pub fn is_remote_enabled(&self, option: u8) -> bool {
        self.entry(option).remote.state == QState::Yes
    }

    /// What both sides have agreed to, for every option either side supports
    /// or has enabled: enough for another process to carry on the connection.
    /// Negotiations still in flight count as not agreed.
    pub fn snapshot_options(&self) -> Vec<OptionSnapshot> {
        (0..=u8::MAX)
            .filter_map(|option| {
                let e = self.entry(option);
                let snapshot = OptionSnapshot {
                    option,
                    local: e.local.state == QState::Yes,
                    remote: e.remote.state == QState::Yes,
                    local_supported: e.local.supported,
                    remote_supported: e.remote.supported,
                };
                (snapshot.local
                    || snapshot.remote
                    || snapshot.local_supported
                    || snapshot.remote_supported)
                    .then_some(snapshot)
            })
            .collect()
    }

    /// Takes over what [`Self::snapshot_options`] recorded in another process,
    /// without sending anything and without reporting the options again.
    pub fn restore_options(&mut self, snapshot: &[OptionSnapshot]) {
        for s in snapshot {
            let e = self.entry_mut(s.option);
            e.local = Side::agreed(s.local, s.local_supported);
            e.remote = Side::agreed(s.remote, s.remote_supported);
        }
    }

    /// True while part of a line has arrived without its line end (a reader
    /// on the client side uses it to tell a finished reply from a split one).
    pub fn has_partial_line(&self) -> bool {
        !self.line.is_empty() || self.discarding_line
    }

    /// Consumes client bytes and appends the resulting events in input order.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<TelnetEvent>) {
        let mut rest = input;
        while !rest.is_empty() {
            let used = self.feed_partial(rest, events);
            rest = &rest[used.min(rest.len())..];
        }
    }

    /// After a complete subnegotiation for `option`, `feed_partial` stops:
    /// what follows may no longer be telnet (MCCP3 starts a compressed
    /// stream right after `IAC SB MCCP3 IAC SE`, in the same read).
    pub fn pause_after_subnegotiation(&mut self, option: Option<u8>) {
        self.pause_after = option;
    }

    /// As [`TelnetParser::feed`], but stops right after a subnegotiation for
    /// the option set by [`TelnetParser::pause_after_subnegotiation`];
    /// answers how many bytes of `input` were consumed.
    pub fn feed_partial(&mut self, input: &[u8], events: &mut Vec<TelnetEvent>) -> usize {
        for (index, &byte) in input.iter().enumerate() {
            match self.state {
                State::Data => {
                    if byte == IAC {
                        self.state = State::Iac;
                    } else {
                        self.data_byte(byte, events);
                    }
                }
                State::Iac => self.iac_command(byte, events),
                State::Negotiate(cmd) => {
                    self.state = State::Data;
                    self.negotiate(cmd, byte, events);
                }
                State::SbOption => {
                    self.sb_option = byte;
                    self.sb_data.clear();
                    self.discarding_sb = false;
                    self.state = State::SbData;
                }
                State::SbData => {
                    if byte == IAC {
                        self.state = State::SbIac;
                    } else {
                        self.sb_byte(byte, events);
                    }
                }
                State::SbIac => match byte {
                    IAC => {
                        self.state = State::SbData;
                        self.sb_byte(IAC, events);
                    }
                    SE => {
                        self.state = State::Data;
                        let complete = !self.discarding_sb;
                        if complete {
                            events.push(TelnetEvent::Subnegotiation {
                                option: self.sb_option,
                                data: std::mem::take(&mut self.sb_data),
                            });
                        }
                        self.sb_data.clear();
                        self.discarding_sb = false;
                        if complete && self.pause_after == Some(self.sb_option) {
                            return index + 1;
                        }
                    }
                    // A bare IAC inside a subnegotiation is a broken SB: drop it and
                    // read the byte as the command it is, so a client that forgets
                    // IAC SE does not swallow its own later negotiation.
                    _ => {
                        self.sb_data.clear();
                        self.discarding_sb = false;
                        self.iac_command(byte, events);
                    }
                },
            }
        }
        input.len()
    }

    fn entry(&self, option: u8) -> &OptionEntry {
        &self.options[usize::from(option)]
    }

    fn entry_mut(&mut self, option: u8) -> &mut OptionEntry {
        &mut self.options[usize::from(option)]
    }

    /// The byte after IAC outside a subnegotiation.
    fn iac_command(&mut self, byte: u8, events: &mut Vec<TelnetEvent>) {
        self.state = State::Data;
        match byte {
            IAC => self.data_byte(IAC, events),
            WILL | WONT | DO | DONT => self.state = State::Negotiate(byte),
            SB => self.state = State::SbOption,
            EC => self.erase_char(),
            EL => self.erase_line(),
            // NOP, GA, AYT, unknown commands...: nothing for a line-based server to do.
            _ => {}
        }
    }

    fn negotiate(&mut self, cmd: u8, option: u8, events: &mut Vec<TelnetEvent>) {
        let (local, step) = {
            let entry = self.entry_mut(option);
            match cmd {
                DO => (true, entry.local.receive_enable()),
                DONT => (true, entry.local.receive_disable()),
                WILL => (false, entry.remote.receive_enable()),
                _ => (false, entry.remote.receive_disable()),
            }
        };
        if let Some(enable) = step.send {
            let reply = match (local, enable) {
                (true, true) => WILL,
                (true, false) => WONT,
                (false, true) => DO,
                (false, false) => DONT,
            };
            events.push(TelnetEvent::Send(command(reply, option).to_vec()));
        }
        match step.report {
            Some(true) => events.push(TelnetEvent::OptionEnabled { option, local }),
            Some(false) => events.push(TelnetEvent::OptionDisabled { option, local }),
            None => {}
        }
    }

    fn sb_byte(&mut self, byte: u8, events: &mut Vec<TelnetEvent>) {
        if self.discarding_sb {
            return;
        }
        let limit = self.sb_limit();
        if self.sb_data.len() >= limit {
            events.push(TelnetEvent::Error(TelnetError::SubnegotiationTooLong {
                option: self.sb_option,
                limit,
            }));
            self.sb_data.clear();
            self.discarding_sb = true;
            return;
        }
        self.sb_data.push(byte);
    }

    /// One byte of line data (IAC IAC already reduced to 0xFF).
    fn data_byte(&mut self, byte: u8, events: &mut Vec<TelnetEvent>) {
        if self.after_cr {
            self.after_cr = false;
            if byte == LF || byte == NUL {
                return;
            }
        }
        match byte {
            CR => {
                self.end_line(events);
                self.after_cr = true;
            }
            LF => self.end_line(events),
            BS | DEL => self.erase_char(),
            TAB => self.push_line_byte(byte, events),
            // Other C0 controls (NUL, ESC of arrow keys, bell...) have no meaning in a
            // command line and would only confuse the command parser.
            0x00..=0x1f => {}
            _ => self.push_line_byte(byte, events),
        }
    }

    fn push_line_byte(&mut self, byte: u8, events: &mut Vec<TelnetEvent>) {
        if self.discarding_line {
            return;
        }
        let starts_char = starts_char(byte, self.encoding);
        let chars = self.line_chars + usize::from(starts_char);
        let limit = self.line_char_limit();
        if chars > limit || self.line.len() >= self.line_byte_cap() {
            events.push(TelnetEvent::Error(TelnetError::LineTooLong { limit }));
            self.line.clear();
            self.line_chars = 0;
            self.discarding_line = true;
            return;
        }
        self.line.push(byte);
        self.line_chars = chars;
    }

    fn end_line(&mut self, events: &mut Vec<TelnetEvent>) {
        if self.discarding_line {
            self.discarding_line = false;
        } else {
            // C0 controls were dropped byte by byte; C1 controls (0x80-0x9F in Latin-1,
            // or encoded in UTF-8) are only known once the line is decoded.
            let text = without_controls(decode(&self.line, self.encoding));
            let limit = self.line_char_limit();
            // The running count assumed valid UTF-8; a line that fell back to Latin-1
            // can decode to more characters than were counted.
            if text.chars().count() > limit {
                events.push(TelnetEvent::Error(TelnetError::LineTooLong { limit }));
            } else {
                events.push(TelnetEvent::Line(text));
            }
        }
        self.line.clear();
        self.line_chars = 0;
    }

    fn erase_char(&mut self) {
        if self.discarding_line {
            return;
        }
        match self.encoding {
            Encoding::Latin1 => {
                if self.line.pop().is_some() {
                    self.line_chars = self.line_chars.saturating_sub(1);
                }
            }
            // A UTF-8 character is its lead byte plus continuation bytes: drop them all
            // so backspace never leaves half a character behind.
            Encoding::Utf8 => {
                while let Some(byte) = self.line.pop() {
                    if !is_utf8_continuation(byte) {
                        self.line_chars = self.line_chars.saturating_sub(1);
                        break;
                    }
                }
            }
        }
    }

    fn erase_line(&mut self) {
        if !self.discarding_line {
            self.line.clear();
            self.line_chars = 0;
        }
    }

    fn line_char_limit(&self) -> usize {
        match self.limits.max_line_chars {
            0 => HARD_MAX_LINE_BYTES,
            n => n.min(HARD_MAX_LINE_BYTES),
        }
    }

    /// Bytes the line buffer may hold: up to 4 per character in UTF-8 (the longest
    /// encoding), always within the hard cap.
    fn line_byte_cap(&self) -> usize {
        let per_char = match self.encoding {
            Encoding::Utf8 => 4,
            Encoding::Latin1 => 1,
        };
        self.line_char_limit()
            .saturating_mul(per_char)
            .min(HARD_MAX_LINE_BYTES)
    }

    fn sb_limit(&self) -> usize {
        match self.limits.max_subnegotiation_bytes {
            0 => HARD_MAX_SUBNEGOTIATION_BYTES,
            n => n.min(HARD_MAX_SUBNEGOTIATION_BYTES),
        }
    }
}

fn command(cmd: u8, option: u8) -> [u8; 3] {
    [IAC, cmd, option]
}

fn is_utf8_continuation(byte: u8) -> bool {
    byte & 0xc0 == 0x80
}

fn starts_char(byte: u8, encoding: Encoding) -> bool {
    match encoding {
        Encoding::Utf8 => !is_utf8_continuation(byte),
        Encoding::Latin1 => true,
    }
}

fn count_chars(bytes: &[u8], encoding: Encoding) -> usize {
    bytes.iter().filter(|&&b| starts_char(b, encoding)).count()
}

fn decode_latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Never fails: a line that is not valid UTF-8 is most likely from a client still
/// sending Latin-1, and every byte sequence is valid Latin-1.
fn decode(bytes: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => decode_latin1(bytes),
        },
        Encoding::Latin1 => decode_latin1(bytes),
    }
}

/// Appends `text` to `out` as telnet data: "\n" becomes "\r\n" (an existing "\r\n" is
/// kept as is), a "\r" not followed by "\n" becomes "\r\0" (RFC 854's bare carriage
/// return), the text is encoded (in Latin-1, characters above U+00FF become '?') and
/// every 0xFF byte is doubled so the client does not read it as IAC.
pub fn encode_output(text: &str, encoding: Encoding, out: &mut BytesMut) {
    out.reserve(text.len() + text.len() / 8 + 2);
    match encoding {
        Encoding::Utf8 => encode_utf8_output(text.as_bytes(), out),
        Encoding::Latin1 => encode_chars(text, encoding, out),
    }
}

/// [`encode_output`] a character at a time, for any encoding.
fn encode_chars(text: &str, encoding: Encoding, out: &mut BytesMut) {
    let mut chars = text.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(b"\r\0");
                }
            }
            '\n' => out.extend_from_slice(b"\r\n"),
            _ => {
                let bytes: &[u8] = match encoding {
                    Encoding::Utf8 => c.encode_utf8(&mut buf).as_bytes(),
                    Encoding::Latin1 => {
                        buf[0] = u8::try_from(u32::from(c)).unwrap_or(b'?');
                        &buf[..1]
                    }
                };
                for &byte in bytes {
                    if byte == IAC {
                        out.extend_from_slice(&[IAC, IAC]);
                    } else {
                        out.extend_from_slice(&[byte]);
                    }
                }
            }
        }
    }
}

/// [`encode_output`] for UTF-8, a run at a time: UTF-8 never holds a 0xFF
/// byte, so only line ends need rewriting and everything between them is
/// copied as it is.
fn encode_utf8_output(mut text: &[u8], out: &mut BytesMut) {
    while let Some(at) = memchr::memchr2(b'\r', b'\n', text) {
        out.extend_from_slice(&text[..at]);
        let ending_len = match &text[at..] {
            [b'\r', b'\n', ..] => 2,
            _ => 1,
        };
        out.extend_from_slice(if text[at] == b'\r' && ending_len == 1 {
            b"\r\0"
        } else {
            b"\r\n"
        });
        text = &text[at + ending_len..];
    }
    out.extend_from_slice(text);
}

/// The stateless form of echo control for password prompts: IAC WILL ECHO hides input,
/// IAC WONT ECHO shows it again. [`TelnetParser::request_local`] with [`OPT_ECHO`] keeps
/// the Q-method state in step and is preferred; a caller sending these bytes directly
/// must [`TelnetParser::support_local`] ECHO, or the client's DO ECHO answer is refused
/// with WONT ECHO and the input shows again.
pub fn hide_input(hide: bool) -> [u8; 3] {
    command(if hide { WILL } else { WONT }, OPT_ECHO)
}

/// Frames `data` as `IAC SB option data IAC SE`, doubling any IAC in `data`.
pub fn subnegotiation(option: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5);
    out.extend_from_slice(&[IAC, SB, option]);
    for &byte in data {
        if byte == IAC {
            out.push(IAC);
        }
        out.push(byte);
    }
    out.extend_from_slice(&[IAC, SE]);
    out
}

#[cfg(test)]
mod pause_tests {
    use super::*;

    #[test]
    fn feed_partial_stops_right_after_the_paused_subnegotiation() {
        let mut p = TelnetParser::new(TelnetLimits {
            max_line_chars: 100,
            max_subnegotiation_bytes: 100,
        });
        p.pause_after_subnegotiation(Some(87));
        let mut input = b"look\r\n".to_vec();
        input.extend_from_slice(&[IAC, SB, 87, IAC, SE]);
        input.extend_from_slice(&[0x78, 0x9c, 0xff]);
        let mut events = Vec::new();
        let used = p.feed_partial(&input, &mut events);
        assert_eq!(used, input.len() - 3, "the compressed bytes are left over");
        assert_eq!(
            events,
            vec![
                TelnetEvent::Line("look".into()),
                TelnetEvent::Subnegotiation {
                    option: 87,
                    data: vec![]
                }
            ]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTYPE: u8 = 24;
    const GMCP: u8 = 201;
    const UNSUPPORTED: u8 = 99;

    fn limits(max_line_chars: usize, max_subnegotiation_bytes: usize) -> TelnetLimits {
        TelnetLimits {
            max_line_chars,
            max_subnegotiation_bytes,
        }
    }

    fn parser() -> TelnetParser {
        TelnetParser::new(limits(0, 0))
    }

    fn feed(p: &mut TelnetParser, input: &[u8]) -> Vec<TelnetEvent> {
        let mut events = Vec::new();
        p.feed(input, &mut events);
        events
    }

    fn line(s: &str) -> TelnetEvent {
        TelnetEvent::Line(s.to_owned())
    }

    fn send(bytes: &[u8]) -> TelnetEvent {
        TelnetEvent::Send(bytes.to_vec())
    }

    fn lines(input: &[u8]) -> Vec<TelnetEvent> {
        feed(&mut parser(), input)
    }

    fn encode(text: &str, encoding: Encoding) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_output(text, encoding, &mut out);
        out.to_vec()
    }

    // --- line splitting ---

    #[test]
    fn crlf_ends_a_line() {
        assert_eq!(lines(b"look\r\n"), vec![line("look")]);
    }

    #[test]
    fn lf_ends_a_line() {
        assert_eq!(lines(b"look\n"), vec![line("look")]);
    }

    #[test]
    fn cr_nul_ends_a_line() {
        assert_eq!(
            lines(b"look\r\0north\r\0"),
            vec![line("look"), line("north")]
        );
    }

    #[test]
    fn lone_cr_ends_a_line() {
        assert_eq!(lines(b"look\rnorth\r"), vec![line("look"), line("north")]);
    }

    #[test]
    fn lf_cr_is_two_endings() {
        // LF then CR is not a pair: the first line ends at LF, the CR ends an empty one.
        assert_eq!(lines(b"a\n\rb\n"), vec![line("a"), line(""), line("b")]);
    }

    #[test]
    fn empty_lines_are_delivered() {
        assert_eq!(lines(b"\r\n\n\r\0"), vec![line(""), line(""), line("")]);
    }

    #[test]
    fn crlf_split_across_feeds_is_one_ending() {
        let mut p = parser();
        assert_eq!(feed(&mut p, b"look\r"), vec![line("look")]);
        assert_eq!(feed(&mut p, b"\n"), vec![]);
        assert_eq!(feed(&mut p, b"north\r"), vec![line("north")]);
        assert_eq!(feed(&mut p, b"\nsouth\n"), vec![line("south")]);
    }

    #[test]
    fn cr_nul_split_across_feeds_is_one_ending() {
        let mut p = parser();
        assert_eq!(feed(&mut p, b"look\r"), vec![line("look")]);
        assert_eq!(feed(&mut p, b"\0"), vec![]);
        assert_eq!(feed(&mut p, b"x\n"), vec![line("x")]);
    }

    #[test]
    fn cr_then_telnet_command_then_lf_is_one_ending() {
        assert_eq!(
            lines(&[b'a', CR, IAC, NOP, LF, b'b', LF]),
            vec![line("a"), line("b")]
        );
    }

    #[test]
    fn several_lines_in_one_feed() {
        assert_eq!(
            lines(b"one\r\ntwo\nthree\r\0four\r\n"),
            vec![line("one"), line("two"), line("three"), line("four")]
        );
    }

    #[test]
    fn partial_line_waits_for_its_end() {
        let mut p = parser();
        assert_eq!(feed(&mut p, b"lo"), vec![]);
        assert_eq!(feed(&mut p, b"ok"), vec![]);
        assert_eq!(feed(&mut p, b"\r\n"), vec![line("look")]);
    }

    #[test]
    fn control_characters_are_dropped_except_tab() {
        assert_eq!(lines(b"a\x1b[Ab\x07c\td\0e\x01\n"), vec![line("a[Abc\tde")]);
    }

    #[test]
    fn c1_controls_are_dropped_in_either_encoding() {
        // 0x9B is the 8-bit CSI: "\x9b2J" would clear a listener's screen.
        assert_eq!(
            lines(b"say \xc2\x9b2J caf\xc3\xa9\n"),
            vec![line("say 2J caf\u{e9}")]
        );
        let mut p = parser();
        p.set_encoding(Encoding::Latin1);
        assert_eq!(
            feed(&mut p, b"say \x9b2J caf\xe9\n"),
            vec![line("say 2J caf\u{e9}")]
        );
    }

    #[test]
    fn backspace_and_del_erase_previous_character() {
        assert_eq!(lines(b"lookk\x08\n"), vec![line("look")]);
        assert_eq!(lines(b"lookk\x7f\n"), vec![line("look")]);
        assert_eq!(lines(b"ab\x08\x08\x08\x08cd\n"), vec![line("cd")]);
    }

    #[test]
    fn backspace_erases_a_whole_utf8_character() {
        let input = ["caf\u{e9}\u{1f600}".as_bytes(), b"\x08\x08e\n"].concat();
        assert_eq!(lines(&input), vec![line("cafe")]);
    }

    #[test]
    fn backspace_in_latin1_erases_one_byte() {
        let mut p = parser();
        p.set_encoding(Encoding::Latin1);
        assert_eq!(feed(&mut p, b"caf\xe9\xe9\x08\n"), vec![line("caf\u{e9}")]);
    }

    #[test]
    fn backspace_does_not_reach_into_previous_line() {
        assert_eq!(lines(b"one\n\x08two\n"), vec![line("one"), line("two")]);
    }

    #[test]
    fn iac_ec_and_el_edit_the_line() {
        assert_eq!(lines(&[b'a', b'b', IAC, EC, b'c', LF]), vec![line("ac")]);
        assert_eq!(lines(&[b'a', b'b', IAC, EL, b'c', LF]), vec![line("c")]);
    }

    // --- IAC handling ---

    #[test]
    fn iac_iac_is_a_literal_ff_byte() {
        let mut p = parser();
        p.set_encoding(Encoding::Latin1);
        assert_eq!(
            feed(&mut p, &[b'a', IAC, IAC, b'b', LF]),
            vec![line("a\u{ff}b")]
        );
    }

    #[test]
    fn iac_iac_in_utf8_mode_falls_back_to_latin1() {
        assert_eq!(lines(&[b'a', IAC, IAC, LF]), vec![line("a\u{ff}")]);
    }

    #[test]
    fn iac_iac_split_across_feeds() {
        let mut p = parser();
        p.set_encoding(Encoding::Latin1);
        assert_eq!(feed(&mut p, &[b'a', IAC]), vec![]);
        assert_eq!(feed(&mut p, &[IAC, LF]), vec![line("a\u{ff}")]);
    }

    #[test]
    fn simple_commands_are_consumed_silently() {
        let input = [
            b'a', IAC, NOP, b'b', IAC, GA, IAC, AYT, IAC, DM, IAC, BRK, IAC, IP, IAC, AO, IAC, EOR,
            IAC, SE, IAC, 0x80, IAC, 0x00, b'c', LF,
        ];
        assert_eq!(lines(&input), vec![line("abc")]);
    }

    #[test]
    fn subnegotiation_is_emitted_with_iac_unescaped() {
        let mut input = vec![IAC, SB, GMCP];
        input.extend_from_slice(b"Core.Hello ");
        input.extend_from_slice(&[IAC, IAC, 0, 1]);
        input.extend_from_slice(&[IAC, SE]);
        let mut data = b"Core.Hello ".to_vec();
        data.extend_from_slice(&[IAC, 0, 1]);
        assert_eq!(
            lines(&input),
            vec![TelnetEvent::Subnegotiation { option: GMCP, data }]
        );
    }

    #[test]
    fn subnegotiation_for_unsupported_option_is_still_emitted() {
        assert_eq!(
            lines(&[IAC, SB, UNSUPPORTED, 1, 2, 3, IAC, SE]),
            vec![TelnetEvent::Subnegotiation {
                option: UNSUPPORTED,
                data: vec![1, 2, 3]
            }]
        );
    }

    #[test]
    fn empty_subnegotiation() {
        assert_eq!(
            lines(&[IAC, SB, TTYPE, IAC, SE]),
            vec![TelnetEvent::Subnegotiation {
                option: TTYPE,
                data: vec![]
            }]
        );
    }

    #[test]
    fn subnegotiation_does_not_touch_the_line_being_typed() {
        let mut input = b"lo".to_vec();
        input.extend_from_slice(&[IAC, SB, TTYPE, 0, b'x', b'\n', IAC, SE]);
        input.extend_from_slice(b"ok\n");
        assert_eq!(
            lines(&input),
            vec![
                TelnetEvent::Subnegotiation {
                    option: TTYPE,
                    data: vec![0, b'x', b'\n']
                },
                line("look"),
            ]
        );
    }

    #[test]
    fn broken_subnegotiation_is_dropped_and_the_command_is_read() {
        // IAC DO inside SB data: the SB is abandoned and the DO is negotiated.
        let mut p = parser();
        let events = feed(
            &mut p,
            &[IAC, SB, GMCP, b'x', IAC, DO, UNSUPPORTED, b'a', LF],
        );
        assert_eq!(events, vec![send(&[IAC, WONT, UNSUPPORTED]), line("a")]);
    }

    // --- split positions ---

    /// Expected events for [`mixed_buffer`], whatever the split.
    fn expected_mixed() -> Vec<TelnetEvent> {
        vec![
            line("look"),
            send(&[IAC, WONT, UNSUPPORTED]),
            send(&[IAC, DO, GMCP]),
            TelnetEvent::OptionEnabled {
                option: GMCP,
                local: false,
            },
            TelnetEvent::Subnegotiation {
                option: GMCP,
                data: b"Core.Hello {\"client\":\"x\xff\"}\xff!".to_vec(),
            },
            line("say caf\u{e9}"),
            line("ab"),
            line("last"),
        ]
    }

    fn mixed_parser() -> TelnetParser {
        let mut p = parser();
        p.support_remote(GMCP);
        p
    }

    /// A line, a refused DO, an accepted WILL, a GMCP subnegotiation with escaped IACs,
    /// a UTF-8 line ended by CR NUL, a NOP inside a line, a CR LF and a backspace.
    fn mixed_buffer() -> Vec<u8> {
        let mut buf = b"look\r\n".to_vec();
        buf.extend_from_slice(&[IAC, DO, UNSUPPORTED]);
        buf.extend_from_slice(&[IAC, WILL, GMCP]);
        buf.extend_from_slice(&[IAC, SB, GMCP]);
        buf.extend_from_slice(b"Core.Hello {\"client\":\"x");
        buf.extend_from_slice(&[IAC, IAC]);
        buf.extend_from_slice(b"\"}");
        buf.extend_from_slice(&[IAC, IAC, b'!', IAC, SE]);
        buf.extend_from_slice("say caf\u{e9}\r\0".as_bytes());
        buf.extend_from_slice(&[b'a', IAC, NOP, b'b', CR]);
        buf.extend_from_slice(b"\nlast\x08t\n");
        buf
    }

    #[test]
    fn mixed_buffer_fed_whole() {
        let mut p = mixed_parser();
        assert_eq!(feed(&mut p, &mixed_buffer()), expected_mixed());
    }

    #[test]
    fn mixed_buffer_every_split_position() {
        let buf = mixed_buffer();
        for split in 0..=buf.len() {
            let mut p = mixed_parser();
            let mut events = Vec::new();
            p.feed(&buf[..split], &mut events);
            p.feed(&buf[split..], &mut events);
            assert_eq!(events, expected_mixed(), "split at {split}");
        }
    }

    #[test]
    fn mixed_buffer_byte_by_byte() {
        let buf = mixed_buffer();
        let mut p = mixed_parser();
        let mut events = Vec::new();
        for byte in &buf {
            p.feed(std::slice::from_ref(byte), &mut events);
        }
        assert_eq!(events, expected_mixed());
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let bytes = "\u{1f600}x\n".as_bytes();
        for split in 0..=bytes.len() {
            let mut p = parser();
            let mut events = feed(&mut p, &bytes[..split]);
            p.feed(&bytes[split..], &mut events);
            assert_eq!(events, vec![line("\u{1f600}x")], "split at {split}");
        }
    }

    // --- limits ---

    #[test]
    fn line_at_the_limit_is_accepted() {
        let mut p = TelnetParser::new(limits(5, 0));
        assert_eq!(feed(&mut p, b"abcde\n"), vec![line("abcde")]);
    }

    #[test]
    fn limit_counts_characters_not_bytes() {
        let mut p = TelnetParser::new(limits(5, 0));
        let text = "\u{e9}\u{e9}\u{1f600}\u{1f600}\u{e9}";
        let input = [text.as_bytes(), b"\n"].concat();
        assert_eq!(feed(&mut p, &input), vec![line(text)]);
    }

    #[test]
    fn overlong_line_gives_one_error_then_recovers() {
        let mut p = TelnetParser::new(limits(5, 0));
        assert_eq!(
            feed(&mut p, b"abcdefghijklmnop"),
            vec![TelnetEvent::Error(TelnetError::LineTooLong { limit: 5 })]
        );
        assert_eq!(feed(&mut p, b"qrstuvwxyz"), vec![]);
        assert_eq!(feed(&mut p, b"\r\nlook\r\n"), vec![line("look")]);
    }

    #[test]
    fn overlong_line_with_ending_in_same_feed() {
        let mut p = TelnetParser::new(limits(3, 0));
        assert_eq!(
            feed(&mut p, b"abcd\nabc\n"),
            vec![
                TelnetEvent::Error(TelnetError::LineTooLong { limit: 3 }),
                line("abc")
            ]
        );
    }

    #[test]
    fn backspace_while_discarding_does_not_revive_the_line() {
        let mut p = TelnetParser::new(limits(3, 0));
        let events = feed(&mut p, b"abcd\x08\x08\x08x\nok\n");
        assert_eq!(
            events,
            vec![
                TelnetEvent::Error(TelnetError::LineTooLong { limit: 3 }),
                line("ok")
            ]
        );
    }

    #[test]
    fn invalid_utf8_fallback_is_checked_against_the_limit() {
        // Lone continuation bytes count as no characters while buffering but decode to
        // one Latin-1 character each.
        let mut p = TelnetParser::new(limits(3, 0));
        assert_eq!(
            feed(&mut p, b"\xa1\xa2\xa3\xa4\nok\n"),
            vec![
                TelnetEvent::Error(TelnetError::LineTooLong { limit: 3 }),
                line("ok")
            ]
        );
    }

    #[test]
    fn continuation_byte_flood_is_bounded() {
        let mut p = TelnetParser::new(limits(10, 0));
        let flood = vec![0x80u8; 1 << 20];
        let events = feed(&mut p, &flood);
        assert_eq!(
            events,
            vec![TelnetEvent::Error(TelnetError::LineTooLong { limit: 10 })]
        );
        assert!(p.line.capacity() <= 64, "capacity {}", p.line.capacity());
    }

    #[test]
    fn ten_megabytes_without_line_end_stay_bounded() {
        let mut p = TelnetParser::new(limits(100, 0));
        let chunk = vec![b'a'; 64 * 1024];
        let mut events = Vec::new();
        for _ in 0..160 {
            p.feed(&chunk, &mut events);
            assert!(p.line.capacity() <= 512, "capacity {}", p.line.capacity());
        }
        assert_eq!(
            events,
            vec![TelnetEvent::Error(TelnetError::LineTooLong { limit: 100 })]
        );
        assert_eq!(feed(&mut p, b"\nlook\n"), vec![line("look")]);
    }

    #[test]
    fn hard_cap_applies_without_a_configured_limit() {
        let mut p = parser();
        let flood = vec![b'a'; 10 * 1024 * 1024];
        let events = feed(&mut p, &flood);
        assert_eq!(
            events,
            vec![TelnetEvent::Error(TelnetError::LineTooLong {
                limit: HARD_MAX_LINE_BYTES
            })]
        );
        assert!(p.line.capacity() <= HARD_MAX_LINE_BYTES);
        assert_eq!(feed(&mut p, b"\r\nlook\r\n"), vec![line("look")]);
    }

    #[test]
    fn configured_limit_above_hard_cap_is_capped() {
        let mut p = TelnetParser::new(limits(usize::MAX, 0));
        let flood = vec![b'a'; HARD_MAX_LINE_BYTES + 1];
        assert_eq!(
            feed(&mut p, &flood),
            vec![TelnetEvent::Error(TelnetError::LineTooLong {
                limit: HARD_MAX_LINE_BYTES
            })]
        );
    }

    #[test]
    fn overlong_subnegotiation_gives_one_error_then_recovers() {
        let mut p = TelnetParser::new(limits(0, 4));
        let mut input = vec![IAC, SB, GMCP];
        input.extend_from_slice(b"abcdefgh");
        input.extend_from_slice(&[IAC, IAC, b'x', IAC, SE]);
        input.extend_from_slice(&[IAC, SB, GMCP, b'o', b'k', IAC, SE]);
        input.extend_from_slice(b"look\n");
        assert_eq!(
            feed(&mut p, &input),
            vec![
                TelnetEvent::Error(TelnetError::SubnegotiationTooLong {
                    option: GMCP,
                    limit: 4
                }),
                TelnetEvent::Subnegotiation {
                    option: GMCP,
                    data: b"ok".to_vec()
                },
                line("look"),
            ]
        );
    }

    #[test]
    fn subnegotiation_at_the_limit_is_accepted() {
        let mut p = TelnetParser::new(limits(0, 4));
        assert_eq!(
            feed(&mut p, &[IAC, SB, GMCP, IAC, IAC, 2, 3, 4, IAC, SE]),
            vec![TelnetEvent::Subnegotiation {
                option: GMCP,
                data: vec![IAC, 2, 3, 4]
            }]
        );
    }

    #[test]
    fn huge_subnegotiation_stays_bounded() {
        let mut p = TelnetParser::new(limits(0, 1024));
        let mut events = feed(&mut p, &[IAC, SB, GMCP]);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            p.feed(&chunk, &mut events);
            assert!(p.sb_data.capacity() <= 1024);
        }
        p.feed(&[IAC, SE, b'a', LF], &mut events);
        assert_eq!(
            events,
            vec![
                TelnetEvent::Error(TelnetError::SubnegotiationTooLong {
                    option: GMCP,
                    limit: 1024
                }),
                line("a"),
            ]
        );
    }

    // --- decoding ---

    #[test]
    fn valid_utf8_is_decoded() {
        assert_eq!(
            lines("say h\u{e9}llo \u{1f600}\n".as_bytes()),
            vec![line("say h\u{e9}llo \u{1f600}")]
        );
    }

    #[test]
    fn invalid_utf8_falls_back_to_latin1() {
        assert_eq!(lines(b"caf\xe9\n"), vec![line("caf\u{e9}")]);
        // The fallback is per line: the next valid UTF-8 line decodes as UTF-8.
        let mut input = b"caf\xe9\n".to_vec();
        input.extend_from_slice("caf\u{e9}\n".as_bytes());
        assert_eq!(lines(&input), vec![line("caf\u{e9}"), line("caf\u{e9}")]);
        // A UTF-8 character cut off by the line end is not valid either (and its
        // 0x82 is a C1 control in Latin-1, so it goes).
        assert_eq!(lines(b"\xe2\x82\n"), vec![line("\u{e2}")]);
    }

    #[test]
    fn latin1_mode_decodes_bytes_as_latin1() {
        let mut p = parser();
        p.set_encoding(Encoding::Latin1);
        // In Latin-1 mode the UTF-8 bytes of "é" are two characters.
        assert_eq!(
            feed(&mut p, b"caf\xc3\xa9 \xe9\n"),
            vec![line("caf\u{c3}\u{a9} \u{e9}")]
        );
    }

    #[test]
    fn latin1_mode_counts_bytes_for_the_limit() {
        let mut p = TelnetParser::new(limits(4, 0));
        p.set_encoding(Encoding::Latin1);
        assert_eq!(
            feed(&mut p, b"\xc3\xa9\xc3\xa9\xc3\n\xc3\xa9\n"),
            vec![
                TelnetEvent::Error(TelnetError::LineTooLong { limit: 4 }),
                line("\u{c3}\u{a9}")
            ]
        );
    }

    #[test]
    fn encoding_names() {
        for name in ["utf-8", "UTF-8", "utf8", "Utf8"] {
            assert_eq!(Encoding::from_name(name), Some(Encoding::Utf8), "{name}");
        }
        for name in ["latin-1", "Latin1", "ISO-8859-1", "iso-8859-1"] {
            assert_eq!(Encoding::from_name(name), Some(Encoding::Latin1), "{name}");
        }
        assert_eq!(Encoding::from_name("ascii"), None);
        assert_eq!(Encoding::from_name(""), None);
        for encoding in [Encoding::Utf8, Encoding::Latin1] {
            assert_eq!(Encoding::from_name(encoding.name()), Some(encoding));
        }
        assert_eq!(Encoding::default(), Encoding::Utf8);
    }

    // --- negotiation ---

    #[test]
    fn unsupported_do_is_refused_once_per_do() {
        let mut p = parser();
        assert_eq!(
            feed(&mut p, &[IAC, DO, UNSUPPORTED]),
            vec![send(&[IAC, WONT, UNSUPPORTED])]
        );
        assert!(!p.is_local_enabled(UNSUPPORTED));
        // A repeated DO in state NO gets one WONT again (RFC 1143), never more.
        assert_eq!(
            feed(&mut p, &[IAC, DO, UNSUPPORTED]),
            vec![send(&[IAC, WONT, UNSUPPORTED])]
        );
    }

    #[test]
    fn dont_for_an_option_already_off_is_ignored() {
        let mut p = parser();
        assert_eq!(feed(&mut p, &[IAC, DONT, UNSUPPORTED]), vec![]);
        p.support_local(OPT_SGA);
        assert_eq!(feed(&mut p, &[IAC, DONT, OPT_SGA]), vec![]);
    }

    #[test]
    fn unsupported_will_is_refused_and_wont_is_ignored() {
        let mut p = parser();
        assert_eq!(
            feed(&mut p, &[IAC, WILL, UNSUPPORTED]),
            vec![send(&[IAC, DONT, UNSUPPORTED])]
        );
        assert_eq!(feed(&mut p, &[IAC, WONT, UNSUPPORTED]), vec![]);
        assert!(!p.is_remote_enabled(UNSUPPORTED));
    }

    #[test]
    fn refusal_exchange_with_a_mirror_peer_terminates() {
        // Two parsers talking to each other: ours refuses everything, the peer asks
        // for everything. The exchange must settle without further sends.
        let mut ours = parser();
        let mut peer = parser();
        let mut to_ours = Vec::new();
        for option in [UNSUPPORTED, TTYPE, GMCP] {
            to_ours.extend(peer.request_local(option, true).unwrap_or_default());
            to_ours.extend(peer.request_remote(option, true).unwrap_or_default());
        }
        let mut rounds = 0;
        while !to_ours.is_empty() {
            rounds += 1;
            assert!(rounds < 10, "negotiation loops");
            let mut to_peer = Vec::new();
            for event in feed(&mut ours, &to_ours) {
                if let TelnetEvent::Send(bytes) = event {
                    to_peer.extend(bytes);
                }
            }
            to_ours.clear();
            for event in feed(&mut peer, &to_peer) {
                if let TelnetEvent::Send(bytes) = event {
                    to_ours.extend(bytes);
                }
            }
        }
        for option in [UNSUPPORTED, TTYPE, GMCP] {
            assert!(!ours.is_local_enabled(option));
            assert!(!ours.is_remote_enabled(option));
            assert!(!peer.is_local_enabled(option));
            assert!(!peer.is_remote_enabled(option));
        }
    }

    #[test]
    fn supported_do_is_accepted_once() {
        let mut p = parser();
        p.support_local(OPT_SGA);
        assert_eq!(
            feed(&mut p, &[IAC, DO, OPT_SGA]),
            vec![
                send(&[IAC, WILL, OPT_SGA]),
                TelnetEvent::OptionEnabled {
                    option: OPT_SGA,
                    local: true
                }
            ]
        );
        assert!(p.is_local_enabled(OPT_SGA));
        // Already YES: a repeated DO is not answered, so no loop.
        assert_eq!(feed(&mut p, &[IAC, DO, OPT_SGA]), vec![]);
        // The client turns it off: acknowledge once.
        assert_eq!(
            feed(&mut p, &[IAC, DONT, OPT_SGA]),
            vec![
                send(&[IAC, WONT, OPT_SGA]),
                TelnetEvent::OptionDisabled {
                    option: OPT_SGA,
                    local: true
                }
            ]
        );
        assert_eq!(feed(&mut p, &[IAC, DONT, OPT_SGA]), vec![]);
    }

    #[test]
    fn supported_will_is_accepted() {
        let mut p = parser();
        p.support_remote(TTYPE);
        assert_eq!(
            feed(&mut p, &[IAC, WILL, TTYPE]),
            vec![
                send(&[IAC, DO, TTYPE]),
                TelnetEvent::OptionEnabled {
                    option: TTYPE,
                    local: false
                }
            ]
        );
        assert!(p.is_remote_enabled(TTYPE));
        assert!(!p.is_local_enabled(TTYPE));
        assert_eq!(
            feed(&mut p, &[IAC, WONT, TTYPE]),
            vec![
                send(&[IAC, DONT, TTYPE]),
                TelnetEvent::OptionDisabled {
                    option: TTYPE,
                    local: false
                }
            ]
        );
    }

    #[test]
    fn request_local_echo_round_trip() {
        let mut p = parser();
        assert_eq!(
            p.request_local(OPT_ECHO, true),
            Some(vec![IAC, WILL, OPT_ECHO])
        );
        assert!(!p.is_local_enabled(OPT_ECHO));
        assert_eq!(
            feed(&mut p, &[IAC, DO, OPT_ECHO]),
            vec![TelnetEvent::OptionEnabled {
                option: OPT_ECHO,
                local: true
            }]
        );
        assert!(p.is_local_enabled(OPT_ECHO));
        assert_eq!(p.request_local(OPT_ECHO, true), None);
        assert_eq!(
            p.request_local(OPT_ECHO, false),
            Some(vec![IAC, WONT, OPT_ECHO])
        );
        assert_eq!(
            feed(&mut p, &[IAC, DONT, OPT_ECHO]),
            vec![TelnetEvent::OptionDisabled {
                option: OPT_ECHO,
                local: true
            }]
        );
        assert!(!p.is_local_enabled(OPT_ECHO));
        assert_eq!(p.request_local(OPT_ECHO, false), None);
    }

    #[test]
    fn request_remote_refused_reports_disabled() {
        let mut p = parser();
        assert_eq!(p.request_remote(TTYPE, true), Some(vec![IAC, DO, TTYPE]));
        assert_eq!(
            feed(&mut p, &[IAC, WONT, TTYPE]),
            vec![TelnetEvent::OptionDisabled {
                option: TTYPE,
                local: false
            }]
        );
        // The refusal left the state at NO: a late duplicate WONT is ignored.
        assert_eq!(feed(&mut p, &[IAC, WONT, TTYPE]), vec![]);
    }

    #[test]
    fn request_while_negotiating_is_queued_not_sent() {
        let mut p = parser();
        assert_eq!(
            p.request_local(OPT_ECHO, true),
            Some(vec![IAC, WILL, OPT_ECHO])
        );
        // Change of mind while WILL is in flight: queued (OPPOSITE), nothing sent.
        assert_eq!(p.request_local(OPT_ECHO, false), None);
        // The client agrees; the queued disable goes out now and no event is reported
        // because the option is on its way off.
        assert_eq!(
            feed(&mut p, &[IAC, DO, OPT_ECHO]),
            vec![send(&[IAC, WONT, OPT_ECHO])]
        );
        assert!(!p.is_local_enabled(OPT_ECHO));
        assert_eq!(feed(&mut p, &[IAC, DONT, OPT_ECHO]), vec![]);
        assert!(!p.is_local_enabled(OPT_ECHO));
    }

    #[test]
    fn queued_request_can_be_cancelled() {
        let mut p = parser();
        assert!(p.request_local(OPT_ECHO, true).is_some());
        assert_eq!(p.request_local(OPT_ECHO, false), None);
        assert_eq!(p.request_local(OPT_ECHO, true), None);
        assert_eq!(
            feed(&mut p, &[IAC, DO, OPT_ECHO]),
            vec![TelnetEvent::OptionEnabled {
                option: OPT_ECHO,
                local: true
            }]
        );
    }

    #[test]
    fn re_enable_queued_during_disable_reports_enabled_once() {
        let mut p = parser();
        p.support_local(GMCP);
        let events = feed(&mut p, &[IAC, DO, GMCP]);
        assert_eq!(events.len(), 2);
        assert_eq!(p.request_local(GMCP, false), Some(vec![IAC, WONT, GMCP]));
        assert_eq!(p.request_local(GMCP, true), None);
        // DONT confirms the disable; the queued enable goes out.
        assert_eq!(
            feed(&mut p, &[IAC, DONT, GMCP]),
            vec![send(&[IAC, WILL, GMCP])]
        );
        // Never reported disabled, so re-enabling reports nothing new either.
        assert_eq!(feed(&mut p, &[IAC, DO, GMCP]), vec![]);
        assert!(p.is_local_enabled(GMCP));
    }

    #[test]
    fn peer_answering_dont_with_do_ends_at_no() {
        let mut p = parser();
        p.support_local(GMCP);
        feed(&mut p, &[IAC, DO, GMCP]);
        assert!(p.request_local(GMCP, false).is_some());
        // Per RFC 1143 a DO in WANTNO is an error answer: the option goes off, no reply.
        assert_eq!(
            feed(&mut p, &[IAC, DO, GMCP]),
            vec![TelnetEvent::OptionDisabled {
                option: GMCP,
                local: true
            }]
        );
        assert!(!p.is_local_enabled(GMCP));
    }

    #[test]
    fn peer_answering_wont_with_do_while_re_enable_is_queued_ends_at_yes() {
        let mut p = parser();
        p.support_local(GMCP);
        assert_eq!(feed(&mut p, &[IAC, DO, GMCP]).len(), 2);
        assert!(p.request_local(GMCP, false).is_some());
        assert_eq!(p.request_local(GMCP, true), None);
        // RFC 1143: a DO in WANTNO with the enable queued leaves the option on. It was
        // never reported disabled, so nothing is reported.
        assert_eq!(feed(&mut p, &[IAC, DO, GMCP]), vec![]);
        assert!(p.is_local_enabled(GMCP));
        // And no negotiation is left in flight.
        assert_eq!(p.request_local(GMCP, true), None);
    }

    #[test]
    fn local_and_remote_sides_are_independent() {
        let mut p = parser();
        p.support_local(GMCP);
        assert_eq!(
            feed(&mut p, &[IAC, WILL, GMCP]),
            vec![send(&[IAC, DONT, GMCP])]
        );
        assert_eq!(
            feed(&mut p, &[IAC, DO, GMCP]),
            vec![
                send(&[IAC, WILL, GMCP]),
                TelnetEvent::OptionEnabled {
                    option: GMCP,
                    local: true
                }
            ]
        );
        assert!(p.is_local_enabled(GMCP));
        assert!(!p.is_remote_enabled(GMCP));
    }

    #[test]
    fn agreed_options_carry_over_to_a_new_parser_without_a_word_on_the_wire() {
        let mut old = parser();
        old.support_remote(GMCP);
        old.support_local(TTYPE);
        old.request_remote(GMCP, true);
        feed(&mut old, &[IAC, WILL, GMCP]);
        assert!(old.is_remote_enabled(GMCP));
        let snapshot = old.snapshot_options();

        let mut new = parser();
        new.restore_options(&snapshot);
        assert!(new.is_remote_enabled(GMCP));
        assert!(!new.is_local_enabled(TTYPE));
        // The client's next GMCP message is read as one, and its repeated WILL
        // is not answered again.
        let mut sb = vec![IAC, SB, GMCP];
        sb.extend_from_slice(b"Core.Ping");
        sb.extend_from_slice(&[IAC, SE]);
        assert!(matches!(
            feed(&mut new, &sb).as_slice(),
            [TelnetEvent::Subnegotiation { option: GMCP, .. }]
        ));
        assert_eq!(feed(&mut new, &[IAC, WILL, GMCP]), vec![]);
        // A DO for a supported option not yet agreed is still agreed to.
        assert_eq!(
            feed(&mut new, &[IAC, DO, TTYPE]),
            vec![
                send(&[IAC, WILL, TTYPE]),
                TelnetEvent::OptionEnabled {
                    option: TTYPE,
                    local: true
                }
            ]
        );
    }

    #[test]
    fn negotiation_split_across_feeds() {
        let mut p = parser();
        assert_eq!(feed(&mut p, &[IAC]), vec![]);
        assert_eq!(feed(&mut p, &[DO]), vec![]);
        assert_eq!(
            feed(&mut p, &[UNSUPPORTED]),
            vec![send(&[IAC, WONT, UNSUPPORTED])]
        );
    }

    #[test]
    fn negotiation_inside_a_line_keeps_the_line() {
        assert_eq!(
            lines(&[b'l', b'o', IAC, DO, UNSUPPORTED, b'o', b'k', LF]),
            vec![send(&[IAC, WONT, UNSUPPORTED]), line("look")]
        );
    }

    // --- output ---

    #[test]
    fn encode_output_converts_lf_to_crlf() {
        assert_eq!(encode("a\nb\n", Encoding::Utf8), b"a\r\nb\r\n");
    }

    #[test]
    fn encode_output_keeps_existing_crlf() {
        assert_eq!(encode("a\r\nb\r\n\n", Encoding::Utf8), b"a\r\nb\r\n\r\n");
    }

    #[test]
    fn encode_output_bare_cr_becomes_cr_nul() {
        assert_eq!(encode("50%\r60%", Encoding::Utf8), b"50%\r\x0060%");
        assert_eq!(encode("x\r", Encoding::Utf8), b"x\r\0");
    }

    #[test]
    fn encode_output_utf8() {
        assert_eq!(
            encode("caf\u{e9} \u{ff}\n", Encoding::Utf8),
            "caf\u{e9} \u{ff}\r\n".as_bytes()
        );
    }

    #[test]
    fn encode_output_latin1_doubles_iac_and_replaces_unencodable() {
        assert_eq!(
            encode("\u{ff}caf\u{e9} \u{20ac}\u{1f600}\n", Encoding::Latin1),
            b"\xff\xffcaf\xe9 ??\r\n"
        );
    }

    proptest::proptest! {
        #[test]
        fn utf8_output_by_runs_equals_char_by_char(text in "[a-z\\r\\n\u{e9}\u{ff}\u{1F600} ]{0,64}") {
            let mut runs = BytesMut::new();
            encode_output(&text, Encoding::Utf8, &mut runs);
            let mut chars = BytesMut::new();
            encode_chars(&text, Encoding::Utf8, &mut chars);
            proptest::prop_assert_eq!(runs, chars);
        }
    }

    #[test]
    fn encode_output_appends() {
        let mut out = BytesMut::from(&b"> "[..]);
        encode_output("hi\n", Encoding::Utf8, &mut out);
        assert_eq!(&out[..], b"> hi\r\n");
    }

    #[test]
    fn encoded_output_parses_back() {
        let text = "say \u{ff}\u{e9}\nnext\n";
        for encoding in [Encoding::Latin1, Encoding::Utf8] {
            let mut p = parser();
            p.set_encoding(encoding);
            assert_eq!(
                feed(&mut p, &encode(text, encoding)),
                vec![line("say \u{ff}\u{e9}"), line("next")]
            );
        }
    }

    #[test]
    fn hide_input_bytes() {
        assert_eq!(hide_input(true), [IAC, WILL, OPT_ECHO]);
        assert_eq!(hide_input(false), [IAC, WONT, OPT_ECHO]);
        assert_eq!(hide_input(true), [255, 251, 1]);
        assert_eq!(hide_input(false), [255, 252, 1]);
    }

    #[test]
    fn subnegotiation_frames_and_escapes() {
        assert_eq!(
            subnegotiation(GMCP, &[b'a', IAC, b'b']),
            vec![IAC, SB, GMCP, b'a', IAC, IAC, b'b', IAC, SE]
        );
        assert_eq!(
            lines(&subnegotiation(GMCP, &[b'a', IAC, b'b'])),
            vec![TelnetEvent::Subnegotiation {
                option: GMCP,
                data: vec![b'a', IAC, b'b']
            }]
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TelnetError::LineTooLong { limit: 80 }.to_string(),
            "input line longer than 80 characters"
        );
        assert_eq!(
            TelnetError::SubnegotiationTooLong {
                option: 201,
                limit: 8
            }
            .to_string(),
            "subnegotiation for telnet option 201 longer than 8 bytes"
        );
    }

    // --- property tests ---

    use proptest::prelude::*;

    /// Largest generated input.
    const MAX_INPUT: usize = 64 * 1024;

    /// Few cases per property: each case is up to 64 KiB of input, and the module must
    /// stay fast in debug builds. No failure persistence: a failing case is printed,
    /// and no regression file is written next to the sources.
    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Structural bytes: IAC's companions in framing and the line endings.
    const STRUCTURAL: [u8; 5] = [SB, SE, CR, LF, NUL];
    /// Bytes the parser treats specially besides those: commands, editing keys, a
    /// UTF-8 continuation and lead byte, an option number.
    const SPECIAL: [u8; 13] = [
        WILL, WONT, DO, DONT, EC, EL, NOP, BS, DEL, TAB, 0x80, 0xc3, GMCP,
    ];

    /// A byte biased towards the ones that carry telnet structure (IAC, SB, SE, CR, LF,
    /// NUL) and the ones the parser treats specially, so random input keeps entering
    /// and leaving commands, subnegotiations and lines.
    fn telnet_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => Just(IAC),
            4 => prop::sample::select(STRUCTURAL.to_vec()),
            2 => prop::sample::select(SPECIAL.to_vec()),
            5 => any::<u8>(),
        ]
    }

    /// The same bias as [`telnet_byte`], from one word of a pseudo-random stream.
    fn biased_byte(word: u64) -> u8 {
        let [pick, value, ..] = word.to_le_bytes();
        let value_index = usize::from(value);
        match pick % 15 {
            0..=3 => IAC,
            4..=7 => STRUCTURAL[value_index % STRUCTURAL.len()],
            8..=9 => SPECIAL[value_index % SPECIAL.len()],
            _ => value,
        }
    }

    /// `len` biased bytes from a splitmix64 stream seeded with `seed`. Dense random
    /// input this way costs one generated value instead of one value tree per byte:
    /// a per-byte strategy makes 64 KiB inputs take most of a second each in debug.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed;
        (0..len)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                biased_byte(z ^ (z >> 31))
            })
            .collect()
    }

    /// Options the generated input and the generated parser setups share, so some
    /// negotiations hit supported options and some subnegotiations hit known ones.
    fn option() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![OPT_ECHO, OPT_SGA, TTYPE, GMCP, UNSUPPORTED]),
            any::<u8>(),
        ]
    }

    /// The byte of a run: mostly one that fills a line (a letter, a Latin-1 letter,
    /// a lone UTF-8 continuation byte that counts as no character while buffered) or
    /// IAC (an IAC IAC flood, or a stream of commands when the run is odd).
    fn run_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![b'a', 0xe9, 0x80, IAC]),
            telnet_byte(),
        ]
    }

    /// A piece of input: a biased byte, a block of biased noise, a run of one byte
    /// (long lines, IAC IAC floods, lone UTF-8 continuation bytes, long
    /// subnegotiations), a run of one character of 1 to 4 UTF-8 bytes, a negotiation, subnegotiation framing, a line ending or
    /// arbitrary UTF-8 text.
    fn segment() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => telnet_byte().prop_map(|b| vec![b]),
            3 => (any::<u64>(), 1usize..=8192).prop_map(|(seed, len)| noise(seed, len)),
            2 => (run_byte(), 1usize..=4096).prop_map(|(b, n)| vec![b; n]),
            1 => (
                prop::sample::select(vec!["a", "\u{e9}", "\u{20ac}", "\u{1f600}"]),
                1usize..=1024,
            )
                .prop_map(|(c, n)| c.repeat(n).into_bytes()),
            2 => (prop::sample::select(vec![WILL, WONT, DO, DONT]), option())
                .prop_map(|(cmd, option)| vec![IAC, cmd, option]),
            1 => option().prop_map(|option| vec![IAC, SB, option]),
            1 => Just(vec![IAC, SE]),
            1 => Just(vec![CR, LF]),
            1 => prop::collection::vec(any::<char>(), 1..20)
                .prop_map(|chars| chars.into_iter().collect::<String>().into_bytes()),
        ]
    }

    /// Up to 64 KiB: one block of biased noise, or a sequence of segments.
    fn input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            1 => (any::<u64>(), 0..=MAX_INPUT).prop_map(|(seed, len)| noise(seed, len)),
            3 => prop::collection::vec(segment(), 0..=160).prop_map(|segments| {
                let mut bytes = segments.concat();
                bytes.truncate(MAX_INPUT);
                bytes
            }),
        ]
    }

    /// Chunk sizes, used in a cycle until the input is consumed: mostly tiny chunks
    /// (every telnet sequence gets split somewhere), sometimes large ones, sometimes
    /// empty feeds.
    fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(
            prop_oneof![4 => 1usize..=5, 2 => 0usize..=300, 1 => 1usize..=MAX_INPUT],
            1..16,
        )
    }

    /// Splits `input` into consecutive chunks with sizes taken from `sizes` in a cycle.
    fn chunked<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = input;
        for &size in sizes.iter().cycle() {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            chunks.push(chunk);
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
        chunks
    }

    /// The small limits the brief asks for, or other small ones, so limits are hit.
    fn small_limits() -> impl Strategy<Value = TelnetLimits> {
        prop_oneof![
            2 => Just(limits(64, 32)),
            1 => (1usize..=80, 1usize..=40).prop_map(|(line, sb)| limits(line, sb)),
        ]
    }

    fn any_limits() -> impl Strategy<Value = TelnetLimits> {
        prop_oneof![
            small_limits(),
            Just(limits(0, 0)),
            Just(limits(usize::MAX, usize::MAX)),
            (any::<usize>(), any::<usize>()).prop_map(|(line, sb)| limits(line, sb)),
        ]
    }

    fn encoding() -> impl Strategy<Value = Encoding> {
        prop_oneof![Just(Encoding::Utf8), Just(Encoding::Latin1)]
    }

    fn setup(limits: TelnetLimits, encoding: Encoding, supported: &[u8]) -> TelnetParser {
        let mut p = TelnetParser::new(limits);
        p.set_encoding(encoding);
        for &option in supported {
            p.support_local(option);
            p.support_remote(option);
        }
        p
    }

    /// What the caller may do between two feeds.
    #[derive(Debug, Clone)]
    enum Call {
        Nothing,
        SetEncoding(Encoding),
        RequestLocal(u8, bool),
        RequestRemote(u8, bool),
        SupportLocal(u8),
        SupportRemote(u8),
    }

    fn call() -> impl Strategy<Value = Call> {
        prop_oneof![
            6 => Just(Call::Nothing),
            1 => encoding().prop_map(Call::SetEncoding),
            1 => (option(), any::<bool>()).prop_map(|(o, e)| Call::RequestLocal(o, e)),
            1 => (option(), any::<bool>()).prop_map(|(o, e)| Call::RequestRemote(o, e)),
            1 => option().prop_map(Call::SupportLocal),
            1 => option().prop_map(Call::SupportRemote),
        ]
    }

    fn apply(p: &mut TelnetParser, call: &Call) -> Option<Vec<u8>> {
        match *call {
            Call::Nothing => None,
            Call::SetEncoding(encoding) => {
                p.set_encoding(encoding);
                None
            }
            Call::RequestLocal(option, enable) => p.request_local(option, enable),
            Call::RequestRemote(option, enable) => p.request_remote(option, enable),
            Call::SupportLocal(option) => {
                p.support_local(option);
                None
            }
            Call::SupportRemote(option) => {
                p.support_remote(option);
                None
            }
        }
    }

    /// The effective limits, computed from the settings independently of the parser.
    struct Effective {
        line_chars: usize,
        sb_bytes: usize,
    }

    fn effective(limits: TelnetLimits) -> Effective {
        let cap = |configured: usize, hard: usize| match configured {
            0 => hard,
            n => n.min(hard),
        };
        Effective {
            line_chars: cap(limits.max_line_chars, HARD_MAX_LINE_BYTES),
            sb_bytes: cap(
                limits.max_subnegotiation_bytes,
                HARD_MAX_SUBNEGOTIATION_BYTES,
            ),
        }
    }

    /// Buffers within the limits: the line within its character limit and within
    /// the byte room the parser gives it (4 bytes a character in UTF-8, 1 in
    /// Latin-1, never above the hard cap); `line_bytes_per_char` is passed in so a
    /// caller switching encodings can check against the larger room. Capacities may
    /// be up to twice the length they ever had (amortised growth), no more.
    fn check_buffers(
        p: &TelnetParser,
        limits: TelnetLimits,
        line_bytes_per_char: usize,
    ) -> Result<(), TestCaseError> {
        let max = effective(limits);
        let line_bytes = max
            .line_chars
            .saturating_mul(line_bytes_per_char)
            .min(HARD_MAX_LINE_BYTES);
        prop_assert_eq!(p.line_chars, count_chars(&p.line, p.encoding()));
        prop_assert!(p.line.len() <= line_bytes, "line of {} bytes", p.line.len());
        prop_assert!(
            p.line.capacity() <= 2 * line_bytes.max(8),
            "line capacity {}",
            p.line.capacity()
        );
        prop_assert!(p.sb_data.len() <= max.sb_bytes, "sb of {}", p.sb_data.len());
        prop_assert!(
            p.sb_data.capacity() <= 2 * max.sb_bytes.max(8),
            "sb capacity {}",
            p.sb_data.capacity()
        );
        Ok(())
    }

    /// Events within the limits: no line or subnegotiation longer than allowed, errors
    /// that name the effective limit, and sends that are well-formed negotiations.
    fn check_events(events: &[TelnetEvent], limits: TelnetLimits) -> Result<(), TestCaseError> {
        let max = effective(limits);
        for event in events {
            match event {
                TelnetEvent::Line(text) => {
                    prop_assert!(text.chars().count() <= max.line_chars, "{:?}", text);
                    prop_assert!(!text.contains(['\r', '\n']), "{:?}", text);
                }
                TelnetEvent::Subnegotiation { data, .. } => {
                    prop_assert!(data.len() <= max.sb_bytes, "sb of {}", data.len());
                }
                TelnetEvent::Error(TelnetError::LineTooLong { limit }) => {
                    prop_assert_eq!(*limit, max.line_chars);
                }
                TelnetEvent::Error(TelnetError::SubnegotiationTooLong { limit, .. }) => {
                    prop_assert_eq!(*limit, max.sb_bytes);
                }
                TelnetEvent::Send(bytes) => {
                    prop_assert_eq!(bytes.len(), 3);
                    prop_assert_eq!(bytes[0], IAC);
                    prop_assert!([WILL, WONT, DO, DONT].contains(&bytes[1]));
                }
                TelnetEvent::OptionEnabled { .. } | TelnetEvent::OptionDisabled { .. } => {}
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(48))]

        /// (a) Any bytes, any chunking, any limits, any caller calls in between:
        /// never a panic (including arithmetic overflow, checked in debug builds).
        #[test]
        fn prop_any_input_in_any_chunking_never_panics(
            input in input(),
            sizes in chunk_sizes(),
            limits in any_limits(),
            encoding in encoding(),
            supported in prop::collection::vec(option(), 0..8),
            calls in prop::collection::vec(call(), 1..8),
        ) {
            let mut p = setup(limits, encoding, &supported);
            let mut events = Vec::new();
            for (chunk, call) in chunked(&input, &sizes).into_iter().zip(calls.iter().cycle()) {
                p.feed(chunk, &mut events);
                if let Some(bytes) = apply(&mut p, call) {
                    prop_assert_eq!(bytes.len(), 3);
                }
            }
            check_events(&events, limits)?;
            prop_assert!(p.line.len() <= HARD_MAX_LINE_BYTES);
            prop_assert!(p.sb_data.len() <= HARD_MAX_SUBNEGOTIATION_BYTES);
        }

        /// (b) After every feed the buffers are within the configured limits (small
        /// ones, so the limits are actually hit) and every event respects them.
        #[test]
        fn prop_buffers_stay_within_limits_after_every_feed(
            input in input(),
            sizes in chunk_sizes(),
            limits in small_limits(),
            encoding in encoding(),
            supported in prop::collection::vec(option(), 0..8),
        ) {
            let mut p = setup(limits, encoding, &supported);
            let per_char = match encoding {
                Encoding::Utf8 => 4,
                Encoding::Latin1 => 1,
            };
            let mut events = Vec::new();
            for chunk in chunked(&input, &sizes) {
                events.clear();
                p.feed(chunk, &mut events);
                check_buffers(&p, limits, per_char)?;
                check_events(&events, limits)?;
            }
        }

        /// (b) The same with the encoding switched between feeds: a line typed in
        /// UTF-8 may hold up to 4 bytes a character when the switch to Latin-1
        /// comes, so the room checked is the UTF-8 one; it never grows past it, and
        /// delivered lines still respect the character limit.
        #[test]
        fn prop_buffers_stay_within_limits_across_encoding_switches(
            input in input(),
            sizes in chunk_sizes(),
            limits in small_limits(),
            switches in prop::collection::vec(encoding(), 1..8),
        ) {
            let mut p = TelnetParser::new(limits);
            let mut events = Vec::new();
            for (chunk, &encoding) in chunked(&input, &sizes).into_iter().zip(switches.iter().cycle()) {
                events.clear();
                p.feed(chunk, &mut events);
                check_buffers(&p, limits, 4)?;
                check_events(&events, limits)?;
                p.set_encoding(encoding);
                check_buffers(&p, limits, 4)?;
            }
        }

        /// (c) Fed whole or split anywhere, the same bytes give the same events and
        /// leave the parser in the same state. With no configured limits 64 KiB of
        /// input cannot hit the hard caps, so no limit is hit there.
        #[test]
        fn prop_chunking_does_not_change_events_without_limits(
            input in input(),
            sizes in chunk_sizes(),
            encoding in encoding(),
            supported in prop::collection::vec(option(), 0..8),
        ) {
            let mut whole = setup(limits(0, 0), encoding, &supported);
            let mut split = setup(limits(0, 0), encoding, &supported);
            let expected = feed(&mut whole, &input);
            prop_assert!(!expected.iter().any(|e| matches!(e, TelnetEvent::Error(_))));
            let mut events = Vec::new();
            for chunk in chunked(&input, &sizes) {
                split.feed(chunk, &mut events);
            }
            prop_assert_eq!(&events, &expected);
            prop_assert_eq!(format!("{split:?}"), format!("{whole:?}"));
        }

        /// (c) Chunking does not matter when limits are hit either: every limit
        /// decision is made per byte from state that survives the end of a feed.
        #[test]
        fn prop_chunking_does_not_change_events_with_small_limits(
            input in input(),
            sizes in chunk_sizes(),
            limits in small_limits(),
            encoding in encoding(),
            supported in prop::collection::vec(option(), 0..8),
        ) {
            let mut whole = setup(limits, encoding, &supported);
            let mut split = setup(limits, encoding, &supported);
            let expected = feed(&mut whole, &input);
            let mut events = Vec::new();
            for chunk in chunked(&input, &sizes) {
                split.feed(chunk, &mut events);
            }
            prop_assert_eq!(&events, &expected);
            prop_assert_eq!(format!("{split:?}"), format!("{whole:?}"));
        }
    }

    /// Options the negotiation properties draw from: few, so requests and answers for
    /// the same option collide.
    fn negotiated_option() -> impl Strategy<Value = u8> {
        prop::sample::select(vec![OPT_ECHO, OPT_SGA, TTYPE, GMCP])
    }

    /// A Q-method request one end makes at the start of a round.
    #[derive(Debug, Clone)]
    struct Request {
        at_b: bool,
        local: bool,
        option: u8,
        enable: bool,
        round: usize,
    }

    fn request() -> impl Strategy<Value = Request> {
        (
            any::<bool>(),
            any::<bool>(),
            negotiated_option(),
            any::<bool>(),
            0usize..6,
        )
            .prop_map(|(at_b, local, option, enable, round)| Request {
                at_b,
                local,
                option,
                enable,
                round,
            })
    }

    /// One end of a connection between two parsers.
    struct Peer {
        parser: TelnetParser,
        outbox: Vec<u8>,
        /// The last OptionEnabled (true) or OptionDisabled (false) per option and side
        /// (index 1 is local).
        reported: Vec<[Option<bool>; 2]>,
    }

    impl Peer {
        /// `supports` lists (local, option) pairs the end agrees to enable.
        fn new(supports: &[(bool, u8)]) -> Self {
            let mut parser = parser();
            for &(local, option) in supports {
                if local {
                    parser.support_local(option);
                } else {
                    parser.support_remote(option);
                }
            }
            Self {
                parser,
                outbox: Vec::new(),
                reported: vec![[None; 2]; 256],
            }
        }

        fn request(&mut self, local: bool, option: u8, enable: bool) {
            let bytes = if local {
                self.parser.request_local(option, enable)
            } else {
                self.parser.request_remote(option, enable)
            };
            self.outbox.extend(bytes.unwrap_or_default());
        }

        fn receive(&mut self, bytes: &[u8], chunk: usize) -> Result<(), TestCaseError> {
            let mut events = Vec::new();
            for chunk in bytes.chunks(chunk) {
                self.parser.feed(chunk, &mut events);
            }
            for event in events {
                match event {
                    TelnetEvent::Send(bytes) => self.outbox.extend(bytes),
                    TelnetEvent::OptionEnabled { option, local } => {
                        let slot = &mut self.reported[usize::from(option)][usize::from(local)];
                        prop_assert_ne!(*slot, Some(true), "{} enabled twice", option);
                        *slot = Some(true);
                    }
                    TelnetEvent::OptionDisabled { option, local } => {
                        self.reported[usize::from(option)][usize::from(local)] = Some(false);
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Two parsers wired back to back, each supporting some options and making
        /// requests while earlier answers are still in flight: the exchange always
        /// stops, both ends agree on every option, an option is never reported
        /// enabled twice in a row, and an enabled option was reported enabled.
        #[test]
        fn prop_negotiation_between_two_parsers_settles_and_agrees(
            supports_a in prop::collection::vec((any::<bool>(), negotiated_option()), 0..6),
            supports_b in prop::collection::vec((any::<bool>(), negotiated_option()), 0..6),
            requests in prop::collection::vec(request(), 0..12),
            chunk in 1usize..=4,
        ) {
            let mut a = Peer::new(&supports_a);
            let mut b = Peer::new(&supports_b);
            let last = requests.iter().map(|r| r.round).max().unwrap_or(0);
            let mut round = 0;
            loop {
                for r in requests.iter().filter(|r| r.round == round) {
                    let peer = if r.at_b { &mut b } else { &mut a };
                    peer.request(r.local, r.option, r.enable);
                }
                if round > last && a.outbox.is_empty() && b.outbox.is_empty() {
                    break;
                }
                prop_assert!(round <= last + 8, "still negotiating after {} rounds", round);
                // Both directions at once, so commands cross on the wire.
                let to_b = std::mem::take(&mut a.outbox);
                let to_a = std::mem::take(&mut b.outbox);
                a.receive(&to_a, chunk)?;
                b.receive(&to_b, chunk)?;
                round += 1;
            }
            for option in [OPT_ECHO, OPT_SGA, TTYPE, GMCP] {
                prop_assert_eq!(
                    a.parser.is_local_enabled(option),
                    b.parser.is_remote_enabled(option),
                    "option {}", option
                );
                prop_assert_eq!(
                    a.parser.is_remote_enabled(option),
                    b.parser.is_local_enabled(option),
                    "option {}", option
                );
                for peer in [&a, &b] {
                    let reported = peer.reported[usize::from(option)];
                    if peer.parser.is_local_enabled(option) {
                        prop_assert_eq!(reported[1], Some(true), "option {}", option);
                    }
                    if peer.parser.is_remote_enabled(option) {
                        prop_assert_eq!(reported[0], Some(true), "option {}", option);
                    }
                }
            }
        }
    }

    /// One thing the server sends that the client might echo back as input.
    #[derive(Debug, Clone)]
    enum Item {
        Line(String),
        Subnegotiation(u8, Vec<u8>),
    }

    /// Printable text; in Latin-1 only characters Latin-1 can encode.
    fn text(encoding: Encoding) -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>(), 0..30).prop_map(move |chars| {
            chars
                .into_iter()
                .map(|c| match encoding {
                    Encoding::Utf8 => c,
                    Encoding::Latin1 => u8::try_from(u32::from(c)).map_or('?', char::from),
                })
                .filter(|c| !c.is_control())
                .collect()
        })
    }

    fn items(encoding: Encoding) -> impl Strategy<Value = Vec<Item>> {
        prop::collection::vec(
            prop_oneof![
                text(encoding).prop_map(Item::Line),
                (option(), prop::collection::vec(telnet_byte(), 0..40))
                    .prop_map(|(option, data)| Item::Subnegotiation(option, data)),
            ],
            0..40,
        )
    }

    fn encoding_and_items() -> impl Strategy<Value = (Encoding, Vec<Item>)> {
        encoding().prop_flat_map(|encoding| (Just(encoding), items(encoding)))
    }

    proptest! {
        #![proptest_config(config(64))]

        /// Lines written with `encode_output` and frames built by `subnegotiation`,
        /// whatever IAC bytes they contain, parse back to exactly themselves in any
        /// chunking.
        #[test]
        fn prop_encoded_lines_and_subnegotiations_parse_back(
            (encoding, items) in encoding_and_items(),
            sizes in chunk_sizes(),
        ) {
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            for item in &items {
                match item {
                    Item::Line(text) => {
                        encode_output(&format!("{text}\n"), encoding, &mut wire);
                        expected.push(line(text));
                    }
                    Item::Subnegotiation(option, data) => {
                        wire.extend_from_slice(&subnegotiation(*option, data));
                        expected.push(TelnetEvent::Subnegotiation {
                            option: *option,
                            data: data.clone(),
                        });
                    }
                }
            }
            let mut p = setup(limits(0, 0), encoding, &[]);
            let mut events = Vec::new();
            for chunk in chunked(&wire, &sizes) {
                p.feed(chunk, &mut events);
            }
            prop_assert_eq!(events, expected);
        }
    }

    // --- hostile transcripts ---

    /// `data` with every IAC doubled, as it travels inside a subnegotiation.
    fn escape_iac(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 4);
        for &byte in data {
            if byte == IAC {
                out.push(IAC);
            }
            out.push(byte);
        }
        out
    }

    #[test]
    fn endless_subnegotiation_without_se_stays_bounded() {
        const WIRE_BYTES: usize = 10 * 1024 * 1024;
        // Payload bytes that mean something outside a subnegotiation (line ends, SB,
        // SE, negotiation commands, escaped IACs) but are plain data inside one.
        const PATTERN: [u8; 13] = [
            b'x', IAC, SE, CR, LF, SB, NUL, GMCP, IAC, b'{', DO, IAC, WILL,
        ];
        let payload: Vec<u8> = PATTERN
            .iter()
            .copied()
            .cycle()
            .take(WIRE_BYTES * PATTERN.len() / (PATTERN.len() + 3))
            .collect();
        let mut wire = vec![IAC, SB, GMCP];
        wire.extend_from_slice(&escape_iac(&payload));
        assert!(wire.len() >= WIRE_BYTES - 32, "{}", wire.len());

        for (limits, limit) in [
            (limits(64, 32), 32),
            (limits(0, 0), HARD_MAX_SUBNEGOTIATION_BYTES),
        ] {
            let mut p = TelnetParser::new(limits);
            // Exactly the limit's worth of payload is accepted and buffered.
            let at_limit = 3 + escape_iac(&payload[..limit]).len();
            let mut events = feed(&mut p, &wire[..at_limit]);
            assert_eq!(events, vec![]);
            assert_eq!(p.sb_data, payload[..limit]);
            // The rest, in odd-sized chunks so IAC IAC pairs are split across feeds.
            for chunk in wire[at_limit..].chunks(65_521) {
                p.feed(chunk, &mut events);
                assert!(p.sb_data.len() <= limit, "{}", p.sb_data.len());
                assert!(
                    p.sb_data.capacity() <= 2 * limit,
                    "{}",
                    p.sb_data.capacity()
                );
                assert!(p.line.is_empty());
            }
            assert_eq!(
                events,
                vec![TelnetEvent::Error(TelnetError::SubnegotiationTooLong {
                    option: GMCP,
                    limit
                })]
            );
            // When the SE finally comes the dropped subnegotiation is not delivered,
            // and the connection carries on.
            assert_eq!(feed(&mut p, &[IAC, SE, b'o', b'k', LF]), vec![line("ok")]);
        }
    }

    #[test]
    fn iac_flood_is_literal_line_data_up_to_the_limit() {
        // 1 MiB of IAC IAC pairs plus one odd IAC at the end.
        let flood = vec![IAC; 1024 * 1024 + 1];
        for (limits, limit) in [(limits(64, 32), 64), (limits(0, 0), HARD_MAX_LINE_BYTES)] {
            let mut p = TelnetParser::new(limits);
            // Exactly `limit` pairs: the line holds `limit` literal 0xFF bytes and
            // nothing is reported yet.
            let mut events = feed(&mut p, &flood[..2 * limit]);
            assert_eq!(events, vec![]);
            assert_eq!(p.line, vec![IAC; limit]);
            assert_eq!(p.state, State::Data);
            // The next literal byte is one too many.
            for chunk in flood[2 * limit..].chunks(4099) {
                p.feed(chunk, &mut events);
                assert!(p.line.len() <= limit, "{}", p.line.len());
                assert!(p.line.capacity() <= 2 * limit, "{}", p.line.capacity());
                assert!(p.sb_data.is_empty());
            }
            assert_eq!(
                events,
                vec![TelnetEvent::Error(TelnetError::LineTooLong { limit })]
            );
            // The odd IAC waits for its command byte; IAC makes it one more literal
            // byte of the dropped line, LF ends that line, and the next one is read.
            assert_eq!(p.state, State::Iac);
            assert_eq!(feed(&mut p, &[IAC, LF, b'o', b'k', LF]), vec![line("ok")]);
        }
    }

    #[test]
    fn iac_pairs_up_to_the_limit_make_one_line_of_ff() {
        for encoding in [Encoding::Utf8, Encoding::Latin1] {
            let mut p = TelnetParser::new(limits(64, 32));
            p.set_encoding(encoding);
            // Lone 0xFF bytes are not UTF-8, so UTF-8 mode falls back to Latin-1 and
            // both modes read them as U+00FF, one character each.
            let mut input = vec![IAC; 2 * 64];
            input.push(LF);
            input.extend_from_slice(&[IAC; 2 * 65]);
            input.push(LF);
            assert_eq!(
                feed(&mut p, &input),
                vec![
                    line(&"\u{ff}".repeat(64)),
                    TelnetEvent::Error(TelnetError::LineTooLong { limit: 64 }),
                ],
                "{encoding:?}"
            );
        }
    }

    #[test]
    fn negotiation_flood_for_unknown_options_is_refused_once_per_request() {
        const SUPPORTED: [u8; 4] = [OPT_ECHO, OPT_SGA, TTYPE, GMCP];
        let mut p = parser();
        for option in SUPPORTED {
            p.support_local(option);
            p.support_remote(option);
        }
        let unknown: Vec<u8> = (0..=255).filter(|o| !SUPPORTED.contains(o)).collect();
        assert_eq!(unknown.len(), 252);

        // 1000 DO and 1000 WILL, cycling through the unknown options (so each is asked
        // about 3 or 4 times), split into 7-byte chunks that cut the commands apart.
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for i in 0..1000 {
            let option = unknown[i % unknown.len()];
            input.extend_from_slice(&[IAC, DO, option, IAC, WILL, option]);
            // Each request gets exactly one refusal: RFC 1143 answers every DO/WILL
            // in state NO with WONT/DONT and stays at NO, so the first request of an
            // option gets one reply and a repeat gets one again, never an exchange.
            expected.push(send(&[IAC, WONT, option]));
            expected.push(send(&[IAC, DONT, option]));
        }
        let mut events = Vec::new();
        for chunk in input.chunks(7) {
            p.feed(chunk, &mut events);
        }
        assert_eq!(events.len(), 2000);
        assert_eq!(events, expected);

        // The client acknowledging the refusals, repeatedly: never answered.
        let mut acks = Vec::new();
        for _ in 0..4 {
            for &option in &unknown {
                acks.extend_from_slice(&[IAC, DONT, option, IAC, WONT, option]);
            }
        }
        assert_eq!(feed(&mut p, &acks), vec![]);
        for option in 0..=255 {
            assert!(!p.is_local_enabled(option), "{option}");
            assert!(!p.is_remote_enabled(option), "{option}");
        }

        // The supported options were left alone and still negotiate normally.
        assert_eq!(
            feed(&mut p, &[IAC, DO, OPT_SGA, IAC, DO, OPT_SGA]),
            vec![
                send(&[IAC, WILL, OPT_SGA]),
                TelnetEvent::OptionEnabled {
                    option: OPT_SGA,
                    local: true
                }
            ]
        );
    }

    #[test]
    fn dont_or_wont_for_a_refused_option_gets_no_reply() {
        let mut p = parser();
        assert_eq!(
            feed(&mut p, &[IAC, DO, UNSUPPORTED]),
            vec![send(&[IAC, WONT, UNSUPPORTED])]
        );
        assert_eq!(feed(&mut p, &[IAC, DONT, UNSUPPORTED]), vec![]);
        assert_eq!(feed(&mut p, &[IAC, DONT, UNSUPPORTED]), vec![]);
        assert_eq!(
            feed(&mut p, &[IAC, WILL, UNSUPPORTED]),
            vec![send(&[IAC, DONT, UNSUPPORTED])]
        );
        assert_eq!(feed(&mut p, &[IAC, WONT, UNSUPPORTED]), vec![]);
        assert_eq!(feed(&mut p, &[IAC, WONT, UNSUPPORTED]), vec![]);

        // Our own WILL refused by the client: reported once, later DONTs are silent.
        assert_eq!(
            p.request_local(OPT_ECHO, true),
            Some(vec![IAC, WILL, OPT_ECHO])
        );
        assert_eq!(
            feed(&mut p, &[IAC, DONT, OPT_ECHO]),
            vec![TelnetEvent::OptionDisabled {
                option: OPT_ECHO,
                local: true
            }]
        );
        assert_eq!(feed(&mut p, &[IAC, DONT, OPT_ECHO]), vec![]);

        // A supported option turned off by the client: acknowledged once only.
        p.support_local(OPT_SGA);
        assert_eq!(feed(&mut p, &[IAC, DO, OPT_SGA]).len(), 2);
        assert_eq!(
            feed(&mut p, &[IAC, DONT, OPT_SGA, IAC, DONT, OPT_SGA]),
            vec![
                send(&[IAC, WONT, OPT_SGA]),
                TelnetEvent::OptionDisabled {
                    option: OPT_SGA,
                    local: true
                }
            ]
        );
    }
}
