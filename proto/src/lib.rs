//! The versioned wire format shared by the nkpath agent and collector.
//!
//! Agents measure (Paris traceroutes and pings), spool each result as JSON,
//! and upload batches of them to the collector, which answers with an ack.
//! This crate defines those JSON documents as serde types, the rule for
//! evolving them, and [`decode`], which reads and checks one.
//!
//! # Documents
//!
//! Every document is a JSON object with a `schema_version` field that says
//! which version of this format it follows:
//!
//! | Document | Type | Where |
//! |---|---|---|
//! | one traceroute | [`TraceResult`] | inside a [`ResultRecord`] |
//! | one ping | [`PingResult`] | inside a [`ResultRecord`] |
//! | one multipath (MDA) trace | [`MultipathResult`] (since 1.4) | inside a [`ResultRecord`] |
//! | one result of any kind | [`ResultRecord`]: the result's object plus `"kind": "trace"`, `"ping"` or `"multipath"` | the agent's spool; an upload's `results` |
//! | an upload | [`UploadBatch`]: agent, batch id, 1..=10 000 results | body of the agent's POST |
//! | the answer | [`UploadAck`]: which results were stored, which refused and why, plus optional instructions (`pause_until`, `targets`) | body of the collector's response |
//!
//! A [`TraceResult`] records the probing parameters ([`ProbeParams`]), the
//! Paris flow identifier held for the whole trace ([`FlowId`], tagged by
//! `"protocol"`), one [`Hop`] per TTL probed with every [`Probe`] sent and
//! the [`Reply`] matched to it (`null` when the probe went unanswered),
//! including the TTL quoted in ICMP errors and any MPLS label stack
//! ([`MplsLabel`]), why the trace stopped ([`StopReason`]), and names found
//! for the addresses seen ([`HopAnnotation`]). What a reply means (time
//! exceeded, which unreachable, echo reply, SYN-ACK or RST) is read from its
//! raw numbers by [`Reply::kind`] into a [`ReplyKind`], the one decoding of
//! them both sides use.
//!
//! # Conventions
//!
//! - Field names are `snake_case`; enum values are lowercase strings.
//! - Times are RFC 3339 strings in UTC (`"2017-10-01T00:00:00Z"`); ids are
//!   hyphenated UUIDs; addresses are dotted-quad strings. A time written
//!   with an offset must still fall in years 0000..=9999 once converted to
//!   UTC ([`limits::UTC_YEARS`]).
//! - Lists and strings an agent fills from what it receives are bounded
//!   ([`limits`]: MPLS labels per reply, annotations, name lengths); hops
//!   and probes are bounded by `max_ttl` and `attempts`.
//! - Durations are integers with their unit in the name (`timeout_ms`,
//!   `rtt_us`); `sent_at_us` counts from the trace's `started_at`.
//! - Optional values are written as `null`, except these, which are left out
//!   when empty: `mpls_labels`, `annotations`, `pause_until`, `targets`,
//!   `inherited`, `source_stop`, `refused_unlisted` (when 0), `result_kinds`,
//!   `round_interval_s`.
//!
//! # Versioning
//!
//! `schema_version` is `"MAJOR.MINOR"`; this build writes
//! [`SCHEMA_VERSION`] (`"1.5"`).
//!
//! - `1.1` adds `hops[].inherited` (optional): a hop the trace took from
//!   another trace of the same survey (a Doubletree stop set) instead of
//!   probing it with its own flow; it names that trace's target and flow.
//! - `1.2` adds `source_stop` (optional) to a trace imported from a public
//!   source: the source's own word for why the trace stopped, kept verbatim
//!   beside nkpath's `stop_reason`. Agents never send it.
//! - `1.3` adds `refused_unlisted` (optional) to an ack: how many refusals were
//!   left out of `refused`, which lists only the first ones of a batch with
//!   many; every result the ack names neither accepted nor refused was then
//!   refused.
//! - `1.4` adds the result kind `"multipath"` ([`MultipathResult`]: the
//!   interfaces per TTL, the links between them and the flows that reached
//!   each, a per-packet balancer flag per TTL, a budget-hit flag) and
//!   `result_kinds` (optional) to the ack. A new kind is something an older
//!   reader chokes on, so it is gated instead of bumping the major version:
//!   a collector lists the kinds it stores in every ack and in its health
//!   answer, and agents send a multipath result only to a collector that
//!   lists `"multipath"`, keeping it spooled otherwise.
//! - `1.5` adds `round_interval_s` (optional) to an upload: the agent's round
//!   interval, which the collector's fleet scheduler books its rounds by.
//!
//! - A **minor** version only adds optional fields. Decoders ignore fields
//!   they do not know (no type here denies unknown fields), so a `1.0` reader
//!   reads `1.7` documents, and a `1.7` reader reads `1.0` documents because
//!   the fields added since are optional.
//! - Anything else (renaming, removing, retyping a field, a new required
//!   field, a new enum value older readers would choke on) is a new
//!   **major** version. A reader refuses a major version other than its own
//!   with [`DecodeError::UnsupportedMajor`] before it looks at the rest.
//! - The golden files in `proto/tests/golden/` pin the serialized form of
//!   every type: a change to them in review is a change to the wire format
//!   and must follow this rule.
//!
//! # Decoding
//!
//! [`decode`] reads a document in three steps, and its [`DecodeError`]
//! names the field at fault by its full path, e.g.
//! `hops[3].probes[0].reply.mpls_labels[0].label`:
//!
//! 1. `schema_version` alone: missing or not `"MAJOR.MINOR"` is
//!    [`DecodeError::Field`]; another major version is
//!    [`DecodeError::UnsupportedMajor`].
//! 2. The typed value: bad JSON, a missing field or a wrong type is
//!    [`DecodeError::Json`].
//! 3. The rules types cannot express ([`Validate`]): ranges ([`limits`]),
//!    hops sorted by TTL, probe attempts within `attempts`, the flow
//!    agreeing with the protocol, `rtts_us` matching `received`, and so on;
//!    a broken rule is [`DecodeError::Field`].
//!
//! ```
//! use nkpath_proto::{decode, DecodeError, ResultRecord};
//!
//! let json = r#"{
//!   "kind": "ping",
//!   "schema_version": "1.9",
//!   "result_id": "0b0e5f3c-7d7a-4a8e-9d43-2b1f1b7a6c01",
//!   "agent_id": "vp-fra1",
//!   "agent_version": "0.1.0",
//!   "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
//!   "source": "198.51.100.7",
//!   "target": "175.45.176.1",
//!   "started_at": "2017-10-01T00:00:00Z",
//!   "sent": 3,
//!   "received": 2,
//!   "rtts_us": [212000, 215500],
//!   "field_added_in_1_9": true
//! }"#;
//! let record: ResultRecord = decode(json)?;
//! assert_eq!(record.kind(), "ping");
//! assert_eq!(record.agent_id(), "vp-fra1");
//!
//! let future = json.replace("\"1.9\"", "\"2.0\"");
//! let err = decode::<ResultRecord>(&future).unwrap_err();
//! assert!(matches!(err, DecodeError::UnsupportedMajor { .. }));
//! # Ok::<(), DecodeError>(())
//! ```
//!
//! # Example: a trace
//!
//! A Paris ICMP trace that reached its target through an MPLS tunnel (the
//! golden file `proto/tests/golden/trace_result.json`):
//!
//! ```json
#![doc = include_str!("../tests/golden/trace_result.json")]
//! ```

#![deny(missing_docs)]

pub mod atomic_file;
pub mod cymru;
mod decode;
mod flow;
pub mod limits;
mod multipath;
mod ping;
mod record;
mod reply_kind;
mod tagged;
pub mod text;
pub mod timestamp;
mod trace;
mod upload;
mod validate;
mod version;

pub use decode::{DecodeError, Versioned, decode, decode_slice};
pub use flow::{FlowId, Protocol};
pub use multipath::{
    MultipathHop, MultipathInterface, MultipathLink, MultipathParams, MultipathResult,
};
pub use ping::PingResult;
pub use record::{RESULT_KINDS, ResultRecord};
pub use reply_kind::{ReplyKind, TcpFlags, UnreachableCode};
pub use trace::{
    AnnotationSource, Hop, HopAnnotation, IMPORTED_SOURCES, InheritedFrom, MplsLabel, Probe,
    ProbeParams, Reply, StopReason, TraceResult, imported_from,
};
pub use upload::{Refusal, UploadAck, UploadBatch, accepts_kind};
pub use validate::{Validate, ValidationError};
pub use version::{MULTIPATH_SINCE, ParseSchemaVersionError, SCHEMA_VERSION, SchemaVersion};
