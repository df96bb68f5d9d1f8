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
//! - v8: each agent's report is its own voice. `fleet_live` gains the agent that saw a host
//!   answer (a host one agent found live steers only that agent's targets), and
//!   `fleet_batches` gives way to `upload_batches`, keyed by (agent, batch id) with the
//!   digest of the batch's result ids (a resent batch is a retry, an id reused for other
//!   results is refused). Both start empty: which agent saw the hosts of the old table is not
//!   known (agents find them again with their next pings), and a batch in flight across the
//!   upgrade is taken for a new one (its results are still stored once, by result id).
//! - v9: `sync_files` and `sync_gaps`: what `bgp sync` fetched from the public archives (by
//!   URL: size, time, outcome), the update slots missing from them for good, and how the
//!   last pass over each collector went (`sync_collectors`). An upgraded
//!   database starts with neither: the first sync fetches what its window holds.
//! - v10: live BGP. `mrt_files` gains `provisional` (the rows RIS Live delivered, kept until
//!   their collector's update file for the period loads and replaces them) and
//!   `period_from`/`period_until` (the span an update file is the authority for; filled from
//!   the record times of the update files already loaded).
//! - v11: `results.kind` may be `multipath` (wire format 1.4): the CHECK of the column is
//!   widened in place ([`allow_multipath_results`]); no row changes.
//! - v12: fleet scheduling on by default: `fleet_intervals` (each agent's round interval, as
//!   its uploads report it). A new database schedules the fleet (no `fleet_schedule`
//!   setting means on); an upgraded one gets `fleet_schedule = off` written into it unless
//!   its operator set it, so that upgrading a collector does not change what its agents do.
//! - v13: RPKI exports (`rpki_files`, `rpki_vrps`), loaded by `rpki load`.
//!
//! Each version's full schema as an older build created it is kept as an SQL fixture in
//! `collector/tests/fixtures/` and upgraded in the tests.

use std::path::Path;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::DbError;
use super::results::StoredRecord;

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = 14;

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
    kind        TEXT NOT NULL DEFAULT 'trace' CHECK (kind IN ('trace', 'ping', 'multipath')),
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

/// The changes of v8: liveness per agent, and upload batches keyed by agent and batch id.
const UNTRUSTED_REPORTS_V8: &str = "
-- Target hosts that answered a ping uploaded by `agent`, and when last (RFC 3339 UTC).
DROP TABLE fleet_live;
CREATE TABLE fleet_live (
    agent     TEXT NOT NULL,
    address   TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    PRIMARY KEY (agent, address)
) WITHOUT ROWID;

-- Every upload batch that stored a result, by the agent of its token and its batch id:
-- results_sha256 is the SHA-256 (hex) of its result ids, sorted, so that a resent batch is
-- known for a retry and an id reused for other results is refused.
DROP TABLE fleet_batches;
CREATE TABLE upload_batches (
    agent          TEXT NOT NULL,
    batch_id       TEXT NOT NULL,
    results_sha256 TEXT NOT NULL,
    PRIMARY KEY (agent, batch_id)
) WITHOUT ROWID;
";

/// The tables of v9: what `bgp sync` fetched (see `store::sync`).
const SYNC_V9: &str = "
-- One row per archive file `bgp sync` tried: its URL, the collector and slot it stands for,
-- and how it went. status: 'loaded' (in the database, or found there already), 'failed'
-- (to be tried again; last_error says why), 'gap' (given up: missing or unusable for good).
CREATE TABLE sync_files (
    url         TEXT PRIMARY KEY,
    collector   TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('rib', 'updates')),
    slot_time   INTEGER NOT NULL,                 -- UNIX seconds, from the file's name
    status      TEXT NOT NULL CHECK (status IN ('loaded', 'failed', 'gap')),
    bytes       INTEGER,                          -- size downloaded
    attempts    INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  TEXT NOT NULL                     -- RFC 3339 UTC
) WITHOUT ROWID;
CREATE INDEX sync_files_by_collector ON sync_files (collector, slot_time);
-- Periods [start, end) of a collector that no update file covers: slots the archive skipped
-- (a later slot is published) or files given up on. Traces there have no BGP data.
CREATE TABLE sync_gaps (
    collector TEXT NOT NULL,
    start     INTEGER NOT NULL,
    end       INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    PRIMARY KEY (collector, start)
) WITHOUT ROWID;
-- How the last sync pass over each collector went (bgp status, /v1/health).
CREATE TABLE sync_collectors (
    collector  TEXT PRIMARY KEY,
    last_pass  TEXT NOT NULL,                     -- RFC 3339 UTC, end of the last pass
    last_error TEXT                               -- NULL: the last pass had no error
) WITHOUT ROWID;
";

