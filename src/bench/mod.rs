//! `gatehouse bench`: a load tester for telnet MUD servers.
//!
//! N simulated players connect, create or log in to accounts, then act
//! (look, say, who, move through an exit) at a pace, as fast as replies come
//! (`--saturate`), or not at all (`--idle`), while the bench measures each
//! action's round trip and, when it knows their pids, the server processes'
//! memory and CPU. It can reload the Server mid-run (`--reload-at`), reload
//! and kill it again and again while every player checks that each command
//! it sent was answered exactly once (`--chaos`), throw a login storm at it
//! (`--login-storm`), and measure the machine's own limit with an in-process
//! line-echo server (`--echo-baseline`).
//!
//! The command strings and the patterns that end each reply are options, so
//! the same run can be pointed at another MUD.
//!
//! Layout: [`client`] is one player (its script and reply detection),
//! [`stats`] the arithmetic, [`target`] the server's processes, [`chaos`] the
//! events thrown at them, [`echo`] the baseline server, [`report`] what is
//! printed; this module runs the phases.

pub mod chaos;
pub mod client;
pub mod echo;
pub mod flood;
pub mod report;
pub mod stats;
pub mod target;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::time::Instant;

use chaos::{Chaos, ChaosMix, Scheduler};
use client::{Action, Checks, Mix, Player, Script, WaitError};
use report::{BenchReport, ChaosReport, OddReply, ReloadReport, RunReport, StormReport};
use stats::LatencyRecorder;
use target::{Pids, Snapshot, SpawnedGame};

/// Options of `gatehouse bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchOptions {
    /// Host of the MUD to measure.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Its telnet port (not needed with --spawn).
    #[arg(long)]
    pub port: Option<u16>,
    /// Start a gatehouse from this executable for the run (loopback, port 0,
    /// no connection pacing or command rate limit), and stop it afterwards.
    #[arg(long)]
    pub spawn: bool,
    /// Game dir for --spawn, kept after the run (its accounts can be reused
    /// with --existing); default: a temporary dir.
    #[arg(long, value_name = "DIR", requires = "spawn")]
    pub spawn_dir: Option<PathBuf>,
    /// A setting for the spawned game, as section.key=value (repeatable).
    #[arg(
        long = "set",
        id = "set",
        value_name = "SECTION.KEY=VALUE",
        requires = "spawn"
    )]
    pub settings: Vec<String>,
    /// Game dir of a running gatehouse: its pid files give the processes to
    /// watch (and to reload).
    #[arg(long, value_name = "GAME_DIR", conflicts_with = "spawn")]
    pub attach: Option<PathBuf>,
    /// Pid of the Portal (or of the one process of another MUD) to watch.
    #[arg(long)]
    pub portal_pid: Option<u32>,
    /// Pid of the Server to watch.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Simulated players.
    #[arg(long, short = 'c', default_value_t = 100)]
    pub clients: usize,
    /// Seconds measured, after every player has logged in.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Seconds over which the players connect.
    #[arg(long, default_value_t = 5.0)]
    pub ramp: f64,
    /// Pause between one player's actions, in milliseconds (random in the range).
    #[arg(long, default_value = "1000-2000", value_name = "MIN-MAX")]
    pub pace: Pace,
    /// Weights of the actions.
    #[arg(long, default_value = "look=40,say=30,who=10,move=20")]
    pub mix: Mix,
    /// Every player sends its next action as soon as the reply arrives.
    #[arg(long, conflicts_with = "idle")]
    pub saturate: bool,
    /// Players only log in and send keepalives: memory per session.
    #[arg(long)]
    pub idle: bool,
    /// Reload the Server this many seconds into the measured window.
    #[arg(long, value_name = "SECS")]
    pub reload_at: Option<f64>,
    /// Reload and kill the Server at random moments of the measured window,
    /// one event at a time, while every player checks that each command it
    /// sent was answered exactly once (needs --spawn or --attach).
    #[arg(long, conflicts_with_all = ["idle", "reload_at"])]
    pub chaos: bool,
    /// Mean seconds between chaos events.
    #[arg(long, default_value_t = 20.0, value_name = "SECS", requires = "chaos")]
    pub chaos_every: f64,
    /// Weights of the chaos events: reload (SIGHUP to the Portal), kill
    /// (SIGKILL to the Server) and upgrade (SIGUSR2 to the Portal, which execs
    /// its binary in place).
    #[arg(long, default_value = "reload=1,kill=1,upgrade=1", requires = "chaos")]
    pub chaos_mix: ChaosMix,
    /// Seed of the chaos events' moments and kinds, to repeat a run
    /// [default: random, printed in the report].
    #[arg(long, value_name = "N", requires = "chaos")]
    pub chaos_seed: Option<u64>,
    /// This many extra players log in at once while the others are measured
    /// (their accounts are created before the measured window).
    #[arg(long, value_name = "N")]
    pub login_storm: Option<usize>,
    /// Seconds into the measured window the storm starts [default: a quarter].
    #[arg(long, value_name = "SECS")]
    pub storm_at: Option<f64>,
    /// Seconds over which the storm's logins are spread (0: all at once).
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub storm_over: f64,
    /// Throw this flood from --flood-from while the players are measured.
    #[arg(long, value_enum, value_name = "KIND")]
    pub flood: Option<flood::FloodKind>,
    /// Clients throwing the flood.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub flood_clients: usize,
    /// The address the flood comes from (a loopback address other than the
    /// players' own, when the target is on this machine).
    #[arg(long, default_value = "127.0.0.2", value_name = "ADDR")]
    pub flood_from: IpAddr,
    /// Each player connects from an address of its own in 127.1.0.0/16, so that
    /// per-address limits (connection pacing) see every player apart. For targets
    /// on this machine.
    #[arg(long)]
    pub spread_sources: bool,
    /// Also drive an in-process line-echo server with the same players and
    /// report the run's rate as a share of it.
    #[arg(long)]
    pub echo_baseline: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seconds to wait for a reply before counting it lost.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds a player may take to log in (password hashing queues up when
    /// thousands log in together).
    #[arg(long, default_value_t = 900.0)]
    pub login_timeout: f64,

    /// Account names are this prefix and a number [default: random per run].
    #[arg(long)]
    pub name_prefix: Option<String>,
    /// The accounts exist already (same prefix and password): only connect.
    #[arg(long)]
    pub existing: bool,
    #[arg(long, default_value = "benchpass")]
    pub password: String,
    /// Waited for after connecting; empty: nothing.
    #[arg(long, default_value = "connect")]
    pub greeting: String,
    #[arg(long, default_value = "create {name} {password}")]
    pub create_command: String,
    #[arg(long, default_value = "was created")]
    pub create_ok: String,
    /// The answer to `create` for a name that exists.
    #[arg(long, default_value = "already")]
    pub create_taken: String,
    #[arg(long, default_value = "connect {name} {password}")]
    pub connect_command: String,
    /// Seen once logged in (and in the world).
    #[arg(long, default_value = "Exits:")]
    pub login_ok: String,
    /// The game's answer when it cannot create or log in right now; such a
    /// login counts as failed at once. Empty: none.
    #[arg(long, default_value = "Please try again later")]
    pub refused: String,
    #[arg(long, default_value = "look")]
    pub look_command: String,
    #[arg(long, default_value = "Exits:")]
    pub look_ok: String,
    #[arg(long, default_value = "say {text}")]
    pub say_command: String,
    #[arg(long, default_value = "You say")]
    pub say_ok: String,
    #[arg(long, default_value = "who")]
    pub who_command: String,
    #[arg(long, default_value = "logged in")]
    pub who_ok: String,
    #[arg(long, default_value = "Exits:")]
    pub move_ok: String,
    /// Start of the line listing a room's exits (comma-separated).
    #[arg(long, default_value = "Exits:")]
    pub exits_prefix: String,
    /// What idle players send.
    #[arg(long, default_value = "idle")]
    pub keepalive_command: String,
    #[arg(long, default_value_t = 60.0)]
    pub keepalive_secs: f64,
    /// With --chaos, sent after each action in the same write: `{player}` is
    /// the player's number, `{n}` the action's; an unknown command, so that
    /// its reply is unique.
    #[arg(long, default_value = "chk-{player}-{n}")]
    pub marker_command: String,
    /// The reply to a marker; `{marker}` is the marker sent.
    #[arg(long, default_value = "Command '{marker}' is not available.")]
    pub marker_ok: String,
}

