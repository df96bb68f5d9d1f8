//! Multipath results and collectors that predate them, on 127.0.0.1: an
//! older collector would refuse the kind, and a refusal quarantines a result
//! for good, so the agent sends multipath results only to a collector that
//! lists `multipath` in its `result_kinds` (ack or health answer) and keeps
//! them in the spool otherwise, while everything else uploads as usual.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nkpath_agent::service::config::Token;
use nkpath_agent::service::spool::Spool;
use nkpath_agent::service::upload::{self, Outcome, Uploader, UploaderConfig};
use nkpath_proto::{
    FlowId, MultipathHop, MultipathInterface, MultipathParams, MultipathResult, PingResult,
    Protocol, Refusal, Reply, ResultRecord, SCHEMA_VERSION, StopReason, UploadAck, UploadBatch,
};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

type Batch = UploadBatch<Box<RawValue>>;

/// A stand-in collector. `kinds` empty: one from before wire format 1.3, whose
/// acks and health answer carry no `result_kinds` and which refuses a result of
/// a kind it does not know, as its decoder would ("unknown variant").
#[derive(Clone, Default)]
struct Collector {
    kinds: Arc<Mutex<Vec<String>>>,
    /// The `kind` of every result received, over all uploads.
    received: Arc<Mutex<Vec<String>>>,
    health_asked: Arc<Mutex<usize>>,
}

async fn results(State(c): State<Collector>, body: Bytes) -> Response {
    let batch: Batch = match nkpath_proto::decode_slice(&body) {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let kinds = c.kinds.lock().unwrap().clone();
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for (i, raw) in batch.results.iter().enumerate() {
        let value: Value = serde_json::from_str(raw.get()).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        let id: Uuid = value["result_id"].as_str().unwrap().parse().unwrap();
        c.received.lock().unwrap().push(kind.clone());
        if nkpath_proto::accepts_kind(&kinds, &kind) {
            accepted.push(id);
        } else {
            refused.push(Refusal {
                id: Some(id),
                field: format!("results[{i}].kind"),
                reason: format!("unknown variant `{kind}`, expected `trace` or `ping`"),
            });
        }
    }
    let ack = UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: batch.batch_id,
        received_at: OffsetDateTime::now_utc(),
        accepted,
        refused,
        refused_unlisted: 0,
        pause_until: None,
        targets: None,
        result_kinds: kinds,
    };
    (StatusCode::OK, serde_json::to_string(&ack).unwrap()).into_response()
}

async fn health(State(c): State<Collector>) -> Response {
    *c.health_asked.lock().unwrap() += 1;
    let kinds = c.kinds.lock().unwrap().clone();
    let mut body = serde_json::json!({"status": "ok", "version": "0.1.0", "db": "ok"});
    if !kinds.is_empty() {
        body["result_kinds"] = serde_json::json!(kinds);
    }
    (StatusCode::OK, body.to_string()).into_response()
}

