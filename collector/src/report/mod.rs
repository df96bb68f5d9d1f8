//! Reports over analysed traces (see [`crate::analysis`] for every definition): the upstream
//! shares of the data plane beside the announced upstreams, mismatches, changes over time
//! and single paths. Each report is a list of [`Table`]s, printed as aligned text for a
//! terminal or as JSON or CSV for scripts.

pub mod changes;
pub mod cli;
pub mod mismatches;
pub mod path;
pub mod upstreams;

use std::fmt::Write as _;

use serde::Serialize;

use crate::text::escape_control;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// One JSON document: `{"tables": [{"title", "notes", "columns", "rows": [{...}]}]}`.
    Json,
    /// CSV: each table preceded by a `# title` line, tables separated by a blank line.
    Csv,
}

/// One table of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// What the table shows, including what it counts.
    pub title: String,
    /// Lines printed under the title (definitions, periods).
    pub notes: Vec<String>,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    #[serde(skip)]
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Self {
        Self {
            title: title.into(),
            notes: Vec::new(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The values of one column.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }
}

/// Why a report could not be built or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The BGP data could not be read.
    #[error("reading BGP data: {0}")]
    Bgp(#[from] crate::bgp::BgpError),
    /// The target settings could not be read.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// A time the BGP data names cannot be represented (a corrupt stored row).
    #[error("BGP data names time {0} (UNIX seconds), out of range: the database is damaged")]
    TimeOutOfRange(i64),
    /// CSV could not be written.
    #[error("writing CSV: {0}")]
    Csv(String),
    /// JSON could not be written.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<csv::Error> for ReportError {
    fn from(e: csv::Error) -> Self {
        Self::Csv(e.to_string())
    }
}

/// Renders tables in a format.
pub fn render(tables: &[Table], format: Format) -> Result<String, ReportError> {
    match format {
        Format::Table => Ok(render_text(tables)),
        Format::Csv => {
            let mut out = Vec::new();
            for (i, t) in tables.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                out.extend_from_slice(format!("# {}\n", t.title).as_bytes());
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(&t.columns)?;
                for row in &t.rows {
                    w.write_record(row)?;
                }
                out.extend(
                    w.into_inner()
                        .map_err(|e| ReportError::Csv(e.to_string()))?,
                );
            }
            // Only `str` cells and ASCII punctuation were written.
            Ok(String::from_utf8(out).expect("CSV of UTF-8 cells is UTF-8"))
        }
        Format::Json => {
            let tables: Vec<serde_json::Value> = tables
                .iter()
                .map(|t| {
                    let numeric = numeric_columns(t);
                    let rows: Vec<serde_json::Map<String, serde_json::Value>> = t
                        .rows
                        .iter()
                        .map(|r| {
                            t.columns
                                .iter()
                                .cloned()
                                .zip(r.iter().enumerate().map(|(i, v)| json_cell(v, numeric[i])))
                                .collect()
                        })
                        .collect();
                    serde_json::json!({
                        "title": t.title,
                        "notes": t.notes,
                        "columns": t.columns,
                        "rows": rows,
                    })
                })
                .collect();
            Ok(serde_json::to_string_pretty(&serde_json::json!({ "tables": tables }))? + "\n")
        }
    }
}

/// Columns that hold names even when every value looks like a number (an agent called
/// `7`, a group that is a year).
const TEXT_COLUMNS: [&str; 6] = ["group", "agent", "agent_id", "target", "prefix", "source"];

/// Which columns of `t` are numbers in JSON: every value is an integer or a decimal, or
/// missing (`-` or empty, written as null).
fn numeric_columns(t: &Table) -> Vec<bool> {
    (0..t.columns.len())
        .map(|i| {
            !TEXT_COLUMNS.contains(&t.columns[i].as_str())
                && t.rows.iter().any(|r| json_number(&r[i]).is_some())
                && t.rows
                    .iter()
                    .all(|r| is_missing(&r[i]) || json_number(&r[i]).is_some())
        })
        .collect()
}

