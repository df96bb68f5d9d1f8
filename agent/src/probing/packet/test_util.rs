//! Helpers and real reply fixtures shared by the packet layer's unit tests.
//!
//! The fixtures are real replies captured by
//! `agent/fuzz/capture/capture-seeds.sh` in its pkt-a (10.77.1.2) -- pkt-r
//! (10.77.1.1 / 10.77.2.1) -- pkt-b (10.77.2.2, 10.77.2.3) namespace chain:
//! Linux 6.x answering probes that nkpath's own `build_probe` wrote (the
//! flows of `agent/fuzz/examples/emit_probes.rs`, identity = flow number
//! << 8 | TTL). Each run of the script writes the same replies as seed files
//! of the same name to `agent/fuzz/corpus/reply_parser/`, differing only in
//! the fields a sender picks afresh (outer IP ID and checksums, TCP ISN).

use std::net::Ipv4Addr;

use pnet_packet::icmp::{self, IcmpPacket};
use pnet_packet::util;

use super::probe::Flow;
use super::types::Port;

/// Word index of the IPv4 header checksum.
const IPV4_CHECKSUM_WORD: usize = 5;

pub const PROBER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
pub const TARGET: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
/// pkt-r rejects traffic to this pkt-b address with ICMP admin-prohibited.
pub const PROHIBITED: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 3);

pub const ICMP_FLOW: Flow = Flow::Icmp {
    identifier: 0x6e6b,
    checksum: 0xbeef,
};
pub const UDP_FLOW: Flow = Flow::Udp {
    src_port: Port(17001),
    dst_port: Port(33434),
};
pub const TCP_OPEN_FLOW: Flow = Flow::Tcp {
    src_port: Port(17002),
    dst_port: Port(80),
    seq_base: 0x6e6b_0000,
};
pub const TCP_CLOSED_FLOW: Flow = Flow::Tcp {
    src_port: Port(17003),
    dst_port: Port(81),
    seq_base: 0x6e6c_0000,
};

/// `nkpath-time-exceeded-icmp-1`: pkt-r's time exceeded for ICMP probe
/// identity 0x0101 (TTL 1). Linux quotes the whole 87-byte probe, with the
/// TTL as received (1).
pub const TIME_EXCEEDED_ICMP: &str = "
    45c00073 d3b9 0000 4001 8f74 0a4d0101 0a4d0102
    0b00 f4ff 00000000
    45000057 0101 0000 0101 a108 0a4d0102 0a4d0202
    0800 beef 6e6b 0101
    6e6b70617468206d6561737572656d656e742070726f62652068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468
    800e";

/// `nkpath-time-exceeded-udp-1`: time exceeded for UDP probe 0x0201.
pub const TIME_EXCEEDED_UDP: &str = "
    45c00073 d41e 0000 4001 8f0f 0a4d0101 0a4d0102
    0b00 0cf2 00000000
    45000057 0201 0000 0111 9ff8 0a4d0102 0a4d0202
    4269 829a 0043 0201
    6e6b70617468206d6561737572656d656e742070726f62652068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468
    a265";

/// `nkpath-time-exceeded-tcp-1`: time exceeded for TCP probe 0x0301.
pub const TIME_EXCEEDED_TCP: &str = "
    45c00044 d48d 0000 4001 8ecf 0a4d0101 0a4d0102
    0b00 0cb8 00000000
    45000028 0301 0000 0106 9f32 0a4d0102 0a4d0202
    426a 0050 6e6b0301 00000000 5002 faf0 e92d 0000";

/// `nkpath-unreachable-port-udp-1`: pkt-b's port unreachable for UDP probe
/// 0x0202: the target received the probe and verified its UDP checksum
/// (a datagram with a bad checksum is dropped silently).
pub const PORT_UNREACHABLE: &str = "
    45c00073 0687 0000 3f01 5ca6 0a4d0202 0a4d0102
    0303 14ef 00000000
    45000057 0202 0000 0111 9ff7 0a4d0102 0a4d0202
    4269 829a 0043 0202
    6e6b70617468206d6561737572656d656e742070726f62652068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468
    a165";

