//! Parsing what comes back from the network into a typed [`Reply`].
//!
//! Raw ICMP and raw TCP sockets deliver whole IPv4 datagrams. Everything
//! the engine needs to pair a reply with a probe is lifted out here, into
//! plain values, so that matching ([`probe_identity`](super::probe_identity))
//! and the engine never touch bytes. This is smoltcp's `Repr` idea: views
//! check lengths, this layer checks meaning.

use std::net::Ipv4Addr;

use nkpath_proto::{ReplyKind, UnreachableCode};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmp::echo_request::EchoRequestPacket;
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::udp::UdpPacket;

use super::error::{PacketError, Result};
use super::extension::{IcmpErrorBody, MplsLabelEntry};
use super::icmp::{ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_TIME_EXCEEDED, IcmpView};
use super::ipv4::{Ipv4View, QUOTED_TRANSPORT_LEN};
use super::tcp::TcpView;
use super::types::{Port, TcpFlags, TimeToLive};

const PROTOCOL_ICMP: u8 = IpNextHeaderProtocols::Icmp.0;
const PROTOCOL_UDP: u8 = IpNextHeaderProtocols::Udp.0;
const PROTOCOL_TCP: u8 = IpNextHeaderProtocols::Tcp.0;

/// Offsets within the first 8 bytes of a quoted TCP header. pnet's
/// `TcpPacket` needs the full 20-byte header, which RFC 792 routers do not
/// quote, so these three fields are read directly.
mod quoted_tcp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
}

/// A reply to a probe, or something that looks like one: parsing proves
/// the bytes are well formed, not that the probe was ours (that is
/// [`probe_identity`](super::probe_identity)'s job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// ICMP time exceeded: a router on the path, `from`, discarded a probe
    /// whose TTL ran out.
    TimeExceeded {
        /// The router's address (source of the ICMP message).
        from: Ipv4Addr,
        /// TTL the reply arrived with (hints at the return path length).
        reply_ttl: TimeToLive,
        /// ICMP code (0: TTL exceeded in transit; 1: reassembly time).
        icmp_code: u8,
        /// The probe, as the router quoted it.
        quote: QuotedProbe,
        /// RFC 4950 MPLS label stack, top first; empty if none.
        mpls: Vec<MplsLabelEntry>,
        /// Why an ICMP extension structure was present but ignored; the
        /// hop is still valid, only `mpls` is lost.
        extension_error: Option<PacketError>,
    },
    /// ICMP destination unreachable: the target (port or protocol
    /// unreachable) or a router or firewall on the way (others, e.g.
    /// [`UNREACHABLE_ADMIN_PROHIBITED`](super::UNREACHABLE_ADMIN_PROHIBITED)).
    DestUnreachable {
        /// The sender's address.
        from: Ipv4Addr,
        /// TTL the reply arrived with.
        reply_ttl: TimeToLive,
        /// ICMP code, see the `UNREACHABLE_*` constants.
        icmp_code: u8,
        /// The probe, as the sender quoted it.
        quote: QuotedProbe,
        /// RFC 4950 MPLS label stack, top first; empty if none.
        mpls: Vec<MplsLabelEntry>,
        /// Why an ICMP extension structure was present but ignored.
        extension_error: Option<PacketError>,
    },
    /// ICMP echo reply: the target answered an ICMP probe.
    EchoReply {
        /// The target's address.
        from: Ipv4Addr,
        /// TTL the reply arrived with.
        reply_ttl: TimeToLive,
        /// Echo identifier, copied from the request.
        identifier: u16,
        /// Echo sequence number, copied from the request.
        sequence: u16,
    },
    /// A TCP segment: the target's SYN-ACK (open port) or RST (closed).
    Tcp {
        /// The target's address.
        from: Ipv4Addr,
        /// TTL the reply arrived with.
        reply_ttl: TimeToLive,
        /// The target's port (our probe's destination port).
        src_port: Port,
        /// Our port (our probe's source port).
        dst_port: Port,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number: our probe's sequence number + 1.
        ack: u32,
        /// Flags (SYN|ACK, or RST|ACK).
        flags: TcpFlags,
    },
}

