//! Traces as agents upload them, and a database holding them beside one RIB dump: the
//! fixtures of the verdict and export tests.

use nkpath_collector::Db;
use nkpath_collector::mrt::{self, LoadOptions};
use serde_json::json;

/// 2015-01-01T00:00:00Z, the time of every fixture RIB dump.
pub const DUMP_TIME: u32 = 1_420_070_400;

/// One replying hop: (TTL, address, ICMP type, ICMP code, MPLS labels).
pub type Hop = (u8, &'static str, u8, u8, usize);

/// A trace result as an agent uploads it, started `after_dump_s` after the dump.
pub fn trace(id: u32, after_dump_s: i64, target: &str, hops: &[Hop]) -> String {
    let started = time::OffsetDateTime::from_unix_timestamp(i64::from(DUMP_TIME) + after_dump_s)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let hops: Vec<serde_json::Value> = hops
        .iter()
        .map(|(ttl, address, icmp_type, icmp_code, labels)| {
            let mpls: Vec<serde_json::Value> = (0..*labels)
                .map(|i| json!({"label": 16000 + i, "tc": 0, "bottom_of_stack": i + 1 == *labels, "ttl": 1}))
                .collect();
            json!({"ttl": ttl, "probes": [{"attempt": 1, "sent_at_us": 0, "reply": {
                "address": address, "rtt_us": 1000, "reply_ttl": 250,
                "icmp_type": icmp_type, "icmp_code": icmp_code, "tcp_flags": null,
                "quoted_ttl": 1, "mpls_labels": mpls}}]})
        })
        .collect();
    json!({
        "kind": "trace", "schema_version": "1.0",
        "result_id": format!("00000000-0000-4000-8000-{id:012}"),
        "agent_id": "vp-test", "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7", "target": target, "protocol": "icmp",
        "flow": {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7238},
        "params": {"attempts": 1, "timeout_ms": 2000, "gap_limit": 5, "first_ttl": 1,
                   "max_ttl": 30, "pps": 50, "per_prefix_pps": 1},
        "started_at": started, "hops": hops, "stop_reason": "reached", "annotations": []
    })
    .to_string()
}

/// A database with one RIB dump (`routes` as in [`common::rib`]) and these traces.
pub fn db_with(
    peers: &[super::FixturePeer],
    routes: &[(&str, usize, &str)],
    traces: &[String],
) -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path().join("c.db")).unwrap();
    let file = dir.path().join("rrc00-bview.mrt");
    std::fs::write(&file, super::rib(DUMP_TIME, peers, routes)).unwrap();
    let options = LoadOptions {
        collector: Some("rrc00".into()),
        ..LoadOptions::default()
    };
    mrt::load_file(&mut db, &file, &options, None).unwrap();
    let report = db
        .import_results(std::io::Cursor::new(traces.join("\n")))
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    assert_eq!(
        report.refused_outside, 0,
        "a fixture trace outside the targets"
    );
    (db, dir)
}
