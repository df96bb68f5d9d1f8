//! Fleet scheduling through the upload API (`oneshot`, with the peer address a real
//! connection would give): what each agent's ack asks it to trace, and when.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::analysis::cymru::CymruAnswer;
use nkpath_collector::fleet::bookkeeping;
use nkpath_collector::fleet::schedule::Budget;
use nkpath_collector::server::{AppState, app};
use nkpath_collector::sources::cymru_cache::CymruCache;
use nkpath_proto::{UploadAck, decode_slice};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tower::ServiceExt as _;
use uuid::Uuid;

const ROUND: Budget = Budget {
    round_secs: 60,
    cap_pps: 10.0,
};

/// One upload of a single ping result (4 pings to 175.45.176.1, 3 answered); the same
/// batch id gives the same batch, as an agent's retry sends it.
fn batch(agent: &str, batch_id: Uuid, round_interval_s: Option<u32>) -> Vec<u8> {
    static START: std::sync::OnceLock<OffsetDateTime> = std::sync::OnceLock::new();
    let now = *START.get_or_init(OffsetDateTime::now_utc);
    let result_id = Uuid::from_u128(batch_id.as_u128() ^ 1);
    batch_with_interval(
        agent,
        batch_id,
        &[ping(agent, result_id, "175.45.176.1", (4, 3), now)],
        round_interval_s,
    )
}

/// A batch of `results` under `batch_id`.
fn batch_of(agent: &str, batch_id: Uuid, results: &[serde_json::Value]) -> Vec<u8> {
    batch_with_interval(agent, batch_id, results, None)
}

/// A batch of `results` under `batch_id`, reporting the agent's round interval when given.
fn batch_with_interval(
    agent: &str,
    batch_id: Uuid,
    results: &[serde_json::Value],
    round_interval_s: Option<u32>,
) -> Vec<u8> {
    let mut batch = json!({
        "schema_version": "1.0",
        "agent_id": agent,
        "agent_version": "0.1.0",
        "batch_id": batch_id,
        "sent_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
        "results": results,
    });
    if let Some(secs) = round_interval_s {
        batch["schema_version"] = json!("1.5");
        batch["round_interval_s"] = json!(secs);
    }
    batch.to_string().into_bytes()
}

/// A ping result of `agent`: `sent` pings to `target` at `at`, `received` answered.
fn ping(
    agent: &str,
    result_id: Uuid,
    target: &str,
    (sent, received): (u32, u32),
    at: OffsetDateTime,
) -> serde_json::Value {
    json!({
        "kind": "ping",
        "schema_version": "1.0",
        "result_id": result_id,
        "agent_id": agent,
        "agent_version": "0.1.0",
        "round_id": result_id,
        "source": "10.0.0.2",
        "target": target,
        "started_at": at.format(&Rfc3339).unwrap(),
        "sent": sent,
        "received": received,
        "rtts_us": vec![1000; received as usize],
    })
}

struct Fleet {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    app: Router,
    tokens: Vec<(String, String, SocketAddr)>,
    /// The round interval the agents report, if any.
    interval: Option<u32>,
}

/// Agents a1 and a2 in AS64500, b1 in AS64501.
const AGENTS: [(&str, &str, u32); 3] = [
    ("a1", "192.0.2.1", 64_500),
    ("a2", "192.0.2.2", 64_500),
    ("b1", "198.51.100.1", 64_501),
];

impl Fleet {
    /// [`AGENTS`] (Team Cymru answers in the cache), scheduling set on or off.
    fn new(schedule: bool) -> Fleet {
        Fleet::build(Some(schedule), &AGENTS, ROUND)
    }

    /// The same with another round length and cap.
    fn with_budget(schedule: bool, budget: Budget) -> Fleet {
        Fleet::build(Some(schedule), &AGENTS, budget)
    }

