//! Trace and ping results: importing nkpath JSON lines, and reading stored traces back for
//! analysis.
//!
//! Each result is one row of `results`, in the one stored shape of [`crate::store::results`]:
//! its `ResultRecord` as this build serialises it, the fields this build does not know kept
//! beside it. Analysis never rewrites these rows; every derived table can be rebuilt from
//! them. A result is identified by its `result_id`: storing it again is a no-op.
//!
//! A stored trace whose target lies outside the target prefixes is *context* (an import kept
//! it with `--keep-outside`, or an older version stored it): [`stored_traces`], what reports
//! and exports analyse, leaves it out, so a trace that never went toward the target network
//! is never counted as an entry into it; [`stored_traces_in`] reads it when asked.

use std::io::BufRead;

use nkpath_proto::{MultipathResult, ResultRecord, TraceResult, decode, timestamp};
use time::OffsetDateTime;

use crate::admission::{Admission, OutsideTargets, Placement, TimeWindow, check_size};
use crate::settings::SettingsError;
use crate::store::results::{Kind, StoredRecord};
use crate::store::{Db, DbError};

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Non-blank lines read.
    pub lines: usize,
    /// Results toward the target prefixes stored by this import.
    pub stored: usize,
    /// Results outside the target prefixes stored as context (`--keep-outside`).
    pub stored_context: usize,
    /// Results outside the target prefixes refused (without `--keep-outside`).
    pub refused_outside: usize,
    /// Results whose id was already stored (left as they were).
    pub already_stored: usize,
    /// Lines that could not be decoded, or that the time rule refuses: not stored.
    pub rejected: Vec<RejectedLine>,
}

/// A line of a JSONL file that failed decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// Why, naming the field at fault when there is one.
    pub error: String,
}

/// Why an import failed as a whole (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input could not be read.
    #[error("cannot read line {line}: {source}")]
    Read {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A database error; the transaction was rolled back.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored target cannot be read.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
}

impl Db {
    /// Imports a JSONL file of results (one [`TraceResult`] per line, or [`ResultRecord`]s
    /// with `"kind"`), refusing those outside the target prefixes: see
    /// [`Db::import_results_with`].
    pub fn import_results(&mut self, jsonl: impl BufRead) -> Result<ImportReport, ImportError> {
        self.import_results_with(jsonl, OutsideTargets::Refuse)
    }

    /// Imports a JSONL file of results. Idempotent by result id. A line that fails decoding
    /// or the time rule ([`crate::admission`], at its defaults) is reported with its line
    /// number and skipped; a result outside the stored target prefixes is counted, and
    /// refused or stored as context as `outside` says. All good lines are stored in one
    /// transaction.
    pub fn import_results_with(
        &mut self,
        jsonl: impl BufRead,
        outside: OutsideTargets,
    ) -> Result<ImportReport, ImportError> {
        let received_at = OffsetDateTime::now_utc();
        let tx = self.write()?;
        let admission = import_admission(&tx, received_at)?;
        let mut report = ImportReport::default();
        for (index, line) in jsonl.lines().enumerate() {
            let number = index + 1;
            let line = line.map_err(|source| ImportError::Read {
                line: number,
                source,
            })?;
            let text = line.strip_suffix('\r').unwrap_or(&line);
            if text.trim().is_empty() {
                continue;
            }
            report.lines += 1;
            match admit(text, &admission) {
                Ok((_, Placement::Outside)) if outside == OutsideTargets::Refuse => {
                    report.refused_outside += 1;
                }
                Ok((stored, placement)) => {
                    if !tx.insert_result(&stored, received_at)? {
                        report.already_stored += 1;
                    } else if placement == Placement::Target {
                        report.stored += 1;
                    } else {
                        report.stored_context += 1;
                    }
                }
                Err(error) => report.rejected.push(RejectedLine {
                    line: number,
                    error,
                }),
            }
        }
        tx.commit()?;
        Ok(report)
    }
}

/// The rules every import applies ([`Admission::place`]): the default time window, the
/// stored target prefixes (the default target when none is stored).
pub fn import_admission(
    store: &impl crate::store::settings::SettingsStore,
    now: OffsetDateTime,
) -> Result<Admission, SettingsError> {
    let targets = crate::settings::stored_target(store)?
        .unwrap_or_default()
        .prefixes;
    Ok(Admission {
        window: TimeWindow::default(),
        targets,
        now,
    })
}

/// Which stored traces a reader wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceScope {
    /// Only traces toward the target prefixes: what reports and exports count.
    Targets,
    /// Those and the context kept outside the target prefixes.
    WithContext,
}

