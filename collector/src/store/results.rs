//! Results (`results`) and how uploaded ones arrived (`receipts`): the one shape a result is
//! stored in, the writes that store it and the rows readers get back.
//!
//! # The stored record shape (schema v7)
//!
//! Each result is one row of `results`:
//!
//! | column | holds |
//! |---|---|
//! | `json` | the result as a [`ResultRecord`] serialised by this build: tagged (`"kind"` first, so a reader takes serde's fast path), then the result's own fields in the order its type declares them, compact |
//! | `extra` | `NULL`, or the fields of the JSON as received that this build's types do not know (a newer minor version's, at any depth), as one JSON object from RFC 6901 JSON Pointers into `json` to their values: `{"/hops/3/new_field":7}` |
//! | `result_id`, `agent_id`, `round_id`, `target`, `source`, `protocol`, `kind` | copies for indexing |
//! | `started_at`, `received_at` | RFC 3339 UTC with six fraction digits, so text order is time order |
//!
//! Ingest and import normalise once ([`StoredRecord`]); readers decode `json` once, as a
//! [`ResultRecord`], whatever wrote the row: there is no second shape to probe for. So that an
//! agent upgraded before its collector loses nothing, `extra` keeps what this build cannot
//! read, up to [`EXTRA_BYTES`] per result; a result with more is refused
//! ([`ShapeError::TooManyUnknown`]). A received field that the canonical form lacks and whose
//! value is `null` or `[]` carries nothing (the canonical form leaves out optional fields at
//! those values, and fields a minor version adds are optional), so it is not kept.
//!
//! Schema v7 brought rows of older versions to this shape in place (see
//! [`super::migrations`]); a row that does not decode was left as it was, and readers skip it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use nkpath_proto::{DecodeError, ResultRecord, TraceResult, decode, timestamp};
use rusqlite::{OptionalExtension as _, params};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, DbError, WriteTx};

/// The most JSON of unknown fields kept beside one result (16 KiB).
pub const EXTRA_BYTES: usize = 16 << 10;

/// A result in the shape it is stored in: decoded, serialised canonically, and the fields
/// this build does not know set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    record: ResultRecord,
    json: String,
    extra: Option<String>,
}

/// Why a received result cannot be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// It does not decode or breaks a rule of the wire format.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// It carries more fields this build does not know than are kept.
    #[error(
        "{bytes} bytes of fields this collector does not know (the largest is {field}); at \
         most {EXTRA_BYTES} bytes of them are kept per result: upgrade the collector to the \
         agent's version"
    )]
    TooManyUnknown {
        /// The path of the largest unknown field, e.g. `hops[3].new_field`.
        field: String,
        /// The JSON of all the unknown fields, in bytes.
        bytes: usize,
    },
}

impl ShapeError {
    /// The path of the field at fault (empty for the result itself).
    pub fn field(&self) -> &str {
        match self {
            Self::Decode(e) => e.field(),
            Self::TooManyUnknown { field, .. } => field,
        }
    }
}

impl StoredRecord {
    /// A result as an agent uploads it: a tagged [`ResultRecord`].
    pub fn from_upload(text: &str) -> Result<Self, ShapeError> {
        let record = decode::<ResultRecord>(text)?;
        let json = serde_json::to_string(&record).map_err(json_error)?;
        if json == text {
            // What an agent of this version sends is byte for byte what this build writes:
            // no field can be unknown, and the received JSON need not be parsed again.
            return Ok(Self {
                record,
                json,
                extra: None,
            });
        }
        let received: Value = serde_json::from_str(text).map_err(json_error)?;
        Self::with_canonical(record, json, &received, Some(EXTRA_BYTES))
    }

    /// A line of nkpath JSON lines: a tagged [`ResultRecord`], or a bare [`TraceResult`]
    /// (the agent's survey output), told apart by the `"kind"` field.
    pub fn from_line(text: &str) -> Result<Self, ShapeError> {
        Self::from_line_keeping(text, Some(EXTRA_BYTES))
    }

    /// A result built by this collector (a converted public trace): checked by the rules of
    /// the wire format, as a reader will decode it.
    pub fn from_record(record: &ResultRecord) -> Result<Self, ShapeError> {
        let json = serde_json::to_string(record).map_err(json_error)?;
        let record = decode::<ResultRecord>(&json)?;
        Ok(Self {
            record,
            json,
            extra: None,
        })
    }

