//! Several Portals serving one Server, against the real binaries: two
//! `gatehouse portal` processes (each with its own `portal.id`, game dir and
//! ports) and one `gatehouse server` connected to both.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use common::{wait_for, Client, Game, ServerProcess, DEADLINE};

const PASSWORD: &str = "correct-horse-9";
const SECRET: &str = "two-portals-one-secret";

struct Topology {
    north: Game,
    south: Game,
    server: Option<ServerProcess>,
}

impl Topology {
    fn start() -> Self {
        let portal = |id: &str| {
            Game::start_portal(&[
                ("GATEHOUSE__PORTAL__ID", id),
                ("GATEHOUSE__PORTAL__LINK_SECRET", SECRET),
            ])
        };
        let (north, south) = (portal("1"), portal("2"));
        let mut topology = Topology {
            north,
            south,
            server: None,
        };
        topology.start_server();
        topology
    }

    /// The Server lives in the north Portal's game dir (its database).
    fn start_server(&mut self) {
        let addrs = format!(
            "[\"{}\", \"{}\"]",
            self.north.link_addr(),
            self.south.link_addr()
        );
        self.server = Some(self.north.spawn_server_with(&[
            ("GATEHOUSE__SERVER__PORTAL_ADDRS", addrs.as_str()),
            ("GATEHOUSE__SERVER__PORTAL_GRACE", "1"),
            ("GATEHOUSE__SERVER__MULTISESSION_MODE", "1"),
            ("GATEHOUSE__PORTAL__LINK_SECRET", SECRET),
        ]));
        self.north.wait_server_connected();
        self.south.wait_server_connected();
    }

    /// Stops the Server process and starts a new one: what a reload is when no
    /// Portal supervises the Server.
    fn restart_server(&mut self) {
        let mut old = self.server.take().expect("a Server");
        kill(Pid::from_raw(old.0.id() as i32), Signal::SIGTERM).unwrap();
        old.0.wait().unwrap();
        self.start_server();
    }
}

#[test]
fn two_portals_share_one_world_and_survive_a_reload_and_the_loss_of_either() {
    let mut t = Topology::start();
    let mut ann: Client = t.north.connect();
    ann.create_and_login("Ann", PASSWORD);
    let mut ben: Client = t.south.connect();
    ben.create_and_login("Ben", PASSWORD);

    // One world: both are listed, and each hears the other.
    for c in [&mut ann, &mut ben] {
        let who = c.who();
        assert!(who.contains("Ann") && who.contains("Ben"), "{who}");
    }
    ann.send("say hello from the north");
    ben.expect("Ann says, \"hello from the north\"");
    ben.send("say and from the south");
    ann.expect("Ben says, \"and from the south\"");

    // Session ids come from each Portal's own range, and `sessions` lists an
    // account's sessions on every Portal (mode 1: Ann also through the south).
    ben.send("sessions");
    ben.expect("Your current session(s):");
    let table = ben.expect("telnet");
    assert!(table.contains("*2000000000000001"), "{table}");
    let mut ann_south: Client = t.south.connect();
    ann_south.login("Ann", PASSWORD);
    ann_south.send("sessions");
    ann_south.expect("Your current session(s):");
    let table = ann_south.sync();
    assert!(
        table.contains("1000000000000001") && table.contains("*2000000000000002"),
        "{table}"
    );
    ann_south.send("quit");
    ann_south.expect_closed();

    // The Server restarts: both Portals resync, nobody is logged out.
    t.restart_server();
    for c in [&mut ann, &mut ben] {
        c.expect("Server restarted.");
        let who = c.who();
        assert!(who.contains("2 unique accounts logged in."), "{who}");
    }

    // The south Portal dies: its player is gone, the north's stays.
    let south_pid = t.south.child.as_ref().unwrap().id();
    kill(Pid::from_raw(south_pid as i32), Signal::SIGKILL).unwrap();
    ben.expect_closed();
    wait_for("Ben to leave the world", DEADLINE, || {
        let who = ann.who();
        (!who.contains("Ben")).then_some(())
    });
    ann.send("look");
    ann.expect("Exits:");
    let who = ann.who();
    assert!(who.contains("1 unique account logged in."), "{who}");
}

#[test]
fn a_portal_with_another_link_secret_is_refused_and_the_others_carry_on() {
    let north = Game::start_portal(&[
        ("GATEHOUSE__PORTAL__ID", "1"),
        ("GATEHOUSE__PORTAL__LINK_SECRET", SECRET),
    ]);
    let stranger = Game::start_portal(&[
        ("GATEHOUSE__PORTAL__ID", "2"),
        ("GATEHOUSE__PORTAL__LINK_SECRET", "not-the-secret"),
    ]);
    let addrs = format!("[\"{}\", \"{}\"]", north.link_addr(), stranger.link_addr());
    let _server = north.spawn_server_with(&[
        ("GATEHOUSE__SERVER__PORTAL_ADDRS", addrs.as_str()),
        ("GATEHOUSE__PORTAL__LINK_SECRET", SECRET),
    ]);
    north.wait_server_connected();
    let mut ann = north.connect();
    ann.create_and_login("Ann", PASSWORD);
    wait_for("the refusal", DEADLINE, || {
        let log = stranger.log();
        log.contains("refusing Server").then_some(())
    });
    assert!(!stranger.status().contains("server_connected = true"));
    // A player at the stranger Portal waits for a game that never comes.
    let mut lost = stranger.connect();
    lost.expect("The game is starting or restarting");
    ann.send("look");
    ann.expect("Exits:");
}
