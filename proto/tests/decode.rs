//! `decode` end to end: round trips, the versioning rule, unknown fields,
//! and that every kind of bad input is refused with the path of the field
//! at fault.

mod common;

use std::fmt::Debug;

use nkpath_proto::{
    AnnotationSource, DecodeError, FlowId, MplsLabel, PingResult, Protocol, ResultRecord,
    SchemaVersion, StopReason, TraceResult, UploadAck, UploadBatch, Validate, Versioned, decode,
    decode_slice,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

/// Replaces the value at a JSON pointer (`/hops/2/ttl`).
fn set(doc: &mut Value, pointer: &str, new: Value) {
    *doc.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("no {pointer} in the sample")) = new;
}

/// Adds a field to the object at a JSON pointer ("" for the root).
fn add_field(doc: &mut Value, pointer: &str, name: &str, new: Value) {
    doc.pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {pointer:?} in the sample"))
        .insert(name.into(), new);
}

fn decode_value<T: Versioned + DeserializeOwned>(doc: &Value) -> Result<T, DecodeError> {
    decode(&doc.to_string())
}

fn expect_json_error<T: Versioned + DeserializeOwned + Debug>(
    text: &str,
    path: &str,
    message: &str,
) {
    match decode::<T>(text) {
        Err(e @ DecodeError::Json { .. }) => {
            assert_eq!(e.field(), path, "{e}");
            assert!(e.to_string().contains(message), "{e}");
        }
        other => panic!("expected a JSON error at {path:?}, got {other:?}"),
    }
}

