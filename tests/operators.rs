//! What an operator watches, against the real binary: `/metrics` (Prometheus text)
//! and `/healthz` on the Portal's web port.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{wait_for, Game, DEADLINE};

const PASSWORD: &str = "correct-horse-9";

/// The value of the sample `series` (name and labels exactly), if present.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_sessions_by_state_logins_and_traffic() {
    let game = Game::start(&[]);
    let mut players: Vec<_> = ["Mona", "Milo"]
        .iter()
        .map(|name| {
            let mut c = game.connect();
            c.create_and_login(name, PASSWORD);
            c
        })
        .collect();
    let mut lurker = game.connect();
    lurker.expect("create <username> <password>");
    players[0].send("say hello");
    players[1].expect("Mona says, \"hello\"");

    let telnet =
        |state: &str| format!("gatehouse_portal_sessions{{protocol=\"telnet\",state=\"{state}\"}}");
    let page = wait_for("the expected session counts", DEADLINE, || {
        let (status, page) = game.http_get("/metrics");
        assert!(status.contains("200"), "{status}");
        (sample(&page, &telnet("logged_in")) == Some(2.0)
            && sample(&page, &telnet("unauthenticated")) == Some(1.0))
        .then_some(page)
    });
    assert_eq!(
        sample(&page, "gatehouse_portal_logins_total"),
        Some(2.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "gatehouse_portal_server_connected"),
        Some(1.0),
        "{page}"
    );
    assert!(
        sample(&page, "gatehouse_portal_commands_total").unwrap_or(0.0) >= 5.0,
        "{page}"
    );
    assert!(
        sample(&page, "gatehouse_portal_bytes_received_total").unwrap_or(0.0) > 0.0,
        "{page}"
    );
    assert!(
        sample(&page, "gatehouse_portal_bytes_sent_total").unwrap_or(0.0) > 1000.0,
        "{page}"
    );
    assert!(page.trim_end().ends_with("# EOF"), "{page}");

    // A reload is counted, and the logged-in players stay counted through it.
    let out = game.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("the reload to be counted", DEADLINE, || {
        let (_, page) = game.http_get("/metrics");
        (sample(
            &page,
            "gatehouse_portal_server_restarts_total{reason=\"reload\"}",
        ) == Some(1.0)
            && sample(&page, &telnet("logged_in")) == Some(2.0))
        .then_some(())
    });

    drop(lurker);
    wait_for("the lurker to leave the count", DEADLINE, || {
        let (_, page) = game.http_get("/metrics");
        sample(&page, &telnet("unauthenticated"))
            .is_none()
            .then_some(())
    });
    let (status, health) = game.http_get("/healthz");
    assert!(
        status.contains("200") && health.contains("\"logged_in\":2"),
        "{health}"
    );
}
