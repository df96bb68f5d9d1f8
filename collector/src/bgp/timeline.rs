//! The target routes as they change over a period, and what is derived from them:
//! time-weighted visibility of an upstream, and the appearances and disappearances of
//! announced upstreams.
//!
//! The state is piecewise constant: it changes only at RIB dump times and BGP4MP event times,
//! and at every instant it is exactly what [`BgpState::at`](super::BgpState::at) would build
//! (per collector, last dump ≤ t plus the events from its second up to t, and peers known
//! from their session start, within the maximum replay age). Events stamped with a dump's own
//! second are applied after the dump, as in `BgpState::at` (see there why).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use ipnet::Ipv4Net;
use time::OffsetDateTime;

use super::replay::{Event, PeerId, Replay, TargetRoutes, TimedEvent};
use super::state::{BgpError, MAX_REPLAY_AGE_S, load_events, load_peers, load_rib_routes};
use super::unix_seconds;
use super::upstream::{AnnouncedUpstreams, Visibility, upstream_of};
use crate::store::Db;
use crate::store::bgp::RibDump;

/// The target routes of every collector with data at one instant.
#[derive(Debug, Default)]
pub struct TargetView {
    collectors: BTreeMap<i64, CollectorView>,
}

/// How the peers reach one target /24 at an instant ([`TargetView::coverage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Peers with a route for a target-AS prefix covering it.
    pub peers_with_route: usize,
    /// The most specific such prefix.
    pub announced: Option<Ipv4Net>,
    /// Its announced upstreams.
    pub upstreams: BTreeSet<u32>,
}

/// The coverage of each of `nets` over [a, b]: (start, coverage) each time it changes, the
/// first at `a`.
pub fn coverage_over(
    db: &Db,
    nets: &[Ipv4Net],
    a: i64,
    b: i64,
) -> Result<BTreeMap<Ipv4Net, Vec<(i64, Coverage)>>, BgpError> {
    let target_asn = db.target()?.asn;
    let mut out: BTreeMap<Ipv4Net, Vec<(i64, Coverage)>> = BTreeMap::new();
    walk_target_routes(db, a, b.max(a), |t, view, _| {
        for net in nets {
            let c = view.coverage(*net, target_asn);
            let samples = out.entry(*net).or_default();
            // A dump and then the events of its second: the state at the end of the second.
            if samples.last().is_some_and(|(start, _)| *start == t) {
                samples.pop();
            }
            if samples.last().is_some_and(|(_, last)| *last == c) {
                continue;
            }
            samples.push((t, c));
        }
    })?;
    Ok(out)
}

/// How long after a peer's session goes to Established its first announcement of a prefix
/// counts as part of its initial table transfer (seconds): the peer's baseline, not a change.
pub const TABLE_TRANSFER_S: i64 = 15 * 60;

/// A route: (peer, prefix, ADD-PATH id).
type RouteKey = (PeerId, Ipv4Net, u32);

/// One collector in a [`TargetView`]: its routes, and which of its events are replayed.
#[derive(Debug)]
struct CollectorView {
    routes: TargetRoutes,
    replay: Replay,
    /// Routes of session-based peers announced since their session came up.
    seen_since_up: HashSet<RouteKey>,
    /// Of those, the routes from the peer's initial table transfer: its first announcement
    /// of the prefix, within [`TABLE_TRANSFER_S`] of the session coming up.
    initial_table: HashSet<RouteKey>,
}

impl CollectorView {
    fn new(routes: TargetRoutes, replay: Replay) -> Self {
        Self {
            routes,
            replay,
            seen_since_up: HashSet::new(),
            initial_table: HashSet::new(),
        }
    }

    fn forget_peer(&mut self, peer: PeerId) {
        self.seen_since_up.retain(|(p, ..)| *p != peer);
        self.initial_table.retain(|(p, ..)| *p != peer);
    }

