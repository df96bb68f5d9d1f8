//! Newtypes for the header fields that the engine reasons about.
//!
//! They keep a TTL from being passed where a port is expected and make the
//! `Debug` output of a [`Reply`](super::Reply) readable.

use core::fmt;

/// An IPv4 time-to-live: the hop limit of a probe, or the TTL a reply
/// arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeToLive(pub u8);

impl fmt::Display for TimeToLive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A transport-layer (UDP or TCP) port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The 16-bit value that tells one probe of a trace from another.
///
/// It is written into a header field that load balancers do not hash on
/// and that every reply brings back (see [`Flow`](super::Flow) for where it
/// goes per protocol), so the engine can pair each reply with the probe
/// (TTL, send time) that caused it.
///
/// Identity `0` cannot be carried by UDP probes, whose checksum field holds
/// the identity and where a zero checksum means "no checksum". Allocate
/// identities with [`ProbeIdentity::FIRST`] and [`ProbeIdentity::next`],
/// which never yield `0`, and every identity is valid for every protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeIdentity(pub u16);

impl ProbeIdentity {
    /// The first identity an engine should hand out.
    pub const FIRST: Self = Self(1);

    /// The identity after this one, wrapping from `u16::MAX` to `1` so that
    /// the unencodable `0` is never produced.
    #[must_use]
    pub const fn next(self) -> Self {
        match self.0.checked_add(1) {
            Some(next) => Self(next),
            None => Self::FIRST,
        }
    }
}

impl fmt::Display for ProbeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The flags byte of a TCP header (byte 13: CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(pnet_packet::tcp::TcpFlags::FIN);
    /// Synchronise sequence numbers (connection open).
    pub const SYN: Self = Self(pnet_packet::tcp::TcpFlags::SYN);
    /// Reset the connection.
    pub const RST: Self = Self(pnet_packet::tcp::TcpFlags::RST);
    /// Push function.
    pub const PSH: Self = Self(pnet_packet::tcp::TcpFlags::PSH);
    /// The acknowledgment field is significant.
    pub const ACK: Self = Self(pnet_packet::tcp::TcpFlags::ACK);
    /// The urgent pointer field is significant.
    pub const URG: Self = Self(pnet_packet::tcp::TcpFlags::URG);
    /// ECN echo.
    pub const ECE: Self = Self(pnet_packet::tcp::TcpFlags::ECE);
    /// Congestion window reduced.
    pub const CWR: Self = Self(pnet_packet::tcp::TcpFlags::CWR);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// True when every flag set in `other` is also set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// Prints the set flags by name, e.g. `TcpFlags(SYN|ACK)`.
impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TcpFlags(")?;
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_allocation_never_yields_zero() {
        assert_eq!(ProbeIdentity(7).next(), ProbeIdentity(8));
        assert_eq!(ProbeIdentity(u16::MAX).next(), ProbeIdentity::FIRST);
        assert_ne!(ProbeIdentity::FIRST.0, 0);
    }

    #[test]
    fn tcp_flags_debug_names_the_set_flags() {
        let syn_ack = TcpFlags::SYN.union(TcpFlags::ACK);
        assert_eq!(format!("{syn_ack:?}"), "TcpFlags(SYN|ACK)");
        assert_eq!(format!("{:?}", TcpFlags(0)), "TcpFlags()");
        assert!(syn_ack.contains(TcpFlags::SYN));
        assert!(!syn_ack.contains(TcpFlags::RST));
    }
}
