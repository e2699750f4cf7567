//! The telnet option suite against the real binary, as a MUD client speaks
//! it: raw IAC bytes in both directions.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Game, DEADLINE};

const IAC: u8 = 255;
const DO: u8 = 253;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const NAWS: u8 = 31;
const TTYPE: u8 = 24;
const MCCP2: u8 = 86;
const MSSP: u8 = 70;
const GMCP: u8 = 201;
const PASSWORD: &str = "correct-horse-9";

/// A client that keeps raw bytes.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(game: &Game) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", game.telnet_port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn line(&mut self, text: &str) {
        self.send(format!("{text}\r\n").as_bytes());
    }

    /// Reads until `needle` is in the buffer; consumes up to and including it.
    fn expect(&mut self, needle: &[u8]) -> Vec<u8> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                let rest = self.buf.split_off(i + needle.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {needle:?}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("closed while waiting for {needle:?}"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }

    fn expect_text(&mut self, text: &str) -> String {
        String::from_utf8_lossy(&self.expect(text.as_bytes())).into_owned()
    }
}

fn sb(option: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![IAC, SB, option];
    v.extend_from_slice(data);
    v.extend_from_slice(&[IAC, SE]);
    v
}

#[test]
fn the_server_offers_the_mud_options_at_connect() {
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    // The offers go out as soon as the connection is registered, before the
    // connection screen.
    let seen = c.expect(b"create <username> <password>");
    for offer in [
        [IAC, WILL, MCCP2],
        [IAC, WILL, GMCP],
        [IAC, WILL, MSSP],
        [IAC, DO, NAWS],
        [IAC, DO, TTYPE],
    ] {
        assert!(
            seen.windows(3).any(|w| w == offer),
            "missing offer {offer:?}"
        );
    }
}

#[test]
fn naws_and_the_mtts_cycle_set_the_client_options_and_survive_a_reload() {
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, DO, TTYPE]);
    c.send(&[IAC, WILL, NAWS]);
    c.send(&sb(NAWS, &[0, 120, 0, 40]));
    c.send(&[IAC, WILL, TTYPE]);
    for answer in ["MUDLET 4.17", "XTERM-256COLOR", "MTTS 137"] {
        c.expect(&sb(TTYPE, &[1]));
        let mut is = vec![0];
        is.extend_from_slice(answer.as_bytes());
        c.send(&sb(TTYPE, &is));
    }
    // An option changed on the Server must not wipe what was negotiated.
    c.line("screenreader");
    c.expect_text("Screenreader mode turned on.");
    c.line(&format!("create Mira {PASSWORD}"));
    c.expect_text("was created");
    c.line(&format!("connect Mira {PASSWORD}"));
    c.expect_text("You are logged in.");
    for round in 0..2 {
        c.line("option");
        let table = c.expect_text("Change one with");
        assert!(
            table.contains("screenwidth:  120"),
            "round {round}: {table}"
        );
        assert!(table.contains("screenheight: 40"), "round {round}: {table}");
        assert!(
            table.contains("client:       MUDLET 4.17"),
            "round {round}: {table}"
        );
        assert!(
            table.contains("xterm256:     true"),
            "round {round}: {table}"
        );
        if round == 0 {
            assert!(game.cli(&["reload"]).status.success());
            c.expect_text("Server restarted.");
        }
    }
}

#[test]
fn mccp2_compresses_everything_after_the_marker_and_ends_the_stream_on_quit() {
    use flate2::{Decompress, FlushDecompress, Status};
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MCCP2]);
    c.send(&[IAC, DO, MCCP2]);
    c.expect(&sb(MCCP2, &[]));
    c.line("look");
    c.line("quit");
    // Read to the end of the connection, then inflate what followed the marker.
    let end = Instant::now() + DEADLINE;
    let mut chunk = [0u8; 65536];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(_) => assert!(Instant::now() < end, "the connection did not close"),
        }
    }
    let mut z = Decompress::new(true);
    let mut text = Vec::with_capacity(1 << 20);
    let status = z
        .decompress_vec(&c.buf, &mut text, FlushDecompress::Finish)
        .unwrap();
    assert_eq!(
        status,
        Status::StreamEnd,
        "the zlib stream must be ended properly"
    );
    let text = String::from_utf8_lossy(&text).into_owned();
    // The same screen as an uncompressed session gets, byte for byte.
    let mut plain = Raw::connect(&game);
    plain.expect(&[IAC, WILL, MCCP2]);
    plain.line("look");
    plain.expect_text("create <username> <password>");
    let screen = plain.expect_text("look will re-show this screen.");
    let screen = &screen[screen.find("Enter help").unwrap_or(0)..];
    assert!(text.contains(screen), "{text}");
    assert!(text.contains("Welcome to gatehouse!"), "{text}");
    assert!(text.contains("Good bye! Disconnecting."), "{text}");
}

#[test]
fn mssp_tells_crawlers_the_name_and_player_count() {
    let game = Game::start(&[]);
    let mut player = game.connect();
    player.create_and_login("Pia", PASSWORD);
    common::wait_for("the status to count the player", DEADLINE, || {
        game.status().contains("logged_in = 1").then_some(())
    });
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MSSP]);
    c.send(&[IAC, DO, MSSP]);
    c.expect(&[IAC, SB, MSSP]);
    let table = c.expect(&[IAC, SE]);
    let text = String::from_utf8_lossy(&table);
    assert!(text.contains("\u{1}NAME\u{2}gatehouse"), "{text:?}");
    assert!(text.contains("\u{1}PLAYERS\u{2}1\u{1}"), "{text:?}");
    assert!(
        text.contains(&format!("\u{1}PORT\u{2}{}", game.telnet_port)),
        "{text:?}"
    );
}

