//! Chart 2: the path map of the latest period, a layered flow graph (a Sankey diagram) from
//! each vantage AS through the transit ASes to the entry AS and the target /24, with trace
//! counts. Drawn by hand: no well-kept Rust crate draws Sankey diagrams into SVG.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use super::palette::Palette;
use super::svg::{Svg, attr, fmt};
use crate::analysis::TraceAnalysis;

const WIDTH: f64 = 880.0;
const NODE_W: f64 = 12.0;
const GAP: f64 = 10.0;
const TOP: f64 = 30.0;
const FLOW_HEIGHT: f64 = 300.0;
const COLUMNS: [f64; 4] = [150.0, 370.0, 600.0, 770.0];
const HEADERS: [&str; 4] = ["vantage AS", "transit ASes", "entry AS", "target /24"];

/// One path through the four layers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    /// The entry AS (first, so flows of one entry lie together).
    pub entry: Option<u32>,
    /// The agent's AS.
    pub vantage: Option<u32>,
    /// The public ASes between the vantage AS and the entry AS.
    pub transit: Vec<u32>,
    /// The target /24.
    pub target: Ipv4Net,
}

impl Flow {
    fn labels(&self) -> [String; 4] {
        let asn = |a: Option<u32>| a.map_or_else(|| "unknown".to_owned(), |a| format!("AS{a}"));
        let transit = if self.transit.is_empty() {
            "(none)".to_owned()
        } else {
            self.transit
                .iter()
                .map(|a| format!("AS{a}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        [
            asn(self.vantage),
            transit,
            asn(self.entry),
            self.target.to_string(),
        ]
    }
}

/// The flow of one trace: its data-plane AS path cut at the entry AS.
pub fn flow_of(a: &TraceAnalysis) -> Flow {
    let path = &a.data_path;
    let start = usize::from(a.agent_asn.is_some() && path.first() == a.agent_asn.as_ref());
    let end = a
        .entry
        .asn
        .and_then(|e| path.iter().position(|x| *x == e))
        .unwrap_or(path.len());
    Flow {
        entry: a.entry.asn,
        vantage: a.agent_asn,
        transit: path.get(start..end.max(start)).unwrap_or_default().to_vec(),
        target: a.target_24(),
    }
}

/// Draws the flows of `traces` (counted in traces); `period` says which.
pub fn draw(id: &str, traces: &[&TraceAnalysis], period: &str, palette: &Palette) -> String {
    let mut flows: BTreeMap<Flow, usize> = BTreeMap::new();
    for t in traces {
        *flows.entry(flow_of(t)).or_default() += 1;
    }
    let total: usize = flows.values().sum();
    // Nodes per column, in order of first appearance among the sorted flows.
    let mut nodes: [Vec<(String, usize)>; 4] = Default::default();
    for (flow, n) in &flows {
        for (col, label) in flow.labels().into_iter().enumerate() {
            match nodes[col].iter_mut().find(|(l, _)| *l == label) {
                Some(node) => node.1 += n,
                None => nodes[col].push((label, *n)),
            }
        }
    }
    let most_nodes = nodes.iter().map(Vec::len).max().unwrap_or(1);
    let unit = (FLOW_HEIGHT - GAP * most_nodes as f64) / total.max(1) as f64;
    let height = TOP + FLOW_HEIGHT + 30.0;
    let title = format!("Path map, {period}");
    let desc = format!(
        "Traces of {period} from each vantage AS through the transit ASes to the entry AS \
         and the target /24; band width proportional to the number of traces ({total} in \
         all), coloured by entry AS."
    );
    let mut svg = Svg::new(id, WIDTH, height, &title, &desc);
    let chart = svg.id().to_owned();
    // Node tops, and how much of each node's height flows have used on each side.
    let mut tops: [Vec<f64>; 4] = Default::default();
    for (col, column) in nodes.iter().enumerate() {
        let mut y = TOP;
        for (_, n) in column {
            tops[col].push(y);
            y += *n as f64 * unit + GAP;
        }
    }
    let mut used_out: [Vec<f64>; 4] = tops.clone().map(|v| vec![0.0; v.len()]);
    let mut used_in = used_out.clone();
    for (flow, n) in &flows {
        let labels = flow.labels();
        let idx: Vec<usize> = labels
            .iter()
            .enumerate()
            .map(|(col, l)| {
                nodes[col]
                    .iter()
                    .position(|(x, _)| x == l)
                    .expect("every label has its node")
            })
            .collect();
        let h = *n as f64 * unit;
        let style = palette.style(flow.entry);
        let tip = format!("{}: {n} of {total} traces", labels.join(" → "));
        svg.group(&[
            attr("class", "flow"),
            attr(
                "data-asn",
                flow.entry
                    .map_or_else(|| "unknown".into(), |a| a.to_string()),
            ),
            attr("data-vantage", labels[0].clone()),
            attr("data-transit", labels[1].clone()),
            attr("data-target", flow.target),
            attr("data-n", n),
            attr("data-of", total),
        ]);
        for col in 0..3 {
            let (a, b) = (idx[col], idx[col + 1]);
            let y0 = tops[col][a] + used_out[col][a];
            let y1 = tops[col + 1][b] + used_in[col + 1][b];
            used_out[col][a] += h;
            used_in[col + 1][b] += h;
            let x0 = COLUMNS[col] + NODE_W;
            let x1 = COLUMNS[col + 1];
            let xm = f64::midpoint(x0, x1);
            let d = format!(
                "M{x0} {y0}C{xm} {y0} {xm} {y1} {x1} {y1}L{x1} {y1h}C{xm} {y1h} {xm} {y0h} {x0} {y0h}Z",
                x0 = fmt(x0),
                x1 = fmt(x1),
                xm = fmt(xm),
                y0 = fmt(y0),
                y1 = fmt(y1),
                y0h = fmt(y0 + h),
                y1h = fmt(y1 + h),
            );
            svg.element(
                "path",
                &[
                    attr("d", &d),
                    attr("fill", style.colour),
                    attr("fill-opacity", "0.75"),
                ],
                Some(&tip),
            );
            if let Some(fill) = style.overlay(&chart) {
                svg.element(
                    "path",
                    &[
                        attr("d", d),
                        attr("fill", fill),
                        attr("pointer-events", "none"),
                    ],
                    None,
                );
            }
        }
        svg.end_group();
    }
    // Nodes and labels last, above the bands.
    for (col, column) in nodes.iter().enumerate() {
        for ((label, n), y) in column.iter().zip(&tops[col]) {
            let h = *n as f64 * unit;
            svg.rect(
                COLUMNS[col],
                *y,
                NODE_W,
                h,
                &[
                    attr("class", "node"),
                    attr("fill", "#555"),
                    attr("data-layer", HEADERS[col]),
                    attr("data-label", label),
                    attr("data-n", n),
                    attr("data-of", total),
                ],
                Some(&format!("{label}: {n} of {total} traces")),
            );
            let (x, anchor) = if col == 0 {
                (COLUMNS[col] - 4.0, "end")
            } else {
                (COLUMNS[col] + NODE_W + 4.0, "start")
            };
            svg.text(
                x,
                y + h / 2.0 + 4.0,
                &format!("{label} ({n})"),
                &[
                    attr("text-anchor", anchor),
                    attr("stroke", "#fff"),
                    attr("stroke-width", "3"),
                    attr("paint-order", "stroke"),
                ],
            );
        }
        svg.text(
            COLUMNS[col] + NODE_W / 2.0,
            TOP - 12.0,
            HEADERS[col],
            &[attr("text-anchor", "middle"), attr("font-weight", "bold")],
        );
    }
    svg.finish()
}
