//! The fleet scheduler: which agent traces what, and in which round. Pure: no I/O, no SQL,
//! no clock; the same inputs give the same answer.
//!
//! Time is cut into collector rounds of [`Budget::round_secs`] (round `k` is
//! `[k·L, (k+1)·L)` in UNIX seconds). Work is booked in a [`Calendar`]: one [`Booking`] is
//! one agent tracing one address of one target /24 in one round. An agent asks for work
//! when it uploads ([`Calendar::next_slot`]) and gets the first round after the current one
//! in which
//!
//! - some target /24 is not yet booked for its vantage (agents of one AS share the work:
//!   a (vantage, /24) pair booked once in a round is not booked again), and
//! - the probes already booked into that /24 in that round, plus this agent's measured cost,
//!   plus what this agent sent beyond its own bookings in the last round (its overrun: an
//!   agent's claims weigh on itself, never on the others), stay within the cap times the
//!   round length.
//!
//! Agents of one AS therefore take turns: the one that just worked asks again and finds
//! the next rounds already booked by the others, so it queues behind them (round robin).
//! With a budget too small for every vantage in every round, a vantage's bookings of a /24
//! are kept `spacing` rounds apart, where `spacing` is the number of rounds the budget
//! needs to serve every vantage once (vantages × cost / budget, rounded up): the vantages
//! then share the rounds evenly instead of the first to ask taking the next ones.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// How far ahead (in rounds) a slot is searched for.
pub const HORIZON_ROUNDS: u64 = 10_000;

/// How long (in rounds) an agent for which no slot fits is paused before it asks again
/// (a day of 15-minute rounds).
pub const IDLE_ROUNDS: u64 = 96;

/// The fleet-wide probe budget per target /24.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Length of a collector round, in seconds (the agents' round interval).
    pub round_secs: u32,
    /// Most probes per second into one /24, averaged over a round, for the whole fleet.
    pub cap_pps: f64,
}

impl Budget {
    /// Probes the whole fleet may send into one /24 in one round.
    pub fn probes_per_round(&self) -> u64 {
        // Truncating: the budget is a ceiling, never rounded up.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative product far below u64::MAX"
        )]
        let probes = (self.cap_pps.max(0.0) * f64::from(self.round_secs)).floor() as u64;
        probes
    }

    /// The round holding UNIX time `t` (seconds).
    pub fn round_at(&self, t: i64) -> u64 {
        u64::try_from(t.max(0)).unwrap_or(0) / u64::from(self.round_secs.max(1))
    }

    /// When round `k` starts, in UNIX seconds.
    pub fn round_start(&self, k: u64) -> i64 {
        i64::try_from(k.saturating_mul(u64::from(self.round_secs.max(1)))).unwrap_or(i64::MAX)
    }
}

/// Where an agent probes from: its AS, or unknown (then it is a vantage of its own, so
/// that no AS goes unmeasured because it was merged with another).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Vantage {
    /// The origin AS of the agent's address.
    As(u32),
    /// No BGP or Cymru data maps the agent's address: the agent alone.
    Unknown(String),
}

impl std::fmt::Display for Vantage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::As(asn) => write!(f, "AS{asn}"),
            Self::Unknown(_) => f.write_str("unknown"),
        }
    }
}

/// A target /24 (or a smaller target prefix inside one) and the addresses known to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetNet {
    /// The prefix: a /24, or longer when the target is smaller than a /24.
    pub net: Ipv4Net,
    /// Addresses inside `net` that answered the asking agent's pings recently; preferred as
    /// its trace targets (another agent's word never steers them).
    pub live: Vec<Ipv4Addr>,
}

