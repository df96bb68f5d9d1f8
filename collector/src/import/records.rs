//! Splitting a file of JSON records into records, each with the line it starts on.
//!
//! Public traceroute datasets come as one JSON array (RIPE Atlas API downloads) or one value
//! per line (Atlas daily dumps, `sc_warts2json` output). Both are read here so that every
//! error can name the line of the record at fault. In JSON lines a bad line is one bad
//! record and the others still count; in an array a syntax error leaves the record
//! boundaries unknown, so the whole file is refused.

use serde_json::value::RawValue;

/// One record of the file, or why its line is not JSON.
#[derive(Debug)]
pub struct Item<'a> {
    /// 1-based line the record starts on.
    pub line: usize,
    /// The record's JSON text, or the parse error of its line.
    pub json: Result<&'a RawValue, String>,
}

/// Why a file could not be split into records at all (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct SplitError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column of the error.
    pub column: usize,
    /// What serde_json saw.
    pub message: String,
}

/// The records of `text`: the elements of a top-level array when the first non-blank
/// character is `[`, else one record per non-blank line.
pub fn split(text: &str) -> Result<Vec<Item<'_>>, SplitError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim_start().starts_with('[') {
        split_array(text)
    } else {
        Ok(split_lines(text))
    }
}

fn split_array(text: &str) -> Result<Vec<Item<'_>>, SplitError> {
    let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| SplitError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    // A RawValue borrowed from `text` points into it: its offset gives its line. The
    // elements come in order, so newlines are counted once over the whole file.
    let base = text.as_ptr() as usize;
    let mut line = 1;
    let mut counted_to = 0;
    let mut items = Vec::with_capacity(elements.len());
    for raw in elements {
        let offset = (raw.get().as_ptr() as usize - base).min(text.len());
        line += text.as_bytes()[counted_to..offset]
            .split(|&b| b == b'\n')
            .count()
            - 1;
        counted_to = offset;
        items.push(Item {
            line,
            json: Ok(raw),
        });
    }
    Ok(items)
}

fn split_lines(text: &str) -> Vec<Item<'_>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| Item {
            line: index + 1,
            json: serde_json::from_str::<&RawValue>(line).map_err(|e| format!("invalid JSON: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_and_texts(items: &[Item<'_>]) -> Vec<(usize, String)> {
        items
            .iter()
            .map(|i| {
                let text = match &i.json {
                    Ok(raw) => raw.get().to_owned(),
                    Err(e) => format!("ERR {e}"),
                };
                (i.line, text)
            })
            .collect()
    }

    #[test]
    fn an_array_gives_each_element_its_line() {
        let text = "[\n  {\"a\": 1},\n\n  {\"b\":\n 2}, {\"c\": 3}\n]\n";
        let items = split(text).unwrap();
        assert_eq!(
            lines_and_texts(&items),
            vec![
                (2, r#"{"a": 1}"#.to_owned()),
                (4, "{\"b\":\n 2}".to_owned()),
                (5, r#"{"c": 3}"#.to_owned()),
            ]
        );
    }

    #[test]
    fn json_lines_keep_good_lines_and_name_bad_ones() {
        let text = "{\"a\":1}\r\n\n{\"b\":\n{\"c\":3}\n";
        let items = split(text).unwrap();
        let got = lines_and_texts(&items);
        assert_eq!(got[0], (1, r#"{"a":1}"#.to_owned()));
        assert_eq!(got[1].0, 3);
        assert!(got[1].1.starts_with("ERR invalid JSON"), "{got:?}");
        assert_eq!(got[2], (4, r#"{"c":3}"#.to_owned()));
    }

    #[test]
    fn a_truncated_array_is_refused_with_its_position() {
        let err = split("[\n{\"a\": 1},\n{\"b\": 2").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("EOF"), "{err}");
    }
}
