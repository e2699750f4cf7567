//! The Portal's input limits as plain logic (no actors, no clock of their own):
//! the per-session command rate, the per-source connection queue and its pace, the
//! stall detector for output a client does not accept, and the texts a player sees
//! when a limit applies.
//!
//! Time is passed in, so every rule is unit tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::session::SessionId;

/// Sent when a line is longer than `portal.max_char_limit` (Evennia's text).
pub const MAX_CHAR_LIMIT_WARNING: &str =
    "You entered a string that was too long. Please break it up into multiple parts.";
/// Sent when a session exceeds `portal.max_command_rate` (Evennia's text).
pub const COMMAND_RATE_WARNING: &str =
    "You entered commands too fast. Wait a moment and try again.";
/// Sent to a connection refused by `portal.max_unauthenticated_per_source`.
pub const TOO_MANY_UNAUTHENTICATED_MESSAGE: &str =
    "Too many connections from your address are logging in at once. Try again in a moment.";
/// Sent before a connection that never logged in is closed (`portal.login_timeout`).
pub const LOGIN_TIMEOUT_MESSAGE: &str = "You took too long to log in. Goodbye.";
/// Sent when input arrives while the Server is away and the session's queue is full.
pub const INPUT_QUEUE_FULL_WARNING: &str =
    "The game is restarting and your earlier input is still waiting; this line was dropped.";

/// Counts input per session in one-second windows.
#[derive(Debug, Clone)]
pub struct CommandRate {
    window_start: Instant,
    count: u32,
    /// Set once per window so a flood gets one warning, not one per line.
    warned: bool,
}

/// What to do with one line of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Accept,
    /// Drop the line and tell the player.
    DropAndWarn,
    /// Drop the line quietly: the player was already warned in this window.
    Drop,
}

impl CommandRate {
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            count: 0,
            warned: false,
        }
    }

    /// Records one line; `max_per_second <= 0` turns the limit off.
    pub fn check(&mut self, max_per_second: f64, now: Instant) -> RateVerdict {
        if max_per_second <= 0.0 {
            return RateVerdict::Accept;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
            self.warned = false;
        }
        self.count += 1;
        if f64::from(self.count) <= max_per_second {
            RateVerdict::Accept
        } else if self.warned {
            RateVerdict::Drop
        } else {
            self.warned = true;
            RateVerdict::DropAndWarn
        }
    }
}

/// Paces how fast one connection's input is read: `rate` bytes per second after a
/// burst of four seconds' worth. Input beyond it is read later, never dropped, so
/// TCP makes a flooder wait and the Portal spends nothing on what it has not read.
#[derive(Debug, Clone)]
pub struct InputPacer {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

/// Seconds of input the burst holds.
const INPUT_BURST_SECS: f64 = 4.0;

impl InputPacer {
    /// `rate` in bytes per second; `0` turns pacing off.
    pub fn new(rate: usize, now: Instant) -> Self {
        let rate = rate as f64;
        let burst = rate * INPUT_BURST_SECS;
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Counts `bytes` just read; answers how long to wait before reading more.
    pub fn spend(&mut self, bytes: usize, now: Instant) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// How often a session with output waiting looks at what its client has accepted
/// (the output limit with the kernel's share, and [`OutputStall`]).
pub const OUTPUT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Watches one client's output for a stall (`portal.output_stall_timeout`): output
/// is waiting and the client accepts none of it.
///
/// The caller samples two numbers now and then: what is `outstanding` (queued in
/// the Portal, held by the kernel, or sent to a web tab and not yet confirmed) and
/// how much the client has `accepted` in all. A client that accepts anything, however
/// little, starts the clock again; so does having nothing outstanding. Only a count
/// of accepted bytes that stands still while output waits runs the clock down.
#[derive(Debug, Clone)]
pub struct OutputStall {
    timeout: Option<Duration>,
    /// `accepted` at the previous sample.
    accepted: u64,
    /// Output was outstanding at the previous sample. Samples stop while nothing
    /// waits, so the clock starts afresh at the first sample that finds output.
    waiting: bool,
    /// Since when nothing has been accepted while output waited.
    since: Instant,
}

impl OutputStall {
    /// `timeout` of `None` (or zero) turns the check off.
    pub fn new(timeout: Option<Duration>, now: Instant) -> Self {
        Self {
            timeout: timeout.filter(|t| !t.is_zero()),
            accepted: 0,
            waiting: false,
            since: now,
        }
    }

    /// Takes one sample; answers how long the client has accepted nothing while
    /// output waited, once that reaches the timeout.
    pub fn observe(&mut self, outstanding: u64, accepted: u64, now: Instant) -> Option<Duration> {
        if outstanding == 0 || !self.waiting || accepted > self.accepted {
            self.since = now;
        }
        self.accepted = accepted;
        self.waiting = outstanding > 0;
        let stalled = now.saturating_duration_since(self.since);
        self.timeout.filter(|t| stalled >= *t).map(|_| stalled)
    }
}

/// True when `line` breaks `portal.max_char_limit` (`0` turns it off).
pub fn too_long(line: &str, max_chars: usize) -> bool {
    max_chars > 0 && line.chars().count() > max_chars
}

/// Paces the release of new connections to `max_connection_rate` per second.
#[derive(Debug, Clone)]
pub struct ConnectionPacer {
    interval: Duration,
    next_slot: Option<Instant>,
}

impl ConnectionPacer {
    pub fn new(max_per_second: f64) -> Self {
        let interval = if max_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / max_per_second)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next_slot: None,
        }
    }

