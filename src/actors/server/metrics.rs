//! The Server's figures for operators: `/metrics` (Prometheus text, prometheus-client)
//! and `/healthz` on `server.http_addr`, and the counters and histograms the Server's
//! actors and database threads keep for them.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the database histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// What the query did (`authenticate`, `create_account`, ...).
    pub query: String,
}

/// The session registry as the handler sees it when `/metrics` is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerSnapshot {
    pub portal_connected: bool,
    pub sessions: i64,
    pub accounts_online: i64,
    pub puppets: i64,
}

/// Every figure the Server exports.
pub struct ServerMetrics {
    registry: Registry,
    pub logins: Counter,
    pub failed_logins: Counter,
    /// From a command's arrival over the link until the actor that owns it has run
    /// it (or handed it on to the world).
    pub command_seconds: Histogram,
    db_query_seconds: Family<QueryLabels, Histogram>,
    db_write_retries: Family<QueryLabels, Counter>,
    portal_connected: Gauge,
    sessions: Gauge,
    accounts_online: Gauge,
    puppets: Gauge,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

/// 10 µs to about 10 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 21))
}

impl ServerMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("gatehouse_server");
        let db_query_seconds: Family<QueryLabels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        let metrics = Self {
            logins: Counter::default(),
            failed_logins: Counter::default(),
            command_seconds: latency_histogram(),
            db_query_seconds,
            db_write_retries: Family::default(),
            portal_connected: Gauge::default(),
            sessions: Gauge::default(),
            accounts_online: Gauge::default(),
            puppets: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "portal_connected",
            "1 while a Portal is connected over the link",
            metrics.portal_connected.clone(),
        );
        registry.register(
            "sessions",
            "Sessions the Server knows, logged in or not",
            metrics.sessions.clone(),
        );
        registry.register(
            "accounts_online",
            "Accounts with at least one session logged in",
            metrics.accounts_online.clone(),
        );
        registry.register(
            "puppets",
            "Characters being played",
            metrics.puppets.clone(),
        );
        registry.register("logins", "Successful logins", metrics.logins.clone());
        registry.register(
            "failed_logins",
            "Logins refused: wrong name or password, or throttled",
            metrics.failed_logins.clone(),
        );
        registry.register(
            "command_seconds",
            "Command latency on the Server: arrival over the link to the command run",
            metrics.command_seconds.clone(),
        );
        registry.register(
            "db_query_seconds",
            "Database work per query, password hashing included",
            metrics.db_query_seconds.clone(),
        );
        registry.register(
            "db_write_retries",
            "Writes tried again after a transient database error (busy, locked, connection lost)",
            metrics.db_write_retries.clone(),
        );
        Arc::new(Self {
            registry,
            ..metrics
        })
    }

    /// Records how long one database query took.
    pub fn db_query(&self, query: &str, took: Duration) {
        self.db_query_seconds
            .get_or_create(&QueryLabels {
                query: query.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one more attempt of a write that failed for a transient reason.
    pub fn db_write_retry(&self, query: &str) {
        self.db_write_retries
            .get_or_create(&QueryLabels {
                query: query.to_owned(),
            })
            .inc();
    }

    /// The page: the gauges set from `snapshot`, then every figure.
    pub fn render(&self, snapshot: ServerSnapshot) -> String {
        self.portal_connected
            .set(i64::from(snapshot.portal_connected));
        self.sessions.set(snapshot.sessions);
        self.accounts_online.set(snapshot.accounts_online);
        self.puppets.set(snapshot.puppets);
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            log::error!("metrics: cannot encode: {e}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_gauges_counters_and_histograms() {
        let metrics = ServerMetrics::new();
        metrics.logins.inc();
        metrics.failed_logins.inc_by(2);
        metrics.command_seconds.observe(0.000_5);
        metrics.db_query("authenticate", Duration::from_millis(30));
        metrics.db_write_retry("save_characters");
        let page = metrics.render(ServerSnapshot {
            portal_connected: true,
            sessions: 3,
            accounts_online: 2,
            puppets: 2,
        });
        for line in [
            "gatehouse_server_accounts_online 2",
            "gatehouse_server_puppets 2",
            "gatehouse_server_logins_total 1",
            "gatehouse_server_failed_logins_total 2",
            "gatehouse_server_command_seconds_count 1",
            "gatehouse_server_db_query_seconds_count{query=\"authenticate\"} 1",
            "gatehouse_server_portal_connected 1",
            "gatehouse_server_db_write_retries_total{query=\"save_characters\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
        }
    }
}
