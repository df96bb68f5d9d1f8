//! nkpath-agent: Paris traceroutes from a volunteer's vantage point.
//!
//! The library holds the agent's reusable, testable parts, in three rooms: [`probing`]
//! (packets, traces, the engine, pacing, sockets, privileges, targets, liveness), [`service`]
//! (configuration, spool, upload, status, the round loop) and [`cli`] (arguments, commands,
//! output). The binary in `main.rs` wires them together.

pub mod cli;
pub mod probing;
pub mod service;

// The flat paths of the earlier layout, so that code written against them still builds.
pub use cli::{commands, output};
pub use probing::{
    annotate, engine, liveness, network, pacing, packet, parking, privilege, sockets, start_order,
    targets, trace,
};
pub use service::{config, spool, spool_writer, status, upload};