/// The probe as quoted in an ICMP error: the IPv4 header fields and the
/// first 8 bytes of the transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedProbe {
    /// Source address of the probe (ours, unless a NAT rewrote it).
    pub src: Ipv4Addr,
    /// Destination address of the probe: the trace's target.
    pub dst: Ipv4Addr,
    /// TTL of the probe when the router quoted it (usually 0 or 1; more
    /// means the TTL was reset on the way, e.g. by a tunnel).
    pub quoted_ttl: TimeToLive,
    /// IPv4 identification of the probe.
    pub ip_id: u16,
    /// The transport fields that identify the probe.
    pub transport: QuotedTransport,
}

/// The first 8 bytes of a quoted transport header, per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotedTransport {
    /// An ICMP message (our echo requests).
    Icmp {
        /// ICMP type (8 for an echo request).
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// ICMP checksum (the flow's, for a Paris probe).
        checksum: u16,
        /// Echo identifier.
        identifier: u16,
        /// Echo sequence number.
        sequence: u16,
    },
    /// A UDP header.
    Udp {
        /// Source port.
        src_port: Port,
        /// Destination port.
        dst_port: Port,
        /// UDP checksum (the identity, for a Paris probe).
        checksum: u16,
    },
    /// The first 8 bytes of a TCP header.
    Tcp {
        /// Source port.
        src_port: Port,
        /// Destination port.
        dst_port: Port,
        /// Sequence number.
        seq: u32,
    },
}

impl Reply {
    /// Parses a whole IPv4 datagram as read from a raw ICMP or TCP socket.
    ///
    /// Fails on anything malformed (see [`PacketError::is_malformed`]) and
    /// on well-formed traffic that is not a traceroute reply (other ICMP
    /// types, other protocols, fragments). A malformed ICMP extension does
    /// not fail the parse: it is reported in `extension_error`.
    pub fn parse(datagram: &[u8]) -> Result<Self> {
        let ip = Ipv4View::new_checked(datagram)?;
        // Raw sockets receive reassembled datagrams; a fragment here was
        // crafted, and its payload does not start with a transport header.
        reject_fragment(&ip, "IPv4 datagram", true)?;
        match ip.protocol() {
            PROTOCOL_ICMP => Self::parse_icmp(&ip),
            PROTOCOL_TCP => Self::parse_tcp(&ip),
            protocol => Err(PacketError::UnsupportedProtocol {
                what: "IPv4 datagram",
                protocol,
            }),
        }
    }

    fn parse_icmp(ip: &Ipv4View<'_>) -> Result<Self> {
        let icmp = IcmpView::new_checked(ip.payload())?;
        let (from, reply_ttl, icmp_code) = (ip.source(), ip.ttl(), icmp.code());
        match icmp.icmp_type() {
            ICMP_ECHO_REPLY => Ok(Self::EchoReply {
                from,
                reply_ttl,
                identifier: icmp.echo_identifier(),
                sequence: icmp.echo_sequence(),
            }),
            icmp_type @ (ICMP_TIME_EXCEEDED | ICMP_DEST_UNREACHABLE) => {
                let body = IcmpErrorBody::split(icmp.body(), icmp.rfc4884_length_words());
                let quote = QuotedProbe::parse(body.original_datagram)?;
                let (mpls, extension_error) = match body.extensions {
                    None => (Vec::new(), None),
                    Some(Ok(extensions)) => (extensions.mpls_labels(), None),
                    Some(Err(error)) => (Vec::new(), Some(error)),
                };
                Ok(if icmp_type == ICMP_TIME_EXCEEDED {
                    Self::TimeExceeded {
                        from,
                        reply_ttl,
                        icmp_code,
                        quote,
                        mpls,
                        extension_error,
                    }
                } else {
                    Self::DestUnreachable {
                        from,
                        reply_ttl,
                        icmp_code,
                        quote,
                        mpls,
                        extension_error,
                    }
                })
            }
            icmp_type => Err(PacketError::UnsupportedIcmpType {
                icmp_type,
                code: icmp_code,
            }),
        }
    }

