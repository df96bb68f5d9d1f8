//! The packet layer of the Paris traceroute engine: building probes and
//! parsing replies. Pure code, no I/O.
//!
//! # Contract
//!
//! Borrowed from smoltcp's `wire` module:
//!
//! * **Views** ([`Ipv4View`], [`IcmpView`], [`TcpView`],
//!   [`IcmpExtensionView`]) wrap untrusted bytes. Each has one checked
//!   constructor that validates every length (and the checksums that can
//!   be verified); after it succeeds no accessor can panic. Field access
//!   goes through pnet_packet's packet types or named offsets.
//! * **Representations** ([`Reply`], [`QuotedProbe`]) are owned values
//!   holding only what the engine needs. [`Reply::parse`] builds them from
//!   a whole IPv4 datagram; [`probe_identity`] pairs them with probes
//!   without touching bytes.
//! * **Building** ([`build_probe`]) writes into the caller's buffer.
//!
//! Nothing here panics on any input: the unit tests feed every truncation
//! and thousands of mutations of real replies, and `agent/fuzz` fuzzes
//! [`Reply::parse`] with checksum checks disabled (`cfg(fuzzing)`).
//!
//! # Paris traceroute encoding
//!
//! Per-flow load balancers must see the same flow identifier for every
//! probe of a trace, and every reply must still name its probe. Where the
//! identity goes, per protocol, is documented on [`Flow`].
//!
//! # Example
//!
//! ```
//! use std::net::Ipv4Addr;
//! use nkpath_agent::probing::packet::{
//!     build_probe, probe_identity, Flow, Port, ProbeIdentity, ProbeSpec, Reply, TimeToLive,
//!     MAX_PROBE_LEN,
//! };
//!
//! let flow = Flow::Udp { src_port: Port(40001), dst_port: Port(33434) };
//! let target = Ipv4Addr::new(192, 0, 2, 1);
//! let spec = ProbeSpec {
//!     src: Ipv4Addr::new(198, 51, 100, 7),
//!     dst: target,
//!     ttl: TimeToLive(3),
//!     flow,
//!     identity: ProbeIdentity(42),
//! };
//! let mut buf = [0_u8; MAX_PROBE_LEN];
//! let len = build_probe(&spec, &mut buf)?;
//! // ... send &buf[..len] on a raw IP_HDRINCL socket; later, for each
//! // datagram read from the raw ICMP socket:
//! # let datagram: &[u8] = &[];
//! match Reply::parse(datagram) {
//!     Ok(reply) => match probe_identity(&reply, &flow, target) {
//!         Some(identity) => { /* look up the probe by identity */ }
//!         None => { /* someone else's packet: count it */ }
//!     },
//!     Err(error) if error.is_malformed() => { /* count as malformed */ }
//!     Err(_) => { /* irrelevant traffic */ }
//! }
//! # Ok::<(), nkpath_agent::probing::packet::PacketError>(())
//! ```

mod checksum;
mod error;
mod extension;
mod icmp;
mod ipv4;
mod matcher;
mod probe;
mod reply;
mod tcp;
mod types;

#[cfg(test)]
mod robustness_tests;
#[cfg(test)]
mod seed_corpus_tests;
#[cfg(test)]
mod test_util;

pub use error::{PacketError, Result};
pub use extension::{
    ExtensionObject, IcmpErrorBody, IcmpExtensionView, MplsLabelEntry, ORIGINAL_DATAGRAM_MIN_LEN,
};
pub use icmp::{
    ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_HEADER_LEN, ICMP_TIME_EXCEEDED,
    IcmpView, UNREACHABLE_ADMIN_PROHIBITED, UNREACHABLE_FRAGMENTATION_NEEDED, UNREACHABLE_HOST,
    UNREACHABLE_NET, UNREACHABLE_PORT, UNREACHABLE_PROTOCOL,
};
pub use ipv4::{IPV4_HEADER_LEN, Ipv4View, QUOTED_TRANSPORT_LEN};
pub use matcher::probe_identity;
pub use probe::{
    COMPENSATION_LEN, DEFAULT_TCP_DST_PORT, DEFAULT_UDP_DST_PORT, Flow, MAX_PROBE_LEN,
    PROBE_PAYLOAD_TAG, ProbeSpec, Protocol, build_probe,
};
pub use reply::{QuotedProbe, QuotedTransport, Reply};
pub use tcp::{TCP_HEADER_LEN, TcpView};
pub use types::{Port, ProbeIdentity, TcpFlags, TimeToLive};
