//! `report reachability`: per target /24 and time bin, the data plane (did it answer, who
//! tried, the last hop reached) beside the control plane (visibility, announced upstreams)
//! and the RPKI state, and the outage list. The rules are in
//! [`crate::analysis::reachability`]; this module gathers their inputs from the store.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use nkpath_proto::{PingResult, timestamp};
use time::OffsetDateTime;

use super::bins::{BinSize, Bins};
use super::{Cell, ReportError, Table};
use crate::analysis::TraceAnalysis;
use crate::analysis::reachability::{
    ControlSample, Observation, Outage, Outcome, ReachBin, Settings, bins_of, outages_of,
};
use crate::bgp::BgpState;
use crate::bgp::prefix::covering;
use crate::bgp::timeline::{Coverage, coverage_over};
use crate::store::Db;

/// Most /24s one report lists (a /14 of target space).
const MAX_TARGETS: usize = 1_024;

/// The outage thresholds of `report reachability` and of the outage alerts.
#[derive(Debug, Clone, clap::Args)]
pub struct OutageArgs {
    /// Vantage ASes (not agents) that must see a /24 silent for a data-plane outage.
    #[arg(long = "outage-min-ases", value_name = "N", default_value_t = Settings::default().min_vantage_ases, value_parser = parse_count)]
    pub min_vantage_ases: usize,
    /// Seconds an AS's newest observation of a /24 stands (longer than a probing round).
    #[arg(long = "outage-window", value_name = "SECONDS", default_value_t = Settings::default().window_s, value_parser = clap::value_parser!(i64).range(1..))]
    pub window_s: i64,
    /// Seconds to wait for late uploads before a time is judged (no outage is declared for
    /// the last SECONDS).
    #[arg(long = "outage-settle", value_name = "SECONDS", default_value_t = Settings::default().settle_s, value_parser = clap::value_parser!(i64).range(0..))]
    pub settle_s: i64,
    /// Share of full-feed collector peers with a route below which a /24 has a
    /// control-plane outage (0 to 1).
    #[arg(long = "outage-min-visibility", value_name = "SHARE", default_value_t = Settings::default().min_visibility, value_parser = parse_share)]
    pub min_visibility: f64,
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a share between 0 and 1")),
    }
}

