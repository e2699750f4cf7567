//! Criterion micro-benchmarks of gatehouse's per-byte and per-message hot paths,
//! driven only through the crate's public API:
//!
//! - `telnet`: the sans-IO [`TelnetParser`] fed 4 KiB reads of (a) 1000 plain command
//!   lines and (b) the same kind of traffic mixed with option negotiation, NAWS
//!   subnegotiations and `IAC IAC` escapes; and [`encode_output`] of a rendered ~1 KiB
//!   room description.
//! - `markup`: [`to_ansi`], [`to_html`] and [`strip`] on a ~1 KiB room description with
//!   a dozen colour codes, and on the same text without markup.
//! - `link`: [`encode_frame`] and [`LinkDecoder`] for a one-line `DataIn`, a
//!   `DataOutMany` to 100 sessions and a `SessionsSync` of 1000 session records, each
//!   separately and as an encode-then-decode round trip.
//! - `commands`: the parsing a typed line goes through on the Server ([`split`], then
//!   the unlogged-in, account and in-character parsers) for a mix of typical lines.
//!
//! Run with `cargo bench --bench hot_paths` (append `-- <filter>` to run a subset,
//! e.g. `-- telnet/`). Reports land in `target/criterion/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::Decoder;

use gatehouse::commands::{account, character, split, unloggedin};
use gatehouse::protocols::link::{
    encode_frame, Input, LinkDecoder, Output, PortalToServer, ServerToPortal, MAX_FRAME_BYTES,
};
use gatehouse::protocols::telnet::mssp::{MsspInfo, OPT_MSSP};
use gatehouse::protocols::telnet::mtts::{OPT_TTYPE, TTYPE_IS};
use gatehouse::protocols::telnet::negotiation::{
    Negotiator, OPT_CHARSET, OPT_EOR, OPT_MCCP2, OPT_MCCP3, OPT_NAWS,
};
use gatehouse::protocols::telnet::oob::{OPT_GMCP, OPT_MSDP};
use gatehouse::protocols::telnet::parser::{
    encode_output, Encoding, TelnetEvent, TelnetLimits, TelnetParser, DO, DONT, IAC, NOP, OPT_SGA,
    SB, SE, WILL,
};
use gatehouse::protocols::telnet::MAX_SUBNEGOTIATION_BYTES;
use gatehouse::protocols::text::{strip, to_ansi, to_html, RenderOptions};
use gatehouse::session::{AccountId, CharacterId, ProtocolFlags, SessionId, SessionSyncData};

/// The size of one socket read the telnet session hands to the parser.
const READ_CHUNK: usize = 4 * 1024;
/// Lines in each telnet input stream.
const STREAM_LINES: usize = 1000;
/// The settings' default `portal.max_char_limit`.
const MAX_LINE_CHARS: usize = 6000;
/// The configured idle keepalive the command parsers compare against.
const IDLE_COMMAND: &str = "idle";

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

/// What players type, in the proportions of a quiet evening.
const TYPICAL_LINES: [&str; 10] = [
    "look",
    "say hello there everyone",
    "north",
    "who",
    "get sword from chest",
    "pose leans against the wall.",
    "look at the fountain",
    "\"anyone around?",
    "inventory",
    "ic Bob",
];

