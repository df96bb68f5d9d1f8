//! The durable local spool: every finished result is written here before
//! anything else happens to it, and stays until the collector acknowledges it.
//!
//! One SQLite file (WAL, `synchronous=FULL`, so a commit survives power
//! loss) with three tables:
//!
//! * `results`: results waiting for upload, as their JSON text;
//! * `quarantine`: results the collector refused, and rows that cannot be
//!   read back; never retried, kept for the operator to look at
//!   (`nkpath-agent status`);
//! * `state`: a small key/value table of what `status` shows (last round,
//!   last upload, last error, the collector's pause and target instructions).
//!
//! Only [`Spool::ack`] deletes results, and only the ids it is given; only
//! [`Spool::quarantine`] (and [`Spool::next_batch`], for a row it cannot
//! read) moves them, in one transaction. Nothing else ever
//! removes a row, so a result the collector has not acknowledged survives
//! crashes, restarts and kill -9.
//!
//! A full disk does not trap acknowledged results: the spool keeps a reserve file beside it
//! ([`super::disk`]) and gives its bytes back when a delete, a quarantine or a note fails
//! for lack of space; [`Spool::check_room`] tells the round loop whether a round's results
//! would fit before anything is probed.
//!
//! A damaged file (SQLite reports `SQLITE_CORRUPT`) does not stop uploads:
//! the spool is rebuilt from what can still be read, the results on damaged
//! pages are quarantined by id, and the damaged file is kept beside it
//! ([`Spool::next_batch`], [`Spool::ack`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use nkpath_proto::{ResultRecord, timestamp};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::disk::{self, DiskShort, Reserve};

/// The schema this build writes, in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE results (
    result_id  TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    json       TEXT NOT NULL
);
CREATE TABLE quarantine (
    result_id      TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    quarantined_at TEXT NOT NULL,
    field          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    json           TEXT NOT NULL
);
CREATE TABLE state (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
";

/// What went wrong with the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// SQLite failed (disk full, permissions, corruption).
    #[error("spool {}: {source}", path.display())]
    Sqlite {
        /// The spool file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file does not exist (for readers that must not create it).
    #[error(
        "no spool at {}: the agent has not run yet, or spool.path in the configuration points elsewhere",
        path.display()
    )]
    Missing {
        /// The spool file.
        path: PathBuf,
    },
    /// The file was written by a newer agent.
    #[error(
        "spool {} has schema version {found}, newer than this agent's ({SCHEMA_VERSION}): upgrade nkpath-agent, or move the file aside to start a new spool",
        path.display()
    )]
    NewerSchema {
        /// The spool file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
    },
    /// The file is damaged where not even a rebuild can read it.
    #[error(
        "spool {} is damaged beyond what the agent can repair ({source}): stop the agent, move the file aside (results in it that were not uploaded are lost; `sqlite3 FILE .recover` may save some) and start again",
        path.display()
    )]
    Damaged {
        /// The spool file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A result could not be serialized (a bug).
    #[error("cannot serialize result {id}: {source}")]
    Serialize {
        /// The result.
        id: Uuid,
        /// Why.
        source: serde_json::Error,
    },
}

impl SpoolError {
    /// Whether SQLite failed for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Self::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }

    /// Whether the failure may come from a full disk: SQLite reports some of those (the
    /// WAL's shared-memory file that cannot grow) as I/O errors.
    fn may_be_disk_full(&self) -> bool {
        self.is_disk_full()
            || matches!(self, Self::Sqlite { source, .. }
                if source.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure))
    }
}

/// A spooled result, as read back for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    /// The result's id.
    pub result_id: Uuid,
    /// `"trace"` or `"ping"`.
    pub kind: String,
    /// When it was spooled (the Unix epoch if the row's note is unreadable).
    pub created_at: OffsetDateTime,
    /// The [`ResultRecord`] as JSON text, exactly as spooled.
    pub json: String,
}

/// A spool row that cannot be read as a result: its rowid, and why.
type Unreadable = (i64, String);

/// A result set aside: refused by the collector, or unreadable in the spool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    /// The result's id, as the row held it (a row that was unreadable in
    /// the spool may hold something else than a UUID).
    pub result_id: String,
    /// `"trace"` or `"ping"`.
    pub kind: String,
    /// When it was moved to the quarantine.
    #[serde(with = "time::serde::rfc3339")]
    pub quarantined_at: OffsetDateTime,
    /// The field the collector objected to.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// A finished measurement round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundSummary {
    /// The round's id.
    pub round_id: Uuid,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339")]
    pub ended_at: OffsetDateTime,
    /// Traces spooled.
    pub traces: u64,
    /// Traces that reached their target.
    pub reached: u64,
    /// Pings spooled.
    pub pings: u64,
}

