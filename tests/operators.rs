//! What an operator watches, against the real binary: `/metrics` (Prometheus text)
//! and `/healthz` on the Portal's web port and on the Server's own HTTP port.

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
    lurker.send("connect Mona wrong-password");
    lurker.expect("Username and/or password is incorrect.");
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

#[test]
fn the_server_reports_accounts_puppets_failures_and_latencies() {
    let game = Game::start(&[]);
    let mut a = game.connect();
    a.create_and_login("Rhea", PASSWORD);
    let mut b = game.connect();
    b.create_and_login("Rory", PASSWORD);
    b.send("look");
    b.expect("Exits:");
    let mut c = game.connect();
    c.expect("create <username> <password>");
    c.send("connect Rhea not-her-password");
    c.expect("Username and/or password is incorrect.");

    let (status, page) = game.server_http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    for (series, value) in [
        ("gatehouse_server_accounts_online", 2.0),
        ("gatehouse_server_puppets", 2.0),
        ("gatehouse_server_logins_total", 2.0),
        ("gatehouse_server_failed_logins_total", 1.0),
        ("gatehouse_server_portal_connected", 1.0),
        (
            "gatehouse_server_db_query_seconds_count{query=\"authenticate\"}",
            3.0,
        ),
    ] {
        assert_eq!(sample(&page, series), Some(value), "{series}:\n{page}");
    }
    let commands = sample(&page, "gatehouse_server_command_seconds_count").unwrap_or(0.0);
    assert!(commands >= 5.0, "{commands} commands timed:\n{page}");
    let (status, health) = game.server_http_get("/healthz");
    assert!(status.contains("200"), "{status}");

    // `gatehouse status` prints the same figures as a table.
    let out = game.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    let row = |label: &str| {
        table
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{table}"))
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(row("logged in"), "2", "{table}");
    assert_eq!(row("not logged in"), "1", "{table}");
    assert!(
        table.contains("accounts online 2, puppets 2, logins 2, failed logins 1"),
        "{table}"
    );
    let auth = table
        .lines()
        .find(|l| l.contains("database authenticate"))
        .unwrap_or_else(|| panic!("no database line in\n{table}"));
    assert!(
        auth.contains(" ms, p99 ") && auth.ends_with("(3 queries)"),
        "{auth}"
    );
    assert!(
        health.contains("\"server\":\"up\"") && health.contains("\"accounts_online\":2"),
        "{health}"
    );
}

#[test]
fn a_taken_metrics_port_costs_the_metrics_not_the_game() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // Game::start waits for the Server to link up.
    let game = Game::start(&[("GATEHOUSE__SERVER__HTTP_ADDR", addr.as_str())]);
    let mut c = game.connect();
    c.create_and_login("Tara", PASSWORD);
    assert!(
        game.log()
            .contains("no /metrics or /healthz for the Server"),
        "the log does not say why"
    );
    let (status, _) = game.http_get("/metrics");
    assert!(
        status.contains("200"),
        "the Portal's page is unaffected: {status}"
    );
}
