//! The Portal's live upgrade: what one Portal process hands to the next, and the
//! exec that replaces the running binary with the one now on disk while every
//! telnet connection stays open.
//!
//! The old Portal writes a [`HandoverState`] (the session records, their queued
//! and unacknowledged input, resume tokens, the epoch, the Server child's pid, and
//! each telnet connection's negotiated state) to a file in `run/` that only the
//! game's user can read, clears close-on-exec on the listening sockets and the
//! client sockets it hands over, and `exec`s the binary. The process keeps its
//! pid, so the Server stays its child and the operator's pid file stays true; the
//! new image finds the file through [`HANDOVER_ENV`] and adopts everything. This
//! module owns the format and the system calls; it never decides when to
//! upgrade and never touches a session's bytes.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::protocols::link::Input;
use crate::protocols::telnet::parser::OptionSnapshot;
use crate::session::{SessionSyncData, UnixMillis};

/// Bumped whenever [`HandoverState`] changes in a way an older or newer build
/// cannot read; a binary that answers another number is not exec'd.
pub const HANDOVER_VERSION: u32 = 1;

/// Names the state file for the new image.
pub const HANDOVER_ENV: &str = "GATEHOUSE_HANDOVER_STATE";

/// The file in `run/` that carries the state across the exec.
pub const HANDOVER_FILE: &str = "handover.json";

/// The hidden subcommand a candidate binary answers with its [`HANDOVER_VERSION`],
/// so a binary that cannot start, or speaks another format, is never exec'd.
pub const VERSION_SUBCOMMAND: &str = "handover-version";

#[derive(Debug, Error)]
pub enum HandoverError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("{program} cannot take over this Portal: {why}")]
    Incompatible { program: PathBuf, why: String },
    #[error("the handover state: {0}")]
    State(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Sys(#[from] nix::Error),
}

/// Everything one Portal process hands to the next.
#[derive(Debug, Serialize, Deserialize)]
pub struct HandoverState {
    pub version: u32,
    /// Kept, so the Server sees the same Portal and keeps every session.
    pub portal_epoch: u64,
    pub portal_started: UnixMillis,
    /// When the binary was last replaced (this upgrade).
    pub upgraded: UnixMillis,
    pub listeners: ListenerFds,
    /// The supervised Server child, which stays this process's child.
    pub server_pid: Option<u32>,
    pub sessions: Vec<SessionHandover>,
}

/// The listening sockets, by descriptor number in the new image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenerFds {
    pub link: RawFd,
    pub telnet: Vec<RawFd>,
    pub ssl: Vec<RawFd>,
    pub web: RawFd,
    pub websocket: RawFd,
}

impl ListenerFds {
    /// Every descriptor, for clearing close-on-exec.
    pub fn all(&self) -> Vec<RawFd> {
        let mut fds = vec![self.link, self.web, self.websocket];
        fds.extend(&self.telnet);
        fds.extend(&self.ssl);
        fds
    }
}

/// One session as the Portal's registry knew it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionHandover {
    pub record: SessionSyncData,
    pub released: bool,
    /// Lines not yet given to the Server, with the number of those it had
    /// taken without finishing them.
    pub pending: VecDeque<(Option<u64>, Input)>,
    pub last_seq: u64,
    pub token: Option<String>,
    pub connection: u64,
    /// Its connection, or `None` for a web session: its page comes back with
    /// the resume token.
    pub telnet: Option<TelnetHandover>,
}

/// A telnet connection's state beyond its session record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelnetHandover {
    /// The client socket, by descriptor number in the new image.
    pub fd: RawFd,
    pub peer: std::net::SocketAddr,
    /// What each side agreed to, option by option.
    pub options: Vec<OptionSnapshot>,
    /// MCCP2 was on: the old Portal ended the stream, the new one starts a new one.
    pub compressing: bool,
}

/// A duplicate of `fd` that is closed on exec until [`keep_across_exec`] says
/// otherwise, so the Server child started meanwhile never inherits it.
pub fn duplicate(fd: BorrowedFd<'_>) -> Result<OwnedFd, HandoverError> {
    let raw = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `raw` was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Lets `fd` survive the exec.
pub fn keep_across_exec(fd: RawFd) -> Result<(), HandoverError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
    Ok(())
}

