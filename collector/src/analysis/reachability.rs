//! Reachability of each target /24 and its outages: the data plane (did the /24 answer the
//! agents?) beside the control plane (did collector peers have a route for it?) and the RPKI
//! state of its announcement. Pure: observations and BGP samples come in as values, bins and
//! outages go out (see `report::reachability` for where the values come from).
//!
//! # Definitions (the contract of `report reachability` and the outage alerts)
//!
//! - A /24 **answers** at an instant when an address inside it replied: a trace reaching it
//!   (a reply from the target address, or any reply from inside the /24), or a liveness ping
//!   with a reply.
//! - A failed trace that got no reply from beyond the agent's own AS is **local loss** (the
//!   agent's uplink, not the target): it is no evidence either way.
//! - Rules count **vantage ASes** (the AS of the agent's source address), not agents, and
//!   one observation per agent and round: answered when any address of the /24 replied to
//!   the agent in that round. An AS stands on its newest such observation of the /24 for
//!   [`Settings::window_s`].
//! - **Data-plane outage**: at least [`Settings::min_vantage_ases`] ASes stand on a silent
//!   observation and they outnumber the ASes that stand on an answer, while the control
//!   plane sees the /24 (no control-plane outage). It starts at the first silent observation
//!   of those ASes and ends at the first answer to an AS that saw it silent (or at the first
//!   observation after which the rule no longer holds, when their observations grew old).
//! - **Control-plane outage**: fewer than [`Settings::min_visibility`] of the full-feed
//!   collector peers have a route for a target-AS prefix covering the /24, after at least
//!   that share had one in the period (a fall: a /24 never seen was never lost). Starts and
//!   ends at the BGP changes.
//! - **RPKI-invalid**: the most specific announcement covering the /24 is `invalid-asn` or
//!   `invalid-length` (RFC 6811). Starts and ends at the BGP change or RPKI export that
//!   changed the state.
//! - **Unreachable while announced**: the /24 answered no observation of the period but was
//!   probed from at least [`Settings::min_vantage_ases`] ASes while BGP saw it: listed with
//!   the last hop reached, not as an outage with a start.
//!
//! Nothing after the **horizon** (the evaluation time minus [`Settings::settle_s`]) is judged:
//! agents upload late (an agent's spool drains after its uplink returns), and an outage
//! declared before their results arrive would be one agent's view.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Thresholds of the outage rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Vantage ASes that must agree that a /24 is silent (default 2).
    pub min_vantage_ases: usize,
    /// Seconds an AS stands on its newest observation of a /24 (default 1 h: longer than a
    /// probing round).
    pub window_s: i64,
    /// Seconds to wait for late uploads before judging a time (default 15 min).
    pub settle_s: i64,
    /// Share of full-feed peers below which the control plane has lost the /24 (default 0.5).
    pub min_visibility: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_vantage_ases: 2,
            window_s: 3_600,
            settle_s: 900,
            min_visibility: 0.5,
        }
    }
}

/// What one trace or ping says about its /24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An address of the /24 replied.
    Answered,
    /// Nothing of the /24 replied; the last address that did reply, if any.
    Silent {
        /// The last hop reached.
        last_hop: Option<Ipv4Addr>,
    },
    /// Nothing replied from beyond the agent's own AS: its own loss, no evidence.
    LocalLoss,
}

/// One trace or ping of a /24.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// When it started (UNIX seconds).
    pub time: i64,
    /// The target /24.
    pub target: Ipv4Net,
    /// The agent.
    pub agent: String,
    /// The agent's AS, when known (an observation without one counts for no AS).
    pub vantage_as: Option<u32>,
    /// A ping (else a trace).
    pub ping: bool,
    /// The agent's measurement round: the rules judge one agent's round as a whole.
    pub round: String,
    /// What it says.
    pub outcome: Outcome,
}

