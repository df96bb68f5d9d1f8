//! Multipath traces: the Multipath Detection Algorithm (Augustin et al.,
//! Veitch et al.) with MDA-Lite's safe shortcut, a per-packet balancer check,
//! and a hard probe and time budget.
//!
//! A Paris traceroute holds one flow and sees one branch of each per-flow load
//! balancer. A multipath trace varies the flow identifier (the source port of
//! UDP and TCP probes, the checksum of ICMP probes), drawn from a seed so that
//! a run can be repeated, until every node's next hops are found with the
//! chosen confidence ([`rule`]). [`algorithm`] decides what to probe, with no
//! I/O; [`run`] sends it through the agent's pacer and allowlist.

pub mod algorithm;
pub mod rule;
pub mod run;
#[cfg(test)]
mod tests;

pub use rule::Confidence;
pub use run::{MdaConfig, trace};
