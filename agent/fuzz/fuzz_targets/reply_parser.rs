//! Fuzzes the path every datagram from a raw socket takes: `Reply::parse`,
//! then `probe_identity` against one flow of each protocol, then `Debug`.
//!
//! Built with `--cfg fuzzing`, so checksum checks pass and mutations reach
//! the quote and extension parsers. Seeds: `corpus/reply_parser/`.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use nkpath_agent::probing::packet::{Flow, Port, Reply, probe_identity};

/// The flows of the captured seeds (see `examples/emit_probes.rs`), so that
/// mutations of real replies also reach the matcher's success paths.
const FLOWS: [Flow; 3] = [
    Flow::Icmp {
        identifier: 0x6e6b,
        checksum: 0xbeef,
    },
    Flow::Udp {
        src_port: Port(17001),
        dst_port: Port(33434),
    },
    Flow::Tcp {
        src_port: Port(17002),
        dst_port: Port(80),
        seq_base: 0x6e6b_0000,
    },
];
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);

fuzz_target!(|datagram: &[u8]| {
    match Reply::parse(datagram) {
        Ok(reply) => {
            for flow in &FLOWS {
                let _ = probe_identity(&reply, flow, TARGET);
            }
            let _ = format!("{reply:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
