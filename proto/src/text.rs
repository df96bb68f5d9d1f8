//! Text from the wire for terminals: agent versions, PTR names, the collector's messages,
//! names from public files. A terminal obeys the control sequences in what it prints, so
//! both the agent and the collector pass such strings through [`escape_control`] before
//! printing them as text.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1) and every Unicode bidirectional
/// control (which can reorder what a terminal shows) written as a Rust escape: `\u{1b}`,
/// `\t`, `\r`, `\n`, `\u{202e}`. Other text, backslashes included, is unchanged.
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape_control("vp-1 ü 北"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\u{1b}[31mb\tc\r\n\u{7}\u{7f}\u{85}"),
            r"a\u{1b}[31mb\tc\r\n\u{7}\u{7f}\u{85}"
        );
        assert_eq!(escape_control("abc\u{202e}fed"), r"abc\u{202e}fed");
        assert_eq!(escape_control(r"C:\x"), r"C:\x");
    }
}
