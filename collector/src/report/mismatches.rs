//! `report mismatches`: the mismatch and ambiguous traces, grouped by (agent, target /24,
//! entry AS, announced upstreams) by default, or every trace with `--each`.

use std::collections::BTreeMap;

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
/// entry TTL, each: `TTL 5 219.158.1.1 (AS4837), 188.43.225.153 (AS20485)`. For a multipath
/// trace the branch the verdict rests on comes first: `branch 2 (10.0.0.1 > …): TTL 5 …`.
pub fn entry_hop_label(a: &TraceAnalysis) -> String {
    let hop = entry_hop_only(a);
    match a.named_branch() {
        Some((n, branch)) => format!("branch {n} ({branch}): {hop}"),
        None => hop,
    }
}

fn entry_hop_only(a: &TraceAnalysis) -> String {
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

fn is_listed(a: &TraceAnalysis) -> bool {
    matches!(
        a.verdict.kind,
        VerdictKind::Mismatch | VerdictKind::Ambiguous
    )
}

/// What groups the traces of the grouped report.
type GroupKey = (String, String, String, Vec<u32>, String);

/// Builds the grouped report: one row per (agent, target /24, entry AS, announced upstreams),
/// with the first and last trace's time, the number of traces and the hop that shows the
/// entry (the latest trace's; how many distinct hops showed it).
pub fn report(analyses: &[TraceAnalysis]) -> Vec<Table> {
    let mut t = Table::new(
        "Mismatch and ambiguous traces grouped by agent, target /24, entry AS and announced \
         upstreams (--each lists every trace)",
        &[
            "agent",
            "target",
            "entry_as",
            "announced_prefix",
            "announced_upstreams",
            "verdicts",
            "first",
            "last",
            "traces",
            "transitional",
            "entry_hop",
            "entry_hops",
            "source",
        ],
    );
    t.notes.push(
        "entry_hop: the hop that shows the entry in the group's latest trace; entry_hops: how \
         many distinct hops showed it; transitional: traces near a change of the announced set"
            .into(),
    );
    let mut groups: BTreeMap<GroupKey, Vec<&TraceAnalysis>> = BTreeMap::new();
    for a in analyses.iter().filter(|a| is_listed(a)) {
        let prefix = a
            .announced_prefix()
            .map_or_else(String::new, |p| p.prefix.to_string());
        let upstreams = a
            .announced_prefix()
            .map(|p| p.upstreams.iter().copied().collect())
            .unwrap_or_default();
        groups
            .entry((
                a.trace.agent_id.clone(),
                a.target_24().to_string(),
                a.entry_label(),
                upstreams,
                prefix,
            ))
            .or_default()
            .push(a);
    }
    for ((agent, target, _, upstreams, prefix), members) in groups {
        let first = members.iter().map(|m| m.trace.started_at).min();
        let latest = members
            .iter()
            .max_by_key(|m| m.trace.started_at)
            .expect("a group has a trace");
        let mut verdicts: Vec<&str> = members.iter().map(|m| m.verdict.kind.as_str()).collect();
        verdicts.sort_unstable();
        verdicts.dedup();
        let mut hops: Vec<String> = members.iter().map(|m| entry_hop_label(m)).collect();
        hops.sort_unstable();
        hops.dedup();
        t.push_cells(vec![
            Cell::name(agent),
            Cell::name(target),
            entry_as_cell(latest),
            Cell::name(prefix),
            Cell::asns(upstreams),
            Cell::name(verdicts.join(" ")),
            first.map_or_else(Cell::missing, |f| Cell::name(timestamp::display(f))),
            Cell::name(timestamp::display(latest.trace.started_at)),
            Cell::count(members.len()),
            Cell::count(members.iter().filter(|m| m.transitional).count()),
            Cell::name(entry_hop_label(latest)),
            Cell::count(hops.len()),
            Cell::name(latest.source_kind()),
        ]);
    }
    vec![t]
}

/// Builds the report of every trace (`--each`).
pub fn report_each(analyses: &[TraceAnalysis]) -> Vec<Table> {
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
    for a in analyses.iter().filter(|a| is_listed(a)) {
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
