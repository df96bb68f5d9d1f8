//! Issue 10, the collector's side: what it refuses at ingest (implausible times, targets
//! outside the target prefixes, oversized results), that no stored row can break a report,
//! that agent-supplied text reaches a terminal escaped, and that half-sent connections
//! neither pile up nor lock out health checks and uploads.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::server::Server;
use nkpath_collector::Db;
use nkpath_collector::server::{AppState, app};
use nkpath_proto::{UploadAck, decode_slice};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use tower::ServiceExt as _;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

fn ping(id: Uuid, agent: &str, target: &str, started_at: &str) -> Value {
    json!({
        "kind": "ping",
        "schema_version": "1.0",
        "result_id": id,
        "agent_id": agent,
        "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7",
        "target": target,
        "started_at": started_at,
        "sent": 2,
        "received": 1,
        "rtts_us": [212_000]
    })
}

/// The golden trace of the wire format, as agent `agent`'s result `id`.
fn trace(id: Uuid, agent: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/golden/trace_result.json");
    let mut trace: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    trace["kind"] = json!("trace");
    trace["result_id"] = json!(id);
    trace["agent_id"] = json!(agent);
    trace
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn batch_text(agent: &str, results: &[Value], sent_at: &str) -> Vec<u8> {
    let results: Vec<String> = results.iter().map(Value::to_string).collect();
    format!(
        r#"{{"schema_version":"1.0","agent_id":"{agent}","agent_version":"0.1.0","batch_id":"{}","sent_at":"{sent_at}","results":[{}]}}"#,
        Uuid::new_v4(),
        results.join(",")
    )
    .into_bytes()
}

fn batch(agent: &str, results: &[Value]) -> Vec<u8> {
    batch_text(agent, results, &rfc3339(OffsetDateTime::now_utc()))
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    app: Router,
    token: String,
}

impl Fixture {
    fn new(max_body: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.db");
        let mut db = Db::open(&path).unwrap();
        let token = db.add_agent("vp-1").unwrap().token.expose().to_owned();
        let app = app(AppState::with_limits(db, max_body, Duration::from_secs(30)));
        Self {
            _dir: dir,
            path,
            app,
            token,
        }
    }

    async fn post(&self, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let request = Request::post("/v1/results")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    async fn upload(&self, body: Vec<u8>) -> UploadAck {
        let (status, body) = self.post(body).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        decode_slice(&body).unwrap()
    }

    fn stored_ids(&self) -> Vec<String> {
        Db::open(&self.path)
            .unwrap()
            .sql_for_tests()
            .prepare("SELECT result_id FROM results ORDER BY result_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn dump(&self) -> String {
        common::dump_all(&Db::open(&self.path).unwrap())
    }
}

/// Refused results as (field, reason), in batch order.
fn refusals(ack: &UploadAck) -> Vec<(String, String)> {
    ack.refused
        .iter()
        .map(|r| (r.field.clone(), r.reason.clone()))
        .collect()
}

#[tokio::test]
async fn implausible_times_are_refused_per_result_and_the_rest_is_stored() {
    let f = Fixture::new(1 << 20);
    let now = OffsetDateTime::now_utc();
    let times = [
        rfc3339(now - time::Duration::hours(1)),
        "9999-12-31T00:00:00Z".to_owned(),
        rfc3339(now + time::Duration::days(2)),
        "1999-12-31T23:59:59Z".to_owned(),
        // Year -1 in UTC.
        "0000-01-01T00:00:00+01:00".to_owned(),
        // Inside the tolerance for an agent's clock ahead of the collector's.
        rfc3339(now + time::Duration::hours(2)),
    ];
    let ids: Vec<Uuid> = times.iter().map(|_| Uuid::new_v4()).collect();
    let results: Vec<Value> = ids
        .iter()
        .zip(&times)
        .map(|(id, t)| ping(*id, "vp-1", "175.45.176.1", t))
        .collect();
    let ack = f.upload(batch("vp-1", &results)).await;
    assert_eq!(ack.accepted, vec![ids[0], ids[5]]);
    let refused = refusals(&ack);
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "results[1].started_at",
            "results[2].started_at",
            "results[3].started_at",
            "results[4].started_at"
        ]
    );
    assert!(refused[0].1.contains("in the future"), "{refused:?}");
    assert!(refused[2].1.contains("before 2000-01-01"), "{refused:?}");
    let mut expected = vec![ids[0].to_string(), ids[5].to_string()];
    expected.sort();
    assert_eq!(f.stored_ids(), expected);
}

#[tokio::test]
async fn year_10000_in_utc_is_refused_with_its_field_not_a_500() {
    let f = Fixture::new(1 << 20);
    let good = Uuid::new_v4();
    let bad = Uuid::new_v4();
    let now = rfc3339(OffsetDateTime::now_utc());
    let ack = f
        .upload(batch(
            "vp-1",
            &[
                ping(bad, "vp-1", "175.45.176.1", "9999-12-31T23:59:59-23:59"),
                ping(good, "vp-1", "175.45.176.1", &now),
            ],
        ))
        .await;
    assert_eq!(ack.accepted, vec![good]);
    assert_eq!(ack.refused.len(), 1);
    assert_eq!(ack.refused[0].id, Some(bad), "the agent can drop it by id");
    assert_eq!(ack.refused[0].field, "results[0].started_at");
    assert!(ack.refused[0].reason.contains("year 10000"), "{ack:?}");

    // In the envelope, the batch itself is refused, naming the field.
    let before = f.dump();
    let (status, body) = f
        .post(batch_text(
            "vp-1",
            &[ping(Uuid::new_v4(), "vp-1", "175.45.176.1", &now)],
            "9999-12-31T23:59:59-23:59",
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: Value = serde_json::from_slice(&body).unwrap();
    let error = error["error"].as_str().unwrap();
    assert!(
        error.contains("sent_at") && error.contains("year 10000"),
        "{error}"
    );
    assert_eq!(f.dump(), before, "a refused batch changes nothing");
}

#[tokio::test]
async fn results_outside_the_targets_or_too_big_are_refused() {
    let f = Fixture::new(16 << 20);
    let now = rfc3339(OffsetDateTime::now_utc());
    let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let mut labels = trace(ids[4], "vp-1");
    let label = json!({"label": 3, "tc": 0, "bottom_of_stack": false, "ttl": 1});
    labels["hops"][2]["probes"][0]["reply"]["mpls_labels"] =
        Value::Array(vec![label; nkpath_proto::limits::MPLS_LABELS.end() + 1]);
    let mut padded = ping(ids[5], "vp-1", "175.45.176.2", &now);
    padded["field_of_a_later_minor_version"] =
        json!("x".repeat(nkpath_proto::limits::RESULT_BYTES));
    let ack = f
        .upload(batch(
            "vp-1",
            &[
                ping(ids[0], "vp-1", "8.8.8.8", &now),
                ping(ids[1], "vp-1", "127.0.0.1", &now),
                ping(ids[2], "vp-1", "175.45.179.255", &now),
                trace(ids[3], "vp-1"),
                labels,
                padded,
            ],
        ))
        .await;
    assert_eq!(ack.accepted, vec![ids[2], ids[3]]);
    let refused = refusals(&ack);
    let fields: Vec<&str> = refused.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "results[0].target",
            "results[1].target",
            "results[4].hops[2].probes[0].reply.mpls_labels",
            "results[5]"
        ]
    );
    assert!(refused[0].1.contains("175.45.176.0/22"), "{refused:?}");
    assert!(refused[3].1.contains("bytes"), "{refused:?}");
    assert_eq!(ack.refused[3].id, Some(ids[5]));
    let mut expected = vec![ids[2].to_string(), ids[3].to_string()];
    expected.sort();
    assert_eq!(f.stored_ids(), expected);
}

fn collector(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A database whose good trace is joined by rows no upload could store: a trace dated
/// 9999-12-31T23:59:59Z (the last second the time type holds) and one that no longer decodes.
fn poisoned_db(dir: &Path) -> PathBuf {
    let path = dir.join("c.db");
    let mut db = Db::open(&path).unwrap();
    let good = trace(Uuid::new_v4(), "vp-fra1").to_string();
    let report = db.import_results(good.as_bytes()).unwrap();
    assert_eq!(report.stored, 1, "{report:?}");
    db.sql_for_tests()
        .execute_batch(
            "INSERT INTO results (result_id, agent_id, round_id, target, source, protocol,
                                  started_at, received_at, json, kind)
             SELECT '00000000-0000-4000-8000-000000009999', agent_id, round_id, target, source,
                    protocol, '9999-12-31T23:59:59.000000Z', received_at,
                    replace(replace(json, '2017-10-01T00:00:00Z', '9999-12-31T23:59:59Z'),
                            result_id, '00000000-0000-4000-8000-000000009999'),
                    kind
             FROM results;
             INSERT INTO results (result_id, agent_id, round_id, target, source, protocol,
                                  started_at, received_at, json, kind)
             SELECT '00000000-0000-4000-8000-00000000bad0', agent_id, round_id, target, source,
                    protocol, '2017-10-02T00:00:00.000000Z', received_at,
                    '{\"kind\": \"trace\", \"schema_version\": \"1.0\"}', kind
             FROM results WHERE result_id <> '00000000-0000-4000-8000-000000009999';",
        )
        .unwrap();
    path
}

#[test]
fn no_stored_row_breaks_a_report_or_an_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = poisoned_db(dir.path());
    let out_dir = dir.path().join("out");
    let out_arg = out_dir.to_str().unwrap();
    let html = dir.path().join("report.html");
    let html_arg = html.to_str().unwrap();
    let runs: [&[&str]; 8] = [
        &["report", "upstreams", "--no-dns"],
        &[
            "report",
            "upstreams",
            "--no-dns",
            "--bin",
            "1h",
            "--format",
            "json",
        ],
        &["report", "mismatches", "--no-dns"],
        &["report", "mismatches", "--no-dns", "--each"],
        &["report", "html", "--no-dns", "--out", html_arg],
        &["report", "changes", "--no-dns"],
        &[
            "report",
            "path",
            "--agent",
            "vp-fra1",
            "--target",
            "175.45.176.1",
            "--no-dns",
        ],
        &["export", "--out", out_arg, "--no-dns"],
    ];
    for args in runs {
        let out = collector(&db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        for id in [
            "00000000-0000-4000-8000-000000009999",
            "00000000-0000-4000-8000-00000000bad0",
        ] {
            assert!(
                stderr.contains(id),
                "{args:?} does not name skipped {id}: {stderr}"
            );
        }
        assert!(stderr.contains("skipped"), "{args:?}: {stderr}");
        // stderr is a pipe here: no colour codes in the log lines.
        assert!(
            !stderr.contains('\x1b'),
            "{args:?}: ANSI codes in {stderr:?}"
        );
    }
    let traces = std::fs::read_to_string(out_dir.join("traces.csv")).unwrap();
    assert_eq!(
        traces.lines().count(),
        2,
        "header and the good trace: {traces}"
    );
    assert!(traces.contains("2017-10-01"), "{traces}");
}

#[test]
fn agent_supplied_text_is_escaped_on_terminal_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut db = Db::open(&path).unwrap();
    db.add_agent("vp-fra1").unwrap();
    let mut evil = trace(Uuid::new_v4(), "vp-fra1");
    evil["annotations"][0]["name"] = json!("gw\u{1b}[2J\u{1b}]0;owned\u{7}.example");
    let text = evil.to_string();
    assert_eq!(db.import_results(text.as_bytes()).unwrap().stored, 1);
    db.sql_for_tests()
        .execute(
            "UPDATE agents SET agent_version = ?1, last_seen_at = '2025-01-01T00:00:00Z'",
            ["0.1.0\u{1b}[31m\tred\r\n"],
        )
        .unwrap();
    drop(db);

    let list = collector(&path, &["agent", "list"]);
    assert!(list.status.success());
    let stdout = String::from_utf8(list.stdout).unwrap();
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\r'),
        "{stdout:?}"
    );
    assert!(stdout.contains(r"0.1.0\u{1b}[31m\tred\r\n"), "{stdout:?}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "one header, one agent: {stdout:?}"
    );
    assert_eq!(
        stdout.lines().nth(1).unwrap().split('\t').count(),
        7,
        "a tab in a value cannot add a column: {stdout:?}"
    );

    let args = [
        "report",
        "path",
        "--agent",
        "vp-fra1",
        "--target",
        "175.45.176.1",
        "--no-dns",
    ];
    let table = collector(&path, &args);
    assert!(table.status.success());
    let stdout = String::from_utf8(table.stdout).unwrap();
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(stdout.contains(r"gw\u{1b}[2J"), "{stdout:?}");
    // JSON keeps the exact text (JSON escapes control characters itself).
    let json = collector(&path, &[&args[..], &["--format", "json"]].concat());
    let stdout = String::from_utf8(json.stdout).unwrap();
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    let parsed: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        parsed.to_string().contains("gw\\u001b[2J"),
        "the exact name survives in JSON: {stdout}"
    );
}