/// The pause range between actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl FromStr for Pace {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("'{s}' is not a number of milliseconds"))
        };
        let (min_ms, max_ms) = match text.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(text)?, number(text)?),
        };
        if min_ms > max_ms {
            return Err(format!("{min_ms} is more than {max_ms}"));
        }
        Ok(Self { min_ms, max_ms })
    }
}

/// How the players behave once logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Paced(Pace),
    Saturate,
    Idle,
}

impl Behaviour {
    fn name(self) -> &'static str {
        match self {
            Behaviour::Paced(_) => "paced",
            Behaviour::Saturate => "saturate",
            Behaviour::Idle => "idle",
        }
    }
}

/// What `--chaos` throws, and how often.
#[derive(Debug, Clone)]
struct ChaosPlan {
    every: Duration,
    mix: ChaosMix,
    seed: u64,
}

/// The text of a player's `say`: unique per player (`{player}`) and say (`{n}`).
const SAY_TEXT: &str = "hello from {player} number {n}";

/// One run's plan, fixed before it starts.
#[derive(Debug, Clone)]
struct Plan {
    addr: SocketAddr,
    label: String,
    script: Script,
    login_needed: bool,
    create: bool,
    prefix: String,
    clients: usize,
    ramp: Duration,
    duration: Duration,
    behaviour: Behaviour,
    mix: Mix,
    timeout: Duration,
    login_timeout: Duration,
    keepalive: Duration,
    reload_at: Option<Duration>,
    chaos: Option<ChaosPlan>,
    storm: Option<(usize, Duration, Duration)>,
    flood: Option<flood::FloodPlan>,
    spread_sources: bool,
    progress: bool,
}

