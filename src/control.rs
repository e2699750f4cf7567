//! The game dir's `run/` folder: pid files, the ports actually bound, and the
//! status the Portal publishes; plus the signals the CLI sends to a running
//! Portal.
//!
//! This is how `gatehouse start|stop|reload|status` and the tests find and
//! steer a running game without a network protocol of their own.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::actors::portal::handler::PortalStatus;

pub const RUN_DIR: &str = "run";
pub const LOG_DIR: &str = "logs";
pub const PORTAL_PID_FILE: &str = "portal.pid";
pub const SERVER_PID_FILE: &str = "server.pid";
pub const PORTS_FILE: &str = "ports.toml";
pub const STATUS_FILE: &str = "status.toml";
pub const SESSID_FILE: &str = "sessid";
/// Where the Server's `/metrics` and `/healthz` listen (`server.http_addr`).
pub const SERVER_HTTP_FILE: &str = "server-http.txt";

/// The ports the Portal actually bound (a configured 0 becomes a real port).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundPorts {
    pub telnet: Vec<u16>,
    /// Telnet over TLS; empty unless `portal.tls_cert` and `portal.tls_key` are set.
    #[serde(default)]
    pub ssl: Vec<u16>,
    pub link: String,
    /// The web page (`/healthz`).
    #[serde(default)]
    pub web: u16,
    /// The web client's websocket.
    #[serde(default)]
    pub websocket: u16,
}

/// Paths inside one game dir.
#[derive(Debug, Clone)]
pub struct GameDir {
    root: PathBuf,
}

impl GameDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join(RUN_DIR)
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }

    pub fn run_file(&self, name: &str) -> PathBuf {
        self.run_dir().join(name)
    }

    /// Creates `run/` and `logs/`.
    pub fn prepare(&self) -> io::Result<()> {
        fs::create_dir_all(self.run_dir())?;
        fs::create_dir_all(self.log_dir())
    }

    pub fn write_pid(&self, name: &str, pid: u32) -> io::Result<()> {
        write_atomically(&self.run_file(name), &format!("{pid}\n"))
    }

    /// The pid in `run/<name>` if that process is alive.
    pub fn live_pid(&self, name: &str) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.run_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_alive(pid).then_some(pid)
    }

    pub fn remove_run_file(&self, name: &str) {
        let _ = fs::remove_file(self.run_file(name));
    }

    pub fn write_ports(&self, ports: &BoundPorts) -> io::Result<()> {
        let text = toml::to_string(ports).map_err(io::Error::other)?;
        write_atomically(&self.run_file(PORTS_FILE), &text)
    }

    pub fn read_ports(&self) -> Option<BoundPorts> {
        toml::from_str(&fs::read_to_string(self.run_file(PORTS_FILE)).ok()?).ok()
    }

    pub fn read_status(&self) -> Option<PortalStatus> {
        toml::from_str(&fs::read_to_string(self.run_file(STATUS_FILE)).ok()?).ok()
    }
}

/// Writes through a temporary file so readers never see half a file.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)
}

/// True if a process with this pid exists.
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence and permission without sending anything.
    match kill(Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: Signal) -> io::Result<()> {
    let raw = i32::try_from(pid).map_err(io::Error::other)?;
    kill(Pid::from_raw(raw), signal).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_round_trip_through_the_run_dir() {
        let dir = tempfile::tempdir().unwrap();
        let game = GameDir::new(dir.path());
        game.prepare().unwrap();
        let ports = BoundPorts {
            telnet: vec![4000, 4100],
            ssl: vec![4003],
            link: "127.0.0.1:4006".into(),
            web: 4001,
            websocket: 4002,
        };
        game.write_ports(&ports).unwrap();
        assert_eq!(game.read_ports(), Some(ports));
    }

    #[test]
    fn a_ports_file_without_ssl_reads_as_no_ssl_ports() {
        let dir = tempfile::tempdir().unwrap();
        let game = GameDir::new(dir.path());
        game.prepare().unwrap();
        fs::write(
            game.run_file(PORTS_FILE),
            "telnet = [4000]\nlink = \"127.0.0.1:4006\"\n",
        )
        .unwrap();
        let ports = game.read_ports().unwrap();
        assert_eq!(ports.telnet, vec![4000]);
        assert!(ports.ssl.is_empty());
    }

    #[test]
    fn pid_files_of_dead_processes_are_not_live() {
        let dir = tempfile::tempdir().unwrap();
        let game = GameDir::new(dir.path());
        game.prepare().unwrap();
        game.write_pid(PORTAL_PID_FILE, std::process::id()).unwrap();
        assert_eq!(game.live_pid(PORTAL_PID_FILE), Some(std::process::id()));
        game.write_pid(SERVER_PID_FILE, u32::MAX - 1).unwrap();
        assert_eq!(game.live_pid(SERVER_PID_FILE), None);
    }
}
