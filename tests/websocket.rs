//! The web client's websocket against the real binary: Evennia's
//! `[cmdname, args, kwargs]` JSON frames, side by side with telnet players.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use awc::ws::{CloseCode, Frame, Message};
use futures_util::{SinkExt, StreamExt};

use common::{Client, Game, DEADLINE};

const PASSWORD: &str = "correct-horse-9";

type Conn = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

async fn connect(game: &Game) -> Conn {
    let url = format!("ws://127.0.0.1:{}/", game.port("websocket"));
    let (_, conn) = awc::Client::new()
        .ws(url)
        .connect()
        .await
        .expect("websocket connect");
    conn
}

async fn send(conn: &mut Conn, frame: &str) {
    conn.send(Message::Text(frame.to_owned().into()))
        .await
        .unwrap();
}

/// Reads text frames until one contains `needle`; returns it.
async fn expect(conn: &mut Conn, needle: &str) -> String {
    let wait = async {
        while let Some(frame) = conn.next().await {
            if let Ok(Frame::Text(bytes)) = frame {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if text.contains(needle) {
                    return text;
                }
            }
        }
        panic!("websocket closed while waiting for {needle:?}");
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"))
}

#[actix_rt::test]
async fn a_web_player_logs_in_and_uses_input_functions() {
    let game = Game::start(&[]);
    let mut ws = connect(&game).await;
    expect(&mut ws, "create &lt;username&gt; &lt;password&gt;").await;
    send(
        &mut ws,
        &format!(r#"["text", ["create Wes {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "was created").await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect Wes {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, r#"["logged_in",[],{}]"#).await;
    send(&mut ws, r#"["echo", ["ping"], {}]"#).await;
    expect(&mut ws, "Echo returns: &quot;ping&quot;").await;
    send(&mut ws, r#"{"not": "an array"}"#).await;
    let error = expect(&mut ws, "Malformed message").await;
    assert!(error.contains(r#""type":"error""#), "{error}");
    // Still connected and logged in after the bad frame.
    send(&mut ws, r#"["text", ["sessions"], {}]"#).await;
    expect(&mut ws, "websocket").await;
}

#[actix_rt::test]
async fn a_telnet_player_and_a_web_player_hear_each_other() {
    let game = Game::start(&[]);
    let mut telnet = game.connect();
    telnet.create_and_login("Tess", PASSWORD);
    let mut ws = connect(&game).await;
    expect(&mut ws, "create &lt;username&gt;").await;
    send(
        &mut ws,
        &format!(r#"["text", ["create Wren {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "was created").await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect Wren {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "Exits:").await;
    send(&mut ws, r#"["text", ["say hello from the browser"], {}]"#).await;
    expect(&mut ws, "You say, &quot;hello from the browser&quot;").await;
    telnet.expect("Wren says, \"hello from the browser\"");
    telnet.send("say hello from telnet");
    expect(&mut ws, "Tess says, &quot;hello from telnet&quot;").await;
}

#[actix_rt::test]
async fn healthz_reports_the_portal_and_the_server_link() {
    let game = Game::start(&[]);
    let url = format!("http://127.0.0.1:{}/healthz", game.port("web"));
    let mut resp = awc::Client::new().get(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["portal"], "up");
    assert_eq!(body["server_connected"], true);
}

#[actix_rt::test]
async fn a_reload_leaves_the_web_player_connected_and_logged_in() {
    let game = Game::start(&[]);
    let mut ws = connect(&game).await;
    expect(&mut ws, "create &lt;username&gt;").await;
    send(
        &mut ws,
        &format!(r#"["text", ["create Rory {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "was created").await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect Rory {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "Exits:").await;
    assert!(game.cli(&["reload"]).status.success());
    expect(&mut ws, "Server restarted.").await;
    send(&mut ws, r#"["text", ["look"], {}]"#).await;
    expect(&mut ws, "Limbo").await;
    send(&mut ws, r#"["text", ["who"], {}]"#).await;
    expect(&mut ws, "Rory").await;
}

#[actix_rt::test]
async fn an_oversized_frame_costs_only_its_own_connection() {
    let game = Game::start(&[]);
    let mut telnet = game.connect();
    telnet.create_and_login("Ursa", PASSWORD);
    let mut ws = connect(&game).await;
    expect(&mut ws, "create &lt;username&gt;").await;
    let huge = format!(r#"["text", ["{}"], {{}}]"#, "x".repeat(200 * 1024));
    let _ = ws.send(Message::Text(huge.into())).await;
    // The tab is told and closed; everybody else carries on.
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the oversized frame did not close the websocket"),
        }
    }
    assert!(telnet.who().contains("Ursa"));
}

#[actix_rt::test]
async fn the_web_client_page_is_served_with_its_assets() {
    let game = Game::start(&[("GATEHOUSE__SERVER__NAME", "Test <Game>")]);
    let base = format!("http://127.0.0.1:{}", game.port("web"));
    let client = awc::Client::new();
    let mut page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    assert!(
        html.contains("Test &lt;Game&gt;"),
        "the name is escaped: {html}"
    );
    assert!(
        html.contains(&format!("websocketPort: {}", game.port("websocket"))),
        "{html}"
    );
    // Script and style are inlined: the page needs no second request.
    assert!(
        html.contains("new WebSocket("),
        "the client script is in the page"
    );
    assert!(html.contains("#output {"), "the style is in the page");
    assert!(!html.contains("{{"), "every placeholder is filled");
}

#[actix_rt::test]
async fn a_tab_that_stops_answering_pings_is_closed() {
    // A dead tab may still be resumed for the resume window; then it goes.
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__WEBSOCKET_TIMEOUT", "2"),
        ("GATEHOUSE__PORTAL__WEBSOCKET_RESUME_WINDOW", "1"),
    ]);
    let mut ws = connect(&game).await;
    expect(&mut ws, "create &lt;username&gt;").await;
    common::wait_for("the session to register", DEADLINE, || {
        game.status().contains("sessions = 1").then_some(())
    });
    // From here on the client reads nothing, so it answers no ping: a dead tab.
    common::wait_for("the dead tab to be closed", DEADLINE, || {
        game.status().contains("sessions = 0").then_some(())
    });
    drop(ws);
}

/// Reads frames until the server hands out a resume token.
async fn token(conn: &mut Conn) -> String {
    let frame = expect(conn, r#"["session_token",[""#).await;
    let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
    value[1][0].as_str().unwrap().to_owned()
}

#[actix_rt::test]
async fn a_dropped_web_session_is_resumed_with_its_token_and_only_once() {
    let game = Game::start(&[]);
    let mut ws = connect(&game).await;
    let first = token(&mut ws).await;
    send(
        &mut ws,
        &format!(r#"["text", ["create Wade {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "was created").await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect Wade {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "Exits:").await;
    // The connection drops without a close frame (a lost network).
    drop(ws);
    let url = format!("ws://127.0.0.1:{}/?token={first}", game.port("websocket"));
    let (_, mut back) = awc::Client::new().ws(url.clone()).connect().await.unwrap();
    expect(&mut back, "(Reconnected: you are back in your session.)").await;
    let second = token(&mut back).await;
    assert_ne!(second, first, "a token works once");
    send(&mut back, r#"["text", ["who"], {}]"#).await;
    expect(&mut back, "Wade").await;
    // The spent token gives a fresh, logged-out session.
    let (_, mut other) = awc::Client::new().ws(url).connect().await.unwrap();
    expect(&mut other, "create &lt;username&gt; &lt;password&gt;").await;
}

/// Logs a new web account in; answers the connection.
async fn web_player(game: &Game, name: &str) -> Conn {
    let mut ws = connect(game).await;
    expect(&mut ws, "create &lt;username&gt;").await;
    send(
        &mut ws,
        &format!(r#"["text", ["create {name} {PASSWORD}"], {{}}]"#),
    )
    .await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect {name} {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, r#"["logged_in",[],{}]"#).await;
    ws
}

#[actix_rt::test]
async fn a_tab_that_stops_reading_is_dropped_at_the_output_limit_and_a_reading_one_is_not() {
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_BUFFER_LIMIT", "65536"),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut telnet = game.connect();
    telnet.create_and_login("Tess", PASSWORD);

    // A tab that reads everything (and answers pings, as browsers do) may receive
    // far more than the limit in all.
    let mut reader = web_player(&game, "Reed").await;
    let mut received = 0;
    for n in 0..200 {
        send(&mut reader, r#"["text", ["help"], {}]"#).await;
        let marker = format!("marker-{n}");
        send(&mut reader, &format!(r#"["text", ["{marker}"], {{}}]"#)).await;
        let wait = async {
            loop {
                match reader.next().await {
                    Some(Ok(Frame::Text(bytes))) => {
                        received += bytes.len();
                        if String::from_utf8_lossy(&bytes).contains(&marker) {
                            break;
                        }
                    }
                    Some(Ok(Frame::Ping(payload))) => {
                        reader.send(Message::Pong(payload)).await.unwrap();
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the reading tab was dropped: {other:?}"),
                }
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("the marker");
    }
    assert!(received > 4 * 65536, "only {received} bytes");

    // A tab that reads nothing is cut once the limit is unread.
    let mut stuck = web_player(&game, "Stu").await;
    let end = tokio::time::Instant::now() + DEADLINE;
    while !game.log().contains("websocket session") || !game.log().contains("not read") {
        assert!(
            tokio::time::Instant::now() < end,
            "the stuck tab was never cut"
        );
        let _ = stuck
            .send(Message::Text(r#"["text", ["help"], {}]"#.into()))
            .await;
    }
    // Its connection is closed behind what it never read. (Its session waits out
    // the resume window, as for any dropped tab.)
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, stuck.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the stuck tab's connection stayed open"),
        }
    }
    let who = telnet.who();
    assert!(who.contains("Reed") && who.contains("Tess"), "{who}");
}

#[actix_rt::test]
async fn a_tab_that_floods_input_is_closed_and_nobody_else_notices() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__MAX_INPUT_RATE", "16384")]);
    let mut telnet = game.connect();
    telnet.create_and_login("Flor", PASSWORD);
    let mut ws = web_player(&game, "Fenn").await;
    // 16 KiB/s after a 64 KiB burst: 100 frames of 8 KiB at once are far beyond it.
    let frame = format!(r#"["text", ["say {}"], {{}}]"#, "x".repeat(8 * 1024));
    for _ in 0..100 {
        if ws.send(Message::Text(frame.clone().into())).await.is_err() {
            break;
        }
    }
    expect(&mut ws, "too much too fast").await;
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the flooding tab stayed open"),
        }
    }
    telnet.send("look");
    telnet.expect("Exits:");
    assert!(game.log().contains("input beyond portal.max_input_rate"));
}

/// A web player and a telnet player in Limbo; answers the telnet client, the
/// web connection and the web page's current resume token.
async fn web_and_telnet_in_limbo(game: &Game, web: &str, tel: &str) -> (Client, Conn, String) {
    let mut telnet = game.connect();
    telnet.create_and_login(tel, PASSWORD);
    let mut ws = connect(game).await;
    let token = token(&mut ws).await;
    send(
        &mut ws,
        &format!(r#"["text", ["create {web} {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "was created").await;
    send(
        &mut ws,
        &format!(r#"["text", ["connect {web} {PASSWORD}"], {{}}]"#),
    )
    .await;
    expect(&mut ws, "Exits:").await;
    telnet.expect(&format!("{web} has entered the game."));
    (telnet, ws, token)
}

/// Closes the connection the way a browser does when its page goes away (a
/// reload, a tab closed): a close frame with code 1001 and no
/// `websocket_close` first. Waits for the server's answering close.
async fn close_like_a_browser(mut ws: Conn) {
    ws.send(Message::Close(Some(CloseCode::Away.into())))
        .await
        .unwrap();
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the server did not answer the close frame"),
        }
    }
}

/// Connects with `?token=...`, as a page does when it loads.
async fn connect_with_token(game: &Game, token: &str) -> Conn {
    let url = format!("ws://127.0.0.1:{}/?token={token}", game.port("websocket"));
    let (_, conn) = awc::Client::new()
        .ws(url)
        .connect()
        .await
        .expect("websocket connect");
    conn
}

/// Waits until the Portal counts `n` detached web sessions.
fn wait_detached(game: &Game, n: usize) {
    let line = format!(r#"gatehouse_portal_sessions{{protocol="websocket",state="detached"}} {n}"#);
    common::wait_for(&format!("{n} detached web session(s)"), DEADLINE, || {
        game.http_get("/metrics").1.contains(&line).then_some(())
    });
}

#[actix_rt::test]
async fn a_page_reload_keeps_the_web_player_logged_in_and_in_character() {
    let game = Game::start(&[]);
    let (mut telnet, ws, token) = web_and_telnet_in_limbo(&game, "Rena", "Tove").await;
    close_like_a_browser(ws).await;
    wait_detached(&game, 1);
    // What the room says while the page reloads is kept for it.
    telnet.send("say are you still there?");
    telnet.expect("You say, \"are you still there?\"");

    let mut back = connect_with_token(&game, &token).await;
    expect(&mut back, "(Reconnected: you are back in your session.)").await;
    expect(&mut back, "Tove says, &quot;are you still there?&quot;").await;
    expect(&mut back, r#"["logged_in",[],{}]"#).await;
    send(&mut back, r#"["text", ["look"], {}]"#).await;
    expect(&mut back, "Limbo").await;
    send(&mut back, r#"["text", ["say back again"], {}]"#).await;
    expect(&mut back, "You say, &quot;back again&quot;").await;

    // The room heard the reloaded player speak, and never heard it leave.
    let heard = telnet.expect("Rena says, \"back again\"");
    assert!(!heard.contains("has left the game"), "{heard}");
    assert!(!heard.contains("has entered the game"), "{heard}");
    let who = telnet.who();
    assert!(who.contains("Rena") && who.contains("Tove"), "{who}");
}

#[actix_rt::test]
async fn a_closed_tab_leaves_the_game_when_the_resume_window_passes() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__WEBSOCKET_RESUME_WINDOW", "2")]);
    let (mut telnet, ws, token) = web_and_telnet_in_limbo(&game, "Cleo", "Tam").await;
    close_like_a_browser(ws).await;
    // The session waits for its page first, then goes.
    wait_detached(&game, 1);
    telnet.expect("Cleo has left the game.");
    assert!(
        game.log().contains("not resumed in time"),
        "the session ended at the window, not at the close"
    );
    assert!(!telnet.who().contains("Cleo"));
    // The token came too late: a fresh, logged-out session.
    let mut late = connect_with_token(&game, &token).await;
    expect(&mut late, "create &lt;username&gt; &lt;password&gt;").await;
}

#[actix_rt::test]
async fn websocket_close_ends_the_session_at_once() {
    // A long window: a departure within the deadline can only be the close's.
    let game = Game::start(&[("GATEHOUSE__PORTAL__WEBSOCKET_RESUME_WINDOW", "3600")]);
    let (mut telnet, mut ws, token) = web_and_telnet_in_limbo(&game, "Quin", "Tyra").await;
    send(&mut ws, r#"["websocket_close", [], {}]"#).await;
    telnet.expect("Quin has left the game.");
    assert!(!telnet.who().contains("Quin"));
    let mut again = connect_with_token(&game, &token).await;
    expect(&mut again, "create &lt;username&gt; &lt;password&gt;").await;
}

#[actix_rt::test]
async fn a_token_takes_over_a_session_whose_old_connection_is_still_open() {
    // A reloading page can connect before its old connection's close arrives,
    // and a half-dead network can keep the old one open for a while.
    let game = Game::start(&[]);
    let (mut telnet, mut old, token) = web_and_telnet_in_limbo(&game, "Otto", "Tilda").await;
    let mut new = connect_with_token(&game, &token).await;
    expect(&mut new, "(Reconnected: you are back in your session.)").await;
    expect(&mut new, r#"["logged_in",[],{}]"#).await;
    // The old connection is closed, and its close ends nothing.
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, old.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the old connection stayed open"),
        }
    }
    send(&mut new, r#"["text", ["say one tab now"], {}]"#).await;
    expect(&mut new, "You say, &quot;one tab now&quot;").await;
    let heard = telnet.expect("Otto says, \"one tab now\"");
    assert!(!heard.contains("has left the game"), "{heard}");
}

#[actix_rt::test]
async fn the_replay_keeps_the_newest_output_within_its_bound_and_says_so() {
    let game = Game::start(&[("GATEHOUSE__PORTAL__WEBSOCKET_RESUME_BACKLOG", "200")]);
    let (mut telnet, ws, token) = web_and_telnet_in_limbo(&game, "Bess", "Tuck").await;
    close_like_a_browser(ws).await;
    wait_detached(&game, 1);
    let old = format!("say old {}", "o".repeat(150));
    let new = format!("say new {}", "n".repeat(150));
    for line in [&old, &new] {
        telnet.send(line);
        telnet.expect("You say");
    }
    let mut back = connect_with_token(&game, &token).await;
    let mut frames = Vec::new();
    let wait = async {
        while let Some(Ok(frame)) = back.next().await {
            if let Frame::Text(bytes) = frame {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let done = text.contains("session_token");
                frames.push(text);
                if done {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("the replay");
    let replay = frames.join("\n");
    assert!(replay.contains("no longer kept"), "{replay}");
    assert!(replay.contains("new nnnn"), "{replay}");
    assert!(!replay.contains("old oooo"), "{replay}");
}

/// Reads frames until a text frame contains `needle`, answering pings as a browser
/// does; panics if the connection closes first.
async fn expect_answering_pings(conn: &mut Conn, needle: &str) {
    let wait = async {
        loop {
            match conn.next().await {
                Some(Ok(Frame::Text(bytes))) => {
                    if String::from_utf8_lossy(&bytes).contains(needle) {
                        return;
                    }
                }
                Some(Ok(Frame::Ping(payload))) => {
                    conn.send(Message::Pong(payload)).await.unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("the reading tab was closed: {other:?}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"));
}

#[actix_rt::test]
async fn a_tab_that_stops_reading_is_closed_after_the_stall_timeout_and_a_reading_one_is_not() {
    // Pings go unanswered for far longer than the stall timeout before the
    // websocket timeout would close the tab, and the output stays far below the limit.
    let game = Game::start(&[
        ("GATEHOUSE__PORTAL__OUTPUT_STALL_TIMEOUT", "2"),
        ("GATEHOUSE__PORTAL__WEBSOCKET_TIMEOUT", "300"),
        ("GATEHOUSE__PORTAL__MAX_COMMAND_RATE", "0"),
    ]);
    let mut reader = web_player(&game, "Reed").await;
    let mut stuck = web_player(&game, "Stu").await;
    // About 10 KB of room descriptions, none of them read.
    for _ in 0..20 {
        send(&mut stuck, r#"["text", ["look"], {}]"#).await;
    }

    // Meanwhile a tab that reads (and answers pings) gets a room description now
    // and then, far less than the 64 KiB after which a ping goes out anyway, for as
    // long as the other waits.
    let started = std::time::Instant::now();
    let mut rooms = 0;
    while !game.log().contains("output stalled") {
        assert!(started.elapsed() < DEADLINE, "the stuck tab was never cut");
        send(&mut reader, r#"["text", ["look"], {}]"#).await;
        // Reads for up to a fifth of a second, then asks again.
        let pause = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
        while let Ok(frame) = tokio::time::timeout_at(pause, reader.next()).await {
            match frame {
                Some(Ok(Frame::Ping(payload))) => {
                    reader.send(Message::Pong(payload)).await.unwrap();
                }
                Some(Ok(Frame::Text(bytes))) => {
                    rooms += String::from_utf8_lossy(&bytes).matches("Exits:").count();
                }
                Some(Ok(_)) => {}
                other => panic!("the reading tab was closed: {other:?}"),
            }
        }
    }
    assert!(rooms > 5, "the reading tab got {rooms} rooms");
    let took = started.elapsed();
    let log = game.log();
    let line = log
        .lines()
        .find(|l| l.contains("output stalled"))
        .unwrap_or_default();
    eprintln!("cut after {took:?}: {line}");
    assert!(line.contains("websocket session"), "{line}");
    assert!(line.contains("bytes stuck"), "{line}");
    assert_eq!(log.matches("output stalled").count(), 1, "{log}");

    // The stuck tab's connection is closed behind what it never read.
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, stuck.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the stuck tab's connection stayed open"),
        }
    }
    send(&mut reader, r#"["text", ["who"], {}]"#).await;
    expect_answering_pings(&mut reader, "Reed").await;
}

#[actix_rt::test]
async fn a_web_page_comes_back_logged_in_after_the_portal_upgrades_itself() {
    let game = Game::start_from_copy(&[]);
    let (mut telnet, mut ws, token) = web_and_telnet_in_limbo(&game, "Wanda", "Tess").await;
    game.upgrade_to_a_new_build();
    // The old Portal image closed the tab's connection; the page comes back
    // with its token, as it does after any drop.
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(end, ws.next()).await {
            Ok(Some(Ok(Frame::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the upgrade left the old connection open"),
        }
    }
    let mut back = connect_with_token(&game, &token).await;
    expect(&mut back, "logged_in").await;
    send(&mut back, r#"["text", ["look"], {}]"#).await;
    expect(&mut back, "Exits:").await;
    send(&mut back, r#"["text", ["say still here"], {}]"#).await;
    let heard = telnet.expect("Wanda says, \"still here\"");
    assert!(!heard.contains("has left the game"), "{heard}");
    assert!(!heard.contains("Server restarted"), "{heard}");
}