/// `nkpath-unreachable-admin-prohibited-udp-1`: pkt-r's nftables
/// `reject with icmp type admin-prohibited` (code 13) for UDP probe 0x0502
/// toward 10.77.2.3.
pub const ADMIN_PROHIBITED: &str = "
    45c00073 d50c 0000 4001 8e21 0a4d0101 0a4d0102
    030d 14e6 00000000
    45000057 0502 0000 0111 9cf6 0a4d0102 0a4d0203
    4269 829a 0043 0502
    6e6b70617468206d6561737572656d656e742070726f62652068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468
    a062";

/// `nkpath-echo-reply-1`: pkt-b's echo reply to ICMP probe 0x0102.
pub const ECHO_REPLY: &str = "
    45000057 0675 0000 3f01 5d94 0a4d0202 0a4d0102
    0000 c6ef 6e6b 0102
    6e6b70617468206d6561737572656d656e742070726f62652068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468
    7f0e";

/// `nkpath-tcp-syn-ack-1`: pkt-b's SYN-ACK (port 80 open) to TCP probe
/// 0x0303: ack = 0x6e6b0303 + 1. Its TCP checksum is "wrong" (0x17bc, the
/// pseudo-header sum only): the segment crossed a veth with checksum
/// offload, which is why the parser does not verify TCP checksums.
pub const SYN_ACK: &str = "
    4500002c 0000 4000 3f06 242f 0a4d0202 0a4d0102
    0050 426a 6f0d8050 6e6b0304 6012 faf0 17bc 0000 020405b4";

/// `nkpath-tcp-rst-1`: pkt-b's RST (port 81 closed) to TCP probe 0x0403:
/// ack = 0x6e6c0403 + 1.
pub const RST: &str = "
    45000028 0000 4000 3f06 2433 0a4d0202 0a4d0102
    0051 426b 00000000 6e6c0404 5014 0000 e307 0000";

/// Every fixture above, with a name for assertion messages.
pub const ALL_FIXTURES: [(&str, &str); 8] = [
    ("time exceeded icmp", TIME_EXCEEDED_ICMP),
    ("time exceeded udp", TIME_EXCEEDED_UDP),
    ("time exceeded tcp", TIME_EXCEEDED_TCP),
    ("port unreachable", PORT_UNREACHABLE),
    ("admin prohibited", ADMIN_PROHIBITED),
    ("echo reply", ECHO_REPLY),
    ("syn-ack", SYN_ACK),
    ("rst", RST),
];

/// Decodes a hex string; whitespace (for grouping fields) is ignored.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(core::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// After a test edited or resized an ICMP datagram with a 20-byte IPv4
/// header: rewrites the IPv4 total length and header checksum and the ICMP
/// checksum, so that only the deliberate damage remains.
pub fn reseal_icmp(datagram: &mut [u8]) {
    let total_len = u16::try_from(datagram.len()).unwrap();
    datagram[2..4].copy_from_slice(&total_len.to_be_bytes());
    // Fixed 20 bytes, not the IHL: tests also reseal datagrams whose IHL
    // they broke on purpose.
    let header_sum = util::checksum(&datagram[..20], IPV4_CHECKSUM_WORD);
    datagram[10..12].copy_from_slice(&header_sum.to_be_bytes());
    if let Some(message) = datagram.get(20..).and_then(IcmpPacket::new) {
        let icmp_sum = icmp::checksum(&message);
        datagram[22..24].copy_from_slice(&icmp_sum.to_be_bytes());
    }
}

/// An ICMP error of `icmp_type`/`code` from `from` to [`PROBER`] quoting
/// `quote`, with an RFC 4884 `length_words` and an optional `extension`
/// appended, checksums correct.
pub fn icmp_error(
    from: Ipv4Addr,
    icmp_type: u8,
    code: u8,
    length_words: u8,
    quote: &[u8],
    extension: &[u8],
) -> Vec<u8> {
    let mut datagram = hex("45c00000 0000 0000 4001 0000");
    datagram.extend(from.octets());
    datagram.extend(PROBER.octets());
    datagram.extend([icmp_type, code, 0, 0, 0, length_words, 0, 0]);
    datagram.extend(quote);
    datagram.extend(extension);
    reseal_icmp(&mut datagram);
    datagram
}
