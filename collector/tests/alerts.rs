//! `--on-change` end to end through `bgp load` of MRT files built here: an upstream change
//! runs the command once with the alert document; a restart repeats nothing; a backfill is
//! history; events within the interval are coalesced into the next run; a hanging command
//! is killed at its timeout; an outage's start and end alert once, and not again after a
//! restart.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{FixturePeer, peer, rib, update};
use nkpath_collector::Db;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");
const PREFIX: &str = "175.45.176.0/24";

struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    out: PathBuf,
    peers: [FixturePeer; 2],
    files: usize,
}

impl Setup {
    /// A database; its first load (rrc00's RIB dump three hours ago: both peers reach the
    /// prefix through AS4837) arms the alerts.
    fn new(alert_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let out = dir.path().join("alerts.jsonl");
        let peers = [peer("192.0.2.1", 64500), peer("192.0.2.2", 64501)];
        let mut s = Self {
            dir,
            db,
            out,
            peers,
            files: 0,
        };
        let dump = now() - 3 * 3600;
        let routes = [
            (PREFIX, 0, "64500 4837 131279"),
            (PREFIX, 1, "64501 4837 131279"),
        ];
        let file = s.file(&rib(dump, &s.peers, &routes));
        let (ok, err) = s.load(&file, alert_args);
        assert!(ok, "{err}");
        assert!(!s.out.exists(), "the first load alerted: {err}");
        s
    }

    fn file(&mut self, bytes: &[u8]) -> PathBuf {
        self.files += 1;
        let path = self.dir.path().join(format!("rrc00-{}.mrt", self.files));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Both peers move to `upstream` at `time`.
    fn move_to(&mut self, time: u32, upstream: u32) -> PathBuf {
        let records: Vec<u8> = self
            .peers
            .iter()
            .flat_map(|p| {
                update(
                    time,
                    *p,
                    &[PREFIX],
                    &format!("{} {upstream} 131279", p.asn),
                    &[],
                )
            })
            .collect();
        self.file(&records)
    }

    /// `bgp load --on-change` (appending each document as a line to `out`): (success,
    /// stderr).
    fn load(&self, file: &Path, alert_args: &[&str]) -> (bool, String) {
        let command = format!(
            "cat >> '{}'; echo >> '{}'",
            self.out.display(),
            self.out.display()
        );
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&self.db)
            .args([
                "bgp",
                "load",
                "--collector",
                "rrc00",
                "--on-change",
                &command,
            ])
            .args(["--alert-min-duration", "0"])
            .args(alert_args)
            .arg(file)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn documents(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn statuses(&self) -> Vec<(String, String, u32)> {
        Db::open(&self.db)
            .unwrap()
            .alert_events()
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.status, e.attempts))
            .collect()
    }
}

