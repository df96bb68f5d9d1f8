//! The public export schema (collector/EXPORTS.md), pinned by golden files: one RIB dump and
//! traces that meet every verdict (match, mismatch, ambiguous, unknown), exported, and every
//! file compared byte for byte with `tests/golden/export/`. A change of a column, its order,
//! its format or a definition shows here as a diff, to be made on purpose: rerun with
//! `NKPATH_BLESS=1` to rewrite the golden files, and describe the change in EXPORTS.md.

mod common;

use std::path::{Path, PathBuf};

use common::traces::{Hop, db_with, trace};
use nkpath_collector::analysis::ixp::IxpTable;
use nkpath_collector::analysis::{AnalysisOptions, Analyzer, Mapper};

const FILES: [&str; 5] = [
    "traces.csv",
    "hops.csv",
    "as_paths.csv",
    "bgp_upstreams.csv",
    "export.json",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/export")
}

/// `export.json` with what changes from run to run (the time it was written, the version)
/// replaced by placeholders.
fn stable(name: &str, text: String) -> String {
    if name != "export.json" {
        return text;
    }
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["generated_at"] = "GENERATED_AT".into();
    meta["nkpath_version"] = "VERSION".into();
    serde_json::to_string_pretty(&meta).unwrap() + "\n"
}

#[test]
fn the_export_files_match_the_golden_files() {
    let peers = [
        common::peer("10.0.0.1", 3356),
        common::peer("10.0.0.2", 1299),
        common::peer("10.0.0.3", 174),
    ];
    let mut routes = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let asn = p.asn;
        routes.push(("175.45.176.0/22", i, format!("{asn} 4837 131279")));
        routes.push(("219.158.0.0/17", i, format!("{asn} 4837")));
        routes.push(("188.43.0.0/16", i, format!("{asn} 20485")));
        routes.push(("5.9.0.0/16", i, format!("{asn} 24940")));
    }
    // The border rule's evidence: a path elsewhere puts AS9002 next to AS4837.
    routes.push(("80.90.0.0/16", 0, "3356 9002 4837 4808".to_owned()));
    routes.push(("62.0.0.0/16", 2, "174 9002".to_owned()));
    let routes: Vec<(&str, usize, &str)> = routes
        .iter()
        .map(|(p, i, a)| (*p, *i, a.as_str()))
        .collect();
    let scenarios: [&[Hop]; 5] = [
        // match: China Unicom, then NK.
        &[
            (1, "5.9.0.1", 11, 0, 0),
            (2, "219.158.1.1", 11, 0, 0),
            (3, "175.45.176.9", 0, 0, 0),
        ],
        // mismatch: TransTeleCom, which BGP does not announce.
        &[
            (1, "5.9.0.1", 11, 0, 0),
            (2, "188.43.225.153", 11, 0, 0),
            (3, "175.45.176.9", 0, 0, 0),
        ],
        // ambiguous (border), entry inferred through a silent TTL.
        &[
            (1, "5.9.0.1", 11, 0, 0),
            (2, "62.0.1.1", 11, 0, 0),
            (4, "175.45.176.9", 0, 0, 0),
        ],
        // unknown: refused (!X) by China Unicom before NK.
        &[(1, "5.9.0.1", 11, 0, 0), (2, "219.158.1.1", 3, 13, 0)],
        // match through an MPLS tunnel: inferred.
        &[
            (1, "5.9.0.1", 11, 0, 0),
            (2, "219.158.1.1", 11, 0, 2),
            (3, "175.45.176.9", 0, 0, 0),
        ],
    ];
    let traces: Vec<String> = scenarios
        .iter()
        .zip(1..)
        .map(|(hops, id)| trace(id, 60 * i64::from(id), "175.45.176.9", hops))
        .collect();
    let (db, dir) = db_with(&peers, &routes, &traces);
    let stored = nkpath_collector::results::stored_traces(&db, None, None).unwrap();
    let analyses = Analyzer::new(
        &db,
        Mapper::new(IxpTable::default(), None),
        AnalysisOptions::default(),
    )
    .unwrap()
    .analyze_all(stored)
    .unwrap();
    let out = dir.path().join("export");
    nkpath_collector::export::export(&db, &analyses, &out).unwrap();

    let bless = std::env::var_os("NKPATH_BLESS").is_some();
    let golden = golden_dir();
    let mut differ = Vec::new();
    for name in FILES {
        let got = stable(name, std::fs::read_to_string(out.join(name)).unwrap());
        let path = golden.join(name);
        if bless {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with NKPATH_BLESS=1 to write it)",
                path.display()
            )
        });
        if got != want {
            differ.push(format!(
                "--- {name} (golden)\n{want}+++ {name} (now)\n{got}"
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "the export changed; if on purpose, rerun with NKPATH_BLESS=1 and update \
         collector/EXPORTS.md:\n{}",
        differ.join("\n")
    );
}
