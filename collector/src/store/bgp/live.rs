//! Provisional BGP rows: what RIS Live delivered before the archive's update file of the
//! same collector and period is loaded.
//!
//! Live rows are ordinary `bgp_updates` and `peer_state_changes` rows of a provisional
//! `mrt_files` row (one per collector and hour, `provisional = 1`, format `RIS_LIVE`), so
//! that every reader of the BGP state sees them without knowing where they came from. When
//! an update file loads, [`WriteTx::supersede_provisional`] deletes the provisional rows of
//! its collector within its period, in the file's own transaction: the file replaces them,
//! and nothing is counted twice.

use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::load::UpdateRow;
use crate::store::{Db, DbError, WriteTx};

/// Format name of provisional files.
pub const LIVE_FORMAT: &str = "RIS_LIVE";

/// Length of the period one provisional file holds (seconds).
pub const PROVISIONAL_FILE_SPAN: i64 = 3600;

/// What [`WriteTx::supersede_provisional`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Superseded {
    /// Provisional announcements and withdrawals deleted.
    pub updates: u64,
    /// Provisional session changes deleted.
    pub state_changes: u64,
}

impl WriteTx<'_> {
    /// The end of the newest period a loaded (not provisional) update file of the collector
    /// is the authority for; `None` when none is loaded. Live rows at or before it are
    /// never stored: the archive has spoken for that time.
    pub fn archive_updates_until(&self, collector_id: i64) -> Result<Option<i64>, DbError> {
        Ok(self.sql().query_row(
            "SELECT max(coalesce(period_until, last_time)) FROM mrt_files
             WHERE collector_id = ?1 AND kind = 'updates' AND NOT provisional",
            [collector_id],
            |r| r.get(0),
        )?)
    }

    /// The id of the collector's provisional file for the hour holding `time`, added if new.
    pub fn provisional_file(
        &self,
        collector_id: i64,
        collector: &str,
        time: i64,
    ) -> Result<i64, DbError> {
        let hour = time.div_euclid(PROVISIONAL_FILE_SPAN) * PROVISIONAL_FILE_SPAN;
        let key = format!("ris-live:{collector}:{hour}");
        let conn = self.sql();
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM mrt_files WHERE sha256 = ?1")?
            .query_row([&key], |r| r.get(0))
            .optional()?;
        if let Some(id) = found {
            return Ok(id);
        }
        let name = format!(
            "ris-live:{collector}:{}",
            nkpath_proto::timestamp::display_unix(hour)
        );
        conn.execute(
            "INSERT INTO mrt_files (collector_id, name, sha256, mrt_sha256, compression,
                 kind, format, dump_time, first_time, last_time, file_bytes, mrt_bytes,
                 records, peers, prefixes, rib_entries, announcements, withdrawals,
                 state_changes, ipv6_skipped, other_skipped, malformed_nlri, loaded_at,
                 provisional)
             VALUES (?1, ?2, ?3, ?3, 'none', 'updates', ?4, NULL, ?5, ?5, 0, 0,
                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?6, 1)",
            params![
                collector_id,
                name,
                key,
                LIVE_FORMAT,
                time,
                nkpath_proto::timestamp::stored(OffsetDateTime::now_utc()),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The next position in a provisional file (after its update and session-change rows).
    pub fn next_provisional_seq(&self, file_id: i64) -> Result<i64, DbError> {
        Ok(self
            .sql()
            .prepare_cached(
                "SELECT max(coalesce((SELECT max(seq) FROM bgp_updates WHERE file_id = ?1), 0),
                            coalesce((SELECT max(seq) FROM peer_state_changes WHERE file_id = ?1), 0))
                        + 1",
            )?
            .query_row([file_id], |r| r.get(0))?)
    }

    /// Whether the collector's provisional files already hold this announcement or
    /// withdrawal (a message delivered twice, e.g. across a reconnect).
    pub fn provisional_update_exists(
        &self,
        collector_id: i64,
        u: &UpdateRow<'_>,
    ) -> Result<bool, DbError> {
        Ok(self
            .sql()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM bgp_updates u JOIN mrt_files f ON f.id = u.file_id
                 WHERE u.time = ?2 AND f.collector_id = ?1 AND f.provisional
                   AND u.peer_id = ?3 AND u.net = ?4 AND u.len = ?5 AND u.path_id = ?6
                   AND u.origins IS ?7 AND u.as_path IS ?8)",
            )?
            .query_row(
                params![
                    collector_id,
                    u.time,
                    u.peer_id,
                    u.prefix.0,
                    u.prefix.1,
                    u.path_id,
                    u.origins,
                    u.as_path
                ],
                |r| r.get(0),
            )?)
    }

    /// Whether the collector's provisional files already hold this session change.
    pub fn provisional_state_change_exists(
        &self,
        collector_id: i64,
        time: i64,
        peer_id: i64,
        new_state: u16,
    ) -> Result<bool, DbError> {
        Ok(self
            .sql()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM peer_state_changes s
                 JOIN mrt_files f ON f.id = s.file_id
                 WHERE s.time = ?2 AND f.collector_id = ?1 AND f.provisional
                   AND s.peer_id = ?3 AND s.new_state = ?4)",
            )?
            .query_row(params![collector_id, time, peer_id, new_state], |r| {
                r.get(0)
            })?)
    }

    /// Widens a provisional file's span to `time` and counts one more row of the given kind.
    pub fn count_provisional_row(
        &self,
        file_id: i64,
        time: i64,
        kind: ProvisionalRow,
    ) -> Result<(), DbError> {
        let (a, w, s) = match kind {
            ProvisionalRow::Announcement => (1, 0, 0),
            ProvisionalRow::Withdrawal => (0, 1, 0),
            ProvisionalRow::StateChange => (0, 0, 1),
        };
        self.sql()
            .prepare_cached(
                "UPDATE mrt_files SET first_time = min(first_time, ?2),
                     last_time = max(last_time, ?2), records = records + 1,
                     announcements = announcements + ?3, withdrawals = withdrawals + ?4,
                     state_changes = state_changes + ?5
                 WHERE id = ?1 AND provisional",
            )?
            .execute(params![file_id, time, a, w, s])?;
        Ok(())
    }

    /// Records the span (both ends included) a loaded update file is the authority for.
    pub fn set_update_period(&self, file_id: i64, from: i64, until: i64) -> Result<(), DbError> {
        self.sql().execute(
            "UPDATE mrt_files SET period_from = ?2, period_until = ?3 WHERE id = ?1",
            params![file_id, from, until],
        )?;
        Ok(())
    }

    /// Deletes the collector's provisional rows with `from <= time <= until` (an update file
    /// of that period is being loaded and replaces them), then brings the provisional files'
    /// spans and counts up to date and drops the ones left empty.
    pub fn supersede_provisional(
        &self,
        collector_id: i64,
        from: i64,
        until: i64,
    ) -> Result<Superseded, DbError> {
        let conn = self.sql();
        let files: Vec<i64> = conn
            .prepare_cached(
                "SELECT id FROM mrt_files WHERE collector_id = ?1 AND provisional
                 AND last_time >= ?2 AND first_time <= ?3",
            )?
            .query_map(params![collector_id, from, until], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut removed = Superseded::default();
        for file_id in files {
            removed.updates += conn.execute(
                "DELETE FROM bgp_updates WHERE file_id = ?1 AND time >= ?2 AND time <= ?3",
                params![file_id, from, until],
            )? as u64;
            removed.state_changes += conn.execute(
                "DELETE FROM peer_state_changes WHERE file_id = ?1 AND time >= ?2 AND time <= ?3",
                params![file_id, from, until],
            )? as u64;
            recount_provisional(conn, file_id)?;
        }
        Ok(removed)
    }
}

