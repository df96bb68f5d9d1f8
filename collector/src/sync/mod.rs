//! `bgp sync`: keeps the BGP data current from the public archives (RouteViews, RIPE RIS) in
//! their own directory layouts, through the same all-or-nothing loader as `bgp load`.
//!
//! - [`archive`]: the layouts, file names and directory listings of both archives (pure);
//! - [`fetch`]: HTTP: one request at a time, retries with backoff, `Retry-After`, a
//!   User-Agent naming nkpath;
//! - [`pass`]: one pass over the collectors ([`run_pass`]), remembering every file by URL in
//!   the store, so that a second pass fetches nothing twice and an interrupted one resumes;
//! - [`status`]: per collector, the last file loaded, the age of its BGP data and the last
//!   error (`bgp status`, `/v1/health`).

pub mod archive;
pub mod cli;
pub mod fetch;
pub mod pass;
pub mod status;

pub use pass::{
    CollectorReport, DEFAULT_COLLECTORS, RIS_ARCHIVE, ROUTEVIEWS_ARCHIVE, SyncConfig, SyncError,
    jittered, run_pass,
};
pub use status::{CollectorStatus, collector_status};
