//! Schema versions and the upgrades between them.
//!
//! `PRAGMA user_version` holds the schema version. Opening a database runs, in one IMMEDIATE
//! transaction, either `init` (an empty file) or every `upgrade_from(v)` from the file's
//! version to [`CURRENT_VERSION`], so a failed upgrade leaves the file as it was. A file newer
//! than this code is refused, never touched.
//!
//! History:
//! - v1: trace results (`results`) and `settings`.
//! - v2: results gain `kind` (pings are stored too); BGP data from MRT files.
//! - v3: `agents` (upload tokens, by SHA-256) and `receipts` (how each uploaded result
//!   arrived: batch, receive time, the agent's clock offset).
//! - v4: `cymru_cache` (Team Cymru origin answers with the time they were looked up).
//! - v5: `mrt_files.truncated` (RIB dumps loaded with `--accept-truncated`) and
//!   `as_adjacencies` (adjacent AS pairs of every loaded IPv4 path, for the border rule). An
//!   upgraded database starts with no adjacencies: files loaded before v5 only contribute
//!   their target paths to the border rule until they are loaded again into a new database.
//! - v6: fleet scheduling (`fleet_agents`, `fleet_bookings`, `fleet_done`, `fleet_live`,
//!   `fleet_batches`; see `store::fleet`). An upgraded database starts with no bookings and
//!   no counted work: results stored before v6 are not counted.
//! - v7: one stored record shape ([`super::results`]). `results.json` had held the text as
//!   received: a bare `TraceResult` from JSON lines imports, a tagged `ResultRecord` from
//!   uploads. Every row is rewritten in place as this build serialises its `ResultRecord`
//!   (tagged, canonical), and the fields of the old text that this build does not know go
//!   to the new column `results.extra` (all of them: no limit applies to a row already
//!   stored). A row that does not decode is left as it was; readers skip it with a warning,
//!   as before.
//! - v8: RPKI exports (`rpki_files`, `rpki_vrps`), loaded by `rpki load`.
//!
//! Each version's full schema as an older build created it is kept as an SQL fixture in
//! `collector/tests/fixtures/` and upgraded in the tests.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::DbError;
use super::results::StoredRecord;

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 8;

/// `valid_until` of a `prefix_origins` row still present in the newest RIB dump.
pub const OPEN_UNTIL: i64 = i64::MAX;

const SETTINGS: &str = "
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
";

const RESULTS: &str = "
-- One row per result (store::results): `json` is the result as this build serialises its
-- ResultRecord (tagged, canonical); `extra` (v7) the received fields it does not know, as an
-- object of JSON Pointers into `json`, or NULL. The other columns are copies for indexing;
-- started_at is normalised RFC 3339 UTC with six fraction digits, so text order is time order.
CREATE TABLE results (
    result_id   TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    round_id    TEXT NOT NULL,
    target      TEXT NOT NULL,
    source      TEXT NOT NULL,
    protocol    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    json        TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'trace' CHECK (kind IN ('trace', 'ping')),
    extra       TEXT
);
CREATE INDEX results_by_round ON results (round_id);
CREATE INDEX results_by_agent ON results (agent_id, started_at);
CREATE INDEX results_by_target ON results (target, started_at);
";

