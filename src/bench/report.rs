//! What `gatehouse bench` tells its user: the report (as text for people,
//! as JSON for machines) and the progress line while it runs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::chaos::{EventKind, EventRecord};
use super::flood::FloodReport;
use super::stats::LatencySummary;
use super::target::ProcessUsage;
use super::{read, Counters};

/// Everything one `gatehouse bench` measured.
#[derive(Debug, Default, Serialize)]
pub struct BenchReport {
    pub run: Option<RunReport>,
    pub echo_baseline: Option<RunReport>,
}

impl BenchReport {
    /// The run's action rate as a share of the echo baseline's.
    pub fn echo_ratio(&self) -> Option<f64> {
        let run = self.run.as_ref()?;
        let echo = self.echo_baseline.as_ref()?;
        (echo.actions_per_sec > 0.0).then(|| run.actions_per_sec / echo.actions_per_sec)
    }

    /// Problems a user must not miss (the smoke test asserts there are none).
    pub fn errors(&self) -> u64 {
        [&self.run, &self.echo_baseline]
            .into_iter()
            .flatten()
            .map(RunReport::errors)
            .sum()
    }

    /// Why a `--chaos` run failed, if it did: what a user must read as
    /// FAILED (and `gatehouse bench` exits non-zero for).
    pub fn chaos_failure(&self) -> Option<String> {
        let problems = self.run.as_ref()?.chaos.as_ref()?.problems();
        (!problems.is_empty()).then(|| problems.join(", "))
    }

    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct WithRatio<'a> {
            #[serde(flatten)]
            report: &'a BenchReport,
            echo_ratio: Option<f64>,
            errors: u64,
        }
        serde_json::to_string_pretty(&WithRatio {
            report: self,
            echo_ratio: self.echo_ratio(),
            errors: self.errors(),
        })
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// One workload against one server.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub target: String,
    pub mode: String,
    pub clients: usize,
    /// Length of the measured window.
    pub duration_secs: f64,
    /// Connections open at the end of the window.
    pub connections_held: u64,
    pub logged_in: u64,
    pub connect_failures: u64,
    pub login_failures: u64,
    /// Actions sent in the window and answered.
    pub actions: u64,
    pub actions_per_sec: f64,
    /// Lines delivered to the players per second: replies plus everything
    /// the server fanned out (speech, arrivals), the load a crowded room makes.
    pub lines_received_per_sec: f64,
    /// Round trip of each action, send to the end of its reply.
    pub latency: LatencySummary,
    /// Connect to logged in (including account creation when it was done).
    pub login_latency: LatencySummary,
    pub lost_replies: u64,
    pub disconnects: u64,
    pub processes: Vec<ProcessUsage>,
    /// Growth of the watched processes' memory per logged-in player.
    pub rss_per_session_kib: Option<f64>,
    pub reload: Option<ReloadReport>,
    pub chaos: Option<ChaosReport>,
    pub storm: Option<StormReport>,
    pub flood: Option<FloodReport>,
}

impl RunReport {
    pub fn errors(&self) -> u64 {
        self.connect_failures
            + self.login_failures
            + self.lost_replies
            + self.disconnects
            + self.storm.as_ref().map_or(0, |s| s.failed)
            + self.chaos.as_ref().map_or(0, |c| {
                c.duplicated_replies
                    + c.events
                        .iter()
                        .filter(|e| e.back_after_ms.is_none())
                        .count() as u64
            })
    }
}

/// What `--chaos` threw and what the players saw: every figure but the
/// latencies must be 0 for the run to pass.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// Give it as `--chaos-seed` to throw the same events again.
    pub seed: u64,
    /// Mean seconds between events (`--chaos-every`).
    pub every_secs: f64,
    /// Events thrown, by kind (every kind listed).
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Each event, in order.
    pub events: Vec<EventRecord>,
    /// Connections the server closed before the end.
    pub disconnects: u64,
    /// Replies expected exactly once: a marker reply per action, an echo per say.
    pub replies_expected: u64,
    /// ... seen in time.
    pub replies_received: u64,
    /// ... not seen within `--timeout`.
    pub lost_replies: u64,
    /// Lost replies that came after all (still lost).
    pub late_replies: u64,
    /// Replies seen more often than their command was sent.
    pub duplicated_replies: u64,
    /// Longest time in the window in which no player's action was answered.
    pub longest_gap_ms: f64,
    /// Longest one action waited for its marker's reply (late ones too).
    pub longest_wait_ms: f64,
    /// Round trips of the actions sent within 5 s after an event.
    pub after_events: LatencySummary,
    /// The first lost, late or duplicated replies, one by one.
    pub odd_replies: Vec<OddReply>,
    /// No disconnect, no lost or duplicated reply, and the game back after every event.
    pub passed: bool,
}