impl TargetNet {
    /// The address traced in round `round`: a live one when any is known (the same one for
    /// every vantage that found the same hosts live, so their paths compare), else a host address of the prefix, moving
    /// each round so that the agents' pings look for live hosts.
    pub fn address(&self, round: u64, seed: u64) -> Ipv4Addr {
        let turn = round.wrapping_add(mix(seed ^ u64::from(u32::from(self.net.network()))));
        if !self.live.is_empty() {
            let i = usize::try_from(turn % self.live.len() as u64).unwrap_or(0);
            return self.live[i];
        }
        let size = 1u64 << (32 - u32::from(self.net.prefix_len()));
        // Skip the network and broadcast addresses when there are other hosts.
        let (first, hosts) = if size > 2 { (1, size - 2) } else { (0, size) };
        let offset = u32::try_from(first + turn % hosts).unwrap_or(0);
        Ipv4Addr::from(u32::from(self.net.network()).wrapping_add(offset))
    }
}

/// One agent booked to trace one address of one target prefix in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    /// The collector round.
    pub round: u64,
    /// The agent.
    pub agent: String,
    /// Its vantage when booked.
    pub vantage: Vantage,
    /// The target prefix.
    pub net: Ipv4Net,
    /// The address to trace.
    pub address: Ipv4Addr,
    /// The probes the booking is expected to send (the agent's measured cost).
    pub probes: u64,
}

/// An agent asking for its next work.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The agent.
    pub agent: &'a str,
    /// Where it probes from.
    pub vantage: &'a Vantage,
    /// Probes it sends for one target (liveness pings plus the trace), measured from its
    /// recent results.
    pub cost: u64,
    /// The round now: the slot is in a later one.
    pub now_round: u64,
    /// The first round the agent may be booked in: its last booked round plus its own
    /// interval, so that its booked rounds follow its rhythm (0: any round after now).
    pub not_before: u64,
}

/// What an agent is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Trace these in `round` (and not before).
    Work {
        /// The round.
        round: u64,
        /// The bookings made.
        bookings: Vec<Booking>,
    },
    /// Nothing fits within [`HORIZON_ROUNDS`] (the agent costs more than a round's budget,
    /// or the horizon is fully booked): pause until `until`, then ask again.
    Idle {
        /// First round to ask again in.
        until: u64,
    },
}

/// Booked work of the coming rounds, the targets and the budget.
#[derive(Debug, Clone)]
pub struct Calendar {
    budget: Budget,
    seed: u64,
    targets: Vec<TargetNet>,
    /// Probes the asking agent overspent in the last round per target prefix (sent minus
    /// booked), taken off its budget of the round after the current one.
    overspend: BTreeMap<Ipv4Net, u64>,
    /// Booked probes per (round, prefix).
    probes: BTreeMap<(u64, Ipv4Net), u64>,
    /// Booked vantages per (round, prefix).
    covered: BTreeMap<(u64, Ipv4Net), BTreeSet<Vantage>>,
    /// Vantages in the fleet.
    vantages: u64,
}

impl Calendar {
    /// An empty calendar over `targets` (sorted, duplicates removed).
    pub fn new(budget: Budget, seed: u64, mut targets: Vec<TargetNet>) -> Self {
        targets.sort_by_key(|t| t.net);
        targets.dedup_by_key(|t| t.net);
        Self {
            budget,
            seed,
            targets,
            overspend: BTreeMap::new(),
            probes: BTreeMap::new(),
            covered: BTreeMap::new(),
            vantages: 1,
        }
    }

    /// Sets how many vantages the fleet has (for the spacing of bookings).
    pub fn set_vantages(&mut self, n: u64) {
        self.vantages = n.max(1);
    }

    /// Rounds between two bookings of one vantage into one prefix: 1 when the budget fits
    /// every vantage every round.
    pub fn spacing(&self, cost: u64) -> u64 {
        let budget = self.budget.probes_per_round().max(1);
        self.vantages.saturating_mul(cost).div_ceil(budget).max(1)
    }

    /// Whether `vantage` has `net` booked less than `spacing` rounds from `round`.
    fn covered_near(&self, round: u64, net: Ipv4Net, vantage: &Vantage, spacing: u64) -> bool {
        (round.saturating_sub(spacing - 1)..=round + (spacing - 1))
            .any(|r| self.is_covered(r, net, vantage))
    }

