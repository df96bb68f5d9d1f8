//! ICMP extensions (RFC 4884) and the MPLS label stack object (RFC 4950).
//!
//! Routers inside an MPLS tunnel decrement the IP TTL only at the edges
//! (or not at all), so a trace through one shows a hop that covers several
//! routers. Routers that implement RFC 4950 append the label stack of the
//! expired packet to their time exceeded message, which tells us that the
//! hop is inside a tunnel; we keep it with the hop.
//!
//! Where the extension structure starts (RFC 4884 §4, §5.5):
//!
//! ```text
//! ICMP header (8) | original datagram, length*4 bytes, ≥128 zero-padded | extension structure
//!                   ^ byte 5 of the header ("length", 32-bit words)
//!
//! extension header:  |Ver=2| reserved (12 bits) |        checksum         |
//! object header:     |        length (16)        | class-num  |  c-type   |
//! MPLS entry (4 B):  |          label (20 bits)        | TC(3) |S|  TTL (8)  |
//! ```
//!
//! A malformed extension costs only the extension: the reply parser still
//! reports the hop, without labels, and says why the extension was dropped.

use core::fmt;

use pnet_packet::util;

use super::checksum;
use super::error::{PacketError, Result};
use super::types::TimeToLive;

/// The original datagram field is zero-padded to at least this many bytes
/// when an extension structure follows it (RFC 4884 §4.1), and this is
/// also where pre-RFC 4884 implementations put the extension (§5.5).
pub const ORIGINAL_DATAGRAM_MIN_LEN: usize = 128;

const EXTENSION_VERSION: u8 = 2;
/// Extension header: version (4 bits), reserved (12 bits), checksum (16).
const EXTENSION_HEADER_LEN: usize = 4;
/// Word index of the checksum in the extension header, for pnet's `checksum`.
const EXTENSION_CHECKSUM_WORD: usize = 1;
/// Object header: length (16 bits, header included), class-num, c-type.
const OBJECT_HEADER_LEN: usize = 4;
/// Class-num of the MPLS label stack object (RFC 4950 §7).
const CLASS_MPLS_LABEL_STACK: u8 = 1;
/// C-type of the incoming MPLS label stack (RFC 4950 §7).
const CTYPE_INCOMING_MPLS_LABEL_STACK: u8 = 1;
/// Length of one MPLS label stack entry.
const MPLS_ENTRY_LEN: usize = 4;

/// One entry of an MPLS label stack (RFC 3032 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MplsLabelEntry {
    /// The label, 20 bits.
    pub label: u32,
    /// Traffic class (formerly "EXP"), 3 bits.
    pub traffic_class: u8,
    /// The bottom-of-stack bit.
    pub bottom_of_stack: bool,
    /// The MPLS TTL of the expired packet.
    pub ttl: TimeToLive,
}

impl MplsLabelEntry {
    /// Decodes one 4-byte entry.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; MPLS_ENTRY_LEN]) -> Self {
        let word = u32::from_be_bytes(bytes);
        Self {
            label: word >> 12,
            traffic_class: ((word >> 9) & 0b111) as u8,
            bottom_of_stack: (word >> 8) & 1 == 1,
            ttl: TimeToLive(bytes[3]),
        }
    }

    /// Encodes one 4-byte entry (labels wider than 20 bits are truncated).
    #[must_use]
    pub const fn to_bytes(self) -> [u8; MPLS_ENTRY_LEN] {
        let word = (self.label & 0xf_ffff) << 12
            | ((self.traffic_class as u32) & 0b111) << 9
            | (self.bottom_of_stack as u32) << 8
            | self.ttl.0 as u32;
        word.to_be_bytes()
    }
}

/// One extension object, as found in a validated [`IcmpExtensionView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionObject<'a> {
    /// Class-num: which kind of object (1 = MPLS label stack).
    pub class_num: u8,
    /// C-type: the sub-type within the class.
    pub c_type: u8,
    /// The object's payload, its 4-byte header excluded.
    pub payload: &'a [u8],
}

impl ExtensionObject<'_> {
    /// True for an RFC 4950 incoming MPLS label stack object.
    #[must_use]
    pub fn is_mpls_label_stack(&self) -> bool {
        self.class_num == CLASS_MPLS_LABEL_STACK && self.c_type == CTYPE_INCOMING_MPLS_LABEL_STACK
    }
}

/// A validated ICMP extension structure: version 2, checksum verified (or
/// absent, where allowed), and every object's length at least 4 and within
/// the structure, every MPLS object a whole number of entries. Iterating
/// over it cannot fail.
#[derive(Clone)]
pub struct IcmpExtensionView<'a> {
    bytes: &'a [u8],
}