    /// Replays `e`, keeping track of which routes are initial table transfer.
    fn step(&mut self, e: &TimedEvent) {
        let replayed = self.replay.replayed();
        self.replay.step(e, &mut self.routes);
        match &e.event {
            Event::SessionUp { peer, .. } | Event::SessionDown { peer, .. } => {
                self.forget_peer(*peer);
            }
            Event::Update {
                peer,
                prefix,
                path_id,
                origins,
                is_target: true,
                ..
            } => {
                let key = (*peer, *prefix, *path_id);
                if self.replay.replayed() == replayed {
                    // Not replayed: the peer has no base (any more).
                    self.forget_peer(*peer);
                    return;
                }
                let first = self.seen_since_up.insert(key);
                let in_transfer = self
                    .replay
                    .session_since(*peer)
                    .is_some_and(|since| e.time - since <= TABLE_TRANSFER_S);
                if origins.is_some() && first && in_transfer {
                    self.initial_table.insert(key);
                } else {
                    self.initial_table.remove(&key);
                }
            }
            Event::Update { .. } => {}
        }
    }
}

impl TargetView {
    /// Whether any collector has data at this instant: a RIB dump in use, or peers known
    /// from their session start (see [`super::state`]) with a target route: until their
    /// first one arrives, their tables are still arriving.
    pub fn has_data(&self) -> bool {
        self.collectors
            .values()
            .any(|c| c.replay.dump_used() || (c.replay.has_data() && !c.routes.is_empty()))
    }

    /// Target-overlapping prefixes with at least one route.
    pub fn prefixes(&self) -> BTreeSet<Ipv4Net> {
        self.collectors
            .values()
            .flat_map(|c| c.routes.prefixes())
            .collect()
    }

    /// The peers whose routes for `prefix` have `upstream` directly before the target AS, when
    /// every such route is from its peer's initial table transfer (see [`TABLE_TRANSFER_S`]);
    /// `None` when some such route is not, or there is none.
    pub fn only_in_initial_tables(
        &self,
        prefix: Ipv4Net,
        upstream: u32,
        target_asn: u32,
    ) -> Option<BTreeSet<PeerId>> {
        let mut peers = BTreeSet::new();
        for c in self.collectors.values() {
            for ((peer, path_id), path) in c.routes.routes(prefix) {
                if upstream_of(path, target_asn).matchable() != Some(upstream) {
                    continue;
                }
                if !c.initial_table.contains(&(*peer, prefix, *path_id)) {
                    return None;
                }
                peers.insert(*peer);
            }
        }
        (!peers.is_empty()).then_some(peers)
    }

    /// How the collectors' peers reach `net` (a target /24): the peers with a route for a
    /// `target_asn` prefix covering it, and the most specific such prefix with its origin
    /// and announced upstreams.
    pub fn coverage(&self, net: Ipv4Net, target_asn: u32) -> Coverage {
        let mut peers = BTreeSet::new();
        let mut best: Option<Ipv4Net> = None;
        for c in self.collectors.values() {
            for (prefix, (peer, _), path) in c.routes.all() {
                if !prefix.contains(&net) || !path.origins().contains(&target_asn) {
                    continue;
                }
                peers.insert(peer);
                if best.is_none_or(|b| prefix.prefix_len() > b.prefix_len()) {
                    best = Some(prefix);
                }
            }
        }
        let upstreams = best.map_or_else(BTreeSet::new, |p| {
            self.announced_upstreams(p, target_asn).upstream_set()
        });
        Coverage {
            peers_with_route: peers.len(),
            announced: best,
            upstreams,
        }
    }

    /// Upstreams announced for `prefix` over all collectors' peers.
    pub fn announced_upstreams(&self, prefix: Ipv4Net, target_asn: u32) -> AnnouncedUpstreams {
        AnnouncedUpstreams::from_routes(
            self.collectors
                .values()
                .flat_map(|c| c.routes.routes(prefix))
                .map(|((peer, _), path)| (*peer, path)),
            target_asn,
        )
    }
}

enum Step {
    /// The dump first at equal times: `Dump` sorts before `Outlive`, `Outlive` before `Event`.
    Dump {
        collector: i64,
        file_id: i64,
        time: i64,
    },
    /// A peer's first update after its base's maximum replay age: the base ends (in
    /// `BgpState::at` that update, target or not, ends it; here only target updates are
    /// replayed, so the end is a step of its own).
    Outlive {
        collector: i64,
        peer: PeerId,
        peer_index: u32,
    },
    Event(TimedEvent),
}

