//! Drives the real TinTin++ client (`tt++`) through login and a command.
//! TinTin++ needs a terminal, so it runs inside a detached tmux session; the
//! test reads what it logged. Built with `--features tintin-test` (`.ci/run`
//! installs tintin++ and tmux and runs it).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Game, DEADLINE};

const TT: &str = "/usr/games/tt++";

#[test]
fn tintin_logs_in_speaks_and_quits() {
    assert!(
        std::path::Path::new(TT).exists(),
        "tintin++ is not installed ({TT})"
    );
    let game = Game::start(&[]);
    let dir = game.path();
    let log = dir.join("tintin.log");
    let script = dir.join("login.tin");
    std::fs::write(
        &script,
        format!(
            "#config {{log}} {{plain}}\n\
             #session gh 127.0.0.1 {port}\n\
             #log overwrite {log}\n\
             #action {{create <username> <password>}} {{create Tintin tinpass-99}} {{1}}\n\
             #action {{was created}} {{connect Tintin tinpass-99}}\n\
             #action {{You are logged in.}} {{say hello from tintin}}\n\
             #action {{You say, \"hello from tintin\"}} {{quit}}\n",
            port = game.telnet_port,
            log = log.display()
        ),
    )
    .unwrap();
    let name = format!("gatehouse-tt-{}", std::process::id());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &name, "-x", "120", "-y", "40"])
        .arg(format!("{TT} -G {}", script.display()))
        .current_dir(dir)
        .status()
        .expect("tmux");
    assert!(started.success(), "tmux could not start tt++");
    let end = Instant::now() + DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Quitting. Hope to see you again, soon.") || Instant::now() > end {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("tmux")
        .args(["kill-session", "-t", &name])
        .status();
    assert!(text.contains("Welcome to gatehouse!"), "{text}");
    assert!(text.contains("You are logged in."), "{text}");
    assert!(text.contains("You say, \"hello from tintin\""), "{text}");
    assert!(
        text.contains("Quitting. Hope to see you again, soon."),
        "{text}"
    );
}
