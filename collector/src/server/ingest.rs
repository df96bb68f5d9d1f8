//! Storing an upload batch in two steps: [`prepare`] decodes and checks each result on its
//! own, before the database is taken (the work that needs no stored data: size, wire format,
//! unknown fields, agent id); [`ingest`] then stores what can be stored in one IMMEDIATE
//! transaction, with the fleet's bookkeeping, committed before the ack is built.
//!
//! The idempotency key is (the token's agent, result id):
//!
//! | the result | answer |
//! |---|---|
//! | does not decode, or carries over 16 KiB of fields this collector does not know | refused, with the path of the field at fault |
//! | `agent_id` is not the token's agent | refused, field `results[i].agent_id` |
//! | too big, outside the target prefixes or at an implausible time ([`crate::admission`]) | refused, with the field |
//! | new id | stored, with a receipt; accepted |
//! | id stored before with the same content | accepted again, nothing stored |
//! | id stored before with other content, or by another agent | refused, field `results[i].result_id` |
//!
//! Batches that stored a result are kept by (the token's agent, batch id), with the set of
//! result ids they carry: a batch sent again with the same result ids is a retry (answered
//! as above, nothing counted twice); a batch id the agent already used for other result ids
//! is refused whole ([`BatchConflict`], 409), nothing of it stored. Another agent's batch ids
//! are its own.
//! An ack lists at most [`MAX_LISTED_REFUSALS`] refusals, each reason and field cut to
//! [`MAX_REFUSAL_TEXT`] characters, and counts the others in `refused_unlisted`: a small
//! batch of many invalid results must not buy a large answer.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;

use nkpath_proto::{Refusal, ResultRecord, SCHEMA_VERSION, UploadAck, UploadBatch};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::admission::{self, Admission, TimeWindow};
use crate::agents::Authenticated;
use crate::fleet::bookkeeping::{self, Upload};
use crate::settings::SettingsError;
use crate::store::results::{Receipt, StoredRecord};
use crate::store::{Db, DbError, WriteTx};

/// Most refusals an ack lists; the others are counted in `refused_unlisted`.
pub const MAX_LISTED_REFUSALS: usize = 100;

/// Longest reason or field path of a refusal in an ack, in characters (a decoding error may
/// quote the input at length).
pub const MAX_REFUSAL_TEXT: usize = 256;

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

/// A batch decoded: each result in its stored shape, or refused.
#[derive(Debug)]
pub struct PreparedBatch {
    batch_id: Uuid,
    sent_at: OffsetDateTime,
    agent_version: String,
    round_interval_s: Option<u32>,
    results: Vec<Result<StoredRecord, Refused>>,
    /// The digest of the batch's result ids ([`results_digest`]).
    results_sha256: String,
}

impl PreparedBatch {
    /// The highest packet rate cap the batch's traces declare (`params.pps`), if it holds
    /// any trace: what the agent's default quotas follow.
    pub fn declared_pps(&self) -> Option<u32> {
        self.results
            .iter()
            .filter_map(|r| match r.as_ref().ok()?.record() {
                ResultRecord::Trace(trace) => Some(trace.params.pps),
                ResultRecord::Multipath(multipath) => Some(multipath.params.pps),
                ResultRecord::Ping(_) => None,
            })
            .max()
    }
}

/// A refused result: its id if readable, the field (relative to the result), the reason.
#[derive(Debug)]
struct Refused {
    id: Option<Uuid>,
    field: String,
    reason: String,
}

/// Decodes and checks every result of `batch` as uploaded by `agent`: everything that needs
/// no stored data, so that it runs before the database is taken.
pub fn prepare(batch: &UploadBatch<Box<RawValue>>, agent: &Authenticated) -> PreparedBatch {
    let results: Vec<_> = batch
        .results
        .iter()
        .map(|raw| prepare_one(raw.get(), &agent.name))
        .collect();
    let ids = results.iter().filter_map(|r| match r {
        Ok(stored) => Some(stored.record().result_id()),
        Err(refused) => refused.id,
    });
    PreparedBatch {
        batch_id: batch.batch_id,
        sent_at: batch.sent_at,
        agent_version: batch.agent_version.clone(),
        round_interval_s: batch.round_interval_s,
        results_sha256: results_digest(ids),
        results,
    }
}