/// Calls `visit(t, view)` with the state at `a`, then after every change in (a, b], in time
/// order. A dump followed by events of its own second is visited twice at that second: as
/// taken, then with the events. `view.has_data()` is false while no collector has data.
pub fn walk_target_routes(
    db: &Db,
    a: i64,
    b: i64,
    mut visit: impl FnMut(i64, &TargetView, Option<i64>),
) -> Result<(), BgpError> {
    let max_age = MAX_REPLAY_AGE_S;
    let mut view = TargetView::default();
    let mut steps: Vec<(i64, u8, i64, i64, Step)> = Vec::new();
    // When the bases of time `base` end: the first update of each of their peers (all the
    // collector's peers for a dump, `only` for a session) after the maximum age.
    let outlive_steps = |collector: i64, base: i64, only: Option<PeerId>| -> Result<_, BgpError> {
        Ok(db
            .first_updates_after(collector, base.saturating_add(max_age), b)?
            .into_iter()
            .filter(move |(peer, ..)| only.is_none_or(|o| o == *peer))
            .map(move |(peer, peer_index, t)| {
                (
                    t,
                    1,
                    0,
                    peer,
                    Step::Outlive {
                        collector,
                        peer,
                        peer_index,
                    },
                )
            }))
    };
    let dumps: BTreeMap<i64, RibDump> = db
        .latest_rib_dumps(a)?
        .into_iter()
        .map(|d| (d.collector_id, d))
        .collect();
    for (collector, _) in db.bgp_collectors()? {
        let mut routes = TargetRoutes::default();
        let dump = dumps.get(&collector);
        if let Some(d) = dump {
            load_rib_routes(db, d.file_id, &mut routes)?;
            steps.extend(outlive_steps(collector, d.time, None)?);
        }
        let replay = Replay::new(dump.map(|d| d.time), max_age);
        view.collectors
            .insert(collector, CollectorView::new(routes, replay));
        // Without a dump, sessions seen going to Established before `a` count too.
        let floor = dump.map_or(i64::MIN, |d| d.time);
        for e in load_events(db, collector, floor, b, true)? {
            if let Event::SessionUp { peer, .. } = e.event {
                steps.extend(outlive_steps(collector, e.time, Some(peer))?);
            }
            steps.push((e.time, 2, e.file_id, e.seq, Step::Event(e)));
        }
    }
    for dump in db.rib_dumps_between(a, b)? {
        let (collector, file_id, time) = (dump.collector_id, dump.file_id, dump.time);
        steps.extend(outlive_steps(collector, time, None)?);
        steps.push((
            time,
            0,
            file_id,
            0,
            Step::Dump {
                collector,
                file_id,
                time,
            },
        ));
    }
    steps.sort_by_key(|(t, kind, file, seq, _)| (*t, *kind, *file, *seq));

    let mut steps = steps.into_iter().peekable();
    let mut last_file = None;
    // Everything up to a makes the initial state.
    while let Some((t, ..)) = steps.peek() {
        if *t > a {
            break;
        }
        let (t, _, file, _, step) = steps.next().expect("peeked");
        if !matches!(step, Step::Outlive { .. }) {
            last_file = Some(file);
        }
        apply(db, &mut view, t, step)?;
    }
    visit(a, &view, last_file);
    while let Some((t, _, file, _, step)) = steps.next() {
        let mut dumped = matches!(step, Step::Dump { .. });
        let mut last = last_file;
        if !matches!(step, Step::Outlive { .. }) {
            last = Some(file);
        }
        apply(db, &mut view, t, step)?;
        while let Some((_, _, file, _, step)) = steps.next_if(|(next, ..)| *next == t) {
            if dumped && matches!(step, Step::Event(_)) {
                // The dump as taken, before the events of its second: they change it.
                visit(t, &view, last);
                dumped = false;
            }
            if !matches!(step, Step::Outlive { .. }) {
                last = Some(file);
            }
            apply(db, &mut view, t, step)?;
        }
        last_file = last;
        visit(t, &view, last);
    }
    Ok(())
}

