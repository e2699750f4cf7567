//! Entry points for the fuzz targets in `fuzz/`, and for `tests/fuzz_corpus.rs`, which
//! replays the kept corpus and every past finding through the same code in `cargo test`.
//!
//! Each function takes arbitrary bytes, drives one parser the way the running program
//! does, and panics only when a property a player or operator relies on is broken: so a
//! fuzzer's "crash" is a real bug, never a harmless assertion about internals.
//!
//! | target      | what hostile input reaches it                              |
//! |-------------|------------------------------------------------------------|
//! | `telnet`    | bytes from a telnet client, negotiation, GMCP/MSDP, MCCP3  |
//! | `link`      | bytes on the Portal-Server link, both directions           |
//! | `websocket` | text frames from a browser tab                             |
//! | `markup`    | text that reaches the markup renderer                      |
//! | `command`   | input lines, before and after login                        |

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::commands::{self, account, character, unloggedin};
use crate::protocols::link::{encode_frame, Input, LinkDecoder, PortalToServer, ServerToPortal};
use crate::protocols::telnet::mccp::Mccp3;
use crate::protocols::telnet::mssp::MsspInfo;
use crate::protocols::telnet::negotiation::{Effect, Negotiator, OPT_MCCP3};
use crate::protocols::telnet::oob::{gmcp_decode, msdp_decode, OPT_GMCP, OPT_MSDP};
use crate::protocols::telnet::parser::{
    TelnetEvent, TelnetLimits, TelnetParser, HARD_MAX_SUBNEGOTIATION_BYTES,
};
use crate::protocols::text::{self, ColorMode, RenderOptions};
use crate::protocols::websocket::{self, ClientFrame};
use crate::session::ProtocolFlags;

/// The line limit the telnet target runs with (the shipped `portal.max_char_limit`).
const LINE_LIMIT: usize = 6000;
/// Plain input one MCCP3 read may inflate to, as in the telnet session.
const INFLATE_LIMIT: usize = 256 * 1024;
/// Largest link frame the target accepts.
const LINK_FRAME_LIMIT: usize = 1024 * 1024;

/// Splits fuzz input into chunks: the first byte picks the chunk size, so the same
/// bytes are also tried as many small TCP reads.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (size, rest) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first % 64) + 1, rest),
        None => (1, data),
    };
    rest.chunks(size)
}

/// Telnet input as a session handles it: the parser with every option the Portal
/// offers, the negotiator, GMCP and MSDP decoding, and MCCP3 inflation once the client
/// starts it.
///
/// Properties: no line is longer than the limit, no line holds a control character
/// other than a tab, and the parser never keeps more than its hard limits.
pub fn telnet(data: &[u8]) {
    let mut parser = TelnetParser::new(TelnetLimits {
        max_line_chars: LINE_LIMIT,
        max_subnegotiation_bytes: 0,
    });
    let mut negotiator = Negotiator::new(MsspInfo {
        name: "fuzz".into(),
        players: 0,
        uptime: 0,
        ports: vec![4000],
        codebase: "gatehouse".into(),
        ssl_ports: Vec::new(),
        gmcp: true,
        msdp: true,
    });
    parser.pause_after_subnegotiation(Some(OPT_MCCP3));
    let _ = negotiator.offer(&mut parser);
    let mut state = TelnetState {
        parser,
        negotiator,
        flags: ProtocolFlags::default(),
        inflater: None,
        events: Vec::new(),
    };
    for chunk in chunks(data) {
        // As the session's read: switch to inflating where the client starts MCCP3,
        // even mid-read, and back where it ends the stream.
        let mut rest = chunk;
        let mut budget = INFLATE_LIMIT;
        while !rest.is_empty() {
            if let Some(mccp3) = state.inflater.as_mut() {
                let Ok(inflated) = mccp3.inflate(rest, budget) else {
                    // The session ends on a bad stream; so does this input.
                    return;
                };
                assert!(inflated.data.len() <= budget, "inflated past the limit");
                budget -= inflated.data.len();
                state.parser.feed(&inflated.data, &mut state.events);
                state.run_events();
                rest = &rest[inflated.consumed.min(rest.len())..];
                if inflated.ended {
                    state.inflater = None;
                } else if inflated.consumed == 0 {
                    break;
                }
            } else {
                let used = state.parser.feed_partial(rest, &mut state.events);
                state.run_events();
                rest = &rest[used.min(rest.len())..];
            }
        }
    }
    let mut effects = Vec::new();
    state.negotiator.timeout(&mut effects);
}

/// One telnet session's protocol state, without the socket.
struct TelnetState {
    parser: TelnetParser,
    negotiator: Negotiator,
    flags: ProtocolFlags,
    inflater: Option<Mccp3>,
    events: Vec<TelnetEvent>,
}

impl TelnetState {
    fn run_events(&mut self) {
        let mut effects = Vec::new();
        for event in self.events.drain(..) {
            match &event {
                TelnetEvent::Line(line) => check_line(line),
                TelnetEvent::Subnegotiation { option, data } => {
                    assert!(
                        data.len() <= HARD_MAX_SUBNEGOTIATION_BYTES,
                        "subnegotiation kept"
                    );
                    if *option == OPT_GMCP {
                        let _ = gmcp_decode(data);
                    } else if *option == OPT_MSDP {
                        let _ = msdp_decode(data);
                    }
                }
                _ => {}
            }
            self.negotiator
                .on_event(event, &mut self.flags, &mut effects);
        }
        if effects.contains(&Effect::StartDecompression) && self.inflater.is_none() {
            self.inflater = Some(Mccp3::new());
        }
    }
}

