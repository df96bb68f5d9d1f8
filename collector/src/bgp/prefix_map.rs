//! The collector's one prefix table: IPv4 prefixes to values, with longest-prefix match.
//!
//! Hop mapping looks up every replying address, once against the origins of each
//! collector's RIB (hundreds of thousands of prefixes) and once against the IXP peering
//! LANs (hundreds). Both use this table: a hash map keyed by (network, length), plus the set
//! of lengths present, so a longest-prefix match costs one hash probe per length that holds
//! at least one prefix (about 25 for a full table, a handful for the IXP list) and never a
//! scan of the prefixes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;

use super::prefix::{covering, from_parts, to_parts};

/// A prefix in the table's key form: (network address with host bits cleared, length).
pub type PrefixKey = (u32, u8);

/// A set of lengths 0..=32, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lengths(u64);

impl Lengths {
    /// Whether `len` is in the set.
    pub fn contains(self, len: u8) -> bool {
        len <= 32 && self.0 & (1 << len) != 0
    }

    fn insert(&mut self, len: u8) {
        self.0 |= 1 << len;
    }

    /// The lengths in either set.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The lengths of `range` in the set, longest first.
    pub fn longest_first(self, range: RangeInclusive<u8>) -> impl Iterator<Item = u8> {
        let (low, high) = (*range.start(), (*range.end()).min(32));
        (low..=high).rev().filter(move |len| self.contains(*len))
    }
}

/// IPv4 prefixes to values (see the module docs). Host bits of inserted prefixes are
/// cleared, so `10.1.2.3/8` and `10.0.0.0/8` are one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixMap<T> {
    entries: HashMap<PrefixKey, T>,
    lengths: Lengths,
}

impl<T> Default for PrefixMap<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            lengths: Lengths::default(),
        }
    }
}

impl<T> PrefixMap<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value of `prefix`, returning the previous one.
    pub fn insert(&mut self, prefix: Ipv4Net, value: T) -> Option<T> {
        self.insert_key(to_parts(prefix), value)
    }

    /// [`Self::insert`] by key; a key with a length over 32 is ignored (`None`).
    pub fn insert_key(&mut self, (net, len): PrefixKey, value: T) -> Option<T> {
        let key = to_parts(from_parts(net, len)?);
        self.lengths.insert(len);
        self.entries.insert(key, value)
    }

    /// The value of `prefix`, inserted with [`Self::entry_key`] when absent.
    pub fn entry_key(&mut self, key: PrefixKey) -> Entry<'_, PrefixKey, T> {
        self.lengths.insert(key.1.min(32));
        self.entries.entry(key)
    }

    /// The value of exactly `prefix`.
    pub fn get(&self, prefix: Ipv4Net) -> Option<&T> {
        self.entries.get(&to_parts(prefix))
    }

    /// The value of exactly this key.
    pub fn get_key(&self, key: PrefixKey) -> Option<&T> {
        self.entries.get(&key)
    }

    /// The lengths that hold at least one prefix.
    pub fn lengths(&self) -> Lengths {
        self.lengths
    }

    /// The most specific prefix of a length in `lengths` that contains `addr`, with its value.
    pub fn longest_match_within(
        &self,
        addr: Ipv4Addr,
        lengths: RangeInclusive<u8>,
    ) -> Option<(Ipv4Net, &T)> {
        self.lengths.longest_first(lengths).find_map(|len| {
            let prefix = covering(addr, len);
            self.get(prefix).map(|value| (prefix, value))
        })
    }

    /// The most specific prefix that contains `addr`, with its value.
    pub fn longest_match(&self, addr: Ipv4Addr) -> Option<(Ipv4Net, &T)> {
        self.longest_match_within(addr, 0..=32)
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The prefixes and their values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Net, &T)> {
        self.entries
            .iter()
            .filter_map(|(&(net, len), v)| Some((from_parts(net, len)?, v)))
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.values()
    }
}

impl<T> FromIterator<(Ipv4Net, T)> for PrefixMap<T> {
    fn from_iter<I: IntoIterator<Item = (Ipv4Net, T)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (prefix, value) in iter {
            map.insert(prefix, value);
        }
        map
    }
}

impl<T> FromIterator<(PrefixKey, T)> for PrefixMap<T> {
    fn from_iter<I: IntoIterator<Item = (PrefixKey, T)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (key, value) in iter {
            map.insert_key(key, value);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_match_takes_the_most_specific_prefix() {
        let map: PrefixMap<&str> = [
            (p("0.0.0.0/0"), "default"),
            (p("175.45.0.0/16"), "cn"),
            (p("175.45.176.0/22"), "kp"),
            (p("175.45.178.0/24"), "kp-24"),
        ]
        .into_iter()
        .collect();
        let hit = |a| map.longest_match(ip(a)).map(|(p, v)| (p.to_string(), *v));
        assert_eq!(
            hit("175.45.178.9"),
            Some(("175.45.178.0/24".into(), "kp-24"))
        );
        assert_eq!(hit("175.45.177.9"), Some(("175.45.176.0/22".into(), "kp")));
        assert_eq!(hit("175.45.1.1"), Some(("175.45.0.0/16".into(), "cn")));
        assert_eq!(hit("8.8.8.8"), Some(("0.0.0.0/0".into(), "default")));
        // Within /8../24 the default route never matches.
        assert_eq!(map.longest_match_within(ip("8.8.8.8"), 8..=24), None);
        assert_eq!(
            map.longest_match_within(ip("175.45.178.9"), 8..=22),
            Some((p("175.45.176.0/22"), &"kp"))
        );
    }

    #[test]
    fn host_bits_are_cleared_and_lengths_tracked() {
        let mut map = PrefixMap::new();
        assert_eq!(map.insert(p("11.13.0.0/13"), 1), None);
        assert_eq!(map.insert(p("11.8.0.0/13"), 2), Some(1));
        assert_eq!(map.len(), 1);
        assert!(map.lengths().contains(13));
        assert!(!map.lengths().contains(12));
        assert_eq!(map.insert_key((0, 33), 3), None);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(p("11.8.0.0/13")), Some(&2));
        assert_eq!(
            map.lengths()
                .union(Lengths(1 << 24))
                .longest_first(0..=32)
                .collect::<Vec<_>>(),
            [24, 13]
        );
    }
}