fn apply(db: &Db, view: &mut TargetView, t: i64, step: Step) -> Result<(), BgpError> {
    match step {
        Step::Dump {
            collector,
            file_id,
            time,
        } => {
            let mut routes = TargetRoutes::default();
            load_rib_routes(db, file_id, &mut routes)?;
            let replay = Replay::new(Some(time), MAX_REPLAY_AGE_S);
            view.collectors
                .insert(collector, CollectorView::new(routes, replay));
        }
        Step::Outlive {
            collector,
            peer,
            peer_index,
        } => {
            if let Some(c) = view.collectors.get_mut(&collector)
                && c.replay.outlive(peer, peer_index, t, &mut c.routes)
            {
                c.forget_peer(peer);
            }
        }
        Step::Event(e) => {
            if let Some(c) = view.collectors.get_mut(&e.collector) {
                c.step(&e);
            }
        }
    }
    Ok(())
}

/// Visibility of one upstream for one prefix over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct VisibilityOverPeriod {
    /// The prefix.
    pub prefix: Ipv4Net,
    /// The upstream ASN.
    pub upstream: u32,
    /// Start of the period (UNIX seconds).
    pub from: i64,
    /// End of the period (UNIX seconds).
    pub to: i64,
    /// The piecewise-constant value: (start of the segment, visibility), `None` while there is
    /// no BGP data or no peer has a route for the prefix.
    pub segments: Vec<(i64, Option<Visibility>)>,
    /// Seconds of the period with a defined visibility.
    pub covered_seconds: i64,
    /// Time-weighted mean of the ratio over the covered seconds (the value at `from` when the
    /// period is a single instant); `None` if never defined.
    pub mean: Option<f64>,
    /// The segment with the lowest ratio.
    pub min: Option<Visibility>,
    /// The segment with the highest ratio.
    pub max: Option<Visibility>,
}

/// Visibility of `upstream` for `prefix` over [a, b] (see [`VisibilityOverPeriod`]).
pub fn visibility_over(
    db: &Db,
    prefix: Ipv4Net,
    upstream: u32,
    a: OffsetDateTime,
    b: OffsetDateTime,
) -> Result<VisibilityOverPeriod, BgpError> {
    let (a, b) = (unix_seconds(a), unix_seconds(b));
    let target_asn = db.target()?.asn;
    let prefix = prefix.trunc();
    let mut segments = Vec::new();
    walk_target_routes(db, a, b.max(a), |t, view, _| {
        let v = view
            .announced_upstreams(prefix, target_asn)
            .visibility(upstream);
        let v = (v.peers_with_route > 0).then_some(v);
        // A dump and then the events of its second: the state at the end of the second holds.
        if segments.last().is_some_and(|(start, _)| *start == t) {
            segments.pop();
        }
        if segments.last().is_some_and(|(_, last)| *last == v) {
            return;
        }
        segments.push((t, v));
    })?;
    Ok(summarize(prefix, upstream, a, b, segments))
}

fn summarize(
    prefix: Ipv4Net,
    upstream: u32,
    a: i64,
    b: i64,
    segments: Vec<(i64, Option<Visibility>)>,
) -> VisibilityOverPeriod {
    let mut covered = 0i64;
    let mut weighted = 0.0;
    let mut min: Option<Visibility> = None;
    let mut max: Option<Visibility> = None;
    let ratio = |v: &Visibility| v.ratio().unwrap_or(0.0);
    for (i, (start, v)) in segments.iter().enumerate() {
        let end = segments.get(i + 1).map_or(b, |(next, _)| *next);
        let Some(v) = v else { continue };
        let seconds = end - start;
        covered += seconds;
        weighted += ratio(v) * seconds as f64;
        if min.is_none_or(|m| ratio(v) < ratio(&m)) {
            min = Some(*v);
        }
        if max.is_none_or(|m| ratio(v) > ratio(&m)) {
            max = Some(*v);
        }
    }
    let mean = if covered > 0 {
        Some(weighted / covered as f64)
    } else {
        // A single instant (a == b), or data only at the very end: the value there.
        segments
            .iter()
            .rev()
            .find_map(|(_, v)| v.as_ref().map(ratio))
    };
    VisibilityOverPeriod {
        prefix,
        upstream,
        from: a,
        to: b,
        segments,
        covered_seconds: covered,
        mean,
        min,
        max,
    }
}

