//! `bgp sync` against a local archive mirror on 127.0.0.1 (started and stopped by each test):
//! the RouteViews and RIS layouts, what is remembered between runs, and every fault an
//! archive or the path to it can show (mirror down, 404, 500, Retry-After, a download cut in
//! the middle, a damaged compressed file, an HTML page, a file of the wrong time, a clock
//! ahead of the archive): a clear line with the URL, retries, nothing half-loaded, and the
//! BGP data never going back in time.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bgpkit_parser::BgpkitParser;
use common::mirror::{Fault, Mirror};
use common::{bzip2, dump_all, gzip, peer, rib, update};
use nkpath_collector::Db;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

/// 2025-01-01T00:00:00Z.
const T0: u32 = 1_735_689_600;

fn run(db: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    eprintln!(
        "$ bgp {args:?}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `bgp sync --once` from the mirror, over January 1st 2025 (plus `extra`).
fn sync(db: &Path, mirror: &Mirror, extra: &[&str]) -> Output {
    let rv = format!("{}/rv", mirror.url);
    let ris = format!("{}/ris", mirror.url);
    let mut args = vec![
        "bgp",
        "sync",
        "--once",
        "--routeviews-base",
        &rv,
        "--ris-base",
        &ris,
        "--retry-wait",
        "50ms",
        "--retries",
        "3",
    ];
    args.extend_from_slice(extra);
    run(db, &args)
}

/// `--collector NAME` and the test's [`window`].
fn collector_in_window(name: &'static str) -> Vec<&'static str> {
    let mut args = vec!["--collector", name];
    args.extend(window());
    args
}

fn window() -> Vec<&'static str> {
    vec![
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-01-01T23:59:59Z",
    ]
}

/// A collector's RIB dump at `T0` and two update files: one route to the target prefix,
/// then its AS path changed, then withdrawn.
struct Published {
    mirror: Mirror,
    _dir: tempfile::TempDir,
}

const RIS_RIB: &str = "/ris/rrc00/2025.01/bview.20250101.0000.gz";
const RIS_UPD1: &str = "/ris/rrc00/2025.01/updates.20250101.0000.gz";
const RIS_UPD2: &str = "/ris/rrc00/2025.01/updates.20250101.0005.gz";
const RV_RIB: &str = "/rv/bgpdata/2025.01/RIBS/rib.20250101.0000.bz2";
const RV_UPD1: &str = "/rv/bgpdata/2025.01/UPDATES/updates.20250101.0000.bz2";
const RV_UPD2: &str = "/rv/bgpdata/2025.01/UPDATES/updates.20250101.0015.bz2";

fn ris_update(n: u32) -> Vec<u8> {
    let p = peer("192.0.2.1", 64500);
    match n {
        1 => update(T0 + 10, p, &["175.45.176.0/24"], "64500 3356 131279", &[]),
        _ => update(T0 + 310, p, &["175.45.176.0/24"], "64500 174 131279", &[]),
    }
}

fn publish_all() -> Published {
    let dir = tempfile::tempdir().unwrap();
    let mirror = Mirror::start(dir.path());
    let p = peer("192.0.2.1", 64500);
    let q = peer("198.51.100.7", 64501);
    mirror.publish(
        RIS_RIB,
        &gzip(&rib(
            T0,
            &[p],
            &[
                ("175.45.176.0/24", 0, "64500 3356 131279"),
                ("8.8.8.0/24", 0, "64500 15169"),
            ],
        )),
    );
    mirror.publish(RIS_UPD1, &gzip(&ris_update(1)));
    mirror.publish(RIS_UPD2, &gzip(&ris_update(2)));
    mirror.publish(
        RV_RIB,
        &bzip2(&rib(
            T0,
            &[q],
            &[("175.45.176.0/24", 0, "64501 1299 131279")],
        )),
    );
    mirror.publish(
        RV_UPD1,
        &bzip2(&update(
            T0 + 20,
            q,
            &["175.45.177.0/24"],
            "64501 1299 131279",
            &[],
        )),
    );
    mirror.publish(
        RV_UPD2,
        &bzip2(&update(T0 + 920, q, &[], "", &["175.45.177.0/24"])),
    );
    Published { mirror, _dir: dir }
}

/// The loaded MRT files, by name.
fn loaded_files(db: &Path) -> Vec<String> {
    let db = Db::open(db).unwrap();
    let mut names: Vec<String> = db
        .mrt_files()
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    names.sort();
    names
}

/// The newest BGP data time of any collector.
fn newest_data(db: &Path) -> Option<i64> {
    let db = Db::open(db).unwrap();
    db.mrt_files().unwrap().iter().map(|f| f.last_time).max()
}

/// Every BGP table (not what sync remembers), for before/after comparisons.
fn bgp_tables(db: &Path) -> String {
    let db = Db::open(db).unwrap();
    dump_all(&db)
        .split("== ")
        .filter(|t| !t.starts_with("sync_"))
        .collect::<Vec<_>>()
        .join("== ")
}

fn name(path: &str) -> String {
    path.rsplit('/').next().unwrap().to_string()
}

#[test]
fn both_layouts_load_and_a_second_run_fetches_nothing() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let out = sync(&db, &p.mirror, &window());
    assert!(out.status.success(), "{}", stderr(&out));
    let mut want: Vec<String> = [RIS_RIB, RIS_UPD1, RIS_UPD2, RV_RIB, RV_UPD1, RV_UPD2]
        .iter()
        .map(|p| name(p))
        .collect();
    want.sort();
    assert_eq!(loaded_files(&db), want);
    // Every request names nkpath and its project.
    let downloads = p.mirror.downloads();
    assert_eq!(downloads.len(), 6, "{downloads:?}");
    // Forward order per collector: the RIB dump first, then the update files by slot.
    let ris: Vec<&String> = downloads
        .iter()
        .filter(|d| d.starts_with("/ris/"))
        .collect();
    assert_eq!(ris, [RIS_RIB, RIS_UPD1, RIS_UPD2]);
    let before = bgp_tables(&db);

    p.mirror.clear_log();
    let out = sync(&db, &p.mirror, &window());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.mirror.downloads(), Vec::<String>::new());
    assert_eq!(bgp_tables(&db), before);

    // Without --from, a synced collector resumes where it stopped: still nothing new.
    p.mirror.clear_log();
    let out = sync(&db, &p.mirror, &["--to", "2025-01-02T00:00:00Z"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.mirror.downloads(), Vec::<String>::new());

    // `bgp status` shows each collector's last file, data age and no error.
    let out = run(&db, &["bgp", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("rrc00\t{}{RIS_UPD2}", p.mirror.url)),
        "{text}"
    );
    assert!(
        text.contains(&format!("route-views2\t{}{RV_UPD2}", p.mirror.url)),
        "{text}"
    );
}

#[test]
fn new_files_are_picked_up_and_an_interrupted_run_resumes() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    // The first run stops early: only the RIS RIB dump and its first update file.
    let out = sync(
        &db,
        &p.mirror,
        &[
            "--collector",
            "rrc00",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-01T00:04:00Z",
        ],
    );
    assert!(out.status.success());
    assert_eq!(loaded_files(&db), [name(RIS_RIB), name(RIS_UPD1)]);
    // The next run without a window resumes: only the file after them is fetched.
    p.mirror.clear_log();
    let out = sync(&db, &p.mirror, &["--collector", "rrc00"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.mirror.downloads(), [RIS_UPD2]);
}

#[test]
fn mirror_down_is_an_error_naming_the_url_and_stores_nothing() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let out = run(
        &db,
        &[
            "bgp",
            "sync",
            "--once",
            "--collector",
            "rrc00",
            "--ris-base",
            &url,
            "--retry-wait",
            "20ms",
            "--retries",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{url}/rrc00/")), "{err}");
    assert!(err.contains("trying again"), "retried: {err}");
    assert_eq!(loaded_files(&db), Vec::<String>::new());
    let status = String::from_utf8_lossy(&run(&db, &["bgp", "status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("{url}/rrc00/")),
        "last error shown: {status}"
    );
}

#[test]
fn server_errors_and_retry_after_are_retried_within_the_pass() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    p.mirror.fault(RIS_UPD1, Fault::Status(500, None), Some(1));
    p.mirror
        .fault(RIS_UPD2, Fault::Status(503, Some(1)), Some(1));
    let started = std::time::Instant::now();
    let out = sync(&db, &p.mirror, &collector_in_window("rrc00"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 honoured"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}{RIS_UPD1}: HTTP status 500", p.mirror.url)),
        "{err}"
    );
    assert_eq!(loaded_files(&db).len(), 3);
    let gets = p.mirror.downloads();
    assert_eq!(gets.iter().filter(|g| *g == RIS_UPD1).count(), 2);
    assert_eq!(gets.iter().filter(|g| *g == RIS_UPD2).count(), 2);
}

#[test]
fn a_listed_file_that_404s_fails_alone_and_loads_when_back() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let args: Vec<&str> = collector_in_window("rrc00");
    p.mirror.fault(RIS_UPD1, Fault::Status(404, None), None);
    let out = sync(&db, &p.mirror, &args);
    assert_eq!(out.status.code(), Some(1), "a failed file fails --once");
    assert!(stderr(&out).contains(&format!("{}{RIS_UPD1}: not found (404)", p.mirror.url)));
    // The others are loaded.
    assert_eq!(loaded_files(&db), [name(RIS_RIB), name(RIS_UPD2)]);
    p.mirror.fault(RIS_UPD1, Fault::Status(404, None), Some(0));
    let out = sync(&db, &p.mirror, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(loaded_files(&db).len(), 3);
}

#[test]
fn a_download_cut_in_the_middle_is_retried_and_never_half_loaded() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let args: Vec<&str> = collector_in_window("rrc00");
    // Cut every time: the file fails, nothing of it is loaded.
    p.mirror.fault(RIS_RIB, Fault::CutInTheMiddle, None);
    let out = sync(&db, &p.mirror, &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}{RIS_RIB}", p.mirror.url)), "{err}");
    assert!(!loaded_files(&db).contains(&name(RIS_RIB)));
    // Cut once: the retry gets the whole file, which loads.
    p.mirror.fault(RIS_RIB, Fault::CutInTheMiddle, Some(1));
    let out = sync(&db, &p.mirror, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(loaded_files(&db).contains(&name(RIS_RIB)));
}

#[test]
fn a_damaged_file_loads_nothing_until_the_archive_replaces_it() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let args: Vec<&str> = collector_in_window("rrc00");
    let whole = std::fs::read(p.mirror.root.join(RIS_UPD2.trim_start_matches('/'))).unwrap();
    // A complete download of a cut gzip stream (the mirror copied half of it).
    p.mirror.publish(RIS_UPD2, &whole[..whole.len() - 10]);
    let out = sync(&db, &p.mirror, &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}{RIS_UPD2}", p.mirror.url)),
        "{err}"
    );
    assert!(err.contains("nothing from this file was loaded"), "{err}");
    assert_eq!(loaded_files(&db), [name(RIS_RIB), name(RIS_UPD1)]);
    let before = bgp_tables(&db);
    // Unchanged on the archive: not downloaded again, still failing.
    p.mirror.clear_log();
    let out = sync(&db, &p.mirror, &args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(p.mirror.downloads(), Vec::<String>::new());
    assert_eq!(bgp_tables(&db), before);
    // Replaced by the whole file: downloaded and loaded.
    p.mirror.publish(RIS_UPD2, &whole);
    let out = sync(&db, &p.mirror, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(loaded_files(&db).len(), 3);
}

#[test]
fn an_html_page_instead_of_mrt_is_refused() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let args: Vec<&str> = collector_in_window("route-views2");
    p.mirror.fault(RV_UPD1, Fault::HtmlPage, None);
    let out = sync(&db, &p.mirror, &args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{}{RV_UPD1}: the server sent an HTML page",
            p.mirror.url
        )),
        "{err}"
    );
    assert_eq!(loaded_files(&db), [name(RV_RIB), name(RV_UPD2)]);
}

