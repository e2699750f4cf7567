//! MCCP2 output compression: one zlib stream per session from the moment the
//! client agrees, flushed after every write so each message reaches the
//! client at once, and finished properly when the session closes or the
//! client turns compression off.

use flate2::{Compress, Compression, FlushCompress, Status};

/// The zlib stream of one session's output.
pub struct Mccp2 {
    stream: Compress,
}

impl std::fmt::Debug for Mccp2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mccp2")
            .field("in", &self.stream.total_in())
            .field("out", &self.stream.total_out())
            .finish()
    }
}

impl Default for Mccp2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Mccp2 {
    pub fn new() -> Self {
        Self {
            stream: Compress::new(Compression::default(), true),
        }
    }

    /// Compresses `input` and sync-flushes, so the client can decode all of
    /// it now.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        self.run(input, FlushCompress::Sync)
    }

    /// Ends the stream (zlib trailer); nothing may be compressed after this.
    pub fn finish(&mut self) -> Vec<u8> {
        self.run(&[], FlushCompress::Finish)
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.stream.total_in();
            let status = self.stream.compress_vec(input, &mut out, flush);
            let consumed =
                usize::try_from(self.stream.total_in() - before_in).unwrap_or(input.len());
            input = &input[consumed.min(input.len())..];
            match status {
                Ok(Status::StreamEnd) => return out,
                Ok(Status::Ok | Status::BufError) => {
                    // Done when all input is in and the flush left spare room
                    // (zlib stops only for lack of space).
                    if input.is_empty() && out.len() < out.capacity() {
                        return out;
                    }
                }
                Err(e) => {
                    log::error!("MCCP2 compression failed: {e}");
                    return out;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(all: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(true);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(all, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn every_write_is_decodable_at_once_and_the_stream_continues() {
        let mut c = Mccp2::new();
        let first = c.compress(b"Welcome to gatehouse!\r\n");
        let mut d = Decompress::new(true);
        let mut out = Vec::with_capacity(4096);
        d.decompress_vec(&first, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, b"Welcome to gatehouse!\r\n");
        let second = c.compress(b"Limbo\r\n");
        d.decompress_vec(&second, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, b"Welcome to gatehouse!\r\nLimbo\r\n");
    }

    #[test]
    fn large_writes_and_finish_round_trip() {
        let mut c = Mccp2::new();
        let text: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut all = c.compress(&text);
        all.extend(c.finish());
        assert_eq!(inflate(&all), text);
    }
}
