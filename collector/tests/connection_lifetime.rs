//! How long `serve` keeps a connection: HTTP/2 clients that fall silent after a request
//! are closed after the idle timeout (and the slots they held free up), connections older
//! than the maximum age are closed with a GOAWAY once their request in flight is answered,
//! HTTP/1 keep-alive connections obey the same idle timeout and maximum age, and IPv6
//! clients count against the per-address cap by their /64.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use common::server::Server;
use nkpath_collector::Db;
use nkpath_proto::{UploadAck, decode_slice};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A token for agent `vp-1` in a new database at `db`.
fn agent_token(db: &Path) -> String {
    let mut db = Db::open(db).unwrap();
    db.add_agent("vp-1").unwrap().token.expose().to_owned()
}

/// One ping result of `vp-1`, as an upload batch.
fn upload_body(id: Uuid) -> Vec<u8> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    json!({
        "schema_version": "1.0",
        "agent_id": "vp-1",
        "agent_version": "0.1.0",
        "batch_id": Uuid::new_v4(),
        "sent_at": now,
        "results": [{
            "kind": "ping",
            "schema_version": "1.0",
            "result_id": id,
            "agent_id": "vp-1",
            "agent_version": "0.1.0",
            "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
            "source": "198.51.100.7",
            "target": "175.45.176.1",
            "started_at": now,
            "sent": 2,
            "received": 1,
            "rtts_us": [212_000]
        }]
    })
    .to_string()
    .into_bytes()
}

/// An HTTP/2 (prior knowledge, cleartext) connection to `addr`, and the task driving it
/// (it answers the server's PINGs, as every HTTP/2 client does); the task ends when the
/// server closes the connection.
async fn h2_connect(
    addr: &str,
) -> (
    h2::client::SendRequest<Bytes>,
    JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    (send, tokio::spawn(connection))
}

/// Reads a whole HTTP/2 response: status and body.
async fn h2_response(response: h2::client::ResponseFuture) -> (StatusCode, Vec<u8>) {
    let response = response.await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    (status, bytes)
}

async fn h2_health(send: &mut h2::client::SendRequest<Bytes>, addr: &str) -> StatusCode {
    let request = Request::get(format!("http://{addr}/v1/health"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    h2_response(response).await.0
}

/// `GET /v1/health` on a new HTTP/1 connection; `None` when the connection is refused or
/// closed without an answer.
async fn health_on_a_new_connection(addr: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{addr}/v1/health"))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_http2_connections_are_closed_when_idle_and_free_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    agent_token(&db);
    let server = Server::start(
        &db,
        "127.0.0.1:0",
        &[
            "--max-connections",
            "8",
            "--max-connections-per-ip",
            "8",
            "--idle-timeout",
            "2",
        ],
    );
    // The attacker: every slot taken by an HTTP/2 connection that sent one complete GET
    // and then nothing (its PINGs answered).
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let (mut send, connection) = h2_connect(&server.addr).await;
        assert_eq!(h2_health(&mut send, &server.addr).await, StatusCode::OK);
        attackers.push((send, connection));
    }
    assert_eq!(
        health_on_a_new_connection(&server.addr).await,
        None,
        "every slot is taken: a ninth connection is refused"
    );

    // Each is closed by the server, gracefully (a GOAWAY, so the client sees no error).
    for (_send, connection) in attackers {
        let closed = tokio::time::timeout(Duration::from_mins(1), connection).await;
        let closed = closed.expect("a silent HTTP/2 connection stayed open for a minute");
        assert!(
            matches!(closed, Ok(Ok(()))),
            "closed with an error: {closed:?}"
        );
    }
    // The slots are free again.
    assert_eq!(health_on_a_new_connection(&server.addr).await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_connections_get_a_goaway_after_their_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let token = agent_token(&db);
    let server = Server::start(
        &db,
        "127.0.0.1:0",
        &["--max-connection-age", "2", "--idle-timeout", "60"],
    );
    let (mut send, connection) = h2_connect(&server.addr).await;
    // An upload whose body is still on its way when the connection reaches its maximum age.
    let request = Request::post(format!("http://{}/v1/results", server.addr))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // The connection is past its age: it takes no new request...
    let refused = send.clone().ready().await.and_then(|mut s| {
        let request = Request::get(format!("http://{}/v1/health", server.addr))
            .body(())
            .unwrap();
        s.send_request(request, true).map(|_| ())
    });
    let refused = refused.expect_err("a connection past its age took a new request");
    assert!(refused.is_go_away(), "{refused:?}");
    // ...but the upload in flight is answered and stored.
    let id = Uuid::new_v4();
    body.send_data(Bytes::from(upload_body(id)), true).unwrap();
    let (status, ack) = h2_response(response).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&ack));
    let ack: UploadAck = decode_slice(&ack).unwrap();
    assert_eq!(ack.accepted, vec![id]);
    let closed = tokio::time::timeout(Duration::from_secs(30), connection)
        .await
        .expect("the old connection was not closed after its request");
    assert!(
        matches!(closed, Ok(Ok(()))),
        "closed with an error: {closed:?}"
    );
    let stored: i64 = Db::open(&db)
        .unwrap()
        .sql_for_tests()
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 1);
}

