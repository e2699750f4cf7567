//! `ServerProcess`: the Portal's supervisor of its Server child process.
//!
//! It starts the Server, restarts it whenever it exits without being asked to
//! stop for good (a reload, a crash, even SIGKILL), backs off when the Server
//! keeps dying at start-up, and kills a Server that does not stop in time. It
//! knows nothing of sessions: the link and the session handler do the resync.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use actix::prelude::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// How long a Server has to exit after being told to stop before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// A Server that dies sooner than this after starting counts as a start-up crash.
const QUICK_CRASH: Duration = Duration::from_secs(5);
/// Longest wait between restarts of a Server that keeps crashing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How to start the Server.
#[derive(Debug, Clone)]
pub struct ServerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// Where the Server's output goes; `None` inherits the Portal's.
    pub log_file: Option<PathBuf>,
}

pub struct ServerProcess {
    command: ServerCommand,
    pid: Option<u32>,
    started_at: Instant,
    quick_crashes: u32,
    stopping_for_good: bool,
    kill_timer: Option<SpawnHandle>,
    exit_waiters: Vec<oneshot::Sender<()>>,
    /// A Server already running as this process's child (started before the
    /// Portal's binary was upgraded in place), to watch instead of starting one.
    adopted: Option<u32>,
}

/// The Server was asked to stop for a reload: kill it if it has not exited
/// within [`STOP_TIMEOUT`], and start it again when it has.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExpectReload;

/// Restart the Server now (it is not reachable over the link).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartNow;

/// Stop the Server for good; answers when it has exited.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopServer;

/// The current Server's pid, if one runs.
#[derive(Message)]
#[rtype(result = "Option<u32>")]
pub struct ServerPid;

impl ServerProcess {
    pub fn new(command: ServerCommand) -> Self {
        Self {
            command,
            pid: None,
            started_at: Instant::now(),
            quick_crashes: 0,
            stopping_for_good: false,
            kill_timer: None,
            exit_waiters: Vec::new(),
            adopted: None,
        }
    }

    /// Supervises the Server `pid`, this process's child from before an
    /// upgrade in place: it is watched, stopped and restarted like one this
    /// actor started.
    pub fn adopt(command: ServerCommand, pid: u32) -> Self {
        Self {
            adopted: Some(pid),
            ..Self::new(command)
        }
    }

