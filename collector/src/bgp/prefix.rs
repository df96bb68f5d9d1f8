//! IPv4 prefixes as the database stores them: network address as an integer plus a length.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Builds a prefix from its stored form; `None` if `len` > 32. Host bits are cleared.
pub fn from_parts(net: u32, len: u8) -> Option<Ipv4Net> {
    Ipv4Net::new(Ipv4Addr::from(net), len)
        .ok()
        .map(|p| p.trunc())
}

/// The stored form of `prefix`: (network address with host bits cleared, length).
pub fn to_parts(prefix: Ipv4Net) -> (u32, u8) {
    (u32::from(prefix.trunc().network()), prefix.prefix_len())
}

/// Whether two prefixes share any address (one contains the other).
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// Whether `prefix` overlaps any of `targets`.
pub fn overlaps_any(prefix: Ipv4Net, targets: &[Ipv4Net]) -> bool {
    targets.iter().any(|t| overlaps(prefix, *t))
}

/// The prefix of length `len` that contains `addr`.
pub fn covering(addr: Ipv4Addr, len: u8) -> Ipv4Net {
    Ipv4Net::new(addr, len).expect("len <= 32").trunc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let nk = p("175.45.176.0/22");
        assert!(overlaps(nk, p("175.45.178.0/24")));
        assert!(overlaps(nk, p("175.45.0.0/16")));
        assert!(overlaps(nk, nk));
        assert!(!overlaps(nk, p("175.45.180.0/24")));
        assert!(!overlaps(nk, p("175.45.175.0/24")));
    }

    #[test]
    fn parts_round_trip_and_clear_host_bits() {
        let (net, len) = to_parts(p("11.13.0.0/13"));
        assert_eq!(
            (Ipv4Addr::from(net), len),
            ("11.8.0.0".parse().unwrap(), 13)
        );
        assert_eq!(from_parts(net, len), Some(p("11.8.0.0/13")));
        assert_eq!(from_parts(0, 33), None);
        assert_eq!(
            covering("175.45.177.9".parse().unwrap(), 24),
            p("175.45.177.0/24")
        );
    }
}
