//! `serve --bgp-sync` on the emulated Internet: the testbed's route collector (rc, BIRD)
//! publishes through a local archive mirror on 127.0.0.1 in both archive layouts (RIS:
//! `rrc00`, RouteViews: `route-views2`), a file per slot, only after its slot ended. With
//! agents tracing, a BGP session shut in BIRD shows in `report changes` with no operator
//! step, and no trace gets `stale-bgp`; a control database that had its BGP data loaded once
//! at the start, as before sync existed, calls the later traces `stale-bgp`.
//!
//! The archives' slots are shortened to a minute (the shortest their `HHMM` names can
//! tell): RIS gets rc's last RIB dump of each minute and the minute's updates, RouteViews
//! the updates cut into 2-minute slots (so that its files are not byte-for-byte RIS's).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::mirror::Mirror;
use common::server::Server;
use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::analysis::{AnalysisOptions, Analyzer, Mapper, TraceAnalysis};
use nkpath_collector::mrt::{self, LoadOptions};
use nkpath_testbed::Testbed;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");
/// The background sync's period in this test.
const SYNC_EVERY_S: i64 = 60;
/// The archive slot in this test.
const SLOT_S: i64 = 60;

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn stamp(t: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    (
        format!("{:04}.{:02}", t.year(), u8::from(t.month())),
        format!(
            "{:04}{:02}{:02}.{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
    )
}

/// The MRT records of `data` (complete ones only) with their timestamps.
fn records(data: &[u8]) -> Vec<(i64, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= data.len() {
        let len = u32::from_be_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        if at + 12 + len > data.len() {
            break;
        }
        let t = i64::from(u32::from_be_bytes(data[at..at + 4].try_into().unwrap()));
        out.push((t, &data[at..at + 12 + len]));
        at += 12 + len;
    }
    out
}

/// Publishes rc's files to the mirror as the archives would, until `stop`.
fn publish(tb: &Testbed, mirror: &Mirror, stop: &AtomicBool) {
    let mut published: BTreeSet<String> = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let now = unix_now();
        // RIS: the newest complete RIB dump of each ended minute.
        let mut newest_of_minute: BTreeMap<i64, PathBuf> = BTreeMap::new();
        for dump in tb.rib_dumps().unwrap() {
            let data = fs::read(&dump).unwrap_or_default();
            let Some(&(t, _)) = records(&data).first() else {
                continue;
            };
            newest_of_minute.insert(t - t.rem_euclid(SLOT_S), dump);
        }
        for (slot, dump) in newest_of_minute {
            let (month, name) = stamp(slot);
            let path = format!("/ris/rrc00/{month}/bview.{name}.gz");
            if slot + SLOT_S <= now && !published.contains(&path) {
                let data = fs::read(&dump).unwrap();
                let complete = &data[..records(&data).iter().map(|(_, r)| r.len()).sum::<usize>()];
                mirror.publish(&path, &common::gzip(complete));
                published.insert(path);
            }
        }
        // Updates: every ended slot with records, RIS by the minute, RouteViews by two.
        let data = fs::read(tb.updates_mrt()).unwrap_or_default();
        let recs = records(&data);
        for (slot_len, layout) in [(SLOT_S, "ris"), (2 * SLOT_S, "rv")] {
            let mut slots: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
            for (t, r) in &recs {
                slots
                    .entry(t - t.rem_euclid(slot_len))
                    .or_default()
                    .extend_from_slice(r);
            }
            // A real collector's slot is never empty (its many sessions always say
            // something); rc's is when the testbed is quiet. A quiet slot gets one KEEPALIVE,
            // which changes no route, so that it is published rather than skipped (a gap).
            if let Some(&first) = slots.keys().next() {
                let mut slot = first;
                while slot + slot_len < now {
                    slots.entry(slot).or_insert_with(|| keepalive(slot));
                    slot += slot_len;
                }
            }
            for (slot, bytes) in slots {
                let (month, name) = stamp(slot);
                let path = if layout == "ris" {
                    format!("/ris/rrc00/{month}/updates.{name}.gz")
                } else {
                    format!("/rv/bgpdata/{month}/UPDATES/updates.{name}.bz2")
                };
                // Only after the slot ended (and a second for BIRD's last writes).
                if slot + slot_len < now && !published.contains(&path) {
                    let file = if layout == "ris" {
                        common::gzip(&bytes)
                    } else {
                        common::bzip2(&bytes)
                    };
                    mirror.publish(&path, &file);
                    published.insert(path);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One BGP4MP_MESSAGE_AS4 record holding a KEEPALIVE, at `t`.
fn keepalive(t: i64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&64_512u32.to_be_bytes()); // peer AS
    body.extend_from_slice(&6_447u32.to_be_bytes()); // local AS
    body.extend_from_slice(&0u16.to_be_bytes()); // interface index
    body.extend_from_slice(&1u16.to_be_bytes()); // AFI: IPv4
    body.extend_from_slice(&[192, 0, 2, 254]); // peer address
    body.extend_from_slice(&[192, 0, 2, 253]); // local address
    body.extend_from_slice(&[0xff; 16]); // BGP marker
    body.extend_from_slice(&19u16.to_be_bytes());
    body.push(4); // KEEPALIVE
    let mut record = Vec::new();
    record.extend_from_slice(&u32::try_from(t).unwrap().to_be_bytes());
    record.extend_from_slice(&16u16.to_be_bytes()); // BGP4MP
    record.extend_from_slice(&4u16.to_be_bytes()); // MESSAGE_AS4
    record.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&body);
    record
}

fn agent_binary() -> PathBuf {
    nkpath_testbed::workspace_binary("nkpath-agent")
}

/// A survey of `targets` from `vp` (in its namespace, as nobody with CAP_NET_RAW only),
/// imported into `dbs` with `nkpath-collector import`.
fn survey_into(tb: &Testbed, vp: &str, targets: &[&str], dbs: &[&Path]) {
    let dir = tempfile::Builder::new()
        .prefix("nkpath-survey")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.path().join("survey.jsonl");
    let block = tb.manifest().target.prefix.to_string();
    let mut cmd = tb.command_as_nobody_with_net_raw(vp, agent_binary());
    cmd.args([
        "survey",
        "--agent-id",
        vp,
        "--allow",
        &block,
        "--pps",
        "200",
    ])
    .args(["--per-prefix-pps", "50", "--timeout", "1", "--out"])
    .arg(&out)
    .arg("--targets")
    .args(targets)
    .stdin(Stdio::null());
    let output = cmd.output().expect("spawn agent");
    assert!(
        output.status.success(),
        "survey from {vp} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for db in dbs {
        let status = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .arg("import")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn analyze(db: &Path, max_age_s: i64) -> Vec<TraceAnalysis> {
    let db = Db::open(db).unwrap();
    let options = AnalysisOptions {
        max_bgp_age_s: max_age_s,
        ..AnalysisOptions::default()
    };
    Analyzer::new(&db, Mapper::default(), options)
        .unwrap()
        .analyze_all(nkpath_collector::results::stored_traces(&db, None, None).unwrap())
        .unwrap()
}

/// `report changes` as the operator runs it (CSV).
fn report_changes(db: &Path) -> String {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["report", "changes", "--no-dns", "--format", "csv"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest BGP data time of `collector` as `/v1/health` shows it.
fn newest_synced(server: &Server, collector: &str) -> Option<i64> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(&server.addr).ok()?;
    write!(stream, "GET /v1/health HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let body: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()?;
    let c = body["bgp_sync"]
        .as_array()?
        .iter()
        .find(|c| c["collector"] == collector)?;
    let t = nkpath_proto::timestamp::parse(c["newest_data"].as_str()?)?;
    Some(t.unix_timestamp())
}

/// Where `--on-change` appends each alert document it gets on standard input, one a line.
fn alerts_file(dir: &Path) -> PathBuf {
    dir.join("alerts.jsonl")
}

/// Arguments `serve` gets for alerts on upstream changes: the command appends its document
/// to [`alerts_file`]. A change counts at once (`--alert-min-duration 0`): the test's slots
/// are a minute, not the five minutes a real flap filter waits.
fn alert_args(dir: &Path) -> Vec<String> {
    let out = alerts_file(dir);
    let command = format!("cat >> '{}'; echo >> '{}'", out.display(), out.display());
    ["--on-change", &command, "--alert-min-duration", "0"]
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The upstream change of `prefix` (AS `upstream` gone) fired `--on-change` with no
/// operator step: some document the command got names it. The runner sends within a few
/// seconds of the load that brought the change, which the caller has just seen.
fn assert_alerted(dir: &Path, prefix: Ipv4Net, upstream: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = fs::read_to_string(alerts_file(dir)).unwrap_or_default();
        let fired = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .flat_map(|doc| doc["events"].as_array().cloned().unwrap_or_default())
            .any(|e| {
                e["kind"] == "upstreams"
                    && e["prefix"] == prefix.to_string()
                    && e["disappeared"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|a| a.as_u64() == Some(u64::from(upstream))))
            });
        if fired {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "--on-change did not fire for {prefix} losing AS{upstream}; documents:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn serve_with_bgp_sync_sees_a_session_shut_in_bird_and_never_goes_stale() {
    let Some(tb) = Testbed::private(nkpath_testbed::Options::default()) else {
        return;
    };
    let tb = Arc::new(tb);
    let m = tb.manifest();
    let neighbor = m
        .node("nkbr")
        .unwrap()
        .bgp_neighbors
        .iter()
        .find(|n| n.node == "ttk")
        .unwrap()
        .clone();
    // The /24 only ttk carries: its upstream disappears when the session is shut.
    let others: BTreeSet<Ipv4Net> = m
        .target
        .announced_to
        .iter()
        .filter(|(k, _)| *k != "ttk")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    let lost: Vec<Ipv4Net> = m.target.announced_to["ttk"]
        .iter()
        .filter(|p| !others.contains(p))
        .copied()
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let lost = lost[0];
    let probe = Ipv4Net::new(lost.network(), 30).unwrap().to_string();
    let targets = [probe.as_str(), "175.45.176.0/29"];

    let dir = tempfile::tempdir().unwrap();
    let mirror = Arc::new(Mirror::start(&dir.path().join("mirror")));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (tb, mirror, stop) = (Arc::clone(&tb), Arc::clone(&mirror), Arc::clone(&stop));
        std::thread::spawn(move || publish(&tb, &mirror, &stop))
    };
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop = StopOnDrop(Arc::clone(&stop));

    let synced = dir.path().join("synced.db");
    let control = dir.path().join("control.db");
    let ris = format!("{}/ris", mirror.url);
    let rv = format!("{}/rv", mirror.url);
    let every = format!("{SYNC_EVERY_S}s");
    let mut args: Vec<String> = [
        "--bgp-sync",
        "--sync-every",
        &every,
        "--rib-every",
        "1m",
        "--collector",
        "rrc00",
        "--collector",
        "route-views2",
        "--ris-base",
        &ris,
        "--routeviews-base",
        &rv,
        "--retry-wait",
        "200ms",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    args.extend(alert_args(dir.path()));
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(&synced, "127.0.0.1:0", &arg_refs);

    // The control: rc's data loaded once, by hand, at the start.
    {
        let mut db = Db::open(&control).unwrap();
        let options = LoadOptions {
            collector: Some("rrc00".into()),
            ..LoadOptions::default()
        };
        let dump = tb.rib_dumps().unwrap().into_iter().next().unwrap();
        mrt::load_file(&mut db, &tb.mrt_snapshot(&dump).unwrap(), &options, None).unwrap();
    }
    let started = unix_now();
    let dbs = [synced.as_path(), control.as_path()];
    // Wait for the first RIB dump to be published and synced before the first traces.
    let wait = |what: &str, limit: Duration, mut ok: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + limit;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; serve log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let two_periods = Duration::from_secs((2 * SYNC_EVERY_S) as u64);
    let slot = Duration::from_secs(SLOT_S as u64);
    wait(
        "the first sync",
        slot + two_periods,
        Box::new(|| newest_synced(&server, "rrc00").is_some()),
    );
    survey_into(&tb, "devp", &targets, &dbs);

    let disabled_at = unix_now();
    tb.birdc("nkbr", &["disable", &neighbor.protocol]).unwrap();
    survey_into(&tb, "devp", &targets, &dbs);
    // The change is in the slot that holds it; once that slot is published (its end), the
    // sync has two periods to load it and show it in report changes.
    let want = format!("-AS{}", neighbor.asn);
    let shows = || {
        report_changes(&synced)
            .lines()
            .any(|l| l.contains(&lost.to_string()) && l.contains(&want))
    };
    wait(
        "report changes to show the session's loss",
        slot + two_periods + Duration::from_secs(5),
        Box::new(shows),
    );
    let seen_after = unix_now() - disabled_at;
    assert_alerted(dir.path(), lost, neighbor.asn);

    tb.birdc("nkbr", &["enable", &neighbor.protocol]).unwrap();
    // The control proves something only if its data, loaded once at the start, is older
    // than the maximum age when the last traces are taken: on a fast run, wait for that.
    let control_stale_at = started + 2 * SYNC_EVERY_S + 5;
    while unix_now() < control_stale_at {
        std::thread::sleep(Duration::from_millis(500));
    }
    survey_into(&tb, "devp", &targets, &dbs);
    // The last traces' time must be covered by synced data before they are judged.
    let last_trace = unix_now();
    wait(
        "the sync to reach the last traces",
        slot + two_periods,
        Box::new(|| newest_synced(&server, "rrc00").is_some_and(|t| t >= last_trace)),
    );
    let max_age = 2 * SYNC_EVERY_S;
    let with_sync = analyze(&synced, max_age);
    let stale: Vec<String> = with_sync
        .iter()
        .filter(|a| a.verdict.reason.starts_with("stale-bgp"))
        .map(|a| format!("{} {}", a.trace.started_at, a.verdict.reason))
        .collect();
    assert!(!with_sync.is_empty());
    assert!(stale.is_empty(), "with sync, stale traces: {stale:?}");
    // Every slot was published: no trace falls in a gap without BGP data.
    let unjudged: Vec<String> = with_sync
        .iter()
        .filter(|a| a.verdict.reason == "no BGP data")
        .map(|a| a.trace.started_at.to_string())
        .collect();
    assert!(unjudged.is_empty(), "traces without BGP data: {unjudged:?}");
    assert_eq!(
        Db::open(&synced).unwrap().sync_gaps().unwrap(),
        Vec::new(),
        "no slot was skipped"
    );
    let without = analyze(&control, max_age);
    assert_eq!(without.len(), with_sync.len());
    assert!(
        without
            .iter()
            .any(|a| a.verdict.reason.starts_with("stale-bgp")),
        "the control (data loaded once, {} s before the last trace) has no stale trace",
        last_trace - started
    );
    eprintln!("the loss showed in report changes {seen_after} s after the session was shut");

    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    drop(server);
}
