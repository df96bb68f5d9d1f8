//! Which waiting trace the engine starts next.
//!
//! Traces start in random order, so that no target, /24 or TTL is favoured. But a
//! survey lasts as long as its slowest late-started trace: a trace toward a /24 that
//! is silent past its border waits out a timeout at every silent TTL (a gap limit
//! of them, 10 s at the defaults), while a trace toward an answering host is done
//! as fast as the rate lets it send. Started last, the slow ones add their waits to
//! the end of the survey; started early, their waits overlap with other traces'
//! probing. So once a trace of a /24 has parked (its paths have silent stretches),
//! the other traces of that /24 start first, but only while the /24 holds fewer
//! active traces than its share of the slots: a /24 whose probes all count against
//! its own per-/24 rate must not hold every slot and starve the others.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use crate::targets::Slash24;

/// The position in `waiting` of the trace to start next, given the /24 of each
/// waiting trace (`prefix_of`), the /24s known to be slow, how many traces each /24
/// has active and each /24's share of the active slots. `waiting` is in random order
/// and is consumed from the back: without a slow /24 under its share, the last one.
pub fn next_start<S: BuildHasher>(
    waiting: &[usize],
    prefix_of: impl Fn(usize) -> Slash24,
    slow: &HashSet<Slash24, S>,
    active: &HashMap<Slash24, usize, S>,
    share: usize,
) -> Option<usize> {
    let last = waiting.len().checked_sub(1)?;
    if slow.is_empty() {
        return Some(last);
    }
    let under_share = |s24: &Slash24| active.get(s24).copied().unwrap_or(0) < share;
    let first_slow = waiting.iter().rposition(|&i| {
        let s24 = prefix_of(i);
        slow.contains(&s24) && under_share(&s24)
    });
    Some(first_slow.unwrap_or(last))
}

/// Each /24's share of `slots` active traces when `prefixes` /24s have traces
/// waiting or active.
pub fn share_of_slots(slots: usize, prefixes: usize) -> usize {
    slots.div_ceil(prefixes.max(1))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn s24(third: u8) -> Slash24 {
        Slash24::of(Ipv4Addr::new(175, 45, third, 1))
    }

    /// Trace `i` targets 175.45.(176 + i % 4).x.
    fn prefix_of(i: usize) -> Slash24 {
        s24(176 + (i % 4) as u8)
    }

    #[test]
    fn without_slow_prefixes_the_random_order_holds() {
        let waiting = [5, 2, 7, 0];
        let next = next_start(&waiting, prefix_of, &HashSet::new(), &HashMap::new(), 64);
        assert_eq!(next, Some(3));
        assert_eq!(
            next_start(&[], prefix_of, &HashSet::new(), &HashMap::new(), 64),
            None
        );
    }

    #[test]
    fn a_slow_prefix_starts_first_while_under_its_share() {
        // Traces 2 and 6 target 178/24, where a trace parked.
        let waiting = [2, 5, 6, 7, 0];
        let slow = HashSet::from([s24(178)]);
        let mut active = HashMap::from([(s24(178), 63)]);
        assert_eq!(
            next_start(&waiting, prefix_of, &slow, &active, 64),
            Some(2),
            "the slow /24's trace nearest the back"
        );
        active.insert(s24(178), 64);
        assert_eq!(
            next_start(&waiting, prefix_of, &slow, &active, 64),
            Some(4),
            "at its share, back to the random order"
        );
    }

    #[test]
    fn shares_split_the_slots_between_the_prefixes_with_work() {
        assert_eq!(share_of_slots(256, 4), 64);
        assert_eq!(share_of_slots(256, 3), 86);
        assert_eq!(share_of_slots(256, 1), 256);
        assert_eq!(share_of_slots(256, 0), 256);
    }
}
