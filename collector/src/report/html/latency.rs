//! Chart 3: round-trip times into the target network per entry AS and target /24, as
//! percentile bars.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::palette::Palette;
use super::svg::{Svg, attr, fmt};
use crate::analysis::TraceAnalysis;

const WIDTH: f64 = 880.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 90.0;
const ROW: f64 = 22.0;
const TOP: f64 = 14.0;

/// The RTT (µs) of a trace's deepest reply from inside the target prefixes: the target
/// itself when it answered, else the deepest hop of the target block that did.
pub fn rtt_into_target(a: &TraceAnalysis, prefixes: &[Ipv4Net]) -> Option<u32> {
    a.hops
        .iter()
        .rev()
        .flat_map(|h| h.replies.iter())
        .find(|r| prefixes.iter().any(|p| p.contains(&r.address)))
        .map(|r| r.rtt_us)
}

/// Percentiles of one group, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Traces with an RTT.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

/// Nearest-rank percentiles of `values` (µs), in ms; `None` when empty.
pub fn spread(mut values: Vec<u32>) -> Option<Spread> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = |p: f64| {
        let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
        f64::from(values[i.clamp(1, values.len()) - 1]) / 1000.0
    };
    Some(Spread {
        n: values.len(),
        min: f64::from(values[0]) / 1000.0,
        p10: rank(10.0),
        p50: rank(50.0),
        p90: rank(90.0),
        max: f64::from(values[values.len() - 1]) / 1000.0,
    })
}

/// The spreads per (entry AS, /24).
pub fn spreads(
    traces: &[TraceAnalysis],
    prefixes: &[Ipv4Net],
) -> BTreeMap<(Option<u32>, Ipv4Net), Spread> {
    let mut rtts: BTreeMap<(Option<u32>, Ipv4Net), Vec<u32>> = BTreeMap::new();
    for t in traces {
        if let Some(rtt) = rtt_into_target(t, prefixes) {
            rtts.entry((t.entry.asn, t.target_24()))
                .or_default()
                .push(rtt);
        }
    }
    rtts.into_iter()
        .filter_map(|(k, v)| spread(v).map(|s| (k, s)))
        .collect()
}

/// Draws the spreads; `period` says which traces.
pub fn draw(
    id: &str,
    spreads: &BTreeMap<(Option<u32>, Ipv4Net), Spread>,
    period: &str,
    palette: &Palette,
) -> String {
    let height = TOP + spreads.len() as f64 * ROW + 46.0;
    let max = spreads.values().map(|s| s.max).fold(1.0f64, f64::max);
    let scale = (WIDTH - LEFT - RIGHT) / max;
    let desc = format!(
        "RTT of each trace's deepest reply from inside the target prefixes (the target when it \
         answered), per entry AS and target /24, traces of {period}: bar from the 10th to the \
         90th percentile, tick at the median, whiskers to the minimum and maximum."
    );
    let mut svg = Svg::new(
        id,
        WIDTH,
        height,
        "Latency into the target per entry AS",
        &desc,
    );
    let chart = svg.id().to_owned();
    for (r, ((asn, target), s)) in spreads.iter().enumerate() {
        let y = TOP + r as f64 * ROW;
        let mid = y + ROW / 2.0;
        let style = palette.style(*asn);
        let as_text = asn.map_or_else(|| "unknown".to_owned(), |a| format!("AS{a}"));
        svg.text(
            LEFT - 6.0,
            mid + 4.0,
            &format!("{as_text} → {target}"),
            &[attr("text-anchor", "end")],
        );
        let x = |ms: f64| LEFT + ms * scale;
        svg.line(x(s.min), mid, x(s.max), mid, &[attr("stroke", "#444")]);
        let tip = format!(
            "entry {as_text}, {target}: {} traces; min {:.1} ms, p10 {:.1}, median {:.1}, p90 \
             {:.1}, max {:.1} ms",
            s.n, s.min, s.p10, s.p50, s.p90, s.max
        );
        let attrs = [
            attr("class", "rtt"),
            attr("fill", style.colour),
            attr("stroke", "#444"),
            attr(
                "data-asn",
                asn.map_or_else(|| "unknown".into(), |a| a.to_string()),
            ),
            attr("data-target", target),
            attr("data-n", s.n),
            attr("data-p10-ms", format!("{:.1}", s.p10)),
            attr("data-p50-ms", format!("{:.1}", s.p50)),
            attr("data-p90-ms", format!("{:.1}", s.p90)),
        ];
        let w = (x(s.p90) - x(s.p10)).max(2.0);
        svg.rect(x(s.p10), y + 4.0, w, ROW - 8.0, &attrs, Some(&tip));
        if let Some(fill) = style.overlay(&chart) {
            svg.rect(x(s.p10), y + 4.0, w, ROW - 8.0, &[attr("fill", fill)], None);
        }
        svg.line(
            x(s.p50),
            y + 2.0,
            x(s.p50),
            y + ROW - 2.0,
            &[attr("stroke", "#000"), attr("stroke-width", "2")],
        );
        svg.text(
            x(s.max) + 6.0,
            mid + 4.0,
            &format!("{:.1} ms (n={})", s.p50, s.n),
            &[],
        );
    }
    let axis_y = TOP + spreads.len() as f64 * ROW + 6.0;
    svg.line(
        LEFT,
        axis_y,
        WIDTH - RIGHT,
        axis_y,
        &[attr("stroke", "#333")],
    );
    for k in 0..=4 {
        let ms = max * f64::from(k) / 4.0;
        let x = LEFT + ms * scale;
        svg.line(x, axis_y, x, axis_y + 4.0, &[attr("stroke", "#333")]);
        svg.text(
            x,
            axis_y + 16.0,
            &format!("{} ms", fmt((ms * 10.0).round() / 10.0)),
            &[attr("text-anchor", "middle")],
        );
    }
    svg.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = spread((1..=10).map(|ms| ms * 1000).collect()).unwrap();
        assert_eq!((s.n, s.min, s.max), (10, 1.0, 10.0));
        assert_eq!((s.p10, s.p50, s.p90), (1.0, 5.0, 9.0));
        assert_eq!(spread(Vec::new()), None);
        let one = spread(vec![2500]).unwrap();
        assert_eq!((one.p10, one.p50, one.p90), (2.5, 2.5, 2.5));
    }
}
