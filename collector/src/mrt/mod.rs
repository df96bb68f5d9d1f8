//! Loading MRT files (RFC 6396) as RouteViews and RIPE RIS publish them: TABLE_DUMP_V2 and
//! legacy TABLE_DUMP RIB dumps, BGP4MP update files; plain, gzip or bzip2.
//!
//! - [`load_file`] (in `load_file`): one file, all or nothing, in one write transaction of
//!   the store; [`LoadOptions`] what it is told, [`LoadOutcome`] and [`FileSummary`] what it
//!   reports, [`LoadError`] why it refused a file;
//! - `record_loader`, `rib`, `updates`: the records of one file turned into rows;
//! - [`input`]: opening, decompressing and hashing a file;
//! - [`parse`]: the parsing step alone, on bytes in memory, with no database (fuzzed);
//! - [`derive_collector`]: the route collector named by a file's name or path;
//! - [`slot`]: the archive slot an update file's name gives, and the period it stands for.

mod collector_name;
mod error;
pub mod input;
mod load_file;
pub mod parse;
mod record_loader;
mod rib;
pub mod slot;
mod summary;
mod updates;

pub use collector_name::{UNKNOWN_COLLECTOR, derive_collector};
pub use error::LoadError;
pub use input::Compression;
pub use load_file::{LoadOptions, load_file};
pub use summary::{FileKind, FileSummary, LoadOutcome};
