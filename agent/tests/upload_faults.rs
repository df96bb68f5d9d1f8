//! The uploader against collectors that misbehave, on 127.0.0.1: refusals it
//! cannot attribute, transient answers, connections reset mid-request, and a
//! spool with rows that can no longer be read. What a user cares about: no
//! retry storm, no result lost, no bad row that blocks every upload, and
//! `status` saying what was set aside.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use nkpath_agent::service::config::Token;
use nkpath_agent::service::spool::Spool;
use nkpath_agent::service::upload::{self, Outcome, UploadError, Uploader, UploaderConfig};
use nkpath_proto::{PingResult, Refusal, ResultRecord, SCHEMA_VERSION, UploadAck, UploadBatch};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

type Batch = UploadBatch<Box<RawValue>>;
type Answer = Arc<dyn Fn(&Batch) -> Response + Send + Sync>;

/// A fake collector: counts the uploads it receives and answers each with `answer`.
#[derive(Clone)]
struct Fake {
    uploads: Arc<AtomicUsize>,
    /// Every result id received, in order, over all uploads.
    received: Arc<Mutex<Vec<Uuid>>>,
    answer: Answer,
}

async fn handle(State(fake): State<Fake>, body: Bytes) -> Response {
    fake.uploads.fetch_add(1, Ordering::SeqCst);
    let batch: Batch = match nkpath_proto::decode_slice(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    {
        let mut received = fake.received.lock().unwrap();
        received.extend(ids_of(&batch));
    }
    (fake.answer)(&batch)
}

async fn start(answer: impl Fn(&Batch) -> Response + Send + Sync + 'static) -> (SocketAddr, Fake) {
    let fake = Fake {
        uploads: Arc::default(),
        received: Arc::default(),
        answer: Arc::new(answer),
    };
    let app = Router::new()
        .route("/v1/results", post(handle))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, fake)
}

/// An ack of `batch` accepting `accepted` and refusing with `refused`.
fn ack(batch: &Batch, accepted: Vec<Uuid>, refused: Vec<Refusal>) -> Response {
    let ack = UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: batch.batch_id,
        received_at: OffsetDateTime::now_utc(),
        accepted,
        refused,
        refused_unlisted: 0,
        pause_until: None,
        targets: None,
        result_kinds: Vec::new(),
    };
    (StatusCode::OK, serde_json::to_string(&ack).unwrap()).into_response()
}

fn ids_of(batch: &Batch) -> Vec<Uuid> {
    batch
        .results
        .iter()
        .filter_map(|raw| nkpath_proto::decode::<ResultRecord>(raw.get()).ok())
        .map(|r| r.result_id())
        .collect()
}

fn config(addr: SocketAddr, batch_size: usize) -> UploaderConfig {
    UploaderConfig {
        endpoint: upload::results_url(&format!("http://{addr}/").parse().unwrap()),
        token: Token::new("t"),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        batch_size,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(10),
        timeout: Duration::from_secs(20),
        idle_interval: Duration::from_millis(20),
        round_interval: Duration::from_mins(1),
    }
}

/// A valid ping of now, with `replies` round-trip times (a large result when
/// `replies` is large).
fn ping(last_octet: u8, replies: u32) -> ResultRecord {
    ResultRecord::Ping(PingResult {
        schema_version: SCHEMA_VERSION,
        result_id: Uuid::new_v4(),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        round_id: Uuid::nil(),
        source: Ipv4Addr::new(192, 0, 2, 1),
        target: Ipv4Addr::new(175, 45, 176, last_octet),
        started_at: OffsetDateTime::now_utc(),
        sent: replies.max(1),
        received: replies,
        rtts_us: vec![210_987; replies as usize],
    })
}

fn filled(dir: &Path, n: u8, replies: u32) -> (Spool, Vec<Uuid>) {
    let spool = Spool::open(&dir.join("spool.db")).unwrap();
    let ids = (0..n)
        .map(|i| {
            let r = ping(i, replies);
            spool.put(&r).unwrap();
            r.result_id()
        })
        .collect();
    (spool, ids)
}

