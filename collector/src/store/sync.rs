//! What `bgp sync` remembers (schema v8): every archive file it tried, by URL (`sync_files`),
//! and the periods of a collector no update file covers (`sync_gaps`).
//!
//! Rows are written one statement at a time, committed at once: a file's row is written after
//! its load committed (or failed), so an interrupted sync finds at worst a file loaded but
//! not yet remembered, which the loader then recognises by its SHA-256 and skips.

use nkpath_proto::timestamp;
use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, DbError};

/// How a fetched file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Loaded (or found already loaded): never fetched again.
    Loaded,
    /// Not loaded yet: tried again by the next pass.
    Failed,
    /// Given up on: its slot is a gap.
    Gap,
}

impl SyncStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Failed => "failed",
            Self::Gap => "gap",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "loaded" => Some(Self::Loaded),
            "failed" => Some(Self::Failed),
            "gap" => Some(Self::Gap),
            _ => None,
        }
    }
}

/// One remembered archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFile {
    /// Where it was fetched from.
    pub url: String,
    /// The route collector.
    pub collector: String,
    /// `rib` or `updates`.
    pub kind: String,
    /// The slot time of its name (UNIX seconds).
    pub slot_time: i64,
    /// How it went.
    pub status: SyncStatus,
    /// Bytes downloaded, when the download completed.
    pub bytes: Option<u64>,
    /// Tries so far.
    pub attempts: u32,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// When the row was last written.
    pub updated_at: OffsetDateTime,
}

/// A period of a collector without update data: `[start, end)`, UNIX seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncGap {
    /// The route collector.
    pub collector: String,
    /// First second of the gap.
    pub start: i64,
    /// First second after it.
    pub end: i64,
    /// Why there is no data.
    pub reason: String,
}

const FILE_COLUMNS: &str =
    "url, collector, kind, slot_time, status, bytes, attempts, last_error, updated_at";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<SyncFile>> {
    let status: String = r.get(4)?;
    let updated: String = r.get(8)?;
    let bytes: Option<i64> = r.get(5)?;
    Ok(SyncStatus::parse(&status)
        .zip(timestamp::parse(&updated))
        .map(|(status, updated_at)| SyncFile {
            url: r.get(0).unwrap_or_default(),
            collector: r.get(1).unwrap_or_default(),
            kind: r.get(2).unwrap_or_default(),
            slot_time: r.get(3).unwrap_or_default(),
            status,
            bytes: bytes.and_then(|b| u64::try_from(b).ok()),
            attempts: r.get(6).unwrap_or_default(),
            last_error: r.get(7).unwrap_or_default(),
            updated_at,
        }))
}

impl Db {
    /// The remembered file at `url`, if any.
    pub fn sync_file(&self, url: &str) -> Result<Option<SyncFile>, DbError> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {FILE_COLUMNS} FROM sync_files WHERE url = ?1"),
                [url],
                file_row,
            )
            .optional()?;
        Ok(row.flatten())
    }

    /// Every remembered file of `collector`, oldest slot first.
    pub fn sync_files(&self, collector: &str) -> Result<Vec<SyncFile>, DbError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {FILE_COLUMNS} FROM sync_files WHERE collector = ?1 ORDER BY slot_time, kind, url"
        ))?;
        let rows = stmt.query_map([collector], file_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(row?);
        }
        Ok(out)
    }

    /// The collectors `bgp sync` has remembered files of, by name.
    pub fn synced_collectors(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT collector FROM sync_files ORDER BY collector")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the outcome of a try at `file.url` (replacing what was remembered).
    pub fn put_sync_file(&self, file: &SyncFile) -> Result<(), DbError> {
        self.conn.execute(
            &format!(
                "INSERT OR REPLACE INTO sync_files ({FILE_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                file.url,
                file.collector,
                file.kind,
                file.slot_time,
                file.status.as_str(),
                file.bytes.and_then(|b| i64::try_from(b).ok()),
                file.attempts,
                file.last_error,
                timestamp::stored(file.updated_at),
            ],
        )?;
        Ok(())
    }

    /// Records a gap (a gap already recorded at the same start is replaced).
    pub fn put_sync_gap(&self, gap: &SyncGap) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO sync_gaps (collector, start, end, reason) \
             VALUES (?1, ?2, ?3, ?4)",
            params![gap.collector, gap.start, gap.end, gap.reason],
        )?;
        Ok(())
    }

    /// Every gap recorded, by collector and start.
    pub fn sync_gaps(&self) -> Result<Vec<SyncGap>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT collector, start, end, reason FROM sync_gaps ORDER BY collector, start",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SyncGap {
                collector: r.get(0)?,
                start: r.get(1)?,
                end: r.get(2)?,
                reason: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// How the last sync pass over a collector went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPass {
    /// The route collector.
    pub collector: String,
    /// When the pass ended.
    pub last_pass: OffsetDateTime,
    /// Its first error, if any.
    pub last_error: Option<String>,
}

impl Db {
    /// Records how a pass over `pass.collector` went.
    pub fn put_sync_pass(&self, pass: &SyncPass) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO sync_collectors (collector, last_pass, last_error) \
             VALUES (?1, ?2, ?3)",
            params![
                pass.collector,
                timestamp::stored(pass.last_pass),
                pass.last_error
            ],
        )?;
        Ok(())
    }

    /// How the last pass over each collector went, by collector (rows with an unreadable
    /// time are left out).
    pub fn sync_passes(&self) -> Result<Vec<SyncPass>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT collector, last_pass, last_error FROM sync_collectors ORDER BY collector",
        )?;
        let rows = stmt.query_map([], |r| {
            let at: String = r.get(1)?;
            Ok(timestamp::parse(&at).map(|last_pass| SyncPass {
                collector: r.get(0).unwrap_or_default(),
                last_pass,
                last_error: r.get(2).unwrap_or_default(),
            }))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.extend(row?);
        }
        Ok(out)
    }
}