/// An upstream appearing in or disappearing from the announced set of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamChange {
    /// When (UNIX seconds).
    pub time: i64,
    /// The prefix.
    pub prefix: Ipv4Net,
    /// The upstream ASN.
    pub upstream: u32,
    /// Appeared (`true`) or disappeared.
    pub appeared: bool,
    /// Peers whose route has the upstream after the change (0 when it disappeared).
    pub peers_via_upstream: usize,
    /// Peers with any route for the prefix after the change.
    pub peers_with_route: usize,
    /// `mrt_files.id` of the (last) file whose record made the change.
    pub file_id: Option<i64>,
}

/// The announced upstream sets over a period: where they started, and every change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamChanges {
    /// When BGP data first exists in the period (UNIX seconds), if it does.
    pub baseline_time: Option<i64>,
    /// The announced upstream set of every target-overlapping prefix at `baseline_time`.
    pub baseline: BTreeMap<Ipv4Net, BTreeSet<u32>>,
    /// Changes after the baseline, in time order (then by prefix and upstream; in a dump's
    /// second, those of the dump before those of the events of that second).
    pub changes: Vec<UpstreamChange>,
    /// Upstreams that joined the announced set after the baseline only through the initial
    /// table transfer of peers whose session came up: those peers' baseline, not a change.
    pub peer_baselines: Vec<PeerBaseline>,
}

/// An upstream that joined the announced set of a prefix only through peers' initial table
/// transfer after their session came up (see [`TABLE_TRANSFER_S`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBaseline {
    /// When (UNIX seconds).
    pub time: i64,
    /// The prefix.
    pub prefix: Ipv4Net,
    /// The upstream ASN.
    pub upstream: u32,
    /// The peers (address, ASN) whose table brought it.
    pub peers: Vec<(IpAddr, u32)>,
    /// Peers with any route for the prefix after it.
    pub peers_with_route: usize,
}

impl UpstreamChanges {
    /// The changes of one prefix.
    pub fn of_prefix(&self, prefix: Ipv4Net) -> impl Iterator<Item = &UpstreamChange> {
        self.changes.iter().filter(move |c| c.prefix == prefix)
    }
}

/// When upstreams appeared in or disappeared from the announced set of each prefix the target
/// AS originates inside or covering the target prefixes, during [a, b] (from RIB dumps and
/// updates). Prefixes no peer has from the target AS (a default route, another AS's block) have
/// no announced set. An upstream that joins the set only through the initial table transfer of
/// peers whose session came up is those peers' baseline ([`UpstreamChanges::peer_baselines`]),
/// not a change.
pub fn upstream_changes(
    db: &Db,
    a: OffsetDateTime,
    b: OffsetDateTime,
) -> Result<UpstreamChanges, BgpError> {
    let (a, b) = (unix_seconds(a), unix_seconds(b));
    let target_asn = db.target()?.asn;
    let peer_info = load_peers(db)?;
    let mut out = UpstreamChanges::default();
    let mut previous: BTreeMap<Ipv4Net, BTreeSet<u32>> = BTreeMap::new();
    walk_target_routes(db, a, b.max(a), |t, view, file_id| {
        if !view.has_data() {
            return;
        }
        let mut current: BTreeMap<Ipv4Net, (BTreeSet<u32>, AnnouncedUpstreams)> = BTreeMap::new();
        for prefix in view.prefixes() {
            let announced = view.announced_upstreams(prefix, target_asn);
            if announced.originated_by_target() {
                current.insert(prefix, (announced.upstream_set(), announced));
            }
        }
        if out.baseline_time.is_none() {
            out.baseline_time = Some(t);
            out.baseline = current.iter().map(|(p, (s, _))| (*p, s.clone())).collect();
        } else {
            let empty = BTreeSet::new();
            let prefixes: BTreeSet<Ipv4Net> =
                previous.keys().chain(current.keys()).copied().collect();
            for prefix in prefixes {
                let before = previous.get(&prefix).unwrap_or(&empty);
                let (after, announced) = match current.get(&prefix) {
                    Some((s, a)) => (s, Some(a)),
                    None => (&empty, None),
                };
                let peers_with_route = announced.map_or(0, |a| a.peers_with_route);
                for upstream in after.difference(before) {
                    if let Some(peers) = view.only_in_initial_tables(prefix, *upstream, target_asn)
                    {
                        out.peer_baselines.push(PeerBaseline {
                            time: t,
                            prefix,
                            upstream: *upstream,
                            peers: peers
                                .iter()
                                .filter_map(|p| peer_info.get(p))
                                .map(|p| (p.address, p.asn))
                                .collect(),
                            peers_with_route,
                        });
                        continue;
                    }
                    out.changes.push(UpstreamChange {
                        time: t,
                        prefix,
                        upstream: *upstream,
                        appeared: true,
                        peers_via_upstream: announced.map_or(0, |a| a.upstreams[upstream]),
                        peers_with_route,
                        file_id,
                    });
                }
                for upstream in before.difference(after) {
                    out.changes.push(UpstreamChange {
                        time: t,
                        prefix,
                        upstream: *upstream,
                        appeared: false,
                        peers_via_upstream: 0,
                        peers_with_route,
                        file_id,
                    });
                }
            }
        }
        previous = current.into_iter().map(|(p, (s, _))| (p, s)).collect();
    })?;
    Ok(out)
}

