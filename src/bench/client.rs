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
//!
//! With [`Checks`] (`--chaos`) the player also reads every line for the
//! replies it expects exactly once, numbered (each action's marker reply and
//! its own say echoes), and keeps a [`Tally`] of those seen, seen again,
//! late, and never seen.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

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
    /// With `--chaos`, sent after each action in the same write; `{player}`
    /// and `{n}` are filled in. Unique per player and action.
    pub marker: String,
    /// The marker's reply; `{marker}` is filled in.
    pub marker_ok: String,
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

    /// Player `index`'s checks: its markers and their replies, and its own
    /// say echoes (lines with `say_ok` and `say_text`, whose `{player}` and
    /// `{n}` are filled in). `None` when a template has no place for the
    /// number, or the reply no place for the marker.
    pub fn checks(&self, index: usize, say_text: &str) -> Option<Checks> {
        let player = index.to_string();
        let marker = self.marker.replace("{player}", &player);
        if !self.marker_ok.contains("{marker}") {
            return None;
        }
        Some(Checks {
            marker_reply: Numbered::new(&self.marker_ok.replace("{marker}", &marker))?,
            marker: Numbered::new(&marker)?,
            echo_pattern: self.say_ok.clone(),
            echo: Numbered::new(&say_text.replace("{player}", &player))?,
            markers: Tally::default(),
            echoes: Tally::default(),
            longest_wait: Duration::ZERO,
        })
    }
}

/// A text with one number in it, such as `chk-3-{n}`: filled in to send,
/// found again in what comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    before: String,
    after: String,
}

impl Numbered {
    /// `template` must hold `{n}` exactly once.
    pub fn new(template: &str) -> Option<Self> {
        let (before, after) = template.split_once("{n}")?;
        if after.contains("{n}") {
            return None;
        }
        Some(Self {
            before: before.to_owned(),
            after: after.to_owned(),
        })
    }

    /// The text for number `n`.
    pub fn fill(&self, n: u64) -> String {
        format!("{}{n}{}", self.before, self.after)
    }

    /// The number of the first filled-in copy of the template in `line`. All
    /// the digits are read, so `chk-3-5` is not found in `chk-3-50`.
    pub fn find(&self, line: &str) -> Option<u64> {
        line.match_indices(self.before.as_str())
            .find_map(|(at, _)| {
                let rest = &line[at + self.before.len()..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || !rest[digits..].starts_with(self.after.as_str()) {
                    return None;
                }
                rest[..digits].parse().ok()
            })
    }
}

/// Replies a player expects exactly once each, by number: one seen a second
/// time is duplicated, one not seen by its deadline is lost. A reply that
/// comes after its deadline stays lost and is counted late, never received.
#[derive(Debug, Default)]
pub struct Tally {
    entries: HashMap<u64, Entry>,
    /// Numbers in the order they were sent (so by deadline) not seen yet.
    waiting: VecDeque<u64>,
    counts: TallyCounts,
    /// Each lost, late or duplicated reply, to name in the report.
    odd: Vec<OddSighting>,
}

/// What was wrong with one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    /// Not seen by its deadline.
    Lost,
    /// Seen after its deadline (and counted lost).
    Late,
    /// Seen once more than expected.
    Duplicated,
}

impl Oddity {
    /// The word the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Oddity::Lost => "lost",
            Oddity::Late => "late",
            Oddity::Duplicated => "duplicated",
        }
    }
}

/// One lost, late or duplicated reply: its number, when its command was
/// sent (unknown for a reply never asked for), and when it was seen (for a
/// lost one, when it was given up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OddSighting {
    /// What was wrong.
    pub oddity: Oddity,
    /// The reply's number.
    pub n: u64,
    /// When its command was sent.
    pub sent: Option<Instant>,
    /// When it was seen, or given up.
    pub at: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Entry {
    Waiting {
        sent: Instant,
        deadline: Instant,
    },
    /// Seen in time.
    Received {
        sent: Instant,
    },
    /// Not seen in time.
    Lost {
        sent: Instant,
    },
    /// Not seen in time, seen since.
    LateSeen {
        sent: Instant,
    },
}

impl Entry {
    fn sent(self) -> Instant {
        match self {
            Entry::Waiting { sent, .. }
            | Entry::Received { sent }
            | Entry::Lost { sent }
            | Entry::LateSeen { sent } => sent,
        }
    }
}

