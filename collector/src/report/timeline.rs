//! Upstreams per time bin: the data plane's entry-AS shares and the control plane's announced
//! upstreams with their visibility, per target /24 and bin. `report upstreams --bin` lists
//! these numbers and `report html` draws the same values, so what a chart shows is what the
//! JSON report says.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use nkpath_proto::timestamp;
use time::OffsetDateTime;

use super::bins::{BinSize, BinVisibility, Bins, visibility_per_bin};
use super::upstreams::{Count, announced_in_bgp, count};
use super::{Cell, ReportError, Table};
use crate::analysis::{TraceAnalysis, VerdictKind};
use crate::bgp::timeline::{UpstreamChange, upstream_changes, visibility_over};
use crate::store::Db;

/// The traces of one target /24 from one source, or with no traces an announced prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PanelKey {
    /// The target /24 (or, with no traces, the announced prefix).
    pub target: Ipv4Net,
    /// `agents`, `atlas`, `scamper`; `None` for a prefix without traces.
    pub source: Option<&'static str>,
}

impl PanelKey {
    /// `175.45.176.0/24 (agents)`.
    pub fn label(&self) -> String {
        match self.source {
            Some(s) => format!("{} ({s})", self.target),
            None => self.target.to_string(),
        }
    }
}

/// The data plane of one panel in one bin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataBin {
    /// Counted units per entry AS (`None`: unknown).
    pub entries: BTreeMap<Option<u32>, EntryCount>,
    /// Units in the shares: every unit not judged with stale BGP.
    pub of: usize,
    /// Units with a trace judged against stale BGP: counted apart.
    pub stale: usize,
    /// Traces with verdict mismatch.
    pub mismatches: usize,
    /// Traces in the bin.
    pub traces: usize,
}

/// Units of one entry AS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryCount {
    /// Observed entries.
    pub observed: usize,
    /// Inferred entries.
    pub inferred: usize,
    /// Stale units (not in `observed`, `inferred` or the share).
    pub stale: usize,
}

impl EntryCount {
    /// Units in the share.
    pub fn n(&self) -> usize {
        self.observed + self.inferred
    }
}

/// One panel: the data plane of a /24 and the control plane of the prefixes announced for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// What the panel shows.
    pub key: PanelKey,
    /// Per bin (empty without traces).
    pub data: Vec<DataBin>,
    /// The announced prefixes covering it (most specific of each trace), each upstream and
    /// its visibility per bin.
    pub control: BTreeMap<Ipv4Net, BTreeMap<u32, Vec<BinVisibility>>>,
}

/// Everything per bin, for the tables and the charts.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The period.
    pub from: OffsetDateTime,
    /// The period's end.
    pub to: OffsetDateTime,
    /// The bins.
    pub bins: Bins,
    /// What a unit is.
    pub unit: Count,
    /// One panel per target /24 and source.
    pub panels: Vec<Panel>,
    /// Changes of the announced sets in the period.
    pub changes: Vec<UpstreamChange>,
}

