//! Actor tests on a real actix System: the session handlers talk to a fake
//! peer over a real loopback TCP link, with real frames and deadlines.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

use gatehouse::actors::portal::handler::{
    GetStatus, OpenSession, PortalSessionHandler, SessionClosed, SessionInput, ToSession,
};
use gatehouse::actors::portal::link::accept_servers;
use gatehouse::actors::portal::sessid::SessionIdAllocator;
use gatehouse::actors::server::handler::ServerSessionHandler;
use gatehouse::actors::server::link::{PortalLink, SetHandler};
use gatehouse::actors::server::world::World;
use gatehouse::actors::{db, server};
use gatehouse::control::GameDir;
use gatehouse::models::account::Account;
use gatehouse::protocols::link::{
    encode_frame, link_proof, new_nonce, Input, LinkDecoder, LinkRole, Output, PortalToServer,
    RestartMode, ServerToPortal, LINK_PROTOCOL_VERSION, MAX_FRAME_BYTES,
};
use gatehouse::session::{ProtocolFlags, SessionId, SessionSyncData};
use gatehouse::settings::Settings;

const DEADLINE: Duration = Duration::from_secs(10);

/// Records what the Portal sends to a session.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<ToSession>>>);

struct FakeSession(Recorder);

impl Actor for FakeSession {
    type Context = Context<Self>;
}

impl Handler<ToSession> for FakeSession {
    type Result = ();
    fn handle(&mut self, msg: ToSession, _: &mut Context<Self>) {
        self.0 .0.lock().unwrap().push(msg);
    }
}

fn portal_handler(mut settings: Settings) -> Addr<PortalSessionHandler> {
    settings.portal.link_secret = SECRET.to_owned();
    let (control, _rx) = mpsc::unbounded_channel();
    // The control receiver is dropped: these tests send no reload requests.
    PortalSessionHandler::new(settings, SessionIdAllocator::in_memory(), control, None).start()
}

async fn open(handler: &Addr<PortalSessionHandler>) -> (SessionId, Recorder) {
    let recorder = Recorder::default();
    let endpoint = FakeSession(recorder.clone()).start().recipient();
    let sessid = handler
        .send(OpenSession {
            protocol_key: "telnet",
            address: "127.0.0.1".into(),
            flags: ProtocolFlags::default(),
            endpoint,
        })
        .await
        .unwrap();
    (sessid, recorder)
}

/// One end of a link, speaking frames of `In` and sending frames of any type.
struct Peer<In> {
    stream: TcpStream,
    buf: BytesMut,
    decoder: LinkDecoder<In>,
}

impl<In: serde::de::DeserializeOwned + std::fmt::Debug> Peer<In> {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            decoder: LinkDecoder::new(MAX_FRAME_BYTES),
        }
    }

    async fn send<T: serde::Serialize>(&mut self, msg: &T) {
        let frame = encode_frame(msg, MAX_FRAME_BYTES).unwrap();
        self.stream.write_all(&frame).await.unwrap();
    }

    async fn recv(&mut self) -> In {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(item) = self.decoder.decode(&mut self.buf).unwrap() {
                    return item.unwrap();
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "link closed");
            }
        })
        .await
        .expect("timed out waiting for a frame")
    }

    /// Receives frames until `pick` accepts one.
    async fn recv_until<T>(&mut self, mut pick: impl FnMut(In) -> Option<T>) -> T {
        loop {
            if let Some(found) = pick(self.recv().await) {
                return found;
            }
        }
    }
}

const SECRET: &str = "link-secret";

/// A fake Server connected to the Portal handler's link listener, answering
/// the challenge with a proof made from `secret`.
async fn fake_server_with(
    handler: &Addr<PortalSessionHandler>,
    secret: &str,
) -> Peer<PortalToServer> {
    fake_server_as(handler, secret, 1).await
}

/// As [`fake_server_with`], saying it is process `pid`.
async fn fake_server_as(
    handler: &Addr<PortalSessionHandler>,
    secret: &str,
    pid: u32,
) -> Peer<PortalToServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix_rt::spawn(accept_servers(
        listener,
        handler.clone(),
        SECRET.to_owned(),
        None,
    ));
    let mut peer = Peer::new(TcpStream::connect(addr).await.unwrap());
    let PortalToServer::Challenge { nonce } = peer.recv().await else {
        panic!("the Portal must open with a challenge");
    };
    peer.send(&ServerToPortal::Hello {
        version: LINK_PROTOCOL_VERSION,
        pid,
        proof: link_proof(secret, LinkRole::Server, &nonce),
        nonce: new_nonce(),
        acks_input: true,
    })
    .await;
    peer
}

