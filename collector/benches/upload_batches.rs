//! Benchmark: uploads after one agent sent 50,000 results under a single batch id (five
//! batches of 10,000 reusing it). Prints the median time of an upload of 100 results into a
//! fresh database, then after that agent's batches (with the answers they got).
//! Figures only; nothing is asserted.
//!
//! ```text
//! cargo bench -p nkpath-collector --bench upload_batches [-- --uploads N]
//! ```

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use nkpath_collector::Db;
use nkpath_collector::server::{AppState, app};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;
use uuid::Uuid;

fn body(agent: &str, batch_id: Uuid, results: usize) -> Vec<u8> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let results: Vec<_> = (0..results)
        .map(|i| {
            let id = Uuid::new_v4();
            json!({
                "kind": "ping", "schema_version": "1.0", "result_id": id, "agent_id": agent,
                "agent_version": "0.1.0", "round_id": id, "source": "10.0.0.2",
                "target": format!("175.45.{}.{}", 176 + i % 4, 1 + i % 250),
                "started_at": now, "sent": 3, "received": 1, "rtts_us": [1000]
            })
        })
        .collect();
    json!({
        "schema_version": "1.0", "agent_id": agent, "agent_version": "0.1.0",
        "batch_id": batch_id, "sent_at": now, "results": results
    })
    .to_string()
    .into_bytes()
}

async fn post(app: &Router, token: &str, body: Vec<u8>) -> u16 {
    let request = Request::builder()
        .method("POST")
        .uri("/v1/results")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    app.clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Median time of `n` uploads of 100 results by `agent`, each under a new batch id.
async fn median_upload(app: &Router, agent: &str, token: &str, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let body = body(agent, Uuid::new_v4(), 100);
        let start = Instant::now();
        let status = post(app, token, body).await;
        times.push(start.elapsed());
        assert_eq!(status, 200);
    }
    times.sort();
    times[n / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut uploads = 50;
    while let Some(arg) = args.next() {
        if arg == "--uploads" {
            uploads = args.next().and_then(|v| v.parse().ok()).unwrap_or(uploads);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector.db");
    let mut db = Db::open(&path).unwrap();
    let victim = db.add_agent("victim").unwrap().token.expose().to_owned();
    let reuser = db.add_agent("reuser").unwrap().token.expose().to_owned();
    let app = app(AppState::with_limits(db, 64 << 20, Duration::from_mins(10)));

    let fresh = median_upload(&app, "victim", &victim, uploads).await;
    println!("upload of 100 results, fresh database:         {fresh:>10.2?} (median of {uploads})");

    let reused = Uuid::new_v4();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post(&app, &reuser, body("reuser", reused, 10_000)).await);
    }
    println!("five batches of 10,000 under one batch id: answers {statuses:?}");
    let after = median_upload(&app, "victim", &victim, uploads).await;
    println!("upload of 100 results, after them:             {after:>10.2?} (median of {uploads})");
    let again = median_upload(&app, "reuser", &reuser, uploads).await;
    println!("upload of 100 results by the reusing agent:    {again:>10.2?} (median of {uploads})");
}
