//! The built-in web client in a real browser: headless Chromium, driven by
//! playwright-core (`tests/browser/login.mjs`), logs in and looks around; a
//! screenshot is saved as `target/browser-login.png`. Built with
//! `--features browser-test`; `.ci/run` installs chromium, node and
//! playwright-core and runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::Game;

#[test]
fn a_browser_logs_in_and_sees_the_room() {
    let game = Game::start(&[]);
    let ports = std::fs::read_to_string(game.path().join("run/ports.toml")).unwrap();
    let web: u16 = ports
        .lines()
        .find(|l| l.starts_with("web ="))
        .unwrap()
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let shot = format!("{root}/target/browser-login.png");
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/login.mjs"))
        .arg(format!("http://127.0.0.1:{web}/"))
        .arg(&shot)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "no screenshot"
    );
}
