//! The physical-limit baseline: a trivial TCP line-echo server in this
//! process, on its own runtime and threads, driven by the same simulated
//! players. What it sustains is what the machine, the kernel's loopback and
//! the load generator allow; a real server's rate is reported as a share of it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running echo server; it stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl EchoServer {
    /// Binds 127.0.0.1:0 and serves on `threads` worker threads.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("echo")
            .enable_io()
            .build()?;
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(echo_lines(stream));
            }
        });
        Ok(Self {
            addr,
            runtime: Some(runtime),
        })
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Writes back every complete line as it arrives, with CR LF.
async fn echo_lines(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=last_newline).collect();
        if stream.write_all(&complete).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn echoes_whole_lines_only() {
        let server = EchoServer::start(1).unwrap_or_else(|e| panic!("{e}"));
        let mut client =
            std::net::TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("{e}"));
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .write_all(b"look\r\nsay hi")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !got.ends_with(b"look\r\n") {
            let n = client.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        client
            .write_all(b" there\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        while !got.ends_with(b"say hi there\r\n") {
            let n = client.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"look\r\nsay hi there\r\n");
    }
}
