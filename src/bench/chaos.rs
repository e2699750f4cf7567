//! `--chaos`: Server reloads, Server SIGKILLs and Portal upgrades thrown at
//! random moments of the measured window, one at a time.
//!
//! The kinds of event are [`EventKind`] (what each one sends, and when the game
//! counts as back from it); [`Scheduler`] decides when the next one is due, as a
//! plain function of time and a seeded rng, so a run can be repeated and the
//! rules are unit tested; [`Chaos`] applies both to the real processes. Nothing
//! here ever signals the Portal with anything but SIGHUP and SIGUSR2.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::Signal;
use serde::Serialize;

use super::target::Pids;
use crate::control;

/// The least time between the game being back from one event and the next event.
pub const SETTLE: Duration = Duration::from_secs(1);

/// What a chaos event does to the game.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// SIGHUP to the Portal (what `gatehouse reload` sends): the Server stops
    /// cleanly and the Portal starts a new one.
    Reload,
    /// SIGKILL to the Server: it dies mid-write, and the Portal's supervisor
    /// starts a new one.
    Kill,
    /// SIGUSR2 to the Portal (what `gatehouse upgrade` sends): the Portal execs
    /// its binary in place, keeping every connection and its Server.
    Upgrade,
}

impl EventKind {
    /// Every kind, in the order the mix and the report list them.
    pub const ALL: [EventKind; 3] = [EventKind::Reload, EventKind::Kill, EventKind::Upgrade];

    /// The kind's name in `--chaos-mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Reload => "reload",
            EventKind::Kill => "kill",
            EventKind::Upgrade => "upgrade",
        }
    }

    /// Throws the event at the game `pids` points to.
    pub fn fire(self, pids: &Pids) -> anyhow::Result<()> {
        match self {
            EventKind::Reload => pids.reload(),
            EventKind::Kill => {
                let pid = pids
                    .server()
                    .context("--chaos kill needs the Server's pid (--spawn or --attach)")?;
                control::send_signal(pid, Signal::SIGKILL)
                    .with_context(|| format!("cannot SIGKILL the Server (pid {pid})"))
            }
            EventKind::Upgrade => {
                let pid = pids
                    .portal()
                    .context("--chaos upgrade needs the Portal's pid (--spawn or --attach)")?;
                control::send_signal(pid, Signal::SIGUSR2)
                    .with_context(|| format!("cannot ask the Portal (pid {pid}) to upgrade"))
            }
        }
    }

    /// Whether the game is back from this event: `before` is what it looked
    /// like when the event was thrown, `now` what it looks like now.
    pub fn recovered(self, before: &GameState, now: &GameState) -> bool {
        match self {
            // Both end with a new Server that the Portal reports connected.
            EventKind::Reload | EventKind::Kill => {
                now.server_connected
                    && now.server_pid.is_some()
                    && now.server_pid != before.server_pid
            }
            // The same Server, reconnected to the Portal's new image.
            EventKind::Upgrade => {
                now.server_connected && now.upgraded.is_some() && now.upgraded != before.upgraded
            }
        }
    }
}

/// What the Portal reports about the game, for [`EventKind::recovered`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GameState {
    /// The Server the Portal's link talks to, if any.
    pub server_pid: Option<u32>,
    /// The Portal has a Server on its link.
    pub server_connected: bool,
    /// When the Portal's binary was last replaced in place.
    pub upgraded: Option<u64>,
}

impl GameState {
    /// Reads `run/status.toml` of the game dir behind `pids`; nothing known
    /// without one.
    pub fn read(pids: &Pids) -> Self {
        let status = match pids {
            Pids::GameDir(root) => control::GameDir::new(root).read_status(),
            _ => None,
        };
        match status {
            Some(s) => Self {
                server_pid: s.server_pid,
                server_connected: s.server_connected,
                upgraded: s.upgraded,
            },
            None => Self::default(),
        }
    }
}

/// Weights of the event kinds, as given by `reload=1,kill=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosMix {
    weights: Vec<(EventKind, u32)>,
    total: u32,
}

impl ChaosMix {
    /// A kind drawn by weight.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> EventKind {
        let mut roll = rng.u32(0..self.total);
        for &(kind, weight) in &self.weights {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        EventKind::Reload
    }
}

impl FromStr for ChaosMix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut weights: Vec<(EventKind, u32)> = EventKind::ALL.iter().map(|&k| (k, 0)).collect();
        let names = || {
            EventKind::ALL
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not event=weight"))?;
            let slot = weights
                .iter_mut()
                .find(|(k, _)| k.name() == name.trim())
                .ok_or_else(|| format!("unknown event '{}' ({})", name.trim(), names()))?;
            slot.1 = weight
                .trim()
                .parse()
                .map_err(|_| format!("'{weight}' is not a whole number"))?;
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the event weights add up to 0".into());
        }
        Ok(Self { weights, total })
    }
}

