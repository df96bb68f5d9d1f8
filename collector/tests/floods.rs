//! Amplification and log floods: a small batch of many invalid results gets a small ack and
//! a few log lines, and a flood of wrong tokens a few log lines, not one per request.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::Server;
use nkpath_collector::Db;
use nkpath_proto::{UploadAck, decode_slice};
use uuid::Uuid;

fn agent_token(db: &Path) -> String {
    let mut db = Db::open(db).unwrap();
    db.add_agent("vp-1").unwrap().token.expose().to_owned()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn log_lines(server: &Server) -> usize {
    server.log().lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_batch_of_many_invalid_results_gets_a_small_ack_and_few_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = agent_token(&db);
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    // 10,000 results of one byte each: a 20 KB body.
    let results = vec!["1"; 10_000].join(",");
    let body = format!(
        r#"{{"schema_version":"1.0","agent_id":"vp-1","agent_version":"0.1.0","batch_id":"{}","sent_at":"2026-01-01T00:00:00Z","results":[{results}]}}"#,
        Uuid::new_v4()
    );
    assert!(body.len() < 21_000);
    let before = log_lines(&server);
    let response = client()
        .post(format!("http://{}/v1/results", server.addr))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let ack = response.bytes().await.unwrap();
    assert!(
        ack.len() < 64 * 1024,
        "a 20 KB batch got an ack of {} bytes",
        ack.len()
    );
    let ack_bytes = ack.len();
    let ack: UploadAck = decode_slice(&ack).unwrap();
    assert!(ack.accepted.is_empty());
    assert_eq!(
        ack.refused.len() as u64 + ack.refused_unlisted,
        10_000,
        "every result is accounted for"
    );
    // The upload's lines reach the log right after the answer; give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = log_lines(&server) - before;
    eprintln!("ack of {ack_bytes} bytes, {written} log lines");
    assert!(written < 20, "{written} log lines for one upload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_flood_writes_a_line_per_interval_not_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    agent_token(&db);
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    let client = client();
    let started = Instant::now();
    for i in 0..2_000 {
        let response = client
            .post(format!("http://{}/v1/results", server.addr))
            .bearer_auth(format!("wrong-{i}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    let elapsed = started.elapsed().as_secs();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = server.log();
    let lines = log.lines().filter(|l| l.contains("401")).count();
    // One line per 10 s at most, whatever the rate.
    assert!(
        lines as u64 <= 2 + elapsed / 10,
        "{lines} log lines for 2,000 wrong tokens in {elapsed} s"
    );
}
