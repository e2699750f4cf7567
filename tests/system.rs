//! Whole-system tests: the real binary (Portal + Server processes) on free
//! ports in a temp game dir, driven over telnet as a player would.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{assert_still_logged_in, three_players, wait_for, Game, DEADLINE};

const PASSWORD: &str = "correct-horse-9";

#[test]
fn create_connect_and_who_lists_the_account() {
    let game = Game::start(&[]);
    let mut alice = game.connect();
    let screen = alice.expect("create <username> <password>");
    assert!(screen.contains("Welcome to gatehouse!"), "{screen}");
    alice.send(&format!("create Alice \"{PASSWORD}\""));
    let created = alice.expect("was created");
    assert!(!alice.buffer.contains(PASSWORD) && !created.contains(PASSWORD));
    alice.send(&format!("connect alice \"{PASSWORD}\""));
    alice.expect("You are logged in.");
    let who = alice.who();
    assert!(who.contains("Alice"), "{who}");
    assert!(who.contains("1 unique account logged in."), "{who}");
    assert!(!game.log().contains(PASSWORD), "a password reached the log");
}

#[test]
fn no_password_reaches_the_logs_even_at_trace_level() {
    const WRONG: &str = "wrong-guess-4471";
    const NEW: &str = "brand-new-5582";
    let game = Game::start(&[("RUST_LOG", "trace")]);
    let mut c = game.connect();
    c.create_and_login("Ivo", PASSWORD);
    let mut guesser = game.connect();
    guesser.expect("create <username> <password>");
    guesser.send(&format!("connect Ivo {WRONG}"));
    guesser.expect("incorrect.");
    c.send(&format!("password {PASSWORD} = {NEW}"));
    c.expect("Password changed.");
    c.send("quit");
    c.expect_closed();
    let mut again = game.connect();
    again.login("Ivo", NEW);
    let log = game.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not a trace log"
    );
    for secret in [PASSWORD, WRONG, NEW] {
        assert!(!log.contains(secret), "'{secret}' reached the log");
    }
}

#[test]
fn failed_logins_do_not_reveal_whether_the_account_exists() {
    let game = Game::start(&[]);
    let mut c = game.connect();
    c.create_and_login("Bobby", PASSWORD);
    let mut d = game.connect();
    d.expect("create <username> <password>");
    d.send("connect Bobby wrongpassword");
    let wrong = d.expect("incorrect.");
    d.send("connect Nobody wrongpassword");
    let unknown = d.expect("incorrect.");
    let last_line = |s: &str| s.trim().lines().last().unwrap_or_default().to_owned();
    assert_eq!(last_line(&wrong), last_line(&unknown));
    // The failed session is still usable.
    d.send("look");
    d.expect("Welcome to gatehouse!");
}

#[test]
fn mode_0_second_login_kicks_the_first_session() {
    let game = Game::start(&[]);
    let mut first = game.connect();
    first.create_and_login("Carol", PASSWORD);
    let mut second = game.connect();
    second.login("Carol", PASSWORD);
    let last_words = first.expect_closed();
    assert!(
        last_words.contains("Logged in from elsewhere. Disconnecting."),
        "{last_words}"
    );
    second.send("sessions");
    second.expect("Your current session(s):");
    second.expect("telnet");
    let rest = second.who();
    assert!(
        !rest.contains("telnet"),
        "a second session is still listed: {rest}"
    );
}

#[test]
fn reload_keeps_every_player_connected_and_runs_input_typed_meanwhile() {
    // With a link secret: the new Server must authenticate to get the sessions.
    let game = Game::start(&[("GATEHOUSE__PORTAL__LINK_SECRET", "s3cret-link")]);
    let mut players = three_players(&game, PASSWORD);
    let old_pid = game.server_pid();
    let out = game.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    for (client, _) in players.iter_mut() {
        client.expect("Server restarting, please wait");
        // Typed while the Server is away: it must run once it is back.
        client.send("who");
    }
    for (client, _) in players.iter_mut() {
        client.expect("Server restarted.");
        let who = client.expect("logged in.");
        assert!(who.contains("3 unique accounts logged in."), "{who}");
    }
    assert_ne!(
        game.server_pid(),
        old_pid,
        "the Server process was not replaced"
    );
    assert_still_logged_in(&mut players);
}

