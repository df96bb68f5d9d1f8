//! `report upstreams`: the share of the data plane entering through each upstream, beside
//! the announced upstreams with their visibility over the same period.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use time::OffsetDateTime;

use nkpath_proto::timestamp;

use super::{Cell, ReportError, Table};
use crate::analysis::TraceAnalysis;
use crate::analysis::trace::format_age;
use crate::analysis::units::unit_entries;
use crate::bgp::timeline::{loaded_span, visibility_over, walk_target_routes};
use crate::store::Db;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum By {
    /// One group for the whole period.
    #[default]
    All,
    /// Per UTC day of the traces' start.
    Day,
    /// Per agent.
    Agent,
    /// Per announced prefix (the most specific one covering the target).
    Prefix,
}

/// What one counted unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Count {
    /// One (agent, target /24, round), with the majority entry AS of its traces.
    #[default]
    Units,
    /// One trace.
    Traces,
    /// One target address, with the majority entry AS of its traces.
    Targets,
}

impl Count {
    /// What one unit is, for titles and captions.
    pub fn header(self) -> &'static str {
        match self {
            Self::Units => "units of (agent, target /24, round), majority entry AS of its traces",
            Self::Traces => "traces",
            Self::Targets => "target addresses, majority entry AS of their traces",
        }
    }
}

fn group_of(a: &TraceAnalysis, by: By) -> String {
    match by {
        By::All => "all".into(),
        By::Day => a.trace.started_at.date().to_string(),
        By::Agent => a.trace.agent_id.clone(),
        By::Prefix => a
            .announced_prefix()
            .map_or_else(|| "not announced".into(), |p| p.prefix.to_string()),
    }
}

/// Counted units of one group, per entry AS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// Units whose entry was observed (an unknown entry counts here).
    pub(super) observed: usize,
    /// Units whose entry was inferred.
    pub(super) inferred: usize,
    /// Units with a trace judged against BGP data older than the maximum age: counted apart,
    /// never in `observed` or `inferred`, nor in the shares.
    pub(super) stale: usize,
}

/// Whether a trace was judged against BGP data older than the maximum age (verdict
/// `unknown`, `stale-bgp`): its hops were mapped with that old data, so its entry AS says
/// little about the period.
fn judged_with_stale_bgp(a: &TraceAnalysis) -> bool {
    a.verdict.reason.starts_with("stale-bgp")
}

/// Counted entries of one group: entry AS (`None`: unknown) → counts. A unit with a trace
/// judged with stale BGP counts as stale, whatever its other traces; a unit whose
/// multipath traces enter through several ASes counts once for each
/// ([`crate::analysis::units`]).
pub(super) fn count(group: &[&TraceAnalysis], count: Count) -> BTreeMap<Option<u32>, Counts> {
    /// A unit's entries (entry AS, inferred) per trace, and whether a trace was judged
    /// stale.
    type Unit = (Vec<Vec<(Option<u32>, bool)>>, bool);
    let mut units: BTreeMap<String, Unit> = BTreeMap::new();
    for (i, a) in group.iter().enumerate() {
        let key = match count {
            Count::Units => format!(
                "{}|{}|{}",
                a.trace.agent_id,
                a.target_24(),
                a.trace.round_id
            ),
            Count::Traces => i.to_string(),
            Count::Targets => a.trace.target.to_string(),
        };
        let unit = units.entry(key).or_default();
        unit.0.push(a.entry_ases());
        unit.1 |= judged_with_stale_bgp(a);
    }
    let mut out: BTreeMap<Option<u32>, Counts> = BTreeMap::new();
    for (entries, stale) in units.values() {
        // A unit of multi-entry traces counts once for each of its entry ASes.
        for e in unit_entries(entries) {
            let c = out.entry(e.asn).or_default();
            if *stale {
                c.stale += 1;
            } else if e.inferred {
                c.inferred += 1;
            } else {
                c.observed += 1;
            }
        }
    }
    out
}

