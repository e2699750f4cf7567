//! What `gatehouse status` prints: whether Portal and Server run (from the game dir's
//! `run/` files), then the figures both processes serve on `/metrics`, as a table.
//!
//! The figures are read over HTTP from this machine (the Portal's web port from
//! `run/ports.toml`, the Server's from `run/server-http.txt`) and parsed from the
//! Prometheus text format; a process that does not answer is reported as such.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::control::{GameDir, PORTAL_PID_FILE, SERVER_HTTP_FILE, SERVER_PID_FILE};

/// How long each scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One page of samples: series (name and labels, as written) to value.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Samples(BTreeMap<String, f64>);

impl Samples {
    /// Parses Prometheus text; comments and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((series, value)) = line.rsplit_once(' ') {
                if let Ok(value) = value.parse::<f64>() {
                    samples.insert(series.to_owned(), value);
                }
            }
        }
        Self(samples)
    }

    pub fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// The `q` quantile (0..1) of histogram `name`, as the upper bound of the bucket
    /// it falls in; `None` without observations.
    pub fn quantile(&self, name: &str, q: f64) -> Option<f64> {
        self.quantile_where(name, &[], q)
    }

    /// As [`Samples::quantile`], for the series whose other labels are `labels`.
    pub fn quantile_where(&self, name: &str, labels: &[(&str, &str)], q: f64) -> Option<f64> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(series, count)| {
                let mut pairs = parse_labels(series.strip_prefix(&prefix)?.strip_suffix('}')?);
                let le = pairs.remove("le")?;
                let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
                (pairs == wanted).then_some(())?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= q * total)
            .map(|(bound, _)| *bound)
    }
}

/// `a="x",b="y"` as a map (label values here never hold a comma or a quote).
fn parse_labels(text: &str) -> BTreeMap<&str, &str> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key, value.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect()
}

/// GETs `/metrics` from `addr`.
fn scrape(addr: &str) -> Option<Samples> {
    let addr = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.")
        .then_some(())
        .filter(|()| head.lines().next().is_some_and(|l| l.contains(" 200 ")))?;
    Some(Samples::parse(body))
}

fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s.is_finite() => format!("{:.2} ms", s * 1000.0),
        Some(_) => "> 10 s".to_owned(),
        None => "-".to_owned(),
    }
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

const PROTOCOLS: [&str; 3] = ["telnet", "telnet/ssl", "websocket"];
const STATES: [(&str, &str); 4] = [
    ("logged_in", "logged in"),
    ("unauthenticated", "not logged in"),
    ("queued", "waiting to connect"),
    ("detached", "detached (web resume)"),
];

/// The Portal's table: sessions by state and protocol, then its counters.
pub fn portal_table(s: &Samples) -> String {
    let mut out = String::new();
    let _ = write!(out, "  {:<22}", "sessions");
    for p in PROTOCOLS {
        let _ = write!(out, "{p:>12}");
    }
    let _ = writeln!(out, "{:>8}", "total");
    for (state, label) in STATES {
        let _ = write!(out, "  {label:<22}");
        let mut total = 0.0;
        for p in PROTOCOLS {
            let n = s.get(&format!(
                "gatehouse_portal_sessions{{protocol=\"{p}\",state=\"{state}\"}}"
            ));
            total += n;
            let _ = write!(out, "{n:>12}");
        }
        let _ = writeln!(out, "{total:>8}");
    }
    let _ = writeln!(
        out,
        "  Portal: logins {}, commands {}, received {}, sent {}, Server restarts {} (reload) {} (crash), input queue {}, connection queue {}",
        s.get("gatehouse_portal_logins_total"),
        s.get("gatehouse_portal_commands_total"),
        kib(s.get("gatehouse_portal_bytes_received_total")),
        kib(s.get("gatehouse_portal_bytes_sent_total")),
        s.get("gatehouse_portal_server_restarts_total{reason=\"reload\"}"),
        s.get("gatehouse_portal_server_restarts_total{reason=\"crash\"}"),
        s.get("gatehouse_portal_input_queue"),
        s.get("gatehouse_portal_connection_queue"),
    );
    out
}

/// The Server's lines: who is on, logins, and its latencies.
pub fn server_table(s: &Samples) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  Server: accounts online {}, puppets {}, logins {}, failed logins {}",
        s.get("gatehouse_server_accounts_online"),
        s.get("gatehouse_server_puppets"),
        s.get("gatehouse_server_logins_total"),
        s.get("gatehouse_server_failed_logins_total"),
    );
    let name = "gatehouse_server_command_seconds";
    let _ = writeln!(
        out,
        "  command latency: p50 {}, p99 {} ({} commands)",
        millis(s.quantile(name, 0.5)),
        millis(s.quantile(name, 0.99)),
        s.get(&format!("{name}_count")),
    );
    let name = "gatehouse_server_db_query_seconds";
    let count_prefix = format!("{name}_count{{query=\"");
    for (series, count) in &s.0 {
        let Some(query) = series
            .strip_prefix(&count_prefix)
            .and_then(|rest| rest.strip_suffix("\"}"))
        else {
            continue;
        };
        let labels = [("query", query)];
        let _ = writeln!(
            out,
            "  database {query:<18} p50 {}, p99 {} ({count} queries)",
            millis(s.quantile_where(name, &labels, 0.5)),
            millis(s.quantile_where(name, &labels, 0.99)),
        );
    }
    out
}