/// Builds the timeline of `analyses` over `[from, to]`.
pub fn build(
    db: &Db,
    analyses: &[TraceAnalysis],
    unit: Count,
    size: BinSize,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Timeline, ReportError> {
    let (a, b) = (from.unix_timestamp(), to.unix_timestamp());
    let bins = Bins::over(a, b, size).map_err(|e| ReportError::Bins(e.to_string()))?;
    let mut groups: BTreeMap<(PanelKey, usize), Vec<&TraceAnalysis>> = BTreeMap::new();
    let mut prefixes: BTreeMap<PanelKey, BTreeSet<Ipv4Net>> = BTreeMap::new();
    for t in analyses {
        let key = PanelKey {
            target: t.target_24(),
            source: Some(t.source_kind()),
        };
        let announced = prefixes.entry(key.clone()).or_default();
        if let Some(p) = t.announced_prefix() {
            announced.insert(p.prefix);
        }
        if let Some(i) = bins.index(t.trace.started_at.unix_timestamp()) {
            groups.entry((key, i)).or_default().push(t);
        }
    }
    let in_bgp = announced_in_bgp(db, from, to)?;
    if analyses.is_empty() {
        for prefix in in_bgp.keys() {
            prefixes.insert(
                PanelKey {
                    target: *prefix,
                    source: None,
                },
                BTreeSet::from([*prefix]),
            );
        }
    }
    let mut visibility: BTreeMap<(Ipv4Net, u32), Vec<BinVisibility>> = BTreeMap::new();
    let mut panels = Vec::new();
    for (key, announced) in prefixes {
        let mut data = Vec::new();
        if key.source.is_some() {
            data = (0..bins.count)
                .map(|i| {
                    groups
                        .get(&(key.clone(), i))
                        .map_or_else(DataBin::default, |members| data_bin(members, unit))
                })
                .collect();
        }
        let mut control = BTreeMap::new();
        for prefix in announced {
            let mut ups: BTreeSet<u32> = in_bgp.get(&prefix).cloned().unwrap_or_default();
            for t in analyses {
                if let Some(p) = t.announced_prefix().filter(|p| p.prefix == prefix) {
                    ups.extend(&p.upstreams);
                }
            }
            let mut per_upstream = BTreeMap::new();
            for upstream in ups {
                let per = match visibility.entry((prefix, upstream)) {
                    Entry::Occupied(e) => e.get().clone(),
                    Entry::Vacant(e) => {
                        let v = visibility_over(db, prefix, upstream, from, to)?;
                        e.insert(visibility_per_bin(&v.segments, b.max(a), &bins))
                            .clone()
                    }
                };
                per_upstream.insert(upstream, per);
            }
            control.insert(prefix, per_upstream);
        }
        panels.push(Panel { key, data, control });
    }
    let changes = upstream_changes(db, from, to)?.changes;
    Ok(Timeline {
        from,
        to,
        bins,
        unit,
        panels,
        changes,
    })
}

fn data_bin(members: &[&TraceAnalysis], unit: Count) -> DataBin {
    let counts = count(members, unit);
    let mut bin = DataBin {
        traces: members.len(),
        mismatches: members
            .iter()
            .filter(|t| t.verdict.kind == VerdictKind::Mismatch)
            .count(),
        ..DataBin::default()
    };
    for (asn, c) in counts {
        bin.of += c.observed + c.inferred;
        bin.stale += c.stale;
        bin.entries.insert(
            asn,
            EntryCount {
                observed: c.observed,
                inferred: c.inferred,
                stale: c.stale,
            },
        );
    }
    bin
}

/// A bin's start as written in tables and the charts' `data-bin` attributes.
pub fn bin_label(bins: &Bins, i: usize) -> String {
    timestamp::display_unix(bins.bounds(i).0)
}

/// The visibility as a percentage with one decimal, as tables and charts write it.
pub fn visibility_pct(v: &BinVisibility) -> Option<f64> {
    v.mean.map(|m| (1000.0 * m).round() / 10.0)
}

impl Timeline {
    /// The two per-bin tables of `report upstreams --bin`.
    pub fn tables(&self) -> Vec<Table> {
        let bin_note = format!(
            "bins of {} (UTC), from {} to {}; period {} to {}",
            self.bins.label(),
            bin_label(&self.bins, 0),
            timestamp::display_unix(self.bins.end()),
            timestamp::display(self.from),
            timestamp::display(self.to)
        );
        let mut data = Table::new(
            format!(
                "Data plane per time bin: entry AS into the target AS per target /24, counted \
                 in {}",
                self.unit.header()
            ),
            &[
                "bin_start",
                "bin_end",
                "target",
                "source",
                "entry_as",
                "observed",
                "inferred",
                "share",
                "stale",
            ],
        );
        data.notes.push(bin_note.clone());
        data.notes.push(
            "share: units of this entry AS / units of the /24 in the bin, stale units apart \
             (a unit falls in the bin of each of its traces; a multi-entry unit counts once for \
             each of its entry ASes)"
                .into(),
        );
        let mut control = Table::new(
            "Control plane per time bin: visibility of each announced upstream = collector \
             peers whose route has the upstream directly before the target AS / peers with a \
             route, time-weighted over the bin's seconds with BGP data",
            &[
                "bin_start",
                "bin_end",
                "prefix",
                "upstream",
                "visibility_pct",
                "peers_via_upstream",
                "peers_with_route",
                "covered_s",
            ],
        );
        control.notes.push(bin_note);
        control.notes.push(
            "peers_via_upstream / peers_with_route: the state at the end of the bin's covered \
             part; covered_s: seconds of the bin with BGP data"
                .into(),
        );
        let mut seen = BTreeSet::new();
        for panel in &self.panels {
            for (i, bin) in panel.data.iter().enumerate() {
                for (asn, c) in &bin.entries {
                    data.push_cells(vec![
                        Cell::name(bin_label(&self.bins, i)),
                        Cell::name(timestamp::display_unix(self.bins.bounds(i).1)),
                        Cell::name(panel.key.target.to_string()),
                        Cell::name(panel.key.source.unwrap_or("-")),
                        Cell::asn(*asn),
                        Cell::count(c.observed),
                        Cell::count(c.inferred),
                        Cell::share(c.n(), bin.of),
                        Cell::count(c.stale),
                    ]);
                }
            }
            for (prefix, ups) in &panel.control {
                if !seen.insert(*prefix) {
                    continue;
                }
                for (upstream, per) in ups {
                    for (i, v) in per.iter().enumerate() {
                        control.push_cells(vec![
                            Cell::name(bin_label(&self.bins, i)),
                            Cell::name(timestamp::display_unix(self.bins.bounds(i).1)),
                            Cell::name(prefix.to_string()),
                            Cell::asn(Some(*upstream)),
                            visibility_pct(v).map_or_else(Cell::missing, |p| Cell::decimal(p, 1)),
                            v.last
                                .map_or_else(Cell::missing, |l| Cell::count(l.peers_via_upstream)),
                            v.last
                                .map_or_else(Cell::missing, |l| Cell::count(l.peers_with_route)),
                            Cell::int(v.covered_s),
                        ]);
                    }
                }
            }
        }
        vec![data, control]
    }
}
