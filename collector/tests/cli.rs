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
