//! Special-purpose IPv4 ranges (IANA registry): addresses that belong to no AS.

use std::net::Ipv4Addr;

/// What kind of non-public address this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Special {
    /// RFC 1918, loopback, link-local, documentation, benchmarking, reserved, multicast, …
    Private,
    /// 100.64.0.0/10, shared address space (RFC 6598, carrier-grade NAT).
    Shared,
}

const PRIVATE: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10.0.0.0/8
    (0x7F00_0000, 8),  // 127.0.0.0/8
    (0xA9FE_0000, 16), // 169.254.0.0/16
    (0xAC10_0000, 12), // 172.16.0.0/12
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 TEST-NET-1
    (0xC0A8_0000, 16), // 192.168.0.0/16
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 TEST-NET-2
    (0xCB00_7100, 24), // 203.0.113.0/24 TEST-NET-3
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
];

/// The special-purpose class of `addr`, `None` for a public address.
pub fn classify(addr: Ipv4Addr) -> Option<Special> {
    let a = u32::from(addr);
    let within = |(net, len): (u32, u8)| a & (u32::MAX << (32 - u32::from(len))) == net;
    if within((0x6440_0000, 10)) {
        return Some(Special::Shared);
    }
    PRIVATE
        .iter()
        .copied()
        .any(within)
        .then_some(Special::Private)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("10.1.2.3"), Some(Special::Private));
        assert_eq!(c("172.31.255.255"), Some(Special::Private));
        assert_eq!(c("172.32.0.1"), None);
        assert_eq!(c("192.168.1.1"), Some(Special::Private));
        assert_eq!(c("100.64.0.1"), Some(Special::Shared));
        assert_eq!(c("100.127.255.255"), Some(Special::Shared));
        assert_eq!(c("100.128.0.1"), None);
        assert_eq!(c("175.45.176.1"), None);
        assert_eq!(c("255.255.255.255"), Some(Special::Private));
    }
}
