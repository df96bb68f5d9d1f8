//! Fuzzes what the collector does first with every HTTP upload body: decode it
//! as an [`UploadBatch`] (version check, JSON, validation of every result) and
//! render the outcome. Any input must give a value or a [`DecodeError`] naming
//! where it went wrong, never a panic. Seeds: `corpus/upload_body/` (the golden
//! batch of `proto/tests/golden`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nkpath_proto::{UploadAck, UploadBatch, decode_slice};

fuzz_target!(|body: &[u8]| {
    match decode_slice::<UploadBatch>(body) {
        Ok(batch) => {
            // What the collector echoes back must serialise too.
            let _ = serde_json::to_vec(&batch);
        }
        Err(error) => {
            let _ = (error.field().len(), error.to_string());
        }
    }
    // An agent decodes the collector's answer with the same code.
    if let Err(error) = decode_slice::<UploadAck>(body) {
        let _ = error.to_string();
    }
});
