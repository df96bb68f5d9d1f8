//! Issue 20, item 2, the collector's side: one token can fill neither the disk nor the
//! memory. Padding a result with unknown fields stores nothing of the padding; each agent has
//! quotas of bytes and uploads at once (429 with Retry-After beyond them), following its own
//! rate cap by default; and 128 uploads of 16 MiB at once keep the collector's peak RSS under
//! 512 MiB, measured from /proc.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::server::Server;
use nkpath_collector::Db;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const MIB: usize = 1 << 20;

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap()
}

/// The golden trace of the wire format as `agent`'s new result, started now, declaring a rate
/// cap of `pps` packets a second.
fn trace(agent: &str, pps: u32) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/tests/golden/trace_result.json");
    let mut trace: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    trace["kind"] = json!("trace");
    trace["result_id"] = json!(Uuid::new_v4());
    trace["agent_id"] = json!(agent);
    trace["started_at"] = json!(now());
    trace["params"]["pps"] = json!(pps);
    trace
}

fn ping(agent: &str) -> Value {
    json!({
        "kind": "ping",
        "schema_version": "1.0",
        "result_id": Uuid::new_v4(),
        "agent_id": agent,
        "agent_version": "0.1.0",
        "round_id": Uuid::new_v4(),
        "source": "198.51.100.7",
        "target": "175.45.176.1",
        "started_at": now(),
        "sent": 2,
        "received": 1,
        "rtts_us": [212_000]
    })
}

/// An upload batch of `results` as JSON text (no padding).
fn batch(agent: &str, results: &[Value]) -> String {
    json!({
        "schema_version": "1.0",
        "agent_id": agent,
        "agent_version": "0.1.0",
        "batch_id": Uuid::new_v4(),
        "sent_at": now(),
        "results": results,
    })
    .to_string()
}

/// An HTTP answer as read off the socket.
#[derive(Debug, Default)]
struct Answer {
    status: Option<u16>,
    retry_after: Option<u64>,
    body: String,
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer::default();
    };
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok());
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse().ok());
    Answer {
        status,
        retry_after,
        body: body.to_owned(),
    }
}

/// Posts `text` followed by `padding` spaces (JSON allows trailing whitespace) as one upload
/// over HTTP/1.1, writing the body in 1 MiB pieces while another thread reads the answer, so
/// that an answer sent before the body is read is seen even if the collector then closes.
fn post_padded(
    addr: &str,
    token: &str,
    text: &str,
    padding: usize,
    spaces: &Arc<Vec<u8>>,
) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(3)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let reading = std::thread::spawn(move || {
        let mut raw = Vec::new();
        let _ = reader.read_to_end(&mut raw);
        raw
    });
    let head = format!(
        "POST /v1/results HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len() + padding
    );
    let mut write = || -> std::io::Result<()> {
        stream.write_all(head.as_bytes())?;
        stream.write_all(text.as_bytes())?;
        let mut left = padding;
        while left > 0 {
            let n = left.min(spaces.len());
            stream.write_all(&spaces[..n])?;
            left -= n;
        }
        Ok(())
    };
    // A collector that answers before reading the body may close while this still writes.
    let _ = write();
    parse_answer(&reading.join().unwrap())
}

fn add_agents(db: &Path, names: &[String]) -> Vec<String> {
    let mut db = Db::open(db).unwrap();
    names
        .iter()
        .map(|n| db.add_agent(n).unwrap().token.expose().to_owned())
        .collect()
}