#[test]
fn a_file_of_another_time_is_refused_and_the_state_never_goes_back() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let out = sync(&db, &p.mirror, &window());
    assert!(out.status.success());
    let newest = newest_data(&db).unwrap();
    let before = bgp_tables(&db);
    // A new slot whose file holds records of a day earlier (an old file under a new name).
    let stale = "/ris/rrc00/2025.01/updates.20250102.0000.gz";
    p.mirror.publish(
        stale,
        &gzip(&update(
            T0 - 86_400,
            peer("192.0.2.1", 64500),
            &[],
            "",
            &["175.45.176.0/24"],
        )),
    );
    let out = sync(
        &db,
        &p.mirror,
        &["--collector", "rrc00", "--to", "2025-01-02T01:00:00Z"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}{stale}", p.mirror.url)), "{err}");
    assert!(err.contains("not the slot's file"), "{err}");
    assert_eq!(bgp_tables(&db), before);
    assert_eq!(newest_data(&db), Some(newest));
}

#[test]
fn a_clock_ahead_of_the_archive_waits_without_error_or_gap() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let out = sync(&db, &p.mirror, &window());
    assert!(out.status.success());
    // Now is long after the newest published slot, and the next months are not there yet
    // (their listings answer 404): nothing to do, no error, no gap.
    let out = sync(&db, &p.mirror, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let db = Db::open(&db).unwrap();
    assert_eq!(db.sync_gaps().unwrap(), Vec::new());
    assert!(
        db.sync_passes()
            .unwrap()
            .iter()
            .all(|p| p.last_error.is_none())
    );
}