/// The control plane of a /24 from one instant until the next sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlSample {
    /// When this state began (UNIX seconds).
    pub time: i64,
    /// Collector peers with a route for a target-AS prefix covering the /24.
    pub peers_with_route: usize,
    /// Full-feed collector peers (the denominator of the visibility).
    pub full_feed_peers: usize,
    /// Announced upstreams of the most specific covering prefix.
    pub upstreams: BTreeSet<u32>,
    /// The most specific covering announcement.
    pub announced: Option<Ipv4Net>,
    /// Its RPKI state (`valid`, `invalid-length`, ...), `None` without an announcement.
    pub rpki: Option<String>,
}

impl ControlSample {
    /// Share of full-feed peers with a route; `None` without BGP data.
    pub fn visibility(&self) -> Option<f64> {
        (self.full_feed_peers > 0)
            .then(|| (self.peers_with_route as f64 / self.full_feed_peers as f64).min(1.0))
    }

    fn visible(&self, settings: &Settings) -> bool {
        self.visibility()
            .is_some_and(|v| v >= settings.min_visibility)
    }

    fn rpki_invalid(&self) -> bool {
        matches!(self.rpki.as_deref(), Some("invalid-asn" | "invalid-length"))
    }
}

/// The kinds of outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutageKind {
    /// Silent to the agents while BGP saw it.
    DataPlane,
    /// BGP lost it.
    ControlPlane,
    /// Its announcement was RPKI-invalid.
    RpkiInvalid,
    /// It answered at no time in the period while announced.
    UnreachableWhileAnnounced,
}

impl OutageKind {
    /// The name reports and alerts write.
    pub fn name(self) -> &'static str {
        match self {
            Self::DataPlane => "data-plane",
            Self::ControlPlane => "control-plane",
            Self::RpkiInvalid => "rpki-invalid",
            Self::UnreachableWhileAnnounced => "unreachable-while-announced",
        }
    }
}

/// One outage of one /24.
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    /// The /24.
    pub target: Ipv4Net,
    /// Its kind.
    pub kind: OutageKind,
    /// When it began (for unreachable-while-announced: the first observation).
    pub start: i64,
    /// When it ended; `None` while it lasts at the horizon.
    pub end: Option<i64>,
    /// Agents with silent observations during it.
    pub agents: BTreeSet<String>,
    /// Their ASes.
    pub vantage_ases: BTreeSet<u32>,
    /// Fewest collector peers with a route during it.
    pub peers_with_route: Option<usize>,
    /// Full-feed peers then.
    pub full_feed_peers: Option<usize>,
    /// What shows it, in words.
    pub evidence: String,
}

/// The numbers of one /24 in one bin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReachBin {
    /// Traces of the /24 in the bin.
    pub traces: usize,
    /// Of those, traces reaching it.
    pub traces_answered: usize,
    /// Pings.
    pub pings: usize,
    /// Of those, pings answered.
    pub pings_answered: usize,
    /// Agents that tried.
    pub agents: BTreeSet<String>,
    /// Their ASes.
    pub vantage_ases: BTreeSet<u32>,
    /// The most often reached last hop of the silent observations, when nothing answered.
    pub last_hop: Option<Ipv4Addr>,
    /// Time-weighted share of full-feed peers with a route over the bin's seconds with data.
    pub visibility: Option<f64>,
    /// Announced upstreams seen in the bin.
    pub upstreams: BTreeSet<u32>,
    /// RPKI states seen in the bin.
    pub rpki: BTreeSet<String>,
}

impl ReachBin {
    /// Whether any address of the /24 replied in the bin.
    pub fn answered(&self) -> bool {
        self.traces_answered + self.pings_answered > 0
    }
}

