//! The Portal's figures for operators: `/metrics` in Prometheus text format on the web
//! port (prometheus-client), and the counters the sessions and the session handler
//! keep for it.
//!
//! Counters are bumped where things happen (a read, a write, a login, a restart);
//! gauges that describe the session registry are set from a [`RegistrySnapshot`] the
//! handler takes when the page is asked for, so nothing is kept twice.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the session gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// `telnet`, `telnet/ssl` or `websocket`.
    pub protocol: String,
    /// `queued`, `unauthenticated`, `logged_in` or `detached`.
    pub state: String,
}

/// Labels of the Server restart counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    /// `reload` (asked for) or `crash` (the Server went away by itself).
    pub reason: String,
}

/// The session registry as the handler sees it when `/metrics` is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrySnapshot {
    /// Sessions by protocol and state.
    pub sessions: Vec<(SessionLabels, i64)>,
    pub server_connected: bool,
    /// Connections waiting to be let in.
    pub connection_queue: i64,
    /// Input lines held for the Server (while it restarts).
    pub input_queue: i64,
}

/// Every figure the Portal exports.
pub struct PortalMetrics {
    registry: Registry,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub commands: Counter,
    pub logins: Counter,
    pub server_restarts: Family<RestartLabels, Counter>,
    sessions: Family<SessionLabels, Gauge>,
    server_connected: Gauge,
    connection_queue: Gauge,
    input_queue: Gauge,
}

impl std::fmt::Debug for PortalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalMetrics").finish_non_exhaustive()
    }
}

impl PortalMetrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("gatehouse_portal");
        let metrics = Self {
            bytes_received: Counter::default(),
            bytes_sent: Counter::default(),
            commands: Counter::default(),
            logins: Counter::default(),
            server_restarts: Family::default(),
            sessions: Family::default(),
            server_connected: Gauge::default(),
            connection_queue: Gauge::default(),
            input_queue: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions",
            "Sessions by protocol and state",
            metrics.sessions.clone(),
        );
        registry.register("logins", "Sessions that logged in", metrics.logins.clone());
        registry.register(
            "commands",
            "Input lines and OOB calls accepted from players",
            metrics.commands.clone(),
        );
        registry.register(
            "bytes_received",
            "Bytes read from clients",
            metrics.bytes_received.clone(),
        );
        registry.register(
            "bytes_sent",
            "Bytes written to clients",
            metrics.bytes_sent.clone(),
        );
        registry.register(
            "server_connected",
            "1 while a Server is connected over the link",
            metrics.server_connected.clone(),
        );
        registry.register(
            "server_restarts",
            "Times a Server reconnected after a reload or a crash",
            metrics.server_restarts.clone(),
        );
        registry.register(
            "connection_queue",
            "Connections waiting to be let in (max_connection_rate)",
            metrics.connection_queue.clone(),
        );
        registry.register(
            "input_queue",
            "Input lines held while the Server is away",
            metrics.input_queue.clone(),
        );
        Arc::new(Self {
            registry,
            ..metrics
        })
    }

    /// The page: the registry's gauges set from `snapshot`, then every figure.
    pub fn render(&self, snapshot: &RegistrySnapshot) -> String {
        self.sessions.clear();
        for (labels, count) in &snapshot.sessions {
            self.sessions.get_or_create(labels).set(*count);
        }
        self.server_connected
            .set(i64::from(snapshot.server_connected));
        self.connection_queue.set(snapshot.connection_queue);
        self.input_queue.set(snapshot.input_queue);
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            log::error!("metrics: cannot encode: {e}");
        }
        text
    }

    /// Counts one Server (re)connecting after a reload or a crash.
    pub fn server_restarted(&self, reload: bool) {
        let reason = if reload { "reload" } else { "crash" };
        self.server_restarts
            .get_or_create(&RestartLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_prometheus_text_with_every_figure() {
        let metrics = PortalMetrics::new();
        metrics.bytes_received.inc_by(100);
        metrics.logins.inc();
        metrics.server_restarted(true);
        let snapshot = RegistrySnapshot {
            sessions: vec![(
                SessionLabels {
                    protocol: "telnet".into(),
                    state: "logged_in".into(),
                },
                3,
            )],
            server_connected: true,
            connection_queue: 2,
            input_queue: 0,
        };
        let page = metrics.render(&snapshot);
        for line in [
            "gatehouse_portal_sessions{protocol=\"telnet\",state=\"logged_in\"} 3",
            "gatehouse_portal_bytes_received_total 100",
            "gatehouse_portal_logins_total 1",
            "gatehouse_portal_server_restarts_total{reason=\"reload\"} 1",
            "gatehouse_portal_server_connected 1",
            "gatehouse_portal_connection_queue 2",
            "# EOF",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing:\n{page}");
        }
        // A state that emptied is gone from the next page.
        let page = metrics.render(&RegistrySnapshot::default());
        assert!(!page.contains("state=\"logged_in\""), "{page}");
    }
}
