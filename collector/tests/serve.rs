//! `nkpath-collector serve`: the upload API driven through the router with `oneshot`, and the
//! real binary on 127.0.0.1 (loopback only) for TLS, the agent commands and kill -9.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::server::Server;
use nkpath_collector::Db;
use nkpath_collector::server::{AppState, app};
use nkpath_proto::{UploadAck, decode_slice};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

/// A ping result of `agent` with id `id`, as the agent spools it.
fn ping(id: Uuid, agent: &str) -> Value {
    json!({
        "kind": "ping",
        "schema_version": "1.0",
        "result_id": id,
        "agent_id": agent,
        "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7",
        "target": "175.45.176.1",
        "started_at": "2017-10-01T00:00:10Z",
        "sent": 4,
        "received": 3,
        "rtts_us": [212_000, 215_500, 213_250]
    })
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// An upload batch of `agent` sent at `sent_at`, results given as JSON text.
fn batch_at(agent: &str, results: &[String], sent_at: OffsetDateTime) -> Vec<u8> {
    let results = results.join(",");
    format!(
        r#"{{"schema_version":"1.0","agent_id":"{agent}","agent_version":"0.1.0","batch_id":"{}","sent_at":"{}","results":[{results}]}}"#,
        Uuid::new_v4(),
        rfc3339(sent_at)
    )
    .into_bytes()
}

fn batch(agent: &str, results: &[Value]) -> Vec<u8> {
    let texts: Vec<String> = results.iter().map(Value::to_string).collect();
    batch_at(agent, &texts, OffsetDateTime::now_utc())
}

/// A database with agents vp-1 and vp-2, and the router over it.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    app: Router,
    token: String,
    token2: String,
}

impl Fixture {
    fn new() -> Self {
        Self::with_max_body(64 * 1024)
    }

    fn with_max_body(max_body: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.db");
        let mut db = Db::open(&path).unwrap();
        let token = db.add_agent("vp-1").unwrap().token.expose().to_owned();
        let token2 = db.add_agent("vp-2").unwrap().token.expose().to_owned();
        let app = app(AppState::with_limits(db, max_body, Duration::from_secs(10)));
        Self {
            _dir: dir,
            path,
            app,
            token,
            token2,
        }
    }

    /// A second connection to the same file, for checking and changing it from outside.
    fn db(&self) -> Db {
        Db::open(&self.path).unwrap()
    }

    fn dump(&self) -> String {
        common::dump_all(&self.db())
    }

