//! Building Paris traceroute probes.
//!
//! A load balancer that splits traffic per flow hashes some header fields
//! (usually addresses, protocol and the first 4 bytes of the transport
//! header: the ports, or ICMP type, code and checksum) and sends every
//! packet with the same hash down the same path. Classic traceroute varies
//! exactly those bytes from probe to probe (UDP destination port, ICMP
//! sequence number and therefore checksum), so successive TTLs can take
//! different paths and the trace shows links that do not exist. Paris
//! traceroute (Augustin et al., IMC 2006) keeps the hashed fields constant
//! for a whole trace and puts the per-probe identity somewhere else that
//! still comes back in every reply. [`Flow`] documents where, per protocol.
//!
//! Probes are written whole, IPv4 header included, for a raw socket with
//! `IP_HDRINCL`: see [`build_probe`].

use std::net::Ipv4Addr;

use pnet_packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet_packet::icmp::{self, IcmpCode, IcmpPacket, IcmpTypes};
use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::tcp::{self, MutableTcpPacket};
use pnet_packet::udp::{self, MutableUdpPacket, UdpPacket};

use super::checksum::compensation_bytes;
use super::error::{PacketError, Result};
use super::icmp::ICMP_HEADER_LEN;
use super::ipv4::{IPV4_HEADER_LEN, ProbeIpv4Header};
use super::tcp::TCP_HEADER_LEN;
use super::types::{Port, ProbeIdentity, TcpFlags, TimeToLive};

/// The payload of every ICMP and UDP probe: it tells a network operator who
/// looks at a capture what the packets are and where to read about them.
/// (TCP probes carry no payload, see [`Flow::Tcp`].)
pub const PROBE_PAYLOAD_TAG: &[u8] = b"nkpath measurement probe https://github.com/nkpath/nkpath";

/// Length of the checksum compensation word that follows the tag.
pub const COMPENSATION_LEN: usize = 2;

/// Length of the UDP header.
const UDP_HEADER_LEN: usize = 8;

/// Conventional destination port of TCP probes: port 80 is open or
/// answered by a RST on most hosts, and rarely filtered.
pub const DEFAULT_TCP_DST_PORT: Port = Port(80);

/// Conventional destination port of UDP probes: the first port of classic
/// traceroute's range (IANA "traceroute"), almost never listened on, so
/// the target answers with port unreachable.
pub const DEFAULT_UDP_DST_PORT: Port = Port(33434);

/// The TCP window of a SYN probe: Linux's default, so the probe looks like
/// an ordinary connection attempt to stateful middleboxes.
const TCP_SYN_WINDOW: u16 = 64240;

/// Length of an ICMP or UDP probe: IPv4 + 8-byte header + tag + compensation.
const TAGGED_PROBE_LEN: usize =
    IPV4_HEADER_LEN + UDP_HEADER_LEN + PROBE_PAYLOAD_TAG.len() + COMPENSATION_LEN;
const _: () = assert!(
    ICMP_HEADER_LEN == UDP_HEADER_LEN,
    "ICMP and UDP probes share a length"
);
/// Length of a TCP probe: IPv4 + TCP header, no options, no payload.
const TCP_PROBE_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN;

/// The largest probe [`build_probe`] writes: a buffer this long fits any.
pub const MAX_PROBE_LEN: usize = if TAGGED_PROBE_LEN > TCP_PROBE_LEN {
    TAGGED_PROBE_LEN
} else {
    TCP_PROBE_LEN
};

/// A transport protocol of probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ICMP echo request.
    Icmp,
    /// UDP datagram.
    Udp,
    /// TCP SYN.
    Tcp,
}

impl Protocol {
    /// The IPv4 protocol number.
    #[must_use]
    pub const fn ip_protocol(self) -> u8 {
        self.ip_next_header().0
    }

    /// A lowercase name, for logs and errors.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Icmp => "icmp",
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }

    const fn ip_next_header(self) -> IpNextHeaderProtocol {
        match self {
            Self::Icmp => IpNextHeaderProtocols::Icmp,
            Self::Udp => IpNextHeaderProtocols::Udp,
            Self::Tcp => IpNextHeaderProtocols::Tcp,
        }
    }
}

