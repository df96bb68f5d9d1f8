//! The local stop set of Doubletree (Donnet et al., SIGMETRICS 2005), made safe
//! for per-flow load balancing.
//!
//! Paths from one vantage point into a /24 share their first hops. The first
//! traces toward a /24 (its *scouts*, [`SCOUTS_PER_PREFIX`]) probe every TTL with
//! their own flows; what they see settles TTLs. The other traces of the /24
//! start at the deepest settled TTL ([`StopSet::start_ttl`]), probe backward from
//! there only until their own reply at some TTL is the settled interface of that
//! TTL, then take the settled TTLs below from the traces that probed them and probe
//! the unsettled ones themselves ([`StopSet::inherit_below`]); the result marks
//! inherited hops as such, never as observed.
//!
//! A TTL is *settled* for a /24 when at least [`WITNESSES`] probes of distinct
//! traces (distinct Paris flows) got a time exceeded there, all from one
//! interface, and few stayed silent. So a load balancer near the source, whose
//! branches answer from different interfaces, leaves its TTLs unsettled as soon
//! as two branches were seen, and every trace then probes them itself: a trace
//! never inherits a hop of a branch its own flow may not take. (Where the branches
//! merge again, every witness saw the same interface: that TTL is settled.) Residual risk: an
//! equal-cost branch that none of the witnesses took (with two branches, one
//! chance in 2^(WITNESSES-1), 1 in 32,768), or one whose router never answers but answers
//! rarely enough to pass the silence rule.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use nkpath_proto::{Hop, InheritedFrom, Probe};

use crate::probing::trace::Below;

use crate::probing::targets::Slash24;

/// Own replies from one interface, and from nowhere else, that settle a TTL.
pub const WITNESSES: u32 = 16;

/// Traces per /24 that probe every TTL themselves before the others start.
/// At least [`WITNESSES`], so that the scouts alone can settle a path.
pub const SCOUTS_PER_PREFIX: usize = WITNESSES as usize;

/// A settled TTL tolerates one silent probe per this many replies (routers
/// rate-limit their ICMP errors); more silence might hide a branch that does
/// not answer, so the TTL stays unsettled.
const REPLIES_PER_SILENCE: u32 = 4;

/// The probe that first showed an interface at a TTL: what an inheriting
/// trace records, and where it came from.
#[derive(Debug, Clone)]
struct Witness {
    address: Ipv4Addr,
    replies: u32,
    probe: Probe,
    from: InheritedFrom,
}

#[derive(Debug, Clone, Default)]
struct TtlFacts {
    interfaces: Vec<Witness>,
    silent: u32,
}

impl TtlFacts {
    /// The one interface of a settled TTL.
    fn settled(&self) -> Option<&Witness> {
        match self.interfaces.as_slice() {
            [only]
                if only.replies >= WITNESSES
                    && self.silent * REPLIES_PER_SILENCE <= only.replies =>
            {
                Some(only)
            }
            _ => None,
        }
    }
}

/// What one survey saw, TTL by TTL, toward each /24.
#[derive(Debug, Default)]
pub struct StopSet {
    by_prefix: HashMap<Slash24, Vec<TtlFacts>>,
}

impl StopSet {
    /// An empty stop set, for one survey.
    pub fn new() -> Self {
        Self::default()
    }

    fn facts_mut(&mut self, s24: Slash24, ttl: u8) -> Option<&mut TtlFacts> {
        let index = usize::from(ttl).checked_sub(1)?;
        let facts = self.by_prefix.entry(s24).or_default();
        if facts.len() <= index {
            facts.resize_with(index + 1, TtlFacts::default);
        }
        facts.get_mut(index)
    }

    fn facts(&self, s24: Slash24) -> &[TtlFacts] {
        self.by_prefix.get(&s24).map_or(&[], Vec::as_slice)
    }

    /// A trace toward `s24` got a time exceeded from `address` to its own probe
    /// with this TTL (`probe`, flow `from`). Only a trace's own probes count:
    /// inherited hops are never witnesses.
    pub fn observe_reply(
        &mut self,
        s24: Slash24,
        ttl: u8,
        address: Ipv4Addr,
        probe: Probe,
        from: InheritedFrom,
    ) {
        let Some(facts) = self.facts_mut(s24, ttl) else {
            return;
        };
        match facts.interfaces.iter_mut().find(|w| w.address == address) {
            Some(witness) => witness.replies += 1,
            None => facts.interfaces.push(Witness {
                address,
                replies: 1,
                probe,
                from,
            }),
        }
    }

    /// A trace's own probe with this TTL toward `s24` got no answer.
    pub fn observe_silence(&mut self, s24: Slash24, ttl: u8) {
        if let Some(facts) = self.facts_mut(s24, ttl) {
            facts.silent += 1;
        }
    }

    /// The deepest settled TTL: where the other traces of the /24 start.
    /// `first_ttl` when nothing is settled.
    pub fn start_ttl(&self, s24: Slash24, first_ttl: u8) -> u8 {
        let deepest = self
            .facts(s24)
            .iter()
            .rposition(|f| f.settled().is_some())
            .map_or(0, |i| i + 1);
        u8::try_from(deepest).unwrap_or(u8::MAX).max(first_ttl)
    }

