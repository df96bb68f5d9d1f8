//! Multipath (MDA) traces in the reports: each branch judged on its own, a trace whose
//! branches enter through several announced upstreams a `multi-entry` match counted once for
//! each of its entry ASes (`report upstreams`, its time bins and `as_paths.csv` alike), a
//! branch through an unannounced AS a mismatch that `report mismatches` names, and the
//! diamond drawn by `report path`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::collector;
use common::traces::{DUMP_TIME, db_with};
use serde_json::{Value, json};

/// A multipath result as an agent uploads it: one flow per path, the interfaces of each TTL
/// with the flows that reached them, a link between consecutive hops of a path.
fn multipath(id: u32, round: u32, target: &str, paths: &[&[(u8, &str)]]) -> String {
    let mut hops: BTreeMap<u8, Vec<(String, BTreeSet<usize>)>> = BTreeMap::new();
    let mut links: BTreeMap<(u8, std::net::Ipv4Addr, u8, std::net::Ipv4Addr), BTreeSet<usize>> =
        BTreeMap::new();
    for (flow, path) in paths.iter().enumerate() {
        for (i, &(ttl, address)) in path.iter().enumerate() {
            let interfaces = hops.entry(ttl).or_default();
            match interfaces.iter_mut().find(|(a, _)| a == address) {
                Some((_, flows)) => {
                    flows.insert(flow);
                }
                None => interfaces.push((address.to_owned(), BTreeSet::from([flow]))),
            }
            if i > 0 {
                let (near_ttl, near) = path[i - 1];
                let key = (
                    near_ttl,
                    near.parse().unwrap(),
                    ttl,
                    address.parse().unwrap(),
                );
                links.entry(key).or_default().insert(flow);
            }
        }
    }
    let hops: Vec<Value> = hops
        .into_iter()
        .map(|(ttl, interfaces)| {
            let interfaces: Vec<Value> = interfaces
                .iter()
                .map(|(address, flows)| {
                    let icmp_type = if address == target { 0 } else { 11 };
                    json!({"address": address, "flows": flows, "reply": {
                        "address": address, "rtt_us": 1000, "reply_ttl": 250,
                        "icmp_type": icmp_type, "icmp_code": 0, "tcp_flags": null,
                        "quoted_ttl": 1}})
                })
                .collect();
            json!({"ttl": ttl, "interfaces": interfaces, "silent_flows": [],
                   "probes": paths.len(), "per_packet": false})
        })
        .collect();
    let links: Vec<Value> = links
        .into_iter()
        .map(|((nt, n, ft, f), flows)| {
            json!({"near_ttl": nt, "near": n, "far_ttl": ft, "far": f, "flows": flows})
        })
        .collect();
    let flows: Vec<Value> = (0..paths.len())
        .map(|i| json!({"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7000 + i}))
        .collect();
    let started =
        time::OffsetDateTime::from_unix_timestamp(i64::from(DUMP_TIME) + 60 * i64::from(id))
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
    json!({
        "kind": "multipath", "schema_version": "1.5",
        "result_id": format!("00000000-0000-4000-8000-{id:012}"),
        "agent_id": "vp-test", "agent_version": "0.1.0",
        "round_id": format!("5a3c1e2f-0000-4000-8000-{round:012}"),
        "source": "198.51.100.7", "target": target, "protocol": "icmp",
        "params": {"confidence": 95, "timeout_ms": 2000, "first_ttl": 1, "max_ttl": 30,
                   "gap_limit": 3, "max_probes": 1000, "max_seconds": 120, "pps": 50,
                   "per_prefix_pps": 10},
        "started_at": started, "flows": flows, "hops": hops, "links": links,
        "probes_sent": 6 * paths.len(), "stop_reason": "reached", "budget_hit": false
    })
    .to_string()
}

/// NK's block heard through China Unicom by two peers and through TransTeleCom by the
/// third: both are announced upstreams. AS9002's space is mapped, and no path puts AS9002
/// next to either upstream.
const ROUTES: [(&str, usize, &str); 12] = [
    ("175.45.176.0/22", 0, "3356 4837 131279"),
    ("175.45.176.0/22", 1, "1299 4837 131279"),
    ("175.45.176.0/22", 2, "174 20485 131279"),
    ("219.158.0.0/17", 0, "3356 4837"),
    ("219.158.0.0/17", 1, "1299 4837"),
    ("219.158.0.0/17", 2, "174 4837"),
    ("188.43.0.0/16", 0, "3356 20485"),
    ("188.43.0.0/16", 1, "1299 20485"),
    ("188.43.0.0/16", 2, "174 20485"),
    ("62.0.0.0/16", 0, "3356 9002"),
    ("62.0.0.0/16", 1, "1299 9002"),
    ("62.0.0.0/16", 2, "174 9002"),
];

/// The agent's first hop balances per flow: China Unicom or TransTeleCom, then NK.
const EITHER: [&[(u8, &str)]; 2] = [
    &[(1, "198.51.100.1"), (2, "219.158.1.1"), (3, "175.45.176.9")],
    &[
        (1, "198.51.100.1"),
        (2, "188.43.225.153"),
        (3, "175.45.176.9"),
    ],
];

/// One branch through China Unicom, one through AS9002, which nobody announces.
const LEAK: [&[(u8, &str)]; 2] = [
    &[(1, "198.51.100.1"), (2, "219.158.1.1"), (3, "175.45.177.9")],
    &[(1, "198.51.100.1"), (2, "62.0.1.1"), (3, "175.45.177.9")],
];

fn rows(json: &str, title_starts: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(json).unwrap();
    v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"].as_str().unwrap().starts_with(title_starts))
        .unwrap_or_else(|| panic!("no table {title_starts} in {json}"))["rows"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn multipath_traces_are_judged_per_branch_in_every_report() {
    let peers = [
        common::peer("10.0.0.1", 3356),
        common::peer("10.0.0.2", 1299),
        common::peer("10.0.0.3", 174),
    ];
    let traces = [
        multipath(1, 1, "175.45.176.9", &EITHER),
        multipath(2, 1, "175.45.177.9", &LEAK),
    ];
    let (db, dir) = db_with(&peers, &ROUTES, &traces);
    drop(db);
    let db = dir.path().join("c.db");
    let no_dns = ["--no-dns"];

    // Shares: the multi-entry trace counts once for AS4837 and once for AS20485.
    let up = collector(
        &db,
        &[
            &[
                "report",
                "upstreams",
                "--count",
                "traces",
                "--format",
                "json",
            ][..],
            &no_dns,
        ]
        .concat(),
    );
    let counted: BTreeSet<(String, Option<u64>, u64, u64)> = rows(&up, "Data plane")
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["entry_as"].as_u64(),
                r["total"].as_u64().unwrap(),
                r["share"]["of"].as_u64().unwrap(),
            )
        })
        .collect();
    // Two traces, each counted once for each AS its branches enter through: of 4.
    let want: BTreeSet<(String, Option<u64>, u64, u64)> =
        [(Some(4837), 2, 4), (Some(20485), 1, 4), (Some(9002), 1, 4)]
            .into_iter()
            .map(|(a, n, of)| ("all".to_owned(), a, n, of))
            .collect();
    assert_eq!(counted, want, "{up}");

    // The time bins count the same way.
    let binned = collector(
        &db,
        &[
            &[
                "report",
                "upstreams",
                "--count",
                "traces",
                "--bin",
                "1d",
                "--format",
                "json",
            ][..],
            &no_dns,
        ]
        .concat(),
    );
    let per_bin: BTreeSet<(String, Option<u64>)> = rows(&binned, "Data plane per time bin")
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["entry_as"].as_u64(),
            )
        })
        .collect();
    assert!(
        per_bin.contains(&("175.45.176.0/24".to_owned(), Some(20485))),
        "{binned}"
    );
    assert!(
        per_bin.contains(&("175.45.176.0/24".to_owned(), Some(4837))),
        "{binned}"
    );

    // Mismatches: only the trace with the AS9002 branch, that branch named (branches come
    // in the order of the links, sorted by address).
    let mm = collector(
        &db,
        &[
            &["report", "mismatches", "--each", "--format", "json"][..],
            &no_dns,
        ]
        .concat(),
    );
    let listed = rows(&mm, "Traces whose entry AS");
    assert_eq!(listed.len(), 1, "{mm}");
    assert_eq!(listed[0]["target"], "175.45.177.9");
    assert_eq!(listed[0]["verdict"], "mismatch");
    assert_eq!(listed[0]["entry_as"], 9002);
    let hop = listed[0]["entry_hop"].as_str().unwrap();
    assert!(
        hop.starts_with("branch 1 (198.51.100.1 > 62.0.1.1 > 175.45.177.9): TTL 2 62.0.1.1"),
        "{hop}"
    );

    // The path report: the multi-entry verdict, the diamond per TTL with its links, and
    // each branch with its entry AS and verdict.
    let path = collector(
        &db,
        &[
            &[
                "report",
                "path",
                "--agent",
                "vp-test",
                "--target",
                "175.45.176.9",
                "--format",
                "json",
            ][..],
            &no_dns,
        ]
        .concat(),
    );
    let diamond: Vec<(u64, String, String)> = rows(&path, "Diamond")
        .iter()
        .map(|r| {
            (
                r["ttl"].as_u64().unwrap(),
                r["interface"].as_str().unwrap().to_owned(),
                r["from"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        diamond,
        [
            (1, "198.51.100.1".to_owned(), String::new()),
            (2, "219.158.1.1".to_owned(), "198.51.100.1".to_owned()),
            (2, "188.43.225.153".to_owned(), "198.51.100.1".to_owned()),
            (
                3,
                "175.45.176.9".to_owned(),
                "188.43.225.153 219.158.1.1".to_owned()
            ),
        ]
    );
    let branches: Vec<(Option<u64>, String)> = rows(&path, "Branches")
        .iter()
        .map(|r| {
            (
                r["entry_as"].as_u64(),
                r["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        branches,
        [
            (Some(20485), "match".to_owned()),
            (Some(4837), "match".to_owned())
        ]
    );
    let text = collector(
        &db,
        &[
            &[
                "report",
                "path",
                "--agent",
                "vp-test",
                "--target",
                "175.45.176.9",
            ][..],
            &no_dns,
        ]
        .concat(),
    );
    assert!(
        text.contains("entry AS4837 + AS20485 (multi-entry); verdict match (multi-entry"),
        "{text}"
    );

    // as_paths.csv: the same entry ASes, the flag, the branches.
    let out = dir.path().join("out");
    collector(
        &db,
        &[&["export", "--out", out.to_str().unwrap()][..], &no_dns].concat(),
    );
    let mut csv = csv::Reader::from_path(out.join("as_paths.csv")).unwrap();
    let header = csv.headers().unwrap().clone();
    let col = |r: &csv::StringRecord, name: &str| {
        r[header.iter().position(|h| h == name).unwrap()].to_owned()
    };
    let got: Vec<(String, String, String, String, String)> = csv
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                col(&r, "target"),
                col(&r, "verdict"),
                col(&r, "multi_entry"),
                col(&r, "entry_asns"),
                col(&r, "branches"),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String, String)> = [
        ("175.45.176.9", "match", "true", "4837 20485", "2"),
        ("175.45.177.9", "mismatch", "false", "4837 9002", "2"),
    ]
    .iter()
    .map(|(a, b, c, d, e)| {
        (
            (*a).into(),
            (*b).into(),
            (*c).into(),
            (*d).into(),
            (*e).into(),
        )
    })
    .collect();
    assert_eq!(got, want);
}
