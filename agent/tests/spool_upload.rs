//! The spool and the uploader against a fake collector on 127.0.0.1: what is
//! deleted, what is kept, what is sent again.
//!
//! The fake collector behaves like the real one where it matters here: it
//! checks the token, stores each result id once (a duplicate is accepted
//! again), refuses the results it is told to refuse, and can be told to
//! fail, to lose its answer after storing, or to find batches too large.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use nkpath_agent::service::config::Token;
use nkpath_agent::service::spool::Spool;
use nkpath_agent::service::upload::{
    self, Outcome, UploadError, Uploader, UploaderConfig, effective_targets,
};
use nkpath_proto::{PingResult, Refusal, ResultRecord, SCHEMA_VERSION, UploadAck, UploadBatch};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOKEN: &str = "test-token";
/// Results to this address are refused by the fake collector.
const REFUSED_TARGET: Ipv4Addr = Ipv4Addr::new(175, 45, 176, 99);

#[derive(Default)]
struct Fake {
    /// Every result id stored, with how many times it was delivered in a
    /// batch the collector processed.
    stored: HashMap<Uuid, u32>,
    /// Deliveries of refused results.
    refused: HashMap<Uuid, u32>,
    /// Batch ids received, in order, including failed ones.
    batches: Vec<Uuid>,
    /// Answer 503 to this many requests, storing nothing.
    fail_next: u32,
    /// Store, then never answer (the agent's request times out), this many times.
    lose_next: u32,
    /// Answer 413 to batches of more results than this.
    max_batch: Option<usize>,
    /// Leave the first N results of each batch out of the ack (stored but not acknowledged).
    unacked_per_batch: usize,
    /// Instructions to put in every ack.
    pause_until: Option<OffsetDateTime>,
    targets: Option<Vec<String>>,
}

type Shared = Arc<Mutex<Fake>>;

async fn results(
    State(fake): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "bad token".into());
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "json only".into());
    }
    let batch: UploadBatch<Box<RawValue>> = match nkpath_proto::decode_slice(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    let lose = {
        let mut f = fake.lock().unwrap();
        f.batches.push(batch.batch_id);
        if f.fail_next > 0 {
            f.fail_next -= 1;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "down for maintenance".into(),
            );
        }
        if f.max_batch.is_some_and(|max| batch.results.len() > max) {
            return (StatusCode::PAYLOAD_TOO_LARGE, "too many results".into());
        }
        let lose = f.lose_next > 0;
        f.lose_next = f.lose_next.saturating_sub(1);
        lose
    };
    let mut ack = UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: batch.batch_id,
        received_at: OffsetDateTime::now_utc(),
        accepted: vec![],
        refused: vec![],
        refused_unlisted: 0,
        pause_until: None,
        targets: None,
        result_kinds: Vec::new(),
    };
    {
        let mut f = fake.lock().unwrap();
        for (i, raw) in batch.results.iter().enumerate() {
            let record: ResultRecord =
                nkpath_proto::decode(raw.get()).expect("the agent sends valid results");
            let id = record.result_id();
            if record.target() == REFUSED_TARGET {
                *f.refused.entry(id).or_default() += 1;
                ack.refused.push(Refusal {
                    id: Some(id),
                    field: format!("results[{i}].target"),
                    reason: "not in the target prefixes".into(),
                });
                continue;
            }
            *f.stored.entry(id).or_default() += 1;
            if i >= f.unacked_per_batch {
                ack.accepted.push(id);
            }
        }
        ack.pause_until = f.pause_until;
        ack.targets = f.targets.clone();
    }
    if lose {
        // Committed, but the answer never arrives: the agent times out.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    (StatusCode::OK, serde_json::to_string(&ack).unwrap())
}

async fn start_collector() -> (SocketAddr, Shared) {
    let fake = Shared::default();
    let app = Router::new()
        .route("/v1/results", post(results))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fake)
}

fn uploader_config(addr: SocketAddr, batch_size: usize) -> UploaderConfig {
    UploaderConfig {
        endpoint: upload::results_url(&format!("http://{addr}/").parse().unwrap()),
        token: Token::new(TOKEN),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        batch_size,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        idle_interval: Duration::from_millis(20),
        round_interval: Duration::from_mins(1),
    }
}

fn ping(target: Ipv4Addr) -> ResultRecord {
    ResultRecord::Ping(PingResult {
        schema_version: SCHEMA_VERSION,
        result_id: Uuid::new_v4(),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        round_id: Uuid::nil(),
        source: Ipv4Addr::new(192, 0, 2, 1),
        target,
        started_at: OffsetDateTime::now_utc(),
        sent: 3,
        received: 1,
        rtts_us: vec![210_000],
    })
}

/// A spool holding `n` results; returns their ids in order.
fn filled_spool(dir: &Path, n: u8) -> (Spool, Vec<Uuid>) {
    let spool = Spool::open(&dir.join("spool.db")).unwrap();
    let ids = (0..n)
        .map(|i| {
            let r = ping(Ipv4Addr::new(175, 45, 176, i));
            spool.put(&r).unwrap();
            r.result_id()
        })
        .collect();
    (spool, ids)
}

