//! A liveness check: a few ICMP echo requests to one target.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::version::SchemaVersion;

/// The outcome of pinging one target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PingResult {
    /// The schema version the document follows.
    pub schema_version: SchemaVersion,
    /// Unique id of this result; the collector stores each id once.
    pub result_id: Uuid,
    /// The agent that pinged: 1..=64 characters of `[A-Za-z0-9._-]`.
    pub agent_id: String,
    /// The agent's software version.
    pub agent_version: String,
    /// The measurement round this ping belongs to.
    pub round_id: Uuid,
    /// The agent's source address.
    pub source: Ipv4Addr,
    /// The address pinged.
    pub target: Ipv4Addr,
    /// When the first echo request was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Echo requests sent.
    pub sent: u32,
    /// Echo replies received, at most `sent`.
    pub received: u32,
    /// The round-trip time of each reply in microseconds, one per reply.
    pub rtts_us: Vec<u32>,
}

impl PingResult {
    /// Whether the target answered at all.
    pub fn is_alive(&self) -> bool {
        self.received > 0
    }
}
