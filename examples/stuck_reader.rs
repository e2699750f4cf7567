//! Measures what one telnet client that never reads costs the Portal's machine
//! before it is cut: the kernel's send queue on the Portal's side of its socket
//! (`ss -tm`: bytes unacknowledged, and the memory charged for them), the Portal's
//! RSS, and the log line that names the cut.
//!
//! The client has a 4 KiB receive buffer, logs in, then asks for room descriptions
//! and reads nothing. With `LOOKS` of 0 it keeps asking (50 `look`s every 100 ms,
//! so the output limit cuts it); with a number it asks that many times, once (so
//! the stall timeout cuts it, if the output fits under the limit).
//!
//! Run: `cargo run --release --example stuck_reader -- [LOOKS]`. Uses
//! `target/release/gatehouse` unless GATEHOUSE_BIN is set; settings come from the
//! environment as usual (`GATEHOUSE__PORTAL__SOCKET_SEND_BUFFER=0 ...`). Gives up
//! after 90 s.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct-horse-9";
const GIVE_UP: Duration = Duration::from_secs(90);

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rss_kib(pid: u32) -> u64 {
    read(std::path::Path::new(&format!("/proc/{pid}/status")))
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `ss` on the Portal's side of the client's socket: bytes unacknowledged (Send-Q),
/// memory charged for the send queue (`w`) and the send buffer's size (`tb`).
fn kernel_side(port: u16, client_port: u16) -> Option<(u64, u64, u64)> {
    let filter = format!("( sport = :{port} and dport = :{client_port} )");
    let out = Command::new("ss")
        .args(["-tmnH", "state", "all", &filter])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let send_q = words.nth(2)?.parse().ok()?;
    let skmem = text.split("skmem:(").nth(1)?.split(')').next()?;
    let field = |name: &str| {
        skmem.split(',').find_map(|f| {
            f.strip_prefix(name)
                .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
        })
    };
    Some((send_q, field("w")?, field("tb")?))
}

fn main() {
    let looks: usize = std::env::args().nth(1).map_or(0, |a| a.parse().unwrap());
    let bin = std::env::var("GATEHOUSE_BIN").unwrap_or_else(|_| "target/release/gatehouse".into());
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("portal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut portal = Command::new(&bin)
        .arg("--game-dir")
        .arg(dir.path())
        .arg("run")
        .env("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]")
        .env("GATEHOUSE__PORTAL__WEB_PORT", "0")
        .env("GATEHOUSE__PORTAL__WEBSOCKET_PORT", "0")
        .env("GATEHOUSE__PORTAL__TELNET_INTERFACES", "[\"127.0.0.1\"]")
        .env("GATEHOUSE__PORTAL__LINK_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE__SERVER__HTTP_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start gatehouse");
    let status = dir.path().join("run/status.toml");
    let ports = dir.path().join("run/ports.toml");
    wait_until("the Server", || {
        read(&status).contains("server_connected = true") && read(&ports).contains("telnet")
    });
    let port: u16 = read(&ports)
        .lines()
        .find(|l| l.starts_with("telnet"))
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();

    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut client: TcpStream = socket.into();
    let client_port = client.local_addr().unwrap().port();
    write!(
        client,
        "create Sly {PASSWORD}\r\nconnect Sly {PASSWORD}\r\n"
    )
    .unwrap();
    wait_until("the login", || read(&log_path).contains("logged in as Sly"));
    let rss_before = rss_kib(portal.id());
    if looks > 0 {
        client.write_all(&b"look\r\n".repeat(looks)).unwrap();
    }
    client.set_nonblocking(true).unwrap();

    let started = Instant::now();
    let (mut send_q, mut charged, mut sndbuf, mut rss) = (0, 0, 0, rss_before);
    let cut = loop {
        if looks == 0 {
            match client.write(&b"look\r\n".repeat(50)) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
        }
        if let Some((q, w, tb)) = kernel_side(port, client_port) {
            send_q = send_q.max(q);
            charged = charged.max(w);
            sndbuf = tb;
        }
        rss = rss.max(rss_kib(portal.id()));
        let text = read(&log_path);
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("of output not read") || l.contains("output stalled"))
        {
            break Some(line.to_owned());
        }
        if started.elapsed() > GIVE_UP {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "looks asked: {}",
        if looks == 0 {
            "until cut".to_owned()
        } else {
            looks.to_string()
        }
    );
    println!(
        "kernel, the Portal's side: at most {send_q} bytes unacknowledged, {charged} bytes \
         charged (send buffer {sndbuf})"
    );
    println!(
        "Portal RSS: at most {} KiB above the logged-in client",
        rss.saturating_sub(rss_before)
    );
    match cut {
        Some(line) => println!("cut after {:.1?}: {line}", started.elapsed()),
        None => println!("not cut after {:.1?}", started.elapsed()),
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(portal.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = portal.wait();
}
