//! Trace and ping results: importing nkpath JSON lines, and reading stored traces back for
//! analysis.
//!
//! Each result is one row of `results`, in the one stored shape of [`crate::store::results`]:
//! its `ResultRecord` as this build serialises it, the fields this build does not know kept
//! beside it. Analysis never rewrites these rows; every derived table can be rebuilt from
//! them. A result is identified by its `result_id`: storing it again is a no-op.

use std::io::BufRead;

use nkpath_proto::{ResultRecord, TraceResult, decode, timestamp};
use time::OffsetDateTime;

use crate::admission::{Admission, TimeWindow, check_size};
use crate::store::results::{Kind, StoredRecord};
use crate::store::{Db, DbError};
/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Non-blank lines read.
    pub lines: usize,
    /// Results stored by this import.
    pub stored: usize,
    /// Results whose id was already stored (left as they were).
    pub already_stored: usize,
    /// Lines that could not be decoded: not stored.
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
    /// with `"kind"`). Idempotent by result id. A line that fails decoding, or the rules an
    /// upload follows ([`crate::admission`], at their defaults, with the stored target), is
    /// reported with its line number and skipped; all good lines are stored in one
    /// transaction.
    pub fn import_results(&mut self, jsonl: impl BufRead) -> Result<ImportReport, ImportError> {
        let received_at = OffsetDateTime::now_utc();
        let tx = self.write()?;
        let targets = crate::settings::stored_target(&tx)?
            .unwrap_or_default()
            .prefixes;
        let admission = Admission {
            window: TimeWindow::default(),
            targets,
            now: received_at,
        };
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
                Ok(stored) => {
                    if tx.insert_result(&stored, received_at)? {
                        report.stored += 1;
                    } else {
                        report.already_stored += 1;
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

/// The stored traces started in `since..=until` (either bound open when `None`), oldest
/// first (then by id): what reports and exports analyse. A stored row that no longer
/// decodes, or that started in the future (beyond the admission rule's tolerance, so a clock
/// error: [`crate::admission`]), is skipped with a warning naming it, never analysed: one
/// such row must not hold every report back.
pub fn stored_traces(
    db: &Db,
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> Result<Vec<TraceResult>, DbError> {
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    for row in db.stored_results(Kind::Trace, since, until)? {
        let id = &row.result_id;
        match decode::<ResultRecord>(&row.json) {
            Ok(ResultRecord::Trace(t))
                if crate::admission::is_future(
                    t.started_at,
                    now,
                    crate::admission::DEFAULT_MAX_AHEAD,
                ) =>
            {
                tracing::warn!(
                    "stored result {id} skipped: it started in the future ({}); \
                     its agent's clock was wrong",
                    timestamp::display(t.started_at)
                );
            }
            Ok(ResultRecord::Trace(t)) => out.push(t),
            Ok(ResultRecord::Ping(_)) => {}
            Err(e) => tracing::warn!(
                "stored result {id} skipped: it no longer decodes ({}); \
                 it was stored by an older version or by hand",
                crate::text::escape_control(&e.to_string())
            ),
        }
    }
    Ok(out)
}

/// A line decoded, normalised to the stored shape and checked against the rules of an
/// upload, or why not.
fn admit(text: &str, admission: &Admission) -> Result<StoredRecord, String> {
    check_size(text).map_err(|e| e.to_string())?;
    let stored = StoredRecord::from_line(text).map_err(|e| e.to_string())?;
    admission
        .check(stored.record())
        .map_err(|e| e.to_string())?;
    Ok(stored)
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
