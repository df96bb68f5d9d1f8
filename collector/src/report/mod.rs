//! Reports over analysed traces (see [`crate::analysis`] for every definition): the upstream
//! shares of the data plane beside the announced upstreams, mismatches, changes over time
//! and single paths. Each report is a list of [`Table`]s, printed as aligned text for a
//! terminal or as JSON or CSV for scripts.

pub mod bins;
pub mod changes;
pub mod cli;
pub mod html;
pub mod mismatches;
pub mod path;
pub mod reachability;
pub mod timeline;
pub mod upstreams;

use std::fmt::Write as _;

use nkpath_proto::timestamp;
use serde::Serialize;
use time::OffsetDateTime;

use crate::bgp::timeline::dumps_in_use;
use crate::store::Db;
use crate::store::bgp::RibDump;
use crate::text::escape_control;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// One JSON document: `{"format_version", "tables": [{"title", "notes", "columns",
    /// "rows": [{...}]}]}` (see [`JSON_FORMAT_VERSION`]).
    Json,
    /// CSV: each table preceded by a `# title` line, tables separated by a blank line.
    Csv,
}

/// The version of the JSON report format, written as `"format_version"` at the top of every
/// JSON report so that a consumer notices when the shape of its values changes.
///
/// - 1 (unversioned): shares, visibilities and ASes written as display text
///   (`"1/1 (100.0%)"`, `"AS4837"`).
/// - 2: typed values: a share is `{"n", "of", "pct"}`, an AS a number, a list of ASes an
///   array of numbers, a hop's class an object; every value also has its text in the table
///   and CSV output.
pub const JSON_FORMAT_VERSION: u32 = 2;

/// One value of a table: the text printed for a terminal and written to CSV, and, for a
/// typed value, what JSON writes instead of that text.
///
/// A cell dereferences to its text, so code that reads a rendered table (tests, scripts)
/// compares and parses cells as strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    text: String,
    value: Value,
}

/// What JSON writes for a [`Cell`].
#[derive(Debug, Clone, PartialEq)]
enum Value {
    /// Text whose JSON type the column decides: a column of numbers (or missing values)
    /// becomes numbers, see [`numeric_columns`]. What `Table::push` stores.
    Text,
    /// Text, written as a JSON string whatever the column holds.
    String,
    /// A JSON number, string, array or object, written as is.
    Json(serde_json::Value),
}

impl Cell {
    /// Text; in JSON a number when its whole column holds numbers (the rule of plain
    /// [`Table::push`] rows).
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            value: Value::Text,
        }
    }

    /// Text that stays a JSON string even when it looks like a number (a name, an id).
    pub fn name(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            value: Value::String,
        }
    }

    /// A missing value: `-` in text, `null` in JSON.
    pub fn missing() -> Self {
        Self {
            text: "-".into(),
            value: Value::Json(serde_json::Value::Null),
        }
    }

    /// A count or other integer.
    pub fn int(n: impl Into<i64>) -> Self {
        let n: i64 = n.into();
        Self {
            text: n.to_string(),
            value: Value::Json(n.into()),
        }
    }

    /// A count held as `usize`.
    pub fn count(n: usize) -> Self {
        Self {
            text: n.to_string(),
            value: Value::Json(n.into()),
        }
    }

    /// A decimal printed with `places` decimals; JSON writes the same rounded value (`null`
    /// when it is not finite).
    pub fn decimal(value: f64, places: usize) -> Self {
        let text = format!("{value:.places$}");
        let json = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number);
        Self {
            text,
            value: Value::Json(json),
        }
    }

    /// `true` or `false`.
    pub fn bool(value: bool) -> Self {
        Self {
            text: value.to_string(),
            value: Value::Json(value.into()),
        }
    }

    /// `n` of `of`: text `n/of (p%)` ([`share`]), JSON `{"n": n, "of": of, "pct": p}` with
    /// `pct` rounded to one decimal as printed (`null` when `of` is 0).
    pub fn share(n: usize, of: usize) -> Self {
        let pct = share_pct(n, of)
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number);
        Self {
            text: share(n, of),
            value: Value::Json(serde_json::json!({ "n": n, "of": of, "pct": pct })),
        }
    }

    /// An AS: text `AS4837` (`unknown` for `None`), JSON the number (`null`).
    pub fn asn(asn: Option<u32>) -> Self {
        Self {
            text: as_label(asn),
            value: Value::Json(asn.map_or(serde_json::Value::Null, Into::into)),
        }
    }

    /// A set of ASes: text `AS4837 AS20485`, JSON `[4837, 20485]`.
    pub fn asns(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        Self {
            text: asns
                .iter()
                .map(|a| format!("AS{a}"))
                .collect::<Vec<_>>()
                .join(" "),
            value: Value::Json(asns.into()),
        }
    }

    /// Text with a typed JSON value of the caller's making (an object describing a hop's
    /// class, say).
    pub fn with_json(text: impl Into<String>, json: serde_json::Value) -> Self {
        Self {
            text: text.into(),
            value: Value::Json(json),
        }
    }

    /// The text printed for a terminal and written to CSV.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value JSON writes; `numeric` says whether a plain text cell's column holds
    /// numbers.
    fn to_json(&self, numeric: bool) -> serde_json::Value {
        match &self.value {
            Value::Json(v) => v.clone(),
            Value::String => serde_json::Value::String(self.text.clone()),
            Value::Text => json_cell(&self.text, numeric),
        }
    }
}