/// Runs the bench and returns its report.
pub fn run(options: &BenchOptions) -> anyhow::Result<BenchReport> {
    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.max(1))
        .thread_name("bench")
        .enable_all()
        .build()?;
    let spawned = if options.spawn {
        Some(SpawnedGame::start(
            options.spawn_dir.as_deref(),
            &options.settings,
        )?)
    } else {
        None
    };
    let pids = match (&spawned, &options.attach) {
        (Some(game), _) => Pids::GameDir(game.game_dir().root().to_path_buf()),
        (None, Some(dir)) => Pids::GameDir(dir.clone()),
        (None, None) => Pids::Fixed {
            portal: options.portal_pid,
            server: options.server_pid,
        },
    };
    if options.chaos && !matches!(pids, Pids::GameDir(_)) {
        bail!("--chaos needs the game's run dir to follow the Server: give --spawn or --attach GAME_DIR");
    }
    let port = match (&spawned, options.port) {
        (Some(game), _) => Some(game.telnet_port),
        (None, port) => port,
    };
    let script = script_of(options);
    let mut report = BenchReport::default();
    if let Some(port) = port {
        let addr = (options.host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {}", options.host))?
            .next()
            .with_context(|| format!("{} has no address", options.host))?;
        let plan = plan_of(
            options,
            addr,
            format!("{}:{port}", options.host),
            script.clone(),
        )?;
        report.run = Some(runtime.block_on(run_plan(plan, pids))?);
    } else if !options.echo_baseline {
        bail!("give --port (with --host), --spawn, or --echo-baseline alone");
    }
    if options.echo_baseline {
        let server = echo::EchoServer::start(ECHO_THREADS)?;
        let mut plan = plan_of(options, server.addr, "echo baseline".into(), script.echo())?;
        plan.login_needed = false;
        plan.reload_at = None;
        plan.chaos = None;
        plan.storm = None;
        report.echo_baseline = Some(runtime.block_on(run_plan(plan, Pids::Unknown))?);
    }
    drop(spawned);
    Ok(report)
}

/// Threads of the echo baseline: as many as a gatehouse has processes.
const ECHO_THREADS: usize = 2;

fn script_of(o: &BenchOptions) -> Script {
    Script {
        greeting: o.greeting.clone(),
        create: o.create_command.clone(),
        create_ok: o.create_ok.clone(),
        create_taken: o.create_taken.clone(),
        connect: o.connect_command.clone(),
        login_ok: o.login_ok.clone(),
        refused: o.refused.clone(),
        look: o.look_command.clone(),
        look_ok: o.look_ok.clone(),
        say: o.say_command.clone(),
        say_ok: o.say_ok.clone(),
        who: o.who_command.clone(),
        who_ok: o.who_ok.clone(),
        move_ok: o.move_ok.clone(),
        exits_prefix: o.exits_prefix.clone(),
        keepalive: o.keepalive_command.clone(),
        password: o.password.clone(),
        marker: o.marker_command.clone(),
        marker_ok: o.marker_ok.clone(),
    }
}

fn seconds(value: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{what}: {value} is not a duration"))
}

fn plan_of(
    o: &BenchOptions,
    addr: SocketAddr,
    label: String,
    script: Script,
) -> anyhow::Result<Plan> {
    if o.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let duration = seconds(o.duration, "--duration")?;
    let storm = match o.login_storm {
        Some(n) => Some((
            n,
            o.storm_at
                .map_or(Ok(duration / 4), |s| seconds(s, "--storm-at"))?,
            seconds(o.storm_over, "--storm-over")?,
        )),
        None => None,
    };
    let behaviour = if o.saturate {
        Behaviour::Saturate
    } else if o.idle {
        Behaviour::Idle
    } else {
        Behaviour::Paced(o.pace)
    };
    let chaos = if o.chaos {
        if script.checks(0, SAY_TEXT).is_none() {
            bail!(
                "--marker-command must hold {{n}} once and --marker-ok {{marker}}, got '{}' and '{}'",
                o.marker_command,
                o.marker_ok
            );
        }
        let every = seconds(o.chaos_every, "--chaos-every")?;
        if every.is_zero() {
            bail!("--chaos-every must be more than 0");
        }
        Some(ChaosPlan {
            every,
            mix: o.chaos_mix.clone(),
            seed: o.chaos_seed.unwrap_or_else(|| fastrand::Rng::new().u64(..)),
        })
    } else {
        None
    };
    let prefix = o.name_prefix.clone().unwrap_or_else(|| {
        let mut rng = fastrand::Rng::new();
        std::iter::once('b')
            .chain(std::iter::repeat_with(|| rng.lowercase()).take(4))
            .collect()
    });
    Ok(Plan {
        addr,
        label,
        login_needed: !script.connect.is_empty(),
        create: !o.existing && !script.create.is_empty(),
        script: script.clone(),
        prefix: prefix.clone(),
        clients: o.clients,
        ramp: seconds(o.ramp, "--ramp")?,
        duration,
        behaviour,
        mix: o.mix.clone(),
        timeout: seconds(o.timeout, "--timeout")?,
        login_timeout: seconds(o.login_timeout, "--login-timeout")?,
        keepalive: seconds(o.keepalive_secs, "--keepalive-secs")?,
        reload_at: o.reload_at.map(|s| seconds(s, "--reload-at")).transpose()?,
        chaos,
        storm,
        flood: o.flood.map(|kind| flood::FloodPlan {
            kind,
            clients: o.flood_clients,
            from: o.flood_from,
            target: addr,
            script: script.clone(),
            prefix: prefix.clone(),
        }),
        spread_sources: o.spread_sources,
        progress: !o.json,
    })
}