    fn parse_tcp(ip: &Ipv4View<'_>) -> Result<Self> {
        let tcp = TcpView::new_checked(ip.payload())?;
        Ok(Self::Tcp {
            from: ip.source(),
            reply_ttl: ip.ttl(),
            src_port: tcp.source(),
            dst_port: tcp.destination(),
            seq: tcp.sequence(),
            ack: tcp.acknowledgement(),
            flags: tcp.flags(),
        })
    }

    /// The address the reply came from (`from` of every variant).
    #[must_use]
    pub fn sender(&self) -> Ipv4Addr {
        match self {
            Self::TimeExceeded { from, .. }
            | Self::DestUnreachable { from, .. }
            | Self::EchoReply { from, .. }
            | Self::Tcp { from, .. } => *from,
        }
    }

    /// The TTL the reply arrived with.
    #[must_use]
    pub fn reply_ttl(&self) -> TimeToLive {
        match self {
            Self::TimeExceeded { reply_ttl, .. }
            | Self::DestUnreachable { reply_ttl, .. }
            | Self::EchoReply { reply_ttl, .. }
            | Self::Tcp { reply_ttl, .. } => *reply_ttl,
        }
    }

    /// The quoted probe, for ICMP errors.
    #[must_use]
    pub fn quote(&self) -> Option<&QuotedProbe> {
        match self {
            Self::TimeExceeded { quote, .. } | Self::DestUnreachable { quote, .. } => Some(quote),
            Self::EchoReply { .. } | Self::Tcp { .. } => None,
        }
    }

    /// What the reply says, in the terms of the wire format (which the results
    /// carry and the collector reads the same way).
    #[must_use]
    pub fn kind(&self) -> ReplyKind {
        match self {
            Self::TimeExceeded { icmp_code, .. } => ReplyKind::TimeExceeded { code: *icmp_code },
            Self::DestUnreachable { icmp_code, .. } => {
                ReplyKind::Unreachable(UnreachableCode::from(*icmp_code))
            }
            Self::EchoReply { .. } => ReplyKind::EchoReply,
            Self::Tcp { flags, .. } => ReplyKind::Tcp(nkpath_proto::TcpFlags(flags.0)),
        }
    }

    /// The MPLS label stack quoted in an ICMP error (RFC 4950), top first.
    #[must_use]
    pub fn mpls(&self) -> &[MplsLabelEntry] {
        match self {
            Self::TimeExceeded { mpls, .. } | Self::DestUnreachable { mpls, .. } => mpls,
            Self::EchoReply { .. } | Self::Tcp { .. } => &[],
        }
    }
}

impl QuotedProbe {
    /// Parses the original datagram field of an ICMP error.
    pub fn parse(original_datagram: &[u8]) -> Result<Self> {
        let ip = Ipv4View::new_checked_quote(original_datagram)?;
        // A first fragment (MF set, offset 0) still starts with the
        // transport header; a later one does not.
        reject_fragment(&ip, "quoted IPv4 datagram", false)?;
        Ok(Self {
            src: ip.source(),
            dst: ip.destination(),
            quoted_ttl: ip.ttl(),
            ip_id: ip.identification(),
            transport: QuotedTransport::parse(ip.protocol(), ip.payload())?,
        })
    }
}

impl QuotedTransport {
    /// Reads the identifying fields from the first 8 bytes of a quoted
    /// transport header of the given IP protocol.
    pub fn parse(protocol: u8, transport: &[u8]) -> Result<Self> {
        let truncated = PacketError::Truncated {
            what: "quoted transport header",
            need: QUOTED_TRANSPORT_LEN,
            have: transport.len(),
        };
        match protocol {
            PROTOCOL_ICMP => {
                // No checksum check: the quote may be truncated, and the
                // checksum is a value we compare, not one we verify.
                let icmp = IcmpPacket::new(transport).ok_or(truncated.clone())?;
                let echo = EchoRequestPacket::new(transport).ok_or(truncated)?;
                Ok(Self::Icmp {
                    icmp_type: icmp.get_icmp_type().0,
                    code: icmp.get_icmp_code().0,
                    checksum: icmp.get_checksum(),
                    identifier: echo.get_identifier(),
                    sequence: echo.get_sequence_number(),
                })
            }
            PROTOCOL_UDP => {
                let udp = UdpPacket::new(transport).ok_or(truncated)?;
                Ok(Self::Udp {
                    src_port: Port(udp.get_source()),
                    dst_port: Port(udp.get_destination()),
                    checksum: udp.get_checksum(),
                })
            }
            PROTOCOL_TCP => {
                let header: [u8; QUOTED_TRANSPORT_LEN] = transport
                    .get(..QUOTED_TRANSPORT_LEN)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or(truncated)?;
                let be_u16 = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
                let at = quoted_tcp::SEQ;
                Ok(Self::Tcp {
                    src_port: Port(be_u16(quoted_tcp::SRC_PORT)),
                    dst_port: Port(be_u16(quoted_tcp::DST_PORT)),
                    seq: u32::from_be_bytes([
                        header[at],
                        header[at + 1],
                        header[at + 2],
                        header[at + 3],
                    ]),
                })
            }
            protocol => Err(PacketError::UnsupportedProtocol {
                what: "quoted IPv4 datagram",
                protocol,
            }),
        }
    }
}

