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

/// Reads one link frame (4-byte big-endian length, then MessagePack).
fn read_frame(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame)?;
    Ok(frame)
}

/// True once the peer has closed `stream` (reads end), within the deadline.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut sink = [0u8; 1024];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn strangers_on_the_link_port_are_refused_and_nobody_notices() {
    use gatehouse::protocols::link::{
        encode_frame, LinkRole, PortalToServer, ServerToPortal, LINK_PROTOCOL_VERSION,
    };
    let game = Game::start(&[("GATEHOUSE__PORTAL__LINK_SECRET", "the-real-secret")]);
    let mut player = game.connect();
    player.create_and_login("Pia", PASSWORD);
    let link = game.link_addr();

    // A peer that answers the challenge without knowing the secret.
    let mut impostor = TcpStream::connect(&link).unwrap();
    let challenge: PortalToServer =
        rmp_serde::from_slice(&read_frame(&mut impostor).unwrap()).unwrap();
    let PortalToServer::Challenge { nonce } = challenge else {
        panic!("the Portal did not open with a challenge: {challenge:?}");
    };
    let hello = ServerToPortal::Hello {
        version: LINK_PROTOCOL_VERSION,
        pid: 1,
        proof: gatehouse::protocols::link::link_proof("a-guess", LinkRole::Server, &nonce),
        nonce: vec![0; 32],
        acks_input: true,
    };
    impostor
        .write_all(&encode_frame(&hello, usize::MAX).unwrap())
        .unwrap();
    let answer: PortalToServer =
        rmp_serde::from_slice(&read_frame(&mut impostor).unwrap()).unwrap();
    assert!(
        matches!(&answer, PortalToServer::Refused { reason } if reason.contains("secret")),
        "{answer:?}"
    );
    assert!(closed_by_peer(&mut impostor));

    // A peer that sends garbage, and one that announces a 60 MiB frame.
    let mut garbage = TcpStream::connect(&link).unwrap();
    garbage
        .write_all(&[0, 0, 0, 5, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1])
        .unwrap();
    assert!(closed_by_peer(&mut garbage));
    let mut huge = TcpStream::connect(&link).unwrap();
    huge.write_all(&(60u32 << 20).to_be_bytes()).unwrap();
    assert!(closed_by_peer(&mut huge));

    // The real Server kept its link, and the player noticed nothing.
    player.send("look");
    let seen = player.expect("Exits:");
    assert!(!seen.contains("stopped unexpectedly"), "{seen}");
    let log = game.log();
    assert!(
        log.contains("link: refusing Server pid 1"),
        "no log line for the impostor"
    );
    assert!(
        log.contains("before the handshake"),
        "no log line for the garbage"
    );
}

/// Logs `name` in on `stream` without reading anything it is sent.
fn log_in_without_reading(stream: &mut TcpStream, name: &str) {
    stream
        .write_all(format!("create {name} {PASSWORD}\r\nconnect {name} {PASSWORD}\r\n").as_bytes())
        .unwrap();
}

#[test]
fn a_client_that_never_reads_is_cut_however_large_the_kernel_buffers() {
    // With the send buffer bounded (the default) and with the kernel's autotuning,
    // which lets the kernel swallow megabytes before the Portal queues a byte.
    for send_buffer in ["65536", "0"] {
        let line = cut_a_client_that_never_reads(send_buffer);
        eprintln!("socket_send_buffer {send_buffer}: {line}");
        assert!(line.contains("127.0.0.1"), "{line}");
    }
}