/// Everything `gatehouse status` shows.
/// Milliseconds since the Unix epoch as a UTC date and time, to the second.
fn utc(millis: u64) -> String {
    i64::try_from(millis / 1000)
        .ok()
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map_or_else(|| millis.to_string(), |t| t.to_string())
}

pub fn render(game: &GameDir) -> String {
    let portal = game.live_pid(PORTAL_PID_FILE);
    let server = game.live_pid(SERVER_PID_FILE);
    let mut out = String::new();
    match portal {
        Some(pid) => {
            let _ = writeln!(out, "Portal: running (pid {pid})");
            if let Some(status) = game.read_status().filter(|s| !s.version.is_empty()) {
                let _ = writeln!(
                    out,
                    "  version {}, started {}{}",
                    status.version,
                    utc(status.started),
                    status
                        .upgraded
                        .map(|at| format!(", binary replaced {}", utc(at)))
                        .unwrap_or_default()
                );
                if let Some(why) = &status.upgrade_error {
                    let _ = writeln!(out, "  last upgrade refused: {why}");
                }
            }
        }
        None => {
            let _ = writeln!(out, "Portal: not running");
        }
    }
    match (server, game.read_status()) {
        (Some(pid), Some(status)) if status.server_connected => {
            let _ = writeln!(out, "Server: running (pid {pid}), connected to the Portal");
        }
        (Some(pid), _) => {
            let _ = writeln!(out, "Server: running (pid {pid}), not connected");
        }
        (None, _) => {
            let _ = writeln!(out, "Server: not running");
        }
    }
    if let (Some(_), Some(status)) = (portal, game.read_status()) {
        let _ = writeln!(
            out,
            "Sessions: {} ({} logged in, {} waiting to connect)",
            status.sessions, status.logged_in, status.queued_connections
        );
    }
    if portal.is_some() {
        let web = game.read_ports().map(|p| p.web).unwrap_or(0);
        match scrape(&format!("127.0.0.1:{web}")) {
            Some(samples) => {
                let _ = write!(out, "\n{}", portal_table(&samples));
            }
            None => {
                let _ = writeln!(out, "\n  Portal: /metrics on port {web} did not answer");
            }
        }
    }
    if server.is_some() {
        let addr = std::fs::read_to_string(game.run_file(SERVER_HTTP_FILE)).unwrap_or_default();
        match scrape(addr.trim()) {
            Some(samples) => out.push_str(&server_table(&samples)),
            None => {
                let _ = writeln!(
                    out,
                    "  Server: no /metrics (server.http_addr off or not answering)"
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP x\n\
        gatehouse_portal_sessions{protocol=\"telnet\",state=\"logged_in\"} 2\n\
        gatehouse_portal_sessions{protocol=\"websocket\",state=\"logged_in\"} 1\n\
        gatehouse_portal_logins_total 3\n\
        gatehouse_server_command_seconds_bucket{le=\"0.001\"} 90\n\
        gatehouse_server_command_seconds_bucket{le=\"0.01\"} 99\n\
        gatehouse_server_command_seconds_bucket{le=\"+Inf\"} 100\n\
        gatehouse_server_command_seconds_count 100\n\
        gatehouse_server_db_query_seconds_bucket{le=\"0.05\",query=\"authenticate\"} 4\n\
        gatehouse_server_db_query_seconds_bucket{le=\"+Inf\",query=\"authenticate\"} 4\n\
        gatehouse_server_db_query_seconds_count{query=\"authenticate\"} 4\n\
        # EOF\n";

    #[test]
    fn samples_and_quantiles_come_from_the_text_format() {
        let s = Samples::parse(PAGE);
        assert_eq!(s.get("gatehouse_portal_logins_total"), 3.0);
        assert_eq!(
            s.quantile("gatehouse_server_command_seconds", 0.5),
            Some(0.001)
        );
        assert_eq!(
            s.quantile("gatehouse_server_command_seconds", 0.99),
            Some(0.01)
        );
        assert_eq!(
            s.quantile_where(
                "gatehouse_server_db_query_seconds",
                &[("query", "authenticate")],
                0.5
            ),
            Some(0.05)
        );
        assert_eq!(s.quantile("nothing", 0.5), None);
    }

    #[test]
    fn the_server_table_has_a_line_per_query_kind() {
        let table = server_table(&Samples::parse(PAGE));
        assert!(
            table.contains("database authenticate       p50 50.00 ms, p99 50.00 ms (4 queries)"),
            "{table}"
        );
        assert!(
            table.contains("p50 1.00 ms, p99 10.00 ms (100 commands)"),
            "{table}"
        );
    }

    #[test]
    fn the_portal_table_has_a_row_per_state_and_a_total() {
        let table = portal_table(&Samples::parse(PAGE));
        let logged_in = table.lines().find(|l| l.contains("logged in")).unwrap();
        assert!(logged_in.ends_with("  3"), "{table}");
        assert!(table.contains("logins 3"), "{table}");
    }
}
