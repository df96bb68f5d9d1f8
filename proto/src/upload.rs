//! The upload exchange: the batch an agent POSTs and the collector's answer.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::record::ResultRecord;
use crate::version::SchemaVersion;

/// What the agent POSTs: a batch of spooled results.
///
/// Generic over the result type so that the collector can decode the
/// envelope alone, with `UploadBatch<Box<serde_json::value::RawValue>>` (or
/// `serde_json::Value`), then decode each result on its own and refuse only
/// the bad ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UploadBatch<R = ResultRecord> {
    /// The schema version the envelope follows.
    pub schema_version: SchemaVersion,
    /// The agent sending: 1..=64 characters of `[A-Za-z0-9._-]`.
    pub agent_id: String,
    /// The agent's software version.
    pub agent_version: String,
    /// Unique id of this batch; a retried upload sends the same id again.
    pub batch_id: Uuid,
    /// The agent's clock when it sent the batch (to spot clock skew).
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
    /// The results, 1..=10 000 of them.
    pub results: Vec<R>,
    /// The agent's round interval in seconds (since 1.5; absent from older agents): the
    /// collector books the agent's rounds this far apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_interval_s: Option<u32>,
}

/// A result the collector would not store, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Refusal {
    /// The refused result's id, if it could be read.
    pub id: Option<Uuid>,
    /// Path of the offending field, e.g. `results[3].hops[0].ttl`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The collector's answer to an [`UploadBatch`]. Every result of the batch
/// is either accepted (stored durably before this answer was sent) or
/// refused; the agent may drop both from its spool.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UploadAck {
    /// The schema version the answer follows.
    pub schema_version: SchemaVersion,
    /// The batch answered.
    pub batch_id: Uuid,
    /// The collector's clock when it received the batch.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Ids of the results stored (or already stored before).
    pub accepted: Vec<Uuid>,
    /// Results that will never be stored, each with its reason: the first ones only, when
    /// a batch has many (see `refused_unlisted`).
    pub refused: Vec<Refusal>,
    /// Refused results left out of `refused` (since 1.3; 0 and absent when none): every
    /// result of the batch named neither in `accepted` nor in `refused` was then refused,
    /// for reasons the collector logged but did not send back.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refused_unlisted: u64,
    /// Asks the agent to stop probing until then; absent when not paused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub pause_until: Option<OffsetDateTime>,
    /// Replaces the agent's target prefixes (CIDR, e.g. `"175.45.176.0/22"`);
    /// absent to keep the current ones. The agent still probes only inside
    /// its own allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<String>>,
    /// The result kinds (`"kind"` values) the collector stores, since 1.4:
    /// an agent sends a kind added after 1.2 (`"multipath"`) only to a
    /// collector that lists it here, and keeps it spooled otherwise. Absent
    /// from older collectors' acks, which store `"trace"` and `"ping"` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_kinds: Vec<String>,
}

impl UploadAck {
    /// Whether the collector that sent this ack stores results of `kind`.
    /// `"trace"` and `"ping"` every collector stores; later kinds only
    /// when listed in `result_kinds`.
    pub fn accepts_kind(&self, kind: &str) -> bool {
        accepts_kind(&self.result_kinds, kind)
    }
}

/// Whether a collector that advertises `result_kinds` (empty: a collector
/// before 1.4) stores results of `kind`.
pub fn accepts_kind(result_kinds: &[String], kind: &str) -> bool {
    matches!(kind, "trace" | "ping") || result_kinds.iter().any(|k| k == kind)
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}
