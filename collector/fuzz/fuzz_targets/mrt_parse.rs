//! Fuzzes the parsing step of `bgp load` on its own: arbitrary bytes, decompressed in memory
//! when they say gzip or bzip2, parsed record by record and every route read as the loader
//! reads it ([`mrt::parse::parse_bytes`]), with no file and no database, so that it runs at
//! the speed of the other targets. Every input must parse or end in an error, never panic.
//! `mrt_loader` still fuzzes the whole load (files, transactions, rollback) more slowly.
//!
//! Seeds: the `mrt_loader` corpus (`corpus/mrt_parse/` holds the same real records).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nkpath_collector::mrt;

/// Records read per input at most: enough for every seed, and a bound on the work a small
/// compressed input can ask for.
const MAX_RECORDS: u64 = 10_000;

fuzz_target!(|bytes: &[u8]| {
    let report = mrt::parse::parse_bytes(bytes, MAX_RECORDS);
    let _ = format!("{report:?}");
});
