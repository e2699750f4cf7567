//! The game on each database backend, against the real binary: SQLite always, and
//! PostgreSQL too when `GATEHOUSE_TEST_POSTGRES_URL` names a server (CI sets it).
//! `gatehouse migrate`, `account create`, a game's accounts and characters across a
//! full stop and start, and a database that cannot be reached.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use common::Game;

const PASSWORD: &str = "correct-horse-9";

/// A PostgreSQL database made for one test, dropped with it.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(admin: &str, tag: &str) -> Self {
        let name = format!("gatehouse_systest_{tag}_{}", std::process::id());
        let mut conn = PgConnection::establish(admin).expect("the PostgreSQL server");
        // Two statements: a multi-statement string is one implicit transaction.
        conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = admin.split('?').next().unwrap_or(admin);
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        PgDatabase {
            admin: admin.to_owned(),
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin) {
            let _ = conn.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `database.url` for every backend this run can reach, with what keeps it alive.
fn backends(tag: &str) -> Vec<(String, Option<PgDatabase>)> {
    let mut all = vec![("sqlite://server/gatehouse.db".to_owned(), None)];
    if let Ok(admin) = std::env::var("GATEHOUSE_TEST_POSTGRES_URL") {
        if !admin.trim().is_empty() {
            let db = PgDatabase::create(admin.trim(), tag);
            all.push((db.url.clone(), Some(db)));
        }
    }
    all
}

#[test]
fn migrate_accounts_and_characters_survive_a_full_stop_and_start_on_every_backend() {
    for (url, db) in backends("survive") {
        let env = [("GATEHOUSE__DATABASE__URL", url.as_str())];
        let mut game = Game::start(&env);
        // `migrate` against a running game's database: nothing left to apply.
        let out = game.cli_with_env(&["migrate"], &env);
        assert!(out.status.success(), "{url}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("up to date"),
            "{out:?}"
        );
        let out = game.cli_with_env(
            &["account", "create", "Root", "--superuser"],
            &[
                ("GATEHOUSE_PASSWORD", PASSWORD),
                ("GATEHOUSE__DATABASE__URL", &url),
            ],
        );
        assert!(out.status.success(), "{url}: {out:?}");

        let mut c = game.connect();
        c.create_and_login("Dora", PASSWORD);
        c.send("north");
        c.expect("The Gatehouse Courtyard");
        game.stop();
        game.launch();

        let mut again = game.connect();
        again.login("dora", PASSWORD);
        again.send("look");
        let room = again.expect("Exits:");
        assert!(
            room.contains("The Gatehouse Courtyard"),
            "{url}: she stood there: {room}"
        );
        let mut admin = game.connect();
        admin.login("Root", PASSWORD);
        admin.send("announce still here");
        again.expect("Announcement from Root: still here");
        assert!(
            game.log().contains("applied 3 database migration(s)"),
            "{url}"
        );
        if let Some(db) = &db {
            // The rows really are in PostgreSQL.
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn = PgConnection::establish(&db.url).unwrap();
            let count: Count = diesel::RunQueryDsl::get_result(
                diesel::sql_query("SELECT count(*) AS n FROM accounts"),
                &mut conn,
            )
            .unwrap();
            assert_eq!(count.n, 2);
        }
    }
}

#[test]
fn a_database_that_cannot_be_reached_stops_the_server_with_the_reason() {
    // Nothing listens on port 1; the password must not show in the error.
    let env = [(
        "GATEHOUSE__DATABASE__URL",
        "postgres://mud:s3cret@127.0.0.1:1/game",
    )];
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("--game-dir")
        .arg(dir.path())
        .arg("migrate")
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the database postgres://mud:***@127.0.0.1:1/game"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn while_postgresql_is_unreachable_logins_fail_clearly_and_resume_after() {
    // PostgreSQL behind a proxy the test can cut, as a stopped server or a lost
    // network would look to the game. (Without a PostgreSQL server there is
    // nothing to cut: the SQLite counterpart is in tests/faults.rs.)
    let Some((_, Some(db))) = backends("outage").into_iter().nth(1) else {
        return;
    };
    let (host, rest) = db.url.split_once('@').unwrap();
    let (server, name) = rest.split_once('/').unwrap();
    let server = server.replace("localhost", "127.0.0.1");
    let upstream = if server.contains(':') {
        server
    } else {
        format!("{server}:5432")
    };
    let proxy = common::Proxy::start(&upstream);
    let url = format!("{host}@{}/{name}", proxy.addr);
    let game = Game::start(&[("GATEHOUSE__DATABASE__URL", url.as_str())]);
    let mut player = game.connect();
    player.create_and_login("Olga", PASSWORD);

    proxy.cut();
    let mut late = game.connect();
    late.expect("create <username> <password>");
    late.send(&format!("connect Olga {PASSWORD}"));
    late.expect("The game cannot check your password right now. Please try again later.");
    // The player already in carries on.
    player.send("look");
    player.expect("Exits:");

    proxy.restore();
    common::wait_for("logins to work again", common::DEADLINE, || {
        late.send(&format!("connect Olga {PASSWORD}"));
        let answer = late.expect_any(&["You are logged in.", "right now"]);
        answer.contains("You are logged in.").then_some(())
    });
    assert!(
        game.log().contains("login failed in the database"),
        "not logged"
    );
}

/// The rooms' names, read from the game's database.
fn room_names(game: &Game, url: &str) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let query = diesel::sql_query("SELECT name FROM rooms");
    let rows: Vec<Name> = if url.starts_with("postgres") {
        diesel::RunQueryDsl::load(query, &mut PgConnection::establish(url).unwrap()).unwrap()
    } else {
        let path = game.path().join("server/gatehouse.db");
        let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::RunQueryDsl::load(query, &mut conn).unwrap()
    };
    rows.into_iter().map(|row| row.name).collect()
}