#[test]
fn gmcp_from_the_client_does_not_disturb_the_session() {
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, GMCP]);
    c.send(&[IAC, DO, GMCP]);
    c.send(&sb(
        GMCP,
        br#"Core.Hello {"client":"Mudlet","version":"4.17"}"#,
    ));
    c.send(&sb(GMCP, br#"Core.Supports.Set ["Char 1", "Room 1"]"#));
    c.send(&sb(GMCP, b"garbage \xff\xff json {"));
    c.expect_text("create <username> <password>");
    c.line("look");
    c.expect_text("Welcome to gatehouse!");
}

#[test]
fn gmcp_core_hello_gets_an_answer_and_mudlet_can_log_in_over_gmcp() {
    let game = Game::start(&[]);
    let mut setup = game.connect();
    setup.create_and_login("Nell", PASSWORD);
    setup.send("quit");

    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, GMCP]);
    c.send(&[IAC, DO, GMCP]);
    c.send(&sb(
        GMCP,
        br#"Core.Hello {"client":"Mudlet","version":"4.17"}"#,
    ));
    // A Core.Supports.Set far larger than any small buffer.
    let mut supports = String::from("Core.Supports.Set [");
    for i in 0..400 {
        supports.push_str(&format!("\"Pkg{i}.Sub 1\","));
    }
    supports.push_str("\"Char 1\"]");
    c.send(&sb(GMCP, supports.as_bytes()));
    // The server offers Mudlet's GMCP login.
    c.expect(b"Char.Login.Default");
    c.send(&sb(GMCP, br#"Core.Commands.Get"#));
    // The answer uses the same GMCP package and lists the input functions.
    c.expect(b"Core.Commands.Get {");
    let list = c.expect(&[IAC, SE]);
    assert!(String::from_utf8_lossy(&list).contains("get_client_options"));

    let credentials =
        format!(r#"Char.Login.Credentials {{"account":"Nell","password":"{PASSWORD}"}}"#);
    c.send(&sb(GMCP, credentials.as_bytes()));
    c.expect(b"Char.Login.Result");
    let result = c.expect(&[IAC, SE]);
    assert!(String::from_utf8_lossy(&result).contains("\"success\":true"));
    c.expect_text("You are logged in.");
    c.line("who");
    c.expect_text("Nell");
}

/// A zlib stream as a client would send it, flushed per part.
fn deflate(parts: &[&[u8]], finish: bool) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new(Compression::default(), true);
    let mut out = Vec::with_capacity(1 << 20);
    for p in parts {
        z.compress_vec(p, &mut out, FlushCompress::Sync).unwrap();
    }
    if finish {
        z.compress_vec(&[], &mut out, FlushCompress::Finish)
            .unwrap();
    }
    out
}

const MCCP3: u8 = 87;

#[test]
fn mccp3_input_starting_and_ending_in_the_middle_of_a_read_is_understood() {
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MCCP3]);
    c.send(&[IAC, DO, MCCP3]);
    c.expect_text("create <username> <password>");
    // One write: plain `help`, the MCCP3 start, compressed `look`, the end of
    // the stream, then plain `quit`.
    let mut write = b"help\r\n".to_vec();
    write.extend(sb(MCCP3, &[]));
    write.extend(deflate(&[b"look\r\n"], true));
    write.extend_from_slice(b"quit\r\n");
    c.send(&write);
    c.expect_text("You are not yet logged in.");
    c.expect_text("Welcome to gatehouse!");
    c.expect_text("Good bye! Disconnecting.");
}

#[test]
fn an_mccp3_zlib_bomb_costs_only_its_own_session() {
    let game = Game::start(&[]);
    let mut bystander = game.connect();
    bystander.create_and_login("Olaf", PASSWORD);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MCCP3]);
    c.send(&[IAC, DO, MCCP3]);
    let mut write = sb(MCCP3, &[]);
    write.extend(deflate(&[&vec![b'a'; 20 << 20]], false));
    c.send(&write);
    c.expect_text("compressed input could not be read");
    assert!(bystander.who().contains("Olaf"), "other sessions carry on");
}

#[test]
fn mccp3_agreed_and_started_in_one_read() {
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MCCP3]);
    let mut write = vec![IAC, DO, MCCP3];
    write.extend(sb(MCCP3, &[]));
    write.extend(deflate(&[b"help\r\n"], false));
    c.send(&write);
    c.expect_text("You are not yet logged in.");
}

#[test]
fn msdp_and_gmcp_report_variables_of_the_character() {
    const MSDP: u8 = 69;
    let game = Game::start(&[]);
    let mut c = Raw::connect(&game);
    c.expect(&[IAC, WILL, MSDP]);
    c.send(&[IAC, DO, MSDP, IAC, DO, GMCP]);
    c.line(&format!("create Rhea {PASSWORD}"));
    c.expect_text("was created");
    c.line(&format!("connect Rhea {PASSWORD}"));
    c.expect_text("Exits:");
    // MSDP: LIST the variables, then SEND one.
    let mut list = vec![1];
    list.extend_from_slice(b"LIST");
    list.push(2);
    list.extend_from_slice(b"REPORTABLE_VARIABLES");
    c.send(&sb(MSDP, &list));
    c.expect(b"ROOM_NAME");
    let mut send = vec![1];
    send.extend_from_slice(b"SEND");
    send.push(2);
    send.extend_from_slice(b"ROOM_NAME");
    c.send(&sb(MSDP, &send));
    c.expect(b"\x01ROOM_NAME\x02Limbo");
    // GMCP: Char.Value.Get is `get_value`.
    c.send(&sb(GMCP, br#"Char.Value.Get {"name":"name"}"#));
    c.expect(br#"Char.Value.Get {"name":"Rhea"}"#);
}
