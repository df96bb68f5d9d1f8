//! Probe pacing: the agent-wide rate cap and the per-/24 cap.
//!
//! Two token buckets stand between the scheduler and the wire:
//!
//! * a **global** bucket: `pps` tokens per second, at most `depth = max(1, pps/10)`
//!   stored, so that in any one-second window at most `pps + depth` packets leave;
//! * a bucket **per destination /24** (`per_prefix_pps`, same depth rule), because
//!   routers and hosts in the target rate-limit ICMP per /24: probing one /24 too
//!   fast only produces silent hops that look like filtering.
//!
//! The per-/24 bucket only counts probes that can reach the target network: those
//! whose TTL is at least the first TTL at which an address inside the target
//! prefixes answered for that /24 (its *boundary*). Until a boundary is known every
//! probe to the /24 counts. Probes that expire in transit networks cost the target
//! nothing, so they only take a global token.
//!
//! All functions take the current time as an argument: the logic is pure and is
//! tested without sleeping.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;

use crate::probing::targets::Slash24;

/// The compiled-in ceiling of the agent's packet rate. No configuration, command
/// line or collector instruction can raise the rate above it.
pub const MAX_PPS: u32 = 1000;

/// Default agent-wide rate (packets per second).
pub const DEFAULT_PPS: u32 = 100;

/// Default per-/24 rate (packets per second).
pub const DEFAULT_PER_PREFIX_PPS: u32 = 10;

/// An invalid rate setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    /// Zero or above the compiled-in ceiling.
    #[error("{what} must be between 1 and {MAX_PPS} packets per second (got {value})")]
    OutOfRange {
        /// Which setting.
        what: &'static str,
        /// The refused value.
        value: u32,
    },
}

/// Validated rate settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pps: u32,
    per_prefix_pps: u32,
}

impl Rates {
    /// Validates `pps` and `per_prefix_pps` against [`MAX_PPS`].
    pub fn new(pps: u32, per_prefix_pps: u32) -> Result<Self, RateError> {
        let check = |what, value| {
            if (1..=MAX_PPS).contains(&value) {
                Ok(value)
            } else {
                Err(RateError::OutOfRange { what, value })
            }
        };
        Ok(Self {
            pps: check("--pps", pps)?,
            per_prefix_pps: check("--per-prefix-pps", per_prefix_pps)?,
        })
    }

    /// Agent-wide packets per second.
    pub fn pps(self) -> u32 {
        self.pps
    }

    /// Per-/24 packets per second.
    pub fn per_prefix_pps(self) -> u32 {
        self.per_prefix_pps
    }

    /// The global bucket's depth: the burst allowed on top of the rate.
    pub fn depth(self) -> u32 {
        depth_for(self.pps)
    }
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            pps: DEFAULT_PPS,
            per_prefix_pps: DEFAULT_PER_PREFIX_PPS,
        }
    }
}

fn depth_for(pps: u32) -> u32 {
    (pps / 10).max(1)
}

/// A token bucket refilled continuously at `rate` tokens per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    depth: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// An empty bucket: it fills at `rate`, up to `depth`. Starting empty keeps
    /// the first second at the rate instead of rate + burst, and costs a fresh
    /// start at most a 1/rate wait.
    pub fn new(rate: u32, depth: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate),
            depth: f64::from(depth),
            tokens: 0.0,
            updated: now,
        }
    }

    /// A bucket holding one token: a /24 first probed long after the pacer
    /// started may send at once (its bucket would have filled meanwhile).
    pub fn with_one_token(rate: u32, depth: u32, now: Instant) -> Self {
        Self {
            tokens: 1.0,
            ..Self::new(rate, depth, now)
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.depth);
        self.updated = now;
    }

    /// Whether a token is there now (refilling first).
    pub fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Takes a token; the caller checked [`Self::ready`].
    pub fn take(&mut self) {
        debug_assert!(self.tokens >= 1.0);
        self.tokens -= 1.0;
    }

    /// When the next token will be there.
    pub fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        let missing = 1.0 - self.tokens;
        // Round up to the next microsecond so that waking at this instant finds the token.
        now + Duration::from_micros((missing / self.rate * 1e6).ceil() as u64 + 1)
    }
}

/// The pacing state of one agent: global and per-/24 buckets plus what is known
/// of each /24's boundary TTL.
#[derive(Debug)]
pub struct Pacer {
    rates: Rates,
    global: TokenBucket,
    per_prefix: HashMap<Slash24, TokenBucket>,
    boundary: HashMap<Slash24, u8>,
}

impl Pacer {
    /// A pacer with empty buckets.
    pub fn new(rates: Rates, now: Instant) -> Self {
        Self {
            rates,
            global: TokenBucket::new(rates.pps, rates.depth(), now),
            per_prefix: HashMap::new(),
            boundary: HashMap::new(),
        }
    }

    /// The rates in force.
    pub fn rates(&self) -> Rates {
        self.rates
    }

    /// Whether a probe to `dst` with this TTL counts against the /24's cap.
    /// `ttl: None` is a packet that goes all the way (a ping).
    #[must_use]
    pub fn counts_for_prefix(&self, dst: Ipv4Addr, ttl: Option<u8>) -> bool {
        match (ttl, self.boundary.get(&Slash24::of(dst))) {
            (Some(ttl), Some(&boundary)) => ttl >= boundary,
            _ => true,
        }
    }