/// Sends `look` (or an exit's name) and answers the room the reply shows, and
/// its exits.
fn walk(client: &mut common::Client, command: &str, rooms: &[String]) -> (String, Vec<String>) {
    client.send(command);
    let text = client.expect("Exits:") + &client.expect("\r\n");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let exits_at = lines
        .iter()
        .rposition(|line| line.starts_with("Exits:"))
        .unwrap();
    let room = lines[..exits_at]
        .iter()
        .rev()
        .find(|line| rooms.iter().any(|r| r == *line))
        .unwrap_or_else(|| panic!("no room in {text:?}"));
    let exits = lines[exits_at]["Exits:".len()..]
        .split(',')
        .map(|e| e.trim().to_owned())
        .collect();
    (room.to_string(), exits)
}

/// Players walking as fast as replies come while others log in, then a reload
/// straight after their last step: every login is answered, and after the
/// reload everyone stands where they stood, the last moves included. Before
/// moves were saved in batches, SQLite lost some of them to "database is locked"
/// and stored others out of order, so players came back a few rooms behind.
#[test]
fn a_crowd_walking_flat_out_through_a_reload_stands_where_it_stood_on_every_backend() {
    const WALKERS: usize = 16;
    const MOVES: usize = 60;
    const LOGINS: usize = 8;
    for (url, _db) in backends("crowd") {
        let pool_size = if url.starts_with("postgres") {
            "8"
        } else {
            "32"
        };
        let game = Game::start(&[
            ("GATEHOUSE__DATABASE__URL", url.as_str()),
            // Many database threads, as a busy game configures them.
            ("GATEHOUSE__DATABASE__POOL_SIZE", pool_size),
            ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
            ("GATEHOUSE__PORTAL__MAX_CONNECTION_RATE", "1000"),
        ]);
        let mut walkers: Vec<common::Client> = (0..WALKERS)
            .map(|n| {
                let mut c = game.connect();
                c.create_and_login(&format!("Walker{n}"), PASSWORD);
                c
            })
            .collect();
        let mut creator = game.connect();
        creator.expect("create <username> <password>");
        for n in 0..LOGINS {
            creator.send(&format!("create Late{n} {PASSWORD}"));
            creator.expect("was created");
        }
        let rooms = room_names(&game, &url);

        let walking: Vec<_> = walkers
            .drain(..)
            .enumerate()
            .map(|(n, mut client)| {
                let rooms = rooms.clone();
                std::thread::spawn(move || {
                    let (mut here, mut exits) = walk(&mut client, "look", &rooms);
                    for step in 0..MOVES {
                        let way = exits[(n + step) % exits.len()].clone();
                        (here, exits) = walk(&mut client, &way, &rooms);
                    }
                    (client, here)
                })
            })
            .collect();
        let logins: Vec<_> = (0..LOGINS)
            .map(|n| {
                let mut client = game.connect();
                std::thread::spawn(move || {
                    client.expect("create <username> <password>");
                    client.send(&format!("connect Late{n} {PASSWORD}"));
                    client.expect_any(&["You are logged in.", "Please try again later."])
                })
            })
            .collect();
        for login in logins {
            let answer = login.join().unwrap();
            assert!(answer.ends_with("You are logged in."), "{url}: {answer}");
        }
        let mut stood: Vec<(common::Client, String)> =
            walking.into_iter().map(|w| w.join().unwrap()).collect();

        // At once, while the last moves may not be saved yet.
        let out = game.cli(&["reload"]);
        assert!(out.status.success(), "{out:?}");
        let mut misplaced = Vec::new();
        for (n, (client, here)) in stood.iter_mut().enumerate() {
            client.expect("Server restarted.");
            let (now, _) = walk(client, "look", &rooms);
            if now != *here {
                misplaced.push(format!("Walker{n} stood in {here}, is in {now}"));
            }
        }
        assert!(misplaced.is_empty(), "{url}: {misplaced:#?}");
    }
}
