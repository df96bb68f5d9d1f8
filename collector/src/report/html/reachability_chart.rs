//! The reachability chart: per target /24, a lane of the data plane (did an address of the
//! /24 answer in the bin?) above a lane of the control plane (share of full-feed peers with
//! a route), the bins those of `report reachability` with the same `--bin`. Each data cell is
//! a `rect.reach-dp` with `data-target`, `data-bin`, `data-answered` (`true`, `false`, or `-`
//! when nothing tried) and `data-rpki`; each control cell a `rect.reach-cp` with
//! `data-visibility` (percent, one decimal, `-` without BGP data), as the JSON report writes
//! them.

use super::svg::{Svg, attr};
use crate::report::reachability::Reachability;
use crate::report::timeline::bin_label;

const LEFT: f64 = 130.0;
const WIDTH: f64 = 880.0;
const LANE: f64 = 14.0;
const GAP: f64 = 8.0;
const TOP: f64 = 20.0;

/// Draws the chart with element ids starting with `id`.
pub fn draw(id: &str, reach: &Reachability) -> String {
    let rows = reach.targets.len() as f64;
    let height = TOP + rows * (2.0 * LANE + GAP) + 24.0;
    let mut svg = Svg::new(
        id,
        WIDTH,
        height,
        "Reachability per target /24",
        "Per target /24 and bin: top lane, whether an address of the /24 answered a trace or a \
         ping (green yes, red no, grey not tried); bottom lane, share of full-feed collector \
         peers with a route (bar height), outlined red when the announcement was RPKI-invalid.",
    );
    let bins = &reach.bins;
    let cell = (WIDTH - LEFT - 10.0) / bins.count.max(1) as f64;
    for (row, (net, per_bin)) in reach.targets.iter().enumerate() {
        let y = TOP + row as f64 * (2.0 * LANE + GAP);
        svg.text(4.0, y + LANE, &net.to_string(), &[]);
        for (i, bin) in per_bin.iter().enumerate() {
            let x = LEFT + i as f64 * cell;
            let label = bin_label(bins, i);
            let tried = bin.traces + bin.pings > 0;
            let (answered, fill) = match (tried, bin.answered()) {
                (false, _) => ("-", "#ddd"),
                (true, true) => ("true", "#2a7"),
                (true, false) => ("false", "#c33"),
            };
            let rpki = bin.rpki.iter().cloned().collect::<Vec<_>>().join(" ");
            let tip = format!(
                "{net} {label}: answered {answered}; traces reaching {}/{}, pings answered {}/{}, \
                 {} agents{}",
                bin.traces_answered,
                bin.traces,
                bin.pings_answered,
                bin.pings,
                bin.agents.len(),
                bin.last_hop
                    .map_or_else(String::new, |h| format!(", last hop {h}"))
            );
            svg.rect(
                x,
                y,
                (cell - 1.0).max(0.5),
                LANE - 2.0,
                &[
                    attr("class", "reach-dp"),
                    attr("fill", fill),
                    attr("data-target", net),
                    attr("data-bin", &label),
                    attr("data-answered", answered),
                    attr("data-rpki", &rpki),
                ],
                Some(&tip),
            );
            let vis = bin.visibility.map(|v| (1000.0 * v).round() / 10.0);
            let invalid = bin.rpki.iter().any(|s| s.starts_with("invalid"));
            let h = vis.map_or(0.0, |v| (LANE - 2.0) * v / 100.0);
            svg.rect(
                x,
                y + 2.0 * LANE - 2.0 - h,
                (cell - 1.0).max(0.5),
                h,
                &[
                    attr("class", "reach-cp"),
                    attr("fill", "#47a"),
                    attr("stroke", if invalid { "#c00" } else { "none" }),
                    attr("data-target", net),
                    attr("data-bin", &label),
                    attr(
                        "data-visibility",
                        vis.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
                    ),
                ],
                Some(&format!(
                    "{net} {label}: visibility {}; RPKI {}",
                    vis.map_or_else(|| "no BGP data".to_owned(), |v| format!("{v:.1}%")),
                    if rpki.is_empty() { "-" } else { &rpki }
                )),
            );
        }
    }
    let y = height - 8.0;
    svg.text(LEFT, y, &bin_label(bins, 0), &[]);
    svg.text(
        WIDTH - 10.0,
        y,
        &nkpath_proto::timestamp::display_unix(bins.end()),
        &[attr("text-anchor", "end")],
    );
    svg.finish()
}