    /// When `address` answering a trace's own probe at `ttl` is the settled
    /// interface of that TTL: the settled TTLs below, each hop as the trace that
    /// first saw it recorded it, marked inherited; the unsettled ones (a load
    /// balancer, silence, too little seen) for the trace to probe itself. `None`
    /// means "probe the TTL below and ask again".
    ///
    /// Inheriting a settled TTL above an unsettled one is sound for the same
    /// reason as below it: every witness, whichever branch its flow took below,
    /// saw the one interface there.
    pub fn inherit_below(&self, s24: Slash24, ttl: u8, address: Ipv4Addr) -> Option<Below> {
        let facts = self.facts(s24);
        let index = usize::from(ttl).checked_sub(1)?;
        let here = facts.get(index)?.settled()?;
        if here.address != address {
            return None;
        }
        let mut below = Below::default();
        for (ttl, f) in (1u8..).zip(&facts[..index]) {
            match f.settled() {
                Some(w) => below.inherited.push(Hop {
                    ttl,
                    probes: vec![w.probe.clone()],
                    inherited: Some(w.from),
                }),
                None => below.to_probe.push(ttl),
            }
        }
        Some(below)
    }
}

#[cfg(test)]
mod tests {
    use nkpath_proto::{FlowId, Reply};

    use super::*;

    const S24: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 0);

    fn s24() -> Slash24 {
        Slash24::of(S24)
    }

    fn probe(address: Ipv4Addr) -> Probe {
        Probe {
            attempt: 1,
            sent_at_us: 0,
            reply: Some(Reply {
                address,
                rtt_us: 1000,
                reply_ttl: 64,
                icmp_type: Some(11),
                icmp_code: Some(0),
                tcp_flags: None,
                quoted_ttl: Some(1),
                mpls_labels: Vec::new(),
            }),
        }
    }

    fn from(n: u8) -> InheritedFrom {
        InheritedFrom {
            target: Ipv4Addr::new(10, 9, 0, n),
            flow: FlowId::Icmp {
                icmp_type: 8,
                icmp_code: 0,
                checksum: u16::from(n),
            },
        }
    }

    fn router(ttl: u8, branch: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, branch, ttl)
    }

    /// `traces` traces each see `router(ttl, branch_of(trace, ttl))` at TTLs 1..=depth.
    fn observed(traces: u8, depth: u8, branch_of: impl Fn(u8, u8) -> u8) -> StopSet {
        let mut set = StopSet::new();
        for t in 0..traces {
            for ttl in 1..=depth {
                let a = router(ttl, branch_of(t, ttl));
                set.observe_reply(s24(), ttl, a, probe(a), from(t));
            }
        }
        set
    }

    #[test]
    fn a_shared_path_settles_once_enough_flows_saw_it() {
        let few = observed(15, 4, |_, _| 0);
        assert_eq!(few.start_ttl(s24(), 1), 1, "15 witnesses settle nothing");
        assert_eq!(few.inherit_below(s24(), 4, router(4, 0)), None);

        let set = observed(16, 4, |_, _| 0);
        assert_eq!(set.start_ttl(s24(), 1), 4);
        let below = set.inherit_below(s24(), 4, router(4, 0)).unwrap();
        assert!(below.to_probe.is_empty());
        let hops = below.inherited;
        assert_eq!(hops.iter().map(|h| h.ttl).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(hops.iter().all(|h| h.inherited == Some(from(0))));
        assert_eq!(hops[2].addresses(), [router(3, 0)]);
        // Another interface at the settled TTL: probe further back.
        assert_eq!(set.inherit_below(s24(), 4, router(4, 1)), None);
        // Nothing to inherit below TTL 1, and the start stays within the settings.
        assert_eq!(
            set.inherit_below(s24(), 1, router(1, 0)),
            Some(Below::default())
        );
        assert_eq!(set.start_ttl(s24(), 5), 5);
        // Other /24s know nothing yet.
        let other = Slash24::of(Ipv4Addr::new(10, 9, 1, 0));
        assert_eq!(set.start_ttl(other, 1), 1);
    }

    #[test]
    fn two_branches_at_a_ttl_leave_it_to_every_trace() {
        // ECMP at TTL 2: half the flows see 10.1.1.2; the branches merge at 3.
        let set = observed(32, 4, |t, ttl| u8::from(ttl == 2 && t % 2 == 1));
        assert_eq!(set.start_ttl(s24(), 1), 4);
        let below = set.inherit_below(s24(), 4, router(4, 0)).unwrap();
        assert_eq!(
            below.to_probe,
            [2],
            "the balancer's TTL is probed by each trace"
        );
        assert_eq!(
            below.inherited.iter().map(|h| h.ttl).collect::<Vec<_>>(),
            [1, 3]
        );
        // Either branch's interface at TTL 2 is no stop.
        assert_eq!(set.inherit_below(s24(), 2, router(2, 0)), None);
        assert_eq!(set.inherit_below(s24(), 2, router(2, 1)), None);
    }

    #[test]
    fn a_ttl_that_is_often_silent_is_not_settled() {
        let mut set = observed(16, 3, |_, _| 0);
        assert_eq!(set.start_ttl(s24(), 1), 3);
        for _ in 0..4 {
            set.observe_silence(s24(), 2);
        }
        let below = set.inherit_below(s24(), 3, router(3, 0)).unwrap();
        assert!(below.to_probe.is_empty(), "four silences to 16 replies");
        set.observe_silence(s24(), 2);
        assert_eq!(
            set.inherit_below(s24(), 3, router(3, 0)).unwrap().to_probe,
            [2]
        );
    }
}