/// The flow of a Paris trace: the protocol and the header values that stay
/// constant for every probe of the trace, so that per-flow load balancers
/// send every probe down the same path.
///
/// The per-probe [`ProbeIdentity`] goes into a field that is *not* hashed
/// and that comes back in every reply: inside the first 8 transport bytes
/// (all that RFC 792 routers must quote) for time exceeded and unreachable,
/// and in the echo reply or TCP answer from the target itself.
///
/// | protocol | constant per trace (hashed) | identity in | recovered from |
/// |---|---|---|---|
/// | ICMP echo | type 8, code 0, checksum, identifier | sequence number | quoted sequence; echo reply sequence |
/// | UDP | source and destination port | UDP checksum, IPv4 ID | quoted checksum |
/// | TCP SYN | source and destination port | sequence number − `seq_base` | quoted sequence; SYN-ACK or RST ack − 1 |
///
/// In every protocol the IPv4 ID also carries the identity (after the
/// TTL, the ID is the only IP field that varies), but nothing relies on
/// it: NATs rewrite it, and Linux replaces an ID of 0 with its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// ICMP echo requests.
    ///
    /// The identity is the sequence number, so without care the checksum
    /// would change with every probe. Two bytes after the payload tag
    /// compensate: they are chosen so that the ICMP checksum is always
    /// `checksum`. (The TTL is outside the ICMP checksum, so it does not
    /// disturb it.) Varying `checksum` between traces is how a multipath
    /// discovery would pick another path.
    Icmp {
        /// Echo identifier of every probe. On a raw socket the kernel
        /// leaves it alone (unlike ping sockets, which overwrite it), so it
        /// is ours to choose: the engine passes a per-process value, and
        /// replies to other processes' pings are told apart by it.
        identifier: u16,
        /// The ICMP checksum of every probe.
        checksum: u16,
    },
    /// UDP datagrams.
    ///
    /// The first 8 bytes of UDP, all that a router must quote, are the two
    /// ports (the flow), the length (constant) and the checksum: the only
    /// free field. So the checksum *is* the identity: two bytes after the
    /// payload tag are chosen so that the checksum over the pseudo-header,
    /// header and payload equals the identity. Identity 0 cannot be used,
    /// because a zero UDP checksum means "no checksum" (RFC 768) and
    /// middleboxes treat it specially; [`build_probe`] rejects it.
    Udp {
        /// Source port of every probe.
        src_port: Port,
        /// Destination port of every probe, e.g. [`DEFAULT_UDP_DST_PORT`].
        dst_port: Port,
    },
    /// TCP SYNs.
    ///
    /// The sequence number is `seq_base + identity` (wrapping), so it is
    /// quoted in time exceeded messages (bytes 4..8) and acknowledged by
    /// the target: both a SYN-ACK (open port) and a RST (closed port) to a
    /// SYN carry `ack = seq + 1`.
    ///
    /// TCP probes carry no payload, unlike ICMP and UDP: a RST acknowledges
    /// `seq + 1 + payload length`, which would break `ack − 1` matching,
    /// and some middleboxes drop SYNs that carry data.
    Tcp {
        /// Source port of every probe.
        src_port: Port,
        /// Destination port of every probe, e.g. [`DEFAULT_TCP_DST_PORT`].
        dst_port: Port,
        /// Offset added to the identity to form the sequence number. A
        /// random value per trace makes our SYNs unpredictable, as initial
        /// sequence numbers should be (RFC 6528).
        seq_base: u32,
    },
}

impl Flow {
    /// The protocol of the flow's probes.
    #[must_use]
    pub const fn protocol(&self) -> Protocol {
        match self {
            Self::Icmp { .. } => Protocol::Icmp,
            Self::Udp { .. } => Protocol::Udp,
            Self::Tcp { .. } => Protocol::Tcp,
        }
    }

    /// Length in bytes of every probe of this flow, IPv4 header included.
    #[must_use]
    pub const fn probe_len(&self) -> usize {
        match self {
            Self::Icmp { .. } | Self::Udp { .. } => TAGGED_PROBE_LEN,
            Self::Tcp { .. } => TCP_PROBE_LEN,
        }
    }
}

/// Everything that defines one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeSpec {
    /// Source address written into the IPv4 header. It must be an address
    /// of the sending host: replies come back to it.
    pub src: Ipv4Addr,
    /// The trace's target.
    pub dst: Ipv4Addr,
    /// Hop limit of this probe.
    pub ttl: TimeToLive,
    /// The trace's flow: protocol and constant header values.
    pub flow: Flow,
    /// This probe's identity within the trace.
    pub identity: ProbeIdentity,
}

