//! AS number classes that matter when reading AS paths.

/// Whether `asn` is private, reserved or for documentation, so it can never name a real
/// upstream: 0 (RFC 7607), 23456 AS_TRANS (RFC 6793), 64496–64511 and 65536–65551
/// documentation (RFC 5398), 64512–65534 and 4200000000–4294967294 private use (RFC 6996),
/// 65535 and 4294967295 reserved (RFC 7300).
pub const fn is_private_or_reserved(asn: u32) -> bool {
    matches!(
        asn,
        0 | 23456 | 64496..=64511 | 64512..=65534 | 65535 | 65536..=65551 | 4_200_000_000..=u32::MAX
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_iana_registry() {
        for asn in [
            0,
            23456,
            64496,
            64511,
            64512,
            65000,
            65534,
            65535,
            65536,
            65551,
            4_200_000_000,
            4_294_967_294,
            4_294_967_295,
        ] {
            assert!(
                is_private_or_reserved(asn),
                "{asn} should be private/reserved"
            );
        }
        for asn in [
            1,
            4837,
            20485,
            23455,
            23457,
            64495,
            65552,
            131_279,
            4_199_999_999,
        ] {
            assert!(!is_private_or_reserved(asn), "{asn} is public");
        }
    }
}