    /// Takes the tokens a packet to `dst` needs, or tells when to try again.
    pub fn try_acquire(
        &mut self,
        dst: Ipv4Addr,
        ttl: Option<u8>,
        now: Instant,
    ) -> Result<(), Instant> {
        if !self.global.ready(now) {
            return Err(self.global.next_token_at(now));
        }
        if self.counts_for_prefix(dst, ttl) {
            let rate = self.rates.per_prefix_pps;
            let bucket = self
                .per_prefix
                .entry(Slash24::of(dst))
                .or_insert_with(|| TokenBucket::with_one_token(rate, depth_for(rate), now));
            if !bucket.ready(now) {
                return Err(bucket.next_token_at(now));
            }
            bucket.take();
        }
        self.global.take();
        Ok(())
    }

    /// Records that, for targets in `dst`'s /24, an address inside the target
    /// prefixes answered a probe sent with `ttl`.
    pub fn learn_boundary(&mut self, dst: Ipv4Addr, ttl: u8) {
        self.boundary
            .entry(Slash24::of(dst))
            .and_modify(|b| *b = (*b).min(ttl))
            .or_insert(ttl);
    }

    /// The known boundary TTL of `dst`'s /24.
    pub fn boundary(&self, dst: Ipv4Addr) -> Option<u8> {
        self.boundary.get(&Slash24::of(dst)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_are_capped_by_the_ceiling() {
        assert!(Rates::new(1000, 10).is_ok());
        assert_eq!(
            Rates::new(1001, 10),
            Err(RateError::OutOfRange {
                what: "--pps",
                value: 1001
            })
        );
        assert!(Rates::new(0, 10).is_err());
        assert!(Rates::new(100, 0).is_err());
        assert!(Rates::new(100, 5000).is_err());
        assert_eq!(Rates::new(100, 10).unwrap().depth(), 10);
        assert_eq!(Rates::new(5, 1).unwrap().depth(), 1);
    }

    /// Sends as fast as the pacer allows for `secs` seconds and returns the send times.
    fn drive(pacer: &mut Pacer, dsts: &[Ipv4Addr], ttl: Option<u8>, secs: u64) -> Vec<Instant> {
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let mut now = start;
        let mut sent = Vec::new();
        let mut i = 0;
        while now < end {
            let dst = dsts[i % dsts.len()];
            match pacer.try_acquire(dst, ttl, now) {
                Ok(()) => {
                    sent.push(now);
                    i += 1;
                }
                Err(at) => {
                    assert!(at > now, "retry time must lie in the future");
                    now = at;
                }
            }
        }
        sent
    }

    fn max_in_any_second(times: &[Instant]) -> usize {
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi].duration_since(times[lo]) >= Duration::from_secs(1) {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn global_rate_holds_in_every_window() {
        let rates = Rates::new(200, 1000).unwrap();
        let mut pacer = Pacer::new(rates, Instant::now());
        let dsts: Vec<Ipv4Addr> = (0..=255).map(|i| Ipv4Addr::new(175, 45, 176, i)).collect();
        let sent = drive(&mut pacer, &dsts, Some(3), 5);
        assert!(
            max_in_any_second(&sent) <= 200 + 20,
            "{}",
            max_in_any_second(&sent)
        );
        // And the pacer does not starve: close to the rate on average.
        assert!(sent.len() >= 5 * 200 - 2, "{}", sent.len());
    }

    #[test]
    fn per_prefix_cap_applies_until_the_boundary_is_known() {
        let rates = Rates::new(1000, 10).unwrap();
        let mut pacer = Pacer::new(rates, Instant::now());
        let one_slash24 = [ip("175.45.176.1"), ip("175.45.176.2")];
        let sent = drive(&mut pacer, &one_slash24, Some(2), 3);
        assert!(
            max_in_any_second(&sent) <= 11,
            "{}",
            max_in_any_second(&sent)
        );

        // Once the target network is known to start at TTL 8, probes that expire
        // before it only take global tokens...
        pacer.learn_boundary(ip("175.45.176.200"), 8);
        assert!(!pacer.counts_for_prefix(ip("175.45.176.9"), Some(7)));
        let sent = drive(&mut pacer, &one_slash24, Some(7), 2);
        assert!(sent.len() > 1000, "{}", sent.len());
        // ...while those that reach it, and pings, still count.
        assert!(pacer.counts_for_prefix(ip("175.45.176.9"), Some(8)));
        assert!(pacer.counts_for_prefix(ip("175.45.176.9"), None));
        // Other /24s are unaffected.
        assert!(pacer.counts_for_prefix(ip("175.45.177.9"), Some(7)));
    }

    #[test]
    fn boundary_keeps_the_lowest_ttl() {
        let mut pacer = Pacer::new(Rates::default(), Instant::now());
        pacer.learn_boundary(ip("175.45.176.1"), 9);
        pacer.learn_boundary(ip("175.45.176.2"), 7);
        pacer.learn_boundary(ip("175.45.176.3"), 12);
        assert_eq!(pacer.boundary(ip("175.45.176.77")), Some(7));
        assert_eq!(pacer.boundary(ip("175.45.177.77")), None);
    }
}