    /// `agents` (name, upload address, AS); scheduling set as told, or left as a new
    /// database has it (`None`).
    fn build(schedule: Option<bool>, agents: &[(&str, &str, u32)], budget: Budget) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.db");
        let mut db = Db::open(&path).unwrap();
        let mut tokens = Vec::new();
        for &(name, addr, asn) in agents {
            let token = db.add_agent(name).unwrap().token.expose().to_owned();
            CymruCache::new(&db)
                .put(
                    addr.parse().unwrap(),
                    &CymruAnswer {
                        origins: vec![asn],
                        prefix: Some(format!("{addr}/24").parse::<Ipv4Net>().unwrap().trunc()),
                    },
                    OffsetDateTime::now_utc(),
                )
                .unwrap();
            tokens.push((
                name.to_owned(),
                token,
                SocketAddr::new(addr.parse().unwrap(), 40_000),
            ));
        }
        bookkeeping::set_budget(&db, budget).unwrap();
        if let Some(on) = schedule {
            bookkeeping::set_enabled(&db, on).unwrap();
        }
        let app = app(AppState::with_limits(db, 1 << 20, Duration::from_secs(10)));
        Fleet {
            _dir: dir,
            path,
            app,
            tokens,
            interval: None,
        }
    }

    async fn upload(&self, agent: &str, batch_id: Uuid) -> UploadAck {
        self.upload_body(agent, batch(agent, batch_id, self.interval))
            .await
    }

    /// Posts `body` with `agent`'s token and expects an ack.
    async fn upload_body(&self, agent: &str, body: Vec<u8>) -> UploadAck {
        let (status, body) = self.post(agent, body).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        decode_slice(&body).unwrap()
    }

    /// Posts `body` with `agent`'s token, from its address: the status and the body.
    async fn post(&self, agent: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let (_, token, peer) = self.tokens.iter().find(|t| t.0 == agent).unwrap();
        let mut request = Request::builder()
            .method("POST")
            .uri("/v1/results")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(*peer));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, body.to_vec())
    }

    fn count(&self, sql: &str) -> i64 {
        count(&self.path, sql)
    }
}

