//! Hostile clients against the real binary: clients that stop reading, floods of
//! connections from one address. Each test checks that the offender alone pays and
//! that other players notice nothing.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{wait_for, Client, Game, DEADLINE};
use socket2::{Domain, Socket, Type};

const PASSWORD: &str = "correct-horse-9";

/// A telnet connection with a small receive buffer, so that output it does not read
/// backs up into the Portal quickly instead of into the kernel.
fn small_window_connection(port: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_output_limit_and_nobody_else_notices() {
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_BUFFER_LIMIT", "65536"),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut bystander = game.connect();
    bystander.create_and_login("Bob", PASSWORD);

    let mut stuck = small_window_connection(game.telnet_port);
    stuck
        .write_all(format!("create Sly {PASSWORD}\r\nconnect Sly {PASSWORD}\r\n").as_bytes())
        .unwrap();
    stuck
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        // Ask for pages of output and never read any of it.
        match stuck.write_all(b"help\r\nlook\r\n") {
            Ok(()) => sent += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
        if game.log().contains("of output not read; disconnecting") {
            break true;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "never cut off after {sent} requests"
        );
        if sent % 50 == 0 {
            // Meanwhile the other player is answered as usual.
            bystander.send("look");
            bystander.expect("Exits:");
        }
    };
    assert!(closed);
    let line = game
        .log()
        .lines()
        .find(|l| l.contains("of output not read"))
        .map(str::to_owned)
        .expect("a log line names the cut");
    assert!(line.contains("127.0.0.1"), "{line}");
    eprintln!(
        "cut after {sent} requests in {:?}: {line}",
        started.elapsed()
    );
    let who = bystander.who();
    assert!(who.contains("1 unique account logged in."), "{who}");
}
