//! Per-address throttles for failed logins and account creation (Evennia's
//! LOGIN_THROTTLE and CREATION_THROTTLE), as plain logic with the clock
//! passed in.
//!
//! An address is an IPv4 address or an IPv6 /64, so one host cannot dodge
//! the limit by hopping addresses inside its own network. A refused attempt
//! is decided here, before any password is hashed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub const LOGIN_THROTTLED: &str = "Too many login failures; please try again in a few minutes.";
pub const CREATION_THROTTLED: &str =
    "You are creating too many accounts. Please log into an existing account.";

pub use crate::session::source_key;

/// Counts events per source in a sliding window.
#[derive(Debug, Clone)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    events: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    /// `limit` events per `window`; a limit of 0 turns the throttle off.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            events: HashMap::new(),
        }
    }

    fn prune(&mut self, key: &str, now: Instant) {
        if let Some(q) = self.events.get_mut(key) {
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.is_empty() {
                self.events.remove(key);
            }
        }
    }

    /// True when `address` has used up its allowance.
    pub fn is_blocked(&mut self, address: &str, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let key = source_key(address);
        self.prune(&key, now);
        self.events
            .get(&key)
            .is_some_and(|q| q.len() >= self.limit as usize)
    }

    /// Counts one event for `address`.
    pub fn record(&mut self, address: &str, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let key = source_key(address);
        self.prune(&key, now);
        let q = self.events.entry(key).or_default();
        q.push_back(now);
        // Never keep more than the limit per source: memory stays bounded.
        while q.len() > self.limit as usize {
            q.pop_front();
        }
    }

    /// Takes back the newest event of `address` (an attempt that turned out
    /// not to count, such as a login that succeeded).
    pub fn forgive(&mut self, address: &str) {
        let key = source_key(address);
        if let Some(q) = self.events.get_mut(&key) {
            q.pop_back();
            if q.is_empty() {
                self.events.remove(&key);
            }
        }
    }

    /// Drops sources whose window has passed (called now and then).
    pub fn sweep(&mut self, now: Instant) {
        let keys: Vec<String> = self.events.keys().cloned().collect();
        for k in keys {
            self.prune(&k, now);
        }
    }

    pub fn tracked_sources(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_passes() {
        let t0 = Instant::now();
        let mut t = Throttle::new(3, Duration::from_secs(300));
        for _ in 0..3 {
            assert!(!t.is_blocked("192.0.2.1", t0));
            t.record("192.0.2.1", t0);
        }
        assert!(t.is_blocked("192.0.2.1", t0));
        assert!(
            !t.is_blocked("192.0.2.2", t0),
            "other addresses are not affected"
        );
        assert!(!t.is_blocked("192.0.2.1", t0 + Duration::from_secs(300)));
    }

    #[test]
    fn forgiven_attempts_do_not_count() {
        let t0 = Instant::now();
        let mut t = Throttle::new(2, Duration::from_secs(60));
        t.record("192.0.2.1", t0);
        t.record("192.0.2.1", t0);
        assert!(t.is_blocked("192.0.2.1", t0));
        t.forgive("192.0.2.1");
        assert!(!t.is_blocked("192.0.2.1", t0));
        t.forgive("192.0.2.1");
        t.forgive("192.0.2.1");
        assert_eq!(t.tracked_sources(), 0);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let t0 = Instant::now();
        let mut t = Throttle::new(2, Duration::from_secs(60));
        t.record("2001:db8:1:2::1", t0);
        t.record("2001:db8:1:2:ffff::9", t0);
        assert!(t.is_blocked("2001:db8:1:2::77", t0));
        assert!(!t.is_blocked("2001:db8:1:3::1", t0));
        assert_eq!(source_key("::ffff:192.0.2.5"), "192.0.2.5");
    }

    #[test]
    fn zero_limit_is_off_and_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut off = Throttle::new(0, Duration::from_secs(60));
        off.record("192.0.2.1", t0);
        assert!(!off.is_blocked("192.0.2.1", t0));
        let mut t = Throttle::new(2, Duration::from_secs(60));
        for _ in 0..1000 {
            t.record("192.0.2.1", t0);
        }
        assert_eq!(t.events["192.0.2.1"].len(), 2);
        t.sweep(t0 + Duration::from_secs(61));
        assert_eq!(t.tracked_sources(), 0);
    }
}