/// One `GET /v1/health` on an open HTTP/1.1 keep-alive connection: the response head,
/// lower-cased, or `None` when the server has closed the connection.
async fn h1_health(tcp: &mut TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = "GET /v1/health HTTP/1.1\r\nhost: collector\r\n\r\n";
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    // The health answer is a small JSON document with a content-length: read until the
    // head and that many body bytes are in.
    loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("the health answer has a content-length");
        if body.len() >= length {
            return Some(head.to_owned());
        }
    }
}

/// Waits up to `limit` for the server to close `tcp`; true when it did.
async fn closed_by_server(tcp: &mut TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(limit, tcp.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_http1_keep_alive_connections_are_closed_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    agent_token(&db);
    let server = Server::start(&db, "127.0.0.1:0", &["--idle-timeout", "2"]);
    let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
    let head = h1_health(&mut tcp)
        .await
        .expect("no answer to the first request");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        !head.contains("connection: close"),
        "the first answer already closes the connection: the test proves nothing\n{head}"
    );
    // Then silence: the server closes the connection after the idle timeout.
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(30)).await,
        "a silent HTTP/1 keep-alive connection stayed open for 30 s (idle timeout 2 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_http1_keep_alive_connections_are_closed_at_their_maximum_age() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    agent_token(&db);
    let server = Server::start(
        &db,
        "127.0.0.1:0",
        &["--max-connection-age", "2", "--idle-timeout", "60"],
    );
    let mut tcp = TcpStream::connect(&server.addr).await.unwrap();
    // A request every half second, never idle: only the maximum age may end it. Every
    // request sent is answered until the server says it closes.
    let started = tokio::time::Instant::now();
    let mut answered = 0;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "a busy HTTP/1 connection lived 30 s with a maximum age of 2 s ({answered} answers)"
        );
        match h1_health(&mut tcp).await {
            Some(head) => {
                assert!(head.starts_with("http/1.1 200"), "{head}");
                answered += 1;
                if head.contains("connection: close") {
                    break;
                }
            }
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed before its maximum age"
    );
    assert!(answered >= 2, "closed after {answered} answer(s)");
    assert!(
        closed_by_server(&mut tcp, Duration::from_secs(10)).await,
        "the connection stayed open after its last answer"
    );
}

/// Environment variable that tells the namespace helper the collector's address.
const SERVER_ENV: &str = "NKPATH_V6_TEST_SERVER";

/// A network namespace of this test, deleted when dropped (also when the test fails).
struct Namespace(String);

