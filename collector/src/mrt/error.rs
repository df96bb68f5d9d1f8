//! Why `bgp load` refused a file: [`LoadError`]. A refused file leaves nothing in the
//! database (its transaction is rolled back).

use std::path::PathBuf;

use super::input::Compression;
use crate::settings::SettingsError;
use crate::store::DbError;

/// Why a file was not loaded. Nothing of it is in the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record does not parse (truncated, corrupt, or of an unknown type).
    #[error(
        "{file}: bad MRT record #{record} at decompressed offset {offset}: {detail}; \
         nothing from this file was loaded"
    )]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Offset of the record's first byte in the decompressed stream.
        offset: u64,
        /// 1-based number of the record.
        record: u64,
        /// What the parser said.
        detail: String,
    },
    /// The compressed stream is damaged or cut short.
    #[error(
        "{file}: {compression} stream is damaged or cut short after {offset} decompressed bytes \
         (in MRT record #{record}): {detail}; nothing from this file was loaded (a partial \
         download? --accept-truncated keeps the complete records before the cut)"
    )]
    Decompress {
        /// The file.
        file: PathBuf,
        /// The compression.
        compression: Compression,
        /// Decompressed bytes produced before the failure.
        offset: u64,
        /// 1-based number of the record being read.
        record: u64,
        /// What the decoder said.
        detail: String,
    },
    /// The file holds records nkpath cannot use together.
    #[error(
        "{file}: {detail} (record #{record} at decompressed offset {offset}); nothing from this file was loaded"
    )]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// Offset of the record's first byte in the decompressed stream.
        offset: u64,
        /// 1-based number of the record.
        record: u64,
        /// What is wrong.
        detail: String,
    },
    /// The file holds no MRT record.
    #[error("{file}: no MRT records (empty file?)")]
    Empty {
        /// The file.
        file: PathBuf,
    },
    /// A RIB dump of the same collector at the same time is already loaded.
    #[error(
        "{file}: collector {collector} already has a RIB dump at {time} (file {other}); \
         if this dump comes from another collector, name it with --collector"
    )]
    DuplicateDump {
        /// The file.
        file: PathBuf,
        /// The collector.
        collector: String,
        /// Dump time (RFC 3339).
        time: String,
        /// The file loaded earlier.
        other: String,
    },
    /// Target settings conflict with the database.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Data the database already holds does not parse; the file's transaction was rolled
    /// back.
    #[error(
        "{file}: malformed BGP data in the database ({detail}); nothing from this file was \
         loaded: the database is damaged, restore it from a backup or use another --db"
    )]
    MalformedStored {
        /// The file.
        file: PathBuf,
        /// What does not parse.
        detail: String,
    },
    /// A database error; the file's transaction was rolled back.
    #[error("{file}: database error: {source}")]
    Db {
        /// The file.
        file: PathBuf,
        /// The error.
        source: DbError,
    },
}