    /// Takes a release slot now if one is free; otherwise says how long to wait.
    pub fn try_release(&mut self, now: Instant) -> Result<(), Duration> {
        match self.next_slot {
            Some(slot) if slot > now => Err(slot - now),
            _ => {
                self.next_slot = Some(now + self.interval);
                Ok(())
            }
        }
    }

    /// True while the last release's slot has not run out.
    fn is_busy(&self, now: Instant) -> bool {
        self.next_slot.is_some_and(|slot| slot > now)
    }

    /// Seconds a connection at queue position `position` (1-based) waits.
    pub fn wait_estimate_secs(&self, position: usize) -> u64 {
        (self.interval.as_secs_f64() * position as f64).ceil() as u64
    }
}

/// New connections waiting to be released to the game: one queue per source (the
/// IPv4 address or IPv6 /64 of [`crate::session::source_key`]), each released at
/// `max_connection_rate`. A flood from one address waits behind itself; a player
/// from anywhere else is let in at once. Nobody is dropped.
#[derive(Debug)]
pub struct ConnectionQueue {
    max_per_second: f64,
    sources: HashMap<String, SourceQueue>,
    waiting: usize,
}

#[derive(Debug)]
struct SourceQueue {
    pacer: ConnectionPacer,
    waiting: VecDeque<SessionId>,
}

impl ConnectionQueue {
    /// `max_per_second <= 0` releases every connection at once.
    pub fn new(max_per_second: f64) -> Self {
        Self {
            max_per_second,
            sources: HashMap::new(),
            waiting: 0,
        }
    }

    pub fn push(&mut self, source: &str, sessid: SessionId) {
        let max = self.max_per_second;
        self.sources
            .entry(source.to_owned())
            .or_insert_with(|| SourceQueue {
                pacer: ConnectionPacer::new(max),
                waiting: VecDeque::new(),
            })
            .waiting
            .push_back(sessid);
        self.waiting += 1;
    }

    /// Forgets a connection that closed while it waited.
    pub fn remove(&mut self, source: &str, sessid: SessionId) {
        if let Some(queue) = self.sources.get_mut(source) {
            let before = queue.waiting.len();
            queue.waiting.retain(|id| *id != sessid);
            self.waiting -= before - queue.waiting.len();
        }
    }

