//! What a [`Reply`] says, as a typed value: the one place of both crates that
//! knows the ICMP type and code numbers and the TCP flag bits a trace deals
//! with.
//!
//! On the wire a reply keeps its raw numbers (`icmp_type` and `icmp_code`, or
//! `tcp_flags`), so that nothing an agent received is lost and the format never
//! changes when a meaning is added here. [`Reply::kind`] reads them into a
//! [`ReplyKind`]; [`ReplyKind::icmp_type_code`] and [`ReplyKind::tcp_flags`]
//! give them back, so that `kind → wire → kind` is the identity. The agent
//! builds its wire replies from a `ReplyKind` ([`Reply::new`]); the collector
//! decides from one which router refused a probe.

use std::fmt;
use std::net::Ipv4Addr;

use crate::Reply;

/// ICMP type: echo reply (RFC 792).
const ECHO_REPLY: u8 = 0;
/// ICMP type: destination unreachable (RFC 792).
const DEST_UNREACHABLE: u8 = 3;
/// ICMP type: time exceeded (RFC 792).
const TIME_EXCEEDED: u8 = 11;

/// The meaning of a reply to a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ICMP time exceeded (type 11): a router on the path discarded the probe
    /// (code 0: TTL exceeded in transit; 1: fragment reassembly time).
    TimeExceeded {
        /// The ICMP code.
        code: u8,
    },
    /// ICMP destination unreachable (type 3), from the target or a router on
    /// the way.
    Unreachable(UnreachableCode),
    /// ICMP echo reply (type 0, code 0): the target answered an ICMP probe.
    EchoReply,
    /// A TCP segment from the target (SYN-ACK: open port; RST: closed).
    Tcp(TcpFlags),
    /// Any other ICMP message (a newer agent's, or an imported trace's).
    OtherIcmp {
        /// The ICMP type.
        icmp_type: u8,
        /// The ICMP code.
        icmp_code: u8,
    },
}

impl ReplyKind {
    /// The meaning of an ICMP message of `icmp_type` and `icmp_code`.
    pub fn icmp(icmp_type: u8, icmp_code: u8) -> Self {
        match (icmp_type, icmp_code) {
            (TIME_EXCEEDED, code) => Self::TimeExceeded { code },
            (DEST_UNREACHABLE, code) => Self::Unreachable(UnreachableCode::from(code)),
            (ECHO_REPLY, 0) => Self::EchoReply,
            (icmp_type, icmp_code) => Self::OtherIcmp {
                icmp_type,
                icmp_code,
            },
        }
    }

    /// The ICMP type and code this kind is written with; `None` for TCP.
    pub fn icmp_type_code(self) -> Option<(u8, u8)> {
        match self {
            Self::TimeExceeded { code } => Some((TIME_EXCEEDED, code)),
            Self::Unreachable(code) => Some((DEST_UNREACHABLE, code.code())),
            Self::EchoReply => Some((ECHO_REPLY, 0)),
            Self::OtherIcmp {
                icmp_type,
                icmp_code,
            } => Some((icmp_type, icmp_code)),
            Self::Tcp(_) => None,
        }
    }

    /// The TCP flags this kind is written with; `None` for ICMP.
    pub fn tcp_flags(self) -> Option<u8> {
        match self {
            Self::Tcp(flags) => Some(flags.0),
            _ => None,
        }
    }

    /// The unreachable code, when this is a destination unreachable.
    pub fn unreachable(self) -> Option<UnreachableCode> {
        match self {
            Self::Unreachable(code) => Some(code),
            _ => None,
        }
    }
}

/// The code of an ICMP destination unreachable (RFC 792, RFC 1122, RFC 1812).
///
/// Codes without a name here are kept as [`UnreachableCode::Other`];
/// [`From<u8>`] never puts a named code there, so two values are equal exactly
/// when their codes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnreachableCode {
    /// 0: network unreachable (`!N`).
    Net,
    /// 1: host unreachable (`!H`).
    Host,
    /// 2: protocol unreachable (`!P`): the destination itself answered.
    Protocol,
    /// 3: port unreachable: the destination itself answered (the usual end of
    /// a UDP trace).
    Port,
    /// 4: fragmentation needed and DF set.
    FragmentationNeeded,
    /// 9: communication with the destination network administratively
    /// prohibited.
    NetProhibited,
    /// 10: communication with the destination host administratively
    /// prohibited.
    HostProhibited,
    /// 13: communication administratively prohibited (RFC 1812), sent by
    /// filtering routers and firewalls (`!X`).
    AdminProhibited,
    /// Any other code.
    Other(u8),
}

impl UnreachableCode {
    /// The code's number.
    pub fn code(self) -> u8 {
        match self {
            Self::Net => 0,
            Self::Host => 1,
            Self::Protocol => 2,
            Self::Port => 3,
            Self::FragmentationNeeded => 4,
            Self::NetProhibited => 9,
            Self::HostProhibited => 10,
            Self::AdminProhibited => 13,
            Self::Other(code) => code,
        }
    }

    /// Whether the destination itself sent it (protocol and port unreachable):
    /// the probe arrived. Every other code comes from a router or firewall that
    /// refused the probe or had no route for it.
    pub fn is_from_destination(self) -> bool {
        matches!(self, Self::Protocol | Self::Port)
    }