    async fn post(
        &self,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method("POST").uri("/v1/results");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    /// Uploads as vp-1 and decodes the ack.
    async fn upload(&self, body: Vec<u8>) -> UploadAck {
        let (status, body) = self
            .post(Some(&self.token), Some("application/json"), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        decode_slice(&body).unwrap()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db()
            .sql_for_tests()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }
}

fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let f = Fixture::new();
    // Something stored first, so that "nothing changed" is about a non-empty database.
    f.upload(batch("vp-1", &[ping(Uuid::new_v4(), "vp-1")]))
        .await;
    let mut db = f.db();
    let old = db.add_agent("vp-old").unwrap().token.expose().to_owned();
    db.revoke_agent("vp-old").unwrap();
    drop(db);
    let before = f.dump();

    let good = || batch("vp-1", &[ping(Uuid::new_v4(), "vp-1")]);
    let json = Some("application/json");

    for (token, what) in [
        (None, "no token"),
        (Some("not-a-token"), "unknown token"),
        (Some(old.as_str()), "revoked token"),
    ] {
        let (status, body) = f.post(token, json, good()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(!error_text(&body).is_empty(), "{what}");
    }
    // Another scheme than Bearer.
    let response = f
        .app
        .clone()
        .oneshot(
            Request::post("/v1/results")
                .header(header::AUTHORIZATION, format!("Basic {}", f.token))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(good()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

    let token = Some(f.token.as_str());
    for (body, what) in [
        (b"not json".to_vec(), "not JSON"),
        (b"[1, 2]".to_vec(), "not an object"),
        (
            br#"{"schema_version":"1.0","agent_id":"vp-1"}"#.to_vec(),
            "no results",
        ),
        (batch("vp-1", &[]), "empty batch"),
        (
            String::from_utf8(good())
                .unwrap()
                .replacen(r#""schema_version":"1.0""#, r#""schema_version":"2.0""#, 1)
                .into_bytes(),
            "unsupported major version",
        ),
        (
            String::from_utf8(good())
                .unwrap()
                .replacen(r#""agent_id":"vp-1""#, r#""agent_id":"a b""#, 1)
                .into_bytes(),
            "invalid envelope agent id",
        ),
    ] {
        let (status, body) = f.post(token, json, body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(error_text(&body).contains("not an upload batch"), "{what}");
    }
    let (status, body) = f
        .post(
            token,
            json,
            String::from_utf8(good())
                .unwrap()
                .replacen("\"1.0\"", "\"2.0\"", 1)
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_text(&body).contains("2.0"), "names the version");

    // 1000 results of ~300 bytes: over the 64 KiB limit of the fixture.
    let many: Vec<Value> = (0..1000).map(|_| ping(Uuid::new_v4(), "vp-1")).collect();
    let big = batch("vp-1", &many);
    assert!(big.len() > 64 * 1024);
    let (status, body) = f.post(token, json, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(&body).contains("larger"), "{body:?}");

    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, _) = f.post(token, ct, good()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    assert_eq!(f.dump(), before, "a refused request changed the database");

    // Content-Type parameters are fine; the same request is then stored.
    let (status, _) = f
        .post(token, Some("application/json; charset=utf-8"), good())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(f.dump(), before, "the accepted upload is stored");
}

#[tokio::test]
async fn refused_requests_leave_the_database_as_it_was() {
    let f = Fixture::new();
    f.upload(batch("vp-1", &[ping(Uuid::new_v4(), "vp-1")]))
        .await;
    let before = f.dump();
    let json = Some("application/json");
    let good = || batch("vp-1", &[ping(Uuid::new_v4(), "vp-1")]);
    let many: Vec<Value> = (0..1000).map(|_| ping(Uuid::new_v4(), "vp-1")).collect();
    let token = Some(f.token.as_str());
    let cases = [
        (None, json, good(), StatusCode::UNAUTHORIZED),
        (Some("wrong"), json, good(), StatusCode::UNAUTHORIZED),
        (token, json, b"{oops".to_vec(), StatusCode::BAD_REQUEST),
        (
            token,
            json,
            batch("vp-1", &many),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            token,
            Some("text/plain"),
            good(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (token, ct, body, expected) in cases {
        let (status, _) = f.post(token, ct, body).await;
        assert_eq!(status, expected);
        assert_eq!(f.dump(), before, "a {expected} changed the database");
    }
}

#[tokio::test]
async fn a_bad_result_is_refused_with_its_field_and_the_others_are_stored() {
    let f = Fixture::new();
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let mut bad = ping(ids[1], "vp-1");
    bad["received"] = json!(5); // more than sent
    let mut no_id = ping(ids[3], "vp-1");
    no_id["result_id"] = json!("not-a-uuid");
    let ack = f
        .upload(batch(
            "vp-1",
            &[ping(ids[0], "vp-1"), bad, ping(ids[2], "vp-1"), no_id],
        ))
        .await;
    assert_eq!(ack.accepted, vec![ids[0], ids[2]]);
    assert_eq!(ack.refused.len(), 2, "{:?}", ack.refused);
    assert_eq!(ack.refused[0].id, Some(ids[1]));
    assert_eq!(ack.refused[0].field, "results[1].received");
    assert!(
        ack.refused[0].reason.contains("more than sent"),
        "{}",
        ack.refused[0].reason
    );
    assert_eq!(ack.refused[1].id, None, "the id cannot be read");
    assert_eq!(ack.refused[1].field, "results[3].result_id");

    let stored: Vec<String> = f
        .db()
        .sql_for_tests()
        .prepare("SELECT result_id FROM results ORDER BY result_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut expected = vec![ids[0].to_string(), ids[2].to_string()];
    expected.sort();
    assert_eq!(stored, expected);
    assert_eq!(f.count("SELECT count(*) FROM receipts"), 2);
}

#[tokio::test]
async fn resending_a_result_is_accepted_without_a_second_copy() {
    let f = Fixture::new();
    let id = Uuid::new_v4();
    let text = ping(id, "vp-1").to_string();
    let first = f
        .upload(batch_at(
            "vp-1",
            std::slice::from_ref(&text),
            OffsetDateTime::now_utc(),
        ))
        .await;
    assert_eq!(first.accepted, vec![id]);
    let stored = f.dump();
    // The same text, then the same content spaced differently, in new batches.
    let respaced = serde_json::to_string_pretty(&ping(id, "vp-1")).unwrap();
    for text in [text, respaced] {
        let again = f
            .upload(batch_at("vp-1", &[text], OffsetDateTime::now_utc()))
            .await;
        assert_eq!(again.accepted, vec![id]);
        assert!(again.refused.is_empty());
    }
    // Only last_seen_at of the agent changes.
    assert_eq!(f.count("SELECT count(*) FROM results"), 1);
    assert_eq!(f.count("SELECT count(*) FROM receipts"), 1);
    let strip = |d: &str| {
        d.lines()
            .filter(|l| !l.contains("\"vp-1\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&f.dump()), strip(&stored));
}

/// An agent upgraded before its collector: the fields this collector does not know are
/// kept beside the result (up to 16 KiB per result), a result with more is refused alone.
#[tokio::test]
async fn fields_of_a_newer_minor_version_are_kept_and_too_many_are_refused() {
    let f = Fixture::new();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let mut newer = ping(ids[0], "vp-1");
    newer["schema_version"] = json!("1.7");
    newer["loss_pattern"] = json!({"bursts": [1, 2]});
    let mut padded = ping(ids[1], "vp-1");
    padded["small"] = json!(1);
    padded["blob"] = json!("x".repeat(16 * 1024));
    let ack = f
        .upload(batch(
            "vp-1",
            &[newer.clone(), padded, ping(ids[2], "vp-1")],
        ))
        .await;
    assert_eq!(ack.accepted, vec![ids[0], ids[2]]);
    assert_eq!(ack.refused.len(), 1, "{:?}", ack.refused);
    assert_eq!(ack.refused[0].id, Some(ids[1]));
    assert_eq!(ack.refused[0].field, "results[1].blob");
    assert!(
        ack.refused[0].reason.contains("does not know"),
        "{}",
        ack.refused[0].reason
    );

    let (json, extra): (String, Option<String>) = f
        .db()
        .sql_for_tests()
        .query_row(
            "SELECT json, extra FROM results WHERE result_id = ?1",
            [ids[0].to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(json.starts_with(r#"{"kind":"ping","#), "{json}");
    assert_eq!(
        extra.as_deref(),
        Some(r#"{"/loss_pattern":{"bursts":[1,2]}}"#)
    );
    assert_eq!(
        nkpath_collector::store::results::with_extra(&json, extra.as_deref()).unwrap(),
        newer
    );

    // Sent again as it was: accepted, no second copy; with other unknown values: refused.
    let again = f.upload(batch("vp-1", &[newer.clone()])).await;
    assert_eq!(again.accepted, vec![ids[0]]);
    newer["loss_pattern"] = json!({"bursts": [3]});
    let changed = f.upload(batch("vp-1", &[newer])).await;
    assert_eq!(changed.refused.len(), 1);
    assert!(changed.refused[0].reason.contains("different content"));
    assert_eq!(f.count("SELECT count(*) FROM results"), 2);
}

#[tokio::test]
async fn different_content_under_a_stored_id_is_refused() {
    let f = Fixture::new();
    let id = Uuid::new_v4();
    f.upload(batch("vp-1", &[ping(id, "vp-1")])).await;
    let before = f.dump();
    let mut changed = ping(id, "vp-1");
    changed["received"] = json!(4);
    changed["rtts_us"] = json!([1, 2, 3, 4]);
    let ack = f.upload(batch("vp-1", &[changed])).await;
    assert!(ack.accepted.is_empty());
    assert_eq!(ack.refused.len(), 1);
    assert_eq!(ack.refused[0].id, Some(id));
    assert_eq!(ack.refused[0].field, "results[0].result_id");
    assert!(ack.refused[0].reason.contains("different content"));
    let json: String = f
        .db()
        .sql_for_tests()
        .query_row("SELECT json FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        nkpath_proto::decode::<nkpath_proto::ResultRecord>(&json).unwrap(),
        nkpath_proto::decode(&ping(id, "vp-1").to_string()).unwrap(),
        "the stored one is kept"
    );

    // The same id from another agent (with its own token and agent id): refused too.
    let (status, body) = f
        .post(
            Some(&f.token2),
            Some("application/json"),
            batch("vp-2", &[ping(id, "vp-2")]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ack: UploadAck = decode_slice(&body).unwrap();
    assert!(ack.accepted.is_empty());
    assert_eq!(ack.refused[0].field, "results[0].result_id");
    assert!(ack.refused[0].reason.contains("another agent"));
    // Scheduling is on by default: an upload, even one whose results are all refused, gets
    // its agent's next round booked (rows naming the agent, and their count).
    let strip = |d: &str| {
        d.lines()
            .filter(|l| !l.contains("\"vp-1\"") && !l.contains("\"vp-2\""))
            .filter(|l| !l.starts_with("== fleet_bookings"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&f.dump()), strip(&before));
}

#[tokio::test]
async fn results_of_another_agent_are_refused() {
    let f = Fixture::new();
    let mine = Uuid::new_v4();
    let theirs = Uuid::new_v4();
    // vp-1's token, one result claiming to be vp-2's.
    let ack = f
        .upload(batch("vp-1", &[ping(mine, "vp-1"), ping(theirs, "vp-2")]))
        .await;
    assert_eq!(ack.accepted, vec![mine]);
    assert_eq!(ack.refused.len(), 1);
    assert_eq!(ack.refused[0].id, Some(theirs));
    assert_eq!(ack.refused[0].field, "results[1].agent_id");
    assert_eq!(
        f.count(&format!(
            "SELECT count(*) FROM results WHERE result_id = '{theirs}'"
        )),
        0
    );
}

#[tokio::test]
async fn the_agent_clock_offset_is_stored_and_flagged_over_a_minute() {
    let f = Fixture::new();
    let now = OffsetDateTime::now_utc();
    let cases = [
        ("behind", now - time::Duration::minutes(5), true),
        ("ahead", now + time::Duration::minutes(3), true),
        ("in time", now, false),
    ];
    for (what, sent_at, _) in &cases {
        let id = Uuid::new_v4();
        let ack = f
            .upload(batch_at("vp-1", &[ping(id, "vp-1").to_string()], *sent_at))
            .await;
        assert_eq!(ack.accepted, vec![id], "{what}");
    }
    let rows: Vec<(i64, bool, String, String)> = f
        .db()
        .sql_for_tests()
        .prepare(
            "SELECT clock_offset_ms, clock_flagged, sent_at, received_at FROM receipts
             ORDER BY received_at",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 3);
    for ((what, _, flagged), (offset, stored_flag, sent, received)) in cases.iter().zip(&rows) {
        // The stored offset is exactly received_at - sent_at as stored.
        let sent = OffsetDateTime::parse(sent, &Rfc3339).unwrap();
        let received = OffsetDateTime::parse(received, &Rfc3339).unwrap();
        assert_eq!(
            i128::from(*offset),
            (received - sent).whole_milliseconds(),
            "{what}"
        );
        assert_eq!(stored_flag, flagged, "{what}: {offset} ms");
    }
    assert!(rows[0].0 >= 300_000, "agent behind: positive offset");
    assert!(rows[1].0 <= -170_000, "agent ahead: negative offset");
}

#[tokio::test]
async fn health_reports_version_and_database() {
    let f = Fixture::new();
    let response = f
        .app
        .clone()
        .oneshot(Request::get("/v1/health").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["db"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        v["schema_version"],
        json!(nkpath_collector::store::CURRENT_VERSION)
    );
    // Agents send multipath results only to a collector that says it stores them.
    assert_eq!(v["result_kinds"], json!(["trace", "ping", "multipath"]));
}

/// A multipath trace of `agent` with id `id` (wire format 1.3): a diamond of
/// width 2 at TTL 1, then the target.
fn multipath(id: Uuid, agent: &str) -> Value {
    let reply = |address: &str, icmp_type: u8| {
        json!({"address": address, "rtt_us": 1000, "reply_ttl": 60, "icmp_type": icmp_type,
               "icmp_code": 0, "tcp_flags": null, "quoted_ttl": null})
    };
    json!({
        "kind": "multipath",
        "schema_version": "1.4",
        "result_id": id,
        "agent_id": agent,
        "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "198.51.100.7",
        "target": "175.45.176.1",
        "protocol": "icmp",
        "params": {"confidence": 95, "timeout_ms": 1000, "first_ttl": 1, "max_ttl": 30,
                   "gap_limit": 3, "max_probes": 100, "max_seconds": 60, "pps": 100,
                   "per_prefix_pps": 10},
        "started_at": "2017-10-01T00:00:10Z",
        "flows": [
            {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 1},
            {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 2}
        ],
        "hops": [
            {"ttl": 1, "interfaces": [
                {"address": "203.0.113.1", "reply": reply("203.0.113.1", 11), "flows": [0]},
                {"address": "203.0.113.2", "reply": null, "flows": [1]}
             ], "silent_flows": [], "probes": 2, "per_packet": false},
            {"ttl": 2, "interfaces": [
                {"address": "175.45.176.1", "reply": reply("175.45.176.1", 0), "flows": [0, 1]}
             ], "silent_flows": [], "probes": 2, "per_packet": false}
        ],
        "links": [
            {"near_ttl": 1, "near": "203.0.113.1", "far_ttl": 2, "far": "175.45.176.1", "flows": [0]},
            {"near_ttl": 1, "near": "203.0.113.2", "far_ttl": 2, "far": "175.45.176.1", "flows": [1]}
        ],
        "probes_sent": 4,
        "stop_reason": "reached",
        "budget_hit": false
    })
}

#[tokio::test]
async fn multipath_results_are_stored_and_every_ack_says_so() {
    let f = Fixture::new();
    let id = Uuid::new_v4();
    let ack = f
        .upload(batch(
            "vp-1",
            &[multipath(id, "vp-1"), ping(Uuid::new_v4(), "vp-1")],
        ))
        .await;
    assert!(ack.refused.is_empty(), "{:?}", ack.refused);
    assert!(ack.accepted.contains(&id));
    assert!(ack.accepts_kind("multipath"));
    assert_eq!(
        f.count("SELECT count(*) FROM results WHERE kind = 'multipath'"),
        1
    );
}

// ---- The real binary on loopback. ----

fn collector(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// `agent add NAME`: the token, alone on stdout.
fn add_agent(db: &Path, name: &str) -> String {
    let out = collector(db, &["agent", "add", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 43, "{token}");
    token
}

#[test]
fn agent_add_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = add_agent(&db, "vp-fra1");
    let other = add_agent(&db, "vp.tyo_2");
    assert_ne!(token, other);
    // Only the hash is stored.
    let dump = common::dump_all(&Db::open(&db).unwrap());
    assert!(!dump.contains(&token));
    assert!(dump.contains(&nkpath_collector::agents::token_hash(&token)));

    for (args, message) in [
        (&["agent", "add", "bad name"][..], "invalid agent name"),
        (&["agent", "add", ""][..], "invalid agent name"),
        (&["agent", "add", "vp-fra1"][..], "already exists"),
        (&["agent", "revoke", "nobody"][..], "no agent named"),
    ] {
        let out = collector(&db, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "no token printed");
    }

    let out = collector(&db, &["agent", "revoke", "vp-fra1"]);
    assert!(out.status.success());
    let list = String::from_utf8(collector(&db, &["agent", "list"]).stdout).unwrap();
    let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        lines[0],
        [
            "name",
            "created",
            "last_seen",
            "agent_version",
            "address",
            "as",
            "status"
        ]
    );
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(lines[1][0], "vp-fra1");
    assert!(lines[1][6].starts_with("revoked "), "{list}");
    assert_eq!(lines[2][0], "vp.tyo_2");
    assert_eq!(lines[2][6], "active");
    assert_eq!(lines[2][2], "", "never seen");
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<UploadAck, String> {
    let response = client
        .post(format!("{url}/v1/results"))
        .bearer_auth(token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if status != StatusCode::OK {
        return Err(format!("HTTP {status}"));
    }
    decode_slice(&body).map_err(|e| e.to_string())
}

/// The collector killed with SIGKILL during uploads and restarted on the same database: every
/// result it acknowledged is stored exactly once, and the re-sent batches store nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_loses_no_acknowledged_result() {
    const BATCHES: usize = 60;
    const PER_BATCH: usize = 20;
    const SENDERS: usize = 3;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = add_agent(&db, "vp-1");
    let mut server = Server::start(&db, "127.0.0.1:0", &[]);
    let url = format!("http://{}", server.addr);

    // Each batch is a fixed list of results; a batch not acknowledged goes back in the queue.
    let batches: Vec<Vec<Uuid>> = (0..BATCHES)
        .map(|_| (0..PER_BATCH).map(|_| Uuid::new_v4()).collect())
        .collect();
    let queue = Arc::new(Mutex::new((0..BATCHES).rev().collect::<Vec<usize>>()));
    let acked: Arc<Mutex<HashMap<Uuid, usize>>> = Arc::default();
    let failures = Arc::new(Mutex::new(0usize));
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (queue, acked, failures) = (queue.clone(), acked.clone(), failures.clone());
        let (batches, url, token) = (batches.clone(), url.clone(), token.clone());
        senders.push(tokio::spawn(async move {
            let client = client();
            let deadline = tokio::time::Instant::now() + Duration::from_mins(2);
            loop {
                let Some(index) = queue.lock().unwrap().pop() else {
                    return;
                };
                let results: Vec<Value> =
                    batches[index].iter().map(|id| ping(*id, "vp-1")).collect();
                let Ok(ack) = send(&client, &url, &token, batch("vp-1", &results)).await else {
                    // Not acknowledged: back in the queue, to be sent again.
                    *failures.lock().unwrap() += 1;
                    queue.lock().unwrap().push(index);
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "uploads never went through"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                assert!(ack.refused.is_empty(), "{:?}", ack.refused);
                let mut acked = acked.lock().unwrap();
                for id in ack.accepted {
                    *acked.entry(id).or_default() += 1;
                }
            }
        }));
    }

    // Kill mid-stream, once some batches are acknowledged and others are still queued.
    loop {
        let done = acked.lock().unwrap().len() / PER_BATCH;
        if done >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let acked_before_kill: HashSet<Uuid> = acked.lock().unwrap().keys().copied().collect();
    assert!(
        !queue.lock().unwrap().is_empty(),
        "the kill came after the last batch; send more batches"
    );

    // Every result acknowledged before the kill is in the database, once.
    {
        let check = Db::open(&db).unwrap();
        for id in &acked_before_kill {
            let n: i64 = check
                .sql_for_tests()
                .query_row(
                    "SELECT count(*) FROM results WHERE result_id = ?1",
                    [id.to_string()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "acknowledged {id} is missing after kill -9");
        }
    }

    // Restart on the same port and database; the senders re-send what was not acknowledged.
    let listen = server.addr.clone();
    drop(server);
    let server = Server::start(&db, &listen, &[]);
    for s in senders {
        s.await.unwrap();
    }
    assert!(
        *failures.lock().unwrap() > 0,
        "some uploads failed while the collector was down"
    );

    // Graceful stop on SIGTERM: exit status 0.
    nix::sys::signal::kill(server.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");

    let all: HashSet<Uuid> = batches.iter().flatten().copied().collect();
    let acked = acked.lock().unwrap();
    assert_eq!(
        acked.keys().copied().collect::<HashSet<_>>(),
        all,
        "every result acknowledged in the end"
    );
    let check = Db::open(&db).unwrap();
    let stored: Vec<String> = check
        .sql_for_tests()
        .prepare("SELECT result_id FROM results")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let stored_set: HashSet<Uuid> = stored.iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(stored.len(), all.len(), "no result stored twice");
    assert_eq!(stored_set, all);
    let receipts: i64 = check
        .sql_for_tests()
        .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(receipts as usize, all.len(), "one receipt per result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = add_agent(&db, "vp-1");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let server = Server::start(
        &db,
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}", server.addr);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let health: Value = client
        .get(format!("{url}/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["db"], "ok");
    let id = Uuid::new_v4();
    let ack = send(&client, &url, &token, batch("vp-1", &[ping(id, "vp-1")]))
        .await
        .unwrap();
    assert_eq!(ack.accepted, vec![id]);

    // A client that does not trust the certificate gets no answer.
    assert!(
        client_without_the_cert()
            .get(format!("{url}/v1/health"))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP to the TLS port is no way in either.
    assert!(
        send(
            &client,
            &format!("http://{}", server.addr),
            &token,
            batch("vp-1", &[ping(Uuid::new_v4(), "vp-1")])
        )
        .await
        .is_err()
    );
    drop(server);

    // The upload shows in `agent list`: version and public address.
    let list = String::from_utf8(collector(&db, &["agent", "list"]).stdout).unwrap();
    let row: Vec<&str> = list.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(row[0], "vp-1");
    assert!(!row[2].is_empty(), "last seen: {list}");
    assert_eq!(row[3], "0.1.0");
    assert_eq!(row[4], "127.0.0.1");
    assert_eq!(row[5], "", "no BGP data: no AS");

    // With BGP data covering the address, the list names its origin AS.
    let rib = dir.path().join("rib.mrt");
    std::fs::write(
        &rib,
        common::rib(
            1_700_000_000,
            &[common::peer("10.0.0.1", 3356)],
            &[("127.0.0.0/8", 0, "3356 64500")],
        ),
    )
    .unwrap();
    let mut handle = Db::open(&db).unwrap();
    nkpath_collector::mrt::load_file(
        &mut handle,
        &rib,
        &nkpath_collector::mrt::LoadOptions::default(),
        None,
    )
    .unwrap();
    drop(handle);
    let list = String::from_utf8(collector(&db, &["agent", "list"]).stdout).unwrap();
    let row: Vec<&str> = list.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(row[4..6], ["127.0.0.1", "AS64500"], "{list}");
}

fn client_without_the_cert() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