/// The BGP tables of v2. Times are UNIX seconds (MRT timestamps); prefixes are IPv4, stored
/// as (network address as an integer, length).
const BGP_V2: &str = "
CREATE TABLE collectors (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- A BGP session of a route collector. peer_index numbers the peers of one collector from 0;
-- route sets refer to peers by it.
CREATE TABLE peers (
    id           INTEGER PRIMARY KEY,
    collector_id INTEGER NOT NULL REFERENCES collectors (id),
    peer_index   INTEGER NOT NULL,
    address      TEXT NOT NULL,
    asn          INTEGER NOT NULL,
    UNIQUE (collector_id, address, asn),
    UNIQUE (collector_id, peer_index)
);

-- Every loaded MRT file: exports cite these rows.
CREATE TABLE mrt_files (
    id            INTEGER PRIMARY KEY,
    collector_id  INTEGER NOT NULL REFERENCES collectors (id),
    name          TEXT NOT NULL,
    sha256        TEXT NOT NULL UNIQUE,           -- of the file as stored, like sha256sum
    mrt_sha256    TEXT NOT NULL UNIQUE,           -- of the decompressed MRT stream
    compression   TEXT NOT NULL CHECK (compression IN ('none', 'gzip', 'bzip2')),
    kind          TEXT NOT NULL CHECK (kind IN ('rib', 'updates')),
    format        TEXT NOT NULL,                  -- TABLE_DUMP_V2, TABLE_DUMP or BGP4MP
    dump_time     INTEGER,                        -- RIB dumps: timestamp of the first record
    first_time    INTEGER NOT NULL,
    last_time     INTEGER NOT NULL,
    file_bytes    INTEGER NOT NULL,
    mrt_bytes     INTEGER NOT NULL,
    records       INTEGER NOT NULL,               -- MRT records
    peers         INTEGER NOT NULL,               -- distinct peers in the file
    prefixes      INTEGER NOT NULL,               -- distinct IPv4 unicast prefixes kept
    rib_entries   INTEGER NOT NULL,               -- IPv4 unicast RIB entries kept
    announcements INTEGER NOT NULL,               -- IPv4 unicast announcements kept
    withdrawals   INTEGER NOT NULL,               -- IPv4 unicast withdrawals kept
    state_changes INTEGER NOT NULL,
    ipv6_skipped  INTEGER NOT NULL,               -- entries/announcements/withdrawals of IPv6
    other_skipped INTEGER NOT NULL,               -- other AFI/SAFI (multicast, RIB_GENERIC)
    malformed_nlri INTEGER NOT NULL,              -- unparsable NLRI fields (nothing kept)
    loaded_at     TEXT NOT NULL,
    CHECK ((kind = 'rib') = (dump_time IS NOT NULL))
);
CREATE UNIQUE INDEX mrt_files_dumps ON mrt_files (collector_id, dump_time)
    WHERE dump_time IS NOT NULL;

-- The origins one collector's peers announce for a prefix, deduplicated (bgp::routeset).
CREATE TABLE route_sets (
    id      INTEGER PRIMARY KEY,
    by_peer TEXT NOT NULL UNIQUE,                 -- e.g. '4837@0-19;4134@20'
    origins TEXT NOT NULL                         -- union of the origin ASes, e.g. '4134 4837'
);

-- Prefix -> route set of every IPv4 unicast prefix in a collector's RIB dumps, as validity
-- intervals over that collector's dump times: the row holds in every dump from valid_from up
-- to, not including, valid_until (9223372036854775807 while it is in the newest dump).
CREATE TABLE prefix_origins (
    collector_id INTEGER NOT NULL REFERENCES collectors (id),
    net          INTEGER NOT NULL,
    len          INTEGER NOT NULL,
    valid_from   INTEGER NOT NULL,
    valid_until  INTEGER NOT NULL,
    route_set_id INTEGER NOT NULL REFERENCES route_sets (id),
    PRIMARY KEY (collector_id, net, len, valid_from)
) WITHOUT ROWID;

-- Full AS paths of prefixes overlapping the target prefixes, per RIB dump and peer.
CREATE TABLE rib_routes (
    file_id INTEGER NOT NULL REFERENCES mrt_files (id),
    peer_id INTEGER NOT NULL REFERENCES peers (id),
    net     INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    path_id INTEGER NOT NULL,                     -- ADD-PATH identifier, 0 without
    as_path TEXT NOT NULL,                        -- bgpdump notation, sets as {a,b}
    PRIMARY KEY (file_id, peer_id, net, len, path_id)
) WITHOUT ROWID;

-- Every IPv4 unicast announcement and withdrawal of BGP4MP files, in file order.
CREATE TABLE bgp_updates (
    file_id   INTEGER NOT NULL REFERENCES mrt_files (id),
    seq       INTEGER NOT NULL,                   -- order in the file, shared with state changes
    time      INTEGER NOT NULL,
    peer_id   INTEGER NOT NULL REFERENCES peers (id),
    net       INTEGER NOT NULL,
    len       INTEGER NOT NULL,
    path_id   INTEGER NOT NULL,
    origins   TEXT,                               -- NULL: withdrawal
    is_target INTEGER NOT NULL,                   -- prefix overlaps the target prefixes
    as_path   TEXT,                               -- announcements with is_target only
    PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;
CREATE INDEX bgp_updates_by_time ON bgp_updates (time);
CREATE INDEX bgp_updates_targets ON bgp_updates (time) WHERE is_target;

-- BGP4MP state changes; leaving Established (6) withdraws all routes of the peer.
CREATE TABLE peer_state_changes (
    file_id   INTEGER NOT NULL REFERENCES mrt_files (id),
    seq       INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    peer_id   INTEGER NOT NULL REFERENCES peers (id),
    old_state INTEGER NOT NULL,
    new_state INTEGER NOT NULL,
    PRIMARY KEY (file_id, seq)
) WITHOUT ROWID;
CREATE INDEX peer_state_changes_by_time ON peer_state_changes (time);
";

/// The tables of v3: who may upload, and how each uploaded result arrived.
const UPLOADS_V3: &str = "
-- Agents allowed to upload. Only the SHA-256 of the token is kept (hex); the token itself is
-- printed once by `agent add`. The name is the agent id the agent's results must carry.
CREATE TABLE agents (
    name          TEXT PRIMARY KEY,
    token_sha256  TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,                           -- NULL while the token is valid
    last_seen_at  TEXT,                           -- last upload, NULL before the first
    agent_version TEXT,                           -- as the last upload said
    last_address  TEXT                            -- peer address of the last upload
);

-- How each result stored from an upload arrived (results imported from files have none).
-- clock_offset_ms = collector's receive time - the batch's sent_at (agent clock), in ms;
-- clock_flagged when its magnitude is over 60 s.
CREATE TABLE receipts (
    result_id       TEXT PRIMARY KEY REFERENCES results (result_id),
    agent           TEXT NOT NULL,
    batch_id        TEXT NOT NULL,
    sent_at         TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    clock_offset_ms INTEGER NOT NULL,
    clock_flagged   INTEGER NOT NULL CHECK (clock_flagged IN (0, 1))
);
CREATE INDEX receipts_by_batch ON receipts (batch_id);
CREATE INDEX receipts_flagged ON receipts (agent) WHERE clock_flagged;
";

/// The table of v4: Team Cymru answers for hop addresses no loaded BGP table covered, so a
/// later report need not ask again (see `store::caches`).
const CYMRU_CACHE_V4: &str = "
-- One row per address the DNS answered for. origins (e.g. '4134 4837') and prefix are NULL
-- when the answer was that nothing is known; failed lookups (timeouts) are not stored.
-- looked_up_at is RFC 3339 UTC with six fraction digits.
CREATE TABLE cymru_cache (
    address      TEXT PRIMARY KEY,
    origins      TEXT,
    prefix       TEXT,
    looked_up_at TEXT NOT NULL,
    CHECK ((origins IS NULL) = (prefix IS NULL))
) WITHOUT ROWID;
";

/// The changes of v5: truncated files and the AS adjacencies of all loaded paths.
const BGP_V5: &str = "
-- 1: the file is a RIB dump cut short (a partial download) loaded with --accept-truncated:
-- only the complete records before the cut were kept, so it misses the rest of the table.
ALTER TABLE mrt_files ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0
    CHECK (truncated IN (0, 1));

-- Every pair of ASes seen next to each other in the AS path of a loaded IPv4 route (RIB
-- entries and announcements, any prefix), stored once with a < b. Prepending is collapsed;
-- an AS_SET breaks adjacency (its members' order is unknown). first_seen and last_seen are
-- the MRT times of the first and last record that had the pair.
CREATE TABLE as_adjacencies (
    a          INTEGER NOT NULL,
    b          INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a < b)
) WITHOUT ROWID;
";

/// The tables of v6: fleet scheduling (`store::fleet`).
const FLEET_V6: &str = "
-- Each agent's vantage: the origin AS of the address it last uploaded from (NULL: no BGP
-- or Cymru data maps it), looked up again when the address changes.
CREATE TABLE fleet_agents (
    agent        TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    vantage_asn  INTEGER,
    looked_up_at TEXT NOT NULL
) WITHOUT ROWID;

-- Work booked by the scheduler: the agent traces `address` (inside `net`, a target /24) in
-- collector round `round` (UNIX time / round length). vantage is 'AS<n>' or 'unknown:<agent>';
-- probes is the agent's measured cost per target when booked.
CREATE TABLE fleet_bookings (
    round     INTEGER NOT NULL,
    agent     TEXT NOT NULL,
    vantage   TEXT NOT NULL,
    net       TEXT NOT NULL,
    address   TEXT NOT NULL,
    probes    INTEGER NOT NULL,
    booked_at TEXT NOT NULL,
    PRIMARY KEY (round, agent, net)
) WITHOUT ROWID;
CREATE INDEX fleet_bookings_by_agent ON fleet_bookings (agent, round);

-- Work done, counted from uploaded results: per minute of the results' start (UNIX time /
-- 60), agent and target /24, the traces and their probes, the ping results and their pings.
CREATE TABLE fleet_done (
    minute       INTEGER NOT NULL,
    agent        TEXT NOT NULL,
    net          TEXT NOT NULL,
    traces       INTEGER NOT NULL,
    trace_probes INTEGER NOT NULL,
    pings        INTEGER NOT NULL,
    ping_probes  INTEGER NOT NULL,
    PRIMARY KEY (minute, agent, net)
) WITHOUT ROWID;
CREATE INDEX fleet_done_by_agent ON fleet_done (agent, minute);