    /// [`StoredRecord::from_line`] with no limit on unknown fields: rows already stored are
    /// kept whole.
    pub(super) fn from_stored_row(text: &str) -> Result<Self, ShapeError> {
        Self::from_line_keeping(text, None)
    }

    fn from_line_keeping(text: &str, limit: Option<usize>) -> Result<Self, ShapeError> {
        let received: Value = serde_json::from_str(text).map_err(json_error)?;
        let record = if received.get("kind").is_some() {
            decode::<ResultRecord>(text)?
        } else {
            ResultRecord::Trace(decode::<TraceResult>(text)?)
        };
        Self::with_received(record, &received, limit)
    }

    fn with_received(
        record: ResultRecord,
        received: &Value,
        limit: Option<usize>,
    ) -> Result<Self, ShapeError> {
        let json = serde_json::to_string(&record).map_err(json_error)?;
        Self::with_canonical(record, json, received, limit)
    }

    /// The record with its canonical `json`, and the fields of `received` that it lacks set
    /// aside.
    fn with_canonical(
        record: ResultRecord,
        json: String,
        received: &Value,
        limit: Option<usize>,
    ) -> Result<Self, ShapeError> {
        let canonical = serde_json::to_value(&record).map_err(json_error)?;
        let mut unknown = Vec::new();
        collect_unknown(received, &canonical, &mut Vec::new(), &mut unknown);
        let extra = extra_json(&unknown, limit)?;
        Ok(Self {
            record,
            json,
            extra,
        })
    }

    /// The decoded result.
    pub fn record(&self) -> &ResultRecord {
        &self.record
    }

    /// The decoded result, taken.
    pub fn into_record(self) -> ResultRecord {
        self.record
    }

    /// The canonical JSON stored in `json`.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The unknown fields stored in `extra`, if any.
    pub fn extra(&self) -> Option<&str> {
        self.extra.as_deref()
    }
}

