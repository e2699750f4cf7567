//! Telnet over TLS against the real binary: a self-signed certificate made
//! with rcgen, a rustls client that trusts only that certificate, and the
//! same login a plain telnet client does. Also: clients that do not speak TLS
//! on the TLS port cost only their own connection, and a bad certificate
//! stops the Portal with a message that names the file.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_for, Game, DEADLINE};
use gatehouse::control::GameDir;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const PASSWORD: &str = "correct-horse-9";

/// A self-signed certificate for "localhost" and its key, as PEM files in a
/// directory of their own (the game dir does not exist before the start).
struct Pair {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

fn self_signed() -> Pair {
    self_signed_for(&["localhost"])
}

/// A self-signed certificate for `names` (host names or IP addresses).
fn self_signed_for(names: &[&str]) -> Pair {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ssl.cert");
    let key = dir.path().join("ssl.key");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    Pair {
        _dir: dir,
        cert,
        key,
        der: made.cert.der().clone(),
    }
}

/// Starts a game with telnet over TLS on a free port; returns it and that port.
fn tls_game(pair: &Pair) -> (Game, u16) {
    tls_game_with(pair, &[])
}

/// As [`tls_game`], with more settings.
fn tls_game_with(pair: &Pair, settings: &[(&str, &str)]) -> (Game, u16) {
    tls_game_started(pair, settings, Game::start)
}

/// As [`tls_game_with`], started by `start`.
fn tls_game_started(
    pair: &Pair,
    settings: &[(&str, &str)],
    start: fn(&[(&str, &str)]) -> Game,
) -> (Game, u16) {
    let cert = pair.cert.to_str().unwrap();
    let key = pair.key.to_str().unwrap();
    let mut env = vec![
        ("GATEHOUSE__PORTAL__TLS_CERT", cert),
        ("GATEHOUSE__PORTAL__TLS_KEY", key),
        ("GATEHOUSE__PORTAL__SSL_PORTS", "[0]"),
    ];
    env.extend_from_slice(settings);
    let game = start(&env);
    let ports = GameDir::new(game.path()).read_ports().unwrap();
    assert_eq!(ports.ssl.len(), 1, "{ports:?}");
    let port = ports.ssl[0];
    assert_ne!(port, 0);
    (game, port)
}

/// A telnet client over TLS that accumulates the text it reads.
struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buffer: String,
}

impl TlsClient {
    fn connect(port: u16, trusted: &CertificateDer<'static>) -> Self {
        Self::over(TcpStream::connect(("127.0.0.1", port)).unwrap(), trusted)
    }

    /// A client whose socket has a 4 KiB receive buffer, so that what it does not
    /// read backs up into the Portal's side quickly.
    fn connect_small_window(port: u16, trusted: &CertificateDer<'static>) -> Self {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        socket.connect(&addr.into()).unwrap();
        Self::over(socket.into(), trusted)
    }

    fn over(tcp: TcpStream, trusted: &CertificateDer<'static>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.clone()).unwrap();
        let config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        tcp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        TlsClient {
            stream: StreamOwned::new(conn, tcp),
            buffer: String::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.stream.flush().unwrap();
    }

    /// Waits until `needle` arrives; returns the text up to and including it.
    fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.buffer.find(needle) {
                let rest = self.buffer.split_off(i + needle.len());
                return std::mem::replace(&mut self.buffer, rest);
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {needle:?}; got {:?}",
                self.buffer
            );
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("closed while waiting for {needle:?}; got {:?}", self.buffer),
                Ok(n) => self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => panic!("TLS read failed waiting for {needle:?}: {e}"),
            }
        }
    }
}

/// Reads until the server closes the connection (EOF or a reset).
fn expect_closed(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    wait_for("the server to close the connection", DEADLINE, || {
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => Some(()),
            Ok(_) => None,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                None
            }
            Err(_) => Some(()),
        }
    });
}

