//! `report mismatches`: every mismatch and ambiguous trace.

use nkpath_proto::timestamp;

use super::{Cell, Table, as_label};
use crate::analysis::trace::format_age;
use crate::analysis::{TraceAnalysis, VerdictKind};

/// The announced set as `AS4837 AS20485`.
pub fn set_label(a: &TraceAnalysis) -> String {
    a.announced_prefix().map_or_else(String::new, |p| {
        p.upstreams
            .iter()
            .map(|u| format!("AS{u}"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// The hop that shows the entry: `TTL 5 196.49.1.2 (AS22351)`; with several ASes at the
/// entry TTL, each: `TTL 5 219.158.1.1 (AS4837), 188.43.225.153 (AS20485)`.
pub fn entry_hop_label(a: &TraceAnalysis) -> String {
    if let Some((ttl, ases)) = &a.entry.several {
        let list: Vec<String> = ases
            .iter()
            .map(|(asn, addr)| format!("{addr} (AS{asn})"))
            .collect();
        return format!("TTL {ttl} {}", list.join(", "));
    }
    a.entry.hop.map_or_else(String::new, |(ttl, addr)| {
        format!("TTL {ttl} {addr} ({})", as_label(a.entry.asn))
    })
}

/// The entry AS: in JSON its number, `null` when unknown or when several ASes replied at
/// the entry TTL (the text then names them, as do the reason and the entry hop).
fn entry_as_cell(a: &TraceAnalysis) -> Cell {
    if a.entry.several.is_some() {
        return Cell::with_json(a.entry_label(), serde_json::Value::Null);
    }
    Cell::asn(a.entry.asn)
}

/// Builds the report.
pub fn report(analyses: &[TraceAnalysis]) -> Vec<Table> {
    let mut t = Table::new(
        "Traces whose entry AS is not announced (mismatch) or sits next to an announced upstream (ambiguous)",
        &[
            "time",
            "agent",
            "target",
            "entry_as",
            "inferred",
            "verdict",
            "reason",
            "announced_prefix",
            "announced_upstreams",
            "entry_hop",
            "transitional",
            "bgp_age",
            "source",
            "result_id",
        ],
    );
    for a in analyses {
        if !matches!(
            a.verdict.kind,
            VerdictKind::Mismatch | VerdictKind::Ambiguous
        ) {
            continue;
        }
        t.push_cells(vec![
            Cell::name(timestamp::display(a.trace.started_at)),
            Cell::name(a.trace.agent_id.clone()),
            Cell::name(a.trace.target.to_string()),
            entry_as_cell(a),
            Cell::bool(a.entry.inferred),
            Cell::name(a.verdict.kind.to_string()),
            Cell::name(a.verdict.reason.clone()),
            Cell::name(
                a.announced_prefix()
                    .map_or_else(String::new, |p| p.prefix.to_string()),
            ),
            Cell::asns(
                a.announced_prefix()
                    .map(|p| p.upstreams.iter().copied().collect::<Vec<_>>())
                    .unwrap_or_default(),
            ),
            Cell::name(entry_hop_label(a)),
            Cell::bool(a.transitional),
            a.bgp_age_s
                .map_or_else(Cell::missing, |age| Cell::name(format_age(age))),
            Cell::name(a.source_kind()),
            Cell::name(a.trace.result_id.to_string()),
        ]);
    }
    vec![t]
}
