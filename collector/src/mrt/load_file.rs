//! `bgp load`: one MRT file into the database; the records are turned into rows by
//! [`super::record_loader`].
//!
//! All or nothing, as readers see it, yet without holding the writer for the whole file: an
//! update file (minutes of updates) loads in one write transaction; a RIB dump (a full table
//! takes many seconds) commits in parts, leaving the write lock free for a moment between
//! them, so that agents' uploads are stored meanwhile. Until its last part commits, the
//! dump's file row is pending and readers look past it and its rows (see
//! [`crate::store::bgp::read`]); a load that fails goes with its rows; one cut off (a crash,
//! a kill) leaves a pending row that no reader sees and that the next load of the same dump
//! replaces.
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

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bgpkit_parser::BgpkitParser;
use bgpkit_parser::error::ParserError;
use indicatif::ProgressBar;

use super::collector_name::{UNKNOWN_COLLECTOR, derive_collector};
use super::error::LoadError;
use super::input::{self, Compression, TapState};
use super::record_loader::DEFAULT_HOLD_LOCK;
use super::record_loader::{Committed, RecordLoader};
use super::summary::{FileKind, FileSummary, LoadOutcome};
use crate::settings::{Target, resolve_target};
use crate::store::{Db, DbError, WriteTx};

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
    /// How long a RIB dump's load holds the write lock before it commits a part and lets
    /// other writers (agents' uploads) in; `None`: one second.
    pub hold_lock: Option<std::time::Duration>,
}

/// Loads one MRT file (see the module docs). `progress`, if given, is advanced in file bytes.
pub fn load_file(
    db: &mut Db,
    path: &Path,
    options: &LoadOptions,
    progress: Option<&ProgressBar>,
) -> Result<LoadOutcome, LoadError> {
    let committed = Cell::new(Committed::Nothing);
    let outcome = load(db, path, options, progress, &committed);
    let loaded = matches!(outcome, Ok(LoadOutcome::Loaded(_)));
    if let (false, Committed::Parts(file_id, marks)) = (loaded, committed.get()) {
        // The parts committed before the failure go; failing that, they stay invisible
        // and the next load of the dump replaces them.
        if let Err(e) = db.write().and_then(|tx| {
            tx.discard_failed_load(file_id, marks)?;
            tx.commit()
        }) {
            tracing::warn!(file = %path.display(), "cannot remove the parts of a failed load: {e}");
        }
    }
    outcome
}

fn load(
    db: &mut Db,
    path: &Path,
    options: &LoadOptions,
    progress: Option<&ProgressBar>,
    committed: &Cell<Committed>,
) -> Result<LoadOutcome, LoadError> {
    let started = Instant::now();
    let io_err = |source| LoadError::Io {
        file: path.to_path_buf(),
        source,
    };
    let db_err = |source: DbError| LoadError::Db {
        file: path.to_path_buf(),
        source,
    };
    let (sha256, file_bytes) = input::sha256_file(path).map_err(io_err)?;
    if let Some(loaded_as) = db.mrt_file_with_sha256(&sha256).map_err(db_err)? {
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

    let tx = db.write().map_err(db_err)?;
    let target = resolve_target(&tx, options.target.as_ref())?;
    // What this load adds lies above these, for a failed load to take away.
    let marks = tx.id_marks().map_err(db_err)?;
    let collector_id = tx.collector_id(&collector).map_err(db_err)?;
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
    let mut loader =
        RecordLoader::new(&tx, path, collector_id, target, summary, (committed, marks))
            .map_err(db_err)?;
    loader.hold_lock = options.hold_lock.unwrap_or(DEFAULT_HOLD_LOCK);
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
    if let Some(loaded_as) = tx.mrt_file_with_mrt_sha256(&mrt_sha256).map_err(db_err)? {
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
            time: nkpath_proto::timestamp::display_unix(
                loader.summary.dump_time.unwrap_or_default(),
            ),
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
    if summary.kind == FileKind::Updates.as_str() {
        supersede_live_rows(&tx, collector_id, &mut summary).map_err(db_err)?;
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

/// An update file is the authority for its collector over its period: the provisional rows
/// RIS Live delivered for that collector and period go, in this file's transaction.
fn supersede_live_rows(
    tx: &WriteTx<'_>,
    collector_id: i64,
    summary: &mut FileSummary,
) -> Result<(), DbError> {
    let (from, until) = super::slot::update_file_period(
        &summary.name,
        &summary.collector,
        summary.first_time,
        summary.last_time,
    );
    tx.set_update_period(summary.file_id, from, until)?;
    let removed = tx.supersede_provisional(collector_id, from, until)?;
    summary.period = Some((from, until));
    summary.provisional_replaced = removed.updates + removed.state_changes;
    Ok(())
}

/// An update file adds to the BGP state only over a base (see [`crate::bgp::state`]): a RIB
/// dump of its collector at most the maximum replay age before its updates, or sessions seen
/// going to Established in it. Without either it adds nothing yet: say so.
fn no_base_warning(
    tx: &WriteTx<'_>,
    collector_id: i64,
    s: &FileSummary,
) -> Result<Option<String>, DbError> {
    let max_age = crate::bgp::state::MAX_REPLAY_AGE_S;
    let dump = tx.has_rib_dump_within(collector_id, s.first_time - max_age, s.last_time)?;
    let established = tx.file_has_session_start(s.file_id)?;
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
