//! A socket's write half as a queue: actors push whole byte chunks without
//! waiting, and one writer task per socket drains them in order.
//!
//! The queued byte count is shared with the owner, so a client that stops
//! reading can be cut off at a configured limit instead of growing memory
//! without bound. Dropping every [`Outbound`] handle lets the writer finish what
//! is queued, then shut the socket's write side down; its join handle says when
//! that is done (a process that is about to exit waits for it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::protocols::link::{encode_frame, MAX_FRAME_BYTES};

/// The sending side of a socket's write queue.
#[derive(Debug, Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// The writer task is gone (the peer closed or a write failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

impl Outbound {
    /// Starts the writer task for `writer` on the current (actix) arbiter.
    pub fn spawn<W>(writer: W) -> (Self, JoinHandle<()>)
    where
        W: AsyncWrite + Unpin + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = actix_rt::spawn(drain(writer, rx, Arc::clone(&queued)));
        (Self { tx, queued }, task)
    }

    /// Queues `bytes`; returns how many bytes are now waiting to be written.
    pub fn send(&self, bytes: Bytes) -> Result<usize, Closed> {
        let len = bytes.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        if self.tx.send(bytes).is_err() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(Closed);
        }
        Ok(before + len)
    }

    /// Encodes `message` as one link frame and queues it. A message too large
    /// for a frame, or a closed link, is logged and dropped: a link frame is
    /// never half sent.
    pub fn send_frame<T: serde::Serialize>(&self, message: &T) {
        match encode_frame(message, MAX_FRAME_BYTES) {
            Ok(frame) => {
                if self.send(frame).is_err() {
                    log::debug!("link: closed, dropped a frame");
                }
            }
            Err(e) => log::error!("link: not sent: {e}"),
        }
    }

    /// Bytes queued and not yet handed to the socket.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// Most bytes one write gathers from the queue.
const BATCH_BYTES: usize = 64 * 1024;

/// Writes all of `bytes`, taking each write's share off the queued count as soon as
/// the socket has it: a client that reads slowly shows its progress byte by byte,
/// not once per batch. As many system calls as `write_all`.
async fn write_counted<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    queued: &AtomicUsize,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = writer.write(bytes).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        queued.fetch_sub(written, Ordering::AcqRel);
        bytes = &bytes[written..];
    }
    Ok(())
}

/// Writes the queue in order. Whatever is already queued when the writer
/// wakes goes out in one write (up to [`BATCH_BYTES`]): under load a session
/// gets many messages per event-loop turn, and one syscall for all of them
/// instead of one each is most of what the Portal saves.
async fn drain<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(first) = rx.recv().await {
        let result = match rx.try_recv() {
            Err(_) => write_counted(&mut writer, &first, &queued).await,
            Ok(second) => {
                // A fresh buffer per batch, dropped after the write: one kept
                // per session would stay at its burst size for good.
                let mut batch = BytesMut::with_capacity((first.len() + second.len()) * 2);
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                while batch.len() < BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(next) => batch.extend_from_slice(&next),
                        Err(_) => break,
                    }
                }
                write_counted(&mut writer, &batch, &queued).await
            }
        };
        if let Err(e) = result {
            log::debug!("write failed, dropping the rest of the queue: {e}");
            return;
        }
    }
    if let Err(e) = writer.flush().await {
        log::debug!("final flush failed: {e}");
    }
    if let Err(e) = writer.shutdown().await {
        log::debug!("shutdown of the write side failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[actix::test]
    async fn bytes_arrive_in_order_and_the_count_drains() {
        let (client, mut server) = tokio::io::duplex(64);
        let (out, task) = Outbound::spawn(client);
        out.send(Bytes::from_static(b"hello ")).unwrap();
        out.send(Bytes::from_static(b"world")).unwrap();
        drop(out);
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        task.await.unwrap();
        assert_eq!(got, b"hello world");
    }

    #[actix::test]
    async fn a_reader_that_never_reads_leaves_the_bytes_counted() {
        let (client, _server) = tokio::io::duplex(8);
        let (out, _task) = Outbound::spawn(client);
        for _ in 0..10 {
            out.send(Bytes::from_static(b"0123456789")).unwrap();
        }
        tokio::task::yield_now().await;
        assert!(out.queued() >= 90, "queued {}", out.queued());
    }

    #[actix::test]
    async fn a_slow_reader_takes_bytes_off_the_count_before_a_batch_is_done() {
        let (client, mut server) = tokio::io::duplex(16);
        let (out, _task) = Outbound::spawn(client);
        for _ in 0..10 {
            out.send(Bytes::from_static(b"0123456789")).unwrap();
        }
        tokio::task::yield_now().await;
        let before = out.queued();
        let mut first = [0u8; 16];
        server.read_exact(&mut first).await.unwrap();
        for _ in 0..100 {
            if out.queued() < before {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            out.queued(),
            before - 16,
            "the count waits for the whole batch"
        );
    }
}