fn check_line(line: &str) {
    assert!(
        line.chars().count() <= LINE_LIMIT,
        "a line of {} characters passed the limit",
        line.chars().count()
    );
    assert!(
        !line.chars().any(|c| c.is_control() && c != '\t'),
        "a control character reached a line: {line:?}"
    );
}

/// Bytes on the link, decoded as each process decodes them.
///
/// Properties: decoding always makes progress or waits for more, and every message
/// that decodes encodes back to a frame that decodes to the same message.
pub fn link(data: &[u8]) {
    link_direction::<PortalToServer>(data);
    link_direction::<ServerToPortal>(data);
}

fn link_direction<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut decoder = LinkDecoder::<T>::new(LINK_FRAME_LIMIT);
    let mut buffer = BytesMut::new();
    for chunk in chunks(data) {
        buffer.extend_from_slice(chunk);
        loop {
            let before = buffer.len();
            match decoder.decode(&mut buffer) {
                Ok(Some(Ok(message))) => round_trip(&message),
                Ok(Some(Err(_))) => {}
                Ok(None) => break,
                Err(e) => panic!("the link decoder failed outright: {e}"),
            }
            assert!(buffer.len() < before, "a decoded item consumed no bytes");
        }
    }
}

fn round_trip<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(frame) = encode_frame(message, usize::MAX) else {
        return;
    };
    let mut again = BytesMut::from(&frame[..]);
    match LinkDecoder::<T>::new(usize::MAX).decode(&mut again) {
        Ok(Some(Ok(decoded))) => {
            // Floats such as NaN never compare equal; compare what was sent instead.
            if decoded != *message {
                let reencoded = encode_frame(&decoded, usize::MAX).ok();
                assert_eq!(reencoded.as_deref(), Some(&frame[..]), "{message:?}");
            }
        }
        other => panic!("a message we encoded does not decode: {message:?} -> {other:?}"),
    }
}

/// A text frame from a browser tab.
///
/// Properties: a frame is either refused with a reason or becomes one input, and a
/// text command carries no line break or other control character into the game.
pub fn websocket(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match websocket::parse_frame(text) {
        Ok(ClientFrame::Input(Input::Oob(msg))) => {
            assert_eq!(msg.name, msg.name.trim().to_lowercase());
            let _ = commands::inputfuncs::parse(&msg);
        }
        Ok(ClientFrame::Input(Input::Text(line))) => {
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "a control character reached a command: {line:?}"
            );
        }
        Ok(ClientFrame::Close) | Err(_) => {}
    }
}

/// Text through the markup renderer, for every kind of client.
///
/// Properties: player text made [`text::verbatim`] shows exactly as typed and carries
/// no colour, and HTML output holds no tag but the renderer's own.
pub fn markup(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let modes = [
        ColorMode::None,
        ColorMode::Ansi,
        ColorMode::Xterm256,
        ColorMode::TrueColor,
    ];
    for color in modes {
        for screenreader in [false, true] {
            let _ = text::to_ansi(
                &input,
                RenderOptions {
                    color,
                    screenreader,
                },
            );
        }
        let said = text::to_ansi(
            &text::verbatim(&input),
            RenderOptions {
                color,
                screenreader: false,
            },
        );
        if color == ColorMode::None || !input.contains('\x1b') {
            assert_eq!(said, input, "verbatim text changed in rendering");
        }
    }
    check_html(&text::to_html(&input));
    check_html(&text::to_html(&text::verbatim(&input)));
}

fn check_html(html: &str) {
    const TAGS: [&str; 3] = ["<span", "</span>", "<br>"];
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        assert!(
            TAGS.iter().any(|tag| rest.starts_with(tag)),
            "markup produced a tag of its own: {html:?}"
        );
        let end = rest
            .find('>')
            .unwrap_or_else(|| panic!("open tag: {html:?}"));
        assert!(
            !rest[1..end].contains('<'),
            "a tag holds another '<': {html:?}"
        );
        rest = &rest[end + 1..];
    }
}

/// One input line through every command parser a session may use.
///
/// Properties: parsing never panics, and the verb a line splits into is non-empty,
/// lower-case and free of whitespace.
pub fn command(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    if let Some(split) = commands::split(&line) {
        assert!(!split.verb.is_empty());
        assert!(!split.verb.chars().any(char::is_whitespace));
        assert_eq!(split.verb, split.verb.to_lowercase());
    }
    let _ = unloggedin::parse(&line, "idle");
    let _ = account::parse(&line, "idle");
    let _ = character::parse(&line);
    let _ = account::is_yes(&line);
}

/// One fuzz target's entry point.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the corpus replay test.
pub const TARGETS: [(&str, Target); 5] = [
    ("telnet", telnet),
    ("link", link),
    ("websocket", websocket),
    ("markup", markup),
    ("command", command),
];
