//! What one MRT file's transaction writes, and the reads `bgp load` makes on the way.
//!
//! A load writes tens of millions of rows for a full RIB dump: the per-row statements are
//! prepared once per connection (`prepare_cached`) and reused.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{ESTABLISHED, StoredPrefix};
use crate::store::{Db, DbError, WriteTx};

/// A collector peer as a load finds it (`peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPeer {
    /// `peers.id`.
    pub id: i64,
    /// Index of the peer within its collector.
    pub index: u32,
    /// Peer address.
    pub address: IpAddr,
    /// Peer ASN.
    pub asn: u32,
}

/// The row of a file whose load has begun (`mrt_files`); its counts are filled in by
/// [`WriteTx::complete_mrt_file`] when the file ends.
#[derive(Debug, Clone, Copy)]
pub struct NewMrtFile<'a> {
    /// `collectors.id`.
    pub collector_id: i64,
    /// The file's name.
    pub name: &'a str,
    /// SHA-256 of the file.
    pub sha256: &'a str,
    /// `none`, `gzip` or `bzip2`.
    pub compression: &'a str,
    /// `rib` or `updates`.
    pub kind: &'a str,
    /// `TABLE_DUMP_V2`, `TABLE_DUMP`, `BGP4MP` or `BGP`.
    pub format: &'a str,
    /// RIB dumps: the dump's time (UNIX seconds).
    pub dump_time: Option<i64>,
    /// The first record's time (UNIX seconds).
    pub first_time: i64,
    /// Size of the file.
    pub file_bytes: u64,
    /// When the load ran.
    pub loaded_at: OffsetDateTime,
}

/// What a file's row holds once its last record is loaded.
#[derive(Debug, Clone, Copy)]
pub struct CompletedFile<'a> {
    /// `mrt_files.id`.
    pub file_id: i64,
    /// SHA-256 of the decompressed MRT stream (or what stands for it).
    pub mrt_sha256: &'a str,
    /// Earliest record timestamp.
    pub first_time: i64,
    /// Latest record timestamp.
    pub last_time: i64,
    /// Size of the decompressed MRT stream.
    pub mrt_bytes: u64,
    /// MRT records.
    pub records: u64,
    /// Distinct peers with a route or message in the file.
    pub peers: u64,
    /// Distinct IPv4 unicast prefixes kept.
    pub prefixes: u64,
    /// IPv4 unicast RIB entries kept.
    pub rib_entries: u64,
    /// IPv4 unicast announcements kept.
    pub announcements: u64,
    /// IPv4 unicast withdrawals kept.
    pub withdrawals: u64,
    /// BGP4MP state changes.
    pub state_changes: u64,
    /// IPv6 entries skipped.
    pub ipv6_skipped: u64,
    /// Entries of other address families skipped.
    pub other_skipped: u64,
    /// NLRI fields that did not parse.
    pub malformed_nlri: u64,
    /// The file was cut short and only its complete records are kept.
    pub truncated: bool,
}

/// The highest ids of the tables a load adds to before it changes them (see
/// [`WriteTx::discard_failed_load`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdMarks {
    /// `max(route_sets.id)`.
    pub route_sets: i64,
    /// `max(peers.id)`.
    pub peers: i64,
    /// `max(collectors.id)`: the load's collector may be new.
    pub collectors: i64,
}

/// One announcement or withdrawal of a BGP4MP update file (`bgp_updates`).
#[derive(Debug, Clone, Copy)]
pub struct UpdateRow<'a> {
    /// `mrt_files.id`.
    pub file_id: i64,
    /// Position in the file (shared with the state changes).
    pub seq: i64,
    /// MRT timestamp.
    pub time: i64,
    /// `peers.id`.
    pub peer_id: i64,
    /// The prefix.
    pub prefix: StoredPrefix,
    /// ADD-PATH identifier, 0 without.
    pub path_id: u32,
    /// Announcements: the origin ASes as text; `None` for a withdrawal.
    pub origins: Option<&'a str>,
    /// The prefix overlaps a target prefix.
    pub is_target: bool,
    /// Target announcements: the full AS path as text.
    pub as_path: Option<&'a str>,
}

