//! Verdicts, reports and exports on traces taken by the real agent in the emulated Internet
//! and BGP data from the testbed's route collector (rc, BIRD MRT dumps).
//!
//! Every expected value comes from the live testbed: announced sets and visibility from
//! `birdc show route all` on rc, entry ASes from the namespaces' routing tables
//! (`expected_trace`) and the manifest's node ASes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::analysis::{AnalysisOptions, Analyzer, Mapper, TraceAnalysis, VerdictKind};
use nkpath_collector::bgp::BgpState;
use nkpath_collector::bgp::timeline::{UpstreamChange, UpstreamChanges, upstream_changes};
use nkpath_collector::mrt::{self, LoadOptions};
use nkpath_collector::report;
use nkpath_proto::{FlowId, TraceResult};
use nkpath_testbed::{BirdRoute, FlowQuery, PathEnd, Testbed};

const VPS: [&str; 3] = ["devp", "jpvp", "usvp"];
const TARGETS: [&str; 4] = [
    "175.45.176.0/29",
    "175.45.177.0/29",
    "175.45.178.0/29",
    "175.45.179.0/29",
];

/// The agent binary, built by the same cargo, copied world-readable (the agent runs as
/// nobody through setpriv).
fn agent_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| nkpath_testbed::workspace_binary("nkpath-agent"))
}