/// The span of loaded BGP data: earliest and latest MRT timestamps of all loaded files.
pub fn loaded_span(db: &Db) -> Result<Option<(i64, i64)>, BgpError> {
    Ok(db.loaded_bgp_span()?)
}

/// The RIB dumps the BGP states of `[a, b]` rest on: each collector's newest dump at or
/// before `a`, and every dump taken in `(a, b]`, in time order. A state at a time t uses its
/// collector's newest dump at or before t, so no state of the period rests on another dump.
/// Reports name the truncated ones among them.
pub fn dumps_in_use(
    db: &Db,
    a: OffsetDateTime,
    b: OffsetDateTime,
) -> Result<Vec<RibDump>, BgpError> {
    let (a, b) = (unix_seconds(a), unix_seconds(b));
    let mut dumps = db.latest_rib_dumps(a)?;
    dumps.extend(db.rib_dumps_between(a, b)?);
    dumps.sort_by_key(|d| (d.time, d.file_id));
    Ok(dumps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(clippy::unnecessary_wraps, reason = "segments hold Option<Visibility>")]
    fn v(n: usize, d: usize) -> Option<Visibility> {
        Some(Visibility {
            peers_via_upstream: n,
            peers_with_route: d,
        })
    }

    #[test]
    fn time_weighted_mean_min_max() {
        let p: Ipv4Net = "175.45.176.0/22".parse().unwrap();
        // [0,100): no data; [100,200): 1/4; [200,400): 3/4; end at 400.
        let s = summarize(
            p,
            4837,
            0,
            400,
            vec![(0, None), (100, v(1, 4)), (200, v(3, 4))],
        );
        assert_eq!(s.covered_seconds, 300);
        let mean = s.mean.unwrap();
        assert!(
            (mean - (0.25 * 100.0 + 0.75 * 200.0) / 300.0).abs() < 1e-12,
            "{mean}"
        );
        assert_eq!(s.min, v(1, 4));
        assert_eq!(s.max, v(3, 4));
    }

    #[test]
    fn single_instant_and_no_data() {
        let p: Ipv4Net = "175.45.176.0/22".parse().unwrap();
        let s = summarize(p, 4837, 50, 50, vec![(50, v(1, 2))]);
        assert_eq!(s.mean, Some(0.5));
        assert_eq!(s.min, v(1, 2));
        let s = summarize(p, 4837, 0, 10, vec![(0, None)]);
        assert_eq!(
            (s.mean, s.min, s.max, s.covered_seconds),
            (None, None, None, 0)
        );
    }
}
