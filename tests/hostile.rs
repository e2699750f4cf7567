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

/// A telnet client connecting from `source` (any address in 127.0.0.0/8 is this
/// machine, so one test can play several addresses).
fn client_from(source: [u8; 4], port: u16) -> Client {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: SocketAddr = (source, 0).into();
    socket.bind(&local.into()).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    Client::from_stream(socket.into())
}

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

#[test]
fn a_connection_flood_from_one_address_queues_only_that_address() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "1")]);
    let flooder = [127, 0, 0, 7];
    let mut flood: Vec<Client> = (0..6)
        .map(|_| client_from(flooder, game.telnet_port))
        .collect();
    flood[5].expect("DoS protection is active. You are queued to connect in 5 seconds");

    // A player from another address meanwhile gets straight in.
    let started = Instant::now();
    let mut player = client_from([127, 0, 0, 8], game.telnet_port);
    let screen = player.expect("create <username> <password>");
    assert!(!screen.contains("DoS protection"), "{screen}");
    player.send(&format!("create Nell {PASSWORD}"));
    player.expect("was created");
    let waited = started.elapsed();

    // Every queued connection is let in in the end: none is dropped.
    for client in &mut flood {
        client.expect("create <username> <password>");
    }
    let flood_done = started.elapsed();
    assert!(
        waited < flood_done,
        "the other address waited {waited:?}, as long as the flood ({flood_done:?})"
    );
    eprintln!("other address in after {waited:?}; the flood of 6 took {flood_done:?}");
    wait_for("all seven sessions", DEADLINE, || {
        game.status().contains("sessions = 7").then_some(())
    });
}
