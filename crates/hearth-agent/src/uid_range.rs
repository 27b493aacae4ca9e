//! Host uids for instances: each server claims a block of its own (a lock file held for its
//! lifetime under `/run/hearth/uids`), so two servers on one machine never give the same
//! host uid to their instances.

use std::fs::File;
use std::path::Path;

/// First uid handed to instances; none has a passwd entry.
pub const UID_BASE: u32 = 100_000;
/// Uids per block, and blocks: 100000..165535 in all.
pub const BLOCK: u32 = 4096;
pub const BLOCKS: u32 = 16;
const LOCKS: &str = "/run/hearth/uids";

/// A block of host uids this server holds.
#[derive(Debug)]
pub struct UidRange {
    base: u32,
    /// Held (flock) while the range is in use; released when the server ends.
    _lock: Option<File>,
}

impl UidRange {
    /// Claims the first free block, or (all taken) one chosen by process id, with a warning.
    pub fn claim() -> Self {
        Self::claim_in(Path::new(LOCKS))
    }

    fn claim_in(dir: &Path) -> Self {
        if std::fs::create_dir_all(dir).is_ok() {
            for block in 0..BLOCKS {
                let Ok(file) = File::create(dir.join(format!("{block}.lock"))) else { continue };
                if file.try_lock().is_ok() {
                    return Self { base: UID_BASE + block * BLOCK, _lock: Some(file) };
                }
            }
        }
        let block = std::process::id() % BLOCKS;
        tracing::warn!(block, "every uid block is held by another server: instances may share host uids with its");
        Self { base: UID_BASE + block * BLOCK, _lock: None }
    }

    /// The uid of the `n`th instance: cycles within the block.
    pub fn uid(&self, n: u64) -> u32 {
        self.base + (n % u64::from(BLOCK)) as u32
    }

    pub fn first(&self) -> u32 {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_hold_disjoint_blocks_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let a = UidRange::claim_in(dir.path());
        let b = UidRange::claim_in(dir.path());
        assert_eq!((a.first(), b.first()), (UID_BASE, UID_BASE + BLOCK));
        assert_eq!(a.uid(BLOCK as u64 + 3), UID_BASE + 3, "cycles within its block");
        assert!((b.first()..b.first() + BLOCK).contains(&b.uid(u64::MAX)));
        drop(a);
        assert_eq!(UidRange::claim_in(dir.path()).first(), UID_BASE, "a released block is claimed again");
    }
}