fn quarantined_ids(spool: &Spool) -> Vec<String> {
    let mut ids: Vec<String> = spool
        .recent_quarantine(1000)
        .unwrap()
        .iter()
        .map(|q| q.result_id.clone())
        .collect();
    ids.sort();
    ids
}

fn sorted_strings(ids: &[Uuid]) -> Vec<String> {
    let mut s: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    s.sort();
    s
}

fn agent_config(spool: &Path) -> nkpath_agent::service::config::Config {
    let text = format!(
        "agent_id = \"t1\"\n[collector]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n[spool]\npath = {:?}\n",
        spool.display().to_string()
    );
    nkpath_agent::service::config::parse(Path::new("agent.toml"), &text).unwrap()
}

/// The storm of the issue: a collector that refuses every result without
/// naming it. Each of ten upload cycles used to send the same batch again;
/// now the first cycle sets the batch aside and the others find nothing to do.
#[tokio::test]
async fn refusals_without_an_id_quarantine_the_batch_instead_of_a_retry_storm() {
    let (addr, fake) = start(|batch| {
        let refused = vec![Refusal {
            id: None,
            field: String::new(),
            reason: "cannot read this result".into(),
        }];
        ack(batch, vec![], refused)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 6, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    for _ in 0..10 {
        let _ = uploader.upload_once(&spool).await;
    }
    assert_eq!(
        fake.uploads.load(Ordering::SeqCst),
        1,
        "the batch went out once"
    );
    assert_eq!(spool.depth().unwrap(), 0);
    assert_eq!(spool.quarantine_count().unwrap(), 6);
    assert_eq!(quarantined_ids(&spool), sorted_strings(&ids));

    // `status` shows them, with the collector's reason.
    let status = nkpath_agent::service::status::report(
        &agent_config(&dir.path().join("spool.db")),
        &spool,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(status.quarantined, 6);
    let text = status.render_text();
    assert!(text.contains(&ids[5].to_string()), "{text}");
    assert!(text.contains("cannot read this result"), "{text}");
}

/// Accepted results are deleted, a refusal naming its result by position
/// quarantines that one, an unattributable refusal quarantines only the
/// results the ack does not account for.
#[tokio::test]
async fn an_unattributable_refusal_sets_aside_only_the_unnamed_results() {
    let (addr, fake) = start(|batch| {
        let ids = ids_of(batch);
        let refused = vec![
            Refusal {
                id: None,
                field: "results[1].started_at".into(),
                reason: "year 10000".into(),
            },
            Refusal {
                id: Some(Uuid::new_v4()),
                field: "results".into(),
                reason: "an id this batch does not hold".into(),
            },
        ];
        ack(batch, vec![ids[0], ids[3]], refused)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 5, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    for _ in 0..5 {
        let _ = uploader.upload_once(&spool).await;
    }
    assert_eq!(fake.uploads.load(Ordering::SeqCst), 1);
    assert_eq!(spool.depth().unwrap(), 0, "nothing is left to resend");
    assert_eq!(
        quarantined_ids(&spool),
        sorted_strings(&[ids[1], ids[2], ids[4]])
    );
    let by_position = spool
        .recent_quarantine(10)
        .unwrap()
        .into_iter()
        .find(|q| q.result_id == ids[1].to_string())
        .unwrap();
    assert_eq!(by_position.field, "results[1].started_at");
    assert_eq!(by_position.reason, "year 10000");
}

/// A collector that lists only its first refusals and counts the others
/// (`refused_unlisted`): the results the ack names neither accepted nor
/// refused are set aside with the listed ones, and the batch goes out once.
#[tokio::test]
async fn refusals_counted_but_not_listed_are_set_aside_too() {
    let (addr, fake) = start(|batch| {
        let ids = ids_of(batch);
        let listed = vec![Refusal {
            id: Some(ids[1]),
            field: "results[1].started_at".into(),
            reason: "year 10000".into(),
        }];
        let ack = UploadAck {
            schema_version: SCHEMA_VERSION,
            batch_id: batch.batch_id,
            received_at: OffsetDateTime::now_utc(),
            accepted: vec![ids[0]],
            refused: listed,
            refused_unlisted: 3,
            result_kinds: Vec::new(),
            pause_until: None,
            targets: None,
        };
        (StatusCode::OK, serde_json::to_string(&ack).unwrap()).into_response()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 5, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    for _ in 0..5 {
        let _ = uploader.upload_once(&spool).await;
    }
    assert_eq!(fake.uploads.load(Ordering::SeqCst), 1, "no retry storm");
    assert_eq!(spool.depth().unwrap(), 0, "nothing is left to resend");
    assert_eq!(quarantined_ids(&spool), sorted_strings(&ids[1..]));
}

/// An ack that leaves results unmentioned (and refuses nothing) keeps them
/// spooled, and the next attempt waits.
#[tokio::test]
async fn results_an_ack_leaves_out_are_retried_after_a_wait() {
    let (addr, _fake) = start(|batch| ack(batch, vec![], vec![])).await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 3, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    let result = uploader.upload_once(&spool).await;
    let Ok(Outcome::Uploaded(report)) = &result else {
        panic!("{result:?}")
    };
    assert_eq!(report.unanswered, 3);
    assert_eq!(spool.depth().unwrap(), ids.len() as u64);
    assert!(uploader.wait_after(&result, &mut rand::rng()) >= Duration::from_millis(10));
}

/// 408, 429 and 5xx are transient: a short, growing wait, not the long one
/// for a refused token or a format disagreement. Retry-After is honoured,
/// up to the longest wait.
#[tokio::test]
async fn transient_answers_wait_briefly_and_honour_retry_after() {
    let answers = [
        (StatusCode::REQUEST_TIMEOUT, None),
        (StatusCode::TOO_MANY_REQUESTS, Some("3")),
        (StatusCode::SERVICE_UNAVAILABLE, Some("86400")),
        (StatusCode::BAD_GATEWAY, None),
    ];
    let next = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&next);
    let (addr, _fake) = start(move |_| {
        let (status, retry_after) = answers[counter.fetch_add(1, Ordering::SeqCst)];
        let mut response = (status, "try later").into_response();
        if let Some(value) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(value));
        }
        response
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 2, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    let mut rng = rand::rng();

    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Server { .. }), "408: {err}");
    assert!(
        uploader.backoff(&err, &mut rng) <= Duration::from_millis(20),
        "408 is transient"
    );
    assert!(!err.to_string().contains("too old or too new"), "{err}");

    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Server { .. }), "429: {err}");
    assert_eq!(uploader.backoff(&err, &mut rng), Duration::from_secs(3));

    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Server { .. }), "503: {err}");
    assert_eq!(
        uploader.backoff(&err, &mut rng),
        Duration::from_secs(10),
        "capped"
    );

    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Server { .. }), "502: {err}");
    let wait = uploader.backoff(&err, &mut rng);
    assert!(
        wait <= Duration::from_millis(160),
        "the fourth failure in a row: {wait:?}"
    );

    assert_eq!(spool.depth().unwrap(), ids.len() as u64, "nothing deleted");
}