/// The range of the ages of the BGP states the traces were judged against, and how many
/// were too old (verdict `unknown`, `stale-bgp`).
fn bgp_age_note(analyses: &[TraceAnalysis]) -> String {
    let ages: Vec<i64> = analyses.iter().filter_map(|a| a.bgp_age_s).collect();
    let stale = analyses
        .iter()
        .filter(|a| a.verdict.reason.starts_with("stale-bgp"))
        .count();
    let without = analyses.len() - ages.len();
    match (ages.iter().min(), ages.iter().max()) {
        (Some(lo), Some(hi)) => format!(
            "BGP state age at the traces: {} to {}; {stale} traces with stale BGP, {without} \
             without BGP data (verdict unknown)",
            format_age(*lo),
            format_age(*hi)
        ),
        _ if analyses.is_empty() => "no traces in the period".to_owned(),
        _ => format!("no BGP state for any of the {without} traces"),
    }
}

/// The period to report on when no trace falls in it: the loaded BGP data's span, so an
/// operator who loaded BGP first still sees the control plane.
pub fn bgp_period(db: &Db) -> Result<Option<(OffsetDateTime, OffsetDateTime)>, ReportError> {
    Ok(match loaded_span(db)? {
        Some((a, b)) => Some((
            OffsetDateTime::from_unix_timestamp(a).map_err(|_| ReportError::TimeOutOfRange(a))?,
            OffsetDateTime::from_unix_timestamp(b).map_err(|_| ReportError::TimeOutOfRange(b))?,
        )),
        None => None,
    })
}

