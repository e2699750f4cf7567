//! Test harness for whole-system tests: a real `gatehouse` binary in a temp
//! game dir on free ports, and telnet clients that speak real bytes and wait
//! with deadlines, never bare sleeps.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

/// Waits until a freshly written binary can be run. A test that forks in
/// another thread while the copy was open leaves the write descriptor in that
/// child until it execs, and meanwhile exec'ing the copy fails with "text file
/// busy"; new forks cannot inherit it, so once it runs it stays runnable.
pub fn wait_until_executable(program: &Path) {
    wait_for(
        "the copied binary to be executable",
        DEADLINE,
        || match Command::new(program)
            .arg("handover-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => None,
            _ => Some(()),
        },
    );
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running game: Portal + supervised Server.
pub struct Game {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub telnet_port: u16,
    env: Vec<(String, String)>,
    /// `run` (Portal supervising its Server) or `portal` (the Portal alone).
    subcommand: &'static str,
    /// The binary the game runs from.
    program: std::path::PathBuf,
}

impl Game {
    /// Starts `gatehouse run` in a new temp game dir.
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_as("run", env)
    }

    /// Starts `gatehouse portal` alone: no Server until the test starts one with
    /// [`Game::spawn_server`].
    pub fn start_portal(env: &[(&str, &str)]) -> Self {
        Self::start_as("portal", env)
    }

    /// Starts `gatehouse run` from a copy of the binary that the test can
    /// replace, as an operator installs a new build.
    pub fn start_from_copy(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = dir.path().join("bin/gatehouse");
        std::fs::create_dir_all(program.parent().expect("bin dir")).expect("bin dir");
        std::fs::copy(bin(), &program).expect("copy the binary");
        wait_until_executable(&program);
        Self::start_in(dir, program, "run", env)
    }

    fn start_as(subcommand: &'static str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, bin().into(), subcommand, env)
    }

    fn start_in(
        dir: tempfile::TempDir,
        program: std::path::PathBuf,
        subcommand: &'static str,
        env: &[(&str, &str)],
    ) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut game = Game {
            dir,
            child: None,
            telnet_port: 0,
            env,
            subcommand,
            program,
        };
        game.launch();
        game
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary the game runs from.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Installs a new build over the binary the game runs from: a new file, as
    /// `cp` to a temporary name and `mv` make, while the old one lives on only
    /// in the running Portal.
    pub fn install_new_build(&self) {
        let fresh = self.program.with_extension("new");
        std::fs::copy(bin(), &fresh).expect("copy the new build");
        wait_until_executable(&fresh);
        std::fs::rename(&fresh, &self.program).expect("install the new build");
    }

    /// [`Game::install_new_build`], then `gatehouse upgrade`, which must succeed.
    pub fn upgrade_to_a_new_build(&self) {
        self.install_new_build();
        let upgrade = self.cli(&["upgrade"]);
        assert!(
            upgrade.status.success(),
            "gatehouse upgrade failed: {}{}",
            String::from_utf8_lossy(&upgrade.stdout),
            String::from_utf8_lossy(&upgrade.stderr)
        );
    }

    /// The Portal's pid (the process the test started).
    pub fn portal_pid(&self) -> u32 {
        self.child.as_ref().expect("a running Portal").id()
    }

    /// (Re)starts the Portal in the same game dir and, unless it runs alone, waits
    /// until the Server is connected.
    pub fn launch(&mut self) {
        let ports = self.path().join("run/ports.toml");
        let _ = std::fs::remove_file(&ports);
        let mut cmd = self.command(self.subcommand);
        cmd.env("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]")
            .env("GATEHOUSE__PORTAL__WEB_PORT", "0")
            .env("GATEHOUSE__PORTAL__WEBSOCKET_PORT", "0")
            .env("GATEHOUSE__PORTAL__TELNET_INTERFACES", "[\"127.0.0.1\"]")
            .env("GATEHOUSE__PORTAL__LINK_ADDR", "127.0.0.1:0")
            .env("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "1000");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn gatehouse"));
        self.telnet_port = wait_for("run/ports.toml", DEADLINE, || {
            let text = std::fs::read_to_string(&ports).ok()?;
            let line = text.lines().find(|l| l.starts_with("telnet"))?;
            let digits: String = line.chars().filter(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        });
        if self.subcommand == "run" {
            self.wait_server_connected();
        }
    }

    /// `gatehouse --game-dir <this game> <subcommand>`, with the settings every test
    /// game shares and its output appended to `test-output.log`.
    fn command(&self, subcommand: &str) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("test-output.log"))
            .expect("log file");
        let mut cmd = Command::new(&self.program);
        cmd.arg("--game-dir")
            .arg(self.path())
            .arg(subcommand)
            .env("GATEHOUSE__SERVER__HTTP_ADDR", "127.0.0.1:0")
            .env("GATEHOUSE__THROTTLE__EXEMPT_LOOPBACK", "true")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        cmd
    }

    /// A port from `run/ports.toml` (`web`, `websocket`, ...).
    pub fn port(&self, key: &str) -> u16 {
        let text = std::fs::read_to_string(self.path().join("run/ports.toml")).expect("ports");
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in ports.toml: {text}"));
        line.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("a port number")
    }

    /// GETs `path` from the Portal's web port; answers the status line and the body.
    pub fn http_get(&self, path: &str) -> (String, String) {
        http_get(&format!("127.0.0.1:{}", self.port("web")), path)
    }

    /// GETs `path` from the Server's own HTTP port (`run/server-http.txt`).
    pub fn server_http_get(&self, path: &str) -> (String, String) {
        let addr = wait_for("run/server-http.txt", DEADLINE, || {
            let text = std::fs::read_to_string(self.path().join("run/server-http.txt")).ok()?;
            Some(text.trim().to_owned()).filter(|t| !t.is_empty())
        });
        http_get(&addr, path)
    }

    /// Where the Portal's link listens (from `run/ports.toml`).
    pub fn link_addr(&self) -> String {
        let text = std::fs::read_to_string(self.path().join("run/ports.toml")).expect("ports");
        let line = text
            .lines()
            .find(|l| l.starts_with("link"))
            .expect("link in ports.toml");
        line.split('"')
            .nth(1)
            .expect("quoted link address")
            .to_owned()
    }

    /// Starts `gatehouse server` by itself, connecting to the link at `link_addr`,
    /// with this game's settings. Killed when dropped.
    pub fn spawn_server(&self, link_addr: &str) -> ServerProcess {
        self.spawn_server_with(&[("GATEHOUSE__PORTAL__LINK_ADDR", link_addr)])
    }

    /// Starts `gatehouse server` by itself in this game dir, with this game's
    /// settings and `env` on top. Killed when dropped.
    pub fn spawn_server_with(&self, env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = self.command("server");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.envs(env.iter().copied());
        ServerProcess(cmd.spawn().expect("spawn gatehouse server"))
    }

    pub fn status(&self) -> String {
        std::fs::read_to_string(self.path().join("run/status.toml")).unwrap_or_default()
    }

    pub fn wait_server_connected(&self) {
        wait_for("the Server to connect", DEADLINE, || {
            self.status()
                .contains("server_connected = true")
                .then_some(())
        });
    }

    pub fn server_pid(&self) -> i32 {
        wait_for("run/server.pid", DEADLINE, || {
            std::fs::read_to_string(self.path().join("run/server.pid"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Runs a CLI subcommand against this game dir.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .arg("--game-dir")
            .arg(self.path())
            .args(args)
            .output()
            .expect("run gatehouse")
    }

    /// Runs a CLI subcommand with extra environment.
    pub fn cli_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new(bin())
            .arg("--game-dir")
            .arg(self.path())
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run gatehouse")
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.telnet_port)
    }

    /// SIGTERM the Portal and wait for it (and so the Server) to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let end = Instant::now() + DEADLINE;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the Portal did not stop after SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path().join("test-output.log")).unwrap_or_default()
    }
}

