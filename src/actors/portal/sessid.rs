//! Session ids that are never handed out twice, not even by a later Portal
//! process: a new connection must never be able to inherit a stale Server-side
//! session (Evennia let a login land in another player's character that way).
//!
//! The allocator reserves ids in blocks and records the end of the reserved
//! block in a small file before using any id in it, so a crash can skip ids but
//! never repeat one. Without a writable file it falls back to starting above the
//! wall clock in milliseconds, which is still larger than any id a previous run
//! could have reached at one connection per millisecond.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::session::{now_millis, SessionId, PORTAL_ID_STRIDE};

/// Ids reserved per file write.
const BLOCK: u64 = 1024;

#[derive(Debug)]
pub struct SessionIdAllocator {
    /// Added to every id: `portal.id` times [`PORTAL_ID_STRIDE`].
    offset: u64,
    next: u64,
    reserved_until: u64,
    file: Option<PathBuf>,
}

impl SessionIdAllocator {
    /// Continues after the highest id any earlier Portal using `file` reserved.
    pub fn persistent(file: &Path) -> Self {
        let start = read_high_water(file).unwrap_or(0) + 1;
        let mut allocator = Self {
            offset: 0,
            next: start,
            reserved_until: start - 1,
            file: Some(file.to_owned()),
        };
        allocator.reserve();
        allocator
    }

    /// An allocator with no file (tests); starts at 1.
    pub fn in_memory() -> Self {
        Self {
            offset: 0,
            next: 1,
            reserved_until: u64::MAX,
            file: None,
        }
    }

    /// Ids for Portal `portal_id` (`portal.id`): its own range, apart from every
    /// other Portal's.
    pub fn for_portal(mut self, portal_id: u16) -> Self {
        self.offset = u64::from(portal_id) * PORTAL_ID_STRIDE;
        self
    }

    /// The next id.
    pub fn allocate(&mut self) -> SessionId {
        if self.next > self.reserved_until {
            self.reserve();
        }
        let id = SessionId(self.offset + self.next);
        self.next += 1;
        id
    }

    fn reserve(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        let until = self.next + BLOCK - 1;
        match write_high_water(file, until) {
            Ok(()) => self.reserved_until = until,
            Err(e) => {
                // The clock in milliseconds is past any count reached so far,
                // and still far inside this Portal's range.
                let fallback = now_millis().max(self.next);
                log::warn!(
                    "cannot record session ids in {}: {e}; continuing from {fallback}",
                    file.display()
                );
                self.next = fallback;
                self.reserved_until = u64::MAX;
                self.file = None;
            }
        }
    }
}

fn read_high_water(file: &Path) -> Option<u64> {
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn write_high_water(file: &Path, value: u64) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{value}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_portal_counts_in_a_range_of_its_own() {
        let mut zero = SessionIdAllocator::in_memory();
        let mut three = SessionIdAllocator::in_memory().for_portal(3);
        assert_eq!(zero.allocate(), SessionId(1));
        let id = three.allocate();
        assert_eq!(id, SessionId(3 * PORTAL_ID_STRIDE + 1));
        assert_eq!((id.portal(), SessionId(1).portal()), (3, 0));
        let top = SessionIdAllocator::in_memory().for_portal(crate::session::MAX_PORTAL_ID);
        assert_eq!(top.offset / PORTAL_ID_STRIDE, 9_999);
    }

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sessid");
        let mut first = SessionIdAllocator::persistent(&file);
        let a: Vec<u64> = (0..5).map(|_| first.allocate().0).collect();
        assert_eq!(a, vec![1, 2, 3, 4, 5]);
        drop(first);
        let mut second = SessionIdAllocator::persistent(&file);
        let b = second.allocate().0;
        assert!(b > 5, "a restarted Portal reused id {b}");
    }

    #[test]
    fn crossing_a_block_reserves_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sessid");
        let mut alloc = SessionIdAllocator::persistent(&file);
        let mut last = 0;
        for _ in 0..(BLOCK * 2 + 3) {
            last = alloc.allocate().0;
        }
        let recorded = read_high_water(&file).unwrap();
        assert!(recorded >= last);
        let mut again = SessionIdAllocator::persistent(&file);
        assert!(again.allocate().0 > last);
    }

    #[test]
    fn unwritable_file_falls_back_to_clock_ids() {
        let mut alloc = SessionIdAllocator::persistent(Path::new("/nonexistent/dir/sessid"));
        assert!(alloc.allocate().0 >= 1_600_000_000_000);
    }
}