/// Cuts the observations and the control plane of one /24 into bins `[start + i*size, ..)`.
/// `control` in time order; `end`: where the last sample ends.
pub fn bins_of(
    observations: &[Observation],
    control: &[ControlSample],
    start: i64,
    size_s: i64,
    count: usize,
    end: i64,
) -> Vec<ReachBin> {
    let mut bins = vec![ReachBin::default(); count];
    let mut last_hops: Vec<BTreeMap<Ipv4Addr, usize>> = vec![BTreeMap::new(); count];
    let index = |t: i64| {
        let i = (t - start).div_euclid(size_s.max(1));
        (0..count as i64).contains(&i).then_some(i as usize)
    };
    for o in observations {
        let Some(i) = index(o.time) else { continue };
        let bin = &mut bins[i];
        let answered = o.outcome == Outcome::Answered;
        if o.ping {
            bin.pings += 1;
            bin.pings_answered += usize::from(answered);
        } else {
            bin.traces += 1;
            bin.traces_answered += usize::from(answered);
        }
        bin.agents.insert(o.agent.clone());
        bin.vantage_ases.extend(o.vantage_as);
        if let Outcome::Silent {
            last_hop: Some(hop),
        } = o.outcome
        {
            *last_hops[i].entry(hop).or_default() += 1;
        }
    }
    for (bin, hops) in bins.iter_mut().zip(last_hops) {
        if !bin.answered() {
            // Most often reached; the lowest address on a tie, so reruns agree.
            bin.last_hop = hops
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map(|(hop, _)| hop);
        }
    }
    let mut weighted = vec![(0.0f64, 0i64); count];
    for (k, s) in control.iter().enumerate() {
        let seg_end = control.get(k + 1).map_or(end, |n| n.time);
        for (i, bin) in bins.iter_mut().enumerate() {
            let (a, b) = (start + i as i64 * size_s, start + (i as i64 + 1) * size_s);
            let overlap = seg_end.min(b) - s.time.max(a);
            let instant = overlap == 0 && s.time >= a && s.time < b;
            if overlap <= 0 && !instant {
                continue;
            }
            if s.announced.is_some() {
                bin.upstreams.extend(&s.upstreams);
            }
            bin.rpki.extend(s.rpki.clone());
            if let Some(v) = s.visibility() {
                let w = overlap.max(0);
                weighted[i].0 += v * w as f64;
                weighted[i].1 += w;
                if bin.visibility.is_none() || instant {
                    bin.visibility = Some(v);
                }
            }
        }
    }
    for (bin, (sum, seconds)) in bins.iter_mut().zip(weighted) {
        if seconds > 0 {
            bin.visibility = Some(sum / seconds as f64);
        }
    }
    bins
}

/// The control sample in force at `t` (the last one starting at or before it).
fn control_at(control: &[ControlSample], t: i64) -> Option<&ControlSample> {
    let i = control.partition_point(|s| s.time <= t);
    i.checked_sub(1).map(|i| &control[i])
}

/// The outages of one /24 judged up to `horizon` (see the module docs); `observations` and
/// `control` in any order.
pub fn outages_of(
    target: Ipv4Net,
    observations: &[Observation],
    control: &[ControlSample],
    horizon: i64,
    settings: &Settings,
) -> Vec<Outage> {
    let mut observations: Vec<&Observation> =
        observations.iter().filter(|o| o.time <= horizon).collect();
    observations.sort_by(|a, b| a.time.cmp(&b.time).then(a.agent.cmp(&b.agent)));
    let mut control: Vec<ControlSample> = control
        .iter()
        .filter(|s| s.time <= horizon)
        .cloned()
        .collect();
    control.sort_by_key(|s| s.time);
    let mut out = control_outages(target, &control, &observations, horizon, settings);
    if observations.iter().any(|o| o.outcome == Outcome::Answered) {
        let rounds = by_round(&observations);
        let rounds: Vec<&Observation> = rounds.iter().collect();
        out.extend(data_plane_outages(target, &rounds, &control, settings));
    } else {
        out.extend(never_answered(target, &observations, &control, settings));
    }
    out.sort_by(|a, b| a.start.cmp(&b.start).then(a.kind.cmp(&b.kind)));
    out
}

/// One observation per agent and round, in time order: answered at its first answer when
/// any address of the /24 replied in the round (an agent traces live and silent addresses
/// of one /24 in one round: the /24 answered), else silent at its first silent observation,
/// else local loss.
fn by_round(observations: &[&Observation]) -> Vec<Observation> {
    let mut rounds: BTreeMap<(&str, &str), Observation> = BTreeMap::new();
    let rank = |o: &Outcome| match o {
        Outcome::Answered => 2,
        Outcome::Silent { .. } => 1,
        Outcome::LocalLoss => 0,
    };
    for o in observations {
        let key = (o.agent.as_str(), o.round.as_str());
        match rounds.get_mut(&key) {
            // Observations come in time order: the first of the best outcome stays.
            Some(kept) if rank(&o.outcome) > rank(&kept.outcome) => *kept = (*o).clone(),
            Some(_) => {}
            None => {
                rounds.insert(key, (*o).clone());
            }
        }
    }
    let mut out: Vec<Observation> = rounds.into_values().collect();
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.agent.cmp(&b.agent)));
    out
}