/// When the next event is due. Time is measured from the window's start.
///
/// Pauses between events are drawn from an exponential distribution with
/// the given mean (events at random moments, a Poisson process), and the kind
/// by weight, both from one seeded rng in a fixed order, so the same seed
/// gives the same kinds in the same order and the same pauses. Events never
/// overlap: while the game is not back from one, nothing is thrown, and the
/// next waits at least [`SETTLE`] after it is back.
#[derive(Debug)]
pub struct Scheduler {
    rng: fastrand::Rng,
    mix: ChaosMix,
    mean: Duration,
    /// When the next event is due by its drawn pause.
    due: Duration,
    /// `None` while the game is away; otherwise the earliest moment the
    /// no-overlap rule allows.
    earliest: Option<Duration>,
}

impl Scheduler {
    /// A schedule of events `mean` apart on average, starting at time 0.
    pub fn new(seed: u64, mix: ChaosMix, mean: Duration) -> Self {
        let mut scheduler = Self {
            rng: fastrand::Rng::with_seed(seed),
            mix,
            mean,
            due: Duration::ZERO,
            earliest: Some(Duration::ZERO),
        };
        scheduler.due = scheduler.pause();
        scheduler
    }

    fn pause(&mut self) -> Duration {
        // 1 - u is in (0, 1], so its logarithm is finite.
        let u = self.rng.f64();
        self.mean.mul_f64(-(1.0 - u).ln())
    }

    /// The event to throw at `now`, if one is due; from then on the game
    /// counts as away until [`Scheduler::back`].
    pub fn poll(&mut self, now: Duration) -> Option<EventKind> {
        let earliest = self.earliest?;
        if now < self.due.max(earliest) {
            return None;
        }
        let kind = self.mix.pick(&mut self.rng);
        self.due = now + self.pause();
        self.earliest = None;
        Some(kind)
    }

    /// The game is back from the last event at `now`.
    pub fn back(&mut self, now: Duration) {
        if self.earliest.is_none() {
            self.earliest = Some(now + SETTLE);
        }
    }

    /// True while the game is not back from the last event.
    pub fn waiting(&self) -> bool {
        self.earliest.is_none()
    }
}

/// One event as the report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    /// [`EventKind::name`].
    pub kind: &'static str,
    /// Seconds into the measured window it was thrown.
    pub at_secs: f64,
    /// How long the game took to be back; `None`: it was not back by the end.
    pub back_after_ms: Option<f64>,
}

/// The events of one run, thrown at the processes behind a [`Pids`].
pub struct Chaos {
    scheduler: Scheduler,
    pids: Pids,
    /// The event the game is not back from yet, and the game as it was then.
    away: Option<(EventKind, Duration, GameState)>,
    events: Vec<EventRecord>,
}

impl Chaos {
    /// Events from `scheduler` thrown at `pids`.
    pub fn new(scheduler: Scheduler, pids: Pids) -> Self {
        Self {
            scheduler,
            pids,
            away: None,
            events: Vec::new(),
        }
    }

    /// Checks whether the game is back, then throws the event due at `now`
    /// (time into the window), if any, and says which. With `throw` false it
    /// only watches the game come back (after the window).
    pub fn step(&mut self, now: Duration, throw: bool) -> anyhow::Result<Option<EventKind>> {
        if let Some((kind, at, before)) = self.away {
            if kind.recovered(&before, &GameState::read(&self.pids)) {
                self.away = None;
                self.scheduler.back(now);
                if let Some(record) = self.events.last_mut() {
                    record.back_after_ms = Some(now.saturating_sub(at).as_secs_f64() * 1000.0);
                }
            }
        }
        if !throw {
            return Ok(None);
        }
        let Some(kind) = self.scheduler.poll(now) else {
            return Ok(None);
        };
        let before = GameState::read(&self.pids);
        kind.fire(&self.pids)?;
        self.away = Some((kind, now, before));
        self.events.push(EventRecord {
            kind: kind.name(),
            at_secs: now.as_secs_f64(),
            back_after_ms: None,
        });
        Ok(Some(kind))
    }

    /// True while the game is not back from the last event.
    pub fn waiting(&self) -> bool {
        self.scheduler.waiting()
    }