fn expect_field_error<T: Versioned + DeserializeOwned + Debug>(doc: &Value, field: &str) {
    match decode_value::<T>(doc) {
        Err(DecodeError::Field { field: found, .. }) => assert_eq!(found, field),
        other => panic!("expected an error on {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------- round trips

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, value, "{text}");
}

fn round_trip_document<T: Serialize + DeserializeOwned + Versioned + PartialEq + Debug>(value: &T) {
    round_trip(value);
    let text = serde_json::to_string(value).unwrap();
    assert_eq!(&decode::<T>(&text).unwrap(), value);
    assert_eq!(&decode_slice::<T>(text.as_bytes()).unwrap(), value);
}

#[test]
fn every_document_round_trips() {
    let udp = TraceResult {
        protocol: Protocol::Udp,
        flow: FlowId::Udp {
            src_port: 33_434,
            dst_port: 33_435,
        },
        stop_reason: StopReason::GapLimit,
        ..common::trace()
    };
    round_trip_document(&common::trace());
    round_trip_document(&common::tcp_trace());
    round_trip_document(&udp);
    round_trip_document(&common::ping());
    round_trip_document(&common::trace_record());
    round_trip_document(&common::ping_record());
    round_trip_document(&ResultRecord::from(udp));
    round_trip_document(&common::batch());
    round_trip_document(&common::ack());
    round_trip_document(&common::minimal_ack());
}

#[test]
fn every_part_round_trips() {
    let trace = common::trace();
    for flow in common::flows() {
        round_trip(&flow);
    }
    round_trip(&trace.params);
    round_trip(&trace.hops);
    round_trip(&trace.hops[2].probes[0].reply);
    round_trip(&trace.hops[2].probes[0].reply.as_ref().unwrap().mpls_labels);
    round_trip(&trace.annotations);
    round_trip(&common::ack().refused);
    round_trip(&SchemaVersion::new(1, 7));
    for protocol in [Protocol::Icmp, Protocol::Udp, Protocol::Tcp] {
        round_trip(&protocol);
        assert_eq!(to_value(&protocol), json!(protocol.to_string()));
    }
    for source in [AnnotationSource::Ptr, AnnotationSource::Cymru] {
        round_trip(&source);
    }
}

#[test]
fn stop_reasons_have_snake_case_names() {
    let names = [
        (StopReason::Reached, "reached"),
        (StopReason::Unreachable, "unreachable"),
        (StopReason::GapLimit, "gap_limit"),
        (StopReason::MaxTtl, "max_ttl"),
        (StopReason::ProbeBudget, "probe_budget"),
        (StopReason::TimeBudget, "time_budget"),
        (StopReason::Cancelled, "cancelled"),
    ];
    for (reason, name) in names {
        assert_eq!(to_value(&reason), json!(name));
        round_trip(&reason);
    }
}

/// The collector reads the envelope first and each result on its own, so
/// that one bad result is refused without refusing its batch.
#[test]
fn batch_envelope_decodes_with_raw_results() {
    let mut doc = to_value(&common::batch());
    let results = doc["results"].as_array_mut().unwrap();
    let mut bad = results[1].clone();
    set(&mut bad, "/received", json!(9));
    results.push(bad);
    let text = doc.to_string();

    let batch: UploadBatch<Box<RawValue>> = decode(&text).unwrap();
    assert_eq!(batch.batch_id, common::BATCH_ID);
    assert_eq!(batch.results.len(), 3);
    let decoded: Vec<_> = batch
        .results
        .iter()
        .map(|raw| decode::<ResultRecord>(raw.get()))
        .collect();
    assert_eq!(decoded[0].as_ref().unwrap(), &common::trace_record());
    assert_eq!(decoded[1].as_ref().unwrap(), &common::ping_record());
    assert_eq!(decoded[2].as_ref().unwrap_err().field(), "received");

    let batch: UploadBatch<Value> = decode(&text).unwrap();
    assert_eq!(batch.results.len(), 3);
    // The envelope alone still has its rules.
    let mut empty = to_value(&common::batch());
    set(&mut empty, "/results", json!([]));
    expect_field_error::<UploadBatch<Box<RawValue>>>(&empty, "results");
}

// ------------------------------------------------------------------ versions

#[test]
fn future_minor_version_with_new_fields_decodes() {
    let mut trace = to_value(&common::trace());
    set(&mut trace, "/schema_version", json!("1.7"));
    add_field(&mut trace, "", "jitter_us", json!(42));
    add_field(
        &mut trace,
        "/hops/2/probes/0/reply",
        "asn_hint",
        json!(4837),
    );
    let decoded: TraceResult = decode_value(&trace).unwrap();
    assert_eq!(decoded.schema_version, SchemaVersion::new(1, 7));
    assert_eq!(
        decoded,
        TraceResult {
            schema_version: SchemaVersion::new(1, 7),
            ..common::trace()
        }
    );

    let mut batch = to_value(&common::batch());
    set(&mut batch, "/schema_version", json!("1.7"));
    set(&mut batch, "/results/1/schema_version", json!("1.3"));
    let decoded: UploadBatch = decode_value(&batch).unwrap();
    assert_eq!(decoded.schema_version, SchemaVersion::new(1, 7));

    let mut ack = to_value(&common::ack());
    set(&mut ack, "/schema_version", json!("1.1"));
    add_field(&mut ack, "", "retry_after_s", json!(30));
    assert!(decode_value::<UploadAck>(&ack).is_ok());
}

#[test]
fn other_major_versions_are_refused_before_anything_else() {
    for version in ["2.0", "0.9", "65535.0"] {
        let mut doc = to_value(&common::trace_record());
        set(&mut doc, "/schema_version", json!(version));
        let err = decode_value::<ResultRecord>(&doc).unwrap_err();
        match &err {
            DecodeError::UnsupportedMajor { found } => assert_eq!(found.to_string(), version),
            other => panic!("{version}: {other:?}"),
        }
        assert_eq!(err.field(), "schema_version");
        assert!(err.to_string().contains("this build reads 1.x"), "{err}");
    }
    // A 2.0 document may look nothing like 1.0: it must be refused for its
    // version, not for its shape.
    let v2 = json!({"schema_version": "2.0", "kind": "trace", "hops": "compressed"});
    assert!(matches!(
        decode_value::<ResultRecord>(&v2),
        Err(DecodeError::UnsupportedMajor { .. })
    ));
}

#[test]
fn malformed_or_missing_schema_version_is_refused() {
    for bad in [
        json!("1"),
        json!("x.y"),
        json!("1.0.0"),
        json!("1.0-beta"),
        json!(""),
        json!(1.0),
        json!(null),
        json!({"major": 1}),
    ] {
        let mut doc = to_value(&common::ping());
        set(&mut doc, "/schema_version", bad.clone());
        expect_field_error::<PingResult>(&doc, "schema_version");
    }
    let mut doc = to_value(&common::ack());
    doc.as_object_mut().unwrap().remove("schema_version");
    expect_field_error::<UploadAck>(&doc, "schema_version");
    let err = decode_value::<UploadAck>(&doc).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn results_nested_in_a_batch_are_version_checked_too() {
    let mut doc = to_value(&common::batch());
    set(&mut doc, "/results/1/schema_version", json!("2.0"));
    expect_field_error::<UploadBatch>(&doc, "results[1].schema_version");
}

#[test]
fn validate_refuses_other_majors_built_in_memory() {
    let trace = TraceResult {
        schema_version: SchemaVersion::new(2, 0),
        ..common::trace()
    };
    assert_eq!(trace.validate().unwrap_err().field, "schema_version");
}

// ------------------------------------------------------------ unknown fields

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let mut trace = to_value(&common::trace());
    for pointer in [
        "",
        "/flow",
        "/params",
        "/hops/0",
        "/hops/1/probes/0",
        "/hops/2/probes/0/reply",
        "/hops/2/probes/0/reply/mpls_labels/1",
        "/annotations/0",
    ] {
        add_field(
            &mut trace,
            pointer,
            "added_in_1_1",
            json!({"nested": [1, 2]}),
        );
    }
    assert_eq!(
        decode_value::<TraceResult>(&trace).unwrap(),
        common::trace()
    );

    let mut batch = to_value(&common::batch());
    add_field(&mut batch, "", "compression", json!("none"));
    add_field(&mut batch, "/results/0", "note", json!(null));
    add_field(&mut batch, "/results/1", "loss", json!(0.25));
    assert_eq!(
        decode_value::<UploadBatch>(&batch).unwrap(),
        common::batch()
    );

    let mut ack = to_value(&common::ack());
    add_field(&mut ack, "/refused/0", "code", json!("bad_ttl"));
    assert_eq!(decode_value::<UploadAck>(&ack).unwrap(), common::ack());
}

/// JSON objects are unordered: a record whose `kind` is not its first key
/// (as jq or a database may write it) decodes the same.
#[test]
fn records_decode_whatever_the_key_order() {
    for record in [common::trace_record(), common::ping_record()] {
        let mut doc = to_value(&record);
        let object = doc.as_object_mut().unwrap();
        let kind = object.remove("kind").unwrap();
        object.insert("kind".into(), kind);
        let text = doc.to_string();
        assert!(!text.starts_with(r#"{"kind""#), "{text}");
        assert_eq!(decode::<ResultRecord>(&text).unwrap(), record);
    }
}

// --------------------------------------------------- JSON and type errors

#[test]
fn wrong_types_name_the_field() {
    let mut trace = to_value(&common::trace());
    set(&mut trace, "/hops/2/probes/0/reply/rtt_us", json!("fast"));
    let text = trace.to_string();
    let path = "hops[2].probes[0].reply.rtt_us";
    expect_json_error::<TraceResult>(&text, path, "invalid type: string \"fast\"");

    // Through the "kind" tag (first, as serde writes it, so the record is
    // streamed) and inside a batch the path survives.
    let break_rtt = |text: String| text.replacen("\"rtt_us\":31870", "\"rtt_us\":-5", 1);
    let record = break_rtt(serde_json::to_string(&common::trace_record()).unwrap());
    assert!(record.starts_with(r#"{"kind":"trace""#), "{record}");
    expect_json_error::<ResultRecord>(&record, path, "invalid value: integer `-5`");
    let batch = break_rtt(serde_json::to_string(&common::batch()).unwrap());
    expect_json_error::<UploadBatch>(
        &batch,
        "results[0].hops[2].probes[0].reply.rtt_us",
        "invalid value: integer `-5`",
    );

    for (pointer, bad, path) in [
        ("/flow/checksum", json!(70_000), "flow.checksum"),
        ("/flow/protocol", json!("sctp"), "flow.protocol"),
        ("/stop_reason", json!("teleported"), "stop_reason"),
        ("/started_at", json!("yesterday"), "started_at"),
        ("/result_id", json!("not-a-uuid"), "result_id"),
        ("/source", json!("175.45.176.256"), "source"),
        ("/hops/0/ttl", json!(256), "hops[0].ttl"),
        (
            "/hops/2/probes/0/reply/mpls_labels/0/label",
            json!(-1),
            "hops[2].probes[0].reply.mpls_labels[0].label",
        ),
        (
            "/annotations/2/source",
            json!("whois"),
            "annotations[2].source",
        ),
        ("/hops/1/probes", json!({}), "hops[1].probes"),
    ] {
        let mut doc = to_value(&common::trace());
        set(&mut doc, pointer, bad);
        expect_json_error::<TraceResult>(&doc.to_string(), path, "");
    }

    let mut record = to_value(&common::trace_record());
    set(&mut record, "/kind", json!("traceroute"));
    expect_json_error::<ResultRecord>(&record.to_string(), "kind", "unknown variant");
}

#[test]
fn missing_fields_name_their_parent() {
    let mut trace = to_value(&common::trace());
    trace["hops"][1].as_object_mut().unwrap().remove("ttl");
    expect_json_error::<TraceResult>(&trace.to_string(), "hops[1]", "missing field `ttl`");

    let mut record = to_value(&common::ping_record());
    record.as_object_mut().unwrap().remove("kind");
    expect_json_error::<ResultRecord>(&record.to_string(), "", "missing field `kind`");
}

/// Without the tag first the record is buffered, and the path must still
/// reach all the way in: `serde_json::Value` sorts keys, so this is what a
/// result that went through a `Value` looks like.
#[test]
fn reordered_record_errors_keep_the_full_path() {
    let mut record = to_value(&common::trace_record());
    set(&mut record, "/hops/2/probes/0/reply/rtt_us", json!("fast"));
    let text = record.to_string();
    assert!(text.starts_with(r#"{"agent_id""#), "{text}");
    let path = "hops[2].probes[0].reply.rtt_us";
    expect_json_error::<ResultRecord>(&text, path, "invalid type: string \"fast\"");

    // Buffered inside buffered: the flow in a reordered record.
    let mut batch = to_value(&common::batch());
    set(&mut batch, "/results/0/flow/checksum", json!(-1));
    expect_json_error::<UploadBatch>(
        &batch.to_string(),
        "results[0].flow.checksum",
        "invalid value: integer `-1`",
    );
    set(&mut batch, "/results/0/kind", json!("traceroute"));
    expect_json_error::<UploadBatch>(&batch.to_string(), "results[0].kind", "unknown variant");

    // Outside `decode` the inner path goes into the message.
    let err = serde_json::from_str::<ResultRecord>(&text).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{path}: invalid type")),
        "{err}"
    );
}

#[test]
fn malformed_json_says_where_it_breaks() {
    let text = serde_json::to_string(&common::trace()).unwrap();
    // A broken number inside the third hop's reply.
    let broken = text.replacen("\"rtt_us\":31870", "\"rtt_us\":-x", 1);
    let err = decode::<TraceResult>(&broken).unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }), "{err:?}");
    assert_eq!(err.field(), "hops[2].probes[0].reply.rtt_us", "{err}");

    let err = decode::<TraceResult>(&text[..text.len() - 1]).unwrap_err();
    assert!(err.to_string().contains("EOF"), "{err}");

    for (text, message) in [
        ("", "EOF"),
        ("hello", "expected value"),
        ("[]", "invalid length 0"),
        ("\"1.0\"", "invalid type: string"),
        ("{\"schema_version\": \"1.0\",}", "trailing comma"),
    ] {
        let err = decode::<PingResult>(text).unwrap_err();
        assert!(matches!(err, DecodeError::Json { .. }), "{text}: {err:?}");
        assert!(err.to_string().contains(message), "{text}: {err}");
    }

    let trailing = serde_json::to_string(&common::ping()).unwrap() + " {}";
    let err = decode::<PingResult>(&trailing).unwrap_err();
    assert!(err.to_string().contains("trailing characters"), "{err}");

    let err = decode_slice::<PingResult>(b"{\"schema_version\": \"1.\xff\"}").unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }), "{err:?}");
}

