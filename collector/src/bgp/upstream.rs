//! Announced upstreams: which AS the BGP data says stands directly before the target AS.
//!
//! For one route, [`upstream_of`] reads the AS path from the origin backwards: prepending of the
//! origin is collapsed, private and reserved ASNs are skipped (and flagged), an AS_SET is
//! recorded but never matched, and a path that does not end in the target AS is `OtherOrigin`.
//! [`AnnouncedUpstreams`] gathers that over all collector peers that have a route for a prefix.

use std::collections::{BTreeMap, BTreeSet};

use super::asn::is_private_or_reserved;
use super::aspath::{AsPath, Segment};

/// What one route says about the upstream of the target AS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A public AS stands directly before the origin.
    As {
        /// The upstream ASN.
        asn: u32,
        /// Private or reserved ASNs that stood between it and the origin and were skipped
        /// (the route is flagged when this is not empty).
        skipped: Vec<u32>,
    },
    /// An AS_SET stands directly before the origin: recorded and flagged, never matched.
    AsSet {
        /// The set's members, as in the path.
        members: Vec<u32>,
        /// Private or reserved ASNs skipped before reaching the set.
        skipped: Vec<u32>,
    },
    /// Nothing public stands before the origin: the collector peer is the target AS itself,
    /// or only private/reserved ASNs precede it.
    NoUpstream {
        /// The private or reserved ASNs that precede the origin.
        skipped: Vec<u32>,
    },
    /// The path does not end in the target AS (`other-origin`).
    OtherOrigin {
        /// The path's origin set (empty for an empty path).
        origins: Vec<u32>,
    },
}

impl Upstream {
    /// The upstream ASN this route can be matched on: only a plain public AS counts.
    pub fn matchable(&self) -> Option<u32> {
        match self {
            Self::As { asn, .. } => Some(*asn),
            _ => None,
        }
    }

    /// Whether private or reserved ASNs had to be skipped to reach the upstream.
    pub fn skipped_private(&self) -> bool {
        match self {
            Self::As { skipped, .. }
            | Self::AsSet { skipped, .. }
            | Self::NoUpstream { skipped } => !skipped.is_empty(),
            Self::OtherOrigin { .. } => false,
        }
    }
}

enum Item<'a> {
    As(u32),
    Set(&'a [u32]),
}

/// The upstream of `target` in `path` (see the module docs for the rules).
pub fn upstream_of(path: &AsPath, target: u32) -> Upstream {
    let items: Vec<Item<'_>> = path
        .segments()
        .iter()
        .flat_map(|segment| -> Box<dyn Iterator<Item = Item<'_>> + '_> {
            match segment {
                Segment::Seq(v) => Box::new(v.iter().map(|a| Item::As(*a))),
                Segment::Set(v) => Box::new(std::iter::once(Item::Set(v))),
            }
        })
        .collect();
    if !matches!(items.last(), Some(Item::As(a)) if *a == target) {
        return Upstream::OtherOrigin {
            origins: path.origins(),
        };
    }
    // Skipped ASNs, collected from the origin backwards, reported in path order.
    let mut skipped: Vec<u32> = Vec::new();
    // Walk from the AS before the origin towards the collector peer. The target AS itself is
    // passed over too: prepending of the origin, and a target AS seen again behind a private
    // ASN (an internal AS of the target network) are both still the origin side.
    for item in items.iter().rev().skip(1) {
        match item {
            Item::As(a) if *a == target => {}
            Item::As(a) if is_private_or_reserved(*a) => {
                if skipped.last() != Some(a) {
                    skipped.push(*a);
                }
            }
            Item::As(a) => {
                skipped.reverse();
                return Upstream::As { asn: *a, skipped };
            }
            Item::Set(members) => {
                skipped.reverse();
                return Upstream::AsSet {
                    members: members.to_vec(),
                    skipped,
                };
            }
        }
    }
    skipped.reverse();
    Upstream::NoUpstream { skipped }
}

/// Numerator and denominator of the visibility of one upstream for one prefix: collector peers
/// whose route has the upstream directly before the origin, over peers with any route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visibility {
    /// Peers whose route for the prefix has the upstream directly before the origin.
    pub peers_via_upstream: usize,
    /// Peers with any route for the prefix.
    pub peers_with_route: usize,
}

