//! Text for terminals: every string the collector prints as text (report tables,
//! `agent list`, error and skip messages) passes [`escape_control`], because much of it comes
//! from agents and public files (agent versions, PTR names, IXP names) and a terminal obeys
//! the control sequences in what it prints.
//!
//! Per output format:
//!
//! | output | control characters |
//! |---|---|
//! | report `--format table`, `agent list`, messages on stderr | escaped, Rust style: `\u{1b}`, `\t`, `\n` |
//! | report `--format json`, `export.json` | kept; JSON writes them as `\u001b` escapes itself |
//! | report `--format csv`, export CSV files | kept exactly (data for programs; quoted as CSV requires) |
//! | log lines (tracing) | escaped by tracing-subscriber; no colours when stderr is not a terminal |

pub use nkpath_proto::text::{escape_control, escape_html};
