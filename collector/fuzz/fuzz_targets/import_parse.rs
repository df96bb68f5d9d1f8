//! Fuzzes the reading of public traceroute files by `import` (RIPE Atlas and scamper JSON,
//! plain, gzip or bzip2) with no database: [`import::parse_public`] decompresses (within a
//! limit), splits the records and converts each into the stored shape. Every input must be
//! converted or refused with an error, never panic, and a compressed input must never
//! decompress past the limit it is given. The first byte picks the format; inputs that are
//! warts files are skipped (they are converted by an external program).
//!
//! Seeds: `corpus/import_parse/` holds real Atlas and scamper JSON records, plain and gzip.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nkpath_collector::import::{self, Format, ImportFileError};

/// A small limit, so that a bomb is refused after little work.
const LIMIT: u64 = 1 << 20;

fuzz_target!(|input: &[u8]| {
    let Some((&pick, bytes)) = input.split_first() else {
        return;
    };
    let format = if pick % 2 == 0 { Format::Atlas } else { Format::Scamper };
    if import::scamper::is_warts(bytes) {
        return;
    }
    match import::parse_public(Path::new("fuzz.json"), bytes.to_vec(), format, LIMIT) {
        Ok(parsed) => {
            let _ = format!("{:?}", parsed.summary);
            for (_, trace) in &parsed.traces {
                let _ = trace.record();
            }
        }
        Err(ImportFileError::Convert { message, .. }) => {
            let _ = message;
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