    /// The budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The target prefixes.
    pub fn targets(&self) -> &[TargetNet] {
        &self.targets
    }

    /// Records what the asking agent overspent into `net` in the last full round (probes
    /// counted from its results beyond its bookings), taken off its room in the next round.
    pub fn set_overspend(&mut self, net: Ipv4Net, probes: u64) {
        self.overspend.insert(net, probes);
    }

    /// Adds a booking made earlier (read back from the database).
    pub fn book(&mut self, booking: &Booking) {
        *self.probes.entry((booking.round, booking.net)).or_default() += booking.probes;
        self.covered
            .entry((booking.round, booking.net))
            .or_default()
            .insert(booking.vantage.clone());
    }

    /// Forgets rounds before `round`.
    pub fn forget_before(&mut self, round: u64) {
        self.probes = self.probes.split_off(&(round, Ipv4Net::default()));
        self.covered = self.covered.split_off(&(round, Ipv4Net::default()));
    }

    /// Probes booked into `net` in `round`.
    pub fn booked_probes(&self, round: u64, net: Ipv4Net) -> u64 {
        self.probes.get(&(round, net)).copied().unwrap_or(0)
    }

    /// Whether `vantage` is booked to trace `net` in `round`.
    pub fn is_covered(&self, round: u64, net: Ipv4Net, vantage: &Vantage) -> bool {
        self.covered
            .get(&(round, net))
            .is_some_and(|v| v.contains(vantage))
    }

    /// The probes `net` may still take in `round` for a request made in `now_round`.
    fn room(&self, round: u64, now_round: u64, net: Ipv4Net) -> u64 {
        let mut budget = self.budget.probes_per_round();
        if round == now_round + 1 {
            budget = budget.saturating_sub(self.overspend.get(&net).copied().unwrap_or(0));
        }
        budget.saturating_sub(self.booked_probes(round, net))
    }

    /// Finds and books the agent's next work: the first round after `now_round` with a
    /// target prefix its vantage does not cover yet and room for its cost.
    pub fn next_slot(&mut self, request: &Request<'_>) -> Slot {
        let cost = request.cost.max(1);
        let spacing = self.spacing(cost);
        let first = (request.now_round + 1).max(request.not_before);
        for round in first..first + HORIZON_ROUNDS {
            let bookings: Vec<Booking> = self
                .targets
                .iter()
                .filter(|t| {
                    !self.covered_near(round, t.net, request.vantage, spacing)
                        && self.room(round, request.now_round, t.net) >= cost
                })
                .map(|t| Booking {
                    round,
                    agent: request.agent.to_owned(),
                    vantage: request.vantage.clone(),
                    net: t.net,
                    address: t.address(round, self.seed),
                    probes: cost,
                })
                .collect();
            if !bookings.is_empty() {
                for b in &bookings {
                    self.book(b);
                }
                return Slot::Work { round, bookings };
            }
        }
        Slot::Idle {
            until: first.saturating_sub(1) + IDLE_ROUNDS,
        }
    }
}

/// A 64-bit mix (splitmix64's finaliser): spreads seeds and prefixes over the rotation.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The /24s (or smaller prefixes) of `prefixes`: a /22 gives its four /24s, a /28 itself.
pub fn split_into_24s(prefixes: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut out = BTreeSet::new();
    for p in prefixes {
        if p.prefix_len() >= 24 {
            out.insert(p.trunc());
        } else if let Ok(subnets) = p.subnets(24) {
            out.extend(subnets);
        }
    }
    out.into_iter().collect()
}

/// The /24 holding `addr`.
pub fn slash24(addr: Ipv4Addr) -> Ipv4Net {
    crate::bgp::prefix::covering(addr, 24)
}

#[cfg(test)]
mod tests;
