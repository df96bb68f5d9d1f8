//! BGP data as loaded from MRT files, and what nkpath derives from it.
//!
//! - [`BgpState::at`]: the BGP state at a time t — per collector, the last RIB dump taken at
//!   or before t, replayed with the loaded BGP4MP messages from the dump's second up to t
//!   (a session leaving Established withdraws all the peer's routes), plus the peers whose
//!   sessions are seen going to Established (known from then on without a dump). Updates are
//!   replayed over a peer's base (the dump or its session start) only up to a maximum age (24 h)
//!   after it; an update too late for its peer's base ends that peer's base, nobody else's. No such
//!   data at or before t means no BGP data: `None`, never a later snapshot.
//! - [`adjacency`]: the AS adjacencies of every loaded path, for the border rule.
//! - [`upstream`]: the upstreams a route announces for the target AS, and their visibility.
//! - [`timeline`]: the same state as it changes over a period: time-weighted visibility, and
//!   the appearances and disappearances of announced upstreams.

pub mod adjacency;
pub mod asn;
pub mod aspath;
pub mod prefix;
pub mod prefix_map;
pub mod replay;
pub mod routeset;
pub mod state;
pub mod timeline;
pub mod upstream;

pub use adjacency::Adjacency;
pub use aspath::AsPath;
pub use prefix_map::PrefixMap;
pub use state::{BgpError, BgpState, LpmMatch, PeerInfo, PeerRoute, StateSource};
pub use timeline::{PeerBaseline, UpstreamChange, UpstreamChanges, VisibilityOverPeriod};
pub use upstream::{AnnouncedUpstreams, Upstream, Visibility, upstream_of};

use time::OffsetDateTime;

/// BGP4MP state code of Established (RFC 6396 §4.4.1).
pub const ESTABLISHED: u16 = crate::store::bgp::ESTABLISHED;

/// The UNIX second that contains `t` (MRT timestamps are whole seconds).
pub fn unix_seconds(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}
