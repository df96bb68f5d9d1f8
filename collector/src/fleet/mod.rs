//! Fleet scheduling: the collector shares the tracing among the agents so that the probes
//! into each target /24 stay under a fleet-wide cap however many agents join.
//!
//! - [`schedule`]: the pure scheduler (a calendar of booked work per round).
//! - [`store`]: its settings, bookings and the work done, in the database, and the
//!   assignment an upload's acknowledgement carries ([`store::assign`]).
//! - [`report`]: `nkpath-collector fleet`.

pub mod report;
pub mod schedule;
pub mod store;