-- Target hosts that answered an uploaded ping, and when last (RFC 3339 UTC).
CREATE TABLE fleet_live (
    address   TEXT PRIMARY KEY,
    last_seen TEXT NOT NULL
) WITHOUT ROWID;

-- Upload batches already counted into fleet_done (a retried batch is counted once).
CREATE TABLE fleet_batches (
    batch_id TEXT PRIMARY KEY
) WITHOUT ROWID;
";

/// v8: RPKI exports (validated ROA payloads) by generation time, IPv4 payloads only.
const RPKI_V8: &str = "
-- One loaded export: when its validator generated it (Unix seconds), when it was loaded,
-- where from, and how many entries were skipped as broken.
CREATE TABLE rpki_files (
    id        INTEGER PRIMARY KEY,
    generated INTEGER NOT NULL,
    loaded_at INTEGER NOT NULL,
    source    TEXT NOT NULL,
    vrps      INTEGER NOT NULL,
    ipv6      INTEGER NOT NULL,
    skipped   INTEGER NOT NULL
);
CREATE INDEX rpki_files_by_time ON rpki_files (generated);

-- Its IPv4 payloads: `asn` may originate net/len and more-specifics up to /max_len.
CREATE TABLE rpki_vrps (
    file    INTEGER NOT NULL REFERENCES rpki_files (id),
    net     INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    max_len INTEGER NOT NULL,
    asn     INTEGER NOT NULL
);
CREATE INDEX rpki_vrps_by_prefix ON rpki_vrps (file, net, len);
";

