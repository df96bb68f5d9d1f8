//! Golden files pin the wire format: each canonical sample, serialized with
//! `serde_json::to_string_pretty`, must equal its file in `tests/golden/`
//! byte for byte, and each file must decode back to the sample. A diff in a
//! golden file is a wire-format change and must follow the versioning rule
//! in the crate docs.
//!
//! After an intended change, run `UPDATE_GOLDEN=1 cargo test -p nkpath-proto
//! --test golden` to rewrite the files, and review the diff.

mod common;

use std::fmt::Debug;
use std::fs;
use std::path::PathBuf;

use nkpath_proto::{FlowId, Versioned, decode};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn update_requested() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// Compares `value`'s JSON with the golden file; rewrites the file instead
/// when `UPDATE_GOLDEN=1`. Returns the golden text.
fn check_text<T: Serialize>(name: &str, value: &T) -> String {
    let path = golden_path(name);
    let actual = serde_json::to_string_pretty(value).unwrap() + "\n";
    if update_requested() {
        fs::write(&path, &actual).unwrap();
        return actual;
    }
    let expected =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if let Err(message) = compare(&path.display().to_string(), &expected, &actual) {
        panic!("{message}");
    }
    expected
}

/// `Err` with a message that shows the first differing line and says how to
/// accept the change.
fn compare(name: &str, expected: &str, actual: &str) -> Result<(), String> {
    if actual == expected {
        return Ok(());
    }
    let (expected_lines, actual_lines): (Vec<_>, Vec<_>) =
        (expected.lines().collect(), actual.lines().collect());
    let line = (0..expected_lines.len().max(actual_lines.len()))
        .find(|&i| expected_lines.get(i) != actual_lines.get(i))
        .unwrap_or(0);
    let show = |lines: &[&str]| {
        lines
            .get(line)
            .copied()
            .unwrap_or("<end of file>")
            .to_owned()
    };
    Err(format!(
        "{name} differs from the serialized sample, first at line {}:\n  golden: {}\n  actual: {}\n\n\
         If the wire format changed on purpose (see the versioning rule in the crate docs), \
         run the tests with UPDATE_GOLDEN=1 to accept it, and review the diff.\n\nactual:\n{actual}",
        line + 1,
        show(&expected_lines),
        show(&actual_lines),
    ))
}

/// The golden text must also decode, through the full `decode` path, to
/// the very value it was written from.
fn check<T>(name: &str, value: &T)
where
    T: Serialize + DeserializeOwned + Versioned + PartialEq + Debug,
{
    let text = check_text(name, value);
    let decoded: T = decode(&text).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
    assert_eq!(&decoded, value, "{name} decodes to a different value");
}

#[test]
fn trace_result() {
    check("trace_result.json", &common::trace());
}

#[test]
fn trace_result_tcp() {
    check("trace_result_tcp.json", &common::tcp_trace());
}

#[test]
fn multipath_result() {
    check("multipath_result.json", &common::multipath());
}

#[test]
fn result_record_multipath() {
    check("result_record_multipath.json", &common::multipath_record());
}

#[test]
fn ping_result() {
    check("ping_result.json", &common::ping());
}

#[test]
fn result_record_trace() {
    check("result_record_trace.json", &common::trace_record());
}

#[test]
fn result_record_ping() {
    check("result_record_ping.json", &common::ping_record());
}

#[test]
fn upload_batch() {
    check("upload_batch.json", &common::batch());
}

#[test]
fn upload_ack() {
    check("upload_ack.json", &common::ack());
}

#[test]
fn upload_ack_minimal() {
    check("upload_ack_minimal.json", &common::minimal_ack());
}

#[test]
fn flow_ids() {
    let flows = common::flows();
    let text = check_text("flow_ids.json", &flows);
    assert_eq!(serde_json::from_str::<Vec<FlowId>>(&text).unwrap(), flows);
}

/// The sample must exercise what the golden file promises to pin; if it is
/// ever trimmed, this says which shape went missing.
#[test]
fn sample_trace_covers_every_reply_shape() {
    let trace = common::trace();
    let replies: Vec<_> = trace.replies().collect();
    let probes = trace.hops.iter().flat_map(|h| &h.probes);
    assert!(trace.hops.len() >= 3, "several hops");
    assert!(probes.clone().any(|p| p.reply.is_none()), "a silent probe");
    assert!(
        replies
            .iter()
            .any(|r| r.icmp_type == Some(11) && r.quoted_ttl == Some(1)),
        "time exceeded quoting TTL 1"
    );
    assert!(
        replies.iter().any(|r| r.mpls_labels.len() == 2),
        "two MPLS labels"
    );
    let last = replies.last().unwrap();
    assert_eq!(
        (last.address, last.icmp_type),
        (trace.target, Some(0)),
        "ends with the target's echo reply"
    );
    assert!(!trace.annotations.is_empty(), "annotations");
}

#[test]
fn a_changed_serialization_fails_with_instructions() {
    let golden = serde_json::to_string_pretty(&common::ping()).unwrap() + "\n";
    let mut changed = common::ping();
    changed.rtts_us[1] += 1;
    let actual = serde_json::to_string_pretty(&changed).unwrap() + "\n";
    let message = compare("ping_result.json", &golden, &actual).unwrap_err();
    assert!(message.contains("first at line 14"), "{message}");
    assert!(message.contains("golden:     215500"), "{message}");
    assert!(message.contains("UPDATE_GOLDEN=1"), "{message}");
    assert!(compare("x", &golden, &golden).is_ok());
    assert!(compare("x", &golden, "").unwrap_err().contains("line 1"));
}
