//! `gatehouse bench` from the outside: short runs against a real gatehouse
//! (one under `--chaos`, its Server reloaded and killed), against a small
//! telnet MUD with other commands and texts, and against the echo baseline
//! alone. Each asserts that the run completed without errors
//! and did what it was told; no timing is asserted.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{bin, Game};
use serde_json::Value;

/// Runs `gatehouse bench` with `args` and returns its JSON report.
fn bench(args: &[&str]) -> Value {
    let output = Command::new(bin())
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run gatehouse bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Runs `gatehouse bench` against `game`, watching its processes.
fn bench_game(game: &Game, args: &[&str]) -> Value {
    let port = game.telnet_port.to_string();
    let dir = game.path().to_str().expect("utf-8 path").to_owned();
    let mut all = vec!["--port", port.as_str(), "--attach", dir.as_str()];
    all.extend_from_slice(args);
    bench(&all)
}

fn number(report: &Value, path: &str) -> u64 {
    report
        .pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {report:#}"))
}

#[test]
fn a_short_run_against_gatehouse_completes_without_errors() {
    let game = Game::start(&[]);
    let report = bench_game(
        &game,
        &[
            "--clients",
            "20",
            "--duration",
            "3",
            "--ramp",
            "0.5",
            "--pace",
            "100-300",
        ],
    );
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    assert_eq!(number(&report, "/run/logged_in"), 20, "{report:#}");
    assert_eq!(number(&report, "/run/connections_held"), 20, "{report:#}");
    assert!(number(&report, "/run/actions") > 0, "{report:#}");
    assert_eq!(
        number(&report, "/run/latency/count"),
        number(&report, "/run/actions")
    );
    // The processes were found through the game dir and sampled.
    let processes = report["run"]["processes"].as_array().expect("processes");
    let names: Vec<&str> = processes
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["portal", "server"], "{report:#}");
    assert!(processes
        .iter()
        .all(|p| p["rss_kib_end"].as_u64() > Some(0)));
}

#[test]
fn a_reload_during_a_run_loses_no_player_and_no_reply() {
    let game = Game::start(&[]);
    let server_before = game.server_pid();
    let report = bench_game(
        &game,
        &[
            "--clients",
            "10",
            "--duration",
            "4",
            "--ramp",
            "0.5",
            "--pace",
            "100-200",
            "--reload-at",
            "1",
        ],
    );
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    assert_eq!(number(&report, "/run/disconnects"), 0, "{report:#}");
    assert_eq!(number(&report, "/run/lost_replies"), 0, "{report:#}");
    assert!(
        number(&report, "/run/reload/during_reload/count") > 0,
        "{report:#}"
    );
    assert_ne!(
        game.server_pid(),
        server_before,
        "the Server was not reloaded"
    );
}

/// A short `--chaos` run of four players against a spawned game with `mix`;
/// every event of each kind in `kinds` happened and the game came back from
/// each, and no reply was lost, late, repeated or cut off.
fn chaos_run(mix: &str, seed: &str, kinds: &[&str]) {
    // The mean of 1 s makes each event follow the game's return (plus 1 s)
    // closely; the long timeout keeps a slow restart on a busy machine from
    // counting as a loss.
    let report = bench(&[
        "--spawn",
        "--chaos",
        "--chaos-mix",
        mix,
        "--chaos-every",
        "1",
        "--chaos-seed",
        seed,
        "--clients",
        "4",
        "--ramp",
        "0.5",
        "--duration",
        "12",
        "--pace",
        "50-200",
        "--mix",
        "look=20,say=50,who=10,move=20",
        "--timeout",
        "60",
    ]);
    let chaos = &report["run"]["chaos"];
    for kind in kinds {
        assert!(
            number(&report, &format!("/run/chaos/events_by_kind/{kind}")) >= 1,
            "{chaos:#}"
        );
    }
    let events = chaos["events"].as_array().expect("events");
    assert!(
        events.iter().all(|e| e["back_after_ms"].as_f64().is_some()),
        "{chaos:#}"
    );
    assert_eq!(number(&report, "/run/chaos/disconnects"), 0, "{chaos:#}");
    assert_eq!(number(&report, "/run/chaos/lost_replies"), 0, "{chaos:#}");
    assert_eq!(number(&report, "/run/chaos/late_replies"), 0, "{chaos:#}");
    assert_eq!(
        number(&report, "/run/chaos/duplicated_replies"),
        0,
        "{chaos:#}"
    );
    assert_eq!(chaos["passed"], Value::Bool(true), "{chaos:#}");
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    // Every action's marker and every say's echo was checked, and they were
    // sent across the events.
    let expected = number(&report, "/run/chaos/replies_expected");
    assert_eq!(
        number(&report, "/run/chaos/replies_received"),
        expected,
        "{chaos:#}"
    );
    assert!(expected > number(&report, "/run/actions"), "{report:#}");
    assert!(
        number(&report, "/run/chaos/after_events/count") > 0,
        "{chaos:#}"
    );
}

#[test]
fn chaos_reloads_and_kills_lose_and_repeat_no_reply() {
    // Seed 1 throws a kill, then a reload: two events give both kinds.
    chaos_run("reload=1,kill=1", "1", &["reload", "kill"]);
}

#[test]
fn chaos_portal_upgrades_lose_and_repeat_no_reply() {
    chaos_run("upgrade=1", "1", &["upgrade"]);
}

/// What the small MUD saw, to prove the bench spoke its language.
#[derive(Default)]
struct Seen {
    logins: AtomicU64,
    moves: AtomicU64,
    chats: AtomicU64,
    refused_ttype: AtomicU64,
}

/// A tiny telnet MUD with its own vocabulary: `register`/`login`, `l`,
/// `chat`, `players`, two rooms joined by east/west. It asks for TTYPE the
/// way real servers do and expects a plain client to refuse.
fn small_mud(seen: Arc<Seen>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || play(stream, &seen));
        }
    });
    port
}