    /// The events thrown so far.
    pub fn events(&self) -> &[EventRecord] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(text: &str) -> ChaosMix {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs a scheduler over 0..end in 10 ms steps; the game is back
    /// `recovery` after each event. Answers when each event was thrown.
    fn simulate(
        scheduler: &mut Scheduler,
        end: Duration,
        recovery: Duration,
    ) -> Vec<(Duration, EventKind)> {
        let mut thrown: Vec<(Duration, EventKind)> = Vec::new();
        let mut now = Duration::ZERO;
        while now < end {
            if let Some(&(at, _)) = thrown.last() {
                if scheduler.waiting() && now >= at + recovery {
                    scheduler.back(now);
                }
            }
            if let Some(kind) = scheduler.poll(now) {
                thrown.push((now, kind));
            }
            now += ms(10);
        }
        thrown
    }

    #[test]
    fn the_mix_parses_like_the_action_mix() {
        let m = mix("reload=1,kill=3");
        let mut rng = fastrand::Rng::with_seed(3);
        let kills = (0..10_000)
            .filter(|_| m.pick(&mut rng) == EventKind::Kill)
            .count();
        assert!(kills.abs_diff(7_500) < 300, "{kills}");
        let only = mix("kill=1");
        assert!((0..100).all(|_| only.pick(&mut rng) == EventKind::Kill));
        assert!("kill=0"
            .parse::<ChaosMix>()
            .unwrap_err()
            .contains("add up to 0"));
        let unknown = "restart=1".parse::<ChaosMix>().unwrap_err();
        assert!(
            unknown.contains("unknown event 'restart' (reload, kill, upgrade)"),
            "{unknown}"
        );
        assert!("kill"
            .parse::<ChaosMix>()
            .unwrap_err()
            .contains("event=weight"));
        assert!("kill=x"
            .parse::<ChaosMix>()
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn the_same_seed_throws_the_same_events_at_the_same_times() {
        let run = |seed| {
            let mut s = Scheduler::new(seed, mix("reload=1,kill=1"), ms(500));
            simulate(&mut s, Duration::from_secs(60), ms(300))
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let kinds: Vec<EventKind> = run(7).into_iter().map(|(_, k)| k).collect();
        assert!(kinds.contains(&EventKind::Reload) && kinds.contains(&EventKind::Kill));
    }

    #[test]
    fn nothing_is_thrown_while_the_game_is_away_nor_within_a_second_of_its_return() {
        let recovery = ms(2_000);
        let mut s = Scheduler::new(1, mix("reload=1,kill=1"), ms(100));
        let thrown = simulate(&mut s, Duration::from_secs(60), recovery);
        assert!(thrown.len() > 10, "{thrown:?}");
        for pair in thrown.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap >= recovery + SETTLE, "{thrown:?}");
            // With a mean of 0.1 s every pause is over by then: the next
            // event comes at once (within a 10 ms step).
            assert!(gap <= recovery + SETTLE + ms(20), "{thrown:?}");
        }
        // A game that never comes back gets nothing more.
        let mut s = Scheduler::new(1, mix("kill=1"), ms(100));
        let mut thrown = 0;
        for step in 0..6_000 {
            thrown += usize::from(s.poll(ms(step * 10)).is_some());
        }
        assert_eq!(thrown, 1);
    }

    #[test]
    fn pauses_average_the_mean() {
        let mean = Duration::from_secs(10);
        let mut s = Scheduler::new(42, mix("reload=1"), mean);
        let mut now = Duration::ZERO;
        let mut events = 0u32;
        // Back at once after each event: only the drawn pauses (and SETTLE) count.
        while now < Duration::from_secs(100_000) {
            if s.poll(now).is_some() {
                events += 1;
                s.back(now);
            }
            now += ms(100);
        }
        // The mean pause is 10 s; one shorter than SETTLE waits for it, which
        // adds 0.05 s, and the 0.1 s steps as much again. About 10,000 pauses
        // put the average within 0.1 s of that (one standard error).
        let average = 100_000.0 / f64::from(events);
        assert!((9.7..10.5).contains(&average), "{average} s between events");
    }

    #[test]
    fn the_game_is_back_when_a_new_server_is_connected() {
        let state = |pid, connected| GameState {
            server_pid: pid,
            server_connected: connected,
            upgraded: None,
        };
        let before = state(Some(10), true);
        let away = state(None, false);
        let starting = state(Some(11), false);
        let back = state(Some(11), true);
        for kind in [EventKind::Reload, EventKind::Kill] {
            assert!(!kind.recovered(&before, &before));
            assert!(!kind.recovered(&before, &away));
            assert!(!kind.recovered(&before, &starting));
            assert!(kind.recovered(&before, &back));
        }
    }

    #[test]
    fn the_game_is_back_from_an_upgrade_when_the_same_server_is_on_the_new_portal() {
        let before = GameState {
            server_pid: Some(10),
            server_connected: true,
            upgraded: None,
        };
        let handing_over = GameState {
            server_connected: false,
            upgraded: Some(5),
            ..before
        };
        let back = GameState {
            upgraded: Some(5),
            ..before
        };
        assert!(!EventKind::Upgrade.recovered(&before, &before));
        assert!(!EventKind::Upgrade.recovered(&before, &handing_over));
        assert!(EventKind::Upgrade.recovered(&before, &back));
    }
}
