//! Benchmark: load a full-size RIB dump (default about 1 M IPv4 prefixes x 20 peers) and
//! print the time, the peak memory of this process and the database growth.
//!
//! ```text
//! cargo bench -p nkpath-collector --bench bgp_load [-- --prefixes N --peers P --compression gzip|bzip2|none]
//! ```
//!
//! The dump is written by `../shared/tools/gen_mrt.py` (relative to the repository root) into
//! `target/bench-data/` and reused by later runs with the same arguments. The load then runs
//! twice into one fresh database: the dump itself, and the same table dumped two hours later
//! (the common case of a collector that publishes every two hours: validity intervals are
//! extended, not duplicated). Figures only; nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nkpath_collector::Db;
use nkpath_collector::bgp::BgpState;
use nkpath_collector::mrt::{LoadOptions, LoadOutcome, load_file};

struct Args {
    prefixes: u64,
    peers: u64,
    compression: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        prefixes: 1_000_000,
        peers: 20,
        compression: "gzip".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--prefixes" => {
                args.prefixes = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--prefixes N");
            }
            "--peers" => args.peers = it.next().and_then(|v| v.parse().ok()).expect("--peers N"),
            "--compression" => args.compression = it.next().expect("--compression gzip|bzip2|none"),
            // cargo bench passes --bench; libtest-style filters are ignored.
            _ => {}
        }
    }
    args
}

fn generate(args: &Args, time: u64) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("../../shared/tools/gen_mrt.py");
    assert!(
        script.is_file(),
        "gen_mrt.py not found at {} (../shared/tools/ from the repository root)",
        script.display()
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest.join("../target"), PathBuf::from);
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let (flag, suffix) = match args.compression.as_str() {
        "gzip" => (Some("--gzip"), "gz"),
        "bzip2" => (Some("--bz2"), "bz2"),
        "none" => (None, "mrt"),
        other => panic!("unknown compression {other}"),
    };
    let out = dir.join(format!(
        "rib-{}x{}-{time}.{suffix}",
        args.prefixes, args.peers
    ));
    if out.is_file() {
        eprintln!("reusing {}", out.display());
        return out;
    }
    let partial = out.with_extension("partial");
    let started = Instant::now();
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args([
            "--prefixes",
            &args.prefixes.to_string(),
            "--peers",
            &args.peers.to_string(),
        ])
        .args(["--time", &time.to_string(), "--out"])
        .arg(&partial);
    if let Some(flag) = flag {
        cmd.arg(flag);
    }
    let status = cmd.status().expect("python3 runs gen_mrt.py");
    assert!(status.success(), "gen_mrt.py failed");
    std::fs::rename(&partial, &out).unwrap();
    eprintln!(
        "generated {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// Peak resident set size of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn db_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args = parse_args();
    let t0: u64 = 1_735_689_600; // gen_mrt's default: 2025-01-01T00:00:00Z
    let first = generate(&args, t0);
    let second = generate(&args, t0 + 7200);
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("bench.db");
    let mut db = Db::open(&db_path).unwrap();
    let empty = db_bytes(&db_path);
    println!(
        "bgp_load: {} prefixes x {} peers, {} ({:.1} MiB)",
        args.prefixes,
        args.peers,
        args.compression,
        mib(std::fs::metadata(&first).unwrap().len())
    );
    let mut previous = empty;
    for (label, file) in [("first dump", &first), ("same table 2 h later", &second)] {
        let started = Instant::now();
        let outcome = load_file(&mut db, file, &LoadOptions::default(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let elapsed = started.elapsed();
        let LoadOutcome::Loaded(s) = outcome else {
            panic!("{outcome:?}")
        };
        db.sql_for_tests()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
        let size = db_bytes(&db_path);
        println!(
            "  {label}: {:.1} s ({:.2} M RIB entries/s, {:.0} MiB/s of MRT); {} peers, {} prefixes, \
             {} entries, {} with full AS path; database +{:.1} MiB (now {:.1} MiB); peak RSS {:.0} MiB",
            elapsed.as_secs_f64(),
            s.rib_entries as f64 / elapsed.as_secs_f64() / 1e6,
            mib(s.mrt_bytes) / elapsed.as_secs_f64(),
            s.peers,
            s.prefixes,
            s.rib_entries,
            s.target_routes,
            mib(size.saturating_sub(previous)),
            mib(size),
            peak_rss_mib(),
        );
        previous = size;
    }
    let count = |table: &str| -> i64 {
        db.sql_for_tests()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    println!(
        "  rows: {} prefix_origins, {} route_sets, {} rib_routes",
        count("prefix_origins"),
        count("route_sets"),
        count("rib_routes")
    );
    let started = Instant::now();
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(t0 + 7200).unwrap()).unwrap();
    let state = BgpState::at(&db, at).unwrap().expect("data");
    let build = started.elapsed();
    let started = Instant::now();
    let mut found = 0u32;
    for i in 0..100_000u32 {
        let addr = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
        found += u32::from(state.origins_lpm(addr).is_some());
    }
    let lookups = started.elapsed();
    let nk = state.announced_upstreams("175.45.176.0/22".parse().unwrap());
    println!(
        "  BgpState::at: {:.1} s; origins_lpm: {:.2} µs per lookup ({found} of 100000 random addresses routed); \
         175.45.176.0/22 upstreams {:?} over {} peers; peak RSS {:.0} MiB",
        build.as_secs_f64(),
        lookups.as_secs_f64() * 1e6 / 100_000.0,
        nk.upstreams,
        nk.peers_with_route,
        peak_rss_mib(),
    );
}
