//! Every actor of both processes: the Portal's (connections, link listener,
//! Server supervisor), the Server's (sessions, accounts, link client) and the
//! database executor, plus the socket write queue they share.

pub mod db;
pub mod outbound;
pub mod portal;
pub mod server;