impl<'a> IcmpExtensionView<'a> {
    /// Validates an extension structure located by an RFC 4884 length
    /// field. A zero checksum means "no checksum transmitted" (RFC 4884
    /// §7) and is accepted.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self> {
        Self::check(bytes, false)
    }

    /// Validates a structure found at the pre-RFC 4884 fixed offset
    /// ([`ORIGINAL_DATAGRAM_MIN_LEN`] bytes into the original datagram
    /// field, length field 0). There, the bytes may just as well be the
    /// rest of a long quoted datagram, so the checksum is required (a
    /// non-zero one that verifies), along with version 2: together they
    /// make a false positive very unlikely.
    pub fn new_checked_compat(bytes: &'a [u8]) -> Result<Self> {
        Self::check(bytes, true)
    }

    fn check(bytes: &'a [u8], require_checksum: bool) -> Result<Self> {
        const WHAT: &str = "ICMP extension structure";
        if bytes.len() < EXTENSION_HEADER_LEN {
            return Err(PacketError::Truncated {
                what: WHAT,
                need: EXTENSION_HEADER_LEN,
                have: bytes.len(),
            });
        }
        let view = Self { bytes };
        if view.version() != EXTENSION_VERSION {
            return Err(PacketError::BadVersion {
                what: WHAT,
                found: view.version(),
                expected: EXTENSION_VERSION,
            });
        }
        let found = view.checksum();
        let transmitted = found != 0;
        if (require_checksum || transmitted)
            && !(transmitted
                && checksum::verifies(found, util::checksum(bytes, EXTENSION_CHECKSUM_WORD)))
        {
            return Err(PacketError::BadChecksum { what: WHAT, found });
        }
        let mut rest = &bytes[EXTENSION_HEADER_LEN..];
        while !rest.is_empty() {
            let (object, after) = split_object(rest)?;
            if object.is_mpls_label_stack() && !object.payload.len().is_multiple_of(MPLS_ENTRY_LEN)
            {
                return Err(PacketError::Truncated {
                    what: "MPLS label stack entry",
                    need: MPLS_ENTRY_LEN,
                    have: object.payload.len() % MPLS_ENTRY_LEN,
                });
            }
            rest = after;
        }
        Ok(view)
    }

    /// The version field (always 2 once validated).
    #[must_use]
    pub fn version(&self) -> u8 {
        self.bytes[0] >> 4
    }

    /// The checksum field (0: none transmitted).
    #[must_use]
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    /// The objects, in order.
    pub fn objects(&self) -> impl Iterator<Item = ExtensionObject<'a>> + use<'a> {
        let mut rest = self.bytes.get(EXTENSION_HEADER_LEN..).unwrap_or_default();
        // The constructor validated every object, so `split_object` cannot
        // fail here; stopping on an error keeps this infallible regardless.
        core::iter::from_fn(move || {
            let (object, after) = split_object(rest).ok()?;
            rest = after;
            Some(object)
        })
    }

    /// The entries of every MPLS label stack object, top of stack first.
    #[must_use]
    pub fn mpls_labels(&self) -> Vec<MplsLabelEntry> {
        self.objects()
            .filter(ExtensionObject::is_mpls_label_stack)
            .flat_map(|object| object.payload.chunks_exact(MPLS_ENTRY_LEN))
            .filter_map(|entry| entry.try_into().ok().map(MplsLabelEntry::from_bytes))
            .collect()
    }
}

impl fmt::Debug for IcmpExtensionView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IcmpExtensionView")
            .field("version", &self.version())
            .field("checksum", &format_args!("{:#06x}", self.checksum()))
            .field("objects", &self.objects().collect::<Vec<_>>())
            .finish()
    }
}

/// Splits the first object off `bytes`, checking its length field.
fn split_object(bytes: &[u8]) -> Result<(ExtensionObject<'_>, &[u8])> {
    let header = bytes
        .get(..OBJECT_HEADER_LEN)
        .ok_or(PacketError::Truncated {
            what: "ICMP extension object header",
            need: OBJECT_HEADER_LEN,
            have: bytes.len(),
        })?;
    let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
    if len < OBJECT_HEADER_LEN {
        return Err(PacketError::BadLength {
            what: "ICMP extension object",
            value: len,
            min: OBJECT_HEADER_LEN,
        });
    }
    let object = bytes.get(..len).ok_or(PacketError::Truncated {
        what: "ICMP extension object",
        need: len,
        have: bytes.len(),
    })?;
    let parsed = ExtensionObject {
        class_num: header[2],
        c_type: header[3],
        payload: &object[OBJECT_HEADER_LEN..],
    };
    Ok((parsed, &bytes[len..]))
}

/// The body of an ICMP time exceeded or destination unreachable message,
/// split into the quoted original datagram and the extension structure.
#[derive(Debug, Clone)]
pub struct IcmpErrorBody<'a> {
    /// The original datagram field: the quoted probe (possibly followed by
    /// RFC 4884 zero padding).
    pub original_datagram: &'a [u8],
    /// The extension structure, if the message has one: `Err` when it is
    /// announced (RFC 4884 length) or found (compatibility layout) but
    /// malformed.
    pub extensions: Option<Result<IcmpExtensionView<'a>>>,
}

