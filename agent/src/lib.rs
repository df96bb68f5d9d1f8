//! nkpath-agent: Paris traceroutes from a volunteer's vantage point.
//!
//! The library holds the agent's reusable, testable parts; the binary in
//! `main.rs` wires them to sockets, the schedule and the uploader.

pub mod annotate;
pub mod cli;
pub mod commands;
pub mod config;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod liveness;
pub mod network;
pub mod output;
pub mod pacing;
pub mod packet;
pub mod parking;
pub mod privilege;
pub mod service;
#[cfg(test)]
mod simnet;
pub mod sockets;
pub mod spool;
pub mod spool_writer;
pub mod start_order;
pub mod status;
pub mod targets;
pub mod trace;
pub mod upload;
