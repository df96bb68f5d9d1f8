//! Fuzzes `bgp load`: arbitrary bytes written to a file and loaded by
//! [`mrt::load_file`] into one database that lives for the whole run, the way
//! an operator loads downloads one after another. Every input must load or be
//! refused with a [`mrt::LoadError`] (corrupt, truncated, unsupported), never
//! panic; a refused file must leave the database as it was (its transaction
//! rolls back), which the file count checks.
//!
//! Seeds: `corpus/mrt_loader/` holds the first records of real RouteViews
//! and RIPE RIS files (TABLE_DUMP, TABLE_DUMP_V2, BGP4MP, one gzip-wrapped),
//! cut at record boundaries.

#![no_main]

use std::cell::RefCell;
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use nkpath_collector::{Db, mrt};

struct Bench {
    db: Db,
    dir: tempfile::TempDir,
}

thread_local! {
    static BENCH: RefCell<Bench> = RefCell::new(Bench {
        db: Db::open_in_memory().expect("an in-memory database opens"),
        dir: tempfile::tempdir().expect("a temporary directory"),
    });
}

fn loaded_files(db: &Db) -> u64 {
    db.mrt_file_count().expect("mrt_files is readable")
}

fuzz_target!(|bytes: &[u8]| {
    BENCH.with_borrow_mut(|bench| {
        // A name the collector cannot derive from, as many downloads are.
        let path = bench.dir.path().join("input.mrt");
        let mut file = std::fs::File::create(&path).expect("the input file is writable");
        file.write_all(bytes).expect("the input is written");
        drop(file);
        let before = loaded_files(&bench.db);
        match mrt::load_file(&mut bench.db, &path, &mrt::LoadOptions::default(), None) {
            Ok(outcome) => {
                let _ = format!("{outcome:?}");
            }
            Err(error) => {
                let _ = error.to_string();
                assert_eq!(loaded_files(&bench.db), before, "a refused file was stored");
            }
        }
    });
});
