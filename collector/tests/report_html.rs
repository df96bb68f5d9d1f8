//! `report html` without a browser: the empty cases say what is missing, names from the
//! network stay text, and the shares drawn are the shares `report upstreams --bin` lists.
//! (`testbed_report_html` opens the page of the testbed's scenarios in Chromium.)

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::collector;
use common::html_marks::{get, marks};
use common::traces::{DUMP_TIME, Hop, trace};

const HOSTILE_PTR: &str = "</svg><script>document.body.dataset.pwned='1'</script>";

fn html(db: &Path, extra: &[&str]) -> String {
    let out = db.with_extension("html");
    let mut args = vec!["report", "html", "--no-dns", "--out", out.to_str().unwrap()];
    args.extend(extra);
    collector(db, &args);
    std::fs::read_to_string(out).unwrap()
}

/// Every page, whatever it holds: a language, a CSP that forbids everything but inline
/// styles, no script, and one `</svg>` per `<svg`.
fn assert_well_formed(page: &str) {
    assert!(
        page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"),
        "{page}"
    );
    assert!(
        page.contains(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'"
        ),
        "{page}"
    );
    assert!(!page.to_lowercase().contains("<script"), "{page}");
    assert_eq!(
        page.matches("<svg ").count(),
        page.matches("</svg>").count()
    );
    assert!(page.contains("All times are UTC"));
    // Nothing to fetch: the only URL is the SVG namespace, every url() a local pattern.
    let rest = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for fetchable in ["http:", "https:", "src=", "href=", "@import", "@font-face"] {
        assert!(!rest.contains(fetchable), "{fetchable} in the page");
    }
    assert_eq!(rest.matches("url(").count(), rest.matches("url(#").count());
}

const VIA_UNICOM: [Hop; 2] = [(1, "219.158.1.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)];
const VIA_TTK: [Hop; 2] = [
    (1, "188.43.225.153", 11, 0, 0),
    (2, "175.45.176.10", 0, 0, 0),
];

fn peers() -> [common::FixturePeer; 3] {
    [
        common::peer("10.0.0.1", 3356),
        common::peer("10.0.0.2", 1299),
        common::peer("10.0.0.3", 174),
    ]
}

const ROUTES: [(&str, usize, &str); 9] = [
    ("175.45.176.0/22", 0, "3356 4837 131279"),
    ("175.45.176.0/22", 1, "1299 4837 131279"),
    ("175.45.176.0/22", 2, "174 4837 131279"),
    ("219.158.0.0/17", 0, "3356 4837"),
    ("219.158.0.0/17", 1, "1299 4837"),
    ("219.158.0.0/17", 2, "174 4837"),
    ("188.43.0.0/16", 0, "3356 20485"),
    ("188.43.0.0/16", 1, "1299 20485"),
    ("188.43.0.0/16", 2, "174 20485"),
];

/// A trace whose entry hop has the hostile PTR name.
fn with_hostile_name(trace: &str, address: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(trace).unwrap();
    v["annotations"] = serde_json::json!([{
        "address": address, "name": HOSTILE_PTR, "asn": null, "source": "ptr",
        "resolved_at": "2015-01-01T00:00:00Z"
    }]);
    v.to_string()
}

/// Hour 0: two traces through China Unicom; hour 1: one through TransTeleCom (not
/// announced: a mismatch, its entry hop named `</svg><script>…`) and one through Unicom.
fn traces() -> Vec<String> {
    vec![
        trace(1, 600, "175.45.176.9", &VIA_UNICOM),
        trace(2, 1200, "175.45.176.9", &VIA_UNICOM),
        with_hostile_name(&trace(3, 4000, "175.45.176.10", &VIA_TTK), "188.43.225.153"),
        trace(4, 4100, "175.45.176.9", &VIA_UNICOM),
    ]
}

#[test]
fn no_traces_and_no_bgp_data_says_so_and_draws_no_chart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let page = html(&db, &[]);
    assert_well_formed(&page);
    assert!(page.contains("No traces and no BGP data yet"), "{page}");
    assert!(marks(&page, "rect", "dp").is_empty());
    assert!(marks(&page, "rect", "cp").is_empty());
}

#[test]
fn bgp_only_draws_the_control_plane_and_says_the_data_plane_is_missing() {
    let (db, dir) = common::traces::db_with(&peers(), &ROUTES, &[]);
    drop(db);
    let page = html(&dir.path().join("c.db"), &[]);
    assert_well_formed(&page);
    assert!(page.contains("BGP data only"), "{page}");
    assert!(page.contains("No traces in the period"), "{page}");
    let cp = marks(&page, "rect", "cp");
    assert!(!cp.is_empty());
    for m in &cp {
        assert_eq!(get(m, "data-prefix"), "175.45.176.0/22");
        assert_eq!(get(m, "data-asn"), "4837");
        assert_eq!(get(m, "data-pct"), "100.0");
        assert_eq!((get(m, "data-n"), get(m, "data-of")), ("3", "3"));
    }
    assert!(marks(&page, "rect", "dp").is_empty());
}

#[test]
fn traces_only_draws_the_data_plane_and_says_bgp_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let file = dir.path().join("t.jsonl");
    std::fs::write(&file, traces().join("\n")).unwrap();
    collector(&db, &["import", file.to_str().unwrap()]);
    let page = html(&db, &[]);
    assert_well_formed(&page);
    assert!(page.contains("No BGP data loaded (traces only)"), "{page}");
    assert!(marks(&page, "rect", "cp").is_empty());
    // Without BGP data no hop maps to an AS: every drawn unit is an unknown entry.
    let dp = marks(&page, "rect", "dp");
    assert!(!dp.is_empty());
    assert!(dp.iter().all(|m| get(m, "data-asn") == "unknown"), "{dp:?}");
}