/// The SHA-256 (lowercase hex) of a batch's result ids as a set: sorted, each once. Results
/// whose id cannot be read add nothing.
fn results_digest(ids: impl IntoIterator<Item = Uuid>) -> String {
    use std::fmt::Write as _;
    let ids: BTreeSet<Uuid> = ids.into_iter().collect();
    let mut hasher = Sha256::new();
    for id in &ids {
        hasher.update(id.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A batch id the agent already used for a batch of other result ids: the batch is refused
/// whole (409), nothing of it stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "batch {batch_id} was already sent with other result ids; a retry resends the same \
     results under the same batch id, and new results need a new batch id"
)]
pub struct BatchConflict {
    /// The reused batch id.
    pub batch_id: Uuid,
}

fn prepare_one(text: &str, agent: &str) -> Result<StoredRecord, Refused> {
    if let Err(e) = admission::check_size(text) {
        let reason = e.to_string();
        return Err(Refused {
            id: readable_id(text),
            field: e.field,
            reason,
        });
    }
    let stored = StoredRecord::from_upload(text).map_err(|e| Refused {
        id: readable_id(text),
        field: e.field().to_owned(),
        reason: e.to_string(),
    })?;
    let record = stored.record();
    if record.agent_id() != agent {
        return Err(Refused {
            id: Some(record.result_id()),
            field: "agent_id".into(),
            reason: format!(
                "the result is from agent {:?} but the token belongs to agent {:?}; an agent uploads only its own results",
                record.agent_id(),
                agent
            ),
        });
    }
    Ok(stored)
}

/// Why a batch could not be stored (nothing of it was).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A database error; the transaction was rolled back.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored target cannot be read: refusing every result for it would lose them.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// Stores what can be stored of `batch` in one IMMEDIATE transaction, counts it for the fleet
/// (and books the agent's next round when scheduling is on) in the same transaction, and
/// returns the ack. When this returns `Ok(Ok(_))`, everything in `accepted` is committed
/// (synchronous=FULL); `Ok(Err(_))` is a batch id reused for other results (nothing stored).
pub fn ingest(
    db: &mut Db,
    batch: &PreparedBatch,
    arrival: &Arrival<'_>,
) -> Result<Result<UploadAck, BatchConflict>, IngestError> {
    let (offset_ms, flagged) = clock_offset(batch.sent_at, arrival.received_at);
    let agent = arrival.agent.name.as_str();
    let tx = db.write()?;
    let known = tx.batch_digest(agent, batch.batch_id)?;
    if known.as_ref().is_some_and(|d| *d != batch.results_sha256) {
        return Ok(Err(BatchConflict {
            batch_id: batch.batch_id,
        }));
    }
    // Read within the transaction: the stored target is the one in force for this batch. A
    // malformed stored target fails the batch like a database error (500, nothing
    // acknowledged).
    let targets = crate::settings::stored_target(&tx)?
        .unwrap_or_default()
        .prefixes;
    let admission = Admission {
        window: arrival.window,
        targets,
        now: arrival.received_at,
    };
    let mut accepted = Vec::new();
    let mut seen = HashSet::new();
    let mut refused = Refusals::default();
    let mut newly_stored: Vec<&ResultRecord> = Vec::new();
    for (i, prepared) in batch.results.iter().enumerate() {
        let stored = match prepared {
            Ok(stored) => stored,
            Err(refusal) => {
                refused.add(refusal, i);
                continue;
            }
        };
        let id = stored.record().result_id();
        match store_one(&tx, stored, &admission, agent)? {
            Ok(fresh) => {
                if fresh {
                    tx.insert_receipt(&Receipt {
                        result_id: id,
                        agent,
                        batch_id: batch.batch_id,
                        sent_at: batch.sent_at,
                        received_at: arrival.received_at,
                        clock_offset_ms: offset_ms,
                        clock_flagged: flagged,
                    })?;
                    newly_stored.push(stored.record());
                }
                if seen.insert(id) {
                    accepted.push(id);
                }
            }
            Err(refusal) => refused.add(&refusal, i),
        }
    }
    // A batch is kept once it stored something: one that stored nothing (a retry, or every
    // result refused) leaves the database as it was, and cannot be told from a new one.
    if known.is_none() && !newly_stored.is_empty() {
        tx.insert_batch(agent, batch.batch_id, &batch.results_sha256)?;
    }
    tx.record_upload(
        agent,
        arrival.received_at,
        &batch.agent_version,
        arrival.peer,
    )?;
    let assignment = bookkeeping::account_upload(
        &tx,
        &Upload {
            agent,
            peer: arrival.peer,
            received_at: arrival.received_at,
            round_interval_s: batch.round_interval_s,
        },
        &newly_stored,
    );
    tx.commit()?;
    Ok(Ok(UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: batch.batch_id,
        received_at: arrival.received_at,
        accepted,
        refused: refused.listed,
        refused_unlisted: refused.unlisted,
        pause_until: assignment.pause_until,
        targets: assignment.targets,
        result_kinds: result_kinds(),
    }))
}