fn count(path: &Path, sql: &str) -> i64 {
    Db::open(path)
        .unwrap()
        .sql_for_tests()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// The start of the round after the one holding `t`.
fn next_round(t: OffsetDateTime) -> OffsetDateTime {
    let k = ROUND.round_at(t.unix_timestamp());
    OffsetDateTime::from_unix_timestamp(ROUND.round_start(k + 1)).unwrap()
}

#[tokio::test]
async fn agents_of_one_as_take_turns_and_each_as_traces_every_24() {
    let fleet = Fleet::new(true);
    let a1 = fleet.upload("a1", Uuid::new_v4()).await;
    let a2 = fleet.upload("a2", Uuid::new_v4()).await;
    let b1 = fleet.upload("b1", Uuid::new_v4()).await;

    // a1 and b1 (different ASes) both trace one address of each /24 of the /22 next round;
    // the pinged host that answered is the one traced in its /24.
    for ack in [&a1, &b1] {
        assert_eq!(
            ack.pause_until,
            Some(next_round(ack.received_at)),
            "{ack:?}"
        );
        let targets = ack.targets.clone().unwrap();
        assert_eq!(targets.len(), 4, "{targets:?}");
        assert!(
            targets.contains(&"175.45.176.1/32".to_owned()),
            "{targets:?}"
        );
        let block: Ipv4Net = "175.45.176.0/22".parse().unwrap();
        for t in &targets {
            let net: Ipv4Net = t.parse().unwrap();
            assert!(net.prefix_len() == 32 && block.contains(&net), "{t}");
        }
    }
    // a2 shares a1's AS: it waits for the round after.
    let a1_round = a1.pause_until.unwrap();
    assert_eq!(
        a2.pause_until,
        Some(a1_round + time::Duration::seconds(60)),
        "{a2:?}"
    );
    assert_eq!(a2.targets.as_ref().map(Vec::len), Some(4));

    // Asking again before its round gives the same booking, not a second one.
    let again = fleet.upload("a1", Uuid::new_v4()).await;
    assert_eq!(
        (again.targets, again.pause_until),
        (a1.targets, a1.pause_until)
    );
    assert_eq!(fleet.count("SELECT count(*) FROM fleet_bookings"), 12);
}

#[tokio::test]
async fn a_retried_batch_is_counted_once() {
    let fleet = Fleet::new(true);
    let id = Uuid::new_v4();
    fleet.upload("a1", id).await;
    fleet.upload("a1", id).await;
    assert_eq!(
        fleet.count("SELECT sum(ping_probes) FROM fleet_done WHERE agent = 'a1'"),
        4
    );
}

#[tokio::test]
async fn with_scheduling_off_acks_carry_nothing_but_work_is_counted() {
    let fleet = Fleet::new(false);
    let ack = fleet.upload("a1", Uuid::new_v4()).await;
    assert_eq!((ack.targets, ack.pause_until), (None, None));
    assert_eq!(fleet.count("SELECT sum(ping_probes) FROM fleet_done"), 4);
    assert_eq!(fleet.count("SELECT count(*) FROM fleet_bookings"), 0);
}

#[tokio::test]
async fn the_fleet_report_shows_vantages_bookings_and_probes_per_24() {
    let fleet = Fleet::new(true);
    fleet.upload("a1", Uuid::new_v4()).await;
    fleet.upload("a2", Uuid::new_v4()).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(&fleet.path)
        .args(["fleet", "--cap", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = &report["tables"][0]["rows"];
    let a1 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "a1")
        .unwrap();
    assert_eq!(a1["vantage"], "AS64500");
    assert_eq!(a1["probes"], 4);
    assert!(
        a1["next_booked_round"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    let b1 = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "b1")
        .unwrap();
    assert_eq!(b1["vantage"], "not yet seen");
    let hourly = &report["tables"][1]["rows"][0];
    assert_eq!(hourly["prefix"], "175.45.176.0/24");
    assert_eq!(hourly["probes"], 8);
    assert_eq!(hourly["agents"], 2);
    // The cap given was stored: 2 probe/s is 7200 an hour.
    assert_eq!(hourly["cap_per_hour"], 7200);
}

/// Hour-long rounds for the attacks below (every upload of a test falls in one round), at
/// the default cap: 3,600 probes per /24 and round.
const HOUR: Budget = Budget {
    round_secs: 3600,
    cap_pps: 1.0,
};

/// One address of each /24 of the target /22, ending in `.last`.
fn one_per_24(last: u8) -> Vec<String> {
    (176..180).map(|c| format!("175.45.{c}.{last}")).collect()
}

#[tokio::test]
async fn hosts_one_agent_calls_live_steer_only_its_own_targets() {
    let now = OffsetDateTime::now_utc();
    // b1 says .77 answers in every /24; a1 and b1 are of different ASes, so both trace
    // every /24 next round. What a1 is given must be what it would be given without b1's
    // word (asked again should an hour turn between the two fleets' uploads).
    for attempt in 0..3 {
        let attacked = Fleet::with_budget(true, HOUR);
        let lie: Vec<_> = one_per_24(77)
            .iter()
            .map(|t| ping("b1", Uuid::new_v4(), t, (4, 4), now))
            .collect();
        let b1 = attacked
            .upload_body("b1", batch_of("b1", Uuid::new_v4(), &lie))
            .await;
        let a1 = attacked.upload("a1", Uuid::new_v4()).await;
        let quiet = Fleet::with_budget(true, HOUR);
        let unsteered = quiet.upload("a1", Uuid::new_v4()).await;
        if a1.pause_until != unsteered.pause_until && attempt < 2 {
            continue;
        }
        assert_eq!(a1.pause_until, unsteered.pause_until);
        assert_eq!(a1.targets, unsteered.targets, "b1's word steered a1");
        // a1's own ping still steers its own targets (a one-agent fleet works)...
        let targets = a1.targets.unwrap();
        assert!(
            targets.contains(&"175.45.176.1/32".to_owned()),
            "{targets:?}"
        );
        // ...and b1's word steers b1's.
        let mut b1_targets = b1.targets.unwrap();
        b1_targets.sort();
        let expected: Vec<String> = one_per_24(77).iter().map(|a| format!("{a}/32")).collect();
        assert_eq!(b1_targets, expected);
        return;
    }
}

#[tokio::test]
async fn probes_one_agent_claims_delay_only_itself() {
    let now = OffsetDateTime::now_utc();
    let fleet = Fleet::with_budget(true, HOUR);
    // b1 claims 65,535 pings into each /24 in the last round: 18 times the round's budget.
    let last_round = HOUR.round_at(now.unix_timestamp()) - 1;
    let then = OffsetDateTime::from_unix_timestamp(HOUR.round_start(last_round) + 60).unwrap();
    let claims: Vec<_> = one_per_24(9)
        .iter()
        .map(|t| ping("b1", Uuid::new_v4(), t, (65_535, 0), then))
        .collect();
    let b1 = fleet
        .upload_body("b1", batch_of("b1", Uuid::new_v4(), &claims))
        .await;
    let a1 = fleet.upload("a1", Uuid::new_v4()).await;
    let next = OffsetDateTime::from_unix_timestamp(
        HOUR.round_start(HOUR.round_at(a1.received_at.unix_timestamp()) + 1),
    )
    .unwrap();
    assert_eq!(a1.pause_until, Some(next), "a1 was delayed by b1's claim");
    assert_eq!(a1.targets.as_ref().map(Vec::len), Some(4), "{a1:?}");
    // The claim weighs on b1 itself: it sent past its bookings, it waits a round.
    assert_eq!(
        b1.pause_until,
        Some(next + time::Duration::hours(1)),
        "{b1:?}"
    );
}

#[tokio::test]
async fn a_new_database_schedules_the_fleet_without_being_told() {
    let fleet = Fleet::build(None, &AGENTS, ROUND);
    let ack = fleet.upload("a1", Uuid::new_v4()).await;
    assert_eq!(ack.targets.as_ref().map(Vec::len), Some(4), "{ack:?}");
    assert_eq!(ack.pause_until, Some(next_round(ack.received_at)));
}

/// The rounds `agent` is booked in when it asks right after each booked round starts,
/// reporting `interval` seconds.
fn booked_rounds(db: &mut Db, agent: &str, interval: Option<u32>, asks: usize) -> Vec<u64> {
    let mut now = OffsetDateTime::now_utc();
    let mut rounds = Vec::new();
    for _ in 0..asks {
        let tx = db.write().unwrap();
        let followed = bookkeeping::followed_interval(interval, ROUND);
        let got = bookkeeping::assign(&tx, agent, None, now, followed).unwrap();
        tx.commit().unwrap();
        let start = got.pause_until.expect("a booking");
        rounds.push(ROUND.round_at(start.unix_timestamp()));
        now = start + time::Duration::seconds(1);
    }
    rounds
}

#[test]
fn an_agent_is_booked_its_own_interval_apart_clamped_to_sane_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path().join("collector.db")).unwrap();
    bookkeeping::set_budget(&db, ROUND).unwrap();
    let gaps = |rounds: Vec<u64>| -> Vec<u64> { rounds.windows(2).map(|w| w[1] - w[0]).collect() };
    // Three minutes with one-minute rounds: every third round.
    assert_eq!(
        gaps(booked_rounds(&mut db, "slow", Some(180), 4)),
        [3, 3, 3]
    );
    // An older agent (no interval) and one asking for 10 s follow the collector's round.
    assert_eq!(gaps(booked_rounds(&mut db, "old", None, 3)), [1, 1]);
    assert_eq!(gaps(booked_rounds(&mut db, "eager", Some(10), 3)), [1, 1]);
    // A year is taken as a day.
    assert_eq!(
        gaps(booked_rounds(&mut db, "sleepy", Some(31_536_000), 2)),
        [1440]
    );
}

#[tokio::test]
async fn a_batch_id_reused_for_other_results_is_refused_and_a_resend_is_a_retry() {
    let fleet = Fleet::new(false);
    let now = OffsetDateTime::now_utc();
    let batch_id = Uuid::new_v4();
    let first = [ping("a1", Uuid::new_v4(), "175.45.176.1", (4, 3), now)];
    let others: Vec<_> = (0..3)
        .map(|_| ping("a1", Uuid::new_v4(), "175.45.177.1", (4, 3), now))
        .collect();
    let results = |agent: &str| {
        count(
            &fleet.path,
            &format!("SELECT count(*) FROM results WHERE agent_id = '{agent}'"),
        )
    };

    fleet
        .upload_body("a1", batch_of("a1", batch_id, &first))
        .await;
    let (status, body) = fleet.post("a1", batch_of("a1", batch_id, &others)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        String::from_utf8_lossy(&body).contains("new batch id"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(results("a1"), 1, "nothing of the refused batch is stored");

    // The same batch again is the retry: accepted, nothing stored or counted twice.
    let retry = fleet
        .upload_body("a1", batch_of("a1", batch_id, &first))
        .await;
    assert_eq!(retry.accepted.len(), 1);
    assert_eq!(results("a1"), 1);
    // Every stored result is counted once.
    assert_eq!(
        fleet.count("SELECT sum(ping_probes) FROM fleet_done WHERE agent = 'a1'"),
        4
    );
    // Batch ids are each agent's own: b1 may use the same one.
    let b1 = [ping("b1", Uuid::new_v4(), "175.45.176.1", (4, 3), now)];
    fleet.upload_body("b1", batch_of("b1", batch_id, &b1)).await;
    assert_eq!(results("b1"), 1);
}

#[tokio::test]
async fn the_report_shows_intervals_the_cap_cannot_follow_and_agents_behind_one_address() {
    let mut fleet = Fleet::build(
        None,
        &[
            ("p1", "203.0.113.7", 64_502),
            ("p2", "203.0.113.7", 64_502),
            ("p3", "203.0.113.7", 64_502),
        ],
        ROUND,
    );
    fleet.interval = Some(60);
    for agent in ["p1", "p2", "p3"] {
        fleet.upload(agent, Uuid::new_v4()).await;
    }
    // A cap of 0.05 probe/s allows 3 probes per one-minute round: a round of 4 pings
    // into 175.45.176.0/24 never fits.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(&fleet.path)
        .args(["fleet", "--cap", "0.05", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &report["tables"][0];
    let p1 = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["agent"] == "p1")
        .unwrap();
    assert_eq!(p1["interval_s"], 60);
    assert!(p1["cap"].as_str().unwrap().starts_with("never"), "{p1}");
    let notes: Vec<&str> = table["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("agent p1 cannot follow its interval")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("3 agents upload from 203.0.113.7")),
        "{notes:?}"
    );
}
