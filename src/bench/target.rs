//! The server under test as processes: a gatehouse the bench starts itself
//! (in its own game dir, on port 0), the pids of one already running, and
//! what `/proc` says about their memory and CPU.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::control::{self, GameDir, PORTAL_PID_FILE, SERVER_PID_FILE};

/// How long a spawned game may take to accept players.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings every spawned game gets, before the operator's own `--set`s:
/// loopback ports chosen by the kernel, and no connection pacing or command
/// rate limit (one address opens every connection, and a saturating client
/// types faster than a person).
const SPAWN_SETTINGS: &[(&str, &str)] = &[
    ("portal.telnet_ports", "[0]"),
    ("portal.telnet_interfaces", "[\"127.0.0.1\"]"),
    ("portal.web_port", "0"),
    ("portal.websocket_port", "0"),
    ("portal.link_addr", "\"127.0.0.1:0\""),
    ("server.http_addr", "\"127.0.0.1:0\""),
    ("portal.max_connection_rate", "1000000"),
    ("portal.max_command_rate", "0"),
];

/// A gatehouse started by the bench; stopped (SIGTERM, then waited for) on drop.
pub struct SpawnedGame {
    child: Child,
    game: GameDir,
    pub telnet_port: u16,
    /// Keeps a temporary game dir alive for the run.
    _temp: Option<tempfile::TempDir>,
}

impl SpawnedGame {
    /// Starts `gatehouse run` from this executable. `dir` keeps the game (and
    /// its accounts) for later runs; without it a temporary dir is used.
    /// `settings` are `section.key=value` overrides.
    pub fn start(dir: Option<&Path>, settings: &[String]) -> anyhow::Result<Self> {
        let (root, temp) = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.canonicalize()?, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("gatehouse-bench")
                    .tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let game = GameDir::new(&root);
        game.prepare()?;
        game.remove_run_file(control::PORTS_FILE);
        game.remove_run_file(control::STATUS_FILE);
        let log_path = game.log_dir().join("bench-portal.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("--game-dir")
            .arg(&root)
            .arg("run")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let overrides = SPAWN_SETTINGS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain(
                settings
                    .iter()
                    .map(|s| parse_setting(s))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        for (key, value) in overrides {
            command.env(setting_env_var(&key), value);
        }
        let child = command.spawn().context("cannot start gatehouse")?;
        let mut game = Self {
            child,
            game,
            telnet_port: 0,
            _temp: temp,
        };
        game.telnet_port = game.wait_ready(&log_path)?;
        Ok(game)
    }

    fn wait_ready(&mut self, log: &Path) -> anyhow::Result<u16> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                let last = said.lines().last().unwrap_or("(nothing logged)");
                bail!("gatehouse exited at start-up ({status}): {last}");
            }
            let up = self.game.read_status().is_some_and(|s| s.server_connected);
            if let (true, Some(ports)) = (up, self.game.read_ports()) {
                if let Some(&port) = ports.telnet.first() {
                    return Ok(port);
                }
            }
            if Instant::now() > deadline {
                bail!("gatehouse did not come up in time; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn game_dir(&self) -> &GameDir {
        &self.game
    }
}

impl Drop for SpawnedGame {
    fn drop(&mut self) {
        let _ = control::send_signal(self.child.id(), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// `portal.max_command_rate=0` → (`portal.max_command_rate`, `0`).
fn parse_setting(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if key.split('.').count() == 2 => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => bail!("--set wants section.key=value, got '{text}'"),
    }
}

/// `portal.max_command_rate` → `GATEHOUSE__PORTAL__MAX_COMMAND_RATE`.
fn setting_env_var(key: &str) -> String {
    format!("GATEHOUSE__{}", key.replace('.', "__").to_uppercase())
}

/// Where the Portal and Server pids come from.
#[derive(Debug, Clone, Default)]
pub enum Pids {
    #[default]
    Unknown,
    /// Given on the command line; a Server pid goes stale at a reload.
    Fixed {
        portal: Option<u32>,
        server: Option<u32>,
    },
    /// Read from a game dir's `run/` each time (follows reloads).
    GameDir(PathBuf),
}

impl Pids {
    pub fn portal(&self) -> Option<u32> {
        match self {
            Pids::Unknown => None,
            Pids::Fixed { portal, .. } => *portal,
            Pids::GameDir(root) => GameDir::new(root).live_pid(PORTAL_PID_FILE),
        }
    }

    pub fn server(&self) -> Option<u32> {
        match self {
            Pids::Unknown => None,
            Pids::Fixed { server, .. } => *server,
            Pids::GameDir(root) => GameDir::new(root).live_pid(SERVER_PID_FILE),
        }
    }

    /// Both processes, named, as far as known.
    pub fn named(&self) -> Vec<(&'static str, u32)> {
        [("portal", self.portal()), ("server", self.server())]
            .into_iter()
            .filter_map(|(name, pid)| Some((name, pid?)))
            .collect()
    }

    /// Asks the Portal to reload the Server (SIGHUP).
    pub fn reload(&self) -> anyhow::Result<()> {
        let pid = self
            .portal()
            .context("--reload-at needs the Portal's pid (--spawn, --attach or --portal-pid)")?;
        control::send_signal(pid, Signal::SIGHUP)?;
        Ok(())
    }
}

/// Memory and CPU time of one process, from `/proc/<pid>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    pub pid: u32,
    pub rss_kib: u64,
    /// User + system time in clock ticks.
    pub cpu_ticks: u64,
}

impl ProcessSample {
    pub fn read(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Self {
            pid,
            rss_kib: parse_rss_kib(&status)?,
            cpu_ticks: parse_cpu_ticks(&stat)?,
        })
    }
}

/// `VmRSS:   12345 kB` from `/proc/<pid>/status`.
fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) from `/proc/<pid>/stat`. The command
/// name (field 2) may hold spaces, so fields are counted after its `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second for `/proc` CPU times.
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(100)
}

