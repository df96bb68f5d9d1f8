//! The database as the analysis's [`BgpSource`]: the BGP state at a time, built from the
//! loaded MRT files, and what the target settings name.

use time::OffsetDateTime;

use crate::analysis::AnalysisError;
use crate::analysis::source::BgpSource;
use crate::analysis::verdict::Adjacency;
use crate::bgp::BgpState;
use crate::bgp::timeline::{UpstreamChanges, upstream_changes};
use crate::store::Db;

impl BgpSource for Db {
    fn target_asn(&self) -> Result<u32, AnalysisError> {
        Ok(self.target()?.asn)
    }

    fn change_times(&self) -> Result<Vec<i64>, AnalysisError> {
        Ok(crate::bgp::state::change_times(self)?)
    }

    fn state_at(
        &self,
        t: OffsetDateTime,
        max_replay_age_s: i64,
    ) -> Result<Option<BgpState>, AnalysisError> {
        Ok(BgpState::at_with(self, t, max_replay_age_s)?)
    }

    fn adjacency(&self) -> Result<Adjacency, AnalysisError> {
        Ok(crate::bgp::adjacency::load_adjacency(self)?)
    }

    fn upstream_changes(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<UpstreamChanges, AnalysisError> {
        Ok(upstream_changes(self, from, until)?)
    }
}