/// Runs a survey of `targets` from `vp` (inside its namespace, as nobody with CAP_NET_RAW
/// only) and returns the JSONL text.
fn survey(tb: &Testbed, vp: &str, targets: &[&str]) -> String {
    let dir = tempfile::Builder::new()
        .prefix("nkpath-survey")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.path().join("survey.jsonl");
    let block = tb.manifest().target.prefix.to_string();
    let mut cmd = tb.command_as_nobody_with_net_raw(vp, agent_binary());
    cmd.args([
        "survey",
        "--agent-id",
        vp,
        "--allow",
        &block,
        "--pps",
        "200",
    ])
    .args(["--per-prefix-pps", "50", "--timeout", "1", "--out"])
    .arg(&out)
    .arg("--targets")
    .args(targets)
    .stdin(Stdio::null());
    let output = cmd.output().expect("spawn agent");
    assert!(
        output.status.success(),
        "survey from {vp} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read_to_string(&out).unwrap()
}

/// Loads every RIB dump of rc and a snapshot of its update file.
fn load_mrt(tb: &Testbed, db: &mut Db) {
    let options = LoadOptions {
        collector: Some("rc".into()),
        target: None,
        ..LoadOptions::default()
    };
    let mut files: Vec<PathBuf> = tb
        .rib_dumps()
        .unwrap()
        .iter()
        .map(|f| tb.mrt_snapshot(f).unwrap())
        .collect();
    files.push(tb.mrt_snapshot(&tb.updates_mrt()).unwrap());
    for f in files {
        if fs::metadata(&f).unwrap().len() == 0 {
            continue; // a dump BIRD has only just opened
        }
        mrt::load_file(db, &f, &options, None)
            .unwrap_or_else(|e| panic!("loading {}: {e}", f.display()));
    }
}

/// The announced-set changes within the transition window of `at` and after `since`
/// (UNIX seconds).
fn changes_after(db: &Db, since: i64, at: time::OffsetDateTime) -> Vec<UpstreamChange> {
    let window = time::Duration::seconds(AnalysisOptions::default().transition_window_s);
    upstream_changes(db, at - window, at + window)
        .unwrap()
        .changes
        .into_iter()
        .filter(|c| c.time > since)
        .collect()
}

/// The announced-set changes within the transition window of `at`, for failure messages.
fn changes_around(db: &Db, at: time::OffsetDateTime) -> String {
    let window = time::Duration::seconds(AnalysisOptions::default().transition_window_s);
    match upstream_changes(db, at - window, at + window) {
        Ok(c) => format!(
            "baseline at {:?}: {:?}\nchanges: {:#?}",
            c.baseline_time, c.baseline, c.changes
        ),
        Err(e) => format!("changes unreadable: {e}"),
    }
}

fn analyze(db: &Db) -> Vec<TraceAnalysis> {
    Analyzer::new(db, Mapper::default(), AnalysisOptions::default())
        .unwrap()
        .analyze_all(nkpath_collector::results::stored_traces(db, None, None).unwrap())
        .unwrap()
}

/// What rc's routes say about the target's prefixes: prefix -> upstream -> peers, and the
/// number of peers with a route ending in the target AS.
struct RcView {
    routes: Vec<BirdRoute>,
    target_asn: u32,
}

impl RcView {
    fn new(tb: &Testbed) -> Self {
        Self {
            routes: tb.bird_routes("rc").unwrap(),
            target_asn: tb.manifest().target.asn,
        }
    }

    fn originated(&self, prefix: Ipv4Net) -> Vec<&BirdRoute> {
        self.routes
            .iter()
            .filter(|r| r.prefix == prefix && r.as_path.last() == Some(&self.target_asn))
            .collect()
    }

    fn upstreams(&self, prefix: Ipv4Net) -> BTreeMap<u32, usize> {
        let mut out = BTreeMap::new();
        for r in self.originated(prefix) {
            *out.entry(r.upstream_of_origin().unwrap()).or_default() += 1;
        }
        out
    }

    /// Target-AS prefixes covering `addr`, most specific first.
    fn covering(&self, addr: Ipv4Addr) -> Vec<Ipv4Net> {
        let mut p: Vec<Ipv4Net> = self
            .routes
            .iter()
            .filter(|r| r.prefix.contains(&addr) && r.as_path.last() == Some(&self.target_asn))
            .map(|r| r.prefix)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        p.sort_by_key(|p| std::cmp::Reverse(p.prefix_len()));
        p
    }

    fn adjacent(&self, a: u32, b: u32) -> bool {
        self.routes.iter().any(|r| {
            r.as_path
                .windows(2)
                .any(|w| (w[0] == a && w[1] == b) || (w[0] == b && w[1] == a))
        })
    }

    /// The verdict rc's routes imply for an entry AS.
    fn verdict(&self, target: Ipv4Addr, entry: u32) -> VerdictKind {
        let covering = self.covering(target);
        let sets: Vec<BTreeSet<u32>> = covering
            .iter()
            .map(|p| self.upstreams(*p).into_keys().collect())
            .collect();
        if sets[0].contains(&entry) {
            VerdictKind::Match
        } else if sets[1..].iter().any(|s| s.contains(&entry)) {
            VerdictKind::MatchCovering
        } else if sets[0].iter().any(|u| self.adjacent(entry, *u)) {
            VerdictKind::Ambiguous
        } else {
            VerdictKind::Mismatch
        }
    }
}

/// The entry AS the routing tables imply for a trace's flow: the AS of the last node before
/// the first node of the target AS on the forward path, and whether the target AS answers.
fn expected_entry(tb: &Testbed, trace: &TraceResult) -> (u32, bool) {
    let FlowId::Icmp { checksum, .. } = trace.flow else {
        panic!("the survey traces with ICMP");
    };
    let path = tb
        .expected_trace(
            &trace.agent_id,
            trace.target,
            &FlowQuery::icmp_echo(checksum),
        )
        .unwrap();
    let m = tb.manifest();
    let asn_of = |node: &str| m.node(node).unwrap().asn;
    let first_target = path
        .hops
        .iter()
        .position(|h| asn_of(&h.node) == m.target.asn)
        .expect("the path reaches the target AS");
    let entry = asn_of(&path.hops[first_target - 1].node);
    (entry, path.end == PathEnd::Reached)
}

/// Whether the trace ends with an administratively prohibited unreachable from an address
/// outside the target prefixes.
fn filtered_outside_target(trace: &TraceResult) -> bool {
    let Some(last) = trace.replies().last() else {
        return false;
    };
    let target: Ipv4Net = "175.45.176.0/22".parse().unwrap();
    last.icmp_type == Some(3)
        && matches!(last.icmp_code, Some(9 | 10 | 13))
        && !target.contains(&last.address)
}

struct Surveyed {
    _dir: tempfile::TempDir,
    db_path: PathBuf,
    rc: RcView,
}

/// The shared testbed surveyed once from every vantage point, with rc's MRT loaded.
fn surveyed() -> Option<&'static Surveyed> {
    static DONE: OnceLock<Option<Surveyed>> = OnceLock::new();
    DONE.get_or_init(|| {
        let tb = Testbed::shared()?;
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("nkpath.db");
        let mut db = Db::open(&db_path).unwrap();
        for vp in VPS {
            let jsonl = survey(tb, vp, &TARGETS);
            let report = db.import_results(jsonl.as_bytes()).unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            assert_eq!(report.stored, 4 * 8, "{vp}");
        }
        load_mrt(tb, &mut db);
        Some(Surveyed {
            _dir: dir,
            db_path,
            rc: RcView::new(tb),
        })
    })
    .as_ref()
}

