//! `nkpath-collector import`: JSONL results stored exactly as received, idempotent by result
//! id, a bad line reported by its number and not stored. The JSON comes from the golden files
//! of nkpath-proto, so it is what agents send.

use std::path::Path;
use std::process::Command;

use nkpath_collector::Db;

fn golden(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/tests/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Six good lines (four bare TraceResults, one trace and one ping ResultRecord) and, as line
/// 4, one that fails validation.
fn jsonl() -> (String, Vec<String>) {
    let trace = golden("trace_result.json");
    let mut lines = Vec::new();
    for i in 0..4 {
        let mut t = trace.clone();
        t["result_id"] = format!("7f1c2d3e-4b5a-4c6d-8e7f-0000000000{i:02}").into();
        lines.push(serde_json::to_string(&t).unwrap());
    }
    // Keys in an unusual order and extra spaces: stored in the canonical form all the same.
    let spaced = lines[1]
        .replacen('{', "{ ", 1)
        .replace(r#""agent_id":"#, r#""agent_id" :  "#);
    lines[1] = spaced;
    let mut bad = trace.clone();
    bad["result_id"] = "7f1c2d3e-4b5a-4c6d-8e7f-0000000000ff".into();
    bad["params"]["max_ttl"] = 200.into();
    lines.insert(3, serde_json::to_string(&bad).unwrap());
    lines.push(serde_json::to_string(&golden("result_record_trace.json")).unwrap());
    lines.push(serde_json::to_string(&golden("result_record_ping.json")).unwrap());
    let mut text = lines.join("\n");
    text.push_str("\n\n");
    (text, lines)
}

#[test]
fn import_is_idempotent_and_reports_the_bad_line() {
    let (text, lines) = jsonl();
    let mut db = Db::open_in_memory().unwrap();
    let first = db.import_results(text.as_bytes()).unwrap();
    assert_eq!(first.lines, 7);
    assert_eq!(first.rejected.len(), 1, "{first:?}");
    assert_eq!(first.rejected[0].line, 4);
    assert!(
        first.rejected[0].error.contains("max_ttl"),
        "names the field: {}",
        first.rejected[0].error
    );
    assert_eq!((first.stored, first.already_stored), (6, 0));

    let count = |db: &Db| -> i64 {
        db.sql_for_tests()
            .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
            .unwrap()
    };
    let rows = count(&db);
    assert_eq!(rows as usize, first.stored);
    let second = db.import_results(text.as_bytes()).unwrap();
    assert_eq!(
        (second.stored, second.already_stored),
        (0, first.stored + first.already_stored)
    );
    assert_eq!(count(&db), rows, "importing twice stores nothing new");

    // Stored in the one stored shape (the tagged canonical record), with indexed copies.
    let (json, agent, protocol, kind): (String, String, String, String) = db
        .sql_for_tests()
        .query_row(
            "SELECT json, agent_id, protocol, kind FROM results
             WHERE result_id = '7f1c2d3e-4b5a-4c6d-8e7f-000000000001'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        json,
        nkpath_collector::store::results::StoredRecord::from_line(&lines[1])
            .unwrap()
            .json()
    );
    assert!(json.starts_with(r#"{"kind":"trace","#), "{json}");
    assert_eq!(
        nkpath_proto::decode::<nkpath_proto::ResultRecord>(&json).unwrap(),
        nkpath_proto::ResultRecord::Trace(nkpath_proto::decode(&lines[1]).unwrap())
    );
    assert_eq!(
        (agent.as_str(), protocol.as_str(), kind.as_str()),
        ("vp-fra1", "icmp", "trace")
    );
    let pings: i64 = db
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM results WHERE kind = 'ping'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pings, 1);
    let bad: i64 = db
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM results WHERE result_id LIKE '%0000000000ff'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0, "the bad line is not stored");
}

#[test]
fn the_command_reports_line_numbers_and_exits_1() {
    let (text, _) = jsonl();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("survey.jsonl");
    std::fs::write(&file, text).unwrap();
    let db = dir.path().join("c.db");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
            .arg("--db")
            .arg(&db)
            .arg("import")
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4: skipped:", file.display())),
        "{stderr}"
    );
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 results stored"), "{stdout}");
}