/// The last upload that got an answer from the collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadSummary {
    /// When the answer came.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Results accepted (and deleted from the spool).
    pub accepted: u64,
    /// Results refused (and quarantined).
    pub refused: u64,
}

/// The last error of the agent's service loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNote {
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened and what to do.
    pub message: String,
}

/// What `status` shows, kept in the spool's `state` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The last finished round.
    pub last_round: Option<RoundSummary>,
    /// The last upload the collector answered.
    pub last_upload: Option<UploadSummary>,
    /// The last error.
    pub last_error: Option<ErrorNote>,
    /// Whether the spool was full when last checked (no new rounds).
    pub spool_full: bool,
    /// The spool's disk could not take a round when last checked (no new rounds).
    #[serde(default)]
    pub disk_short: Option<DiskShort>,
    /// The collector asked the agent not to probe until then.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pause_until: Option<OffsetDateTime>,
    /// Target prefixes the collector asked for, as it sent them; they are
    /// clipped to the allowlist when used
    /// ([`crate::service::upload::effective_targets`]).
    pub targets_override: Option<Vec<String>>,
    /// When the collector last sent `targets_override`.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub targets_received_at: Option<OffsetDateTime>,
}

/// Agent rounds a collector assignment stays in force after it arrived (or after the pause
/// that came with it ended): an agent cut off from its collector keeps to its last
/// assignment that long, then probes its own configured targets.
pub const ASSIGNMENT_ROUNDS: u32 = 3;

impl State {
    /// The pause in force at `now`, if any.
    pub fn paused_at(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.pause_until.filter(|until| *until > now)
    }

    /// The collector's target list if it is still in force at `now` for an agent whose
    /// rounds are `interval` apart (see [`ASSIGNMENT_ROUNDS`]). A list of unknown age is
    /// not in force.
    pub fn assignment_at(
        &self,
        now: OffsetDateTime,
        interval: std::time::Duration,
    ) -> Option<&[String]> {
        let list = self.targets_override.as_deref()?;
        let received = self.targets_received_at?;
        let from = self.pause_until.map_or(received, |p| p.max(received));
        let ttl = time::Duration::try_from(interval * ASSIGNMENT_ROUNDS).ok()?;
        (now <= from + ttl).then_some(list)
    }
}

mod keys {
    pub const LAST_ROUND: &str = "last_round";
    pub const LAST_UPLOAD: &str = "last_upload";
    pub const LAST_ERROR: &str = "last_error";
    pub const SPOOL_FULL: &str = "spool_full";
    pub const DISK_SHORT: &str = "disk_short";
    pub const PAUSE_UNTIL: &str = "pause_until";
    pub const TARGETS: &str = "targets_override";
    pub const TARGETS_AT: &str = "targets_received_at";
}

/// The spool. Share it as `Arc<Spool>`: the one connection is behind a
/// mutex and every method is a short transaction.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    conn: Mutex<Connection>,
    reserve: Reserve,
}