/// Recomputes a provisional file's span and counts from its rows; deletes it when empty.
fn recount_provisional(conn: &rusqlite::Connection, file_id: i64) -> rusqlite::Result<()> {
    let left: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM bgp_updates WHERE file_id = ?1)
              + (SELECT count(*) FROM peer_state_changes WHERE file_id = ?1)",
        [file_id],
        |r| r.get(0),
    )?;
    if left == 0 {
        conn.execute(
            "DELETE FROM mrt_files WHERE id = ?1 AND provisional",
            [file_id],
        )?;
        return Ok(());
    }
    conn.execute(
        "UPDATE mrt_files SET
             first_time = (SELECT min(t) FROM (SELECT time AS t FROM bgp_updates WHERE file_id = ?1
                                               UNION ALL
                                               SELECT time FROM peer_state_changes WHERE file_id = ?1)),
             last_time = (SELECT max(t) FROM (SELECT time AS t FROM bgp_updates WHERE file_id = ?1
                                              UNION ALL
                                              SELECT time FROM peer_state_changes WHERE file_id = ?1)),
             records = ?2,
             announcements = (SELECT count(*) FROM bgp_updates WHERE file_id = ?1
                                  AND origins IS NOT NULL),
             withdrawals = (SELECT count(*) FROM bgp_updates WHERE file_id = ?1 AND origins IS NULL),
             state_changes = (SELECT count(*) FROM peer_state_changes WHERE file_id = ?1)
         WHERE id = ?1",
        params![file_id, left],
    )?;
    Ok(())
}

/// The kind of a provisional row, for its file's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionalRow {
    /// An announcement.
    Announcement,
    /// A withdrawal.
    Withdrawal,
    /// A session change.
    StateChange,
}

/// A collector's live rows as `bgp status`-like summaries show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionalSummary {
    /// Collector name.
    pub collector: String,
    /// Provisional announcements and withdrawals.
    pub updates: u64,
    /// Provisional session changes.
    pub state_changes: u64,
    /// Time of the newest provisional row (UNIX seconds).
    pub newest: i64,
}

impl Db {
    /// Per collector with provisional rows: how many, and the newest time.
    pub fn provisional_summary(&self) -> Result<Vec<ProvisionalSummary>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.name, sum(f.announcements + f.withdrawals), sum(f.state_changes),
                    max(f.last_time)
             FROM mrt_files f JOIN collectors c ON c.id = f.collector_id
             WHERE f.provisional GROUP BY c.name ORDER BY c.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProvisionalSummary {
                collector: r.get(0)?,
                updates: r.get(1)?,
                state_changes: r.get(2)?,
                newest: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
