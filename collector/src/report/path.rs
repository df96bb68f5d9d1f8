//! `report path`: one trace drawn hop by hop.

use std::net::Ipv4Addr;

use nkpath_proto::{ReplyKind, timestamp};
use serde_json::json;

use super::mismatches::set_label;

use super::{Cell, Table};
use crate::analysis::trace::format_age;
use crate::analysis::{HopClass, MultipathAnalysis, TraceAnalysis};

/// The latest trace of `agent` to `target`, the one [`report`] draws.
pub fn latest<'a>(
    analyses: &'a [TraceAnalysis],
    agent: &str,
    target: Ipv4Addr,
) -> Option<&'a TraceAnalysis> {
    analyses
        .iter()
        .filter(|a| a.trace.agent_id == agent && a.trace.target == target)
        .max_by_key(|a| a.trace.started_at)
}

/// The latest trace of `agent` to `target`, drawn hop by hop; `None` when there is none.
pub fn report(analyses: &[TraceAnalysis], agent: &str, target: Ipv4Addr) -> Option<Vec<Table>> {
    let a = latest(analyses, agent, target)?;
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
    let shared: Vec<String> = a
        .hops
        .iter()
        .filter(|h| h.replies.len() > 1)
        .map(|h| h.ttl.to_string())
        .collect();
    if !shared.is_empty() {
        t.notes.push(format!(
            "several addresses replied at TTL {}: one row each, as traceroute prints them",
            shared.join(", ")
        ));
    }
    for h in &a.hops {
        if h.replies.is_empty() {
            let mut note = Vec::new();
            if h.inherited {
                note.push("inherited".to_owned());
            }
            t.push_cells(vec![
                Cell::int(h.ttl),
                Cell::with_json("*", serde_json::Value::Null),
                Cell::with_json("", serde_json::Value::Null),
                Cell::name(""),
                Cell::with_json("", serde_json::Value::Null),
                Cell::name(note.join(", ")),
            ]);
            continue;
        }
        for r in &h.replies {
            let at = Some((h.ttl, r.address));
            let mut note = Vec::new();
            if a.entry.hop == at {
                note.push("entry".to_owned());
            }
            if let Some((ttl, ases)) = &a.entry.several
                && *ttl == h.ttl
                && ases.iter().any(|(_, x)| *x == r.address)
            {
                note.push("one of several entry ASes".to_owned());
            }
            if a.entry.target_hop == at {
                note.push("target AS".to_owned());
            }
            if h.replies.len() > 1 {
                note.push(format!("answered {} of {} probes", r.answered, h.probes));
            }
            if let Some(m) = r.mapping.as_ref().filter(|m| m.thin()) {
                note.push(format!("flagged: {m}"));
            }
            if r.mpls_labels > 0 {
                note.push(format!("MPLS ({} labels)", r.mpls_labels));
            }
            if h.inherited {
                note.push("inherited".to_owned());
            }
            if let Some(code) = r.kind.and_then(ReplyKind::unreachable) {
                note.push(format!("unreachable code {code}"));
            }
            t.push_cells(vec![
                Cell::int(h.ttl),
                Cell::name(r.address.to_string()),
                hop_class_cell(&r.class),
                Cell::name(r.name.clone().unwrap_or_default()),
                Cell::decimal(f64::from(r.rtt_us) / 1000.0, 3),
                Cell::name(note.join(", ")),
            ]);
        }
    }
    let mut tables = vec![t];
    if let Some(m) = &a.multipath {
        tables.push(diamond(a, m));
        tables.push(branches(m));
    }
    Some(tables)
}