impl Spool {
    /// Opens the spool, creating the file and its schema if needed.
    ///
    /// Open it before dropping root, like the raw sockets, if the directory
    /// belongs to root: the connection (and its `-wal`/`-shm` files, created
    /// here) then stays usable for the life of the process.
    pub fn open(path: &Path) -> Result<Self, SpoolError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let reserve = Reserve::beside(path);
        let spool = match Self::open_with(path, flags) {
            // On a full disk even opening needs room (SQLite creates the WAL's shared-memory
            // file beside the spool): the reserve makes it.
            Err(e) if e.may_be_disk_full() && reserve.release() => {
                tracing::warn!(
                    "the spool's disk is full: its reserve is released so that the spool can open"
                );
                Self::open_with(path, flags)?
            }
            opened => opened?,
        };
        match spool.reserve.ensure() {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                reserve = %spool.reserve.path().display(),
                "no room on the spool's disk for its reserve: deletes may fail until space returns"
            ),
            Err(e) => tracing::warn!(
                reserve = %spool.reserve.path().display(),
                "cannot write the spool's reserve: {e}"
            ),
        }
        Ok(spool)
    }

    /// Opens an existing spool without creating anything (for `status`).
    pub fn open_existing(path: &Path) -> Result<Self, SpoolError> {
        if !path.exists() {
            return Err(SpoolError::Missing {
                path: path.to_owned(),
            });
        }
        Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self, SpoolError> {
        Ok(Self {
            path: path.to_owned(),
            conn: Mutex::new(connect(path, flags)?),
            reserve: Reserve::beside(path),
        })
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done
        // transaction behind (SQLite rolls it back), so go on.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> SpoolError + '_ {
        sql_error(&self.path)
    }

    /// Writes a finished result; returns once it is committed to disk.
    /// A result already spooled (same id) is left as it is.
    pub fn put(&self, record: &ResultRecord) -> Result<(), SpoolError> {
        let id = record.result_id();
        let json =
            serde_json::to_string(record).map_err(|source| SpoolError::Serialize { id, source })?;
        self.conn()
            .execute(
                "INSERT OR IGNORE INTO results (result_id, kind, created_at, json) VALUES (?1, ?2, ?3, ?4)",
                params![id.to_string(), record.kind(), now_text(), json],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Up to `n` results, oldest first.
    ///
    /// A row that can no longer be read as a spooled result (an id that is
    /// no UUID, JSON that is not text: a disk error or a hand edit) is moved
    /// to the quarantine on the way, so that one bad row never blocks the
    /// rows behind it. An unreadable `created_at` alone does not: it is only
    /// the spool's note, and the result itself is intact.
    ///
    /// When SQLite finds the file itself damaged (`SQLITE_CORRUPT`), the
    /// spool is rebuilt from what can still be read ([`Self::rebuild`]).
    pub fn next_batch(&self, n: usize) -> Result<Vec<Spooled>, SpoolError> {
        self.next_batch_except(n, &[])
    }

    /// [`Self::next_batch`] without the results of the kinds in `held_back` (which
    /// stay spooled, in their order, for a collector that stores them).
    pub fn next_batch_except(
        &self,
        n: usize,
        held_back: &[&str],
    ) -> Result<Vec<Spooled>, SpoolError> {
        loop {
            let (good, bad) = self.repairing(|| self.read_batch(n, held_back))?;
            if bad.is_empty() {
                return Ok(good);
            }
            // Each pass removes at least one row, so this ends.
            for (rowid, reason) in bad {
                tracing::error!(rowid, "unreadable spool row ({reason}); quarantined");
                let reason = format!("unreadable in the local spool: {reason}");
                self.repairing(|| self.quarantine_row(rowid, &reason))?;
            }
        }
    }

    /// The first `n` rows: those that read as results, and the rowids of
    /// those that do not, with why.
    fn read_batch(
        &self,
        n: usize,
        held_back: &[&str],
    ) -> Result<(Vec<Spooled>, Vec<Unreadable>), SpoolError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT rowid, result_id, kind, created_at, json FROM results
                 WHERE kind NOT IN (SELECT value FROM json_each(?2))
                 ORDER BY rowid LIMIT ?1",
            )
            .map_err(self.sql())?;
        let held_back = serde_json::to_string(held_back).unwrap_or_else(|_| "[]".to_owned());
        let mut rows = stmt
            .query(params![n as i64, held_back])
            .map_err(self.sql())?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        while let Some(row) = rows.next().map_err(self.sql())? {
            let rowid: i64 = row.get(0).map_err(self.sql())?;
            match read_spooled(row) {
                Ok(spooled) => good.push(spooled),
                Err(reason) => bad.push((rowid, reason)),
            }
        }
        Ok((good, bad))
    }

    /// Runs `op`; if SQLite finds the file damaged, rebuilds the spool and
    /// runs `op` once more.
    fn repairing<T>(&self, op: impl Fn() -> Result<T, SpoolError>) -> Result<T, SpoolError> {
        match op() {
            Err(e) if is_corrupt(&e) => {
                tracing::error!("{e}: rebuilding the spool from what can still be read");
                self.rebuild()?;
                op()
            }
            other => other,
        }
    }

    /// Replaces a damaged spool file with a new one holding everything that
    /// can still be read: the results (listed from the primary key's index,
    /// a separate part of the file, then read one by one), the quarantine
    /// and the state. A result whose row is on a damaged page is put in the
    /// new quarantine by the id the index gives: its content is lost. The
    /// damaged file is kept beside, as `<spool>.damaged-<unix time>`, for
    /// the operator.
    ///
    /// If the index itself is damaged, nothing can be listed: the error
    /// says to move the file aside.
    fn rebuild(&self) -> Result<(), SpoolError> {
        let mut conn = self.conn();
        let salvaged = salvage(&conn).map_err(|e| SpoolError::Damaged {
            path: self.path.clone(),
            source: e,
        })?;
        let fresh = self
            .path
            .with_extension(format!("{}rebuilt", extension_prefix(&self.path)));
        remove_with_journals(&fresh);
        {
            let mut new = connect(
                &fresh,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            )?;
            salvaged.write(&mut new).map_err(sql_error(&fresh))?;
        }
        let damaged = self.path.with_extension(format!(
            "{}damaged-{}",
            extension_prefix(&self.path),
            OffsetDateTime::now_utc().unix_timestamp()
        ));
        // Close the damaged file (which checkpoints its WAL into it), then
        // move it and any journal left beside it out of the way: a stale WAL
        // would be applied to the new file at the same path.
        let placeholder = Connection::open_in_memory().map_err(self.sql())?;
        drop(std::mem::replace(&mut *conn, placeholder));
        let moved = std::fs::rename(&self.path, &damaged)
            .and_then(|()| move_journals(&self.path, &damaged))
            .and_then(|()| std::fs::rename(&fresh, &self.path))
            .and_then(|()| sync_dir(&self.path));
        if let Err(e) = moved {
            return Err(SpoolError::Damaged {
                path: self.path.clone(),
                source: rusqlite::Error::InvalidPath(PathBuf::from(format!(
                    "cannot put the rebuilt spool {} in place: {e}",
                    fresh.display()
                ))),
            });
        }
        *conn = connect(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        tracing::error!(
            damaged = %damaged.display(),
            results = salvaged.results.len(),
            lost = salvaged.lost,
            "spool rebuilt; the damaged file is kept beside it"
        );
        Ok(())
    }

    /// Moves the row `rowid` to the quarantine whatever its columns hold
    /// (they are kept as text, for the operator to look at).
    fn quarantine_row(&self, rowid: i64, reason: &str) -> Result<(), SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql())?;
        tx.execute(
            "INSERT OR REPLACE INTO quarantine
                 (result_id, kind, created_at, quarantined_at, field, reason, json)
             SELECT CAST(result_id AS TEXT), CAST(kind AS TEXT), CAST(created_at AS TEXT),
                    ?2, '', ?3, CAST(json AS TEXT)
             FROM results WHERE rowid = ?1",
            params![rowid, now_text(), reason],
        )
        .map_err(self.sql())?;
        tx.execute("DELETE FROM results WHERE rowid = ?1", [rowid])
            .map_err(self.sql())?;
        tx.commit().map_err(self.sql())
    }

    /// Deletes the results the collector acknowledged; ids not in the spool
    /// are ignored. Returns how many were deleted.
    pub fn ack(&self, ids: &[Uuid]) -> Result<usize, SpoolError> {
        // A delete next to a damaged page fails too: SQLite rebalances the tree.
        self.making_room(|| self.repairing(|| self.delete(ids)))
    }

    /// Runs `op`; when it fails for lack of disk space and the reserve is held, releases
    /// the reserve and runs it again (then checkpoints, so that the WAL gives its space
    /// back). The reserve is written again by [`Self::check_room`] once there is room.
    fn making_room<T>(&self, op: impl Fn() -> Result<T, SpoolError>) -> Result<T, SpoolError> {
        match op() {
            Err(e) if e.is_disk_full() && self.reserve.release() => {
                tracing::warn!(
                    "the spool's disk is full: its reserve is released so that the spool can \
                     still delete what the collector acknowledged"
                );
                let done = op();
                if let Err(e) = self
                    .conn()
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                {
                    tracing::warn!("checkpointing the spool after releasing its reserve: {e}");
                }
                done
            }
            done => done,
        }
    }

    /// Whether the spool's disk can take a round of `targets` targets: the reserve held
    /// (written again if it was released) and the round's estimate ([`disk::round_bytes`])
    /// free beyond it. `Some` when it cannot, also recorded for `status` (with the time
    /// rounds were first skipped); the record is cleared when there is room again.
    pub fn check_room(&self, targets: u64) -> Result<Option<DiskShort>, SpoolError> {
        let reserve_held = self.reserve.ensure().unwrap_or_else(|e| {
            tracing::warn!(reserve = %self.reserve.path().display(), "cannot write the spool's reserve: {e}");
            false
        });
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let needed_bytes = disk::round_bytes(targets);
        let free_bytes = match disk::free_bytes(dir) {
            Ok(free) => free,
            Err(e) => {
                // A file system that cannot say: the writes themselves will tell.
                tracing::warn!(dir = %dir.display(), "cannot read the free space of the spool's disk: {e}");
                u64::MAX
            }
        };
        let previous: Option<DiskShort> = self.get(keys::DISK_SHORT)?;
        if reserve_held && free_bytes >= needed_bytes {
            if previous.is_some() {
                self.set::<DiskShort>(keys::DISK_SHORT, None)?;
            }
            return Ok(None);
        }
        let short = DiskShort {
            free_bytes,
            needed_bytes,
            reserve_held,
            since: previous.map_or_else(OffsetDateTime::now_utc, |p| p.since),
        };
        self.set(keys::DISK_SHORT, Some(&short))?;
        Ok(Some(short))
    }

    fn delete(&self, ids: &[Uuid]) -> Result<usize, SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql())?;
        let mut deleted = 0;
        {
            let mut stmt = tx
                .prepare_cached("DELETE FROM results WHERE result_id = ?1")
                .map_err(self.sql())?;
            for id in ids {
                deleted += stmt.execute([id.to_string()]).map_err(self.sql())?;
            }
        }
        tx.commit().map_err(self.sql())?;
        Ok(deleted)
    }

    /// Moves a refused result to the quarantine, where it is never retried.
    /// Returns false if the id is not in the spool.
    pub fn quarantine(&self, id: Uuid, field: &str, reason: &str) -> Result<bool, SpoolError> {
        self.making_room(|| self.repairing(|| self.move_to_quarantine(id, field, reason)))
    }

    fn move_to_quarantine(&self, id: Uuid, field: &str, reason: &str) -> Result<bool, SpoolError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql())?;
        let moved = tx
            .execute(
                "INSERT OR REPLACE INTO quarantine
                     (result_id, kind, created_at, quarantined_at, field, reason, json)
                 SELECT result_id, kind, created_at, ?2, ?3, ?4, json
                 FROM results WHERE result_id = ?1",
                params![id.to_string(), now_text(), field, reason],
            )
            .map_err(self.sql())?;
        tx.execute("DELETE FROM results WHERE result_id = ?1", [id.to_string()])
            .map_err(self.sql())?;
        tx.commit().map_err(self.sql())?;
        Ok(moved > 0)
    }

    /// Results waiting for upload.
    pub fn depth(&self) -> Result<u64, SpoolError> {
        self.count("SELECT COUNT(*) FROM results")
    }

    /// Results of `kind` waiting to be uploaded. Asked before every upload,
    /// so a damaged file is rebuilt here as in [`Self::next_batch`].
    pub fn depth_of(&self, kind: &str) -> Result<u64, SpoolError> {
        self.repairing(|| {
            self.conn()
                .query_row(
                    "SELECT count(*) FROM results WHERE kind = ?1",
                    [kind],
                    |row| row.get::<_, i64>(0),
                )
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(self.sql())
        })
    }

    /// Whether `max` or more results are waiting.
    pub fn is_full(&self, max: u64) -> Result<bool, SpoolError> {
        Ok(self.depth()? >= max)
    }

    /// [`Self::is_full`], also recorded in the state for `status`.
    pub fn refresh_full(&self, max: u64) -> Result<bool, SpoolError> {
        let full = self.is_full(max)?;
        self.set(keys::SPOOL_FULL, Some(&full))?;
        Ok(full)
    }

    /// Results in the quarantine.
    pub fn quarantine_count(&self) -> Result<u64, SpoolError> {
        self.count("SELECT COUNT(*) FROM quarantine")
    }

    /// The `n` most recently quarantined results, newest first.
    pub fn recent_quarantine(&self, n: usize) -> Result<Vec<Quarantined>, SpoolError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT result_id, kind, quarantined_at, field, reason FROM quarantine
                 ORDER BY quarantined_at DESC, rowid DESC LIMIT ?1",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([n as i64], |row| {
                Ok(Quarantined {
                    result_id: lossy_text(row.get_ref(0)?),
                    kind: lossy_text(row.get_ref(1)?),
                    quarantined_at: parse_time(row.get_ref(2)?.as_str()?)?,
                    field: lossy_text(row.get_ref(3)?),
                    reason: lossy_text(row.get_ref(4)?),
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<_, _>>().map_err(self.sql())
    }

    /// Everything `status` shows from the state table.
    pub fn state(&self) -> Result<State, SpoolError> {
        Ok(State {
            last_round: self.get(keys::LAST_ROUND)?,
            last_upload: self.get(keys::LAST_UPLOAD)?,
            last_error: self.get(keys::LAST_ERROR)?,
            spool_full: self.get(keys::SPOOL_FULL)?.unwrap_or(false),
            disk_short: self.get(keys::DISK_SHORT)?,
            pause_until: self
                .get::<String>(keys::PAUSE_UNTIL)?
                .and_then(|t| parse_time(&t).ok()),
            targets_override: self.get(keys::TARGETS)?,
            targets_received_at: self
                .get::<String>(keys::TARGETS_AT)?
                .and_then(|t| parse_time(&t).ok()),
        })
    }

    /// Records a finished round.
    pub fn set_last_round(&self, round: &RoundSummary) -> Result<(), SpoolError> {
        self.set(keys::LAST_ROUND, Some(round))
    }

    /// Records an answered upload.
    pub fn set_last_upload(&self, upload: &UploadSummary) -> Result<(), SpoolError> {
        self.set(keys::LAST_UPLOAD, Some(upload))
    }

    /// Records an error, stamped now.
    pub fn set_last_error(&self, message: &str) -> Result<(), SpoolError> {
        let note = ErrorNote {
            at: OffsetDateTime::now_utc(),
            message: message.to_owned(),
        };
        self.set(keys::LAST_ERROR, Some(&note))
    }

    /// Forgets the last error (e.g. once uploads work again).
    pub fn clear_last_error(&self) -> Result<(), SpoolError> {
        self.set::<ErrorNote>(keys::LAST_ERROR, None)
    }

    /// Records (or, with `None`, lifts) the collector's pause.
    pub fn set_pause_until(&self, until: Option<OffsetDateTime>) -> Result<(), SpoolError> {
        let text = until.map(timestamp::precise);
        self.set(keys::PAUSE_UNTIL, text.as_ref())
    }

    /// Records (or, with `None`, forgets) the collector's target list, stamped now (it
    /// expires: [`State::assignment_at`]).
    pub fn set_targets_override(&self, targets: Option<&[String]>) -> Result<(), SpoolError> {
        let at = targets.map(|_| timestamp::precise(OffsetDateTime::now_utc()));
        let targets = targets.map(<[String]>::to_vec);
        // One transaction: the list and its stamp change together, with one disk sync.
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql())?;
        write_state(&tx, keys::TARGETS_AT, at.as_ref()).map_err(self.sql())?;
        write_state(&tx, keys::TARGETS, targets.as_ref()).map_err(self.sql())?;
        tx.commit().map_err(self.sql())
    }

    fn count(&self, sql: &str) -> Result<u64, SpoolError> {
        let n: i64 = self
            .conn()
            .query_row(sql, [], |row| row.get(0))
            .map_err(self.sql())?;
        Ok(n as u64)
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SpoolError> {
        let text: Option<String> = self
            .conn()
            .query_row("SELECT value FROM state WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(self.sql())?;
        // A value this build cannot read (written by another version) is
        // shown as absent rather than failing `status` altogether.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn set<T: Serialize>(&self, key: &str, value: Option<&T>) -> Result<(), SpoolError> {
        self.making_room(|| write_state(&self.conn(), key, value).map_err(self.sql()))
    }
}

/// Stores (or, with `None`, deletes) one value of the `state` table, as JSON.
fn write_state<T: Serialize>(
    conn: &Connection,
    key: &str,
    value: Option<&T>,
) -> rusqlite::Result<()> {
    match value {
        Some(value) => {
            let text = serde_json::to_string(value).expect("state values serialize");
            conn.execute(
                "INSERT INTO state (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, text],
            )
        }
        None => conn.execute("DELETE FROM state WHERE key = ?1", [key]),
    }?;
    Ok(())
}

/// A configured connection to the spool at `path`, its schema migrated.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, SpoolError> {
    let sql = sql_error(path);
    let mut conn = Connection::open_with_flags(path, flags).map_err(&sql)?;

    // WAL: readers (status) never block the writer. FULL: every commit
    // is on disk before put/ack return.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&sql)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&sql)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(&sql)?;
    // No temporary files: the agent may no longer be allowed to create them.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(&sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&sql)?;
    migrate(path, &mut conn)?;
    Ok(conn)
}