/// One lost, late or duplicated reply, to set beside the events.
#[derive(Debug, Clone, Serialize)]
pub struct OddReply {
    /// `lost`, `late` or `duplicated`.
    pub what: &'static str,
    /// The reply expected.
    pub reply: String,
    /// Seconds into the window its command was sent (before the window:
    /// negative); `None` for a reply never asked for.
    pub sent_at_secs: Option<f64>,
    /// Seconds into the window it was seen (for a lost one: given up).
    pub at_secs: f64,
}

impl ChaosReport {
    /// Takes the events thrown, and decides whether the run passed.
    pub fn set_events(&mut self, events: &[EventRecord]) {
        self.events = events.to_vec();
        self.events_by_kind = EventKind::ALL
            .iter()
            .map(|kind| {
                let thrown = events.iter().filter(|e| e.kind == kind.name()).count();
                (kind.name(), thrown as u64)
            })
            .collect();
        self.passed = self.problems().is_empty();
    }

    /// What went wrong, one phrase each; empty when nothing did.
    pub fn problems(&self) -> Vec<String> {
        let not_back = self
            .events
            .iter()
            .filter(|e| e.back_after_ms.is_none())
            .count();
        [
            (self.disconnects, "disconnects"),
            (self.lost_replies, "lost replies"),
            (self.duplicated_replies, "duplicated replies"),
            (not_back as u64, "events the game was not back from"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// Seconds into the window the Server was told to reload.
    pub at_secs: f64,
    /// Longest time without any reply to any player after the signal.
    pub longest_reply_gap_ms: f64,
    /// Actions sent in the 5 s after the signal.
    pub during_reload: LatencySummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct StormReport {
    pub logins: usize,
    pub at_secs: f64,
    pub over_secs: f64,
    pub succeeded: u64,
    pub failed: u64,
    /// Connect to logged in, for the storm's players.
    pub login_latency: LatencySummary,
    /// The measured players' actions sent while the storm was logging in.
    pub others_latency: LatencySummary,
}

fn latency_line(f: &mut fmt::Formatter<'_>, label: &str, l: &LatencySummary) -> fmt::Result {
    writeln!(
        f,
        "  {label:<22} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
        l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
    )
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}, {} players, {:.1} s measured)",
            self.target, self.mode, self.clients, self.duration_secs
        )?;
        writeln!(
            f,
            "  connections held {}  logged in {}  disconnects {}  lost replies {}  connect failures {}  login failures {}",
            self.connections_held,
            self.logged_in,
            self.disconnects,
            self.lost_replies,
            self.connect_failures,
            self.login_failures
        )?;
        writeln!(
            f,
            "  actions {}  ({:.0} actions/s, {:.0} lines received/s)",
            self.actions, self.actions_per_sec, self.lines_received_per_sec
        )?;
        latency_line(f, "round trip", &self.latency)?;
        latency_line(f, "login", &self.login_latency)?;
        for p in &self.processes {
            writeln!(
                f,
                "  {:<6} pid {:<7} RSS {} -> {} KiB  CPU {:.0}%",
                p.name, p.pid, p.rss_kib_start, p.rss_kib_end, p.cpu_percent
            )?;
        }
        if let Some(kib) = self.rss_per_session_kib {
            writeln!(f, "  memory per session     {kib:.1} KiB")?;
        }
        if let Some(r) = &self.reload {
            writeln!(
                f,
                "  reload at {:.1} s: longest gap without replies {:.0} ms",
                r.at_secs, r.longest_reply_gap_ms
            )?;
            latency_line(f, "sent during reload", &r.during_reload)?;
        }
        if let Some(c) = &self.chaos {
            let kinds: Vec<String> = c
                .events_by_kind
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            writeln!(
                f,
                "  chaos (seed {}, an event every {:.1} s on average): {} events: {}",
                c.seed,
                c.every_secs,
                c.events.len(),
                kinds.join(", ")
            )?;
            for e in &c.events {
                match e.back_after_ms {
                    Some(ms) => writeln!(
                        f,
                        "    {:<6} at {:>6.1} s, back after {ms:.0} ms",
                        e.kind, e.at_secs
                    )?,
                    None => writeln!(f, "    {:<6} at {:>6.1} s, NOT back", e.kind, e.at_secs)?,
                }
            }
            writeln!(
                f,
                "  replies checked {}: received {}  lost {}  late {}  duplicated {}  disconnects {}",
                c.replies_expected,
                c.replies_received,
                c.lost_replies,
                c.late_replies,
                c.duplicated_replies,
                c.disconnects
            )?;
            writeln!(
                f,
                "  longest gap without any reply {:.0} ms  longest single wait {:.0} ms",
                c.longest_gap_ms, c.longest_wait_ms
            )?;
            latency_line(f, "sent after an event", &c.after_events)?;
            for odd in &c.odd_replies {
                let sent = odd
                    .sent_at_secs
                    .map_or("never sent".to_owned(), |s| format!("sent at {s:.3} s"));
                writeln!(
                    f,
                    "    {} at {:.3} s ({sent}): {}",
                    odd.what, odd.at_secs, odd.reply
                )?;
            }
            let problems = c.problems();
            if problems.is_empty() {
                writeln!(f, "  chaos: passed")?;
            } else {
                writeln!(f, "  chaos: FAILED: {}", problems.join(", "))?;
            }
        }
        if let Some(s) = &self.storm {
            writeln!(
                f,
                "  login storm: {} logins at {:.1} s over {:.1} s: {} in, {} failed",
                s.logins, s.at_secs, s.over_secs, s.succeeded, s.failed
            )?;
            latency_line(f, "storm logins", &s.login_latency)?;
            latency_line(f, "others during storm", &s.others_latency)?;
        }
        if let Some(fl) = &self.flood {
            writeln!(
                f,
                "  flood {:?} from {} by {} clients: {} connections, {} closed by the server, \
                 {} lines and {} bytes sent, {} warnings, {} bytes received",
                fl.kind,
                fl.from,
                fl.clients,
                fl.connections,
                fl.closed_by_server,
                fl.lines_sent,
                fl.bytes_sent,
                fl.warnings,
                fl.bytes_received
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for run in [&self.run, &self.echo_baseline].into_iter().flatten() {
            write!(f, "{run}")?;
        }
        if let Some(ratio) = self.echo_ratio() {
            writeln!(
                f,
                "rate as a share of the echo baseline: {:.1}%",
                ratio * 100.0
            )?;
        }
        Ok(())
    }
}

/// The progress line on stderr (hidden for --json and when not a terminal).
pub(super) struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub(super) fn new(visible: bool, duration: Duration) -> Self {
        let bar = if visible {
            ProgressBar::new(duration.as_secs().max(1))
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Self { bar }
    }

    pub(super) fn phase(&self, what: &str) {
        self.bar.println(what);
    }

    pub(super) fn ramp(&self, c: &Counters, clients: usize) {
        self.bar.set_message(format!(
            "connected {}  logged in {}/{clients}  failed {}",
            read(&c.connected),
            read(&c.logged_in),
            read(&c.login_failures) + read(&c.connect_failures)
        ));
        self.bar.tick();
    }

    pub(super) fn measure(&self, c: &Counters, elapsed: Duration) {
        let actions = read(&c.actions);
        self.bar.set_position(elapsed.as_secs());
        self.bar.set_message(format!(
            "connected {}  actions {actions} ({:.0}/s)  lost {}  disconnects {}",
            read(&c.connected),
            super::stats::rate(actions, elapsed),
            read(&c.lost_replies),
            read(&c.disconnects)
        ));
    }

    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos() -> ChaosReport {
        ChaosReport {
            seed: 1,
            every_secs: 10.0,
            events_by_kind: BTreeMap::new(),
            events: Vec::new(),
            disconnects: 0,
            replies_expected: 10,
            replies_received: 10,
            lost_replies: 0,
            late_replies: 0,
            duplicated_replies: 0,
            longest_gap_ms: 0.0,
            longest_wait_ms: 0.0,
            after_events: LatencySummary::default(),
            odd_replies: Vec::new(),
            passed: false,
        }
    }

    fn event(kind: EventKind, back_after_ms: Option<f64>) -> EventRecord {
        EventRecord {
            kind: kind.name(),
            at_secs: 1.0,
            back_after_ms,
        }
    }

    #[test]
    fn a_chaos_run_passes_only_with_nothing_lost_repeated_or_dropped() {
        let mut report = chaos();
        report.set_events(&[
            event(EventKind::Kill, Some(80.0)),
            event(EventKind::Reload, Some(60.0)),
            event(EventKind::Kill, Some(70.0)),
        ]);
        assert!(report.passed, "{:?}", report.problems());
        assert_eq!(
            report.events_by_kind,
            BTreeMap::from([("kill", 2), ("reload", 1), ("upgrade", 0)])
        );
        // Every kind is listed, thrown or not.
        report.set_events(&[]);
        assert_eq!(
            report.events_by_kind,
            BTreeMap::from([("kill", 0), ("reload", 0), ("upgrade", 0)])
        );
        let mut report = chaos();
        report.duplicated_replies = 2;
        report.disconnects = 1;
        report.set_events(&[event(EventKind::Reload, None)]);
        assert!(!report.passed);
        assert_eq!(
            report.problems(),
            [
                "1 disconnects",
                "2 duplicated replies",
                "1 events the game was not back from"
            ]
        );
        let mut report = chaos();
        report.lost_replies = 3;
        report.set_events(&[]);
        assert_eq!(report.problems(), ["3 lost replies"]);
    }
}