#[test]
fn accounts_survive_a_full_stop_and_start() {
    let mut game = Game::start(&[]);
    let mut c = game.connect();
    c.create_and_login("Dora", PASSWORD);
    game.stop();
    let last = c.expect_closed();
    assert!(last.contains("SHUT DOWN"), "{last}");
    game.launch();
    let mut again = game.connect();
    again.login("dora", PASSWORD);
    assert!(again.who().contains("Dora"));
}

#[test]
fn daemon_start_status_reload_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gh = |args: &[&str]| {
        std::process::Command::new(common::bin())
            .arg("--game-dir")
            .arg(dir.path())
            .args(args)
            .env("GATEHOUSE__PORTAL__TELNET_PORTS", "[0]")
            .env("GATEHOUSE__PORTAL__WEB_PORT", "0")
            .env("GATEHOUSE__PORTAL__WEBSOCKET_PORT", "0")
            .env("GATEHOUSE__PORTAL__TELNET_INTERFACES", "[\"127.0.0.1\"]")
            .env("GATEHOUSE__PORTAL__LINK_ADDR", "127.0.0.1:0")
            .env("GATEHOUSE__SERVER__HTTP_ADDR", "127.0.0.1:0")
            .output()
            .expect("run")
    };
    let started = gh(&["start"]);
    assert!(started.status.success(), "{started:?}");
    wait_for("the Server", DEADLINE, || {
        let s = String::from_utf8_lossy(&gh(&["status"]).stdout).to_string();
        s.contains("connected to the Portal").then_some(())
    });
    let status = String::from_utf8_lossy(&gh(&["status"]).stdout).to_string();
    assert!(status.contains("Portal: running"), "{status}");
    assert!(status.contains("Sessions: 0"), "{status}");
    assert!(gh(&["reload"]).status.success());
    assert!(dir.path().join("logs/portal.log").exists());
    assert!(dir.path().join("run/portal.pid").exists());
    let stopped = gh(&["stop"]);
    assert!(stopped.status.success(), "{stopped:?}");
    let status = String::from_utf8_lossy(&gh(&["status"]).stdout).to_string();
    assert!(status.contains("Portal: not running"), "{status}");
}

#[test]
fn superuser_reload_from_the_game() {
    let game = Game::start(&[]);
    let out = std::process::Command::new(common::bin())
        .arg("--game-dir")
        .arg(game.path())
        .args(["account", "create", "Admin", "--superuser"])
        .env("GATEHOUSE_PASSWORD", PASSWORD)
        .output()
        .expect("account create");
    assert!(out.status.success(), "{out:?}");
    let mut admin = game.connect();
    admin.login("Admin", PASSWORD);
    let mut player = game.connect();
    player.create_and_login("Pleb", PASSWORD);
    player.send("reload");
    player.expect("Command 'reload' is not available.");
    admin.send("reload");
    admin.expect("Server restarted.");
    player.expect("Server restarted.");
    assert!(admin.who().contains("Pleb"));
}

#[test]
fn overlong_lines_are_refused_and_cost_only_that_line() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_CHAR_LIMIT", "100")]);
    let mut c = game.connect();
    c.create_and_login("Eve", PASSWORD);
    c.send(&"x".repeat(5000));
    c.expect("You entered a string that was too long.");
    assert!(c.who().contains("Eve"));
}

#[test]
fn command_floods_are_cut_with_a_warning() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "5")]);
    let mut c = game.connect();
    c.create_and_login("Fay", PASSWORD);
    let burst: String = (0..50).map(|_| "idle\r\n").collect();
    c.send_raw(burst.as_bytes());
    c.expect("You entered commands too fast. Wait a moment and try again.");
}

#[test]
fn connections_beyond_the_rate_are_queued_not_dropped() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "2")]);
    let mut clients: Vec<_> = (0..4).map(|_| game.connect()).collect();
    clients[3].expect("DoS protection is active. You are queued to connect in");
    for c in &mut clients {
        c.expect("create <username> <password>");
    }
}

#[test]
fn garbage_and_telnet_negotiation_do_not_break_a_session() {
    let game = Game::start(&[]);
    let mut c = game.connect();
    c.expect("create <username> <password>");
    // DO/WILL for unknown options, a stray IAC SB, invalid UTF-8, then a command.
    c.send_raw(&[
        255, 253, 99, 255, 251, 98, 255, 250, 97, 1, 2, 255, 240, 0xC3, 0x28, b'\r', b'\n',
    ]);
    c.send("look");
    c.expect("Welcome to gatehouse!");
}