async fn start(collector: Collector) -> SocketAddr {
    let app = Router::new()
        .route("/v1/results", post(results))
        .route("/v1/health", get(health))
        .with_state(collector);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn config(addr: SocketAddr) -> UploaderConfig {
    UploaderConfig {
        endpoint: upload::results_url(&format!("http://{addr}/").parse().unwrap()),
        token: Token::new("t"),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        batch_size: 10,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(10),
        timeout: Duration::from_secs(20),
        idle_interval: Duration::from_millis(20),
        round_interval: Duration::from_mins(1),
    }
}

fn ping(last_octet: u8) -> ResultRecord {
    ResultRecord::Ping(PingResult {
        schema_version: SCHEMA_VERSION,
        result_id: Uuid::new_v4(),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        round_id: Uuid::nil(),
        source: Ipv4Addr::new(192, 0, 2, 1),
        target: Ipv4Addr::new(175, 45, 176, last_octet),
        started_at: OffsetDateTime::now_utc(),
        sent: 1,
        received: 1,
        rtts_us: vec![210_987],
    })
}

/// A one-hop multipath trace that reached its target.
fn multipath() -> ResultRecord {
    let target = Ipv4Addr::new(175, 45, 176, 1);
    ResultRecord::Multipath(MultipathResult {
        schema_version: SCHEMA_VERSION,
        result_id: Uuid::new_v4(),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        round_id: Uuid::nil(),
        source: Ipv4Addr::new(192, 0, 2, 1),
        target,
        protocol: Protocol::Udp,
        params: MultipathParams {
            confidence: 95,
            timeout_ms: 1_000,
            first_ttl: 1,
            max_ttl: 30,
            gap_limit: 3,
            max_probes: 1_000,
            max_seconds: 60,
            pps: 100,
            per_prefix_pps: 10,
        },
        started_at: OffsetDateTime::now_utc(),
        flows: vec![FlowId::Udp {
            src_port: 40_000,
            dst_port: 33_435,
        }],
        hops: vec![MultipathHop {
            ttl: 1,
            interfaces: vec![MultipathInterface {
                address: target,
                reply: Some(Reply {
                    address: target,
                    rtt_us: 1_000,
                    reply_ttl: 64,
                    icmp_type: Some(3),
                    icmp_code: Some(3),
                    tcp_flags: None,
                    quoted_ttl: Some(1),
                    mpls_labels: Vec::new(),
                }),
                flows: vec![0],
            }],
            silent_flows: Vec::new(),
            probes: 1,
            per_packet: false,
        }],
        links: Vec::new(),
        probes_sent: 1,
        stop_reason: StopReason::Reached,
        budget_hit: false,
        annotations: Vec::new(),
        source_stop: None,
    })
}

async fn upload_until_idle(uploader: &mut Uploader, spool: &Spool) {
    for _ in 0..10 {
        if uploader.upload_once(spool).await.unwrap() == Outcome::Idle {
            return;
        }
    }
    panic!("the uploader never went idle");
}

#[tokio::test]
async fn an_older_collector_gets_no_multipath_results_and_they_stay_spooled() {
    let collector = Collector::default();
    let addr = start(collector.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
    spool.put(&ping(1)).unwrap();
    spool.put(&multipath()).unwrap();
    spool.put(&ping(2)).unwrap();
    let mut uploader = Uploader::new(config(addr)).unwrap();

    upload_until_idle(&mut uploader, &spool).await;

    assert_eq!(*collector.received.lock().unwrap(), ["ping", "ping"]);
    assert_eq!(spool.depth_of("multipath").unwrap(), 1, "kept for later");
    assert_eq!(spool.depth().unwrap(), 1, "the pings went");
    assert_eq!(spool.quarantine_count().unwrap(), 0, "nothing set aside");

    // The collector is upgraded: the next ack (of a new ping) says so, and the
    // multipath result goes with the upload after it.
    *collector.kinds.lock().unwrap() = nkpath_proto::RESULT_KINDS.map(String::from).to_vec();
    spool.put(&ping(3)).unwrap();
    upload_until_idle(&mut uploader, &spool).await;

    assert_eq!(
        *collector.received.lock().unwrap(),
        ["ping", "ping", "ping", "multipath"]
    );
    assert_eq!(spool.depth().unwrap(), 0);
    assert_eq!(spool.quarantine_count().unwrap(), 0);
}

#[tokio::test]
async fn a_collector_that_advertises_multipath_in_its_health_answer_gets_them_at_once() {
    let collector = Collector::default();
    *collector.kinds.lock().unwrap() = nkpath_proto::RESULT_KINDS.map(String::from).to_vec();
    let addr = start(collector.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
    spool.put(&multipath()).unwrap();
    let mut uploader = Uploader::new(config(addr)).unwrap();

    upload_until_idle(&mut uploader, &spool).await;

    assert_eq!(*collector.received.lock().unwrap(), ["multipath"]);
    assert_eq!(*collector.health_asked.lock().unwrap(), 1);
    assert_eq!(spool.depth().unwrap(), 0);
}

#[tokio::test]
async fn only_multipath_results_for_an_older_collector_leave_the_uploader_idle() {
    let collector = Collector::default();
    let addr = start(collector.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.db")).unwrap();
    spool.put(&multipath()).unwrap();
    let mut uploader = Uploader::new(config(addr)).unwrap();

    assert_eq!(uploader.upload_once(&spool).await.unwrap(), Outcome::Idle);
    assert_eq!(uploader.upload_once(&spool).await.unwrap(), Outcome::Idle);

    assert!(collector.received.lock().unwrap().is_empty());
    // Asked once, then trusted until the recheck interval.
    assert_eq!(*collector.health_asked.lock().unwrap(), 1);
    assert_eq!(spool.depth_of("multipath").unwrap(), 1);
}