#[test]
fn skipped_update_slots_are_recorded_as_gaps() {
    let p = publish_all();
    // The RIS archive skips 00:10 and 00:15: 00:20 is published.
    p.mirror.publish(
        "/ris/rrc00/2025.01/updates.20250101.0020.gz",
        &gzip(&update(
            T0 + 1210,
            peer("192.0.2.1", 64500),
            &["175.45.176.0/24"],
            "64500 3356 131279",
            &[],
        )),
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let args: Vec<&str> = collector_in_window("rrc00");
    let out = sync(&db, &p.mirror, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let gaps = Db::open(&db).unwrap().sync_gaps().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (gaps[0].start, gaps[0].end),
        (i64::from(T0) + 600, i64::from(T0) + 1200)
    );

    // A trace inside the gap is judged as without BGP data; one after it is judged.
    let at = |s: u32| i64::from(T0 + s) - i64::from(common::traces::DUMP_TIME);
    let hops = [(1, "192.0.2.1", 11, 0, 0), (2, "175.45.176.1", 0, 0, 0)];
    let traces = [
        common::traces::trace(1, at(700), "175.45.176.1", &hops),
        common::traces::trace(2, at(1250), "175.45.176.1", &hops),
    ];
    let mut conn = Db::open(&db).unwrap();
    conn.import_results(std::io::Cursor::new(traces.join("\n")))
        .unwrap();
    let analyses = nkpath_collector::analysis::Analyzer::new(
        &conn,
        nkpath_collector::analysis::Mapper::default(),
        nkpath_collector::analysis::AnalysisOptions::default(),
    )
    .unwrap()
    .analyze_all(nkpath_collector::results::stored_traces(&conn, None, None).unwrap())
    .unwrap();
    let reasons: Vec<(i64, String)> = analyses
        .iter()
        .map(|a| {
            (
                a.trace.started_at.unix_timestamp() - i64::from(T0),
                a.verdict.reason.clone(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons.contains(&(700, "no BGP data".to_string())),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(t, r)| *t == 1250 && r != "no BGP data"),
        "{reasons:?}"
    );
}

/// The archive name of a real MRT file, derived from its first record's time: RIS names for
/// gzip files (rrc00), RouteViews names for bzip2 (route-views6 for the IPv6 RIB).
fn archive_path(file: &Path) -> (String, String) {
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let first = BgpkitParser::from_reader(nkpath_collector::mrt::input::open(file).unwrap().reader)
        .into_record_iter()
        .next()
        .unwrap();
    let t = i64::from(first.common_header.timestamp);
    let rib = name.starts_with("rib") || name.starts_with("bview");
    let ris = file.extension().is_some_and(|e| e == "gz");
    let period = match (rib, ris) {
        (true, _) => 60,
        (false, true) => 300,
        (false, false) => 900,
    };
    let slot = time::OffsetDateTime::from_unix_timestamp(t - t.rem_euclid(period)).unwrap();
    let month = format!("{:04}.{:02}", slot.year(), u8::from(slot.month()));
    let stamp = format!(
        "{:04}{:02}{:02}.{:02}{:02}",
        slot.year(),
        u8::from(slot.month()),
        slot.day(),
        slot.hour(),
        slot.minute()
    );
    if ris {
        let kind = if rib { "bview" } else { "updates" };
        (
            "rrc00".into(),
            format!("/ris/rrc00/{month}/{kind}.{stamp}.gz"),
        )
    } else {
        let collector = if name.starts_with("rib6") {
            "route-views6"
        } else {
            "route-views2"
        };
        let top = if collector == "route-views2" {
            "/rv/bgpdata".to_string()
        } else {
            format!("/rv/{collector}/bgpdata")
        };
        let (dir, kind) = if rib {
            ("RIBS", "rib")
        } else {
            ("UPDATES", "updates")
        };
        (
            collector.into(),
            format!("{top}/{month}/{dir}/{kind}.{stamp}.bz2"),
        )
    }
}

#[test]
fn real_files_sync_loads_what_bgp_load_loads() {
    let Some(real) = common::shared_data("mrt") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mirror_dir = dir.path().join("mirror");
    let mirror = Mirror::start(&mirror_dir);
    let mut files: Vec<(String, String)> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&real)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for file in entries {
        let (collector, path) = archive_path(&file);
        mirror.publish(&path, &std::fs::read(&file).unwrap());
        files.push((collector, path));
    }
    let collectors = ["rrc00", "route-views2", "route-views6"];
    let synced = dir.path().join("synced.db");
    let mut args = vec!["--from", "2000-01-01T00:00:00Z"];
    for c in collectors {
        args.extend(["--collector", c]);
    }
    let out = sync(&synced, &mirror, &args);
    // The truncated RIB dumps (the first MB of the 2014 IPv4 and 2015 IPv6 RouteViews RIBs)
    // fail (never --accept-truncated); the others load.
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rib.20140523.0600.bz2"));
    assert!(stderr(&out).contains("rib.20151101.0600.bz2"));

    // The same files with bgp load, per collector in slot order (as sync loads them).
    let loaded = dir.path().join("loaded.db");
    let mut failed = 0;
    for c in collectors {
        let mut paths: Vec<&String> = files
            .iter()
            .filter(|(fc, _)| fc == c)
            .map(|(_, p)| p)
            .collect();
        paths.sort_by_key(|p| {
            let n = name(p);
            let stamp: String = n.split('.').skip(1).take(2).collect::<Vec<_>>().join(".");
            (stamp, !n.starts_with("rib") && !n.starts_with("bview"))
        });
        for p in paths {
            let local = mirror_dir.join(p.trim_start_matches('/'));
            let out = run(
                &loaded,
                &["bgp", "load", "--collector", c, local.to_str().unwrap()],
            );
            if !out.status.success() {
                failed += 1;
                assert!(
                    p.contains("rib.20140523.0600") || p.contains("rib.20151101.0600"),
                    "only the truncated RIB dumps fail: {p}"
                );
            }
        }
    }
    assert_eq!(failed, 2);
    let a = normalised_tables(&synced);
    let b = normalised_tables(&loaded);
    assert!(a.contains("bview.20020722.2337.gz"), "{a:.400}");
    assert!(a == b, "sync and bgp load differ");

    // A second run downloads and loads nothing.
    mirror.clear_log();
    let out = sync(&synced, &mirror, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the truncated RIB dumps still fail"
    );
    assert_eq!(mirror.downloads(), Vec::<String>::new());
    assert!(normalised_tables(&synced) == a);
}

fn normalised_tables(db: &Path) -> String {
    {
        let conn = Db::open(db).unwrap();
        conn.sql_for_tests()
            .execute_batch("UPDATE mrt_files SET loaded_at = ''")
            .unwrap();
    }
    bgp_tables(db)
}

/// `GET path` from the collector at `addr`, the JSON body.
fn get_json(addr: &str, path: &str) -> serde_json::Value {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Waits until `/v1/health` shows `collector` with `last_file` ending in `file`.
fn wait_for_file(addr: &str, collector: &str, file: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        let health = get_json(addr, "/v1/health");
        let found = health["bgp_sync"].as_array().and_then(|list| {
            list.iter()
                .find(|c| c["collector"] == collector)
                .filter(|c| c["last_file"].as_str().is_some_and(|f| f.ends_with(file)))
                .cloned()
        });
        if let Some(c) = found {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{collector} never loaded {file}: {health}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn serve_with_bgp_sync_keeps_loading_what_the_archive_publishes() {
    let p = publish_all();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("n.db");
    let ris = format!("{}/ris", p.mirror.url);
    let server = common::server::Server::start(
        &db,
        "127.0.0.1:0",
        &[
            "--bgp-sync",
            "--sync-every",
            "1s",
            "--collector",
            "rrc00",
            "--ris-base",
            &ris,
            "--retry-wait",
            "50ms",
        ],
    );
    // Without a window, the first pass starts at the newest RIB dump and loads every
    // update file since.
    let status = wait_for_file(&server.addr, "rrc00", &name(RIS_UPD2));
    assert_eq!(status["last_error"], serde_json::Value::Null, "{status}");
    assert!(status["bgp_age_s"].as_i64().unwrap() > 0, "{status}");
    // A file published later is loaded by a later pass, with no operator step.
    let next = "/ris/rrc00/2025.01/updates.20250101.0010.gz";
    p.mirror.publish(
        next,
        &gzip(&update(
            T0 + 610,
            peer("192.0.2.1", 64500),
            &[],
            "",
            &["175.45.176.0/24"],
        )),
    );
    wait_for_file(&server.addr, "rrc00", &name(next));
    // A failing archive shows as the collector's last error, and serve keeps answering.
    p.mirror
        .fault("/ris/rrc00/", Fault::Status(500, None), None);
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(1);
    loop {
        let health = get_json(&server.addr, "/v1/health");
        assert_eq!(health["status"], "ok");
        let error = health["bgp_sync"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if error.contains(&format!("{ris}/rrc00/: HTTP status 500")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{health}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(loaded_files(&db).contains(&name(next)));
    drop(server);
}
