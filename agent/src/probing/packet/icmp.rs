//! ICMPv4 message: a checked read-only view, and the type and code numbers
//! a traceroute deals with.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  echo: Identifier             |  echo: Sequence Number        |
//! |  errors: unused | Length (RFC 4884) |  unused / next-hop MTU  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  echo: data.  errors: original datagram [+ extension structure]
//! ```

use core::fmt;

use pnet_packet::icmp::destination_unreachable::IcmpCodes as UnreachableCodes;
use pnet_packet::icmp::echo_reply::EchoReplyPacket;
use pnet_packet::icmp::{self, IcmpPacket, IcmpTypes};

use super::checksum;
use super::error::{PacketError, Result};

/// Length of the ICMP header, including the 4 type-specific bytes.
pub const ICMP_HEADER_LEN: usize = 8;

/// ICMP type: echo reply.
pub const ICMP_ECHO_REPLY: u8 = IcmpTypes::EchoReply.0;
/// ICMP type: destination unreachable.
pub const ICMP_DEST_UNREACHABLE: u8 = IcmpTypes::DestinationUnreachable.0;
/// ICMP type: echo request (our ICMP probes).
pub const ICMP_ECHO_REQUEST: u8 = IcmpTypes::EchoRequest.0;
/// ICMP type: time exceeded.
pub const ICMP_TIME_EXCEEDED: u8 = IcmpTypes::TimeExceeded.0;

/// Destination unreachable code: network unreachable.
pub const UNREACHABLE_NET: u8 = UnreachableCodes::DestinationNetworkUnreachable.0;
/// Destination unreachable code: host unreachable.
pub const UNREACHABLE_HOST: u8 = UnreachableCodes::DestinationHostUnreachable.0;
/// Destination unreachable code: protocol unreachable (the target answered
/// a protocol it does not speak: the trace reached it).
pub const UNREACHABLE_PROTOCOL: u8 = UnreachableCodes::DestinationProtocolUnreachable.0;
/// Destination unreachable code: port unreachable (the usual end of a UDP
/// trace: the target itself answered).
pub const UNREACHABLE_PORT: u8 = UnreachableCodes::DestinationPortUnreachable.0;
/// Destination unreachable code: fragmentation needed and DF set.
pub const UNREACHABLE_FRAGMENTATION_NEEDED: u8 =
    UnreachableCodes::FragmentationRequiredAndDFFlagSet.0;
/// Destination unreachable code: communication administratively prohibited
/// (RFC 1812), sent by filtering routers and firewalls.
pub const UNREACHABLE_ADMIN_PROHIBITED: u8 =
    UnreachableCodes::CommunicationAdministrativelyProhibited.0;

/// Byte 5 of time exceeded, destination unreachable and parameter problem
/// messages: the length of the original datagram field in 32-bit words
/// (RFC 4884 §4.1); 0 when the sender does not implement RFC 4884.
const RFC4884_LENGTH_OFFSET: usize = 5;

/// A read-only view of an ICMP message whose checksum verified and that
/// holds at least the 8-byte header; every accessor is infallible.
pub struct IcmpView<'a> {
    message: IcmpPacket<'a>,
    echo: EchoReplyPacket<'a>,
    bytes: &'a [u8],
}

impl<'a> IcmpView<'a> {
    /// Validates an ICMP message (the payload of its IPv4 datagram): at
    /// least [`ICMP_HEADER_LEN`] bytes, and a checksum over the whole
    /// message that verifies (skipped under `cfg(fuzzing)`).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self> {
        const WHAT: &str = "ICMP message";
        let truncated = PacketError::Truncated {
            what: WHAT,
            need: ICMP_HEADER_LEN,
            have: bytes.len(),
        };
        // EchoReplyPacket's minimum size is the full 8-byte header.
        let echo = EchoReplyPacket::new(bytes).ok_or(truncated.clone())?;
        let message = IcmpPacket::new(bytes).ok_or(truncated)?;
        let found = message.get_checksum();
        if !checksum::verifies(found, icmp::checksum(&message)) {
            return Err(PacketError::BadChecksum { what: WHAT, found });
        }
        Ok(Self {
            message,
            echo,
            bytes,
        })
    }

    /// The ICMP type.
    #[must_use]
    pub fn icmp_type(&self) -> u8 {
        self.message.get_icmp_type().0
    }

    /// The ICMP code.
    #[must_use]
    pub fn code(&self) -> u8 {
        self.message.get_icmp_code().0
    }

    /// The checksum field.
    #[must_use]
    pub fn checksum(&self) -> u16 {
        self.message.get_checksum()
    }

    /// Echo request/reply identifier (bytes 4..6).
    #[must_use]
    pub fn echo_identifier(&self) -> u16 {
        self.echo.get_identifier()
    }

    /// Echo request/reply sequence number (bytes 6..8).
    #[must_use]
    pub fn echo_sequence(&self) -> u16 {
        self.echo.get_sequence_number()
    }

    /// RFC 4884 length of the original datagram field, in 32-bit words
    /// (meaningful for time exceeded and destination unreachable only).
    #[must_use]
    pub fn rfc4884_length_words(&self) -> u8 {
        // In bounds: the constructor checked ICMP_HEADER_LEN bytes.
        self.bytes[RFC4884_LENGTH_OFFSET]
    }

    /// Everything after the 8-byte header: echo data, or the original
    /// datagram and any extension structure of an error message.
    #[must_use]
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[ICMP_HEADER_LEN..]
    }
}

impl fmt::Debug for IcmpView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcmpView")
            .field("type", &self.icmp_type())
            .field("code", &self.code())
            .field("checksum", &format_args!("{:#06x}", self.checksum()))
            .field(
                "rest_of_header",
                &format_args!(
                    "{:#06x} {:#06x}",
                    self.echo_identifier(),
                    self.echo_sequence()
                ),
            )
            .field("body_len", &self.body().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::test_util::hex;

    /// An echo reply: identifier 0x6e6b, sequence 5, data "ab".
    const ECHO_REPLY: &str = "0000 302d 6e6b 0005 6162";

    #[test]
    fn echo_reply_fields() {
        let bytes = hex(ECHO_REPLY);
        let view = IcmpView::new_checked(&bytes).unwrap();
        assert_eq!(view.icmp_type(), ICMP_ECHO_REPLY);
        assert_eq!(view.code(), 0);
        assert_eq!(view.echo_identifier(), 0x6e6b);
        assert_eq!(view.echo_sequence(), 5);
        assert_eq!(view.body(), b"ab");
    }

    #[test]
    fn rejects_wrong_checksum() {
        let mut bytes = hex(ECHO_REPLY);
        bytes[9] ^= 0x01;
        assert_eq!(
            IcmpView::new_checked(&bytes).unwrap_err(),
            PacketError::BadChecksum {
                what: "ICMP message",
                found: 0x302d
            }
        );
    }

    #[test]
    fn rejects_short_header() {
        let bytes = hex(ECHO_REPLY);
        assert_eq!(
            IcmpView::new_checked(&bytes[..7]).unwrap_err(),
            PacketError::Truncated {
                what: "ICMP message",
                need: 8,
                have: 7
            }
        );
    }
}