/// v10: live BGP (see the module docs).
const LIVE_V10: &str = "
-- A provisional file holds the announcements, withdrawals and session changes RIS Live
-- delivered for one collector and hour (name 'ris-live:COLLECTOR:HOUR', format 'RIS_LIVE').
-- Loading that collector's update file for a period deletes the provisional rows of the
-- period: the archive's file replaces them.
ALTER TABLE mrt_files ADD COLUMN provisional INTEGER NOT NULL DEFAULT 0
    CHECK (provisional IN (0, 1));
-- Update files: the span (UNIX seconds, both ends included) the file is the authority for:
-- its records' span, widened to its archive slot when its name gives one.
ALTER TABLE mrt_files ADD COLUMN period_from INTEGER;
ALTER TABLE mrt_files ADD COLUMN period_until INTEGER;
UPDATE mrt_files SET period_from = first_time, period_until = last_time WHERE kind = 'updates';
CREATE INDEX mrt_files_periods ON mrt_files (collector_id, period_until)
    WHERE kind = 'updates';

-- Alerts (`--on-change`). One row: since when events may alert (the start of the current
-- catch-up: older events are history), the data time up to which the state was evaluated,
-- and when (UNIX seconds).
-- data_mark: what the traces and BGP data were when mismatches were last looked for
-- (they are looked for again only when it changes).
CREATE TABLE alert_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    armed_since  INTEGER NOT NULL,
    horizon      INTEGER NOT NULL,
    evaluated_at INTEGER NOT NULL,
    data_mark    TEXT NOT NULL DEFAULT ''
);

-- The announced upstream set of each prefix as last confirmed (visible from enough peers
-- for long enough), and the data time it took effect.
CREATE TABLE alert_upstreams (
    prefix    TEXT PRIMARY KEY,
    upstreams TEXT NOT NULL,                      -- e.g. '4837 20485', '' for none
    since     INTEGER NOT NULL
) WITHOUT ROWID;

-- Every event found: sent by a run of the command (status 'sent', or 'failed' after the
-- last attempt), waiting for one ('pending'), or older than the catch-up start ('history',
-- never sent).
CREATE TABLE alert_events (
    id        INTEGER PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,               -- identifies the event across evaluations
    prefix    TEXT NOT NULL,                      -- runs are per prefix
    kind      TEXT NOT NULL CHECK (kind IN ('upstreams', 'mismatch')),
    time      INTEGER NOT NULL,                   -- when it happened (UNIX seconds)
    found_at  INTEGER NOT NULL,
    json      TEXT NOT NULL,                      -- the event as the alert document shows it
    status    TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'history')),
    attempts  INTEGER NOT NULL DEFAULT 0,
    run_id    INTEGER REFERENCES alert_runs (id)
);
CREATE INDEX alert_events_pending ON alert_events (prefix) WHERE status = 'pending';

-- Every run of the command: its prefix, when it started, and how it ended.
CREATE TABLE alert_runs (
    id         INTEGER PRIMARY KEY,
    prefix     TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    outcome    TEXT NOT NULL
);
CREATE INDEX alert_runs_by_prefix ON alert_runs (prefix, started_at);
";

/// v13: RPKI exports (validated ROA payloads) by generation time, IPv4 payloads only.
const RPKI_V13: &str = "
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