/// Rejects a datagram that does not start with its transport header (a
/// non-first fragment) or, when `whole` is required, any fragment at all.
fn reject_fragment(ip: &Ipv4View<'_>, what: &'static str, whole: bool) -> Result<()> {
    let (offset, more) = (ip.fragment_offset(), ip.more_fragments());
    if offset != 0 || (whole && more) {
        return Err(PacketError::Fragment { what, offset, more });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::extension::ORIGINAL_DATAGRAM_MIN_LEN;
    use crate::probing::packet::icmp::{
        ICMP_ECHO_REQUEST, UNREACHABLE_ADMIN_PROHIBITED, UNREACHABLE_PORT,
    };
    use crate::probing::packet::test_util::*;

    fn parse(fixture: &str) -> Reply {
        Reply::parse(&hex(fixture)).unwrap()
    }

    /// The probe quoted in `TIME_EXCEEDED_UDP`, 87 bytes.
    fn quoted_udp_probe() -> Vec<u8> {
        hex(TIME_EXCEEDED_UDP)[28..].to_vec()
    }

    /// RFC 4950 extension structure with one MPLS object of two entries.
    const TWO_LABELS: &str = "2000 2f0a  000c 0101  03e9 9001  0000 1bfe";
    const TWO_LABEL_STACK: [MplsLabelEntry; 2] = [
        MplsLabelEntry {
            label: 16025,
            traffic_class: 0,
            bottom_of_stack: false,
            ttl: TimeToLive(1),
        },
        MplsLabelEntry {
            label: 1,
            traffic_class: 5,
            bottom_of_stack: true,
            ttl: TimeToLive(254),
        },
    ];

    fn padded(quote: &[u8]) -> Vec<u8> {
        let mut padded = quote.to_vec();
        padded.resize(ORIGINAL_DATAGRAM_MIN_LEN, 0);
        padded
    }

    #[test]
    fn time_exceeded_quoting_an_icmp_probe() {
        assert_eq!(
            parse(TIME_EXCEEDED_ICMP),
            Reply::TimeExceeded {
                from: ROUTER,
                reply_ttl: TimeToLive(64),
                icmp_code: 0,
                quote: QuotedProbe {
                    src: PROBER,
                    dst: TARGET,
                    quoted_ttl: TimeToLive(1),
                    ip_id: 0x0101,
                    transport: QuotedTransport::Icmp {
                        icmp_type: ICMP_ECHO_REQUEST,
                        code: 0,
                        checksum: 0xbeef,
                        identifier: 0x6e6b,
                        sequence: 0x0101,
                    },
                },
                mpls: vec![],
                extension_error: None,
            }
        );
    }

    #[test]
    fn time_exceeded_quoting_a_udp_probe() {
        let reply = parse(TIME_EXCEEDED_UDP);
        let quote = reply.quote().unwrap();
        assert_eq!(
            quote.transport,
            QuotedTransport::Udp {
                src_port: Port(17001),
                dst_port: Port(33434),
                checksum: 0x0201
            }
        );
        assert_eq!(
            (quote.src, quote.dst, quote.ip_id),
            (PROBER, TARGET, 0x0201)
        );
        assert!(matches!(reply, Reply::TimeExceeded { icmp_code: 0, .. }));
    }

    #[test]
    fn time_exceeded_quoting_a_tcp_probe() {
        let reply = parse(TIME_EXCEEDED_TCP);
        assert_eq!(
            reply.quote().unwrap().transport,
            QuotedTransport::Tcp {
                src_port: Port(17002),
                dst_port: Port(80),
                seq: 0x6e6b_0301
            }
        );
        assert_eq!(reply.sender(), ROUTER);
    }

    #[test]
    fn minimal_rfc792_quote_is_enough() {
        // Routers that quote only the IPv4 header and 8 bytes.
        let quote = &quoted_udp_probe()[..28];
        let reply = Reply::parse(&icmp_error(ROUTER, 11, 0, 0, quote, &[])).unwrap();
        assert_eq!(
            reply.quote().unwrap().transport,
            parse(TIME_EXCEEDED_UDP).quote().unwrap().transport
        );
    }

    #[test]
    fn port_unreachable_from_the_target() {
        let reply = parse(PORT_UNREACHABLE);
        assert!(matches!(
            reply,
            Reply::DestUnreachable {
                icmp_code: UNREACHABLE_PORT,
                from: TARGET,
                ..
            }
        ));
        assert_eq!(reply.reply_ttl(), TimeToLive(63));
        assert_eq!(
            reply.quote().unwrap().transport,
            QuotedTransport::Udp {
                src_port: Port(17001),
                dst_port: Port(33434),
                checksum: 0x0202
            }
        );
    }

    #[test]
    fn admin_prohibited_from_a_filtering_router() {
        let reply = parse(ADMIN_PROHIBITED);
        assert!(matches!(
            reply,
            Reply::DestUnreachable {
                icmp_code: UNREACHABLE_ADMIN_PROHIBITED,
                from: ROUTER,
                ..
            }
        ));
        assert_eq!(reply.quote().unwrap().dst, PROHIBITED);
    }

    #[test]
    fn echo_reply() {
        assert_eq!(
            parse(ECHO_REPLY),
            Reply::EchoReply {
                from: TARGET,
                reply_ttl: TimeToLive(63),
                identifier: 0x6e6b,
                sequence: 0x0102
            }
        );
    }

    #[test]
    fn syn_ack_despite_offloaded_checksum() {
        assert_eq!(
            parse(SYN_ACK),
            Reply::Tcp {
                from: TARGET,
                reply_ttl: TimeToLive(63),
                src_port: Port(80),
                dst_port: Port(17002),
                seq: 0x6f0d_8050,
                ack: 0x6e6b_0304,
                flags: TcpFlags::SYN.union(TcpFlags::ACK),
            }
        );
    }

    #[test]
    fn rst() {
        let Reply::Tcp {
            flags,
            ack,
            src_port,
            ..
        } = parse(RST)
        else {
            panic!("not TCP")
        };
        assert_eq!(flags, TcpFlags::RST.union(TcpFlags::ACK));
        assert_eq!((ack, src_port), (0x6e6c_0404, Port(81)));
    }

    #[test]
    fn mpls_labels_rfc4884_layout() {
        let datagram = icmp_error(
            ROUTER,
            11,
            0,
            32,
            &padded(&quoted_udp_probe()),
            &hex(TWO_LABELS),
        );
        let Reply::TimeExceeded {
            mpls,
            extension_error,
            quote,
            ..
        } = Reply::parse(&datagram).unwrap()
        else {
            panic!("not time exceeded")
        };
        assert_eq!(mpls, TWO_LABEL_STACK);
        assert_eq!(extension_error, None);
        assert_eq!(quote, *parse(TIME_EXCEEDED_UDP).quote().unwrap());
    }

    #[test]
    fn mpls_labels_compat_layout() {
        let datagram = icmp_error(
            ROUTER,
            11,
            0,
            0,
            &padded(&quoted_udp_probe()),
            &hex(TWO_LABELS),
        );
        let Reply::TimeExceeded {
            mpls,
            extension_error,
            ..
        } = Reply::parse(&datagram).unwrap()
        else {
            panic!("not time exceeded")
        };
        assert_eq!(mpls, TWO_LABEL_STACK);
        assert_eq!(extension_error, None);
    }

    #[test]
    fn mpls_on_dest_unreachable() {
        let datagram = icmp_error(
            TARGET,
            3,
            3,
            32,
            &padded(&quoted_udp_probe()),
            &hex(TWO_LABELS),
        );
        assert!(
            matches!(Reply::parse(&datagram).unwrap(), Reply::DestUnreachable { mpls, .. } if mpls.len() == 2)
        );
    }

    /// A broken extension costs the labels, never the hop.
    fn parse_with_extension(
        extension: &[u8],
        length_words: u8,
    ) -> (Vec<MplsLabelEntry>, Option<PacketError>) {
        let datagram = icmp_error(
            ROUTER,
            11,
            0,
            length_words,
            &padded(&quoted_udp_probe()),
            extension,
        );
        match Reply::parse(&datagram).unwrap() {
            Reply::TimeExceeded {
                mpls,
                extension_error,
                quote,
                ..
            } => {
                assert_eq!(
                    quote.transport,
                    parse(TIME_EXCEEDED_UDP).quote().unwrap().transport
                );
                (mpls, extension_error)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extension_object_length_below_four_keeps_the_hop() {
        let mut extension = hex(TWO_LABELS);
        extension[4..6].copy_from_slice(&2_u16.to_be_bytes());
        extension[2..4].fill(0); // no checksum: only the length is wrong
        let (mpls, error) = parse_with_extension(&extension, 32);
        assert!(mpls.is_empty());
        assert_eq!(
            error,
            Some(PacketError::BadLength {
                what: "ICMP extension object",
                value: 2,
                min: 4
            })
        );
    }

    #[test]
    fn extension_object_past_the_end_keeps_the_hop() {
        let mut extension = hex(TWO_LABELS);
        extension[4..6].copy_from_slice(&40_u16.to_be_bytes());
        extension[2..4].fill(0);
        let (mpls, error) = parse_with_extension(&extension, 32);
        assert!(mpls.is_empty());
        assert_eq!(
            error,
            Some(PacketError::Truncated {
                what: "ICMP extension object",
                need: 40,
                have: 12
            })
        );
    }

    #[test]
    fn extension_version_1_keeps_the_hop() {
        let mut extension = hex(TWO_LABELS);
        extension[0] = 0x10;
        let (mpls, error) = parse_with_extension(&extension, 32);
        assert!(mpls.is_empty());
        assert!(matches!(
            error,
            Some(PacketError::BadVersion {
                found: 1,
                expected: 2,
                ..
            })
        ));
    }

    #[test]
    fn extension_with_bad_checksum_keeps_the_hop() {
        let mut extension = hex(TWO_LABELS);
        extension[15] ^= 0xff;
        let (mpls, error) = parse_with_extension(&extension, 32);
        assert!(mpls.is_empty());
        assert!(matches!(error, Some(PacketError::BadChecksum { .. })));
    }

    #[test]
    fn rfc4884_length_past_the_message_keeps_the_hop() {
        let datagram = icmp_error(ROUTER, 11, 0, 40, &quoted_udp_probe(), &[]);
        let Reply::TimeExceeded {
            mpls,
            extension_error,
            ..
        } = Reply::parse(&datagram).unwrap()
        else {
            panic!("not time exceeded")
        };
        assert!(mpls.is_empty());
        assert!(matches!(
            extension_error,
            Some(PacketError::Truncated {
                need: 160,
                have: 87,
                ..
            })
        ));
    }

    #[test]
    fn rejects_truncated_outer_datagram() {
        let bytes = hex(TIME_EXCEEDED_UDP);
        assert_eq!(
            Reply::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            PacketError::Truncated {
                what: "IPv4 datagram",
                need: 115,
                have: 114
            }
        );
    }

    #[test]
    fn rejects_outer_ihl_below_five() {
        let mut bytes = hex(ECHO_REPLY);
        bytes[0] = 0x43;
        assert!(matches!(
            Reply::parse(&bytes),
            Err(PacketError::BadLength {
                value: 12,
                min: 20,
                ..
            })
        ));
    }

    #[test]
    fn rejects_outer_ihl_past_the_buffer() {
        let bytes = hex(SYN_ACK);
        let mut short = bytes[..30].to_vec();
        short[0] = 0x48; // 32-byte header in 30 bytes
        assert_eq!(
            Reply::parse(&short).unwrap_err(),
            PacketError::Truncated {
                what: "IPv4 datagram",
                need: 32,
                have: 30
            }
        );
    }

    #[test]
    fn rejects_wrong_icmp_checksum() {
        let mut bytes = hex(TIME_EXCEEDED_ICMP);
        bytes[60] ^= 0x20; // one bit of the quoted payload
        assert_eq!(
            Reply::parse(&bytes).unwrap_err(),
            PacketError::BadChecksum {
                what: "ICMP message",
                found: 0xf4ff
            }
        );
    }

    #[test]
    fn rejects_quote_shorter_than_inner_header_plus_eight() {
        let quote = quoted_udp_probe();
        let datagram = icmp_error(ROUTER, 11, 0, 0, &quote[..27], &[]);
        assert_eq!(
            Reply::parse(&datagram).unwrap_err(),
            PacketError::Truncated {
                what: "quoted IPv4 datagram",
                need: 28,
                have: 27
            }
        );
        // The inner IHL counts: with 8 bytes of options, 36 are needed.
        let mut with_options = quote[..20].to_vec();
        with_options[0] = 0x47;
        with_options.extend([1; 8]); // NOP options
        with_options.extend(&quote[20..27]);
        let datagram = icmp_error(ROUTER, 11, 0, 0, &with_options, &[]);
        assert_eq!(
            Reply::parse(&datagram).unwrap_err(),
            PacketError::Truncated {
                what: "quoted IPv4 datagram",
                need: 36,
                have: 35
            }
        );
    }

    #[test]
    fn inner_options_are_skipped() {
        let quote = quoted_udp_probe();
        let mut with_options = quote[..20].to_vec();
        with_options[0] = 0x46;
        with_options.extend([1; 4]);
        with_options.extend(&quote[20..]);
        let reply = Reply::parse(&icmp_error(ROUTER, 11, 0, 0, &with_options, &[])).unwrap();
        assert_eq!(
            reply.quote().unwrap().transport,
            parse(TIME_EXCEEDED_UDP).quote().unwrap().transport
        );
    }

    #[test]
    fn rejects_quoted_non_first_fragment() {
        let mut quote = quoted_udp_probe();
        quote[6..8].copy_from_slice(&0x0010_u16.to_be_bytes());
        assert!(matches!(
            Reply::parse(&icmp_error(ROUTER, 11, 0, 0, &quote, &[])),
            Err(PacketError::Fragment {
                what: "quoted IPv4 datagram",
                offset: 16,
                more: false
            })
        ));
    }

    #[test]
    fn other_traffic_is_unsupported_not_malformed() {
        // An echo request (e.g. our own probe looped back).
        let mut request = hex(ECHO_REPLY);
        request[20] = ICMP_ECHO_REQUEST;
        reseal_icmp(&mut request);
        let error = Reply::parse(&request).unwrap_err();
        assert_eq!(
            error,
            PacketError::UnsupportedIcmpType {
                icmp_type: 8,
                code: 0
            }
        );
        assert!(!error.is_malformed());
        // A UDP datagram.
        let mut udp = hex(SYN_ACK);
        udp[9] = 17;
        assert!(matches!(
            Reply::parse(&udp),
            Err(PacketError::UnsupportedProtocol { protocol: 17, .. })
        ));
        // A quote of something that is not ICMP, UDP or TCP (GRE).
        let mut quote = quoted_udp_probe();
        quote[9] = 47;
        let error = Reply::parse(&icmp_error(ROUTER, 11, 0, 0, &quote, &[])).unwrap_err();
        assert_eq!(
            error,
            PacketError::UnsupportedProtocol {
                what: "quoted IPv4 datagram",
                protocol: 47
            }
        );
    }

    #[test]
    fn debug_prints_fields() {
        let text = format!("{:?}", parse(SYN_ACK));
        assert!(
            text.contains("src_port: Port(80)") && text.contains("TcpFlags(SYN|ACK)"),
            "{text}"
        );
    }
}
