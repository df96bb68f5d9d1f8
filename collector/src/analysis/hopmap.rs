//! Hop-to-AS mapping (see the module docs of [`crate::analysis`] for the rules).

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

use super::cymru::OriginLookup;
use super::ixp::IxpTable;
use super::special::{Special, classify};
use crate::bgp::BgpState;

/// What a hop address is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HopClass {
    /// Mapped to one public AS.
    As(u32),
    /// Private or otherwise special-purpose address space.
    Private,
    /// Shared address space, 100.64.0.0/10.
    Shared,
    /// An IXP peering LAN (the exchange's name).
    Ixp(String),
    /// The covering prefix has several origin ASes: not forced into one.
    MultiOrigin(Vec<u32>),
    /// No loaded table covers it.
    Unmapped,
}

impl HopClass {
    /// The public AS, when mapped to exactly one.
    pub fn asn(&self) -> Option<u32> {
        match self {
            Self::As(asn) => Some(*asn),
            _ => None,
        }
    }

    /// The class name used in exports: `as`, `private`, `shared`, `ixp`, `multi-origin`,
    /// `unmapped`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::As(_) => "as",
            Self::Private => "private",
            Self::Shared => "shared",
            Self::Ixp(_) => "ixp",
            Self::MultiOrigin(_) => "multi-origin",
            Self::Unmapped => "unmapped",
        }
    }
}

impl fmt::Display for HopClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::As(asn) => write!(f, "AS{asn}"),
            Self::Ixp(name) => write!(f, "IXP {name}"),
            Self::MultiOrigin(asns) => {
                let list: Vec<String> = asns.iter().map(|a| format!("AS{a}")).collect();
                write!(f, "multi-origin {}", list.join("/"))
            }
            other => f.write_str(other.kind()),
        }
    }
}

/// Default prefix lengths of the hop-mapping table: /8 to /24, as CAIDA's prefix-to-AS.
pub const DEFAULT_MAP_LENGTHS: RangeInclusive<u8> = 8..=24;

/// A mapping prefix seen by this few peers, out of at least [`THIN_MIN_TOTAL`] full-feed
/// peers, is flagged: one peer's leak or internal route is weak evidence of an origin.
pub const THIN_MAX_PEERS: usize = 1;
/// See [`THIN_MAX_PEERS`].
pub const THIN_MIN_TOTAL: usize = 3;

/// The BGP evidence behind a hop's AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingNote {
    /// The longest matching prefix of the mapping table.
    pub prefix: Ipv4Net,
    /// Collector peers with a route for it.
    pub peers: usize,
    /// Full-feed collector peers of the collectors used (a route for at least half of their
    /// dump's prefixes).
    pub peers_total: usize,
}

impl MappingNote {
    /// Whether only one peer of many sees the prefix (the mapping is flagged).
    pub fn thin(&self) -> bool {
        self.peers <= THIN_MAX_PEERS && self.peers_total >= THIN_MIN_TOTAL
    }
}

impl fmt::Display for MappingNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seen by {} of {} full-feed peers",
            self.prefix, self.peers, self.peers_total
        )
    }
}

/// Maps addresses to [`HopClass`]es.
pub struct Mapper<'a> {
    ixps: IxpTable,
    fallback: Option<Box<dyn OriginLookup + 'a>>,
    lengths: RangeInclusive<u8>,
}

impl Default for Mapper<'_> {
    fn default() -> Self {
        Self {
            ixps: IxpTable::default(),
            fallback: None,
            lengths: DEFAULT_MAP_LENGTHS,
        }
    }
}

impl fmt::Debug for Mapper<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapper")
            .field("ixp_prefixes", &self.ixps.prefixes().len())
            .field("dns_fallback", &self.fallback.is_some())
            .finish()
    }
}

impl<'a> Mapper<'a> {
    /// A mapper with these IXP prefixes and optional lookup for addresses BGP does not cover.
    pub fn new(ixps: IxpTable, fallback: Option<Box<dyn OriginLookup + 'a>>) -> Self {
        Self {
            ixps,
            fallback,
            lengths: DEFAULT_MAP_LENGTHS,
        }
    }

    /// Only prefixes of these lengths map hops (default [`DEFAULT_MAP_LENGTHS`]).
    #[must_use]
    pub fn with_prefix_lengths(mut self, lengths: RangeInclusive<u8>) -> Self {
        self.lengths = lengths;
        self
    }

    /// The class of `addr` in `state` (no state: only the special, IXP and DNS rules apply).
    pub fn map(&mut self, state: Option<&BgpState>, addr: Ipv4Addr) -> HopClass {
        self.map_with_note(state, addr).0
    }

    /// The class of `addr`, with the BGP evidence when the loaded BGP data mapped it.
    pub fn map_with_note(
        &mut self,
        state: Option<&BgpState>,
        addr: Ipv4Addr,
    ) -> (HopClass, Option<MappingNote>) {
        match classify(addr) {
            Some(Special::Private) => return (HopClass::Private, None),
            Some(Special::Shared) => return (HopClass::Shared, None),
            None => {}
        }
        if let Some(ixp) = self.ixps.lookup(addr) {
            return (HopClass::Ixp(ixp.name.clone()), None);
        }
        if let Some(m) = state.and_then(|s| s.lpm_within(addr, self.lengths.clone())) {
            let note = MappingNote {
                prefix: m.prefix,
                peers: m.peers,
                peers_total: m.peers_total,
            };
            return (from_origins(m.origins.into_iter().collect()), Some(note));
        }
        let class = match self.fallback.as_mut() {
            Some(lookup) => from_origins(lookup.origins(addr)),
            None => HopClass::Unmapped,
        };
        (class, None)
    }
}

fn from_origins(mut origins: Vec<u32>) -> HopClass {
    origins.sort_unstable();
    origins.dedup();
    match origins.as_slice() {
        [] => HopClass::Unmapped,
        [one] => HopClass::As(*one),
        _ => HopClass::MultiOrigin(origins),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ixp::IxpPrefix;

    struct Fixed;
    impl OriginLookup for Fixed {
        fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32> {
            match addr.octets()[0] {
                1 => vec![13335],
                2 => vec![2, 3],
                _ => vec![],
            }
        }
    }

    #[test]
    fn special_ixp_and_fallback() {
        let ixps = IxpTable::new(vec![IxpPrefix {
            prefix: "1.2.3.0/24".parse().unwrap(),
            name: "TEST-IX".into(),
        }]);
        let mut m = Mapper::new(ixps, Some(Box::new(Fixed)));
        let mut map = |s: &str| m.map(None, s.parse().unwrap());
        assert_eq!(map("10.0.0.1"), HopClass::Private);
        assert_eq!(map("100.64.1.1"), HopClass::Shared);
        assert_eq!(map("1.2.3.4"), HopClass::Ixp("TEST-IX".into()));
        assert_eq!(map("1.1.1.1"), HopClass::As(13335));
        assert_eq!(map("2.2.2.2"), HopClass::MultiOrigin(vec![2, 3]));
        assert_eq!(map("3.3.3.3"), HopClass::Unmapped);
        let mut plain = Mapper::default();
        assert_eq!(
            plain.map(None, "1.1.1.1".parse().unwrap()),
            HopClass::Unmapped
        );
    }
}
