//! Benchmark: `report html --no-dns` over many stored traces (default 100,000, written by the
//! generator below) and a full-size BGP state (default a RIB dump of 1 M IPv4 prefixes x 20
//! peers from `gen_mrt.py`); prints the time of the report and the size of the page.
//!
//! ```text
//! cargo bench -p nkpath-collector --bench report_html [-- --traces N --prefixes N --peers P --gen-mrt FILE]
//! ```
//!
//! `--gen-mrt` names the RIB generator; by default it is looked for at `shared/tools/gen_mrt.py`
//! beside the repository. The dump goes to `target/bench-data/` and is reused by later runs
//! (the `bgp_load` benchmark writes the same file). Figures only; nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nkpath_collector::Db;
use nkpath_collector::mrt::{LoadOptions, load_file};

/// 2025-01-01T00:00:00Z, gen_mrt's default dump time.
const DUMP_TIME: i64 = 1_735_689_600;

struct Args {
    traces: usize,
    prefixes: u64,
    peers: u64,
    gen_mrt: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        traces: 100_000,
        prefixes: 1_000_000,
        peers: 20,
        gen_mrt: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--traces" => args.traces = value().parse().expect("--traces N"),
            "--prefixes" => args.prefixes = value().parse().expect("--prefixes N"),
            "--peers" => args.peers = value().parse().expect("--peers N"),
            "--gen-mrt" => args.gen_mrt = Some(PathBuf::from(value())),
            // cargo bench passes --bench; libtest-style filters are ignored.
            _ => {}
        }
    }
    args
}

fn bench_data() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| manifest.join("../target"), PathBuf::from);
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The RIB dump, generated once.
fn rib(args: &Args) -> PathBuf {
    let script = args.gen_mrt.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/gen_mrt.py")
    });
    let out = bench_data().join(format!(
        "rib-{}x{}-{DUMP_TIME}.gz",
        args.prefixes, args.peers
    ));
    if out.is_file() {
        eprintln!("reusing {}", out.display());
        return out;
    }
    assert!(
        script.is_file(),
        "the RIB generator is not at {}: pass --gen-mrt FILE",
        script.display()
    );
    let partial = out.with_extension("partial");
    let status = Command::new("python3")
        .arg(&script)
        .args(["--prefixes", &args.prefixes.to_string()])
        .args(["--peers", &args.peers.to_string()])
        .args(["--time", &DUMP_TIME.to_string(), "--gzip", "--out"])
        .arg(&partial)
        .status()
        .expect("python3 runs the generator");
    assert!(status.success(), "the RIB generator failed");
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// A small deterministic generator (xorshift64*): the same traces on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` traces as agents upload them: 40 agents, the four /24s of the block, started over the
/// 20 hours after the dump (fresh BGP), one round per agent and hour. Entry through China
/// Unicom (219.158.0.0/17) or TransTeleCom (188.43.0.0/16), the two upstreams gen_mrt
/// announces; one trace in 30 stops before the block (entry inferred or unknown).
fn traces(n: usize) -> String {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = String::with_capacity(n * 1400);
    for id in 0..n {
        let agent = rng.below(40);
        let offset = rng.below(20 * 3600) as i64;
        let started = time::OffsetDateTime::from_unix_timestamp(DUMP_TIME + offset)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let round = offset / 3600;
        let slash24 = rng.below(4);
        let target = format!("175.45.{}.{}", 176 + slash24, 1 + rng.below(250));
        let unicom = rng.below(10) < 4;
        let (entry, base_ms) = if unicom {
            (format!("219.158.{}.{}", rng.below(8), 1 + rng.below(8)), 45)
        } else {
            (format!("188.43.{}.{}", rng.below(8), 1 + rng.below(8)), 130)
        };
        let rtt = |extra: u64, rng: &mut Rng| (base_ms + extra) * 1000 + rng.below(15_000);
        let mut hops = vec![
            (1, "10.0.0.1".to_owned(), 11, 600),
            (2, entry, 11, rtt(0, &mut rng)),
        ];
        if rng.below(30) != 0 {
            hops.push((3, "175.45.176.1".to_owned(), 11, rtt(5, &mut rng)));
            hops.push((4, target.clone(), 0, rtt(6, &mut rng)));
        }
        let hops: Vec<serde_json::Value> = hops
            .into_iter()
            .map(|(ttl, address, icmp_type, rtt_us)| {
                serde_json::json!({"ttl": ttl, "probes": [{"attempt": 1, "sent_at_us": 0,
                    "reply": {"address": address, "rtt_us": rtt_us, "reply_ttl": 250,
                              "icmp_type": icmp_type, "icmp_code": 0, "tcp_flags": null,
                              "quoted_ttl": 1, "mpls_labels": []}}]})
            })
            .collect();
        let line = serde_json::json!({
            "kind": "trace", "schema_version": "1.0",
            "result_id": format!("00000000-0000-4000-8000-{id:012}"),
            "agent_id": format!("vp-{agent:02}"), "agent_version": "0.1.0",
            "round_id": format!("5a3c1e2f-0000-4000-8000-{:06}{round:06}", agent),
            "source": format!("198.51.100.{}", agent + 1), "target": target, "protocol": "icmp",
            "flow": {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7238},
            "params": {"attempts": 1, "timeout_ms": 2000, "gap_limit": 5, "first_ttl": 1,
                       "max_ttl": 30, "pps": 50, "per_prefix_pps": 10},
            "started_at": started, "hops": hops, "stop_reason": "reached"
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn main() {
    let args = parse_args();
    let dump = rib(&args);
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("bench.db");
    let mut db = Db::open(&db_path).unwrap();
    let started = Instant::now();
    let options = LoadOptions {
        collector: Some("rrc00".into()),
        ..LoadOptions::default()
    };
    load_file(&mut db, &dump, &options, None).unwrap();
    println!(
        "report_html: loaded {} prefixes x {} peers in {:.1} s",
        args.prefixes,
        args.peers,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let stored = db
        .import_results(std::io::Cursor::new(traces(args.traces)))
        .unwrap();
    assert_eq!(stored.stored, args.traces, "{:?}", stored.rejected);
    println!(
        "report_html: stored {} traces in {:.1} s",
        args.traces,
        started.elapsed().as_secs_f64()
    );
    drop(db);
    let page = bench_data().join(format!("report-{}.html", args.traces));
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(&db_path)
        .args(["report", "html", "--no-dns", "--out"])
        .arg(&page)
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same analysis without the page: what the charts add to every report's cost.
    let started = Instant::now();
    let upstreams = Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(&db_path)
        .args(["report", "upstreams", "--no-dns"])
        .output()
        .unwrap();
    assert!(upstreams.status.success());
    println!(
        "report_html: report upstreams --no-dns over the same traces: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let bytes = std::fs::metadata(&page).unwrap().len();
    println!(
        "report_html: report html --no-dns over {} traces: {seconds:.2} s, {} bytes ({:.2} MB), {}",
        args.traces,
        bytes,
        bytes as f64 / 1e6,
        page.display()
    );
}
