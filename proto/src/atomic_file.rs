//! Files written whole or not at all, never through a symlink: what `export --out`,
//! `survey --out` and every other command that writes a file use.
//!
//! [`AtomicFile::create`] makes a new file beside the destination (same directory, so
//! that the final rename cannot cross file systems), with `O_CREAT | O_EXCL`: it is always
//! a fresh file, never an existing one and never a symlink's target. [`AtomicFile::commit`]
//! syncs it and renames it over the destination, which readers then see whole (the old file
//! until then, never a part of the new one). A symlink at the destination is replaced
//! itself; what it pointed to is left alone. Dropped without a commit, the new file is
//! removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A new file that replaces `dest` when committed.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    dest: PathBuf,
}

/// Why a committed file did not reach its destination: the complete file stays under its
/// temporary name, which the message gives.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot rename {} to {}: {source}; the complete file is {} (move it there yourself)",
    temp.display(), dest.display(), temp.display()
)]
pub struct CommitError {
    /// The complete file, kept.
    pub temp: PathBuf,
    /// Where it was to go.
    pub dest: PathBuf,
    /// Why the rename failed.
    pub source: io::Error,
}

impl AtomicFile {
    /// A new, empty file beside `dest` (`.NAME.PID.N.tmp`, mode 0644 before the umask).
    pub fn create(dest: &Path) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} names no file", dest.display()),
            )
        })?;
        let dir = match dest.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut temp_name = std::ffi::OsString::from(".");
            temp_name.push(name);
            temp_name.push(format!(".{}.{n}.tmp", std::process::id()));
            let temp = dir.join(temp_name);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&temp)
            {
                Ok(file) => {
                    return Ok(Self {
                        file: Some(file),
                        temp,
                        dest: dest.to_owned(),
                    });
                }
                // Left by another process, or planted: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u64::from(u16::MAX) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was already committed"))
    }

    /// Syncs the file and renames it over the destination (then syncs the directory, so
    /// that the rename survives a crash).
    pub fn commit(mut self) -> Result<(), CommitError> {
        let dest = self.dest.clone();
        let fail = |this: &mut Self, source| {
            // Keep the complete file: the error names it.
            this.file = None;
            CommitError {
                temp: std::mem::take(&mut this.temp),
                dest: dest.clone(),
                source,
            }
        };
        let synced = self.file().and_then(|f| {
            f.flush()?;
            f.sync_all()
        });
        if let Err(e) = synced {
            return Err(fail(&mut self, e));
        }
        if let Err(e) = fs::rename(&self.temp, &self.dest) {
            return Err(fail(&mut self, e));
        }
        self.file = None;
        self.temp = PathBuf::new();
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: the data is synced; only the name's durability waits for this.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` through an [`AtomicFile`].
pub fn write(dest: &Path, bytes: &[u8]) -> Result<(), CommitError> {
    let mut file = AtomicFile::create(dest).map_err(|source| CommitError {
        temp: PathBuf::new(),
        dest: dest.to_owned(),
        source,
    })?;
    if let Err(source) = file.write_all(bytes) {
        return Err(CommitError {
            temp: PathBuf::new(),
            dest: dest.to_owned(),
            source,
        });
    }
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_at_the_destination_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.txt");
        fs::write(&target, "kept\n").unwrap();
        let dest = dir.path().join("out.csv");
        std::os::unix::fs::symlink(&target, &dest).unwrap();
        write(&dest, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept\n");
        assert!(fs::symlink_metadata(&dest).unwrap().is_file());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no file left behind"
        );
    }

    #[test]
    fn the_destination_changes_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.jsonl");
        fs::write(&dest, "old\n").unwrap();
        let mut file = AtomicFile::create(&dest).unwrap();
        file.write_all(b"half").unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old\n");
        drop(file);
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the new file is removed"
        );
    }
}