fn migrate(path: &Path, conn: &mut Connection) -> Result<(), SpoolError> {
    let sql = sql_error(path);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&sql)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(&sql)?;
    match version {
        0 => {
            tx.execute_batch(SCHEMA).map_err(&sql)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(&sql)?;
        }
        SCHEMA_VERSION => {}
        found => {
            return Err(SpoolError::NewerSchema {
                path: path.to_owned(),
                found,
            });
        }
    }
    tx.commit().map_err(&sql)
}

fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> SpoolError + '_ {
    move |source| SpoolError::Sqlite {
        path: path.to_owned(),
        source,
    }
}

fn now_text() -> String {
    timestamp::precise(OffsetDateTime::now_utc())
}

fn parse_time(text: &str) -> rusqlite::Result<OffsetDateTime> {
    timestamp::parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("'{text}' is not an RFC 3339 time").into(),
        )
    })
}

/// A spooled row as a [`Spooled`], or why it cannot be one.
fn read_spooled(row: &rusqlite::Row<'_>) -> Result<Spooled, String> {
    let text = |i: usize, name: &str| -> Result<String, String> {
        match row.get_ref(i) {
            Ok(ValueRef::Text(bytes)) => {
                String::from_utf8(bytes.to_vec()).map_err(|_| format!("{name} is not UTF-8 text"))
            }
            Ok(other) => Err(format!("{name} is {:?}, not text", other.data_type())),
            Err(e) => Err(format!("{name}: {e}")),
        }
    };
    let id_text = text(1, "result_id")?;
    let result_id = Uuid::parse_str(&id_text)
        .map_err(|e| format!("result_id {id_text:?} is not a UUID: {e}"))?;
    Ok(Spooled {
        result_id,
        kind: text(2, "kind")?,
        created_at: text(3, "created_at")
            .ok()
            .and_then(|t| parse_time(&t).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        json: text(4, "json")?,
    })
}

/// What can still be read from a damaged spool, as rows of text.
struct Salvaged {
    /// `results` rows in their order: result_id, kind, created_at, json.
    results: Vec<[String; 4]>,
    /// `quarantine` rows: result_id, kind, created_at, quarantined_at, field, reason, json.
    quarantine: Vec<[String; 7]>,
    /// `state` rows.
    state: Vec<[String; 2]>,
    /// Results whose rows could not be read (they are in `quarantine`).
    lost: usize,
}

const LOST_REASON: &str = "unreadable in the local spool: its page of the file was damaged (SQLITE_CORRUPT); the result is lost";

/// Reads what it can of a damaged spool. Fails only if the results cannot
/// even be listed.
fn salvage(conn: &Connection) -> rusqlite::Result<Salvaged> {
    let mut listed: Vec<(i64, String)> = conn
        .prepare(
            "SELECT rowid, CAST(result_id AS TEXT) FROM results
             INDEXED BY sqlite_autoindex_results_1",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    listed.sort_unstable();
    // The other tables are small and on their own pages: read what reads.
    let mut quarantine: Vec<[String; 7]> = read_all(
        conn,
        "SELECT result_id, kind, created_at, quarantined_at, field, reason, json FROM quarantine",
    );
    let state = read_all(conn, "SELECT key, value FROM state");
    let mut results = Vec::with_capacity(listed.len());
    let mut lost = 0;
    for (rowid, id) in listed {
        let row = conn.query_row(
            "SELECT result_id, kind, created_at, json FROM results WHERE rowid = ?1",
            [rowid],
            texts::<4>,
        );
        match row {
            Ok(row) => results.push(row),
            Err(e) if is_corrupt_sql(&e) => {
                tracing::error!(result_id = %id, "spool row on a damaged page; quarantined");
                lost += 1;
                quarantine.push([
                    id,
                    String::new(),
                    String::new(),
                    now_text(),
                    String::new(),
                    LOST_REASON.to_owned(),
                    String::new(),
                ]);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Salvaged {
        results,
        quarantine,
        state,
        lost,
    })
}

impl Salvaged {
    fn write(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for r in &self.results {
            tx.execute(
                "INSERT OR IGNORE INTO results (result_id, kind, created_at, json) VALUES (?1, ?2, ?3, ?4)",
                params![r[0], r[1], r[2], r[3]],
            )?;
        }
        for q in &self.quarantine {
            tx.execute(
                "INSERT OR REPLACE INTO quarantine
                     (result_id, kind, created_at, quarantined_at, field, reason, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![q[0], q[1], q[2], q[3], q[4], q[5], q[6]],
            )?;
        }
        for kv in &self.state {
            tx.execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES (?1, ?2)",
                params![kv[0], kv[1]],
            )?;
        }
        tx.commit()
    }
}

/// Every row of `sql` as text, or none if the table cannot be read.
fn read_all<const N: usize>(conn: &Connection, sql: &str) -> Vec<[String; N]> {
    let read = || -> rusqlite::Result<Vec<[String; N]>> {
        conn.prepare(sql)?.query_map([], texts::<N>)?.collect()
    };
    read().unwrap_or_else(|e| {
        tracing::error!("cannot salvage `{sql}`: {e}");
        Vec::new()
    })
}

fn texts<const N: usize>(row: &rusqlite::Row<'_>) -> rusqlite::Result<[String; N]> {
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = lossy_text(row.get_ref(i)?);
    }
    Ok(out)
}

/// `"db."` for `spool.db`, so that siblings read `spool.db.rebuilt`.
fn extension_prefix(path: &Path) -> String {
    path.extension()
        .map(|e| format!("{}.", e.to_string_lossy()))
        .unwrap_or_default()
}

/// Moves `from`'s `-wal` and `-shm` files, if any, beside `to`.
fn move_journals(from: &Path, to: &Path) -> std::io::Result<()> {
    for suffix in ["-wal", "-shm"] {
        let with = |p: &Path| {
            let mut name = p.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        match std::fs::rename(with(from), with(to)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Makes the renames in `path`'s directory durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

fn remove_with_journals(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

fn is_corrupt(e: &SpoolError) -> bool {
    matches!(e, SpoolError::Sqlite { source, .. } if is_corrupt_sql(source))
}

fn is_corrupt_sql(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// A column as text, whatever SQLite holds there (for display).
fn lossy_text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use nkpath_proto::{PingResult, SCHEMA_VERSION as WIRE_VERSION};

    use super::*;

    fn ping(n: u8) -> ResultRecord {
        ResultRecord::Ping(PingResult {
            schema_version: WIRE_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: "t1".into(),
            agent_version: "0.1.0".into(),
            round_id: Uuid::nil(),
            source: Ipv4Addr::new(192, 0, 2, 1),
            target: Ipv4Addr::new(175, 45, 176, n),
            started_at: OffsetDateTime::UNIX_EPOCH,
            sent: 1,
            received: 0,
            rtts_us: vec![],
        })
    }

    fn spool() -> (tempfile::TempDir, Spool) {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
        (dir, spool)
    }

    #[test]
    fn results_come_back_oldest_first_and_survive_reopening() {
        let (dir, spool) = spool();
        let records: Vec<ResultRecord> = (0..5).map(ping).collect();
        for r in &records {
            spool.put(r).unwrap();
        }
        spool.put(&records[0]).unwrap(); // a second put of the same id is a no-op
        drop(spool);
        let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
        assert_eq!(spool.depth().unwrap(), 5);
        let batch = spool.next_batch(3).unwrap();
        let ids: Vec<Uuid> = batch.iter().map(|s| s.result_id).collect();
        let expected: Vec<Uuid> = records[..3].iter().map(ResultRecord::result_id).collect();
        assert_eq!(ids, expected);
        let back: ResultRecord = nkpath_proto::decode(&batch[0].json).unwrap();
        assert_eq!(back, records[0]);
        assert_eq!(batch[0].kind, "ping");
    }

    #[test]
    fn ack_deletes_only_the_given_ids() {
        let (_dir, spool) = spool();
        let records: Vec<ResultRecord> = (0..4).map(ping).collect();
        for r in &records {
            spool.put(r).unwrap();
        }
        let deleted = spool
            .ack(&[
                records[1].result_id(),
                Uuid::new_v4(),
                records[3].result_id(),
            ])
            .unwrap();
        assert_eq!(deleted, 2);
        let left: Vec<Uuid> = spool
            .next_batch(10)
            .unwrap()
            .iter()
            .map(|s| s.result_id)
            .collect();
        assert_eq!(left, [records[0].result_id(), records[2].result_id()]);
    }

    #[test]
    fn quarantine_moves_and_is_visible() {
        let (_dir, spool) = spool();
        let r = ping(1);
        spool.put(&r).unwrap();
        assert!(
            spool
                .quarantine(r.result_id(), "target", "outside the target prefixes")
                .unwrap()
        );
        assert!(!spool.quarantine(Uuid::new_v4(), "x", "y").unwrap());
        assert_eq!(spool.depth().unwrap(), 0);
        assert_eq!(spool.quarantine_count().unwrap(), 1);
        let q = spool.recent_quarantine(5).unwrap();
        assert_eq!(q[0].result_id, r.result_id().to_string());
        assert_eq!(q[0].field, "target");
        assert!(spool.next_batch(10).unwrap().is_empty());
    }

    #[test]
    fn state_round_trips() {
        let (_dir, spool) = spool();
        assert_eq!(spool.state().unwrap(), State::default());
        let t = OffsetDateTime::from_unix_timestamp(1_506_816_000).unwrap();
        let round = RoundSummary {
            round_id: Uuid::new_v4(),
            started_at: t,
            ended_at: t + time::Duration::minutes(3),
            traces: 1024,
            reached: 900,
            pings: 1024,
        };
        spool.set_last_round(&round).unwrap();
        spool.set_pause_until(Some(t)).unwrap();
        spool
            .set_targets_override(Some(&["175.45.176.0/24".to_owned()]))
            .unwrap();
        spool.set_last_error("collector down").unwrap();
        for r in (0..3).map(ping) {
            spool.put(&r).unwrap();
        }
        assert!(spool.refresh_full(3).unwrap());
        let state = spool.state().unwrap();
        assert_eq!(state.last_round, Some(round));
        assert_eq!(state.pause_until, Some(t));
        assert_eq!(state.paused_at(t - time::Duration::SECOND), Some(t));
        assert_eq!(state.paused_at(t), None);
        assert_eq!(
            state.targets_override.as_deref(),
            Some(&["175.45.176.0/24".to_owned()][..])
        );
        assert_eq!(state.last_error.unwrap().message, "collector down");
        assert!(state.spool_full);
        spool.set_pause_until(None).unwrap();
        spool.clear_last_error().unwrap();
        assert!(!spool.refresh_full(4).unwrap());
        let state = spool.state().unwrap();
        assert_eq!(state.pause_until, None);
        assert_eq!(state.last_error, None);
        assert!(!state.spool_full);
    }

    #[test]
    fn refuses_a_newer_schema_and_a_missing_file() {
        let (dir, spool) = spool();
        let path = dir.path().join("spool.db");
        spool
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(spool);
        let err = Spool::open(&path).unwrap_err();
        assert!(matches!(err, SpoolError::NewerSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade nkpath-agent"));
        let err = Spool::open_existing(&dir.path().join("nope.db")).unwrap_err();
        assert!(matches!(err, SpoolError::Missing { .. }), "{err}");
        assert!(!dir.path().join("nope.db").exists());
    }
}