impl Drop for Game {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let end = Instant::now() + Duration::from_secs(20);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            eprintln!("---- game log ----\n{}", self.log());
        }
    }
}

/// GETs `path` from the HTTP server at `addr`; answers the status line and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("HTTP port");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// A `gatehouse server` started by a test; killed when dropped.
pub struct ServerProcess(pub Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP proxy in front of one address, which the test can cut (every connection
/// through it is closed, and new ones are closed at once) and restore.
pub struct Proxy {
    pub addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, open2, upstream) = (cut.clone(), open.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let pairs = [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (
                        server.try_clone().expect("clone"),
                        client.try_clone().expect("clone"),
                    ),
                ];
                open2.lock().expect("lock").extend([client, server]);
                for (mut from, mut to) in pairs {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, cut, open }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A telnet client that accumulates everything it reads.
pub struct Client {
    pub stream: TcpStream,
    /// Text received and not yet consumed by `expect`.
    pub buffer: String,
}

impl Client {
    pub fn connect(port: u16) -> Self {
        Self::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    /// A client on a connection the test made itself.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        Client {
            stream,
            buffer: String::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads what is available; false once the server closed the connection.
    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                true
            }
            Err(_) => false,
        }
    }

    /// Reads until `cut` finds where the wanted text ends; consumes and
    /// returns everything up to there. The one wait behind every `expect*`.
    fn wait_for_text(&mut self, what: &str, cut: impl Fn(&str) -> Option<usize>) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = cut(&self.buffer) {
                let head = self.buffer[..at].to_owned();
                self.buffer = self.buffer[at..].to_owned();
                return head;
            }
            let open = self.pump();
            assert!(
                open || cut(&self.buffer).is_some(),
                "connection closed waiting for {what}; got {:?}",
                self.buffer
            );
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; got {:?}",
                self.buffer
            );
        }
    }

    /// Waits until `needle` arrives; returns everything up to and including
    /// it and keeps the rest for the next call.
    pub fn expect(&mut self, needle: &str) -> String {
        self.wait_for_text(&format!("{needle:?}"), |b| {
            b.find(needle).map(|i| i + needle.len())
        })
    }

    /// Waits until one of `needles` arrives; returns the text up to it.
    pub fn expect_any(&mut self, needles: &[&str]) -> String {
        self.wait_for_text(&format!("any of {needles:?}"), |b| {
            needles
                .iter()
                .filter_map(|n| b.find(n).map(|i| i + n.len()))
                .min()
        })
    }

    /// Waits until every one of `needles` has arrived, in any order; consumes
    /// the text up to the last of them.
    pub fn expect_all(&mut self, needles: &[&str]) -> String {
        self.wait_for_text(&format!("all of {needles:?}"), |b| {
            needles
                .iter()
                .map(|n| b.find(n).map(|i| i + n.len()))
                .collect::<Option<Vec<usize>>>()
                .and_then(|ends| ends.into_iter().max())
        })
    }

    /// Waits until the server closes the connection; returns what came first.
    pub fn expect_closed(&mut self) -> String {
        let end = Instant::now() + DEADLINE;
        while self.pump() {
            assert!(
                Instant::now() < end,
                "connection not closed; got {:?}",
                self.buffer
            );
        }
        std::mem::take(&mut self.buffer)
    }

    /// Creates the account and logs in.
    pub fn create_and_login(&mut self, name: &str, password: &str) {
        self.expect("create <username> <password>");
        self.send(&format!("create {name} {password}"));
        self.expect("was created");
        self.send(&format!("connect {name} {password}"));
        self.expect("You are logged in.");
        self.sync();
    }

    pub fn login(&mut self, name: &str, password: &str) {
        self.expect("create <username> <password>");
        self.send(&format!("connect {name} {password}"));
        self.expect("You are logged in.");
        self.sync();
    }

    /// Consumes everything sent to this client so far and returns it. The
    /// marker is an unknown command with a unique name, so the answer that
    /// ends the wait is this call's own even where replies are shared
    /// between sessions (modes 1 and 3).
    pub fn sync(&mut self) -> String {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("sync-marker-{n}");
        self.send(&marker);
        self.expect(&format!(
            "'{marker}' is not available. Type \"help\" for help.\r\n"
        ))
    }

    /// Sends `who` and returns its output.
    pub fn who(&mut self) -> String {
        self.send("who");
        self.expect("logged in.")
    }
}

/// Logs in three players and returns them with their `sessions` output.
pub fn three_players(game: &Game, password: &str) -> Vec<(Client, String)> {
    ["Ann", "Ben", "Cat"]
        .iter()
        .map(|name| {
            let mut c = game.connect();
            c.create_and_login(name, password);
            c.send("sessions");
            c.expect("Your current session(s):");
            let table = c.expect("telnet");
            (c, table)
        })
        .collect()
}

/// Every one of [`three_players`] still sees all three in `who`, with the same
/// session ids as before.
pub fn assert_still_logged_in(players: &mut [(Client, String)]) {
    for (client, before) in players.iter_mut() {
        let who = client.who();
        for name in ["Ann", "Ben", "Cat"] {
            assert!(who.contains(name), "{name} missing from {who}");
        }
        client.send("sessions");
        client.expect("Your current session(s):");
        let after = client.expect("telnet");
        assert_eq!(&after, before, "session ids changed");
    }
}
