//! gatehouse: a MUD server whose connection layer follows Evennia's
//! Portal/Server split.
//!
//! Code map:
//! - [`settings`]: typed settings from `settings.toml` and `GATEHOUSE__*` env.
//! - [`session`]: session ids and the synced session record both processes share.
//! - [`protocols`]: the link wire format; telnet (sans-IO parser, MUD option suite,
//!   session actor) and telnet over TLS; the websocket session and the web client page;
//!   colour markup.
//! - [`actors::portal`]: the Portal process: session handler, link listener, Server
//!   supervisor, HTTP servers, the client sockets' kernel side, the live upgrade's
//!   handover.
//! - [`actors::server`]: the Server process: session handler, sessions, accounts and their
//!   puppet rules, the world, throttles, link client, input acknowledgements.
//! - [`actors::db`]: the SyncArbiter that runs every diesel query and password hash.
//! - [`models`]: diesel schema, models and queries.
//! - [`commands`]: command parsing, out-of-band input functions, and the texts players read.
//! - [`bench`](mod@bench): `gatehouse bench`, the load tester (simulated telnet players, latency
//!   statistics, process sampling, the echo baseline, chaos runs).
//! - [`control`]: the game dir's `run/` files the CLI uses to steer a running game.
//! - [`status`]: what `gatehouse status` prints, from those files and both processes' `/metrics`.
//! - [`fuzzing`]: the fuzz targets' entry points, shared with the corpus replay test.
//!
//! See ARCHITECTURE.md for the invariants and boundaries.

pub mod actors;
pub mod bench;
pub mod commands;
pub mod control;
pub mod fuzzing;
pub mod models;
pub mod protocols;
pub mod session;
pub mod settings;
pub mod status;
