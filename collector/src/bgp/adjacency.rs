//! AS adjacencies of every loaded path, for the `ambiguous: border` rule.
//!
//! The border rule asks whether an observed entry AS stands next to an announced upstream
//! anywhere in the routing table. Full paths are kept only for target-overlapping prefixes,
//! and those paths rarely show the upstream's other neighbours; so `bgp load` keeps, for every
//! IPv4 route of every file (RIB entries and announcements, any prefix), the pairs of ASes
//! adjacent in its path (`as_adjacencies`, a few hundred thousand pairs for a full table).
//! Prepending is collapsed (`a a b` gives `a b`); an AS_SET breaks adjacency, as the order of
//! its members is unknown.

use std::collections::{HashMap, HashSet};

use bgpkit_parser::models::{AsPathSegment, Attributes};

use super::aspath::{AsPath, Segment};
use super::state::BgpError;
use crate::store::Db;

/// Adjacent AS pairs of loaded AS paths (both orders), for the border rule.
#[derive(Debug, Clone, Default)]
pub struct Adjacency {
    pairs: HashSet<(u32, u32)>,
}

impl Adjacency {
    /// Adds the adjacent pairs of a path (sets are skipped, prepending ignored).
    pub fn add(&mut self, path: &AsPath) {
        let mut previous: Option<u32> = None;
        for segment in path.segments() {
            match segment {
                Segment::Seq(asns) => {
                    for &a in asns {
                        if let Some(p) = previous {
                            self.add_pair(p, a);
                        }
                        previous = Some(a);
                    }
                }
                Segment::Set(_) => previous = None,
            }
        }
    }

    /// Adds one adjacent pair (both orders); an AS is never adjacent to itself.
    pub fn add_pair(&mut self, a: u32, b: u32) {
        if a != b {
            self.pairs.insert((a, b));
            self.pairs.insert((b, a));
        }
    }

    /// Whether `a` and `b` stand next to each other in some path.
    pub fn adjacent(&self, a: u32, b: u32) -> bool {
        self.pairs.contains(&(a, b))
    }
}

/// Adjacent pairs (a < b) seen in one file, with the first and last MRT time of each.
#[derive(Debug, Default)]
pub(crate) struct AdjacencyCollector {
    pairs: HashMap<(u32, u32), (i64, i64)>,
}

impl AdjacencyCollector {
    /// Adds the adjacent pairs of a route's AS path (AS_PATH merged with AS4_PATH).
    pub(crate) fn add_attributes(&mut self, attributes: &Attributes, time: i64) {
        match (attributes.as_path(), attributes.as4_path()) {
            (None, None) => {}
            (Some(p), None) | (None, Some(p)) => self.add_segments(p.iter_segments(), time),
            (Some(p), Some(p4)) => {
                let merged = bgpkit_parser::models::AsPath::merge_aspath_as4path(p, p4);
                self.add_segments(merged.iter_segments(), time);
            }
        }
    }

    fn add_segments<'s>(&mut self, segments: impl Iterator<Item = &'s AsPathSegment>, time: i64) {
        let mut previous: Option<u32> = None;
        for segment in segments {
            match segment {
                AsPathSegment::AsSequence(asns) => {
                    for asn in asns {
                        let a = asn.to_u32();
                        if let Some(p) = previous
                            && p != a
                        {
                            self.insert(p, a, time);
                        }
                        previous = Some(a);
                    }
                }
                AsPathSegment::AsSet(_) => previous = None,
                // Confederation segments never leave a confederation (see `AsPath`).
                AsPathSegment::ConfedSequence(_) | AsPathSegment::ConfedSet(_) => {}
            }
        }
    }

    fn insert(&mut self, a: u32, b: u32, time: i64) {
        let key = (a.min(b), a.max(b));
        let seen = self.pairs.entry(key).or_insert((time, time));
        seen.0 = seen.0.min(time);
        seen.1 = seen.1.max(time);
    }

    /// Distinct pairs collected.
    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }

    /// The pairs with their first and last time, in pair order (the order they are stored
    /// in, so that the index is written in order).
    pub(crate) fn sorted_pairs(&self) -> Vec<((u32, u32), (i64, i64))> {
        let mut pairs: Vec<_> = self.pairs.iter().map(|(k, v)| (*k, *v)).collect();
        pairs.sort_unstable();
        pairs
    }
}

/// The adjacencies the border rule uses: every pair in `as_adjacencies`, and the pairs of the
/// stored target paths (the only source for files loaded before schema v5).
pub fn load_adjacency(db: &Db) -> Result<Adjacency, BgpError> {
    let mut adjacency = Adjacency::default();
    for (a, b) in db.as_adjacencies()? {
        adjacency.add_pair(a, b);
    }
    db.for_each_target_path(|text| {
        let path: AsPath = text
            .parse()
            .map_err(|e| BgpError::Malformed(format!("AS path {text:?}: {e}")))?;
        adjacency.add(&path);
        Ok::<_, BgpError>(())
    })?;
    Ok(adjacency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(path: &str) -> Vec<(u32, u32)> {
        let mut attributes = Attributes::default();
        let segments: Vec<AsPathSegment> = path
            .split(" | ")
            .map(|seg| {
                if let Some(set) = seg.strip_prefix('{') {
                    AsPathSegment::set(
                        set.trim_end_matches('}')
                            .split(',')
                            .map(|a| a.parse::<u32>().unwrap())
                            .collect::<Vec<_>>(),
                    )
                } else {
                    AsPathSegment::sequence(
                        seg.split(' ')
                            .map(|a| a.parse::<u32>().unwrap())
                            .collect::<Vec<_>>(),
                    )
                }
            })
            .collect();
        attributes.add_attr(
            bgpkit_parser::models::AttributeValue::AsPath(
                bgpkit_parser::models::AsPath::from_segments(segments),
            )
            .into(),
        );
        let mut c = AdjacencyCollector::default();
        c.add_attributes(&attributes, 7);
        let mut out: Vec<(u32, u32)> = c.pairs.keys().copied().collect();
        out.sort_unstable();
        out
    }

    #[test]
    fn prepending_collapses_and_sets_break_adjacency() {
        assert_eq!(
            pairs("3356 4837 4837 131279"),
            vec![(3356, 4837), (4837, 131_279)]
        );
        // 174 and 64512 are not known to be adjacent to the set's members, nor to each other.
        assert_eq!(
            pairs("174 4837 | {20485,4837} | 64512 131279"),
            vec![(174, 4837), (64512, 131_279)]
        );
    }
}
