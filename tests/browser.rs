//! The built-in web client in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/login.mjs`), logs in and looks around,
//! reloads the page and is still logged in and in character, and a second tab
//! is a session of its own; a telnet player in the same room never hears the
//! web player leave. Screenshots are saved as `target/browser-login.png` and
//! `target/browser-reload.png`. Built with `--features browser-test`;
//! `.ci/run` installs chromium, node and playwright-core and runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::Game;

#[test]
fn a_browser_logs_in_sees_the_room_and_keeps_its_session_across_a_reload() {
    let game = Game::start(&[]);
    let mut telnet = game.connect();
    telnet.create_and_login("Telly", "telly-pass-1");
    let web = game.port("web");
    let root = env!("CARGO_MANIFEST_DIR");
    let shot = format!("{root}/target/browser-login.png");
    let reload_shot = format!("{root}/target/browser-reload.png");
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/login.mjs"))
        .arg(format!("http://127.0.0.1:{web}/"))
        .arg(&shot)
        .arg(&reload_shot)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for path in [&shot, &reload_shot] {
        assert!(
            std::fs::metadata(path).unwrap().len() > 1000,
            "no screenshot at {path}"
        );
    }
    // Everything the room heard from the web player, up to its last words
    // after the reload: it arrived once and never left.
    telnet.expect("Browser has entered the game.");
    let heard = telnet.expect("Browser says, \"still mine\"");
    assert!(
        heard.contains("Browser says, \"reloaded and still here\""),
        "{heard}"
    );
    assert!(!heard.contains("has left the game"), "{heard}");
    assert!(!heard.contains("has entered the game"), "{heard}");
}