/// Writes the probe described by `spec` at the start of `buf` and returns
/// its length, [`Flow::probe_len`].
///
/// The probe is a complete IPv4 datagram for a raw socket with
/// `IP_HDRINCL`: IHL 5 (no options), TOS 0, DF clear, ID = identity, all
/// checksums computed. Everything but the TTL, the IPv4 ID and header
/// checksum, and the identity-carrying field is identical for every probe
/// of a flow.
///
/// Fails if `buf` is shorter than the probe, or if the identity cannot be
/// encoded (0 for UDP). Never panics.
pub fn build_probe(spec: &ProbeSpec, buf: &mut [u8]) -> Result<usize> {
    let len = spec.flow.probe_len();
    let have = buf.len();
    let probe = buf
        .get_mut(..len)
        .ok_or(PacketError::BufferTooSmall { need: len, have })?;
    probe.fill(0);
    let (ip_header, transport) = probe.split_at_mut(IPV4_HEADER_LEN);
    match spec.flow {
        Flow::Icmp {
            identifier,
            checksum,
        } => emit_echo_request(transport, identifier, checksum, spec.identity)?,
        Flow::Udp { src_port, dst_port } => emit_udp(transport, spec, src_port, dst_port)?,
        Flow::Tcp {
            src_port,
            dst_port,
            seq_base,
        } => emit_tcp_syn(transport, spec, src_port, dst_port, seq_base)?,
    }
    ProbeIpv4Header {
        src: spec.src,
        dst: spec.dst,
        ttl: spec.ttl,
        identification: spec.identity.0,
        protocol: spec.flow.protocol().ip_next_header(),
        payload_len: transport.len(),
    }
    .emit(ip_header)?;
    Ok(len)
}

/// The error for a pnet view that does not fit `have` bytes: unreachable,
/// as every transport buffer is sized by [`Flow::probe_len`], but reported
/// rather than panicking.
const fn too_small(need: usize, have: usize) -> PacketError {
    PacketError::BufferTooSmall { need, have }
}

/// Writes the tag after the `header_len`-byte transport header and returns
/// the offset of the (zeroed) compensation word, relative to that header.
fn write_tag(message: &mut [u8], header_len: usize) -> Result<usize> {
    let compensation_at = header_len + PROBE_PAYLOAD_TAG.len();
    let have = message.len();
    message
        .get_mut(header_len..compensation_at)
        .ok_or(too_small(compensation_at, have))?
        .copy_from_slice(PROBE_PAYLOAD_TAG);
    Ok(compensation_at)
}

/// Writes the two compensation bytes at `at`.
fn write_compensation(message: &mut [u8], at: usize, bytes: [u8; COMPENSATION_LEN]) -> Result<()> {
    let (need, have) = (at + COMPENSATION_LEN, message.len());
    message
        .get_mut(at..need)
        .ok_or(too_small(need, have))?
        .copy_from_slice(&bytes);
    Ok(())
}

fn emit_echo_request(
    message: &mut [u8],
    identifier: u16,
    checksum: u16,
    identity: ProbeIdentity,
) -> Result<()> {
    let compensation_at = write_tag(message, ICMP_HEADER_LEN)?;
    let have = message.len();
    let mut echo =
        MutableEchoRequestPacket::new(message).ok_or(too_small(ICMP_HEADER_LEN, have))?;
    echo.set_icmp_type(IcmpTypes::EchoRequest);
    echo.set_icmp_code(IcmpCode(0));
    echo.set_identifier(identifier);
    echo.set_sequence_number(identity.0);
    echo.set_checksum(checksum);
    let computed =
        icmp::checksum(&IcmpPacket::new(message).ok_or(too_small(ICMP_HEADER_LEN, have))?);
    write_compensation(
        message,
        compensation_at,
        compensation_bytes(computed, checksum, compensation_at),
    )
}

fn emit_udp(message: &mut [u8], spec: &ProbeSpec, src_port: Port, dst_port: Port) -> Result<()> {
    if spec.identity.0 == 0 {
        return Err(PacketError::UnencodableIdentity {
            protocol: Protocol::Udp.name(),
            identity: 0,
            why: "the UDP checksum carries the identity, and a zero checksum means \"no checksum\"",
        });
    }
    let compensation_at = write_tag(message, UDP_HEADER_LEN)?;
    let have = message.len();
    let length = u16::try_from(have).map_err(|_| too_small(usize::from(u16::MAX), have))?;
    let mut datagram = MutableUdpPacket::new(message).ok_or(too_small(UDP_HEADER_LEN, have))?;
    datagram.set_source(src_port.0);
    datagram.set_destination(dst_port.0);
    datagram.set_length(length);
    datagram.set_checksum(spec.identity.0);
    let computed = udp::ipv4_checksum(
        &UdpPacket::new(message).ok_or(too_small(UDP_HEADER_LEN, have))?,
        &spec.src,
        &spec.dst,
    );
    // The 12-byte pseudo-header keeps word alignment, so offsets relative
    // to the UDP header are the offsets the checksum sees.
    write_compensation(
        message,
        compensation_at,
        compensation_bytes(computed, spec.identity.0, compensation_at),
    )
}

