//! The rows the BGP state is built from: RIB dumps and their routes, prefix origins, update
//! and state change events, peers, and the AS adjacencies; the loaded files as exports cite
//! them, and the origins of a prefix in a collector's newest dump (fleet vantage points).
//!
//! Queries that may return millions of rows (a collector's updates, a full table's prefix
//! origins) hand each row to a callback instead of collecting them, so that the room above
//! builds its own structures in one pass.
//!
//! A RIB dump loads in several commits (see [`super::load`]); until its last one its file's
//! `mrt_sha256` is `pending:…`, and every query here reads past it: a reader sees a dump
//! whole or not at all.

use rusqlite::{Connection, OptionalExtension as _, Row, params};

use super::{ESTABLISHED, StoredPrefix};
use crate::store::{Db, DbError, WriteTx};

/// A loaded MRT file as exports cite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrtFileRow {
    /// The file's name.
    pub name: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// `rib` or `updates`.
    pub kind: String,
    /// `TABLE_DUMP_V2`, `TABLE_DUMP`, `BGP4MP` or `BGP`.
    pub format: String,
    /// The collector it was loaded for.
    pub collector: String,
    /// Earliest record timestamp (UNIX seconds).
    pub first_time: i64,
    /// Latest record timestamp (UNIX seconds).
    pub last_time: i64,
    /// The file is cut short (loaded with `--accept-truncated`): what follows the cut is
    /// missing from the BGP data.
    pub truncated: bool,
}

/// A collector's RIB dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibDump {
    /// `collectors.id`.
    pub collector_id: i64,
    /// `mrt_files.id`.
    pub file_id: i64,
    /// Its file name.
    pub file: String,
    /// Its time (UNIX seconds).
    pub time: i64,
    /// Its collector's name.
    pub collector: String,
    /// The dump is cut short (loaded with `--accept-truncated`): the routes after the cut
    /// are missing from every state built on it.
    pub truncated: bool,
}

/// A collector peer, with its collector's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRow {
    /// `peers.id`.
    pub id: i64,
    /// Collector name.
    pub collector: String,
    /// `collectors.id`.
    pub collector_id: i64,
    /// Index within the collector.
    pub index: u32,
    /// Peer address, as stored.
    pub address: String,
    /// Peer ASN.
    pub asn: u32,
}

/// One target route of a RIB dump (`rib_routes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibRouteRow {
    /// `peers.id`.
    pub peer_id: i64,
    /// The prefix.
    pub prefix: StoredPrefix,
    /// ADD-PATH identifier, 0 without.
    pub path_id: u32,
    /// The AS path as text.
    pub as_path: String,
}

/// One stored announcement or withdrawal, with its peer's index in the collector.
#[derive(Debug, Clone, Copy)]
pub struct StoredUpdate<'a> {
    /// MRT timestamp.
    pub time: i64,
    /// `mrt_files.id`.
    pub file_id: i64,
    /// Position in the file.
    pub seq: i64,
    /// `peers.id`.
    pub peer_id: i64,
    /// The peer's index in its collector.
    pub peer_index: u32,
    /// The prefix.
    pub prefix: StoredPrefix,
    /// ADD-PATH identifier, 0 without.
    pub path_id: u32,
    /// Announcements: the origins as text; `None` for a withdrawal.
    pub origins: Option<&'a str>,
    /// The prefix overlaps a target prefix.
    pub is_target: bool,
    /// Target announcements: the full AS path as text.
    pub as_path: Option<&'a str>,
}

/// A session leaving or reaching Established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionChangeRow {
    /// MRT timestamp.
    pub time: i64,
    /// `mrt_files.id`.
    pub file_id: i64,
    /// Position in the file.
    pub seq: i64,
    /// `peers.id`.
    pub peer_id: i64,
    /// The peer's index in its collector.
    pub peer_index: u32,
    /// The session reached Established (`false`: it left it).
    pub up: bool,
}

/// The state changes that are events: a session leaving or reaching Established (`?4`).
const SESSION_CHANGE: &str =
    "((s.old_state = ?4 AND s.new_state != ?4) OR (s.new_state = ?4 AND s.old_state != ?4))";

