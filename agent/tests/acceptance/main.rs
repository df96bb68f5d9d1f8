//! The agent's acceptance tests in the emulated Internet, on real sockets: the agent
//! binary runs inside vantage-point namespaces the way the service runs it (as nobody,
//! with CAP_NET_RAW only) and its output is checked against the live routing tables
//! and against tcpdump captures taken inside the namespaces.
//!
//! One binary, so that tests on different testbeds and vantage points run side by
//! side (`vp_lock` keeps two tests off one vantage point):
//!
//! - `paths`: every probe of every TTL follows the path the routing tables give its
//!   flow, from each vantage point with each protocol; ECMP never splits a trace.
//! - `survey`: a survey of the whole block keeps the rate cap and the allowlist on the
//!   wire and ends each part of the block the way the border treats it; targets
//!   outside the allowlist are refused before any packet; the agent probes without
//!   root and with CAP_NET_RAW only.
//! - `rate_limited`: with realistic ICMP rate limits (a private testbed), rate-limited
//!   hops are recorded as silent and every reachable target is still reached.
//! - `mda`: `trace --mda` against scamper's `tracelb` on the ECMP paths of devp and jpvp,
//!   ICMP and UDP: every interface and link scamper finds, with at most as many probes.
//! - `silent_24`: a /24 silent behind a border that answers from inside the block (a
//!   private testbed) ends every trace on the gap limit, only its pilots going further.
//!
//! `cargo test -p nkpath-agent --test acceptance [paths::|survey::|rate_limited::|silent_24::|mda::]`

#[path = "../common/mod.rs"]
mod common;
mod mda;
mod paths;
mod rate_limited;
mod silent_24;
mod survey;