/// Ten thousand players need ten thousand sockets: use the hard limit.
fn raise_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Counters every player updates.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    logged_in: AtomicU64,
    login_failures: AtomicU64,
    connect_failures: AtomicU64,
    /// Actions sent inside the window whose reply arrived.
    actions: AtomicU64,
    /// Lines the players received in the window: replies and what the
    /// server fanned out to them (other players' speech, arrivals).
    lines_received: AtomicU64,
    /// Actions whose reply never came (timed out); with --chaos, marker
    /// replies and say echoes not seen in time.
    lost_replies: AtomicU64,
    /// With --chaos: replies expected exactly once (markers and say echoes).
    replies_expected: AtomicU64,
    /// ... of those, seen in time.
    replies_received: AtomicU64,
    /// ... lost ones that came after all.
    late_replies: AtomicU64,
    /// ... sightings beyond the one expected.
    duplicated_replies: AtomicU64,
    /// Connections the server closed before the end.
    disconnects: AtomicU64,
    /// Players done with their login attempt (in or failed).
    login_done: AtomicU64,
    storm_done: AtomicU64,
    storm_failures: AtomicU64,
}

/// A counter's current value (the counters only count; no ordering needed).
fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Not set yet, for the window start.
const UNSET: u64 = u64::MAX;

/// What the players share during one run.
struct Shared {
    plan: Plan,
    origin: Instant,
    /// Microseconds from `origin` to the window start, or [`UNSET`].
    window_start: AtomicU64,
    /// Microseconds from `origin` to the reload signal, or [`UNSET`].
    reload_signal: AtomicU64,
    /// Microseconds from `origin` to the latest chaos event, or [`UNSET`].
    chaos_signal: AtomicU64,
    storm_active: AtomicBool,
    /// Set once the window's figures are taken: players may hang up.
    release: tokio::sync::watch::Sender<bool>,
    counters: Counters,
    latency: LatencyRecorder,
    login_latency: LatencyRecorder,
    reload_latency: LatencyRecorder,
    storm_login_latency: LatencyRecorder,
    others_during_storm: LatencyRecorder,
    /// Completion times (µs from origin) after a reload signal.
    completions_after_reload: Mutex<Vec<u64>>,
    /// Actions sent within [`RELOAD_WINDOW`] after a chaos event.
    after_event_latency: LatencyRecorder,
    /// With --chaos, every completion time (µs from origin).
    completions: Mutex<Vec<u64>>,
    /// With --chaos, the longest a marker reply took (µs), late ones too.
    longest_wait: AtomicU64,
    /// With --chaos, the first [`ODD_REPLIES_KEPT`] lost, late or duplicated replies.
    odd_replies: Mutex<Vec<OddReplyAt>>,
    /// Connections made so far, for --spread-sources.
    connections_made: AtomicU32,
}

/// Actions sent this long after the reload signal (or a chaos event) count
/// as "during the reload" ("after the event").
const RELOAD_WINDOW: Duration = Duration::from_secs(5);

/// With --chaos, how often the bench looks whether the game is back.
const CHAOS_TICK: Duration = Duration::from_millis(20);

/// With --chaos, a player that has stopped acting keeps reading this long
/// once everything it waited for came, for replies that come twice.
const CHAOS_LINGER: Duration = Duration::from_secs(1);

/// Lost, late or duplicated replies the report names one by one (the
/// counts hold them all).
const ODD_REPLIES_KEPT: usize = 50;

/// An [`OddReply`] with its times in µs from the run's origin (the window's
/// start may not be known yet).
#[derive(Debug, Clone)]
struct OddReplyAt {
    what: &'static str,
    reply: String,
    sent: Option<u64>,
    at: u64,
}