/// How a collector that refuses a body without reading it behaves.
#[derive(Clone, Copy)]
enum Early {
    /// Closes the connection at once.
    Close,
    /// Answers 413, then closes.
    Answer413,
}

/// A server that reads a request's headers, then (per `early`) answers or
/// not and closes with the body unread: the peer sees a reset.
async fn start_early_closer(early: Early) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if let Early::Answer413 = early {
                    use tokio::io::AsyncWriteExt;
                    let _ = stream
                        .write_all(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                }
                // Linger 0: the close is a reset, as when a proxy drops an
                // oversized request.
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    addr
}

/// A much-too-large batch whose refusal arrives as a reset still halves the
/// batch (and deletes nothing).
#[tokio::test]
async fn a_reset_on_a_large_batch_halves_it() {
    let dir = tempfile::tempdir().unwrap();
    // 40 results of 20,000 round-trip times each: about 3 MB.
    let (spool, ids) = filled(dir.path(), 40, 20_000);
    for early in [Early::Close, Early::Answer413] {
        let addr = start_early_closer(early).await;
        let mut uploader = Uploader::new(config(addr, 40)).unwrap();
        let err = uploader.upload_once(&spool).await.unwrap_err();
        assert!(
            matches!(
                err,
                UploadError::TooLarge { .. } | UploadError::Reset { .. }
            ),
            "{err}"
        );
        assert_eq!(uploader.batch_size(), 20, "{err}");
        let err = uploader.upload_once(&spool).await.unwrap_err();
        assert_eq!(uploader.batch_size(), 10, "{err}");
        assert_eq!(spool.depth().unwrap(), ids.len() as u64);
    }
}

