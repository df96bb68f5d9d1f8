//! RIS Live in the emulated Internet: a BGP session shut in BIRD reaches the collector over
//! a local RIS Live replay built from the testbed route collector's own update file, shows
//! in `report changes` within seconds and fires `--on-change`; the update file loaded later
//! replaces the live rows without duplicates.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rislive::{ReplayServer, Step, messages_from_mrt};
use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::mrt::{self, LoadOptions};
use nkpath_testbed::Testbed;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

fn unix_now() -> u32 {
    u32::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `report changes` rows of BGP changes: `PREFIX,±ASN`.
fn bgp_changes(db: &Path) -> Vec<String> {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["report", "changes", "--no-dns", "--format", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(",bgp,"))
        .map(|l| l.split(',').skip(2).take(2).collect::<Vec<_>>().join(","))
        .collect()
}

struct Live(Child, PathBuf);

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- bgp live log:\n{}",
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

#[test]
fn a_session_shut_in_bird_arrives_over_ris_live_and_fires_on_change() {
    let Some(tb) = Testbed::private(nkpath_testbed::Options::default()) else {
        return;
    };
    let m = tb.manifest();
    // The session of nkbr to the upstream that alone carries some prefix.
    let others: BTreeSet<Ipv4Net> = m
        .target
        .announced_to
        .iter()
        .filter(|(k, _)| *k != "ttk")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let lost: Vec<Ipv4Net> = m.target.announced_to["ttk"]
        .iter()
        .filter(|p| !others.contains(p))
        .copied()
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let lost = lost[0];
    let neighbor = m
        .node("nkbr")
        .unwrap()
        .bgp_neighbors
        .iter()
        .find(|n| n.node == "ttk")
        .unwrap()
        .clone();

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let options = LoadOptions {
        collector: Some("rc".into()),
        ..LoadOptions::default()
    };
    {
        let mut db = Db::open(&db).unwrap();
        for dump in tb.rib_dumps().unwrap() {
            let snapshot = tb.mrt_snapshot(&dump).unwrap();
            if std::fs::metadata(&snapshot).unwrap().len() > 0 {
                mrt::load_file(&mut db, &snapshot, &options, None).unwrap();
            }
        }
    }
    let server = ReplayServer::start(Vec::new());
    let alerts = dir.path().join("alerts.jsonl");
    let log = dir.path().join("live.log");
    let command = format!(
        "cat >> '{}'; echo >> '{}'",
        alerts.display(),
        alerts.display()
    );
    let live = Live(
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args([
                "bgp",
                "live",
                "--ris-live",
                &server.url(),
                "--ris-live-host",
                "rc",
            ])
            .args(["--on-change", &command, "--alert-min-duration", "0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log.clone(),
    );
    wait_until("bgp live to subscribe", Duration::from_secs(20), || {
        server
            .seen
            .lock()
            .unwrap()
            .first()
            .is_some_and(|s| !s.texts.is_empty())
    });
    // The alert runner arms on its first evaluation (a tick at most): what came before is
    // the baseline.
    std::thread::sleep(Duration::from_secs(6));

    // rc's peers with a route for the prefix: each withdraws it.
    let peers_with_route = || {
        tb.bird_routes("rc")
            .unwrap()
            .iter()
            .filter(|r| r.prefix == lost && r.as_path.last() == Some(&m.target.asn))
            .count()
    };
    let peers_before = peers_with_route();
    assert!(peers_before > 0);
    let since = unix_now();
    tb.birdc("nkbr", &["disable", &neighbor.protocol]).unwrap();
    // rc logs the withdrawal to its update file on its own schedule, one peer after the
    // other: wait there until every peer that had the route has withdrawn it (a change is
    // one of the announced upstreams only once its peers agree; on a loaded machine the
    // first withdrawal can be logged seconds before the last).
    let withdrawing_peer = |m: &String| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(m).unwrap();
        let withdraws = v["data"]["withdrawals"]
            .as_array()
            .is_some_and(|w| w.iter().any(|p| p.as_str() == Some(&lost.to_string())));
        withdraws.then(|| v["data"]["peer"].to_string())
    };
    let mut messages = Vec::new();
    wait_until(
        "rc's update file to hold the withdrawal of every peer",
        Duration::from_mins(1),
        || {
            let snapshot = tb.mrt_snapshot(&tb.updates_mrt()).unwrap();
            messages = messages_from_mrt(&snapshot, "rc", since);
            let peers: BTreeSet<String> = messages.iter().filter_map(withdrawing_peer).collect();
            peers.len() >= peers_before
        },
    );
    let pushed = Instant::now();
    server.push(messages.iter().cloned().map(Step::Text));
    let want = format!("{lost},-AS{}", neighbor.asn);
    wait_until(
        "report changes to show the withdrawal",
        Duration::from_secs(30),
        || bgp_changes(&db).contains(&want),
    );
    let seen_after = pushed.elapsed();
    wait_until("--on-change to run", Duration::from_secs(20), || {
        std::fs::read_to_string(&alerts).is_ok_and(|t| t.contains(&lost.to_string()))
    });
    let alerted_after = pushed.elapsed();
    eprintln!("in report changes after {seen_after:?}, alerted after {alerted_after:?}");
    let doc: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&alerts)
            .unwrap()
            .lines()
            .find(|l| l.contains(&lost.to_string()))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["prefix"], lost.to_string());
    let event = &doc["events"][0];
    assert_eq!(event["kind"], "upstreams");
    assert_eq!(event["disappeared"], serde_json::json!([neighbor.asn]));
    drop(live);

    // rc's update file, loaded now, replaces the live rows: the change once, no
    // provisional row left.
    let snapshot = tb.mrt_snapshot(&tb.updates_mrt()).unwrap();
    let summary = {
        let mut db = Db::open(&db).unwrap();
        match mrt::load_file(&mut db, &snapshot, &options, None).unwrap() {
            mrt::LoadOutcome::Loaded(s) => s,
            other @ mrt::LoadOutcome::AlreadyLoaded { .. } => panic!("{other:?}"),
        }
    };
    assert!(summary.provisional_replaced >= 1, "{summary:?}");
    let provisional: i64 = Db::open(&db)
        .unwrap()
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM mrt_files WHERE provisional",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(provisional, 0);
    let changes = bgp_changes(&db);
    assert_eq!(
        changes.iter().filter(|c| **c == want).count(),
        1,
        "{changes:?}"
    );
    tb.down().unwrap();
    dir.close().unwrap();
}