impl std::ops::Deref for Cell {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for Cell {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::text(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::text(text)
    }
}

impl PartialEq<str> for Cell {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Cell {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl PartialEq<String> for Cell {
    fn eq(&self, other: &String) -> bool {
        &self.text == other
    }
}

/// One table of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// What the table shows, including what it counts.
    pub title: String,
    /// Lines printed under the title (definitions, periods).
    pub notes: Vec<String>,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, one value per column.
    #[serde(skip)]
    pub rows: Vec<Vec<Cell>>,
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

    /// Adds a row of text cells ([`Cell::text`]: JSON decides numbers by column).
    pub fn push(&mut self, row: Vec<String>) {
        self.push_cells(row.into_iter().map(Cell::from).collect());
    }

    /// Adds a row of cells, typed or not.
    pub fn push_cells(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The text of one column's values.
    pub fn column(&self, name: &str) -> Vec<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        self.rows.iter().map(|r| r[i].as_str()).collect()
    }
}

/// Says in `tables` which truncated RIB dumps (loaded with `--accept-truncated`) the BGP
/// states of `[from, to]` rest on: a note on the first table, and a table naming each file, so
/// that text, JSON and CSV all carry it. Leaves `tables` as they are when every dump in use is
/// complete.
pub fn flag_truncated_dumps(
    db: &Db,
    tables: &mut Vec<Table>,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<(), ReportError> {
    let truncated: Vec<RibDump> = dumps_in_use(db, from, to)?
        .into_iter()
        .filter(|d| d.truncated)
        .collect();
    if truncated.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = truncated.iter().map(|d| d.file.as_str()).collect();
    let note = format!(
        "BGP state from a truncated RIB dump (loaded with --accept-truncated): {}; its routes \
         after the cut are missing, so hop mappings and announced upstreams may be incomplete",
        names.join(", ")
    );
    let mut files = Table::new(
        "Truncated MRT files in use: RIB dumps cut short, whose routes after the cut are \
         missing from the BGP state",
        &["file", "collector", "dump_time"],
    );
    for d in &truncated {
        files.push_cells(vec![
            Cell::name(&d.file),
            Cell::name(&d.collector),
            Cell::name(timestamp::display_unix(d.time)),
        ]);
    }
    if let Some(first) = tables.first_mut() {
        first.notes.push(note);
    }
    tables.push(files);
    Ok(())
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
    /// The database could not be read.
    #[error(transparent)]
    Db(#[from] crate::store::DbError),
    /// The agents could not be read.
    #[error(transparent)]
    Agents(#[from] crate::agents::AgentError),
    /// The stored results could not be read.
    #[error(transparent)]
    Results(#[from] crate::results::ReadTracesError),
    /// The time bins asked for do not fit the period.
    #[error("{0}")]
    Bins(String),
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
                    w.write_record(row.iter().map(Cell::as_str))?;
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
                                .zip(r.iter().zip(&numeric).map(|(v, n)| v.to_json(*n)))
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
            let report = serde_json::json!({
                "format_version": JSON_FORMAT_VERSION,
                "tables": tables,
            });
            Ok(serde_json::to_string_pretty(&report)? + "\n")
        }
    }
}

/// Columns that hold names even when every value looks like a number (an agent called
/// `7`, a group that is a year).
const TEXT_COLUMNS: [&str; 6] = ["group", "agent", "agent_id", "target", "prefix", "source"];

/// Which columns of `t` write their plain text cells ([`Cell::text`]) as numbers in JSON:
/// every such value is an integer or a decimal, or missing (`-` or empty, written as null).
/// Typed cells are written as their type says and do not take part.
fn numeric_columns(t: &Table) -> Vec<bool> {
    (0..t.columns.len())
        .map(|i| {
            let plain = || {
                t.rows
                    .iter()
                    .map(|r| &r[i])
                    .filter(|c| c.value == Value::Text)
            };
            !TEXT_COLUMNS.contains(&t.columns[i].as_str())
                && plain().any(|c| json_number(c).is_some())
                && plain().all(|c| is_missing(c) || json_number(c).is_some())
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
    fn escape_all<C: AsRef<str>>(cells: &[C]) -> Vec<String> {
        cells
            .iter()
            .map(|c| escape_control(c.as_ref()).into_owned())
            .collect()
    }
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
    match share_pct(n, d) {
        Some(pct) => format!("{n}/{d} ({pct:.1}%)"),
        None => format!("{n}/{d}"),
    }
}

/// `n` of `d` in percent, rounded to one decimal as [`share`] prints it; `None` for `d` = 0.
fn share_pct(n: usize, d: usize) -> Option<f64> {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts of traces and peers are far below 2^52"
    )]
    let pct = (d > 0).then(|| 100.0 * n as f64 / d as f64)?;
    format!("{pct:.1}").parse().ok()
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
        assert_eq!(json["format_version"], JSON_FORMAT_VERSION);
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

    /// Issue 19: shares, visibilities and ASes are numbers in JSON, their text elsewhere.
    #[test]
    fn typed_cells_are_numbers_in_json_and_text_elsewhere() {
        let mut t = Table::new(
            "T",
            &["entry_as", "share", "min", "upstreams", "up", "name"],
        );
        t.push_cells(vec![
            Cell::asn(Some(4837)),
            Cell::share(1, 1),
            Cell::share(0, 0),
            Cell::asns([4837, 20485]),
            Cell::bool(true),
            Cell::name("7"),
        ]);
        t.push_cells(vec![
            Cell::asn(None),
            Cell::share(1, 3),
            Cell::missing(),
            Cell::asns([]),
            Cell::decimal(2.0 / 3.0, 3),
            Cell::text("8"),
        ]);
        let json: serde_json::Value =
            serde_json::from_str(&render(std::slice::from_ref(&t), Format::Json).unwrap()).unwrap();
        assert_eq!(json["format_version"], 2);
        let rows = &json["tables"][0]["rows"];
        assert_eq!(rows[0]["entry_as"], 4837);
        assert!(rows[1]["entry_as"].is_null());
        assert_eq!(
            rows[0]["share"],
            serde_json::json!({"n": 1, "of": 1, "pct": 100.0})
        );
        assert_eq!(
            rows[1]["share"],
            serde_json::json!({"n": 1, "of": 3, "pct": 33.3})
        );
        assert_eq!(
            rows[0]["min"],
            serde_json::json!({"n": 0, "of": 0, "pct": null})
        );
        assert!(rows[1]["min"].is_null());
        assert_eq!(rows[0]["upstreams"], serde_json::json!([4837, 20485]));
        assert_eq!(rows[0]["up"], true);
        assert_eq!(rows[1]["up"], 0.667);
        // A name stays text; a plain text cell keeps the column rule of `Table::push`.
        assert_eq!(rows[0]["name"], "7");
        assert_eq!(rows[1]["name"], 8);

        let text = render(std::slice::from_ref(&t), Format::Table).unwrap();
        for shown in [
            "AS4837 ",
            "1/1 (100.0%)",
            "AS4837 AS20485",
            "unknown ",
            "1/3 (33.3%)",
        ] {
            assert!(text.contains(shown), "{shown}: {text}");
        }
        let csv = render(&[t], Format::Csv).unwrap();
        assert!(
            csv.contains("AS4837,1/1 (100.0%),0/0,AS4837 AS20485,true,7\n"),
            "{csv}"
        );
        assert!(csv.contains("unknown,1/3 (33.3%),-,,0.667,8\n"), "{csv}");
    }
}