/// Column `i` of `row` as borrowed text, `None` for NULL.
fn optional_text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    let value = row.get_ref(i)?;
    value
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, value.data_type(), Box::new(e)))
}

impl Db {
    /// Every collector: (id, name), by name.
    pub fn bgp_collectors(&self) -> Result<Vec<(i64, String)>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, name FROM collectors ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last RIB dump at or before `t`, per collector (by collector name).
    pub fn latest_rib_dumps(&self, t: i64) -> Result<Vec<RibDump>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.name, f.id, f.name, f.dump_time, f.truncated
             FROM collectors c
             JOIN mrt_files f ON f.collector_id = c.id
             WHERE f.dump_time = (SELECT max(g.dump_time) FROM mrt_files g
                                  WHERE g.collector_id = c.id AND g.dump_time <= ?1
                                      AND g.mrt_sha256 NOT LIKE 'pending:%')
                 AND f.mrt_sha256 NOT LIKE 'pending:%'
             ORDER BY c.name",
        )?;
        let rows = stmt.query_map([t], |r| {
            Ok(RibDump {
                collector_id: r.get(0)?,
                file_id: r.get(2)?,
                file: r.get(3)?,
                time: r.get(4)?,
                collector: r.get(1)?,
                truncated: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every RIB dump taken in `(after, until]`, in time order.
    pub fn rib_dumps_between(&self, after: i64, until: i64) -> Result<Vec<RibDump>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT f.collector_id, f.id, f.name, f.dump_time, c.name, f.truncated
             FROM mrt_files f JOIN collectors c ON c.id = f.collector_id
             WHERE f.dump_time > ?1 AND f.dump_time <= ?2 AND f.mrt_sha256 NOT LIKE 'pending:%'
             ORDER BY f.dump_time",
        )?;
        let rows = stmt.query_map(params![after, until], |r| {
            Ok(RibDump {
                collector_id: r.get(0)?,
                file_id: r.get(1)?,
                file: r.get(2)?,
                time: r.get(3)?,
                collector: r.get(4)?,
                truncated: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The end of the newest update file of a collector that starts at or before `t` and
    /// ends at or after `since`; `None` when there is none.
    pub fn updates_known_until(
        &self,
        collector_id: i64,
        since: i64,
        t: i64,
    ) -> Result<Option<i64>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT max(last_time) FROM mrt_files
             WHERE collector_id = ?1 AND kind = 'updates' AND first_time <= ?3 AND last_time >= ?2",
        )?;
        Ok(stmt.query_row(params![collector_id, since, t], |r| r.get(0))?)
    }

    /// Every collector peer.
    pub fn bgp_peers(&self) -> Result<Vec<PeerRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, c.name, c.id, p.peer_index, p.address, p.asn
             FROM peers p JOIN collectors c ON c.id = p.collector_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PeerRow {
                id: r.get(0)?,
                collector: r.get(1)?,
                collector_id: r.get(2)?,
                index: r.get(3)?,
                address: r.get(4)?,
                asn: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The target routes of a RIB dump.
    pub fn rib_routes(&self, file_id: i64) -> Result<Vec<RibRouteRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT peer_id, net, len, path_id, as_path FROM rib_routes WHERE file_id = ?1",
        )?;
        let rows = stmt.query_map([file_id], |r| {
            Ok(RibRouteRow {
                peer_id: r.get(0)?,
                prefix: (r.get(1)?, r.get(2)?),
                path_id: r.get(3)?,
                as_path: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `visit` with every announcement and withdrawal of a collector with
    /// `from <= time <= until` (only target-overlapping ones when `targets_only`), in no
    /// particular order; stops at `visit`'s first error.
    pub fn for_each_update<E: From<DbError>>(
        &self,
        collector_id: i64,
        from: i64,
        until: i64,
        targets_only: bool,
        mut visit: impl FnMut(StoredUpdate<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // Two statements rather than a flag in SQL, so that the targets-only one can use the
        // partial index on target updates.
        let sql = if targets_only {
            "SELECT u.time, u.file_id, u.seq, u.peer_id, p.peer_index, u.net, u.len, u.path_id,
                    u.origins, u.is_target, u.as_path
             FROM bgp_updates u JOIN peers p ON p.id = u.peer_id
             WHERE p.collector_id = ?1 AND u.time >= ?2 AND u.time <= ?3 AND u.is_target"
        } else {
            "SELECT u.time, u.file_id, u.seq, u.peer_id, p.peer_index, u.net, u.len, u.path_id,
                    u.origins, u.is_target, u.as_path
             FROM bgp_updates u JOIN peers p ON p.id = u.peer_id
             WHERE p.collector_id = ?1 AND u.time >= ?2 AND u.time <= ?3"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(DbError::from)?;
        let mut rows = stmt
            .query(params![collector_id, from, until])
            .map_err(DbError::from)?;
        while let Some(r) = rows.next().map_err(DbError::from)? {
            let update = stored_update(r).map_err(DbError::from)?;
            visit(update)?;
        }
        Ok(())
    }

    /// The sessions of a collector leaving or reaching Established with
    /// `from <= time <= until`, in no particular order.
    pub fn session_changes(
        &self,
        collector_id: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<SessionChangeRow>, DbError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT s.time, s.file_id, s.seq, s.peer_id, p.peer_index, s.new_state = ?4
             FROM peer_state_changes s JOIN peers p ON p.id = s.peer_id
             WHERE p.collector_id = ?1 AND s.time >= ?2 AND s.time <= ?3 AND {SESSION_CHANGE}"
        ))?;
        let rows = stmt.query_map(params![collector_id, from, until, ESTABLISHED], |r| {
            Ok(SessionChangeRow {
                time: r.get(0)?,
                file_id: r.get(1)?,
                seq: r.get(2)?,
                peer_id: r.get(3)?,
                peer_index: r.get(4)?,
                up: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The time of the collector's first event (update, or session leaving or reaching
    /// Established) after `after`.
    pub fn first_bgp_event_after(
        &self,
        collector_id: i64,
        after: i64,
    ) -> Result<Option<i64>, DbError> {
        // In time order from `after` (the time indexes), stopping at the collector's first row.
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.time FROM bgp_updates u JOIN peers p ON p.id = u.peer_id
             WHERE u.time > ?2 AND p.collector_id = ?1 ORDER BY u.time LIMIT 1",
        )?;
        let update: Option<i64> = stmt
            .query_row(params![collector_id, after], |r| r.get(0))
            .optional()?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT s.time FROM peer_state_changes s JOIN peers p ON p.id = s.peer_id
             WHERE s.time > ?2 AND p.collector_id = ?1 AND {} ORDER BY s.time LIMIT 1",
            SESSION_CHANGE.replace("?4", "?3")
        ))?;
        let change: Option<i64> = stmt
            .query_row(params![collector_id, after, ESTABLISHED], |r| r.get(0))
            .optional()?;
        Ok(update.into_iter().chain(change).min())
    }

    /// The first update of each peer of a collector with `after < time <= until`:
    /// (`peers.id`, the peer's index, time), by peer.
    pub fn first_updates_after(
        &self,
        collector_id: i64,
        after: i64,
        until: i64,
    ) -> Result<Vec<(i64, u32, i64)>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.peer_id, p.peer_index, min(u.time) FROM bgp_updates u
             JOIN peers p ON p.id = u.peer_id
             WHERE u.time > ?2 AND u.time <= ?3 AND p.collector_id = ?1
             GROUP BY u.peer_id ORDER BY u.peer_id",
        )?;
        let rows = stmt.query_map(params![collector_id, after, until], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every time (UNIX seconds, ascending) at which the BGP state may change: dump times,
    /// the first record of each file, updates and session changes.
    pub fn bgp_change_times(&self) -> Result<Vec<i64>, DbError> {
        let mut times: Vec<i64> = self
            .conn
            .prepare(
                "SELECT dump_time FROM mrt_files
                     WHERE dump_time IS NOT NULL AND mrt_sha256 NOT LIKE 'pending:%'
                 UNION SELECT first_time FROM mrt_files WHERE mrt_sha256 NOT LIKE 'pending:%'
                 UNION SELECT time FROM bgp_updates
                 UNION SELECT time FROM peer_state_changes",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        times.sort_unstable();
        Ok(times)
    }

    /// Calls `visit(prefix, route set id)` for every prefix of the collector's RIB dump
    /// taken at `dump_time` (the validity intervals that hold then).
    pub fn for_each_dump_prefix(
        &self,
        collector_id: i64,
        dump_time: i64,
        mut visit: impl FnMut(StoredPrefix, i64),
    ) -> Result<(), DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT net, len, route_set_id FROM prefix_origins
             WHERE collector_id = ?1 AND valid_from <= ?2 AND valid_until > ?2",
        )?;
        let mut rows = stmt.query(params![collector_id, dump_time])?;
        while let Some(r) = rows.next()? {
            visit((r.get(0)?, r.get(1)?), r.get(2)?);
        }
        Ok(())
    }

    /// The span of loaded BGP data: earliest and latest MRT timestamps of all loaded files.
    pub fn loaded_bgp_span(&self) -> Result<Option<(i64, i64)>, DbError> {
        Ok(self.conn.query_row(
            "SELECT min(first_time), max(last_time) FROM mrt_files
             WHERE mrt_sha256 NOT LIKE 'pending:%'",
            [],
            |r| {
                Ok(
                    match (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?) {
                        (Some(a), Some(b)) => Some((a, b)),
                        _ => None,
                    },
                )
            },
        )?)
    }

    /// Every stored adjacent AS pair (a < b).
    pub fn as_adjacencies(&self) -> Result<Vec<(u32, u32)>, DbError> {
        let mut stmt = self.conn.prepare("SELECT a, b FROM as_adjacencies")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `visit` with every distinct stored full AS path (of RIB routes and
    /// announcements); stops at `visit`'s first error.
    pub fn for_each_target_path<E: From<DbError>>(
        &self,
        mut visit: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT r.as_path FROM rib_routes r
                     JOIN mrt_files f ON f.id = r.file_id AND f.mrt_sha256 NOT LIKE 'pending:%'
                 UNION SELECT DISTINCT as_path FROM bgp_updates WHERE as_path IS NOT NULL",
            )
            .map_err(DbError::from)?;
        let mut rows = stmt.query([]).map_err(DbError::from)?;
        while let Some(r) = rows.next().map_err(DbError::from)? {
            let path: String = r.get(0).map_err(DbError::from)?;
            visit(&path)?;
        }
        Ok(())
    }
}

pub(in crate::store) fn collector_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    conn.prepare_cached("SELECT id FROM collectors ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect()
}

pub(in crate::store) fn newest_dump_origins(
    conn: &Connection,
    collector_id: i64,
    prefix: StoredPrefix,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "WITH d (time) AS (SELECT max(dump_time) FROM mrt_files
             WHERE collector_id = ?1 AND mrt_sha256 NOT LIKE 'pending:%')
         SELECT s.origins FROM d, prefix_origins p JOIN route_sets s ON s.id = p.route_set_id
         WHERE p.collector_id = ?1 AND p.net = ?2 AND p.len = ?3
             AND p.valid_from <= d.time AND p.valid_until > d.time",
    )?
    .query_row(params![collector_id, prefix.0, prefix.1], |r| r.get(0))
    .optional()
}

impl Db {
    /// Every loaded MRT file, by first record time (then load order).
    pub fn mrt_files(&self) -> Result<Vec<MrtFileRow>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT f.name, f.sha256, f.kind, f.format, c.name, f.first_time, f.last_time,
                    f.truncated
             FROM mrt_files f JOIN collectors c ON c.id = f.collector_id
             WHERE f.mrt_sha256 NOT LIKE 'pending:%'
             ORDER BY f.first_time, f.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(MrtFileRow {
                name: r.get(0)?,
                sha256: r.get(1)?,
                kind: r.get(2)?,
                format: r.get(3)?,
                collector: r.get(4)?,
                first_time: r.get(5)?,
                last_time: r.get(6)?,
                truncated: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every collector id, ascending.
    pub fn collector_ids(&self) -> Result<Vec<i64>, DbError> {
        Ok(collector_ids(&self.conn)?)
    }

    /// The origins (as text) of `prefix` in the collector's newest RIB dump, if it holds
    /// the prefix.
    pub fn newest_dump_origins(
        &self,
        collector_id: i64,
        prefix: StoredPrefix,
    ) -> Result<Option<String>, DbError> {
        Ok(newest_dump_origins(&self.conn, collector_id, prefix)?)
    }
}

impl WriteTx<'_> {
    /// Every collector id, ascending, as this transaction sees them.
    pub fn collector_ids(&self) -> Result<Vec<i64>, DbError> {
        Ok(collector_ids(self.sql())?)
    }

    /// [`Db::newest_dump_origins`] as this transaction sees it.
    pub fn newest_dump_origins(
        &self,
        collector_id: i64,
        prefix: StoredPrefix,
    ) -> Result<Option<String>, DbError> {
        Ok(newest_dump_origins(self.sql(), collector_id, prefix)?)
    }
}

fn stored_update<'r>(r: &'r Row<'_>) -> rusqlite::Result<StoredUpdate<'r>> {
    Ok(StoredUpdate {
        time: r.get(0)?,
        file_id: r.get(1)?,
        seq: r.get(2)?,
        peer_id: r.get(3)?,
        peer_index: r.get(4)?,
        prefix: (r.get(5)?, r.get(6)?),
        path_id: r.get(7)?,
        origins: optional_text(r, 8)?,
        is_target: r.get(9)?,
        as_path: optional_text(r, 10)?,
    })
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::store::bgp::{CompletedFile, NewMrtFile};

    /// A RIB dump of collector `rc` at `time` holding 10.0.0.0/8 with the given origins.
    fn load_dump(db: &mut Db, name: &str, time: i64, origins: &str) {
        let tx = db.write().unwrap();
        let collector_id = tx.collector_id("rc").unwrap();
        let file = NewMrtFile {
            collector_id,
            name,
            sha256: name,
            compression: "none",
            kind: "rib",
            format: "TABLE_DUMP_V2",
            dump_time: Some(time),
            first_time: time,
            file_bytes: 0,
            loaded_at: OffsetDateTime::UNIX_EPOCH,
        };
        let file_id = tx.insert_mrt_file(&file).unwrap();
        let set = tx
            .insert_route_set(&format!("{origins}@0"), origins)
            .unwrap();
        tx.merge_rib_dump(collector_id, time, [((0x0a00_0000, 8), set)], &mut |_| {
            Ok(())
        })
        .unwrap();
        // Complete: a pending file is invisible to readers.
        let completed = CompletedFile {
            file_id,
            mrt_sha256: name,
            first_time: time,
            last_time: time,
            mrt_bytes: 0,
            records: 0,
            peers: 0,
            prefixes: 1,
            rib_entries: 0,
            announcements: 0,
            withdrawals: 0,
            state_changes: 0,
            ipv6_skipped: 0,
            other_skipped: 0,
            malformed_nlri: 0,
            truncated: false,
        };
        tx.complete_mrt_file(&completed).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn the_newest_dump_answers_for_origins_and_files_list_by_time() {
        let mut db = Db::open_in_memory().unwrap();
        load_dump(&mut db, "later", 200, "2");
        load_dump(&mut db, "earlier", 100, "1");
        let collectors = db.collector_ids().unwrap();
        assert_eq!(collectors.len(), 1);
        assert_eq!(
            db.newest_dump_origins(collectors[0], (0x0a00_0000, 8))
                .unwrap()
                .as_deref(),
            Some("2")
        );
        assert_eq!(
            db.newest_dump_origins(collectors[0], (0x0b00_0000, 8))
                .unwrap(),
            None
        );
        let names: Vec<String> = db
            .mrt_files()
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["earlier", "later"]);
        assert_eq!(db.mrt_file_count().unwrap(), 2);
    }
}
