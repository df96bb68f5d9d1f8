//! The probing room: everything between a target list and trace results.
//!
//! [`packet`] (probe and reply formats as typed views over bytes), [`trace`] (one Paris
//! traceroute's state), [`engine`] (many traces at once over a [`network::Network`]),
//! [`pacing`] (the agent's and each /24's rate caps), [`parking`] and [`start_order`] (which
//! traces probe while others wait), [`mda`] (multipath traces: every branch of per-flow load
//! balancers, with a known confidence), [`stop_set`] (hops shared by a survey's traces, probed once), [`sockets`] (the raw sockets, the one real
//! [`network::Network`]), [`privilege`] (dropping root once they are open; [`accounts`] finds the user without NSS), [`targets`] (the
//! allowlist no probe may leave), [`liveness`] (ping sweeps) and [`annotate`] (hop names and
//! origin ASes over DNS).

pub mod accounts;
pub mod annotate;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod liveness;
pub mod mda;
pub mod network;
pub mod pacing;
pub mod packet;
pub mod parking;
pub mod privilege;
#[cfg(test)]
mod simnet;
pub mod sockets;
pub mod start_order;
pub mod stop_set;
pub mod targets;
pub mod trace;
