//! One simulated player on a telnet connection: the command script it
//! follows (configurable, so any MUD that understands create/connect/look/
//! say/who can be measured), and the reader that decides when a reply has
//! fully arrived.
//!
//! A reply is complete when a line containing the command's pattern has
//! arrived and the stream is at a line end: the rest of that output (a
//! room's character list after its exits) came in the same burst. Telnet
//! negotiation is refused with the crate's own parser (WONT/DONT), as a
//! plain client does.

use std::net::SocketAddr;
use std::str::FromStr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::protocols::telnet::parser::{TelnetEvent, TelnetLimits, TelnetParser};

/// Bytes read per syscall; small, since 10,000 players each hold one.
const READ_CHUNK: usize = 4096;

/// What a player types and what it waits for.
#[derive(Debug, Clone)]
pub struct Script {
    /// Waited for after connecting (the connection screen); empty: none.
    pub greeting: String,
    /// `{name}` and `{password}` are filled in; empty: accounts exist.
    pub create: String,
    pub create_ok: String,
    pub create_taken: String,
    pub connect: String,
    pub login_ok: String,
    /// The game's answer when it cannot create or log in right now (its
    /// database failed): the login counts as failed at once instead of
    /// waiting out the login timeout. Empty: none.
    pub refused: String,
    pub look: String,
    pub look_ok: String,
    /// `{text}` is filled in.
    pub say: String,
    pub say_ok: String,
    pub who: String,
    pub who_ok: String,
    /// Seen after moving through an exit.
    pub move_ok: String,
    /// The line listing a room's exits starts with this; the rest is a
    /// comma-separated list of exit names a player can type.
    pub exits_prefix: String,
    /// Sent by idle players; never answered.
    pub keepalive: String,
    pub password: String,
}

impl Script {
    /// The script for a plain line-echo server: no login, every command
    /// answered by itself.
    pub fn echo(&self) -> Self {
        Self {
            greeting: String::new(),
            create: String::new(),
            connect: String::new(),
            look_ok: self.look.clone(),
            say_ok: "say ".into(),
            who_ok: self.who.clone(),
            move_ok: self.look.clone(),
            exits_prefix: "\u{0}".into(),
            ..self.clone()
        }
    }

    pub fn fill(template: &str, name: &str, password: &str) -> String {
        template
            .replace("{name}", name)
            .replace("{password}", password)
    }
}

/// The actions a player picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Look,
    Say,
    Who,
    Move,
}

/// Weights of the actions, as given by `look=40,say=30,who=10,move=20`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: [(Action, u32); 4],
    total: u32,
}

impl Mix {
    pub fn pick(&self, rng: &mut fastrand::Rng) -> Action {
        let mut roll = rng.u32(0..self.total);
        for &(action, weight) in &self.weights {
            if roll < weight {
                return action;
            }
            roll -= weight;
        }
        Action::Look
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut weights = [
            (Action::Look, 0),
            (Action::Say, 0),
            (Action::Who, 0),
            (Action::Move, 0),
        ];
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not action=weight"))?;
            let action = match name.trim() {
                "look" => Action::Look,
                "say" => Action::Say,
                "who" => Action::Who,
                "move" => Action::Move,
                other => return Err(format!("unknown action '{other}' (look, say, who, move)")),
            };
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("'{weight}' is not a whole number"))?;
            if let Some(slot) = weights.iter_mut().find(|(a, _)| *a == action) {
                slot.1 = weight;
            }
        }
        let total = weights.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err("the action weights add up to 0".into());
        }
        Ok(Self { weights, total })
    }
}

/// Why a wait ended without the expected reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    Timeout,
    Closed,
    /// The game answered, refusing (`Script::refused`).
    Refused,
}

/// One telnet connection as a player uses it.
pub struct Player {
    stream: TcpStream,
    parser: TelnetParser,
    events: Vec<TelnetEvent>,
    chunk: Box<[u8]>,
    exits: Vec<String>,
    exits_prefix: String,
    /// Lines received since [`Player::take_lines`] was last called.
    lines: u64,
}

