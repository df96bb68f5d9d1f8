//! Schema versions: an old database (from an SQL fixture of the version that wrote it) is
//! upgraded in place, keeps its data and ends with the same schema as a new one; a newer
//! schema is refused and left untouched.

mod common;

use std::path::Path;

use nkpath_collector::store::CURRENT_VERSION;
use nkpath_collector::{Db, DbError};
use rusqlite::Connection;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The schema as SQLite describes it: every table's columns (name, type, not null, default,
/// primary key) and every index's columns, uniqueness and partial flag. The stored CREATE
/// text differs after ALTER TABLE even when the schema is the same, so it is not compared.
fn schema(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    let objects: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name) in objects {
        out.push(format!("{kind} {name}"));
        if kind == "table" {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_xinfo(\"{name}\")"))
                .unwrap();
            let cols = stmt
                .query_map([], |r| {
                    Ok(format!(
                        "  col {} {} notnull={} default={:?} pk={}",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, i64>(5)?
                    ))
                })
                .unwrap();
            out.extend(cols.map(Result::unwrap));
            let mut stmt = conn
                .prepare(&format!("PRAGMA index_list(\"{name}\")"))
                .unwrap();
            let indexes: Vec<(String, i64, String, i64)> = stmt
                .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut indexes: Vec<String> = indexes
                .into_iter()
                .map(|(index, unique, origin, partial)| {
                    let cols: Vec<String> = conn
                        .prepare(&format!("PRAGMA index_info(\"{index}\")"))
                        .unwrap()
                        .query_map([], |r| {
                            r.get::<_, Option<String>>(2).map(Option::unwrap_or_default)
                        })
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    // Autoindex names depend on creation order; name them by their columns.
                    let index = if index.starts_with("sqlite_autoindex") {
                        String::from("auto")
                    } else {
                        index
                    };
                    format!(
                        "  index {index} unique={unique} origin={origin} partial={partial} ({})",
                        cols.join(",")
                    )
                })
                .collect();
            indexes.sort();
            out.extend(indexes);
        }
    }
    out
}