fn is_missing(v: &str) -> bool {
    v.is_empty() || v == "-"
}

fn json_number(v: &str) -> Option<serde_json::Number> {
    if let Ok(i) = v.parse::<i64>() {
        return Some(i.into());
    }
    v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && v.contains('.'))
        .and_then(serde_json::Number::from_f64)
}

/// A cell as JSON: a number in a numeric column (null when missing), else the text.
fn json_cell(v: &str, numeric: bool) -> serde_json::Value {
    if numeric {
        return json_number(v).map_or(serde_json::Value::Null, serde_json::Value::Number);
    }
    serde_json::Value::String(v.to_owned())
}

/// Aligned text for a terminal: every piece passes [`escape_control`], since names in it
/// come from agents and public files.
fn render_text(tables: &[Table]) -> String {
    let escape_all = |cells: &[String]| -> Vec<String> {
        cells
            .iter()
            .map(|c| escape_control(c).into_owned())
            .collect()
    };
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}", escape_control(&t.title));
        for note in &t.notes {
            let _ = writeln!(out, "  {}", escape_control(note));
        }
        if t.rows.is_empty() {
            out.push_str("  (none)\n");
            continue;
        }
        let columns = escape_all(&t.columns);
        let rows: Vec<Vec<String>> = t.rows.iter().map(|r| escape_all(r)).collect();
        let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
        for row in &rows {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(v.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (c, w) in cells.iter().zip(&widths) {
                let _ = write!(s, " {c:<w$}");
            }
            s.trim_end().to_owned() + "\n"
        };
        out.push_str(&line(&columns));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for row in &rows {
            out.push_str(&line(row));
        }
    }
    out
}

/// `AS4837` or `unknown`.
pub fn as_label(asn: Option<u32>) -> String {
    asn.map_or_else(|| "unknown".to_owned(), |a| format!("AS{a}"))
}

/// `n/d (p%)`.
pub fn share(n: usize, d: usize) -> String {
    if d == 0 {
        format!("{n}/{d}")
    } else {
        format!("{n}/{d} ({:.1}%)", 100.0 * n as f64 / d as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut t = Table::new("T, counted", &["a", "b"]);
        t.push(vec!["1".into(), "x,\"y\"".into()]);
        let csv = render(std::slice::from_ref(&t), Format::Csv).unwrap();
        assert_eq!(csv, "# T, counted\na,b\n1,\"x,\"\"y\"\"\"\n");
        let json: serde_json::Value =
            serde_json::from_str(&render(std::slice::from_ref(&t), Format::Json).unwrap()).unwrap();
        assert_eq!(json["tables"][0]["rows"][0]["b"], "x,\"y\"");
        assert_eq!(json["tables"][0]["rows"][0]["a"], 1, "numbers are numbers");
        let text = render(&[t], Format::Table).unwrap();
        assert!(text.contains("  a b\n  - -----\n  1 x,\"y\"\n"), "{text}");
        assert_eq!(share(1, 4), "1/4 (25.0%)");
    }

    #[test]
    fn json_numbers_are_numbers_and_names_stay_text() {
        let mut t = Table::new("T", &["group", "n", "mean", "share", "maybe"]);
        t.push(vec![
            "2017".into(),
            "3".into(),
            "12.5".into(),
            "1/4 (25.0%)".into(),
            "-".into(),
        ]);
        t.push(vec![
            "2018".into(),
            "0".into(),
            "-".into(),
            "0/0".into(),
            "4".into(),
        ]);
        let json: serde_json::Value =
            serde_json::from_str(&render(&[t], Format::Json).unwrap()).unwrap();
        let rows = &json["tables"][0]["rows"];
        assert_eq!(rows[0]["group"], "2017");
        assert_eq!(rows[0]["n"], 3);
        assert_eq!(rows[0]["mean"], 12.5);
        assert!(rows[1]["mean"].is_null());
        assert_eq!(rows[0]["share"], "1/4 (25.0%)");
        assert!(rows[0]["maybe"].is_null());
        assert_eq!(rows[1]["maybe"], 4);
    }
}
