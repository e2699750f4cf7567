//! A client socket's kernel side: the bound on its send buffer (`SO_SNDBUF`), the
//! count of bytes the kernel still holds for the client (`SIOCOUTQ`), and the reset
//! that frees that buffer at once when a client that does not read is cut.
//!
//! The kernel's buffer is the client's to pay for as much as the Portal's own
//! queue is: left to autotuning it grows to several MB per socket, out of sight
//! of `portal.output_buffer_limit`. Only this file makes these system calls, and it
//! never reads or writes the socket's data.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Sets `socket`'s kernel send buffer to `bytes` (`SO_SNDBUF`, which Linux doubles
/// for its own bookkeeping and which turns autotuning off); `0` leaves it alone.
pub fn bound_send_buffer(socket: &impl AsFd, bytes: usize) -> io::Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    SockRef::from(socket).set_send_buffer_size(bytes)
}

/// A stream that a [`KernelGauge`] can look at: it owns the socket, and the gauge
/// asks the kernel about it only while this wrapper (however it is split) is alive.
#[derive(Debug)]
pub struct Gauged<S> {
    stream: S,
    /// Dropped with the stream; the gauge's `Weak` then says the descriptor is gone.
    _alive: Rc<()>,
}

/// Asks the kernel about one client socket while its [`Gauged`] stream lives.
///
/// Both are `!Send` (`Rc`): they live on one arbiter thread, so between the gauge's
/// check that the stream is alive and its system call nothing can close the
/// descriptor, and a number the kernel reused for another socket is never asked.
#[derive(Debug, Clone)]
pub struct KernelGauge {
    fd: RawFd,
    alive: Weak<()>,
}

/// Wraps `stream` and answers the gauge for its socket.
pub fn gauged<S: AsRawFd>(stream: S) -> (Gauged<S>, KernelGauge) {
    let alive = Rc::new(());
    let gauge = KernelGauge {
        fd: stream.as_raw_fd(),
        alive: Rc::downgrade(&alive),
    };
    (
        Gauged {
            stream,
            _alive: alive,
        },
        gauge,
    )
}

impl KernelGauge {
    /// A second descriptor for the socket (closed on exec), which keeps the
    /// connection open once the stream is dropped: how a connection is handed
    /// to the Portal's next image. `None` once the stream is gone.
    pub fn duplicate(&self) -> Option<io::Result<std::os::fd::OwnedFd>> {
        self.fd().map(|fd| fd.try_clone_to_owned())
    }

    /// The socket's descriptor, borrowed for one call; `None` once the stream is gone.
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        if self.alive.strong_count() == 0 {
            return None;
        }
        // SAFETY: the `Gauged` stream that owns the descriptor is alive (checked
        // just above), and it cannot be dropped while this borrow is used: both
        // live on this thread and the borrow ends inside the caller's one call.
        Some(unsafe { BorrowedFd::borrow_raw(self.fd) })
    }

    /// Bytes written to the socket that the client has not acknowledged yet
    /// (`SIOCOUTQ`): sent and in flight, or waiting for the client's window to
    /// open. On TLS sockets this is ciphertext. `None` when the stream is gone or
    /// the kernel cannot say.
    pub fn unacknowledged(&self) -> Option<usize> {
        let fd = self.fd()?;
        match outq(fd) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                log::debug!("SIOCOUTQ failed: {e}");
                None
            }
        }
    }

    /// Makes the socket's close a reset (`SO_LINGER` 0): the kernel then frees the
    /// unsent output at once instead of keeping it for a client that does not read.
    pub fn reset_on_close(&self) {
        let Some(fd) = self.fd() else {
            return;
        };
        if let Err(e) = SockRef::from(&fd).set_linger(Some(Duration::ZERO)) {
            log::debug!("SO_LINGER failed: {e}");
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn outq(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut bytes: libc::c_int = 0;
    // SAFETY: `fd` is an open socket for the duration of the call, and TIOCOUTQ
    // (SIOCOUTQ) writes exactly one `int` through the pointer, which points at
    // `bytes`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(bytes).unwrap_or(0))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn outq(_fd: BorrowedFd<'_>) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

impl<S: AsyncRead + Unpin> AsyncRead for Gauged<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gauged<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tokio::io::AsyncWriteExt;

    #[actix::test]
    async fn the_kernel_count_rises_with_unread_output_and_falls_as_it_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let mut client: std::net::TcpStream = client.into();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = tokio::net::TcpStream::from_std(server).unwrap();
        bound_send_buffer(&server, 16 * 1024).unwrap();
        let (mut stream, gauge) = gauged(server);
        assert_eq!(gauge.unacknowledged(), Some(0));

        // More than the client's window: the rest stays in the kernel, unacknowledged.
        let sent = stream.write(&[b'x'; 64 * 1024]).await.unwrap();
        let held = gauge.unacknowledged().unwrap();
        assert!(held > 0 && held <= sent, "held {held} of {sent}");

        let mut got = vec![0u8; sent];
        client.read_exact(&mut got).unwrap();
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while gauge.unacknowledged() != Some(0) {
            assert!(std::time::Instant::now() < end, "never acknowledged");
            tokio::task::yield_now().await;
        }

        drop(stream);
        assert_eq!(gauge.unacknowledged(), None, "asked about a closed socket");
    }
}
