//! Chart 1: upstreams over time for one target /24, the control plane (announced upstreams
//! and their visibility) above the data plane (entry-AS shares), on one time axis.

use nkpath_proto::timestamp;

use super::palette::Palette;
use super::svg::{Svg, attr, fmt};
use crate::report::timeline::{Panel, Timeline, bin_label, visibility_pct};

const WIDTH: f64 = 880.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 26.0;
const ROW_GAP: f64 = 6.0;
const DATA_HEIGHT: f64 = 130.0;
const TOP: f64 = 8.0;

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

/// Draws one panel; `id` is unique within the page.
pub fn draw(id: &str, timeline: &Timeline, panel: &Panel, palette: &Palette) -> String {
    let rows: Vec<(ipnet::Ipv4Net, u32)> = panel
        .control
        .iter()
        .flat_map(|(p, ups)| ups.keys().map(move |u| (*p, *u)))
        .collect();
    let control_height = if rows.is_empty() {
        ROW
    } else {
        rows.len() as f64 * (ROW + ROW_GAP)
    };
    let data_top = TOP + 14.0 + control_height + 22.0;
    let axis_y = data_top + DATA_HEIGHT;
    let height = axis_y + 62.0;
    let bins = &timeline.bins;
    let title = format!(
        "Upstreams of {} over time, bins of {} (UTC)",
        panel.key.label(),
        bins.label()
    );
    let desc = format!(
        "Top: each announced upstream's visibility, the share of collector peers whose route \
         to the prefix has that upstream directly before the target AS, time-weighted per \
         bin; hatched where no BGP data covers the bin. Bottom: the share of each entry AS \
         among the {} per bin. Dashed lines: changes of the announced set. From {} to {}.",
        timeline.unit.header(),
        timestamp::display(timeline.from),
        timestamp::display(timeline.to)
    );
    let mut svg = Svg::new(id, WIDTH, height, &title, &desc);
    let chart = svg.id().to_owned();
    let step = plot_width() / bins.count as f64;
    let bar = (step * 0.86).max(0.8);
    let x_of = |i: usize| LEFT + i as f64 * step + (step - bar) / 2.0;

    svg.text(
        LEFT,
        TOP + 10.0,
        "Control plane: visibility of each announced upstream (% of collector peers)",
        &[attr("font-weight", "bold")],
    );
    if rows.is_empty() {
        svg.text(
            LEFT,
            TOP + 14.0 + ROW / 2.0 + 4.0,
            "No announced prefix covers this /24 in the loaded BGP data (no BGP data, or not announced)",
            &[attr("class", "missing")],
        );
    }
    for (r, (prefix, upstream)) in rows.iter().enumerate() {
        let y = TOP + 14.0 + r as f64 * (ROW + ROW_GAP);
        let style = palette.style(Some(*upstream));
        svg.text(
            LEFT - 6.0,
            y + ROW / 2.0 + 4.0,
            &format!("AS{upstream} · {prefix}"),
            &[attr("text-anchor", "end")],
        );
        svg.rect(
            LEFT,
            y,
            plot_width(),
            ROW,
            &[attr("fill", "none"), attr("stroke", "#DDD")],
            None,
        );
        let per = &panel.control[prefix][upstream];
        for (i, v) in per.iter().enumerate() {
            let label = bin_label(bins, i);
            let Some(pct) = visibility_pct(v) else {
                svg.rect(
                    x_of(i),
                    y,
                    bar,
                    ROW,
                    &[
                        attr("class", "nodata"),
                        attr("fill", format!("url(#{chart}-nodata)")),
                        attr("data-prefix", prefix),
                        attr("data-asn", upstream),
                        attr("data-bin", &label),
                    ],
                    Some(&format!(
                        "{label}: no BGP data for {prefix} (stale or unknown period)"
                    )),
                );
                continue;
            };
            let (n, of) = v
                .last
                .map_or((0, 0), |l| (l.peers_via_upstream, l.peers_with_route));
            let h = ROW * pct / 100.0;
            let tip = format!(
                "{label}: AS{upstream} announced for {prefix}, visibility {pct:.1}% \
                 (time-weighted; at the bin's end {n} of {of} peers)"
            );
            let mut attrs = vec![
                attr("class", "cp"),
                attr("fill", style.colour),
                attr("data-prefix", prefix),
                attr("data-asn", upstream),
                attr("data-bin", &label),
                attr("data-pct", format!("{pct:.1}")),
                attr("data-n", n),
                attr("data-of", of),
                attr("data-covered-s", v.covered_s),
            ];
            if v.covered_s < bins.size_s {
                attrs.push(attr("stroke", "#666"));
                attrs.push(attr("stroke-dasharray", "2 2"));
            }
            svg.rect(x_of(i), y + ROW - h, bar, h, &attrs, Some(&tip));
            if let Some(fill) = style.overlay(&chart) {
                svg.rect(
                    x_of(i),
                    y + ROW - h,
                    bar,
                    h,
                    &[attr("fill", fill), attr("pointer-events", "none")],
                    None,
                );
            }
        }
    }

    svg.text(
        LEFT,
        data_top - 8.0,
        &format!(
            "Data plane: entry-AS share of the {}",
            timeline.unit.header()
        ),
        &[attr("font-weight", "bold")],
    );
    svg.rect(
        LEFT,
        data_top,
        plot_width(),
        DATA_HEIGHT,
        &[attr("fill", "none"), attr("stroke", "#DDD")],
        None,
    );
    for pct in [0, 50, 100] {
        let y = axis_y - DATA_HEIGHT * f64::from(pct) / 100.0;
        svg.text(
            LEFT - 6.0,
            y + 4.0,
            &format!("{pct}%"),
            &[attr("text-anchor", "end")],
        );
    }
    if panel.data.is_empty() {
        svg.text(
            LEFT + 8.0,
            data_top + DATA_HEIGHT / 2.0,
            "No traces in the period: the data plane is missing",
            &[attr("class", "missing")],
        );
    }
    for (i, bin) in panel.data.iter().enumerate() {
        let label = bin_label(bins, i);
        let mut y = axis_y;
        if bin.of > 0 {
            // Known entries first, by AS number; unknown on top.
            let mut entries: Vec<_> = bin.entries.iter().filter(|(_, c)| c.n() > 0).collect();
            entries.sort_by_key(|(asn, _)| (asn.is_none(), **asn));
            for (asn, c) in entries {
                let h = DATA_HEIGHT * c.n() as f64 / bin.of as f64;
                y -= h;
                let style = palette.style(*asn);
                let as_text = asn.map_or_else(|| "unknown".to_owned(), |a| format!("AS{a}"));
                let tip = format!(
                    "{label}: entry {as_text} in {} of {} units ({:.1}%; {} observed, {} inferred)",
                    c.n(),
                    bin.of,
                    100.0 * c.n() as f64 / bin.of as f64,
                    c.observed,
                    c.inferred
                );
                svg.rect(
                    x_of(i),
                    y,
                    bar,
                    h,
                    &[
                        attr("class", "dp"),
                        attr("fill", style.colour),
                        attr("data-target", panel.key.target),
                        attr("data-source", panel.key.source.unwrap_or("-")),
                        attr("data-bin", &label),
                        attr(
                            "data-asn",
                            asn.map_or_else(|| "unknown".into(), |a| a.to_string()),
                        ),
                        attr("data-n", c.n()),
                        attr("data-of", bin.of),
                    ],
                    Some(&tip),
                );
                if let Some(fill) = style.overlay(&chart) {
                    svg.rect(
                        x_of(i),
                        y,
                        bar,
                        h,
                        &[attr("fill", fill), attr("pointer-events", "none")],
                        None,
                    );
                }
                if h >= 14.0 && bar >= 40.0 {
                    svg.text(
                        x_of(i) + bar / 2.0,
                        y + h / 2.0 + 4.0,
                        &as_text,
                        &[attr("text-anchor", "middle"), attr("class", "inbar")],
                    );
                }
            }
        } else if bin.stale > 0 {
            svg.rect(
                x_of(i),
                data_top,
                bar,
                DATA_HEIGHT,
                &[
                    attr("class", "stale"),
                    attr("fill", format!("url(#{chart}-nodata)")),
                    attr("data-bin", &label),
                    attr("data-n", bin.stale),
                ],
                Some(&format!(
                    "{label}: {} units judged against stale BGP data, not counted",
                    bin.stale
                )),
            );
        }
        if bin.mismatches > 0 {
            let cx = x_of(i) + bar / 2.0;
            svg.element(
                "path",
                &[
                    attr("class", "mismatch"),
                    attr(
                        "d",
                        format!("M{} {}l5 -9l5 9z", fmt(cx - 5.0), fmt(data_top - 1.0)),
                    ),
                    attr("fill", "#C00"),
                    attr("data-bin", &label),
                    attr("data-n", bin.mismatches),
                    attr("data-of", bin.traces),
                ],
                Some(&format!(
                    "{label}: {} of {} traces with verdict mismatch (entry AS not announced)",
                    bin.mismatches, bin.traces
                )),
            );
        }
        if bin.stale > 0 && bin.of > 0 {
            svg.text(
                x_of(i) + bar / 2.0,
                axis_y + 10.0,
                "s",
                &[attr("text-anchor", "middle"), attr("class", "stale-mark")],
            );
        }
    }

    // BGP changes across both planes.
    for c in &timeline.changes {
        if !panel.control.contains_key(&c.prefix) {
            continue;
        }
        let x =
            LEFT + plot_width() * (c.time - bins.start) as f64 / (bins.end() - bins.start) as f64;
        let verb = if c.appeared {
            "appeared"
        } else {
            "disappeared"
        };
        svg.element(
            "line",
            &[
                attr("class", "change"),
                attr("x1", fmt(x)),
                attr("x2", fmt(x)),
                attr("y1", fmt(TOP + 12.0)),
                attr("y2", fmt(axis_y)),
                attr("stroke", "#333"),
                attr("stroke-width", "1.5"),
                attr("stroke-dasharray", "4 3"),
                attr("data-prefix", c.prefix),
                attr("data-asn", c.upstream),
                attr("data-time", timestamp::display_unix(c.time)),
                attr("data-appeared", c.appeared),
            ],
            Some(&format!(
                "{}: AS{} {verb} in the announced set of {} ({} of {} peers)",
                timestamp::display_unix(c.time),
                c.upstream,
                c.prefix,
                c.peers_via_upstream,
                c.peers_with_route
            )),
        );
        svg.text(
            x + 2.0,
            TOP + 10.0 + 12.0 * f64::from(u8::from(!c.appeared)),
            &format!("{}AS{}", if c.appeared { "+" } else { "−" }, c.upstream),
            &[attr("class", "change-label")],
        );
    }

    // Time axis.
    let every = bins.count.div_ceil(8).max(1);
    for i in (0..=bins.count).step_by(every) {
        let x = LEFT + i as f64 * step;
        svg.line(x, axis_y, x, axis_y + 4.0, &[attr("stroke", "#333")]);
        let t = bins.bounds(i).0;
        let text = timestamp::display_unix(t);
        let short = if bins.size_s % 86_400 == 0 {
            text.get(..10).unwrap_or(&text).to_owned()
        } else {
            text.get(5..16).unwrap_or(&text).replace('T', " ")
        };
        svg.text(x, axis_y + 22.0, &short, &[attr("text-anchor", "middle")]);
    }
    svg.text(
        LEFT + plot_width() / 2.0,
        axis_y + 38.0,
        &format!(
            "time (UTC), bins of {}; s: units with stale BGP, counted apart; ▲: traces \
             with verdict mismatch",
            bins.label()
        ),
        &[attr("text-anchor", "middle")],
    );
    legend(&mut svg, panel, palette, axis_y + 54.0);
    svg.finish()
}

/// Swatches of every AS drawn in the panel.
fn legend(svg: &mut Svg, panel: &Panel, palette: &Palette, y: f64) {
    let mut ases: Vec<Option<u32>> = panel
        .control
        .values()
        .flat_map(|u| u.keys().map(|a| Some(*a)))
        .chain(panel.data.iter().flat_map(|b| b.entries.keys().copied()))
        .collect();
    ases.sort_by_key(|a| (a.is_none(), *a));
    ases.dedup();
    let chart = svg.id().to_owned();
    let mut x = LEFT;
    for asn in ases {
        let style = palette.style(asn);
        let text = asn.map_or_else(|| "unknown".to_owned(), |a| format!("AS{a}"));
        svg.rect(x, y - 9.0, 12.0, 12.0, &[attr("fill", style.colour)], None);
        if let Some(fill) = style.overlay(&chart) {
            svg.rect(x, y - 9.0, 12.0, 12.0, &[attr("fill", fill)], None);
        }
        svg.text(x + 16.0, y + 1.0, &text, &[attr("class", "legend")]);
        x += 24.0 + 7.0 * text.len() as f64;
    }
}
