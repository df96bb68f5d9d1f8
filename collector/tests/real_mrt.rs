//! Real RouteViews / RIPE RIS files from `../shared/data/real/mrt/` (see SOURCES.md there):
//! each loads with the counts bgpdump reports, or, for the files published cut short, fails
//! naming the file and the offset and leaves the database as it was. Truncated and corrupted
//! copies fail the same way; plain, gzip and bzip2 copies load identically.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use nkpath_collector::Db;
use nkpath_collector::analysis::ixp::IxpTable;
use nkpath_collector::analysis::{AnalysisOptions, Analyzer, Mapper};
use nkpath_collector::mrt::{FileSummary, LoadError, LoadOptions, LoadOutcome, load_file};

/// Files SOURCES.md documents as the first megabyte of a larger dump: their compressed
/// stream is cut short.
const CUT_SHORT: [&str; 2] = [
    "rib.20140523.0600_firstMB.bz2",
    "rib6.20151101.0600_firstMB.bz2",
];

/// bgpdump's view of a file: `bgpdump -m` lines by (kind, IPv4 or IPv6).
#[derive(Debug, Default)]
struct BgpdumpCounts {
    /// TABLE_DUMP / TABLE_DUMP2 `B` lines.
    rib: [u64; 2],
    /// BGP4MP `A` lines.
    announce: [u64; 2],
    /// BGP4MP `W` lines.
    withdraw: [u64; 2],
    /// BGP4MP `STATE` lines.
    state: u64,
}

fn bgpdump(path: &Path) -> Option<BgpdumpCounts> {
    let output = match Command::new("bgpdump").arg("-m").arg(path).output() {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "bgpdump not runnable under CI: {e}"
            );
            eprintln!("SKIP: bgpdump is not installed ({e})");
            return None;
        }
    };
    let mut c = BgpdumpCounts::default();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let family = usize::from(f.get(5).is_some_and(|p| p.contains(':')));
        match (f[0], f.get(2).copied()) {
            ("TABLE_DUMP" | "TABLE_DUMP2", Some("B")) => c.rib[family] += 1,
            ("BGP4MP" | "BGP4MP_ET", Some("A")) => c.announce[family] += 1,
            ("BGP4MP" | "BGP4MP_ET", Some("W")) => c.withdraw[family] += 1,
            ("BGP4MP" | "BGP4MP_ET", Some("STATE")) => c.state += 1,
            other => panic!("unexpected bgpdump line kind {other:?}: {line}"),
        }
    }
    Some(c)
}

fn load(db: &mut Db, path: &Path) -> Result<LoadOutcome, LoadError> {
    load_file(db, path, &LoadOptions::default(), None)
}

fn loaded(outcome: LoadOutcome) -> FileSummary {
    match outcome {
        LoadOutcome::Loaded(s) => *s,
        other @ LoadOutcome::AlreadyLoaded { .. } => panic!("expected a load, got {other:?}"),
    }
}

/// Asserts that loading `path` fails with an error naming the file and `offset`, and that the
/// database is unchanged.
fn assert_fails_cleanly(db: &mut Db, path: &Path, offset_hint: &str) -> String {
    let before = common::dump_all(db);
    let err = load(db, path).expect_err("must not load").to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "error names the file: {err}"
    );
    assert!(
        err.contains("offset") || err.contains("decompressed bytes"),
        "error gives an offset: {err}"
    );
    assert!(
        err.contains(offset_hint),
        "error gives offset {offset_hint}: {err}"
    );
    assert_eq!(
        common::dump_all(db),
        before,
        "database changed by a failed load of {}",
        path.display()
    );
    err
}

/// A database with some data in it, so "unchanged" means something.
fn seeded_db() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Db::open(dir.path().join("t.db")).unwrap();
    let p = [common::peer("10.0.0.1", 3356)];
    let rib = common::rib(
        1_500_000_000,
        &p,
        &[("175.45.176.0/22", 0, "3356 4837 131279")],
    );
    let path = dir.path().join("seed.mrt");
    std::fs::write(&path, rib).unwrap();
    loaded(load(&mut db, &path).unwrap());
    (db, dir)
}

