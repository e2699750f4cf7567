//! Behind a reverse proxy or load balancer, against the real binary: the PROXY
//! protocol (v1 and v2) on the telnet port and `X-Forwarded-For` on the websocket,
//! believed from the trusted proxy only. What `sessions` shows and what the
//! throttles count is the client's address, not the proxy's.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use awc::ws::{Frame, Message};
use futures_util::{SinkExt, StreamExt};
use socket2::{Domain, Socket, Type};

use common::{Client, Game, DEADLINE};

const PASSWORD: &str = "correct-horse-9";

fn proxied_game(extra: &[(&str, &str)]) -> Game {
    let mut env = vec![
        ("GATEHOUSE__PORTAL__TRUSTED_PROXIES", "[\"127.0.0.1\"]"),
        ("GATEHOUSE__PORTAL__TELNET_PROXY_PROTOCOL", "true"),
        ("GATEHOUSE__PORTAL__WEBSOCKET_FORWARDED_FOR", "true"),
    ];
    env.extend_from_slice(extra);
    Game::start(&env)
}

/// The address `sessions` shows for this client's own session.
fn own_address(client: &mut Client) -> String {
    client.send("sessions");
    client.expect("Your current session(s):");
    let table = client.expect("telnet");
    let line = table.lines().last().unwrap_or_default().to_owned();
    let rest = client.sync();
    format!("{line}{rest}")
}

fn v2_header(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]); // PROXY, TCP over IPv4
    header.extend_from_slice(&source);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&4000u16.to_be_bytes());
    header
}

#[test]
fn the_proxy_protocol_names_the_client_and_the_throttles_count_it() {
    let game = proxied_game(&[("GATEHOUSE__THROTTLE__CREATION_LIMIT", "1")]);
    let mut v1 = game.connect();
    v1.send_raw(b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 4000\r\n");
    v1.create_and_login("Vera", PASSWORD);
    let shown = own_address(&mut v1);
    assert!(shown.contains("203.0.113.7"), "{shown}");

    let mut v2 = game.connect();
    v2.send_raw(&v2_header([198, 51, 100, 9], 50000));
    v2.create_and_login("Vick", PASSWORD);
    let shown = own_address(&mut v2);
    assert!(shown.contains("198.51.100.9"), "{shown}");

    // 203.0.113.7 is not this machine: its creation limit (1) applies, although
    // every connection came through the proxy on loopback.
    let mut again = game.connect();
    again.send_raw(b"PROXY TCP4 203.0.113.7 127.0.0.1 51001 4000\r\n");
    again.expect("create <username> <password>");
    again.send(&format!("create Vlad {PASSWORD}"));
    again.expect("You are creating too many accounts.");
}

#[test]
fn nobody_but_the_trusted_proxy_can_choose_an_address() {
    let game = proxied_game(&[]);
    // A client on another address sends a PROXY line of its own: it is just text.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], game.telnet_port)).into())
        .unwrap();
    let mut direct = Client::from_stream(socket.into());
    direct.expect("create <username> <password>");
    direct.send_raw(b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 4000\r\n");
    direct.expect("Command 'proxy' is not available.");
    direct.send(&format!("create Dina {PASSWORD}"));
    direct.expect("was created");
    direct.send(&format!("connect Dina {PASSWORD}"));
    direct.expect("You are logged in.");
    let shown = own_address(&mut direct);
    assert!(
        shown.contains("127.0.0.2") && !shown.contains("203.0.113.7"),
        "{shown}"
    );

    // The trusted proxy itself must send a header; garbage closes the connection.
    let mut broken = game.connect();
    broken.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    broken.expect_closed();
    common::wait_for("the log line", DEADLINE, || {
        game.log()
            .contains("not a PROXY protocol header")
            .then_some(())
    });
}

#[actix_rt::test]
async fn the_websocket_takes_the_address_from_x_forwarded_for() {
    let game = proxied_game(&[]);
    let port = game.port("websocket");
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{port}/"))
        .set_header("X-Forwarded-For", "10.9.8.7, 192.0.2.44")
        .connect()
        .await
        .unwrap();
    let send = |frame: String| Message::Text(frame.into());
    ws.send(send(format!(
        r#"["text", ["create Wren {PASSWORD}"], {{}}]"#
    )))
    .await
    .unwrap();
    ws.send(send(format!(
        r#"["text", ["connect Wren {PASSWORD}"], {{}}]"#
    )))
    .await
    .unwrap();
    ws.send(send(r#"["text", ["sessions"], {}]"#.to_owned()))
        .await
        .unwrap();
    let wait = async {
        while let Some(frame) = ws.next().await {
            if let Ok(Frame::Text(bytes)) = frame {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if text.contains("Your current session(s):") {
                    return text;
                }
            }
        }
        panic!("closed before the sessions table");
    };
    let table = tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("sessions");
    // The proxy heard 192.0.2.44; the 10.9.8.7 left of it could be forged.
    assert!(table.contains("192.0.2.44"), "{table}");
    assert!(!table.contains("10.9.8.7"), "{table}");
}