/// What a [`Tally`] counted (since it was last taken).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TallyCounts {
    /// Replies seen for the first time before their deadline.
    pub received: u64,
    /// Replies not seen by their deadline.
    pub lost: u64,
    /// Lost replies that came after all.
    pub late: u64,
    /// Sightings beyond the one expected (of a reply seen already, or of one
    /// never asked for).
    pub duplicated: u64,
}

/// What one sighting of a numbered reply was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// The first, in time; how long it took.
    First(Duration),
    /// The first, after its deadline; how long it took.
    Late(Duration),
    /// Not the first, or never asked for.
    Again,
}

impl Tally {
    /// Reply `n` is expected once, by `deadline`.
    pub fn expect(&mut self, n: u64, sent: Instant, deadline: Instant) {
        self.entries.insert(n, Entry::Waiting { sent, deadline });
        self.waiting.push_back(n);
    }

    /// Reply `n` arrived at `now`.
    pub fn seen(&mut self, n: u64, now: Instant) -> Sighting {
        self.expire(now);
        let sighting = match self.entries.get(&n) {
            Some(&Entry::Waiting { sent, .. }) => {
                self.counts.received += 1;
                Sighting::First(now.saturating_duration_since(sent))
            }
            Some(&Entry::Lost { sent }) => {
                self.counts.late += 1;
                self.note(Oddity::Late, n, Some(sent), now);
                Sighting::Late(now.saturating_duration_since(sent))
            }
            Some(Entry::Received { .. } | Entry::LateSeen { .. }) | None => {
                self.counts.duplicated += 1;
                self.note(Oddity::Duplicated, n, None, now);
                Sighting::Again
            }
        };
        if let Some(&entry) = self.entries.get(&n) {
            let sent = entry.sent();
            match sighting {
                Sighting::First(_) => self.entries.insert(n, Entry::Received { sent }),
                Sighting::Late(_) => self.entries.insert(n, Entry::LateSeen { sent }),
                Sighting::Again => None,
            };
        }
        sighting
    }

    /// True if reply `n` was seen before its deadline.
    pub fn received(&self, n: u64) -> bool {
        matches!(self.entries.get(&n), Some(Entry::Received { .. }))
    }

    /// Counts as lost every reply whose deadline passed before `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&n) = self.waiting.front() {
            match self.entries.get(&n) {
                Some(&Entry::Waiting { sent, deadline }) if deadline <= now => {
                    self.entries.insert(n, Entry::Lost { sent });
                    self.counts.lost += 1;
                    self.note(Oddity::Lost, n, Some(sent), deadline);
                }
                Some(Entry::Waiting { .. }) => return,
                _ => {}
            }
            self.waiting.pop_front();
        }
    }

    /// Counts every reply still waited for as lost (the connection is gone).
    pub fn give_up(&mut self) {
        let now = Instant::now();
        while let Some(n) = self.waiting.pop_front() {
            if let Some(&Entry::Waiting { sent, .. }) = self.entries.get(&n) {
                self.entries.insert(n, Entry::Lost { sent });
                self.counts.lost += 1;
                self.note(Oddity::Lost, n, Some(sent), now);
            }
        }
    }

    fn note(&mut self, oddity: Oddity, n: u64, sent: Option<Instant>, at: Instant) {
        // The sent time of a duplicate is that of its command.
        let sent = sent.or(self.entries.get(&n).map(|e| e.sent()));
        self.odd.push(OddSighting {
            oddity,
            n,
            sent,
            at,
        });
    }

    /// The lost, late and duplicated replies since the last call.
    pub fn take_odd(&mut self) -> Vec<OddSighting> {
        std::mem::take(&mut self.odd)
    }

    /// The last deadline of the replies still waited for.
    pub fn last_deadline(&self) -> Option<Instant> {
        self.waiting
            .iter()
            .filter_map(|n| match self.entries.get(n) {
                Some(&Entry::Waiting { deadline, .. }) => Some(deadline),
                _ => None,
            })
            .max()
    }

    /// The counts since the last call.
    pub fn take_counts(&mut self) -> TallyCounts {
        std::mem::take(&mut self.counts)
    }
}

/// The replies one player expects exactly once: a marker reply after each
/// action, and the echo of each of its says.
#[derive(Debug)]
pub struct Checks {
    marker: Numbered,
    marker_reply: Numbered,
    /// A say echo is a line with this (`say_ok`) and [`Checks::echo`].
    echo_pattern: String,
    echo: Numbered,
    /// Marker replies, by action number.
    pub markers: Tally,
    /// Say echoes, by say number.
    pub echoes: Tally,
    /// The longest a marker reply took (late ones too), since last taken.
    longest_wait: Duration,
}

