//! Loading MRT files (RFC 6396) as RouteViews and RIPE RIS publish them: TABLE_DUMP_V2 and
//! legacy TABLE_DUMP RIB dumps, BGP4MP update files; plain, gzip or bzip2.

pub mod input;
mod intervals;
pub mod load;
mod loader;
mod rib;
mod updates;

pub use input::Compression;
pub use load::{
    FileKind, FileSummary, LoadError, LoadOptions, LoadOutcome, derive_collector, load_file,
};