/// A reset on a small batch is a network failure, not a sign of size: the
/// batch size stays.
#[tokio::test]
async fn a_reset_on_a_small_batch_keeps_the_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = filled(dir.path(), 4, 1);
    let addr = start_early_closer(Early::Close).await;
    let mut uploader = Uploader::new(config(addr, 4)).unwrap();
    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(matches!(err, UploadError::Network { .. }), "{err}");
    assert_eq!(uploader.batch_size(), 4);
}

/// Rows corrupted in the spool file (as a disk error or a hand edit would)
/// are set aside one by one; the good rows are uploaded; `status` names the
/// bad ones.
#[tokio::test]
async fn unreadable_spool_rows_are_quarantined_and_uploads_go_on() {
    let (addr, fake) = start(|batch| ack(batch, ids_of(batch), vec![])).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.db");
    let (spool, ids) = filled(dir.path(), 8, 1);
    drop(spool);
    let db = rusqlite::Connection::open(&path).unwrap();
    let id = |i: usize| ids[i].to_string();
    // Not JSON any more.
    db.execute(
        "UPDATE results SET json = substr(json, 1, 20) WHERE result_id = ?1",
        [id(0)],
    )
    .unwrap();
    // JSON, but not a result.
    db.execute(
        "UPDATE results SET json = '{\"hello\": 1}' WHERE result_id = ?1",
        [id(2)],
    )
    .unwrap();
    // A result that fails validation (more replies than probes).
    db.execute(
        "UPDATE results SET json = replace(json, '\"sent\":1', '\"sent\":0') WHERE result_id = ?1",
        [id(3)],
    )
    .unwrap();
    // An id that is no UUID, and a time that is no time.
    db.execute(
        "UPDATE results SET result_id = 'garbage' WHERE result_id = ?1",
        [id(5)],
    )
    .unwrap();
    db.execute(
        "UPDATE results SET created_at = x'00ff' WHERE result_id = ?1",
        [id(6)],
    )
    .unwrap();
    drop(db);

    let spool = Spool::open(&path).unwrap();
    let mut uploader = Uploader::new(config(addr, 3)).unwrap();
    for _ in 0..10 {
        if let Ok(Outcome::Idle) = uploader.upload_once(&spool).await {
            break;
        }
    }
    assert_eq!(spool.depth().unwrap(), 0, "nothing blocks the spool");
    let delivered = sorted_strings(&fake.received.lock().unwrap());
    assert_eq!(
        delivered,
        sorted_strings(&[ids[1], ids[4], ids[6], ids[7]]),
        "the readable results went out"
    );
    let bad = quarantined_ids(&spool);
    let mut expected = vec![id(0), id(2), id(3), "garbage".to_owned()];
    expected.sort();
    assert_eq!(bad, expected);

    let status = nkpath_agent::service::status::report(
        &agent_config(&path),
        &spool,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    assert_eq!(status.quarantined, 4);
    let text = status.render_text();
    assert!(text.contains("garbage"), "{text}");
    assert!(text.contains("local spool"), "{text}");
}

/// A damaged page of the spool file (bytes overwritten, as a failing disk
/// does): the rows on it are quarantined by id, every other row is uploaded.
#[tokio::test]
async fn a_damaged_spool_page_costs_only_its_rows() {
    let (addr, fake) = start(|batch| ack(batch, ids_of(batch), vec![])).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.db");
    let (spool, ids) = filled(dir.path(), 120, 1);
    drop(spool);

    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65_536,
        n => usize::from(n),
    };
    let needle = format!("\"result_id\":\"{}\"", ids[60]);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .expect("the row's JSON is in the file");
    let page = at / page_size;
    assert!(page > 0);
    // The page's b-tree header: SQLite can no longer read the page.
    bytes[page * page_size..page * page_size + 12].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();

    let spool = Spool::open(&path).unwrap();
    let mut uploader = Uploader::new(config(addr, 10)).unwrap();
    let mut idle = false;
    for _ in 0..40 {
        match uploader.upload_once(&spool).await {
            Ok(Outcome::Idle) => {
                idle = true;
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(idle, "the uploads got through the spool");
    let delivered = sorted_strings(&fake.received.lock().unwrap());
    let lost = quarantined_ids(&spool);
    assert!(
        lost.contains(&ids[60].to_string()),
        "the damaged row is quarantined"
    );
    assert!(
        lost.len() < 60,
        "only the damaged page's rows: {}",
        lost.len()
    );
    let mut all: Vec<String> = delivered.iter().chain(&lost).cloned().collect();
    all.sort();
    assert_eq!(
        all,
        sorted_strings(&ids),
        "every row uploaded or quarantined, once"
    );
    assert_eq!(spool.depth().unwrap(), 0);
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("spool.db.damaged-")
        });
    assert!(kept, "the damaged file is kept for the operator");
}

/// A 400 that names the result it could not read sets that one aside; the
/// others go through at the next attempt instead of being blocked behind it.
#[tokio::test]
async fn a_bad_request_naming_a_result_sets_only_that_one_aside() {
    let first = Arc::new(AtomicUsize::new(0));
    let (addr, fake) = start(move |batch| {
        if first.fetch_add(1, Ordering::SeqCst) == 0 {
            let body = r#"{"error":"not an upload batch: invalid JSON at results[1].started_at: year 10000"}"#;
            return (StatusCode::BAD_REQUEST, body).into_response();
        }
        ack(batch, ids_of(batch), vec![])
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 3, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();
    let result = uploader.upload_once(&spool).await;
    assert!(result.is_err(), "{result:?}");
    assert!(
        uploader.wait_after(&result, &mut rand::rng()) <= Duration::from_millis(20),
        "the others are retried soon"
    );
    assert_eq!(quarantined_ids(&spool), sorted_strings(&[ids[1]]));
    let _ = uploader.upload_once(&spool).await.unwrap();
    assert_eq!(spool.depth().unwrap(), 0);
    assert_eq!(fake.uploads.load(Ordering::SeqCst), 2);
}

/// A collector that holds the first batch id it sees for other results (409):
/// the agent sends the same results again, after a short wait, under a new
/// batch id, instead of resending the refused id forever.
#[tokio::test]
async fn a_batch_id_the_collector_holds_for_other_results_is_replaced() {
    let taken: Arc<Mutex<Option<Uuid>>> = Arc::default();
    let seen = Arc::clone(&taken);
    let batch_ids: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let sent_ids = Arc::clone(&batch_ids);
    let (addr, _fake) = start(move |batch| {
        sent_ids.lock().unwrap().push(batch.batch_id);
        let taken = *seen.lock().unwrap().get_or_insert(batch.batch_id);
        if batch.batch_id == taken {
            (StatusCode::CONFLICT, "batch id already used").into_response()
        } else {
            ack(batch, ids_of(batch), vec![])
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, ids) = filled(dir.path(), 3, 1);
    let mut uploader = Uploader::new(config(addr, 100)).unwrap();

    let err = uploader.upload_once(&spool).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    assert!(
        uploader.backoff(&err, &mut rand::rng()) <= Duration::from_millis(20),
        "a short wait, not the long one for a format disagreement"
    );
    assert_eq!(spool.depth().unwrap(), ids.len() as u64, "nothing deleted");

    let result = uploader.upload_once(&spool).await;
    let Ok(Outcome::Uploaded(report)) = &result else {
        panic!("{result:?}")
    };
    assert_eq!(report.accepted, ids.len());
    assert_eq!(spool.depth().unwrap(), 0);
    let batch_ids = batch_ids.lock().unwrap();
    assert_eq!(batch_ids.len(), 2);
    assert_ne!(batch_ids[0], batch_ids[1], "the refused id was sent again");
}
