//! RIS Live end to end: `bgp live` against a local websocket server replaying messages in
//! today's format. What arrives shows in `report changes` within seconds, as provisional rows
//! that the collector's update file for the period replaces without duplicates; garbage,
//! stalls and closes are logged with the URL and the client reconnects.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::rislive::{ReplayServer, Step, ris_peer_state, ris_update};
use common::{peer, rib, update};
use nkpath_collector::Db;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

/// A running `bgp live`; stopped (SIGTERM, then killed) when dropped, its log printed if
/// the test failed.
struct Live {
    child: Child,
    log: PathBuf,
}

impl Live {
    fn start(db: &Path, url: &str, extra: &[&str]) -> Self {
        let log = db.with_extension(format!("live-{}.log", uuid::Uuid::new_v4()));
        let child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["bgp", "live", "--ris-live", url, "--ris-live-host", "rrc00"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it the way an operator does (SIGTERM) and returns its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "bgp live did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- bgp live log:\n{}", self.log());
        }
    }
}

fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(db: &Path, sql: &str) -> i64 {
    let db = Db::open(db).unwrap();
    db.sql_for_tests().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn collector(db: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `report changes` as CSV rows (kind, what, change).
fn bgp_changes(db: &Path) -> Vec<String> {
    let (ok, out, err) = collector(db, &["report", "changes", "--no-dns", "--format", "csv"]);
    assert!(ok, "{err}");
    out.lines()
        .filter(|l| l.contains(",bgp,"))
        .map(|l| l.split(',').skip(1).take(3).collect::<Vec<_>>().join(","))
        .collect()
}

fn unix_now() -> u32 {
    u32::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

/// A database with rrc00's RIB dump taken `age` seconds ago: two peers reach
/// 175.45.176.0/24 through AS4837.
fn db_with_dump(dir: &Path, dump: u32) -> PathBuf {
    let db = dir.join("c.db");
    let file = dir.join("rrc00-bview.mrt");
    let peers = [peer("192.0.2.1", 64500), peer("192.0.2.2", 64501)];
    std::fs::write(
        &file,
        rib(
            dump,
            &peers,
            &[
                ("175.45.176.0/24", 0, "64500 4837 131279"),
                ("175.45.176.0/24", 1, "64501 4837 131279"),
            ],
        ),
    )
    .unwrap();
    let (ok, _, err) = collector(
        &db,
        &[
            "bgp",
            "load",
            "--collector",
            "rrc00",
            file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    db
}

/// The update file of slot `slot` (RIS layout) holding `records`.
fn updates_file(dir: &Path, slot: u32, records: &[Vec<u8>]) -> PathBuf {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::from(slot)).unwrap();
    let name = format!(
        "updates.{:04}{:02}{:02}.{:02}{:02}.gz",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    let rrc = dir.join("rrc00");
    std::fs::create_dir_all(&rrc).unwrap();
    let path = rrc.join(name);
    std::fs::write(&path, common::gzip(&records.concat())).unwrap();
    path
}

#[test]
fn live_rows_show_in_changes_within_seconds_and_the_update_file_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    let slot = (now - 600) / 300 * 300;
    let dump = slot - 600;
    let db = db_with_dump(dir.path(), dump);
    let (p1, p2) = (peer("192.0.2.1", 64500), peer("192.0.2.2", 64501));
    // In the slot: peer 1 moves to AS20485, peer 2 withdraws, peer 2's session goes down
    // and up again (it then has no route until it announces one).
    let t = f64::from(slot + 20);
    let messages = [
        ris_update(
            t,
            "rrc00",
            "192.0.2.1",
            64500,
            &[64500, 20485, 131_279],
            &["175.45.176.0/24"],
            &[],
        ),
        ris_update(
            t + 1.0,
            "rrc00",
            "192.0.2.2",
            64501,
            &[],
            &[],
            &["175.45.176.0/24"],
        ),
        ris_peer_state(t + 2.0, "rrc00", "192.0.2.2", 64501, false),
        ris_peer_state(t + 3.0, "rrc00", "192.0.2.2", 64501, true),
    ];
    let server = ReplayServer::start(vec![messages.iter().cloned().map(Step::Text).collect()]);
    let started = Instant::now();
    let mut live = Live::start(&db, &server.url(), &[]);
    wait_until("the live rows", Duration::from_secs(20), || {
        count(
            &db,
            "SELECT count(*) FROM bgp_updates u JOIN mrt_files f ON f.id = u.file_id WHERE f.provisional",
        ) == 2
            && count(&db, "SELECT count(*) FROM peer_state_changes") == 2
    });
    let changes = bgp_changes(&db);
    eprintln!("live rows and report after {:?}", started.elapsed());
    assert!(
        changes.contains(&"bgp,175.45.176.0/24,+AS20485".to_owned()),
        "{changes:?}"
    );
    assert!(live.stop().success(), "{}", live.log());
    // The subscription: the target prefix and its more-specifics, at the collector asked
    // for, on a URL that names the client.
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen[0].uri.ends_with("/v1/ws/?client=nkpath"),
        "{}",
        seen[0].uri
    );
    let sub: serde_json::Value = serde_json::from_str(&seen[0].texts[0]).unwrap();
    assert_eq!(
        sub,
        serde_json::json!({"type": "ris_subscribe", "data": {
            "host": "rrc00", "prefix": "175.45.176.0/22", "moreSpecific": true}})
    );
    assert!(live.log().contains(&format!(
        "RIS Live {}?client=nkpath: connected",
        server.url()
    )));

    // The archive's update file of the slot holds the same messages and one RIS Live never
    // delivered: loading it replaces the provisional rows.
    let file = updates_file(
        dir.path(),
        slot,
        &[
            update(
                slot + 20,
                p1,
                &["175.45.176.0/24"],
                "64500 20485 131279",
                &[],
            ),
            update(slot + 21, p2, &[], "", &["175.45.176.0/24"]),
            common::state_change(
                slot + 22,
                p2,
                bgpkit_parser::models::BgpState::Established,
                bgpkit_parser::models::BgpState::Idle,
            ),
            common::state_change(
                slot + 23,
                p2,
                bgpkit_parser::models::BgpState::Idle,
                bgpkit_parser::models::BgpState::Established,
            ),
            update(
                slot + 200,
                p2,
                &["175.45.176.0/24"],
                "64501 20485 131279",
                &[],
            ),
        ],
    );
    let (ok, out, err) = collector(&db, &["bgp", "load", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("replaced 4 provisional RIS Live rows of collector rrc00"),
        "{out}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM mrt_files WHERE provisional"),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM bgp_updates"), 3);
    assert_eq!(count(&db, "SELECT count(*) FROM peer_state_changes"), 2);
    let after = bgp_changes(&db);
    assert_eq!(
        after.iter().filter(|c| c.ends_with("+AS20485")).count(),
        1,
        "{after:?}"
    );
    assert_eq!(
        after.iter().filter(|c| c.ends_with("-AS4837")).count(),
        1,
        "{after:?}"
    );

    // The state never goes back: messages for the period the file covers are not stored
    // again, a later one is.
    let late = ris_update(
        f64::from(slot + 100),
        "rrc00",
        "192.0.2.1",
        64500,
        &[64500, 4837, 131_279],
        &["175.45.176.0/24"],
        &[],
    );
    let later = ris_update(
        f64::from(slot + 400),
        "rrc00",
        "192.0.2.1",
        64500,
        &[64500, 4837, 131_279],
        &["175.45.176.0/24"],
        &[],
    );
    let server = ReplayServer::start(vec![vec![Step::Text(late), Step::Text(later)]]);
    let mut live = Live::start(&db, &server.url(), &[]);
    wait_until("the later row", Duration::from_secs(20), || {
        count(&db, "SELECT count(*) FROM bgp_updates") == 4
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(live.stop().success());
    let provisional = format!(
        "SELECT count(*) FROM bgp_updates u JOIN mrt_files f ON f.id = u.file_id
         WHERE f.provisional AND u.time = {}",
        slot + 400
    );
    assert_eq!(count(&db, &provisional), 1);
    assert!(
        live.log()
            .contains("rows not stored: their collector's update files are loaded for that time"),
        "{}",
        live.log()
    );
}

#[test]
fn garbage_stalls_and_closes_are_logged_with_the_url_and_the_client_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    let db = db_with_dump(dir.path(), now - 900);
    let msg = |t: u32, upstream: u32| {
        ris_update(
            f64::from(t),
            "rrc00",
            "192.0.2.1",
            64500,
            &[64500, upstream, 131_279],
            &["175.45.176.0/24"],
            &[],
        )
    };
    let server = ReplayServer::start(vec![
        vec![
            Step::Text("not json at all".into()),
            Step::Binary,
            Step::Text(r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rrc00"}}"#.into()),
            Step::Text(msg(now - 60, 20485)),
            Step::Close,
        ],
        vec![Step::Stall],
        vec![Step::Text(msg(now - 30, 12389))],
    ]);
    let url = server.url();
    let mut live = Live::start(&db, &url, &["--ris-live-stall", "2"]);
    wait_until(
        "both updates, over three connections",
        Duration::from_secs(40),
        || count(&db, "SELECT count(*) FROM bgp_updates") == 2,
    );
    assert!(live.stop().success());
    let log = live.log();
    let url = format!("RIS Live {url}?client=nkpath");
    for want in [
        "message skipped, not understood (not a JSON object",
        "a binary message of 4 bytes skipped",
        "message skipped, not understood (field peer",
        "the server closed the connection",
        "nothing received for 2 s: the connection is taken for dead",
        "reconnecting in",
    ] {
        assert!(
            log.lines().any(|l| l.contains(&url) && l.contains(want)),
            "no line with {url:?} and {want:?} in:\n{log}"
        );
    }
    assert!(server.connections() >= 3);
}

/// `GET /v1/health` over plain HTTP/1.0: the status code.
fn health(addr: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(addr).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    tcp.write_all(b"GET /v1/health HTTP/1.0\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn serve_follows_ris_live_through_faults_and_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    let db = db_with_dump(dir.path(), now - 900);
    let msg = |t: u32, upstream: u32| {
        ris_update(
            f64::from(t),
            "rrc00",
            "192.0.2.1",
            64500,
            &[64500, upstream, 131_279],
            &["175.45.176.0/24"],
            &[],
        )
    };
    let ris = ReplayServer::start(vec![
        vec![
            Step::Text("{\"type\": 1}".into()),
            Step::Text(msg(now - 60, 20485)),
            Step::Close,
        ],
        vec![Step::Text(msg(now - 30, 12389))],
    ]);
    let server = common::server::Server::start(
        &db,
        "127.0.0.1:0",
        &["--ris-live", &ris.url(), "--ris-live-host", "rrc00"],
    );
    let mut answered = 0;
    wait_until(
        "both updates through serve",
        Duration::from_secs(30),
        || {
            assert_eq!(health(&server.addr), Some(200), "{}", server.log());
            answered += 1;
            count(&db, "SELECT count(*) FROM bgp_updates") == 2
        },
    );
    assert!(answered > 0);
    let log = server.log();
    let url = format!("RIS Live {}?client=nkpath", ris.url());
    for want in [
        "message skipped, not understood",
        "the server closed the connection",
    ] {
        assert!(
            log.lines().any(|l| l.contains(&url) && l.contains(want)),
            "no line with {url:?} and {want:?} in:\n{log}"
        );
    }
}
