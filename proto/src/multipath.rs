//! One multipath trace (MDA): every interface found at each TTL, the links
//! between consecutive TTLs, and the flows that reached each (schema 1.4).
//!
//! A Paris traceroute holds one flow identifier and so sees one branch of a
//! per-flow load balancer. A multipath trace varies the flow identifier
//! until, at every TTL, the stopping rule of the Multipath Detection
//! Algorithm says that all next hops have been seen with the chosen
//! confidence. Flows are listed once, in [`MultipathResult::flows`], and
//! named elsewhere by their index in that list.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::flow::{FlowId, Protocol};
use crate::trace::{HopAnnotation, Reply, StopReason};
use crate::version::SchemaVersion;

/// The parameters in force for a multipath trace. Ranges are in
/// [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipathParams {
    /// The confidence, in percent, with which each TTL's next hops are all
    /// found: 95 or 99.
    pub confidence: u8,
    /// How long to wait for each probe's reply, in milliseconds, 1..=60 000.
    pub timeout_ms: u32,
    /// The first TTL probed, 1..=`max_ttl`.
    pub first_ttl: u8,
    /// The last TTL the trace may probe, 1..=64.
    pub max_ttl: u8,
    /// Consecutive TTLs without any reply after which the trace gives up, 1..=32.
    pub gap_limit: u8,
    /// The most probes the trace may send, 1..=100 000: reaching it ends
    /// the trace with `budget_hit`.
    pub max_probes: u32,
    /// The longest the trace may take, in seconds, 1..=86 400: reaching it
    /// ends the trace with `budget_hit`.
    pub max_seconds: u32,
    /// The agent-wide packet rate cap in force, packets per second, 1..=1000.
    pub pps: u32,
    /// The per-/24 packet rate cap in force, packets per second, 1..=1000.
    pub per_prefix_pps: u32,
}

/// An interface that answered at one TTL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipathInterface {
    /// The interface's address.
    pub address: Ipv4Addr,
    /// The first reply it sent at this TTL (from `address`); `null` for an
    /// imported trace whose source keeps none for it (scamper's `tracelb`
    /// records no probe of its first hop).
    pub reply: Option<Reply>,
    /// The flows (indexes into [`MultipathResult::flows`]) whose probes at
    /// this TTL it answered, ascending, each once. Empty for an imported
    /// trace whose source does not record them.
    pub flows: Vec<u32>,
}

/// Everything seen at one TTL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipathHop {
    /// The probes' IP TTL. Hops are sorted by TTL, each TTL once.
    pub ttl: u8,
    /// The interfaces that answered, in order of first reply, each once.
    pub interfaces: Vec<MultipathInterface>,
    /// Flows probed at this TTL that got no reply, ascending, each once.
    pub silent_flows: Vec<u32>,
    /// Probes sent with this TTL (repeats of one flow included).
    pub probes: u32,
    /// Set when one flow drew replies from more than one interface here: a
    /// per-packet balancer (or a route change) in front of this TTL. Its
    /// interfaces are not branches of a per-flow diamond, and readers must
    /// not draw them as one.
    pub per_packet: bool,
}

/// A link: `far` answered at `far_ttl` to a flow that `near` answered at
/// `near_ttl`. Normally `far_ttl = near_ttl + 1`; more when the TTLs between
/// were silent for that flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipathLink {
    /// The TTL of the near end.
    pub near_ttl: u8,
    /// The near end's address.
    pub near: Ipv4Addr,
    /// The TTL of the far end, above `near_ttl`.
    pub far_ttl: u8,
    /// The far end's address.
    pub far: Ipv4Addr,
    /// The flows (indexes into [`MultipathResult::flows`]) seen at both
    /// ends, ascending, each once; empty for an imported trace whose source
    /// does not record them.
    pub flows: Vec<u32>,
}

/// One multipath trace from an agent (or a public source) to a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MultipathResult {
    /// The schema version the document follows (1.4 or later).
    pub schema_version: SchemaVersion,
    /// Unique id of this result; the collector stores each id once.
    pub result_id: Uuid,
    /// The agent that ran the trace, or `SOURCE:ID` for an imported one, as
    /// in [`crate::TraceResult::agent_id`].
    pub agent_id: String,
    /// The agent's software version.
    pub agent_version: String,
    /// The measurement round this trace belongs to.
    pub round_id: Uuid,
    /// The agent's source address.
    pub source: Ipv4Addr,
    /// The address traced to.
    pub target: Ipv4Addr,
    /// The probe protocol; every flow is of it.
    pub protocol: Protocol,
    /// The parameters in force.
    pub params: MultipathParams,
    /// When the first probe was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Every flow identifier probed; other fields name them by index.
    pub flows: Vec<FlowId>,
    /// Every TTL probed, ascending.
    pub hops: Vec<MultipathHop>,
    /// The links found, sorted by (`near_ttl`, `near`, `far_ttl`, `far`), each once.
    pub links: Vec<MultipathLink>,
    /// Probes sent in all.
    pub probes_sent: u32,
    /// Why the trace stopped.
    pub stop_reason: StopReason,
    /// Set when the probe or time budget (`params.max_probes`,
    /// `params.max_seconds`) ended the trace before the stopping rule was met
    /// everywhere: some next hops may be missing.
    pub budget_hit: bool,
    /// Names of addresses seen; absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<HopAnnotation>,
    /// Only for an imported trace: the source's own word for why it stopped,
    /// as [`crate::TraceResult::source_stop`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stop: Option<String>,
}

impl MultipathResult {
    /// The public source this trace was imported from, see
    /// [`crate::imported_from`].
    pub fn imported_from(&self) -> Option<&'static str> {
        crate::imported_from(&self.agent_id)
    }

    /// The hop at `ttl`, if probed.
    pub fn hop(&self, ttl: u8) -> Option<&MultipathHop> {
        self.hops.iter().find(|hop| hop.ttl == ttl)
    }

    /// Whether some TTL has more than one interface of a per-flow balancer
    /// (per-packet TTLs are not diamonds).
    pub fn has_diamond(&self) -> bool {
        self.hops
            .iter()
            .any(|hop| !hop.per_packet && hop.interfaces.len() > 1)
    }
}

impl MultipathHop {
    /// The addresses that answered, in order of first reply.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.interfaces.iter().map(|i| i.address)
    }
}