fn real_files() -> Option<Vec<PathBuf>> {
    let dir = common::shared_data("mrt")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no MRT files in the shared data");
    Some(files)
}

#[test]
fn every_real_file_loads_with_bgpdump_counts_or_fails_cleanly() {
    let Some(files) = real_files() else { return };
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(expected) = bgpdump(&path) else {
            return;
        };
        let (mut db, _dir) = seeded_db();
        if CUT_SHORT.contains(&name.as_str()) {
            let err = assert_fails_cleanly(&mut db, &path, "");
            assert!(err.contains("cut short"), "{err}");
            continue;
        }
        let s = loaded(load(&mut db, &path).unwrap_or_else(|e| panic!("{e}")));
        eprintln!("{name}: {s:?}\n  bgpdump: {expected:?}");
        match s.kind {
            "rib" => {
                assert_eq!(
                    s.rib_entries + s.other_skipped,
                    expected.rib[0],
                    "{name}: IPv4 RIB entries"
                );
                assert_eq!(s.ipv6_skipped, expected.rib[1], "{name}: IPv6 RIB entries");
            }
            "updates" => {
                let v4 = expected.announce[0] + expected.withdraw[0];
                if name == "updates.nlri_mask_trailing_bits.gz" {
                    // Its NLRI is 11.13.0.0/13 followed by a stray byte. bgpdump prints the
                    // first prefix; bgpkit-parser rejects the whole field (RFC 7606 malformed
                    // NLRI), so the prefix is unknown and nothing is kept: counted, not loaded.
                    assert_eq!((v4, s.announcements, s.malformed_nlri), (1, 0, 1), "{name}");
                } else {
                    assert_eq!(s.malformed_nlri, 0, "{name}");
                    // IPv4 multicast (other_skipped) shows in bgpdump as A/W lines too.
                    assert_eq!(
                        s.announcements + s.withdrawals + s.other_skipped,
                        v4,
                        "{name}: IPv4 updates"
                    );
                    if s.other_skipped == 0 {
                        assert_eq!(
                            s.announcements, expected.announce[0],
                            "{name}: announcements"
                        );
                        assert_eq!(s.withdrawals, expected.withdraw[0], "{name}: withdrawals");
                    }
                }
                assert_eq!(
                    s.ipv6_skipped,
                    expected.announce[1] + expected.withdraw[1],
                    "{name}: IPv6"
                );
                assert_eq!(s.state_changes, expected.state, "{name}: state changes");
            }
            other => panic!("{other}"),
        }
        // What the summary says is what the database holds.
        let rows: i64 = db.sql_for_tests().query_row("SELECT count(*) FROM bgp_updates u JOIN mrt_files f ON f.id = u.file_id WHERE f.name = ?1", [&name], |r| r.get(0)).unwrap();
        assert_eq!(
            rows as u64,
            s.announcements + s.withdrawals,
            "{name}: stored updates"
        );
        let stored: (i64, i64, String) = db
            .sql_for_tests()
            .query_row(
                "SELECT records, prefixes, sha256 FROM mrt_files WHERE name = ?1",
                [&name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (stored.0 as u64, stored.1 as u64, stored.2),
            (s.records, s.prefixes, s.sha256.clone())
        );
    }
}

