//! The ranges [`Validate`](crate::Validate) enforces, for writers that want
//! to check their own values (an agent's configuration, a batch size) with
//! the same numbers.

use std::ops::RangeInclusive;

/// [`ProbeParams::attempts`](crate::ProbeParams::attempts): probes per TTL.
pub const ATTEMPTS: RangeInclusive<u8> = 1..=10;
/// [`ProbeParams::timeout_ms`](crate::ProbeParams::timeout_ms).
pub const TIMEOUT_MS: RangeInclusive<u32> = 1..=60_000;
/// [`ProbeParams::gap_limit`](crate::ProbeParams::gap_limit).
pub const GAP_LIMIT: RangeInclusive<u8> = 1..=32;
/// [`ProbeParams::max_ttl`](crate::ProbeParams::max_ttl); `first_ttl` runs
/// from 1 to `max_ttl`.
pub const MAX_TTL: RangeInclusive<u8> = 1..=64;
/// [`ProbeParams::pps`](crate::ProbeParams::pps): agent-wide packets per second.
pub const PPS: RangeInclusive<u32> = 1..=1000;
/// [`ProbeParams::per_prefix_pps`](crate::ProbeParams::per_prefix_pps):
/// packets per second to one /24.
pub const PER_PREFIX_PPS: RangeInclusive<u32> = 1..=1000;
/// [`MplsLabel::label`](crate::MplsLabel::label): a 20-bit field.
pub const MPLS_LABEL: RangeInclusive<u32> = 0..=(1 << 20) - 1;
/// [`MplsLabel::tc`](crate::MplsLabel::tc): a 3-bit field.
pub const MPLS_TC: RangeInclusive<u8> = 0..=7;
/// Length of an agent id, in characters of `[A-Za-z0-9._-]`.
pub const AGENT_ID_LEN: RangeInclusive<usize> = 1..=64;
/// Length of an agent version string.
pub const AGENT_VERSION_LEN: RangeInclusive<usize> = 1..=64;
/// Length of an imported trace's `source_stop`, in printable ASCII characters.
pub const SOURCE_STOP_LEN: RangeInclusive<usize> = 1..=32;
/// Results in one [`UploadBatch`](crate::UploadBatch).
pub const BATCH_RESULTS: RangeInclusive<usize> = 1..=10_000;
/// Entries of one reply's [`Reply::mpls_labels`](crate::Reply::mpls_labels).
/// Real label stacks hold a handful of entries; 32 is far above them and
/// keeps one result small (a trace holds at most 64 hops of 10 probes).
pub const MPLS_LABELS: RangeInclusive<usize> = 0..=32;
/// Entries of [`TraceResult::annotations`](crate::TraceResult::annotations):
/// a name and an origin for each address a trace can hold (64 hops of 10
/// probes).
pub const ANNOTATIONS: RangeInclusive<usize> = 0..=2 * 64 * 10;
/// Length of [`HopAnnotation::name`](crate::HopAnnotation::name), in
/// characters: a DNS name is at most 253 characters, plus a trailing dot.
pub const ANNOTATION_NAME_LEN: RangeInclusive<usize> = 0..=255;
/// [`PingResult::sent`](crate::PingResult::sent): the agent's ping count
/// is a 16-bit number.
pub const PING_SENT: RangeInclusive<u32> = 0..=65_535;
/// Years of every time of a document, in UTC: what RFC 3339 can write
/// (four digits). `9999-12-31T23:59:59-23:59` is year 10000 in UTC and is
/// refused; a reader never meets a time it cannot convert to UTC.
pub const UTC_YEARS: RangeInclusive<i32> = 0..=9999;
/// Bytes of one result's JSON as the collector receives it. The bounds
/// above keep a valid result well below this; the cap stops a result padded
/// with fields this version does not know (which decoders skip).
pub const RESULT_BYTES: usize = 4 << 20;

/// Confidences a multipath trace may ask for, in percent.
pub const MDA_CONFIDENCES: [u8; 2] = [95, 99];
/// `params.max_probes` of a multipath trace.
pub const MDA_MAX_PROBES: RangeInclusive<u32> = 1..=100_000;
/// `params.max_seconds` of a multipath trace.
pub const MDA_MAX_SECONDS: RangeInclusive<u32> = 1..=86_400;
