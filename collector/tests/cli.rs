//! The command line: help that explains, `bgp load` summaries, skips and failures with their
//! exit status, and no progress bar when stderr is not a terminal.

mod common;

use std::process::{Command, Output};

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_explains_the_commands() {
    let (top, _) = text(&run(&["--help".as_ref()]));
    for word in ["import", "bgp", "--db", "nkpath.db"] {
        assert!(top.contains(word), "--help lacks {word}:\n{top}");
    }
    let (load, _) = text(&run(&["bgp".as_ref(), "load".as_ref(), "--help".as_ref()]));
    for word in [
        "TABLE_DUMP_V2",
        "BGP4MP",
        "gzip or bzip2",
        "decompressed offset",
        "SHA-256",
        "--collector",
        "--target-prefix",
        "175.45.176.0/22",
        "--target-asn",
        "131279",
        "IPv6",
        "--accept-truncated",
        "24 h",
        "Examples:",
    ] {
        assert!(load.contains(word), "bgp load --help lacks {word}:\n{load}");
    }
}

#[test]
fn bgp_load_reports_loads_skips_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let p = [
        common::peer("10.0.0.1", 3356),
        common::peer("10.0.0.2", 1299),
    ];
    let rib = common::rib(
        1_500_000_000,
        &p,
        &[
            ("175.45.176.0/22", 0, "3356 4837 131279"),
            ("175.45.176.0/22", 1, "1299 20485 131279"),
            ("8.8.8.0/24", 0, "3356 15169"),
        ],
    );
    let good = dir.path().join("rib.bz2");
    std::fs::write(&good, common::bzip2(&rib)).unwrap();
    let cut = dir.path().join("cut.mrt");
    std::fs::write(&cut, &rib[..rib.len() - 3]).unwrap();

    let load = |files: &[&std::path::Path]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--db".as_ref(),
            db.as_os_str(),
            "bgp".as_ref(),
            "load".as_ref(),
        ];
        args.extend(files.iter().map(|f| f.as_os_str()));
        run(&args)
    };
    let out = load(&[&good]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("loaded RIB dump (TABLE_DUMP_V2, bzip2) for collector unknown"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 peers, 2 IPv4 prefixes, 3 routes (2 with full AS path)"),
        "{stdout}"
    );
    assert!(stdout.contains("2017-07-14T02:40:00Z"), "{stdout}");
    // No progress bar off a terminal; a warning that the collector was guessed.
    assert_eq!(
        stderr.trim_end(),
        format!(
            "nkpath-collector: warning: {}: loaded for collector unknown: no collector name in \
             the file name or path; pass --collector NAME: files of different collectors must \
             not be mixed",
            good.display()
        ),
    );

    let out = load(&[&cut, &good]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("skipped, already loaded as rib.bz2"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "collector unknown: {}: bad MRT record #3 at decompressed offset",
            cut.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--accept-truncated keeps"), "{stderr}");
    assert!(stderr.contains("1 of 2 files not loaded"), "{stderr}");

    // The same cut file, accepted: the two complete records are kept, the file is flagged.
    let other = dir.path().join("other.db");
    let out = run(&[
        "--db".as_ref(),
        other.as_os_str(),
        "bgp".as_ref(),
        "load".as_ref(),
        "--collector".as_ref(),
        "rc".as_ref(),
        "--accept-truncated".as_ref(),
        cut.as_os_str(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let offsets = common::record_offsets(&rib);
    assert!(
        stdout.contains(&format!(
            "truncated at byte {} (decompressed): kept 2 complete records",
            offsets[2]
        )),
        "{stdout}"
    );
    assert!(stdout.contains("for collector rc"), "{stdout}");
    assert!(
        stdout.contains("2 peers, 1 IPv4 prefixes, 2 routes (2 with full AS path)"),
        "{stdout}"
    );
}

/// Runs the collector on `db` with `args`; fails the test with its stderr when it fails.
fn collector_ok(db: &std::path::Path, args: &[&str]) -> String {
    let mut all: Vec<&std::ffi::OsStr> = vec!["--db".as_ref(), db.as_os_str()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    let out = run(&all);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?}: {stderr}");
    stdout
}

/// A database holding the real RIPE Atlas file whose probe 163 heard two routers at TTL 2,
/// with a RIB of the real origins of its addresses, the destination's /24 as the target.
fn ripe_db(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    use common::traces::{RIPE_TARGET_ASN, RIPE_TARGET_PREFIX, ripe_rib};
    let (rib, traces) = ripe_rib(dir)?;
    let db = dir.join("c.db");
    let asn = RIPE_TARGET_ASN.to_string();
    let load = [
        "bgp",
        "load",
        "--collector",
        "rrc00",
        "--target-prefix",
        RIPE_TARGET_PREFIX,
        "--target-asn",
        &asn,
        rib.to_str().unwrap(),
    ];
    collector_ok(&db, &load);
    collector_ok(
        &db,
        &["import", "--format", "atlas", traces.to_str().unwrap()],
    );
    Some(db)
}

/// Issue 19: `report path` showed the first address of each TTL only. A real Atlas trace
/// whose TTL 2 was answered by 91.122.108.1 (twice) and 212.48.204.166 (once) shows both, as
/// traceroute does, each mapped to its AS.
#[test]
fn report_path_shows_every_address_that_replied_at_a_ttl() {
    use common::traces::{RIPE_AGENT, RIPE_TARGET};
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = ripe_db(dir.path()) else {
        return;
    };
    let path = [
        "report",
        "path",
        "--no-dns",
        "--agent",
        RIPE_AGENT,
        "--target",
        RIPE_TARGET,
    ];
    let out = collector_ok(&db, &path);
    let ttl_2: Vec<&str> = out.lines().filter(|l| l.starts_with("  2 ")).collect();
    assert_eq!(ttl_2.len(), 2, "{out}");
    assert!(
        ttl_2[0].contains("91.122.108.1") && ttl_2[0].contains("AS8997"),
        "{out}"
    );
    assert!(ttl_2[0].contains("answered 2 of 3 probes"), "{out}");
    assert!(
        ttl_2[1].contains("212.48.204.166") && ttl_2[1].contains("AS8997"),
        "{out}"
    );
    assert!(ttl_2[1].contains("answered 1 of 3 probes"), "{out}");
    assert!(out.contains("several addresses replied at TTL 2"), "{out}");
    // Fourteen TTLs, fifteen addresses; the entry into AS9157 seen at TTL 13.
    assert_eq!(
        out.lines().filter(|l| l.starts_with("  1")).count(),
        6,
        "{out}"
    );
    assert!(out.contains("entry AS42548;"), "{out}");

    let json: serde_json::Value = serde_json::from_str(&collector_ok(
        &db,
        &[&path[..], &["--format", "json"]].concat(),
    ))
    .unwrap();
    let rows = json["tables"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 15);
    assert_eq!(rows[2]["ttl"], 2);
    assert_eq!(rows[2]["address"], "212.48.204.166");
    assert_eq!(
        rows[2]["as"],
        serde_json::json!({"class": "as", "asn": 8997})
    );
    assert_eq!(rows[0]["as"], serde_json::json!({"class": "private"}));
    assert_eq!(rows[0]["rtt_ms"], 176.391);
}

/// Issue 19: `hops.csv` wrote `unmapped` for every address of a TTL but the first. Each row
/// of the real trace's TTL 2 carries its own address's AS.
#[test]
fn export_maps_every_reply_of_a_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = ripe_db(dir.path()) else {
        return;
    };
    let out = dir.path().join("export");
    collector_ok(&db, &["export", "--no-dns", "--out", out.to_str().unwrap()]);
    let mut reader = csv::Reader::from_path(out.join("hops.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ttl_2: Vec<(String, String, String)> = rows
        .iter()
        .filter(|r| r[col("ttl")] == *"2" && !r[col("address")].is_empty())
        .map(|r| {
            let f = |name: &str| r[col(name)].to_owned();
            (f("address"), f("hop_class"), f("asn"))
        })
        .collect();
    let as8997 = |a: &str| (a.to_owned(), "as".to_owned(), "8997".to_owned());
    assert_eq!(
        ttl_2,
        [
            as8997("91.122.108.1"),
            as8997("91.122.108.1"),
            as8997("212.48.204.166")
        ]
    );
    // No replying address of either trace is left unmapped but the private first hops.
    let unmapped = rows
        .iter()
        .filter(|r| r[col("hop_class")] == *"unmapped")
        .count();
    assert_eq!(unmapped, 0);
}

/// Issue 19: JSON reports wrote shares as text (`"1/2 (50.0%)"`) and ASes as `"AS42548"`.
/// They are numbers now, and every JSON report says which format version it is.
#[test]
fn json_reports_write_numbers_and_their_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = ripe_db(dir.path()) else {
        return;
    };
    let json = |report: &str| -> serde_json::Value {
        let out = collector_ok(&db, &["report", report, "--no-dns", "--format", "json"]);
        serde_json::from_str(&out).unwrap()
    };
    let upstreams = json("upstreams");
    assert_eq!(upstreams["format_version"], 2);
    let data = upstreams["tables"][0]["rows"].as_array().unwrap();
    // Probe 163 enters through AS42548; probe 165 heard nothing: unknown.
    let entry = data.iter().find(|r| r["entry_as"] == 42548).unwrap();
    assert_eq!(
        entry["share"],
        serde_json::json!({"n": 1, "of": 2, "pct": 50.0})
    );
    assert_eq!(entry["total"], 1);
    let unknown = data.iter().find(|r| r["entry_as"].is_null()).unwrap();
    assert_eq!(unknown["share"]["n"], 1);
    let control = upstreams["tables"][1]["rows"].as_array().unwrap();
    assert_eq!(control.len(), 3, "{control:?}");
    for row in control {
        assert!(row["upstream"].is_u64(), "{row}");
        assert_eq!(
            row["min"],
            serde_json::json!({"n": 1, "of": 3, "pct": 33.3})
        );
        assert_eq!(row["max"], row["min"]);
        assert_eq!(row["mean_pct"], 33.3);
    }
    // Entry AS42548 borders the announced upstreams in the loaded paths: ambiguous.
    let mismatches = json("mismatches");
    assert_eq!(mismatches["format_version"], 2);
    let row = &mismatches["tables"][0]["rows"][0];
    assert_eq!(row["entry_as"], 42548, "{row}");
    assert_eq!(row["traces"], 1, "{row}");
    assert_eq!(
        row["announced_upstreams"],
        serde_json::json!([174, 1299, 3356])
    );
    let each: serde_json::Value = serde_json::from_str(&collector_ok(
        &db,
        &[
            "report",
            "mismatches",
            "--each",
            "--no-dns",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    let row = &each["tables"][0]["rows"][0];
    assert_eq!(row["entry_as"], 42548, "{row}");
    assert_eq!(row["inferred"], false);
    assert_eq!(json("changes")["format_version"], 2);
}

/// Issue 19, item 8: a truncated RIB dump in use was mentioned by `bgp load` only. Every
/// report whose BGP state rests on the real 2014 RouteViews RIB cut after its first MB (loaded
/// with `--accept-truncated`) names it as truncated, in text, JSON and CSV; the same reports
/// over a complete real RIB say nothing of the kind.
#[test]
fn reports_name_the_truncated_rib_their_bgp_state_rests_on() {
    let Some(mrt) = common::shared_data("mrt") else {
        return;
    };
    // (file, its dump time, truncated)
    let ribs = [
        ("rib.20140523.0600_firstMB.bz2", 1_400_824_800_i64, true),
        ("bview.20020722.2337.gz", 1_027_381_055, false),
    ];
    for (name, dump_time, truncated) in ribs {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let rib = mrt.join(name);
        let mut load = vec!["bgp", "load", "--collector", "route-views2"];
        if truncated {
            load.push("--accept-truncated");
        }
        load.push(rib.to_str().unwrap());
        collector_ok(&db, &load);
        // A trace into the target block an hour after the dump, so that every report,
        // `path` included, has a trace judged against the dump's state.
        let trace = common::traces::trace(
            1,
            dump_time + 3600 - i64::from(common::traces::DUMP_TIME),
            "175.45.176.9",
            &[(1, "12.0.0.1", 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)],
        );
        let traces = dir.path().join("traces.jsonl");
        std::fs::write(&traces, trace + "\n").unwrap();
        collector_ok(&db, &["import", traces.to_str().unwrap()]);

        let reports: [&[&str]; 4] = [
            &["report", "upstreams"],
            &["report", "changes"],
            &["report", "mismatches"],
            &[
                "report",
                "path",
                "--agent",
                "vp-test",
                "--target",
                "175.45.176.9",
            ],
        ];
        for report in reports {
            for format in ["table", "json", "csv"] {
                let args = [report, &["--no-dns", "--format", format]].concat();
                let out = collector_ok(&db, &args);
                // Text and JSON: a note naming the file as truncated; CSV (no notes): the
                // table of truncated files, with the file in it.
                let noted = out
                    .lines()
                    .any(|l| l.contains(name) && l.to_lowercase().contains("truncated"));
                let listed = out.contains("Truncated MRT files in use") && out.contains(name);
                let names_it = noted || listed;
                let mentions_truncation = out.to_lowercase().contains("truncated");
                if truncated {
                    assert!(
                        names_it,
                        "{args:?} does not say {name} is truncated:\n{out}"
                    );
                } else {
                    assert!(!mentions_truncation, "{args:?} over a complete RIB:\n{out}");
                }
                if format == "json" {
                    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
                    let files: Vec<&serde_json::Value> = json["tables"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|t| {
                            t["title"]
                                .as_str()
                                .is_some_and(|t| t.starts_with("Truncated MRT files"))
                        })
                        .flat_map(|t| t["rows"].as_array().unwrap())
                        .collect();
                    let expected = if truncated {
                        vec![serde_json::json!({
                            "file": name,
                            "collector": "route-views2",
                            "dump_time": "2014-05-23T06:00:00Z",
                        })]
                    } else {
                        vec![]
                    };
                    assert_eq!(
                        files.into_iter().cloned().collect::<Vec<_>>(),
                        expected,
                        "{args:?}"
                    );
                }
            }
        }
    }
}
