//! `bgp load`: one MRT file into the database, in one transaction.
//!
//! The file is parsed with bgpkit-parser's fallible record iterator. Every record is either
//! kept or counted as skipped; the first error of any kind (corrupt record, truncated body,
//! damaged or cut compressed stream, I/O) aborts the file's transaction, so nothing of a bad
//! file stays behind, and the error names the file and the decompressed offset of the record.
//!
//! What is kept (see the schema in [`crate::store::migrations`]):
//! - RIB dumps (TABLE_DUMP_V2, legacy TABLE_DUMP): for every IPv4 unicast prefix, the route
//!   set of its origins per peer, merged into the collector's validity intervals
//!   (`prefix_origins`); for prefixes overlapping the target prefixes, every route's full AS
//!   path (`rib_routes`).
//! - BGP4MP update files: every IPv4 unicast announcement (origins; full path when the prefix
//!   overlaps a target) and withdrawal (`bgp_updates`), and every state change
//!   (`peer_state_changes`).
//!
//! - Every file: the pairs of ASes adjacent in the path of any IPv4 route (`as_adjacencies`,
//!   see [`crate::bgp::adjacency`]).
//!
//! IPv6 prefixes and other address families are skipped and counted.
//!
//! A file cut short (a partial download: the compressed stream or the last record ends early)
//! is refused like any damaged file, unless [`LoadOptions::accept_truncated`] is set: then the
//! complete records read before the cut are kept and the file is flagged
//! (`mrt_files.truncated`, [`FileSummary::truncated_at`]). A truncated RIB dump lacks the
//! prefixes after the cut, so it is never taken for a complete table silently.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bgpkit_parser::BgpkitParser;
use bgpkit_parser::error::ParserError;
use indicatif::ProgressBar;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::input::{self, Compression, TapState};
use super::loader::Loader;
use crate::settings::{SettingsError, Target, resolve_target};
use crate::store::{Db, DbError};

/// What `bgp load` is told besides the file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The route collector the file comes from; `None`: derived from the file's name or its
    /// directories (`rrc00`, `route-views.sg`, ...), else `unknown`.
    pub collector: Option<String>,
    /// Target network; `None`: the one stored in the database, or the default.
    pub target: Option<Target>,
    /// Keep the complete records of a file cut short (a partial download) instead of
    /// refusing it, and flag the file as truncated. A corrupt record is still refused.
    pub accept_truncated: bool,
}

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
    /// What the user should know about the load (printed on stderr by `bgp load`).
    pub warnings: Vec<String>,
    /// Wall-clock time of the load.
    pub elapsed: Duration,
}

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
    /// A database error; the file's transaction was rolled back.
    #[error("{file}: database error: {source}")]
    Db {
        /// The file.
        file: PathBuf,
        /// The error.
        source: DbError,
    },
}

