//! TCP segment: a checked read-only view for the SYN-ACK or RST a target
//! sends back to a TCP probe, delivered whole by a raw TCP socket.

use core::fmt;

use pnet_packet::tcp::TcpPacket;

use super::error::{PacketError, Result};
use super::types::{Port, TcpFlags};

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;
const MIN_DATA_OFFSET: u8 = 5;

/// A read-only TCP header view; every accessor is infallible.
///
/// The TCP checksum is deliberately not verified. The kernel has already
/// validated segments from real NICs, and segments that cross a veth or
/// virtio link keep `CHECKSUM_PARTIAL` offload state: their checksum field
/// holds only the pseudo-header sum, so a raw socket sees a "wrong"
/// checksum on a perfectly valid segment. Matching on ports and the
/// acknowledgment number is what protects us from stray segments.
pub struct TcpView<'a> {
    segment: TcpPacket<'a>,
}

impl<'a> TcpView<'a> {
    /// Validates a TCP segment (the payload of its IPv4 datagram): the
    /// fixed header fits, the data offset is at least 5 and the header
    /// with its options fits.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self> {
        const WHAT: &str = "TCP segment";
        let segment = TcpPacket::new(bytes).ok_or(PacketError::Truncated {
            what: WHAT,
            need: TCP_HEADER_LEN,
            have: bytes.len(),
        })?;
        let data_offset = segment.get_data_offset();
        if data_offset < MIN_DATA_OFFSET {
            return Err(PacketError::BadLength {
                what: "TCP data offset (x4)",
                value: usize::from(data_offset) * 4,
                min: TCP_HEADER_LEN,
            });
        }
        let header_len = usize::from(data_offset) * 4;
        if header_len > bytes.len() {
            return Err(PacketError::Truncated {
                what: WHAT,
                need: header_len,
                have: bytes.len(),
            });
        }
        Ok(Self { segment })
    }

    /// Source port.
    #[must_use]
    pub fn source(&self) -> Port {
        Port(self.segment.get_source())
    }

    /// Destination port.
    #[must_use]
    pub fn destination(&self) -> Port {
        Port(self.segment.get_destination())
    }

    /// Sequence number.
    #[must_use]
    pub fn sequence(&self) -> u32 {
        self.segment.get_sequence()
    }

    /// Acknowledgment number.
    #[must_use]
    pub fn acknowledgement(&self) -> u32 {
        self.segment.get_acknowledgement()
    }

    /// Flags (byte 13).
    #[must_use]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.segment.get_flags())
    }
}

impl fmt::Debug for TcpView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpView")
            .field("src_port", &self.source().0)
            .field("dst_port", &self.destination().0)
            .field("seq", &self.sequence())
            .field("ack", &self.acknowledgement())
            .field("flags", &self.flags())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::test_util::hex;

    /// SYN-ACK from port 80 to 40002, seq 0x11223344, ack 0x6e6b0008, with
    /// an MSS option (data offset 6).
    const SYN_ACK: &str = "0050 9c42 11223344 6e6b0008 6012 faf0 0000 0000 020405b4";

    #[test]
    fn syn_ack_fields() {
        let bytes = hex(SYN_ACK);
        let view = TcpView::new_checked(&bytes).unwrap();
        assert_eq!(view.source(), Port(80));
        assert_eq!(view.destination(), Port(40002));
        assert_eq!(view.sequence(), 0x1122_3344);
        assert_eq!(view.acknowledgement(), 0x6e6b_0008);
        assert_eq!(view.flags(), TcpFlags::SYN.union(TcpFlags::ACK));
    }

    #[test]
    fn rejects_options_past_the_end() {
        let bytes = hex(SYN_ACK);
        assert_eq!(
            TcpView::new_checked(&bytes[..22]).unwrap_err(),
            PacketError::Truncated {
                what: "TCP segment",
                need: 24,
                have: 22
            }
        );
    }

    #[test]
    fn rejects_data_offset_below_five() {
        let mut bytes = hex(SYN_ACK);
        bytes[12] = 0x40;
        assert!(matches!(
            TcpView::new_checked(&bytes),
            Err(PacketError::BadLength { value: 16, .. })
        ));
    }
}