fn spooled_ids(spool: &Spool) -> Vec<Uuid> {
    spool
        .next_batch(100_000)
        .unwrap()
        .iter()
        .map(|s| s.result_id)
        .collect()
}

/// Uploads until the spool is empty (bounded).
async fn drain(uploader: &mut Uploader, spool: &Spool) {
    for _ in 0..100 {
        if uploader.upload_once(spool).await.unwrap() == Outcome::Idle {
            return;
        }
    }
    panic!("the spool did not drain");
}

#[tokio::test]
async fn results_are_deleted_only_once_acknowledged() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 25);
    let mut uploader = Uploader::new(uploader_config(addr, 10)).unwrap();

    let Outcome::Uploaded(report) = uploader.upload_once(&spool).await.unwrap() else {
        panic!()
    };
    assert_eq!((report.sent, report.accepted, report.refused), (10, 10, 0));
    assert_eq!(
        spooled_ids(&spool),
        ids[10..],
        "exactly the oldest ten went"
    );

    // The collector stores the next batch but acknowledges only part of it:
    // what it did not acknowledge stays.
    fake.lock().unwrap().unacked_per_batch = 3;
    let Outcome::Uploaded(report) = uploader.upload_once(&spool).await.unwrap() else {
        panic!()
    };
    assert_eq!((report.accepted, report.unanswered), (7, 3));
    assert_eq!(spooled_ids(&spool)[..3], ids[10..13]);
    assert_eq!(spool.depth().unwrap(), 3 + 5);

    fake.lock().unwrap().unacked_per_batch = 0;
    drain(&mut uploader, &spool).await;
    assert_eq!(spool.depth().unwrap(), 0);
    let f = fake.lock().unwrap();
    for id in &ids {
        assert!(
            f.stored.contains_key(id),
            "{id} never reached the collector"
        );
    }
    assert_eq!(f.stored.len(), ids.len());
    let state = spool.state().unwrap();
    assert!(state.last_upload.is_some());
}

#[tokio::test]
async fn a_refused_result_is_quarantined_and_never_resent() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 3);
    let bad = ping(REFUSED_TARGET);
    spool.put(&bad).unwrap();
    let mut uploader = Uploader::new(uploader_config(addr, 100)).unwrap();

    let Outcome::Uploaded(report) = uploader.upload_once(&spool).await.unwrap() else {
        panic!()
    };
    assert_eq!((report.accepted, report.refused), (3, 1));
    assert_eq!(spool.depth().unwrap(), 0);
    assert_eq!(spool.quarantine_count().unwrap(), 1);
    let q = spool.recent_quarantine(5).unwrap();
    assert_eq!(q[0].result_id, bad.result_id().to_string());
    assert_eq!(q[0].field, "results[3].target");
    assert_eq!(q[0].reason, "not in the target prefixes");

    assert_eq!(uploader.upload_once(&spool).await.unwrap(), Outcome::Idle);
    let f = fake.lock().unwrap();
    assert_eq!(
        f.refused[&bad.result_id()],
        1,
        "a refused result is sent once"
    );
    assert!(ids.iter().all(|id| f.stored[id] == 1));
}

#[tokio::test]
async fn collector_down_means_backoff_and_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 30);

    // Nobody listening: a network error, and the spool is untouched.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut uploader = Uploader::new(uploader_config(closed, 10)).unwrap();
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Network { .. }), "{err}");
    assert!(err.to_string().contains("results stay spooled"), "{err}");
    assert_eq!(spooled_ids(&spool), ids);

    // A collector that fails a few times, then works: the loop backs off,
    // retries, and everything arrives exactly once.
    let (addr, fake) = start_collector().await;
    fake.lock().unwrap().fail_next = 3;
    let spool = Arc::new(spool);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(upload::upload_loop(
        Arc::clone(&spool),
        uploader_config(addr, 10),
        shutdown.clone(),
    ));
    for _ in 0..300 {
        if spool.depth().unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(spool.depth().unwrap(), 0);
    let f = fake.lock().unwrap();
    assert_eq!(f.stored.len(), ids.len());
    assert!(
        f.stored.values().all(|&n| n == 1),
        "each result stored exactly once"
    );
    // Three failed attempts of the first batch, all with the same batch id.
    assert!(f.batches.len() >= 3 + 3, "{}", f.batches.len());
    assert!(
        f.batches[..4].iter().all(|b| *b == f.batches[0]),
        "a retry reuses its batch id"
    );
    let last_error = spool
        .state()
        .unwrap()
        .last_error
        .expect("the failures are recorded");
    assert!(
        last_error.message.contains("HTTP 503"),
        "{}",
        last_error.message
    );
}

