//! `serve` on a full disk: uploads are answered 507 with `Retry-After` (not a 500), health
//! says the database is not writable, nothing acknowledged is lost, and uploads are stored
//! again once space is freed. On a size-limited tmpfs the test mounts itself (root only).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::Server;
use nkpath_collector::Db;
use nkpath_proto::{UploadAck, decode_slice};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// A tmpfs mounted for this test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "nkpath-test"])
            .arg(dir)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}",
            dir.display()
        );
        Self(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(&self.0)
            .stdin(Stdio::null())
            .status();
    }
}

fn batch(ids: &[Uuid]) -> Vec<u8> {
    let now = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    let results: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
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
            })
        })
        .collect();
    json!({
        "schema_version": "1.0",
        "agent_id": "vp-1",
        "agent_version": "0.1.0",
        "batch_id": Uuid::new_v4(),
        "sent_at": now,
        "results": results,
    })
    .to_string()
    .into_bytes()
}

struct Uploader {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Uploader {
    /// Uploads `n` new results: the status, the `Retry-After` header, and the body.
    async fn upload(&self, ids: &[Uuid]) -> (u16, Option<String>, Vec<u8>) {
        let response = self
            .client
            .post(format!("{}/v1/results", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(batch(ids))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            status,
            retry_after,
            response.bytes().await.unwrap().to_vec(),
        )
    }

    async fn health(&self) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/v1/health", self.url))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

/// Fills the file system of `path` with one file of zeros, until it refuses more.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_507_and_unwritable_health_and_loses_nothing_acknowledged() {
    if !nix::unistd::geteuid().is_root() {
        nkpath_testbed::skip_or_panic("not root: the test mounts a tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Declared before the server, so dropped after it: unmounted once the server is gone.
    let _tmpfs = Tmpfs::mount(dir.path(), "8m");
    let db = dir.path().join("c.db");
    let token = Db::open(&db)
        .unwrap()
        .add_agent("vp-1")
        .unwrap()
        .token
        .expose()
        .to_owned();
    let server = Server::start(&db, "127.0.0.1:0", &[]);
    let uploader = Uploader {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        url: format!("http://{}", server.addr),
        token,
    };
    let mut acknowledged = Vec::new();
    let ids: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    let (status, _, body) = uploader.upload(&ids).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    acknowledged.extend(decode_slice::<UploadAck>(&body).unwrap().accepted);

    // The disk fills up: uploads go on until one finds no room.
    let filler = dir.path().join("filler");
    fill(&filler);
    let mut refused = None;
    for _ in 0..200 {
        let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        let (status, retry_after, body) = uploader.upload(&ids).await;
        if status == 200 {
            acknowledged.extend(decode_slice::<UploadAck>(&body).unwrap().accepted);
        } else {
            refused = Some((
                status,
                retry_after,
                String::from_utf8_lossy(&body).into_owned(),
            ));
            break;
        }
    }
    let (status, retry_after, body) =
        refused.expect("200 uploads of 200 results fit on a full disk");
    assert_eq!(
        status, 507,
        "a full disk is 507 Insufficient Storage: {body}"
    );
    assert!(retry_after.is_some(), "with a Retry-After: {body}");
    assert!(body.contains("disk is full"), "{body}");

    let (status, health) = uploader.health().await;
    assert_eq!(status, 503, "{health}");
    let db_state = health["db"].as_str().unwrap();
    assert!(db_state.starts_with("not writable"), "{health}");

    // Space comes back: the next upload is stored and health is ok again.
    std::fs::remove_file(&filler).unwrap();
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    let (status, _, body) = uploader.upload(&ids).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    acknowledged.extend(decode_slice::<UploadAck>(&body).unwrap().accepted);
    let (status, health) = uploader.health().await;
    assert_eq!(
        (status, health["db"].as_str()),
        (200, Some("ok")),
        "{health}"
    );

    // Every result ever acknowledged is stored.
    drop(server);
    let stored: Vec<String> = {
        let db = Db::open(&db).unwrap();
        let mut statement = db
            .sql_for_tests()
            .prepare("SELECT result_id FROM results")
            .unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let missing: Vec<&Uuid> = acknowledged
        .iter()
        .filter(|id| !stored.contains(&id.to_string()))
        .collect();
    assert!(
        acknowledged.len() > 50 && missing.is_empty(),
        "{} acknowledged, missing: {missing:?}",
        acknowledged.len()
    );
}
