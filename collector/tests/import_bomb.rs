//! Issue 20, item 2: `import` of a compressed file bounds its memory. A 2 MiB gzip bomb
//! (2 GiB of decompressed text) is refused with a clear error, nothing is stored, and the
//! import's peak RSS stays under 512 MiB.
//!
//! The only test of its binary: the peak RSS is read with getrusage(RUSAGE_CHILDREN), the
//! largest of this process's children, so no other test may start one.

use std::io::Write as _;
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use nix::sys::resource::{UsageWho, getrusage};
use nkpath_collector::Db;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");
const MIB: usize = 1 << 20;

/// 128 gzip members of 16 MiB of spaces each: about 2 MiB that decompress to 2 GiB.
fn gzip_bomb() -> Vec<u8> {
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    let spaces = vec![b' '; MIB];
    for _ in 0..16 {
        member.write_all(&spaces).unwrap();
    }
    let member = member.finish().unwrap();
    member.repeat(128)
}

#[test]
fn a_gzip_bomb_is_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let bomb = dir.path().join("results.json.gz");
    let bytes = gzip_bomb();
    assert!(bytes.len() < 3 * MIB, "{} bytes", bytes.len());
    std::fs::write(&bomb, &bytes).unwrap();
    Db::open(&db).unwrap();

    for format in ["atlas", "scamper"] {
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["import", "--format", format])
            .arg(&bomb)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let peak = usize::try_from(getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss())
            .unwrap()
            * 1024;
        eprintln!("import --format {format}: peak RSS {} MiB", peak / MIB);
        assert!(
            peak < 512 * MIB,
            "import --format {format} of a 2 MiB gzip bomb: peak RSS {} MiB",
            peak / MIB
        );
        assert!(!out.status.success(), "{format}: {stderr}");
        assert!(
            stderr.contains("decompresses") && stderr.contains("--max-decompressed"),
            "{format}: the error says what happened and what to do: {stderr}"
        );
    }
    let stored: i64 = Db::open(&db)
        .unwrap()
        .sql_for_tests()
        .query_row("SELECT count(*) FROM results", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0);
}
