//! `import --format atlas|scamper` on the real public files in
//! `../shared/data/real/traceroute/` (see SOURCES.md there): the hops, replies, MPLS labels
//! and stop reasons stored are those of the files, what is not IPv4 traceroutes is counted
//! and skipped, a second import stores nothing, and bad input stores nothing of the bad
//! record. None of these files traces toward the target network: by default every import
//! refuses their traces and counts them; the conversion tests keep them as context
//! (`--keep-outside`), which no report counts.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nkpath_collector::Db;
use nkpath_collector::import::{
    Format, ImportFileError, ImportSummary, OutsideTargets, import_file, is_imported,
};
use nkpath_collector::results::{TraceScope, stored_traces, stored_traces_in};

use nkpath_proto::{ResultRecord, StopReason, TraceResult};

fn traceroute_dir() -> Option<PathBuf> {
    common::shared_data("traceroute")
}

/// Whether `sc_warts2json` runs; outside CI a missing program skips the warts tests, under
/// `CI=true` it fails them.
fn have_warts2json() -> bool {
    match Command::new("sc_warts2json").arg("/dev/null").output() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "sc_warts2json not runnable under CI: {e}"
            );
            eprintln!("SKIP: sc_warts2json is not installed ({e})");
            false
        }
    }
}

/// Every stored trace, by agent id then start time.
fn stored(db: &Db) -> Vec<TraceResult> {
    let mut stmt = db
        .sql_for_tests()
        .prepare("SELECT json FROM results ORDER BY agent_id, started_at, result_id")
        .unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(
            |json| match nkpath_proto::decode::<ResultRecord>(&json.unwrap()).unwrap() {
                ResultRecord::Trace(t) => t,
                ResultRecord::Ping(_) => panic!("an import stored a ping"),
                ResultRecord::Multipath(_) => panic!("an import stored a multipath trace"),
            },
        )
        .collect()
}

fn row_count(db: &Db) -> i64 {
    db.sql_for_tests()
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .unwrap()
}

