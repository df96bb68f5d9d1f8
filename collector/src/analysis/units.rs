//! Counting units: one (agent, target /24, round) by default (see [`crate::analysis`]).
//!
//! A trace counts for each of its entry ASes: one for a Paris trace, one per AS its
//! branches enter through for a multi-entry multipath trace
//! ([`crate::analysis::TraceAnalysis::entry_ases`]). A unit's entries are every entry held
//! by more than half of its traces, so a unit of one multi-entry trace counts once for each
//! of its entry ASes, and shares are of (unit, entry AS) pairs.

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

/// The entry of a unit of Paris traces from their entries `(asn, inferred)`.
pub fn unit_entry(entries: &[(Option<u32>, bool)]) -> UnitEntry {
    let traces: Vec<Vec<(Option<u32>, bool)>> = entries.iter().map(|e| vec![*e]).collect();
    unit_entries(&traces)[0]
}

/// The entries of a unit from each trace's entries `(asn, inferred)`: every entry (an AS or
/// unknown) held by more than half of the traces, inferred unless a trace observed it;
/// unknown alone when none is.
pub fn unit_entries(traces: &[Vec<(Option<u32>, bool)>]) -> Vec<UnitEntry> {
    let mut counts: BTreeMap<Option<u32>, (usize, bool)> = BTreeMap::new();
    for entries in traces {
        for (asn, inferred) in entries {
            let c = counts.entry(*asn).or_insert((0, true));
            c.0 += 1;
            c.1 &= *inferred;
        }
    }
    let held: Vec<UnitEntry> = counts
        .into_iter()
        .filter(|(_, (n, _))| 2 * n > traces.len())
        .map(|(asn, (_, inferred))| UnitEntry {
            asn,
            inferred: asn.is_some() && inferred,
        })
        .collect();
    if held.is_empty() {
        return vec![UnitEntry {
            asn: None,
            inferred: false,
        }];
    }
    held
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

    #[test]
    fn a_multi_entry_trace_counts_for_each_of_its_entry_ases() {
        let both = vec![(Some(4837), false), (Some(20485), true)];
        let e = unit_entries(std::slice::from_ref(&both));
        let ases: Vec<(Option<u32>, bool)> = e.iter().map(|u| (u.asn, u.inferred)).collect();
        assert_eq!(ases, [(Some(4837), false), (Some(20485), true)]);
        // With a Paris trace through AS4837 beside it, only AS4837 holds a majority (2 of 2).
        let e = unit_entries(&[both, vec![(Some(4837), true)]]);
        let ases: Vec<Option<u32>> = e.iter().map(|u| u.asn).collect();
        assert_eq!(ases, [Some(4837)]);
    }
}