impl Checks {
    /// The marker command for action `n`.
    pub fn marker(&self, n: u64) -> String {
        self.marker.fill(n)
    }

    /// The marker reply for action `n`, to wait for.
    pub fn marker_reply(&self, n: u64) -> String {
        self.marker_reply.fill(n)
    }

    /// Files one received line.
    pub fn line(&mut self, line: &str, now: Instant) {
        if let Some(n) = self.marker_reply.find(line) {
            if let Sighting::First(wait) | Sighting::Late(wait) = self.markers.seen(n, now) {
                self.longest_wait = self.longest_wait.max(wait);
            }
        } else if line.contains(self.echo_pattern.as_str()) {
            if let Some(n) = self.echo.find(line) {
                self.echoes.seen(n, now);
            }
        }
    }

    /// Counts as lost what passed its deadline before `now`.
    pub fn expire(&mut self, now: Instant) {
        self.markers.expire(now);
        self.echoes.expire(now);
    }

    /// The last deadline of anything still waited for.
    pub fn last_deadline(&self) -> Option<Instant> {
        self.markers
            .last_deadline()
            .max(self.echoes.last_deadline())
    }

    /// The longest marker round trip since the last call.
    pub fn take_longest_wait(&mut self) -> Duration {
        std::mem::take(&mut self.longest_wait)
    }

