//! Route sets: the origins that one collector's peers announce for one prefix.
//!
//! A RIB dump holds one route per peer and prefix; for hop mapping only the origin of each
//! route matters. A route set groups the peers (by their collector-local index) that announce
//! the same origin set. Most prefixes of a full table share a handful of route sets (same
//! origin, same peers), so the loader deduplicates them in memory and the database stores
//! each once, in a canonical text form:
//!
//! ```text
//! 4837@0-19            peers 0..=19 announce origin 4837
//! 4134@0-4,7;4837@5-6  MOAS: two groups, sorted by origin set
//! 1 2@3                peer 3's path ends in the AS_SET {1,2}
//! @8                   peer 8's path is empty (no origin known)
//! ```
//!
//! Keeping the peers (not only the union of origins) is what lets a BGP4MP update from one
//! peer, or its session going down, change the origins at a time t exactly.

use std::fmt::Write as _;

/// The origins announced for one prefix by one collector's peers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RouteSet {
    /// (origin set, sorted peer indexes), sorted by origin set; no empty group.
    groups: Vec<(Vec<u32>, Vec<u32>)>,
}

impl RouteSet {
    /// Builds a route set from `(peer index, origin set)` pairs (any order; a peer may repeat
    /// with several origin sets under ADD-PATH).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (u32, &'a [u32])>) -> Self {
        let mut sorted: Vec<(&[u32], u32)> = pairs.into_iter().map(|(p, o)| (o, p)).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut groups: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
        for (origins, peer) in sorted {
            match groups.last_mut() {
                Some((o, peers)) if o.as_slice() == origins => peers.push(peer),
                _ => groups.push((origins.to_vec(), vec![peer])),
            }
        }
        Self { groups }
    }

    /// Whether no peer has a route.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// `(origin set, peer indexes)` groups.
    pub fn groups(&self) -> &[(Vec<u32>, Vec<u32>)] {
        &self.groups
    }

    /// Every `(peer index, origin set)` pair.
    pub fn pairs(&self) -> impl Iterator<Item = (u32, &[u32])> {
        self.groups
            .iter()
            .flat_map(|(o, peers)| peers.iter().map(move |p| (*p, o.as_slice())))
    }

    /// The union of all origin sets, sorted.
    pub fn origins(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .groups
            .iter()
            .flat_map(|(o, _)| o.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The canonical text form (see the module docs).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (origins, peers)) in self.groups.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(&join_asns(origins));
            out.push('@');
            write_ranges(&mut out, peers);
        }
        out
    }

    /// Parses the canonical text form.
    pub fn decode(text: &str) -> Result<Self, RouteSetParseError> {
        let err = || RouteSetParseError(text.to_string());
        let mut pairs: Vec<(u32, Vec<u32>)> = Vec::new();
        for group in text.split(';').filter(|g| !g.is_empty()) {
            let (origins, peers) = group.split_once('@').ok_or_else(err)?;
            let origins = origins
                .split_ascii_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .map_err(|_| err())?;
            for range in peers.split(',') {
                let (lo, hi) = match range.split_once('-') {
                    Some((lo, hi)) => (lo, hi),
                    None => (range, range),
                };
                let lo: u32 = lo.parse().map_err(|_| err())?;
                let hi: u32 = hi.parse().map_err(|_| err())?;
                if hi < lo || hi - lo > 1 << 20 {
                    return Err(err());
                }
                pairs.extend((lo..=hi).map(|p| (p, origins.clone())));
            }
        }
        Ok(Self::from_pairs(
            pairs.iter().map(|(p, o)| (*p, o.as_slice())),
        ))
    }
}

/// ASNs separated by single spaces.
pub fn join_asns(asns: &[u32]) -> String {
    let mut out = String::new();
    for (i, a) in asns.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{a}");
    }
    out
}

/// Parses ASNs separated by spaces.
pub fn parse_asns(text: &str) -> Option<Vec<u32>> {
    text.split_ascii_whitespace()
        .map(|a| a.parse().ok())
        .collect()
}

fn write_ranges(out: &mut String, sorted: &[u32]) {
    let mut i = 0;
    let mut first = true;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if !first {
            out.push(',');
        }
        first = false;
        if j == i {
            let _ = write!(out, "{}", sorted[i]);
        } else {
            let _ = write!(out, "{}-{}", sorted[i], sorted[j]);
        }
        i = j + 1;
    }
}

/// A stored route set that does not parse (the database was edited by hand or is damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed route set {0:?} in the database")]
pub struct RouteSetParseError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_origin_and_encodes_ranges() {
        let nk = [131_279u32];
        let other = [4134u32];
        let set_origin = [1u32, 2];
        let mut pairs: Vec<(u32, &[u32])> = (0..20).map(|p| (p, &nk[..])).collect();
        pairs[7] = (7, &other);
        pairs.push((25, &set_origin));
        pairs.push((30, &[]));
        let rs = RouteSet::from_pairs(pairs.iter().copied());
        let text = rs.encode();
        assert_eq!(text, "@30;1 2@25;4134@7;131279@0-6,8-19");
        assert_eq!(RouteSet::decode(&text).unwrap(), rs);
        assert_eq!(rs.origins(), vec![1, 2, 4134, 131_279]);
        assert_eq!(rs.pairs().count(), 22);
    }

    #[test]
    fn order_and_duplicates_do_not_change_the_encoding() {
        let a = [5u32];
        let one = RouteSet::from_pairs([(2, &a[..]), (1, &a[..]), (2, &a[..])]);
        let two = RouteSet::from_pairs([(1, &a[..]), (2, &a[..])]);
        assert_eq!(one.encode(), two.encode());
        assert_eq!(one.encode(), "5@1-2");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["5", "x@1", "5@a", "5@3-1"] {
            assert!(RouteSet::decode(bad).is_err(), "{bad}");
        }
        assert!(RouteSet::decode("").unwrap().is_empty());
    }
}
