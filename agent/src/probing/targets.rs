//! What the agent may probe (the allowlist) and what it will probe (the targets).
//!
//! The allowlist is the volunteer's promise to the networks around them: no packet
//! ever leaves the agent toward an address outside it. Targets are given as
//! prefixes or single addresses and expanded to a list of addresses; every one of
//! them must lie inside the allowlist, or the whole request is refused, so a typo
//! in a target list can never turn into probes of somebody else's network.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

/// The prefix nkpath exists to watch: North Korea's whole address block (AS131279).
pub const DEFAULT_TARGET: &str = "175.45.176.0/22";

/// The most addresses one target list may expand to: a /16. A survey of more
/// than that at a polite rate would take hours and is almost surely a mistake.
pub const MAX_TARGETS: usize = 1 << 16;

/// Errors in target lists and allowlists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The text is neither an IPv4 address nor an IPv4 prefix.
    #[error(
        "'{0}' is not an IPv4 address or prefix (expected e.g. 175.45.176.1 or 175.45.176.0/22)"
    )]
    Syntax(String),
    /// A prefix was written with host bits set, which usually hides a typo.
    #[error("'{given}' has host bits set; did you mean {network}?")]
    HostBits {
        /// What the user wrote.
        given: String,
        /// The network it probably meant.
        network: Ipv4Net,
    },
    /// A target lies (partly) outside the allowlist.
    #[error(
        "target {target} is outside the allowlist ({allowlist}); the agent only probes addresses it is allowed to probe — add the prefix to the allowlist if you really mean it"
    )]
    NotAllowed {
        /// The refused target.
        target: String,
        /// The allowlist in force, for the message.
        allowlist: Allowlist,
    },
    /// The targets expand to more addresses than [`MAX_TARGETS`].
    #[error("the targets expand to {0} addresses, more than the limit of {MAX_TARGETS}")]
    TooMany(usize),
    /// No target at all.
    #[error("no targets given")]
    Empty,
}