/// Newest standing observation of one AS.
#[derive(Debug, Clone, Copy)]
struct Standing {
    time: i64,
    answered: bool,
    /// Since when this AS has been silent without an answer in between.
    silent_since: i64,
}

fn data_plane_outages(
    target: Ipv4Net,
    observations: &[&Observation],
    control: &[ControlSample],
    settings: &Settings,
) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut standing: BTreeMap<u32, Standing> = BTreeMap::new();
    let mut open: Option<Outage> = None;
    let mut k = 0;
    while k < observations.len() {
        // Every observation of one second before judging, so that order within it is moot.
        let t = observations[k].time;
        let mut same = k;
        let mut answered_now = false;
        while same < observations.len() && observations[same].time == t {
            let o = observations[same];
            same += 1;
            let (Some(asn), answered) = (o.vantage_as, o.outcome == Outcome::Answered) else {
                continue;
            };
            if o.outcome == Outcome::LocalLoss {
                continue;
            }
            answered_now |=
                answered && open.as_ref().is_some_and(|x| x.vantage_ases.contains(&asn));
            let silent_since = match standing.get(&asn) {
                Some(s) if !s.answered && !answered && t - s.time <= settings.window_s => {
                    s.silent_since
                }
                _ => t,
            };
            standing.insert(
                asn,
                Standing {
                    time: t,
                    answered,
                    silent_since,
                },
            );
            if let Some(outage) = open.as_mut().filter(|_| !answered) {
                outage.agents.insert(o.agent.clone());
                outage.vantage_ases.insert(asn);
            }
        }
        k = same;
        let live: Vec<(&u32, &Standing)> = standing
            .iter()
            .filter(|(_, s)| t - s.time <= settings.window_s)
            .collect();
        let silent: Vec<(&u32, &Standing)> =
            live.iter().copied().filter(|(_, s)| !s.answered).collect();
        let answering = live.len() - silent.len();
        let down = silent.len() >= settings.min_vantage_ases && silent.len() > answering;
        match open.take() {
            // An answer to an AS that saw it silent ends it: the /24 replies again.
            Some(mut outage) if !down || answered_now => {
                outage.end = Some(t);
                out.push(outage);
            }
            Some(outage) => open = Some(outage),
            None if down => {
                let start = silent
                    .iter()
                    .map(|(_, s)| s.silent_since)
                    .min()
                    .unwrap_or(t);
                let seen = control_at(control, start);
                if !seen.is_some_and(|s| s.visible(settings)) {
                    // BGP had lost it: the control-plane outage tells this story.
                    continue;
                }
                let ases: BTreeSet<u32> = silent.iter().map(|(a, _)| **a).collect();
                let agents: BTreeSet<String> = observations
                    .iter()
                    .filter(|o| o.time >= start && o.time <= t)
                    .filter(|o| matches!(o.outcome, Outcome::Silent { .. }))
                    .filter(|o| o.vantage_as.is_some_and(|a| ases.contains(&a)))
                    .map(|o| o.agent.clone())
                    .collect();
                open = Some(Outage {
                    target,
                    kind: OutageKind::DataPlane,
                    start,
                    end: None,
                    agents,
                    vantage_ases: ases,
                    peers_with_route: seen.map(|s| s.peers_with_route),
                    full_feed_peers: seen.map(|s| s.full_feed_peers),
                    evidence: String::new(),
                });
            }
            None => {}
        }
    }
    out.extend(open);
    for o in &mut out {
        o.evidence = data_evidence(o, observations);
    }
    out
}

