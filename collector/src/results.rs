//! Trace and ping results from agents, stored exactly as received.
//!
//! Each result is one row of `results`: the JSON text as it arrived, untouched, plus copies of
//! a few fields for indexing. Analysis never rewrites these rows; every derived table can be
//! rebuilt from them. A result is identified by its `result_id`: storing it again is a no-op.

use std::io::BufRead;

use nkpath_proto::{ResultRecord, TraceResult, decode};
use rusqlite::{Connection, TransactionBehavior, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::admission::{Admission, TimeWindow, check_size};
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

impl From<rusqlite::Error> for ImportError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Decodes one line: a [`ResultRecord`] when it has a `"kind"` field, else a bare
/// [`TraceResult`] (the agent's survey output).
pub fn decode_line(line: &str) -> Result<ResultRecord, String> {
    #[derive(serde::Deserialize)]
    struct KindProbe {
        kind: Option<serde::de::IgnoredAny>,
    }
    let probe: KindProbe = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let decoded = if probe.kind.is_some() {
        decode::<ResultRecord>(line)
    } else {
        decode::<TraceResult>(line).map(ResultRecord::Trace)
    };
    decoded.map_err(|e| e.to_string())
}

/// `time` as stored in `started_at` and `received_at`: RFC 3339 UTC, six fraction digits.
pub fn format_time(time: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    time.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .expect("formattable date")
}

/// Stores one decoded result with its JSON text as received. Returns `false` when a result
/// with the same id is already stored (it is left unchanged). Call within a transaction.
pub fn store_result(
    conn: &Connection,
    json_as_received: &str,
    record: &ResultRecord,
    received_at: OffsetDateTime,
) -> rusqlite::Result<bool> {
    let (kind, protocol, source) = match record {
        ResultRecord::Trace(t) => ("trace", t.protocol.to_string(), t.source),
        // Pings are ICMP echo.
        ResultRecord::Ping(p) => ("ping", "icmp".to_string(), p.source),
    };
    let changed = conn
        .prepare_cached(
            "INSERT INTO results (result_id, agent_id, round_id, target, source, protocol,
                                  started_at, received_at, json, kind)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (result_id) DO NOTHING",
        )?
        .execute(params![
            record.result_id().hyphenated().to_string(),
            record.agent_id(),
            record.round_id().hyphenated().to_string(),
            record.target().to_string(),
            source.to_string(),
            protocol,
            format_time(record.started_at()),
            format_time(received_at),
            json_as_received,
            kind,
        ])?;
    Ok(changed == 1)
}

impl Db {
    /// Imports a JSONL file of results (one [`TraceResult`] per line, or [`ResultRecord`]s
    /// with `"kind"`). Idempotent by result id. A line that fails decoding, or the rules an
    /// upload follows ([`crate::admission`], at their defaults, with the stored target), is
    /// reported with its line number and skipped; all good lines are stored in one
    /// transaction.
    pub fn import_results(&mut self, jsonl: impl BufRead) -> Result<ImportReport, ImportError> {
        let received_at = OffsetDateTime::now_utc();
        let tx = self
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            let admitted = admit(text, &admission);
            match admitted {
                Ok(record) => {
                    if store_result(&tx, text, &record, received_at)? {
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
    let since = since.map_or_else(String::new, format_time);
    let until = until.map_or_else(|| "~".to_owned(), format_time);
    let mut stmt = db.conn().prepare(
        "SELECT result_id, json FROM results
         WHERE kind = 'trace' AND started_at >= ?1 AND started_at <= ?2
         ORDER BY started_at, result_id",
    )?;
    let mut rows = stmt.query([since, until])?;
    let mut out = Vec::new();
    let now = OffsetDateTime::now_utc();
    while let Some(r) = rows.next()? {
        let (id, json): (String, String) = (r.get(0)?, r.get(1)?);
        match decode_line(&json) {
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
                    crate::report::iso(t.started_at)
                );
            }
            Ok(ResultRecord::Trace(t)) => out.push(t),
            Ok(ResultRecord::Ping(_)) => {}
            Err(e) => tracing::warn!(
                "stored result {id} skipped: it no longer decodes ({}); \
                 it was stored by an older version or by hand",
                crate::text::escape_control(&e)
            ),
        }
    }
    Ok(out)
}

/// A line decoded and checked against the rules of an upload, or why not.
fn admit(text: &str, admission: &Admission) -> Result<ResultRecord, String> {
    check_size(text).map_err(|e| e.to_string())?;
    let record = decode_line(text)?;
    admission.check(&record).map_err(|e| e.to_string())?;
    Ok(record)
}

/// Parses a stored `started_at`/`received_at`.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stored_times_sort_as_text() {
        let a = format_time(datetime!(2017-10-01 00:00:00 UTC));
        let b = format_time(datetime!(2017-10-01 00:00:00.5 UTC));
        let c = format_time(datetime!(2017-10-01 08:59:59 +09:00));
        assert_eq!(a, "2017-10-01T00:00:00.000000Z");
        assert!(a < b && c < a, "{a} {b} {c}");
        assert_eq!(parse_time(&b), Some(datetime!(2017-10-01 00:00:00.5 UTC)));
    }

    #[test]
    fn undecodable_lines_are_explained() {
        assert!(
            decode_line("not json")
                .unwrap_err()
                .contains("invalid JSON")
        );
        assert!(decode_line("{}").is_err());
    }
}
