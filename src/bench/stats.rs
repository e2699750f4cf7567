//! The load tester's arithmetic: latency histograms and their percentiles,
//! rates, per-process CPU share and memory per session. Pure functions over
//! recorded numbers, so every figure the report prints is unit tested.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds exactly; longer ones are clamped to it.
const MAX_TRACKED_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds (3 significant digits), shared by
/// every simulated player: recording is one short uncontended lock.
#[derive(Debug)]
pub struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> Self {
        Self {
            histogram: Mutex::new(new_histogram()),
        }
    }

    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_MICROS);
        if let Ok(mut histogram) = self.histogram.lock() {
            histogram.saturating_record(micros);
        }
    }

    pub fn summary(&self) -> LatencySummary {
        match self.histogram.lock() {
            Ok(histogram) => LatencySummary::of(&histogram),
            Err(_) => LatencySummary::default(),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; `new(3)` is the
    // auto-resizing fallback should that ever change.
    Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
        }
    }
}

/// Events per second; zero when no time passed.
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// Share of one core a process used: CPU ticks spent over wall time.
pub fn cpu_percent(ticks: u64, ticks_per_second: u64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs <= 0.0 || ticks_per_second == 0 {
        return 0.0;
    }
    ticks as f64 / ticks_per_second as f64 / secs * 100.0
}

/// Memory the sessions added, per session, in KiB: the growth of the
/// processes' resident set from before the players came to after.
pub fn per_session_kib(rss_before_kib: u64, rss_after_kib: u64, sessions: u64) -> Option<f64> {
    (sessions > 0).then(|| rss_after_kib.saturating_sub(rss_before_kib) as f64 / sessions as f64)
}

/// The longest stretch without any reply, from `start` (a reload, say) to
/// the last completion, given completion times in microseconds since a
/// common origin. Sorting is done here; the input may be in any order.
pub fn longest_gap_micros(start: u64, completions: &mut [u64]) -> u64 {
    completions.sort_unstable();
    let mut previous = start;
    let mut longest = 0;
    for &at in completions.iter().filter(|&&at| at >= start) {
        longest = longest.max(at - previous);
        previous = at;
    }
    longest
}

/// The longest stretch from `start` to `end` without a reply: between
/// `start`, each completion inside the span (in time order), and `end`. With
/// no completion at all the whole span is one gap.
pub fn longest_gap_within(start: u64, end: u64, completions: &mut [u64]) -> u64 {
    completions.sort_unstable();
    let mut previous = start;
    let mut longest = 0;
    for &at in completions.iter().filter(|&&at| at >= start && at <= end) {
        longest = longest.max(at - previous);
        previous = at;
    }
    longest.max(end.saturating_sub(previous))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        // hdrhistogram with 3 significant digits is within 0.1%.
        (actual - expected).abs() <= expected * 0.001 + 1e-9
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_milliseconds() {
        let recorder = LatencyRecorder::new();
        for ms in 1..=100 {
            recorder.record(Duration::from_millis(ms));
        }
        let s = recorder.summary();
        assert_eq!(s.count, 100);
        assert!(close(s.p50_ms, 50.0), "{s:?}");
        assert!(close(s.p90_ms, 90.0), "{s:?}");
        assert!(close(s.p99_ms, 99.0), "{s:?}");
        assert!(close(s.max_ms, 100.0), "{s:?}");
        assert!(close(s.mean_ms, 50.5), "{s:?}");
    }

    #[test]
    fn one_slow_reply_in_a_hundred_shows_only_at_the_top() {
        let recorder = LatencyRecorder::new();
        for _ in 0..99 {
            recorder.record(Duration::from_micros(800));
        }
        recorder.record(Duration::from_secs(3));
        let s = recorder.summary();
        assert!(close(s.p50_ms, 0.8) && close(s.p99_ms, 0.8), "{s:?}");
        assert!(close(s.max_ms, 3000.0), "{s:?}");
    }

    #[test]
    fn an_empty_histogram_reports_zeros_and_huge_values_are_clamped() {
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
        let recorder = LatencyRecorder::new();
        recorder.record(Duration::from_secs(100_000));
        recorder.record(Duration::ZERO);
        let s = recorder.summary();
        assert_eq!(s.count, 2);
        assert!(close(s.max_ms, MAX_TRACKED_MICROS as f64 / 1000.0), "{s:?}");
    }

    #[test]
    fn rates() {
        assert_eq!(rate(500, Duration::from_secs(2)), 250.0);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(3, Duration::from_millis(1500)), 2.0);
    }

    #[test]
    fn cpu_share_of_a_core() {
        // 150 ticks at 100 Hz over 3 s = half a core.
        assert_eq!(cpu_percent(150, 100, Duration::from_secs(3)), 50.0);
        // Two busy threads show as 200%.
        assert_eq!(cpu_percent(400, 100, Duration::from_secs(2)), 200.0);
        assert_eq!(cpu_percent(5, 0, Duration::from_secs(2)), 0.0);
    }

    #[test]
    fn memory_per_session() {
        assert_eq!(per_session_kib(10_000, 410_000, 10_000), Some(40.0));
        assert_eq!(per_session_kib(10_000, 9_000, 10), Some(0.0));
        assert_eq!(per_session_kib(1, 2, 0), None);
    }

    #[test]
    fn longest_gap_starts_at_the_event() {
        let mut done = vec![1_600, 1_100, 400, 1_700, 1_200];
        // From 1000: 1100 (100), 1200 (100), 1600 (400), 1700 (100).
        assert_eq!(longest_gap_micros(1_000, &mut done), 400);
        // Nothing after the event: no gap measured.
        assert_eq!(longest_gap_micros(5_000, &mut done), 0);
        // The wait for the first reply counts.
        assert_eq!(longest_gap_micros(0, &mut [900, 950]), 900);
    }

    #[test]
    fn longest_gap_within_a_window_counts_both_ends() {
        // Window 1000..2000: 1000→1100, 1100→1150, 1150→1700 (550), 1700→2000 (300).
        let mut done = vec![1_700, 900, 1_150, 2_500, 1_100];
        assert_eq!(longest_gap_within(1_000, 2_000, &mut done), 550);
        // Silence at the end of the window is a gap too.
        assert_eq!(longest_gap_within(1_000, 3_000, &mut [1_100, 1_200]), 1_800);
        // A window without any reply is one gap.
        assert_eq!(longest_gap_within(1_000, 2_000, &mut [500, 2_100]), 1_000);
        assert_eq!(longest_gap_within(1_000, 2_000, &mut []), 1_000);
    }
}
