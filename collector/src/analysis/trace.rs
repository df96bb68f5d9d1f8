//! Analysis of stored traces: hop mapping, entry AS, announced set, verdict, transitional
//! flag and the comparison with a collector peer in the agent's AS.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nkpath_proto::{MultipathResult, ReplyKind, TraceResult};
use time::OffsetDateTime;

use super::entry::{Entry, EntryHop, EntryReply, infer_entry};
use super::error::AnalysisError;
use super::hopmap::{HopClass, Mapper, MappingNote};
use super::multipath::{self, Branch, BranchJudgement};
use super::source::BgpSource;
use super::verdict::{Adjacency, AnnouncedPrefix, Verdict, VerdictKind, announced_for, verdict};
use crate::bgp::aspath::Segment;
use crate::bgp::prefix::covering;
use crate::bgp::timeline::UpstreamChanges;
use crate::bgp::{AsPath, BgpState};

/// Default transition window: 15 minutes.
pub const DEFAULT_TRANSITION_WINDOW_S: i64 = 15 * 60;

/// Default maximum age of the BGP state a trace is judged against: 24 hours. RouteViews and
/// RIS publish RIB dumps every 2 and 8 hours and updates every 15 and 5 minutes, so a day
/// leaves room for a missed download but not for judging a trace against another era.
pub const DEFAULT_MAX_BGP_AGE_S: i64 = 24 * 3600;

/// What to analyse and how.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisOptions {
    /// Only traces started at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only traces started at or before this time.
    pub until: Option<OffsetDateTime>,
    /// A trace this close (seconds) to a change of its prefix's announced set is
    /// transitional.
    pub transition_window_s: i64,
    /// A trace whose BGP state is older than this (seconds) gets `unknown` (`stale-bgp`).
    pub max_bgp_age_s: i64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            since: None,
            until: None,
            transition_window_s: DEFAULT_TRANSITION_WINDOW_S,
            max_bgp_age_s: DEFAULT_MAX_BGP_AGE_S,
        }
    }
}

/// One TTL of an analysed trace: every address that replied to its probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzedHop {
    /// Probe TTL.
    pub ttl: u8,
    /// Each address that replied, once, in the order of its first reply; empty when the TTL
    /// was silent. Several addresses answer one TTL behind a load balancer or across a route
    /// change: traceroute prints them all, and every one is mapped.
    pub replies: Vec<HopReply>,
    /// Probes sent at this TTL.
    pub probes: usize,
    /// Taken from another trace of the survey, not probed by this trace's flow.
    pub inherited: bool,
}

impl AnalyzedHop {
    /// The first address that replied, if any.
    pub fn first(&self) -> Option<&HopReply> {
        self.replies.first()
    }

    /// The reply of `address`, if it replied at this TTL.
    pub fn reply_of(&self, address: Ipv4Addr) -> Option<&HopReply> {
        self.replies.iter().find(|r| r.address == address)
    }
}

/// One address that replied at a TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopReply {
    /// The replying address.
    pub address: Ipv4Addr,
    /// Its class.
    pub class: HopClass,
    /// The mapping's evidence and caveats (prefix, peers that see it).
    pub mapping: Option<MappingNote>,
    /// RTT of its first reply.
    pub rtt_us: u32,
    /// How many probes of the TTL it answered.
    pub answered: usize,
    /// Its name from the trace's annotations.
    pub name: Option<String>,
    /// What its first reply says (time exceeded, unreachable and which code, …; its
    /// [`ReplyKind::icmp_type_code`] gives the numbers as received).
    pub kind: Option<ReplyKind>,
    /// The most MPLS labels one of its replies quoted (RFC 4950).
    pub mpls_labels: usize,
}

/// The comparison of the data-plane AS path with a collector peer in the agent's AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerComparison {
    /// The peer's address.
    pub peer: String,
    /// Its AS path for the announced prefix.
    pub bgp_path: Vec<u32>,
    /// ASes of the BGP path missing from the data-plane path.
    pub missing: Vec<u32>,
    /// ASes of the data-plane path missing from the BGP path.
    pub extra: Vec<u32>,
}