#[tokio::test]
async fn a_lost_answer_means_resending_and_one_copy() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 8);
    fake.lock().unwrap().lose_next = 1;

    let mut uploader = Uploader::new(uploader_config(addr, 100)).unwrap();
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Network { .. }), "{err}");
    assert_eq!(spooled_ids(&spool), ids, "no answer, nothing deleted");
    assert_eq!(
        fake.lock().unwrap().stored.len(),
        8,
        "the collector did commit"
    );

    // The agent is killed and restarted: a new process, the spool from disk.
    drop(uploader);
    drop(spool);
    let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
    let mut uploader = Uploader::new(uploader_config(addr, 100)).unwrap();
    drain(&mut uploader, &spool).await;

    assert_eq!(spool.depth().unwrap(), 0);
    let f = fake.lock().unwrap();
    assert_eq!(f.stored.len(), ids.len(), "one copy of each");
    assert!(
        ids.iter().all(|id| f.stored[id] == 2),
        "each was delivered twice and stored once"
    );
}

#[tokio::test]
async fn a_full_spool_keeps_everything() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 6);
    assert!(spool.is_full(5).unwrap());
    assert!(spool.refresh_full(5).unwrap());
    assert!(spool.state().unwrap().spool_full);

    // Uploads failing while full: nothing is dropped to make room.
    fake.lock().unwrap().fail_next = 2;
    let mut uploader = Uploader::new(uploader_config(addr, 4)).unwrap();
    for _ in 0..2 {
        let err = uploader.upload_once(&spool).await.unwrap_err();
        assert!(matches!(err, UploadError::Server { .. }), "{err}");
    }
    assert_eq!(spooled_ids(&spool), ids);
    assert!(spool.is_full(5).unwrap());

    // Once an upload goes through, the spool is no longer full.
    uploader.upload_once(&spool).await.unwrap();
    assert!(!spool.refresh_full(5).unwrap());
    assert!(!spool.state().unwrap().spool_full);
}

#[tokio::test]
async fn wrong_token_and_too_large_batches_delete_nothing() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled_spool(dir.path(), 9);

    let mut cfg = uploader_config(addr, 100);
    cfg.token = Token::new("revoked");
    let mut uploader = Uploader::new(cfg).unwrap();
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("wrong or has been revoked"),
        "{err}"
    );
    assert!(
        uploader.backoff(&err, &mut rand::rng()) >= Duration::from_millis(180),
        "a refused token waits long"
    );
    assert_eq!(spooled_ids(&spool), ids);

    fake.lock().unwrap().max_batch = Some(3);
    let mut uploader = Uploader::new(uploader_config(addr, 9)).unwrap();
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(
        matches!(err, UploadError::TooLarge { size: 9, next: 4 }),
        "{err}"
    );
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(
        matches!(err, UploadError::TooLarge { size: 4, next: 2 }),
        "{err}"
    );
    assert_eq!(spooled_ids(&spool), ids);
    drain(&mut uploader, &spool).await;
    assert_eq!(uploader.batch_size(), 2);
    assert_eq!(fake.lock().unwrap().stored.len(), ids.len());
}

#[tokio::test]
async fn pause_and_targets_from_the_ack_are_stored_and_clipped() {
    let (addr, fake) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = filled_spool(dir.path(), 2);
    let until = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::hours(1);
    {
        let mut f = fake.lock().unwrap();
        f.pause_until = Some(until);
        f.targets = Some(vec![
            "175.45.177.0/24".into(),
            "8.8.8.0/24".into(),
            "175.45.176.0/21".into(),
        ]);
    }
    let mut uploader = Uploader::new(uploader_config(addr, 100)).unwrap();
    uploader.upload_once(&spool).await.unwrap();

    let state = spool.state().unwrap();
    assert_eq!(state.pause_until, Some(until));
    assert_eq!(state.paused_at(OffsetDateTime::now_utc()), Some(until));
    assert_eq!(state.targets_override.as_ref().map(Vec::len), Some(3));

    let text = "agent_id = \"t1\"\nallowlist = [\"175.45.176.0/22\"]\ntargets = [\"175.45.176.0/24\"]\n\
                [collector]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n";
    let config = nkpath_agent::service::config::parse(Path::new("agent.toml"), text).unwrap();
    // 8.8.8.0/24 dropped; the /21 clipped to the allowlist's /22, which holds the /24.
    assert_eq!(
        effective_targets(&config, &state),
        ["175.45.176.0/22".parse().unwrap()]
    );

    // An ack without pause_until lifts the pause; without targets keeps them.
    {
        let mut f = fake.lock().unwrap();
        f.pause_until = None;
        f.targets = None;
    }
    spool.put(&ping(Ipv4Addr::new(175, 45, 176, 7))).unwrap();
    uploader.upload_once(&spool).await.unwrap();
    let state = spool.state().unwrap();
    assert_eq!(state.pause_until, None);
    assert_eq!(state.targets_override.as_ref().map(Vec::len), Some(3));
}
