//! The agent's spool on a full disk: a size-limited tmpfs that the test mounts (it needs
//! root; without it the tests say they skip) and unmounts when it ends, passed or failed.
//! What a user cares about: results the collector acknowledged leave the spool even when
//! something else filled the disk (no re-upload loop), and no round starts while the spool
//! cannot take its results, with `status` saying why, until space returns.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nkpath_agent::service::spool::Spool;
use nkpath_agent::service::status;
use nkpath_proto::{PingResult, ResultRecord, SCHEMA_VERSION};
use time::OffsetDateTime;
use uuid::Uuid;

/// A tmpfs of `size` mounted on a fresh directory; unmounted (then the directory removed)
/// when dropped, also when the test panics.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // Mode 0777: the agent writes its reserve there after dropping root.
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "nkpath-test",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a spool connection still open in the failing test must not keep it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A ping with `replies` round-trip times (about 10 bytes each in the spool).
fn ping(replies: u32) -> ResultRecord {
    ResultRecord::Ping(PingResult {
        schema_version: SCHEMA_VERSION,
        result_id: Uuid::new_v4(),
        agent_id: "t1".into(),
        agent_version: "0.1.0".into(),
        round_id: Uuid::nil(),
        source: Ipv4Addr::new(192, 0, 2, 1),
        target: Ipv4Addr::new(175, 45, 176, 1),
        started_at: OffsetDateTime::now_utc(),
        sent: replies,
        received: replies,
        rtts_us: vec![210_987; replies as usize],
    })
}

/// `n` results in a new spool at `path`, its WAL then checkpointed and emptied (as after
/// a quiet spell), so that the next change needs new disk blocks.
fn spool_with(path: &Path, n: usize) -> (Spool, Vec<Uuid>) {
    let spool = Spool::open(path).unwrap();
    let ids = (0..n)
        .map(|_| {
            let r = ping(100);
            spool.put(&r).unwrap();
            r.result_id()
        })
        .collect();
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    (spool, ids)
}

/// Fills the file system holding `dir` to the last block, as another program would.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    for chunk in [1 << 20, 4096, 512, 1] {
        let bytes = vec![0xa5u8; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

fn agent_config(spool: &Path) -> nkpath_agent::service::config::Config {
    let text = format!(
        "agent_id = \"t1\"\n[collector]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n[spool]\npath = {:?}\n",
        spool.display().to_string()
    );
    nkpath_agent::service::config::parse(Path::new("agent.toml"), &text).unwrap()
}

#[test]
fn acknowledged_results_leave_a_spool_on_a_full_disk() {
    let Some(tmpfs) = Tmpfs::mount("12m") else {
        return;
    };
    let (spool, ids) = spool_with(&tmpfs.path().join("spool.db"), 300);
    fill(tmpfs.path());
    assert!(spool.put(&ping(1)).is_err(), "the disk is full");

    // The collector acknowledged them: they go, and are not uploaded again.
    assert_eq!(spool.ack(&ids).unwrap(), ids.len());
    assert_eq!(spool.depth().unwrap(), 0);
}

#[test]
fn no_round_starts_until_the_spools_disk_has_room_again() {
    let Some(tmpfs) = Tmpfs::mount("12m") else {
        return;
    };
    let path = tmpfs.path().join("spool.db");
    let (spool, ids) = spool_with(&path, 10);
    let config = agent_config(&path);
    assert_eq!(spool.check_room(4).unwrap(), None, "room at first");

    let filler = fill(tmpfs.path());
    let short = spool.check_room(4).unwrap().expect("no room for a round");
    assert!(short.free_bytes < short.needed_bytes, "{short:?}");
    let text = status::report(&config, &spool, OffsetDateTime::now_utc())
        .unwrap()
        .render_text();
    assert!(text.contains("not probing until space returns"), "{text}");
    // Uploads go on meanwhile.
    assert_eq!(spool.ack(&ids).unwrap(), ids.len());

    fs::remove_file(filler).unwrap();
    assert_eq!(spool.check_room(4).unwrap(), None, "space returned");
    let text = status::report(&config, &spool, OffsetDateTime::now_utc())
        .unwrap()
        .render_text();
    assert!(!text.contains("not probing"), "{text}");
    // The reserve released for the deletes is held again.
    let reserve = fs::metadata(tmpfs.path().join("spool.db-reserve")).unwrap();
    assert_eq!(reserve.len(), nkpath_agent::service::disk::RESERVE_BYTES);
}

/// An agent process, killed when dropped (also when the test fails).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 200 ms until it holds or `limit` has passed.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    check()
}

/// `nkpath-agent run` on a spool whose disk something else filled: it probes nothing, says
/// so in `status`, keeps running (it used to probe, fail to store the round and exit with
/// code 2), and probes again at its next round once space returns. Rounds are a minute
/// apart, so the test takes about a minute. Its only target, its collector and its DNS
/// resolver are on 127.0.0.1.
#[test]
fn the_agent_waits_for_room_instead_of_probing_and_exiting() {
    let Some(tmpfs) = Tmpfs::mount("12m") else {
        return;
    };
    let spool_path = tmpfs.path().join("spool.db");
    drop(Spool::open(&spool_path).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("agent.toml");
    fs::write(
        &config_path,
        format!(
            "agent_id = \"fd1\"\nallowlist = [\"127.0.0.1/32\"]\ntargets = [\"127.0.0.1/32\"]\n\
             [collector]\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\n\
             [schedule]\ninterval = \"1m\"\njitter = \"0s\"\n\
             [dns]\nresolver = \"127.0.0.1:1\"\n\
             [spool]\npath = {:?}\n",
            spool_path.display().to_string()
        ),
    )
    .unwrap();
    let config = nkpath_agent::service::config::load(&config_path).unwrap();
    let filler = fill(tmpfs.path());

    let log = fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = Running(
        Command::new(env!("CARGO_BIN_EXE_nkpath-agent"))
            .args(["run", "--config"])
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let status = || {
        status::gather(&config, OffsetDateTime::now_utc())
            .map(|r| r.render_text())
            .unwrap_or_default()
    };
    let log_text = || fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || status()
            .contains("not probing until space returns")),
        "status: {}\nlog: {}",
        status(),
        log_text()
    );
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the agent exited: {}",
        log_text()
    );
    let state = Spool::open_existing(&spool_path).unwrap().state().unwrap();
    assert_eq!(state.last_round, None, "it probed: {}", log_text());
    assert!(
        log_text().contains("the spool cannot take a round"),
        "{}",
        log_text()
    );

    fs::remove_file(filler).unwrap();
    assert!(
        wait_until(Duration::from_secs(90), || Spool::open_existing(
            &spool_path
        )
        .and_then(|s| s.state())
        .is_ok_and(|s| s.last_round.is_some())),
        "no round once space returned: {}",
        log_text()
    );
    assert!(
        agent.0.try_wait().unwrap().is_none(),
        "the agent exited: {}",
        log_text()
    );
    assert!(!status().contains("not probing"), "{}", status());
}
