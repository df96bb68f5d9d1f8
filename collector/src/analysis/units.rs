//! Counting units: one (agent, target /24, round) by default (see [`crate::analysis`]).

use std::collections::BTreeMap;

/// A unit's entry: the majority entry AS (`None` = unknown) and whether it is inferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitEntry {
    /// The entry AS held by more than half of the unit's traces; `None` for unknown
    /// (including when no entry AS has a majority).
    pub asn: Option<u32>,
    /// Inferred unless one trace with that entry AS observed it.
    pub inferred: bool,
}

/// The entry of a unit from its traces' entries `(asn, inferred)`.
pub fn unit_entry(entries: &[(Option<u32>, bool)]) -> UnitEntry {
    let mut counts: BTreeMap<Option<u32>, (usize, bool)> = BTreeMap::new();
    for (asn, inferred) in entries {
        let c = counts.entry(*asn).or_insert((0, true));
        c.0 += 1;
        c.1 &= *inferred;
    }
    counts
        .into_iter()
        .find(|(_, (n, _))| 2 * n > entries.len())
        .map_or(
            UnitEntry {
                asn: None,
                inferred: false,
            },
            |(asn, (_, inferred))| UnitEntry {
                asn,
                inferred: asn.is_some() && inferred,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_majority_else_unknown() {
        let e = unit_entry(&[
            (Some(4837), false),
            (Some(4837), true),
            (Some(20485), false),
        ]);
        assert_eq!(
            e,
            UnitEntry {
                asn: Some(4837),
                inferred: false
            }
        );
        let e = unit_entry(&[(Some(4837), true), (Some(4837), true), (None, false)]);
        assert_eq!(
            e,
            UnitEntry {
                asn: Some(4837),
                inferred: true
            }
        );
        // A tie has no majority.
        let e = unit_entry(&[(Some(4837), false), (Some(20485), false)]);
        assert_eq!(e.asn, None);
        let e = unit_entry(&[(None, false), (None, false), (Some(1), false)]);
        assert_eq!(e.asn, None);
        assert_eq!(unit_entry(&[]).asn, None);
    }
}
