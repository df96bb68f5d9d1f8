//! Storing an upload batch: each result decoded on its own, all of the batch's stores in one
//! transaction, committed before the ack is built.
//!
//! The idempotency key is (the token's agent, result id):
//!
//! | the result | answer |
//! |---|---|
//! | does not decode | refused, with the path of the field at fault |
//! | `agent_id` is not the token's agent | refused, field `results[i].agent_id` |
//! | too big, outside the target prefixes or at an implausible time ([`crate::admission`]) | refused, with the field |
//! | new id | stored, with a receipt; accepted |
//! | id stored before with the same content | accepted again, nothing stored |
//! | id stored before with other content, or by another agent | refused, field `results[i].result_id` |

use std::collections::HashSet;
use std::net::IpAddr;

use nkpath_proto::{Refusal, ResultRecord, SCHEMA_VERSION, UploadAck, UploadBatch, decode};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admission::{self, Admission, TimeWindow};
use crate::agents::{Authenticated, record_upload};
use crate::results::{decode_line, format_time, store_result};
use crate::store::Db;

/// Clock offsets larger than this (either way) are flagged.
pub const CLOCK_OFFSET_LIMIT_MS: i64 = 60_000;

/// An upload as received: who sent it, from where, when.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    /// The agent the token belongs to.
    pub agent: &'a Authenticated,
    /// The collector's clock when the request arrived.
    pub received_at: OffsetDateTime,
    /// The peer address of the connection, when known.
    pub peer: Option<IpAddr>,
    /// The time rule of the collector's settings.
    pub window: TimeWindow,
}

/// The receive time minus the agent's `sent_at`, in milliseconds (positive: the agent's clock
/// is behind, or the request was slow), and whether it is over [`CLOCK_OFFSET_LIMIT_MS`].
pub fn clock_offset(sent_at: OffsetDateTime, received_at: OffsetDateTime) -> (i64, bool) {
    let ms = (received_at - sent_at).whole_milliseconds();
    let ms = i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX });
    (ms, ms.unsigned_abs() > CLOCK_OFFSET_LIMIT_MS.unsigned_abs())
}

/// Stores what can be stored of `batch` in one IMMEDIATE transaction and returns the ack.
/// When this returns `Ok`, everything in `accepted` is committed (synchronous=FULL).
pub fn ingest(
    db: &mut Db,
    batch: &UploadBatch<Box<RawValue>>,
    arrival: &Arrival<'_>,
) -> rusqlite::Result<UploadAck> {
    let (offset_ms, flagged) = clock_offset(batch.sent_at, arrival.received_at);
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read within the transaction: the stored target is the one in force for this batch. A
    // malformed stored target fails the batch like a database error (500, nothing
    // acknowledged): refusing every result for it would lose them.
    let targets = crate::settings::stored_target(&tx)
        .map_err(|e| match e {
            crate::settings::SettingsError::Db(crate::store::DbError::Sqlite(e)) => e,
            other => rusqlite::Error::ToSqlConversionFailure(other.into()),
        })?
        .unwrap_or_default()
        .prefixes;
    let admission = Admission {
        window: arrival.window,
        targets,
        now: arrival.received_at,
    };
    let receipt = Receipt {
        agent: &arrival.agent.name,
        batch_id: batch.batch_id,
        sent_at: batch.sent_at,
        received_at: arrival.received_at,
        offset_ms,
        flagged,
    };
    let mut accepted = Vec::new();
    let mut seen = HashSet::new();
    let mut refused = Vec::new();
    for (i, raw) in batch.results.iter().enumerate() {
        match store_one(&tx, raw, &receipt, &admission)? {
            Ok(id) => {
                if seen.insert(id) {
                    accepted.push(id);
                }
            }
            Err((id, field, reason)) => refused.push(Refusal {
                id,
                field: within(i, &field),
                reason,
            }),
        }
    }
    record_upload(
        &tx,
        &arrival.agent.name,
        arrival.received_at,
        &batch.agent_version,
        arrival.peer,
    )?;
    tx.commit()?;
    Ok(UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: batch.batch_id,
        received_at: arrival.received_at,
        accepted,
        refused,
        pause_until: None,
        targets: None,
    })
}

struct Receipt<'a> {
    agent: &'a str,
    batch_id: Uuid,
    sent_at: OffsetDateTime,
    received_at: OffsetDateTime,
    offset_ms: i64,
    flagged: bool,
}