async fn fake_server(handler: &Addr<PortalSessionHandler>) -> Peer<PortalToServer> {
    fake_server_with(handler, SECRET).await
}

fn text(input: &str) -> Input {
    Input::Text(input.to_owned())
}

#[actix::test]
async fn portal_handler_registers_and_unregisters_sessions() {
    let handler = portal_handler(Settings::default());
    let (a, _) = open(&handler).await;
    let (b, _) = open(&handler).await;
    assert_ne!(a, b);
    assert_eq!(handler.send(GetStatus).await.unwrap().sessions, 2);
    handler
        .send(SessionClosed {
            sessid: a,
            connection: 0,
        })
        .await
        .unwrap();
    let status = handler.send(GetStatus).await.unwrap();
    assert_eq!(status.sessions, 1);
    assert_eq!(status.queued_connections, 1, "b still waits for a Server");
}

#[actix::test]
async fn input_typed_while_the_server_is_away_and_input_it_never_finished_run_in_order_after_resync(
) {
    let handler = portal_handler(Settings::default());
    let (sessid, recorder) = open(&handler).await;
    // No Server yet: the player is told and the input waits.
    handler.do_send(SessionInput {
        sessid,
        input: text("look"),
    });
    handler.do_send(SessionInput {
        sessid,
        input: text("who"),
    });
    handler.send(GetStatus).await.unwrap();
    assert!(recorder.0.lock().unwrap().iter().any(|m| matches!(
        m,
        ToSession::Output(Output::Text(t)) if t.contains("starting or restarting")
    )));

    let mut server = fake_server(&handler).await;
    assert!(matches!(
        server.recv().await,
        PortalToServer::Welcome {
            restart_mode: RestartMode::ColdStart,
            ..
        }
    ));
    assert!(
        matches!(server.recv().await, PortalToServer::SessionConnected { session } if session.sessid == sessid)
    );
    assert_eq!(
        server.recv().await,
        PortalToServer::DataIn {
            sessid,
            input: text("look"),
            seq: 1,
        }
    );
    assert_eq!(
        server.recv().await,
        PortalToServer::DataIn {
            sessid,
            input: text("who"),
            seq: 2,
        }
    );

    // `look` finishes; the Server dies running `who` (a crash): input is
    // queued again...
    server
        .send(&ServerToPortal::InputDone { sessid, seq: 1 })
        .await;
    drop(server);
    let wait_down = async {
        while handler.send(GetStatus).await.unwrap().server_connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(DEADLINE, wait_down)
        .await
        .expect("link down");
    handler.do_send(SessionInput {
        sessid,
        input: text("say one"),
    });
    handler.do_send(SessionInput {
        sessid,
        input: text("say two"),
    });

    // ...and a new Server gets the session back in the resync, then `who`
    // again with its own number, then what was typed meanwhile.
    let mut server = fake_server(&handler).await;
    match server.recv().await {
        PortalToServer::Welcome {
            restart_mode,
            sessions,
            ..
        } => {
            assert_eq!(restart_mode, RestartMode::Crash);
            assert_eq!(
                sessions.iter().map(|s| s.sessid).collect::<Vec<_>>(),
                vec![sessid]
            );
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    assert_eq!(
        server.recv().await,
        PortalToServer::DataIn {
            sessid,
            input: text("who"),
            seq: 2,
        }
    );
    assert_eq!(
        server.recv().await,
        PortalToServer::DataIn {
            sessid,
            input: text("say one"),
            seq: 3,
        }
    );
    assert_eq!(
        server.recv().await,
        PortalToServer::DataIn {
            sessid,
            input: text("say two"),
            seq: 4,
        }
    );
}

#[actix::test]
async fn a_server_with_the_wrong_link_secret_is_refused() {
    let handler = portal_handler(Settings::default());
    let mut impostor = fake_server_with(&handler, "guessed").await;
    match impostor.recv().await {
        PortalToServer::Refused { reason } => assert!(reason.contains("secret"), "{reason}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(!handler.send(GetStatus).await.unwrap().server_connected);
    // The real Server still gets in afterwards.
    let mut server = fake_server(&handler).await;
    assert!(matches!(
        server.recv().await,
        PortalToServer::Welcome { .. }
    ));
}

#[actix::test]
async fn a_bad_frame_on_the_link_is_dropped_and_the_link_stays_up() {
    let handler = portal_handler(Settings::default());
    let (sessid, recorder) = open(&handler).await;
    let mut server = fake_server(&handler).await;
    server
        .recv_until(|m| matches!(m, PortalToServer::SessionConnected { .. }).then_some(()))
        .await;
    server
        .stream
        .write_all(&[0, 0, 0, 3, 0xc1, 0xc1, 0xc1])
        .await
        .unwrap();
    server
        .send(&ServerToPortal::DataOut {
            sessid,
            output: Output::Text("still here".into()),
        })
        .await;
    let got = async {
        loop {
            if recorder.0.lock().unwrap().iter().any(|m| {
                matches!(
                    m,
                    ToSession::Output(Output::Text(t)) if t == "still here"
                )
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(DEADLINE, got)
        .await
        .expect("output after a bad frame");
    assert!(handler.send(GetStatus).await.unwrap().server_connected);
}

fn record(id: u64) -> SessionSyncData {
    SessionSyncData::new(
        SessionId(id),
        "telnet",
        "127.0.0.1",
        gatehouse::session::now_millis(),
        ProtocolFlags::default(),
    )
}

#[actix::test]
async fn mode_0_login_kicks_the_older_session() {
    let (_dir, portal) = start_server(Settings::default(), &["Bob"]).await;
    let mut server = accept_server(&portal, vec![]).await;
    for id in [1, 2] {
        server
            .send(&PortalToServer::SessionConnected {
                session: record(id),
            })
            .await;
    }
    let first = SessionId(1);
    let second = SessionId(2);
    server
        .send(&PortalToServer::DataIn {
            sessid: first,
            input: text("connect bob password-1"),

            seq: 1,
        })
        .await;
    server
        .recv_until(|m| {
            matches!(m, ServerToPortal::LoggedIn { session } if session.sessid == first)
                .then_some(())
        })
        .await;
    server
        .send(&PortalToServer::DataIn {
            sessid: second,
            input: text("connect Bob password-1"),

            seq: 1,
        })
        .await;
    let reason = server
        .recv_until(|m| match m {
            ServerToPortal::Disconnect { sessid, reason } if sessid == first => Some(reason),
            ServerToPortal::Disconnect { sessid, .. } => panic!("wrong session {sessid} kicked"),
            _ => None,
        })
        .await;
    assert_eq!(reason, "Logged in from elsewhere. Disconnecting.");
    // The newer session is logged in and answers as the account.
    server
        .send(&PortalToServer::DataIn {
            sessid: second,
            input: text("who"),

            seq: 2,
        })
        .await;
    let who = server
        .recv_until(|m| match m {
            ServerToPortal::DataOut {
                sessid,
                output: Output::Text(t),
            } if sessid == second && t.contains("unique account") => Some(t),
            _ => None,
        })
        .await;
    assert!(
        who.contains("Bob") && who.contains("1 unique account logged in."),
        "{who}"
    );
}

/// Starts the Server's actors (database in a temp dir, with `accounts`
/// created) pointed at a fake Portal's listener, which is answered.
async fn start_server(
    mut settings: Settings,
    accounts: &[&str],
) -> (tempfile::TempDir, TcpListener) {
    let dir = tempfile::tempdir().unwrap();
    let game = GameDir::new(dir.path());
    let portal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    settings.portal.link_addr = portal.local_addr().unwrap().to_string();
    settings.database.pool_size = 2;
    let pools = server::open_database(&game, &settings).unwrap();
    for name in accounts {
        Account::create(
            &mut pools.write.get().unwrap(),
            name,
            "password-1",
            false,
            8,
            0,
        )
        .unwrap();
    }
    let db = db::start(
        pools,
        2,
        settings.database.write_timeout(),
        gatehouse::actors::server::metrics::ServerMetrics::new(),
    );
    let (stop, _stop_rx) = mpsc::unbounded_channel();
    let link = PortalLink::new(
        portal.local_addr().unwrap().to_string(),
        SECRET.to_owned(),
        None,
    )
    .start();
    let portals = gatehouse::actors::server::portals::Portals::default();
    let world = World::new(portals.clone(), db.clone()).start();
    let handler = ServerSessionHandler::new(
        Arc::new(settings),
        portals,
        db,
        world,
        stop,
        gatehouse::actors::server::metrics::ServerMetrics::new(),
        1,
    )
    .start();
    link.do_send(SetHandler(handler));
    (dir, portal)
}

/// A fake Portal that a real Server connects to; answers the handshake.
async fn accept_server(
    portal: &TcpListener,
    sessions: Vec<SessionSyncData>,
) -> Peer<ServerToPortal> {
    let (stream, _) = tokio::time::timeout(DEADLINE, portal.accept())
        .await
        .unwrap()
        .unwrap();
    let mut server: Peer<ServerToPortal> = Peer::new(stream);
    let challenge = new_nonce();
    server
        .send(&PortalToServer::Challenge {
            nonce: challenge.clone(),
        })
        .await;
    let ServerToPortal::Hello { proof, nonce, .. } = server.recv().await else {
        panic!("the Server must answer the challenge with Hello");
    };
    gatehouse::protocols::link::verify_proof(SECRET, LinkRole::Server, &challenge, &proof)
        .expect("the Server's proof");
    server
        .send(&PortalToServer::Welcome {
            version: LINK_PROTOCOL_VERSION,
            proof: link_proof(SECRET, LinkRole::Portal, &nonce),
            portal_epoch: 7,
            portal_started: 0,
            restart_mode: RestartMode::ColdStart,
            sessions,
            portal_id: 0,
            portal_upgraded: false,
        })
        .await;
    server
}

#[actix::test]
async fn a_disconnect_made_while_the_link_was_down_is_not_undone_by_the_resync() {
    let mut settings = Settings::default();
    settings.server.idle_timeout = 1;
    let (_dir, portal) = start_server(settings, &[]).await;

    let mut server = accept_server(&portal, vec![]).await;
    server
        .send(&PortalToServer::SessionConnected { session: record(1) })
        .await;
    server
        .recv_until(|m| matches!(m, ServerToPortal::DataOut { .. }).then_some(()))
        .await;
    // The link drops; the session then times out on the Server, whose
    // Disconnect cannot reach the Portal. The idle timeout is the event under
    // test, so this wait is for it to pass.
    drop(server);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The Portal comes back still listing the session.
    let mut server = accept_server(&portal, vec![record(1)]).await;
    let reason = server
        .recv_until(|m| match m {
            ServerToPortal::Disconnect {
                sessid: SessionId(1),
                reason,
            } => Some(reason),
            _ => None,
        })
        .await;
    assert_eq!(reason, "Idle timeout exceeded, disconnecting.");
}

/// A `WebSocketSession` behind actix-web's test server, registered with a
/// real `PortalSessionHandler` (no game Server behind it).
mod websocket_actor {
    use super::*;
    use actix_web::{web, App};
    use awc::ws::{Frame, Message};
    use futures_util::{SinkExt, StreamExt};
    use gatehouse::protocols::websocket;

    type Conn = actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>;

    fn server(
        timeout: Duration,
        resume_window: u64,
    ) -> (actix_test::TestServer, Addr<PortalSessionHandler>) {
        let mut settings = Settings::default();
        settings.portal.websocket_resume_window = resume_window;
        let handler = portal_handler(settings);
        let data = web::Data::new(handler.clone());
        let limits = web::Data::new(websocket::WebSocketConfig {
            timeout,
            output_buffer_limit: 1 << 20,
            max_input_rate: 16_384,
            forwarded_for: None,
            metrics: gatehouse::actors::portal::metrics::PortalMetrics::new(),
            output_stall_timeout: None,
            socket_send_buffer: 0,
        });
        let srv = actix_test::start(move || {
            App::new()
                .app_data(data.clone())
                .app_data(limits.clone())
                .route("/", web::get().to(websocket::upgrade))
        });
        (srv, handler)
    }

    async fn open(srv: &actix_test::TestServer) -> Conn {
        let (_, conn) = awc::Client::new().ws(srv.url("/")).connect().await.unwrap();
        conn
    }

    /// The first text frame that contains `needle`.
    async fn until(conn: &mut Conn, needle: &str) -> String {
        loop {
            match tokio::time::timeout(DEADLINE, conn.next())
                .await
                .expect("a frame")
            {
                Some(Ok(Frame::Text(t))) => {
                    let text = String::from_utf8_lossy(&t).into_owned();
                    if text.contains(needle) {
                        return text;
                    }
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended waiting for {needle}: {other:?}"),
            }
        }
    }

    async fn sessions_become(handler: &Addr<PortalSessionHandler>, n: usize) {
        let wait = async {
            while handler.send(GetStatus).await.unwrap().sessions != n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(DEADLINE, wait)
            .await
            .expect("session count");
    }

    #[actix::test]
    async fn registers_answers_malformed_frames_and_unregisters() {
        let (srv, handler) = server(Duration::from_secs(30), 60);
        let mut conn = open(&srv).await;
        // The session registers like any other and gets a resume token.
        until(&mut conn, "session_token").await;
        sessions_become(&handler, 1).await;
        conn.send(Message::Text("[1, 2]".into())).await.unwrap();
        let error = until(&mut conn, "Malformed message").await;
        assert!(error.contains("\"error\""), "{error}");
        // The page's own `websocket_close` ends the session at once.
        conn.send(Message::Text(r#"["websocket_close", [], {}]"#.into()))
            .await
            .unwrap();
        sessions_become(&handler, 0).await;
    }

    #[actix::test]
    async fn a_close_frame_leaves_the_session_to_be_resumed() {
        let (srv, handler) = server(Duration::from_secs(30), 3600);
        let mut conn = open(&srv).await;
        let frame = until(&mut conn, "session_token").await;
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        let token = value[1][0].as_str().unwrap().to_owned();
        // What a browser sends when its page goes away, reload or not.
        conn.send(Message::Close(None)).await.unwrap();
        drop(conn);
        let url = srv.url(&format!("/?token={token}"));
        let (_, mut back) = awc::Client::new().ws(url).connect().await.unwrap();
        until(&mut back, "back in your session").await;
        until(&mut back, "session_token").await;
        assert_eq!(handler.send(GetStatus).await.unwrap().sessions, 1);
    }

    #[actix::test]
    async fn an_oversized_frame_closes_only_that_connection() {
        let (srv, _handler) = server(Duration::from_secs(30), 60);
        let mut conn = open(&srv).await;
        until(&mut conn, "session_token").await;
        let huge = format!(r#"["text", ["{}"], {{}}]"#, "x".repeat(100 * 1024));
        let _ = conn.send(Message::Text(huge.into())).await;
        until(&mut conn, "could not be read").await;
        let mut other = open(&srv).await;
        until(&mut other, "session_token").await;
    }

    #[actix::test]
    async fn a_client_that_never_answers_pings_is_dropped() {
        let (srv, handler) = server(Duration::from_secs(1), 1);
        let conn = open(&srv).await;
        sessions_become(&handler, 1).await;
        // Never read: no pong goes back, so the session times out, waits the
        // (short) resume window, and is gone.
        sessions_become(&handler, 0).await;
        drop(conn);
    }
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[actix::test]
async fn a_new_server_takes_over_from_a_dead_one_whose_link_the_portal_has_not_seen_close() {
    let handler = portal_handler(Settings::default());
    let mut first = fake_server_as(&handler, SECRET, dead_pid()).await;
    assert!(matches!(first.recv().await, PortalToServer::Welcome { .. }));
    // Its link is still open, as on a Portal too busy to have read its end.
    let mut second = fake_server_as(&handler, SECRET, std::process::id()).await;
    match second.recv().await {
        PortalToServer::Welcome { restart_mode, .. } => {
            assert_eq!(restart_mode, RestartMode::Crash);
        }
        other => panic!("the new Server was not welcomed: {other:?}"),
    }
    // A third while that one lives is refused, as always.
    let mut third = fake_server_as(&handler, SECRET, dead_pid()).await;
    assert!(matches!(third.recv().await, PortalToServer::Refused { .. }));
}
