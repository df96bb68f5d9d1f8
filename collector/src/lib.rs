//! nkpath-collector: stores agents' traces, loads BGP data, and checks each trace's entry into
//! the target AS against the upstreams BGP announces.
//!
//! The rooms, bottom floor first (a room imports only from the floors below it; the layering
//! test in `tests/layering.rs` keeps it so):
//!
//! 1. [`store`]: the SQLite database, the only room that speaks SQL; [`text`]: escaping;
//!    [`admission`]: the rules an uploaded or imported result must meet.
//! 2. [`settings`]: the target network (prefixes and AS) the database is about; [`agents`]:
//!    upload tokens.
//! 3. [`results`]: agents' and imported results in one stored shape; [`bgp`]: the BGP state at
//!    a time t, the announced upstreams of the target AS, their visibility, and how they
//!    changed.
//! 4. [`analysis`]: the pure analysis core (hop mapping, entry AS, verdicts); [`mrt`]: loading
//!    MRT RIB dumps and BGP4MP update files (`bgp load`).
//! 5. [`sources`]: the core's inputs from the database, the DNS and files; [`import`]: public
//!    traceroutes (RIPE Atlas, scamper) converted and stored beside the agents' results;
//!    [`export`]: the CSV data set; [`sync`]: keeping the BGP data current from the public
//!    archives (`bgp sync`); [`live`]: RIS Live, stored as provisional BGP rows.
//! 6. [`report`]: the reports and the command line behind them.
//! 7. [`fleet`]: fleet scheduling (which agent traces which /24 when); [`alerts`]: the
//!    operator's command run when an announced upstream set changes or a new mismatch
//!    appears (`--on-change`).
//! 8. [`server`]: the HTTP API agents upload to (`serve`).
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
pub mod alerts;
pub mod analysis;
pub mod bgp;
pub mod export;
pub mod fleet;
pub mod import;
pub mod live;
pub mod mrt;
pub mod report;
pub mod results;
pub mod rpki;
pub mod server;
pub mod settings;
pub mod sources;
pub mod store;
pub mod sync;
pub mod text;

pub use store::{Db, DbError};