    /// Whether it says a filter refused the probe (administratively
    /// prohibited: codes 9, 10 and 13; traceroute's `!X`).
    pub fn is_filtered(self) -> bool {
        matches!(
            self,
            Self::NetProhibited | Self::HostProhibited | Self::AdminProhibited
        )
    }
}

impl From<u8> for UnreachableCode {
    fn from(code: u8) -> Self {
        match code {
            0 => Self::Net,
            1 => Self::Host,
            2 => Self::Protocol,
            3 => Self::Port,
            4 => Self::FragmentationNeeded,
            9 => Self::NetProhibited,
            10 => Self::HostProhibited,
            13 => Self::AdminProhibited,
            other => Self::Other(other),
        }
    }
}

impl From<UnreachableCode> for u8 {
    fn from(code: UnreachableCode) -> Self {
        code.code()
    }
}

impl fmt::Display for UnreachableCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// The flags byte of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// Synchronise sequence numbers (connection open).
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// The acknowledgment field is significant.
    pub const ACK: u8 = 0x10;

    /// Whether RST is set: the port is closed.
    pub fn is_rst(self) -> bool {
        self.0 & Self::RST != 0
    }

    /// Whether SYN and ACK are both set: the port is open.
    pub fn is_syn_ack(self) -> bool {
        self.0 & (Self::SYN | Self::ACK) == Self::SYN | Self::ACK
    }
}

impl Reply {
    /// A reply of `kind` from `address`, with the wire fields `kind` is written
    /// with; nothing quoted and no MPLS labels (set `quoted_ttl` and
    /// `mpls_labels` for an ICMP error that quoted the probe).
    pub fn new(address: Ipv4Addr, rtt_us: u32, reply_ttl: u8, kind: ReplyKind) -> Self {
        let icmp = kind.icmp_type_code();
        Self {
            address,
            rtt_us,
            reply_ttl,
            icmp_type: icmp.map(|(t, _)| t),
            icmp_code: icmp.map(|(_, c)| c),
            tcp_flags: kind.tcp_flags(),
            quoted_ttl: None,
            mpls_labels: Vec::new(),
        }
    }

    /// What the reply says, read from its wire fields; `None` when they are
    /// neither an ICMP type and code nor TCP flags (a reply [`decode`] refuses).
    ///
    /// [`decode`]: crate::decode
    pub fn kind(&self) -> Option<ReplyKind> {
        match (self.icmp_type, self.icmp_code, self.tcp_flags) {
            (Some(icmp_type), Some(icmp_code), None) => Some(ReplyKind::icmp(icmp_type, icmp_code)),
            (None, None, Some(flags)) => Some(ReplyKind::Tcp(TcpFlags(flags))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_icmp_type_and_code_reads_back_as_written() {
        for icmp_type in 0..=u8::MAX {
            for icmp_code in 0..=u8::MAX {
                let kind = ReplyKind::icmp(icmp_type, icmp_code);
                assert_eq!(kind.icmp_type_code(), Some((icmp_type, icmp_code)));
                let reply = Reply::new(Ipv4Addr::LOCALHOST, 1, 64, kind);
                assert_eq!(reply.kind(), Some(kind));
            }
        }
        for flags in 0..=u8::MAX {
            let reply = Reply::new(Ipv4Addr::LOCALHOST, 1, 64, ReplyKind::Tcp(TcpFlags(flags)));
            assert_eq!((reply.icmp_type, reply.tcp_flags), (None, Some(flags)));
            assert_eq!(reply.kind(), Some(ReplyKind::Tcp(TcpFlags(flags))));
        }
    }

    #[test]
    fn named_codes_are_never_other() {
        for code in 0..=u8::MAX {
            let named = UnreachableCode::from(code);
            assert_eq!(named.code(), code);
            if let UnreachableCode::Other(other) = named {
                assert!(![0, 1, 2, 3, 4, 9, 10, 13].contains(&other), "{other}");
            }
        }
    }

    #[test]
    fn meanings() {
        assert_eq!(ReplyKind::icmp(11, 0), ReplyKind::TimeExceeded { code: 0 });
        assert_eq!(ReplyKind::icmp(0, 0), ReplyKind::EchoReply);
        assert!(matches!(ReplyKind::icmp(0, 1), ReplyKind::OtherIcmp { .. }));
        let filtered: Vec<u8> = (0..=u8::MAX)
            .filter(|&c| UnreachableCode::from(c).is_filtered())
            .collect();
        assert_eq!(filtered, [9, 10, 13]);
        let from_destination: Vec<u8> = (0..=u8::MAX)
            .filter(|&c| UnreachableCode::from(c).is_from_destination())
            .collect();
        assert_eq!(from_destination, [2, 3]);
        assert!(TcpFlags(0x12).is_syn_ack() && !TcpFlags(0x12).is_rst());
        assert!(TcpFlags(0x14).is_rst() && !TcpFlags(0x14).is_syn_ack());
    }

    #[test]
    fn inconsistent_wire_fields_have_no_kind() {
        let mut reply = Reply::new(Ipv4Addr::LOCALHOST, 1, 64, ReplyKind::EchoReply);
        reply.tcp_flags = Some(0x12);
        assert_eq!(reply.kind(), None);
        reply.icmp_type = None;
        assert_eq!(reply.kind(), None);
    }
}
