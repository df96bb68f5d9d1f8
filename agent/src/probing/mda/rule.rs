//! The MDA's stopping rule: how many flows must cross a node without showing
//! a new next hop before the node's next hops are all taken as found.
//!
//! With k − 1 next hops seen, the hypothesis "there are k" is rejected with
//! confidence 1 − ε once n(k) flows, each equally likely to take any of k next
//! hops, all took the k − 1 seen: n(k) = ⌈ln(ε/k) / ln((k−1)/k)⌉ (Veitch et al.,
//! "Failure control in multipath route tracing", INFOCOM 2009). At 95 %: 6 flows
//! for k = 2, 11 for k = 3, then 16, 21, 27…

use std::fmt;
use std::str::FromStr;

/// The confidence with which every node's next hops are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Confidence {
    /// 95 %: ε = 0.05.
    #[default]
    P95,
    /// 99 %: ε = 0.01.
    P99,
}

impl Confidence {
    /// The probability of missing a next hop that the rule accepts.
    #[must_use]
    pub const fn epsilon(self) -> f64 {
        match self {
            Self::P95 => 0.05,
            Self::P99 => 0.01,
        }
    }

    /// In percent, as the wire format records it.
    #[must_use]
    pub const fn percent(self) -> u8 {
        match self {
            Self::P95 => 95,
            Self::P99 => 99,
        }
    }

    /// n(k): flows needed to reject "k next hops" with k − 1 seen. For k ≤ 1 the
    /// same as k = 2: a node with no next hop seen yet still needs n(2) flows
    /// before it is taken as a dead end.
    #[must_use]
    pub fn flows_needed(self, k: usize) -> u32 {
        let k = k.max(2) as f64;
        let n = ((self.epsilon() / k).ln() / ((k - 1.0) / k).ln()).ceil();
        // n grows like k ln k: far below u32::MAX for any k a trace can see.
        n as u32
    }

    /// Repeats of one flow at a TTL that showed several interfaces before the
    /// TTL is taken as per-flow balanced: a per-packet balancer over two or more
    /// interfaces answers r repeats from one interface with probability at most
    /// 2^−r, so r = ⌈log₂(1/ε)⌉.
    #[must_use]
    pub fn per_packet_repeats(self) -> u32 {
        (1.0 / self.epsilon()).log2().ceil() as u32
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.percent())
    }
}

/// Why a confidence cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a confidence: use 95 or 99 (percent)")]
pub struct ParseConfidenceError(String);

impl FromStr for Confidence {
    type Err = ParseConfidenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_end_matches('%').trim() {
            "95" => Ok(Self::P95),
            "99" => Ok(Self::P99),
            _ => Err(ParseConfidenceError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_needed_follow_the_stopping_rule() {
        // n(2) = 6 and n(3) = 11 at 95 %, as the MDA papers tabulate.
        let at_95: Vec<u32> = (2..=8).map(|k| Confidence::P95.flows_needed(k)).collect();
        assert_eq!(at_95, [6, 11, 16, 21, 27, 33, 39]);
        assert_eq!(Confidence::P99.flows_needed(2), 8);
        assert_eq!(Confidence::P99.flows_needed(3), 15);
        assert_eq!(Confidence::P95.flows_needed(0), 6);
        assert_eq!(Confidence::P95.flows_needed(1), 6);
    }

    #[test]
    fn per_packet_repeats_bound_the_miss_by_epsilon() {
        assert_eq!(Confidence::P95.per_packet_repeats(), 5);
        assert_eq!(Confidence::P99.per_packet_repeats(), 7);
    }

    #[test]
    fn confidences_parse_as_users_write_them() {
        assert_eq!("95".parse(), Ok(Confidence::P95));
        assert_eq!("99%".parse(), Ok(Confidence::P99));
        assert!("90".parse::<Confidence>().is_err());
        assert!("0.95".parse::<Confidence>().is_err());
    }
}
