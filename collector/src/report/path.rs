//! `report path`: one trace drawn hop by hop.

use std::net::Ipv4Addr;

use nkpath_proto::ReplyKind;

use super::mismatches::set_label;
use nkpath_proto::timestamp;

use super::Table;
use crate::analysis::TraceAnalysis;
use crate::analysis::trace::format_age;

/// The latest trace of `agent` to `target`, drawn hop by hop; `None` when there is none.
pub fn report(analyses: &[TraceAnalysis], agent: &str, target: Ipv4Addr) -> Option<Vec<Table>> {
    let a = analyses
        .iter()
        .filter(|a| a.trace.agent_id == agent && a.trace.target == target)
        .max_by_key(|a| a.trace.started_at)?;
    let mut t = Table::new(
        format!(
            "Trace {} from {agent} ({}) to {target} at {}",
            a.trace.result_id,
            a.trace.source,
            timestamp::display(a.trace.started_at)
        ),
        &["ttl", "address", "as", "name", "rtt_ms", "note"],
    );
    t.notes.push(format!(
        "entry {}; verdict {}{}; announced {} {{{}}}{}",
        a.entry_label(),
        a.verdict.kind,
        if a.verdict.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.verdict.reason)
        },
        a.announced_prefix()
            .map_or_else(|| "-".into(), |p| p.prefix.to_string()),
        set_label(a),
        if a.transitional { "; transitional" } else { "" }
    ));
    t.notes.push(match a.bgp_age_s {
        Some(age) => format!("BGP state {} old at the trace's start", format_age(age)),
        None => "no BGP state at the trace's start".to_owned(),
    });
    if let Some(c) = &a.peer_comparison {
        let path: Vec<String> = c.bgp_path.iter().map(|x| format!("AS{x}")).collect();
        t.notes.push(format!(
            "collector peer {} path {}: {}",
            c.peer,
            path.join(" "),
            if c.same() {
                "same ASes as the data plane".to_owned()
            } else {
                format!(
                    "missing from data plane {:?}, extra in data plane {:?}",
                    c.missing, c.extra
                )
            }
        ));
    }
    for h in &a.hops {
        let mut note = Vec::new();
        if a.entry.hop.is_some_and(|(ttl, _)| ttl == h.ttl) {
            note.push("entry".to_owned());
        }
        if a.entry.target_hop.is_some_and(|(ttl, _)| ttl == h.ttl) {
            note.push("target AS".to_owned());
        }
        if let Some(m) = h.mapping.as_ref().filter(|m| m.thin()) {
            note.push(format!("flagged: {m}"));
        }
        if h.mpls_labels > 0 {
            note.push(format!("MPLS ({} labels)", h.mpls_labels));
        }
        if h.inherited {
            note.push("inherited".to_owned());
        }
        if let Some(code) = h.kind.and_then(ReplyKind::unreachable) {
            note.push(format!("unreachable code {code}"));
        }
        t.push(vec![
            h.ttl.to_string(),
            h.address.map_or_else(|| "*".into(), |x| x.to_string()),
            h.class
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            h.name.clone().unwrap_or_default(),
            h.rtt_us
                .map_or_else(String::new, |r| format!("{:.3}", f64::from(r) / 1000.0)),
            note.join(", "),
        ]);
    }
    Some(vec![t])
}
