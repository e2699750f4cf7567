//! Fault injection against the real binary: the Server killed under load, the link
//! cut and restored, a login caught half-way, the database locked, a table it
//! needs taken away for a moment, and its files unable to grow. Each test checks what players would notice: who stays connected,
//! who is logged in as whom, what they are told, and that no account is lost.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use common::{assert_still_logged_in, three_players, wait_for, Client, Game, Proxy, DEADLINE};
use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const PASSWORD: &str = "correct-horse-9";
const SERVER_LOST: &str = "stopped unexpectedly";
const RESTARTED: &str = "Server restarted.";
const CREATE_FAILED: &str = "The account could not be created right now. Please try again later.";
const LOGIN_UNAVAILABLE: &str =
    "The game cannot check your password right now. Please try again later.";

fn database(game: &Game) -> PathBuf {
    game.path().join("server/gatehouse.db")
}

/// A logged-in player typing `look` as fast as answers come, until stopped;
/// answers how many answers it read.
fn busy_player(game: &Game, name: &str) -> (Arc<AtomicBool>, JoinHandle<usize>) {
    let mut client = game.connect();
    client.create_and_login(name, PASSWORD);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let worker = std::thread::spawn(move || {
        let mut answers = 0;
        while !stopping.load(Ordering::SeqCst) {
            client.send("look");
            // A command the dying Server had taken runs on the next one, after
            // "Server restarted."; its answer then counts for the next `look`.
            let answer = client.expect_any(&["Exits:", RESTARTED]);
            answers += usize::from(answer.ends_with("Exits:"));
        }
        answers
    });
    (stop, worker)
}

/// Holds a write transaction on the game's database, as a backup tool or an
/// operator's `sqlite3` shell left mid-transaction would, until dropped.
struct WriteLock(SqliteConnection);

impl WriteLock {
    fn take(game: &Game) -> Self {
        let url = database(game).display().to_string();
        let mut conn = SqliteConnection::establish(&url).unwrap();
        // The game may be writing right now (a login marks the puppet): wait for it.
        conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE")
            .unwrap();
        WriteLock(conn)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("ROLLBACK");
    }
}

#[test]
fn a_server_killed_under_load_keeps_every_player_and_the_account_created_last() {
    // The busy players type as fast as answers come: no command rate limit.
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0")]);
    let mut players = three_players(&game, PASSWORD);
    let load: Vec<_> = ["Dot", "Eve"]
        .iter()
        .map(|name| busy_player(&game, name))
        .collect();

    // An account is created and acknowledged, and the Server dies right after.
    let mut newcomer = game.connect();
    newcomer.expect("create <username> <password>");
    newcomer.send(&format!("create Zed {PASSWORD}"));
    newcomer.expect("A new account 'Zed' was created.");
    let pid = game.server_pid();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");

    for (client, _) in players.iter_mut() {
        client.expect(SERVER_LOST);
        client.expect(RESTARTED);
    }
    wait_for("a new Server pid", DEADLINE, || {
        (game.server_pid() != pid).then_some(())
    });
    assert_still_logged_in(&mut players);

    // The busy players kept going through the restart without losing their link.
    for (stop, worker) in load {
        stop.store(true, Ordering::SeqCst);
        let answers = worker.join().expect("a busy player lost its connection");
        assert!(answers > 0);
    }

    let mut again = game.connect();
    again.login("Zed", PASSWORD);
    newcomer.send("connect Zed wrong-password");
    newcomer.expect("Username and/or password is incorrect.");
}