fn now() -> u32 {
    u32::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn display(t: u32) -> String {
    nkpath_proto::timestamp::display_unix(i64::from(t))
}

#[test]
fn a_change_alerts_once_with_its_document_and_neither_a_backfill_nor_a_restart_repeats() {
    let mut s = Setup::new(&[]);
    // One file: a change two hours ago (loaded late: history), then one now.
    let backfill = now() - 2 * 3600;
    let at = now();
    let mut records = std::fs::read(s.move_to(backfill, 3356)).unwrap();
    records.extend(std::fs::read(s.move_to(at, 20485)).unwrap());
    let file = s.file(&records);
    let (ok, err) = s.load(&file, &[]);
    assert!(ok, "{err}");
    assert!(
        err.contains("1 new event(s), 1 kept as history; 1 run(s)"),
        "{err}"
    );
    let docs = s.documents();
    assert_eq!(docs.len(), 1, "{docs:?}");
    let doc = &docs[0];
    assert_eq!(doc["nkpath_alert"], 1);
    assert_eq!(doc["prefix"], PREFIX);
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{doc}");
    let e = &events[0];
    assert_eq!(e["kind"], "upstreams");
    assert_eq!(e["prefix"], PREFIX);
    assert_eq!(e["time"], display(at));
    assert_eq!(e["before"], serde_json::json!([3356]));
    assert_eq!(e["after"], serde_json::json!([20485]));
    assert_eq!(e["appeared"], serde_json::json!([20485]));
    assert_eq!(e["disappeared"], serde_json::json!([3356]));
    assert_eq!(e["peers_with_route"], 2);
    assert_eq!(e["peers_via_upstream"], serde_json::json!({"AS20485": 2}));
    assert_eq!(
        s.statuses(),
        [
            ("upstreams".to_owned(), "history".to_owned(), 0),
            ("upstreams".to_owned(), "sent".to_owned(), 1)
        ]
    );

    // A new process (a restart) loading more data of the same state: nothing repeats.
    let later = s.file(&update(
        now() + 1,
        s.peers[0],
        &[PREFIX],
        "64500 20485 131279",
        &[],
    ));
    let (ok, err) = s.load(&later, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("0 new event(s)"), "{err}");
    assert_eq!(s.documents().len(), 1);
}

#[test]
fn events_within_the_interval_are_coalesced_into_the_next_run() {
    let interval = ["--alert-interval", "4"];
    let mut s = Setup::new(&interval);
    let first = now();
    let file = s.move_to(first, 20485);
    let (ok, err) = s.load(&file, &interval);
    assert!(ok, "{err}");
    let ran = Instant::now();
    assert_eq!(s.documents().len(), 1, "{err}");
    // Two more changes right after: they wait.
    let file = s.move_to(first + 1, 4837);
    let (_, err) = s.load(&file, &interval);
    assert!(err.contains("1 event(s) wait for a later run"), "{err}");
    let file = s.move_to(first + 2, 12389);
    let (_, err) = s.load(&file, &interval);
    assert!(err.contains("2 event(s) wait for a later run"), "{err}");
    assert!(
        ran.elapsed() < Duration::from_secs(4),
        "the loads were too slow for this test"
    );
    assert_eq!(s.documents().len(), 1);
    // After the interval, the next evaluation (a file loaded again: nothing new) sends both
    // in one run, oldest first.
    std::thread::sleep(
        Duration::from_secs(4).saturating_sub(ran.elapsed()) + Duration::from_millis(200),
    );
    let (ok, err) = s.load(&file, &interval);
    assert!(ok, "{err}");
    let docs = s.documents();
    assert_eq!(docs.len(), 2, "{err}");
    let afters: Vec<&serde_json::Value> = docs[1]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["after"])
        .collect();
    assert_eq!(
        afters,
        [&serde_json::json!([4837]), &serde_json::json!([12389])]
    );
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout_and_its_events_wait_for_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let peers = [peer("192.0.2.1", 64500), peer("192.0.2.2", 64501)];
    let rib_file = dir.path().join("rrc00-rib.mrt");
    std::fs::write(
        &rib_file,
        rib(
            now() - 3600,
            &peers,
            &[
                (PREFIX, 0, "64500 4837 131279"),
                (PREFIX, 1, "64501 4837 131279"),
            ],
        ),
    )
    .unwrap();
    let upd = dir.path().join("rrc00-upd.mrt");
    let load = |file: &Path| {
        let started = Instant::now();
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["bgp", "load", "--collector", "rrc00"])
            .args([
                "--on-change",
                "sleep 30",
                "--alert-timeout",
                "1",
                "--alert-min-duration",
                "0",
            ])
            .arg(file)
            .output()
            .unwrap();
        (
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    load(&rib_file);
    let t = now();
    let records: Vec<u8> = peers
        .iter()
        .flat_map(|p| update(t, *p, &[PREFIX], &format!("{} 20485 131279", p.asn), &[]))
        .collect();
    std::fs::write(&upd, records).unwrap();
    let (took, err) = load(&upd);
    assert!(err.contains("killed after 1 s (timeout)"), "{err}");
    assert!(err.contains("retried in a minute"), "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let events = Db::open(&db).unwrap().alert_events().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].status.as_str(), events[0].attempts),
        ("pending", 1)
    );
}

#[test]
fn a_new_data_plane_mismatch_alerts_once_per_quiet_day() {
    use common::traces::{DUMP_TIME, trace};
    let mut s = Setup::new(&[]);
    // The hop table: an entry through AS20485 (not announced). The fixture agent's address
    // (TEST-NET-2) maps to no AS: the agent is a vantage of its own.
    let peers = s.peers;
    let table = rib(
        now() - 600,
        &peers,
        &[
            (PREFIX, 0, "64500 4837 131279"),
            (PREFIX, 1, "64501 4837 131279"),
            ("188.43.224.0/19", 0, "64500 20485"),
        ],
    );
    let table = s.file(&table);
    let (ok, err) = s.load(&table, &[]);
    assert!(ok, "{err}");
    let import = |id: u32| {
        let started = i64::from(now()) - i64::from(DUMP_TIME);
        let line = trace(
            id,
            started,
            "175.45.176.9",
            &[
                (1, "188.43.225.153", 11, 0, 0),
                (2, "175.45.176.9", 0, 0, 0),
            ],
        );
        let file = s.dir.path().join(format!("trace-{id}.jsonl"));
        std::fs::write(&file, line).unwrap();
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&s.db)
            .arg("import")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    import(1);
    // Any load evaluates: the table again (already loaded, skipped).
    let (ok, err) = s.load(&table, &[]);
    assert!(ok, "{err}");
    let docs = s.documents();
    assert_eq!(docs.len(), 1, "{err}");
    let e = &docs[0]["events"][0];
    assert_eq!(docs[0]["prefix"], PREFIX);
    assert_eq!(e["kind"], "mismatch");
    assert_eq!(e["vantage"], "agent:vp-test");
    assert_eq!(e["vantage_as"], serde_json::Value::Null);
    assert_eq!(e["agent"], "vp-test");
    assert_eq!(e["target_24"], PREFIX);
    assert_eq!(e["entry_as"], 20485);
    assert_eq!(e["announced_upstreams"], serde_json::json!([4837]));
    // The same (vantage AS, /24, entry AS) again within the day: no new alert.
    std::thread::sleep(Duration::from_secs(1));
    import(2);
    let (ok, err) = s.load(&table, &[]);
    assert!(ok, "{err}");
    assert!(err.contains("0 new event(s)"), "{err}");
    assert_eq!(s.documents().len(), 1);
}

/// A trace from `source` (the vantage AS is its origin in the dump) started at `at`:
/// answered by an address of 175.45.176.0/24, or silent after China Unicom's router.
fn probe(id: u32, at: u32, agent: &str, source: &str, answered: bool) -> String {
    let hops: &[common::traces::Hop] = if answered {
        &[(1, "219.158.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)]
    } else {
        &[(1, "219.158.1.1", 11, 0, 0)]
    };
    let after_dump = i64::from(at) - i64::from(common::traces::DUMP_TIME);
    let mut v: serde_json::Value =
        serde_json::from_str(&common::traces::trace(id, after_dump, "175.45.176.9", hops)).unwrap();
    v["agent_id"] = agent.into();
    v["source"] = source.into();
    v["round_id"] = format!("5a3c1e2f-0000-4000-8000-{id:012}").into();
    v.to_string()
}

#[test]
fn an_outage_alerts_its_start_and_end_once_and_a_restart_repeats_neither() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let out = dir.path().join("alerts.jsonl");
    let peers = [peer("192.0.2.1", 64500), peer("192.0.2.2", 64501)];
    let routes = [
        (PREFIX, 0, "64500 4837 131279"),
        (PREFIX, 1, "64501 4837 131279"),
        ("219.158.0.0/17", 0, "64500 4837"),
        ("219.158.0.0/17", 1, "64501 4837"),
        ("88.198.0.0/16", 0, "64500 24940"),
        ("88.198.0.0/16", 1, "64501 24940"),
        ("49.212.0.0/16", 0, "64500 9370"),
        ("49.212.0.0/16", 1, "64501 9370"),
    ];
    let command = format!("cat >> '{}'; echo >> '{}'", out.display(), out.display());
    let mut files = 0;
    let mut load = |bytes: Vec<u8>| {
        files += 1;
        let file = dir.path().join(format!("rrc00-{files}.mrt"));
        std::fs::write(&file, bytes).unwrap();
        let o = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args([
                "bgp",
                "load",
                "--collector",
                "rrc00",
                "--on-change",
                &command,
            ])
            .args(["--outage-settle", "0", "--outage-window", "600"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    // The dump a minute ago arms the alerts now.
    let armed = now();
    load(rib(armed - 60, &peers, &routes));
    // Two vantage ASes: both answered, then neither, then both again.
    std::thread::sleep(Duration::from_secs(2));
    let t0 = now() - 1;
    assert!(t0 > armed);
    let (a, b) = ("88.198.10.2", "49.212.10.2");
    let traces = [
        probe(1, t0 - 1, "vp-a", a, true),
        probe(2, t0 - 1, "vp-b", b, true),
        probe(3, t0, "vp-a", a, false),
        probe(4, t0, "vp-b", b, false),
        probe(5, t0 + 1, "vp-a", a, true),
        probe(6, t0 + 1, "vp-b", b, true),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let jsonl = dir.path().join("traces.jsonl");
    std::fs::write(&jsonl, traces.join("\n")).unwrap();
    let o = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .arg("import")
        .arg(&jsonl)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Any later load evaluates: one run for the /24 with the start and the end.
    let later = update(now(), peers[0], &["192.0.2.0/24"], "64500", &[]);
    load(later.clone());
    let documents: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(documents.len(), 1, "{documents:?}");
    let events = documents[0]["events"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["outage"].as_str().unwrap(),
                e["time"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("outage-start", "data-plane", display(t0).as_str()),
            ("outage-end", "data-plane", display(t0 + 1).as_str()),
        ]
    );
    assert_eq!(events[0]["target_24"], PREFIX);
    assert_eq!(events[0]["vantage_ases"], serde_json::json!([9370, 24940]));
    // A restart (another process, another load) repeats nothing.
    load(update(now(), peers[1], &["192.0.2.0/24"], "64501", &[]));
    let again = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        again.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{again}"
    );
}