impl PeerComparison {
    /// Whether both paths hold the same ASes.
    pub fn same(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Everything derived for one trace.
#[derive(Debug, Clone)]
pub struct TraceAnalysis {
    /// The trace as stored.
    pub trace: TraceResult,
    /// The hops, mapped.
    pub hops: Vec<AnalyzedHop>,
    /// The AS of the agent's source address.
    pub agent_asn: Option<u32>,
    /// Public ASes of every reply in TTL order (the replies of a TTL in the order they came),
    /// repeats collapsed, starting with the agent's AS.
    pub data_path: Vec<u32>,
    /// The entry AS.
    pub entry: Entry,
    /// Whether BGP data exists at the trace's time.
    pub has_bgp_data: bool,
    /// Age of the BGP state used at the trace's start (seconds; see [`BgpState::age_at`]),
    /// `None` without one.
    pub bgp_age_s: Option<i64>,
    /// Announced sets, most specific first.
    pub announced: Vec<AnnouncedPrefix>,
    /// The verdict.
    pub verdict: Verdict,
    /// Within the transition window of a change of the announced set.
    pub transitional: bool,
    /// Comparison with a collector peer in the agent's AS, when there is one.
    pub peer_comparison: Option<PeerComparison>,
    /// For a multipath trace: its diamond, branches and their verdicts (`trace` is then its
    /// hop-by-hop view, [`multipath::as_trace`], and `entry` that of the branch the verdict
    /// names).
    pub multipath: Option<MultipathAnalysis>,
}

/// What a multipath trace adds to its analysis.
#[derive(Debug, Clone)]
pub struct MultipathAnalysis {
    /// The trace as stored (interfaces per TTL, links).
    pub result: MultipathResult,
    /// Each branch with its entry AS and verdict.
    pub branches: Vec<BranchJudgement>,
    /// Set when there were more branches than [`multipath::MAX_BRANCHES`].
    pub truncated: bool,
    /// The branches enter through different announced ASes.
    pub multi_entry: bool,
    /// The branch the verdict rests on.
    pub named: Option<usize>,
}

impl TraceAnalysis {
    /// The target's /24.
    pub fn target_24(&self) -> Ipv4Net {
        covering(self.trace.target, 24)
    }

    /// The most specific announced prefix, if any.
    pub fn announced_prefix(&self) -> Option<&AnnouncedPrefix> {
        self.announced.first()
    }

    /// Where the trace comes from: `agents` (nkpath agents), or the public dataset it was
    /// imported from (`atlas`, `scamper`), from its `agent_id` (`atlas:MSM/PRB`,
    /// `scamper:FILE`). Reports count each source separately.
    pub fn source_kind(&self) -> &'static str {
        source_kind(&self.trace.agent_id)
    }

    /// `AS4837`, `AS4837 (inferred)`, `AS4837 or AS20485 (several at TTL 5)`,
    /// `AS4837 + AS20485 (multi-entry)` or `unknown`.
    pub fn entry_label(&self) -> String {
        match &self.multipath {
            Some(m) if m.multi_entry => {
                let ases: Vec<String> = self
                    .entry_ases()
                    .iter()
                    .filter_map(|(a, _)| a.map(|a| format!("AS{a}")))
                    .collect();
                format!("{} (multi-entry)", ases.join(" + "))
            }
            _ => self.entry.label(),
        }
    }

    /// The entry ASes this trace counts for, each with whether it is inferred: its entry AS,
    /// or for a multipath trace each AS one of its branches enters through, whatever the
    /// verdict ([`multipath::entry_ases`]).
    pub fn entry_ases(&self) -> Vec<(Option<u32>, bool)> {
        match &self.multipath {
            Some(m) => multipath::entry_ases(&m.branches),
            None => vec![(self.entry.asn, self.entry.inferred)],
        }
    }

    /// The branch the verdict rests on, for a multipath trace: its number (from 1) and path.
    pub fn named_branch(&self) -> Option<(usize, &Branch)> {
        let m = self.multipath.as_ref()?;
        let i = m.named?;
        Some((i + 1, &m.branches.get(i)?.branch))
    }
}

/// Analyses traces against BGP data from a [`BgpSource`] (the database, or routes in memory).
#[derive(Debug)]
pub struct Analyzer<'a, S: BgpSource + ?Sized> {
    bgp: &'a S,
    mapper: Mapper<'a>,
    options: AnalysisOptions,
    target_asn: u32,
    change_times: Vec<i64>,
    states: HashMap<i64, Option<BgpState>>,
    adjacency: Adjacency,
}

impl<'a, S: BgpSource + ?Sized> Analyzer<'a, S> {
    /// An analyzer over the BGP data of `bgp`.
    pub fn new(
        bgp: &'a S,
        mapper: Mapper<'a>,
        options: AnalysisOptions,
    ) -> Result<Self, AnalysisError> {
        Ok(Self {
            bgp,
            mapper,
            options,
            target_asn: bgp.target_asn()?,
            change_times: bgp.change_times()?,
            states: HashMap::new(),
            adjacency: bgp.adjacency()?,
        })
    }

    /// The options in force.
    pub fn options(&self) -> &AnalysisOptions {
        &self.options
    }

    /// Analyses `traces` (oldest first, e.g. [`crate::results::stored_traces`]).
    pub fn analyze_all(
        &mut self,
        traces: Vec<TraceResult>,
    ) -> Result<Vec<TraceAnalysis>, AnalysisError> {
        let changes = match (traces.first(), traces.last()) {
            (Some(first), Some(last)) => {
                let w = time::Duration::seconds(self.options.transition_window_s);
                // Saturating: a trace of the first or last second the time type holds.
                let from = first.started_at.checked_sub(w).unwrap_or(first.started_at);
                let to = last.started_at.checked_add(w).unwrap_or(last.started_at);
                self.bgp.upstream_changes(from, to)?
            }
            _ => UpstreamChanges::default(),
        };
        traces
            .into_iter()
            .map(|t| self.analyze(t, &changes))
            .collect()
    }