/// Connects to `addr`, from the local address `from` when one is given (a test or
/// bench on one machine plays several clients' addresses from 127.0.0.0/8).
pub async fn connect_tcp(
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(from) = from else {
        return TcpStream::connect(addr).await;
    };
    let socket = match from {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

impl Player {
    /// Connects to `addr`, from the address `from` when one is given.
    pub async fn connect(
        addr: SocketAddr,
        from: Option<std::net::IpAddr>,
        exits_prefix: &str,
    ) -> std::io::Result<Self> {
        let stream = connect_tcp(addr, from).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            parser: TelnetParser::new(TelnetLimits {
                max_line_chars: 0,
                max_subnegotiation_bytes: 0,
            }),
            events: Vec::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            exits: Vec::new(),
            exits_prefix: exits_prefix.to_owned(),
            lines: 0,
        })
    }

    /// Lines received (replies and other players' chatter) since the last call.
    pub fn take_lines(&mut self) -> u64 {
        std::mem::take(&mut self.lines)
    }

    /// Exit names from the last room description seen.
    pub fn exits(&self) -> &[String] {
        &self.exits
    }

    pub async fn send(&mut self, line: &str) -> Result<(), WaitError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|_| WaitError::Closed)
    }

    /// Reads until a line containing `pattern` arrived and no line is half
    /// read, or until `deadline`.
    pub async fn expect(&mut self, pattern: &str, deadline: Instant) -> Result<(), WaitError> {
        self.expect_any(&[pattern], deadline).await.map(drop)
    }

    /// As [`Self::expect`] for the first of several patterns; answers which.
    pub async fn expect_any(
        &mut self,
        patterns: &[&str],
        deadline: Instant,
    ) -> Result<usize, WaitError> {
        let mut seen = None;
        loop {
            let read = timeout_at(deadline, self.stream.read(&mut self.chunk)).await;
            let n = match read {
                Err(_) => return Err(WaitError::Timeout),
                Ok(Ok(0) | Err(_)) => return Err(WaitError::Closed),
                Ok(Ok(n)) => n,
            };
            let matched = self.take(n, patterns).await?;
            seen = seen.or(matched);
            if let (Some(index), false) = (seen, self.parser.has_partial_line()) {
                return Ok(index);
            }
        }
    }

    /// Reads and discards (other players' chatter) until `until`.
    pub async fn drain_until(&mut self, until: Instant) -> Result<(), WaitError> {
        loop {
            match timeout_at(until, self.stream.read(&mut self.chunk)).await {
                Err(_) => return Ok(()),
                Ok(Ok(0) | Err(_)) => return Err(WaitError::Closed),
                Ok(Ok(n)) => {
                    self.take(n, &[]).await?;
                }
            }
        }
    }

    /// Parses `n` bytes from the chunk: answers negotiation, notes exits,
    /// and says which of `patterns` a line matched first.
    async fn take(&mut self, n: usize, patterns: &[&str]) -> Result<Option<usize>, WaitError> {
        self.parser.feed(&self.chunk[..n], &mut self.events);
        let mut matched = None;
        let mut replies = Vec::new();
        for event in self.events.drain(..) {
            match event {
                TelnetEvent::Line(line) => {
                    self.lines += 1;
                    if let Some(list) = line.strip_prefix(self.exits_prefix.as_str()) {
                        self.exits = list
                            .split(',')
                            .map(|e| e.trim().to_owned())
                            .filter(|e| !e.is_empty())
                            .collect();
                    }
                    if matched.is_none() {
                        matched = patterns.iter().position(|p| line.contains(p));
                    }
                }
                TelnetEvent::Send(bytes) => replies.extend_from_slice(&bytes),
                _ => {}
            }
        }
        if !replies.is_empty() {
            self.stream
                .write_all(&replies)
                .await
                .map_err(|_| WaitError::Closed)?;
        }
        Ok(matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix: Mix = "look=40,say=30,who=10,move=20"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            let i = match mix.pick(&mut rng) {
                Action::Look => 0,
                Action::Say => 1,
                Action::Who => 2,
                Action::Move => 3,
            };
            counts[i] += 1;
        }
        // Within 1% of 40/30/10/20.
        for (count, expected) in counts.iter().zip([40_000, 30_000, 10_000, 20_000]) {
            assert!(count.abs_diff(expected) < 1_000, "{counts:?}");
        }
        let only_look: Mix = "look=1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!((0..100).all(|_| only_look.pick(&mut rng) == Action::Look));
    }

    #[test]
    fn bad_mixes_are_refused_with_a_reason() {
        assert!("look=0".parse::<Mix>().unwrap_err().contains("add up to 0"));
        assert!("dance=3"
            .parse::<Mix>()
            .unwrap_err()
            .contains("unknown action"));
        assert!("look".parse::<Mix>().unwrap_err().contains("action=weight"));
        assert!("look=x"
            .parse::<Mix>()
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn templates_are_filled() {
        assert_eq!(
            Script::fill("connect {name} {password}", "bob", "pw"),
            "connect bob pw"
        );
    }
}