/// Loads one MRT file (see the module docs). `progress`, if given, is advanced in file bytes.
pub fn load_file(
    db: &mut Db,
    path: &Path,
    options: &LoadOptions,
    progress: Option<&ProgressBar>,
) -> Result<LoadOutcome, LoadError> {
    let started = Instant::now();
    let io_err = |source| LoadError::Io {
        file: path.to_path_buf(),
        source,
    };
    let db_err = |e: rusqlite::Error| LoadError::Db {
        file: path.to_path_buf(),
        source: e.into(),
    };
    let (sha256, file_bytes) = input::sha256_file(path).map_err(io_err)?;
    if let Some(loaded_as) = db
        .conn()
        .query_row(
            "SELECT name FROM mrt_files WHERE sha256 = ?1",
            [&sha256],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?
    {
        return Ok(LoadOutcome::AlreadyLoaded {
            file: path.to_path_buf(),
            loaded_as,
            sha256,
            same_data_recompressed: false,
        });
    }
    let name = summary_name(path);
    let collector = options
        .collector
        .clone()
        .unwrap_or_else(|| derive_collector(path));

    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    let target = resolve_target(&tx, options.target.as_ref())?;
    let collector_id = collector_id(&tx, &collector).map_err(db_err)?;
    let input = input::open(path).map_err(io_err)?;
    if let Some(pb) = progress {
        pb.set_length(file_bytes);
        pb.set_position(0);
    }
    let summary = FileSummary {
        name,
        collector,
        sha256,
        compression: input.compression.as_str(),
        file_bytes,
        ..FileSummary::default()
    };
    let mut loader = Loader::new(&tx, path, collector_id, target, summary).map_err(db_err)?;
    let file_read = Arc::clone(&input.file_read);
    let mrt_sha256 = Rc::clone(&input.mrt_sha256);
    let mrt_tap = Rc::clone(&input.mrt_tap);
    let compression = input.compression;
    let mut records = BgpkitParser::from_reader(input.reader).into_fallible_record_iter();
    let mut number = 0u64;
    // With `accept_truncated`: where the stream was cut (the end of the last complete record).
    let mut truncated_at = None;
    loop {
        let offset = mrt_tap.bytes();
        let Some(next) = records.next() else { break };
        number += 1;
        match next {
            Ok(record) => loader.on_record(record, offset, number)?,
            Err(e) => {
                // The file ends inside this record: the decoder reports a cut stream, or a
                // plain file ends before the record's length.
                let ends_here = match &e.error {
                    ParserError::EofError(_) => true,
                    ParserError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
                    _ => false,
                };
                let error =
                    stream_error(path, compression, &mrt_tap, number).unwrap_or_else(|| {
                        // bgpkit-parser's messages start with "Error: ".
                        let mut detail = e.to_string().trim_start_matches("Error: ").to_string();
                        if ends_here {
                            detail.push_str(
                                " (the file ends inside this record: a partial download? \
                             --accept-truncated keeps the complete records before it)",
                            );
                        }
                        LoadError::Corrupt {
                            file: path.to_path_buf(),
                            offset,
                            record: number,
                            detail,
                        }
                    });
                if options.accept_truncated
                    && (ends_here || matches!(error, LoadError::Decompress { .. }))
                {
                    truncated_at = Some(offset);
                    number -= 1;
                    break;
                }
                return Err(error);
            }
        }
        if number.is_multiple_of(4096)
            && let Some(pb) = progress
        {
            pb.set_position(file_read.load(Ordering::Relaxed));
        }
    }
    // bgpkit treats an UnexpectedEof at a record boundary as the end of the file; the decoder
    // may have reported a cut stream exactly there.
    if truncated_at.is_none()
        && let Some(e) = stream_error(path, compression, &mrt_tap, number + 1)
    {
        if !options.accept_truncated {
            return Err(e);
        }
        truncated_at = Some(mrt_tap.bytes());
    }
    if number == 0 {
        return Err(LoadError::Empty {
            file: path.to_path_buf(),
        });
    }
    if let Some(pb) = progress {
        pb.set_position(file_read.load(Ordering::Relaxed));
        pb.set_message(format!("{}: writing", summary_name(path)));
    }
    // A cut stream has no hash of its own: the file's hash stands for it (it is unique too).
    let mrt_sha256 = match truncated_at {
        Some(_) => format!("truncated:{}", loader.summary.sha256),
        None => mrt_sha256
            .borrow_mut()
            .take()
            .expect("a stream that ended cleanly has a hash"),
    };
    if let Some(loaded_as) = tx
        .query_row(
            "SELECT name FROM mrt_files WHERE mrt_sha256 = ?1",
            params![mrt_sha256],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?
    {
        // Same MRT data in another file (another compression): drop this load.
        drop(loader);
        drop(tx);
        return Ok(LoadOutcome::AlreadyLoaded {
            file: path.to_path_buf(),
            loaded_as,
            sha256: mrt_sha256,
            same_data_recompressed: true,
        });
    }
    if let Some(other) = loader.conflict.take() {
        return Err(LoadError::DuplicateDump {
            file: path.to_path_buf(),
            collector: loader.summary.collector.clone(),
            time: crate::bgp::format_unix(loader.summary.dump_time.unwrap_or_default()),
            other,
        });
    }
    loader.summary.truncated_at = truncated_at;
    let mut summary = loader.finish(truncated_at.unwrap_or(mrt_tap.bytes()), number, mrt_sha256)?;
    if options.collector.is_none() && summary.collector == UNKNOWN_COLLECTOR {
        summary.warnings.push(format!(
            "loaded for collector {UNKNOWN_COLLECTOR}: no collector name in the file name or path; \
             pass --collector NAME: files of different collectors must not be mixed"
        ));
    }
    if summary.kind == FileKind::Updates.as_str()
        && let Some(warning) = no_base_warning(&tx, collector_id, &summary).map_err(db_err)?
    {
        summary.warnings.push(warning);
    }
    tx.commit().map_err(db_err)?;
    summary.elapsed = started.elapsed();
    Ok(LoadOutcome::Loaded(Box::new(summary)))
}

/// The collector name given to files whose name and path name none.
pub const UNKNOWN_COLLECTOR: &str = "unknown";

/// An update file adds to the BGP state only over a base (see [`crate::bgp::state`]): a RIB
/// dump of its collector at most the maximum replay age before its updates, or sessions seen
/// going to Established in it. Without either it adds nothing yet: say so.
fn no_base_warning(
    tx: &Transaction<'_>,
    collector_id: i64,
    s: &FileSummary,
) -> rusqlite::Result<Option<String>> {
    let max_age = crate::bgp::state::MAX_REPLAY_AGE_S;
    let dump: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM mrt_files WHERE collector_id = ?1
             AND dump_time >= ?2 - ?4 AND dump_time <= ?3)",
        params![collector_id, s.first_time, s.last_time, max_age],
        |r| r.get(0),
    )?;
    let established: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM peer_state_changes WHERE file_id = ?1 AND new_state = ?2)",
        params![s.file_id, crate::bgp::ESTABLISHED],
        |r| r.get(0),
    )?;
    Ok((!dump && !established).then(|| {
        format!(
            "no RIB dump of collector {c} up to {h} h before these updates, and no \
             session in the file is seen going to Established: the file adds nothing to the BGP \
             state until a RIB dump of collector {c} taken at most {h} h before its updates is \
             loaded",
            c = s.collector,
            h = max_age / 3600
        )
    }))
}