#[test]
fn entry_as_and_verdict_follow_the_routing_tables() {
    let Some(s) = surveyed() else { return };
    let tb = Testbed::shared().unwrap();
    let db = Db::open(&s.db_path).unwrap();
    let analyses = analyze(&db);
    assert_eq!(analyses.len(), 3 * 4 * 8);
    let first_dump: i64 = db
        .sql_for_tests()
        .query_row(
            "SELECT min(dump_time) FROM mrt_files WHERE kind = 'rib'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let vp_asn = |vp: &str| tb.manifest().node(vp).unwrap().asn;
    let mut verdicts: BTreeMap<&str, BTreeSet<VerdictKind>> = BTreeMap::new();
    let mut filtered = 0;
    for a in &analyses {
        let t = &a.trace;
        let what = format!("{} -> {}: {:?}", t.agent_id, t.target, a.hops);
        let (entry, reached) = expected_entry(tb, t);
        if filtered_outside_target(t) {
            // nkbr rejects 175.45.179.0/24 with admin-prohibited from its address on the
            // upstream's side of the border link: the data cannot show that the probes
            // entered, so the entry is unknown and names the AS that address maps to.
            assert_eq!(a.entry.asn, None, "{what}");
            assert!(
                a.entry.reasons[0].starts_with(&format!("filtered-in AS{entry}")),
                "{what} {:?}",
                a.entry.reasons
            );
            assert_eq!(a.verdict.kind, VerdictKind::Unknown, "{what}");
            verdicts
                .entry(&t.agent_id)
                .or_default()
                .insert(a.verdict.kind);
            filtered += 1;
            continue;
        }
        assert_eq!(a.entry.asn, Some(entry), "{what}");
        assert_eq!(a.entry.inferred, !reached, "{what} {:?}", a.entry.reasons);
        assert_eq!(a.agent_asn, Some(vp_asn(&t.agent_id)), "{what}");
        // Announced set of the most specific prefix, as rc has it.
        let covering = s.rc.covering(t.target);
        let ann = a.announced_prefix().expect("announced");
        assert_eq!(ann.prefix, covering[0], "{what}");
        let want: BTreeSet<u32> = s.rc.upstreams(covering[0]).into_keys().collect();
        assert_eq!(ann.upstreams, want, "{what}");
        assert_eq!(a.verdict.kind, s.rc.verdict(t.target, entry), "{what}");
        // The traces run within the transition window of the testbed's start, and the
        // update file holds BGP's convergence after it (`up` takes the first RIB dump once
        // converged): a path explored then can show as an upstream change. Any change
        // after the first dump would be a real one, and there is none in the shared testbed.
        assert!(
            !a.transitional || changes_after(&db, first_dump, t.started_at).is_empty(),
            "no BGP change in the shared testbed after convergence: {what}\n{}",
            changes_around(&db, t.started_at)
        );
        verdicts
            .entry(&t.agent_id)
            .or_default()
            .insert(a.verdict.kind);
        // A collector peer in the agent's AS: its path is compared.
        let peer_route =
            s.rc.originated(ann.prefix)
                .into_iter()
                .find(|r| r.as_path.first() == a.agent_asn.as_ref());
        match (&a.peer_comparison, peer_route) {
            (Some(c), Some(r)) => assert_eq!(c.bgp_path, r.as_path, "{what}"),
            (None, None) => {}
            (c, r) => panic!("{what}: comparison {c:?} but rc route {r:?}"),
        }
    }
    assert_eq!(
        filtered,
        3 * 8,
        "every trace to the rejected /24 ends with !X"
    );
    // usvp goes through the side door: every trace of it is a mismatch, but those that
    // ended with !X, which are unknown.
    assert_eq!(
        verdicts["usvp"],
        BTreeSet::from([VerdictKind::Mismatch, VerdictKind::Unknown])
    );
    assert!(verdicts["devp"].contains(&VerdictKind::Match));
    assert!(verdicts["jpvp"].contains(&VerdictKind::Match));

    let tables = report::mismatches::report_each(&analyses);
    let agents = tables[0].column("agent");
    assert_eq!(
        agents.iter().filter(|a| **a == "usvp").count(),
        3 * 8,
        "every usvp trace but the filtered ones is listed"
    );
}

#[test]
fn announced_upstreams_and_visibility_per_prefix() {
    let Some(s) = surveyed() else { return };
    let tb = Testbed::shared().unwrap();
    let db = Db::open(&s.db_path).unwrap();
    let analyses = analyze(&db);
    let last = analyses.iter().map(|a| a.trace.started_at).max().unwrap();
    let state = BgpState::at(&db, last).unwrap().expect("BGP data");
    let mut single = BTreeMap::new();
    for prefix in &tb.manifest().target.announced {
        let rc = s.rc.upstreams(*prefix);
        let peers = s.rc.originated(*prefix).len();
        let got = state.announced_upstreams(*prefix);
        assert_eq!(got.peers_with_route, peers, "{prefix}");
        for (up, n) in &rc {
            let v = state.visibility(*prefix, *up);
            assert_eq!(
                (v.peers_via_upstream, v.peers_with_route),
                (*n, peers),
                "{prefix} AS{up}"
            );
        }
        assert_eq!(got.upstream_set(), rc.keys().copied().collect(), "{prefix}");
        if rc.len() == 1 {
            single.insert(*prefix, *rc.keys().next().unwrap());
        }
    }
    // 176.0/24 and 177.0/24 are behind one upstream each, and not the same one.
    let p176: Ipv4Net = "175.45.176.0/24".parse().unwrap();
    let p177: Ipv4Net = "175.45.177.0/24".parse().unwrap();
    assert!(
        single.contains_key(&p176) && single.contains_key(&p177),
        "{single:?}"
    );
    assert_ne!(single[&p176], single[&p177]);
    let upstreams: BTreeSet<u32> = single.values().copied().collect();
    assert_eq!(upstreams, BTreeSet::from([4837, 20485]));

    // The report shows them with that visibility, beside the data-plane shares.
    let (a, b) = (
        analyses.iter().map(|a| a.trace.started_at).min().unwrap(),
        last,
    );
    let tables = report::upstreams::report(
        &db,
        &analyses,
        report::upstreams::By::Prefix,
        report::upstreams::Count::Units,
        a,
        b,
    )
    .unwrap();
    let cp = &tables[1];
    for (prefix, up) in &single {
        let rows: Vec<&Vec<report::Cell>> = cp
            .rows
            .iter()
            .filter(|r| r[1] == prefix.to_string())
            .collect();
        assert_eq!(rows.len(), 1, "{prefix}: {rows:?}");
        assert_eq!(rows[0][2], format!("AS{up}"));
        let n = s.rc.originated(*prefix).len();
        assert_eq!(rows[0][3], "100.0", "mean_pct");
        assert!(rows[0][5].starts_with(&format!("{n}/{n}")), "{:?}", rows[0]);
    }
    // Data plane: one unit per (agent, /24, round) = 3 agents x 4 /24s, one round each.
    let dp = &tables[0];
    let total: usize = dp
        .column("total")
        .iter()
        .map(|v| v.parse::<usize>().unwrap())
        .sum();
    assert_eq!(total, 12);
    let text = report::render(&tables, report::Format::Table).unwrap();
    assert!(
        text.contains("units of (agent, target /24, round)"),
        "{text}"
    );
}

#[test]
fn export_loads_back_with_csv_and_python() {
    let Some(s) = surveyed() else { return };
    let db = Db::open(&s.db_path).unwrap();
    let analyses = analyze(&db);
    let out = tempfile::tempdir().unwrap();
    let summary = nkpath_collector::export::export(&db, &analyses, out.path()).unwrap();
    let traces: usize = db
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM results WHERE kind = 'trace'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let probes: usize = analyses
        .iter()
        .map(|a| a.trace.hops.iter().map(|h| h.probes.len()).sum::<usize>())
        .sum();
    let count_csv = |name: &str| {
        let mut r = csv::Reader::from_path(out.path().join(name)).unwrap();
        r.records().inspect(|r| assert!(r.is_ok(), "{r:?}")).count()
    };
    assert_eq!(count_csv("traces.csv"), traces);
    assert_eq!(count_csv("hops.csv"), probes);
    assert_eq!(count_csv("as_paths.csv"), traces);
    assert_eq!(count_csv("bgp_upstreams.csv"), summary.bgp_upstreams);
    assert!(summary.bgp_upstreams > 0);
    // as_paths carries the verdicts: usvp's rows are mismatches.
    let mut r = csv::Reader::from_path(out.path().join("as_paths.csv")).unwrap();
    let headers = r.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    for row in r.records().map(Result::unwrap) {
        if &row[col("agent_id")] == "usvp" && !row[col("target")].starts_with("175.45.179.") {
            assert_eq!(&row[col("verdict")], "mismatch");
        }
    }
    // Python's csv module reads the same rows.
    let script = "import csv, sys, os\n\
                  for n in ['traces.csv', 'hops.csv', 'as_paths.csv', 'bgp_upstreams.csv']:\n\
                  \x20   with open(os.path.join(sys.argv[1], n), newline='', encoding='utf-8') as f:\n\
                  \x20       print(n, len(list(csv.DictReader(f))))\n";
    let py = Command::new("python3")
        .args(["-c", script])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let got = String::from_utf8(py.stdout).unwrap();
    assert_eq!(
        got,
        format!(
            "traces.csv {traces}\nhops.csv {probes}\nas_paths.csv {traces}\nbgp_upstreams.csv {}\n",
            summary.bgp_upstreams
        )
    );
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.path().join("export.json")).unwrap()).unwrap();
    let files = meta["mrt_files"].as_array().unwrap();
    let loaded: usize = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM mrt_files", [], |r| r.get(0))
        .unwrap();
    assert_eq!(files.len(), loaded);
    assert!(
        files
            .iter()
            .all(|f| f["sha256"].as_str().unwrap().len() == 64)
    );
    assert_eq!(meta["probing_parameters"][0]["params"]["pps"], 200);
}