fn data_evidence(outage: &Outage, observations: &[&Observation]) -> String {
    let during = observations
        .iter()
        .filter(|o| o.time >= outage.start && outage.end.is_none_or(|e| o.time < e));
    let mut silent = 0;
    let mut hops: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for o in during {
        if let Outcome::Silent { last_hop } = o.outcome {
            silent += 1;
            if let Some(h) = last_hop {
                *hops.entry(h).or_default() += 1;
            }
        }
    }
    let hop = hops
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or_else(|| "none".to_owned(), |(h, _)| h.to_string());
    format!(
        "{silent} silent agent rounds from {} ASes, last hop reached {hop}; BGP saw the /24",
        outage.vantage_ases.len()
    )
}

fn never_answered(
    target: Ipv4Net,
    observations: &[&Observation],
    control: &[ControlSample],
    settings: &Settings,
) -> Vec<Outage> {
    let silent: Vec<&&Observation> = observations
        .iter()
        .filter(|o| matches!(o.outcome, Outcome::Silent { .. }))
        .filter(|o| control_at(control, o.time).is_some_and(|s| s.visible(settings)))
        .collect();
    let ases: BTreeSet<u32> = silent.iter().filter_map(|o| o.vantage_as).collect();
    if ases.len() < settings.min_vantage_ases {
        return Vec::new();
    }
    let mut outage = Outage {
        target,
        kind: OutageKind::UnreachableWhileAnnounced,
        start: silent.first().map_or(0, |o| o.time),
        end: silent.last().map(|o| o.time),
        agents: silent.iter().map(|o| o.agent.clone()).collect(),
        vantage_ases: ases,
        peers_with_route: None,
        full_feed_peers: None,
        evidence: String::new(),
    };
    let refs: Vec<&Observation> = silent.iter().map(|o| **o).collect();
    outage.evidence = data_evidence(&outage, &refs).replace(
        "; BGP saw the /24",
        "; no address of the /24 answered in the period while BGP saw it",
    );
    vec![outage]
}

