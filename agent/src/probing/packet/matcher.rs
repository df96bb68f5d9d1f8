//! Pairing a parsed [`Reply`] with the probe that caused it.
//!
//! A raw socket sees every ICMP message and TCP segment the host receives:
//! replies to our other traces, to other processes' pings and traceroutes,
//! scans. A reply is ours only if everything that the flow fixes matches;
//! then the field that carries the identity gives the probe. Whatever does
//! not match returns `None`: not an error, just someone else's packet,
//! which the engine counts.

use std::net::Ipv4Addr;

use super::icmp::ICMP_ECHO_REQUEST;
use super::probe::Flow;
use super::reply::{QuotedProbe, QuotedTransport, Reply};
use super::types::{ProbeIdentity, TcpFlags};

/// The identity of the probe of `flow` toward `target` that `reply`
/// answers, or `None` if it answers no such probe.
///
/// * Time exceeded / destination unreachable: the quoted destination must
///   be `target` and the quoted transport the flow's (ICMP: an echo request
///   with our identifier → identity = sequence; UDP: same ports → identity
///   = checksum; TCP: same ports → identity = seq − `seq_base`).
/// * Echo reply: from `target`, our identifier → identity = sequence.
/// * TCP: from `target`, ports swapped, SYN-ACK or RST with ACK →
///   identity = ack − 1 − `seq_base`.
///
/// Sequence-derived identities must fall within the 16 bits a probe can
/// carry; anything else is not a reply to one of our probes.
#[must_use]
pub fn probe_identity(reply: &Reply, flow: &Flow, target: Ipv4Addr) -> Option<ProbeIdentity> {
    match reply {
        Reply::TimeExceeded { quote, .. } | Reply::DestUnreachable { quote, .. } => {
            quoted_identity(quote, flow, target)
        }
        Reply::EchoReply {
            from,
            identifier,
            sequence,
            ..
        } => match flow {
            Flow::Icmp {
                identifier: ours, ..
            } if *from == target && identifier == ours => Some(ProbeIdentity(*sequence)),
            _ => None,
        },
        Reply::Tcp {
            from,
            src_port,
            dst_port,
            ack,
            flags,
            ..
        } => match flow {
            Flow::Tcp {
                src_port: our_src,
                dst_port: our_dst,
                seq_base,
            } if *from == target
                && src_port == our_dst
                && dst_port == our_src
                && answers_syn(*flags) =>
            {
                identity_from_sequence(ack.wrapping_sub(1), *seq_base)
            }
            _ => None,
        },
    }
}

fn quoted_identity(quote: &QuotedProbe, flow: &Flow, target: Ipv4Addr) -> Option<ProbeIdentity> {
    if quote.dst != target {
        return None;
    }
    match (flow, quote.transport) {
        (
            Flow::Icmp { identifier: ours, .. },
            QuotedTransport::Icmp { icmp_type: ICMP_ECHO_REQUEST, identifier, sequence, .. },
        ) if identifier == *ours => Some(ProbeIdentity(sequence)),
        (Flow::Udp { src_port: our_src, dst_port: our_dst }, QuotedTransport::Udp { src_port, dst_port, checksum })
            // A zero checksum is never sent (it would mean "no checksum").
            if src_port == *our_src && dst_port == *our_dst && checksum != 0 =>
        {
            Some(ProbeIdentity(checksum))
        }
        (Flow::Tcp { src_port: our_src, dst_port: our_dst, seq_base }, QuotedTransport::Tcp { src_port, dst_port, seq })
            if src_port == *our_src && dst_port == *our_dst =>
        {
            identity_from_sequence(seq, *seq_base)
        }
        _ => None,
    }
}

/// A SYN is answered by SYN-ACK (port open) or RST (closed); both have ACK
/// set, which makes the acknowledgment number meaningful.
fn answers_syn(flags: TcpFlags) -> bool {
    flags.contains(TcpFlags::ACK)
        && (flags.contains(TcpFlags::SYN) || flags.contains(TcpFlags::RST))
}