impl OutageArgs {
    /// The rules' settings.
    pub fn settings(&self) -> Settings {
        Settings {
            min_vantage_ases: self.min_vantage_ases,
            window_s: self.window_s,
            settle_s: self.settle_s,
            min_visibility: self.min_visibility,
        }
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Reachability {
    /// The bins.
    pub bins: Bins,
    /// Per target /24, one [`ReachBin`] per bin.
    pub targets: BTreeMap<Ipv4Net, Vec<ReachBin>>,
    /// The outages, by start.
    pub outages: Vec<Outage>,
    /// The time judged up to (now minus the settling delay).
    pub horizon: i64,
    /// The period.
    pub from: i64,
    /// Its end.
    pub to: i64,
}

/// What the traces and pings of the period say about each target /24.
pub fn observations(analyses: &[TraceAnalysis], pings: &[PingResult]) -> Vec<Observation> {
    let mut out = Vec::new();
    let mut agent_as: BTreeMap<&str, u32> = BTreeMap::new();
    let mut local_loss: BTreeSet<(&str, uuid::Uuid)> = BTreeSet::new();
    for t in analyses {
        let target = t.target_24();
        if let Some(asn) = t.agent_asn {
            agent_as.insert(&t.trace.agent_id, asn);
        }
        let replies = t.hops.iter().flat_map(|h| &h.replies);
        let outcome = if replies.clone().any(|r| target.contains(&r.address)) {
            Outcome::Answered
        } else if !t.data_path.iter().any(|a| Some(*a) != t.agent_asn) {
            local_loss.insert((&t.trace.agent_id, t.trace.round_id));
            Outcome::LocalLoss
        } else {
            Outcome::Silent {
                last_hop: t
                    .hops
                    .iter()
                    .rev()
                    .find_map(|h| h.first())
                    .map(|r| r.address),
            }
        };
        out.push(Observation {
            time: t.trace.started_at.unix_timestamp(),
            target,
            agent: t.trace.agent_id.clone(),
            vantage_as: t.agent_asn,
            ping: false,
            round: t.trace.round_id.to_string(),
            outcome,
        });
    }
    for p in pings {
        let outcome = if p.is_alive() {
            Outcome::Answered
        } else if local_loss.contains(&(p.agent_id.as_str(), p.round_id)) {
            Outcome::LocalLoss
        } else {
            Outcome::Silent { last_hop: None }
        };
        out.push(Observation {
            time: p.started_at.unix_timestamp(),
            target: covering(p.target, 24),
            agent: p.agent_id.clone(),
            vantage_as: agent_as.get(p.agent_id.as_str()).copied(),
            ping: true,
            round: p.round_id.to_string(),
            outcome,
        });
    }
    out
}

/// The coverage in force at `t` (the last change at or before it).
fn coverage_at(changes: &[(i64, Coverage)], t: i64) -> Option<&Coverage> {
    let n = changes.partition_point(|(start, _)| *start <= t);
    n.checked_sub(1).map(|k| &changes[k].1)
}

/// The control plane of each target /24 over [from, to]: coverage by BGP, and the RPKI
/// state of the most specific announcement, judged anew at every BGP change and every RPKI
/// export.
pub fn control_samples(
    db: &Db,
    nets: &[Ipv4Net],
    from: i64,
    to: i64,
    max_rpki_age_s: i64,
) -> Result<BTreeMap<Ipv4Net, Vec<ControlSample>>, ReportError> {
    let asn = db.target()?.asn;
    let coverage = coverage_over(db, nets, from, to)?;
    let end = to.max(from);
    let end_time =
        OffsetDateTime::from_unix_timestamp(end).map_err(|_| ReportError::TimeOutOfRange(end))?;
    let full_feed = BgpState::at(db, end_time)?.map_or(0, |s| s.peers_total());
    let rpki_times: Vec<i64> = db
        .rpki_files()?
        .into_iter()
        .map(|f| f.generated)
        .filter(|g| (from..=to).contains(g))
        .collect();
    let mut states: BTreeMap<(Ipv4Net, i64), Option<String>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for net in nets {
        let changes = coverage.get(net).cloned().unwrap_or_default();
        let most = changes
            .iter()
            .map(|(_, c)| c.peers_with_route)
            .max()
            .unwrap_or(0);
        // Full-feed peers as the newest state counts them; never fewer than have a route.
        let full = full_feed.max(most);
        let mut times: BTreeSet<i64> = changes.iter().map(|(t, _)| *t).collect();
        times.extend(
            rpki_times
                .iter()
                .filter(|t| changes.first().is_some_and(|(f, _)| *t >= f)),
        );
        let mut samples: Vec<ControlSample> = Vec::new();
        for t in times {
            let Some(c) = coverage_at(&changes, t) else {
                continue;
            };
            let rpki = match c.announced {
                Some(p) => {
                    let file = db.rpki_file_at(t)?.map_or(0, |f| f.id);
                    let key = (p, file);
                    if let Some(s) = states.get(&key) {
                        s.clone()
                    } else {
                        let s = crate::rpki::state_at(db, p, Some(asn), t, max_rpki_age_s)?;
                        let name = Some(s.name().to_owned());
                        states.insert(key, name.clone());
                        name
                    }
                }
                None => None,
            };
            let sample = ControlSample {
                time: t,
                peers_with_route: c.peers_with_route,
                full_feed_peers: full,
                upstreams: c.upstreams.clone(),
                announced: c.announced,
                rpki,
            };
            if samples.last().is_some_and(|l| {
                ControlSample {
                    time: t,
                    ..l.clone()
                } == sample
            }) {
                continue;
            }
            samples.push(sample);
        }
        out.insert(*net, samples);
    }
    Ok(out)
}

/// The /24s of the target prefixes, and of any traced address outside them.
fn target_24s(db: &Db, observations: &[Observation]) -> Result<Vec<Ipv4Net>, ReportError> {
    let mut nets: BTreeSet<Ipv4Net> = BTreeSet::new();
    for p in db.target()?.prefixes {
        if p.prefix_len() <= 24 {
            nets.extend(p.subnets(24).into_iter().flatten().take(MAX_TARGETS));
        } else {
            nets.insert(covering(p.network(), 24));
        }
    }
    nets.extend(observations.iter().map(|o| o.target));
    Ok(nets.into_iter().take(MAX_TARGETS).collect())
}

/// Builds the report over [from, to] judged at `now`.
#[expect(clippy::too_many_arguments, reason = "the report's inputs, each named")]
pub fn build(
    db: &Db,
    analyses: &[TraceAnalysis],
    pings: &[PingResult],
    from: OffsetDateTime,
    to: OffsetDateTime,
    size: BinSize,
    settings: &Settings,
    max_rpki_age_s: i64,
    now: i64,
) -> Result<Reachability, ReportError> {
    let (a, b) = (
        from.unix_timestamp(),
        to.unix_timestamp().max(from.unix_timestamp()),
    );
    let bins = Bins::over(a, b, size).map_err(|e| ReportError::Bins(e.to_string()))?;
    let observations = observations(analyses, pings);
    let nets = target_24s(db, &observations)?;
    let control = control_samples(db, &nets, a, b, max_rpki_age_s)?;
    let horizon = (now - settings.settle_s).min(b);
    let mut targets = BTreeMap::new();
    let mut outages = Vec::new();
    for net in &nets {
        let mine: Vec<Observation> = observations
            .iter()
            .filter(|o| o.target == *net)
            .cloned()
            .collect();
        let ctl = control.get(net).map_or(&[][..], Vec::as_slice);
        targets.insert(
            *net,
            bins_of(&mine, ctl, bins.start, bins.size_s, bins.count, b),
        );
        outages.extend(outages_of(*net, &mine, ctl, horizon, settings));
    }
    outages.sort_by_key(|o| (o.start, o.target, o.kind));
    Ok(Reachability {
        bins,
        targets,
        outages,
        horizon,
        from: a,
        to: b,
    })
}

fn time_cell(t: i64) -> Cell {
    Cell::name(timestamp::display_unix(t))
}

impl Reachability {
    /// The per-bin table and the outage list.
    pub fn tables(&self) -> Vec<Table> {
        let mut per_bin = Table::new(
            "Reachability per target /24 and time bin: data plane (an address of the /24 \
             replied to a trace or a ping) beside the control plane (share of full-feed \
             collector peers with a route) and the RPKI state of the announcement",
            &[
                "bin_start",
                "bin_end",
                "target",
                "answered",
                "traces_reaching",
                "pings_answered",
                "agents",
                "vantage_ases",
                "last_hop",
                "visibility_pct",
                "upstreams",
                "rpki",
            ],
        );
        per_bin.notes.push(format!(
            "bins of {} (UTC), period {} to {}",
            self.bins.label(),
            timestamp::display_unix(self.from),
            timestamp::display_unix(self.to)
        ));
        for (net, bins) in &self.targets {
            for (i, bin) in bins.iter().enumerate() {
                let (a, b) = self.bins.bounds(i);
                let tried = bin.traces + bin.pings > 0;
                per_bin.push_cells(vec![
                    time_cell(a),
                    time_cell(b),
                    Cell::name(net.to_string()),
                    if tried {
                        Cell::bool(bin.answered())
                    } else {
                        Cell::missing()
                    },
                    Cell::share(bin.traces_answered, bin.traces),
                    Cell::share(bin.pings_answered, bin.pings),
                    Cell::count(bin.agents.len()),
                    Cell::asns(bin.vantage_ases.iter().copied()),
                    bin.last_hop
                        .map_or_else(Cell::missing, |h| Cell::name(h.to_string())),
                    bin.visibility
                        .map_or_else(Cell::missing, |v| Cell::decimal(100.0 * v, 1)),
                    Cell::asns(bin.upstreams.iter().copied()),
                    Cell::with_json(
                        bin.rpki.iter().cloned().collect::<Vec<_>>().join(" "),
                        bin.rpki.iter().cloned().collect::<Vec<_>>().into(),
                    ),
                ]);
            }
        }
        let mut list = Table::new(
            "Outages: data-plane (silent to agents in at least N vantage ASes while BGP saw \
             it), control-plane (visibility fell), rpki-invalid, and unreachable-while-announced \
             (answered at no time in the period)",
            &[
                "target",
                "kind",
                "start",
                "end",
                "agents",
                "vantage_ases",
                "peers_with_route",
                "full_feed_peers",
                "evidence",
            ],
        );
        list.notes.push(format!(
            "judged up to {} (later results may still arrive); an end `-` means it lasts",
            timestamp::display_unix(self.horizon)
        ));
        for o in &self.outages {
            list.push_cells(vec![
                Cell::name(o.target.to_string()),
                Cell::name(o.kind.name()),
                time_cell(o.start),
                o.end.map_or_else(Cell::missing, time_cell),
                Cell::count(o.agents.len()),
                Cell::asns(o.vantage_ases.iter().copied()),
                o.peers_with_route.map_or_else(Cell::missing, Cell::count),
                o.full_feed_peers.map_or_else(Cell::missing, Cell::count),
                Cell::name(&o.evidence),
            ]);
        }
        vec![per_bin, list]
    }
}