#[test]
fn duplicate_fields_are_refused() {
    let text = serde_json::to_string(&common::ping()).unwrap();
    let doubled = text.replacen("\"sent\":4", "\"sent\":4,\"sent\":400", 1);
    expect_json_error::<PingResult>(&doubled, "", "duplicate field `sent`");
}

// ----------------------------------------------------------- rule violations

type Case<T> = (&'static str, fn(&mut T));

/// Applies each mutation to the sample, decodes it, and checks that the
/// error names `field`. Reports every failing case at once.
fn check_rules<T>(sample: &T, cases: &[Case<T>])
where
    T: Clone + Serialize + DeserializeOwned + Versioned + Debug,
{
    let mut failures = Vec::new();
    for (i, (field, mutate)) in cases.iter().enumerate() {
        let mut value = sample.clone();
        mutate(&mut value);
        match decode::<T>(&serde_json::to_string(&value).unwrap()) {
            Err(DecodeError::Field {
                field: found,
                reason,
            }) if found == *field => assert!(!reason.is_empty()),
            other => failures.push(format!("case {i} ({field}): {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn reply(trace: &mut TraceResult, hop: usize, probe: usize) -> &mut nkpath_proto::Reply {
    trace.hops[hop].probes[probe].reply.as_mut().unwrap()
}

#[test]
fn trace_rules_name_the_field() {
    check_rules(
        &common::trace(),
        &[
            ("agent_id", |t| t.agent_id.clear()),
            ("agent_id", |t| t.agent_id = "a".repeat(65)),
            ("agent_id", |t| t.agent_id = "vp fra1".into()),
            ("agent_id", |t| t.agent_id = "vp/../fra1".into()),
            ("agent_id", |t| t.agent_id = "vp-frå".into()),
            ("agent_version", |t| t.agent_version.clear()),
            ("agent_version", |t| t.agent_version = "1".repeat(65)),
            ("flow.protocol", |t| {
                t.flow = FlowId::Udp {
                    src_port: 1,
                    dst_port: 2,
                }
            }),
            ("flow.protocol", |t| t.protocol = Protocol::Tcp),
            ("params.attempts", |t| t.params.attempts = 0),
            ("params.attempts", |t| t.params.attempts = 11),
            ("params.timeout_ms", |t| t.params.timeout_ms = 0),
            ("params.timeout_ms", |t| t.params.timeout_ms = 60_001),
            ("params.gap_limit", |t| t.params.gap_limit = 0),
            ("params.gap_limit", |t| t.params.gap_limit = 33),
            ("params.max_ttl", |t| t.params.max_ttl = 0),
            ("params.max_ttl", |t| t.params.max_ttl = 65),
            ("params.first_ttl", |t| t.params.first_ttl = 0),
            ("params.first_ttl", |t| t.params.first_ttl = 31),
            ("params.pps", |t| t.params.pps = 0),
            ("params.pps", |t| t.params.pps = 1001),
            ("params.per_prefix_pps", |t| t.params.per_prefix_pps = 0),
            ("params.per_prefix_pps", |t| t.params.per_prefix_pps = 1001),
            ("hops[0].ttl", |t| t.hops[0].ttl = 0),
            ("hops[4].ttl", |t| t.hops[4].ttl = 31),
            ("hops[0].ttl", |t| t.params.first_ttl = 2),
            ("hops[4].ttl", |t| t.params.max_ttl = 4),
            ("hops[2].ttl", |t| t.hops[2].ttl = 2),
            ("hops[1].ttl", |t| t.hops.swap(0, 1)),
            ("hops[3].probes", |t| t.hops[3].probes.clear()),
            ("hops[0].probes[0].attempt", |t| {
                t.hops[0].probes[0].attempt = 0;
            }),
            ("hops[0].probes[1].attempt", |t| {
                t.hops[0].probes[1].attempt = 4;
            }),
            ("hops[0].probes[1].attempt", |t| {
                t.hops[0].probes[1].attempt = 1;
            }),
            ("hops[0].probes[1].attempt", |t| t.hops[0].probes.swap(0, 1)),
            ("hops[0].probes[1].attempt", |t| t.params.attempts = 1),
            ("hops[3].probes[0].reply.mpls_labels[0].label", |t| {
                reply(t, 3, 0).mpls_labels = vec![MplsLabel {
                    label: 1 << 20,
                    tc: 0,
                    bottom_of_stack: true,
                    ttl: 1,
                }];
            }),
            ("hops[2].probes[0].reply.mpls_labels[1].label", |t| {
                reply(t, 2, 0).mpls_labels[1].label = u32::MAX;
            }),
            ("hops[2].probes[0].reply.mpls_labels[1].tc", |t| {
                reply(t, 2, 0).mpls_labels[1].tc = 8;
            }),
            ("hops[0].probes[0].reply.icmp_code", |t| {
                reply(t, 0, 0).icmp_code = None;
            }),
            ("hops[0].probes[0].reply.icmp_code", |t| {
                reply(t, 0, 0).icmp_type = None;
                reply(t, 0, 0).tcp_flags = Some(0x12);
            }),
            ("hops[1].probes[1].reply.tcp_flags", |t| {
                reply(t, 1, 1).tcp_flags = Some(0x04);
            }),
            ("hops[4].probes[0].reply.icmp_type", |t| {
                let r = reply(t, 4, 0);
                (r.icmp_type, r.icmp_code) = (None, None);
            }),
        ],
    );
}

#[test]
fn tcp_reply_rules_name_the_field() {
    check_rules(
        &common::tcp_trace(),
        &[
            ("hops[1].probes[0].reply.quoted_ttl", |t| {
                reply(t, 1, 0).quoted_ttl = Some(1);
            }),
            ("hops[1].probes[0].reply.mpls_labels", |t| {
                reply(t, 1, 0).mpls_labels = vec![MplsLabel {
                    label: 3,
                    tc: 0,
                    bottom_of_stack: true,
                    ttl: 1,
                }];
            }),
            ("hops[0].probes[0].attempt", |t| {
                t.hops[0].probes[0].attempt = 2;
            }),
            ("hops[0].inherited.flow.protocol", |t| {
                if let Some(from) = t.hops[0].inherited.as_mut() {
                    from.flow = FlowId::Udp {
                        src_port: 40_001,
                        dst_port: 33434,
                    };
                }
            }),
        ],
    );
}

/// A 1.0 document (no `inherited`) still decodes into this build, every hop
/// observed; a 1.1 hop's `inherited` is ignored by a reader that ignores
/// unknown fields, as a 1.0 reader does.
#[test]
fn hops_without_inherited_decode_as_observed() {
    let mut doc = to_value(&common::tcp_trace());
    set(&mut doc, "/schema_version", Value::from("1.0"));
    doc["hops"][0].as_object_mut().unwrap().remove("inherited");
    let trace: TraceResult = decode_value(&doc).unwrap();
    assert!(trace.hops.iter().all(nkpath_proto::Hop::is_observed));
    let inherited = common::tcp_trace();
    assert!(
        !inherited.hops[0].is_observed(),
        "the sample inherits hop 1"
    );
    assert!(inherited.hops[1].is_observed());
}

#[test]
fn ping_rules_name_the_field() {
    check_rules(
        &common::ping(),
        &[
            ("received", |p| p.received = 5),
            ("received", |p| p.sent = 0),
            ("rtts_us", |p| p.rtts_us.push(1)),
            ("rtts_us", |p| p.rtts_us.clear()),
            ("agent_id", |p| p.agent_id = "vp:fra1".into()),
            ("agent_version", |p| p.agent_version.clear()),
        ],
    );
}

#[test]
fn batch_rules_name_the_field() {
    check_rules(
        &common::batch(),
        &[
            ("results", |b| b.results.clear()),
            ("agent_id", |b| b.agent_id.clear()),
            ("agent_version", |b| b.agent_version = "v".repeat(100)),
            ("results[1].received", |b| {
                let ResultRecord::Ping(p) = &mut b.results[1] else {
                    unreachable!()
                };
                p.received = 7;
            }),
            (
                "results[0].hops[2].probes[0].reply.mpls_labels[0].label",
                |b| {
                    let ResultRecord::Trace(t) = &mut b.results[0] else {
                        unreachable!()
                    };
                    reply(t, 2, 0).mpls_labels[0].label = 1 << 20;
                },
            ),
            ("results[0].params.first_ttl", |b| {
                let ResultRecord::Trace(t) = &mut b.results[0] else {
                    unreachable!()
                };
                t.params.first_ttl = 64;
            }),
        ],
    );
}

#[test]
fn batch_size_is_capped() {
    let mut batch = common::batch();
    batch.results = vec![common::ping_record(); 10_000];
    let text = serde_json::to_string(&batch).unwrap();
    assert_eq!(decode::<UploadBatch>(&text).unwrap().results.len(), 10_000);

    batch.results.push(common::ping_record());
    let text = serde_json::to_string(&batch).unwrap();
    let err = decode::<UploadBatch>(&text).unwrap_err();
    assert_eq!(err.field(), "results", "{err}");
    assert!(err.to_string().contains("10001 results"), "{err}");
}

#[test]
fn ack_targets_must_be_canonical_prefixes() {
    let bad = [
        "175.45.176.1/22",
        "175.45.176.0/33",
        "175.45.176.0/022",
        "175.45.176.0/+22",
        "175.45.176.0",
        "175.45.176.0/",
        "175.45.176/22",
        "::/0",
        "nk",
    ];
    for target in bad {
        let mut ack = to_value(&common::ack());
        set(&mut ack, "/targets/1", json!(target));
        expect_field_error::<UploadAck>(&ack, "targets[1]");
    }
    let mut ack = to_value(&common::ack());
    set(&mut ack, "/targets/1", json!("175.45.176.1/22"));
    let err = decode_value::<UploadAck>(&ack).unwrap_err();
    assert!(
        err.to_string().contains("did you mean \"175.45.176.0/22\""),
        "{err}"
    );
    for good in ["0.0.0.0/0", "175.45.176.1/32", "175.45.178.0/23"] {
        let mut ack = to_value(&common::ack());
        set(&mut ack, "/targets/0", json!(good));
        assert!(decode_value::<UploadAck>(&ack).is_ok(), "{good}");
    }
}

#[test]
fn values_at_the_edges_of_their_ranges_are_accepted() {
    let mut trace = common::trace();
    trace.agent_id = "A-Za-z0-9._".repeat(6)[..64].to_owned();
    trace.params.attempts = 10;
    trace.params.timeout_ms = 60_000;
    trace.params.gap_limit = 32;
    trace.params.max_ttl = 64;
    trace.params.pps = 1000;
    trace.params.per_prefix_pps = 1000;
    trace.hops[4].ttl = 64;
    trace.hops[0].probes[1].attempt = 10;
    let labels = &mut reply(&mut trace, 2, 0).mpls_labels;
    labels[0].label = (1 << 20) - 1;
    labels[0].tc = 7;
    let text = serde_json::to_string(&trace).unwrap();
    assert_eq!(decode::<TraceResult>(&text).unwrap(), trace);

    let mut trace = common::trace();
    (trace.params.first_ttl, trace.params.max_ttl) = (5, 5);
    trace.hops.drain(..4);
    trace.validate().unwrap();

    let mut ping = common::ping();
    (ping.sent, ping.received, ping.rtts_us) = (0, 0, Vec::new());
    ping.validate().unwrap();
}

#[test]
fn error_messages_say_what_and_where() {
    let mut doc = to_value(&common::trace());
    set(
        &mut doc,
        "/hops/2/probes/0/reply/mpls_labels/0/label",
        json!(1 << 20),
    );
    assert_eq!(
        decode_value::<TraceResult>(&doc).unwrap_err().to_string(),
        "invalid hops[2].probes[0].reply.mpls_labels[0].label: 1048576 is outside 0..=1048575"
    );

    let mut doc = to_value(&common::trace());
    set(&mut doc, "/hops/0/ttl", json!("one"));
    assert_eq!(
        decode_value::<TraceResult>(&doc).unwrap_err().to_string(),
        format!(
            "invalid JSON at hops[0].ttl: invalid type: string \"one\", expected u8 at line 1 column {}",
            doc.to_string().find("\"one\"").unwrap() + 5
        )
    );

    let mut doc = to_value(&common::ping());
    set(&mut doc, "/schema_version", json!("2.1"));
    assert_eq!(
        decode_value::<PingResult>(&doc).unwrap_err().to_string(),
        "schema_version 2.1 is not supported: this build reads 1.x; upgrade nkpath to read it"
    );

    set(&mut doc, "/schema_version", json!("1"));
    assert_eq!(
        decode_value::<PingResult>(&doc).unwrap_err().to_string(),
        "invalid schema_version: \"1\" is not a schema version: expected \"MAJOR.MINOR\" like \"1.0\""
    );
}

// ------------------------------------------------------------ times and sizes

/// Every time of a document must be writable in UTC as RFC 3339 (years
/// 0000..=9999): `9999-12-31T23:59:59-23:59` is year 10000 in UTC, and a
/// reader that converts it to UTC (to store or compare it) must not fail
/// later than decoding.
#[test]
fn times_beyond_year_9999_or_before_year_0_in_utc_are_refused() {
    let cases: [(&str, &str); 2] = [
        ("9999-12-31T23:59:59-23:59", "year 10000"),
        ("0000-01-01T00:00:00+00:01", "year -1"),
    ];
    for (time, what) in cases {
        let mut trace = to_value(&common::trace());
        set(&mut trace, "/started_at", json!(time));
        expect_field_error::<TraceResult>(&trace, "started_at");
        let err = decode_value::<TraceResult>(&trace).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");

        let mut trace = to_value(&common::trace());
        set(&mut trace, "/annotations/1/resolved_at", json!(time));
        expect_field_error::<TraceResult>(&trace, "annotations[1].resolved_at");

        let mut ping = to_value(&common::ping());
        set(&mut ping, "/started_at", json!(time));
        expect_field_error::<PingResult>(&ping, "started_at");

        let mut batch = to_value(&common::batch());
        set(&mut batch, "/sent_at", json!(time));
        expect_field_error::<UploadBatch>(&batch, "sent_at");
        // The envelope alone (as the collector decodes it) checks it too.
        expect_field_error::<UploadBatch<Box<RawValue>>>(&batch, "sent_at");

        let mut ack = to_value(&common::ack());
        set(&mut ack, "/received_at", json!(time));
        expect_field_error::<UploadAck>(&ack, "received_at");
    }
    // The extremes that are still years 0000 and 9999 in UTC pass.
    for time in ["9999-12-31T23:59:59+00:00", "0000-01-01T00:00:00-23:59"] {
        let mut trace = to_value(&common::trace());
        set(&mut trace, "/started_at", json!(time));
        decode_value::<TraceResult>(&trace).unwrap();
    }
}

#[test]
fn lists_and_strings_are_bounded() {
    use nkpath_proto::limits;
    let label = MplsLabel {
        label: 3,
        tc: 0,
        bottom_of_stack: false,
        ttl: 1,
    };
    let max_labels = *limits::MPLS_LABELS.end();
    let mut trace = common::trace();
    reply(&mut trace, 2, 0).mpls_labels = vec![label; max_labels];
    trace.validate().unwrap();
    reply(&mut trace, 2, 0).mpls_labels = vec![label; max_labels + 1];
    let err = trace.validate().unwrap_err();
    assert_eq!(err.field, "hops[2].probes[0].reply.mpls_labels");
    // The 200,000-label result of the issue.
    reply(&mut trace, 2, 0).mpls_labels = vec![label; 200_000];
    assert!(trace.validate().is_err());

    let max_annotations = *limits::ANNOTATIONS.end();
    let mut trace = common::trace();
    let one = trace.annotations[0].clone();
    trace.annotations = vec![one.clone(); max_annotations];
    trace.validate().unwrap();
    trace.annotations.push(one);
    assert_eq!(trace.validate().unwrap_err().field, "annotations");

    let mut trace = common::trace();
    let max_name = *limits::ANNOTATION_NAME_LEN.end();
    trace.annotations[0].name = Some("a".repeat(max_name));
    trace.validate().unwrap();
    trace.annotations[0].name = Some("a".repeat(max_name + 1));
    assert_eq!(trace.validate().unwrap_err().field, "annotations[0].name");

    let mut ping = common::ping();
    let max_sent = *limits::PING_SENT.end();
    ping.sent = max_sent;
    ping.validate().unwrap();
    ping.sent = max_sent + 1;
    assert_eq!(ping.validate().unwrap_err().field, "sent");
}

#[test]
fn only_imported_traces_carry_their_sources_stop_word() {
    // An agent's trace leaves the field out, and may not carry it.
    let agent = to_value(&common::trace());
    assert!(agent.get("source_stop").is_none());
    let mut claimed = agent.clone();
    add_field(&mut claimed, "", "source_stop", json!("COMPLETED"));
    expect_field_error::<TraceResult>(&claimed, "source_stop");

    // An imported one keeps the word as the source spells it.
    let imported = TraceResult {
        agent_id: "scamper:trace.warts".into(),
        source_stop: Some("COMPLETED".into()),
        ..common::trace()
    };
    round_trip_document(&imported);
    for bad in [json!(""), json!("NOT A WORD"), json!("X".repeat(33))] {
        let mut doc = to_value(&imported);
        set(&mut doc, "/source_stop", bad);
        expect_field_error::<TraceResult>(&doc, "source_stop");
    }
}

#[test]
fn multipath_rules_name_the_field() {
    use std::net::Ipv4Addr;
    check_rules(
        &common::multipath(),
        &[
            ("schema_version", |m| {
                m.schema_version = SchemaVersion::new(1, 2);
            }),
            ("params.confidence", |m| m.params.confidence = 90),
            ("params.max_probes", |m| m.params.max_probes = 0),
            ("params.max_seconds", |m| m.params.max_seconds = 0),
            ("params.first_ttl", |m| m.params.first_ttl = 31),
            ("flows[1].protocol", |m| {
                m.flows[1] = FlowId::Udp {
                    src_port: 1,
                    dst_port: 2,
                };
            }),
            ("hops[1].ttl", |m| m.hops[1].ttl = 1),
            ("hops[0].ttl", |m| m.hops[0].ttl = 0),
            ("hops[1].interfaces[1].address", |m| {
                m.hops[1].interfaces[1].address = m.hops[1].interfaces[0].address;
            }),
            ("hops[1].interfaces[1].reply.address", |m| {
                m.hops[1].interfaces[1].address = Ipv4Addr::new(192, 0, 2, 99);
            }),
            ("hops[1].interfaces[0].flows", |m| {
                m.hops[1].interfaces[0].flows = vec![0, 7];
            }),
            ("hops[1].interfaces[0].flows", |m| {
                m.hops[1].interfaces[0].flows = vec![2, 0];
            }),
            ("hops[2].silent_flows", |m| m.hops[2].silent_flows = vec![3]),
            ("hops[1].interfaces[0].reply.icmp_code", |m| {
                m.hops[1].interfaces[0].reply.as_mut().unwrap().icmp_code = None;
            }),
            ("links[1]", |m| m.links.swap(0, 1)),
            ("links[0].far_ttl", |m| m.links[0].far_ttl = 1),
            ("links[0].far", |m| {
                m.links[0].far = Ipv4Addr::new(192, 0, 2, 99);
            }),
            ("links[0].near", |m| {
                m.links[0].near = Ipv4Addr::new(192, 0, 2, 99);
            }),
            ("links[0].flows", |m| m.links[0].flows = vec![5]),
            ("source_stop", |m| m.source_stop = Some("COMPLETED".into())),
        ],
    );
}

#[test]
fn a_collector_before_1_3_stores_only_traces_and_pings() {
    let old = UploadAck {
        result_kinds: Vec::new(),
        ..common::ack()
    };
    assert!(old.accepts_kind("trace") && old.accepts_kind("ping"));
    assert!(!old.accepts_kind("multipath"));
    assert!(common::ack().accepts_kind("multipath"));
    // A 1.2 ack (no field) decodes as an older collector's.
    let mut doc = to_value(&common::ack());
    doc.as_object_mut().unwrap().remove("result_kinds");
    set(&mut doc, "/schema_version", json!("1.2"));
    let ack: UploadAck = decode_value(&doc).unwrap();
    assert!(!ack.accepts_kind("multipath"));
}
