//! The rules that keep verdicts honest on real-world BGP data (issue 8): stale BGP, the
//! default route and thin prefixes in the hop-mapping table, an entry hop inside the target's
//! block, and ICMP semantics. Each test builds the BGP situation met in real files as an MRT
//! dump, stores traces as agents send them, and asserts the entry AS and the verdict.

mod common;

use std::net::Ipv4Addr;

use nkpath_collector::Db;
use nkpath_collector::analysis::ixp::IxpTable;
use nkpath_collector::analysis::{
    AnalysisOptions, Analyzer, Mapper, MemoryBgp, TraceAnalysis, VerdictKind,
};
use nkpath_collector::bgp::{AsPath, BgpState, PeerInfo};
use nkpath_collector::mrt::{self, LoadOptions};
use nkpath_collector::settings::Target;

use common::traces::{DUMP_TIME, Hop, db_with, trace};

fn analyze(db: &Db) -> Vec<TraceAnalysis> {
    let mapper = Mapper::new(IxpTable::default(), None);
    Analyzer::new(db, mapper, AnalysisOptions::default())
        .unwrap()
        .analyze_all(nkpath_collector::results::stored_traces(db, None, None).unwrap())
        .unwrap()
}

fn by_id(analyses: &[TraceAnalysis], id: u32) -> &TraceAnalysis {
    let want = format!("00000000-0000-4000-8000-{id:012}");
    analyses
        .iter()
        .find(|a| a.trace.result_id.to_string() == want)
        .unwrap()
}

/// NK's block behind China Unicom, seen by three peers, as in the real tables.
fn peers() -> [common::FixturePeer; 3] {
    [
        common::peer("10.0.0.1", 3356),
        common::peer("10.0.0.2", 1299),
        common::peer("10.0.0.3", 174),
    ]
}

const NK_ROUTES: [(&str, usize, &str); 6] = [
    ("175.45.176.0/22", 0, "3356 4837 131279"),
    ("175.45.176.0/22", 1, "1299 4837 131279"),
    ("175.45.176.0/22", 2, "174 4837 131279"),
    ("219.158.0.0/17", 0, "3356 4837"),
    ("219.158.0.0/17", 1, "1299 4837"),
    ("219.158.0.0/17", 2, "174 4837"),
];

fn routes_plus(
    extra: &[(&'static str, usize, &'static str)],
) -> Vec<(&'static str, usize, &'static str)> {
    NK_ROUTES.iter().chain(extra).copied().collect()
}

/// The usual way into NK: a China Unicom hop, then the target.
const VIA_UNICOM: [Hop; 2] = [(1, "219.158.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)];

#[test]
fn a_trace_ten_years_after_the_newest_bgp_data_is_unknown_stale_bgp() {
    let fresh = trace(1, 3600, "175.45.176.9", &VIA_UNICOM);
    let stale = trace(2, 10 * 365 * 86_400, "175.45.176.9", &VIA_UNICOM);
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &[fresh, stale]);
    let analyses = analyze(&db);
    let fresh = by_id(&analyses, 1);
    assert_eq!(fresh.verdict.kind, VerdictKind::Match);
    assert_eq!(fresh.bgp_age_s, Some(3600));
    let stale = by_id(&analyses, 2);
    assert_eq!(stale.entry.asn, Some(4837), "the data plane is still read");
    assert_eq!(stale.verdict.kind, VerdictKind::Unknown);
    assert!(
        stale.verdict.reason.starts_with("stale-bgp"),
        "{}",
        stale.verdict.reason
    );
    assert_eq!(stale.bgp_age_s, Some(10 * 365 * 86_400));
}

#[test]
fn traces_judged_with_stale_bgp_count_apart_from_the_shares() {
    let fresh = trace(1, 3600, "175.45.176.9", &VIA_UNICOM);
    let stale = trace(2, 10 * 365 * 86_400, "175.45.177.9", &VIA_UNICOM);
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &[fresh, stale]);
    let analyses = analyze(&db);
    let (from, to) = (analyses[0].trace.started_at, analyses[1].trace.started_at);
    let tables = nkpath_collector::report::upstreams::report(
        &db,
        &analyses,
        nkpath_collector::report::upstreams::By::All,
        nkpath_collector::report::upstreams::Count::Traces,
        from,
        to,
    )
    .unwrap();
    let data = &tables[0];
    // Both traces enter through AS4837; only the one judged with fresh BGP is in the share.
    assert_eq!(data.column("entry_as"), ["AS4837"]);
    assert_eq!(
        (
            data.column("observed"),
            data.column("inferred"),
            data.column("total"),
            data.column("share"),
            data.column("stale")
        ),
        (
            vec!["1"],
            vec!["0"],
            vec!["1"],
            vec!["1/1 (100.0%)"],
            vec!["1"]
        )
    );
}

