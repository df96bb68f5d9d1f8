//! The one error type of the packet layer.
//!
//! Every variant says *what* was wrong and with which values, so that a log
//! line is enough to understand why a reply was dropped. Parse failures are
//! not exceptional on a raw socket (other processes' traffic, middlebox
//! mangling, hostile senders): the engine counts them, it does not abort.

use thiserror::Error;

/// `Result` with [`PacketError`] as the default error.
pub type Result<T, E = PacketError> = core::result::Result<T, E>;

/// Why a packet could not be built or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PacketError {
    /// A buffer or a length field promised more bytes than there are.
    #[error("{what} truncated: need {need} bytes, have {have}")]
    Truncated {
        /// The structure that is cut short.
        what: &'static str,
        /// Bytes needed to read it.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field is smaller than the fixed part it must include.
    #[error("{what}: length {value} is below the minimum {min}")]
    BadLength {
        /// The structure whose length field is wrong.
        what: &'static str,
        /// The length it announces, in bytes.
        value: usize,
        /// The smallest legal length, in bytes.
        min: usize,
    },
    /// A version field holds a value this parser does not know.
    #[error("{what}: version {found}, expected {expected}")]
    BadVersion {
        /// The structure whose version is wrong.
        what: &'static str,
        /// The version found.
        found: u8,
        /// The only version understood.
        expected: u8,
    },
    /// A checksum does not verify: the bytes were corrupted or forged.
    #[error("{what}: checksum {found:#06x} does not verify")]
    BadChecksum {
        /// The structure whose checksum is wrong.
        what: &'static str,
        /// The checksum field as received.
        found: u16,
    },
    /// A non-first IPv4 fragment: it carries no transport header to match on.
    #[error("{what} is a fragment (offset {offset} x 8 bytes, more fragments: {more})")]
    Fragment {
        /// Which datagram (outer or quoted).
        what: &'static str,
        /// The fragment offset field, in units of 8 bytes.
        offset: u16,
        /// The "more fragments" flag.
        more: bool,
    },
    /// An IP protocol number this layer does not parse.
    #[error("{what}: IP protocol {protocol} is not ICMP, UDP or TCP")]
    UnsupportedProtocol {
        /// Which datagram (outer or quoted).
        what: &'static str,
        /// The protocol number found.
        protocol: u8,
    },
    /// An ICMP message that is not an answer to a traceroute probe
    /// (e.g. a redirect, or an echo request seen on the raw socket).
    #[error("ICMP type {icmp_type} code {code} is not a reply to a probe")]
    UnsupportedIcmpType {
        /// The ICMP type.
        icmp_type: u8,
        /// The ICMP code.
        code: u8,
    },
    /// The probe identity cannot be represented in this protocol's header.
    #[error("identity {identity} cannot be encoded in a {protocol} probe: {why}")]
    UnencodableIdentity {
        /// The probe protocol.
        protocol: &'static str,
        /// The rejected identity.
        identity: u16,
        /// The reason, for the log.
        why: &'static str,
    },
    /// The caller's buffer cannot hold the probe.
    #[error("probe buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall {
        /// Bytes the probe needs.
        need: usize,
        /// Bytes the buffer has.
        have: usize,
    },
}

impl PacketError {
    /// True when the bytes are damaged or forged (truncated, bad length,
    /// version or checksum), false when they are well formed but simply not
    /// something a traceroute reply parser handles. The engine counts the
    /// two separately: a rising "malformed" count points at a broken
    /// middlebox, a rising "unsupported" count is just other traffic.
    #[must_use]
    pub const fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. }
                | Self::BadLength { .. }
                | Self::BadVersion { .. }
                | Self::BadChecksum { .. }
        )
    }
}