    /// Analyses `traces` and multipath traces `multipaths` together, oldest first (then by
    /// id): what reports count.
    pub fn analyze_all_with(
        &mut self,
        traces: Vec<TraceResult>,
        multipaths: Vec<MultipathResult>,
    ) -> Result<Vec<TraceAnalysis>, AnalysisError> {
        let times = traces
            .iter()
            .map(|t| t.started_at)
            .chain(multipaths.iter().map(|m| m.started_at));
        let (first, last) = (times.clone().min(), times.max());
        let changes = match (first, last) {
            (Some(first), Some(last)) => {
                let w = time::Duration::seconds(self.options.transition_window_s);
                let from = first.checked_sub(w).unwrap_or(first);
                let to = last.checked_add(w).unwrap_or(last);
                self.bgp.upstream_changes(from, to)?
            }
            _ => UpstreamChanges::default(),
        };
        let mut out = traces
            .into_iter()
            .map(|t| self.analyze(t, &changes))
            .collect::<Result<Vec<_>, _>>()?;
        for m in multipaths {
            out.push(self.analyze_multipath(m, &changes)?);
        }
        out.sort_by_key(|a| (a.trace.started_at, a.trace.result_id));
        Ok(out)
    }

    /// Analyses one multipath trace: its hop-by-hop view as a trace, then each branch judged
    /// on its own, then the trace's verdict from theirs ([`multipath::combine`]).
    pub fn analyze_multipath(
        &mut self,
        m: MultipathResult,
        changes: &UpstreamChanges,
    ) -> Result<TraceAnalysis, AnalysisError> {
        let mut a = self.analyze(multipath::as_trace(&m), changes)?;
        let target_asn = self.target_asn;
        // Loaded by `analyze` above; read here without copying it.
        let state = self.cached_state(m.started_at);
        let reply_of = |ttl: u8, address: Ipv4Addr| {
            let r = a.hops.iter().find(|h| h.ttl == ttl)?.reply_of(address)?;
            Some(EntryReply {
                address,
                class: r.class.clone(),
                kind: r.kind,
                mpls: r.mpls_labels > 0,
            })
        };
        let in_target = |address: Ipv4Addr| {
            a.hops
                .iter()
                .flat_map(|h| &h.replies)
                .any(|r| r.address == address && r.class.asn() == Some(target_asn))
        };
        let (branches, truncated) = multipath::branches(&m, in_target);
        let mut judged = Vec::with_capacity(branches.len());
        for branch in branches {
            let hops = multipath::branch_entry_hops(&branch, reply_of);
            let mut entry = infer_entry(&hops, target_asn, a.agent_asn);
            flag_thin_entry(&mut entry, &a.hops);
            let verdict = self.judge(state, a.bgp_age_s, &entry, &a.announced);
            judged.push(BranchJudgement {
                branch,
                entry,
                verdict,
            });
        }
        let combined = multipath::combine(&judged);
        if let Some(named) = combined.named.and_then(|i| judged.get(i)) {
            a.entry = named.entry.clone();
        }
        a.verdict = combined.verdict;
        a.multipath = Some(MultipathAnalysis {
            result: m,
            branches: judged,
            truncated,
            multi_entry: combined.multi_entry,
            named: combined.named,
        });
        Ok(a)
    }

    /// The verdict of an entry at a trace's time: stale BGP, several entry ASes, the rules of
    /// [`verdict`], then the entry hop inside the target's block.
    fn judge(
        &self,
        state: Option<&BgpState>,
        bgp_age_s: Option<i64>,
        entry: &Entry,
        announced: &[AnnouncedPrefix],
    ) -> Verdict {
        match bgp_age_s {
            Some(age) if age > self.options.max_bgp_age_s => {
                stale_verdict(age, self.options.max_bgp_age_s)
            }
            _ if state.is_some() && !announced.is_empty() && entry.several.is_some() => {
                several_entries_verdict(entry, announced)
            }
            _ => {
                let v = verdict(state.is_some(), entry.asn, announced, &self.adjacency);
                match (state, entry.hop) {
                    (Some(state), Some((_, address))) if v.kind != VerdictKind::Unknown => {
                        entry_in_target_block(state, address, entry.asn).unwrap_or(v)
                    }
                    _ => v,
                }
            }
        }
    }

    /// The state `state_at` loaded for time `t`, if any.
    fn cached_state(&self, t: OffsetDateTime) -> Option<&BgpState> {
        let secs = t.unix_timestamp();
        let key = self
            .change_times
            .partition_point(|c| *c <= secs)
            .checked_sub(1)
            .map(|i| self.change_times[i])?;
        self.states.get(&key)?.as_ref()
    }

    fn state_at(&mut self, t: OffsetDateTime) -> Result<Option<&BgpState>, AnalysisError> {
        let secs = t.unix_timestamp();
        let at = self.change_times.partition_point(|c| *c <= secs);
        let Some(key) = at.checked_sub(1).map(|i| self.change_times[i]) else {
            return Ok(None);
        };
        if !self.states.contains_key(&key) {
            let when = OffsetDateTime::from_unix_timestamp(key)
                .map_err(|_| AnalysisError::TimeOutOfRange(key))?;
            let state = self.bgp.state_at(when, self.options.max_bgp_age_s)?;
            self.states.insert(key, state);
        }
        Ok(self.states[&key].as_ref())
    }

