//! Text from the wire for terminals: agent versions, PTR names, the collector's messages,
//! names from public files. A terminal obeys the control sequences in what it prints, so
//! both the agent and the collector pass such strings through [`escape_control`] before
//! printing them as text. The collector's HTML report passes them through [`escape_html`]
//! instead.

use std::borrow::Cow;

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// `text` with every character of the Unicode general categories Cc (controls: C0, DEL,
/// C1), Cf (format characters: the bidirectional controls such as U+202E and U+061C that
/// reorder what a terminal shows, zero-width characters, soft hyphens), Zl and Zp (line and
/// paragraph separators) written as a Rust escape: `\u{1b}`, `\t`, `\r`, `\n`,
/// `\u{202e}`. Other text, backslashes included, is unchanged.
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

/// `text` for HTML and SVG text and attribute values (quoted with `"` or `'`): `&`, `<`, `>`,
/// `"` and `'` as character references, so a PTR name like `</svg><script>` stays text;
/// control characters and bidirectional controls first as in [`escape_control`], so that
/// a name cannot reorder or hide what the page shows around it.
pub fn escape_html(text: &str) -> Cow<'_, str> {
    let text = escape_control(text);
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    matches!(
        CodePointMapData::<GeneralCategory>::new().get(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
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
        assert_eq!(escape_control("a\u{61c}b"), r"a\u{61c}b");
    }

    /// Over every code point, by the Unicode character database's general category (ICU4X's
    /// tables): each of Cc, Cf, Zl and Zp is escaped, each letter is printed as it is.
    #[test]
    fn every_control_format_and_separator_character_is_escaped_and_no_letter() {
        let categories = CodePointMapData::<GeneralCategory>::new();
        let (mut escaped, mut letters) = (0, 0);
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let text = c.to_string();
            let shown = escape_control(&text);
            match categories.get(c) {
                GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator => {
                    assert!(
                        !shown.contains(c) && shown.starts_with('\\'),
                        "U+{:04X} printed raw",
                        u32::from(c)
                    );
                    escaped += 1;
                }
                GeneralCategory::UppercaseLetter
                | GeneralCategory::LowercaseLetter
                | GeneralCategory::TitlecaseLetter
                | GeneralCategory::ModifierLetter
                | GeneralCategory::OtherLetter => {
                    assert_eq!(shown, text, "U+{:04X} escaped", u32::from(c));
                    letters += 1;
                }
                _ => {}
            }
        }
        // 65 controls, 170-odd format characters, one line and one paragraph separator.
        assert!(escaped > 230, "{escaped}");
        assert!(letters > 100_000, "{letters}");
    }

    #[test]
    fn html_markup_and_controls_are_escaped() {
        assert!(matches!(escape_html("ae1.pyongyang"), Cow::Borrowed(_)));
        assert_eq!(
            escape_html("</svg><script>alert('x')</script>&\"\u{202e}"),
            "&lt;/svg&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\\u{202e}"
        );
    }
}