    /// Connections waiting, from every source.
    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Takes every connection whose source has a free slot now, oldest first; also
    /// answers how long until the next one is due (`None`: nothing waits).
    pub fn release(&mut self, now: Instant) -> (Vec<SessionId>, Option<Duration>) {
        let mut ready = Vec::new();
        let mut next: Option<Duration> = None;
        for queue in self.sources.values_mut() {
            while let Some(&sessid) = queue.waiting.front() {
                match queue.pacer.try_release(now) {
                    Ok(()) => {
                        queue.waiting.pop_front();
                        ready.push(sessid);
                    }
                    Err(wait) => {
                        next = Some(next.map_or(wait, |n| n.min(wait)));
                        break;
                    }
                }
            }
        }
        self.waiting -= ready.len();
        // A source with nobody waiting and no slot still running is forgotten: its
        // next connection would be released at once either way.
        self.sources
            .retain(|_, q| !q.waiting.is_empty() || q.pacer.is_busy(now));
        ready.sort();
        (ready, next)
    }

    /// Seconds `sessid` still waits, if it is queued.
    pub fn wait_estimate_secs(&self, source: &str, sessid: SessionId) -> Option<u64> {
        let queue = self.sources.get(source)?;
        let index = queue.waiting.iter().position(|id| *id == sessid)?;
        Some(queue.pacer.wait_estimate_secs(index + 1))
    }
}

/// The message a queued connection sees (Evennia's text, with the space it lacks).
pub fn queued_message(server_name: &str, wait_secs: u64) -> String {
    format!(
        "{server_name} DoS protection is active. You are queued to connect in {wait_secs} seconds ..."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_that_nobody_accepts_stalls_after_the_timeout() {
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        let mut stall = OutputStall::new(Some(Duration::from_secs(5)), t0);
        assert_eq!(stall.observe(1000, 200, secs(1)), None);
        assert_eq!(stall.observe(1000, 200, secs(5)), None);
        assert_eq!(
            stall.observe(1000, 200, secs(6)),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn a_client_that_accepts_a_little_at_a_time_never_stalls() {
        let t0 = Instant::now();
        let mut stall = OutputStall::new(Some(Duration::from_secs(5)), t0);
        for n in 1..100u64 {
            // One byte every four seconds, with a lot still waiting.
            let now = t0 + Duration::from_secs(4 * n);
            assert_eq!(stall.observe(1 << 20, n, now), None, "cut at {n}");
        }
    }

    #[test]
    fn nothing_waiting_is_no_stall_and_the_clock_starts_when_output_does() {
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        let mut stall = OutputStall::new(Some(Duration::from_secs(5)), t0);
        // Idle for a minute: the count stands still, but nothing waits.
        for n in 1..60 {
            assert_eq!(stall.observe(0, 300, secs(n)), None);
        }
        // Output now waits: five seconds from here, not from the last progress.
        assert_eq!(stall.observe(500, 300, secs(60)), None);
        assert_eq!(stall.observe(500, 300, secs(64)), None);
        assert!(stall.observe(500, 300, secs(65)).is_some());
        // Nothing waits, then no samples for an hour, then output again.
        assert_eq!(stall.observe(0, 800, secs(66)), None);
        assert_eq!(stall.observe(100, 800, secs(3666)), None);
        assert_eq!(stall.observe(100, 800, secs(3670)), None);
        assert!(stall.observe(100, 800, secs(3671)).is_some());
    }

    #[test]
    fn a_count_that_dips_and_returns_is_no_progress_and_off_means_off() {
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        let mut stall = OutputStall::new(Some(Duration::from_secs(5)), t0);
        assert_eq!(stall.observe(500, 300, secs(0)), None);
        // TLS framing makes the estimate dip as more goes out unacknowledged.
        assert_eq!(stall.observe(600, 290, secs(2)), None);
        assert_eq!(stall.observe(600, 290, secs(4)), None);
        assert!(stall.observe(600, 290, secs(8)).is_some());

        let mut off = OutputStall::new(None, t0);
        assert_eq!(off.observe(500, 0, secs(3600)), None);
        let mut zero = OutputStall::new(Some(Duration::ZERO), t0);
        assert_eq!(zero.observe(500, 0, secs(3600)), None);
    }

    #[test]
    fn rate_accepts_up_to_the_limit_then_warns_once_per_window() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(t0);
        for _ in 0..3 {
            assert_eq!(rate.check(3.0, t0), RateVerdict::Accept);
        }
        assert_eq!(rate.check(3.0, t0), RateVerdict::DropAndWarn);
        assert_eq!(rate.check(3.0, t0), RateVerdict::Drop);
        let t1 = t0 + Duration::from_millis(1001);
        assert_eq!(rate.check(3.0, t1), RateVerdict::Accept);
    }

    #[test]
    fn zero_or_negative_rate_is_off() {
        let t0 = Instant::now();
        let mut rate = CommandRate::new(t0);
        for _ in 0..10_000 {
            assert_eq!(rate.check(0.0, t0), RateVerdict::Accept);
            assert_eq!(rate.check(-1.0, t0), RateVerdict::Accept);
        }
    }

    #[test]
    fn char_limit_counts_characters_not_bytes() {
        assert!(!too_long("ééé", 3));
        assert!(too_long("abcd", 3));
        assert!(!too_long(&"x".repeat(100_000), 0));
    }

    #[test]
    fn pacer_releases_one_per_interval() {
        let t0 = Instant::now();
        let mut pacer = ConnectionPacer::new(2.0);
        assert!(pacer.try_release(t0).is_ok());
        let wait = pacer.try_release(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(pacer.try_release(t0 + Duration::from_millis(500)).is_ok());
        assert_eq!(pacer.wait_estimate_secs(3), 2);
    }

    #[test]
    fn input_is_read_at_the_rate_after_a_burst() {
        let t0 = Instant::now();
        let mut pacer = InputPacer::new(1000, t0);
        // Four seconds' worth goes through at once...
        assert_eq!(pacer.spend(4000, t0), Duration::ZERO);
        // ...then reading waits as long as the excess takes at the rate.
        assert_eq!(pacer.spend(500, t0), Duration::from_millis(500));
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(pacer.spend(1000, later), Duration::ZERO);
        // Off: never waits.
        let mut off = InputPacer::new(0, t0);
        assert_eq!(off.spend(usize::MAX / 2, t0), Duration::ZERO);
    }

    #[test]
    fn each_source_waits_behind_itself_only() {
        let t0 = Instant::now();
        let mut queue = ConnectionQueue::new(1.0);
        for id in 1..=3 {
            queue.push("198.51.100.7", SessionId(id));
        }
        queue.push("2001:db8:1:2::", SessionId(4));
        let (ready, next) = queue.release(t0);
        assert_eq!(ready, vec![SessionId(1), SessionId(4)]);
        assert_eq!(next, Some(Duration::from_secs(1)));
        assert_eq!(queue.len(), 2);
        assert_eq!(
            queue.wait_estimate_secs("198.51.100.7", SessionId(3)),
            Some(2)
        );
        // A newcomer from a third address does not queue behind the flood.
        queue.push("203.0.113.9", SessionId(5));
        assert_eq!(queue.release(t0).0, vec![SessionId(5)]);
        // One that closed while waiting is forgotten.
        queue.remove("198.51.100.7", SessionId(3));
        let (ready, next) = queue.release(t0 + Duration::from_secs(1));
        assert_eq!(ready, vec![SessionId(2)]);
        assert_eq!(next, None);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_zero_rate_releases_everyone_at_once() {
        let t0 = Instant::now();
        let mut queue = ConnectionQueue::new(0.0);
        for id in 1..=100 {
            queue.push("198.51.100.7", SessionId(id));
        }
        assert_eq!(queue.release(t0).0.len(), 100);
        assert!(queue.is_empty());
    }

    #[test]
    fn queued_message_names_the_game_and_the_wait() {
        assert_eq!(
            queued_message("Mygame", 4),
            "Mygame DoS protection is active. You are queued to connect in 4 seconds ..."
        );
    }
}