#[test]
fn a_hostile_ptr_name_stays_text_in_the_page_and_the_chart_files() {
    let (db, dir) = common::traces::db_with(&peers(), &ROUTES, &traces());
    drop(db);
    let db = dir.path().join("c.db");
    let page = html(&db, &[]);
    assert_well_formed(&page);
    assert!(!page.contains(HOSTILE_PTR));
    assert!(
        page.contains("&lt;/svg&gt;&lt;script&gt;document.body.dataset.pwned=&#39;1&#39;"),
        "the name is shown, escaped"
    );
    // The charts as files for papers: standalone SVG, as escaped.
    let out = dir.path().join("export");
    collector(
        &db,
        &[
            "export",
            "--no-dns",
            "--charts",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let charts: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("chart-") && n.to_ascii_lowercase().ends_with(".svg"))
        .collect();
    assert_eq!(
        charts,
        BTreeSet::from(
            [
                "chart-upstreams-175.45.176.0-24-agents.svg",
                "chart-reachability.svg",
                "chart-path-map.svg",
                "chart-latency.svg",
                "chart-freshness.svg"
            ]
            .map(String::from)
        )
    );
    for name in &charts {
        let svg = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(
            svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "),
            "{name}"
        );
        assert!(!svg.to_lowercase().contains("<script"), "{name}");
        assert!(svg.contains("<title id="), "{name} has a title");
        assert!(svg.contains("<desc id="), "{name} has a description");
    }
    assert!(
        std::fs::metadata(out.join("traces.csv")).is_ok(),
        "CSVs beside"
    );
}

/// The numbers drawn are the numbers reported: each data-plane mark's (bin, /24, entry AS,
/// n, of) and each control-plane mark's (bin, prefix, upstream, %) equal the rows of
/// `report upstreams --bin 1h --format json` over the same traces.
#[test]
fn the_drawn_shares_are_the_json_reports_per_bin_shares() {
    let (db, dir) = common::traces::db_with(&peers(), &ROUTES, &traces());
    drop(db);
    let db = dir.path().join("c.db");
    let args = ["--bin", "1h", "--count", "traces"];
    let page = html(&db, &args);
    let json: serde_json::Value = serde_json::from_str(&collector(
        &db,
        &[
            &["report", "upstreams", "--no-dns", "--format", "json"][..],
            &args,
        ]
        .concat(),
    ))
    .unwrap();
    let tables = json["tables"].as_array().unwrap();
    let table = |prefix: &str| {
        tables
            .iter()
            .find(|t| t["title"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no table {prefix}"))["rows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let reported: BTreeSet<(String, String, String, u64, u64)> = table("Data plane per time bin")
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
    let drawn: BTreeSet<(String, String, String, u64, u64)> = marks(&page, "rect", "dp")
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
    // And they are the fixture's: hour 0 all through Unicom, hour 1 half through TTK.
    let t = |s: i64| nkpath_proto::timestamp::display_unix(i64::from(DUMP_TIME) + s);
    let net = "175.45.176.0/24".to_owned();
    assert_eq!(
        drawn,
        BTreeSet::from([
            (t(0), net.clone(), "4837".into(), 2, 2),
            (t(3600), net.clone(), "4837".into(), 1, 2),
            (t(3600), net, "20485".into(), 1, 2),
        ])
    );
    let reported_cp: BTreeSet<(String, String, String, String)> =
        table("Control plane per time bin")
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
    let drawn_cp: BTreeSet<(String, String, String, String)> = marks(&page, "rect", "cp")
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
    assert!(!drawn_cp.is_empty());
    // The mismatch of hour 1 is marked.
    let mismatch = marks(&page, "path", "mismatch");
    assert_eq!(mismatch.len(), 1, "{mismatch:?}");
    assert_eq!(get(&mismatch[0], "data-bin"), t(3600));
    assert_eq!(get(&mismatch[0], "data-n"), "1");
}

/// The reachability chart beside the upstreams: each /24's lanes are the rows of `report
/// reachability --format json` with the same bins, and they say what the fixture holds.
#[test]
fn the_drawn_reachability_is_the_json_reports_per_bin_reachability() {
    let (db, dir) = common::traces::db_with(&peers(), &ROUTES, &traces());
    drop(db);
    let db = dir.path().join("c.db");
    let page = html(&db, &["--bin", "1h"]);
    assert_well_formed(&page);
    let json: serde_json::Value = serde_json::from_str(&collector(
        &db,
        &[
            "report",
            "reachability",
            "--no-dns",
            "--format",
            "json",
            "--bin",
            "1h",
        ],
    ))
    .unwrap();
    let rows = json["tables"][0]["rows"].as_array().unwrap();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => format!("{:.1}", n.as_f64().unwrap()),
        other => other.to_string(),
    };
    let reported: BTreeSet<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                text(&r["bin_start"]),
                text(&r["target"]),
                text(&r["answered"]),
                text(&r["visibility_pct"]),
            )
        })
        .collect();
    let dp = marks(&page, "rect", "reach-dp");
    let cp = marks(&page, "rect", "reach-cp");
    assert_eq!(dp.len(), cp.len());
    let drawn: BTreeSet<(String, String, String, String)> = dp
        .iter()
        .zip(&cp)
        .map(|(d, c)| {
            assert_eq!(get(d, "data-bin"), get(c, "data-bin"));
            (
                get(d, "data-bin").to_owned(),
                get(d, "data-target").to_owned(),
                get(d, "data-answered").to_owned(),
                get(c, "data-visibility").to_owned(),
            )
        })
        .collect();
    assert_eq!(drawn, reported);
    // The fixture: every trace reaches 175.45.176.0/24, in both hours; the other /24s were
    // not tried; all three peers (full feeds) carry the covering /22 throughout.
    let t = |s: i64| nkpath_proto::timestamp::display_unix(i64::from(DUMP_TIME) + s);
    let mut expected = BTreeSet::new();
    for bin in [t(0), t(3600)] {
        for net in ["176", "177", "178", "179"] {
            let answered = if net == "176" { "true" } else { "-" };
            expected.insert((
                bin.clone(),
                format!("175.45.{net}.0/24"),
                answered.to_owned(),
                "100.0".to_owned(),
            ));
        }
    }
    assert_eq!(drawn, expected);
}

