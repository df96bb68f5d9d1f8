//! nkpath-collector: storage and BGP data layer of the nkpath collector.
//!
//! - [`db`]: the SQLite database (one file, WAL, versioned schema with in-place upgrades).
//! - [`results`]: agents' trace and ping results, stored exactly as received.
//! - [`import`]: public traceroutes (RIPE Atlas, scamper) converted and stored beside them.
//! - [`settings`]: the target network (prefixes and AS) the database is about.
//! - [`mrt`]: loading MRT RIB dumps and BGP4MP update files (`bgp load`).
//! - [`server`]: the HTTP API agents upload to (`serve`); [`agents`]: their tokens.
//! - [`bgp`]: the BGP state at a time t, announced upstreams of the target AS, their
//!   visibility, and how they changed.
//! - [`analysis`]: the pure analysis core (hop mapping, entry AS, verdicts); [`sources`]:
//!   its inputs from the database, the DNS and files.
//!
//! ```no_run
//! use nkpath_collector::{Db, bgp::BgpState, mrt};
//! use time::macros::datetime;
//!
//! let mut db = Db::open("nkpath.db")?;
//! mrt::load_file(&mut db, "rib.20171001.0000.bz2".as_ref(), &Default::default(), None)?;
//! if let Some(state) = BgpState::at(&db, datetime!(2017-10-01 12:00 UTC))? {
//!     let nk = "175.45.176.0/22".parse()?;
//!     for (asn, peers) in &state.announced_upstreams(nk).upstreams {
//!         println!("AS{asn}: {peers} peers");
//!     }
//!     println!("{:?}", state.origins_lpm("219.158.1.1".parse()?));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod admission;
pub mod agents;
pub mod analysis;
pub mod bgp;
pub mod export;
pub mod fleet;
pub mod import;
pub mod mrt;
pub mod report;
pub mod results;
pub mod server;
pub mod settings;
pub mod sources;
pub mod store;
pub mod text;

pub use store::{Db, DbError};