/// Parses "A.B.C.D" or "A.B.C.D/N" into a prefix (an address is a /32).
pub fn parse_prefix(text: &str) -> Result<Ipv4Net, TargetError> {
    let text = text.trim();
    if let Ok(addr) = Ipv4Addr::from_str(text) {
        return Ok(Ipv4Net::from(addr));
    }
    let net = Ipv4Net::from_str(text).map_err(|_| TargetError::Syntax(text.to_owned()))?;
    if net.trunc() != net {
        return Err(TargetError::HostBits {
            given: text.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// The prefixes the agent may send packets to. Checked on every send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    prefixes: Vec<Ipv4Net>,
}

impl Allowlist {
    /// An allowlist of the given prefixes (overlaps are harmless).
    pub fn new(prefixes: Vec<Ipv4Net>) -> Self {
        Self { prefixes }
    }

    /// Parses a list of prefixes or addresses.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, TargetError> {
        let prefixes = items
            .iter()
            .map(|s| parse_prefix(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if prefixes.is_empty() {
            return Err(TargetError::Empty);
        }
        Ok(Self::new(prefixes))
    }

    /// Whether `addr` may be probed.
    #[must_use]
    pub fn allows(&self, addr: Ipv4Addr) -> bool {
        self.prefixes.iter().any(|p| p.contains(&addr))
    }

    /// Whether every address of `net` may be probed.
    #[must_use]
    pub fn allows_net(&self, net: &Ipv4Net) -> bool {
        self.prefixes.iter().any(|p| p.contains(net))
    }

    /// The prefixes, in the order given.
    pub fn prefixes(&self) -> &[Ipv4Net] {
        &self.prefixes
    }
}

impl Default for Allowlist {
    fn default() -> Self {
        Self::new(vec![DEFAULT_TARGET.parse().expect("valid default prefix")])
    }
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.prefixes.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// Expands target prefixes into addresses, refusing anything outside `allowlist`.
///
/// Every address of a prefix is a target, network and broadcast addresses
/// included: in the target block they are ordinary hosts as far as routing is
/// concerned, and a /22 survey should see all 1,024. Duplicates are removed; the
/// result is sorted (the scheduler randomises the order itself).
pub fn expand(targets: &[Ipv4Net], allowlist: &Allowlist) -> Result<Vec<Ipv4Addr>, TargetError> {
    if targets.is_empty() {
        return Err(TargetError::Empty);
    }
    let mut total = 0usize;
    for net in targets {
        if !allowlist.allows_net(net) {
            return Err(TargetError::NotAllowed {
                target: net.to_string(),
                allowlist: allowlist.clone(),
            });
        }
        total = total.saturating_add(1usize << (32 - net.prefix_len()));
    }
    if total > MAX_TARGETS {
        return Err(TargetError::TooMany(total));
    }
    let mut addrs: Vec<Ipv4Addr> = targets
        .iter()
        .flat_map(|net| {
            let first = u32::from(net.network());
            let last = u32::from(net.broadcast());
            (first..=last).map(Ipv4Addr::from)
        })
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    Ok(addrs)
}

/// The /24 an address belongs to: the unit of per-prefix pacing, because that is
/// the granularity at which routers and hosts in the target rate-limit ICMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slash24(u32);

impl Slash24 {
    /// The /24 containing `addr`.
    #[must_use]
    pub fn of(addr: Ipv4Addr) -> Self {
        Self(u32::from(addr) & 0xffff_ff00)
    }
}

impl fmt::Display for Slash24 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/24", Ipv4Addr::from(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_prefixes() {
        assert_eq!(
            parse_prefix("175.45.176.1").unwrap(),
            net("175.45.176.1/32")
        );
        assert_eq!(
            parse_prefix(" 175.45.176.0/22 ").unwrap(),
            net("175.45.176.0/22")
        );
        assert!(matches!(
            parse_prefix("175.45.176.0/33"),
            Err(TargetError::Syntax(_))
        ));
        assert!(matches!(
            parse_prefix("nk.example"),
            Err(TargetError::Syntax(_))
        ));
        assert_eq!(
            parse_prefix("175.45.177.0/22"),
            Err(TargetError::HostBits {
                given: "175.45.177.0/22".into(),
                network: net("175.45.176.0/22")
            })
        );
    }

    #[test]
    fn default_allowlist_is_the_nk_block() {
        let allow = Allowlist::default();
        assert!(allow.allows("175.45.176.0".parse().unwrap()));
        assert!(allow.allows("175.45.179.255".parse().unwrap()));
        assert!(!allow.allows("175.45.180.0".parse().unwrap()));
        assert!(!allow.allows("175.45.175.255".parse().unwrap()));
    }

    #[test]
    fn expands_the_whole_block() {
        let addrs = expand(&[net("175.45.176.0/22")], &Allowlist::default()).unwrap();
        assert_eq!(addrs.len(), 1024);
        assert_eq!(addrs[0], Ipv4Addr::new(175, 45, 176, 0));
        assert_eq!(addrs[1023], Ipv4Addr::new(175, 45, 179, 255));
    }

    #[test]
    fn removes_duplicates() {
        let addrs = expand(
            &[net("175.45.176.0/30"), net("175.45.176.1/32")],
            &Allowlist::default(),
        )
        .unwrap();
        assert_eq!(addrs.len(), 4);
    }

    #[test]
    fn refuses_targets_outside_the_allowlist() {
        let allow = Allowlist::default();
        for outside in ["8.8.8.8/32", "175.45.176.0/21", "10.0.0.0/8"] {
            let err = expand(&[net(outside)], &allow).unwrap_err();
            assert!(
                matches!(err, TargetError::NotAllowed { .. }),
                "{outside}: {err}"
            );
            assert!(err.to_string().contains("outside the allowlist"));
        }
    }

    #[test]
    fn refuses_huge_and_empty_lists() {
        let allow = Allowlist::new(vec![net("0.0.0.0/0")]);
        assert_eq!(
            expand(&[net("10.0.0.0/8")], &allow),
            Err(TargetError::TooMany(1 << 24))
        );
        assert_eq!(expand(&[], &allow), Err(TargetError::Empty));
    }

    #[test]
    fn slash24_groups_addresses() {
        let a = Slash24::of("175.45.176.1".parse().unwrap());
        assert_eq!(a, Slash24::of("175.45.176.255".parse().unwrap()));
        assert_ne!(a, Slash24::of("175.45.177.1".parse().unwrap()));
        assert_eq!(a.to_string(), "175.45.176.0/24");
    }
}