    /// Analyses one trace; `changes` must cover its time ± the transition window.
    pub fn analyze(
        &mut self,
        trace: TraceResult,
        changes: &UpstreamChanges,
    ) -> Result<TraceAnalysis, AnalysisError> {
        let target_asn = self.target_asn;
        // Split borrows: the state lives in `self.states`, the mapper is used beside it.
        self.state_at(trace.started_at)?;
        let secs = trace.started_at.unix_timestamp();
        let key = self
            .change_times
            .partition_point(|c| *c <= secs)
            .checked_sub(1)
            .map(|i| self.change_times[i]);
        let state = key
            .and_then(|k| self.states.get(&k))
            .and_then(Option::as_ref);
        let names = hop_names(&trace);
        let mut hops = Vec::with_capacity(trace.hops.len());
        for hop in &trace.hops {
            let mut replies: Vec<HopReply> = Vec::new();
            for reply in hop.probes.iter().filter_map(|p| p.reply.as_ref()) {
                if let Some(seen) = replies.iter_mut().find(|r| r.address == reply.address) {
                    seen.answered += 1;
                    seen.mpls_labels = seen.mpls_labels.max(reply.mpls_labels.len());
                    continue;
                }
                let (class, mapping) = self.mapper.map_with_note(state, reply.address);
                replies.push(HopReply {
                    address: reply.address,
                    class,
                    mapping,
                    rtt_us: reply.rtt_us,
                    answered: 1,
                    name: names.get(&reply.address).cloned(),
                    kind: reply.kind(),
                    mpls_labels: reply.mpls_labels.len(),
                });
            }
            hops.push(AnalyzedHop {
                ttl: hop.ttl,
                replies,
                probes: hop.probes.len(),
                inherited: !hop.is_observed(),
            });
        }
        let agent_asn = self.mapper.map(state, trace.source).asn();
        let entry_hops: Vec<EntryHop> = hops
            .iter()
            .map(|h| EntryHop {
                ttl: h.ttl,
                replies: h
                    .replies
                    .iter()
                    .map(|r| EntryReply {
                        address: r.address,
                        class: r.class.clone(),
                        kind: r.kind,
                        mpls: r.mpls_labels > 0,
                    })
                    .collect(),
                inherited: h.inherited,
            })
            .collect();
        let mut entry = infer_entry(&entry_hops, target_asn, agent_asn);
        flag_thin_entry(&mut entry, &hops);
        let mut data_path: Vec<u32> = agent_asn.into_iter().collect();
        let public = hops
            .iter()
            .flat_map(|h| &h.replies)
            .filter_map(|r| r.class.asn());
        for asn in public {
            if data_path.last() != Some(&asn) {
                data_path.push(asn);
            }
        }
        let announced = state
            .map(|s| announced_for(s, trace.target))
            .unwrap_or_default();
        let bgp_age_s = state.map(|s| s.age_at(secs));
        let verdict = self.judge(state, bgp_age_s, &entry, &announced);
        let w = self.options.transition_window_s;
        let transitional = changes
            .changes
            .iter()
            .any(|c| c.prefix.contains(&trace.target) && (c.time - secs).abs() <= w);
        let peer_comparison = match (state, agent_asn, announced.first()) {
            (Some(state), Some(agent), Some(ann)) => {
                compare_with_peer(state, agent, ann.prefix, &data_path)
            }
            _ => None,
        };
        Ok(TraceAnalysis {
            trace,
            hops,
            agent_asn,
            data_path,
            entry,
            has_bgp_data: state.is_some(),
            bgp_age_s,
            announced,
            verdict,
            transitional,
            peer_comparison,
            multipath: None,
        })
    }
}

/// See [`TraceAnalysis::source_kind`].
pub fn source_kind(agent_id: &str) -> &'static str {
    nkpath_proto::imported_from(agent_id).unwrap_or("agents")
}

/// The names the agent found for the trace's addresses (PTR records), for reading the hops.
/// Only names: an origin AS an agent sends beside them is never read here, so what a
/// volunteer's agent claims cannot move a hop into an AS (the mapper sees the address only).
fn hop_names(trace: &TraceResult) -> HashMap<Ipv4Addr, String> {
    trace
        .annotations
        .iter()
        .filter_map(|a| Some((a.address, a.name.clone()?)))
        .collect()
}

/// A flagged mapping (one peer of many) of the entry hop makes the entry inferred.
fn flag_thin_entry(entry: &mut Entry, hops: &[AnalyzedHop]) {
    let Some((ttl, address)) = entry.hop else {
        return;
    };
    let note = hops
        .iter()
        .find(|h| h.ttl == ttl)
        .and_then(|h| h.reply_of(address)?.mapping.as_ref())
        .filter(|n| n.thin());
    if let Some(note) = note {
        entry.inferred = true;
        entry.reasons.push(format!(
            "the entry hop's prefix {note}: weak evidence of its AS"
        ));
    }
}