/// Builds the report over `analyses` for the period [from, to].
pub fn report(
    db: &Db,
    analyses: &[TraceAnalysis],
    by: By,
    unit: Count,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Table>, ReportError> {
    let mut groups: BTreeMap<(String, &str), Vec<&TraceAnalysis>> = BTreeMap::new();
    for a in analyses {
        groups
            .entry((group_of(a, by), a.source_kind()))
            .or_default()
            .push(a);
    }
    let mut data = Table::new(
        format!(
            "Data plane: entry AS into the target AS, counted in {}",
            unit.header()
        ),
        &[
            "group", "source", "entry_as", "observed", "inferred", "total", "share", "stale",
        ],
    );
    data.notes.push(format!(
        "period {} to {}",
        timestamp::display(from),
        timestamp::display(to)
    ));
    data.notes.push(
        "observed: entry hop directly before the first target-AS hop; inferred: gaps, \
         non-public hops or no answer from the target AS in between; unknown: no entry AS \
         (neither observed nor inferred)"
            .into(),
    );
    data.notes.push(
        "stale: units with a trace judged against BGP data older than the maximum age \
         (verdict unknown, stale-bgp): counted apart, in neither observed, inferred, total nor \
         share"
            .into(),
    );
    data.notes.push(
        "multi-entry: a unit whose multipath traces' branches enter through several announced \
         upstreams counts once for each of them (shares are of unit and entry AS pairs)"
            .into(),
    );
    data.notes.push(bgp_age_note(analyses));
    data.notes.push(
        "source: agents = nkpath agents; atlas, scamper = imported public traces, counted \
         apart"
            .into(),
    );
    for ((group, source), members) in &groups {
        let counts = count(members, unit);
        let total: usize = counts.values().map(|c| c.observed + c.inferred).sum();
        for (asn, c) in &counts {
            let (o, i) = match asn {
                Some(_) => (c.observed.to_string(), c.inferred.to_string()),
                None => ("-".to_owned(), "-".to_owned()),
            };
            data.push_cells(vec![
                group.clone().into(),
                (*source).into(),
                Cell::asn(*asn),
                o.into(),
                i.into(),
                (c.observed + c.inferred).to_string().into(),
                Cell::share(c.observed + c.inferred, total),
                Cell::count(c.stale),
            ]);
        }
    }
    let announced = control_plane(db, analyses, &groups, by, from, to)?;
    Ok(vec![data, announced])
}

/// A group's period and the announced upstreams of each prefix its traces met.
type GroupUpstreams = (
    OffsetDateTime,
    OffsetDateTime,
    BTreeMap<Ipv4Net, BTreeSet<u32>>,
);

/// The announced upstreams of the prefixes the traces of each group met, or, with no
/// traces, of every target-AS prefix in the loaded BGP data, with their visibility.
fn control_plane(
    db: &Db,
    analyses: &[TraceAnalysis],
    groups: &BTreeMap<(String, &str), Vec<&TraceAnalysis>>,
    by: By,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Table, ReportError> {
    let mut announced = Table::new(
        "Control plane: announced upstreams, visibility = collector peers whose route has the \
         upstream directly before the target AS / peers with a route, time-weighted over the period",
        &[
            "group",
            "prefix",
            "upstream",
            "mean_pct",
            "min",
            "max",
            "covered_s",
        ],
    );
    let mut per_group: BTreeMap<String, GroupUpstreams> = BTreeMap::new();
    if analyses.is_empty() {
        announced
            .notes
            .push("no traces in the period: every target-AS prefix of the loaded BGP data".into());
        per_group.insert("all".into(), (from, to, announced_in_bgp(db, from, to)?));
    }
    for ((group, _), members) in groups {
        let (a, b) = match by {
            By::Day => {
                let first = members
                    .iter()
                    .map(|m| m.trace.started_at)
                    .min()
                    .unwrap_or(from);
                let start = first.replace_time(time::Time::MIDNIGHT);
                (
                    start.max(from),
                    start
                        .checked_add(time::Duration::days(1))
                        .unwrap_or(to)
                        .min(to),
                )
            }
            _ => (from, to),
        };
        let entry = per_group
            .entry(group.clone())
            .or_insert_with(|| (a, b, BTreeMap::new()));
        for m in members {
            let prefixes = if by == By::Prefix {
                m.announced.iter().take(1).collect::<Vec<_>>()
            } else {
                m.announced.iter().collect()
            };
            for p in prefixes {
                entry.2.entry(p.prefix).or_default().extend(&p.upstreams);
            }
        }
    }
    for (group, (a, b, upstreams)) in per_group {
        for (prefix, ups) in upstreams {
            for upstream in ups {
                let v = visibility_over(db, prefix, upstream, a, b)?;
                let nd = |v: Option<crate::bgp::Visibility>| {
                    v.map_or_else(Cell::missing, |v| {
                        Cell::share(v.peers_via_upstream, v.peers_with_route)
                    })
                };
                announced.push_cells(vec![
                    group.clone().into(),
                    prefix.to_string().into(),
                    Cell::asn(Some(upstream)),
                    v.mean
                        .map_or_else(|| "-".into(), |m| format!("{:.1}", 100.0 * m))
                        .into(),
                    nd(v.min),
                    nd(v.max),
                    v.covered_seconds.to_string().into(),
                ]);
            }
        }
    }
    Ok(announced)
}

/// Every target-AS prefix with its upstreams announced at some time in [from, to].
pub(super) fn announced_in_bgp(
    db: &Db,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<BTreeMap<Ipv4Net, BTreeSet<u32>>, ReportError> {
    let target_asn = db.target()?.asn;
    let mut out: BTreeMap<Ipv4Net, BTreeSet<u32>> = BTreeMap::new();
    walk_target_routes(
        db,
        from.unix_timestamp(),
        to.unix_timestamp(),
        |_, view, _| {
            for prefix in view.prefixes() {
                let ann = view.announced_upstreams(prefix, target_asn);
                out.entry(prefix)
                    .or_default()
                    .extend(ann.upstreams.keys().copied());
            }
        },
    )?;
    out.retain(|_, ups| !ups.is_empty());
    Ok(out)
}
