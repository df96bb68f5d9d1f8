//! What the collector admits beyond the wire format's own rules ([`nkpath_proto::Validate`]):
//! a result must be about the target network and from a plausible time, and not be padded.
//!
//! | rule | refused as |
//! |---|---|
//! | the result's JSON is over [`limits::RESULT_BYTES`] | field `results[i]` |
//! | `target` outside the target prefixes ([`crate::settings::Target`], default 175.45.176.0/22) | field `results[i].target` |
//! | `started_at` before the earliest time (default 2000-01-01) | field `results[i].started_at` |
//! | `started_at` more than the tolerance (default 24 h) after the collector's clock | field `results[i].started_at` |
//!
//! Uploads apply them; a refusal names the field, like any other. Every `import` (nkpath,
//! Atlas, scamper) applies the same rules through [`Admission::place`]: the time rule refuses,
//! and a trace whose target lies outside the target prefixes is refused and counted, or with
//! `--keep-outside` stored as context ([`OutsideTargets`]). Reports and exports read only the
//! traces toward the target prefixes, so context is never counted in them. Analysis skips
//! stored rows that break the time rule (rows written by older versions, or by hand) with a
//! warning ([`is_future`]), so that one such row cannot hold every report back.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nkpath_proto::{ResultRecord, ValidationError, limits, timestamp};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// The default earliest `started_at`: nkpath's data starts long after, and a clock reset to
/// 1970 must not slip into the reports.
pub const DEFAULT_EARLIEST: OffsetDateTime = datetime!(2000-01-01 00:00:00 UTC);

/// The default tolerance for an agent's clock ahead of the collector's.
pub const DEFAULT_MAX_AHEAD: Duration = Duration::days(1);

/// The time rules in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// No result may start before this.
    pub earliest: OffsetDateTime,
    /// No result may start more than this after the collector's clock.
    pub max_ahead: Duration,
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self {
            earliest: DEFAULT_EARLIEST,
            max_ahead: DEFAULT_MAX_AHEAD,
        }
    }
}

impl TimeWindow {
    fn check(
        &self,
        started_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), ValidationError> {
        let refuse = |why: String| Err(ValidationError::new("started_at", why));
        if started_at < self.earliest {
            return refuse(format!(
                "{} is before {}: this collector stores no older results (check the agent's clock)",
                timestamp::stored(started_at),
                timestamp::stored(self.earliest)
            ));
        }
        if is_future(started_at, now, self.max_ahead) {
            return refuse(format!(
                "{} is in the future: more than {} h after the collector's clock ({}); \
                 check the agent's clock",
                timestamp::stored(started_at),
                self.max_ahead.whole_hours(),
                timestamp::stored(now)
            ));
        }
        Ok(())
    }
}

/// Whether `t` lies more than `max_ahead` after `now` (never true when `now + max_ahead`
/// is beyond what the time type holds).
pub fn is_future(t: OffsetDateTime, now: OffsetDateTime, max_ahead: Duration) -> bool {
    now.checked_add(max_ahead).is_some_and(|limit| t > limit)
}

/// Checks the size of a result's JSON, before it is decoded.
pub fn check_size(json: &str) -> Result<(), ValidationError> {
    if json.len() <= limits::RESULT_BYTES {
        return Ok(());
    }
    Err(ValidationError::new(
        "",
        format!(
            "{} bytes; a result is at most {} bytes",
            json.len(),
            limits::RESULT_BYTES
        ),
    ))
}

/// The rules for one batch or import: the time window and the target prefixes.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The time rule.
    pub window: TimeWindow,
    /// The target prefixes: every result's target lies in one of them.
    pub targets: Vec<Ipv4Net>,
    /// The collector's clock for the future rule.
    pub now: OffsetDateTime,
}

/// What an import does with a result whose target lies outside the target prefixes: it never
/// went toward the target network, so it is never an entry into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutsideTargets {
    /// Refuse it and count it (the default).
    #[default]
    Refuse,
    /// Store it as context (`--keep-outside`): kept for whoever reads the store, never
    /// counted in target reports or exports.
    KeepAsContext,
}

/// Where the rules of an import put a result that passed the time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Its target lies in the target prefixes.
    Target,
    /// Its target lies outside them.
    Outside,
}

impl Admission {
    /// Checks a decoded result (its size is checked before decoding, [`check_size`]).
    pub fn check(&self, record: &ResultRecord) -> Result<(), ValidationError> {
        self.check_target(record.target())?;
        self.window.check(record.started_at(), self.now)
    }

    /// The rules of an import, the same for every format: the time rule refuses (naming
    /// the field); a target outside the prefixes is not an error here but
    /// [`Placement::Outside`], which the import refuses and counts or keeps as context.
    pub fn place(&self, record: &ResultRecord) -> Result<Placement, ValidationError> {
        self.window.check(record.started_at(), self.now)?;
        Ok(if self.in_targets(record.target()) {
            Placement::Target
        } else {
            Placement::Outside
        })
    }

    /// Whether `target` lies in one of the target prefixes.
    pub fn in_targets(&self, target: Ipv4Addr) -> bool {
        self.targets.iter().any(|p| p.contains(&target))
    }

    fn check_target(&self, target: Ipv4Addr) -> Result<(), ValidationError> {
        if self.in_targets(target) {
            return Ok(());
        }
        let prefixes: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        Err(ValidationError::new(
            "target",
            format!(
                "{target} is outside this collector's target prefixes ({}); agents probe only these",
                prefixes.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_future_rule_never_overflows() {
        let now = datetime!(2025-01-01 00:00:00 UTC);
        assert!(!is_future(
            now + Duration::hours(24),
            now,
            DEFAULT_MAX_AHEAD
        ));
        assert!(is_future(now + Duration::hours(25), now, DEFAULT_MAX_AHEAD));
        let last = datetime!(9999-12-31 23:59:59.999_999_999 UTC);
        assert!(!is_future(last, last, DEFAULT_MAX_AHEAD));
    }
}
