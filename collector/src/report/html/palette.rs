//! Colours and patterns of ASes: one per AS for the whole report, so an upstream looks the
//! same in every chart. Colour never carries meaning alone: each AS also has a fill pattern,
//! and every mark its AS in a label or tooltip.

use std::collections::BTreeMap;

/// The Okabe–Ito palette, distinguishable with the common colour-vision deficiencies.
const COLOURS: [&str; 7] = [
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
];

/// Colour of an unknown entry or a missing value.
pub const UNKNOWN: &str = "#BBBBBB";

/// Number of fill patterns (0 is plain).
const PATTERNS: usize = 4;

/// How one AS is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Fill colour.
    pub colour: &'static str,
    /// Pattern index: 0 plain, else an overlay from [`pattern_defs`].
    pub pattern: usize,
}

impl Style {
    /// The overlay fill, `url(#CHART-pN)`, when the style has a pattern.
    pub fn overlay(&self, chart: &str) -> Option<String> {
        (self.pattern > 0).then(|| format!("url(#{chart}-p{})", self.pattern))
    }
}

/// The styles of the ASes of one report.
#[derive(Debug, Clone, Default)]
pub struct Palette {
    styles: BTreeMap<u32, Style>,
}

impl Palette {
    /// Styles for `ases`, given in ascending order so the same set always gets the same
    /// styles.
    pub fn new(ases: impl IntoIterator<Item = u32>) -> Self {
        let mut asns: Vec<u32> = ases.into_iter().collect();
        asns.sort_unstable();
        asns.dedup();
        let styles = asns
            .into_iter()
            .enumerate()
            .map(|(i, asn)| {
                (
                    asn,
                    Style {
                        colour: COLOURS[i % COLOURS.len()],
                        pattern: (i + i / COLOURS.len()) % PATTERNS,
                    },
                )
            })
            .collect();
        Self { styles }
    }

    /// The style of an AS (`None`: unknown, grey, hatched).
    pub fn style(&self, asn: Option<u32>) -> Style {
        asn.and_then(|a| self.styles.get(&a).copied())
            .unwrap_or(Style {
                colour: UNKNOWN,
                pattern: 3,
            })
    }
}

/// The pattern definitions of one SVG (ids `CHART-p1` … and `CHART-nodata`).
pub fn pattern_defs(chart: &str) -> String {
    format!(
        "<defs>\
         <pattern id=\"{chart}-p1\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"2\" height=\"6\" fill=\"#000\" \
         fill-opacity=\"0.35\"/></pattern>\
         <pattern id=\"{chart}-p2\" width=\"5\" height=\"5\" patternUnits=\"userSpaceOnUse\">\
         <circle cx=\"2.5\" cy=\"2.5\" r=\"1.1\" fill=\"#000\" fill-opacity=\"0.4\"/></pattern>\
         <pattern id=\"{chart}-p3\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">\
         <rect width=\"6\" height=\"1.6\" fill=\"#000\" fill-opacity=\"0.35\"/></pattern>\
         <pattern id=\"{chart}-nodata\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(-45)\"><rect width=\"8\" height=\"8\" fill=\"#F4F4F4\"/>\
         <rect width=\"1.5\" height=\"8\" fill=\"#999\"/></pattern>\
         </defs>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_as_keeps_its_style_whatever_the_order() {
        let a = Palette::new([20485, 4837, 131_279]);
        let b = Palette::new([131_279, 20485, 4837]);
        for asn in [4837, 20485, 131_279] {
            assert_eq!(a.style(Some(asn)), b.style(Some(asn)));
        }
        assert_ne!(a.style(Some(4837)), a.style(Some(20485)));
        assert_eq!(a.style(None).colour, UNKNOWN);
    }
}
