//! A full-table RIB dump loads without holding up the API, and all or nothing: agents'
//! uploads to `serve` are acknowledged within `--request-timeout` while `bgp load` runs, and
//! a load killed with SIGKILL half-way leaves the previous dump as readers saw it, until the
//! next load of the same file completes the new one.
//!
//! The tables are built at test time (a few hundred thousand prefixes: a load of several
//! seconds in a test build) into a temporary directory.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::Server;
use common::{FixturePeer, peer, rib};
use nkpath_collector::Db;
use nkpath_collector::bgp::BgpState;
use nkpath_collector::mrt::{LoadOptions, LoadOutcome, load_file};
use nkpath_proto::{UploadAck, decode_slice};
use time::OffsetDateTime;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");
/// Prefixes of the full tables: enough for a load of several seconds.
const PREFIXES: u32 = 120_000;
/// The first dump's time; the second is an hour later.
const T1: u32 = 1_735_689_600;
const T2: u32 = T1 + 3600;

fn peers() -> [FixturePeer; 2] {
    [peer("192.0.2.1", 64500), peer("192.0.2.2", 64501)]
}

/// The `i`-th /24 of the table, from 1.0.0.0 on (none near the target block).
fn prefix(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0100_0000 + (i << 8))
}

/// A full table at `time`: every prefix originated by `origin` behind each peer.
fn full_table(dir: &Path, name: &str, time: u32, origin: u32) -> PathBuf {
    let peers = peers();
    let prefixes: Vec<String> = (0..PREFIXES).map(|i| format!("{}/24", prefix(i))).collect();
    let paths: Vec<String> = peers
        .iter()
        .map(|p| format!("{} 3356 {origin}", p.asn))
        .collect();
    let routes: Vec<(&str, usize, &str)> = prefixes
        .iter()
        .flat_map(|p| (0..peers.len()).map(move |i| (p.as_str(), i)))
        .map(|(p, i)| (p, i, paths[i].as_str()))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, rib(time, &peers, &routes)).unwrap();
    path
}