/// Control-plane and RPKI-invalid outages: runs of samples where the rule holds.
fn control_outages(
    target: Ipv4Net,
    control: &[ControlSample],
    observations: &[&Observation],
    horizon: i64,
    settings: &Settings,
) -> Vec<Outage> {
    let mut out = Vec::new();
    for kind in [OutageKind::ControlPlane, OutageKind::RpkiInvalid] {
        let holds = |s: &ControlSample| match kind {
            OutageKind::ControlPlane => s.full_feed_peers > 0 && !s.visible(settings),
            _ => s.rpki_invalid(),
        };
        let mut open: Option<Outage> = None;
        // Visibility must fall: a /24 no peer saw since the period began was never lost.
        let mut was_visible = false;
        for s in control {
            let holds = holds(s) && (kind != OutageKind::ControlPlane || was_visible);
            was_visible |= s.visible(settings);
            match (open.take(), holds) {
                (Some(mut o), true) => {
                    o.peers_with_route = o.peers_with_route.min(Some(s.peers_with_route));
                    open = Some(o);
                }
                (Some(mut o), false) => {
                    o.end = Some(s.time);
                    out.push(o);
                }
                (None, true) => {
                    let evidence = match kind {
                        OutageKind::ControlPlane => String::new(),
                        _ => format!(
                            "{} is RPKI {}",
                            s.announced.map_or_else(|| "-".into(), |p| p.to_string()),
                            s.rpki.as_deref().unwrap_or("-")
                        ),
                    };
                    open = Some(Outage {
                        target,
                        kind,
                        start: s.time,
                        end: None,
                        agents: BTreeSet::new(),
                        vantage_ases: BTreeSet::new(),
                        peers_with_route: Some(s.peers_with_route),
                        full_feed_peers: Some(s.full_feed_peers),
                        evidence,
                    });
                }
                (None, false) => {}
            }
        }
        out.extend(open);
    }
    for o in &mut out {
        let end = o.end.unwrap_or(horizon);
        let during: Vec<&&Observation> = observations
            .iter()
            .filter(|x| x.time >= o.start && x.time < end)
            .collect();
        let failed: Vec<&&&Observation> = during
            .iter()
            .filter(|x| matches!(x.outcome, Outcome::Silent { .. }))
            .collect();
        o.agents = failed.iter().map(|x| x.agent.clone()).collect();
        o.vantage_ases = failed.iter().filter_map(|x| x.vantage_as).collect();
        let traces = format!(
            "{} of {} traces/pings during it silent",
            failed.len(),
            during.len()
        );
        o.evidence = if o.kind == OutageKind::ControlPlane {
            format!(
                "{} of {} full-feed peers with a route at the lowest; {traces}",
                o.peers_with_route.unwrap_or(0),
                o.full_feed_peers.unwrap_or(0)
            )
        } else {
            format!("{}; {traces}", o.evidence)
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Ipv4Net {
        "175.45.177.0/24".parse().unwrap()
    }

    fn obs(time: i64, agent: &str, asn: u32, outcome: Outcome) -> Observation {
        Observation {
            time,
            target: net(),
            agent: agent.into(),
            vantage_as: Some(asn),
            ping: false,
            round: format!("{agent}@{time}"),
            outcome,
        }
    }

    fn silent(time: i64, agent: &str, asn: u32) -> Observation {
        obs(
            time,
            agent,
            asn,
            Outcome::Silent {
                last_hop: Some(Ipv4Addr::new(219, 158, 1, 2)),
            },
        )
    }

    fn seen(time: i64, peers: usize) -> ControlSample {
        ControlSample {
            time,
            peers_with_route: peers,
            full_feed_peers: 4,
            upstreams: BTreeSet::from([4837]),
            announced: Some(net()),
            rpki: Some("valid".into()),
        }
    }

    /// Three ASes probing every 10 s from t=0 to t=200; `silent_from..silent_to` answers
    /// nothing for the ASes listed.
    fn rounds(silent_ases: &[u32], silent_from: i64, silent_to: i64) -> Vec<Observation> {
        let mut out = Vec::new();
        for round in 0..20 {
            for (i, asn) in [24_940u32, 9_370, 14_061].into_iter().enumerate() {
                let t = round * 10 + i as i64;
                let agent = format!("a{asn}");
                if silent_ases.contains(&asn) && (silent_from..silent_to).contains(&t) {
                    out.push(silent(t, &agent, asn));
                } else {
                    out.push(obs(t, &agent, asn, Outcome::Answered));
                }
            }
        }
        out
    }

    fn settings() -> Settings {
        Settings {
            window_s: 30,
            ..Settings::default()
        }
    }

    #[test]
    fn every_as_silent_while_bgp_sees_it_is_a_data_plane_outage_with_its_span() {
        let o = rounds(&[24_940, 9_370, 14_061], 50, 120);
        let found = outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings());
        assert_eq!(found.len(), 1, "{found:?}");
        let outage = &found[0];
        assert_eq!(outage.kind, OutageKind::DataPlane);
        // First silent probe at 50, first answer at 120.
        assert_eq!((outage.start, outage.end), (50, Some(120)));
        assert_eq!(outage.vantage_ases.len(), 3);
        assert_eq!(outage.agents.len(), 3);
        assert!(
            outage.evidence.contains("219.158.1.2"),
            "{}",
            outage.evidence
        );
    }

    #[test]
    fn one_silent_as_is_not_an_outage() {
        let o = rounds(&[24_940], 50, 120);
        assert!(outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings()).is_empty());
    }

    #[test]
    fn two_silent_ases_out_of_three_are_an_outage() {
        let o = rounds(&[24_940, 9_370], 50, 120);
        let found = outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].vantage_ases, BTreeSet::from([24_940, 9_370]));
    }

    #[test]
    fn two_silent_agents_of_one_as_are_one_vantage_and_no_outage() {
        let mut o = rounds(&[24_940], 50, 120);
        o.extend(
            (5..12)
                .map(|r| silent(r * 10 + 5, "second-in-24940", 24_940))
                .collect::<Vec<_>>(),
        );
        assert!(outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings()).is_empty());
    }

    #[test]
    fn a_round_that_reached_one_address_of_the_24_answered() {
        // Each AS traces a dead address after a live one in every round: the /24 answered.
        let mut o = rounds(&[], 0, 0);
        for x in o.clone() {
            let mut dead = silent(x.time + 5, &x.agent, x.vantage_as.unwrap());
            dead.round.clone_from(&x.round);
            o.push(dead);
        }
        assert!(outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings()).is_empty());
    }

    #[test]
    fn local_loss_is_no_evidence() {
        let mut o = rounds(&[], 0, 0);
        // Two agents' uplinks down: their traces saw nothing past their own AS.
        for x in &mut o {
            if x.vantage_as != Some(14_061) && (50..120).contains(&x.time) {
                x.outcome = Outcome::LocalLoss;
            }
        }
        assert!(outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings()).is_empty());
    }

    #[test]
    fn nothing_after_the_horizon_is_judged_and_an_open_outage_has_no_end() {
        let o = rounds(&[24_940, 9_370, 14_061], 50, 120);
        assert!(outages_of(net(), &o, &[seen(0, 4)], 40, &settings()).is_empty());
        let found = outages_of(net(), &o, &[seen(0, 4)], 100, &settings());
        assert_eq!((found[0].start, found[0].end), (50, None));
    }

    #[test]
    fn a_withdrawal_is_a_control_plane_outage_and_not_also_a_data_plane_one() {
        let o = rounds(&[24_940, 9_370, 14_061], 50, 120);
        let control = [seen(0, 4), seen(49, 0), seen(118, 4)];
        let found = outages_of(net(), &o, &control, 1_000, &settings());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, OutageKind::ControlPlane);
        assert_eq!((found[0].start, found[0].end), (49, Some(118)));
        assert_eq!(found[0].peers_with_route, Some(0));
        assert!(found[0].evidence.starts_with("0 of 4 full-feed peers"));
        assert_eq!(found[0].vantage_ases.len(), 3, "traces failed meanwhile");
    }

    #[test]
    fn visibility_above_the_threshold_is_no_outage() {
        let control = [seen(0, 4), seen(10, 2), seen(20, 4)];
        assert!(outages_of(net(), &[], &control, 1_000, &settings()).is_empty());
        let control = [seen(0, 4), seen(10, 1), seen(20, 4)];
        assert_eq!(
            outages_of(net(), &[], &control, 1_000, &settings()).len(),
            1
        );
        let never_seen = [seen(0, 0), seen(10, 1)];
        assert!(outages_of(net(), &[], &never_seen, 1_000, &settings()).is_empty());
    }

    #[test]
    fn an_invalid_rpki_state_is_an_outage_from_change_to_change() {
        let mut bad = seen(100, 4);
        bad.rpki = Some("invalid-length".into());
        let control = [seen(0, 4), bad, seen(300, 4)];
        let found = outages_of(net(), &[], &control, 1_000, &settings());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, OutageKind::RpkiInvalid);
        assert_eq!((found[0].start, found[0].end), (100, Some(300)));
        assert!(found[0].evidence.contains("invalid-length"));
    }

    #[test]
    fn a_24_that_never_answered_is_unreachable_while_announced_without_an_outage() {
        let o = rounds(&[24_940, 9_370, 14_061], 0, 1_000);
        let found = outages_of(net(), &o, &[seen(0, 4)], 1_000, &settings());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, OutageKind::UnreachableWhileAnnounced);
        assert!(found[0].evidence.contains("219.158.1.2"));
    }

    #[test]
    fn bins_count_answers_agents_and_visibility() {
        let o = rounds(&[24_940, 9_370, 14_061], 50, 120);
        let control = [seen(0, 4), seen(50, 2)];
        let bins = bins_of(&o, &control, 0, 100, 2, 200);
        assert_eq!(bins[0].traces, 30);
        assert_eq!(bins[0].traces_answered, 15);
        assert_eq!(bins[0].agents.len(), 3);
        assert_eq!(bins[0].visibility, Some(0.75));
        assert_eq!(bins[1].visibility, Some(0.5));
        assert!(bins[0].last_hop.is_none(), "it answered");
        let silent_bin = bins_of(&o, &control, 60, 50, 1, 200);
        assert!(!silent_bin[0].answered());
        assert_eq!(silent_bin[0].last_hop, Some(Ipv4Addr::new(219, 158, 1, 2)));
    }
}
