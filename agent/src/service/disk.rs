//! Room on the spool's disk: a reserve file that keeps deletes possible on a full disk,
//! and the free-space check made before a round probes anything.
//!
//! SQLite needs free space to delete: in WAL mode a delete appends the changed pages to the
//! log before anything is freed. On a disk filled by something else, the acknowledged
//! results could then never leave the spool, and the uploader would send them again and
//! again. The spool therefore keeps [`RESERVE_BYTES`] of real (written, not sparse) bytes in
//! a file beside it, and gives them back to the file system when a delete, a quarantine or
//! a note for `status` fails for lack of space; the reserve is written again once the disk
//! has room for it ([`Reserve::ensure`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Bytes the reserve holds: room for the WAL frames of deleting or quarantining a few
/// thousand results and a checkpoint.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// Spool bytes one target may take in a round: its pings and a long trace (64 hops of
/// three probes with their replies), counted twice for the WAL.
pub const ROUND_BYTES_PER_TARGET: u64 = 64 << 10;

/// Free bytes always left beyond a round's estimate (state notes, SQLite's own pages).
pub const ROUND_MARGIN_BYTES: u64 = 1 << 20;

/// The reserve file of the spool at `spool`: `<spool>-reserve`.
#[derive(Debug, Clone)]
pub struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve beside the spool file `spool`.
    pub fn beside(spool: &Path) -> Self {
        let mut name = spool.as_os_str().to_owned();
        name.push("-reserve");
        Self {
            path: PathBuf::from(name),
        }
    }

    /// The reserve file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the reserve is held (the file is there at its full size).
    pub fn is_held(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| m.len() >= RESERVE_BYTES)
    }

    /// Writes the reserve if it is not held. `Ok(false)` when the disk has no room for it
    /// (nothing is left behind).
    pub fn ensure(&self) -> io::Result<bool> {
        if self.is_held() {
            return Ok(true);
        }
        match write_zeros(&self.path, RESERVE_BYTES) {
            Ok(()) => Ok(true),
            Err(e) if is_no_space(&e) => {
                let _ = fs::remove_file(&self.path);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_file(&self.path);
                Err(e)
            }
        }
    }

    /// Gives the reserve's bytes back to the file system; `true` if it was held.
    pub fn release(&self) -> bool {
        fs::remove_file(&self.path).is_ok()
    }
}

/// Writes `len` zero bytes to a new `path` and syncs it: real blocks, not a sparse file.
fn write_zeros(path: &Path, len: u64) -> io::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let chunk = vec![0u8; 64 << 10];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

fn is_no_space(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ENOSPC) || e.kind() == io::ErrorKind::StorageFull
}

/// Bytes an unprivileged writer may still use on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    #[allow(
        clippy::useless_conversion,
        reason = "the block count and size are narrower than u64 on some targets"
    )]
    Ok(u64::from(stat.blocks_available()).saturating_mul(u64::from(stat.fragment_size())))
}

/// The spool bytes a round of `targets` targets may need, with the margin.
pub fn round_bytes(targets: u64) -> u64 {
    targets
        .saturating_mul(ROUND_BYTES_PER_TARGET)
        .saturating_add(ROUND_MARGIN_BYTES)
}

/// A round not started because the spool's disk could not take its results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskShort {
    /// Free bytes on the spool's file system when last checked.
    pub free_bytes: u64,
    /// Bytes the round needed (its estimate and the margin).
    pub needed_bytes: u64,
    /// Whether the reserve could be held then.
    pub reserve_held: bool,
    /// When rounds were first skipped for it.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl std::fmt::Display for DiskShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} free on the spool's disk, a round needs about {}{}: not probing until space returns (since {})",
            mib(self.free_bytes),
            mib(self.needed_bytes),
            if self.reserve_held {
                ""
            } else {
                ", and the reserve that keeps deletes possible is not held"
            },
            nkpath_proto::timestamp::stored(self.since)
        )
    }
}

fn mib(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
    let m = bytes as f64 / f64::from(1u32 << 20);
    format!("{m:.1} MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_released_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::beside(&dir.path().join("spool.db"));
        assert_eq!(reserve.path(), dir.path().join("spool.db-reserve"));
        assert!(!reserve.is_held());
        assert!(reserve.ensure().unwrap());
        assert_eq!(fs::metadata(reserve.path()).unwrap().len(), RESERVE_BYTES);
        assert!(reserve.release());
        assert!(!reserve.is_held());
        assert!(reserve.ensure().unwrap());
        assert!(reserve.is_held());
    }

    #[test]
    fn a_round_needs_room_for_every_target_and_the_margin() {
        assert_eq!(round_bytes(0), ROUND_MARGIN_BYTES);
        assert_eq!(
            round_bytes(4),
            4 * ROUND_BYTES_PER_TARGET + ROUND_MARGIN_BYTES
        );
        assert_eq!(round_bytes(u64::MAX), u64::MAX);
    }
}
