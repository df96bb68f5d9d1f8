//! `report mismatches`: every mismatch and ambiguous trace.

use nkpath_proto::timestamp;

use super::{Table, as_label};
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

/// The hop that shows the entry: `TTL 5 196.49.1.2 (AS22351)`.
pub fn entry_hop_label(a: &TraceAnalysis) -> String {
    a.entry.hop.map_or_else(String::new, |(ttl, addr)| {
        format!("TTL {ttl} {addr} ({})", as_label(a.entry.asn))
    })
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
        t.push(vec![
            timestamp::display(a.trace.started_at),
            a.trace.agent_id.clone(),
            a.trace.target.to_string(),
            as_label(a.entry.asn),
            a.entry.inferred.to_string(),
            a.verdict.kind.to_string(),
            a.verdict.reason.clone(),
            a.announced_prefix()
                .map_or_else(String::new, |p| p.prefix.to_string()),
            set_label(a),
            entry_hop_label(a),
            a.transitional.to_string(),
            a.bgp_age_s.map_or_else(|| "-".into(), format_age),
            a.source_kind().to_owned(),
            a.trace.result_id.to_string(),
        ]);
    }
    vec![t]
}
