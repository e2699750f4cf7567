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

    /// Consumes client bytes and appends the resulting events in input order.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<TelnetEvent>) {
        for &byte in input {
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
                        if !self.discarding_sb {
                            events.push(TelnetEvent::Subnegotiation {
                                option: self.sb_option,
                                data: std::mem::take(&mut self.sb_data),
                            });
                        }
                        self.sb_data.clear();
                        self.discarding_sb = false;
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
            let text = decode(&self.line, self.encoding);
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
            feed(&mut p, b"\x80\x81\x82\x83\nok\n"),
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
        // A UTF-8 character cut off by the line end is not valid either.
        assert_eq!(lines(b"\xe2\x82\n"), vec![line("\u{e2}\u{82}")]);
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
}