fn json_error(error: serde_json::Error) -> DecodeError {
    DecodeError::Json {
        path: String::new(),
        error,
    }
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// An unknown field: where, and its value.
struct Unknown {
    path: Vec<Step>,
    value: Value,
}

/// Adds to `out` every field of `received` that `canonical` lacks (objects compared key by
/// key, arrays element by element), except those that carry nothing.
fn collect_unknown(
    received: &Value,
    canonical: &Value,
    at: &mut Vec<Step>,
    out: &mut Vec<Unknown>,
) {
    match (received, canonical) {
        (Value::Object(received), Value::Object(canonical)) => {
            for (key, value) in received {
                at.push(Step::Key(key.clone()));
                match canonical.get(key) {
                    Some(known) => collect_unknown(value, known, at, out),
                    None if carries_nothing(value) => {}
                    None => out.push(Unknown {
                        path: at.clone(),
                        value: value.clone(),
                    }),
                }
                at.pop();
            }
        }
        (Value::Array(received), Value::Array(canonical)) => {
            for (i, (value, known)) in received.iter().zip(canonical).enumerate() {
                at.push(Step::Index(i));
                collect_unknown(value, known, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `null` and `[]`: what the canonical form writes as an absent optional field.
fn carries_nothing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// The `extra` column for `unknown`: `None` when empty, an error when over `limit`.
fn extra_json(unknown: &[Unknown], limit: Option<usize>) -> Result<Option<String>, ShapeError> {
    if unknown.is_empty() {
        return Ok(None);
    }
    let by_pointer: Map<String, Value> = unknown
        .iter()
        .map(|u| (json_pointer(&u.path), u.value.clone()))
        .collect();
    let json = Value::Object(by_pointer).to_string();
    if limit.is_some_and(|limit| json.len() > limit) {
        let largest = unknown
            .iter()
            .max_by_key(|u| u.value.to_string().len())
            .expect("not empty");
        return Err(ShapeError::TooManyUnknown {
            field: dotted_path(&largest.path),
            bytes: json.len(),
        });
    }
    Ok(Some(json))
}

/// RFC 6901: `/hops/3/new_field`, with `~` and `/` in keys escaped as `~0` and `~1`.
fn json_pointer(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        out.push('/');
        match step {
            Step::Key(key) => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => {
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

/// The path as refusals name fields: `hops[3].new_field`.
fn dotted_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                let _ = write!(out, ".{key}");
            }
            Step::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A stored row's JSON with its unknown fields put back where they were received: the
/// result as its agent sent it, as data (key order and number spelling aside).
pub fn with_extra(json: &str, extra: Option<&str>) -> serde_json::Result<Value> {
    let mut value: Value = serde_json::from_str(json)?;
    let Some(extra) = extra else {
        return Ok(value);
    };
    let extra: Map<String, Value> = serde_json::from_str(extra)?;
    for (pointer, field) in extra {
        let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", &pointer));
        if let Some(Value::Object(object)) = value.pointer_mut(parent) {
            object.insert(key.replace("~1", "/").replace("~0", "~"), field);
        }
    }
    Ok(value)
}

/// How an uploaded result arrived: one row of `receipts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt<'a> {
    /// The result.
    pub result_id: Uuid,
    /// The agent whose token uploaded it.
    pub agent: &'a str,
    /// The upload batch.
    pub batch_id: Uuid,
    /// The batch's `sent_at` (the agent's clock).
    pub sent_at: OffsetDateTime,
    /// The collector's clock when the batch arrived.
    pub received_at: OffsetDateTime,
    /// `received_at - sent_at`, in milliseconds.
    pub clock_offset_ms: i64,
    /// Whether that offset is over the limit.
    pub clock_flagged: bool,
}

/// A result already stored under an id, as an upload finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingResult {
    /// The agent it was stored for.
    pub agent_id: String,
    json: String,
    extra: Option<String>,
}

impl ExistingResult {
    /// Whether it holds the same result as `stored` (a retry), unknown fields included.
    pub fn holds(&self, stored: &StoredRecord) -> bool {
        if self.extra.as_deref() != stored.extra() {
            return false;
        }
        // Written by this build the canonical texts are equal; by another, the records.
        self.json == stored.json()
            || decode::<ResultRecord>(&self.json).is_ok_and(|r| &r == stored.record())
    }
}

/// A stored row as readers get it: decode `json` as a [`ResultRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The result's id, as stored.
    pub result_id: String,
    /// The canonical JSON (or, for a row no version could decode, what was stored).
    pub json: String,
}

/// A kind of stored result, as the `kind` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Traceroutes.
    Trace,
    /// Pings.
    Ping,
    /// Multipath (MDA) traces.
    Multipath,
}

impl Kind {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Ping => "ping",
            Self::Multipath => "multipath",
        }
    }
}

impl WriteTx<'_> {
    /// Stores a result received at `received_at`. Returns `false` when a result with the same
    /// id is already stored (it is left unchanged).
    pub fn insert_result(
        &self,
        stored: &StoredRecord,
        received_at: OffsetDateTime,
    ) -> Result<bool, DbError> {
        let record = stored.record();
        let (protocol, source): (&str, Ipv4Addr) = match record {
            ResultRecord::Trace(t) => (t.protocol.as_str(), t.source),
            // Pings are ICMP echo.
            ResultRecord::Ping(p) => ("icmp", p.source),
            ResultRecord::Multipath(m) => (m.protocol.as_str(), m.source),
        };
        let changed = self
            .sql()
            .prepare_cached(
                "INSERT INTO results (result_id, agent_id, round_id, target, source, protocol,
                                      started_at, received_at, json, kind, extra)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (result_id) DO NOTHING",
            )?
            .execute(params![
                record.result_id().hyphenated().to_string(),
                record.agent_id(),
                record.round_id().hyphenated().to_string(),
                record.target().to_string(),
                source.to_string(),
                protocol,
                timestamp::stored(record.started_at()),
                timestamp::stored(received_at),
                stored.json(),
                record.kind(),
                stored.extra(),
            ])?;
        Ok(changed == 1)
    }

    /// The result stored under `result_id`, if any.
    pub fn existing_result(&self, result_id: Uuid) -> Result<Option<ExistingResult>, DbError> {
        Ok(self
            .sql()
            .prepare_cached("SELECT agent_id, json, extra FROM results WHERE result_id = ?1")?
            .query_row([result_id.hyphenated().to_string()], |r| {
                Ok(ExistingResult {
                    agent_id: r.get(0)?,
                    json: r.get(1)?,
                    extra: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Records how an uploaded result arrived (once, with the result).
    pub fn insert_receipt(&self, receipt: &Receipt<'_>) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT INTO receipts (result_id, agent, batch_id, sent_at, received_at,
                                       clock_offset_ms, clock_flagged)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                receipt.result_id.hyphenated().to_string(),
                receipt.agent,
                receipt.batch_id.hyphenated().to_string(),
                timestamp::stored(receipt.sent_at),
                timestamp::stored(receipt.received_at),
                receipt.clock_offset_ms,
                receipt.clock_flagged,
            ])?;
        Ok(())
    }
}

impl Db {
    /// The stored results of `kind` started in `since..=until` (either bound open when
    /// `None`), oldest first, then by id.
    pub fn stored_results(
        &self,
        kind: Kind,
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<Vec<StoredRow>, DbError> {
        let since = since.map_or_else(String::new, timestamp::stored);
        let until = until.map_or_else(|| "~".to_owned(), timestamp::stored);
        let mut stmt = self.conn.prepare(
            "SELECT result_id, json FROM results
             WHERE kind = ?1 AND started_at >= ?2 AND started_at <= ?3
             ORDER BY started_at, result_id",
        )?;
        let rows = stmt.query_map(params![kind.as_str(), since, until], |r| {
            Ok(StoredRow {
                result_id: r.get(0)?,
                json: r.get(1)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace_text() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/tests/golden/trace_result.json"
        ))
        .unwrap()
    }

    #[test]
    fn bare_and_tagged_lines_store_the_same_canonical_tagged_json() {
        let bare = trace_text();
        let mut tagged: Value = serde_json::from_str(&bare).unwrap();
        tagged["kind"] = "trace".into();
        let from_bare = StoredRecord::from_line(&bare).unwrap();
        let from_tagged = StoredRecord::from_upload(&tagged.to_string()).unwrap();
        assert_eq!(from_bare, from_tagged);
        assert!(
            from_bare
                .json()
                .starts_with(r#"{"kind":"trace","schema_version":"#)
        );
        assert_eq!(from_bare.extra(), None);
        assert!(
            StoredRecord::from_upload(&bare).is_err(),
            "uploads are tagged"
        );
    }

    #[test]
    fn an_upload_in_canonical_form_is_stored_as_sent_and_any_other_spelling_the_same() {
        let canonical = StoredRecord::from_line(&trace_text()).unwrap();
        let as_an_agent_sends_it = StoredRecord::from_upload(canonical.json()).unwrap();
        assert_eq!(as_an_agent_sends_it.json(), canonical.json());
        assert_eq!(as_an_agent_sends_it.extra(), None);
        // The same result spelled otherwise (spaces, another key order) is stored the same.
        let respelled: Value = serde_json::from_str(canonical.json()).unwrap();
        let respelled = serde_json::to_string_pretty(&respelled).unwrap();
        assert_ne!(respelled, canonical.json());
        assert_eq!(StoredRecord::from_upload(&respelled).unwrap(), canonical);
    }

    #[test]
    fn unknown_fields_are_kept_at_any_depth_and_put_back() {
        let mut sent: Value = serde_json::from_str(&trace_text()).unwrap();
        sent["kind"] = "trace".into();
        sent["hops"][1]["new_field"] = serde_json::json!({"a": [1, 2]});
        sent["hops"][0]["probes"][0]["reply"]["odd/key~"] = 7.into();
        sent["top_level"] = "x".into();
        // Nothing to keep: an absent optional field as another writer may spell it.
        sent["hops"][0]["inherited"] = Value::Null;
        sent["not_yet_used"] = serde_json::json!([]);
        let stored = StoredRecord::from_upload(&sent.to_string()).unwrap();
        assert_eq!(
            stored.extra(),
            Some(
                r#"{"/hops/0/probes/0/reply/odd~1key~0":7,"/hops/1/new_field":{"a":[1,2]},"/top_level":"x"}"#
            )
        );
        let back = with_extra(stored.json(), stored.extra()).unwrap();
        for pointer in [
            "/hops/1/new_field",
            "/hops/0/probes/0/reply/odd~1key~0",
            "/top_level",
        ] {
            assert_eq!(back.pointer(pointer), sent.pointer(pointer), "{pointer}");
        }
    }

    #[test]
    fn more_than_16_kib_of_unknown_fields_is_refused_naming_the_largest() {
        let mut sent: Value = serde_json::from_str(&trace_text()).unwrap();
        sent["kind"] = "trace".into();
        sent["small"] = 1.into();
        sent["hops"][2]["blob"] = "x".repeat(EXTRA_BYTES).into();
        let err = StoredRecord::from_upload(&sent.to_string()).unwrap_err();
        assert_eq!(err.field(), "hops[2].blob");
        assert!(err.to_string().contains("upgrade the collector"), "{err}");
        // Already stored rows are kept whole.
        assert!(StoredRecord::from_stored_row(&sent.to_string()).is_ok());
    }
}