    /// Waits for an adopted child in a blocking thread (it was started by the
    /// previous image, so the runtime has no handle on it).
    fn watch_adopted(&mut self, pid: u32, ctx: &mut Context<Self>) {
        self.pid = Some(pid);
        self.started_at = Instant::now();
        log::info!("supervising the running Server (pid {pid})");
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || wait_for_child(pid))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
            .into_actor(self)
            .map(|status, act, ctx| act.on_exit(status, ctx)),
        );
    }

    fn spawn_server(&mut self, ctx: &mut Context<Self>) {
        let mut cmd = tokio::process::Command::new(&self.command.program);
        cmd.args(&self.command.args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C in the operator's terminal
            // reaches the Portal, which then stops the Server in order.
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes one async-signal-safe system call (prctl).
        unsafe {
            cmd.pre_exec(|| {
                // A Server never outlives its Portal, even one killed with SIGKILL.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        if let Some(path) = &self.command.log_file {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => {
                    let err = file.try_clone();
                    cmd.stdout(file);
                    if let Ok(err) = err {
                        cmd.stderr(err);
                    }
                }
                Err(e) => log::error!("cannot open Server log {}: {e}", path.display()),
            }
        }
        match cmd.spawn() {
            Ok(mut child) => {
                self.pid = child.id();
                self.started_at = Instant::now();
                log::info!("Server started (pid {:?})", self.pid);
                ctx.spawn(
                    async move { child.wait().await }
                        .into_actor(self)
                        .map(|status, act, ctx| act.on_exit(status, ctx)),
                );
            }
            Err(e) => {
                log::error!(
                    "cannot start the Server ({}): {e}",
                    self.command.program.display()
                );
                // Counts as a start-up crash, so the retry always waits.
                self.quick_crashes = self.quick_crashes.max(1) + 1;
                self.schedule_restart(ctx);
            }
        }
    }

    fn on_exit(&mut self, status: std::io::Result<ExitStatus>, ctx: &mut Context<Self>) {
        match &status {
            Ok(s) => log::info!("Server (pid {:?}) exited: {s}", self.pid),
            Err(e) => log::error!("lost track of the Server (pid {:?}): {e}", self.pid),
        }
        self.pid = None;
        if let Some(timer) = self.kill_timer.take() {
            ctx.cancel_future(timer);
        }
        if self.stopping_for_good {
            for w in self.exit_waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        let clean = matches!(&status, Ok(s) if s.success());
        if !clean && self.started_at.elapsed() < QUICK_CRASH {
            self.quick_crashes += 1;
        } else {
            self.quick_crashes = 0;
        }
        self.schedule_restart(ctx);
    }

    fn schedule_restart(&mut self, ctx: &mut Context<Self>) {
        // The first crash restarts at once; only a Server that keeps dying
        // at start-up is restarted ever more slowly.
        if self.quick_crashes <= 1 {
            self.spawn_server(ctx);
            return;
        }
        let exp = (self.quick_crashes - 1).min(8);
        let delay = (Duration::from_millis(250) * 2u32.pow(exp)).min(MAX_BACKOFF);
        log::warn!(
            "the Server crashed {} times at start-up; restarting in {delay:?}",
            self.quick_crashes
        );
        ctx.run_later(delay, |act, ctx| {
            if !act.stopping_for_good && act.pid.is_none() {
                act.spawn_server(ctx);
            }
        });
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            if let Err(e) = kill(Pid::from_raw(pid), signal) {
                log::warn!("cannot send {signal} to the Server (pid {pid}): {e}");
            }
        }
    }

    fn arm_kill_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.kill_timer.take() {
            ctx.cancel_future(timer);
        }
        self.kill_timer = Some(ctx.run_later(STOP_TIMEOUT, |act, _| {
            act.kill_timer = None;
            if act.pid.is_some() {
                log::error!("the Server did not stop within {STOP_TIMEOUT:?}; killing it");
                act.signal(Signal::SIGKILL);
            }
        }));
    }
}

impl Actor for ServerProcess {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.adopted.take() {
            Some(pid) => self.watch_adopted(pid, ctx),
            None => self.spawn_server(ctx),
        }
    }
}

impl Handler<ExpectReload> for ServerProcess {
    type Result = ();

    fn handle(&mut self, _: ExpectReload, ctx: &mut Context<Self>) {
        if self.pid.is_some() {
            self.arm_kill_timer(ctx);
        }
    }
}

impl Handler<RestartNow> for ServerProcess {
    type Result = ();

    fn handle(&mut self, _: RestartNow, ctx: &mut Context<Self>) {
        if self.pid.is_some() {
            self.signal(Signal::SIGTERM);
            self.arm_kill_timer(ctx);
        } else {
            self.quick_crashes = 0;
            self.spawn_server(ctx);
        }
    }
}

impl Handler<StopServer> for ServerProcess {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopServer, ctx: &mut Context<Self>) -> Self::Result {
        self.stopping_for_good = true;
        let (tx, rx) = oneshot::channel();
        if self.pid.is_some() {
            self.exit_waiters.push(tx);
            // The Server stops on SIGTERM too, which matters when the link is
            // down and the Shutdown message could not reach it.
            self.signal(Signal::SIGTERM);
            self.arm_kill_timer(ctx);
        } else {
            let _ = tx.send(());
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<ServerPid> for ServerProcess {
    type Result = Option<u32>;

    fn handle(&mut self, _: ServerPid, _: &mut Context<Self>) -> Option<u32> {
        self.pid
    }
}

/// Blocks until child `pid` exits and reaps it.
fn wait_for_child(pid: u32) -> std::io::Result<ExitStatus> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use std::os::unix::process::ExitStatusExt;
    let pid = Pid::from_raw(i32::try_from(pid).map_err(std::io::Error::other)?);
    loop {
        match waitpid(pid, None).map_err(std::io::Error::from)? {
            WaitStatus::Exited(_, code) => return Ok(ExitStatus::from_raw((code & 0xff) << 8)),
            WaitStatus::Signaled(_, signal, _) => return Ok(ExitStatus::from_raw(signal as i32)),
            _ => continue,
        }
    }
}