/// Whether the server closed `stream` (EOF or reset) rather than leaving it open until the
/// generous read timeout; `false` means still open.
fn closed_by_server(mut stream: &TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or similar answer before the close is fine; keep reading to the close.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_closed_and_do_not_lock_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = {
        let mut db = Db::open(&db).unwrap();
        db.add_agent("vp-1").unwrap().token.expose().to_owned()
    };
    let server = Server::start(
        &db,
        "127.0.0.1:0",
        &[
            "--header-timeout",
            "2",
            "--max-connections",
            "100",
            "--max-connections-per-ip",
            "20",
        ],
    );
    // 300 connections from 127.0.0.1 that start a request and never finish its headers:
    // more than the per-address cap, and more than the total cap.
    let loris: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            s.write_all(b"POST /v1/results HTTP/1.1\r\nHost: collector\r\nContent-Type: app")
                .unwrap();
            s
        })
        .collect();

    // Another address still gets its health check and its upload answered.
    let client = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let health = client
        .get(format!("http://{}/v1/health", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK.as_u16());
    let id = Uuid::new_v4();
    let now = rfc3339(OffsetDateTime::now_utc().to_offset(UtcOffset::UTC));
    let response = client
        .post(format!("http://{}/v1/results", server.addr))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(batch("vp-1", &[ping(id, "vp-1", "175.45.176.1", &now)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK.as_u16());
    let ack: UploadAck = decode_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(ack.accepted, vec![id]);

    // Every half-sent connection is closed by the server: those over the caps at once,
    // the others when their header time runs out.
    let still_open = tokio::task::spawn_blocking(move || {
        loris.into_iter().filter(|s| !closed_by_server(s)).count()
    })
    .await
    .unwrap();
    assert_eq!(still_open, 0, "half-sent connections left open");
    let log = server.log();
    assert!(
        log.contains("connection refused") && log.contains("127.0.0.1"),
        "refused accepts are logged: {log}"
    );
}

/// Issue 20: `export --out DIR` followed a symlink at `DIR/traces.csv` and overwrote its
/// target, and replaced the files of a directory in use without a word. A directory that
/// holds anything is refused without `--force`; with it, the symlink itself is replaced by
/// the new file and what it pointed to is left alone.
#[test]
fn export_refuses_a_used_directory_and_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let db = poisoned_db(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let precious = dir.path().join("precious.txt");
    std::fs::write(&precious, "not an export\n").unwrap();
    std::os::unix::fs::symlink(&precious, out.join("traces.csv")).unwrap();
    let out_arg = out.to_str().unwrap();

    let refused = collector(&db, &["export", "--out", out_arg, "--no-dns"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "not an export\n"
    );

    let forced = collector(&db, &["export", "--out", out_arg, "--no-dns", "--force"]);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        "not an export\n"
    );
    let traces = out.join("traces.csv");
    assert!(std::fs::symlink_metadata(&traces).unwrap().is_file());
    assert!(
        std::fs::read_to_string(&traces)
            .unwrap()
            .starts_with("result_id,")
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "as_paths.csv",
            "bgp_upstreams.csv",
            "export.json",
            "hops.csv",
            "traces.csv"
        ],
        "no temporary file left behind"
    );
}