#[test]
fn a_default_route_never_maps_a_hop() {
    // A real 2015 RIS file announces 0.0.0.0/0 (here from AS3356): longest-prefix match over
    // every length made every uncovered hop AS3356, an entry AS no path supports.
    let routes = routes_plus(&[("0.0.0.0/0", 0, "3356")]);
    let hops = [
        (1, "219.158.1.1", 11, 0, 0),
        (2, "5.5.5.5", 11, 0, 0),
        (3, "175.45.176.9", 0, 0, 0),
    ];
    let (db, _dir) = db_with(&peers(), &routes, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    assert_eq!(
        a.hops[1].first().unwrap().class.kind(),
        "unmapped",
        "{:?}",
        a.hops[1]
    );
    assert_eq!((a.entry.asn, a.entry.inferred), (Some(4837), true));
    assert_eq!(a.verdict.kind, VerdictKind::Match);
}

#[test]
fn a_prefix_seen_by_one_peer_of_many_is_flagged_and_the_entry_inferred() {
    // 62.0.0.0/16 reaches the table through one peer only (a leak or an internal route).
    let routes = routes_plus(&[("62.0.0.0/16", 2, "174 4837")]);
    let hops = [(1, "62.0.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)];
    let (db, _dir) = db_with(&peers(), &routes, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    let note = a.hops[0].first().unwrap().mapping.as_ref().unwrap();
    assert_eq!((note.peers, note.peers_total, note.thin()), (1, 3, true));
    assert_eq!((a.entry.asn, a.entry.inferred), (Some(4837), true));
    assert!(
        a.entry
            .reasons
            .iter()
            .any(|r| r.contains("seen by 1 of 3 full-feed peers")),
        "{:?}",
        a.entry.reasons
    );
    // Three peers see the /17: no flag.
    let (db, _dir) = db_with(
        &peers(),
        &routes,
        &[trace(2, 60, "175.45.176.9", &VIA_UNICOM)],
    );
    let a = &analyze(&db)[0];
    assert!(!a.hops[0].first().unwrap().mapping.as_ref().unwrap().thin());
    assert!(!a.entry.inferred, "{:?}", a.entry.reasons);
}

#[test]
fn an_entry_hop_inside_the_target_block_is_ambiguous_not_a_match() {
    // China Unicom announces a more specific of NK's block (the border link's numbering).
    let routes = routes_plus(&[
        ("175.45.179.0/24", 0, "3356 4837"),
        ("175.45.179.0/24", 1, "1299 4837"),
        ("175.45.179.0/24", 2, "174 4837"),
    ]);
    let hops = [
        (1, "219.158.1.1", 11, 0, 0),
        (2, "175.45.179.1", 11, 0, 0),
        (3, "175.45.176.9", 0, 0, 0),
    ];
    let (db, _dir) = db_with(&peers(), &routes, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    assert_eq!(a.entry.asn, Some(4837));
    assert_eq!(a.entry.hop, Some((2, Ipv4Addr::new(175, 45, 179, 1))));
    assert_eq!(a.verdict.kind, VerdictKind::Ambiguous, "{:?}", a.verdict);
    assert!(
        a.verdict.reason.starts_with("entry-in-target-block"),
        "{}",
        a.verdict.reason
    );
}

#[test]
fn admin_prohibited_before_the_target_means_entry_unknown_filtered() {
    // The trace ends with `!X` from China Unicom: it never entered the target AS.
    let hops = [(1, "5.5.5.5", 11, 0, 0), (2, "219.158.1.1", 3, 13, 0)];
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    assert_eq!(a.entry.asn, None);
    assert!(
        a.entry.reasons[0].starts_with("filtered-in AS4837"),
        "{:?}",
        a.entry.reasons
    );
    assert_eq!(a.verdict.kind, VerdictKind::Unknown);
}

#[test]
fn an_mpls_tunnel_at_the_border_makes_the_entry_inferred() {
    let hops = [(1, "219.158.1.1", 11, 0, 2), (2, "175.45.176.9", 0, 0, 0)];
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    assert_eq!((a.entry.asn, a.entry.inferred), (Some(4837), true));
    assert!(
        a.entry.reasons.iter().any(|r| r.contains("MPLS")),
        "{:?}",
        a.entry.reasons
    );
}

fn upstreams_report(db: &Db, analyses: &[TraceAnalysis]) -> Vec<nkpath_collector::report::Table> {
    use nkpath_collector::report::upstreams::{By, Count, bgp_period, report};
    let (from, to) = bgp_period(db).unwrap().unwrap();
    let to = to + time::Duration::days(1);
    report(db, analyses, By::All, Count::Traces, from, to).unwrap()
}

#[test]
fn unknown_entries_are_not_counted_as_observed() {
    let filtered = [(1, "219.158.1.1", 3, 13, 0)];
    let traces = [
        trace(1, 60, "175.45.176.9", &VIA_UNICOM),
        trace(2, 60, "175.45.176.10", &filtered),
    ];
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &traces);
    let tables = upstreams_report(&db, &analyze(&db));
    let data = &tables[0];
    let row = |entry: &str| {
        data.rows
            .iter()
            .find(|r| r[2] == entry)
            .unwrap_or_else(|| panic!("no {entry} row: {:?}", data.rows))
            .clone()
    };
    let unicom = row("AS4837");
    assert_eq!(
        (unicom[3].as_str(), unicom[4].as_str(), unicom[5].as_str()),
        ("1", "0", "1")
    );
    let unknown = row("unknown");
    assert_eq!(
        (
            unknown[3].as_str(),
            unknown[4].as_str(),
            unknown[5].as_str()
        ),
        ("-", "-", "1")
    );
    assert!(data.column("source").iter().all(|s| *s == "agents"));
}

/// Issue 19: only the first reply of a TTL counted. When routers of China Unicom and of
/// TransTeleCom both answer the TTL before NK (the probes split between two borders), the
/// trace was a clean `match` through whichever answered first; now both count, nothing is
/// claimed, and every report says why.
#[test]
fn two_ases_answering_the_entry_ttl_are_ambiguous_not_a_match() {
    let routes = routes_plus(&[
        ("188.43.0.0/16", 0, "3356 20485"),
        ("188.43.0.0/16", 1, "1299 20485"),
        ("188.43.0.0/16", 2, "174 20485"),
    ]);
    let split = [
        (1, "219.158.1.1", 11, 0, 0),
        (1, "188.43.225.153", 11, 0, 0),
        (2, "175.45.176.9", 0, 0, 0),
    ];
    let traces = [
        trace(1, 60, "175.45.176.9", &split),
        trace(2, 60, "175.45.176.10", &VIA_UNICOM),
    ];
    let (db, _dir) = db_with(&peers(), &routes, &traces);
    let analyses = analyze(&db);
    let a = by_id(&analyses, 1);
    assert_eq!(a.entry.asn, None, "{:?}", a.entry);
    assert_eq!(
        a.verdict.kind,
        VerdictKind::Ambiguous,
        "{}",
        a.verdict.reason
    );
    assert_eq!(
        a.verdict.reason,
        "several-entry-ases (TTL 1 replied from AS4837 at 219.158.1.1 (announced), AS20485 \
         at 188.43.225.153: no single entry AS)"
    );
    assert_eq!(by_id(&analyses, 2).verdict.kind, VerdictKind::Match);

    let mismatches = &nkpath_collector::report::mismatches::report(&analyses)[0];
    assert_eq!(mismatches.rows.len(), 1, "{:?}", mismatches.rows);
    assert_eq!(
        mismatches.column("entry_hop"),
        ["TTL 1 219.158.1.1 (AS4837), 188.43.225.153 (AS20485)"]
    );
    assert_eq!(
        mismatches.column("entry_as"),
        ["AS4837 or AS20485 (several at TTL 1)"]
    );
    // In the shares it is no entry through China Unicom.
    let data = &upstreams_report(&db, &analyses)[0];
    let totals: Vec<(&str, &str)> = data
        .column("entry_as")
        .into_iter()
        .zip(data.column("total"))
        .collect();
    assert_eq!(totals, [("unknown", "1"), ("AS4837", "1")]);
}

#[test]
fn the_control_plane_shows_with_bgp_data_and_no_traces() {
    let (db, _dir) = db_with(&peers(), &NK_ROUTES, &[]);
    let tables = upstreams_report(&db, &[]);
    assert!(tables[0].rows.is_empty());
    let cp = &tables[1];
    assert_eq!(cp.rows.len(), 1, "{:?}", cp.rows);
    assert_eq!(cp.rows[0][1], "175.45.176.0/22");
    assert_eq!(cp.rows[0][2], "AS4837");
    assert!(cp.rows[0][4].starts_with("3/3"), "{:?}", cp.rows[0]);
}

/// A database holding one real RIB dump (cut files accepted) under `collector`, and its BGP
/// state `after_dump_s` seconds after the dump.
fn real_rib_state(
    file: &std::path::Path,
    collector: &str,
    after_dump_s: i64,
) -> (Db, nkpath_collector::bgp::BgpState, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path().join("c.db")).unwrap();
    let options = LoadOptions {
        collector: Some(collector.into()),
        accept_truncated: true,
        ..LoadOptions::default()
    };
    mrt::load_file(&mut db, file, &options, None).unwrap();
    let dump_time: i64 = db
        .sql_for_tests()
        .query_row("SELECT dump_time FROM mrt_files", [], |r| r.get(0))
        .unwrap();
    let state = nkpath_collector::bgp::BgpState::at(
        &db,
        time::OffsetDateTime::from_unix_timestamp(dump_time + after_dump_s).unwrap(),
    )
    .unwrap()
    .unwrap();
    (db, state, tmp)
}

#[test]
fn thin_prefixes_are_judged_against_full_feed_peers_of_a_real_dump() {
    // The 2002 RIS dump has 36 peers, of which few give a full table: most prefixes are
    // seen by one peer. Counting all 36 would flag nearly every hop.
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let (db, state, _tmp) = real_rib_state(&dir.join("bview.20020722.2337.gz"), "rrc00", 3600);
    let peers: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM peers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(peers, 36);
    let full = state.peers_total();
    assert!((1..=3).contains(&full), "{full} full-feed peers of 36");
    // 3.0.0.0/8 (AS80 at the time) is in the full table.
    let m = state
        .lpm_within("3.1.2.3".parse().unwrap(), 8..=24)
        .unwrap();
    assert_eq!(m.prefix.to_string(), "3.0.0.0/8");
    assert_eq!(m.origins.into_iter().collect::<Vec<_>>(), [80]);
    let note = nkpath_collector::analysis::hopmap::MappingNote {
        prefix: m.prefix,
        peers: m.peers,
        peers_total: m.peers_total,
    };
    assert!(note.peers >= 1 && !note.thin(), "{note}");
}

#[test]
fn real_atlas_traces_are_counted_apart_from_agents() {
    use nkpath_collector::import::{Format, OutsideTargets, import_file};
    let Some(dir) = common::shared_data("traceroute") else {
        return;
    };
    let (mut db, _tmp) = db_with(
        &peers(),
        &NK_ROUTES,
        &[trace(1, 60, "175.45.176.9", &VIA_UNICOM)],
    );
    // The Atlas traces go to 84.205.77.1: a collector counts them only when its target
    // prefixes hold that address.
    db.put_setting("target_prefixes", "175.45.176.0/22,84.205.77.0/24")
        .unwrap();
    let summary = import_file(
        &mut db,
        &dir.join("atlas.jsonl"),
        Format::Atlas,
        OutsideTargets::Refuse,
    )
    .unwrap();
    assert_eq!(summary.stored, 14);
    let analyses = analyze(&db);
    assert_eq!(analyses.len(), 15);
    let atlas: Vec<&TraceAnalysis> = analyses
        .iter()
        .filter(|a| a.source_kind() == "atlas")
        .collect();
    assert_eq!(atlas.len(), 14);
    assert!(
        atlas
            .iter()
            .all(|a| a.trace.agent_id == "atlas:29792007/53023")
    );
    // The report counts them in rows of their own, never with the agent's trace.
    let data = &upstreams_report(&db, &analyses)[0];
    let sum = |source: &str, column: &str| -> usize {
        let i = data.columns.iter().position(|c| c == column).unwrap();
        data.rows
            .iter()
            .filter(|r| r[1] == source)
            .map(|r| r[i].parse::<usize>().unwrap())
            .sum()
    };
    // The Atlas traces of 2021 are judged against the 2015 dump: stale, counted apart.
    assert_eq!(
        (
            sum("agents", "total"),
            sum("atlas", "total"),
            sum("atlas", "stale")
        ),
        (1, 0, 14),
        "{:?}",
        data.rows
    );
}

#[test]
fn the_default_route_of_a_real_rib_maps_nothing() {
    // The real 2014 RouteViews RIB (cut after its first MB) carries 0.0.0.0/0 from a peer.
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let file = dir.join("rib.20140523.0600_firstMB.bz2");
    let (_db, state, _tmp) = real_rib_state(&file, "route-views2", 0);
    // The file's prefixes end at 12.167.138.0/24: 200.1.1.1 is covered by the default only.
    let addr: Ipv4Addr = "200.1.1.1".parse().unwrap();
    let (prefix, _) = state
        .origins_lpm(addr)
        .expect("the default route covers it");
    assert_eq!(prefix.to_string(), "0.0.0.0/0");
    assert!(state.lpm_within(addr, 8..=24).is_none());
    let mut mapper = Mapper::new(IxpTable::default(), None);
    let class = mapper.map(Some(&state), addr);
    assert_eq!(class.kind(), "unmapped", "{class}");
    // An address of a real /24 still maps.
    assert_eq!(
        mapper.map(Some(&state), "1.0.0.1".parse().unwrap()).asn(),
        Some(15169)
    );
}

#[test]
fn the_border_rule_sees_adjacencies_of_paths_away_from_the_target() {
    // As in a real 2015 file, AS5580 stands next to AS4837 only in paths to other prefixes.
    let routes = routes_plus(&[
        ("80.77.0.0/16", 0, "3356 5580"),
        ("80.77.0.0/16", 1, "1299 5580"),
        ("80.77.0.0/16", 2, "174 5580"),
        ("58.14.0.0/15", 0, "3356 5580 4837 17816"),
    ]);
    let hops = [(1, "80.77.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)];
    let (db, _dir) = db_with(&peers(), &routes, &[trace(1, 60, "175.45.176.9", &hops)]);
    let a = &analyze(&db)[0];
    assert_eq!((a.entry.asn, a.entry.inferred), (Some(5580), false));
    assert_eq!(a.verdict.kind, VerdictKind::Ambiguous, "{:?}", a.verdict);
    assert!(
        a.verdict.reason.starts_with("border"),
        "{}",
        a.verdict.reason
    );
}

/// The same RIB held in memory ([`BgpState::from_rib`]) instead of loaded into a database.
fn memory_bgp(peers: &[common::FixturePeer], routes: &[(&str, usize, &str)]) -> MemoryBgp {
    let infos: Vec<PeerInfo> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| PeerInfo {
            id: i as i64,
            collector: "rrc00".into(),
            collector_id: 0,
            index: i as u32,
            address: p.ip.into(),
            asn: p.asn,
        })
        .collect();
    let rib = routes.iter().map(|(prefix, peer, path)| {
        let asns: Vec<u32> = path
            .split_whitespace()
            .map(|a| a.parse().unwrap())
            .collect();
        (
            &infos[*peer],
            prefix.parse().unwrap(),
            AsPath::from_sequence(&asns),
        )
    });
    let state = BgpState::from_rib(i64::from(DUMP_TIME), Target::default(), "rrc00", rib);
    MemoryBgp::new(Target::default().asn).with_state(state)
}

/// What a user reads of an analysis: hops, entry, announced set, verdict.
fn outcome(a: &TraceAnalysis) -> String {
    format!(
        "{:?}\n{:?} {:?} {:?}\n{:?}\n{:?} {:?}",
        a.hops, a.entry, a.agent_asn, a.data_path, a.announced, a.verdict, a.bgp_age_s
    )
}

#[test]
fn the_analysis_reads_the_same_from_memory_as_from_the_database() {
    // Every situation of this file's tests, analysed over the stored dump and over the same
    // routes in memory: the analysis core must not depend on where BGP data comes from.
    let in_block = [
        ("175.45.179.0/24", 0, "3356 4837"),
        ("175.45.179.0/24", 1, "1299 4837"),
        ("175.45.179.0/24", 2, "174 4837"),
    ];
    let tables = [
        routes_plus(&[]),
        routes_plus(&[("0.0.0.0/0", 0, "3356")]),
        routes_plus(&[("62.0.0.0/16", 2, "174 4837")]),
        routes_plus(&in_block),
    ];
    let hop_lists: [&[Hop]; 6] = [
        &VIA_UNICOM,
        &[
            (1, "219.158.1.1", 11, 0, 0),
            (2, "5.5.5.5", 11, 0, 0),
            (3, "175.45.176.9", 0, 0, 0),
        ],
        &[(1, "62.0.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)],
        &[
            (1, "219.158.1.1", 11, 0, 0),
            (2, "175.45.179.1", 11, 0, 0),
            (3, "175.45.176.9", 0, 0, 0),
        ],
        &[(1, "5.5.5.5", 11, 0, 0), (2, "219.158.1.1", 3, 13, 0)],
        &[(1, "219.158.1.1", 11, 0, 2), (2, "175.45.176.9", 0, 0, 0)],
    ];
    let traces: Vec<String> = hop_lists
        .iter()
        .zip(1..)
        .flat_map(|(hops, id)| {
            [
                trace(id, 60, "175.45.176.9", hops),
                trace(100 + id, 10 * 365 * 86_400, "175.45.176.9", hops),
                trace(200 + id, -60, "175.45.176.9", hops),
            ]
        })
        .collect();
    for routes in &tables {
        let (db, _dir) = db_with(&peers(), routes, &traces);
        let from_db = analyze(&db);
        let bgp = memory_bgp(&peers(), routes);
        let stored = nkpath_collector::results::stored_traces(&db, None, None).unwrap();
        let from_memory = Analyzer::new(
            &bgp,
            Mapper::new(IxpTable::default(), None),
            AnalysisOptions::default(),
        )
        .unwrap()
        .analyze_all(stored)
        .unwrap();
        assert_eq!(from_db.len(), traces.len());
        for (a, b) in from_db.iter().zip(&from_memory) {
            assert_eq!(outcome(a), outcome(b), "{}", a.trace.result_id);
        }
    }
}
