//! Loaded RPKI exports (`rpki_files`) and their IPv4 payloads (`rpki_vrps`), kept by the time
//! their validator generated them, so the state of an announcement at a time `t` is judged by
//! the export that was current then.

use rusqlite::{OptionalExtension as _, params};

use super::{Db, DbError, WriteTx};

/// One IPv4 payload as stored: `asn` may originate `net/len` and more-specifics to `/max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVrp {
    /// Network address, host bits clear.
    pub net: u32,
    /// Prefix length.
    pub len: u8,
    /// The longest prefix length allowed.
    pub max_len: u8,
    /// The authorised origin AS.
    pub asn: u32,
}

/// A loaded export, without its payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiFileRow {
    /// Row id.
    pub id: i64,
    /// When the validator generated the export (Unix seconds).
    pub generated: i64,
    /// When `rpki load` stored it (Unix seconds).
    pub loaded_at: i64,
    /// The file it was loaded from.
    pub source: String,
    /// IPv4 payloads stored.
    pub vrps: u64,
    /// IPv6 payloads counted, not stored.
    pub ipv6: u64,
    /// Entries skipped as broken.
    pub skipped: u64,
}

/// What [`WriteTx::insert_rpki_file`] stores besides the payloads.
#[derive(Debug, Clone, Copy)]
pub struct NewRpkiFile<'a> {
    /// When the validator generated it (Unix seconds).
    pub generated: i64,
    /// Now (Unix seconds).
    pub loaded_at: i64,
    /// The file it comes from.
    pub source: &'a str,
    /// IPv6 payloads counted, not stored.
    pub ipv6: u64,
    /// Entries skipped as broken.
    pub skipped: u64,
}

impl WriteTx<'_> {
    /// Stores one export and its payloads; returns its id.
    pub fn insert_rpki_file(
        &self,
        file: NewRpkiFile<'_>,
        vrps: &[StoredVrp],
    ) -> Result<i64, DbError> {
        let sql = self.sql();
        sql.execute(
            "INSERT INTO rpki_files (generated, loaded_at, source, vrps, ipv6, skipped)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                file.generated,
                file.loaded_at,
                file.source,
                vrps.len() as i64,
                file.ipv6 as i64,
                file.skipped as i64
            ],
        )?;
        let id = sql.last_insert_rowid();
        let mut insert = sql.prepare_cached(
            "INSERT INTO rpki_vrps (file, net, len, max_len, asn) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for v in vrps {
            insert.execute(params![id, v.net, v.len, v.max_len, v.asn])?;
        }
        Ok(id)
    }
}

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RpkiFileRow> {
    Ok(RpkiFileRow {
        id: r.get(0)?,
        generated: r.get(1)?,
        loaded_at: r.get(2)?,
        source: r.get(3)?,
        vrps: r.get::<_, i64>(4)? as u64,
        ipv6: r.get::<_, i64>(5)? as u64,
        skipped: r.get::<_, i64>(6)? as u64,
    })
}

const FILE_COLUMNS: &str = "id, generated, loaded_at, source, vrps, ipv6, skipped";

impl Db {
    /// The export current at `t`: the newest generated at or before `t` (ties: the one
    /// loaded last).
    pub fn rpki_file_at(&self, t: i64) -> Result<Option<RpkiFileRow>, DbError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {FILE_COLUMNS} FROM rpki_files WHERE generated <= ?1
                     ORDER BY generated DESC, id DESC LIMIT 1"
                ),
                [t],
                file_row,
            )
            .optional()?)
    }

    /// Every loaded export, oldest first.
    pub fn rpki_files(&self) -> Result<Vec<RpkiFileRow>, DbError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {FILE_COLUMNS} FROM rpki_files ORDER BY generated, id"
        ))?;
        let rows = stmt.query_map([], file_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The payloads of export `file` whose prefix covers `net/len` (contains it or equals it):
    /// the only ones RFC 6811 consults for a route of that prefix.
    pub fn rpki_vrps_covering(
        &self,
        file: i64,
        net: u32,
        len: u8,
    ) -> Result<Vec<StoredVrp>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT net, len, max_len, asn FROM rpki_vrps WHERE file = ?1 AND net = ?2 AND len = ?3",
        )?;
        let mut out = Vec::new();
        for l in 0..=len.min(32) {
            let mask = if l == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(l))
            };
            let rows = stmt.query_map(params![file, net & mask, l], |r| {
                Ok(StoredVrp {
                    net: r.get(0)?,
                    len: r.get(1)?,
                    max_len: r.get(2)?,
                    asn: r.get(3)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }
}