/// Marks an adopted descriptor close-on-exec again, so the next Server child
/// does not inherit it.
pub fn close_on_exec(fd: RawFd) -> Result<(), HandoverError> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Writes the state where only the game's user can read it (it holds resume
/// tokens and what players typed).
pub fn write_state(path: &Path, state: &HandoverState) -> Result<(), HandoverError> {
    let text = serde_json::to_vec(state).map_err(|e| HandoverError::State(e.to_string()))?;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&text)?;
    file.sync_all()?;
    Ok(())
}

/// Reads and removes the state file; refuses another version.
pub fn take_state(path: &Path) -> Result<HandoverState, HandoverError> {
    let text = std::fs::read(path)?;
    let _ = std::fs::remove_file(path);
    let state: HandoverState =
        serde_json::from_slice(&text).map_err(|e| HandoverError::State(e.to_string()))?;
    if state.version != HANDOVER_VERSION {
        return Err(HandoverError::State(format!(
            "version {} (this build reads {HANDOVER_VERSION})",
            state.version
        )));
    }
    Ok(state)
}

/// Asks `program` which handover version it reads; refuses a binary that does
/// not start, does not answer, or answers another version.
pub fn check_candidate(program: &Path) -> Result<(), HandoverError> {
    let output = std::process::Command::new(program)
        .arg(VERSION_SUBCOMMAND)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| HandoverError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    let answer = String::from_utf8_lossy(&output.stdout);
    match answer.trim().parse::<u32>() {
        Ok(HANDOVER_VERSION) if output.status.success() => Ok(()),
        Ok(other) => Err(HandoverError::Incompatible {
            program: program.to_owned(),
            why: format!(
                "it reads handover version {other}, this Portal writes {HANDOVER_VERSION}"
            ),
        }),
        Err(_) => Err(HandoverError::Incompatible {
            program: program.to_owned(),
            why: format!(
                "it did not answer {VERSION_SUBCOMMAND} ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

/// Replaces this process with `program args`, telling it where the state is.
/// Returns only if the exec failed.
pub fn exec(program: &Path, args: &[std::ffi::OsString], state: &Path) -> HandoverError {
    let to_c =
        |s: &OsStr| CString::new(s.as_bytes()).map_err(|e| HandoverError::State(e.to_string()));
    let result = (|| -> Result<std::convert::Infallible, HandoverError> {
        let path = to_c(program.as_os_str())?;
        let mut argv = vec![path.clone()];
        for a in args {
            argv.push(to_c(a)?);
        }
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != HANDOVER_ENV)
            .map(|(k, v)| {
                let mut pair = k.as_bytes().to_vec();
                pair.push(b'=');
                pair.extend_from_slice(v.as_bytes());
                CString::new(pair).map_err(|e| HandoverError::State(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut pair = HANDOVER_ENV.as_bytes().to_vec();
        pair.push(b'=');
        pair.extend_from_slice(state.as_os_str().as_bytes());
        env.push(CString::new(pair).map_err(|e| HandoverError::State(e.to_string()))?);
        Ok(nix::unistd::execve(&path, &argv, &env)?)
    })();
    match result {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_private_and_read_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDOVER_FILE);
        let state = HandoverState {
            version: HANDOVER_VERSION,
            portal_epoch: 7,
            portal_started: 1,
            upgraded: 2,
            listeners: ListenerFds {
                link: 3,
                telnet: vec![4],
                ssl: vec![],
                web: 5,
                websocket: 6,
            },
            server_pid: Some(99),
            sessions: Vec::new(),
        };
        write_state(&path, &state).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = take_state(&path).unwrap();
        assert_eq!(back.portal_epoch, 7);
        assert_eq!(back.server_pid, Some(99));
        assert!(!path.exists(), "the file is removed once read");
    }

    #[test]
    fn another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HANDOVER_FILE);
        std::fs::write(
            &path,
            br#"{"version":999,"portal_epoch":1,"portal_started":1,"upgraded":1,
                "listeners":{"link":3,"telnet":[],"ssl":[],"web":4,"websocket":5},
                "server_pid":null,"sessions":[]}"#,
        )
        .unwrap();
        assert!(matches!(take_state(&path), Err(HandoverError::State(_))));
    }

    #[test]
    fn a_binary_that_cannot_start_is_never_used() {
        let missing = Path::new("/nonexistent/gatehouse");
        assert!(matches!(
            check_candidate(missing),
            Err(HandoverError::Spawn { .. })
        ));
        // `true` starts but does not answer with a version.
        assert!(matches!(
            check_candidate(Path::new("/bin/true")),
            Err(HandoverError::Incompatible { .. })
        ));
    }
}