impl Shared {
    /// Where a player's next connection comes from: with --spread-sources an
    /// address of its own in 127.1.0.0/16, otherwise the system's choice.
    fn player_source(&self) -> Option<IpAddr> {
        if !self.plan.spread_sources {
            return None;
        }
        let n = self.connections_made.fetch_add(1, Ordering::Relaxed);
        let [_, _, high, low] = (n % 65_000 + 1).to_be_bytes();
        Some(IpAddr::V4(Ipv4Addr::new(127, 1, high, low)))
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.origin).as_micros()).unwrap_or(UNSET - 1)
    }

    fn window_end(&self) -> Option<Instant> {
        match self.window_start.load(Ordering::Acquire) {
            UNSET => None,
            start => Some(self.origin + Duration::from_micros(start) + self.plan.duration),
        }
    }

    fn in_window(&self, at: Instant) -> bool {
        let start = self.window_start.load(Ordering::Acquire);
        start != UNSET && {
            let t = self.micros(at);
            t >= start && t < start + u64::try_from(self.plan.duration.as_micros()).unwrap_or(0)
        }
    }

    fn finished(&self, now: Instant) -> bool {
        self.window_end().is_some_and(|end| now >= end)
    }

    /// Files one completed action.
    fn completed(&self, sent: Instant, done: Instant) {
        let latency = done - sent;
        if self.in_window(sent) {
            self.counters.actions.fetch_add(1, Ordering::Relaxed);
            self.latency.record(latency);
            if self.storm_active.load(Ordering::Relaxed) {
                self.others_during_storm.record(latency);
            }
        }
        let reload = self.reload_signal.load(Ordering::Acquire);
        if reload != UNSET {
            let sent_at = self.micros(sent);
            if sent_at >= reload
                && sent_at - reload < u64::try_from(RELOAD_WINDOW.as_micros()).unwrap_or(0)
            {
                self.reload_latency.record(latency);
            }
            if let Ok(mut done_at) = self.completions_after_reload.lock() {
                done_at.push(self.micros(done));
            }
        }
        if self.plan.chaos.is_some() {
            let event = self.chaos_signal.load(Ordering::Acquire);
            let sent_at = self.micros(sent);
            if event != UNSET
                && sent_at >= event
                && sent_at - event < u64::try_from(RELOAD_WINDOW.as_micros()).unwrap_or(0)
            {
                self.after_event_latency.record(latency);
            }
            if let Ok(mut done_at) = self.completions.lock() {
                done_at.push(self.micros(done));
            }
        }
    }

    /// Adds what a player's checks counted since last time to the run's figures.
    fn file_checks(&self, checks: &mut Checks) {
        let c = &self.counters;
        for tally in [&mut checks.markers, &mut checks.echoes] {
            let counts = tally.take_counts();
            c.replies_received
                .fetch_add(counts.received, Ordering::Relaxed);
            c.lost_replies.fetch_add(counts.lost, Ordering::Relaxed);
            c.late_replies.fetch_add(counts.late, Ordering::Relaxed);
            c.duplicated_replies
                .fetch_add(counts.duplicated, Ordering::Relaxed);
        }
        let wait = u64::try_from(checks.take_longest_wait().as_micros()).unwrap_or(u64::MAX);
        self.longest_wait.fetch_max(wait, Ordering::Relaxed);
        let odd = checks.take_odd();
        if odd.is_empty() {
            return;
        }
        if let Ok(mut kept) = self.odd_replies.lock() {
            for (sighting, reply) in odd {
                if kept.len() >= ODD_REPLIES_KEPT {
                    break;
                }
                kept.push(OddReplyAt {
                    what: sighting.oddity.name(),
                    reply,
                    sent: sighting.sent.map(|at| self.micros(at)),
                    at: self.micros(sighting.at),
                });
            }
        }
    }
}

fn account_name(prefix: &str, kind: &str, index: usize) -> String {
    format!("{prefix}{kind}{index}")
}