impl Visibility {
    /// The share in [0, 1]; `None` when no peer has a route.
    pub fn ratio(&self) -> Option<f64> {
        (self.peers_with_route > 0)
            .then(|| self.peers_via_upstream as f64 / self.peers_with_route as f64)
    }
}

/// The upstreams announced for one prefix, counted over collector peers (a peer with several
/// paths for the prefix, ADD-PATH, is counted once per distinct observation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnouncedUpstreams {
    /// Peers with at least one route for the prefix.
    pub peers_with_route: usize,
    /// Matchable upstream ASN → peers whose route has it directly before the origin.
    pub upstreams: BTreeMap<u32, usize>,
    /// AS_SETs found directly before the origin → peers (flagged, never matched).
    pub as_sets: BTreeMap<Vec<u32>, usize>,
    /// Peers whose upstream was reached only by skipping private/reserved ASNs.
    pub skipped_private: usize,
    /// Peers whose route ends in the target AS with nothing public before it.
    pub no_upstream: usize,
    /// Origin set of routes not ending in the target AS → peers (`other-origin`).
    pub other_origin: BTreeMap<Vec<u32>, usize>,
}

impl AnnouncedUpstreams {
    /// Gathers the routes `(peer, path)` of one prefix.
    pub fn from_routes<'a, P: Ord + Copy + 'a>(
        routes: impl IntoIterator<Item = (P, &'a AsPath)>,
        target: u32,
    ) -> Self {
        let mut per_peer: BTreeMap<P, BTreeSet<Upstream>> = BTreeMap::new();
        for (peer, path) in routes {
            per_peer
                .entry(peer)
                .or_default()
                .insert(upstream_of(path, target));
        }
        let mut out = Self {
            peers_with_route: per_peer.len(),
            ..Self::default()
        };
        for observations in per_peer.values() {
            let mut skipped = false;
            for observation in observations {
                skipped |= observation.skipped_private();
                match observation {
                    Upstream::As { asn, .. } => *out.upstreams.entry(*asn).or_default() += 1,
                    Upstream::AsSet { members, .. } => {
                        *out.as_sets.entry(members.clone()).or_default() += 1;
                    }
                    Upstream::NoUpstream { .. } => out.no_upstream += 1,
                    Upstream::OtherOrigin { origins } => {
                        *out.other_origin.entry(origins.clone()).or_default() += 1;
                    }
                }
            }
            out.skipped_private += usize::from(skipped);
        }
        out
    }

    /// Whether some peer's route ends in the target AS: the target AS originates the prefix
    /// (with or without a matchable upstream).
    pub fn originated_by_target(&self) -> bool {
        !self.upstreams.is_empty() || !self.as_sets.is_empty() || self.no_upstream > 0
    }

    /// The set of matchable upstreams.
    pub fn upstream_set(&self) -> BTreeSet<u32> {
        self.upstreams.keys().copied().collect()
    }

    /// Visibility of `upstream` among the peers with a route.
    pub fn visibility(&self, upstream: u32) -> Visibility {
        Visibility {
            peers_via_upstream: self.upstreams.get(&upstream).copied().unwrap_or(0),
            peers_with_route: self.peers_with_route,
        }
    }
}

impl PartialOrd for Upstream {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Upstream {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn key(u: &Upstream) -> (u8, &[u32], &[u32]) {
            match u {
                Upstream::As { asn, skipped } => (0, std::slice::from_ref(asn), skipped),
                Upstream::AsSet { members, skipped } => (1, members, skipped),
                Upstream::NoUpstream { skipped } => (2, &[], skipped),
                Upstream::OtherOrigin { origins } => (3, origins, &[]),
            }
        }
        key(self).cmp(&key(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NK: u32 = 131_279;

    fn up(path: &str) -> Upstream {
        upstream_of(&path.parse().unwrap(), NK)
    }

    #[test]
    fn plain_and_prepended_paths() {
        assert_eq!(
            up("3356 4837 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![]
            }
        );
        assert_eq!(
            up("3356 4837 131279 131279 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![]
            }
        );
        assert_eq!(
            up("1299 20485 20485 20485 131279"),
            Upstream::As {
                asn: 20485,
                skipped: vec![]
            }
        );
        assert_eq!(
            up("4837 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![]
            }
        );
    }

    #[test]
    fn as_set_before_origin_is_recorded_and_never_matched() {
        let u = up("3356 {4837,20485} 131279");
        assert_eq!(
            u,
            Upstream::AsSet {
                members: vec![4837, 20485],
                skipped: vec![]
            }
        );
        assert_eq!(u.matchable(), None);
        // A set further up the path does not matter.
        assert_eq!(
            up("{1,2} 4837 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![]
            }
        );
    }

    #[test]
    fn private_and_reserved_asns_are_skipped_and_flagged() {
        let u = up("3356 4837 64512 131279");
        assert_eq!(
            u,
            Upstream::As {
                asn: 4837,
                skipped: vec![64512]
            }
        );
        assert!(u.skipped_private());
        assert_eq!(
            up("3356 4837 23456 4200000000 4200000000 0 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![23456, 4_200_000_000, 0]
            }
        );
        assert_eq!(up("1299 65535 64496 65536 131279").matchable(), Some(1299));
        // Internal AS of the target network behind a private ASN: still the origin side.
        assert_eq!(
            up("4837 131279 65000 131279"),
            Upstream::As {
                asn: 4837,
                skipped: vec![65000]
            }
        );
        assert_eq!(
            up("64512 131279"),
            Upstream::NoUpstream {
                skipped: vec![64512]
            }
        );
        assert_eq!(
            up("3356 {1,2} 65001 131279"),
            Upstream::AsSet {
                members: vec![1, 2],
                skipped: vec![65001]
            }
        );
    }

    #[test]
    fn other_origin_and_lone_origin() {
        assert_eq!(
            up("3356 4837"),
            Upstream::OtherOrigin {
                origins: vec![4837]
            }
        );
        assert_eq!(
            up("3356 131279 4837"),
            Upstream::OtherOrigin {
                origins: vec![4837]
            }
        );
        assert_eq!(
            up("3356 {131279}"),
            Upstream::OtherOrigin { origins: vec![NK] }
        );
        assert_eq!(up(""), Upstream::OtherOrigin { origins: vec![] });
        assert_eq!(
            up("131279 131279"),
            Upstream::NoUpstream { skipped: vec![] }
        );
    }

    #[test]
    fn announced_upstreams_count_peers() {
        let paths: Vec<(u32, AsPath)> = [
            (1, "3356 4837 131279"),
            (2, "1299 20485 131279"),
            (3, "174 4837 4837 131279"),
            (4, "2914 {4837,20485} 131279"),
            (5, "6939 4837 65000 131279"),
            (6, "7018 4134"),
        ]
        .into_iter()
        .map(|(p, s)| (p, s.parse().unwrap()))
        .collect();
        let a = AnnouncedUpstreams::from_routes(paths.iter().map(|(p, path)| (*p, path)), NK);
        assert_eq!(a.peers_with_route, 6);
        assert_eq!(a.upstreams, BTreeMap::from([(4837, 3), (20485, 1)]));
        assert_eq!(a.as_sets, BTreeMap::from([(vec![4837, 20485], 1)]));
        assert_eq!(a.skipped_private, 1);
        assert_eq!(a.other_origin, BTreeMap::from([(vec![4134], 1)]));
        assert_eq!(
            a.visibility(4837),
            Visibility {
                peers_via_upstream: 3,
                peers_with_route: 6
            }
        );
        assert_eq!(a.visibility(4837).ratio(), Some(0.5));
        assert_eq!(a.visibility(9999).ratio(), Some(0.0));
        assert_eq!(AnnouncedUpstreams::default().visibility(4837).ratio(), None);
    }

    #[test]
    fn a_peer_with_two_paths_counts_once_per_upstream() {
        let a: AsPath = "3356 4837 131279".parse().unwrap();
        let b: AsPath = "3356 20485 131279".parse().unwrap();
        let c: AsPath = "3257 4837 131279".parse().unwrap();
        let got = AnnouncedUpstreams::from_routes([(1, &a), (1, &b), (1, &c)], NK);
        assert_eq!(got.peers_with_route, 1);
        assert_eq!(got.upstreams, BTreeMap::from([(4837, 1), (20485, 1)]));
    }
}