/// `ambiguous` when the entry hop's address lies inside a prefix the target AS announces but
/// a more specific prefix of another AS maps it: the border link may be numbered from the
/// target's block (the router may be the target's own), so the entry AS is not certain.
fn entry_in_target_block(
    state: &BgpState,
    address: Ipv4Addr,
    entry_asn: Option<u32>,
) -> Option<Verdict> {
    let covering = announced_for(state, address);
    let block = covering.last()?;
    let asn = entry_asn?;
    Some(Verdict {
        kind: VerdictKind::Ambiguous,
        reason: format!(
            "entry-in-target-block (entry hop {address} lies in the target AS's {} but a more \
             specific prefix maps it to AS{asn}: the border link may be numbered from the \
             target's block)",
            block.prefix
        ),
    })
}

/// `ambiguous` with reason `several-entry-ases`: routers of several public ASes replied at
/// the entry TTL (load balancing across borders, or a route change during the trace), so
/// no single entry AS can be judged; the reason says which of them the announced set of the
/// most specific prefix holds.
fn several_entries_verdict(entry: &Entry, announced: &[AnnouncedPrefix]) -> Verdict {
    let (ttl, ases) = entry
        .several
        .as_ref()
        .map_or((0, &[][..]), |(t, a)| (*t, a.as_slice()));
    let upstreams = announced.first().map(|p| &p.upstreams);
    let list: Vec<String> = ases
        .iter()
        .map(|(asn, address)| {
            let announced = upstreams.is_some_and(|u| u.contains(asn));
            format!(
                "AS{asn} at {address}{}",
                if announced { " (announced)" } else { "" }
            )
        })
        .collect();
    Verdict {
        kind: VerdictKind::Ambiguous,
        reason: format!(
            "several-entry-ases (TTL {ttl} replied from {}: no single entry AS)",
            list.join(", ")
        ),
    }
}

/// `unknown` with reason `stale-bgp`: the newest BGP data before the trace is too old to say
/// what was announced when it ran.
fn stale_verdict(age_s: i64, max_s: i64) -> Verdict {
    Verdict {
        kind: VerdictKind::Unknown,
        reason: format!(
            "stale-bgp (BGP state {} old, maximum {})",
            format_age(age_s),
            format_age(max_s)
        ),
    }
}

/// An age in seconds as `3d 4h`, `5h 12m`, `40m` or `12s`.
pub fn format_age(s: i64) -> String {
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn flatten(path: &AsPath) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for segment in path.segments() {
        let asns = match segment {
            Segment::Seq(v) | Segment::Set(v) => v,
        };
        for &a in asns {
            if out.last() != Some(&a) {
                out.push(a);
            }
        }
    }
    out
}

fn compare_with_peer(
    state: &BgpState,
    agent_asn: u32,
    prefix: Ipv4Net,
    data_path: &[u32],
) -> Option<PeerComparison> {
    let route = state
        .routes(prefix)
        .into_iter()
        .filter(|r| r.peer.asn == agent_asn)
        .min_by_key(|r| (r.peer.address, r.path_id))?;
    let mut bgp_path = flatten(route.path);
    // A peer's path starts with the peer's AS, as the data-plane path does.
    if bgp_path.first() != Some(&agent_asn) {
        bgp_path.insert(0, agent_asn);
    }
    let in_data: BTreeSet<u32> = data_path.iter().copied().collect();
    let in_bgp: BTreeSet<u32> = bgp_path.iter().copied().collect();
    Some(PeerComparison {
        peer: format!("{} (AS{})", route.peer.address, route.peer.asn),
        missing: bgp_path
            .iter()
            .filter(|a| !in_data.contains(a))
            .copied()
            .collect(),
        extra: data_path
            .iter()
            .filter(|a| !in_bgp.contains(a))
            .copied()
            .collect(),
        bgp_path,
    })
}

