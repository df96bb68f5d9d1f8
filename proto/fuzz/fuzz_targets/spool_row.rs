//! Fuzzes the decoding of one spool row: the agent keeps each result as the
//! JSON of a [`ResultRecord`] and decodes it again before uploading. A row
//! damaged on disk must give a [`DecodeError`] (the agent then quarantines
//! it), never a panic. Seeds: `corpus/spool_row/` (the golden records).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nkpath_proto::{ResultRecord, decode_slice};

fuzz_target!(|row: &[u8]| {
    match decode_slice::<ResultRecord>(row) {
        Ok(record) => {
            let _ = serde_json::to_vec(&record);
        }
        Err(error) => {
            let _ = (error.field().len(), error.to_string());
        }
    }
});
