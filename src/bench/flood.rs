//! Hostile load thrown while the players are measured (`--flood`): a connection
//! flood, a command flood, oversized lines or garbage bytes, from an address of its
//! own, so that the report shows what the other players noticed and how the server
//! answered the flood.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::client::{connect_tcp, Script};

/// What the flood clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodKind {
    /// Open connections as fast as they are accepted and never log in; reopen
    /// what the server closes.
    Connections,
    /// Log in, then send `look` as fast as the socket takes it.
    Commands,
    /// Send 100 KiB lines without end.
    LongLines,
    /// Send random bytes (telnet commands included) without end.
    Garbage,
}

/// Length of one oversized line.
const LONG_LINE_BYTES: usize = 100 * 1024;
/// Bytes per write of the command and garbage floods.
const WRITE_BYTES: usize = 16 * 1024;
/// Pause before a flood client reconnects after a refusal.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// How a flood is thrown.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    pub kind: FloodKind,
    pub clients: usize,
    pub from: IpAddr,
    pub target: SocketAddr,
    pub script: Script,
    /// Account names of the command flood are this prefix and a number.
    pub prefix: String,
}

#[derive(Debug, Default)]
struct FloodCounters {
    connections: AtomicU64,
    closed_by_server: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
    warnings: AtomicU64,
    received: AtomicU64,
}

/// What was thrown and how the server answered.
#[derive(Debug, Clone, Serialize)]
pub struct FloodReport {
    pub kind: FloodKind,
    pub clients: usize,
    pub from: String,
    /// Connections opened, reconnects included.
    pub connections: u64,
    /// Connections the server closed (refused, cut at a limit, timed out).
    pub closed_by_server: u64,
    /// Lines sent (commands or oversized lines).
    pub lines_sent: u64,
    pub bytes_sent: u64,
    /// Warnings the server sent back (rate, line length, connection queue).
    pub warnings: u64,
    pub bytes_received: u64,
}

/// The text of the warning each flood should draw, if any.
fn warning_of(kind: FloodKind) -> &'static str {
    match kind {
        FloodKind::Connections => "DoS protection is active",
        FloodKind::Commands => "You entered commands too fast",
        FloodKind::LongLines => "You entered a string that was too long",
        FloodKind::Garbage => "",
    }
}

/// Throws the flood until `stop` turns true; answers what happened.
pub async fn run(plan: FloodPlan, stop: watch::Receiver<bool>) -> FloodReport {
    let counters = Arc::new(FloodCounters::default());
    let plan = Arc::new(plan);
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..plan.clients {
        let (plan, counters, stop) = (Arc::clone(&plan), Arc::clone(&counters), stop.clone());
        tasks.spawn(async move { flood_client(&plan, index, &counters, stop).await });
    }
    let mut stopped = stop.clone();
    let _ = stopped.wait_for(|done| *done).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    FloodReport {
        kind: plan.kind,
        clients: plan.clients,
        from: plan.from.to_string(),
        connections: read(&counters.connections),
        closed_by_server: read(&counters.closed_by_server),
        lines_sent: read(&counters.lines),
        bytes_sent: read(&counters.bytes),
        warnings: read(&counters.warnings),
        bytes_received: read(&counters.received),
    }
}

/// One flood client: (re)connects and throws its kind of load until stopped.
async fn flood_client(
    plan: &FloodPlan,
    index: usize,
    counters: &Arc<FloodCounters>,
    stop: watch::Receiver<bool>,
) {
    let mut logged_in_once = false;
    while !*stop.borrow() {
        let Ok(stream) = connect_tcp(plan.target, Some(plan.from)).await else {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let (mut reader, mut writer) = stream.into_split();
        let warning = warning_of(plan.kind);
        let reading = {
            let counters = Arc::clone(counters);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = reader.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    counters.received.fetch_add(n as u64, Ordering::Relaxed);
                    if !warning.is_empty() {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let seen = text.matches(warning).count() as u64;
                        counters.warnings.fetch_add(seen, Ordering::Relaxed);
                    }
                }
                counters.closed_by_server.fetch_add(1, Ordering::Relaxed);
            })
        };
        let _ = throw(plan, index, &mut writer, counters, &mut logged_in_once).await;
        // Hold the connection (the connection flood) until the server closes it.
        let _ = reading.await;
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

async fn throw(
    plan: &FloodPlan,
    index: usize,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    counters: &FloodCounters,
    logged_in_once: &mut bool,
) -> std::io::Result<()> {
    let mut rng = fastrand::Rng::new();
    let send = |bytes: Vec<u8>, lines: u64| {
        counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        counters.lines.fetch_add(lines, Ordering::Relaxed);
        bytes
    };
    match plan.kind {
        FloodKind::Connections => Ok(()),
        FloodKind::Commands => {
            let name = format!("{}f{index}", plan.prefix);
            let script = &plan.script;
            let mut login = String::new();
            if !*logged_in_once {
                login.push_str(&Script::fill(&script.create, &name, &script.password));
                login.push_str("\r\n");
                *logged_in_once = true;
            }
            login.push_str(&Script::fill(&script.connect, &name, &script.password));
            login.push_str("\r\n");
            writer.write_all(&send(login.into_bytes(), 2)).await?;
            let line = format!("{}\r\n", script.look);
            let per_write = (WRITE_BYTES / line.len()).max(1);
            let burst = line.repeat(per_write).into_bytes();
            loop {
                writer
                    .write_all(&send(burst.clone(), per_write as u64))
                    .await?;
            }
        }
        FloodKind::LongLines => {
            let mut line = vec![b'x'; LONG_LINE_BYTES];
            line.extend_from_slice(b"\r\n");
            loop {
                writer.write_all(&send(line.clone(), 1)).await?;
            }
        }
        FloodKind::Garbage => loop {
            let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..))
                .take(WRITE_BYTES)
                .collect();
            writer.write_all(&send(bytes, 0)).await?;
        },
    }
}
