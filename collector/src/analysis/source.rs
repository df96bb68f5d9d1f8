//! What the analysis needs of BGP data, as a trait.
//!
//! The analysis core ([`super::trace::Analyzer`]) takes traces and a [`BgpSource`]; it never
//! reads a table. The database is one source (`sources::bgp`, outside the core: states built
//! from the loaded MRT files); [`MemoryBgp`] is another, built from routes in memory, so that
//! every verdict rule can be tested without SQL.

use time::OffsetDateTime;

use super::error::AnalysisError;
use super::verdict::Adjacency;
use crate::bgp::timeline::UpstreamChanges;
use crate::bgp::{AsPath, BgpState};

/// What the analysis needs of BGP data.
pub trait BgpSource {
    /// The target AS.
    fn target_asn(&self) -> Result<u32, AnalysisError>;

    /// Every time (UNIX seconds, ascending) at which the BGP state may change: between two
    /// such times the state is the same, so the analysis builds one per interval.
    fn change_times(&self) -> Result<Vec<i64>, AnalysisError>;

    /// The state at `t`, with updates replayed over a base only up to `max_replay_age_s`
    /// after it; `None` when there is no BGP data at `t`.
    fn state_at(
        &self,
        t: OffsetDateTime,
        max_replay_age_s: i64,
    ) -> Result<Option<BgpState>, AnalysisError>;

    /// The AS adjacencies of every loaded AS path (the border rule).
    fn adjacency(&self) -> Result<Adjacency, AnalysisError>;

    /// The changes of the announced upstream sets from `from` to `until`.
    fn upstream_changes(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UpstreamChanges, AnalysisError>;
}

/// BGP states held in memory (e.g. [`BgpState::from_rib`]), each valid from its time until
/// the next one's.
#[derive(Debug, Clone, Default)]
pub struct MemoryBgp {
    target_asn: u32,
    states: Vec<BgpState>,
    adjacency: Adjacency,
    changes: UpstreamChanges,
}

impl MemoryBgp {
    /// No BGP data yet, for the target AS `target_asn`.
    pub fn new(target_asn: u32) -> Self {
        Self {
            target_asn,
            ..Self::default()
        }
    }

    /// Adds a state; the AS paths of its target routes join the adjacencies.
    #[must_use]
    pub fn with_state(mut self, state: BgpState) -> Self {
        for (_, route) in state.target_routes() {
            self.adjacency.add(route.path);
        }
        let at = self.states.partition_point(|s| s.time() <= state.time());
        self.states.insert(at, state);
        self
    }

    /// Adds AS paths seen elsewhere in the table (not toward the target) to the adjacencies.
    #[must_use]
    pub fn with_paths<'p>(mut self, paths: impl IntoIterator<Item = &'p AsPath>) -> Self {
        for path in paths {
            self.adjacency.add(path);
        }
        self
    }

    /// Sets the changes of the announced upstream sets (none by default).
    #[must_use]
    pub fn with_changes(mut self, changes: UpstreamChanges) -> Self {
        self.changes = changes;
        self
    }
}

impl BgpSource for MemoryBgp {
    fn target_asn(&self) -> Result<u32, AnalysisError> {
        Ok(self.target_asn)
    }

    fn change_times(&self) -> Result<Vec<i64>, AnalysisError> {
        Ok(self.states.iter().map(BgpState::time).collect())
    }

    fn state_at(&self, t: OffsetDateTime, _: i64) -> Result<Option<BgpState>, AnalysisError> {
        let at = self
            .states
            .partition_point(|s| s.time() <= t.unix_timestamp());
        Ok(at.checked_sub(1).map(|i| self.states[i].clone()))
    }

    fn adjacency(&self) -> Result<Adjacency, AnalysisError> {
        Ok(self.adjacency.clone())
    }

    fn upstream_changes(
        &self,
        _: OffsetDateTime,
        _: OffsetDateTime,
    ) -> Result<UpstreamChanges, AnalysisError> {
        Ok(self.changes.clone())
    }
}
