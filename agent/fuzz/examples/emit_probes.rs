//! Prints the nkpath probes that `capture/capture-seeds.sh` sends in its
//! namespace testbed, one per line: `<name> <destination> <hex datagram>`.
//!
//! The replies to these probes become seed files named `nkpath-*`, and the
//! agent's `seed_corpus_tests` check that `probe_identity` recovers each
//! identity from them. The flows and the identity scheme (flow number in
//! the high byte, TTL in the low byte) are repeated there: keep both in step.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use nkpath_agent::probing::packet::{
    Flow, MAX_PROBE_LEN, Port, ProbeIdentity, ProbeSpec, TimeToLive, build_probe,
};

const SOURCE: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
/// pkt-b's address: answers everything.
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
/// pkt-b's second address: pkt-r rejects it with "admin prohibited".
const PROHIBITED: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 3);

fn main() {
    let flows: [(&str, u16, Flow, Ipv4Addr); 5] = [
        (
            "icmp",
            1,
            Flow::Icmp {
                identifier: 0x6e6b,
                checksum: 0xbeef,
            },
            TARGET,
        ),
        (
            "udp",
            2,
            Flow::Udp {
                src_port: Port(17001),
                dst_port: Port(33434),
            },
            TARGET,
        ),
        (
            "tcp-open",
            3,
            Flow::Tcp {
                src_port: Port(17002),
                dst_port: Port(80),
                seq_base: 0x6e6b_0000,
            },
            TARGET,
        ),
        (
            "tcp-closed",
            4,
            Flow::Tcp {
                src_port: Port(17003),
                dst_port: Port(81),
                seq_base: 0x6e6c_0000,
            },
            TARGET,
        ),
        (
            "udp-prohibited",
            5,
            Flow::Udp {
                src_port: Port(17001),
                dst_port: Port(33434),
            },
            PROHIBITED,
        ),
    ];
    let mut buf = [0_u8; MAX_PROBE_LEN];
    for (name, number, flow, dst) in flows {
        for ttl in 1..=3_u8 {
            let identity = ProbeIdentity(number << 8 | u16::from(ttl));
            let spec = ProbeSpec {
                src: SOURCE,
                dst,
                ttl: TimeToLive(ttl),
                flow,
                identity,
            };
            let len = build_probe(&spec, &mut buf).expect("capture probes are valid");
            let mut line = format!("{name}-ttl{ttl} {dst} ");
            for byte in &buf[..len] {
                write!(line, "{byte:02x}").expect("writing to a String cannot fail");
            }
            println!("{line}");
        }
    }
}
