//! MULTISESSION_MODE 0-3 over real telnet connections: several clients on one
//! account, and who receives which output.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Client, Game};

const PASSWORD: &str = "correct-horse-9";

fn game(mode: u8, max_characters: u32, max_puppets: u32) -> Game {
    Game::start(&[
        ("GATEHOUSE__SERVER__MULTISESSION_MODE", &mode.to_string()),
        (
            "GATEHOUSE__SERVER__MAX_NR_CHARACTERS",
            &max_characters.to_string(),
        ),
        (
            "GATEHOUSE__SERVER__MAX_NR_SIMULTANEOUS_PUPPETS",
            &max_puppets.to_string(),
        ),
    ])
}

/// Everything sent to `c` so far, so counts cover all of it.
fn drain(c: &mut Client) -> String {
    c.sync()
}

fn count(text: &str, line: &str) -> usize {
    text.matches(line).count()
}

#[test]
fn mode_0_a_new_login_takes_the_puppet_and_the_room_sees_arrivals() {
    let game = game(0, 1, 1);
    let mut watcher = game.connect();
    watcher.create_and_login("Wendy", PASSWORD);
    let mut a = game.connect();
    a.create_and_login("Alice", PASSWORD);
    // Both characters start in Limbo: Wendy sees Alice enter.
    let seen = drain(&mut watcher);
    assert_eq!(count(&seen, "Alice has entered the game."), 1, "{seen}");
    a.send("look");
    a.expect("Characters: Wendy");
    a.send("look wendy");
    a.expect("Wendy\r\nThis is a character.");

    let mut b = game.connect();
    b.login("Alice", PASSWORD);
    let last = a.expect_closed();
    assert!(
        last.contains("Logged in from elsewhere. Disconnecting."),
        "{last}"
    );
    b.send("look");
    b.expect("Limbo");
    b.send("say I am back");
    b.expect("You say, \"I am back\"");
    let heard = drain(&mut watcher);
    assert_eq!(count(&heard, "Alice says, \"I am back\""), 1, "{heard}");

    b.send("quit");
    b.expect_closed();
    let left = drain(&mut watcher);
    assert_eq!(count(&left, "Alice has left the game."), 1, "{left}");
}

#[test]
fn mode_1_every_session_shares_the_puppet_and_its_output() {
    let game = game(1, 2, 1);
    let mut a = game.connect();
    a.create_and_login("Bram", PASSWORD);
    let mut b = game.connect();
    b.expect("create <username> <password>");
    b.send(&format!("connect Bram {PASSWORD}"));
    b.expect("Sharing Bram with another of your sessions.");
    b.sync();
    a.expect("Bram is now shared from another of your sessions.");
    a.sync();

    // The reply to `look` typed in one reaches both.
    a.send("look");
    let seen_a = drain(&mut a);
    let seen_b = drain(&mut b);
    assert_eq!(
        count(&seen_a, "Limbo\n") + count(&seen_a, "Limbo\r\n"),
        1,
        "{seen_a}"
    );
    assert_eq!(count(&seen_b, "Limbo\r\n"), 1, "{seen_b}");

    // One puppet per account in mode 1: switching takes every session along.
    b.send("charcreate Other");
    b.expect("Created new character Other.");
    b.send("ic Other");
    b.expect("You become Other.");
    a.expect("You become Other.");
    b.sync();
    a.sync();

    // Speech reaches each session once.
    b.send("say hello");
    let a_heard = drain(&mut a);
    let b_heard = drain(&mut b);
    assert_eq!(count(&a_heard, "You say, \"hello\""), 1, "{a_heard}");
    assert_eq!(count(&b_heard, "You say, \"hello\""), 1, "{b_heard}");

    // And `ooc` in one takes both out of character.
    a.send("ooc");
    a.expect("You go OOC.");
    b.expect("You go OOC.");
}

#[test]
fn mode_2_ic_from_another_session_takes_the_character_and_sends_the_first_ooc() {
    let game = game(2, 3, 2);
    let mut a = game.connect();
    a.create_and_login("Cleo", PASSWORD);
    // Mode 2 never auto-puppets.
    a.send("look");
    a.expect("you are Out-of-Character");
    a.send("charcreate Dido");
    a.expect("Created new character Dido.");
    let mut b = game.connect();
    b.login("Cleo", PASSWORD);

    a.send("ic Cleo");
    a.expect("You become Cleo.");
    b.send("ic Dido");
    b.expect("You become Dido.");
    a.sync();
    b.sync();

    // A message to the account reaches all its sessions.
    a.send(&format!("password {PASSWORD} = another-pass-1"));
    a.expect("Password changed.");
    b.expect("Password changed.");

    b.send("ic Cleo");
    b.expect("Taking over Cleo from another of your sessions.");
    b.expect("You become Cleo.");
    a.expect("Cleo is now acted from another of your sessions.");
    a.send("look");
    a.expect("you are Out-of-Character");
    // Dido was released when b switched, so she left the game.
    b.send("sessions");
    let table = b.expect("Idle");
    let rest = drain(&mut b);
    assert!(
        !(table + &rest).contains("Dido"),
        "Dido should be unpuppeted"
    );
}

