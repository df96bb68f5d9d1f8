//! Fuzzes the RIS Live reader: arbitrary bytes as one websocket text message, parsed by
//! [`live::parse`] and, when it parses to routes or a session change, stored by
//! [`live::store_live`] into one database that lives for the whole run. Every input must
//! parse or be refused with a `ParseError`, and store or fail with an error, never panic.
//!
//! Seeds: `corpus/ris_live/` holds the legacy 2018 RIS Live lines of CAIDA's libbgpstream
//! test file (flat objects the parser refuses; two of them malformed JSON) and messages in
//! today's `ris_message` format.

#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use nkpath_collector::{Db, live};

thread_local! {
    static DB: RefCell<Db> = RefCell::new(Db::open_in_memory().expect("an in-memory database opens"));
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let Ok(message) = live::parse(&text) else {
        return;
    };
    DB.with_borrow_mut(|db| {
        let _ = live::store_live(db, &[message]);
    });
});