impl<'a> IcmpErrorBody<'a> {
    /// Splits `body` (the bytes after the 8-byte ICMP header) using
    /// `length_words`, the RFC 4884 length field (byte 5 of the header).
    ///
    /// * Length > 0 (RFC 4884): the original datagram is `length * 4`
    ///   bytes, the extension structure is whatever follows, if anything.
    ///   A length past the end of the message is an extension error; the
    ///   whole body is then taken as the original datagram.
    /// * Length 0: either no extension, or a pre-RFC 4884 router that put
    ///   the extension at a fixed 128 bytes (§5.5). The latter is accepted
    ///   only if [`IcmpExtensionView::new_checked_compat`] validates it.
    #[must_use]
    pub fn split(body: &'a [u8], length_words: u8) -> Self {
        if length_words == 0 {
            return Self::split_compat(body);
        }
        let original_len = usize::from(length_words) * 4;
        match (body.get(..original_len), body.get(original_len..)) {
            (Some(original_datagram), Some(rest)) => Self {
                original_datagram,
                extensions: (!rest.is_empty()).then(|| IcmpExtensionView::new_checked(rest)),
            },
            _ => Self {
                original_datagram: body,
                extensions: Some(Err(PacketError::Truncated {
                    what: "ICMP original datagram (RFC 4884 length)",
                    need: original_len,
                    have: body.len(),
                })),
            },
        }
    }