/// Inverts `seq = seq_base + identity` (mod 2³²).
fn identity_from_sequence(seq: u32, seq_base: u32) -> Option<ProbeIdentity> {
    u16::try_from(seq.wrapping_sub(seq_base))
        .ok()
        .map(ProbeIdentity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::probe::{MAX_PROBE_LEN, ProbeSpec, build_probe};
    use crate::probing::packet::test_util::*;
    use crate::probing::packet::types::{Port, TimeToLive};

    fn identity_of(fixture: &str, flow: &Flow, target: Ipv4Addr) -> Option<u16> {
        probe_identity(&Reply::parse(&hex(fixture)).unwrap(), flow, target)
            .map(|identity| identity.0)
    }

    /// Real replies to real nkpath probes give back the identity that was
    /// sent (flow number << 8 | TTL, see `test_util`).
    #[test]
    fn captured_replies_give_back_the_sent_identity() {
        let cases = [
            (TIME_EXCEEDED_ICMP, ICMP_FLOW, TARGET, 0x0101),
            (ECHO_REPLY, ICMP_FLOW, TARGET, 0x0102),
            (TIME_EXCEEDED_UDP, UDP_FLOW, TARGET, 0x0201),
            (PORT_UNREACHABLE, UDP_FLOW, TARGET, 0x0202),
            (TIME_EXCEEDED_TCP, TCP_OPEN_FLOW, TARGET, 0x0301),
            (SYN_ACK, TCP_OPEN_FLOW, TARGET, 0x0303),
            (RST, TCP_CLOSED_FLOW, TARGET, 0x0403),
            (ADMIN_PROHIBITED, UDP_FLOW, PROHIBITED, 0x0502),
        ];
        for (fixture, flow, target, identity) in cases {
            assert_eq!(
                identity_of(fixture, &flow, target),
                Some(identity),
                "{flow:?}"
            );
        }
    }

    #[test]
    fn replies_to_other_flows_do_not_match() {
        let flows = [ICMP_FLOW, UDP_FLOW, TCP_OPEN_FLOW, TCP_CLOSED_FLOW];
        let owners = [
            (TIME_EXCEEDED_ICMP, 0),
            (ECHO_REPLY, 0),
            (TIME_EXCEEDED_UDP, 1),
            (PORT_UNREACHABLE, 1),
            (TIME_EXCEEDED_TCP, 2),
            (SYN_ACK, 2),
            (RST, 3),
        ];
        for (fixture, owner) in owners {
            for (index, flow) in flows.iter().enumerate() {
                assert_eq!(
                    identity_of(fixture, flow, TARGET).is_some(),
                    index == owner,
                    "{flow:?}"
                );
            }
        }
    }

    #[test]
    fn wrong_inner_destination_does_not_match() {
        let elsewhere = Ipv4Addr::new(10, 77, 2, 99);
        for (fixture, flow) in [
            (TIME_EXCEEDED_ICMP, ICMP_FLOW),
            (TIME_EXCEEDED_UDP, UDP_FLOW),
            (TIME_EXCEEDED_TCP, TCP_OPEN_FLOW),
            (PORT_UNREACHABLE, UDP_FLOW),
        ] {
            assert_eq!(identity_of(fixture, &flow, elsewhere), None);
        }
        // Admin prohibited quotes 10.77.2.3, not the main target.
        assert_eq!(identity_of(ADMIN_PROHIBITED, &UDP_FLOW, TARGET), None);
    }

    #[test]
    fn answers_from_another_host_do_not_match() {
        let elsewhere = Ipv4Addr::new(10, 77, 2, 99);
        assert_eq!(identity_of(ECHO_REPLY, &ICMP_FLOW, elsewhere), None);
        assert_eq!(identity_of(SYN_ACK, &TCP_OPEN_FLOW, elsewhere), None);
    }

    #[test]
    fn other_identifier_or_ports_do_not_match() {
        let other_identifier = Flow::Icmp {
            identifier: 0x6e6c,
            checksum: 0xbeef,
        };
        assert_eq!(
            identity_of(TIME_EXCEEDED_ICMP, &other_identifier, TARGET),
            None
        );
        assert_eq!(identity_of(ECHO_REPLY, &other_identifier, TARGET), None);
        // The pinned checksum is not part of the match: a middlebox that
        // rewrote it did not make the reply someone else's.
        let other_checksum = Flow::Icmp {
            identifier: 0x6e6b,
            checksum: 0,
        };
        assert_eq!(
            identity_of(ECHO_REPLY, &other_checksum, TARGET),
            Some(0x0102)
        );
        let swapped = Flow::Udp {
            src_port: Port(33434),
            dst_port: Port(17001),
        };
        assert_eq!(identity_of(TIME_EXCEEDED_UDP, &swapped, TARGET), None);
        let other_src = Flow::Tcp {
            src_port: Port(17009),
            dst_port: Port(80),
            seq_base: 0x6e6b_0000,
        };
        assert_eq!(identity_of(SYN_ACK, &other_src, TARGET), None);
        assert_eq!(identity_of(TIME_EXCEEDED_TCP, &other_src, TARGET), None);
    }

    #[test]
    fn tcp_sequence_outside_the_identity_window_does_not_match() {
        // seq_base just above the probe's sequence number: seq − base wraps
        // to a huge value, not a 16-bit identity.
        let flow = Flow::Tcp {
            src_port: Port(17002),
            dst_port: Port(80),
            seq_base: 0x6e6b_0400,
        };
        assert_eq!(identity_of(TIME_EXCEEDED_TCP, &flow, TARGET), None);
        assert_eq!(identity_of(SYN_ACK, &flow, TARGET), None);
        let far = Flow::Tcp {
            src_port: Port(17002),
            dst_port: Port(80),
            seq_base: 0x6e6a_0000,
        };
        assert_eq!(identity_of(SYN_ACK, &far, TARGET), None);
    }

    #[test]
    fn tcp_segments_that_do_not_answer_a_syn_do_not_match() {
        let reply = Reply::parse(&hex(SYN_ACK)).unwrap();
        for flags in [
            TcpFlags::ACK,
            TcpFlags::SYN,
            TcpFlags::RST,
            TcpFlags::FIN.union(TcpFlags::ACK),
        ] {
            let Reply::Tcp {
                from,
                reply_ttl,
                src_port,
                dst_port,
                seq,
                ack,
                ..
            } = reply.clone()
            else {
                unreachable!()
            };
            let altered = Reply::Tcp {
                from,
                reply_ttl,
                src_port,
                dst_port,
                seq,
                ack,
                flags,
            };
            assert_eq!(
                probe_identity(&altered, &TCP_OPEN_FLOW, TARGET),
                None,
                "{flags:?}"
            );
        }
    }

    #[test]
    fn quoted_zero_udp_checksum_does_not_match() {
        let mut reply = Reply::parse(&hex(TIME_EXCEEDED_UDP)).unwrap();
        if let Reply::TimeExceeded { quote, .. } = &mut reply {
            quote.transport = QuotedTransport::Udp {
                src_port: Port(17001),
                dst_port: Port(33434),
                checksum: 0,
            };
        }
        assert_eq!(probe_identity(&reply, &UDP_FLOW, TARGET), None);
    }

    #[test]
    fn quoted_icmp_that_is_not_an_echo_request_does_not_match() {
        let mut reply = Reply::parse(&hex(TIME_EXCEEDED_ICMP)).unwrap();
        if let Reply::TimeExceeded { quote, .. } = &mut reply
            && let QuotedTransport::Icmp { icmp_type, .. } = &mut quote.transport
        {
            *icmp_type = 0;
        }
        assert_eq!(probe_identity(&reply, &ICMP_FLOW, TARGET), None);
    }

    /// Round trip through our own builder for many identities and TTLs,
    /// quoted whole (Linux) and minimally (RFC 792), and answered by the
    /// target.
    #[test]
    fn every_built_probe_is_recognised_in_its_replies() {
        let flows = [
            ICMP_FLOW,
            UDP_FLOW,
            TCP_OPEN_FLOW,
            Flow::Tcp {
                src_port: Port(1),
                dst_port: Port(2),
                seq_base: u32::MAX - 5,
            },
        ];
        let mut buf = [0_u8; MAX_PROBE_LEN];
        for flow in flows {
            for identity in (1..=u16::MAX).step_by(97).chain([u16::MAX]) {
                let ttl = TimeToLive((identity % 30) as u8 + 1);
                let spec = ProbeSpec {
                    src: PROBER,
                    dst: TARGET,
                    ttl,
                    flow,
                    identity: ProbeIdentity(identity),
                };
                let len = build_probe(&spec, &mut buf).unwrap();
                for quoted_len in [len, 28] {
                    let reply =
                        Reply::parse(&icmp_error(ROUTER, 11, 0, 0, &buf[..quoted_len], &[]))
                            .unwrap();
                    assert_eq!(reply.quote().unwrap().quoted_ttl, ttl);
                    assert_eq!(
                        probe_identity(&reply, &flow, TARGET),
                        Some(ProbeIdentity(identity)),
                        "{flow:?}"
                    );
                }
                let answer = match flow {
                    Flow::Icmp { identifier, .. } => Reply::EchoReply {
                        from: TARGET,
                        reply_ttl: TimeToLive(60),
                        identifier,
                        sequence: identity,
                    },
                    Flow::Udp { .. } => continue, // answered by port unreachable, covered above
                    Flow::Tcp {
                        src_port,
                        dst_port,
                        seq_base,
                    } => Reply::Tcp {
                        from: TARGET,
                        reply_ttl: TimeToLive(60),
                        src_port: dst_port,
                        dst_port: src_port,
                        seq: 12345,
                        ack: seq_base.wrapping_add(u32::from(identity)).wrapping_add(1),
                        flags: TcpFlags::RST.union(TcpFlags::ACK),
                    },
                };
                assert_eq!(
                    probe_identity(&answer, &flow, TARGET),
                    Some(ProbeIdentity(identity))
                );
            }
        }
    }
}