/// Why stored traces could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadTracesError {
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored target cannot be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// The stored traces toward the target prefixes started in `since..=until` (either bound
/// open when `None`), oldest first (then by id): what reports and exports analyse. Context
/// (traces outside the target prefixes) is left out: see [`stored_traces_in`].
pub fn stored_traces(
    db: &Db,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<TraceResult>, ReadTracesError> {
    stored_traces_in(db, since, until, TraceScope::Targets)
}

/// The stored traces of `scope` started in `since..=until`, oldest first (then by id). A
/// stored row that no longer decodes, or that started in the future (beyond the admission
/// rule's tolerance, so a clock error: [`crate::admission`]), is skipped with a warning
/// naming it, never analysed: one such row must not hold every report back.
pub fn stored_traces_in(
    db: &Db,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
    scope: TraceScope,
) -> Result<Vec<TraceResult>, ReadTracesError> {
    read_stored(
        db,
        Kind::Trace,
        (since, until),
        |record, check| match record {
            ResultRecord::Trace(t)
                if check.started_in_future(t.started_at)
                    || (scope == TraceScope::Targets && !check.in_targets(t.target)) =>
            {
                None
            }
            ResultRecord::Trace(t) => Some(t),
            _ => None,
        },
    )
}

/// The stored liveness pings toward the target prefixes started in `since..=until`, oldest
/// first: what `report reachability` counts beside the traces. A row that no longer decodes
/// is skipped with a warning.
pub fn stored_pings(
    db: &Db,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<nkpath_proto::PingResult>, ReadTracesError> {
    read_stored(
        db,
        Kind::Ping,
        (since, until),
        |record, check| match record {
            ResultRecord::Ping(p) if check.in_targets(p.target) => Some(p),
            _ => None,
        },
    )
}

/// The stored multipath traces toward the target prefixes started in `since..=until`, oldest
/// first (then by id), by the rules of [`stored_traces`]: context outside the target prefixes
/// left out, rows that no longer decode or started in the future skipped with a warning.
pub fn stored_multipath(
    db: &Db,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<MultipathResult>, ReadTracesError> {
    read_stored(
        db,
        Kind::Multipath,
        (since, until),
        |record, check| match record {
            ResultRecord::Multipath(m)
                if !check.started_in_future(m.started_at) && check.in_targets(m.target) =>
            {
                Some(m)
            }
            _ => None,
        },
    )
}

/// What a reader of stored results may check a decoded row against: the import rules'
/// target prefixes and the admission rule's clock tolerance, at one `now`.
struct RowCheck<'a> {
    rules: &'a Admission,
    now: OffsetDateTime,
    id: &'a str,
}

impl RowCheck<'_> {
    fn in_targets(&self, target: std::net::Ipv4Addr) -> bool {
        self.rules.in_targets(target)
    }

    /// True (with a warning naming the row) when it started in the future.
    fn started_in_future(&self, started_at: OffsetDateTime) -> bool {
        let future =
            crate::admission::is_future(started_at, self.now, crate::admission::DEFAULT_MAX_AHEAD);
        if future {
            tracing::warn!(
                "stored result {} skipped: it started in the future ({}); \
                 its agent's clock was wrong",
                self.id,
                timestamp::display(started_at)
            );
        }
        future
    }
}

/// The stored rows of `kind` in the period, oldest first (then by id), decoded and kept
/// where `keep` says so; a row that no longer decodes is skipped with a warning naming it.
fn read_stored<T>(
    db: &Db,
    kind: Kind,
    (since, until): (Option<OffsetDateTime>, Option<OffsetDateTime>),
    mut keep: impl FnMut(ResultRecord, &RowCheck<'_>) -> Option<T>,
) -> Result<Vec<T>, ReadTracesError> {
    let now = OffsetDateTime::now_utc();
    let rules = import_admission(db, now)?;
    let mut out = Vec::new();
    for row in db.stored_results(kind, since, until)? {
        match decode::<ResultRecord>(&row.json) {
            Ok(record) => {
                let check = RowCheck {
                    rules: &rules,
                    now,
                    id: &row.result_id,
                };
                out.extend(keep(record, &check));
            }
            Err(e) => tracing::warn!(
                "stored result {} skipped: it no longer decodes ({}); \
                 it was stored by an older version or by hand",
                row.result_id,
                crate::text::escape_control(&e.to_string())
            ),
        }
    }
    Ok(out)
}

/// A line decoded, normalised to the stored shape and placed by the rules of an import, or
/// why not.
fn admit(text: &str, admission: &Admission) -> Result<(StoredRecord, Placement), String> {
    check_size(text).map_err(|e| e.to_string())?;
    let stored = StoredRecord::from_line(text).map_err(|e| e.to_string())?;
    let placement = admission
        .place(stored.record())
        .map_err(|e| e.to_string())?;
    Ok((stored, placement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_lines_are_explained() {
        let admission = Admission {
            window: TimeWindow::default(),
            targets: Vec::new(),
            now: OffsetDateTime::now_utc(),
        };
        assert!(
            admit("not json", &admission)
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(admit("{}", &admission).is_err());
    }
}
