//! RPKI: loading real ROA exports and route origin validation (RFC 6811) at a time.

mod common;

use std::process::Command;

use nkpath_collector::Db;
use nkpath_collector::rpki::{DEFAULT_MAX_RPKI_AGE_S, RpkiState, load_rpki_file, state_at};

fn temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("nkpath.db")).unwrap();
    (dir, db)
}

fn state(db: &Db, route: &str, origin: u32, t: i64) -> RpkiState {
    state_at(
        db,
        route.parse().unwrap(),
        Some(origin),
        t,
        DEFAULT_MAX_RPKI_AGE_S,
    )
    .unwrap()
}

/// The real dn42 export: 3,312 entries, of which one has a null prefix and two the AS
/// number "AS"; 1,758 IPv4 entries (two of them with "AS") and 1,553 IPv6 ones.
#[test]
fn the_real_export_loads_but_its_three_broken_entries() {
    let Some(dir) = common::shared_data("rpki") else {
        return;
    };
    let file = dir.join("export_dn42.json");
    let (_tmp, mut db) = temp_db();
    let summary = load_rpki_file(&mut db, &file, None, 1_700_000_000).unwrap();
    assert_eq!(summary.generated, 1_643_432_200, "metadata.generated");
    assert_eq!(summary.vrps, 1_756);
    assert_eq!(summary.ipv6, 1_553);
    let skipped: Vec<(usize, &str)> = summary
        .skipped
        .iter()
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(skipped[0], (123, "prefix is null, not a string"));
    assert!(
        skipped[1..]
            .iter()
            .all(|(_, reason)| *reason == "asn is \"AS\", not an AS number")
    );

    // Hand-worked from the file: 10.0.0.0/16 maxLength 28 for AS65079 covers 10.0.1.0/24.
    let t = 1_643_432_200 + 3600;
    assert_eq!(state(&db, "10.0.1.0/24", 65079, t), RpkiState::Valid);
    assert_eq!(
        state(&db, "10.0.1.0/29", 65079, t),
        RpkiState::InvalidLength
    );
    assert_eq!(state(&db, "10.0.1.0/24", 64512, t), RpkiState::InvalidAsn);
    // 172.20.0.53/32 has two ROAs, for AS4242420119 and AS4242423914: either origin is valid.
    assert_eq!(
        state(&db, "172.20.0.53/32", 4_242_423_914, t),
        RpkiState::Valid
    );
    assert_eq!(
        state(&db, "172.20.0.53/32", 4_242_420_119, t),
        RpkiState::Valid
    );
    assert_eq!(
        state(&db, "172.20.0.53/32", 4_242_420_000, t),
        RpkiState::InvalidAsn
    );
    // 10.100.0.0/14 appears twice: for "AS" (skipped) and for AS64654 (kept).
    assert_eq!(state(&db, "10.100.1.0/24", 64654, t), RpkiState::Valid);
    assert_eq!(state(&db, "192.0.2.0/24", 64654, t), RpkiState::NotFound);

    // Before the export existed, and long after it: unknown, never a guess.
    assert!(matches!(
        state(&db, "10.0.1.0/24", 65079, 1_600_000_000),
        RpkiState::Unknown(_)
    ));
    let late = 1_643_432_200 + 2 * DEFAULT_MAX_RPKI_AGE_S;
    assert!(matches!(
        state(&db, "10.0.1.0/24", 65079, late),
        RpkiState::Unknown(_)
    ));
}

/// 2025-03-18: a ROA for the /22 with maxLength 22 made every announced /24 invalid; the
/// corrected ROA ended it. States follow the export current at each time.
#[test]
fn exports_are_kept_by_time_and_each_time_is_judged_by_its_own() {
    let (tmp, mut db) = temp_db();
    let write = |name: &str, max_len: u8, generated: &str| {
        let path = tmp.path().join(name);
        std::fs::write(
            &path,
            format!(
                r#"{{"metadata": {{"buildtime": "{generated}"}}, "roas": [{{"asn": 131279,
                "prefix": "175.45.176.0/22", "maxLength": {max_len}, "ta": "apnic",
                "expires": 1742860800}}]}}"#
            ),
        )
        .unwrap();
        path
    };
    let fixed = write("fixed.json", 24, "2025-03-18T16:00:00Z");
    let broken = write("broken.json", 22, "2025-03-18T00:00:00Z");
    // Loaded out of order on purpose: the generation time decides, not the loading order.
    load_rpki_file(&mut db, &fixed, None, 0).unwrap();
    load_rpki_file(&mut db, &broken, None, 0).unwrap();
    let at = |hhmm: &str| {
        nkpath_proto::timestamp::parse(&format!("2025-03-18T{hhmm}:00Z"))
            .unwrap()
            .unix_timestamp()
    };
    for s24 in [
        "175.45.176.0/24",
        "175.45.177.0/24",
        "175.45.178.0/24",
        "175.45.179.0/24",
    ] {
        assert_eq!(
            state(&db, s24, 131_279, at("08:00")),
            RpkiState::InvalidLength,
            "{s24}"
        );
        assert_eq!(
            state(&db, s24, 131_279, at("17:00")),
            RpkiState::Valid,
            "{s24}"
        );
    }
    assert_eq!(
        state(&db, "175.45.176.0/22", 131_279, at("08:00")),
        RpkiState::Valid
    );
}

#[test]
fn the_command_line_reports_skipped_entries_and_refuses_what_is_not_an_export() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("nkpath.db");
    let run = |file: &std::path::Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
            .arg("--db")
            .arg(&db)
            .args(["rpki", "load"])
            .args(extra)
            .arg(file)
            .output()
            .unwrap()
    };
    let html = tmp.path().join("error.html");
    std::fs::write(&html, "<html><body>502 Bad Gateway</body></html>").unwrap();
    let out = run(&html, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"));

    let no_time = tmp.path().join("no-time.json");
    std::fs::write(
        &no_time,
        r#"{"roas": [{"asn": "AS", "prefix": "10.0.0.0/8", "maxLength": 8},
            {"asn": "AS64512", "prefix": "10.0.0.0/8", "maxLength": 8}]}"#,
    )
    .unwrap();
    let out = run(&no_time, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--generated"));

    let out = run(&no_time, &["--generated", "2025-01-01T00:00:00Z"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("entry 0: skipped: asn is \"AS\""),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 IPv4 ROA payloads loaded"), "{stdout}");
    assert!(stdout.contains("1 entries skipped"), "{stdout}");
}
