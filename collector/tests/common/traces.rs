//! Traces as agents upload them, and a database holding them beside one RIB dump: the
//! fixtures of the verdict and export tests.

use nkpath_collector::Db;
use nkpath_collector::mrt::{self, LoadOptions};
use serde_json::json;

/// 2015-01-01T00:00:00Z, the time of every fixture RIB dump.
pub const DUMP_TIME: u32 = 1_420_070_400;

/// One reply: (TTL, address, ICMP type, ICMP code, MPLS labels). Consecutive replies of
/// one TTL are the probes of one hop (attempts 1, 2, …), as when a load balancer sends them
/// to different routers.
pub type Hop = (u8, &'static str, u8, u8, usize);

/// A trace result as an agent uploads it, started `after_dump_s` after the dump.
pub fn trace(id: u32, after_dump_s: i64, target: &str, hops: &[Hop]) -> String {
    let started = time::OffsetDateTime::from_unix_timestamp(i64::from(DUMP_TIME) + after_dump_s)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut by_ttl: Vec<(u8, Vec<serde_json::Value>)> = Vec::new();
    for (ttl, address, icmp_type, icmp_code, labels) in hops {
        let mpls: Vec<serde_json::Value> = (0..*labels)
            .map(|i| json!({"label": 16000 + i, "tc": 0, "bottom_of_stack": i + 1 == *labels, "ttl": 1}))
            .collect();
        if by_ttl.last().is_none_or(|(t, _)| t != ttl) {
            by_ttl.push((*ttl, Vec::new()));
        }
        let probes = &mut by_ttl.last_mut().expect("pushed above").1;
        probes.push(
            json!({"attempt": probes.len() + 1, "sent_at_us": 0, "reply": {
            "address": address, "rtt_us": 1000, "reply_ttl": 250,
            "icmp_type": icmp_type, "icmp_code": icmp_code, "tcp_flags": null,
            "quoted_ttl": 1, "mpls_labels": mpls}}),
        );
    }
    let attempts = by_ttl.iter().map(|(_, p)| p.len()).max().unwrap_or(1);
    let hops: Vec<serde_json::Value> = by_ttl
        .into_iter()
        .map(|(ttl, probes)| json!({"ttl": ttl, "probes": probes}))
        .collect();
    json!({
        "kind": "trace", "schema_version": "1.0",
        "result_id": format!("00000000-0000-4000-8000-{id:012}"),
        "agent_id": "vp-test", "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7", "target": target, "protocol": "icmp",
        "flow": {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7238},
        "params": {"attempts": attempts, "timeout_ms": 2000, "gap_limit": 5, "first_ttl": 1,
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

/// A real RIPE Atlas file whose traceroute has two routers answering one TTL: probe 163 of
/// measurement 6935514 (2016-11-17 12:19:25 UTC, UDP Paris toward 194.85.27.7), whose TTL 2
/// was answered twice by 91.122.108.1 and once by 212.48.204.166. Probe 165, in the same
/// file, heard nothing past its first hop.
pub const RIPE_FILE: &str = "test_traceroute_paths_from_ripe.json";
/// Probe 163's agent id once imported.
pub const RIPE_AGENT: &str = "atlas:6935514/163";
/// The destination of both traces.
pub const RIPE_TARGET: &str = "194.85.27.7";
/// The destination's /24 and its origin AS in the real prefix-to-AS file: the target of the
/// database, so that the traces are judged as traces into a target AS.
pub const RIPE_TARGET_PREFIX: &str = "194.85.27.0/24";
/// See [`RIPE_TARGET_PREFIX`].
pub const RIPE_TARGET_ASN: u32 = 9157;
/// A RIB dump time 19 minutes before the traces.
pub const RIPE_DUMP_TIME: u32 = 1_479_384_000;

/// Writes into `dir` a RIB dump for the traces of [`RIPE_FILE`]: for each address that
/// replied, the longest prefix covering it in the real prefix-to-AS file of the shared data
/// (RouteViews 2014-05-13, the closest real table at hand) with its origin, seen by three
/// peers with AS path `PEER ORIGIN`. Returns the dump and the Atlas file, or `None` when the
/// shared data is missing.
pub fn ripe_rib(dir: &std::path::Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    use std::io::BufRead as _;
    use std::net::Ipv4Addr;

    let traces = super::shared_data("traceroute")?.join(RIPE_FILE);
    let pfx2as = super::shared_data("pfx2as")?.join("ipasn_20140513.dat.gz");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&traces).unwrap()).unwrap();
    let mut addresses: Vec<Ipv4Addr> = Vec::new();
    for hop in results
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["result"].as_array().unwrap())
    {
        for reply in hop["result"].as_array().unwrap() {
            if let Some(from) = reply["from"].as_str() {
                addresses.push(from.parse().unwrap());
            }
        }
    }
    let mut best: std::collections::BTreeMap<Ipv4Addr, (ipnet::Ipv4Net, u32)> =
        std::collections::BTreeMap::new();
    let file = flate2::read::GzDecoder::new(std::fs::File::open(&pfx2as).unwrap());
    for line in std::io::BufReader::new(file).lines() {
        let line = line.unwrap();
        let mut fields = line.split_whitespace();
        let (Some(prefix), Some(origin)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(prefix), Ok(origin)) = (prefix.parse::<ipnet::Ipv4Net>(), origin.parse()) else {
            continue; // the `;` header
        };
        for a in addresses.iter().filter(|a| prefix.contains(*a)) {
            let longer = best
                .get(a)
                .is_none_or(|(p, _)| p.prefix_len() < prefix.prefix_len());
            if longer {
                best.insert(*a, (prefix, origin));
            }
        }
    }
    let peers = [
        super::peer("10.0.0.1", 3356),
        super::peer("10.0.0.2", 1299),
        super::peer("10.0.0.3", 174),
    ];
    let mut routes: Vec<(String, usize, String)> = Vec::new();
    let mut prefixes: Vec<(ipnet::Ipv4Net, u32)> = best.into_values().collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    for (prefix, origin) in prefixes {
        for (i, p) in peers.iter().enumerate() {
            routes.push((prefix.to_string(), i, format!("{} {origin}", p.asn)));
        }
    }
    let routes: Vec<(&str, usize, &str)> = routes
        .iter()
        .map(|(p, i, path)| (p.as_str(), *i, path.as_str()))
        .collect();
    let rib = dir.join("rib.20161117.1200.mrt");
    std::fs::write(&rib, super::rib(RIPE_DUMP_TIME, &peers, &routes)).unwrap();
    Some((rib, traces))
}
