//! `gatehouse upgrade`: the Portal replaces its own binary with the one now on
//! disk while players type, and nobody notices: every telnet connection stays
//! open (compressed ones too), every line is answered exactly once, and the
//! Server never restarts.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{wait_for, Client, Game, DEADLINE};
use flate2::{Decompress, FlushDecompress, Status};

const PASSWORD: &str = "correct-horse-9";
const IAC: u8 = 255;
const WILL: u8 = 251;
const DO: u8 = 253;
const SB: u8 = 250;
const SE: u8 = 240;
const MCCP2: u8 = 86;
const MCCP2_START: [u8; 5] = [IAC, SB, MCCP2, IAC, SE];

/// A player whose client agreed to MCCP2: it inflates every compressed stream
/// the Portal starts, and reads plain text between them.
struct Compressed {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// The zlib stream under way, if any.
    zlib: Option<Decompress>,
    /// Streams the Portal started so far.
    streams: usize,
    text: String,
}

impl Compressed {
    fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut c = Self {
            stream,
            raw: Vec::new(),
            zlib: None,
            streams: 0,
            text: String::new(),
        };
        c.wait_raw(&[IAC, WILL, MCCP2]);
        c.stream.write_all(&[IAC, DO, MCCP2]).unwrap();
        c.decode();
        c.expect("create <username> <password>");
        c
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn pump(&mut self) {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => panic!("the connection closed; got {:?}", self.text),
            Ok(n) => self.raw.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read failed: {e}; got {:?}", self.text),
        }
        self.decode();
    }

    /// Waits for plain bytes before any compression starts.
    fn wait_raw(&mut self, needle: &[u8]) {
        let end = Instant::now() + DEADLINE;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(at) = self.raw.windows(needle.len()).position(|w| w == needle) {
                // What follows (the connection screen, perhaps) is read as usual.
                self.raw.drain(..at + needle.len());
                return;
            }
            assert!(Instant::now() < end, "timed out waiting for {needle:?}");
            if let Ok(n) = self.stream.read(&mut chunk) {
                assert!(n > 0, "closed");
                self.raw.extend_from_slice(&chunk[..n]);
            }
        }
    }

    fn decode(&mut self) {
        loop {
            if let Some(z) = &mut self.zlib {
                let before = z.total_in();
                let mut out = Vec::with_capacity(self.raw.len() * 8 + 4096);
                let status = z
                    .decompress_vec(&self.raw, &mut out, FlushDecompress::Sync)
                    .expect("a valid zlib stream");
                let used = usize::try_from(z.total_in() - before).unwrap();
                self.raw.drain(..used);
                self.text.push_str(&String::from_utf8_lossy(&out));
                if status == Status::StreamEnd {
                    self.zlib = None;
                    continue;
                }
                if used == 0 && out.is_empty() {
                    return;
                }
            } else {
                match self.raw.windows(5).position(|w| w == MCCP2_START) {
                    Some(at) => {
                        self.text
                            .push_str(&String::from_utf8_lossy(&self.raw[..at]));
                        self.raw.drain(..at + MCCP2_START.len());
                        self.zlib = Some(Decompress::new(true));
                        self.streams += 1;
                    }
                    None => {
                        // Keep what may be the start of a marker.
                        let keep = self.raw.len().min(MCCP2_START.len() - 1);
                        let cut = self.raw.len() - keep;
                        self.text
                            .push_str(&String::from_utf8_lossy(&self.raw[..cut]));
                        self.raw.drain(..cut);
                        return;
                    }
                }
            }
        }
    }

    /// Waits for `needle`; consumes and returns the text up to it.
    fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = self.text.find(needle) {
                let head = self.text[..at + needle.len()].to_owned();
                self.text.drain(..at + needle.len());
                return head;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {needle:?}; got {:?}",
                self.text
            );
            self.pump();
        }
    }
}

