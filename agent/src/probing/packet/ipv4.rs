//! IPv4 header: a checked read-only view for received datagrams and the
//! datagrams quoted inside ICMP errors, and the header writer for probes.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::fmt;
use std::net::Ipv4Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};

use super::error::{PacketError, Result};
use super::types::TimeToLive;

/// Length of an IPv4 header without options (IHL 5).
pub const IPV4_HEADER_LEN: usize = 20;
/// How many bytes of the transport header an ICMP error must quote for us
/// to use it: RFC 792 guarantees the first 8, which hold both ports (and the
/// UDP checksum, ICMP identifier/sequence, TCP sequence number).
pub const QUOTED_TRANSPORT_LEN: usize = 8;

const VERSION: u8 = 4;
const MIN_IHL: u8 = 5;
/// The "more fragments" bit within the 3-bit flags field.
const FLAG_MORE_FRAGMENTS: u8 = 0b001;

/// A read-only IPv4 header view whose every accessor is infallible: all
/// lengths were validated by the constructor.
///
/// Two constructors, because the two places we meet IPv4 have different
/// guarantees:
/// * [`new_checked`](Self::new_checked) for a datagram read from a raw
///   socket, which must be complete;
/// * [`new_checked_quote`](Self::new_checked_quote) for the datagram quoted
///   in an ICMP error, which routers truncate (often to 28 bytes).
pub struct Ipv4View<'a> {
    header: Ipv4Packet<'a>,
    header_len: usize,
    payload: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    /// Validates a complete datagram: version 4, IHL ≥ 5, the header and
    /// the total length both within `bytes`. Bytes past the total length
    /// (link-layer padding) are ignored.
    ///
    /// The header checksum is not verified: the kernel's `ip_rcv` drops
    /// datagrams with a bad header checksum before any raw socket sees them.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self> {
        const WHAT: &str = "IPv4 datagram";
        let (header, header_len) = Self::check_header(bytes, WHAT)?;
        let total_len = usize::from(header.get_total_length());
        if total_len < header_len {
            return Err(PacketError::BadLength {
                what: "IPv4 total length",
                value: total_len,
                min: header_len,
            });
        }
        let payload = bytes
            .get(header_len..total_len)
            .ok_or(PacketError::Truncated {
                what: WHAT,
                need: total_len,
                have: bytes.len(),
            })?;
        Ok(Self {
            header,
            header_len,
            payload,
        })
    }

    /// Validates a datagram quoted in an ICMP error: version 4, IHL ≥ 5,
    /// and the quote holds the header plus the first
    /// [`QUOTED_TRANSPORT_LEN`] bytes of the transport header.
    ///
    /// The total length is *not* checked against the quote: it describes
    /// the original datagram, of which the router quoted only a prefix (and
    /// some routers famously quote it byte-swapped). The payload is the
    /// rest of the quote, which may include RFC 4884 zero padding.
    pub fn new_checked_quote(bytes: &'a [u8]) -> Result<Self> {
        const WHAT: &str = "quoted IPv4 datagram";
        let (header, header_len) = Self::check_header(bytes, WHAT)?;
        let need = header_len + QUOTED_TRANSPORT_LEN;
        let payload = bytes
            .get(header_len..)
            .filter(|transport| transport.len() >= QUOTED_TRANSPORT_LEN)
            .ok_or(PacketError::Truncated {
                what: WHAT,
                need,
                have: bytes.len(),
            })?;
        Ok(Self {
            header,
            header_len,
            payload,
        })
    }

    /// The checks common to both constructors: the fixed header fits,
    /// version 4, IHL ≥ 5, and IHL*4 bytes fit.
    fn check_header(bytes: &'a [u8], what: &'static str) -> Result<(Ipv4Packet<'a>, usize)> {
        let header = Ipv4Packet::new(bytes).ok_or(PacketError::Truncated {
            what,
            need: IPV4_HEADER_LEN,
            have: bytes.len(),
        })?;
        if header.get_version() != VERSION {
            return Err(PacketError::BadVersion {
                what,
                found: header.get_version(),
                expected: VERSION,
            });
        }
        let ihl = header.get_header_length();
        if ihl < MIN_IHL {
            return Err(PacketError::BadLength {
                what: "IPv4 header length (IHL*4)",
                value: usize::from(ihl) * 4,
                min: IPV4_HEADER_LEN,
            });
        }
        let header_len = usize::from(ihl) * 4;
        if header_len > bytes.len() {
            return Err(PacketError::Truncated {
                what,
                need: header_len,
                have: bytes.len(),
            });
        }
        Ok((header, header_len))
    }

    /// Header length in bytes (IHL * 4), options included.
    #[must_use]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The total length field as received (unvalidated for quotes).
    #[must_use]
    pub fn total_length(&self) -> u16 {
        self.header.get_total_length()
    }

    /// The identification field.
    #[must_use]
    pub fn identification(&self) -> u16 {
        self.header.get_identification()
    }

    /// The "more fragments" flag.
    #[must_use]
    pub fn more_fragments(&self) -> bool {
        self.header.get_flags() & FLAG_MORE_FRAGMENTS != 0
    }

    /// The fragment offset, in units of 8 bytes.
    #[must_use]
    pub fn fragment_offset(&self) -> u16 {
        self.header.get_fragment_offset()
    }

    /// The time-to-live field.
    #[must_use]
    pub fn ttl(&self) -> TimeToLive {
        TimeToLive(self.header.get_ttl())
    }

    /// The protocol number of the payload.
    #[must_use]
    pub fn protocol(&self) -> u8 {
        self.header.get_next_level_protocol().0
    }

    /// The source address.
    #[must_use]
    pub fn source(&self) -> Ipv4Addr {
        self.header.get_source()
    }

    /// The destination address.
    #[must_use]
    pub fn destination(&self) -> Ipv4Addr {
        self.header.get_destination()
    }

    /// The bytes after the header: up to the total length for a complete
    /// datagram, the rest of the quote (at least 8 bytes) for a quote.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

