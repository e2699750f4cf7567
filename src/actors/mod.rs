//! Every actor of both processes: the Portal's (connections, link listener,
//! Server supervisor), the Server's (sessions, accounts, link client) and the
//! database executor, plus the socket write queue they share.

pub mod db;
pub mod outbound;
pub mod portal;
pub mod server;

/// Mailbox size of the actors every session's traffic passes through (the
/// session handlers and the link ends). Bursts wait in the mailbox instead of
/// making `send` callers wait; `do_send` is never limited.
pub const HUB_MAILBOX_CAPACITY: usize = 1 << 20;