#[test]
fn a_tls_client_logs_in_and_its_session_is_telnet_ssl() {
    let pair = self_signed();
    let (game, port) = tls_game(&pair);

    let mut c = TlsClient::connect(port, &pair.der);
    c.expect("create <username> <password>");
    c.send(&format!("create Tamsin {PASSWORD}"));
    c.expect("was created");
    c.send(&format!("connect Tamsin {PASSWORD}"));
    c.expect("You are logged in.");
    c.send("who");
    let who = c.expect("logged in.");
    assert!(who.contains("Tamsin"), "{who}");
    c.send("sessions");
    c.expect("Your current session(s):");
    let table = c.expect("127.0.0.1");
    assert!(table.contains("telnet/ssl"), "{table}");

    // A plain telnet client on the telnet port is still plain telnet.
    let mut plain = game.connect();
    plain.create_and_login("Ulla", PASSWORD);
    plain.send("sessions");
    plain.expect("Your current session(s):");
    let row = plain.expect("127.0.0.1");
    assert!(!row.contains("telnet/ssl"), "{row}");
    assert!(row.contains("telnet"), "{row}");
}

#[test]
fn a_tls_client_that_stops_reading_is_cut_after_the_stall_timeout() {
    let pair = self_signed();
    let (game, port) = tls_game_with(
        &pair,
        &[
            ("GATEHOUSE__PORTAL__OUTPUT_STALL_TIMEOUT", "2"),
            ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
        ],
    );
    let mut c = TlsClient::connect_small_window(port, &pair.der);
    c.expect("create <username> <password>");
    c.send(&format!("create Tilde {PASSWORD}"));
    c.expect("was created");
    c.send(&format!("connect Tilde {PASSWORD}"));
    c.expect("You are logged in.");
    // From here on nothing is read: about 40 KB of room descriptions wait, as
    // ciphertext, far below the output limit.
    for _ in 0..100 {
        c.stream.write_all(b"look\r\n").unwrap();
    }
    c.stream.flush().unwrap();

    let line = wait_for("the stalled TLS client to be cut", DEADLINE, || {
        game.log()
            .lines()
            .find(|l| l.contains("output stalled"))
            .map(str::to_owned)
    });
    assert!(line.contains("telnet session"), "{line}");
    assert!(line.contains("bytes stuck"), "{line}");
    expect_closed(c.stream.get_mut());
    let mut telnet = game.connect();
    telnet.create_and_login("Vera", PASSWORD);
}

#[test]
fn clients_that_do_not_speak_tls_cost_only_their_own_connection() {
    let pair = self_signed();
    let (game, port) = tls_game(&pair);

    // Plain text on the TLS port: the handshake fails and only that
    // connection closes.
    let mut confused = TcpStream::connect(("127.0.0.1", port)).unwrap();
    confused.write_all(b"connect alice secret\r\n").unwrap();
    expect_closed(&mut confused);
    // A client that says nothing holds its own connection and nothing else.
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();

    let mut telnet = game.connect();
    telnet.create_and_login("Vesna", PASSWORD);
    let who = telnet.who();
    assert!(who.contains("Vesna"), "{who}");

    // The TLS port still accepts TLS clients after both.
    let mut c = TlsClient::connect(port, &pair.der);
    c.expect("create <username> <password>");
    c.send(&format!("connect Vesna {PASSWORD}"));
    c.expect("You are logged in.");
}

#[test]
fn without_a_certificate_nothing_listens_for_tls() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__SSL_PORTS", "[0]")]);
    let ports = GameDir::new(game.path()).read_ports().unwrap();
    assert!(ports.ssl.is_empty(), "{ports:?}");
}