#[test]
fn mode_2_reload_restores_both_puppets_to_the_right_sessions() {
    let game = game(2, 3, 2);
    let mut a = game.connect();
    a.create_and_login("Echo", PASSWORD);
    a.send("charcreate Fern");
    a.expect("Created new character Fern.");
    let mut b = game.connect();
    b.login("Echo", PASSWORD);
    a.send("ic Echo");
    a.expect("You become Echo.");
    b.send("ic Fern");
    b.expect("You become Fern.");
    b.send("north");
    b.expect("The Gatehouse Courtyard");
    a.sync();
    b.sync();

    let out = game.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    a.expect("Server restarted.");
    b.expect("Server restarted.");

    // Each session still plays its own character, where it stood.
    a.send("look");
    let a_look = a.expect("Exits:");
    assert!(a_look.contains("Limbo"), "{a_look}");
    b.send("look");
    let b_look = b.expect("Exits:");
    assert!(b_look.contains("The Gatehouse Courtyard"), "{b_look}");
    a.send("say still Echo");
    a.expect("You say, \"still Echo\"");
    a.send("sessions");
    let table = a.expect("Your current session(s):");
    let rows = drain(&mut a);
    assert!(
        !table.is_empty() && rows.contains("Echo") && rows.contains("Fern"),
        "{rows}"
    );
}

#[test]
fn mode_3_sessions_share_a_puppet_and_hear_speech_once_each() {
    let game = game(3, 2, 2);
    let mut a = game.connect();
    a.create_and_login("Gwen", PASSWORD);
    // A lone first session auto-puppets in mode 3.
    a.send("look");
    a.expect("Exits:");
    let mut b = game.connect();
    b.login("Gwen", PASSWORD);
    // A second session stays OOC (ambiguous), then shares on request.
    b.send("ic Gwen");
    b.expect("Sharing Gwen with another of your sessions.");
    b.sync();
    a.expect("Gwen is now shared from another of your sessions.");
    a.sync();

    let mut other = game.connect();
    other.create_and_login("Hugo", PASSWORD);
    a.sync();
    b.sync();
    other.send("say hi Gwen");
    other.expect("You say, \"hi Gwen\"");
    let a_heard = drain(&mut a);
    let b_heard = drain(&mut b);
    assert_eq!(count(&a_heard, "Hugo says, \"hi Gwen\""), 1, "{a_heard}");
    assert_eq!(count(&b_heard, "Hugo says, \"hi Gwen\""), 1, "{b_heard}");

    a.send("say hi Hugo");
    let a_said = drain(&mut a);
    let b_said = drain(&mut b);
    let heard = drain(&mut other);
    assert_eq!(count(&a_said, "You say, \"hi Hugo\""), 1, "{a_said}");
    assert_eq!(count(&b_said, "You say, \"hi Hugo\""), 1, "{b_said}");
    assert_eq!(count(&heard, "Gwen says, \"hi Hugo\""), 1, "{heard}");

    // A second character: mode 3 lets a session play it alongside.
    b.send("charcreate Iris");
    b.expect("Created new character Iris.");
    b.send("ic Iris");
    b.expect("You become Iris.");
    let now = drain(&mut other);
    assert_eq!(count(&now, "Iris has entered the game."), 1, "{now}");
    assert_eq!(count(&now, "Gwen has left the game."), 0, "{now}");
}

#[test]
fn nobody_can_puppet_a_character_of_another_account() {
    let game = game(2, 2, 2);
    let mut a = game.connect();
    a.create_and_login("Jack", PASSWORD);
    let mut b = game.connect();
    b.create_and_login("Kate", PASSWORD);
    b.send("ic Jack");
    b.expect("That is not a valid character choice.");
    b.send("puppet Jack");
    b.expect("That is not a valid character choice.");
    // Nor is the OOB login (GMCP, as Mudlet sends it), logged in or not.
    let gmcp_login = b"\xff\xfd\xc9\xff\xfa\xc9Char.Login.Credentials \
        {\"account\":\"Jack\",\"password\":\"a-guess\"}\xff\xf0";
    b.send_raw(gmcp_login);
    b.expect("You are already logged in.");
    b.send("look");
    b.expect("Account Kate");
    let mut c = game.connect();
    c.expect("create <username> <password>");
    c.send_raw(gmcp_login);
    c.expect("Username and/or password is incorrect.");
    c.send("ic Jack");
    c.expect("not available");
    b.send("chardelete Jack");
    b.expect("You have no such character to delete.");
}