#[test]
fn a_bad_settings_file_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[portal]\nweb_port = \"four thousand\"\n").expect("write");
    let out = std::process::Command::new(common::bin())
        .arg("--game-dir")
        .arg(dir.path())
        .arg("--settings")
        .arg(&file)
        .arg("run")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web_port"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn idle_sessions_are_disconnected_after_the_idle_timeout() {
    let game = Game::start(&[("GATEHOUSE__SERVER__IDLE_TIMEOUT", "1")]);
    let mut c = game.connect();
    c.expect("create <username> <password>");
    let last = c.expect_closed();
    assert!(
        last.contains("Idle timeout exceeded, disconnecting."),
        "{last}"
    );
}

#[test]
fn a_connection_that_never_logs_in_is_closed_after_the_login_timeout() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__LOGIN_TIMEOUT", "3")]);
    let mut player = game.connect();
    player.create_and_login("Hana", PASSWORD);
    // Busy but never logging in: typing keeps it from idling, not from this.
    let mut lurker = game.connect();
    lurker.expect("create <username> <password>");
    lurker.send("look");
    lurker.expect("create <username> <password>");
    lurker.send("help");
    let last = lurker.expect_closed();
    assert!(
        last.contains("You took too long to log in. Goodbye."),
        "{last}"
    );
    // The player who logged in in time is still there, and so is the game.
    assert!(player.who().contains("1 unique account logged in."));
    assert!(game.log().contains("not logged in after 3 s; closed"));
}

#[test]
fn one_address_may_hold_only_so_many_connections_that_are_not_logged_in() {
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__MAX_UNAUTHENTICATED_PER_SOURCE", "2"),
        ("GATEHOUSE__THROTTLE__EXEMPT_LOOPBACK", "false"),
    ]);
    let mut first = game.connect();
    first.expect("create <username> <password>");
    let mut second = game.connect();
    second.expect("create <username> <password>");
    let mut third = game.connect();
    let refused = third.expect_closed();
    assert!(
        refused.contains("Too many connections from your address are logging in at once."),
        "{refused}"
    );
    // The first two are untouched; once one logs in, there is room again.
    first.send("create Lena correct-horse-9");
    first.expect("was created");
    first.send("connect Lena correct-horse-9");
    first.expect("You are logged in.");
    let mut fourth = game.connect();
    fourth.expect("create <username> <password>");
    second.send("look");
    second.expect("create <username> <password>");
}

#[test]
fn a_player_cannot_fake_a_line_or_a_colour_in_what_others_hear() {
    let game = Game::start(&[]);
    let mut mallory = game.connect();
    mallory.create_and_login("Mallory", PASSWORD);
    let mut victim = game.connect();
    victim.create_and_login("Victor", PASSWORD);
    mallory.send("say hi|/|rServer restarting, please wait ...");
    let heard = victim.expect("please wait ...\"");
    let line = heard.lines().last().unwrap_or_default();
    assert_eq!(
        line,
        "Mallory says, \"hi|/|rServer restarting, please wait ...\""
    );
    assert!(
        !heard.contains('\u{1b}'),
        "a colour code got through: {heard:?}"
    );
}

#[test]
fn the_idle_keepalive_is_never_answered() {
    let game = Game::start(&[]);
    let mut c = game.connect();
    c.create_and_login("Gil", PASSWORD);
    c.send("idle");
    c.send("sessions");
    let reply = c.expect("Your current session(s):");
    assert_eq!(
        reply.trim(),
        "Your current session(s):",
        "idle was answered: {reply}"
    );
}

#[test]
fn a_login_under_way_when_the_reload_starts_is_not_lost() {
    let game = Game::start(&[]);
    let mut c = game.connect();
    c.create_and_login("Hal", PASSWORD);
    c.send("quit");
    c.expect_closed();
    let mut c = game.connect();
    c.expect("create <username> <password>");
    // The password check is still running (or the line is still queued) when
    // the reload begins; either way the player must end up logged in.
    c.send(&format!("connect Hal {PASSWORD}"));
    let out = game.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    c.expect_all(&["You are logged in.", "Server restarted."]);
    let who = c.who();
    assert!(who.contains("Hal"), "{who}");
}

#[test]
fn a_browser_on_the_telnet_port_gets_a_plain_answer_and_is_closed() {
    let game = Game::start(&[]);
    let mut c = game.connect();
    c.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let answer = c.expect_closed();
    assert!(answer.contains("This is a telnet port"), "{answer}");
}
