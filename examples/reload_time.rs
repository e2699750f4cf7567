//! Measures how long a reload takes as players see it: N telnet players log in,
//! the Portal gets SIGHUP, every player types `who` as soon as it is told the
//! Server is restarting, and we time until each gets its answer.
//!
//! Run: `cargo build --release && cargo run --release --example reload_time -- 100 5`
//! (players, reloads). Uses `target/release/gatehouse` unless GATEHOUSE_BIN is set.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn wait_for(stream: &mut TcpStream, buf: &mut String, needle: &str) {
    let end = Instant::now() + Duration::from_secs(60);
    let mut chunk = [0u8; 16384];
    while !buf.contains(needle) {
        assert!(Instant::now() < end, "timed out waiting for {needle}");
        match stream.read(&mut chunk) {
            Ok(0) => panic!("connection closed waiting for {needle}"),
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    let i = buf.find(needle).unwrap() + needle.len();
    buf.drain(..i);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let players: usize = args.next().map_or(100, |a| a.parse().unwrap());
    let reloads: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let bin = std::env::var("GATEHOUSE_BIN").unwrap_or_else(|_| "target/release/gatehouse".into());
    let dir = tempfile::tempdir().unwrap();
    let mut portal = Command::new(&bin)
        .arg("--game-dir")
        .arg(dir.path())
        .arg("run")
        .env("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]")
        .env("GATEHOUSE__PORTAL__WEB_PORT", "0")
        .env("GATEHOUSE__PORTAL__WEBSOCKET_PORT", "0")
        .env("GATEHOUSE__PORTAL__TELNET_INTERFACES", "[\"127.0.0.1\"]")
        .env("GATEHOUSE__PORTAL__LINK_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "100000")
        .env("GATEHOUSE__THROTTLE__CREATION_LIMIT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gatehouse");
    let ports = dir.path().join("run/ports.toml");
    let status = dir.path().join("run/status.toml");
    let end = Instant::now() + Duration::from_secs(30);
    let port: u16 = loop {
        let connected =
            std::fs::read_to_string(&status).is_ok_and(|s| s.contains("server_connected = true"));
        if let (true, Ok(text)) = (connected, std::fs::read_to_string(&ports)) {
            let line = text.lines().find(|l| l.starts_with("telnet")).unwrap();
            break line
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap();
        }
        assert!(Instant::now() < end, "gatehouse did not start");
        std::thread::sleep(Duration::from_millis(20));
    };

    let barrier = Arc::new(Barrier::new(players + 1));
    let (tx, rx) = mpsc::channel::<(usize, Duration, Duration)>();
    let mut threads = Vec::new();
    for i in 0..players {
        let barrier = Arc::clone(&barrier);
        let tx = tx.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let mut buf = String::new();
            wait_for(&mut s, &mut buf, "create <username> <password>");
            s.write_all(format!("create bench{i} benchpass{i}\r\n").as_bytes())
                .unwrap();
            wait_for(&mut s, &mut buf, "was created");
            s.write_all(format!("connect bench{i} benchpass{i}\r\n").as_bytes())
                .unwrap();
            // Mode 0 puts the player in their character: the room follows.
            wait_for(&mut s, &mut buf, "Exits:");
            for round in 0..reloads {
                barrier.wait(); // all logged in / previous round done
                barrier.wait(); // reload signalled
                let t0 = Instant::now();
                wait_for(&mut s, &mut buf, "Server restarting, please wait");
                s.write_all(b"who\r\n").unwrap();
                wait_for(&mut s, &mut buf, "Server restarted.");
                let restarted = t0.elapsed();
                wait_for(&mut s, &mut buf, "unique accounts logged in.");
                tx.send((round, restarted, t0.elapsed())).unwrap();
            }
        }));
    }
    drop(tx);
    let pid = nix::unistd::Pid::from_raw(portal.id() as i32);
    println!("{players} players logged in; {reloads} reloads");
    for round in 0..reloads {
        barrier.wait();
        let t0 = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
        barrier.wait();
        let mut answers: Vec<Duration> = Vec::new();
        let mut restarted: Vec<Duration> = Vec::new();
        for _ in 0..players {
            let (r, back, answered) = rx.recv().unwrap();
            assert_eq!(r, round);
            restarted.push(back);
            answers.push(answered);
        }
        answers.sort();
        restarted.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "reload {}: wall {:.0} ms; 'Server restarted.' seen p50 {:.0} ms max {:.0} ms; `who` typed during the reload answered p50 {:.0} ms max {:.0} ms",
            round + 1,
            ms(t0.elapsed()),
            ms(restarted[players / 2]),
            ms(restarted[players - 1]),
            ms(answers[players / 2]),
            ms(answers[players - 1]),
        );
    }
    for t in threads {
        t.join().unwrap();
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    portal.wait().unwrap();
}
