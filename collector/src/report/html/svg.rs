//! A small SVG writer: every attribute value and every text passes [`escape_html`], so a
//! name from the network (a PTR record, an agent id) can never close an element or open a
//! script. Marks carry their numbers as `data-*` attributes and a `<title>` child (the
//! tooltip, without script).

use std::fmt::Write as _;

use crate::text::escape_html;

/// An SVG document being written.
#[derive(Debug)]
pub struct Svg {
    out: String,
    /// Prefix of the ids of this chart's patterns (ids are unique within the page).
    id: String,
}

/// Attributes of one element: name and value (escaped when written).
pub type Attrs<'a> = [(&'a str, String)];

impl Svg {
    /// Opens an SVG of `width` × `height` user units with its accessible title and
    /// description, and the pattern definitions of [`super::palette`].
    pub fn new(id: &str, width: f64, height: f64, title: &str, desc: &str) -> Self {
        let mut out = String::with_capacity(16 * 1024);
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{id}\" class=\"chart\" \
             viewBox=\"0 0 {width:.0} {height:.0}\" width=\"{width:.0}\" height=\"{height:.0}\" \
             role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" font-family=\"DejaVu Sans, \
             Verdana, sans-serif\" font-size=\"11\">\
             <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
            escape_html(title),
            escape_html(desc),
        );
        out.push_str(&super::palette::pattern_defs(id));
        Self {
            out,
            id: id.to_owned(),
        }
    }

    /// The id prefix of this chart.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An element with attributes and, when `tooltip` is given, a `<title>` child.
    pub fn element(&mut self, name: &str, attrs: &Attrs<'_>, tooltip: Option<&str>) {
        let _ = write!(self.out, "<{name}");
        write_attrs(&mut self.out, attrs);
        match tooltip {
            Some(t) => {
                let _ = write!(self.out, "><title>{}</title></{name}>", escape_html(t));
            }
            None => self.out.push_str("/>"),
        }
    }

    /// A rectangle.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attrs: &Attrs<'_>, tip: Option<&str>) {
        let mut all = vec![
            ("x", fmt(x)),
            ("y", fmt(y)),
            ("width", fmt(w.max(0.0))),
            ("height", fmt(h.max(0.0))),
        ];
        all.extend(attrs.iter().cloned());
        self.element("rect", &all, tip);
    }

    /// A line.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, attrs: &Attrs<'_>) {
        let mut all = vec![
            ("x1", fmt(x1)),
            ("y1", fmt(y1)),
            ("x2", fmt(x2)),
            ("y2", fmt(y2)),
        ];
        all.extend(attrs.iter().cloned());
        self.element("line", &all, None);
    }

    /// Text at (x, y).
    pub fn text(&mut self, x: f64, y: f64, text: &str, attrs: &Attrs<'_>) {
        let _ = write!(self.out, "<text x=\"{}\" y=\"{}\"", fmt(x), fmt(y));
        write_attrs(&mut self.out, attrs);
        let _ = write!(self.out, ">{}</text>", escape_html(text));
    }

    /// Opens a group.
    pub fn group(&mut self, attrs: &Attrs<'_>) {
        self.out.push_str("<g");
        write_attrs(&mut self.out, attrs);
        self.out.push('>');
    }

    /// Closes a group.
    pub fn end_group(&mut self) {
        self.out.push_str("</g>");
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

fn write_attrs(out: &mut String, attrs: &Attrs<'_>) {
    for (k, v) in attrs {
        let _ = write!(out, " {k}=\"{}\"", escape_html(v));
    }
}

/// A coordinate with two decimals at most.
pub fn fmt(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// An attribute pair.
#[expect(
    clippy::needless_pass_by_value,
    reason = "call sites pass numbers, names and temporaries alike"
)]
pub fn attr(name: &str, value: impl ToString) -> (&str, String) {
    (name, value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_network_stay_text() {
        let evil = "</svg><script>alert(1)</script>";
        let mut svg = Svg::new("c1", 10.0, 10.0, evil, evil);
        svg.rect(0.0, 0.0, 1.0, 1.0, &[attr("data-name", evil)], Some(evil));
        svg.text(0.0, 0.0, evil, &[]);
        let out = svg.finish();
        assert!(!out.contains("<script"), "{out}");
        assert_eq!(out.matches("</svg>").count(), 1, "{out}");
        assert!(out.contains("&lt;/svg&gt;&lt;script&gt;"), "{out}");
    }

    #[test]
    fn coordinates_are_short() {
        assert_eq!(fmt(1.0), "1");
        assert_eq!(fmt(1.256), "1.26");
        assert_eq!(fmt(0.5), "0.5");
    }
}