/// Runs the never-reading client against a game with `portal.socket_send_buffer` at
/// `send_buffer`; answers the log line that names the cut.
fn cut_a_client_that_never_reads(send_buffer: &str) -> String {
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_BUFFER_LIMIT", "65536"),
        ("GATEHOUSE__PORTAL__SOCKET_SEND_BUFFER", send_buffer),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut bystander = game.connect();
    bystander.create_and_login("Bob", PASSWORD);

    // A 4 KiB receive window, 3,000 room descriptions asked for at once, and not one
    // byte read: the output backs up into the Portal's side of the connection.
    let mut stuck = small_window_connection(game.telnet_port);
    log_in_without_reading(&mut stuck, "Sly");
    stuck.write_all(&b"look\r\n".repeat(3000)).unwrap();

    let line = wait_for("the non-reading client to be cut", DEADLINE, || {
        // Meanwhile the other player is answered as usual.
        bystander.send("look");
        bystander.expect("Exits:");
        game.log()
            .lines()
            .find(|l| l.contains("of output not read"))
            .map(str::to_owned)
    });
    assert!(closed_by_peer(&mut stuck), "the socket stayed open");
    wait_for("one session left", DEADLINE, || {
        game.status().contains("sessions = 1").then_some(())
    });
    let who = bystander.who();
    assert!(who.contains("1 unique account logged in."), "{who}");
    line
}

#[test]
fn a_client_that_stops_accepting_output_is_cut_after_the_stall_timeout() {
    // A limit far above what is asked for: only the stall timeout can cut.
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_STALL_TIMEOUT", "2"),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut bystander = game.connect();
    bystander.create_and_login("Bob", PASSWORD);

    // About 40 KB of room descriptions: past the 4 KiB window, far below the 1 MiB
    // limit, so they wait in the kernel, unacknowledged.
    let mut stuck = small_window_connection(game.telnet_port);
    log_in_without_reading(&mut stuck, "Sly");
    stuck.write_all(&b"look\r\n".repeat(100)).unwrap();

    let started = Instant::now();
    let line = wait_for("the stalled client to be cut", DEADLINE, || {
        bystander.send("look");
        bystander.expect("Exits:");
        game.log()
            .lines()
            .find(|l| l.contains("output stalled"))
            .map(str::to_owned)
    });
    let took = started.elapsed();
    eprintln!("cut after {took:?}: {line}");
    assert!(took >= Duration::from_secs(2), "cut before the timeout");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(line.contains("bytes stuck"), "{line}");
    assert!(closed_by_peer(&mut stuck), "the socket stayed open");
    let who = bystander.who();
    assert!(who.contains("1 unique account logged in."), "{who}");
}

#[test]
fn a_client_that_reads_slowly_but_steadily_is_never_cut() {
    // A send buffer of 16 KiB, so that most of the output waits in the Portal's own
    // queue, and a stall timeout much shorter than the whole read takes.
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_STALL_TIMEOUT", "2"),
        ("GATEHOUSE__PORTAL__SOCKET_SEND_BUFFER", "16384"),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut slow = small_window_connection(game.telnet_port);
    log_in_without_reading(&mut slow, "Sid");
    let looks = 400;
    slow.write_all(&b"look\r\n".repeat(looks)).unwrap();
    slow.write_all(b"last-one\r\n").unwrap();

    // 2 KiB every 100 ms: about 20 KB/s, so one 64 KiB write of the Portal's takes
    // longer than the stall timeout to be read. The pause between reads is the
    // behaviour under test, not a wait for something to happen.
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 2048];
    let done = b"'last-one' is not available";
    while !got.windows(done.len()).any(|w| w == done) {
        assert!(started.elapsed() < 4 * DEADLINE, "never read it all");
        match std::io::Read::read(&mut slow, &mut chunk) {
            Ok(0) => panic!(
                "cut after {:?} and {} bytes read",
                started.elapsed(),
                got.len()
            ),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    let rooms = String::from_utf8_lossy(&got).matches("Exits:").count();
    eprintln!("read {} bytes in {took:?}", got.len());
    // The first look after login is the arrival's own.
    assert!(rooms >= looks, "{rooms} of {looks} rooms");
    assert!(
        took > Duration::from_secs(6),
        "read too fast to test anything: {took:?}"
    );
    assert!(
        !game.log().contains("output stalled"),
        "a reading client was cut"
    );
}