impl fmt::Debug for Ipv4View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipv4View")
            .field("src", &self.source())
            .field("dst", &self.destination())
            .field("ttl", &self.ttl().0)
            .field("protocol", &self.protocol())
            .field("id", &self.identification())
            .field("header_len", &self.header_len)
            .field("total_length", &self.total_length())
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The IPv4 header of a probe, as written with `IP_HDRINCL`.
///
/// Every field except TTL, identification, total length and checksum is
/// constant for all probes, so that no per-flow hash that looks at the IP
/// header (TOS, addresses, protocol) sees a difference between probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProbeIpv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: TimeToLive,
    pub identification: u16,
    pub protocol: IpNextHeaderProtocol,
    /// Length of the transport header and payload that follow the header.
    pub payload_len: usize,
}

impl ProbeIpv4Header {
    /// Type of service: 0 (best effort, no ECN). Routers may hash on the
    /// TOS byte, so it must not vary, and 0 is what ordinary traffic uses.
    const TOS: u8 = 0;
    /// Flags: DF clear. Probes are under 100 bytes and never need
    /// fragmenting; with DF clear a path with a tiny MTU still answers
    /// with Time Exceeded instead of Fragmentation Needed, as classic
    /// traceroute does.
    const FLAGS: u8 = 0;

    /// Writes the 20-byte header into `buf[..IPV4_HEADER_LEN]`.
    ///
    /// On Linux with `IP_HDRINCL` the kernel rewrites the checksum and the
    /// total length anyway, and fills in the identification when it is 0;
    /// we compute them all so the bytes are right on any sink (and testable).
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let have = buf.len();
        let total_len = u16::try_from(IPV4_HEADER_LEN + self.payload_len).map_err(|_| {
            PacketError::BufferTooSmall {
                need: IPV4_HEADER_LEN + self.payload_len,
                have,
            }
        })?;
        let mut header = MutableIpv4Packet::new(buf).ok_or(PacketError::BufferTooSmall {
            need: IPV4_HEADER_LEN,
            have,
        })?;
        header.set_version(VERSION);
        header.set_header_length(MIN_IHL);
        header.set_dscp(Self::TOS >> 2);
        header.set_ecn(Self::TOS & 0b11);
        header.set_total_length(total_len);
        header.set_identification(self.identification);
        header.set_flags(Self::FLAGS);
        header.set_fragment_offset(0);
        header.set_ttl(self.ttl.0);
        header.set_next_level_protocol(self.protocol);
        header.set_checksum(0);
        header.set_source(self.src);
        header.set_destination(self.dst);
        // pnet's view spans the whole buffer; the checksum covers the header only.
        let checksum = ipv4::checksum(&header.to_immutable());
        header.set_checksum(checksum);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::test_util::hex;

    /// A UDP probe's IPv4 header followed by 8 bytes of UDP header.
    const DATAGRAM: &str = "45000020 0007 0000 0311 0000 0a4d0102 0a4d0202
                            9c41 829a 000c 1234 0102 0304";

    #[test]
    fn complete_datagram_fields() {
        let bytes = hex(DATAGRAM);
        let view = Ipv4View::new_checked(&bytes).unwrap();
        assert_eq!(view.source(), Ipv4Addr::new(10, 77, 1, 2));
        assert_eq!(view.destination(), Ipv4Addr::new(10, 77, 2, 2));
        assert_eq!(view.ttl(), TimeToLive(3));
        assert_eq!(view.protocol(), 17);
        assert_eq!(view.identification(), 7);
        assert_eq!(view.header_len(), 20);
        assert_eq!(view.payload().len(), 12);
    }