fn play(mut stream: TcpStream, seen: &Seen) {
    let room = |garden: bool| {
        if garden {
            "The Garden\r\nFlowers everywhere.\r\nObvious exits: west\r\n"
        } else {
            "The Hall\r\nA draughty hall.\r\nObvious exits: east\r\n"
        }
    };
    // IAC DO TTYPE, then the greeting.
    let _ = stream.write_all(b"\xff\xfd\x18Welcome to Small MUD! Type: register or login\r\n");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut garden = false;
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if raw.windows(3).any(|w| w == b"\xff\xfc\x18") {
            seen.refused_ttype.fetch_add(1, Ordering::Relaxed);
        }
        let line: String = String::from_utf8_lossy(&raw)
            .chars()
            .filter(|c| !c.is_control() && *c != '\u{fffd}')
            .collect();
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let reply = match verb {
            "register" => "Registered. Now login.\r\n".to_owned(),
            "login" => {
                seen.logins.fetch_add(1, Ordering::Relaxed);
                format!("Hello!\r\n{}", room(garden))
            }
            "l" => room(garden).to_owned(),
            "east" | "west" => {
                seen.moves.fetch_add(1, Ordering::Relaxed);
                garden = verb == "east";
                room(garden).to_owned()
            }
            "chat" => {
                seen.chats.fetch_add(1, Ordering::Relaxed);
                format!("You chat: {rest}\r\n")
            }
            "players" => "3 players online.\r\n".to_owned(),
            _ => "Huh?\r\n".to_owned(),
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn another_mud_is_measured_with_its_own_commands() {
    let seen = Arc::new(Seen::default());
    let port = small_mud(Arc::clone(&seen)).to_string();
    let report = bench(&[
        "--port",
        &port,
        "--clients",
        "5",
        "--duration",
        "2",
        "--ramp",
        "0.2",
        "--pace",
        "20-40",
        "--greeting",
        "Type: register",
        "--create-command",
        "register {name} {password}",
        "--create-ok",
        "Registered",
        "--connect-command",
        "login {name} {password}",
        "--login-ok",
        "Obvious exits:",
        "--look-command",
        "l",
        "--look-ok",
        "Obvious exits:",
        "--say-command",
        "chat {text}",
        "--say-ok",
        "You chat",
        "--who-command",
        "players",
        "--who-ok",
        "players online",
        "--move-ok",
        "Obvious exits:",
        "--exits-prefix",
        "Obvious exits:",
    ]);
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    assert_eq!(number(&report, "/run/logged_in"), 5, "{report:#}");
    assert!(number(&report, "/run/actions") > 0, "{report:#}");
    // Nothing was found to watch, so nothing is reported about processes.
    assert_eq!(report["run"]["processes"], Value::Array(vec![]));
    assert_eq!(seen.logins.load(Ordering::Relaxed), 5);
    assert_eq!(seen.refused_ttype.load(Ordering::Relaxed), 5);
    assert!(seen.moves.load(Ordering::Relaxed) > 0, "no exit was taken");
    assert!(seen.chats.load(Ordering::Relaxed) > 0, "nobody chatted");
}

#[test]
fn the_echo_baseline_runs_alone() {
    let report = bench(&[
        "--echo-baseline",
        "--saturate",
        "--clients",
        "4",
        "--duration",
        "1",
        "--ramp",
        "0",
    ]);
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    assert_eq!(report["run"], Value::Null);
    assert!(number(&report, "/echo_baseline/actions") > 0, "{report:#}");
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let output = Command::new(bin())
        .args(["bench", "--port", "1", "--mix", "dance=3"])
        .output()
        .expect("run gatehouse bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown action 'dance'"), "{stderr}");
    let output = Command::new(bin())
        .args(["bench", "--clients", "3"])
        .output()
        .expect("run gatehouse bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--port"), "{stderr}");
    // Chaos follows the Server through a game dir; a bare port has none.
    let output = Command::new(bin())
        .args(["bench", "--port", "1", "--chaos"])
        .output()
        .expect("run gatehouse bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--spawn or --attach"), "{stderr}");
    let output = Command::new(bin())
        .args(["bench", "--spawn", "--chaos", "--chaos-mix", "restart=1"])
        .output()
        .expect("run gatehouse bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown event 'restart'"), "{stderr}");
}

#[test]
fn a_command_flood_from_another_address_is_cut_while_the_players_carry_on() {
    // The shipped limits, spelled out; the players each come from their own
    // address, the flood from one more.
    let report = bench(&[
        "--spawn",
        "--set",
        "portal.max_connection_rate=2",
        "--set",
        "portal.max_command_rate=80",
        "--spread-sources",
        "--clients",
        "10",
        "--ramp",
        "1",
        "--duration",
        "3",
        "--pace",
        "100-300",
        "--flood",
        "commands",
        "--flood-clients",
        "3",
    ]);
    assert_eq!(number(&report, "/errors"), 0, "{report:#}");
    assert_eq!(number(&report, "/run/logged_in"), 10, "{report:#}");
    assert_eq!(report["run"]["flood"]["kind"], "commands", "{report:#}");
    assert_eq!(report["run"]["flood"]["from"], "127.0.0.2", "{report:#}");
    assert!(
        number(&report, "/run/flood/lines_sent") > 1000,
        "{report:#}"
    );
    assert!(number(&report, "/run/flood/warnings") > 0, "{report:#}");
}