/// A refused result: its id if readable, the field (relative to the result), the reason.
type Refused = (Option<Uuid>, String, String);

/// Stores one result, or says why not. The outer error is a database failure (the whole
/// batch fails); the inner one a refusal of this result.
fn store_one(
    conn: &Connection,
    raw: &RawValue,
    receipt: &Receipt<'_>,
    admission: &Admission,
) -> rusqlite::Result<Result<Uuid, Refused>> {
    let text = raw.get();
    if let Err(e) = admission::check_size(text) {
        let reason = e.to_string();
        return Ok(Err((readable_id(text), e.field, reason)));
    }
    let record = match decode::<ResultRecord>(text) {
        Ok(record) => record,
        Err(e) => {
            return Ok(Err((
                readable_id(text),
                e.field().to_owned(),
                e.to_string(),
            )));
        }
    };
    let id = record.result_id();
    if record.agent_id() != receipt.agent {
        return Ok(Err((
            Some(id),
            "agent_id".into(),
            format!(
                "the result is from agent {:?} but the token belongs to agent {:?}; an agent uploads only its own results",
                record.agent_id(),
                receipt.agent
            ),
        )));
    }
    if let Err(e) = admission.check(&record) {
        let reason = e.to_string();
        return Ok(Err((Some(id), e.field, reason)));
    }
    let key = id.hyphenated().to_string();
    let stored: Option<(String, String)> = conn
        .prepare_cached("SELECT agent_id, json FROM results WHERE result_id = ?1")?
        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match stored {
        None => {
            store_result(conn, text, &record, receipt.received_at)?;
            conn.prepare_cached(
                "INSERT INTO receipts (result_id, agent, batch_id, sent_at, received_at,
                                       clock_offset_ms, clock_flagged)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                key,
                receipt.agent,
                receipt.batch_id.hyphenated().to_string(),
                format_time(receipt.sent_at),
                format_time(receipt.received_at),
                receipt.offset_ms,
                receipt.flagged,
            ])?;
            Ok(Ok(id))
        }
        Some((agent, _)) if agent != receipt.agent => Ok(Err((
            Some(id),
            "result_id".into(),
            format!("{id} is already stored for another agent; result ids must be unique"),
        ))),
        Some((_, json)) if json == text || decode_line(&json).is_ok_and(|s| s == record) => {
            Ok(Ok(id))
        }
        Some(_) => Ok(Err((
            Some(id),
            "result_id".into(),
            format!(
                "{id} is already stored with different content; stored results never change, \
                 so a new measurement needs a new result_id"
            ),
        ))),
    }
}

/// `field` of the `i`th result, as a path from the batch: `results[3].hops[0].ttl`.
fn within(i: usize, field: &str) -> String {
    if field.is_empty() || field.starts_with('[') {
        format!("results[{i}]{field}")
    } else {
        format!("results[{i}].{field}")
    }
}

/// The `result_id` of a result that does not decode, if it can still be read.
fn readable_id(text: &str) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        result_id: Option<serde_json::Value>,
    }
    let probe: IdOnly = serde_json::from_str(text).ok()?;
    probe.result_id?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn offsets_over_a_minute_either_way_are_flagged() {
        let t = datetime!(2025-01-01 00:00:00 UTC);
        assert_eq!(clock_offset(t, t), (0, false));
        assert_eq!(
            clock_offset(t, t + time::Duration::seconds(60)),
            (60_000, false)
        );
        assert_eq!(
            clock_offset(t, t + time::Duration::milliseconds(60_001)),
            (60_001, true)
        );
        assert_eq!(
            clock_offset(t + time::Duration::minutes(5), t),
            (-300_000, true)
        );
    }

    #[test]
    fn paths_are_from_the_batch() {
        assert_eq!(within(3, "hops[0].ttl"), "results[3].hops[0].ttl");
        assert_eq!(within(0, ""), "results[0]");
        assert_eq!(within(1, "[2]"), "results[1][2]");
    }

    #[test]
    fn ids_are_read_from_undecodable_results_when_possible() {
        let id = "0b0e5f3c-7d7a-4a8e-9d43-2b1f1b7a6c01";
        assert_eq!(
            readable_id(&format!(r#"{{"result_id": "{id}", "sent": "x"}}"#)),
            Some(id.parse().unwrap())
        );
        assert_eq!(readable_id(r#"{"result_id": 5}"#), None);
        assert_eq!(readable_id("[1]"), None);
    }
}