fn route_set_text(conn: &Connection, id: i64) -> rusqlite::Result<String> {
    conn.prepare_cached("SELECT by_peer FROM route_sets WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
}

impl Db {
    /// The name of the loaded file with this SHA-256, if any.
    pub fn mrt_file_with_sha256(&self, sha256: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT name FROM mrt_files WHERE sha256 = ?1 AND mrt_sha256 NOT LIKE 'pending:%'",
                [sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The `by_peer` text of route set `id`.
    pub fn route_set_text(&self, id: i64) -> Result<String, DbError> {
        Ok(route_set_text(&self.conn, id)?)
    }
}

impl WriteTx<'_> {
    /// The name of the loaded file whose decompressed MRT stream has this SHA-256, if any.
    pub fn mrt_file_with_mrt_sha256(&self, mrt_sha256: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .sql()
            .query_row(
                "SELECT name FROM mrt_files WHERE mrt_sha256 = ?1",
                [mrt_sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The id of the collector called `name`, added if new.
    pub fn collector_id(&self, name: &str) -> Result<i64, DbError> {
        let conn = self.sql();
        conn.execute(
            "INSERT INTO collectors (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
            [name],
        )?;
        Ok(
            conn.query_row("SELECT id FROM collectors WHERE name = ?1", [name], |r| {
                r.get(0)
            })?,
        )
    }

    /// Every peer of a collector.
    pub fn collector_peers(&self, collector_id: i64) -> Result<Vec<StoredPeer>, DbError> {
        let mut stmt = self
            .sql()
            .prepare("SELECT id, peer_index, address, asn FROM peers WHERE collector_id = ?1")?;
        let rows = stmt.query_map([collector_id], |r| {
            let address: String = r.get(2)?;
            Ok(StoredPeer {
                id: r.get(0)?,
                index: r.get(1)?,
                address: address.parse().map_err(|_| {
                    rusqlite::Error::InvalidColumnType(
                        2,
                        "address".into(),
                        rusqlite::types::Type::Text,
                    )
                })?,
                asn: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The peer of a collector with this address and ASN: (`peers.id`, index), added with
    /// the collector's next free index if new. Asked of the database, not of a cache: RIS
    /// Live and a RIB dump loading in parts may add peers of one collector in turns.
    pub fn ensure_peer(
        &self,
        collector_id: i64,
        address: IpAddr,
        asn: u32,
    ) -> Result<(i64, u32), DbError> {
        let conn = self.sql();
        let address = address.to_string();
        let found = conn
            .prepare_cached(
                "SELECT id, peer_index FROM peers
                 WHERE collector_id = ?1 AND address = ?2 AND asn = ?3",
            )?
            .query_row(params![collector_id, address, asn], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some(found) = found {
            return Ok(found);
        }
        let index: u32 = conn
            .prepare_cached(
                "SELECT coalesce(max(peer_index) + 1, 0) FROM peers WHERE collector_id = ?1",
            )?
            .query_row([collector_id], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO peers (collector_id, peer_index, address, asn) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![collector_id, index, address, asn])?;
        Ok((conn.last_insert_rowid(), index))
    }

    /// Every stored route set: (`by_peer` text, id).
    pub fn route_sets(&self) -> Result<Vec<(String, i64)>, DbError> {
        let mut stmt = self.sql().prepare("SELECT id, by_peer FROM route_sets")?;
        let rows = stmt.query_map([], |r| Ok((r.get(1)?, r.get(0)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The `by_peer` text of route set `id`, as this transaction sees it.
    pub fn route_set_text(&self, id: i64) -> Result<String, DbError> {
        Ok(route_set_text(self.sql(), id)?)
    }

    /// Adds a route set (its per-peer text and its origins as text); returns its id. Another
    /// load may have added the same set since this one read them (loads commit in parts):
    /// then that set's id.
    pub fn insert_route_set(&self, by_peer: &str, origins: &str) -> Result<i64, DbError> {
        let conn = self.sql();
        let added = conn
            .prepare_cached("INSERT OR IGNORE INTO route_sets (by_peer, origins) VALUES (?1, ?2)")?
            .execute(params![by_peer, origins])?;
        if added == 1 {
            return Ok(conn.last_insert_rowid());
        }
        Ok(conn
            .prepare_cached("SELECT id FROM route_sets WHERE by_peer = ?1")?
            .query_row([by_peer], |r| r.get(0))?)
    }

    /// The name of the collector's RIB dump taken at `dump_time`, if one is loaded. A load
    /// of that dump cut off (a crash, a kill) is not one: its rows go, and the new load
    /// takes its place (see [`Self::discard_pending_file`]).
    pub fn rib_dump_file_at(
        &self,
        collector_id: i64,
        dump_time: i64,
    ) -> Result<Option<String>, DbError> {
        let found: Option<(i64, String, bool)> = self
            .sql()
            .query_row(
                "SELECT id, name, mrt_sha256 LIKE 'pending:%' FROM mrt_files
                 WHERE collector_id = ?1 AND dump_time = ?2",
                params![collector_id, dump_time],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match found {
            Some((id, _, true)) => {
                self.discard_pending_file(id)?;
                Ok(None)
            }
            Some((_, name, false)) => Ok(Some(name)),
            None => Ok(None),
        }
    }

    /// Deletes a file whose load did not complete, and its own rows (a new load of the same
    /// dump takes its place in this transaction). What its load merged into `prefix_origins`
    /// stays: it only split rows at the dump's time, which no reader looks up until a dump
    /// of that time completes, and merging the dump again changes nothing more.
    pub fn discard_pending_file(&self, file_id: i64) -> Result<(), DbError> {
        self.discard_pending_rows(file_id)?;
        self.sql().execute(
            "DELETE FROM mrt_files WHERE id = ?1 AND mrt_sha256 LIKE 'pending:%'",
            [file_id],
        )?;
        Ok(())
    }

    /// The highest `route_sets.id` and `peers.id` so far: what a load adds lies above.
    pub fn id_marks(&self) -> Result<IdMarks, DbError> {
        Ok(self.sql().query_row(
            "SELECT (SELECT coalesce(max(id), 0) FROM route_sets),
                    (SELECT coalesce(max(id), 0) FROM peers),
                    (SELECT coalesce(max(id), 0) FROM collectors)",
            [],
            |r| {
                Ok(IdMarks {
                    route_sets: r.get(0)?,
                    peers: r.get(1)?,
                    collectors: r.get(2)?,
                })
            },
        )?)
    }

    /// After a failed load that committed parts: deletes the file's own rows, the route sets,
    /// peers and collectors added since `marks` that nothing refers to, and the file's row unless its
    /// merge had begun (then the row stays, invisible to readers, as the boundary the merged
    /// rows have at its dump time; the next load of that dump replaces it).
    pub fn discard_failed_load(&self, file_id: i64, marks: IdMarks) -> Result<(), DbError> {
        self.discard_pending_rows(file_id)?;
        self.sql().execute(
            "DELETE FROM mrt_files AS f WHERE id = ?1 AND mrt_sha256 LIKE 'pending:%'
                 AND NOT EXISTS (SELECT 1 FROM prefix_origins p
                     WHERE p.collector_id = f.collector_id
                         AND (p.valid_from = f.dump_time OR p.valid_until = f.dump_time))",
            [file_id],
        )?;
        self.sql().execute(
            "DELETE FROM route_sets AS s WHERE id > ?1
                 AND NOT EXISTS (SELECT 1 FROM prefix_origins p WHERE p.route_set_id = s.id)",
            [marks.route_sets],
        )?;
        self.sql().execute(
            "DELETE FROM peers AS p WHERE id > ?1
                 AND NOT EXISTS (SELECT 1 FROM rib_routes r WHERE r.peer_id = p.id)
                 AND NOT EXISTS (SELECT 1 FROM bgp_updates u WHERE u.peer_id = p.id)
                 AND NOT EXISTS (SELECT 1 FROM peer_state_changes c WHERE c.peer_id = p.id)",
            [marks.peers],
        )?;
        self.sql().execute(
            "DELETE FROM collectors AS c WHERE id > ?1
                 AND NOT EXISTS (SELECT 1 FROM peers p WHERE p.collector_id = c.id)
                 AND NOT EXISTS (SELECT 1 FROM mrt_files f WHERE f.collector_id = c.id)
                 AND NOT EXISTS (SELECT 1 FROM prefix_origins o WHERE o.collector_id = c.id)",
            [marks.collectors],
        )?;
        Ok(())
    }

    fn discard_pending_rows(&self, file_id: i64) -> Result<(), DbError> {
        let conn = self.sql();
        for table in ["rib_routes", "bgp_updates", "peer_state_changes"] {
            conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE file_id = ?1 AND EXISTS (SELECT 1 FROM mrt_files
                         WHERE id = ?1 AND mrt_sha256 LIKE 'pending:%')"
                ),
                [file_id],
            )?;
        }
        Ok(())
    }

    /// Records a file whose load begins (its stream hash pending, its counts 0); returns its
    /// `mrt_files.id`.
    pub fn insert_mrt_file(&self, file: &NewMrtFile<'_>) -> Result<i64, DbError> {
        let conn = self.sql();
        conn.execute(
            "INSERT INTO mrt_files (collector_id, name, sha256, mrt_sha256, compression,
                 kind, format, dump_time, first_time, last_time, file_bytes, mrt_bytes,
                 records, peers, prefixes, rib_entries, announcements, withdrawals,
                 state_changes, ipv6_skipped, other_skipped, malformed_nlri, loaded_at)
             VALUES (?1, ?2, ?3, 'pending:' || ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9,
                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?10)",
            params![
                file.collector_id,
                file.name,
                file.sha256,
                file.compression,
                file.kind,
                file.format,
                file.dump_time,
                file.first_time,
                i64::try_from(file.file_bytes).unwrap_or(i64::MAX),
                nkpath_proto::timestamp::stored(file.loaded_at),
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Fills in a file's row once its last record is loaded.
    pub fn complete_mrt_file(&self, f: &CompletedFile<'_>) -> Result<(), DbError> {
        self.sql().execute(
            "UPDATE mrt_files SET mrt_sha256 = ?2, first_time = ?3, last_time = ?4,
                 mrt_bytes = ?5, records = ?6, peers = ?7, prefixes = ?8, rib_entries = ?9,
                 announcements = ?10, withdrawals = ?11, state_changes = ?12,
                 ipv6_skipped = ?13, other_skipped = ?14, malformed_nlri = ?15,
                 truncated = ?16
             WHERE id = ?1",
            params![
                f.file_id,
                f.mrt_sha256,
                f.first_time,
                f.last_time,
                f.mrt_bytes as i64,
                f.records as i64,
                f.peers as i64,
                f.prefixes as i64,
                f.rib_entries as i64,
                f.announcements as i64,
                f.withdrawals as i64,
                f.state_changes as i64,
                f.ipv6_skipped as i64,
                f.other_skipped as i64,
                f.malformed_nlri as i64,
                f.truncated,
            ],
        )?;
        Ok(())
    }

    /// Stores one RIB entry's full AS path (target-overlapping prefixes only); a second
    /// entry of the same peer, prefix and path id replaces the first.
    pub fn insert_rib_route(
        &self,
        file_id: i64,
        peer_id: i64,
        prefix: StoredPrefix,
        path_id: u32,
        as_path: &str,
    ) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT OR REPLACE INTO rib_routes (file_id, peer_id, net, len, path_id, as_path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                file_id, peer_id, prefix.0, prefix.1, path_id, as_path
            ])?;
        Ok(())
    }

    /// Stores one announcement or withdrawal.
    pub fn insert_update(&self, u: &UpdateRow<'_>) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT INTO bgp_updates (file_id, seq, time, peer_id, net, len, path_id, origins,
                                          is_target, as_path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                u.file_id,
                u.seq,
                u.time,
                u.peer_id,
                u.prefix.0,
                u.prefix.1,
                u.path_id,
                u.origins,
                u.is_target,
                u.as_path,
            ])?;
        Ok(())
    }

    /// Stores one BGP4MP state change (`old` and `new` are RFC 6396 state codes).
    pub fn insert_state_change(
        &self,
        file_id: i64,
        seq: i64,
        time: i64,
        peer_id: i64,
        old: u16,
        new: u16,
    ) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT INTO peer_state_changes (file_id, seq, time, peer_id, old_state, new_state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![file_id, seq, time, peer_id, old, new])?;
        Ok(())
    }

    /// Merges adjacent AS pairs ((a, b) with a < b, and the first and last MRT time each was
    /// seen) into `as_adjacencies`, widening the times of pairs already stored.
    pub fn merge_as_adjacencies(
        &self,
        pairs: impl IntoIterator<Item = ((u32, u32), (i64, i64))>,
    ) -> Result<(), DbError> {
        let mut stmt = self.sql().prepare_cached(
            "INSERT INTO as_adjacencies (a, b, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (a, b) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen),
                                              last_seen = max(last_seen, excluded.last_seen)",
        )?;
        for ((a, b), (first, last)) in pairs {
            stmt.execute(params![a, b, first, last])?;
        }
        Ok(())
    }

    /// Whether the collector has a RIB dump taken in `from..=until`.
    pub fn has_rib_dump_within(
        &self,
        collector_id: i64,
        from: i64,
        until: i64,
    ) -> Result<bool, DbError> {
        Ok(self.sql().query_row(
            "SELECT EXISTS (SELECT 1 FROM mrt_files WHERE collector_id = ?1
                 AND dump_time >= ?2 AND dump_time <= ?3 AND mrt_sha256 NOT LIKE 'pending:%')",
            params![collector_id, from, until],
            |r| r.get(0),
        )?)
    }

    /// Whether a session is seen going to Established in the file.
    pub fn file_has_session_start(&self, file_id: i64) -> Result<bool, DbError> {
        Ok(self.sql().query_row(
            "SELECT EXISTS (SELECT 1 FROM peer_state_changes WHERE file_id = ?1 AND new_state = ?2)",
            params![file_id, ESTABLISHED],
            |r| r.get(0),
        )?)
    }
}