async fn run_plan(plan: Plan, pids: Pids) -> anyhow::Result<RunReport> {
    let origin = Instant::now();
    let shared = Arc::new(Shared {
        plan,
        origin,
        window_start: AtomicU64::new(UNSET),
        reload_signal: AtomicU64::new(UNSET),
        chaos_signal: AtomicU64::new(UNSET),
        storm_active: AtomicBool::new(false),
        release: tokio::sync::watch::channel(false).0,
        counters: Counters::default(),
        latency: LatencyRecorder::new(),
        login_latency: LatencyRecorder::new(),
        reload_latency: LatencyRecorder::new(),
        storm_login_latency: LatencyRecorder::new(),
        others_during_storm: LatencyRecorder::new(),
        completions_after_reload: Mutex::new(Vec::new()),
        after_event_latency: LatencyRecorder::new(),
        completions: Mutex::new(Vec::new()),
        longest_wait: AtomicU64::new(0),
        odd_replies: Mutex::new(Vec::new()),
        connections_made: AtomicU32::new(0),
    });
    let plan = &shared.plan;
    let progress = report::Progress::new(plan.progress, plan.duration);
    let before = Snapshot::take(&pids);

    if let Some((storm, _, _)) = plan.storm {
        // Made even with --existing: an account that exists already only
        // costs a refused `create`.
        if !plan.script.create.is_empty() {
            progress.phase(&format!("creating {storm} accounts for the login storm"));
            create_storm_accounts(&shared, storm).await;
        }
    }

    progress.phase(&format!(
        "{} players connecting and logging in",
        plan.clients
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..plan.clients {
        let start = origin + plan.ramp.mul_f64(index as f64 / plan.clients as f64);
        tasks.spawn(player(Arc::clone(&shared), index, start));
    }
    let login_deadline = Instant::now() + plan.ramp + plan.login_timeout;
    let counters = &shared.counters;
    while read(&counters.login_done) < plan.clients as u64
        && Instant::now() < login_deadline
        && !tasks.is_empty()
    {
        progress.ramp(counters, plan.clients);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tasks.join_next() => {}
        }
    }

    let window_start = Instant::now();
    let start = Snapshot::take(&pids);
    shared
        .window_start
        .store(shared.micros(window_start), Ordering::Release);
    progress.phase("measuring");
    let flooding = plan
        .flood
        .clone()
        .map(|flood| tokio::spawn(flood::run(flood, shared.release.subscribe())));
    let window_end = window_start + plan.duration;
    let reload_time = plan.reload_at.map(|d| window_start + d);
    let storm_time = plan.storm.map(|(_, at, _)| window_start + at);
    let mut chaos = plan
        .chaos
        .as_ref()
        .map(|c| Chaos::new(Scheduler::new(c.seed, c.mix.clone(), c.every), pids.clone()));
    let tick_every = match chaos {
        Some(_) => CHAOS_TICK,
        None => Duration::from_millis(250),
    };
    let mut reloaded = false;
    let mut stormed = false;
    while Instant::now() < window_end {
        let now = Instant::now();
        if let Some(chaos) = &mut chaos {
            if chaos
                .step(now.duration_since(window_start), true)?
                .is_some()
            {
                shared
                    .chaos_signal
                    .store(shared.micros(now), Ordering::Release);
            }
        }
        if let (Some(at), false) = (reload_time, reloaded) {
            if now >= at {
                reloaded = true;
                shared
                    .reload_signal
                    .store(shared.micros(now), Ordering::Release);
                pids.reload()?;
            }
        }
        if let (Some(at), false, Some((n, _, over))) = (storm_time, stormed, plan.storm) {
            if now >= at {
                stormed = true;
                shared.storm_active.store(true, Ordering::Release);
                for index in 0..n {
                    let start = now + over.mul_f64(index as f64 / n as f64);
                    tasks.spawn(storm_player(Arc::clone(&shared), index, start));
                }
            }
        }
        progress.measure(counters, window_start.elapsed());
        let tick = Instant::now() + tick_every;
        tokio::select! {
            _ = tokio::time::sleep_until(tick.min(window_end)) => {}
            Some(_) = tasks.join_next() => {}
        }
    }
    let end = Snapshot::take(&pids);
    let held = read(&counters.connected);
    shared.release.send_replace(true);
    let flood = match flooding {
        Some(task) => task.await.ok(),
        None => None,
    };
    progress.phase("finishing");
    // Players stop at the window's end; one still waiting for a reply
    // gives up at its timeout. The game's return from a last chaos event is
    // still watched for as long.
    let grace = Instant::now() + shared.plan.timeout + Duration::from_secs(5);
    while (!tasks.is_empty() || chaos.as_ref().is_some_and(Chaos::waiting))
        && Instant::now() < grace
    {
        if let Some(chaos) = &mut chaos {
            chaos.step(Instant::now().duration_since(window_start), false)?;
        }
        let tick = Instant::now() + CHAOS_TICK;
        tokio::select! {
            _ = tokio::time::sleep_until(tick.min(grace)) => {}
            Some(_) = tasks.join_next() => {}
        }
    }
    tasks.abort_all();
    progress.finish();

    let mut report = build_report(&shared, &before, &start, &end, held);
    report.flood = flood;
    if let (Some(chaos), Some(events)) = (&mut report.chaos, &chaos) {
        chaos.set_events(events.events());
    }
    Ok(report)
}

fn build_report(
    shared: &Shared,
    before: &Snapshot,
    start: &Snapshot,
    end: &Snapshot,
    held: u64,
) -> RunReport {
    let plan = &shared.plan;
    let c = &shared.counters;
    let measured = match (start.at, end.at) {
        (Some(a), Some(b)) => b.duration_since(a),
        _ => plan.duration,
    };
    let actions = read(&c.actions);
    let logged_in = read(&c.logged_in);
    let reload_signal = shared.reload_signal.load(Ordering::Acquire);
    let reload = (reload_signal != UNSET).then(|| {
        let mut done = shared
            .completions_after_reload
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        ReloadReport {
            at_secs: plan.reload_at.map_or(0.0, |d| d.as_secs_f64()),
            longest_reply_gap_ms: stats::longest_gap_micros(reload_signal, &mut done) as f64
                / 1000.0,
            during_reload: shared.reload_latency.summary(),
        }
    });
    let chaos = plan.chaos.as_ref().map(|chaos| {
        let window_start = shared.window_start.load(Ordering::Acquire);
        let window_end = window_start
            .saturating_add(u64::try_from(plan.duration.as_micros()).unwrap_or(u64::MAX));
        let mut done = shared
            .completions
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        ChaosReport {
            seed: chaos.seed,
            every_secs: chaos.every.as_secs_f64(),
            events_by_kind: Default::default(),
            events: Vec::new(),
            disconnects: read(&c.disconnects),
            replies_expected: read(&c.replies_expected),
            replies_received: read(&c.replies_received),
            lost_replies: read(&c.lost_replies),
            late_replies: read(&c.late_replies),
            duplicated_replies: read(&c.duplicated_replies),
            longest_gap_ms: stats::longest_gap_within(window_start, window_end, &mut done) as f64
                / 1000.0,
            longest_wait_ms: shared.longest_wait.load(Ordering::Relaxed) as f64 / 1000.0,
            after_events: shared.after_event_latency.summary(),
            odd_replies: shared
                .odd_replies
                .lock()
                .map(|kept| {
                    let secs = |at: u64| (at as f64 - window_start as f64) / 1e6;
                    kept.iter()
                        .map(|odd| OddReply {
                            what: odd.what,
                            reply: odd.reply.clone(),
                            sent_at_secs: odd.sent.map(secs),
                            at_secs: secs(odd.at),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            passed: false,
        }
    });
    let storm = plan.storm.map(|(n, at, over)| StormReport {
        logins: n,
        at_secs: at.as_secs_f64(),
        over_secs: over.as_secs_f64(),
        succeeded: read(&c.storm_done) - read(&c.storm_failures),
        failed: read(&c.storm_failures),
        login_latency: shared.storm_login_latency.summary(),
        others_latency: shared.others_during_storm.summary(),
    });
    RunReport {
        target: plan.label.clone(),
        mode: plan.behaviour.name().to_owned(),
        clients: plan.clients,
        duration_secs: measured.as_secs_f64(),
        connections_held: held,
        logged_in,
        connect_failures: read(&c.connect_failures),
        login_failures: read(&c.login_failures),
        actions,
        actions_per_sec: stats::rate(actions, measured),
        lines_received_per_sec: stats::rate(read(&c.lines_received), measured),
        latency: shared.latency.summary(),
        login_latency: shared.login_latency.summary(),
        lost_replies: read(&c.lost_replies),
        disconnects: read(&c.disconnects),
        processes: start.usage_until(end),
        rss_per_session_kib: stats::per_session_kib(
            before.total_rss_kib(),
            start.total_rss_kib(),
            logged_in,
        )
        .filter(|_| !before.processes.is_empty()),
        reload,
        chaos,
        storm,
        flood: None,
    }
}

/// Connects and (when the script has one) logs in; the login time is
/// recorded in `latency`. `None` when it failed (counted).
async fn log_in(
    shared: &Shared,
    name: &str,
    create: bool,
    latency: &LatencyRecorder,
) -> Option<Player> {
    let plan = &shared.plan;
    let script = &plan.script;
    let c = &shared.counters;
    let began = Instant::now();
    let from = shared.player_source();
    let Ok(mut player) = Player::connect(plan.addr, from, &script.exits_prefix).await else {
        c.connect_failures.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    c.connected.fetch_add(1, Ordering::Relaxed);
    let deadline = began + plan.login_timeout;
    let password = &script.password;
    let mut steps: Vec<(String, &str)> = Vec::new();
    if create {
        steps.push((
            Script::fill(&script.create, name, password),
            &script.create_ok,
        ));
    }
    if plan.login_needed {
        steps.push((
            Script::fill(&script.connect, name, password),
            &script.login_ok,
        ));
    }
    let mut outcome = if script.greeting.is_empty() || !plan.login_needed {
        Ok(())
    } else {
        player.expect(&script.greeting, deadline).await
    };
    let refused = script.refused.as_str();
    for (command, ok) in &steps {
        if outcome.is_ok() {
            let answers: &[&str] = if refused.is_empty() {
                &[ok]
            } else {
                &[ok, refused]
            };
            outcome = match player.send(command).await {
                Ok(()) => match player.expect_any(answers, deadline).await {
                    Ok(0) => Ok(()),
                    Ok(_) => Err(WaitError::Refused),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
        }
    }
    match outcome {
        Ok(()) => {
            latency.record(began.elapsed());
            Some(player)
        }
        Err(_) => {
            c.login_failures.fetch_add(1, Ordering::Relaxed);
            c.connected.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

/// Creates the storm's accounts a few at a time (one that exists already
/// is fine), then lets them go.
async fn create_storm_accounts(shared: &Arc<Shared>, count: usize) {
    const AT_ONCE: usize = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..count {
        if tasks.len() >= AT_ONCE {
            tasks.join_next().await;
        }
        let shared = Arc::clone(shared);
        tasks.spawn(async move {
            let plan = &shared.plan;
            let script = &plan.script;
            let name = account_name(&plan.prefix, "s", index);
            let deadline = Instant::now() + plan.login_timeout;
            let from = shared.player_source();
            let Ok(mut player) = Player::connect(plan.addr, from, &script.exits_prefix).await
            else {
                return;
            };
            if !script.greeting.is_empty()
                && player.expect(&script.greeting, deadline).await.is_err()
            {
                return;
            }
            let command = Script::fill(&script.create, &name, &script.password);
            if player.send(&command).await.is_ok() {
                let _ = player
                    .expect_any(&[&script.create_ok, &script.create_taken], deadline)
                    .await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One measured player: connect at `start`, log in, act until the end.
async fn player(shared: Arc<Shared>, index: usize, start: Instant) {
    tokio::time::sleep_until(start).await;
    let name = account_name(&shared.plan.prefix, "p", index);
    let player = log_in(&shared, &name, shared.plan.create, &shared.login_latency).await;
    let c = &shared.counters;
    c.login_done.fetch_add(1, Ordering::Relaxed);
    let Some(mut player) = player else { return };
    c.logged_in.fetch_add(1, Ordering::Relaxed);
    if shared.plan.chaos.is_some() {
        if let Some(checks) = shared.plan.script.checks(index, SAY_TEXT) {
            player.set_checks(checks);
        }
    }
    let outcome = act(&shared, &mut player, index).await;
    if let Some(checks) = player.checks_mut() {
        // A player that lost its connection will not see what it waited for.
        if outcome.is_err() {
            checks.markers.give_up();
            checks.echoes.give_up();
        }
        shared.file_checks(checks);
    }
    hold(&shared, player, outcome).await;
}

/// Keeps a player connected until the window's figures are taken, then
/// hangs up; a connection the server closed counts as a disconnect.
async fn hold(shared: &Shared, mut player: Player, outcome: Result<(), WaitError>) {
    let mut released = shared.release.subscribe();
    let outcome = match outcome {
        Ok(()) => tokio::select! {
            _ = released.wait_for(|r| *r) => Ok(()),
            closed = player.drain_until(Instant::now() + HOLD_LIMIT) => closed,
        },
        failed => failed,
    };
    let c = &shared.counters;
    if outcome == Err(WaitError::Closed) {
        c.disconnects.fetch_add(1, Ordering::Relaxed);
    }
    c.connected.fetch_sub(1, Ordering::Relaxed);
}

/// A player never waits longer than this to be released.
const HOLD_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// One storm player: log in at `start`, then stay until the end.
async fn storm_player(shared: Arc<Shared>, index: usize, start: Instant) {
    tokio::time::sleep_until(start).await;
    let name = account_name(&shared.plan.prefix, "s", index);
    // The storm's accounts exist (made before the window, or given).
    let player = log_in(&shared, &name, false, &shared.storm_login_latency).await;
    let c = &shared.counters;
    if player.is_none() {
        c.storm_failures.fetch_add(1, Ordering::Relaxed);
    }
    let done = c.storm_done.fetch_add(1, Ordering::Relaxed) + 1;
    if shared.plan.storm.is_some_and(|(n, _, _)| done >= n as u64) {
        shared.storm_active.store(false, Ordering::Release);
    }
    let Some(player) = player else { return };
    hold(&shared, player, Ok(())).await;
}

/// The logged-in loop: act (or idle) until the window ends.
async fn act(shared: &Shared, player: &mut Player, index: usize) -> Result<(), WaitError> {
    let plan = &shared.plan;
    let script = &plan.script;
    let mut rng = fastrand::Rng::with_seed(index as u64);
    let mut said = 0u64;
    let mut acted = 0u64;
    loop {
        let now = Instant::now();
        if shared.finished(now) {
            return settle(player).await;
        }
        // Until the window is set, wait in short steps so the start is not missed.
        let horizon = shared
            .window_end()
            .unwrap_or(now + Duration::from_millis(250));
        match plan.behaviour {
            Behaviour::Idle => {
                player
                    .drain_until((now + plan.keepalive).min(horizon))
                    .await?;
                if !shared.finished(Instant::now()) && Instant::now() >= now + plan.keepalive {
                    player.send(&script.keepalive).await?;
                }
                continue;
            }
            Behaviour::Paced(pace) => {
                let pause = Duration::from_millis(rng.u64(pace.min_ms..=pace.max_ms));
                player.drain_until((now + pause).min(horizon)).await?;
                if Instant::now() < now + pause {
                    continue;
                }
            }
            Behaviour::Saturate => {}
        }
        let action = plan.mix.pick(&mut rng);
        let (command, ok) = match action {
            Action::Look => (script.look.clone(), &script.look_ok),
            Action::Say => {
                said += 1;
                let text = SAY_TEXT
                    .replace("{player}", &index.to_string())
                    .replace("{n}", &said.to_string());
                (script.say.replace("{text}", &text), &script.say_ok)
            }
            Action::Who => (script.who.clone(), &script.who_ok),
            Action::Move if !player.exits().is_empty() => {
                let exits = player.exits();
                (exits[rng.usize(..exits.len())].clone(), &script.move_ok)
            }
            Action::Move => (script.look.clone(), &script.look_ok),
        };
        let sent = Instant::now();
        let lines = player.take_lines();
        if shared.in_window(sent) {
            shared
                .counters
                .lines_received
                .fetch_add(lines, Ordering::Relaxed);
        }
        let deadline = sent + plan.timeout;
        if let Some(checks) = player.checks_mut() {
            // The action and its marker go in one write; the action is done
            // when the marker's reply comes, and every reply is counted.
            acted += 1;
            checks.markers.expect(acted, sent, deadline);
            let mut expected = 1;
            if action == Action::Say {
                checks.echoes.expect(said, sent, deadline);
                expected += 1;
            }
            shared
                .counters
                .replies_expected
                .fetch_add(expected, Ordering::Relaxed);
            let (marker, reply) = (checks.marker(acted), checks.marker_reply(acted));
            player.send_lines(&[&command, &marker]).await?;
            let outcome = player.expect(&reply, deadline).await;
            let now = Instant::now();
            if let Some(checks) = player.checks_mut() {
                checks.expire(now);
                if checks.markers.received(acted) {
                    shared.completed(sent, now);
                }
                shared.file_checks(checks);
            }
            if outcome == Err(WaitError::Closed) {
                return outcome;
            }
            continue;
        }
        player.send(&command).await?;
        match player.expect(ok, deadline).await {
            Ok(()) => shared.completed(sent, Instant::now()),
            Err(WaitError::Timeout | WaitError::Refused) => {
                shared.counters.lost_replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(WaitError::Closed) => return Err(WaitError::Closed),
        }
    }
}

/// With checks, once a player stops acting: reads until everything it
/// waits for came or timed out, and then [`CHAOS_LINGER`] longer for
/// replies that come twice.
async fn settle(player: &mut Player) -> Result<(), WaitError> {
    loop {
        let Some(checks) = player.checks_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        checks.expire(now);
        let Some(deadline) = checks.last_deadline() else {
            break;
        };
        player
            .drain_until(deadline.min(now + CHAOS_TICK * 5))
            .await?;
    }
    player.drain_until(Instant::now() + CHAOS_LINGER).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_parses() {
        assert_eq!(
            "1000-2000".parse::<Pace>(),
            Ok(Pace {
                min_ms: 1000,
                max_ms: 2000
            })
        );
        assert_eq!(
            "500".parse::<Pace>(),
            Ok(Pace {
                min_ms: 500,
                max_ms: 500
            })
        );
        assert!("2000-1000".parse::<Pace>().is_err());
        assert!("fast".parse::<Pace>().is_err());
    }
}