    /// The lost, late and duplicated replies since the last call, each with
    /// the text expected.
    pub fn take_odd(&mut self) -> Vec<(OddSighting, String)> {
        let markers = self.markers.take_odd().into_iter();
        let markers = markers.map(|o| (o, self.marker_reply.fill(o.n)));
        let echoes = self.echoes.take_odd().into_iter();
        let echoes = echoes.map(|o| (o, format!("{} {}", self.echo_pattern, self.echo.fill(o.n))));
        markers.chain(echoes).collect()
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
    /// With `--chaos`: the replies expected exactly once.
    checks: Option<Checks>,
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
            checks: None,
        })
    }

    /// From now on every line received is filed with `checks`.
    pub fn set_checks(&mut self, checks: Checks) {
        self.checks = Some(checks);
    }

    /// The checks given with [`Player::set_checks`].
    pub fn checks_mut(&mut self) -> Option<&mut Checks> {
        self.checks.as_mut()
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
        self.send_lines(&[line]).await
    }

    /// Sends several lines in one write, so they arrive (and are in flight)
    /// together.
    pub async fn send_lines(&mut self, lines: &[&str]) -> Result<(), WaitError> {
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
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
        let now = Instant::now();
        for event in self.events.drain(..) {
            match event {
                TelnetEvent::Line(line) => {
                    self.lines += 1;
                    if let Some(checks) = &mut self.checks {
                        checks.line(&line, now);
                    }
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

    #[test]
    fn a_numbered_text_is_found_by_all_its_digits() {
        let marker = Numbered::new("Command 'chk-3-{n}' is not available.").expect("one {n}");
        assert_eq!(marker.fill(5), "Command 'chk-3-5' is not available.");
        let line = "Command 'chk-3-5' is not available. Type \"help\" for help.";
        assert_eq!(marker.find(line), Some(5));
        assert_eq!(
            marker.find("Command 'chk-3-50' is not available."),
            Some(50)
        );
        assert_eq!(marker.find("Command 'chk-13-5' is not available."), None);
        assert_eq!(marker.find("Command 'chk-3-' is not available."), None);
        let echo = Numbered::new("hello from 3 number {n}").expect("one {n}");
        assert_eq!(echo.find("You say, \"hello from 3 number 12\""), Some(12));
        assert_eq!(echo.find("You say, \"hello from 13 number 12\""), None);
        assert!(Numbered::new("no number").is_none());
        assert!(Numbered::new("{n} and {n}").is_none());
    }

    #[test]
    fn each_reply_is_received_once_lost_once_or_duplicated() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut tally = Tally::default();
        for n in 1..=4 {
            tally.expect(n, at(n * 10), at(n * 10 + 1_000));
        }
        assert_eq!(
            tally.seen(1, at(15)),
            Sighting::First(Duration::from_millis(5))
        );
        assert_eq!(tally.seen(1, at(16)), Sighting::Again);
        assert!(tally.received(1) && !tally.received(2));
        assert_eq!(
            tally.seen(2, at(500)),
            Sighting::First(Duration::from_millis(480))
        );
        // Never sent: one more than expected.
        assert_eq!(tally.seen(99, at(600)), Sighting::Again);
        // 3 and 4 pass their deadlines; 3 comes late, then again.
        tally.expire(at(1_035));
        assert_eq!(tally.last_deadline(), Some(at(1_040)));
        assert_eq!(
            tally.seen(3, at(1_500)),
            Sighting::Late(Duration::from_millis(1_470))
        );
        assert_eq!(tally.seen(3, at(1_600)), Sighting::Again);
        assert!(!tally.received(3) && !tally.received(4));
        assert_eq!(tally.last_deadline(), None);
        assert_eq!(
            tally.take_counts(),
            TallyCounts {
                received: 2,
                lost: 2,
                late: 1,
                duplicated: 3
            }
        );
        // Taken: counted once only.
        assert_eq!(tally.take_counts(), TallyCounts::default());
        // Each oddity is named: 1 and 3 twice, 99 never asked for, 3 and 4
        // lost (at their deadlines), 3 late.
        let odd: Vec<(Oddity, u64, Option<Instant>, Instant)> = tally
            .take_odd()
            .into_iter()
            .map(|o| (o.oddity, o.n, o.sent, o.at))
            .collect();
        assert_eq!(
            odd,
            [
                (Oddity::Duplicated, 1, Some(at(10)), at(16)),
                (Oddity::Duplicated, 99, None, at(600)),
                (Oddity::Lost, 3, Some(at(30)), at(1_030)),
                (Oddity::Lost, 4, Some(at(40)), at(1_040)),
                (Oddity::Late, 3, Some(at(30)), at(1_500)),
                (Oddity::Duplicated, 3, Some(at(30)), at(1_600)),
            ]
        );
        // A reply late but not yet expired is late, not received; expiring
        // afterwards does not count it lost a second time.
        tally.expect(5, at(2_000), at(3_000));
        assert_eq!(
            tally.seen(5, at(3_500)),
            Sighting::Late(Duration::from_millis(1_500))
        );
        tally.expire(at(4_000));
        tally.expect(6, at(4_000), at(5_000));
        tally.give_up();
        tally.give_up();
        assert_eq!(
            tally.take_counts(),
            TallyCounts {
                received: 0,
                lost: 2,
                late: 1,
                duplicated: 0
            }
        );
    }

    #[test]
    fn checks_tell_markers_and_own_say_echoes_from_other_lines() {
        let text = String::new;
        let script = Script {
            greeting: text(),
            create: text(),
            create_ok: text(),
            create_taken: text(),
            connect: text(),
            login_ok: text(),
            look: text(),
            look_ok: text(),
            say: text(),
            say_ok: "You say".into(),
            who: text(),
            who_ok: text(),
            move_ok: text(),
            exits_prefix: text(),
            keepalive: text(),
            password: text(),
            refused: text(),
            marker: "chk-{player}-{n}".into(),
            marker_ok: "Command '{marker}' is not available.".into(),
        };
        let mut checks = script
            .checks(3, "hello from {player} number {n}")
            .expect("valid templates");
        assert_eq!(checks.marker(7), "chk-3-7");
        assert_eq!(
            checks.marker_reply(7),
            "Command 'chk-3-7' is not available."
        );
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        checks.markers.expect(7, t0, later);
        checks.echoes.expect(2, t0, later);
        for line in [
            "bobp4 says, \"hello from 3 number 2\"",
            "You say, \"hello from 4 number 2\"",
            "Command 'chk-4-7' is not available.",
            "You say, \"hello from 3 number 2\"",
            "Command 'chk-3-7' is not available. Type \"help\" for help.",
            "Command 'chk-3-7' is not available. Type \"help\" for help.",
        ] {
            checks.line(line, t0 + Duration::from_millis(40));
        }
        assert_eq!(checks.echoes.take_counts().received, 1);
        let markers = checks.markers.take_counts();
        assert_eq!((markers.received, markers.duplicated), (1, 1));
        assert_eq!(checks.take_longest_wait(), Duration::from_millis(40));
        assert!(Script {
            marker: "chk".into(),
            ..script.clone()
        }
        .checks(3, "x {n}")
        .is_none());
        assert!(Script {
            marker_ok: "no marker".into(),
            ..script
        }
        .checks(3, "x {n}")
        .is_none());
    }
}