/// Peak resident memory of a running process, in bytes (`VmHWM` of /proc/PID/status).
fn peak_rss(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

fn db_bytes(db: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

/// Results padded with unknown fields up to the 4 MiB result limit are refused, and the
/// database does not grow by their padding; padding with whitespace is not stored either.
#[test]
fn padding_a_result_does_not_grow_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = add_agents(&db, &["vp-1".to_owned()]).remove(0);
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    let spaces = Arc::new(vec![b' '; MIB]);
    // Settle the schema and the first pages before measuring.
    let first = post_padded(
        &server.addr,
        &token,
        &batch("vp-1", &[ping("vp-1")]),
        0,
        &spaces,
    );
    assert_eq!(first.status, Some(200), "{}", first.body);
    let before = db_bytes(&db);

    // Two uploads of three results, each padded to just under the 4 MiB result limit.
    for _ in 0..2 {
        let padded: Vec<Value> = (0..3)
            .map(|i| {
                let mut result = trace("vp-1", 100);
                result[format!("padding_{i}")] = json!("x".repeat(4 * MIB - 8 * 1024));
                result
            })
            .collect();
        let answer = post_padded(&server.addr, &token, &batch("vp-1", &padded), 0, &spaces);
        assert_eq!(answer.status, Some(200), "{}", answer.body);
        let ack: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(ack["accepted"].as_array().unwrap().len(), 0, "{ack}");
        assert_eq!(ack["refused"].as_array().unwrap().len(), 3, "{ack}");
    }

    // 12 MiB of whitespace around one result: stored, but not its padding.
    let spaced = batch("vp-1", &[trace("vp-1", 100)]);
    let answer = post_padded(&server.addr, &token, &spaced, 12 * MIB, &spaces);
    assert_eq!(answer.status, Some(200), "{}", answer.body);
    let ack: Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(ack["accepted"].as_array().unwrap().len(), 1, "{ack}");

    let grown = db_bytes(&db).saturating_sub(before);
    assert!(
        grown < MIB as u64,
        "the database grew {grown} bytes for 36 MiB of padding"
    );
}

/// By default an agent's byte quota follows its own rate cap: an agent whose traces declare
/// 1 packet a second may send 2 × 3600 × 1024 bytes an hour; beyond that it gets 429 with
/// Retry-After, and nothing of the refused upload is stored. Another agent is not affected.
#[test]
fn an_agent_over_its_default_byte_quota_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let tokens = add_agents(&db, &["slow".to_owned(), "other".to_owned()]);
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    let spaces = Arc::new(vec![b' '; MIB]);
    let quota = 2 * 3600 * 1024;

    let mut sent = 0;
    let mut accepted = 0;
    let mut refused = None;
    // Twice the quota's worth at most; the quota must stop it well before.
    for _ in 0..16 {
        let text = batch("slow", &[trace("slow", 1)]);
        let answer = post_padded(&server.addr, &tokens[0], &text, MIB, &spaces);
        if answer.status == Some(200) {
            sent += text.len() + MIB;
            accepted += 1;
            continue;
        }
        refused = Some(answer);
        break;
    }
    let refused = refused.unwrap_or_else(|| panic!("{sent} bytes in a few seconds, never refused"));
    assert_eq!(refused.status, Some(429), "{}", refused.body);
    assert!(
        refused.retry_after.is_some_and(|s| s >= 1),
        "429 without Retry-After: {refused:?}"
    );
    assert!(
        sent <= quota + 2 * MIB,
        "{sent} bytes accepted, the quota is {quota}"
    );
    assert!(refused.body.contains("quota"), "{}", refused.body);

    let stored = Db::open(&db)
        .unwrap()
        .sql_for_tests()
        .query_row(
            "SELECT count(*) FROM results WHERE agent_id = 'slow'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(stored, accepted, "the refused upload stored nothing");

    let other = post_padded(
        &server.addr,
        &tokens[1],
        &batch("other", &[trace("other", 1)]),
        MIB,
        &spaces,
    );
    assert_eq!(other.status, Some(200), "{}", other.body);
}

/// An agent may have 2 uploads in progress by default: a third, while two are still being
/// sent, gets 429 with Retry-After; another agent's upload goes through.
#[test]
fn uploads_of_one_agent_at_once_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let tokens = add_agents(&db, &["vp-1".to_owned(), "vp-2".to_owned()]);
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    let spaces = Arc::new(vec![b' '; MIB]);
    // Two uploads whose bodies are announced but not yet sent.
    let hanging: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            write!(
                s,
                "POST /v1/results HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
                tokens[0]
            )
            .unwrap();
            s
        })
        .collect();
    // Until the collector has taken both (an ordering: it answers each request in turn).
    let third = (0..100)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            post_padded(
                &server.addr,
                &tokens[0],
                &batch("vp-1", &[ping("vp-1")]),
                0,
                &spaces,
            )
        })
        .find(|a| a.status != Some(200));
    let third = third.expect("a third upload at once was accepted, again and again");
    assert_eq!(third.status, Some(429), "{}", third.body);
    assert!(third.retry_after.is_some(), "{third:?}");
    let other = post_padded(
        &server.addr,
        &tokens[1],
        &batch("vp-2", &[ping("vp-2")]),
        0,
        &spaces,
    );
    assert_eq!(other.status, Some(200), "{}", other.body);
    drop(hanging);
}

/// 128 uploads of 16 MiB at once, from 128 agents: the collector's peak RSS stays under
/// 512 MiB; every upload is answered (stored, or 503/429 with Retry-After), and the collector
/// still works afterwards.
#[test]
fn concurrent_large_uploads_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let names: Vec<String> = (0..128).map(|i| format!("vp-{i}")).collect();
    let tokens = add_agents(&db, &names);
    // All from 127.0.0.1: the cap on connections per address is not what is tested here.
    let server = Server::start(&db, "127.0.0.1:0", &["--max-connections-per-ip", "256"]);
    let spaces = Arc::new(vec![b' '; MIB]);
    let addr = server.addr.clone();
    let uploads: Vec<_> = names
        .iter()
        .zip(&tokens)
        .map(|(name, token)| {
            let (addr, token, spaces) = (addr.clone(), token.clone(), spaces.clone());
            let text = batch(name, &[ping(name)]);
            std::thread::spawn(move || {
                let padding = 16 * MIB - 1024 - text.len();
                post_padded(&addr, &token, &text, padding, &spaces)
            })
        })
        .collect();
    let answers: Vec<Answer> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = peak_rss(server.child.id());

    let stored = answers.iter().filter(|a| a.status == Some(200)).count();
    let deferred: Vec<&Answer> = answers
        .iter()
        .filter(|a| matches!(a.status, Some(429 | 503)))
        .collect();
    eprintln!(
        "peak RSS {} MiB; {stored} stored, {} deferred, {} other",
        peak / MIB,
        deferred.len(),
        answers.len() - stored - deferred.len()
    );
    assert!(
        peak < 512 * MIB,
        "peak RSS {} MiB with 128 uploads of 16 MiB at once",
        peak / MIB
    );
    assert_eq!(
        stored + deferred.len(),
        answers.len(),
        "every upload is stored or deferred: {:?}",
        answers
            .iter()
            .filter(|a| !matches!(a.status, Some(200 | 429 | 503)))
            .map(|a| (a.status, a.body.chars().take(200).collect::<String>()))
            .collect::<Vec<_>>()
    );
    assert!(stored > 0, "none was stored");
    assert!(
        deferred.iter().all(|a| a.retry_after.is_some()),
        "a deferred upload without Retry-After"
    );
    let after = post_padded(
        &addr,
        &tokens[0],
        &batch("vp-0", &[ping("vp-0")]),
        0,
        &spaces,
    );
    assert_eq!(after.status, Some(200), "{}", after.body);
}
