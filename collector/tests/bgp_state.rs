//! BGP state at a time t, upstreams, visibility and changes, from small MRT files written
//! with bgpkit-parser's encoder (see `common`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use bgpkit_parser::models::BgpState as FsmState;
use common::{FixturePeer, peer, rib, state_change, update};
use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::bgp::timeline::{upstream_changes, visibility_over};
use nkpath_collector::bgp::{BgpState, Visibility};
use nkpath_collector::mrt::{LoadOptions, LoadOutcome, load_file};
use time::OffsetDateTime;

const T0: u32 = 1_700_000_000;
const T1: u32 = T0 + 100;
const T2: u32 = T0 + 200;
const T3: u32 = T0 + 300;
const T4: u32 = T0 + 400;
const T5: u32 = T0 + 500;
const T6: u32 = T0 + 600;

const NK22: &str = "175.45.176.0/22";
const NK177: &str = "175.45.177.0/24";

fn at(t: u32) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::from(t)).unwrap()
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn peers() -> Vec<FixturePeer> {
    vec![
        peer("10.0.0.1", 3356),
        peer("10.0.0.2", 1299),
        peer("10.0.0.3", 174),
        peer("10.0.0.4", 6939),
        peer("10.0.0.5", 2914),
    ]
}

fn rib1() -> Vec<u8> {
    rib(
        T1,
        &peers(),
        &[
            (NK22, 0, "3356 4837 131279"),
            (NK22, 1, "1299 20485 20485 131279"),
            (NK22, 2, "174 4837 4837 131279"),
            (NK22, 3, "6939 {4837,20485} 131279"),
            (NK22, 4, "2914 4837 64512 131279"),
            (NK177, 1, "1299 20485 131279"),
            ("219.158.0.0/17", 0, "3356 4837"),
            ("219.158.0.0/17", 1, "1299 4837"),
            ("219.158.1.0/24", 0, "3356 4837 9929"),
        ],
    )
}

fn rib6() -> Vec<u8> {
    rib(
        T6,
        &peers(),
        &[(NK22, 0, "3356 4837 131279"), (NK22, 1, "1299 4837 131279")],
    )
}

fn updates() -> Vec<u8> {
    let p = peers();
    let mut out = Vec::new();
    // Before any dump: must not create state.
    out.extend(update(T0 + 50, p[1], &["198.18.0.0/15"], "1299 64501", &[]));
    // Same second as the dump, received before it was taken: replayed after the dump, it
    // repeats what the dump holds.
    out.extend(update(T1, p[0], &[NK22], "3356 4837 131279", &[]));
    out.extend(update(T2, p[0], &[NK22], "3356 20485 131279", &[]));
    out.extend(state_change(
        T3,
        p[2],
        FsmState::Established,
        FsmState::Idle,
    ));
    out.extend(update(T4, p[1], &[], "", &["219.158.0.0/17"]));
    out.extend(update(T4, p[0], &[], "", &["219.158.1.0/24"]));
    out.extend(update(T4, p[3], &["192.0.2.0/24"], "6939 64500", &[]));
    out.extend(state_change(
        T5,
        p[2],
        FsmState::OpenConfirm,
        FsmState::Established,
    ));
    out.extend(update(T5, p[2], &[NK22], "174 4837 131279", &[]));
    out
}

struct Files {
    _dir: tempfile::TempDir,
    paths: BTreeMap<&'static str, PathBuf>,
}

