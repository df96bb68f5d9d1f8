//! Where the analysis core's inputs come from: the adapters between [`crate::analysis`],
//! which does no I/O, and the database, the DNS and files.
//!
//! - [`bgp`]: the database as a [`BgpSource`](crate::analysis::BgpSource) (BGP states built
//!   from the loaded MRT files, the target AS from the settings);
//! - [`cymru`]: Team Cymru lookups as the hop mapper's
//!   [`OriginLookup`](crate::analysis::cymru::OriginLookup): memory, then
//!   [`cymru_cache`] (answers kept in the database for a week), then [`dns`] (TXT queries
//!   with hickory-resolver on a tokio runtime of their own);
//! - [`ixp`]: the IXP table read from PeeringDB or PCH files, kept in and read back from the
//!   database.

pub mod bgp;
pub mod cymru;
pub mod cymru_cache;
pub mod dns;
pub mod ixp;
