//! What can be wrong with a configuration file, and where: every problem names its dotted
//! key and, from the spans toml reports for the parsed document, its line.

use std::path::{Path, PathBuf};

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the key is in the file (a default is not).
    pub line: Option<usize>,
    /// Dotted key, e.g. `probing.pps` or `targets[1]`; empty for a syntax
    /// error that belongs to no key.
    pub key: String,
    /// The offending value as written, when it is safe to show.
    pub value: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or the token file) cannot be read.
    #[error("cannot read {}: {source}; pass --config FILE with the agent's configuration", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems; each is on its own line of the message.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything wrong, in file order where known.
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| render_problem(path, p))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_problem(path: &Path, p: &Problem) -> String {
    let mut out = path.display().to_string();
    if let Some(line) = p.line {
        out.push(':');
        out += &line.to_string();
    }
    out += ": ";
    if !p.key.is_empty() {
        out += &p.key;
        if let Some(value) = &p.value {
            out += " = ";
            out += value;
        }
        out += ": ";
    }
    out += &p.message;
    out
}

impl ConfigError {
    /// The problems found (empty when the file could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }
}

pub(super) fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|span| line_at(text, span.start));
    // For an unknown or duplicate key the span covers the key itself.
    let key = e
        .span()
        .and_then(|span| text.get(span))
        .filter(|s| !s.contains('\n') && s.len() <= 64 && !s.contains('"'))
        .filter(|_| e.message().contains("field"))
        .map(str::to_owned)
        .unwrap_or_default();
    let mut message = e.message().trim_end().to_owned();
    if message.starts_with("unknown field") {
        message += " (a typo? see examples/agent.toml for every option)";
    }
    Problem {
        line,
        key,
        value: None,
        message,
    }
}

/// 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// The line of a dotted key such as `probing.pps` or `targets[1]`, from the
/// spans of the parsed document; `None` when the key is not in the file.
pub(super) fn line_of_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut span = None;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let (_, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(value.span());
        let mut value = value;
        if let Some(i) = index
            && let DeValue::Array(items) = value.get_ref()
            && let Some(item) = items.get(i)
        {
            span = Some(item.span());
            value = item;
        }
        if parts.peek().is_some() {
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
    }
    span.map(|s| line_at(text, s.start))
}