#[test]
fn a_missing_certificate_stops_the_portal_and_names_the_file() {
    let pair = self_signed();
    let game_dir = tempfile::tempdir().unwrap();
    let missing = game_dir.path().join("server/missing.cert");
    let log = game_dir.path().join("portal.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(common::bin())
        .arg("--game-dir")
        .arg(game_dir.path())
        .arg("portal")
        .env("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]")
        .env("GATEHOUSE__PORTAL__WEB_PORT", "0")
        .env("GATEHOUSE__PORTAL__WEBSOCKET_PORT", "0")
        .env("GATEHOUSE__PORTAL__TELNET_INTERFACES", "[\"127.0.0.1\"]")
        .env("GATEHOUSE__PORTAL__LINK_ADDR", "127.0.0.1:0")
        .env("GATEHOUSE__PORTAL__SSL_PORTS", "[0]")
        // A relative path is resolved against the game dir.
        .env("GATEHOUSE__PORTAL__TLS_CERT", "server/missing.cert")
        .env("GATEHOUSE__PORTAL__TLS_KEY", pair.key.to_str().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let status = wait_for("the Portal to exit", DEADLINE, || child.try_wait().unwrap());
    assert!(!status.success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(GameDir::new(game_dir.path()).read_ports().is_none());
}

/// A self-signed certificate that names this machine as `127.0.0.1` too, as the
/// Server checks it when it connects to a link at an IP address.
fn link_pair() -> Pair {
    self_signed_for(&["localhost", "127.0.0.1"])
}

#[test]
fn the_portal_server_link_can_run_over_tls() {
    let pair = link_pair();
    let (cert, key) = (pair.cert.to_str().unwrap(), pair.key.to_str().unwrap());
    // Game::start waits until the Server has linked up: over TLS here.
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__TLS_CERT", cert),
        ("GATEHOUSE__PORTAL__TLS_KEY", key),
        ("GATEHOUSE__PORTAL__SSL_PORTS", "[0]"),
        ("GATEHOUSE__PORTAL__LINK_TLS", "true"),
        ("GATEHOUSE__SERVER__LINK_TLS_CA", cert),
    ]);
    let mut player = game.connect();
    player.create_and_login("Tilly", PASSWORD);
    player.send("look");
    player.expect("Exits:");

    // A Server that trusts another certificate never gets the link.
    let stranger = link_pair();
    let other = Game::start_portal(&[
        ("GATEHOUSE__PORTAL__TLS_CERT", cert),
        ("GATEHOUSE__PORTAL__TLS_KEY", key),
        ("GATEHOUSE__PORTAL__SSL_PORTS", "[0]"),
        ("GATEHOUSE__PORTAL__LINK_TLS", "true"),
    ]);
    let link = other.link_addr();
    let _server = other.spawn_server_with(&[
        ("GATEHOUSE__PORTAL__LINK_ADDR", link.as_str()),
        (
            "GATEHOUSE__SERVER__LINK_TLS_CA",
            stranger.cert.to_str().unwrap(),
        ),
    ]);
    wait_for("the Server to give up on the certificate", DEADLINE, || {
        let log = other.log();
        (log.contains("cannot reach the Portal") && log.contains("certificate")).then_some(())
    });
    assert!(!other.status().contains("server_connected = true"));
}

/// TLS keys cannot move to another process on this kernel: a TLS player is
/// told, its connection closes, and it connects again to the upgraded Portal.
#[test]
fn a_tls_player_is_told_to_reconnect_when_the_portal_upgrades_itself_and_can() {
    let pair = self_signed();
    let (game, port) = tls_game_started(&pair, &[], Game::start_from_copy);
    let mut c = TlsClient::connect(port, &pair.der);
    c.expect("create <username> <password>");
    c.send(&format!("create Tamsin {PASSWORD}"));
    c.expect("was created");
    c.send(&format!("connect Tamsin {PASSWORD}"));
    c.expect("You are logged in.");
    game.upgrade_to_a_new_build();
    c.expect("please connect again in a moment.");
    expect_closed(c.stream.get_mut());

    let mut again = TlsClient::connect(port, &pair.der);
    again.expect("create <username> <password>");
    again.send(&format!("connect Tamsin {PASSWORD}"));
    again.expect("You are logged in.");
}