#[test]
fn table_dump_v1_counts_match_sources() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let mut db = Db::open_in_memory().unwrap();
    let s = loaded(load(&mut db, &dir.join("bview.20020722.2337.gz")).unwrap());
    // SOURCES.md: 115,521 entries, 36 peers, 112,988 prefixes.
    assert_eq!(
        (s.format, s.rib_entries, s.peers, s.prefixes),
        ("TABLE_DUMP", 115_521, 36, 112_988)
    );
    let origin_rows: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM prefix_origins", [], |r| r.get(0))
        .unwrap();
    assert_eq!(origin_rows, 112_988);
    let state = nkpath_collector::bgp::BgpState::at(
        &db,
        time::OffsetDateTime::from_unix_timestamp(s.last_time).unwrap(),
    )
    .unwrap()
    .unwrap();
    // bgpdump: TABLE_DUMP|1027381055|B|193.203.0.1|1853|3.0.0.0/8|1853 1239 80|IGP|...
    let (prefix, origins) = state.origins_lpm("3.1.2.3".parse().unwrap()).unwrap();
    assert_eq!(prefix.to_string(), "3.0.0.0/8");
    assert!(origins.contains(&80), "{origins:?}");
}

/// A real update file, decompressed.
fn real_plain(name: &str) -> Option<Vec<u8>> {
    let dir = common::shared_data("mrt")?;
    Some(common::gunzip(&std::fs::read(dir.join(name)).unwrap()))
}

#[test]
fn truncated_copies_fail_with_file_and_offset() {
    let Some(plain) = real_plain("updates.20100722.2015.gz") else {
        return;
    };
    let offsets = common::record_offsets(&plain);
    let (mut db, dir) = seeded_db();
    let k = offsets.len() / 2;
    let record = offsets[k];

    // Cut in the middle of record k (plain, gzip and bzip2 copies of the cut stream).
    let cut = &plain[..record + 20];
    for (suffix, bytes) in [
        ("mrt", cut.to_vec()),
        ("gz", common::gzip(cut)),
        ("bz2", common::bzip2(cut)),
    ] {
        let path = dir.path().join(format!("cut.{suffix}"));
        std::fs::write(&path, bytes).unwrap();
        let err = assert_fails_cleanly(&mut db, &path, &format!("offset {record}"));
        assert!(err.contains(&format!("record #{}", k + 1)), "{err}");
    }
    // Cut inside a record header.
    let path = dir.path().join("cut-header.mrt");
    std::fs::write(&path, &plain[..offsets[k] + 5]).unwrap();
    assert_fails_cleanly(&mut db, &path, &format!("offset {}", offsets[k]));

    // Compressed streams cut short: mid-stream, and with only the gzip trailer missing (all
    // MRT data decompresses, ending on a record boundary).
    let gz = common::gzip(&plain);
    for (label, bytes) in [
        ("half", &gz[..gz.len() / 2]),
        ("trailer", &gz[..gz.len() - 4]),
    ] {
        let path = dir.path().join(format!("cut-{label}.gz"));
        std::fs::write(&path, bytes).unwrap();
        let err = assert_fails_cleanly(&mut db, &path, "decompressed bytes");
        assert!(err.contains("gzip stream is damaged or cut short"), "{err}");
    }
    let bz = common::bzip2(&plain);
    let path = dir.path().join("cut-half.bz2");
    std::fs::write(&path, &bz[..bz.len() / 2]).unwrap();
    let err = assert_fails_cleanly(&mut db, &path, "decompressed bytes");
    assert!(
        err.contains("bzip2 stream is damaged or cut short"),
        "{err}"
    );
}

#[test]
fn corrupted_copies_fail_with_file_and_offset() {
    let Some(plain) = real_plain("updates.20100722.2015.gz") else {
        return;
    };
    let offsets = common::record_offsets(&plain);
    let (mut db, dir) = seeded_db();
    let k = offsets.len() / 3;
    let at = offsets[k];

    // Flip the type field of record k's header (bytes 4..6) to an undefined MRT type.
    let mut bad_type = plain.clone();
    bad_type[at + 4] ^= 0xff;
    bad_type[at + 5] ^= 0xff;
    // Flip the high byte of the length field: the record claims ~4 GB.
    let mut bad_length = plain.clone();
    bad_length[at + 8] ^= 0xff;
    // Flip the subtype (bytes 6..8) to one BGP4MP does not define.
    let mut bad_subtype = plain.clone();
    bad_subtype[at + 6] ^= 0x7f;
    for (label, bytes) in [
        ("type", bad_type),
        ("length", bad_length),
        ("subtype", bad_subtype),
    ] {
        let path = dir.path().join(format!("corrupt-{label}.gz"));
        std::fs::write(&path, common::gzip(&bytes)).unwrap();
        let err = assert_fails_cleanly(&mut db, &path, &format!("offset {at}"));
        assert!(
            err.contains(&format!("record #{}", k + 1)),
            "{label}: {err}"
        );
    }
}