/// A multipath trace's diamond: per TTL each interface, with the interfaces it was reached
/// from (the near ends of its links), so the branches can be followed row by row.
fn diamond(a: &TraceAnalysis, m: &MultipathAnalysis) -> Table {
    let mut t = Table::new(
        format!(
            "Diamond of multipath trace {}: interfaces per TTL and their links",
            m.result.result_id
        ),
        &["ttl", "interface", "as", "from", "flows", "note"],
    );
    t.notes.push(format!(
        "{} probes, {} flows{}; from: the interfaces of the previous TTLs each link comes \
         from (@TTL when silent TTLs lie between)",
        m.result.probes_sent,
        m.result.flows.len(),
        if m.result.budget_hit {
            "; the probe or time budget ended it (budget_hit)"
        } else {
            ""
        }
    ));
    for hop in &m.result.hops {
        let class = |address: Ipv4Addr| {
            a.hops
                .iter()
                .find(|h| h.ttl == hop.ttl)
                .and_then(|h| h.reply_of(address))
                .map(|r| r.class.clone())
        };
        let mut note = Vec::new();
        if hop.per_packet {
            note.push("per-packet balancer: not a diamond".to_owned());
        }
        if !hop.silent_flows.is_empty() {
            note.push(format!("{} flows silent", hop.silent_flows.len()));
        }
        if hop.interfaces.is_empty() {
            t.push_cells(vec![
                Cell::int(hop.ttl),
                Cell::with_json("*", serde_json::Value::Null),
                Cell::with_json("", serde_json::Value::Null),
                Cell::name(""),
                Cell::int(0),
                Cell::name(note.join(", ")),
            ]);
            continue;
        }
        for interface in &hop.interfaces {
            let from: Vec<String> = m
                .result
                .links
                .iter()
                .filter(|l| l.far_ttl == hop.ttl && l.far == interface.address)
                .map(|l| {
                    if l.near_ttl + 1 == l.far_ttl {
                        l.near.to_string()
                    } else {
                        format!("{}@{}", l.near, l.near_ttl)
                    }
                })
                .collect();
            t.push_cells(vec![
                Cell::int(hop.ttl),
                Cell::name(interface.address.to_string()),
                class(interface.address).map_or_else(
                    || Cell::with_json("", serde_json::Value::Null),
                    |c| hop_class_cell(&c),
                ),
                Cell::name(from.join(" ")),
                Cell::count(interface.flows.len()),
                Cell::name(note.join(", ")),
            ]);
        }
    }
    t
}

/// Each branch of a multipath trace with its entry AS and verdict.
fn branches(m: &MultipathAnalysis) -> Table {
    let mut t = Table::new(
        "Branches: each distinct path to the target AS, with its entry AS and verdict",
        &[
            "branch",
            "path",
            "entry_as",
            "entry_hop",
            "verdict",
            "reason",
        ],
    );
    if m.truncated {
        t.notes.push(format!(
            "more than {} branches: only the first are listed and judged",
            crate::analysis::multipath::MAX_BRANCHES
        ));
    }
    if m.multi_entry {
        t.notes
            .push("multi-entry: the branches enter through several announced upstreams".into());
    }
    for (i, b) in m.branches.iter().enumerate() {
        t.push_cells(vec![
            Cell::count(i + 1),
            Cell::name(b.branch.to_string()),
            Cell::asn(b.entry.asn),
            Cell::name(
                b.entry
                    .hop
                    .map_or_else(String::new, |(ttl, addr)| format!("TTL {ttl} {addr}")),
            ),
            Cell::name(b.verdict.kind.to_string()),
            Cell::name(b.verdict.reason.clone()),
        ]);
    }
    t
}

/// A hop's class: its text (`AS4837`, `IXP DE-CIX`, `private`, …), in JSON an object with
/// the class name and, where it has them, the AS number(s) or the exchange's name.
fn hop_class_cell(class: &HopClass) -> Cell {
    let kind = class.kind();
    let json = match class {
        HopClass::As(asn) => json!({ "class": kind, "asn": asn }),
        HopClass::MultiOrigin(asns) => json!({ "class": kind, "asns": asns }),
        HopClass::Ixp(name) => json!({ "class": kind, "ixp": name }),
        HopClass::Private | HopClass::Shared | HopClass::Unmapped => json!({ "class": kind }),
    };
    Cell::with_json(class.to_string(), json)
}