#[test]
fn a_cut_link_is_restored_and_resynced_without_duplicating_anything() {
    let game = Game::start_portal(&[]);
    let proxy = Proxy::start(&game.link_addr());
    let _server = game.spawn_server(&proxy.addr);
    game.wait_server_connected();
    let mut players = three_players(&game, PASSWORD);
    for (client, _) in players.iter_mut() {
        client.sync();
    }

    proxy.cut();
    for (client, _) in players.iter_mut() {
        client.expect(SERVER_LOST);
    }
    // Typed while the link is down: held by the Portal, run once when it is back.
    players[0].0.send("say typed during the cut");
    proxy.restore();
    for (client, _) in players.iter_mut() {
        client.expect(RESTARTED);
    }
    players[0].0.expect("You say, \"typed during the cut\"");
    for (client, _) in players[1..].iter_mut() {
        client.expect("Ann says, \"typed during the cut\"");
    }
    assert_still_logged_in(&mut players);

    // Nothing ran twice and nobody arrived twice.
    for (client, _) in players.iter_mut() {
        client.send("look");
        let room = client.expect("Exits:");
        let heard = format!("{room}{}", client.sync());
        assert_eq!(heard.matches("typed during the cut").count(), 0, "{heard}");
        assert_eq!(heard.matches("has entered the game").count(), 0, "{heard}");
        let present = heard
            .lines()
            .find(|line| line.starts_with("Characters:"))
            .unwrap_or_default();
        assert_eq!(present.matches(", ").count(), 1, "not two others: {heard}");
    }
    let who = players[0].0.who();
    assert!(who.contains("3 unique accounts logged in."), "{who}");
    for name in ["Ann", "Ben", "Cat"] {
        assert_eq!(who.matches(name).count(), 1, "{name} listed twice: {who}");
    }
}

#[test]
fn a_login_caught_half_way_by_a_crash_runs_once_on_the_next_server_and_nobody_inherits_anything() {
    let game = Game::start(&[("RUST_LOG", "info,gatehouse::actors::server::session=debug")]);
    let mut owner = game.connect();
    owner.create_and_login("Dan", PASSWORD);
    owner.send("quit");
    owner.expect_closed();
    let mut witness = game.connect();
    witness.create_and_login("Wes", PASSWORD);
    let mut leaver = game.connect();
    leaver.create_and_login("Liz", PASSWORD);

    // The password check is under way (held by a write lock) when the Server dies.
    let lock = WriteLock::take(&game);
    let mut halfway = game.connect();
    halfway.expect("create <username> <password>");
    halfway.send(&format!("connect Dan {PASSWORD}"));
    wait_for("the password check to start", DEADLINE, || {
        game.log()
            .contains("checking the password for \"Dan\"")
            .then_some(())
    });
    let pid = game.server_pid();
    kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9");
    drop(lock);

    // A player who logged in before the crash leaves while the Server is down, and
    // a new connection arrives meanwhile: neither may inherit anything.
    witness.expect(SERVER_LOST);
    drop(leaver);
    let mut newcomer = game.connect();
    witness.expect(RESTARTED);
    wait_for("a new Server pid", DEADLINE, || {
        (game.server_pid() != pid).then_some(())
    });

    // The `connect` the dead Server never finished runs on the new one, once.
    halfway.expect(RESTARTED);
    let saw = halfway.expect("You are logged in.") + &halfway.sync();
    assert_eq!(saw.matches("You are logged in.").count(), 1, "{saw}");
    newcomer.send("look");
    newcomer.expect("create <username> <password>");
    let who = witness.who();
    assert!(who.contains("2 unique accounts logged in."), "{who}");
    assert!(who.contains("Dan") && !who.contains("Liz"), "{who}");
}

#[test]
fn while_the_database_is_locked_logins_and_creations_fail_clearly_and_recover() {
    let game = Game::start(&[]);
    let mut player = game.connect();
    player.create_and_login("Ada", PASSWORD);
    let mut bystander = game.connect();
    bystander.create_and_login("Bea", PASSWORD);

    let lock = WriteLock::take(&game);
    let mut late = game.connect();
    late.expect("create <username> <password>");
    late.send(&format!("connect Ada {PASSWORD}"));
    late.expect(LOGIN_UNAVAILABLE);
    late.send(&format!("create Cid {PASSWORD}"));
    late.expect(CREATE_FAILED);
    // Players already in the game carry on.
    bystander.send("say still here");
    player.expect("Bea says, \"still here\"");
    assert!(
        game.log().contains("database is locked"),
        "no log line names it"
    );

    drop(lock);
    late.send(&format!("create Cid {PASSWORD}"));
    late.expect("A new account 'Cid' was created.");
    late.send(&format!("connect Cid {PASSWORD}"));
    late.expect("You are logged in.");
    assert!(bystander.who().contains("3 unique accounts logged in."));
}