/// The addresses that answered at each TTL, `*` for a silent TTL.
fn path(trace: &TraceResult) -> Vec<(u8, String)> {
    trace
        .hops
        .iter()
        .map(|h| {
            let addresses = h.addresses();
            let text = if addresses.is_empty() {
                "*".to_owned()
            } else {
                addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            (h.ttl, text)
        })
        .collect()
}

/// Imports `file` keeping what lies outside the target prefixes as context: these files
/// trace toward other networks, and the tests read what the conversion stored.
fn import(db: &mut Db, file: &Path, format: Format) -> ImportSummary {
    import_file(db, file, format, OutsideTargets::KeepAsContext)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Imports `file` by the default rules (outside the target prefixes refused).
fn import_refusing(db: &mut Db, file: &Path, format: Format) -> ImportSummary {
    import_file(db, file, format, OutsideTargets::Refuse)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

#[test]
fn atlas_jsonl_paths_and_stop_reasons() {
    let Some(dir) = traceroute_dir() else { return };
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!(
        (s.records, s.stored_context, s.already_stored),
        (14, 14, 0),
        "{s:?}"
    );
    assert_eq!(s.skipped(), 0);
    assert!(s.malformed.is_empty(), "{:?}", s.malformed);
    // The ten results that gave up end with Atlas's TTL-255 probe, which is not a hop.
    assert_eq!(s.notes.get("TTL-255 final probes dropped"), Some(&10));

    let traces = stored(&db);
    assert_eq!(traces.len(), 14);
    for t in &traces {
        assert_eq!(t.agent_id, "atlas:29792007/53023");
        assert_eq!(is_imported(&t.agent_id), Some("atlas"));
        assert_eq!(t.agent_version, "atlas-fw5020");
        assert_eq!(t.source, ip("185.219.13.69"));
        assert_eq!(t.target, ip("84.205.77.1"));
        assert_eq!(t.protocol, nkpath_proto::Protocol::Icmp);
        assert_eq!(t.params.attempts, 3);
        assert_eq!(t.hops[0].addresses(), [ip("192.168.16.1")]);
        assert!(t.hops.iter().all(|h| h.probes.len() == 3));
    }
    let first = &traces[0];
    assert_eq!(first.started_at.unix_timestamp(), 1_619_118_621);
    let mut expected: Vec<(u8, String)> = [
        "192.168.16.1",
        "172.27.255.254",
        "185.219.13.254",
        "10.10.11.2",
        "178.208.5.178",
        "178.208.11.249",
        "178.208.11.250",
    ]
    .iter()
    .zip(1..)
    .map(|(a, ttl)| (ttl, (*a).to_owned()))
    .collect();
    expected.extend((8..=12).map(|ttl| (ttl, "*".to_owned())));
    assert_eq!(path(first), expected);
    assert_eq!(first.stop_reason, StopReason::GapLimit);
    // Hop 1, first packet: rtt 1.01 ms, reply TTL 64, time exceeded.
    let reply = first.hops[0].probes[0].reply.as_ref().unwrap();
    assert_eq!((reply.rtt_us, reply.reply_ttl), (1010, 64));
    assert_eq!((reply.icmp_type, reply.icmp_code), (Some(11), Some(0)));

    // Ten results stop in the gap after 178.208.11.250; the last four reach the target
    // (the 19:10 one at TTL 9, the others at TTL 7) with echo replies.
    let stops: Vec<StopReason> = traces.iter().map(|t| t.stop_reason).collect();
    assert_eq!(
        stops.iter().filter(|&&r| r == StopReason::GapLimit).count(),
        10
    );
    assert!(stops[10..].iter().all(|&r| r == StopReason::Reached));
    assert_eq!(
        path(&traces[10]),
        [
            (1, "192.168.16.1"),
            (2, "172.27.255.254"),
            (3, "185.219.13.254"),
            (4, "10.10.11.2"),
            (5, "178.208.5.178"),
            (6, "178.208.11.252"),
            (7, "37.49.237.141"),
            (8, "*"),
            (9, "84.205.77.1"),
        ]
        .map(|(ttl, a)| (ttl, a.to_owned()))
    );
    let echo = traces[13].hops[6].probes[0].reply.as_ref().unwrap();
    assert_eq!(echo.address, ip("84.205.77.1"));
    assert_eq!((echo.icmp_type, echo.icmp_code), (Some(0), Some(0)));
    // At 19:58 one of the three packets to TTL 7 went unanswered.
    let hop7 = &traces[11].hops[6];
    assert_eq!(
        hop7.probes.iter().filter(|p| p.reply.is_none()).count(),
        1,
        "{hop7:?}"
    );

    // Importing again stores nothing new.
    let again = import(&mut db, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!((again.stored_context, again.already_stored), (0, 14));
    assert_eq!(row_count(&db), 14);
}

#[test]
fn atlas_sagan_results_ipv6_errors_late_replies_and_mpls() {
    let Some(dir) = traceroute_dir() else { return };
    let mut db = Db::open_in_memory().unwrap();
    let s = import(
        &mut db,
        &dir.join("sagan_test_traceroute_results.jsonl"),
        Format::Atlas,
    );
    // 21 results: 14 IPv4, of which one failed ("name resolution failed"), and 7 IPv6.
    assert_eq!(s.records, 21);
    assert_eq!(s.stored_context, 13, "{s:?}");
    assert_eq!(s.skipped_ipv6, 7);
    assert_eq!(s.skipped_failed, 1);
    assert!(s.malformed.is_empty(), "{:?}", s.malformed);
    // Probe 10834 in msm 5017 got every reply late.
    assert_eq!(
        s.notes.get("late replies ignored (not matched to a probe)"),
        Some(&15)
    );

    let traces = stored(&db);
    let by_id: BTreeMap<(String, i64), &TraceResult> = traces
        .iter()
        .map(|t| ((t.agent_id.clone(), t.started_at.unix_timestamp()), t))
        .collect();
    let get = |agent: &str, time: i64| by_id[&(agent.to_owned(), time)];

    // msm 5017, probe 10834: five silent hops (its replies all came late), the gap limit.
    let late = get("atlas:5017/10834", 1_447_330_668);
    assert_eq!(late.hops.len(), 5);
    assert_eq!(late.replies().count(), 0);
    assert_eq!(late.stop_reason, StopReason::GapLimit);
    assert_eq!(
        late.flow,
        nkpath_proto::FlowId::Udp {
            src_port: 10,
            dst_port: 0
        }
    );

    // msm 1000158, probe 394: 20 hops to 220.226.205.30 through Level 3 and Flag MPLS
    // tunnels; the probe's public address, not its private one, is the source.
    let mpls = get("atlas:1000158/394", 1_398_334_547);
    assert_eq!(mpls.source, ip("75.75.127.227"));
    assert_eq!(mpls.target, ip("220.226.205.30"));
    assert_eq!(mpls.hops.len(), 20);
    assert_eq!(mpls.stop_reason, StopReason::Reached);
    let labels: Vec<(u8, Ipv4Addr, u32)> = mpls
        .hops
        .iter()
        .filter_map(|h| {
            let r = h.probes[0].reply.as_ref()?;
            Some((h.ttl, r.address, r.mpls_labels.first()?.label))
        })
        .collect();
    assert_eq!(
        labels,
        [
            (7, ip("4.69.146.222"), 1394),
            (8, ip("4.69.201.69"), 1692),
            (9, ip("4.69.134.78"), 1512),
            (12, ip("85.95.25.110"), 310_352),
            (13, ip("85.95.25.158"), 301_856),
        ]
    );
    // Hop 8's router quoted the probe with TTL 2 (`ittl`); hop 7 left it out (1).
    let q = |ttl: usize| {
        mpls.hops[ttl - 1].probes[0]
            .reply
            .as_ref()
            .unwrap()
            .quoted_ttl
    };
    assert_eq!((q(7), q(8), q(9)), (Some(1), Some(2), Some(3)));
    // UDP to the target: port unreachable.
    let last = mpls.hops[19].probes[0].reply.as_ref().unwrap();
    assert_eq!((last.icmp_type, last.icmp_code), (Some(3), Some(3)));

    // msm 1000157, probe 319 (2013): MPLS label 407904 at 66.110.59.1 (TTL 10), then
    // 66.198.127.9 (371728), and five silent hops after 66.198.144.2.
    let tata = get("atlas:1000157/319", 1_361_435_986);
    let hop10 = tata.hops[9].probes[2].reply.as_ref().unwrap();
    assert_eq!(hop10.address, ip("66.110.59.1"));
    assert_eq!(hop10.mpls_labels.len(), 1);
    assert_eq!(
        (
            hop10.mpls_labels[0].label,
            hop10.mpls_labels[0].tc,
            hop10.mpls_labels[0].bottom_of_stack,
            hop10.mpls_labels[0].ttl
        ),
        (407_904, 1, true, 1)
    );
    assert_eq!(tata.hops[12].addresses(), [ip("66.198.144.2")]);
    assert_eq!(tata.hops.len(), 18);
    assert_eq!(tata.stop_reason, StopReason::GapLimit);

    let agents: std::collections::BTreeSet<&str> =
        traces.iter().map(|t| t.agent_id.as_str()).collect();
    assert_eq!(
        agents.into_iter().collect::<Vec<_>>(),
        [
            "atlas:1000157/190",
            "atlas:1000157/319",
            "atlas:1000157/426",
            "atlas:1000158/394",
            "atlas:5017/10834"
        ]
    );
}

#[test]
fn atlas_json_array_of_two_probes() {
    let Some(dir) = traceroute_dir() else { return };
    let file = dir.join("test_traceroute_paths_from_ripe.json");
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &file, Format::Atlas);
    assert_eq!((s.records, s.stored_context), (2, 2), "{s:?}");
    let traces = stored(&db);
    let (a, b) = (&traces[0], &traces[1]);
    assert_eq!(
        (a.agent_id.as_str(), b.agent_id.as_str()),
        ("atlas:6935514/163", "atlas:6935514/165")
    );
    // One measurement round: same msm, same start.
    assert_eq!(a.round_id, b.round_id);
    assert_ne!(a.result_id, b.result_id);
    // Probe 163: 14 hops to 194.85.27.7, a per-packet balancer at TTL 2, four MPLS hops
    // inside Rostelecom (178.34.250.x).
    assert_eq!(a.hops.len(), 14);
    assert_eq!(a.stop_reason, StopReason::Reached);
    let mut balanced = a.hops[1].addresses();
    balanced.sort_unstable();
    assert_eq!(balanced, [ip("91.122.108.1"), ip("212.48.204.166")]);
    let labels: Vec<u32> = (7..11)
        .map(|i| a.hops[i].probes[0].reply.as_ref().unwrap().mpls_labels[0].label)
        .collect();
    assert_eq!(labels, [691_402, 345_425, 326_929, 619_280]);
    assert_eq!(a.hops[13].addresses(), [ip("194.85.27.7")]);
    // Probe 165 stops after its home router, five silent hops.
    assert_eq!(path(b)[0], (1, "192.168.2.11".to_owned()));
    assert_eq!(b.hops.len(), 6);
    assert_eq!(b.stop_reason, StopReason::GapLimit);

    // The same records as JSON lines get the same ids: nothing new is stored.
    let text = std::fs::read_to_string(&file).unwrap();
    let values: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let lines = tmp.path().join("ripe.jsonl");
    std::fs::write(
        &lines,
        values
            .iter()
            .map(|v| serde_json::to_string(v).unwrap() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let again = import(&mut db, &lines, Format::Atlas);
    assert_eq!((again.stored_context, again.already_stored), (0, 2));
}

#[test]
fn atlas_bad_input_names_the_line_and_stores_nothing_of_it() {
    let Some(dir) = traceroute_dir() else { return };
    let text = std::fs::read_to_string(dir.join("atlas.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let tmp = tempfile::tempdir().unwrap();

    // JSON lines: line 3 cut in half (a truncated download), line 5 with a hop beyond 64.
    let mut bad = lines[..6]
        .iter()
        .map(|l| (*l).to_owned())
        .collect::<Vec<_>>();
    let half = bad[2].len() / 2;
    bad[2].truncate(half);
    bad[4] = bad[4].replacen("{\"hop\":2,", "{\"hop\":99,", 1);
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(&file, bad.join("\n")).unwrap();
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &file, Format::Atlas);
    assert_eq!((s.records, s.stored_context), (6, 4), "{s:?}");
    let lines_at_fault: Vec<usize> = s.malformed.iter().map(|m| m.line).collect();
    assert_eq!(lines_at_fault, [3, 5]);
    assert!(s.malformed[0].error.contains("invalid JSON"), "{s:?}");
    assert!(s.malformed[1].error.contains("hop 99"), "{s:?}");
    assert_eq!(row_count(&db), 4);

    // A truncated JSON array: refused whole, naming the file and line.
    let array = format!("[\n{},\n{}", lines[0], &lines[1][..lines[1].len() / 2]);
    let file = tmp.path().join("cut.json");
    std::fs::write(&file, array).unwrap();
    let mut db = Db::open_in_memory().unwrap();
    let err = import_file(&mut db, &file, Format::Atlas, OutsideTargets::Refuse).unwrap_err();
    assert!(matches!(err, ImportFileError::Syntax { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("cut.json") && message.contains("line 3"),
        "{message}"
    );
    assert_eq!(row_count(&db), 0);

    // Not Atlas at all: every record malformed, nothing stored, no panic.
    let file = tmp.path().join("other.jsonl");
    std::fs::write(&file, "{\"hello\": 1}\n[1, 2]\n").unwrap();
    let s = import(&mut db, &file, Format::Atlas);
    assert_eq!(s.malformed.len(), 2);
    assert_eq!(row_count(&db), 0);

    // A record Atlas-shaped but out of the wire format's range (an MPLS label of 21 bits):
    // refused by the same rules as an agent's upload, naming the field.
    let sagan = std::fs::read_to_string(dir.join("sagan_test_traceroute_results.jsonl")).unwrap();
    let line4 = sagan.lines().nth(3).unwrap();
    assert_eq!(line4.matches("\"label\":407904").count(), 3, "{line4}");
    let file = tmp.path().join("label.jsonl");
    std::fs::write(
        &file,
        line4.replacen("\"label\":407904", "\"label\":1407904", 1),
    )
    .unwrap();
    let s = import(&mut db, &file, Format::Atlas);
    assert_eq!((s.stored_context, s.malformed.len()), (0, 1));
    assert!(
        s.malformed[0].error.contains("converted trace refused")
            && s.malformed[0]
                .error
                .contains("hops[9].probes[0].reply.mpls_labels[0].label"),
        "{:?}",
        s.malformed[0]
    );

    // The wrong --format: every record refused with a hint, not "0 traces" in silence.
    let s = import(&mut db, &dir.join("atlas.jsonl"), Format::Scamper);
    assert_eq!((s.records, s.malformed.len(), s.skipped()), (14, 14, 0));
    assert!(
        s.malformed[0].error.contains("try --format atlas"),
        "{:?}",
        s.malformed[0]
    );
    assert_eq!(row_count(&db), 0);
}

#[test]
fn scamper_udp_paris_trace_matches_its_text_dump() {
    let Some(dir) = traceroute_dir() else { return };
    if !have_warts2json() {
        return;
    }
    let file = dir.join("trace_google_dns_v4_default.warts");
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &file, Format::Scamper);
    assert_eq!(s.converted_with, Some("sc_warts2json"));
    assert_eq!((s.records, s.stored_context), (3, 1), "{s:?}");
    assert_eq!(
        s.skipped_non_trace,
        BTreeMap::from([("cycle-start".to_owned(), 1), ("cycle-stop".to_owned(), 1)])
    );
    let traces = stored(&db);
    let t = &traces[0];
    assert_eq!(t.agent_id, "scamper:trace_google_dns_v4_default.warts");
    assert_eq!(is_imported(&t.agent_id), Some("scamper"));
    // The text dump: "traceroute from 137.194.165.109 to 8.8.8.8", "type: udp paris,
    // sport: 57352, dport: 33435", "attempts: 2", "stop reason: done", and hops 1-5, 7.
    assert_eq!((t.source, t.target), (ip("137.194.165.109"), ip("8.8.8.8")));
    assert_eq!(
        t.flow,
        nkpath_proto::FlowId::Udp {
            src_port: 57352,
            dst_port: 33435
        }
    );
    assert_eq!(
        path(t),
        [
            (1, "137.194.164.254"),
            (2, "137.194.22.119"),
            (3, "212.73.200.45"),
            (4, "4.69.133.238"),
            (5, "4.68.71.138"),
            (6, "*"),
            (7, "8.8.8.8"),
        ]
        .map(|(ttl, a)| (ttl, a.to_owned()))
    );
    assert_eq!(t.stop_reason, StopReason::Reached);
    assert_eq!((t.params.attempts, t.params.timeout_ms), (2, 5000));
    // probec 8: six answered probes and TTL 6's two silent ones.
    assert_eq!(t.hops.iter().map(|h| h.probes.len()).sum::<usize>(), 8);
    // "start: Tue Feb  8 14:35:19 2022 811234" (CET).
    assert_eq!(
        t.started_at.unix_timestamp_nanos(),
        1_644_327_319_811_234_000
    );
    // hop 3: "tx: 0.100747s, rtt: 0.001443s", "reply-ttl: 62", "q-ttl: 1".
    let hop3 = &t.hops[2].probes[0];
    assert_eq!(hop3.sent_at_us, 100_747);
    let r = hop3.reply.as_ref().unwrap();
    assert_eq!((r.rtt_us, r.reply_ttl, r.quoted_ttl), (1443, 62, Some(1)));
    assert_eq!((r.icmp_type, r.icmp_code), (Some(11), Some(0)));
    // hop 7: "icmp-type: 3, icmp-code: 3", "tx: 10.267924s", "rtt: 0.001969s".
    let hop7 = &t.hops[6].probes[0];
    assert_eq!(hop7.sent_at_us, 10_267_924);
    let r = hop7.reply.as_ref().unwrap();
    assert_eq!(
        (r.icmp_type, r.icmp_code, r.rtt_us, r.reply_ttl),
        (Some(3), Some(3), 1969, 118)
    );

    let again = import(&mut db, &file, Format::Scamper);
    assert_eq!((again.stored_context, again.already_stored), (0, 1));

    // The IPv6 trace and the tracelb and ping files are counted and skipped.
    let v6 = import(
        &mut db,
        &dir.join("trace_google_dns_v6_default.warts"),
        Format::Scamper,
    );
    assert_eq!((v6.stored_context, v6.skipped_ipv6), (0, 1));
    let lb = import(
        &mut db,
        &dir.join("tracelb_google_dns_v4_default.warts"),
        Format::Scamper,
    );
    // A multipath trace now (see scamper_tracelb_imports_every_node_and_link).
    assert_eq!(lb.stored_context, 1, "{lb:?}");
    let ping = import(
        &mut db,
        &dir.join("ping_google_dns_v4_default.warts"),
        Format::Scamper,
    );
    assert_eq!(ping.skipped_non_trace.get("ping"), Some(&1));
    assert_eq!(row_count(&db), 2);
}

/// The `node ADDR` and `link NEAR -> FAR hopc N` lines of a scamper text dump.
fn tracelb_dump(text: &str) -> (Vec<Ipv4Addr>, Vec<(Ipv4Addr, Ipv4Addr, u8)>) {
    let mut nodes = Vec::new();
    let mut links = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["node", _, addr, ..] => nodes.push(ip(addr.trim_end_matches(','))),
            ["link", near, "->", far, "hopc", hopc] => {
                links.push((ip(near), ip(far), hopc.parse().unwrap()));
            }
            _ => {}
        }
    }
    (nodes, links)
}

#[test]
fn scamper_tracelb_imports_every_node_and_link() {
    let Some(dir) = traceroute_dir() else { return };
    if !have_warts2json() {
        return;
    }
    let mut db = Db::open_in_memory().unwrap();
    let s = import(
        &mut db,
        &dir.join("tracelb_google_dns_v4_default.warts"),
        Format::Scamper,
    );
    assert_eq!(s.stored_context, 1, "{s:?}");
    assert!(s.malformed.is_empty(), "{:?}", s.malformed);
    let json: String = db
        .sql_for_tests()
        .query_row(
            "SELECT json FROM results WHERE kind = 'multipath'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ResultRecord::Multipath(m) = nkpath_proto::decode::<ResultRecord>(&json).unwrap() else {
        panic!("not a multipath result");
    };
    let text = std::fs::read_to_string(dir.join("tracelb_google_dns_v4_default.txt")).unwrap();
    let (nodes, links) = tracelb_dump(&text);
    assert_eq!(
        (nodes.len(), links.len()),
        (8, 10),
        "the dump's nodec and linkc"
    );
    for node in &nodes {
        assert!(
            m.hops.iter().any(|h| h.addresses().any(|a| a == *node)),
            "node {node} missing"
        );
    }
    for &(near, far, hopc) in &links {
        assert!(
            m.links
                .iter()
                .any(|l| l.near == near && l.far == far && l.far_ttl - l.near_ttl == hopc),
            "link {near} -> {far} hopc {hopc} missing from {:?}",
            m.links
        );
    }
    // Nothing the dump does not have.
    let distinct: std::collections::BTreeSet<_> = m.links.iter().map(|l| (l.near, l.far)).collect();
    assert_eq!(distinct.len(), links.len());
    assert_eq!(m.probes_sent, 104);
    assert_eq!(m.stop_reason, StopReason::Reached);
    assert!(m.has_diamond(), "the dump's two diamonds");
    // Every path along the dump's links is a branch of the analysis (here nothing is in the
    // target AS, so each runs to the destination): 2 × 2 through the two balancers.
    let mut paths: Vec<Vec<Ipv4Addr>> = vec![vec![nodes[0]]];
    let mut done = Vec::new();
    while let Some(path) = paths.pop() {
        let last = *path.last().unwrap();
        let next: Vec<Ipv4Addr> = links
            .iter()
            .filter(|(near, _, _)| *near == last)
            .map(|l| l.1)
            .collect();
        if next.is_empty() {
            done.push(path);
            continue;
        }
        for far in next {
            let mut longer = path.clone();
            longer.push(far);
            paths.push(longer);
        }
    }
    let (branches, cut) = nkpath_collector::analysis::multipath::branches(&m, |_| false);
    assert!(!cut);
    let got: std::collections::BTreeSet<Vec<Ipv4Addr>> = branches
        .iter()
        .map(|b| b.hops.iter().map(|h| h.1).collect())
        .collect();
    let want: std::collections::BTreeSet<Vec<Ipv4Addr>> = done.into_iter().collect();
    assert_eq!(want.len(), 4);
    assert_eq!(got, want);
    // The IPv6 tracelb cannot be a wire-format result (IPv4 only): skipped, with that reason.
    let v6 = import(
        &mut db,
        &dir.join("tracelb_google_dns_v6_default.warts"),
        Format::Scamper,
    );
    assert_eq!(
        (
            v6.stored_context,
            v6.skipped_ipv6,
            v6.skipped_ipv6_multipath
        ),
        (0, 0, 1),
        "{v6:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(tmp.path().join("c.db"))
        .args(["import", "--format", "scamper"])
        .arg(dir.join("tracelb_google_dns_v6_default.warts"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("skipped: 1 IPv6 multipath traces (tracelb): wire format IPv4-only"),
        "{text}"
    );
}

#[test]
fn scamper_converted_file_with_mapped_addresses() {
    let Some(dir) = traceroute_dir() else { return };
    if !have_warts2json() {
        return;
    }
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &dir.join("trace.warts"), Format::Scamper);
    assert_eq!((s.records, s.stored_context), (1002, 1000), "{s:?}");
    assert!(s.malformed.is_empty(), "{:?}", s.malformed);
    // Written by a converter: no start time, and "COMPLETED" for traces that never heard
    // from their target. The word is kept as the file says it; nkpath's own stop reason
    // never claims the target answered.
    assert_eq!(
        s.notes
            .get("start time missing: taken from the first probe sent"),
        Some(&1000)
    );
    assert_eq!(
        s.notes
            .get("scamper stop reasons the replies contradict (kept in source_stop)"),
        Some(&1000)
    );
    let traces = stored(&db);
    assert_eq!(
        traces.iter().map(|t| t.replies().count()).sum::<usize>(),
        2929
    );
    assert!(traces.iter().all(|t| t.source == ip("132.227.123.8")
        && t.source_stop.as_deref() == Some("COMPLETED")
        && t.stop_reason == StopReason::MaxTtl
        && t.agent_id == "scamper:trace.warts"
        && t.replies().all(|r| r.icmp_type == Some(11))));
    assert!(
        traces
            .iter()
            .all(|t| t.replies().all(|r| r.address != t.target))
    );
    let distinct: std::collections::BTreeSet<Ipv4Addr> = traces.iter().map(|t| t.target).collect();
    assert_eq!(distinct.len(), 944);
    // The first trace: "::ffff:53.237.216.178", TTL 11 62.115.122.139 and TTL 12
    // 62.115.137.211, 0.2 ms apart.
    let first = traces
        .iter()
        .find(|t| t.target == ip("53.237.216.178") && t.hops.len() == 2 && t.hops[0].ttl == 11)
        .expect("the first trace of the file");
    assert_eq!(
        path(first),
        [
            (11, "62.115.122.139".to_owned()),
            (12, "62.115.137.211".to_owned())
        ]
    );
    assert_eq!(first.started_at.unix_timestamp(), 1_647_675_422);
    assert_eq!(first.hops[1].probes[0].sent_at_us, 200);
}

#[test]
fn scamper_truncated_warts_stores_nothing() {
    let Some(dir) = traceroute_dir() else { return };
    if !have_warts2json() {
        return;
    }
    let bytes = std::fs::read(dir.join("trace.warts")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cut.warts");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let mut db = Db::open_in_memory().unwrap();
    let err = import_file(&mut db, &file, Format::Scamper, OutsideTargets::Refuse).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("cut.warts") && message.contains("could not read the whole warts file"),
        "{message}"
    );
    assert_eq!(row_count(&db), 0);
}

#[test]
fn cli_imports_atlas_and_prints_the_summary() {
    let Some(dir) = traceroute_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("nk.db");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let file = dir.join("sagan_test_traceroute_results.jsonl");
    let out = run(&["import", "--format", "atlas", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("atlas: 21 records read, 0 traces stored, 0 already stored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped: 7 IPv6, 0 non-trace, 1 failed measurements, 0 malformed"),
        "{stdout}"
    );
    // None of them went toward the target network: refused and counted, not an error.
    assert!(
        stdout.contains("13 outside the target prefixes (175.45.176.0/22): refused"),
        "{stdout}"
    );
    let out = run(&[
        "import",
        "--format",
        "atlas",
        "--keep-outside",
        file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("13 outside the target prefixes (175.45.176.0/22): stored as context"),
        "{stdout}"
    );

    // A bad line: exit status 1, the line named on stderr.
    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"af\":4,\"type\":\"traceroute\"}\n").unwrap();
    let out = run(&["import", "--format", "atlas", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.jsonl:1: skipped:"), "{stderr}");

    // The default format is still nkpath's JSON lines: Atlas records are refused by it.
    let out = run(&["import", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("0 results stored"), "{stdout}");
}

#[test]
fn compressed_files_are_read_and_damaged_ones_store_nothing() {
    use std::io::Write as _;
    let Some(dir) = traceroute_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let plain = std::fs::read(dir.join("atlas.jsonl")).unwrap();
    // Atlas daily dumps are published as bzip2.
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&plain).unwrap();
    let bz = bz.finish().unwrap();
    let file = tmp.path().join("traceroute-2021-04-22.bz2");
    std::fs::write(&file, &bz).unwrap();
    let mut db = Db::open_in_memory().unwrap();
    let s = import(&mut db, &file, Format::Atlas);
    assert_eq!(s.decompressed, Some("bzip2"));
    assert_eq!((s.records, s.stored_context), (14, 14));
    // The same records as the plain file: already stored.
    let again = import(&mut db, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!((again.stored_context, again.already_stored), (0, 14));

    // Cut short: refused whole, nothing stored.
    let cut = tmp.path().join("cut.bz2");
    std::fs::write(&cut, &bz[..bz.len() / 2]).unwrap();
    let mut fresh = Db::open_in_memory().unwrap();
    let err = import_file(&mut fresh, &cut, Format::Atlas, OutsideTargets::Refuse).unwrap_err();
    assert!(
        err.to_string().contains("cut.bz2") && err.to_string().contains("cannot decompress"),
        "{err}"
    );
    assert_eq!(row_count(&fresh), 0);

    // Not text at all (a gzip member inside, say, a tar): named with its line.
    let binary = tmp.path().join("binary.json");
    std::fs::write(&binary, b"{\"a\":1}\n\xff\xfe").unwrap();
    let err = import_file(&mut fresh, &binary, Format::Atlas, OutsideTargets::Refuse).unwrap_err();
    assert!(
        err.to_string().contains("line 2, column 1") && err.to_string().contains("UTF-8"),
        "{err}"
    );

    // The nkpath format through the same entry point: Atlas records are not nkpath results.
    let s = import(&mut fresh, &dir.join("atlas.jsonl"), Format::Nkpath);
    assert_eq!(
        (s.records, s.stored_context, s.malformed.len()),
        (14, 0, 14)
    );

    // A gzip-compressed warts file goes through sc_warts2json as well.
    if !have_warts2json() {
        return;
    }
    let warts = std::fs::read(dir.join("trace_google_dns_v4_default.warts")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&warts).unwrap();
    let file = tmp.path().join("trace.warts.gz");
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let s = import(&mut fresh, &file, Format::Scamper);
    assert_eq!(
        (s.decompressed, s.converted_with, s.stored_context),
        (Some("gzip"), Some("sc_warts2json"), 1)
    );
    let traces = stored(&fresh);
    assert_eq!(traces[0].agent_id, "scamper:trace.warts.gz");
    assert_eq!(traces[0].hops.len(), 7);
}

/// Item 1 of issue 19: a trace that never went toward the target network is not an entry
/// into it, whatever format it came in. Every real public file here traces toward other
/// networks: each import refuses their traces and counts them; `--keep-outside` stores them
/// as context, which the readers of reports and exports leave out.
#[test]
fn traces_outside_the_targets_are_refused_by_every_format_and_kept_only_as_context() {
    let Some(dir) = traceroute_dir() else { return };
    let mut db = Db::open_in_memory().unwrap();
    let atlas = import_refusing(&mut db, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!(
        (atlas.stored, atlas.stored_context, atlas.refused_outside),
        (0, 0, 14),
        "{atlas:?}"
    );
    let sagan = import_refusing(
        &mut db,
        &dir.join("sagan_test_traceroute_results.jsonl"),
        Format::Atlas,
    );
    assert_eq!((sagan.stored, sagan.refused_outside), (0, 13), "{sagan:?}");
    assert_eq!(row_count(&db), 0);

    // Kept as context: stored, and left out of what reports and exports analyse.
    let kept = import(&mut db, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!(
        (kept.stored, kept.stored_context, kept.refused_outside),
        (0, 14, 0)
    );
    assert_eq!(row_count(&db), 14);
    assert!(stored_traces(&db, None, None).unwrap().is_empty());
    let context = stored_traces_in(&db, None, None, TraceScope::WithContext).unwrap();
    assert_eq!(context.len(), 14);

    // The same rules for nkpath's own JSON lines: the stored records, as lines, are refused
    // outside the targets and kept only when asked.
    let lines: String = db
        .sql_for_tests()
        .prepare("SELECT json FROM results")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|json| json.unwrap() + "\n")
        .collect();
    let mut fresh = Db::open_in_memory().unwrap();
    let refused = fresh.import_results(lines.as_bytes()).unwrap();
    assert_eq!(
        (
            refused.stored,
            refused.refused_outside,
            refused.rejected.len()
        ),
        (0, 14, 0),
        "{refused:?}"
    );
    let kept = fresh
        .import_results_with(lines.as_bytes(), OutsideTargets::KeepAsContext)
        .unwrap();
    assert_eq!((kept.stored, kept.stored_context), (0, 14));
    assert!(stored_traces(&fresh, None, None).unwrap().is_empty());

    // A collector whose targets include the Atlas destination counts them.
    let mut toward = Db::open_in_memory().unwrap();
    toward
        .put_setting("target_prefixes", "84.205.77.0/24")
        .unwrap();
    toward.put_setting("target_asn", "12654").unwrap();
    let s = import_refusing(&mut toward, &dir.join("atlas.jsonl"), Format::Atlas);
    assert_eq!((s.stored, s.refused_outside), (14, 0));
    assert_eq!(stored_traces(&toward, None, None).unwrap().len(), 14);

    if !have_warts2json() {
        return;
    }
    for name in ["trace_google_dns_v4_default.warts", "trace.warts"] {
        let s = import_refusing(&mut db, &dir.join(name), Format::Scamper);
        assert_eq!(s.stored + s.stored_context, 0, "{name}: {s:?}");
        assert!(s.refused_outside > 0, "{name}: {s:?}");
    }
    assert_eq!(row_count(&db), 14);
}

/// The example: with the real 2014 RIB and the real warts files, `report upstreams`
/// listed AS3356 and AS15169 as entries into AS131279 for traces toward 8.8.8.8 and other
/// networks. They are not entries: imported by default or kept as context, nothing of them
/// reaches the report.
#[test]
fn report_upstreams_lists_no_entries_from_traces_toward_other_networks() {
    let Some(dir) = traceroute_dir() else { return };
    let Some(mrt) = common::shared_data("mrt") else {
        return;
    };
    if !have_warts2json() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("nk.db");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let rib = mrt.join("rib.20140523.0600_firstMB.bz2");
    let (code, stdout, stderr) = run(&[
        "bgp",
        "load",
        "--accept-truncated",
        "--collector",
        "route-views2",
        rib.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let mut warts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "warts"))
        .collect();
    warts.sort();
    assert!(warts.len() >= 5, "{warts:?}");
    let upstreams = || {
        let (code, stdout, stderr) = run(&["report", "upstreams", "--no-dns", "--format", "csv"]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        stdout
    };
    for keep in [false, true] {
        for file in &warts {
            let mut args = vec!["import", "--format", "scamper"];
            if keep {
                args.push("--keep-outside");
            }
            args.push(file.to_str().unwrap());
            let (code, stdout, stderr) = run(&args);
            assert_eq!(code, Some(0), "{}: {stdout}{stderr}", file.display());
        }
        let report = upstreams();
        for asn in ["3356", "15169"] {
            assert!(
                !report.contains(asn),
                "AS{asn} listed as an entry (keep-outside {keep}):\n{report}"
            );
        }
    }
}

/// Item 4 of issue 19: the source's stop word is kept verbatim, and nkpath's own stop
/// reason comes from the replies, never `reached` without a reply from the target.
#[test]
fn stop_reasons_are_nkpaths_and_the_sources_word_is_kept() {
    let Some(dir) = traceroute_dir() else { return };
    let mut db = Db::open_in_memory().unwrap();
    // Atlas records no stop reason: none is invented, and nkpath's follows the replies.
    for name in [
        "atlas.jsonl",
        "sagan_test_traceroute_results.jsonl",
        "test_traceroute_paths_from_ripe.json",
    ] {
        import(&mut db, &dir.join(name), Format::Atlas);
    }
    let traces = stored(&db);
    assert_eq!(traces.len(), 29);
    for t in &traces {
        assert_eq!(t.source_stop, None, "{}", t.agent_id);
        let answered = t.replies().any(|r| r.address == t.target);
        assert_eq!(
            t.stop_reason == StopReason::Reached,
            answered,
            "{} {}",
            t.agent_id,
            t.started_at
        );
        if !answered {
            // Each gave up after five silent hops, below Atlas's 32.
            assert_eq!(t.stop_reason, StopReason::GapLimit, "{}", t.agent_id);
            let silent = t
                .hops
                .iter()
                .rev()
                .take_while(|h| h.addresses().is_empty())
                .count();
            assert_eq!(silent, 5, "{}", t.agent_id);
        }
    }
    assert_eq!(
        traces
            .iter()
            .filter(|t| t.stop_reason == StopReason::Reached)
            .count(),
        6
    );

    if !have_warts2json() {
        return;
    }
    // scamper's own trace: "stop reason: done" in its text dump, COMPLETED in the JSON; the
    // target answered at TTL 7.
    let mut db = Db::open_in_memory().unwrap();
    import(
        &mut db,
        &dir.join("trace_google_dns_v4_default.warts"),
        Format::Scamper,
    );
    let traces = stored(&db);
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].source_stop.as_deref(), Some("COMPLETED"));
    assert_eq!(traces[0].stop_reason, StopReason::Reached);
}