/// v14: outage starts and ends are alert events too. SQLite cannot change a CHECK, so the
/// table is rebuilt with its rows.
const OUTAGE_ALERTS_V14: &str = "
CREATE TABLE alert_events_v14 (
    id        INTEGER PRIMARY KEY,
    key       TEXT NOT NULL UNIQUE,
    prefix    TEXT NOT NULL,
    kind      TEXT NOT NULL
              CHECK (kind IN ('upstreams', 'mismatch', 'outage-start', 'outage-end')),
    time      INTEGER NOT NULL,
    found_at  INTEGER NOT NULL,
    json      TEXT NOT NULL,
    status    TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'history')),
    attempts  INTEGER NOT NULL DEFAULT 0,
    run_id    INTEGER REFERENCES alert_runs (id)
);
INSERT INTO alert_events_v14 (id, key, prefix, kind, time, found_at, json, status, attempts, run_id)
    SELECT id, key, prefix, kind, time, found_at, json, status, attempts, run_id FROM alert_events;
DROP TABLE alert_events;
ALTER TABLE alert_events_v14 RENAME TO alert_events;
CREATE INDEX alert_events_pending ON alert_events (prefix) WHERE status = 'pending';
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
    tx.execute_batch(UNTRUSTED_REPORTS_V8)?;
    tx.execute_batch(SYNC_V9)?;
    tx.execute_batch(LIVE_V10)?;
    fleet_intervals_v12(tx, false)?;
    tx.execute_batch(RPKI_V13)?;
    tx.execute_batch(OUTAGE_ALERTS_V14)
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
        7 => tx.execute_batch(UNTRUSTED_REPORTS_V8),
        8 => tx.execute_batch(SYNC_V9),
        9 => tx.execute_batch(LIVE_V10),
        10 => allow_multipath_results(tx),
        11 => fleet_intervals_v12(tx, true),
        12 => tx.execute_batch(RPKI_V13),
        13 => tx.execute_batch(OUTAGE_ALERTS_V14),
        _ => unreachable!("no upgrade from schema version {from}"),
    }
}

/// v11: `results.kind` may be `multipath`.
///
/// SQLite cannot alter a CHECK constraint, and rebuilding `results` would need foreign keys
/// off (`receipts` references it), which cannot change inside the upgrade's transaction. So
/// the constraint's text is widened in the schema itself, the procedure SQLite documents for
/// changes that do not affect the stored rows (a wider CHECK admits every row the narrower
/// one did); the schema cookie is bumped so that every connection reloads it.
fn allow_multipath_results(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    const NARROW: &str = "('trace', 'ping')";
    const WIDE: &str = "('trace', 'ping', 'multipath')";
    let cookie: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    tx.execute_batch("PRAGMA writable_schema = ON;")?;
    let changed = tx.execute(
        "UPDATE sqlite_master SET sql = replace(sql, ?1, ?2)
         WHERE type = 'table' AND name = 'results' AND instr(sql, ?1) > 0",
        rusqlite::params![NARROW, WIDE],
    );
    tx.execute_batch(&format!(
        "PRAGMA schema_version = {}; PRAGMA writable_schema = OFF;",
        cookie + 1
    ))?;
    if changed? != 1 {
        return Err(rusqlite::Error::InvalidParameterName(
            "results.kind has no CHECK (kind IN ('trace', 'ping')) to widen".into(),
        ));
    }
    Ok(())
}

/// v12: the agents' round intervals; an upgraded database (`upgrading`) keeps scheduling off
/// unless its operator turned it on.
fn fleet_intervals_v12(tx: &Transaction<'_>, upgrading: bool) -> rusqlite::Result<()> {
    tx.execute_batch(
        "-- Each agent's round interval in seconds, as its last upload reported it (clamped
         -- to the bounds the scheduler takes), and when.
         CREATE TABLE fleet_intervals (
             agent       TEXT PRIMARY KEY,
             interval_s  INTEGER NOT NULL,
             reported_at TEXT NOT NULL
         ) WITHOUT ROWID;",
    )?;
    if upgrading {
        tx.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES ('fleet_schedule', 'off')",
            [],
        )?;
    }
    Ok(())
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
