//! `report changes`: upstreams appearing and disappearing in BGP, and entry ASes changing in
//! the data plane, on one timeline.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use nkpath_proto::timestamp;

use super::{Table, as_label};
use crate::analysis::TraceAnalysis;
use crate::analysis::units::{UnitEntry, unit_entry};
use crate::bgp::timeline::{TABLE_TRANSFER_S, UpstreamChanges};

/// One round of one (agent, /24): when it started and its unit entry.
fn rounds(
    analyses: &[TraceAnalysis],
) -> BTreeMap<(String, String), Vec<(OffsetDateTime, UnitEntry)>> {
    type Unit = (OffsetDateTime, Vec<(Option<u32>, bool)>);
    let mut units: BTreeMap<(String, String, String), Unit> = BTreeMap::new();
    for a in analyses {
        let key = (
            a.trace.agent_id.clone(),
            a.target_24().to_string(),
            a.trace.round_id.to_string(),
        );
        let u = units
            .entry(key)
            .or_insert_with(|| (a.trace.started_at, Vec::new()));
        u.0 = u.0.min(a.trace.started_at);
        u.1.push((a.entry.asn, a.entry.inferred));
    }
    let mut out: BTreeMap<(String, String), Vec<(OffsetDateTime, UnitEntry)>> = BTreeMap::new();
    for ((agent, net, _), (start, entries)) in units {
        out.entry((agent, net))
            .or_default()
            .push((start, unit_entry(&entries)));
    }
    for v in out.values_mut() {
        v.sort_by_key(|(t, _)| *t);
    }
    out
}

/// Builds the report from the BGP changes of the period and the analysed traces.
pub fn report(bgp: &UpstreamChanges, analyses: &[TraceAnalysis]) -> Vec<Table> {
    let mut t = Table::new(
        "Upstream changes: BGP (announced set per prefix, collector peers) and data plane \
         (entry AS per agent and target /24, one unit per round)",
        &["time", "plane", "subject", "change", "detail"],
    );
    if let Some(at) = bgp.baseline_time {
        t.notes
            .push(format!("BGP baseline at {}:", timestamp::display_unix(at)));
        for (prefix, set) in &bgp.baseline {
            let list: Vec<String> = set.iter().map(|a| format!("AS{a}")).collect();
            t.notes.push(format!("  {prefix}: {}", list.join(" ")));
        }
        if bgp.baseline.is_empty() {
            t.notes
                .push("  no prefix inside or covering the target block from the target AS".into());
        }
    }
    t.notes.push(format!(
        "baseline ASn: an upstream brought only by the initial table of peers whose session came \
         up (their first announcement of the prefix within {} min of it): their baseline, not a \
         change",
        TABLE_TRANSFER_S / 60
    ));
    let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
    for c in &bgp.changes {
        rows.push((
            c.time,
            vec![
                timestamp::display_unix(c.time),
                "bgp".into(),
                c.prefix.to_string(),
                format!("{}AS{}", if c.appeared { "+" } else { "-" }, c.upstream),
                format!(
                    "{} ({}/{} peers)",
                    if c.appeared {
                        "appeared"
                    } else {
                        "disappeared"
                    },
                    c.peers_via_upstream,
                    c.peers_with_route
                ),
            ],
        ));
    }
    for b in &bgp.peer_baselines {
        let peers: Vec<String> = b
            .peers
            .iter()
            .map(|(address, asn)| format!("{address} AS{asn}"))
            .collect();
        rows.push((
            b.time,
            vec![
                timestamp::display_unix(b.time),
                "bgp".into(),
                b.prefix.to_string(),
                format!("baseline AS{}", b.upstream),
                format!(
                    "initial table of {} after its session came up, not a change ({}/{} peers)",
                    peers.join(", "),
                    b.peers.len(),
                    b.peers_with_route
                ),
            ],
        ));
    }
    for ((agent, net), rounds) in rounds(analyses) {
        for pair in rounds.windows(2) {
            let ((_, before), (at, after)) = (pair[0], pair[1]);
            if before.asn == after.asn {
                continue;
            }
            let label = |e: UnitEntry| {
                format!(
                    "{}{}",
                    as_label(e.asn),
                    if e.inferred { " (inferred)" } else { "" }
                )
            };
            rows.push((
                at.unix_timestamp(),
                vec![
                    timestamp::display(at),
                    "data".into(),
                    format!("{agent} {net}"),
                    format!("{} -> {}", as_label(before.asn), as_label(after.asn)),
                    format!("{} -> {}", label(before), label(after)),
                ],
            ));
        }
    }
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, row) in rows {
        t.push(row);
    }
    vec![t]
}