/// `count` typical command lines, CR LF terminated, as a client sends them.
fn plain_stream(count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for line in TYPICAL_LINES.iter().cycle().take(count) {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The client's answers to our opening offers (see [`negotiated_parser`]): agrees to
/// most, refuses MCCP2/MCCP3/MSDP/CHARSET, and reports its window and terminal type.
fn opening_answers() -> Vec<u8> {
    let mut out = Vec::new();
    for option in [OPT_SGA, OPT_GMCP, OPT_MSSP, OPT_EOR] {
        out.extend_from_slice(&[IAC, DO, option]);
    }
    for option in [OPT_MCCP2, OPT_MCCP3, OPT_MSDP, OPT_CHARSET] {
        out.extend_from_slice(&[IAC, DONT, option]);
    }
    out.extend_from_slice(&[IAC, WILL, OPT_NAWS, IAC, WILL, OPT_TTYPE]);
    out.extend_from_slice(&[IAC, SB, OPT_NAWS, 0, 80, 0, 24, IAC, SE]);
    out.extend_from_slice(&[IAC, SB, OPT_TTYPE, TTYPE_IS]);
    out.extend_from_slice(b"MUDLET");
    out.extend_from_slice(&[IAC, SE]);
    out
}

/// [`plain_stream`] traffic with telnet control mixed in: the opening negotiation,
/// then a NAWS resize to 255 columns (an escaped `IAC IAC` inside the subnegotiation)
/// every 20 lines, a Latin-1 line with an escaped 0xFF (`ÿ`) every 10 lines, an
/// `IAC NOP` keepalive every 50 lines and an EOR off/on toggle every 100 lines.
fn mixed_stream(count: usize) -> Vec<u8> {
    let mut out = opening_answers();
    for (i, line) in TYPICAL_LINES.iter().cycle().take(count).enumerate() {
        if i % 20 == 0 {
            out.extend_from_slice(&[IAC, SB, OPT_NAWS, 0, IAC, IAC, 0, 40, IAC, SE]);
        }
        if i % 50 == 0 {
            out.extend_from_slice(&[IAC, NOP]);
        }
        if i % 100 == 0 {
            out.extend_from_slice(&[IAC, DONT, OPT_EOR, IAC, DO, OPT_EOR]);
        }
        if i % 10 == 5 {
            // "say na\u{ef}ve caf\u{e9} \u{ff}!" in Latin-1, 0xFF escaped.
            out.extend_from_slice(b"say na\xefve caf\xe9 ");
            out.extend_from_slice(&[IAC, IAC]);
            out.extend_from_slice(b"!\r\n");
        } else {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// A parser in the state a fresh telnet session leaves it: the settings' limits and
/// the Negotiator's opening offers registered and sent.
fn negotiated_parser() -> TelnetParser {
    let mut parser = TelnetParser::new(TelnetLimits {
        max_line_chars: MAX_LINE_CHARS,
        max_subnegotiation_bytes: MAX_SUBNEGOTIATION_BYTES,
    });
    let mut negotiator = Negotiator::new(MsspInfo {
        name: "Gatehouse".to_owned(),
        players: 12,
        uptime: 1_700_000_000,
        ports: vec![4000],
        codebase: "gatehouse 0.1.0".to_owned(),
        ssl_ports: vec![4001],
        gmcp: true,
        msdp: true,
    });
    black_box(negotiator.offer(&mut parser));
    parser
}

/// A ~1 KiB room as `look` shows it ([`character::room_look`]). With `markup`, the
/// name, the exits and eight phrases carry a dozen-odd colour codes of every kind
/// (letter, `!`, background, xterm cube, greyscale, truecolor, underline); without,
/// the same words with no `|` at all.
fn room_text(markup: bool) -> String {
    let m = |code: &'static str| if markup { code } else { "" };
    let name = format!("{}The Old Gatehouse{}", m("|c|u"), m("|n"));
    let description = format!(
        "A squat tower of weathered {}grey stone{} guards the road here, its portcullis \
         long since rusted open. Ivy climbs the walls in thick green ropes, and swallows \
         dart in and out of the arrow slits high above. A {}brass plaque{}, green with \
         age, is bolted beside the arch; someone has scratched a crude {}red dragon{} into \
         the stone below it. Through the arch you can see the {}sunlit courtyard{} beyond, \
         where a dry fountain stands amid the weeds. The air smells of moss, old smoke and \
         the faint sweetness of {}wild honeysuckle{}.\n\
         To one side a narrow stair winds up into darkness, its steps worn into shallow \
         bowls by centuries of boots. A {}cold draught{} breathes down it, carrying the \
         distant sound of dripping water. Beside the stair, a rack of rotten pikes leans \
         against the wall, and a single {}lantern{} hangs from a hook, its glass cracked \
         but its wick still trimmed, as if someone meant to come back for it. Carved \
         above the inner door, half hidden by lichen, are the words {}\"None pass \
         unbidden\"{}.",
        m("|=m"),
        m("|n"),
        m("|y"),
        m("|n"),
        m("|!R"),
        m("|n"),
        m("|#ffcc66"),
        m("|n"),
        m("|[b|w"),
        m("|n"),
        m("|035"),
        m("|n"),
        m("|Y"),
        m("|n"),
        m("|h|i"),
        m("|n"),
    );
    let exits = if markup {
        ["|gnorth|n", "|gup|n", "|gsouth|n"]
    } else {
        ["north", "up", "south"]
    };
    character::room_look(&name, &description, &exits, &["Alice", "Bob", "Carol"])
}

/// A session record as the Portal syncs it: logged in and puppeting, with the flags a
/// negotiated Mudlet (telnet) or browser (websocket) client leaves.
fn session_record(id: u64) -> SessionSyncData {
    let websocket = id % 3 == 0;
    let flags = ProtocolFlags {
        xterm256: true,
        truecolor: websocket,
        mccp: !websocket,
        oob: true,
        gmcp: !websocket,
        eor: !websocket,
        nogoahead: !websocket,
        naws: !websocket,
        ttype: !websocket,
        client_name: Some(if websocket { "websocket" } else { "MUDLET" }.to_owned()),
        term: (!websocket).then(|| "XTERM-256COLOR".to_owned()),
        mtts: (!websocket).then_some(2_829),
        screen_width: 120,
        screen_height: 40,
        ..ProtocolFlags::default()
    };
    let protocol = if websocket { "websocket" } else { "telnet" };
    let address = format!("192.0.2.{}", id % 250);
    let now = 1_700_000_000_000 + id * 1_000;
    let mut session = SessionSyncData::new(SessionId(id), protocol, &address, now, flags);
    let account = i32::try_from(id).unwrap();
    session.log_in(AccountId(account), &format!("Player{id}"), now + 5_000);
    session.puppet_id = Some(CharacterId(account));
    session.record_input("look", IDLE_COMMAND, now + 9_000);
    session
}

/// What the command benchmarks feed the parsers: every context's common verbs, the
/// shortcuts, an exit name, a keepalive, a blank line and garbage.
const COMMAND_LINES: [&str; 16] = [
    "look",
    "say hi there",
    "\"hello all",
    ":waves.",
    "who",
    "north",
    "ic Bob",
    "ooc",
    "connect Alice s3cret pass",
    "create \"Bob the Brave\" \"pass word\"",
    "option xterm256 = on",
    "LOOK  at the fountain",
    "idle",
    "   ",
    "asdf qwer@#$ zzz !!",
    "ÿþ garbage ünïcödé",
];

// ---------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------

/// Feeds `stream` to a fresh negotiated parser in read-sized chunks and drains the
/// events after each read, as `TelnetSession` does.
fn feed_stream(mut parser: TelnetParser, stream: &[u8], events: &mut Vec<TelnetEvent>) {
    for chunk in stream.chunks(READ_CHUNK) {
        parser.feed(chunk, events);
        for event in events.drain(..) {
            black_box(event);
        }
    }
}

/// Guards the inputs: every line of a stream comes out as a line, nothing trips a
/// limit, and the negotiation in the mixed stream is answered.
fn check_stream(stream: &[u8]) {
    let mut events = Vec::new();
    negotiated_parser().feed(stream, &mut events);
    let lines = events
        .iter()
        .filter(|e| matches!(e, TelnetEvent::Line(_)))
        .count();
    assert_eq!(lines, STREAM_LINES);
    assert!(!events.iter().any(|e| matches!(e, TelnetEvent::Error(_))));
}

fn telnet(c: &mut Criterion) {
    let mut group = c.benchmark_group("telnet");
    let streams = [
        ("plain_lines", plain_stream(STREAM_LINES)),
        ("mixed_negotiation", mixed_stream(STREAM_LINES)),
    ];
    for (name, stream) in &streams {
        check_stream(stream);
        group.throughput(Throughput::Bytes(stream.len() as u64));
        let mut events = Vec::new();
        group.bench_with_input(BenchmarkId::new("feed_4k", name), stream, |b, stream| {
            b.iter_batched(
                negotiated_parser,
                |parser| feed_stream(parser, black_box(stream), &mut events),
                BatchSize::SmallInput,
            );
        });
    }

    // What the telnet session writes for a `look`: rendered first, then encoded.
    let rendered = to_ansi(&room_text(true), ansi_options());
    group.throughput(Throughput::Bytes(rendered.len() as u64));
    for encoding in [Encoding::Utf8, Encoding::Latin1] {
        group.bench_with_input(
            BenchmarkId::new("encode_output_room", encoding.name()),
            &rendered,
            |b, text| {
                b.iter(|| {
                    let mut buf = BytesMut::with_capacity(text.len() + 4);
                    encode_output(black_box(text), encoding, &mut buf);
                    buf
                });
            },
        );
    }
    group.finish();
}

/// A client that negotiated nothing: the default flags ask for ANSI colour.
fn ansi_options() -> RenderOptions {
    RenderOptions::for_client(&ProtocolFlags::default())
}

/// One markup rendering with its options bound.
type Renderer = Box<dyn Fn(&str) -> String>;

fn markup(c: &mut Criterion) {
    let mut group = c.benchmark_group("markup");
    let ansi = ansi_options();
    let xterm = RenderOptions::for_client(&ProtocolFlags {
        xterm256: true,
        ..ProtocolFlags::default()
    });
    let screenreader = RenderOptions::for_client(&ProtocolFlags {
        screenreader: true,
        ..ProtocolFlags::default()
    });
    let renderers: [(&str, Renderer); 5] = [
        ("to_ansi_ansi", Box::new(move |t| to_ansi(t, ansi))),
        ("to_ansi_xterm256", Box::new(move |t| to_ansi(t, xterm))),
        (
            "to_ansi_screenreader",
            Box::new(move |t| to_ansi(t, screenreader)),
        ),
        ("to_html", Box::new(to_html)),
        ("strip", Box::new(strip)),
    ];
    for (input, text) in [("colour", room_text(true)), ("plain", room_text(false))] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        for (name, render) in &renderers {
            group.bench_with_input(BenchmarkId::new(*name, input), text.as_str(), |b, t| {
                b.iter(|| render(black_box(t)));
            });
        }
    }
    group.finish();
}

/// Encode, decode and encode-then-decode of one link message; throughput is the
/// frame's size.
fn bench_link_message<T: Serialize + DeserializeOwned>(c: &mut Criterion, name: &str, msg: &T) {
    let mut group = c.benchmark_group("link");
    let frame = encode_frame(msg, MAX_FRAME_BYTES).unwrap();
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_with_input(BenchmarkId::new("encode", name), msg, |b, msg| {
        b.iter(|| encode_frame(black_box(msg), MAX_FRAME_BYTES).unwrap());
    });
    group.bench_with_input(BenchmarkId::new("decode", name), &frame, |b, frame| {
        let mut decoder = LinkDecoder::<T>::new(MAX_FRAME_BYTES);
        b.iter_batched(
            || BytesMut::from(&frame[..]),
            |mut buf| decoder.decode(&mut buf).unwrap().unwrap().unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.bench_with_input(BenchmarkId::new("round_trip", name), msg, |b, msg| {
        let mut decoder = LinkDecoder::<T>::new(MAX_FRAME_BYTES);
        b.iter(|| {
            let frame = encode_frame(black_box(msg), MAX_FRAME_BYTES).unwrap();
            let mut buf = BytesMut::from(&frame[..]);
            decoder.decode(&mut buf).unwrap().unwrap().unwrap()
        });
    });
    group.finish();
}

fn link(c: &mut Criterion) {
    bench_link_message(
        c,
        "data_in_line",
        &PortalToServer::DataIn {
            sessid: SessionId(42),
            input: Input::Text("say hello there everyone".to_owned()),
            seq: 1234,
        },
    );
    bench_link_message(
        c,
        "data_out_many_100",
        &ServerToPortal::DataOutMany {
            sessids: (1..=100).map(SessionId).collect(),
            output: Output::Text(character::say_others(
                "|cAlice|n",
                "Has anyone seen the lantern from the gatehouse?",
            )),
        },
    );
    bench_link_message(
        c,
        "sessions_sync_1000",
        &ServerToPortal::SessionsSync {
            sessions: (1..=1000).map(session_record).collect(),
        },
    );
}

/// One command-parsing path; answers whether the line parsed to a command.
type LineParser = fn(&str) -> bool;

fn commands(c: &mut Criterion) {
    let mut group = c.benchmark_group("commands");
    group.throughput(Throughput::Elements(COMMAND_LINES.len() as u64));
    let parsers: [(&str, LineParser); 4] = [
        ("split", |line| black_box(split(line)).is_some()),
        ("unloggedin_parse", |line| {
            black_box(unloggedin::parse(line, IDLE_COMMAND)).is_some()
        }),
        ("account_parse", |line| {
            black_box(account::parse(line, IDLE_COMMAND)).is_some()
        }),
        // A puppeted session: in-character commands first, then the account's, as
        // the Server's account actor runs them.
        ("puppeted_dispatch", |line| match character::parse(line) {
            Some(command) => black_box(Some(command)).is_some(),
            None => black_box(account::parse(line, IDLE_COMMAND)).is_some(),
        }),
    ];
    for (name, parse) in parsers {
        group.bench_function(name, |b| {
            b.iter(|| {
                COMMAND_LINES
                    .iter()
                    .filter(|line| parse(black_box(line)))
                    .count()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, telnet, markup, link, commands);
criterion_main!(benches);