/// `bgp load` of `file` into `db`, holding the write lock at most `hold` per part.
fn start_load(db: &Path, file: &Path, hold: &str) -> Child {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["bgp", "load", "--collector", "rrc00", "--hold-lock", hold])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn add_agent(db: &Path, name: &str) -> String {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["agent", "add", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One upload of a ping result; the acknowledgement, or why there was none.
async fn upload(client: &reqwest::Client, url: &str, token: &str) -> Result<UploadAck, String> {
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let result = serde_json::json!({
        "kind": "ping", "schema_version": "1.0", "result_id": Uuid::new_v4(),
        "agent_id": "vp-1", "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7", "target": "175.45.176.1", "started_at": now,
        "sent": 1, "received": 1, "rtts_us": [212_000]
    });
    let body = serde_json::json!({
        "schema_version": "1.0", "agent_id": "vp-1", "agent_version": "0.1.0",
        "batch_id": Uuid::new_v4(), "sent_at": now, "results": [result]
    });
    let response = client
        .post(format!("{url}/v1/results"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    decode_slice(&bytes).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_acknowledged_within_the_request_timeout_while_a_full_table_loads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = add_agent(&db, "vp-1");
    let table = full_table(dir.path(), "rrc00-bview.mrt", T1, 4837);
    let server = Server::start(&db, "127.0.0.1:0", &["--request-timeout", "2"]);
    let url = format!("http://{}", server.addr);
    // Longer than the request timeout: an upload the server holds up gets its 408.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let started = std::time::Instant::now();
    let mut load = start_load(&db, &table, "1s");
    let (mut acked, mut refused) = (0usize, Vec::new());
    let mut during_load = 0usize;
    loop {
        let running = load.try_wait().unwrap().is_none();
        match upload(&client, &url, &token).await {
            Ok(ack) if ack.refused.is_empty() && ack.accepted.len() == 1 => acked += 1,
            Ok(ack) => refused.push(format!("{:?}", ack.refused)),
            Err(e) => refused.push(e),
        }
        // Counted only when the load still ran after the upload's answer too.
        if running && load.try_wait().unwrap().is_none() {
            during_load += 1;
        }
        if !running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = load.wait_with_output().unwrap();
    eprintln!(
        "load took {:?}; {during_load} of {} uploads during it",
        started.elapsed(),
        acked + refused.len()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        refused.is_empty(),
        "uploads not acknowledged during the load: {refused:?}"
    );
    // The load must have overlapped the uploads for this to prove anything.
    assert!(
        during_load >= 5,
        "only {during_load} uploads during the load"
    );

    let check = Db::open(&db).unwrap();
    let stored: i64 = check
        .sql_for_tests()
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, acked, "every acknowledged result stored");
    // And the table loaded whole.
    let state = BgpState::at(&check, at(T1 + 60)).unwrap().unwrap();
    for i in [0, PREFIXES / 2, PREFIXES - 1] {
        let (_, origins) = state.origins_lpm(prefix(i)).unwrap();
        assert_eq!(origins.into_iter().collect::<Vec<_>>(), [4837]);
    }
}

fn at(t: u32) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(i64::from(t)).unwrap()
}

/// The origins of sampled prefixes in the state at `t`.
fn sampled_origins(db: &Db, t: u32) -> Vec<Vec<u32>> {
    let state = BgpState::at(db, at(t)).unwrap().unwrap();
    (0..PREFIXES)
        .step_by(997)
        .map(|i| {
            let (_, origins) = state.origins_lpm(prefix(i)).unwrap();
            origins.into_iter().collect()
        })
        .collect()
}

/// Every validity interval with its origins, as text.
fn intervals(db: &Db) -> Vec<String> {
    db.sql_for_tests()
        .prepare(
            "SELECT p.net, p.len, p.valid_from, p.valid_until, s.origins
             FROM prefix_origins p JOIN route_sets s ON s.id = p.route_set_id
             ORDER BY p.net, p.len, p.valid_from",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(format!(
                "{} {} {} {} {}",
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn load_whole(db: &mut Db, file: &Path) {
    let options = LoadOptions {
        collector: Some("rrc00".into()),
        ..LoadOptions::default()
    };
    let outcome = load_file(db, file, &options, None).unwrap();
    assert!(matches!(outcome, LoadOutcome::Loaded(_)), "{outcome:?}");
}

#[test]
fn a_load_killed_half_way_shows_nothing_of_the_new_dump_and_the_next_load_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let first = full_table(dir.path(), "rrc00-bview.1.mrt", T1, 4837);
    // An hour later every prefix is originated by another AS.
    let second = full_table(dir.path(), "rrc00-bview.2.mrt", T2, 4134);
    let path = dir.path().join("c.db");
    load_whole(&mut Db::open(&path).unwrap(), &first);
    let before = sampled_origins(&Db::open(&path).unwrap(), T2 + 60);
    assert!(before.iter().all(|o| o == &[4837]));

    // Kill the second load once its merge into the intervals has committed parts. The load
    // commits a part every 20 ms, so that its merge commits several however fast the
    // machine is (at the default of a second, a fast one merges in one part, with the
    // file's completion, and there is no half-way to see).
    let mut load = start_load(&path, &second, "20ms");
    let watcher = Db::open(&path).unwrap();
    let merging = || -> bool {
        watcher
            .sql_for_tests()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM prefix_origins WHERE valid_from = ?1)",
                [T2],
                |r| r.get(0),
            )
            .unwrap()
    };
    while !merging() {
        assert!(
            load.try_wait().unwrap().is_none(),
            "the load ended before it was seen merging: make the tables larger"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        load.try_wait().unwrap().is_none(),
        "the load ended before it could be killed while merging: the test proves nothing"
    );
    load.kill().unwrap(); // SIGKILL
    load.wait().unwrap();

    let db = Db::open(&path).unwrap();
    let files: Vec<String> = db
        .mrt_files()
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        files,
        ["rrc00-bview.1.mrt"],
        "a half-loaded file is visible"
    );
    assert_eq!(
        sampled_origins(&db, T2 + 60),
        before,
        "the state after the cut load is not the first dump's"
    );
    drop(db);

    // The next load of the same file (as the next sync pass retries it) completes it.
    load_whole(&mut Db::open(&path).unwrap(), &second);
    let db = Db::open(&path).unwrap();
    assert!(sampled_origins(&db, T2 + 60).iter().all(|o| o == &[4134]));
    assert_eq!(sampled_origins(&db, T1 + 60), before);
    let mut uncut = Db::open(dir.path().join("uncut.db")).unwrap();
    load_whole(&mut uncut, &first);
    load_whole(&mut uncut, &second);
    assert_eq!(intervals(&db), intervals(&uncut));
    assert_eq!(db.mrt_files().unwrap().len(), 2);
}

#[test]
fn a_full_table_that_fails_at_its_end_leaves_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path().join("c.db")).unwrap();
    // Another collector's small dump first: the database is not empty.
    let small = dir.path().join("rrc01-bview.mrt");
    let peers = peers();
    std::fs::write(
        &small,
        rib(T1, &peers, &[("175.45.176.0/24", 0, "64500 4837 131279")]),
    )
    .unwrap();
    let options = LoadOptions {
        collector: Some("rrc01".into()),
        ..LoadOptions::default()
    };
    load_file(&mut db, &small, &options, None).unwrap();
    let before = common::dump_all(&db);

    // The full table of a new collector, its last record cut: the load fails once it has
    // committed parts (it reads the whole file first).
    let table = full_table(dir.path(), "rrc00-bview.mrt", T1, 4837);
    let bytes = std::fs::read(&table).unwrap();
    std::fs::write(&table, &bytes[..bytes.len() - 10]).unwrap();
    let options = LoadOptions {
        collector: Some("rrc00".into()),
        ..LoadOptions::default()
    };
    let err = load_file(&mut db, &table, &options, None).unwrap_err();
    assert!(err.to_string().contains("rrc00-bview.mrt"), "{err}");
    assert_eq!(common::dump_all(&db), before, "the failed load left rows");
}
