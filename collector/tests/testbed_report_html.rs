//! `report html` in a real browser: the page written for the testbed's scenarios (a change
//! of upstream, the side door's mismatch, a silent /24, and an entry hop whose PTR name is
//! `</svg><script>…`) opened by headless Chromium from the file alone. The test takes a
//! screenshot and an A4 PDF, and reads the DOM Chromium built: every chart is there, no
//! script ran, no request left the file (the net log), no error was logged, and the
//! upstream labels and shares drawn equal `report upstreams --bin --format json`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::collector;
use common::html_marks::{get, marks};
use ipnet::Ipv4Net;
use nkpath_collector::Db;
use nkpath_collector::bgp::timeline::{loaded_span, upstream_changes};
use nkpath_collector::mrt::{self, LoadOptions};
use nkpath_testbed::{Options, Scenario, Testbed};

const TARGETS: [&str; 4] = [
    "175.45.176.0/29",
    "175.45.177.0/29",
    "175.45.178.0/29",
    "175.45.179.0/29",
];

/// What the PTR record of one hop says: a name that would end the SVG and run a script if
/// it were written into the page unescaped.
const HOSTILE_PTR: &str = "</svg><script>document.body.setAttribute('data-pwned','1')</script>";

fn agent_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| nkpath_testbed::workspace_binary("nkpath-agent"))
}