#[test]
fn plain_gzip_and_bzip2_load_identically() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    for name in ["bview.20020722.2337.gz", "updates.20160811.1600.gz"] {
        let mut plain = common::gunzip(&std::fs::read(dir.join(name)).unwrap());
        // The first 20,000 records are enough, and keep the debug-build test quick.
        if let Some(end) = common::record_offsets(&plain).get(20_000) {
            plain.truncate(*end);
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut dumps = BTreeMap::new();
        for (label, bytes) in [
            ("plain", plain.clone()),
            ("gzip", common::gzip(&plain)),
            ("bzip2", common::bzip2(&plain)),
        ] {
            // Same name for all three: the name is recorded, and must not be what differs.
            let sub = tmp.path().join(label);
            std::fs::create_dir(&sub).unwrap();
            let path = sub.join("data");
            std::fs::write(&path, bytes).unwrap();
            let mut db = Db::open_in_memory().unwrap();
            let s = loaded(load(&mut db, &path).unwrap());
            assert_eq!(s.compression, label.replace("plain", "none"));
            // Blank what must differ (file hash, compression, size, load time).
            db.sql_for_tests()
                .execute_batch(
                    "UPDATE mrt_files SET sha256 = '', compression = 'none', file_bytes = 0,
                                          loaded_at = ''",
                )
                .unwrap();
            dumps.insert(label, common::dump_all(&db));
        }
        assert_eq!(dumps["plain"], dumps["gzip"], "{name}: plain vs gzip");
        assert_eq!(dumps["plain"], dumps["bzip2"], "{name}: plain vs bzip2");
    }
}