/// The verdict rules on BGP data held in memory: no database, no SQL.
#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use ipnet::Ipv4Net;
    use serde_json::json;

    use super::*;
    use crate::analysis::source::MemoryBgp;
    use crate::bgp::PeerInfo;
    use crate::settings::Target;

    /// 2015-01-01T00:00:00Z, the time of the RIB.
    const RIB_TIME: i64 = 1_420_070_400;
    const NK: u32 = 131_279;

    /// One replying hop: (TTL, address, ICMP type, ICMP code).
    type Hop = (u8, &'static str, u8, u8);

    fn peer(id: i64, address: &str, asn: u32) -> PeerInfo {
        PeerInfo {
            id,
            collector: "rrc00".into(),
            collector_id: 0,
            index: id as u32,
            address: address.parse::<IpAddr>().unwrap(),
            asn,
        }
    }

    /// A RIB of three full-feed peers, each with every route (prefix, AS path).
    fn bgp(routes: &[(&str, &[u32])]) -> MemoryBgp {
        let peers = [
            peer(0, "192.0.2.1", 3356),
            peer(1, "192.0.2.2", 1299),
            peer(2, "192.0.2.3", 6939),
        ];
        let rib: Vec<(&PeerInfo, Ipv4Net, AsPath)> = peers
            .iter()
            .flat_map(|p| {
                routes.iter().map(move |(prefix, path)| {
                    let mut full = vec![p.asn];
                    full.extend_from_slice(path);
                    (p, prefix.parse().unwrap(), AsPath::from_sequence(&full))
                })
            })
            .collect();
        let state = BgpState::from_rib(RIB_TIME, Target::default(), "rrc00", rib);
        MemoryBgp::new(NK).with_state(state)
    }

    /// The usual table: NK's /22 behind China Unicom, the upstreams' and the agent's space
    /// (Hetzner's, where the agent runs).
    fn routes() -> Vec<(&'static str, &'static [u32])> {
        vec![
            ("175.45.176.0/22", &[4837, NK]),
            ("219.158.0.0/17", &[4837]),
            ("188.43.0.0/16", &[20485]),
            ("5.9.0.0/16", &[24_940]),
        ]
    }

    /// A trace of these replies; replies of one TTL (consecutive) are probes of one hop.
    fn trace(after_rib_s: i64, hops: &[Hop]) -> TraceResult {
        let started = OffsetDateTime::from_unix_timestamp(RIB_TIME + after_rib_s).unwrap();
        let mut by_ttl: Vec<(u8, Vec<serde_json::Value>)> = Vec::new();
        for (ttl, address, icmp_type, icmp_code) in hops {
            if by_ttl.last().is_none_or(|(t, _)| t != ttl) {
                by_ttl.push((*ttl, Vec::new()));
            }
            let probes = &mut by_ttl.last_mut().expect("pushed").1;
            probes.push(
                json!({"attempt": probes.len() + 1, "sent_at_us": 0, "reply": {
                "address": address, "rtt_us": 1000, "reply_ttl": 250,
                "icmp_type": icmp_type, "icmp_code": icmp_code, "tcp_flags": null,
                "quoted_ttl": 1, "mpls_labels": []}}),
            );
        }
        let attempts = by_ttl.iter().map(|(_, p)| p.len()).max().unwrap_or(1);
        let hops: Vec<serde_json::Value> = by_ttl
            .into_iter()
            .map(|(ttl, probes)| json!({"ttl": ttl, "probes": probes}))
            .collect();
        let json = json!({
            "kind": "trace", "schema_version": "1.0",
            "result_id": "00000000-0000-4000-8000-000000000001",
            "agent_id": "vp-test", "agent_version": "0.1.0",
            "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
            "source": "5.9.0.7", "target": "175.45.176.9", "protocol": "icmp",
            "flow": {"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7238},
            "params": {"attempts": attempts, "timeout_ms": 2000, "gap_limit": 5, "first_ttl": 1,
                       "max_ttl": 30, "pps": 50, "per_prefix_pps": 1},
            "started_at": nkpath_proto::timestamp::precise(started),
            "hops": hops, "stop_reason": "reached", "annotations": []
        });
        nkpath_proto::decode(&json.to_string()).unwrap()
    }

    fn analyze(bgp: &MemoryBgp, trace: TraceResult) -> TraceAnalysis {
        let mut analyzer = Analyzer::new(bgp, Mapper::default(), AnalysisOptions::default())
            .expect("an in-memory source never fails");
        analyzer.analyze_all(vec![trace]).unwrap().remove(0)
    }

    /// Agent, China Unicom, then NK: the entry is seen and BGP announces it.
    const VIA_UNICOM: [Hop; 3] = [
        (1, "5.9.0.1", 11, 0),
        (2, "219.158.1.1", 11, 0),
        (3, "175.45.176.9", 0, 0),
    ];

    #[test]
    fn an_observed_entry_that_bgp_announces_matches() {
        let a = analyze(&bgp(&routes()), trace(60, &VIA_UNICOM));
        assert_eq!((a.entry.asn, a.entry.inferred), (Some(4837), false));
        assert_eq!(a.verdict.kind, VerdictKind::Match, "{}", a.verdict.reason);
        assert_eq!(a.agent_asn, Some(24_940));
        assert_eq!(a.data_path, [24_940, 4837, NK]);
        assert_eq!(a.bgp_age_s, Some(60));
    }

    /// A multipath trace of these paths, analysed.
    fn analyze_multipath(bgp: &MemoryBgp, paths: &[&[(u8, &str)]]) -> TraceAnalysis {
        let m = crate::analysis::multipath::from_paths(RIB_TIME + 60, "175.45.176.9", paths);
        let mut analyzer = Analyzer::new(bgp, Mapper::default(), AnalysisOptions::default())
            .expect("an in-memory source never fails");
        analyzer
            .analyze_all_with(Vec::new(), vec![m])
            .unwrap()
            .remove(0)
    }

    /// A per-flow split at the agent's first hop: one branch through China Unicom, one
    /// through TransTeleCom, both into NK.
    const EITHER: [&[(u8, &str)]; 2] = [
        &[(1, "5.9.0.1"), (2, "219.158.1.1"), (3, "175.45.176.9")],
        &[(1, "5.9.0.1"), (2, "188.43.225.153"), (3, "175.45.176.9")],
    ];

    #[test]
    fn a_multipath_trace_through_two_announced_upstreams_is_a_multi_entry_match() {
        // NK's /22 announced through both upstreams, as since 2017: one peer of three hears
        // it through TransTeleCom.
        let peers = [
            peer(0, "192.0.2.1", 3356),
            peer(1, "192.0.2.2", 1299),
            peer(2, "192.0.2.3", 6939),
        ];
        let rib: Vec<(&PeerInfo, Ipv4Net, AsPath)> = peers
            .iter()
            .flat_map(|p| {
                routes().into_iter().map(move |(prefix, path)| {
                    let mut full = vec![p.asn];
                    full.extend_from_slice(if p.id == 2 && path.ends_with(&[NK]) {
                        &[20485, NK]
                    } else {
                        path
                    });
                    (p, prefix.parse().unwrap(), AsPath::from_sequence(&full))
                })
            })
            .collect();
        let state = BgpState::from_rib(RIB_TIME, Target::default(), "rrc00", rib);
        let a = analyze_multipath(&MemoryBgp::new(NK).with_state(state), &EITHER);
        let m = a.multipath.as_ref().expect("a multipath analysis");
        let per_branch: Vec<(String, Option<u32>, VerdictKind)> = m
            .branches
            .iter()
            .map(|b| (b.branch.to_string(), b.entry.asn, b.verdict.kind))
            .collect();
        assert_eq!(
            per_branch,
            [
                (
                    "5.9.0.1 > 188.43.225.153 > 175.45.176.9".to_owned(),
                    Some(20485),
                    VerdictKind::Match
                ),
                (
                    "5.9.0.1 > 219.158.1.1 > 175.45.176.9".to_owned(),
                    Some(4837),
                    VerdictKind::Match
                ),
            ]
        );
        assert_eq!(a.verdict.kind, VerdictKind::Match, "{}", a.verdict.reason);
        assert!(m.multi_entry);
        assert_eq!(a.entry_ases(), [(Some(4837), false), (Some(20485), false)]);
        assert_eq!(a.entry_label(), "AS4837 + AS20485 (multi-entry)");
        // Every interface is mapped in the hop view.
        let mapped: Vec<(u8, String)> = a
            .hops
            .iter()
            .flat_map(|h| h.replies.iter().map(move |r| (h.ttl, r.class.to_string())))
            .collect();
        assert_eq!(mapped.len(), 4);
        assert!(
            mapped.iter().all(|(_, c)| c.starts_with("AS")),
            "{mapped:?}"
        );
    }

    #[test]
    fn a_multipath_branch_through_an_unannounced_as_makes_a_mismatch_naming_it() {
        // Only China Unicom announced: the TransTeleCom branch is not.
        let a = analyze_multipath(&bgp(&routes()), &EITHER);
        assert_eq!(
            a.verdict.kind,
            VerdictKind::Mismatch,
            "{}",
            a.verdict.reason
        );
        assert!(
            a.verdict.reason.starts_with(
                "branch 1 (5.9.0.1 > 188.43.225.153 > 175.45.176.9) enters through AS20485"
            ),
            "{}",
            a.verdict.reason
        );
        assert_eq!(a.entry.asn, Some(20485), "the entry of the branch named");
        let (n, branch) = a.named_branch().unwrap();
        assert_eq!(
            (n, branch.to_string().as_str()),
            (1, "5.9.0.1 > 188.43.225.153 > 175.45.176.9")
        );
        // A trace whose branches all enter through China Unicom matches, once.
        let one = analyze_multipath(
            &bgp(&routes()),
            &[
                &[(1, "5.9.0.1"), (2, "219.158.1.1"), (3, "175.45.176.9")],
                &[(1, "5.9.0.1"), (2, "219.158.1.2"), (3, "175.45.176.9")],
            ],
        );
        assert_eq!(one.verdict.kind, VerdictKind::Match);
        assert!(!one.multipath.as_ref().unwrap().multi_entry);
        assert_eq!(one.entry_ases(), [(Some(4837), false)]);
    }

    #[test]
    fn an_entry_bgp_does_not_announce_is_a_mismatch_unless_it_borders_an_upstream() {
        let via_ttk = [
            (1, "5.9.0.1", 11, 0),
            (2, "188.43.225.153", 11, 0),
            (3, "175.45.176.9", 0, 0),
        ];
        let a = analyze(&bgp(&routes()), trace(60, &via_ttk));
        assert_eq!(a.entry.asn, Some(20485));
        assert_eq!(
            a.verdict.kind,
            VerdictKind::Mismatch,
            "{}",
            a.verdict.reason
        );
        // Some path elsewhere in the table puts AS20485 next to the announced upstream.
        let border = AsPath::from_sequence(&[3356, 20485, 4837, 9808]);
        let a = analyze(&bgp(&routes()).with_paths([&border]), trace(60, &via_ttk));
        assert_eq!(
            a.verdict.kind,
            VerdictKind::Ambiguous,
            "{}",
            a.verdict.reason
        );
        assert!(
            a.verdict.reason.starts_with("border"),
            "{}",
            a.verdict.reason
        );
    }

    #[test]
    fn without_bgp_data_or_with_stale_data_the_verdict_is_unknown() {
        let a = analyze(&bgp(&routes()), trace(-60, &VIA_UNICOM));
        assert_eq!(a.verdict.kind, VerdictKind::Unknown);
        assert_eq!(a.verdict.reason, "no BGP data");
        let two_days = 2 * 86_400;
        let a = analyze(&bgp(&routes()), trace(two_days, &VIA_UNICOM));
        assert_eq!(a.verdict.kind, VerdictKind::Unknown);
        assert!(
            a.verdict.reason.starts_with("stale-bgp"),
            "{}",
            a.verdict.reason
        );
        assert_eq!(a.bgp_age_s, Some(two_days));
    }

    #[test]
    fn a_trace_refused_before_the_target_never_entered_it() {
        // China Unicom answers admin-prohibited (type 3 code 13); NK never answers.
        let refused = [(1, "5.9.0.1", 11, 0), (2, "219.158.1.1", 3, 13)];
        let a = analyze(&bgp(&routes()), trace(60, &refused));
        assert_eq!(a.entry.asn, None);
        assert_eq!(a.verdict.kind, VerdictKind::Unknown);
        assert!(
            a.entry
                .reasons
                .iter()
                .any(|r| r.contains("filtered-in AS4837")),
            "{:?}",
            a.entry.reasons
        );
    }

    #[test]
    fn an_origin_as_sent_by_the_agent_maps_nothing() {
        // A hostile agent claims the unmapped hop is AS20485's, to forge the entry AS.
        let hops = [
            (1, "5.9.0.1", 11, 0),
            (2, "219.158.1.1", 11, 0),
            (3, "62.115.1.1", 11, 0),
            (4, "175.45.176.9", 0, 0),
        ];
        let mut forged = trace(60, &hops);
        forged.annotations.push(nkpath_proto::HopAnnotation {
            address: "62.115.1.1".parse().unwrap(),
            name: Some("ttk.example".into()),
            asn: Some(20485),
            source: nkpath_proto::AnnotationSource::Cymru,
            resolved_at: forged.started_at,
        });
        let a = analyze(&bgp(&routes()), forged);
        let hop = a.hops[2].first().unwrap();
        assert_eq!(hop.class, HopClass::Unmapped);
        assert_eq!(hop.name.as_deref(), Some("ttk.example"));
        assert_eq!((a.entry.asn, a.entry.inferred), (Some(4837), true));
        assert_eq!(a.data_path, [24_940, 4837, NK]);
    }

    #[test]
    fn an_entry_hop_inside_the_target_block_is_ambiguous() {
        // A more specific /24 of NK's block is originated by China Unicom: its router
        // answers from NK's space.
        let mut table = routes();
        table.push(("175.45.179.0/24", &[4837]));
        let hops = [
            (1, "5.9.0.1", 11, 0),
            (2, "175.45.179.1", 11, 0),
            (3, "175.45.176.9", 0, 0),
        ];
        let a = analyze(&bgp(&table), trace(60, &hops));
        assert_eq!(a.entry.asn, Some(4837));
        assert_eq!(
            a.verdict.kind,
            VerdictKind::Ambiguous,
            "{}",
            a.verdict.reason
        );
        assert!(
            a.verdict.reason.starts_with("entry-in-target-block"),
            "{}",
            a.verdict.reason
        );
    }

    /// Issue 19: China Unicom and TransTeleCom both answer the last TTL before NK (a load
    /// balancer across two borders). Only the first reply used to count, so the trace was a
    /// clean `match` through China Unicom; now both ASes are seen and nothing is claimed.
    #[test]
    fn two_ases_at_the_entry_ttl_are_ambiguous_with_the_reason() {
        let hops = [
            (1, "5.9.0.1", 11, 0),
            (2, "219.158.1.1", 11, 0),
            (2, "188.43.225.153", 11, 0),
            (3, "175.45.176.9", 0, 0),
        ];
        let a = analyze(&bgp(&routes()), trace(60, &hops));
        assert_eq!(a.hops[1].replies.len(), 2);
        assert_eq!(a.hops[1].probes, 2);
        assert_eq!(a.entry.asn, None, "{:?}", a.entry);
        assert_eq!(
            a.verdict.kind,
            VerdictKind::Ambiguous,
            "{}",
            a.verdict.reason
        );
        assert_eq!(
            a.verdict.reason,
            "several-entry-ases (TTL 2 replied from AS4837 at 219.158.1.1 (announced), \
             AS20485 at 188.43.225.153: no single entry AS)"
        );
        assert_eq!(a.data_path, [24_940, 4837, 20485, NK]);
        // Without BGP data it stays unknown: nothing to judge against.
        let a = analyze(&bgp(&routes()), trace(-60, &hops));
        assert_eq!(a.verdict.kind, VerdictKind::Unknown);
    }

    #[test]
    fn the_same_address_answering_twice_is_one_reply() {
        let hops = [
            (1, "5.9.0.1", 11, 0),
            (2, "219.158.1.1", 11, 0),
            (2, "219.158.1.1", 11, 0),
            (3, "175.45.176.9", 0, 0),
        ];
        let a = analyze(&bgp(&routes()), trace(60, &hops));
        assert_eq!(a.hops[1].replies.len(), 1);
        assert_eq!((a.hops[1].replies[0].answered, a.hops[1].probes), (2, 2));
        assert_eq!(a.verdict.kind, VerdictKind::Match, "{}", a.verdict.reason);
    }
}