#[test]
fn a_login_whose_account_cannot_be_loaded_is_told_so_and_welcomed_once_it_can() {
    let game = Game::start(&[]);
    let mut first = game.connect();
    first.create_and_login("Una", PASSWORD);
    // Her account actor stops with her last session, so the next login loads it anew.
    first.send("quit");
    first.expect_closed();

    // The password check reads `accounts` only; loading the account also needs
    // `characters`, which an operator's migration has taken away for a moment.
    let url = database(&game).display().to_string();
    let mut operator = SqliteConnection::establish(&url).unwrap();
    operator
        .batch_execute(
            "PRAGMA busy_timeout = 10000; ALTER TABLE characters RENAME TO characters_away",
        )
        .unwrap();
    let mut late = game.connect();
    late.expect("create <username> <password>");
    late.send(&format!("connect Una {PASSWORD}"));
    late.expect("The game cannot load your account right now; please try again in a moment.");

    operator
        .batch_execute("ALTER TABLE characters_away RENAME TO characters")
        .unwrap();
    late.expect("You are logged in.");
    late.send("look");
    late.expect("Exits:");
}

/// Lowers (or lifts, with `None`) the size any file of process `pid` may grow to,
/// as a full disk or a quota would.
fn limit_file_size(pid: i32, bytes: Option<u64>) {
    let value = bytes.unwrap_or(libc::RLIM_INFINITY);
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `limit` and writes nothing (old limit pointer is null).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn file_len(path: PathBuf) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_database_that_cannot_grow_refuses_new_accounts_clearly_and_loses_nothing() {
    let mut game = Game::start(&[]);
    let mut player = game.connect();
    player.create_and_login("Ivy", PASSWORD);

    // The Server's files may grow only a little beyond where they are now.
    let db = database(&game);
    let biggest = [
        file_len(db.clone()),
        file_len(db.with_extension("db-wal")),
        file_len(game.path().join("test-output.log")),
    ]
    .into_iter()
    .max()
    .unwrap();
    let server = game.server_pid();
    limit_file_size(server, Some(biggest + 256 * 1024));

    let mut creator = game.connect();
    creator.expect("create <username> <password>");
    let mut created = Vec::new();
    for n in 0..400 {
        let name = format!("Filler{n}");
        creator.send(&format!("create {name} {PASSWORD}"));
        let answer = creator.expect_any(&["was created.", CREATE_FAILED]);
        if answer.contains(CREATE_FAILED) {
            break;
        }
        created.push(name);
    }
    assert!(
        created.len() < 400,
        "the database never filled up ({} accounts)",
        created.len()
    );
    // The full disk costs those writes only: the game goes on.
    player.send("look");
    player.expect("Exits:");
    assert!(game.log().contains("account creation failed"), "not logged");

    limit_file_size(server, None);
    creator.send(&format!("create Late {PASSWORD}"));
    creator.expect("A new account 'Late' was created.");
    created.push("Late".to_owned());

    // Nothing acknowledged was lost, and the file is sound.
    game.stop();
    let url = db.display().to_string();
    let mut conn = SqliteConnection::establish(&url).unwrap();
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        check.first().map(|c| c.integrity_check.as_str()),
        Some("ok")
    );
    drop(conn);
    game.launch();
    for name in [&created[0], created.last().unwrap()] {
        let mut c: Client = game.connect();
        c.login(name, PASSWORD);
    }
}
