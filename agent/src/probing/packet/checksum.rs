//! Internet checksum (RFC 1071) arithmetic that pnet does not provide:
//! verification with the ±0 ambiguity handled, and the compensation word
//! that pins a checksum to a chosen value (the heart of Paris traceroute).
//!
//! pnet's `checksum` helpers compute a checksum with the checksum field
//! skipped; everything here is expressed in terms of that value so that the
//! builder and the parser share pnet's implementation of the sum itself.

/// Adds two 16-bit values in one's complement arithmetic (end-around carry).
#[must_use]
pub(super) const fn ones_complement_add(a: u16, b: u16) -> u16 {
    let sum = a as u32 + b as u32;
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// Whether a message whose checksum field holds `found` is intact, given
/// `computed`, the checksum pnet computes over the message with that field
/// skipped.
///
/// Comparing `found == computed` would be wrong in one case: one's
/// complement has two zeros, so a sender may transmit `0xffff` where pnet
/// computes `0x0000` (UDP senders must, RFC 768). The message is intact
/// exactly when the sum of all its words, checksum included, is `0xffff`.
///
/// Under `cfg(fuzzing)` every checksum verifies, so that the fuzzer reaches
/// the code behind the check instead of spending its time forging sums.
#[must_use]
pub(super) const fn verifies(found: u16, computed: u16) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    ones_complement_add(!computed, found) == 0xffff
}

/// The two bytes to write at byte `offset` of a checksummed message (whose
/// compensation bytes are currently zero) so that a checksum field holding
/// `target` verifies.
///
/// `computed` is pnet's checksum of the message as it is now, i.e. with the
/// compensation bytes zero and the checksum field skipped. The sum of the
/// message without the field is then `!computed`; we need it to become
/// `!target`, so we add `!target - !computed = computed + !target`.
///
/// The payload tag has an odd length, so the compensation word may start at
/// an odd offset. The checksum sums big-endian 16-bit words from the start
/// of the message, so a value written at an odd offset is summed with its
/// bytes swapped (RFC 1071 §2(B), byte-order independence): we swap them
/// back by writing it little-endian.
#[must_use]
pub(super) const fn compensation_bytes(computed: u16, target: u16, offset: usize) -> [u8; 2] {
    let word = ones_complement_add(computed, !target);
    if offset.is_multiple_of(2) {
        word.to_be_bytes()
    } else {
        word.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::util::checksum;

    #[test]
    fn end_around_carry() {
        assert_eq!(ones_complement_add(0xffff, 0x0001), 0x0001);
        assert_eq!(ones_complement_add(0x8000, 0x8000), 0x0001);
        assert_eq!(ones_complement_add(0x1234, 0x0001), 0x1235);
    }

    #[test]
    fn both_zeros_verify() {
        // RFC 1071's example words, checksum field at word 4.
        let mut message = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0, 0];
        let computed = checksum(&message, 4);
        assert_eq!(computed, 0x220d);
        assert!(verifies(computed, computed));
        assert!(!verifies(computed ^ 1, computed));
        // A message whose words sum to 0xffff: pnet computes 0, senders may
        // send 0xffff instead and receivers accept both.
        message = [0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(checksum(&message, 4), 0);
        assert!(verifies(0x0000, 0));
        assert!(verifies(0xffff, 0));
    }

    #[test]
    fn compensation_pins_the_checksum_at_even_and_odd_offsets() {
        for offset in [4_usize, 5, 8, 9] {
            for target in [0x0000_u16, 0x0001, 0x1234, 0x8000, 0xfffe, 0xffff] {
                // word 0: checksum field; some payload; compensation at offset.
                let mut message = *b"\0\0abcdefghij\0";
                message[offset] = 0;
                message[offset + 1] = 0;
                let computed = checksum(&message, 0);
                let bytes = compensation_bytes(computed, target, offset);
                message[offset..offset + 2].copy_from_slice(&bytes);
                let after = checksum(&message, 0);
                assert!(
                    verifies(target, after),
                    "offset {offset} target {target:#x}"
                );
            }
        }
    }
}