/// Polls `cond` every 200 ms for up to 60 s.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    wait_until(what, || {
        if cond() {
            Ok(())
        } else {
            Err("still false".into())
        }
    });
}

/// Polls `check` every 200 ms for up to 60 s; `check` says why it is not done yet, and a
/// timeout reports the last reason, the number of attempts and how long the last one took.
fn wait_until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let started = Instant::now();
    let deadline = started + Duration::from_mins(1);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = Instant::now();
        let Err(why) = check() else { return };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {attempts} attempts in {:.1?} (last took {:.1?}); \
             last state: {why}",
            started.elapsed(),
            attempt.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the database holds about `prefix`: loaded files, its RIB routes and updates, rc's
/// peer state changes, and the upstream changes computed over the whole span.
fn bgp_diagnosis(db: &Db, prefix: Ipv4Net, changes: &UpstreamChanges) -> String {
    use std::fmt::Write as _;
    let conn = db.sql_for_tests();
    let net = u32::from(prefix.network());
    let len = prefix.prefix_len();
    let mut out = String::new();
    let rows = |sql: &str, out: &mut String| {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params![net, len]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "-".to_string(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    other => format!("{other:?}"),
                })
                .collect();
            let _ = writeln!(out, "  {}", cells.join(" "));
        }
    };
    let _ = writeln!(out, "\nfiles (id name kind dump first last records):");
    rows(
        "SELECT id, name, kind, dump_time, first_time, last_time, records FROM mrt_files
         WHERE ?1 IS NOT NULL AND ?2 IS NOT NULL ORDER BY id",
        &mut out,
    );
    let _ = writeln!(out, "RIB routes of {prefix} (file peer path):");
    rows(
        "SELECT file_id, peer_id, as_path FROM rib_routes WHERE net = ?1 AND len = ?2
         ORDER BY file_id, peer_id",
        &mut out,
    );
    let _ = writeln!(
        out,
        "updates of {prefix} (time file seq peer path, - = withdrawn):"
    );
    rows(
        "SELECT time, file_id, seq, peer_id, as_path FROM bgp_updates
         WHERE net = ?1 AND len = ?2 ORDER BY file_id, seq",
        &mut out,
    );
    let _ = writeln!(out, "state changes (time file seq peer old new):");
    rows(
        "SELECT time, file_id, seq, peer_id, old_state, new_state FROM peer_state_changes
         WHERE ?1 IS NOT NULL AND ?2 IS NOT NULL ORDER BY file_id, seq",
        &mut out,
    );
    let _ = write!(out, "changes: {changes:?}");
    out
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_session_shut_and_restored_shows_in_changes_and_transitional_traces() {
    let Some(tb) = Testbed::private(nkpath_testbed::Options::default()) else {
        return;
    };
    let m = tb.manifest();
    // The session of nkbr to the upstream that alone carries some /24.
    let only_via = |n: &str| -> Vec<Ipv4Net> {
        let others: BTreeSet<Ipv4Net> = m
            .target
            .announced_to
            .iter()
            .filter(|(k, _)| *k != n)
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        m.target.announced_to[n]
            .iter()
            .filter(|p| !others.contains(p))
            .copied()
            .collect()
    };
    let neighbor = m
        .node("nkbr")
        .unwrap()
        .bgp_neighbors
        .iter()
        .find(|n| n.node == "ttk")
        .unwrap()
        .clone();
    let lost = only_via("ttk");
    assert_eq!(lost.len(), 1, "{lost:?}");
    let lost = lost[0];
    let probe_net = Ipv4Net::new(lost.network(), 30).unwrap().to_string();
    let target = lost.network();
    let vp = "devp";
    let entry_now = || {
        let flow = FlowQuery::icmp_echo(0x1234);
        let path = tb.expected_trace(vp, target, &flow).unwrap();
        let first = path
            .hops
            .iter()
            .position(|h| m.node(&h.node).unwrap().asn == m.target.asn);
        first.map(|i| m.node(&path.hops[i - 1].node).unwrap().asn)
    };
    let rc_has = |prefix: Ipv4Net| RcView::new(&tb).originated(prefix).len();
    let before_entry = entry_now().unwrap();
    let peers_before = rc_has(lost);
    assert!(peers_before > 0);

    let db_dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(db_dir.path().join("nkpath.db")).unwrap();
    let import = |db: &mut Db, jsonl: String| {
        assert!(db.import_results(jsonl.as_bytes()).unwrap().stored > 0);
    };
    import(&mut db, survey(&tb, vp, &[&probe_net]));

    let disabled_at = unix_now();
    tb.birdc("nkbr", &["disable", &neighbor.protocol]).unwrap();
    wait_for("rc to lose the prefix", || rc_has(lost) == 0);
    // MRT times have whole seconds, and the events of one second show as one change: the
    // re-announcement must come in a later second than the withdrawal rc has just logged.
    let lost_at = unix_now();
    wait_for("devp's path to change", || {
        entry_now().is_some_and(|e| e != before_entry)
    });
    let during_entry = entry_now().unwrap();
    import(&mut db, survey(&tb, vp, &[&probe_net]));

    while unix_now() <= lost_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let enabled_at = unix_now();
    tb.birdc("nkbr", &["enable", &neighbor.protocol]).unwrap();
    wait_for("rc to have the prefix back", || {
        rc_has(lost) == peers_before
    });
    wait_for("devp's path to come back", || {
        entry_now() == Some(before_entry)
    });
    import(&mut db, survey(&tb, vp, &[&probe_net]));
    // BIRD appends updates to its MRT file on its own schedule: reload until the file
    // holds the withdrawal and the re-announcement (poll, no fixed sleep).
    let jsonl: Vec<String> = {
        let mut stmt = db
            .sql_for_tests()
            .prepare("SELECT json FROM results ORDER BY started_at")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let whole_span = |db: &Db| {
        let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let (a, b) = nkpath_collector::bgp::timeline::loaded_span(db)
            .unwrap()
            .unwrap();
        upstream_changes(db, t(a), t(b)).unwrap()
    };
    let mut attempt = 0;
    wait_until("rc's update file to hold the session's changes", || {
        attempt += 1;
        db = Db::open(db_dir.path().join(format!("nkpath-{attempt}.db"))).unwrap();
        import(&mut db, jsonl.join("\n"));
        load_mrt(&tb, &mut db);
        let changes = whole_span(&db);
        if changes.of_prefix(lost).any(|c| c.appeared) {
            Ok(())
        } else {
            Err(format!(
                "session disabled at {disabled_at}, enabled at {enabled_at}, now {}; {}",
                unix_now(),
                bgp_diagnosis(&db, lost, &changes)
            ))
        }
    });

    let analyses = analyze(&db);
    assert_eq!(analyses.len(), 3 * 4);
    // Entry per round, in order: before, during, after.
    let mut by_round: Vec<(time::OffsetDateTime, BTreeSet<Option<u32>>, bool)> = Vec::new();
    let mut rounds: BTreeMap<String, (time::OffsetDateTime, BTreeSet<Option<u32>>, bool)> =
        BTreeMap::new();
    for a in &analyses {
        let r = rounds.entry(a.trace.round_id.to_string()).or_insert((
            a.trace.started_at,
            BTreeSet::new(),
            true,
        ));
        r.0 = r.0.min(a.trace.started_at);
        r.1.insert(a.entry.asn);
        r.2 &= a.transitional;
    }
    by_round.extend(rounds.into_values());
    by_round.sort_by_key(|r| r.0);
    let entries: Vec<_> = by_round.iter().map(|r| r.1.clone()).collect();
    assert_eq!(
        entries,
        vec![
            BTreeSet::from([Some(before_entry)]),
            BTreeSet::from([Some(during_entry)]),
            BTreeSet::from([Some(before_entry)])
        ]
    );
    assert!(
        by_round.iter().all(|r| r.2),
        "every trace is within 15 min of the change"
    );

    // BGP side: the upstream of the lost prefix disappeared and came back.
    let (a, b) = (
        by_round[0].0 - time::Duration::minutes(1),
        analyses.iter().map(|a| a.trace.started_at).max().unwrap() + time::Duration::minutes(1),
    );
    let changes = upstream_changes(&db, a, b).unwrap();
    // Changes before the session was disabled are the private testbed converging (rc's
    // first dump can be taken a second before the last routes arrive, on a loaded
    // machine): the session's own changes are the ones from the disable on.
    let of_lost: Vec<(bool, u32)> = changes
        .of_prefix(lost)
        .filter(|c| c.time + 1 >= disabled_at as i64)
        .map(|c| (c.appeared, c.upstream))
        .collect();
    assert_eq!(
        of_lost,
        vec![(false, neighbor.asn), (true, neighbor.asn)],
        "{changes:?}"
    );

    let tables = report::changes::report(&changes, &analyses);
    let t = &tables[0];
    let rows: Vec<(String, String, String)> = t
        .rows
        .iter()
        .map(|r| (r[1].to_string(), r[2].to_string(), r[3].to_string()))
        .collect();
    let net24 = Ipv4Net::new(target, 24).unwrap().trunc();
    for want in [
        (
            "bgp".to_owned(),
            lost.to_string(),
            format!("-AS{}", neighbor.asn),
        ),
        (
            "bgp".to_owned(),
            lost.to_string(),
            format!("+AS{}", neighbor.asn),
        ),
        (
            "data".to_owned(),
            format!("{vp} {net24}"),
            format!("AS{before_entry} -> AS{during_entry}"),
        ),
        (
            "data".to_owned(),
            format!("{vp} {net24}"),
            format!("AS{during_entry} -> AS{before_entry}"),
        ),
    ] {
        assert!(rows.contains(&want), "{want:?} not in {rows:#?}");
    }
    drop(db);
    db_dir.close().unwrap();
}