fn emit_tcp_syn(
    message: &mut [u8],
    spec: &ProbeSpec,
    src_port: Port,
    dst_port: Port,
    seq_base: u32,
) -> Result<()> {
    let have = message.len();
    let mut segment = MutableTcpPacket::new(message).ok_or(too_small(TCP_HEADER_LEN, have))?;
    segment.set_source(src_port.0);
    segment.set_destination(dst_port.0);
    segment.set_sequence(seq_base.wrapping_add(u32::from(spec.identity.0)));
    segment.set_acknowledgement(0);
    segment.set_data_offset((TCP_HEADER_LEN / 4) as u8);
    segment.set_flags(TcpFlags::SYN.0);
    segment.set_window(TCP_SYN_WINDOW);
    segment.set_urgent_ptr(0);
    segment.set_checksum(0);
    let checksum = tcp::ipv4_checksum(&segment.to_immutable(), &spec.src, &spec.dst);
    segment.set_checksum(checksum);
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use pnet_packet::Packet;
    use pnet_packet::ipv4::{self, Ipv4Packet};
    use pnet_packet::tcp::TcpPacket;

    use super::*;
    use crate::probing::packet::checksum::verifies;
    use crate::probing::packet::test_util::hex;

    pub const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);
    pub const DST: Ipv4Addr = Ipv4Addr::new(10, 77, 2, 2);
    pub const ICMP_FLOW: Flow = Flow::Icmp {
        identifier: 0x6e6b,
        checksum: 0x1234,
    };
    pub const UDP_FLOW: Flow = Flow::Udp {
        src_port: Port(40001),
        dst_port: DEFAULT_UDP_DST_PORT,
    };
    pub const TCP_FLOW: Flow = Flow::Tcp {
        src_port: Port(40002),
        dst_port: DEFAULT_TCP_DST_PORT,
        seq_base: 0x6e6b_0000,
    };

    /// The tag in hex, as it appears in every ICMP and UDP probe.
    const TAG_HEX: &str = "6e6b70617468206d6561737572656d656e742070726f6265
                           2068747470733a2f2f6769746875622e636f6d2f6e6b706174682f6e6b70617468";

    pub fn build(flow: Flow, ttl: u8, identity: u16) -> Vec<u8> {
        let spec = ProbeSpec {
            src: SRC,
            dst: DST,
            ttl: TimeToLive(ttl),
            flow,
            identity: ProbeIdentity(identity),
        };
        let mut buf = [0_u8; MAX_PROBE_LEN];
        let len = build_probe(&spec, &mut buf).unwrap();
        buf[..len].to_vec()
    }

    fn assert_ipv4_header_checksum(probe: &[u8]) {
        let header = Ipv4Packet::new(probe).unwrap();
        assert_eq!(ipv4::checksum(&header), header.get_checksum());
    }

    #[test]
    fn tag_is_what_operators_will_read() {
        assert_eq!(hex(TAG_HEX), PROBE_PAYLOAD_TAG);
    }

    #[test]
    fn icmp_probe_bytes() {
        let probe = build(ICMP_FLOW, 3, 7);
        let expected = [
            hex("45000057 0007 0000 0301 a002 0a4d0102 0a4d0202"),
            hex("0800 1234 6e6b 0007"),
            hex(TAG_HEX),
            hex("35bc"),
        ]
        .concat();
        assert_eq!(probe, expected);
        assert_ipv4_header_checksum(&probe);
        let message = IcmpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
        assert_eq!(icmp::checksum(&message), 0x1234);
    }

    #[test]
    fn udp_probe_bytes() {
        let probe = build(UDP_FLOW, 3, 7);
        let expected = [
            hex("45000057 0007 0000 0311 9ff2 0a4d0102 0a4d0202"),
            hex("9c41 829a 0043 0007"),
            hex(TAG_HEX),
            hex("c40d"),
        ]
        .concat();
        assert_eq!(probe, expected);
        assert_ipv4_header_checksum(&probe);
        let datagram = UdpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
        assert_eq!(udp::ipv4_checksum(&datagram, &SRC, &DST), 7);
        assert_eq!(usize::from(datagram.get_length()), datagram.packet().len());
    }

    #[test]
    fn tcp_probe_bytes() {
        let probe = build(TCP_FLOW, 3, 7);
        let expected = [
            hex("45000028 0007 0000 0306 a02c 0a4d0102 0a4d0202"),
            hex("9c42 0050 6e6b0007 00000000 5002 faf0 924f 0000"),
        ]
        .concat();
        assert_eq!(probe, expected);
        assert_ipv4_header_checksum(&probe);
        let segment = TcpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
        assert_eq!(
            tcp::ipv4_checksum(&segment, &SRC, &DST),
            segment.get_checksum()
        );
    }

    /// The flow identifier must not depend on the TTL or the identity:
    /// that is the whole point of Paris traceroute.
    #[test]
    fn flow_identifier_is_constant_across_identities_and_ttls() {
        for (flow, first_identity) in [(ICMP_FLOW, 0), (UDP_FLOW, 1), (TCP_FLOW, 0)] {
            let reference = build(flow, 1, first_identity);
            // ICMP: type, code, checksum. UDP/TCP: the two ports.
            let hashed = IPV4_HEADER_LEN..IPV4_HEADER_LEN + 4;
            for identity in first_identity..first_identity + 1000 {
                for ttl in 1..=32 {
                    let probe = build(flow, ttl, identity);
                    assert_eq!(
                        probe[hashed.clone()],
                        reference[hashed.clone()],
                        "{flow:?} ttl {ttl} id {identity}"
                    );
                    // IPv4: everything but ID, TTL and header checksum.
                    for constant in [0..4, 6..8, 9..10, 12..20] {
                        assert_eq!(probe[constant.clone()], reference[constant]);
                    }
                    assert_eq!(probe[8], ttl);
                    assert_eq!(probe.len(), reference.len());
                }
            }
        }
    }

    #[test]
    fn every_checksum_verifies_for_extreme_identities() {
        for identity in [1_u16, 2, 0x7fff, 0x8000, 0xfffe, 0xffff] {
            let probe = build(UDP_FLOW, 9, identity);
            let datagram = UdpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
            assert_eq!(datagram.get_checksum(), identity);
            assert!(
                verifies(identity, udp::ipv4_checksum(&datagram, &SRC, &DST)),
                "udp {identity:#x}"
            );

            let probe = build(ICMP_FLOW, 9, identity);
            let message = IcmpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
            assert_eq!(message.get_checksum(), 0x1234);
            assert!(
                verifies(0x1234, icmp::checksum(&message)),
                "icmp {identity:#x}"
            );
        }
        // ICMP flows may pin any checksum, both zeros included.
        for checksum in [0x0000, 0xffff] {
            let probe = build(
                Flow::Icmp {
                    identifier: 1,
                    checksum,
                },
                9,
                77,
            );
            let message = IcmpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
            assert_eq!(message.get_checksum(), checksum);
            assert!(verifies(checksum, icmp::checksum(&message)));
        }
    }

    #[test]
    fn tcp_sequence_wraps() {
        let flow = Flow::Tcp {
            src_port: Port(1),
            dst_port: Port(2),
            seq_base: u32::MAX,
        };
        let probe = build(flow, 1, 2);
        let segment = TcpPacket::new(&probe[IPV4_HEADER_LEN..]).unwrap();
        assert_eq!(segment.get_sequence(), 1);
    }

    #[test]
    fn udp_identity_zero_is_rejected() {
        let spec = ProbeSpec {
            src: SRC,
            dst: DST,
            ttl: TimeToLive(1),
            flow: UDP_FLOW,
            identity: ProbeIdentity(0),
        };
        let mut buf = [0_u8; MAX_PROBE_LEN];
        assert!(matches!(
            build_probe(&spec, &mut buf),
            Err(PacketError::UnencodableIdentity {
                protocol: "udp",
                identity: 0,
                ..
            })
        ));
    }

    #[test]
    fn short_buffer_is_rejected() {
        for flow in [ICMP_FLOW, UDP_FLOW, TCP_FLOW] {
            let spec = ProbeSpec {
                src: SRC,
                dst: DST,
                ttl: TimeToLive(1),
                flow,
                identity: ProbeIdentity(1),
            };
            let mut buf = vec![0_u8; flow.probe_len() - 1];
            assert_eq!(
                build_probe(&spec, &mut buf),
                Err(PacketError::BufferTooSmall {
                    need: flow.probe_len(),
                    have: flow.probe_len() - 1
                })
            );
        }
    }
}
