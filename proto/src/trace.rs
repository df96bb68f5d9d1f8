//! One Paris traceroute: its parameters, every probe sent, every reply
//! received, and what the agent learnt about the addresses it saw.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::flow::{FlowId, Protocol};
use crate::version::SchemaVersion;

/// The probing parameters in force for a trace, recorded so that a result
/// can be read without the agent's configuration. Ranges are in
/// [`crate::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProbeParams {
    /// Probes sent per TTL, 1..=10.
    pub attempts: u8,
    /// How long to wait for each probe's reply, in milliseconds, 1..=60 000.
    pub timeout_ms: u32,
    /// Consecutive silent TTLs after which the trace gives up, 1..=32.
    pub gap_limit: u8,
    /// The first TTL probed, 1..=`max_ttl`.
    pub first_ttl: u8,
    /// The last TTL the trace may probe, 1..=64.
    pub max_ttl: u8,
    /// The agent-wide packet rate cap in force, packets per second, 1..=1000.
    pub pps: u32,
    /// The per-/24 packet rate cap in force, packets per second, 1..=1000.
    pub per_prefix_pps: u32,
}

/// Why a trace stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The target answered.
    Reached,
    /// A router answered "destination unreachable".
    Unreachable,
    /// `gap_limit` consecutive TTLs stayed silent.
    GapLimit,
    /// `max_ttl` was probed without reaching the target.
    MaxTtl,
    /// The agent's probe budget for the round ran out.
    ProbeBudget,
    /// The agent's time budget for the round ran out.
    TimeBudget,
    /// The agent was asked to stop (shutdown, pause).
    Cancelled,
}

/// One label stack entry from an ICMP multi-part extension (RFC 4950), as a
/// router that forwards over MPLS quotes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MplsLabel {
    /// The 20-bit label, below 2^20.
    pub label: u32,
    /// Traffic class (the former EXP bits), below 8.
    pub tc: u8,
    /// The S bit: set on the last entry of the stack.
    pub bottom_of_stack: bool,
    /// The entry's TTL.
    pub ttl: u8,
}

/// A reply matched to a probe.
///
/// An ICMP reply (time exceeded, unreachable, echo reply) has `icmp_type` and
/// `icmp_code`; a TCP reply from the target (SYN-ACK, RST) has `tcp_flags`
/// instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reply {
    /// Who answered.
    pub address: Ipv4Addr,
    /// Round-trip time in microseconds.
    pub rtt_us: u32,
    /// The IP TTL of the reply as received (hints at the reply path length).
    pub reply_ttl: u8,
    /// ICMP type of the reply; `None` for a TCP reply.
    pub icmp_type: Option<u8>,
    /// ICMP code of the reply; `None` for a TCP reply.
    pub icmp_code: Option<u8>,
    /// TCP flags of a SYN-ACK or RST from the target; `None` for ICMP.
    pub tcp_flags: Option<u8>,
    /// The probe's IP TTL as quoted in an ICMP error: normally 1, or 0 from
    /// routers that quote after decrementing; anything else hints at a
    /// rewritten or mis-quoted packet. `None` when the reply quotes nothing.
    pub quoted_ttl: Option<u8>,
    /// The MPLS label stack quoted in the ICMP extension, top first; absent
    /// from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mpls_labels: Vec<MplsLabel>,
}

/// One probe sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Probe {
    /// Which probe of its TTL this was, from 1 to `attempts`.
    pub attempt: u8,
    /// When it was sent, in microseconds since [`TraceResult::started_at`].
    pub sent_at_us: u64,
    /// The matching reply; `None` if none came within the timeout.
    pub reply: Option<Reply>,
}

/// All probes sent with one TTL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hop {
    /// The probes' IP TTL. A trace's hops are sorted by TTL, each TTL once.
    pub ttl: u8,
    /// The probes, in order of `attempt`. For an inherited hop, the probes of
    /// the trace it was inherited from (their `sent_at_us` count from that
    /// trace's start, not this one's).
    pub probes: Vec<Probe>,
    /// Set when this trace did not probe this TTL itself but took the hop from
    /// another trace of the same survey (a Doubletree stop set, schema 1.1):
    /// the hop was *inferred*, not observed with this trace's flow. Absent
    /// from the JSON for a hop the trace probed itself (and in 1.0 documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited: Option<InheritedFrom>,
}

/// The trace an inherited [`Hop`] came from: the same agent and round probed
/// that TTL toward `target` with `flow` and got the hop's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InheritedFrom {
    /// The target of the trace that probed the hop.
    pub target: Ipv4Addr,
    /// That trace's flow identifier.
    pub flow: FlowId,
}

