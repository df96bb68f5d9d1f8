//! What `bgp load` reports of a file: loaded ([`FileSummary`]) or already loaded
//! ([`LoadOutcome`]), and whether it is a RIB dump or an update file ([`FileKind`]).

use std::path::PathBuf;
use std::time::Duration;

/// RIB dump or update file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A RIB snapshot (TABLE_DUMP_V2 or TABLE_DUMP).
    Rib,
    /// BGP4MP messages and state changes.
    Updates,
}

impl FileKind {
    /// The name stored in `mrt_files.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rib => "rib",
            Self::Updates => "updates",
        }
    }
}

/// What loading a file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    /// The file was loaded.
    Loaded(Box<FileSummary>),
    /// The same file (or the same MRT data in another compression) was loaded before.
    AlreadyLoaded {
        /// The file given.
        file: PathBuf,
        /// Name of the file loaded earlier.
        loaded_as: String,
        /// The SHA-256 both share: of the file itself, or of the decompressed MRT stream when
        /// `same_data_recompressed`.
        sha256: String,
        /// The files differ but decompress to the same MRT data.
        same_data_recompressed: bool,
    },
}

/// Counts and facts about a loaded file (also stored in `mrt_files`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileSummary {
    /// `mrt_files.id`.
    pub file_id: i64,
    /// The file's name.
    pub name: String,
    /// The collector it was loaded for.
    pub collector: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// SHA-256 of the decompressed MRT stream.
    pub mrt_sha256: String,
    /// `none`, `gzip` or `bzip2`.
    pub compression: &'static str,
    /// `rib` or `updates`.
    pub kind: &'static str,
    /// `TABLE_DUMP_V2`, `TABLE_DUMP` or `BGP4MP`.
    pub format: &'static str,
    /// RIB dumps: the dump's time (UNIX seconds).
    pub dump_time: Option<i64>,
    /// Earliest record timestamp.
    pub first_time: i64,
    /// Latest record timestamp.
    pub last_time: i64,
    /// Size of the file.
    pub file_bytes: u64,
    /// Size of the decompressed MRT stream.
    pub mrt_bytes: u64,
    /// MRT records.
    pub records: u64,
    /// Distinct peers with a route or message in the file.
    pub peers: u64,
    /// Distinct IPv4 unicast prefixes kept.
    pub prefixes: u64,
    /// IPv4 unicast RIB entries kept.
    pub rib_entries: u64,
    /// RIB entries or announcements kept with their full AS path (target-overlapping).
    pub target_routes: u64,
    /// IPv4 unicast announcements kept.
    pub announcements: u64,
    /// IPv4 unicast withdrawals kept.
    pub withdrawals: u64,
    /// BGP4MP state changes.
    pub state_changes: u64,
    /// RIB entries, announcements and withdrawals of IPv6 prefixes (skipped).
    pub ipv6_skipped: u64,
    /// RIB entries, announcements and withdrawals of other address families (skipped).
    pub other_skipped: u64,
    /// Distinct pairs of adjacent ASes in the paths of the file's IPv4 routes.
    pub as_adjacencies: u64,
    /// NLRI fields bgpkit-parser could not parse (RFC 7606 malformed NLRI): their prefixes
    /// are unknown, so nothing of them is kept. Each is logged with its record's offset.
    pub malformed_nlri: u64,
    /// Files loaded with `accept_truncated` that were cut short: the decompressed offset of
    /// the cut, i.e. the bytes of the complete records kept (`records` of them).
    pub truncated_at: Option<u64>,
    /// Update files: the span (UNIX seconds, both ends included) the file is the authority
    /// for, its records' span widened to its archive slot when its name gives one.
    pub period: Option<(i64, i64)>,
    /// Update files: provisional (RIS Live) rows of the collector within [`Self::period`]
    /// that the file replaced.
    pub provisional_replaced: u64,
    /// What the user should know about the load (printed on stderr by `bgp load`).
    pub warnings: Vec<String>,
    /// Wall-clock time of the load.
    pub elapsed: Duration,
}
