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
//! active traces than [`slow_prefix_cap`]: a /24 whose probes count against its own
//! per-/24 rate must not hold every slot, starve the others and stretch its own
//! traces toward their time budget.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::time::Duration;

use crate::probing::targets::Slash24;

/// The position in `waiting` of the trace to start next, given the /24 of each
/// waiting trace (`prefix_of`), the /24s known to be slow, how many traces each /24
/// has active and how many a slow /24 may have ([`slow_prefix_cap`]). `waiting` is in random order
/// and is consumed from the back: without a slow /24 under its cap, the last one.
pub fn next_start<S: BuildHasher>(
    waiting: &[usize],
    prefix_of: impl Fn(usize) -> Slash24,
    slow: &HashSet<Slash24, S>,
    active: &HashMap<Slash24, usize, S>,
    cap: usize,
) -> Option<usize> {
    let last = waiting.len().checked_sub(1)?;
    if slow.is_empty() {
        return Some(last);
    }
    let under_cap = |s24: &Slash24| active.get(s24).copied().unwrap_or(0) < cap;
    let first_slow = waiting.iter().rposition(|&i| {
        let s24 = prefix_of(i);
        slow.contains(&s24) && under_cap(&s24)
    });
    Some(first_slow.unwrap_or(last))
}

/// How many traces of a slow /24 may be active at once, of `slots`, when
/// `prefixes` /24s have traces waiting or active: as many as its per-/24 rate keeps
/// probing while each waits a timeout per silent TTL (more would only queue on the
/// /24's bucket), but at least its even share of the slots and at most three
/// quarters of them (the other /24s keep a quarter).
pub fn slow_prefix_cap(
    slots: usize,
    prefixes: usize,
    per_prefix_pps: u32,
    timeout: Duration,
) -> usize {
    let even_share = slots.div_ceil(prefixes.max(1));
    let kept_busy = (f64::from(per_prefix_pps) * timeout.as_secs_f64()) as usize;
    kept_busy.clamp(even_share.min(slots * 3 / 4), slots * 3 / 4)
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
    fn a_slow_prefix_starts_first_while_under_its_cap() {
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
            "at its cap, back to the random order"
        );
    }

    #[test]
    fn a_slow_prefix_holds_what_its_rate_keeps_busy_within_bounds() {
        let two_s = Duration::from_secs(2);
        // 100 probes/s to the /24, one probe per 2 s timeout per trace: 200 traces.
        assert_eq!(
            slow_prefix_cap(256, 4, 100, two_s),
            192,
            "three quarters at most"
        );
        assert_eq!(slow_prefix_cap(256, 4, 80, two_s), 160);
        // At the default 10/s, 20 traces would do: its even share instead.
        assert_eq!(slow_prefix_cap(256, 4, 10, two_s), 64);
        // Alone in the survey: three quarters, never every slot.
        assert_eq!(slow_prefix_cap(256, 1, 10, two_s), 192);
        assert_eq!(slow_prefix_cap(256, 0, 1000, two_s), 192);
    }
}