fn write_files(files: &[(&'static str, Vec<u8>)]) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = BTreeMap::new();
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        paths.insert(*name, path);
    }
    Files { _dir: dir, paths }
}

fn load(db: &mut Db, path: &Path, collector: &str) -> LoadOutcome {
    let options = LoadOptions {
        collector: Some(collector.to_string()),
        target: None,
        ..LoadOptions::default()
    };
    load_file(db, path, &options, None).unwrap_or_else(|e| panic!("{e}"))
}

fn scenario_a() -> (Db, Files) {
    let files = write_files(&[("rib1", rib1()), ("updates", updates()), ("rib6", rib6())]);
    let mut db = Db::open_in_memory().unwrap();
    for name in ["rib1", "updates", "rib6"] {
        assert!(matches!(
            load(&mut db, &files.paths[name], "rc"),
            LoadOutcome::Loaded(_)
        ));
    }
    (db, files)
}

fn vis(n: usize, d: usize) -> Visibility {
    Visibility {
        peers_via_upstream: n,
        peers_with_route: d,
    }
}

#[test]
fn no_bgp_data_before_the_first_dump() {
    let (db, _files) = scenario_a();
    assert!(BgpState::at(&db, at(T0)).unwrap().is_none());
    assert!(
        BgpState::at(&db, at(T1 - 1)).unwrap().is_none(),
        "never from a later snapshot"
    );
    let empty = Db::open_in_memory().unwrap();
    assert!(BgpState::at(&empty, at(T6)).unwrap().is_none());
    assert!(BgpState::at(&db, at(T1)).unwrap().is_some());
}

#[test]
fn upstreams_at_dump_time() {
    let (db, _files) = scenario_a();
    let state = BgpState::at(&db, at(T1)).unwrap().unwrap();
    assert_eq!(state.sources().len(), 1);
    assert_eq!(state.sources()[0].dump_file.as_deref(), Some("rib1"));
    assert_eq!(
        state.sources()[0].events_replayed,
        1,
        "the dump's own second"
    );
    let a = state.announced_upstreams(net(NK22));
    assert_eq!(a.peers_with_route, 5);
    assert_eq!(a.upstreams, BTreeMap::from([(4837, 3), (20485, 1)]));
    assert_eq!(a.as_sets, BTreeMap::from([(vec![4837, 20485], 1)]));
    assert_eq!(a.skipped_private, 1);
    assert_eq!(state.visibility(net(NK22), 4837), vis(3, 5));
    assert_eq!(state.visibility(net(NK177), 20485), vis(1, 1));
    assert_eq!(state.target_prefixes(), vec![net(NK22), net(NK177)]);
    let routes = state.routes(net(NK22));
    assert_eq!(routes.len(), 5);
    assert!(
        routes
            .iter()
            .any(|r| r.peer.asn == 6939 && r.path.to_string() == "6939 {4837,20485} 131279")
    );
    // Non-target prefixes keep no paths.
    assert!(state.routes(net("219.158.0.0/17")).is_empty());
}

#[test]
fn updates_replay_and_session_down_withdraws() {
    let (db, _files) = scenario_a();
    let v = |t| {
        BgpState::at(&db, at(t))
            .unwrap()
            .unwrap()
            .visibility(net(NK22), 4837)
    };
    let v20485 = |t| {
        BgpState::at(&db, at(t))
            .unwrap()
            .unwrap()
            .visibility(net(NK22), 20485)
    };
    assert_eq!(v(T2 - 1), vis(3, 5));
    assert_eq!(
        (v(T2), v20485(T2)),
        (vis(2, 5), vis(2, 5)),
        "peer 3356 moved to 20485"
    );
    // AS174's session went down at T3: its route is gone.
    assert_eq!((v(T3), v20485(T3)), (vis(1, 4), vis(2, 4)));
    let state = BgpState::at(&db, at(T3)).unwrap().unwrap();
    assert!(state.routes(net(NK22)).iter().all(|r| r.peer.asn != 174));
    assert_eq!(state.sources()[0].events_replayed, 3);
    // It came back and announced again at T5.
    assert_eq!(v(T5), vis(2, 5));
    // The second dump replaces everything replayed before it.
    assert_eq!((v(T6), v20485(T6)), (vis(2, 2), vis(0, 2)));
    assert!(
        BgpState::at(&db, at(T6))
            .unwrap()
            .unwrap()
            .routes(net(NK177))
            .is_empty()
    );
}

#[test]
fn longest_prefix_match_follows_the_same_state() {
    let (db, _files) = scenario_a();
    let lpm = |t, addr: &str| {
        BgpState::at(&db, at(t))
            .unwrap()
            .unwrap()
            .origins_lpm(addr.parse().unwrap())
    };
    let some = |p: &str, o: &[u32]| Some((net(p), o.iter().copied().collect::<BTreeSet<u32>>()));
    assert_eq!(lpm(T1, "219.158.1.7"), some("219.158.1.0/24", &[9929]));
    assert_eq!(lpm(T1, "219.158.2.1"), some("219.158.0.0/17", &[4837]));
    assert_eq!(lpm(T1, "175.45.176.71"), some(NK22, &[131_279]));
    assert_eq!(lpm(T1, "175.45.177.1"), some(NK177, &[131_279]));
    assert_eq!(lpm(T1, "8.8.8.8"), None);
    assert_eq!(
        lpm(T1, "198.18.0.1"),
        None,
        "update before the first dump is not state"
    );
    assert_eq!(lpm(T1, "192.0.2.1"), None);
    // At T4 3356 withdrew the /24 and 1299 the /17: 3356 still has the /17.
    assert_eq!(lpm(T4, "219.158.1.7"), some("219.158.0.0/17", &[4837]));
    assert_eq!(lpm(T4, "192.0.2.1"), some("192.0.2.0/24", &[64500]));
    assert_eq!(lpm(T4 - 1, "192.0.2.1"), None);
    // The second dump has only the /22.
    assert_eq!(lpm(T6, "219.158.1.7"), None);
    assert_eq!(lpm(T6, "175.45.177.1"), some(NK22, &[131_279]));
}

#[test]
fn visibility_over_a_period_is_time_weighted() {
    let (db, _files) = scenario_a();
    let v = visibility_over(&db, net(NK22), 4837, at(T0), at(T6 + 100)).unwrap();
    // [T0,T1) no data; then 3/5, 2/5, 1/4 (T3..T5), 2/5, 2/2 for 100, 100, 200, 100, 100 s.
    assert_eq!(
        v.segments,
        vec![
            (i64::from(T0), None),
            (i64::from(T1), Some(vis(3, 5))),
            (i64::from(T2), Some(vis(2, 5))),
            (i64::from(T3), Some(vis(1, 4))),
            (i64::from(T5), Some(vis(2, 5))),
            (i64::from(T6), Some(vis(2, 2))),
        ]
    );
    assert_eq!(v.covered_seconds, 600);
    let expected = (0.6 * 100.0 + 0.4 * 100.0 + 0.25 * 200.0 + 0.4 * 100.0 + 1.0 * 100.0) / 600.0;
    assert!((v.mean.unwrap() - expected).abs() < 1e-12, "{v:?}");
    assert_eq!(v.min, Some(vis(1, 4)));
    assert_eq!(v.max, Some(vis(2, 2)));
    // A period entirely before the data.
    let none = visibility_over(&db, net(NK22), 4837, at(T0), at(T1 - 1)).unwrap();
    assert_eq!((none.mean, none.covered_seconds), (None, 0));
}

#[test]
fn upstream_changes_from_dumps_and_updates() {
    let (db, _files) = scenario_a();
    let c = upstream_changes(&db, at(T0), at(T6 + 100)).unwrap();
    assert_eq!(c.baseline_time, Some(i64::from(T1)));
    assert_eq!(
        c.baseline,
        BTreeMap::from([
            (net(NK22), BTreeSet::from([4837, 20485])),
            (net(NK177), BTreeSet::from([20485])),
        ])
    );
    let got: Vec<(i64, Ipv4Net, u32, bool)> = c
        .changes
        .iter()
        .map(|x| (x.time, x.prefix, x.upstream, x.appeared))
        .collect();
    assert_eq!(
        got,
        vec![
            (i64::from(T6), net(NK22), 20485, false),
            (i64::from(T6), net(NK177), 20485, false)
        ]
    );
    // A window starting mid-way: baseline at its start, with the replayed updates.
    let c = upstream_changes(&db, at(T3), at(T5)).unwrap();
    assert_eq!(c.baseline_time, Some(i64::from(T3)));
    assert!(c.changes.is_empty());
}

#[test]
fn upstream_appearing_through_an_update_is_a_change() {
    let p = peers();
    let dump = rib(T1, &p, &[(NK22, 0, "3356 4837 131279")]);
    let mut ups = update(T2, p[1], &[NK22], "1299 20485 131279", &[]);
    ups.extend(state_change(
        T3,
        p[1],
        FsmState::Established,
        FsmState::Active,
    ));
    let files = write_files(&[("rib", dump), ("upd", ups)]);
    let mut db = Db::open_in_memory().unwrap();
    load(&mut db, &files.paths["rib"], "rc");
    load(&mut db, &files.paths["upd"], "rc");
    let c = upstream_changes(&db, at(T1), at(T4)).unwrap();
    let got: Vec<(i64, u32, bool, usize, usize)> = c
        .changes
        .iter()
        .map(|x| {
            (
                x.time,
                x.upstream,
                x.appeared,
                x.peers_via_upstream,
                x.peers_with_route,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (i64::from(T2), 20485, true, 1, 2),
            (i64::from(T3), 20485, false, 0, 1)
        ]
    );
}

/// A session that goes down in the very second of a dump taken just before, and comes back
/// before the next dump (as when rc dumps right before a test shuts nkbr's session to TTK):
/// the withdrawals stamped with the dump's second are replayed after it, so the upstream is
/// seen to disappear and to come back.
#[test]
fn updates_in_the_dumps_own_second_are_replayed_after_it() {
    let p = peers();
    let path = |first: u32| format!("{first} 20485 131279");
    let dump = rib(
        T1,
        &p,
        &[
            (NK22, 0, "3356 4837 131279"),
            (NK177, 0, &path(3356)),
            (NK177, 1, &path(1299)),
        ],
    );
    let mut ups = Vec::new();
    // Received after the dump was taken: both peers lose the /24.
    ups.extend(update(T1, p[0], &[], "", &[NK177]));
    ups.extend(update(T1, p[1], &[], "", &[NK177]));
    // Back before the next dump.
    ups.extend(update(T1 + 2, p[1], &[NK177], &path(1299), &[]));
    ups.extend(update(T1 + 2, p[0], &[NK177], &path(3356), &[]));
    let next = rib(
        T1 + 10,
        &p,
        &[
            (NK22, 0, "3356 4837 131279"),
            (NK177, 0, &path(3356)),
            (NK177, 1, &path(1299)),
        ],
    );
    let files = write_files(&[("rib", dump), ("upd", ups), ("next", next)]);
    let mut db = Db::open_in_memory().unwrap();
    for name in ["rib", "upd", "next"] {
        load(&mut db, &files.paths[name], "rc");
    }

    let c = upstream_changes(&db, at(T1), at(T1 + 20)).unwrap();
    assert_eq!(c.baseline_time, Some(i64::from(T1)));
    assert_eq!(
        c.baseline.get(&net(NK177)),
        None,
        "at the end of T1 the /24 is gone: {c:?}"
    );
    let got: Vec<(i64, Ipv4Net, u32, bool)> = c
        .changes
        .iter()
        .map(|x| (x.time, x.prefix, x.upstream, x.appeared))
        .collect();
    assert_eq!(got, vec![(i64::from(T1 + 2), net(NK177), 20485, true)]);
    // Seen from before the dump, the disappearance is a change too.
    let c = upstream_changes(&db, at(T1 - 1), at(T1 + 20)).unwrap();
    let got: Vec<(i64, u32, bool)> = c
        .changes
        .iter()
        .filter(|x| x.prefix == net(NK177))
        .map(|x| (x.time, x.upstream, x.appeared))
        .collect();
    assert_eq!(
        got,
        vec![
            (i64::from(T1), 20485, false),
            (i64::from(T1 + 2), 20485, true)
        ]
    );

    let routes = |t| {
        BgpState::at(&db, at(t))
            .unwrap()
            .unwrap()
            .routes(net(NK177))
            .len()
    };
    assert_eq!((routes(T1), routes(T1 + 1), routes(T1 + 2)), (0, 0, 2));
    assert_eq!(routes(T1 + 10), 2);
}

/// What a database answers at a list of times: the NK upstreams and a few LPMs.
fn observations(db: &Db) -> Vec<String> {
    let times = [
        T0,
        T1 - 1,
        T1,
        T2,
        T3,
        T0 + 349,
        T0 + 350,
        T0 + 351,
        T4,
        T5,
        T6,
        T6 + 50,
    ];
    let addrs = [
        "175.45.176.71",
        "175.45.177.1",
        "219.158.1.7",
        "219.158.2.1",
        "192.0.2.1",
    ];
    times
        .iter()
        .map(|t| match BgpState::at(db, at(*t)).unwrap() {
            None => format!("{t}: no data"),
            Some(s) => {
                let lpm: Vec<_> = addrs
                    .iter()
                    .map(|a| s.origins_lpm(a.parse().unwrap()))
                    .collect();
                // File ids depend on the load order: name the dumps by file name.
                let sources: Vec<_> = s
                    .sources()
                    .iter()
                    .map(|x| (&x.collector, &x.dump_file, x.dump_time, x.events_replayed))
                    .collect();
                format!(
                    "{t}: {:?} {sources:?} {lpm:?}",
                    s.announced_upstreams(net(NK22))
                )
            }
        })
        .collect()
}

#[test]
fn dumps_loaded_in_any_order_give_the_same_state() {
    let mid = rib(
        T0 + 350,
        &peers(),
        &[
            (NK22, 0, "3356 4837 131279"),
            ("219.158.1.0/24", 0, "3356 4837 9929"),
        ],
    );
    let files = write_files(&[
        ("rib1", rib1()),
        ("mid", mid),
        ("rib6", rib6()),
        ("updates", updates()),
    ]);
    let orders: [[&str; 4]; 4] = [
        ["rib1", "mid", "rib6", "updates"],
        ["rib6", "rib1", "updates", "mid"],
        ["updates", "mid", "rib6", "rib1"],
        ["mid", "updates", "rib1", "rib6"],
    ];
    let mut results = Vec::new();
    for order in orders {
        let mut db = Db::open_in_memory().unwrap();
        for name in order {
            load(&mut db, &files.paths[name], "rc");
        }
        results.push((order, observations(&db)));
    }
    for (order, obs) in &results[1..] {
        assert_eq!(
            obs, &results[0].1,
            "load order {order:?} differs from {:?}",
            results[0].0
        );
    }
    // And the answers are the right ones: the mid dump drops the /17 from T0+350 on.
    let mut db = Db::open_in_memory().unwrap();
    for name in ["rib6", "mid", "rib1"] {
        load(&mut db, &files.paths[name], "rc");
    }
    let lpm = |t, a: &str| {
        BgpState::at(&db, at(t))
            .unwrap()
            .unwrap()
            .origins_lpm(a.parse().unwrap())
    };
    assert_eq!(
        lpm(T0 + 349, "219.158.2.1").map(|x| x.0),
        Some(net("219.158.0.0/17"))
    );
    assert_eq!(lpm(T0 + 350, "219.158.2.1"), None);
    assert_eq!(
        lpm(T0 + 350, "219.158.1.7").map(|x| x.0),
        Some(net("219.158.1.0/24"))
    );
    assert_eq!(lpm(T6, "219.158.1.7"), None);
    assert_eq!(lpm(T6 + 1000, "175.45.176.1").map(|x| x.0), Some(net(NK22)));
}

#[test]
fn collectors_are_replayed_separately() {
    let p = peers();
    let other = [peer("192.0.2.10", 7018)];
    let files = write_files(&[
        ("rib-a", rib(T1, &p, &[(NK22, 0, "3356 4837 131279")])),
        ("rib-b", rib(T3, &other, &[(NK22, 0, "7018 20485 131279")])),
        // An update of collector b's peer stamped before b's dump: no effect.
        ("upd-b", update(T2, other[0], &[], "", &[NK22])),
    ]);
    let mut db = Db::open_in_memory().unwrap();
    load(&mut db, &files.paths["rib-a"], "a");
    load(&mut db, &files.paths["rib-b"], "b");
    load(&mut db, &files.paths["upd-b"], "b");
    let s = BgpState::at(&db, at(T2)).unwrap().unwrap();
    assert_eq!(s.sources().len(), 1, "collector b has no dump yet");
    assert_eq!(
        s.announced_upstreams(net(NK22)).upstream_set(),
        BTreeSet::from([4837])
    );
    let s = BgpState::at(&db, at(T3)).unwrap().unwrap();
    assert_eq!(
        s.sources()
            .iter()
            .map(|x| x.collector.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(s.visibility(net(NK22), 20485), vis(1, 2));
    // Over time: b joins at its dump; its earlier withdrawal never counts.
    let v = visibility_over(&db, net(NK22), 20485, at(T1), at(T4)).unwrap();
    assert_eq!(
        v.segments,
        vec![
            (i64::from(T1), Some(vis(0, 1))),
            (i64::from(T3), Some(vis(1, 2)))
        ]
    );
}

#[test]
fn same_file_twice_is_skipped_and_recorded_once() {
    let files = write_files(&[("rib1", rib1())]);
    let gz = common::gzip(&rib1());
    let gz_path = files.paths["rib1"].with_file_name("rib1.gz");
    std::fs::write(&gz_path, gz).unwrap();
    let mut db = Db::open_in_memory().unwrap();
    let LoadOutcome::Loaded(summary) = load(&mut db, &files.paths["rib1"], "rc") else {
        panic!()
    };
    assert_eq!(
        (
            summary.peers,
            summary.prefixes,
            summary.rib_entries,
            summary.target_routes
        ),
        (5, 4, 9, 6)
    );
    let before = common::dump_all(&db);
    assert!(matches!(
        load(&mut db, &files.paths["rib1"], "rc"),
        LoadOutcome::AlreadyLoaded { .. }
    ));
    // The same MRT data gzip-compressed is recognised by the hash of its content.
    match load(&mut db, &gz_path, "rc") {
        LoadOutcome::AlreadyLoaded { loaded_as, .. } => assert_eq!(loaded_as, "rib1"),
        other @ LoadOutcome::Loaded(_) => panic!("{other:?}"),
    }
    assert_eq!(common::dump_all(&db), before);
}

#[test]
fn a_second_dump_at_the_same_time_is_refused() {
    let p = peers();
    let files = write_files(&[
        ("one", rib(T1, &p, &[(NK22, 0, "3356 4837 131279")])),
        ("two", rib(T1, &p, &[(NK22, 1, "1299 20485 131279")])),
    ]);
    let mut db = Db::open_in_memory().unwrap();
    load(&mut db, &files.paths["one"], "rc");
    let err = load_file(
        &mut db,
        &files.paths["two"],
        &LoadOptions {
            collector: Some("rc".into()),
            target: None,
            ..LoadOptions::default()
        },
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("already has a RIB dump"), "{err}");
    // Under another collector name it loads.
    load(&mut db, &files.paths["two"], "rc2");
}

const NK24S: [&str; 4] = [
    "175.45.176.0/24",
    "175.45.177.0/24",
    "175.45.178.0/24",
    "175.45.179.0/24",
];

fn loaded(outcome: LoadOutcome) -> nkpath_collector::mrt::FileSummary {
    match outcome {
        LoadOutcome::Loaded(s) => *s,
        other @ LoadOutcome::AlreadyLoaded { .. } => panic!("expected a load, got {other:?}"),
    }
}

/// An update file as a RIS collector writes it after a session reset: the session of `p`
/// goes to Established, then it sends its table (NK's four /24s behind AS4837, and China
/// Unicom's own prefix). `q` is never seen going to Established: its updates follow a state
/// nkpath does not know.
fn session_start_updates(p: FixturePeer, q: FixturePeer) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(update(
        T0 - 50,
        q,
        &["175.45.176.0/24"],
        "1299 20485 131279",
        &[],
    ));
    out.extend(state_change(
        T0,
        p,
        FsmState::OpenConfirm,
        FsmState::Established,
    ));
    out.extend(update(T0 + 1, p, &NK24S, "3257 4837 131279", &[]));
    out.extend(update(T0 + 1, p, &["219.158.0.0/17"], "3257 4837", &[]));
    out.extend(update(T0 + 5, q, &NK24S, "1299 20485 131279", &[]));
    out.extend(update(T0 + 12, p, &[], "", &["175.45.179.0/24"]));
    out.extend(state_change(
        T0 + 20,
        p,
        FsmState::Established,
        FsmState::Idle,
    ));
    out
}

#[test]
fn an_update_file_alone_gives_the_routes_of_the_sessions_that_start_in_it() {
    let (p, q) = (peer("192.0.2.10", 3257), peer("192.0.2.20", 1299));
    let files = write_files(&[("updates", session_start_updates(p, q))]);
    let mut db = Db::open_in_memory().unwrap();
    let s = loaded(load(&mut db, &files.paths["updates"], "rrc00"));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);

    assert!(
        BgpState::at(&db, at(T0 - 1)).unwrap().is_none(),
        "q's routes follow a state nkpath does not know"
    );
    let state = BgpState::at(&db, at(T0 + 10)).unwrap().unwrap();
    for prefix in NK24S {
        let announced = state.announced_upstreams(net(prefix));
        assert_eq!(announced.upstream_set(), BTreeSet::from([4837]), "{prefix}");
        assert_eq!(state.visibility(net(prefix), 4837), vis(1, 1), "{prefix}");
    }
    let source = &state.sources()[0];
    assert_eq!(
        (
            source.collector.as_str(),
            source.session_peers,
            source.dump_file.as_deref()
        ),
        ("rrc00", 1, None)
    );
    // Origins for hop mapping come from the same peers.
    let (prefix, origins) = state.origins_lpm("219.158.3.4".parse().unwrap()).unwrap();
    assert_eq!(
        (prefix, origins),
        (net("219.158.0.0/17"), BTreeSet::from([4837]))
    );
    // The withdrawal and the session going down apply.
    let state = BgpState::at(&db, at(T0 + 15)).unwrap().unwrap();
    assert_eq!(state.target_prefixes().len(), 3);
    assert!(state.routes(net("175.45.179.0/24")).is_empty());
    assert!(
        BgpState::at(&db, at(T0 + 30)).unwrap().is_none(),
        "after the session went down no route is known"
    );

    // The export lists the four /24s behind AS4837 only, seen by 1 of 1 peers.
    let out = tempfile::tempdir().unwrap();
    nkpath_collector::export::export(&db, &[], out.path()).unwrap();
    let csv = std::fs::read_to_string(out.path().join("bgp_upstreams.csv")).unwrap();
    let rows: BTreeSet<String> = csv.lines().skip(1).map(str::to_owned).collect();
    let iso = |t: u32| nkpath_proto::timestamp::display_unix(i64::from(t));
    let expected: BTreeSet<String> = NK24S
        .iter()
        .map(|p| {
            let until = if *p == "175.45.179.0/24" {
                T0 + 12
            } else {
                T0 + 20
            };
            format!("{},{},{p},4837,1,1", iso(T0 + 1), iso(until))
        })
        .collect();
    assert_eq!(rows, expected, "{csv}");
}

#[test]
fn an_update_file_without_a_dump_or_a_session_start_adds_nothing_and_says_so() {
    let q = peer("192.0.2.20", 1299);
    let mut bytes = update(T0, q, &NK24S, "1299 20485 131279", &[]);
    bytes.extend(update(T0 + 5, q, &["219.158.0.0/17"], "1299 4837", &[]));
    let files = write_files(&[("updates", bytes)]);
    let mut db = Db::open_in_memory().unwrap();
    let s = loaded(load(&mut db, &files.paths["updates"], "rrc01"));
    assert_eq!(
        s.announcements, 5,
        "the updates are stored for a later dump"
    );
    assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
    assert!(
        s.warnings[0]
            .contains("the file adds nothing to the BGP state until a RIB dump of collector rrc01"),
        "{:?}",
        s.warnings
    );
    assert!(BgpState::at(&db, at(T0 + 10)).unwrap().is_none());
}

#[test]
fn updates_are_not_replayed_over_a_dump_older_than_the_maximum_age() {
    const DAY: u32 = 86_400;
    let p = peers();
    let dump = rib(
        T1,
        &p,
        &[
            (NK22, 0, "3356 4837 131279"),
            (NK22, 1, "1299 20485 131279"),
        ],
    );
    let ups = update(T1 + 100, p[0], &[NK177], "3356 4837 131279", &[]);
    // Two days later, another file of the same collector: not replayed over that dump.
    let late = update(T1 + 2 * DAY, p[1], &[NK177], "1299 9002 131279", &[]);
    let files = write_files(&[("rib", dump), ("upd", ups), ("late", late)]);
    let mut db = Db::open_in_memory().unwrap();
    for name in ["rib", "upd", "late"] {
        load(&mut db, &files.paths[name], "rc");
    }

    let state = BgpState::at(&db, at(T1 + 200)).unwrap().unwrap();
    assert_eq!(state.visibility(net(NK177), 4837), vis(1, 1));
    // Before the late update, the dump is still the state, and its age says how old it is.
    let state = BgpState::at(&db, at(T1 + 2 * DAY - 1)).unwrap().unwrap();
    assert_eq!(state.visibility(net(NK22), 20485), vis(1, 2));
    assert_eq!(state.age_s(), i64::from(2 * DAY - 1 - 100));
    // From the late update on, p[1]'s dump routes are dropped and its update has no base;
    // p[0], which sent nothing that late, keeps the dump (and its replayed update) as state.
    let state = BgpState::at(&db, at(T1 + 2 * DAY)).unwrap().unwrap();
    assert_eq!(state.visibility(net(NK22), 20485), vis(0, 1));
    assert_eq!(state.visibility(net(NK22), 4837), vis(1, 1));
    assert_eq!(state.visibility(net(NK177), 4837), vis(1, 1));
    assert!(state.routes(net(NK177)).iter().all(|r| r.peer.asn == 3356));
    assert_eq!(state.age_s(), i64::from(2 * DAY - 100));
    // With a longer maximum age the update is replayed over the dump.
    let state = BgpState::at_with(&db, at(T1 + 2 * DAY), 3 * i64::from(DAY))
        .unwrap()
        .unwrap();
    assert_eq!(state.visibility(net(NK177), 9002), vis(1, 2));
    // The timeline follows the same rule.
    let v = visibility_over(&db, net(NK22), 20485, at(T1), at(T1 + 2 * DAY + 10)).unwrap();
    assert_eq!(
        v.segments,
        vec![
            (i64::from(T1), Some(vis(1, 2))),
            (i64::from(T1 + 2 * DAY), Some(vis(0, 1)))
        ]
    );
}

#[test]
fn a_session_start_older_than_the_maximum_age_is_not_replayed_over() {
    const DAY: u32 = 86_400;
    let (p, q) = (peer("192.0.2.10", 3257), peer("192.0.2.20", 1299));
    let mut first = state_change(T0, p, FsmState::OpenConfirm, FsmState::Established);
    first.extend(update(T0 + 1, p, &[NK22], "3257 4837 131279", &[]));
    // Two days later q's session starts; p's session start is too old to replay this over.
    let mut later = state_change(
        T0 + 2 * DAY,
        q,
        FsmState::OpenConfirm,
        FsmState::Established,
    );
    later.extend(update(
        T0 + 2 * DAY + 1,
        q,
        &[NK22],
        "1299 20485 131279",
        &[],
    ));
    later.extend(update(
        T0 + 2 * DAY + 2,
        p,
        &[NK177],
        "3257 4837 131279",
        &[],
    ));
    let files = write_files(&[("first", first), ("later", later)]);
    let mut db = Db::open_in_memory().unwrap();
    for name in ["first", "later"] {
        load(&mut db, &files.paths[name], "rrc00");
    }
    let upstreams = |t: u32| {
        BgpState::at(&db, at(t)).unwrap().map(|s| {
            (
                s.announced_upstreams(net(NK22)).upstream_set(),
                s.target_prefixes().len(),
            )
        })
    };
    assert_eq!(upstreams(T0 + 10), Some((BTreeSet::from([4837]), 1)));
    assert_eq!(
        upstreams(T0 + 2 * DAY - 1),
        Some((BTreeSet::from([4837]), 1))
    );
    // q's session start ends nobody else's base: until p's own late update, p's routes stay.
    assert_eq!(
        upstreams(T0 + 2 * DAY + 1),
        Some((BTreeSet::from([4837, 20485]), 1))
    );
    // p's late update ends p's base: only q, whose session just started, is known.
    assert_eq!(
        upstreams(T0 + 2 * DAY + 5),
        Some((BTreeSet::from([20485]), 1))
    );
    let v = visibility_over(&db, net(NK22), 4837, at(T0), at(T0 + 2 * DAY + 5)).unwrap();
    assert_eq!(
        v.segments,
        vec![
            (i64::from(T0), None),
            (i64::from(T0 + 1), Some(vis(1, 1))),
            (i64::from(T0 + 2 * DAY + 1), Some(vis(1, 2))),
            (i64::from(T0 + 2 * DAY + 2), Some(vis(0, 1))),
        ]
    );
}

#[test]
fn after_its_initial_table_a_peers_new_upstream_is_a_change_again() {
    const MIN: u32 = 60;
    let (p, q) = (peer("192.0.2.10", 3257), peer("192.0.2.20", 1299));
    let mut bytes = state_change(T0, p, FsmState::OpenConfirm, FsmState::Established);
    bytes.extend(update(T0 + 1, p, &[NK22], "3257 4837 131279", &[]));
    // q comes up half an hour later: its table, via AS20485, is its baseline.
    bytes.extend(state_change(
        T0 + 30 * MIN,
        q,
        FsmState::OpenConfirm,
        FsmState::Established,
    ));
    bytes.extend(update(
        T0 + 30 * MIN + 2,
        q,
        &[NK22],
        "1299 20485 131279",
        &[],
    ));
    // An hour after its session came up, p moves to AS9002: a change.
    bytes.extend(update(T0 + 60 * MIN, p, &[NK22], "3257 9002 131279", &[]));
    let files = write_files(&[("updates", bytes)]);
    let mut db = Db::open_in_memory().unwrap();
    load(&mut db, &files.paths["updates"], "rrc00");
    let c = upstream_changes(&db, at(T0), at(T0 + 90 * MIN)).unwrap();
    assert_eq!(c.baseline_time, Some(i64::from(T0 + 1)));
    assert_eq!(c.baseline[&net(NK22)], BTreeSet::from([4837]));
    let baselines: Vec<(i64, u32)> = c
        .peer_baselines
        .iter()
        .map(|b| (b.time, b.upstream))
        .collect();
    assert_eq!(baselines, vec![(i64::from(T0 + 30 * MIN + 2), 20485)]);
    let changes: Vec<(i64, u32, bool)> = c
        .changes
        .iter()
        .map(|c| (c.time, c.upstream, c.appeared))
        .collect();
    assert_eq!(
        changes,
        vec![
            (i64::from(T0 + 60 * MIN), 9002, true),
            (i64::from(T0 + 60 * MIN), 4837, false)
        ]
    );
}