    #[test]
    fn link_padding_past_total_length_is_ignored() {
        let mut bytes = hex(DATAGRAM);
        bytes.extend_from_slice(&[0; 6]);
        assert_eq!(Ipv4View::new_checked(&bytes).unwrap().payload().len(), 12);
    }

    #[test]
    fn rejects_truncated_header() {
        let bytes = hex(DATAGRAM);
        assert_eq!(
            Ipv4View::new_checked(&bytes[..19]).unwrap_err(),
            PacketError::Truncated {
                what: "IPv4 datagram",
                need: 20,
                have: 19
            }
        );
    }

    #[test]
    fn rejects_total_length_past_the_buffer() {
        let bytes = hex(DATAGRAM);
        assert_eq!(
            Ipv4View::new_checked(&bytes[..30]).unwrap_err(),
            PacketError::Truncated {
                what: "IPv4 datagram",
                need: 32,
                have: 30
            }
        );
    }

    #[test]
    fn rejects_total_length_below_header() {
        let mut bytes = hex(DATAGRAM);
        bytes[3] = 19;
        assert!(matches!(
            Ipv4View::new_checked(&bytes),
            Err(PacketError::BadLength {
                what: "IPv4 total length",
                value: 19,
                min: 20
            })
        ));
    }

    #[test]
    fn rejects_ihl_below_five() {
        let mut bytes = hex(DATAGRAM);
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4View::new_checked(&bytes).unwrap_err(),
            PacketError::BadLength {
                what: "IPv4 header length (IHL*4)",
                value: 16,
                min: 20
            }
        );
    }

    #[test]
    fn rejects_ihl_past_the_buffer() {
        let mut bytes = hex(DATAGRAM);
        bytes[0] = 0x4f; // 60-byte header in a 32-byte buffer
        assert_eq!(
            Ipv4View::new_checked(&bytes).unwrap_err(),
            PacketError::Truncated {
                what: "IPv4 datagram",
                need: 60,
                have: 32
            }
        );
    }

    #[test]
    fn rejects_other_versions() {
        let mut bytes = hex(DATAGRAM);
        bytes[0] = 0x65;
        assert!(matches!(
            Ipv4View::new_checked(&bytes),
            Err(PacketError::BadVersion {
                found: 6,
                expected: 4,
                ..
            })
        ));
    }

    #[test]
    fn quote_may_be_shorter_than_its_total_length() {
        let bytes = hex(DATAGRAM);
        // 28 bytes: the RFC 792 minimum quote of a 32-byte datagram.
        let view = Ipv4View::new_checked_quote(&bytes[..28]).unwrap();
        assert_eq!(view.payload().len(), 8);
        assert_eq!(view.total_length(), 32);
        assert!(Ipv4View::new_checked(&bytes[..28]).is_err());
    }

    #[test]
    fn quote_must_hold_eight_transport_bytes_after_its_options() {
        let bytes = hex(DATAGRAM);
        assert_eq!(
            Ipv4View::new_checked_quote(&bytes[..27]).unwrap_err(),
            PacketError::Truncated {
                what: "quoted IPv4 datagram",
                need: 28,
                have: 27
            }
        );
        // IHL 6: a 4-byte option, so 24 + 8 bytes are needed.
        let mut with_option = bytes.clone();
        with_option[0] = 0x46;
        assert_eq!(
            Ipv4View::new_checked_quote(&with_option[..28]).unwrap_err(),
            PacketError::Truncated {
                what: "quoted IPv4 datagram",
                need: 32,
                have: 28
            }
        );
        let view = Ipv4View::new_checked_quote(&with_option[..32]).unwrap();
        assert_eq!(view.header_len(), 24);
        assert_eq!(view.payload(), &with_option[24..32]);
    }

    #[test]
    fn emitted_header_is_exact_and_checksummed() {
        let mut buf = [0_u8; IPV4_HEADER_LEN];
        ProbeIpv4Header {
            src: Ipv4Addr::new(10, 77, 1, 2),
            dst: Ipv4Addr::new(10, 77, 2, 2),
            ttl: TimeToLive(3),
            identification: 7,
            protocol: pnet_packet::ip::IpNextHeaderProtocols::Udp,
            payload_len: 16,
        }
        .emit(&mut buf)
        .unwrap();
        assert_eq!(
            buf[..],
            hex("45000024 0007 0000 0311 a025 0a4d0102 0a4d0202")[..]
        );
        let view = Ipv4Packet::new(&buf).unwrap();
        assert_eq!(ipv4::checksum(&view), view.get_checksum());
    }
}