/// Brings `conn` to [`CURRENT_VERSION`] in one IMMEDIATE transaction.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), DbError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > CURRENT_VERSION {
        return Err(DbError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: CURRENT_VERSION,
        });
    }
    if found == CURRENT_VERSION {
        return Ok(());
    }
    let wrap = |from| {
        move |source| DbError::Migration {
            path: path.to_path_buf(),
            from,
            source,
        }
    };
    if found == 0 {
        let tables: u32 = tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(DbError::Migration {
                path: path.to_path_buf(),
                from: 0,
                source: rusqlite::Error::InvalidParameterName(
                    "the file holds tables but no nkpath schema version: it is not an nkpath \
                     database"
                        .into(),
                ),
            });
        }
        init(&tx).map_err(wrap(0))?;
    } else {
        for from in found..CURRENT_VERSION {
            upgrade_from(&tx, from).map_err(wrap(from))?;
        }
    }
    tx.pragma_update(None, "user_version", CURRENT_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Creates the current schema in an empty database.
fn init(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SETTINGS)?;
    tx.execute_batch(RESULTS)?;
    tx.execute_batch(BGP_V2)?;
    tx.execute_batch(UPLOADS_V3)?;
    tx.execute_batch(CYMRU_CACHE_V4)?;
    tx.execute_batch(BGP_V5)?;
    tx.execute_batch(FLEET_V6)?;
    tx.execute_batch(RPKI_V8)
}

/// Upgrades from version `from` to `from + 1`.
fn upgrade_from(tx: &Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    match from {
        1 => {
            tx.execute_batch(
                "ALTER TABLE results ADD COLUMN kind TEXT NOT NULL DEFAULT 'trace'
                     CHECK (kind IN ('trace', 'ping'));",
            )?;
            tx.execute_batch(BGP_V2)
        }
        2 => tx.execute_batch(UPLOADS_V3),
        3 => tx.execute_batch(CYMRU_CACHE_V4),
        4 => tx.execute_batch(BGP_V5),
        5 => tx.execute_batch(FLEET_V6),
        6 => {
            tx.execute_batch("ALTER TABLE results ADD COLUMN extra TEXT;")?;
            normalise_stored_results(tx)
        }
        7 => tx.execute_batch(RPKI_V8),
        _ => unreachable!("no upgrade from schema version {from}"),
    }
}

/// v7: every row of `results` in the one stored shape ([`StoredRecord`]); rows that do not
/// decode are left as they are.
fn normalise_stored_results(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let rows: Vec<(String, String)> = tx
        .prepare("SELECT result_id, json FROM results")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update = tx.prepare("UPDATE results SET json = ?2, extra = ?3 WHERE result_id = ?1")?;
    for (id, json) in rows {
        match StoredRecord::from_stored_row(&json) {
            Ok(stored) => {
                update.execute(rusqlite::params![id, stored.json(), stored.extra()])?;
            }
            Err(e) => tracing::warn!(
                "stored result {id} left as it was: it does not decode ({})",
                nkpath_proto::text::escape_control(&e.to_string())
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_sqlite_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE x (a);")
            .unwrap();
        let err = crate::Db::open(&path).unwrap_err();
        assert!(err.to_string().contains("not an nkpath database"), "{err}");
    }
}