/// Issue 21: `report mismatches` printed one line per trace. It groups by agent, /24, entry
/// AS and announced upstreams now; `--each` lists every trace.
#[test]
fn mismatches_are_grouped_and_each_lists_every_trace() {
    let mut traces = traces();
    traces.push(trace(5, 5000, "175.45.176.11", &VIA_TTK));
    traces.push(trace(6, 5100, "175.45.176.12", &VIA_TTK));
    let (db, dir) = common::traces::db_with(&peers(), &ROUTES, &traces);
    drop(db);
    let db = dir.path().join("c.db");
    let json = |extra: &[&str]| -> serde_json::Value {
        let args = [
            &["report", "mismatches", "--no-dns", "--format", "json"][..],
            extra,
        ]
        .concat();
        serde_json::from_str(&collector(&db, &args)).unwrap()
    };
    let grouped = json(&[]);
    let rows = grouped["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["agent"], "vp-test");
    assert_eq!(r["target"], "175.45.176.0/24");
    assert_eq!(r["entry_as"], 20485);
    assert_eq!(r["announced_upstreams"], serde_json::json!([4837]));
    assert_eq!(r["traces"], 3);
    let t = |s: i64| nkpath_proto::timestamp::display_unix(i64::from(DUMP_TIME) + s);
    assert_eq!(r["first"], t(4000).as_str());
    assert_eq!(r["last"], t(5100).as_str());
    assert_eq!(r["entry_hop"], "TTL 1 188.43.225.153 (AS20485)");
    let each = json(&["--each"]);
    assert_eq!(each["tables"][0]["rows"].as_array().unwrap().len(), 3);
}