    fn split_compat(body: &'a [u8]) -> Self {
        let candidate = body
            .get(ORIGINAL_DATAGRAM_MIN_LEN..)
            .filter(|rest| rest.len() >= EXTENSION_HEADER_LEN)
            .and_then(|rest| IcmpExtensionView::new_checked_compat(rest).ok());
        match candidate {
            Some(view) => Self {
                original_datagram: &body[..ORIGINAL_DATAGRAM_MIN_LEN],
                extensions: Some(Ok(view)),
            },
            None => Self {
                original_datagram: body,
                extensions: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::packet::test_util::hex;

    /// RFC 4950 extension structure with one MPLS object of two entries:
    /// label 16025 TC 0 S 0 TTL 1, then label 1 TC 5 S 1 TTL 254.
    const TWO_LABELS: &str = "2000 2f0a  000c 0101  03e9 9001  0000 1bfe";

    #[test]
    fn mpls_entry_bit_layout() {
        let entry = MplsLabelEntry::from_bytes([0x03, 0xe9, 0x90, 0x01]);
        assert_eq!(
            entry,
            MplsLabelEntry {
                label: 16025,
                traffic_class: 0,
                bottom_of_stack: false,
                ttl: TimeToLive(1)
            }
        );
        let bottom = MplsLabelEntry {
            label: 0xf_ffff,
            traffic_class: 7,
            bottom_of_stack: true,
            ttl: TimeToLive(9),
        };
        assert_eq!(bottom.to_bytes(), [0xff, 0xff, 0xff, 0x09]);
        assert_eq!(MplsLabelEntry::from_bytes(bottom.to_bytes()), bottom);
    }

    #[test]
    fn two_label_stack() {
        let bytes = hex(TWO_LABELS);
        let view = IcmpExtensionView::new_checked(&bytes).unwrap();
        assert_eq!(
            view.mpls_labels(),
            [
                MplsLabelEntry {
                    label: 16025,
                    traffic_class: 0,
                    bottom_of_stack: false,
                    ttl: TimeToLive(1)
                },
                MplsLabelEntry {
                    label: 1,
                    traffic_class: 5,
                    bottom_of_stack: true,
                    ttl: TimeToLive(254)
                },
            ]
        );
        assert_eq!(view.objects().count(), 1);
    }

    #[test]
    fn unknown_objects_are_skipped() {
        // An RFC 5837 interface information object (class 2) before the labels.
        let mut bytes = hex("2000 0000  0008 0206 0000 0007  0008 0101 03e9 9101");
        let sum = util::checksum(&bytes, EXTENSION_CHECKSUM_WORD);
        bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        let view = IcmpExtensionView::new_checked(&bytes).unwrap();
        assert_eq!(view.objects().count(), 2);
        assert_eq!(view.mpls_labels().len(), 1);
        assert!(view.mpls_labels()[0].bottom_of_stack);
    }

    #[test]
    fn zero_checksum_means_absent_except_in_compat_layout() {
        let mut bytes = hex(TWO_LABELS);
        bytes[2..4].fill(0);
        assert_eq!(
            IcmpExtensionView::new_checked(&bytes)
                .unwrap()
                .mpls_labels()
                .len(),
            2
        );
        assert_eq!(
            IcmpExtensionView::new_checked_compat(&bytes).unwrap_err(),
            PacketError::BadChecksum {
                what: "ICMP extension structure",
                found: 0
            }
        );
    }

    #[test]
    fn rejects_version_1() {
        let mut bytes = hex(TWO_LABELS);
        bytes[0] = 0x10;
        assert!(matches!(
            IcmpExtensionView::new_checked(&bytes),
            Err(PacketError::BadVersion {
                found: 1,
                expected: 2,
                ..
            })
        ));
    }

    #[test]
    fn rejects_wrong_checksum() {
        let mut bytes = hex(TWO_LABELS);
        bytes[15] = 0x02; // TTL 254 -> 2
        assert!(matches!(
            IcmpExtensionView::new_checked(&bytes),
            Err(PacketError::BadChecksum { .. })
        ));
    }

    /// Sets an object length, fixing the checksum so only the length is wrong.
    fn with_object_len(len: u16) -> Vec<u8> {
        let mut bytes = hex(TWO_LABELS);
        bytes[4..6].copy_from_slice(&len.to_be_bytes());
        bytes[2..4].fill(0);
        let sum = util::checksum(&bytes, EXTENSION_CHECKSUM_WORD);
        bytes[2..4].copy_from_slice(&sum.to_be_bytes());
        bytes
    }

    #[test]
    fn rejects_object_length_below_header() {
        for len in 0..4 {
            assert_eq!(
                IcmpExtensionView::new_checked(&with_object_len(len)).unwrap_err(),
                PacketError::BadLength {
                    what: "ICMP extension object",
                    value: len.into(),
                    min: 4
                }
            );
        }
    }

    #[test]
    fn rejects_object_past_the_end() {
        assert_eq!(
            IcmpExtensionView::new_checked(&with_object_len(16)).unwrap_err(),
            PacketError::Truncated {
                what: "ICMP extension object",
                need: 16,
                have: 12
            }
        );
    }

    #[test]
    fn rejects_partial_mpls_entry() {
        // Object of 10 bytes: one entry and 2 stray bytes; then 2 bytes that
        // cannot be an object header.
        assert_eq!(
            IcmpExtensionView::new_checked(&with_object_len(10)).unwrap_err(),
            PacketError::Truncated {
                what: "MPLS label stack entry",
                need: 4,
                have: 2
            }
        );
    }

    #[test]
    fn rejects_short_structure() {
        assert!(matches!(
            IcmpExtensionView::new_checked(&[0x20, 0x00]),
            Err(PacketError::Truncated {
                need: 4,
                have: 2,
                ..
            })
        ));
    }

    #[test]
    fn split_by_rfc4884_length() {
        let mut body = vec![0x45; ORIGINAL_DATAGRAM_MIN_LEN];
        body.extend(hex(TWO_LABELS));
        let split = IcmpErrorBody::split(&body, 32);
        assert_eq!(split.original_datagram.len(), 128);
        assert_eq!(split.extensions.unwrap().unwrap().mpls_labels().len(), 2);
    }

    #[test]
    fn split_length_without_extension() {
        let body = vec![0x45; 40];
        let split = IcmpErrorBody::split(&body, 10);
        assert_eq!(split.original_datagram.len(), 40);
        assert!(split.extensions.is_none());
    }

    #[test]
    fn split_length_past_the_end_is_an_extension_error() {
        let body = vec![0x45; 40];
        let split = IcmpErrorBody::split(&body, 32);
        assert_eq!(split.original_datagram.len(), 40);
        assert!(matches!(
            split.extensions,
            Some(Err(PacketError::Truncated {
                need: 128,
                have: 40,
                ..
            }))
        ));
    }

    #[test]
    fn split_compat_layout() {
        let mut body = vec![0x45; ORIGINAL_DATAGRAM_MIN_LEN];
        body.extend(hex(TWO_LABELS));
        let split = IcmpErrorBody::split(&body, 0);
        assert_eq!(split.original_datagram.len(), 128);
        assert_eq!(split.extensions.unwrap().unwrap().mpls_labels().len(), 2);
    }

    #[test]
    fn split_compat_rejects_lookalikes() {
        // A long quote whose byte 128 happens to start with 0x20 but whose
        // "checksum" does not verify: it is all original datagram.
        let mut body = vec![0x45; ORIGINAL_DATAGRAM_MIN_LEN];
        body.extend(hex("2000 1234 000c 0101 03e9 9001 0000 1bfe"));
        let split = IcmpErrorBody::split(&body, 0);
        assert_eq!(split.original_datagram.len(), body.len());
        assert!(split.extensions.is_none());
        // Short quote, no extension.
        assert!(IcmpErrorBody::split(&body[..60], 0).extensions.is_none());
    }
}