/// The refusals of a batch as its ack carries them: the first [`MAX_LISTED_REFUSALS`], and
/// a count of the others.
#[derive(Debug, Default)]
struct Refusals {
    listed: Vec<Refusal>,
    unlisted: u64,
}

impl Refusals {
    /// Adds the refusal of the `i`th result of the batch.
    fn add(&mut self, refused: &Refused, i: usize) {
        if self.listed.len() < MAX_LISTED_REFUSALS {
            self.listed.push(Refusal {
                id: refused.id,
                field: truncate(&within(i, &refused.field)),
                reason: truncate(&refused.reason),
            });
        } else {
            self.unlisted += 1;
        }
    }
}

/// `text` cut to [`MAX_REFUSAL_TEXT`] characters, marked with "…" when cut.
fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_REFUSAL_TEXT) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Stores one decoded result (`Ok(true)`), finds it stored before (`Ok(false)`, a retry), or
/// says why not. The outer error is a database failure (the whole batch fails).
fn store_one(
    tx: &WriteTx<'_>,
    stored: &StoredRecord,
    admission: &Admission,
    agent: &str,
) -> Result<Result<bool, Refused>, DbError> {
    let record = stored.record();
    let id = record.result_id();
    let refuse = |field: &str, reason: String| {
        Ok(Err(Refused {
            id: Some(id),
            field: field.to_owned(),
            reason,
        }))
    };
    if let Err(e) = admission.check(record) {
        let reason = e.to_string();
        return refuse(&e.field, reason);
    }
    match tx.existing_result(id)? {
        // Stored as received now: the admission's clock.
        None => Ok(Ok(tx.insert_result(stored, admission.now)?)),
        Some(existing) if existing.agent_id != agent => refuse(
            "result_id",
            format!("{id} is already stored for another agent; result ids must be unique"),
        ),
        Some(existing) if existing.holds(stored) => Ok(Ok(false)),
        Some(_) => refuse(
            "result_id",
            format!(
                "{id} is already stored with different content; stored results never change, \
                 so a new measurement needs a new result_id"
            ),
        ),
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

/// The result kinds this collector stores, as its acks and health answer advertise them:
/// agents send a multipath result only to a collector that lists `"multipath"`.
pub fn result_kinds() -> Vec<String> {
    nkpath_proto::RESULT_KINDS.map(String::from).to_vec()
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
    fn a_batch_digest_is_of_its_set_of_ids() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(results_digest([a, b]), results_digest([b, a, b]));
        assert_ne!(results_digest([a, b]), results_digest([a]));
        assert_eq!(results_digest([]).len(), 64);
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
