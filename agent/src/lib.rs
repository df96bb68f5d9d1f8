//! nkpath-agent: Paris traceroutes from a volunteer's vantage point.
//!
//! The library holds the agent's reusable, testable parts, in three rooms: [`probing`]
//! (packets, traces, the engine, pacing, sockets, privileges, targets, liveness), [`service`]
//! (configuration, spool, upload, status, the round loop) and [`cli`] (arguments, commands,
//! output). The binary in `main.rs` wires them together.

pub mod cli;
pub mod probing;
pub mod service;