impl Namespace {
    fn create() -> Self {
        let name = format!("nkpath-v6-{}", std::process::id());
        ip(&["netns", "add", &name]);
        Self(name)
    }

    fn ip(&self, args: &[&str]) {
        ip(&[&["-n", self.0.as_str()], args].concat());
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdin(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Many addresses of one IPv6 /64 share one per-address cap; another /64 has its own. In
/// a namespace of its own holding `fd00::/64` addresses on its loopback (root only).
#[test]
fn ipv6_clients_are_counted_by_their_slash_64() {
    if !nix::unistd::geteuid().is_root() {
        nkpath_testbed::skip_or_panic("not root: the test creates a network namespace");
        return;
    }
    let ns = Namespace::create();
    ns.ip(&["link", "set", "lo", "up"]);
    for address in [
        "fd00::1/64",
        "fd00::a/64",
        "fd00::b/64",
        "fd00::c/64",
        "fd00::d/64",
        "fd00:0:0:1::a/64",
    ] {
        ns.ip(&["addr", "add", address, "dev", "lo", "nodad"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    agent_token(&db);
    let bin = env!("CARGO_BIN_EXE_nkpath-collector");
    let netns = ["ip", "netns", "exec", ns.0.as_str()];
    let server = Server::start_with_prefix(
        &netns,
        bin,
        &db,
        "[fd00::1]:0",
        &["--max-connections-per-ip", "3"],
    );
    let helper = Command::new("ip")
        .args(&netns[1..])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ipv6_helper_in_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env(SERVER_ENV, &server.addr)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&helper.stdout),
        String::from_utf8_lossy(&helper.stderr)
    );
    assert!(helper.status.success(), "{output}");
    assert!(
        output.contains("1 passed"),
        "the helper did not run: {output}"
    );
    let log = server.log();
    assert!(
        log.contains("connections open from fd00::/64"),
        "the refusal names the /64: {log}"
    );
}

/// Not a test: runs inside the namespace of [`ipv6_clients_are_counted_by_their_slash_64`].
#[test]
#[ignore = "helper: ipv6_clients_are_counted_by_their_slash_64 runs it in its namespace"]
fn ipv6_helper_in_namespace() {
    let Ok(server) = std::env::var(SERVER_ENV) else {
        return;
    };
    let server: SocketAddr = server.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Three connections from three addresses of fd00::/64 fill its cap of 3...
        let mut held = Vec::new();
        for source in ["fd00::a", "fd00::b", "fd00::c"] {
            let (status, connection) = health_from(source, server).await;
            assert_eq!(status, Some(StatusCode::OK), "from {source}");
            held.push(connection);
        }
        // ...so a fourth address of the same /64 is refused...
        let (status, _) = health_from("fd00::d", server).await;
        assert_eq!(status, None, "fd00::d shares the /64's cap");
        // ...while another /64 is not.
        let (status, _) = health_from("fd00:0:0:1::a", server).await;
        assert_eq!(
            status,
            Some(StatusCode::OK),
            "another /64 has a cap of its own"
        );
        drop(held);
    });
}

/// `GET /v1/health` over HTTP/2 from `source`; the status (`None`: refused) and the
/// connection, still open.
async fn health_from(
    source: &str,
    server: SocketAddr,
) -> (Option<StatusCode>, Option<h2::client::SendRequest<Bytes>>) {
    let socket = tokio::net::TcpSocket::new_v6().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let tcp = socket.connect(server).await.unwrap();
    let Ok((mut send, connection)) = h2::client::handshake(tcp).await else {
        return (None, None);
    };
    tokio::spawn(connection);
    let request = Request::get(format!("http://{server}/v1/health"))
        .body(())
        .unwrap();
    let Ok((response, _)) = send.send_request(request, true) else {
        return (None, None);
    };
    match tokio::time::timeout(Duration::from_secs(10), response).await {
        Ok(Ok(response)) => (Some(response.status()), Some(send)),
        _ => (None, None),
    }
}
