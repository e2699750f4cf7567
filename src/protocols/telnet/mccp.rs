//! MCCP compression. MCCP2: one zlib stream per session for output from the
//! moment the client agrees, flushed after every write so each message
//! reaches the client at once, and finished properly when the session closes
//! or the client turns compression off. MCCP3: the client's input as a zlib
//! stream, inflated with a cap on how much one read may expand to, so a zlib
//! bomb costs only its own session.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The client's compressed input could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InflateError {
    #[error("compressed input expanded past {limit} bytes in one read")]
    TooLarge { limit: usize },
    #[error("compressed input is corrupt")]
    Corrupt,
}

/// What one inflate call produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Inflated {
    /// Plain bytes for the telnet parser.
    pub data: Vec<u8>,
    /// Input bytes consumed.
    pub consumed: usize,
    /// The client ended the compressed stream; input after `consumed` is
    /// plain telnet again.
    pub ended: bool,
}

/// The zlib stream of one session's input (MCCP3).
pub struct Mccp3 {
    stream: Decompress,
}

impl std::fmt::Debug for Mccp3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mccp3")
            .field("in", &self.stream.total_in())
            .field("out", &self.stream.total_out())
            .finish()
    }
}

impl Default for Mccp3 {
    fn default() -> Self {
        Self::new()
    }
}

impl Mccp3 {
    pub fn new() -> Self {
        Self {
            stream: Decompress::new(true),
        }
    }

    /// Inflates `input`; more than `limit` plain bytes from one read is an
    /// error (the session is closed), whatever the compressed size.
    pub fn inflate(&mut self, input: &[u8], limit: usize) -> Result<Inflated, InflateError> {
        let start_in = self.stream.total_in();
        let mut data = Vec::with_capacity(input.len().saturating_mul(4).min(limit).max(64));
        loop {
            let used = usize::try_from(self.stream.total_in() - start_in).unwrap_or(input.len());
            let rest = &input[used.min(input.len())..];
            if data.len() >= limit {
                return Err(InflateError::TooLarge { limit });
            }
            if data.capacity() == data.len() {
                data.reserve((data.len()).max(256).min(limit - data.len() + 1));
            }
            let before_out = data.len();
            let status = self
                .stream
                .decompress_vec(rest, &mut data, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let consumed =
                usize::try_from(self.stream.total_in() - start_in).unwrap_or(input.len());
            if data.len() > limit {
                return Err(InflateError::TooLarge { limit });
            }
            match status {
                Status::StreamEnd => {
                    return Ok(Inflated {
                        data,
                        consumed,
                        ended: true,
                    });
                }
                Status::Ok | Status::BufError => {
                    let progressed = data.len() > before_out || consumed > used;
                    if consumed >= input.len() && data.len() < data.capacity() {
                        return Ok(Inflated {
                            data,
                            consumed,
                            ended: false,
                        });
                    }
                    if !progressed && data.len() < data.capacity() {
                        // Needs more input than this read has.
                        return Ok(Inflated {
                            data,
                            consumed,
                            ended: false,
                        });
                    }
                }
            }
        }
    }
}

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

    fn deflate(parts: &[&[u8]], finish: bool) -> Vec<u8> {
        let mut c = Mccp2::new();
        let mut all = Vec::new();
        for p in parts {
            all.extend(c.compress(p));
        }
        if finish {
            all.extend(c.finish());
        }
        all
    }

    #[test]
    fn mccp3_inflates_across_reads_and_hands_back_what_follows_the_end() {
        let mut stream = deflate(&[b"look\r\n", b"say hi\r\n"], true);
        stream.extend_from_slice(b"who\r\n");
        let mut z = Mccp3::new();
        let (first, second) = stream.split_at(7);
        let a = z.inflate(first, 1 << 20).unwrap();
        assert_eq!(a.consumed, 7);
        let b = z.inflate(second, 1 << 20).unwrap();
        assert!(b.ended);
        let mut text = a.data;
        text.extend(b.data);
        assert_eq!(text, b"look\r\nsay hi\r\n");
        assert_eq!(
            &second[b.consumed..],
            b"who\r\n",
            "plain input after the stream end"
        );
    }

    #[test]
    fn a_zlib_bomb_is_refused() {
        let bomb = deflate(&[&vec![b'a'; 10 << 20]], false);
        assert!(bomb.len() < 64 * 1024, "a real bomb: {} bytes", bomb.len());
        let mut z = Mccp3::new();
        assert_eq!(
            z.inflate(&bomb, 1 << 20),
            Err(InflateError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut z = Mccp3::new();
        assert_eq!(
            z.inflate(b"this is not zlib", 1 << 20),
            Err(InflateError::Corrupt)
        );
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
