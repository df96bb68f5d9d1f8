//! Chart 4: freshness of the BGP data per route collector at the end of the period, with
//! truncated RIB dumps marked and the maximum age traces are judged against.

use nkpath_proto::timestamp;

use super::svg::{Svg, attr};
use crate::analysis::trace::format_age;
use crate::store::bgp::RibDump;

const WIDTH: f64 = 880.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 120.0;
const ROW: f64 = 22.0;
const TOP: f64 = 10.0;

/// Draws the age at `at` (UNIX seconds) of each collector's newest RIB dump.
pub fn draw(id: &str, dumps: &[RibDump], at: i64, max_age_s: i64) -> String {
    let height = TOP + dumps.len().max(1) as f64 * ROW + 40.0;
    let ages: Vec<i64> = dumps.iter().map(|d| (at - d.time).max(0)).collect();
    let max = ages
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(max_age_s)
        .max(1) as f64;
    let scale = (WIDTH - LEFT - RIGHT) / max;
    let desc = format!(
        "Age at {} of each route collector's newest RIB dump (updates replayed over it do \
         not make it younger here); the line marks the maximum age ({}) beyond which traces \
         get verdict unknown (stale-bgp); hatched: a truncated dump.",
        timestamp::display_unix(at),
        format_age(max_age_s)
    );
    let mut svg = Svg::new(
        id,
        WIDTH,
        height,
        "Freshness of the BGP data per collector",
        &desc,
    );
    let chart = svg.id().to_owned();
    if dumps.is_empty() {
        svg.text(
            LEFT,
            TOP + ROW / 2.0 + 4.0,
            "No RIB dump loaded: no BGP state (load one with `bgp load`)",
            &[attr("class", "missing")],
        );
    }
    for (r, (d, age)) in dumps.iter().zip(&ages).enumerate() {
        let y = TOP + r as f64 * ROW;
        let stale = *age > max_age_s;
        svg.text(
            LEFT - 6.0,
            y + ROW / 2.0 + 4.0,
            &d.collector,
            &[attr("text-anchor", "end")],
        );
        let w = (*age as f64 * scale).max(1.0);
        let tip = format!(
            "{}: newest RIB dump {} ({}), {} old{}{}",
            d.collector,
            d.file,
            timestamp::display_unix(d.time),
            format_age(*age),
            if stale { ", stale" } else { "" },
            if d.truncated { ", truncated" } else { "" },
        );
        svg.rect(
            LEFT,
            y + 4.0,
            w,
            ROW - 8.0,
            &[
                attr("class", "age"),
                attr("fill", if stale { "#D55E00" } else { "#0072B2" }),
                attr("data-collector", &d.collector),
                attr("data-age-s", age),
                attr("data-truncated", d.truncated),
                attr("data-stale", stale),
            ],
            Some(&tip),
        );
        if d.truncated {
            svg.rect(
                LEFT,
                y + 4.0,
                w,
                ROW - 8.0,
                &[attr("fill", format!("url(#{chart}-p1)"))],
                None,
            );
        }
        svg.text(
            LEFT + w + 6.0,
            y + ROW / 2.0 + 4.0,
            &format!(
                "{}{}{}",
                format_age(*age),
                if stale { " (stale)" } else { "" },
                if d.truncated { " (truncated)" } else { "" }
            ),
            &[],
        );
    }
    let bottom = TOP + dumps.len().max(1) as f64 * ROW;
    let x = LEFT + max_age_s as f64 * scale;
    svg.line(
        x,
        TOP,
        x,
        bottom + 4.0,
        &[attr("stroke", "#C00"), attr("stroke-dasharray", "4 3")],
    );
    svg.text(
        x,
        bottom + 18.0,
        &format!("maximum age {}", format_age(max_age_s)),
        &[attr("text-anchor", "middle")],
    );
    svg.text(
        LEFT,
        bottom + 32.0,
        &format!("age at {}", timestamp::display_unix(at)),
        &[],
    );
    svg.finish()
}
