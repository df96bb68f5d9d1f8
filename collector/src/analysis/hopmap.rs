//! Hop-to-AS mapping (see the module docs of [`crate::analysis`] for the rules).

use std::fmt;
use std::net::Ipv4Addr;

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

/// Maps addresses to [`HopClass`]es.
#[derive(Default)]
pub struct Mapper<'a> {
    ixps: IxpTable,
    fallback: Option<Box<dyn OriginLookup + 'a>>,
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
        Self { ixps, fallback }
    }

    /// The class of `addr` in `state` (no state: only the special, IXP and DNS rules apply).
    pub fn map(&mut self, state: Option<&BgpState>, addr: Ipv4Addr) -> HopClass {
        match classify(addr) {
            Some(Special::Private) => return HopClass::Private,
            Some(Special::Shared) => return HopClass::Shared,
            None => {}
        }
        if let Some(ixp) = self.ixps.lookup(addr) {
            return HopClass::Ixp(ixp.name.clone());
        }
        if let Some((_, origins)) = state.and_then(|s| s.origins_lpm(addr)) {
            return from_origins(origins.into_iter().collect());
        }
        match self.fallback.as_mut() {
            Some(lookup) => from_origins(lookup.origins(addr)),
            None => HopClass::Unmapped,
        }
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