/// Where a [`HopAnnotation`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationSource {
    /// A reverse DNS (PTR) lookup.
    Ptr,
    /// Team Cymru's IP-to-ASN DNS service. Written by earlier agents (see
    /// [`HopAnnotation::asn`]); still read so that their results decode.
    Cymru,
}

/// What the agent learnt about an address seen in a trace: its name, for
/// reading the trace.
///
/// The collector maps hops to ASes from BGP data and its own lookups only: an
/// ASN a volunteer's agent sends is never used for mapping or verdicts (a
/// hostile agent could forge entry ASes). Current agents send PTR names only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopAnnotation {
    /// The address annotated.
    pub address: Ipv4Addr,
    /// Its name (PTR record), if known.
    pub name: Option<String>,
    /// Its origin AS, as older agents looked it up (source `cymru`); current
    /// agents leave it `null`, and the collector ignores it.
    pub asn: Option<u32>,
    /// Where the name or ASN came from.
    pub source: AnnotationSource,
    /// When the lookup answered.
    #[serde(with = "time::serde::rfc3339")]
    pub resolved_at: OffsetDateTime,
}

/// One Paris traceroute from an agent to a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceResult {
    /// The schema version the document follows.
    pub schema_version: SchemaVersion,
    /// Unique id of this result; the collector stores each id once.
    pub result_id: Uuid,
    /// The agent that ran the trace: 1..=64 characters of `[A-Za-z0-9._-]`;
    /// or, for a trace imported from a public source, `SOURCE:ID` such as
    /// `atlas:5017/190` (measurement/probe) or `scamper:FILE`.
    pub agent_id: String,
    /// The agent's software version.
    pub agent_version: String,
    /// The measurement round this trace belongs to.
    pub round_id: Uuid,
    /// The agent's source address.
    pub source: Ipv4Addr,
    /// The address traced to.
    pub target: Ipv4Addr,
    /// The probe protocol.
    pub protocol: Protocol,
    /// The flow identifier held for the whole trace; agrees with `protocol`.
    pub flow: FlowId,
    /// The parameters in force.
    pub params: ProbeParams,
    /// When the first probe was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Every TTL probed, ascending.
    pub hops: Vec<Hop>,
    /// Why the trace stopped, as nkpath reads it from the replies (for an
    /// imported trace too: see `source_stop`).
    pub stop_reason: StopReason,
    /// Names and ASNs of addresses seen; absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<HopAnnotation>,
    /// Only for a trace imported from a public source (`agent_id`
    /// `SOURCE:ID`): why the source says it stopped, in the source's own word
    /// and spelling (scamper's `COMPLETED`, `GAPLIMIT`…), 1..=32 printable
    /// ASCII characters. Absent when the source records none (RIPE Atlas) and
    /// for agents' traces, which never send it. Added in 1.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stop: Option<String>,
}

/// The public sources the collector imports traces from, as an imported
/// trace's `agent_id` names them before its colon (`atlas:5017/190`,
/// `scamper:FILE`).
pub const IMPORTED_SOURCES: [&str; 2] = ["atlas", "scamper"];

/// The public source a trace with this `agent_id` was imported from (one of
/// [`IMPORTED_SOURCES`]); `None` for an agent's own trace (an agent's id never
/// holds a colon).
pub fn imported_from(agent_id: &str) -> Option<&'static str> {
    let (source, _) = agent_id.split_once(':')?;
    IMPORTED_SOURCES.into_iter().find(|&name| name == source)
}

impl TraceResult {
    /// The public source this trace was imported from, see [`imported_from`].
    pub fn imported_from(&self) -> Option<&'static str> {
        imported_from(&self.agent_id)
    }

    /// Every reply received, in hop then attempt order.
    pub fn replies(&self) -> impl Iterator<Item = &Reply> {
        self.hops
            .iter()
            .flat_map(|hop| &hop.probes)
            .filter_map(|probe| probe.reply.as_ref())
    }
}

impl Hop {
    /// Whether this trace probed the hop with its own flow (not inherited).
    pub fn is_observed(&self) -> bool {
        self.inherited.is_none()
    }

    /// The addresses that answered at this TTL, each once, in order of first
    /// reply. More than one means a load balancer or a path change.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut seen = Vec::new();
        for reply in self.probes.iter().filter_map(|p| p.reply.as_ref()) {
            if !seen.contains(&reply.address) {
                seen.push(reply.address);
            }
        }
        seen
    }
}