#[test]
fn version_1_upgrades_in_place_and_keeps_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v1.sql"))
        .unwrap();

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let rows: Vec<(String, String, String)> = db
        .sql_for_tests()
        .prepare("SELECT result_id, kind, json FROM results ORDER BY result_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|(_, kind, _)| kind == "trace"));
    assert!(
        rows[0]
            .2
            .starts_with(r#"{"schema_version":"1.0","result_id":"7f1c2d3e"#),
        "json untouched"
    );
    assert_eq!(
        db.target().unwrap(),
        nkpath_collector::settings::Target::default()
    );
    // v3: the upload tables exist and start empty (imported results have no receipt); v4:
    // so does the Cymru cache.
    for table in ["agents", "receipts", "cymru_cache"] {
        let n: i64 = db
            .sql_for_tests()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }

    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
    drop(db);
    // Opening again is a no-op.
    assert_eq!(
        Db::open(&path).unwrap().schema_version().unwrap(),
        CURRENT_VERSION
    );
}

#[test]
fn version_2_upgrades_in_place_and_can_take_agents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v2.sql"))
        .unwrap();

    let mut db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let (kind, json): (String, String) = db
        .sql_for_tests()
        .query_row("SELECT kind, json FROM results", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kind, "ping");
    assert!(json.starts_with(r#"{"kind":"ping""#), "json untouched");
    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
    let added = db.add_agent("vp-fra1").unwrap();
    assert!(
        nkpath_collector::agents::authenticate(&db, added.token.expose())
            .unwrap()
            .is_some()
    );
}

#[test]
fn version_3_upgrades_in_place_keeps_its_uploads_and_gains_the_cymru_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v3.sql"))
        .unwrap();

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let (result_id, batch, offset): (String, String, i64) = db
        .sql_for_tests()
        .query_row(
            "SELECT r.result_id, c.batch_id, c.clock_offset_ms
             FROM results r JOIN receipts c USING (result_id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(result_id, "3d2c1b0a-1111-4222-8333-444455556666");
    assert_eq!(batch, "b0000000-0000-4000-8000-000000000001");
    assert_eq!(offset, 500);
    let agent: Option<String> = db
        .sql_for_tests()
        .query_row(
            "SELECT last_seen_at FROM agents WHERE name = 'vp-fra1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(agent.as_deref(), Some("2025-03-01T00:01:00.000000Z"));
    // v4: the Cymru cache exists, starts empty and takes answers.
    let n: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM cymru_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let cache = nkpath_collector::sources::cymru_cache::CymruCache::new(&db);
    let addr = "198.51.100.9".parse().unwrap();
    let answer = nkpath_collector::analysis::cymru::CymruAnswer {
        origins: vec![4837],
        prefix: Some("198.51.100.0/24".parse().unwrap()),
    };
    let now = time::OffsetDateTime::now_utc();
    cache.put(addr, &answer, now).unwrap();
    assert_eq!(cache.fresh(addr, now).unwrap(), Some(answer));

    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
    drop(db);
    assert_eq!(
        Db::open(&path).unwrap().schema_version().unwrap(),
        CURRENT_VERSION
    );
}

#[test]
fn version_4_upgrades_in_place_keeps_its_bgp_data_and_gains_adjacencies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v4.sql"))
        .unwrap();

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    // The dump loaded by v4 is still the BGP state, and is not flagged as truncated.
    let (name, truncated): (String, i64) = db
        .sql_for_tests()
        .query_row("SELECT name, truncated FROM mrt_files", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((name.as_str(), truncated), ("bview.20240101.0000.gz", 0));
    let state = nkpath_collector::bgp::BgpState::at(
        &db,
        time::OffsetDateTime::from_unix_timestamp(1_704_067_200).unwrap(),
    )
    .unwrap()
    .unwrap();
    let nk = "175.45.176.0/22".parse().unwrap();
    assert_eq!(state.visibility(nk, 4837).peers_via_upstream, 1);
    // v5: no adjacencies were kept for files loaded before it; the border rule still has the
    // target paths of those files.
    let n: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM as_adjacencies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    let adjacency = nkpath_collector::bgp::adjacency::load_adjacency(&db).unwrap();
    assert!(adjacency.adjacent(4837, 131_279) && adjacency.adjacent(3356, 4837));
    assert!(!adjacency.adjacent(3356, 131_279));

    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
    drop(db);
    assert_eq!(
        Db::open(&path).unwrap().schema_version().unwrap(),
        CURRENT_VERSION
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE from_the_future (x); INSERT INTO from_the_future VALUES (1);",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
    }
    let err = Db::open(&path).unwrap_err();
    assert!(
        matches!(err, DbError::TooNew { found, supported, .. } if found == CURRENT_VERSION + 1 && supported == CURRENT_VERSION)
    );
    let text = err.to_string();
    assert!(
        text.contains("newer than this nkpath-collector knows"),
        "{text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    let conn = Connection::open(&path).unwrap();
    let v: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, CURRENT_VERSION + 1);
    let n: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_damaged_file_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Db::open(&path).unwrap_err();
    assert!(matches!(err, DbError::Corrupt { .. }), "{err:?}");
}

#[test]
fn the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("w.db")).unwrap();
    let mode: String = db
        .sql_for_tests()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let _ = common::dump_all(&db);
}

#[test]
fn version_5_upgrades_in_place_keeps_its_agents_and_gains_the_fleet_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v5.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v5.sql"))
        .unwrap();

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let agents = db.agents().unwrap();
    assert_eq!(agents.len(), 1);
    assert_eq!(
        agents[0].last_address,
        Some("198.51.100.9".parse().unwrap())
    );
    // v6: nothing booked or counted yet; scheduling is off until turned on.
    for table in [
        "fleet_agents",
        "fleet_bookings",
        "fleet_done",
        "fleet_live",
        "upload_batches",
    ] {
        let n: i64 = db
            .sql_for_tests()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    assert!(!nkpath_collector::fleet::bookkeeping::enabled(&db).unwrap());
    // The vantage lookup reads the BGP data and the Cymru cache v5 stored.
    let origin = |a: &str| db.fleet_origin_of(a.parse().unwrap());
    assert_eq!(origin("175.45.177.9").unwrap(), Some(131_279));
    assert_eq!(origin("198.51.100.9").unwrap(), Some(4837));
    assert_eq!(origin("192.0.2.1").unwrap(), None);

    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
}

#[test]
fn version_6_upgrades_its_results_to_the_one_stored_shape() {
    use nkpath_collector::store::results::with_extra;
    use nkpath_proto::{ResultRecord, TraceResult, decode};
    use serde_json::{Value, json};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    let sql = fixture("schema_v6.sql");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    // The texts v6 held, from the fixture's own rows.
    let before: Vec<(String, String)> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT result_id, json FROM results ORDER BY result_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();

    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let rows: Vec<(String, String, Option<String>)> = db
        .sql_for_tests()
        .prepare("SELECT result_id, json, extra FROM results ORDER BY result_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 4);
    let [bare, newer, ping, broken] = [&rows[0], &rows[1], &rows[2], &rows[3]];

    // The bare import is now the tagged canonical record, nothing set aside.
    assert!(bare.1.starts_with(r#"{"kind":"trace","#), "{}", bare.1);
    assert_eq!(bare.2, None);
    let ResultRecord::Trace(trace) = decode::<ResultRecord>(&bare.1).unwrap() else {
        panic!("a trace");
    };
    assert_eq!(trace, decode::<TraceResult>(&before[0].1).unwrap());

    // The newer agent's upload: canonical, its unknown fields kept beside it, and the two
    // together are what it sent.
    assert!(newer.1.starts_with(r#"{"kind":"trace","#));
    let extra: Value = serde_json::from_str(newer.2.as_deref().unwrap()).unwrap();
    assert_eq!(
        extra,
        json!({"/hops/1/new_field": {"seen_by": "1.9", "n": [1, 2]}, "/newer_top": "kept"})
    );
    assert!(!newer.1.contains("new_field"));
    let sent: Value = serde_json::from_str(&before[1].1).unwrap();
    assert_eq!(with_extra(&newer.1, newer.2.as_deref()).unwrap(), sent);

    // A tagged ping that v6 stored as sent stays the same record.
    assert_eq!(
        decode::<ResultRecord>(&ping.1).unwrap(),
        decode::<ResultRecord>(&before[2].1).unwrap()
    );
    assert_eq!(ping.2, None);

    // A row that does not decode is left as it was; readers still skip it.
    assert_eq!(broken.1, before[3].1);
    assert_eq!(broken.2, None);
    let traces = nkpath_collector::results::stored_traces(&db, None, None).unwrap();
    let ids: Vec<String> = traces.iter().map(|t| t.result_id.to_string()).collect();
    assert_eq!(ids, [bare.0.clone(), newer.0.clone()]);

    // The uploads' receipts and the fleet's counted work are kept.
    let receipts: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
        .unwrap();
    let counted: i64 = db
        .sql_for_tests()
        .query_row("SELECT sum(trace_probes) FROM fleet_done", [], |r| r.get(0))
        .unwrap();
    assert_eq!((receipts, counted), (1, 6));

    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
    drop(db);
    assert_eq!(
        Db::open(&path).unwrap().schema_version().unwrap(),
        CURRENT_VERSION
    );
}

#[test]
fn version_7_upgrades_its_fleet_tables_to_one_voice_per_agent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v7.sql"))
        .unwrap();
    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let count = |sql: &str| -> i64 { db.sql_for_tests().query_row(sql, [], |r| r.get(0)).unwrap() };
    // Kept: the agent, its vantage and its counted work.
    assert_eq!(count("SELECT count(*) FROM agents"), 1);
    assert_eq!(count("SELECT count(*) FROM fleet_agents"), 1);
    assert_eq!(count("SELECT sum(ping_probes) FROM fleet_done"), 3);
    // Liveness is now per agent: which agent saw the old host is not known, so it is gone;
    // batches are keyed by agent and id, and start empty.
    assert_eq!(count("SELECT count(*) FROM fleet_live"), 0);
    db.sql_for_tests()
        .execute(
            "INSERT INTO fleet_live (agent, address, last_seen) VALUES ('vp-1', '175.45.176.1', 'x')",
            [],
        )
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM upload_batches"), 0);
    assert_eq!(
        count("SELECT count(*) FROM sqlite_master WHERE name = 'fleet_batches'"),
        0
    );
}

#[test]
fn an_upgraded_database_stores_multipath_results() {
    use nkpath_collector::store::results::StoredRecord;
    use nkpath_proto::ResultRecord;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v6.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch(&fixture("schema_v6.sql"))
        .unwrap();
    let mut db = Db::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    let record: ResultRecord = nkpath_proto::decode(include_str!(
        "../../proto/tests/golden/result_record_multipath.json"
    ))
    .unwrap();
    let stored = StoredRecord::from_record(&record).unwrap();
    let tx = db.write().unwrap();
    assert!(
        tx.insert_result(&stored, time::OffsetDateTime::now_utc())
            .unwrap()
    );
    tx.commit().unwrap();
    drop(db);
    // The widened constraint survives reopening, and still refuses other kinds.
    let db = Db::open(&path).unwrap();
    let kinds: i64 = db
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM results WHERE kind = 'multipath'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kinds, 1);
    let refused = db.sql_for_tests().execute(
        "UPDATE results SET kind = 'bogus' WHERE kind = 'multipath'",
        [],
    );
    assert!(refused.is_err());
    let fresh = Db::open(dir.path().join("fresh.db")).unwrap();
    assert_eq!(schema(db.sql_for_tests()), schema(fresh.sql_for_tests()));
}

#[test]
fn an_upgraded_database_keeps_scheduling_off_unless_it_was_turned_on_and_a_new_one_is_on() {
    use nkpath_collector::fleet::bookkeeping;

    let dir = tempfile::tempdir().unwrap();
    // A new database schedules the fleet.
    let fresh = Db::open(dir.path().join("new.db")).unwrap();
    assert!(bookkeeping::enabled(&fresh).unwrap());
    // An upgraded one does not change what its agents do: off, written into it.
    let old = dir.path().join("v6.db");
    Connection::open(&old)
        .unwrap()
        .execute_batch(&fixture("schema_v6.sql"))
        .unwrap();
    let db = Db::open(&old).unwrap();
    assert_eq!(db.schema_version().unwrap(), CURRENT_VERSION);
    assert!(!bookkeeping::enabled(&db).unwrap());
    assert_eq!(
        db.setting("fleet_schedule").unwrap().as_deref(),
        Some("off")
    );
    // One whose operator had turned scheduling on keeps it on.
    let on = dir.path().join("v6-on.db");
    let conn = Connection::open(&on).unwrap();
    conn.execute_batch(&fixture("schema_v6.sql")).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO settings (key, value) VALUES ('fleet_schedule', 'on')",
        [],
    )
    .unwrap();
    drop(conn);
    assert!(bookkeeping::enabled(&Db::open(&on).unwrap()).unwrap());
}