/// What the kernel says process `pid` runs.
fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn an_upgrade_replaces_the_portal_binary_while_players_type_and_nobody_notices() {
    let game = Game::start_from_copy(&[("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0")]);
    let mut ann = game.connect();
    ann.create_and_login("Ann", PASSWORD);
    let mut ben = Compressed::connect(game.telnet_port);
    ben.send(&format!("create Ben {PASSWORD}"));
    ben.expect("was created");
    ben.send(&format!("connect Ben {PASSWORD}"));
    ben.expect("You are logged in.");
    ann.sync();
    let portal = game.portal_pid();
    let server = game.server_pid();

    game.install_new_build();
    assert!(
        exe(portal).ends_with("(deleted)"),
        "the Portal runs the old build"
    );

    // Ann types throughout the upgrade; Ben speaks before and after it starts.
    let words: Vec<String> = (0..60).map(|i| format!("probe-{i}")).collect();
    let typist = {
        let words = words.clone();
        let mut stream = ann.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            for word in words {
                stream.write_all(format!("{word}\r\n").as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    ben.send("say before the upgrade");
    let upgrade = game.cli(&["upgrade"]);
    ben.send("say after the upgrade");
    typist.join().unwrap();
    assert!(
        upgrade.status.success(),
        "gatehouse upgrade failed: {}{}",
        String::from_utf8_lossy(&upgrade.stdout),
        String::from_utf8_lossy(&upgrade.stderr)
    );

    // The same process now runs the file on disk, and the Server never stopped.
    assert_eq!(exe(portal), game.program().display().to_string());
    assert_eq!(game.server_pid(), server, "the Server was not restarted");

    let answers: Vec<String> = words
        .iter()
        .map(|w| format!("Command '{w}' is not available."))
        .collect();
    let mut wanted: Vec<&str> = answers.iter().map(String::as_str).collect();
    wanted.push("Ben says, \"before the upgrade\"");
    wanted.push("Ben says, \"after the upgrade\"");
    let mut saw = ann.expect_all(&wanted);
    let mut ben_saw = ben.expect("You say, \"after the upgrade\"");
    ben.send("look");
    ben_saw += &ben.expect("Exits:");
    saw += &ann.sync();
    for needle in &wanted {
        assert_eq!(saw.matches(needle).count(), 1, "{needle:?} once in {saw:?}");
    }
    assert_eq!(
        ben_saw.matches("You say, \"before the upgrade\"").count(),
        1
    );
    for unnoticed in [
        "has left the game",
        "Server restarted",
        "stopped unexpectedly",
    ] {
        assert!(!saw.contains(unnoticed), "{unnoticed:?} in {saw:?}");
        assert!(!ben_saw.contains(unnoticed), "{unnoticed:?} in {ben_saw:?}");
    }
    assert!(
        ben.streams >= 2,
        "the compressed stream was ended and started again"
    );
    // New players connect to the upgraded Portal as before.
    let mut cat = Client::connect(game.telnet_port);
    cat.create_and_login("Cat", PASSWORD);
    let who = cat.who();
    assert!(who.contains("3 unique accounts logged in."), "{who}");
    let status = game.cli(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("binary replaced"), "{status}");
}

#[test]
fn an_upgrade_to_a_binary_that_does_not_start_leaves_the_portal_serving() {
    let game = Game::start_from_copy(&[]);
    let mut ann = game.connect();
    ann.create_and_login("Ann", PASSWORD);
    std::fs::write(game.program().with_extension("new"), b"#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(
        game.program().with_extension("new"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::rename(game.program().with_extension("new"), game.program()).unwrap();
    let upgrade = game.cli(&["upgrade"]);
    assert!(!upgrade.status.success());
    let said = String::from_utf8_lossy(&upgrade.stderr);
    assert!(said.contains("refused"), "{said}");
    ann.send("look");
    ann.expect("Exits:");
    wait_for("the refusal in status", DEADLINE, || {
        let status = game.cli(&["status"]);
        String::from_utf8_lossy(&status.stdout)
            .contains("last upgrade refused")
            .then_some(())
    });
}