fn load_accepting_truncated(db: &mut Db, path: &Path) -> FileSummary {
    let options = LoadOptions {
        accept_truncated: true,
        ..LoadOptions::default()
    };
    loaded(load_file(db, path, &options, None).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn a_cut_rib_is_refused_whole_unless_truncation_is_accepted() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let path = dir.join("rib.20140523.0600_firstMB.bz2");
    let (mut db, _tmp) = seeded_db();
    let err = assert_fails_cleanly(&mut db, &path, "decompressed bytes");
    assert!(err.contains("--accept-truncated"), "says what to do: {err}");

    let s = load_accepting_truncated(&mut db, &path);
    eprintln!("{s:?}");
    let cut = s.truncated_at.expect("flagged as truncated");
    assert_eq!(cut, s.mrt_bytes, "kept bytes end at the cut");
    // SOURCES.md: bgpdump reads 270,005 entries, 35 peers, 9,072 prefixes up to the cut (the
    // cut falls inside the record after them): the peer table and one record per prefix.
    assert_eq!(
        (s.records, s.rib_entries, s.peers, s.prefixes),
        (9_073, 270_005, 35, 9_072)
    );
    let (truncated, records): (i64, i64) = db
        .sql_for_tests()
        .query_row(
            "SELECT truncated, records FROM mrt_files WHERE name = 'rib.20140523.0600_firstMB.bz2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((truncated, records as u64), (1, s.records));
    // What was kept is usable: bgpdump's first line is
    // TABLE_DUMP2|1400824800|B|157.130.10.233|701|1.0.0.0/24|701 6453 15169|IGP|...
    let state = nkpath_collector::bgp::BgpState::at(
        &db,
        time::OffsetDateTime::from_unix_timestamp(1_400_824_800).unwrap(),
    )
    .unwrap()
    .unwrap();
    let (prefix, origins) = state.origins_lpm("1.0.0.1".parse().unwrap()).unwrap();
    assert_eq!(
        (prefix.to_string(), origins.into_iter().collect::<Vec<_>>()),
        ("1.0.0.0/24".to_string(), vec![15169])
    );
    // Loading it again is recognised as the same file.
    assert!(matches!(
        load_file(
            &mut db,
            &path,
            &LoadOptions {
                accept_truncated: true,
                ..LoadOptions::default()
            },
            None
        )
        .unwrap(),
        LoadOutcome::AlreadyLoaded { .. }
    ));
}

#[test]
fn the_border_rule_knows_adjacencies_of_paths_away_from_the_target() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let mut db = Db::open_in_memory().unwrap();
    let s = load_accepting_truncated(&mut db, &dir.join("rib.20140523.0600_firstMB.bz2"));
    // The file holds no NK prefix; the one path kept in full is the default route's (it
    // covers the target): bgpdump: ...|196.7.106.245|2905|0.0.0.0/0|2905 65023 16637|IGP|...
    assert_eq!(s.target_routes, 1);
    let target_path: String = db
        .sql_for_tests()
        .query_row("SELECT as_path FROM rib_routes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(target_path, "2905 65023 16637");
    assert!(s.as_adjacencies > 1000, "{s:?}");
    let stored: i64 = db
        .sql_for_tests()
        .query_row("SELECT count(*) FROM as_adjacencies", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as u64, s.as_adjacencies);
    let adjacency = nkpath_collector::bgp::adjacency::load_adjacency(&db).unwrap();
    // bgpdump: ...|157.130.10.233|701|1.0.0.0/24|701 6453 15169|IGP|...
    assert!(adjacency.adjacent(701, 6453) && adjacency.adjacent(15169, 6453));
    assert!(!adjacency.adjacent(15169, 131_279));
    let (first, last): (i64, i64) = db
        .sql_for_tests()
        .query_row(
            "SELECT first_seen, last_seen FROM as_adjacencies WHERE a = 6453 AND b = 15169",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((first, last), (1_400_824_800, 1_400_824_800));
}

#[test]
fn unrelated_files_without_a_collector_name_do_not_stack_into_one_state() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let mut db = Db::open_in_memory().unwrap();
    let mut summaries = Vec::new();
    for name in [
        "bview.20020722.2337.gz",
        "updates.20070211.0141.gz",
        "updates.20100722.2015.gz",
    ] {
        let s = loaded(load(&mut db, &dir.join(name)).unwrap());
        // No collector name in these file names: all go to `unknown`, and the user is told.
        assert_eq!(s.collector, "unknown");
        assert!(
            s.warnings[0].contains("pass --collector NAME"),
            "{name}: {:?}",
            s.warnings
        );
        if s.kind == "updates" {
            // No session goes to Established in these files, and the 2002 dump is years older.
            assert!(
                s.warnings[1].contains("adds nothing to the BGP state until a RIB dump"),
                "{name}: {:?}",
                s.warnings
            );
        }
        summaries.push(s);
    }
    let at = |t: i64| {
        nkpath_collector::bgp::BgpState::at(
            &db,
            time::OffsetDateTime::from_unix_timestamp(t).unwrap(),
        )
        .unwrap()
    };
    let dump_time = summaries[0].dump_time.unwrap();
    // An hour after the dump: the dump, nothing replayed over it.
    let state = at(dump_time + 3600).unwrap();
    let source = &state.sources()[0];
    assert_eq!(
        (source.dump_file.as_deref(), source.events_replayed),
        (Some("bview.20020722.2337.gz"), 0)
    );
    // Just before the 2007 updates the dump is still all there is; its age says how old.
    let state = at(summaries[1].first_time - 1).unwrap();
    assert!(state.age_s() > 4 * 365 * 86_400, "{}", state.age_s());
    // In 2007 and 2010 nothing of those years' updates is replayed over the 2002 dump, and
    // they do not hide it: the dump stays the state of the peers they say nothing about, and
    // its age says how old it is.
    for s in &summaries[1..] {
        let state = at(s.last_time).unwrap_or_else(|| panic!("{}: no state", s.name));
        let source = &state.sources()[0];
        assert_eq!(
            (source.dump_file.as_deref(), source.events_replayed),
            (Some("bview.20020722.2337.gz"), 0),
            "{}",
            s.name
        );
        assert_eq!(state.age_s(), s.last_time - dump_time, "{}", s.name);
    }
}

/// Loads the 2002 RIS dump (its peers are at the Vienna exchange, 193.203.0.0/24: rrc05) and
/// the 2007 RIS update file (its peers are at LINX, 195.66.224.0/22: rrc01, and none of them is
/// in the dump), named as given (`None`: from the file names, which name no collector).
fn two_collectors(names: [Option<&str>; 2]) -> (Db, Vec<FileSummary>) {
    let dir = common::shared_data("mrt").expect("checked by the caller");
    let mut db = Db::open_in_memory().unwrap();
    let mut summaries = Vec::new();
    for (file, collector) in ["bview.20020722.2337.gz", "updates.20070211.0141.gz"]
        .into_iter()
        .zip(names)
    {
        let options = LoadOptions {
            collector: collector.map(str::to_owned),
            ..LoadOptions::default()
        };
        summaries.push(loaded(
            load_file(&mut db, &dir.join(file), &options, None).unwrap(),
        ));
    }
    (db, summaries)
}

#[test]
fn an_update_file_of_another_collector_without_a_dump_does_not_hide_the_earlier_dump() {
    if common::shared_data("mrt").is_none() {
        return;
    }
    // bgpdump on the dump: TABLE_DUMP|1027381055|B|193.203.0.1|1853|3.0.0.0/8|1853 1239 80|...
    let hop = "3.0.0.1";
    for names in [[None, None], [Some("rrc05"), Some("rrc01")]] {
        let (mut db, files) = two_collectors(names);
        let (dump, updates) = (&files[0], &files[1]);
        // A trace an hour after the dump, and traces during and a day after the update file.
        let times = [
            dump.first_time + 3600,
            updates.first_time + 60,
            updates.last_time + 86_400,
        ];
        let traces: Vec<String> = times
            .iter()
            .zip(1..)
            .map(|(t, id)| {
                common::traces::trace(
                    id,
                    t - i64::from(common::traces::DUMP_TIME),
                    "175.45.176.9",
                    &[(1, hop, 11, 0, 0), (2, "175.45.176.9", 0, 0, 0)],
                )
            })
            .collect();
        let report = db
            .import_results(std::io::Cursor::new(traces.join("\n")))
            .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        let analyses = Analyzer::new(
            &db,
            Mapper::new(IxpTable::default(), None),
            AnalysisOptions::default(),
        )
        .unwrap()
        .analyze_all(nkpath_collector::results::stored_traces(&db, None, None).unwrap())
        .unwrap();
        assert_eq!(analyses.len(), 3);
        for (a, t) in analyses.iter().zip(times) {
            let at = format!("{names:?}, trace at {t}");
            // The dump's state: its origin maps the hop, and its age is counted from the dump.
            assert_eq!(
                a.hops[0].first().and_then(|reply| reply.class.asn()),
                Some(80),
                "{at}"
            );
            assert_eq!(a.bgp_age_s, Some(t - dump.first_time), "{at}");
            assert_ne!(a.verdict.reason, "no BGP data", "{at}");
        }
        // Years later the dump is too old to judge by, and the verdict says so.
        for a in &analyses[1..] {
            assert!(
                a.verdict.reason.starts_with("stale-bgp"),
                "{names:?}: {}",
                a.verdict.reason
            );
        }
    }
}

/// `report changes` over the whole loaded span, as text.
fn changes_report(db: &Db) -> String {
    let (a, b) = nkpath_collector::bgp::timeline::loaded_span(db)
        .unwrap()
        .expect("BGP data loaded");
    let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let changes = nkpath_collector::bgp::timeline::upstream_changes(db, at(a), at(b)).unwrap();
    let tables = nkpath_collector::report::changes::report(&changes, &[]);
    nkpath_collector::report::render(&tables, nkpath_collector::report::Format::Table).unwrap()
}

#[test]
fn the_changes_baseline_lists_only_prefixes_the_target_as_originates() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let mut db = Db::open_in_memory().unwrap();
    load_accepting_truncated(&mut db, &dir.join("rib.20140523.0600_firstMB.bz2"));
    // The one route kept for the target block is the default route (bgpdump:
    // ...|196.7.106.245|2905|0.0.0.0/0|2905 65023 16637|...): AS16637's, not the target's.
    let text = changes_report(&db);
    assert!(text.contains("BGP baseline at 2014-05-23"), "{text}");
    assert!(!text.contains("0.0.0.0/0"), "{text}");
    assert!(
        text.contains("no prefix inside or covering the target block from the target AS"),
        "{text}"
    );
}

#[test]
fn a_peers_initial_table_after_its_session_comes_up_is_its_baseline_not_a_change() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    // The RIS update file of 2016-08-11 16:00 (rrc?), with the target set to the RIS beacon
    // 84.205.65.0/24 of AS12654. bgpdump: peer 37.49.236.145 AS49463 announces it at
    // 1470931219 via AS8468 (... 8468 12654), peer 37.49.236.123 AS198290 at 1470931220 via
    // AS2914 (... 2914 12654). The file holds no session going to Established, so the sessions
    // of these two peers are seen coming up at the start of the file, just before it (a file
    // of their own, loaded first): what follows from them is their initial table.
    let tmp = tempfile::tempdir().unwrap();
    let up = tmp.path().join("sessions.mrt");
    let mut bytes = Vec::new();
    for (ip, asn) in [("37.49.236.145", 49_463), ("37.49.236.123", 198_290)] {
        bytes.extend(common::state_change(
            1_470_931_200,
            common::peer(ip, asn),
            bgpkit_parser::models::BgpState::OpenConfirm,
            bgpkit_parser::models::BgpState::Established,
        ));
    }
    std::fs::write(&up, bytes).unwrap();
    let options = LoadOptions {
        collector: Some("rrc-x".into()),
        target: Some(nkpath_collector::settings::Target {
            prefixes: vec!["84.205.65.0/24".parse().unwrap()],
            asn: 12_654,
        }),
        ..LoadOptions::default()
    };
    let mut db = Db::open_in_memory().unwrap();
    for path in [up, dir.join("updates.20160811.1600.gz")] {
        loaded(load_file(&mut db, &path, &options, None).unwrap());
    }
    let text = changes_report(&db);
    // The first table to arrive is the baseline; the second peer's table is its baseline too.
    assert!(
        text.contains("BGP baseline at 2016-08-11T16:00:19Z:\n    84.205.65.0/24: AS8468"),
        "{text}"
    );
    assert!(
        !text.contains("+AS"),
        "a table transfer is no change: {text}"
    );
    assert!(
        text.contains("84.205.65.0/24 baseline AS2914")
            && text.contains("initial table of 37.49.236.123 AS198290 after its session came up"),
        "{text}"
    );
}

#[test]
fn export_json_names_a_truncated_rib_in_use() {
    let Some(dir) = common::shared_data("mrt") else {
        return;
    };
    let mut db = Db::open_in_memory().unwrap();
    load_accepting_truncated(&mut db, &dir.join("rib.20140523.0600_firstMB.bz2"));
    let out = tempfile::tempdir().unwrap();
    nkpath_collector::export::export(&db, &[], out.path()).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("export.json")).unwrap())
            .unwrap();
    let files = meta["mrt_files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "rib.20140523.0600_firstMB.bz2");
    assert_eq!(files[0]["truncated"], true, "{meta:#}");
}