#[test]
fn chardelete_asks_first_and_refuses_a_played_character() {
    let game = game(2, 3, 2);
    let mut a = game.connect();
    a.create_and_login("Lena", PASSWORD);
    a.send("charcreate Mila");
    a.expect("Created new character Mila.");
    a.send("ic Mila");
    a.expect("You become Mila.");
    a.send("chardelete Mila");
    a.expect("You cannot delete a character that is being played.");
    a.send("ooc");
    a.expect("You go OOC.");
    a.send("chardelete Mila");
    a.expect("This will permanently destroy 'Mila'. This cannot be undone. Continue yes/[no]?");
    a.send("no");
    a.expect("Deletion was aborted.");
    a.send("chardelete Mila");
    a.expect("Continue yes/[no]?");
    a.send("yes");
    a.expect("Character 'Mila' was permanently deleted.");
    a.send("ic Mila");
    a.expect("That is not a valid character choice.");
}

#[test]
fn throttles_refuse_further_attempts_without_revealing_accounts() {
    let game = Game::start(&[
        ("GATEHOUSE__THROTTLE__EXEMPT_LOOPBACK", "false"),
        ("GATEHOUSE__THROTTLE__LOGIN_LIMIT", "2"),
        ("GATEHOUSE__THROTTLE__CREATION_LIMIT", "1"),
    ]);
    let mut c = game.connect();
    c.expect("create <username> <password>");
    c.send(&format!("create Nora {PASSWORD}"));
    c.expect("was created");
    c.send(&format!("create Olga {PASSWORD}"));
    c.expect("You are creating too many accounts. Please log into an existing account.");
    c.send("connect Nora wrong-password");
    c.expect("Username and/or password is incorrect.");
    c.send("connect Nobody wrong-password");
    c.expect("Username and/or password is incorrect.");
    // Now even the right password is refused, on a new connection too.
    let mut d = game.connect();
    d.expect("create <username> <password>");
    d.send(&format!("connect Nora {PASSWORD}"));
    d.expect("Too many login failures; please try again in a few minutes.");
}

#[test]
fn superusers_boot_and_announce() {
    let game = Game::start(&[]);
    let out = game.cli_with_env(
        &["account", "create", "Root", "--superuser"],
        &[("GATEHOUSE_PASSWORD", PASSWORD)],
    );
    assert!(out.status.success(), "{out:?}");
    let mut admin = game.connect();
    admin.login("Root", PASSWORD);
    let mut p = game.connect();
    p.create_and_login("Pete", PASSWORD);
    p.send("announce hi");
    p.expect("Command 'announce' is not available.");
    admin.send("announce Maintenance at noon");
    p.expect("Announcement from Root: Maintenance at noon");
    admin.send("who");
    let who = admin.expect("logged in.");
    assert!(
        who.contains("Protocol") && who.contains("127.0.0.1"),
        "superusers see details: {who}"
    );
    admin.send("boot Pete : testing");
    let last = p.expect_closed();
    assert!(
        last.contains("You have been disconnected by Root.")
            && last.contains("Reason given: testing"),
        "{last}"
    );
    admin.expect("Booted 1 session(s) of 'Pete'.");
}

#[test]
fn parallel_guesses_from_one_address_cannot_outrun_the_login_throttle() {
    let game = Game::start(&[
        ("GATEHOUSE__THROTTLE__EXEMPT_LOOPBACK", "false"),
        ("GATEHOUSE__THROTTLE__LOGIN_LIMIT", "2"),
    ]);
    let mut clients: Vec<Client> = (0..6).map(|_| game.connect()).collect();
    for c in &mut clients {
        c.expect("create <username> <password>");
    }
    // Every guess is on the wire before any answer comes back.
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&format!("connect Quinn guess-number-{i}"));
    }
    let mut checked = 0;
    let mut refused = 0;
    for c in &mut clients {
        let answer = c.expect_any(&["incorrect.", "Too many login failures"]);
        if answer.contains("Too many login failures") {
            refused += 1;
        } else {
            checked += 1;
        }
    }
    assert_eq!(
        checked, 2,
        "only the limit's worth of guesses may be checked"
    );
    assert_eq!(refused, 4);
}
