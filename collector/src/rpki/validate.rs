//! Route origin validation (RFC 6811, section 2), with AS0 payloads (RFC 7607, RFC 6483
//! section 4) never matching.
//!
//! A VRP *covers* a route when the VRP's prefix contains the route's prefix. A covering VRP
//! *matches* when its AS is the route's origin AS, that AS is not 0, and the route's length is
//! at most the VRP's maxLength. Then:
//! - `valid`: some covering VRP matches;
//! - `not-found`: no VRP covers the route;
//! - otherwise invalid, and nkpath says which way, as operators and RIPEstat do:
//!   `invalid-length` when a covering VRP has the route's origin AS but a shorter maxLength
//!   (the 2025-03-18 case: a /22 ROA with maxLength 22 and /24s announced), else `invalid-asn`.
//!
//! A route whose origin is an AS_SET has no single origin ("NONE" in RFC 6811) and matches no
//! VRP. When no RPKI data is recent enough the answer is `unknown`, never a guess; the caller
//! decides that (see [`RpkiState::Unknown`]).

use std::fmt;

use ipnet::Ipv4Net;

use super::vrp::Vrp;

/// The RPKI state of one announcement.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RpkiState {
    /// A covering VRP has the route's origin and allows its length.
    Valid,
    /// Covered, but no covering VRP has the route's origin.
    InvalidAsn,
    /// A covering VRP has the route's origin, but its maxLength is shorter than the route.
    InvalidLength,
    /// No VRP covers the route.
    NotFound,
    /// No RPKI data to judge by, with the reason (none loaded, or too old).
    Unknown(String),
}

impl RpkiState {
    /// The short name reports print.
    pub fn name(&self) -> &'static str {
        match self {
            RpkiState::Valid => "valid",
            RpkiState::InvalidAsn => "invalid-asn",
            RpkiState::InvalidLength => "invalid-length",
            RpkiState::NotFound => "not-found",
            RpkiState::Unknown(_) => "unknown",
        }
    }

    /// Whether the state is one of the two invalid ones.
    pub fn is_invalid(&self) -> bool {
        matches!(self, RpkiState::InvalidAsn | RpkiState::InvalidLength)
    }
}

impl fmt::Display for RpkiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpkiState::Unknown(reason) => write!(f, "unknown ({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// The state of `route` announced with origin `origin` (`None` for an AS_SET origin),
/// against `vrps` (any order).
pub fn validate(route: Ipv4Net, origin: Option<u32>, vrps: &[Vrp]) -> RpkiState {
    let mut covered = false;
    let mut origin_with_short_max_len = false;
    for vrp in vrps.iter().filter(|v| v.prefix.contains(&route)) {
        covered = true;
        let same_origin = origin.is_some_and(|asn| asn == vrp.asn && vrp.asn != 0);
        if !same_origin {
            continue;
        }
        if route.prefix_len() <= vrp.max_len {
            return RpkiState::Valid;
        }
        origin_with_short_max_len = true;
    }
    match (covered, origin_with_short_max_len) {
        (false, _) => RpkiState::NotFound,
        (true, true) => RpkiState::InvalidLength,
        (true, false) => RpkiState::InvalidAsn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vrp(prefix: &str, max_len: u8, asn: u32) -> Vrp {
        Vrp {
            prefix: prefix.parse().unwrap(),
            max_len,
            asn,
        }
    }

    fn state(route: &str, origin: u32, vrps: &[Vrp]) -> RpkiState {
        validate(route.parse().unwrap(), Some(origin), vrps)
    }

    #[test]
    fn the_2025_roa_makes_every_announced_24_invalid_length() {
        let roa = [vrp("175.45.176.0/22", 22, 131_279)];
        assert_eq!(state("175.45.176.0/22", 131_279, &roa), RpkiState::Valid);
        for s24 in [
            "175.45.176.0/24",
            "175.45.177.0/24",
            "175.45.178.0/24",
            "175.45.179.0/24",
        ] {
            assert_eq!(state(s24, 131_279, &roa), RpkiState::InvalidLength, "{s24}");
        }
        let fixed = [vrp("175.45.176.0/22", 24, 131_279)];
        assert_eq!(state("175.45.178.0/24", 131_279, &fixed), RpkiState::Valid);
    }

    #[test]
    fn another_origin_is_invalid_asn_and_uncovered_is_not_found() {
        let roa = [vrp("175.45.176.0/22", 24, 131_279)];
        assert_eq!(state("175.45.178.0/24", 4_837, &roa), RpkiState::InvalidAsn);
        // A hijacker's more-specific beyond maxLength with another origin is invalid-asn:
        // the origin differs, so the length is not what is wrong.
        assert_eq!(state("175.45.178.0/25", 4_837, &roa), RpkiState::InvalidAsn);
        assert_eq!(state("175.45.180.0/24", 131_279, &roa), RpkiState::NotFound);
        // A VRP more specific than the route does not cover it.
        let narrow = [vrp("175.45.178.0/24", 24, 131_279)];
        assert_eq!(
            state("175.45.176.0/22", 131_279, &narrow),
            RpkiState::NotFound
        );
    }

    #[test]
    fn any_matching_vrp_wins_over_others_that_would_invalidate() {
        let vrps = [
            vrp("175.45.176.0/22", 22, 131_279),
            vrp("175.45.176.0/22", 24, 4_837),
            vrp("175.45.178.0/24", 24, 131_279),
        ];
        assert_eq!(state("175.45.178.0/24", 131_279, &vrps), RpkiState::Valid);
        assert_eq!(state("175.45.177.0/24", 4_837, &vrps), RpkiState::Valid);
        assert_eq!(
            state("175.45.177.0/24", 131_279, &vrps),
            RpkiState::InvalidLength
        );
    }

    #[test]
    fn as0_never_matches_even_as_origin_0() {
        let vrps = [vrp("175.45.176.0/22", 24, 0)];
        assert_eq!(state("175.45.178.0/24", 0, &vrps), RpkiState::InvalidAsn);
        assert_eq!(
            state("175.45.178.0/24", 131_279, &vrps),
            RpkiState::InvalidAsn
        );
    }

    #[test]
    fn an_as_set_origin_matches_nothing() {
        let vrps = [vrp("175.45.176.0/22", 24, 131_279)];
        let route = "175.45.178.0/24".parse().unwrap();
        assert_eq!(validate(route, None, &vrps), RpkiState::InvalidAsn);
        assert_eq!(validate(route, None, &[]), RpkiState::NotFound);
    }
}