/// One process over the measured window, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    pub name: &'static str,
    pub pid: u32,
    pub rss_kib_start: u64,
    pub rss_kib_end: u64,
    /// Share of one core over the window (200 = two cores busy). For a
    /// process that was replaced during the window (a reloaded Server), the
    /// new process's time since it started.
    pub cpu_percent: f64,
}

/// The processes at one moment, keyed by name.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub at: Option<Instant>,
    pub processes: Vec<(&'static str, ProcessSample)>,
}

impl Snapshot {
    pub fn take(pids: &Pids) -> Self {
        Self {
            at: Some(Instant::now()),
            processes: pids
                .named()
                .into_iter()
                .filter_map(|(name, pid)| Some((name, ProcessSample::read(pid)?)))
                .collect(),
        }
    }

    pub fn total_rss_kib(&self) -> u64 {
        self.processes.iter().map(|(_, s)| s.rss_kib).sum()
    }

    /// Usage from `self` (start) to `end`.
    pub fn usage_until(&self, end: &Snapshot) -> Vec<ProcessUsage> {
        let wall = match (self.at, end.at) {
            (Some(a), Some(b)) => b.duration_since(a),
            _ => Duration::ZERO,
        };
        let tps = ticks_per_second();
        end.processes
            .iter()
            .map(|&(name, last)| {
                let first = self
                    .processes
                    .iter()
                    .find(|(n, s)| *n == name && s.pid == last.pid)
                    .map(|&(_, s)| s);
                ProcessUsage {
                    name,
                    pid: last.pid,
                    rss_kib_start: first.map_or(0, |s| s.rss_kib),
                    rss_kib_end: last.rss_kib,
                    cpu_percent: super::stats::cpu_percent(
                        last.cpu_ticks - first.map_or(0, |s| s.cpu_ticks.min(last.cpu_ticks)),
                        tps,
                        wall,
                    ),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let status = "Name:\tgatehouse\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
        // A command name with spaces and a parenthesis does not shift the fields.
        let stat = "42 (game (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let me = ProcessSample::read(std::process::id());
        assert!(me.is_some_and(|s| s.rss_kib > 0), "{me:?}");
    }

    #[test]
    fn settings_become_environment_overrides() {
        assert_eq!(
            parse_setting("server.multisession_mode=3").ok(),
            Some(("server.multisession_mode".into(), "3".into()))
        );
        assert!(parse_setting("multisession_mode=3").is_err());
        assert_eq!(
            setting_env_var("portal.max_command_rate"),
            "GATEHOUSE__PORTAL__MAX_COMMAND_RATE"
        );
    }
}
