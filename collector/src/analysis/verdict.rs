//! Announced sets and verdicts (see the module docs of [`crate::analysis`]).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::bgp::BgpState;
pub use crate::bgp::adjacency::Adjacency;

/// The verdict of one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VerdictKind {
    /// The entry AS is in the announced set.
    Match,
    /// Only in the set of a less specific covering prefix.
    MatchCovering,
    /// In neither, and never next to an announced upstream in a loaded path.
    Mismatch,
    /// In neither, but next to an announced upstream in some loaded path.
    Ambiguous,
    /// No verdict possible.
    Unknown,
}

impl VerdictKind {
    /// `match`, `match-covering`, `mismatch`, `ambiguous`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::MatchCovering => "match-covering",
            Self::Mismatch => "mismatch",
            Self::Ambiguous => "ambiguous",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict with its reason (empty for match and mismatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The verdict.
    pub kind: VerdictKind,
    /// Why (`no BGP data`, `border`, …).
    pub reason: String,
}

/// A target-AS prefix covering the target, with its announced upstream set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedPrefix {
    /// The prefix.
    pub prefix: Ipv4Net,
    /// Its announced upstreams (matchable ones only).
    pub upstreams: BTreeSet<u32>,
    /// Collector peers with a route ending in the target AS.
    pub peers: usize,
}

/// The announced sets for one target address: the most specific prefix first, then the
/// less specific covering ones.
pub fn announced_for(state: &BgpState, target: Ipv4Addr) -> Vec<AnnouncedPrefix> {
    let asn = state.target().asn;
    let mut out: Vec<AnnouncedPrefix> = state
        .target_prefixes()
        .into_iter()
        .filter(|p| p.contains(&target))
        .filter_map(|prefix| {
            let peers = state
                .routes(prefix)
                .iter()
                .filter(|r| r.path.origins() == [asn])
                .map(|r| r.peer.id)
                .collect::<BTreeSet<_>>()
                .len();
            (peers > 0).then(|| AnnouncedPrefix {
                prefix,
                upstreams: state.announced_upstreams(prefix).upstream_set(),
                peers,
            })
        })
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(a.prefix.prefix_len()));
    out
}

/// The verdict for an entry AS given the announced sets (most specific first).
pub fn verdict(
    has_bgp_data: bool,
    entry: Option<u32>,
    announced: &[AnnouncedPrefix],
    adjacency: &Adjacency,
) -> Verdict {
    let v = |kind, reason: &str| Verdict {
        kind,
        reason: reason.to_owned(),
    };
    if !has_bgp_data {
        return v(VerdictKind::Unknown, "no BGP data");
    }
    let Some(entry) = entry else {
        return v(VerdictKind::Unknown, "no entry AS");
    };
    let Some((most_specific, covering)) = announced.split_first() else {
        return v(VerdictKind::Unknown, "target not announced");
    };
    if most_specific.upstreams.contains(&entry) {
        return v(VerdictKind::Match, "");
    }
    if let Some(c) = covering.iter().find(|c| c.upstreams.contains(&entry)) {
        return Verdict {
            kind: VerdictKind::MatchCovering,
            reason: format!("announced for {}", c.prefix),
        };
    }
    if let Some(u) = most_specific
        .upstreams
        .iter()
        .find(|u| adjacency.adjacent(entry, **u))
    {
        return Verdict {
            kind: VerdictKind::Ambiguous,
            reason: format!("border (AS{entry} is next to AS{u} in a loaded AS path)"),
        };
    }
    v(VerdictKind::Mismatch, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(prefix: &str, ups: &[u32]) -> AnnouncedPrefix {
        AnnouncedPrefix {
            prefix: prefix.parse().unwrap(),
            upstreams: ups.iter().copied().collect(),
            peers: 1,
        }
    }

    #[test]
    fn verdict_cases() {
        let mut adj = Adjacency::default();
        adj.add(&"3356 4837 131279".parse().unwrap());
        adj.add(&"1299 20485 20485 131279".parse().unwrap());
        let sets = [
            ap("175.45.176.0/24", &[4837]),
            ap("175.45.176.0/22", &[4837, 20485]),
        ];
        let kind = |entry, sets: &[AnnouncedPrefix]| verdict(true, entry, sets, &adj).kind;
        assert_eq!(kind(Some(4837), &sets), VerdictKind::Match);
        assert_eq!(kind(Some(20485), &sets), VerdictKind::MatchCovering);
        // 3356 stands next to 4837 in a loaded path: border ambiguity.
        let v = verdict(true, Some(3356), &sets, &adj);
        assert_eq!(v.kind, VerdictKind::Ambiguous);
        assert!(v.reason.starts_with("border"), "{}", v.reason);
        // 1299 is next to 20485, which is not announced for the /24.
        assert_eq!(kind(Some(1299), &sets), VerdictKind::Mismatch);
        assert_eq!(kind(Some(22351), &sets), VerdictKind::Mismatch);
        assert_eq!(kind(None, &sets), VerdictKind::Unknown);
        assert_eq!(kind(Some(4837), &[]), VerdictKind::Unknown);
        let v = verdict(false, Some(4837), &sets, &adj);
        assert_eq!(
            (v.kind, v.reason.as_str()),
            (VerdictKind::Unknown, "no BGP data")
        );
    }

    #[test]
    fn adjacency_skips_prepending_and_sets() {
        let mut adj = Adjacency::default();
        adj.add(&"1 1 2 {3,4} 5".parse().unwrap());
        assert!(adj.adjacent(1, 2) && adj.adjacent(2, 1));
        assert!(!adj.adjacent(1, 1));
        assert!(!adj.adjacent(2, 5));
    }
}
