//! Fleet scheduling: the collector shares the tracing among the agents so that the probes
//! into each target /24 stay under a fleet-wide cap however many agents join.
//!
//! - [`schedule`]: the pure scheduler (a calendar of booked work per round).
//! - [`bookkeeping`]: its settings, the work done, each agent's vantage, and the assignment
//!   an upload's acknowledgement carries ([`bookkeeping::account_upload`]); the tables are
//!   [`crate::store::fleet`]'s.
//! - [`report`]: `nkpath-collector fleet`.

pub mod bookkeeping;
pub mod report;
pub mod schedule;