/// A survey of `targets` from `vp`, as nobody with CAP_NET_RAW only: the JSONL text.
fn survey(tb: &Testbed, vp: &str, targets: &[&str]) -> String {
    let dir = tempfile::Builder::new()
        .prefix("nkpath-survey")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let out = dir.path().join("survey.jsonl");
    let block = tb.manifest().target.prefix.to_string();
    let output = tb
        .command_as_nobody_with_net_raw(vp, agent_binary())
        .args([
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
        .stdin(Stdio::null())
        .output()
        .expect("spawn agent");
    assert!(
        output.status.success(),
        "survey from {vp} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::read_to_string(&out).unwrap()
}

/// The survey with every replying address of its first trace named [`HOSTILE_PTR`], as a
/// hostile operator's PTR records would name them.
fn with_hostile_names(jsonl: &str) -> String {
    let mut lines: Vec<String> = jsonl.lines().map(str::to_owned).collect();
    let mut first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let mut addresses = BTreeSet::new();
    for hop in first["hops"].as_array().unwrap() {
        for probe in hop["probes"].as_array().unwrap() {
            if let Some(a) = probe["reply"]["address"].as_str() {
                addresses.insert(a.to_owned());
            }
        }
    }
    let resolved = first["started_at"].clone();
    first["annotations"] = addresses
        .iter()
        .map(|a| {
            serde_json::json!({"address": a, "name": HOSTILE_PTR, "asn": null,
                               "source": "ptr", "resolved_at": resolved})
        })
        .collect();
    lines[0] = first.to_string();
    lines.join("\n")
}

fn load_mrt(tb: &Testbed, db: &mut Db) {
    let options = LoadOptions {
        collector: Some("rc".into()),
        target: None,
        ..LoadOptions::default()
    };
    let mut files: Vec<PathBuf> = tb
        .rib_dumps()
        .unwrap()
        .iter()
        .map(|f| tb.mrt_snapshot(f).unwrap())
        .collect();
    files.push(tb.mrt_snapshot(&tb.updates_mrt()).unwrap());
    for f in files {
        if fs::metadata(&f).unwrap().len() == 0 {
            continue;
        }
        mrt::load_file(db, &f, &options, None)
            .unwrap_or_else(|e| panic!("loading {}: {e}", f.display()));
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_mins(2),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs headless Chromium on the local file `page` with `action` (one of `--dump-dom`,
/// `--screenshot=…`, `--print-to-pdf=…`) and a net log; returns stdout and stderr.
///
/// Chromium runs in a network namespace of its own with no interface up (`unshare --net`):
/// even with every background service switched off it tries to reach its update service,
/// and no packet of it may leave this machine.
fn chromium(page: &Path, action: &str, net_log: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", net_log.display()))
        .arg(action)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium {action}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// The requests of the page in a net log: URL requests with an initiator (the page's
/// origin), as opposed to the browser's own background requests (initiator "not an
/// origin"), which the empty network namespace keeps in.
fn page_requests(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    // Chromium may exit before closing the JSON: close it then.
    let log: serde_json::Value = serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&format!("{}]}}", text.trim_end().trim_end_matches(','))))
        .expect("the net log is JSON");
    let types: std::collections::BTreeMap<u64, String> = log["constants"]["logEventTypes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, id)| (id.as_u64().unwrap(), name.clone()))
        .collect();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| types[&e["type"].as_u64().unwrap()] == "URL_REQUEST_START_JOB")
        // The start of a job names its URL and initiator; its end only the error.
        .filter(|e| e["params"]["url"].is_string())
        .filter(|e| e["params"]["initiator"].as_str() != Some("not an origin"))
        .map(|e| e["params"].to_string())
        .collect()
}

#[test]
fn the_report_of_the_testbed_scenarios_renders_in_chromium_as_reported() {
    if !nkpath_testbed::require_tools(&["chromium"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options {
        scenario: Scenario::Silent24,
        ..Options::default()
    }) else {
        return;
    };
    let m = tb.manifest();
    let silent: Ipv4Net = "175.45.179.0/24".parse().unwrap();
    assert!(
        m.target.silent.contains(&silent),
        "the scenario's silent /24"
    );
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("nkpath.db");
    let mut db = Db::open(&db_path).unwrap();
    let import = |db: &mut Db, jsonl: &str| {
        let r = db.import_results(jsonl.as_bytes()).unwrap();
        assert!(r.rejected.is_empty(), "{:?}", r.rejected);
        assert!(r.stored > 0);
    };
    // usvp goes through the side door (a mismatch); its first trace's hops get the
    // hostile name.
    let mut jsonl = vec![with_hostile_names(&survey(&tb, "usvp", &TARGETS))];
    jsonl.push(survey(&tb, "devp", &TARGETS));

    // A change of upstream: nkbr's session to TTK, the only upstream of one prefix, goes
    // down; devp traces it again.
    let neighbor = m
        .node("nkbr")
        .unwrap()
        .bgp_neighbors
        .iter()
        .find(|n| n.node == "ttk")
        .unwrap()
        .clone();
    let rc_has = |prefix: Ipv4Net| {
        tb.bird_routes("rc")
            .unwrap()
            .iter()
            .filter(|r| r.prefix == prefix && r.as_path.last() == Some(&m.target.asn))
            .count()
    };
    let lost = m.target.announced_to["ttk"]
        .iter()
        .copied()
        .find(|p| {
            !m.target
                .announced_to
                .iter()
                .any(|(n, ps)| n != "ttk" && ps.contains(p))
        })
        .expect("a prefix only TTK carries");
    tb.birdc("nkbr", &["disable", &neighbor.protocol]).unwrap();
    wait_for("rc to lose the prefix", || rc_has(lost) == 0);
    let probe_net = Ipv4Net::new(lost.network(), 29).unwrap().to_string();
    jsonl.push(survey(&tb, "devp", &[&probe_net]));
    for j in &jsonl {
        import(&mut db, j);
    }
    // BIRD writes its update file on its own schedule: reload until the withdrawal is in.
    let mut attempt = 0;
    wait_for("rc's update file to hold the withdrawal", || {
        attempt += 1;
        let path = dir.path().join(format!("nkpath-{attempt}.db"));
        db = Db::open(&path).unwrap();
        for j in &jsonl {
            import(&mut db, j);
        }
        load_mrt(&tb, &mut db);
        let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        let (a, b) = loaded_span(&db).unwrap().unwrap();
        upstream_changes(&db, t(a), t(b))
            .unwrap()
            .of_prefix(lost)
            .any(|c| !c.appeared && c.upstream == neighbor.asn)
    });
    let db_path = dir.path().join(format!("nkpath-{attempt}.db"));
    drop(db);

    let page = dir.path().join("report.html");
    collector(
        &db_path,
        &[
            "report",
            "html",
            "--no-dns",
            "--out",
            page.to_str().unwrap(),
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&collector(
        &db_path,
        &[
            "report",
            "upstreams",
            "--no-dns",
            "--bin",
            "auto",
            "--format",
            "json",
        ],
    ))
    .unwrap();

    // The browser: screenshot, A4 PDF, DOM.
    let shot = dir.path().join("report.png");
    let pdf = dir.path().join("report.pdf");
    let net_logs: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("net-{i}.json")))
        .collect();
    let (_, shot_err) = chromium(
        &page,
        &format!("--screenshot={}", shot.display()),
        &net_logs[0],
    );
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{shot_err}"
    );
    let (_, pdf_err) = chromium(
        &page,
        &format!("--print-to-pdf={}", pdf.display()),
        &net_logs[1],
    );
    let pdf_bytes = fs::read(&pdf).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF"), "{pdf_err}");
    // Every page A4: 595 x 842 points (Chromium writes 594.96 x 841.92).
    let pdf_text = String::from_utf8_lossy(&pdf_bytes);
    let boxes: Vec<Vec<f64>> = pdf_text
        .split("/MediaBox")
        .skip(1)
        .map(|rest| {
            let inner = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
            inner
                .split_whitespace()
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect();
    assert!(!boxes.is_empty(), "{pdf_err}");
    for b in &boxes {
        assert!(
            (b[2] - 595.0).abs() < 1.0 && (b[3] - 842.0).abs() < 1.0,
            "a page that is not A4: {b:?}"
        );
    }
    let (dom, dom_err) = chromium(&page, "--dump-dom", &net_logs[2]);

    // No script ran, no error was logged.
    // The name itself is on the page as text; had it run, body would carry the attribute.
    assert!(
        !dom.contains("data-pwned=\""),
        "the hostile name ran as a script"
    );
    assert!(
        !dom.to_lowercase().contains("<script"),
        "a script element in the DOM"
    );
    assert!(
        dom.contains("&lt;/svg&gt;&lt;script&gt;"),
        "the hostile name is shown as text"
    );
    // Chromium logs console messages (a CSP violation, an uncaught error) as CONSOLE lines,
    // with their source; its own pages (chrome://) log some too.
    for err in [&shot_err, &pdf_err, &dom_err] {
        let page_messages: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .filter(|l| !l.contains("source: chrome://"))
            .collect();
        assert!(page_messages.is_empty(), "{page_messages:#?}");
    }
    // No request left the file.
    for log in &net_logs {
        let requests = page_requests(log);
        assert!(requests.is_empty(), "{}: {requests:#?}", log.display());
    }

    // Every chart is there.
    for chart in ["path-map", "latency", "freshness", "reachability"] {
        assert!(dom.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    for net in [
        "175.45.176.0",
        "175.45.177.0",
        "175.45.178.0",
        "175.45.179.0",
    ] {
        assert!(
            dom.contains(&format!("data-chart=\"upstreams-{net}-24-agents\"")),
            "the upstreams chart of {net}/24"
        );
    }

    // The shares drawn are the JSON report's, bin by bin.
    let tables = json["tables"].as_array().unwrap();
    let rows = |prefix: &str| {
        tables
            .iter()
            .find(|t| t["title"].as_str().unwrap().starts_with(prefix))
            .unwrap()["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    type Share = (String, String, String, u64, u64);
    let reported: BTreeSet<Share> = rows("Data plane per time bin")
        .iter()
        .map(|r| {
            (
                r["bin_start"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap().to_owned(),
                r["entry_as"]
                    .as_u64()
                    .map_or("unknown".into(), |a| a.to_string()),
                r["share"]["n"].as_u64().unwrap(),
                r["share"]["of"].as_u64().unwrap(),
            )
        })
        .collect();
    let drawn: BTreeSet<Share> = marks(&dom, "rect", "dp")
        .iter()
        .map(|m| {
            (
                get(m, "data-bin").to_owned(),
                get(m, "data-target").to_owned(),
                get(m, "data-asn").to_owned(),
                get(m, "data-n").parse().unwrap(),
                get(m, "data-of").parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(drawn, reported);
    assert!(
        drawn.iter().any(|d| d.1 == silent.to_string()),
        "the silent /24 is drawn"
    );
    let control = rows("Control plane per time bin");
    let reported_cp: BTreeSet<(String, String, String, String)> = control
        .iter()
        .filter(|r| !r["visibility_pct"].is_null())
        .map(|r| {
            (
                r["bin_start"].as_str().unwrap().to_owned(),
                r["prefix"].as_str().unwrap().to_owned(),
                r["upstream"].to_string(),
                format!("{:.1}", r["visibility_pct"].as_f64().unwrap()),
            )
        })
        .collect();
    let drawn_cp: BTreeSet<(String, String, String, String)> = marks(&dom, "rect", "cp")
        .iter()
        .map(|m| {
            (
                get(m, "data-bin").to_owned(),
                get(m, "data-prefix").to_owned(),
                get(m, "data-asn").to_owned(),
                get(m, "data-pct").to_owned(),
            )
        })
        .collect();
    assert_eq!(drawn_cp, reported_cp);
    // The upstream labels: each announced (prefix, upstream) row is labelled.
    for r in &control {
        let label = format!("AS{} · {}", r["upstream"], r["prefix"].as_str().unwrap());
        assert!(dom.contains(&label), "no label {label}");
    }
    // The scenarios show: the withdrawal, and usvp's mismatches.
    let changes = marks(&dom, "line", "change");
    assert!(
        changes
            .iter()
            .any(|c| get(c, "data-prefix") == lost.to_string()
                && get(c, "data-asn") == neighbor.asn.to_string()
                && get(c, "data-appeared") == "false"),
        "{changes:?}"
    );
    assert!(!marks(&dom, "path", "mismatch").is_empty());
    drop(tb);
    dir.close().unwrap();
}