fn summary_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The decoder's error, if it reported one: a damaged or cut compressed stream.
fn stream_error(
    path: &Path,
    compression: Compression,
    tap: &TapState,
    record: u64,
) -> Option<LoadError> {
    tap.error().map(|(_, detail)| LoadError::Decompress {
        file: path.to_path_buf(),
        compression,
        offset: tap.bytes(),
        record,
        detail,
    })
}

/// The collector named by a file's name or one of its directories (`rrc00`,
/// `route-views.sg`, `route-views2`), or `unknown`.
pub fn derive_collector(path: &Path) -> String {
    path.ancestors()
        .take(6)
        .filter_map(|p| p.file_name())
        .find_map(|n| collector_in_name(&n.to_string_lossy()))
        .unwrap_or_else(|| UNKNOWN_COLLECTOR.to_string())
}

fn collector_in_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("rrc")
        && rest.len() >= 2
        && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)
        && !rest.as_bytes().get(2).is_some_and(u8::is_ascii_digit)
    {
        return Some(lower[..5].to_string());
    }
    if lower.starts_with("route-views") {
        let end = [
            "_", "-rib", "-updates", "-bview", ".rib", ".updates", ".bview",
        ]
        .iter()
        .filter_map(|sep| lower.find(sep))
        .min()
        .unwrap_or(lower.len());
        return Some(lower[..end].trim_end_matches(['.', '-']).to_string());
    }
    None
}

fn collector_id(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO collectors (name) VALUES (?1) ON CONFLICT (name) DO NOTHING",
        [name],
    )?;
    tx.query_row("SELECT id FROM collectors WHERE name = ?1", [name], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_names_from_files_and_directories() {
        let cases = [
            ("/data/rrc00/2024.01/bview.20240101.0000.gz", "rrc00"),
            ("rrc21-updates.20240101.0000.gz", "rrc21"),
            (
                "/archive/route-views.sg/bgpdata/2024.01/RIBS/rib.20240101.0000.bz2",
                "route-views.sg",
            ),
            ("route-views2_rib.20240101.0000.bz2", "route-views2"),
            (
                "route-views.amsix-rib.20240101.0000.bz2",
                "route-views.amsix",
            ),
            ("/data/ribs/rib.20140523.0600.bz2", "unknown"),
            ("rrc123.gz", "unknown"),
        ];
        for (path, want) in cases {
            assert_eq!(derive_collector(Path::new(path)), want, "{path}");
        }
    }
}
