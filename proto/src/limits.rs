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
/// Results in one [`UploadBatch`](crate::UploadBatch).
pub const BATCH_RESULTS: RangeInclusive<usize> = 1..=10_000;
