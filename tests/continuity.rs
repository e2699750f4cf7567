//! Not one line lost: what players type while the Server dies or reloads runs
//! exactly once afterwards, and what it makes the game say reaches everyone who
//! should hear it. Each test counts every answer a player receives.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{three_players, wait_for, Game, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const PASSWORD: &str = "correct-horse-9";
const RESTARTED: &str = "Server restarted.";

/// The game's answer to an unknown command: one per line typed.
fn unknown(word: &str) -> String {
    format!("Command '{word}' is not available.")
}

/// How often `needle` occurs in `text`.
fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

fn assert_once(text: &str, needle: &str, who: &str) {
    assert_eq!(
        count(text, needle),
        1,
        "{who} should see {needle:?} exactly once; got {text:?}"
    );
}

/// Two players in Limbo on a Portal whose Server the test starts and kills
/// itself, so that it can kill it twenty times in a row without the Portal's
/// crash backoff (tested elsewhere) slowing the restarts down.
#[test]
fn lines_in_flight_when_the_server_dies_run_exactly_once_after_the_restart() {
    let game = Game::start_portal(&[("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0")]);
    let link = game.link_addr();
    let mut server = game.spawn_server(&link);
    game.wait_server_connected();
    let mut ann = game.connect();
    ann.create_and_login("Ann", PASSWORD);
    let mut ben = game.connect();
    ben.create_and_login("Ben", PASSWORD);
    ann.sync();

    for round in 0..20 {
        // A newcomer's `create` is hashing its password when the Server dies.
        let mut newcomer = game.connect();
        newcomer.expect("create <username> <password>");
        let name = format!("New{round}");
        newcomer.send(&format!("create {name} {PASSWORD}"));
        let before: Vec<String> = (0..3).map(|i| format!("probe-{round}-b{i}")).collect();
        for word in &before {
            ann.send(word);
        }
        ben.send(&format!("say before {round}"));

        kill(Pid::from_raw(server.0.id() as i32), Signal::SIGKILL).expect("kill -9");
        server.0.wait().expect("reap the killed Server");

        let after: Vec<String> = (0..3).map(|i| format!("probe-{round}-a{i}")).collect();
        for word in &after {
            ann.send(word);
        }
        ben.send(&format!("say after {round}"));
        server = game.spawn_server(&link);

        let heard_before = format!("Ben says, \"before {round}\"");
        let heard_after = format!("Ben says, \"after {round}\"");
        let said_before = format!("You say, \"before {round}\"");
        let said_after = format!("You say, \"after {round}\"");
        let mut ann_saw = {
            let answers: Vec<String> = before.iter().chain(&after).map(|w| unknown(w)).collect();
            let mut wanted: Vec<&str> = answers.iter().map(String::as_str).collect();
            wanted.extend([heard_before.as_str(), heard_after.as_str()]);
            ann.expect_all(&wanted)
        };
        let mut ben_saw = ben.expect_all(&[&said_before, &said_after]);
        let mut newcomer_saw =
            newcomer.expect_any(&["was created", "there is already an account with that name"]);
        // Everything the Server would send for these lines has arrived once each
        // player's own next command is answered: Ben's first, so that his
        // speech reaches Ann before her marker's answer.
        ben_saw += &ben.sync();
        ann_saw += &ann.sync();
        newcomer_saw += &newcomer.sync();

        for word in before.iter().chain(&after) {
            assert_once(&ann_saw, &unknown(word), "Ann");
        }
        assert_once(&ann_saw, &heard_before, "Ann");
        assert_once(&ann_saw, &heard_after, "Ann");
        assert_once(&ben_saw, &said_before, "Ben");
        assert_once(&ben_saw, &said_after, "Ben");
        assert_eq!(
            count(&newcomer_saw, "was created")
                + count(&newcomer_saw, "there is already an account with that name"),
            1,
            "round {round}: the create must be answered exactly once; got {newcomer_saw:?}"
        );
        // The account exists, whichever answer the newcomer got.
        newcomer.send(&format!("connect {name} {PASSWORD}"));
        newcomer.expect("You are logged in.");
    }
}

/// A `say` typed the instant a reload begins waits for the new Server, and
/// everyone in the room hears it once, not only the speaker.
#[test]
fn a_say_typed_as_a_reload_begins_is_heard_by_the_whole_room() {
    let game = Game::start(&[]);
    let mut players = three_players(&game, PASSWORD);
    let portal_pid: i32 = std::fs::read_to_string(game.path().join("run/portal.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for round in 0..10 {
        let old = game.server_pid();
        kill(Pid::from_raw(portal_pid), Signal::SIGHUP).expect("SIGHUP");
        let speaker = round % players.len();
        // The line reaches the Portal after the reload began: it waits for
        // the new Server.
        players[speaker]
            .0
            .expect("Server restarting, please wait ...");
        players[speaker].0.send(&format!("say reload {round}"));
        let name = ["Ann", "Ben", "Cat"][speaker];
        for (i, (client, _)) in players.iter_mut().enumerate() {
            let line = if i == speaker {
                format!("You say, \"reload {round}\"")
            } else {
                format!("{name} says, \"reload {round}\"")
            };
            let saw = client.expect_all(&[RESTARTED, &line]) + &client.sync();
            assert_once(&saw, &line, ["Ann", "Ben", "Cat"][i]);
        }
        wait_for("the new Server", DEADLINE, || {
            (game.server_pid() != old).then_some(())
        });
    }
}
