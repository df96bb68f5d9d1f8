//! Replaying BGP4MP events over a RIB dump, in memory.
//!
//! Two views of one collector's routes are kept, both starting from a RIB dump:
//! - [`TargetRoutes`]: full AS paths of the prefixes that overlap the target prefixes;
//! - [`OriginsBuilder`] → [`CollectorOrigins`]: the origins of every prefix, as the dump's
//!   route sets plus, per peer, the last word of the updates since the dump.
//!
//! Events are applied in file order (time, file, position). A session leaving Established
//! withdraws every route of the peer; later announcements bring routes back.
//!
//! [`Replay`] decides which events are replayed: only those of peers whose routes are known
//! from a base (the collector's RIB dump, or the peer's session going to Established), and
//! only while the peer's base is at most the maximum replay age old (see [`super::state`]).
//! Bases are per peer: an update can end only its own peer's base, never another's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ipnet::Ipv4Net;

use super::aspath::AsPath;
use super::routeset::RouteSet;

/// `peers.id` in the database.
pub type PeerId = i64;

pub use super::prefix_map::PrefixKey;
use super::prefix_map::{Lengths, PrefixMap};

/// What a BGP4MP record says, reduced to what the replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An announcement (`origins` is `Some`) or withdrawal (`None`) of one prefix by one peer.
    Update {
        /// The peer.
        peer: PeerId,
        /// The peer's index within its collector (route sets use it).
        peer_index: u32,
        /// The prefix.
        prefix: Ipv4Net,
        /// ADD-PATH identifier, 0 without.
        path_id: u32,
        /// Origin ASes of an announcement; `None` for a withdrawal.
        origins: Option<Vec<u32>>,
        /// The full AS path of an announcement of a target-overlapping prefix; `None` for
        /// withdrawals and other prefixes (their paths are not kept).
        target_path: Option<AsPath>,
        /// Whether the prefix overlaps a target prefix.
        is_target: bool,
    },
    /// The peer's session left Established: all its routes are gone.
    SessionDown {
        /// The peer.
        peer: PeerId,
        /// The peer's index within its collector.
        peer_index: u32,
    },
    /// The peer's session went to Established: it starts with no routes, and every route it
    /// has from now on comes from the updates that follow.
    SessionUp {
        /// The peer.
        peer: PeerId,
        /// The peer's index within its collector.
        peer_index: u32,
    },
}

/// An event with its place in time and in the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedEvent {
    /// MRT timestamp (UNIX seconds).
    pub time: i64,
    /// `mrt_files.id` of the file it came from.
    pub file_id: i64,
    /// Position in the file.
    pub seq: i64,
    /// `collectors.id`.
    pub collector: i64,
    /// The event.
    pub event: Event,
}

impl TimedEvent {
    /// The replay order.
    pub fn order_key(&self) -> (i64, i64, i64) {
        (self.time, self.file_id, self.seq)
    }
}

/// Full AS paths of target-overlapping prefixes, per (peer, ADD-PATH id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRoutes {
    by_prefix: BTreeMap<Ipv4Net, BTreeMap<(PeerId, u32), AsPath>>,
}

impl TargetRoutes {
    /// Installs (or replaces) a route.
    pub fn announce(&mut self, peer: PeerId, prefix: Ipv4Net, path_id: u32, path: AsPath) {
        self.by_prefix
            .entry(prefix)
            .or_default()
            .insert((peer, path_id), path);
    }

    /// Removes a route, if present.
    pub fn withdraw(&mut self, peer: PeerId, prefix: Ipv4Net, path_id: u32) {
        if let Some(routes) = self.by_prefix.get_mut(&prefix) {
            routes.remove(&(peer, path_id));
            if routes.is_empty() {
                self.by_prefix.remove(&prefix);
            }
        }
    }

    /// Removes every route of `peer`.
    pub fn session_down(&mut self, peer: PeerId) {
        self.by_prefix.retain(|_, routes| {
            routes.retain(|(p, _), _| *p != peer);
            !routes.is_empty()
        });
    }

    /// Applies one event (non-target updates are ignored).
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Update {
                is_target: false, ..
            } => {}
            Event::Update {
                peer,
                prefix,
                path_id,
                origins: None,
                ..
            } => {
                self.withdraw(*peer, *prefix, *path_id);
            }
            Event::Update {
                peer,
                prefix,
                path_id,
                target_path,
                ..
            } => {
                self.announce(
                    *peer,
                    *prefix,
                    *path_id,
                    target_path.clone().unwrap_or_default(),
                );
            }
            Event::SessionDown { peer, .. } | Event::SessionUp { peer, .. } => {
                self.session_down(*peer);
            }
        }
    }

    /// Adds the routes of another collector (peers differ between collectors).
    pub fn extend(&mut self, other: Self) {
        for (prefix, routes) in other.by_prefix {
            self.by_prefix.entry(prefix).or_default().extend(routes);
        }
    }

    /// Whether there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// Prefixes with at least one route.
    pub fn prefixes(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        self.by_prefix.keys().copied()
    }

    /// The routes of `prefix`: ((peer, ADD-PATH id), path).
    pub fn routes(&self, prefix: Ipv4Net) -> impl Iterator<Item = (&(PeerId, u32), &AsPath)> {
        self.by_prefix.get(&prefix).into_iter().flatten()
    }

    /// Every route: (prefix, (peer, ADD-PATH id), path).
    pub fn all(&self) -> impl Iterator<Item = (Ipv4Net, &(PeerId, u32), &AsPath)> {
        self.by_prefix
            .iter()
            .flat_map(|(p, routes)| routes.iter().map(move |(k, v)| (*p, k, v)))
    }
}

/// The last word of each peer that sent updates for a prefix: (peer index, origins of its
/// announcement, or `None` after a withdrawal).
type PeerUpdates = Vec<(u32, Option<Vec<u32>>)>;

/// Collects the updates after a dump into per-peer overrides of the dump's route sets.
#[derive(Debug, Default)]
pub struct OriginsBuilder {
    downed: HashSet<u32>,
    latest: HashMap<(u32, PrefixKey, u32), Option<Vec<u32>>>,
}

impl OriginsBuilder {
    /// Applies one event (all prefixes, target or not).
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Update {
                peer_index,
                prefix,
                path_id,
                origins,
                ..
            } => {
                let key = super::prefix::to_parts(*prefix);
                self.latest
                    .insert((*peer_index, key, *path_id), origins.clone());
            }
            Event::SessionDown { peer_index, .. } | Event::SessionUp { peer_index, .. } => {
                self.downed.insert(*peer_index);
                self.latest.retain(|(p, _, _), _| p != peer_index);
            }
        }
    }

    /// Whether some peer's last word on some prefix since the dump is an announcement.
    pub fn has_announcements(&self) -> bool {
        self.latest.values().any(Option::is_some)
    }

    /// The origins of one collector: `base` maps prefixes to indexes into `sets`.
    pub fn finish(self, base: PrefixMap<u32>, sets: Vec<RouteSet>) -> CollectorOrigins {
        let mut overrides: PrefixMap<PeerUpdates> = PrefixMap::new();
        for ((peer, prefix, _), origins) in self.latest {
            overrides
                .entry_key(prefix)
                .or_default()
                .push((peer, origins));
        }
        let full_feed_peers = full_feed_peers(&base, &sets);
        CollectorOrigins {
            base,
            sets,
            downed: self.downed,
            overrides,
            full_feed_peers,
        }
    }
}

/// What a replayed event changes: the target routes, and the origins when they are built.
pub trait ReplaySink {
    /// Applies one event.
    fn apply(&mut self, event: &Event);
}

impl ReplaySink for TargetRoutes {
    fn apply(&mut self, event: &Event) {
        TargetRoutes::apply(self, event);
    }
}

impl ReplaySink for (&mut TargetRoutes, &mut OriginsBuilder) {
    fn apply(&mut self, event: &Event) {
        self.0.apply(event);
        self.1.apply(event);
    }
}

/// Which events of one collector are replayed, and over which base (see the module docs of
/// [`super::state`] for the rule).
///
/// A base is the collector's RIB dump (for every peer), or a peer's session going to
/// Established (for that peer: it starts with no routes). An event is replayed only for a peer
/// with a base. Bases are per peer: an update of a peer whose base is more than `max_age`
/// older than the update ends that peer's base (its routes are dropped, and it is unknown
/// until a newer dump or session start), and nobody else's. So updates that cannot be
/// replayed — an update file years after the dump, or one of another collector's sessions
/// loaded under the same name — never hide the routes of peers they say nothing about.
#[derive(Debug, Clone)]
pub struct Replay {
    max_age: i64,
    dump: Option<i64>,
    /// Peers whose routes no longer come from the dump: their session restarted, or an update
    /// of theirs came after the dump's maximum age.
    left_dump: HashSet<PeerId>,
    /// Peers whose base is their session: peer → (index, time it went to Established).
    sessions: HashMap<PeerId, (u32, i64)>,
    replayed: usize,
}

impl Replay {
    /// A collector whose state starts from a RIB dump taken at `dump` (`None`: no dump).
    pub fn new(dump: Option<i64>, max_age: i64) -> Self {
        Self {
            max_age,
            dump,
            left_dump: HashSet::new(),
            sessions: HashMap::new(),
            replayed: 0,
        }
    }

    /// The time of `peer`'s base, if it has one.
    pub fn base_of(&self, peer: PeerId) -> Option<i64> {
        match self.sessions.get(&peer) {
            Some((_, since)) => Some(*since),
            None => self.dump.filter(|_| !self.left_dump.contains(&peer)),
        }
    }

    /// Ends `peer`'s base, with its routes, if it is more than the maximum age older than
    /// `time` (an update of the peer at `time` cannot be replayed over it). Returns whether it
    /// did.
    pub fn outlive(
        &mut self,
        peer: PeerId,
        peer_index: u32,
        time: i64,
        sink: &mut impl ReplaySink,
    ) -> bool {
        let Some(base) = self.base_of(peer) else {
            return false;
        };
        if time - base <= self.max_age {
            return false;
        }
        self.sessions.remove(&peer);
        self.left_dump.insert(peer);
        sink.apply(&Event::SessionDown { peer, peer_index });
        true
    }

    /// Replays one event if its peer has a base young enough (see the type's docs).
    pub fn step(&mut self, event: &TimedEvent, sink: &mut impl ReplaySink) {
        let known = match &event.event {
            Event::SessionUp { peer, peer_index } => {
                self.sessions.insert(*peer, (*peer_index, event.time));
                self.left_dump.insert(*peer);
                true
            }
            Event::Update {
                peer, peer_index, ..
            } => {
                !self.outlive(*peer, *peer_index, event.time, sink) && self.base_of(*peer).is_some()
            }
            Event::SessionDown { peer, .. } => self.base_of(*peer).is_some(),
        };
        if known {
            sink.apply(&event.event);
            self.replayed += 1;
        }
    }

    /// When `peer`'s session base started, if its base is its session.
    pub fn session_since(&self, peer: PeerId) -> Option<i64> {
        self.sessions.get(&peer).map(|(_, since)| *since)
    }

    /// Whether any route of the collector is known: it has a dump, or some peer's session
    /// start is a base.
    pub fn has_data(&self) -> bool {
        self.dump.is_some() || !self.sessions.is_empty()
    }

    /// Whether the dump is used (it is, for the peers that have not left it).
    pub fn dump_used(&self) -> bool {
        self.dump.is_some()
    }

    /// Peers known from their session start, with the time it was seen.
    pub fn session_peers(&self) -> impl Iterator<Item = (PeerId, i64)> + '_ {
        self.sessions.iter().map(|(p, (_, since))| (*p, *since))
    }

    /// Events replayed so far.
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// The oldest base still used.
    pub fn oldest_base(&self) -> Option<i64> {
        self.dump
            .into_iter()
            .chain(self.sessions.values().map(|(_, since)| *since))
            .min()
    }
}

/// The origins one collector's peers announce at the state's time.
#[derive(Debug, Clone, Default)]
pub struct CollectorOrigins {
    base: PrefixMap<u32>,
    sets: Vec<RouteSet>,
    /// Peers whose session went down after the dump: their dump routes are gone.
    downed: HashSet<u32>,
    /// Per prefix, the peers that sent updates after the dump (and after their last session
    /// down): their dump routes for the prefix are replaced by these.
    overrides: PrefixMap<PeerUpdates>,
    /// Peers of the dump with a route for at least half of its prefixes (see
    /// [`full_feed_peers`]).
    full_feed_peers: usize,
}

/// The peers of a dump that give the collector a full table: a route for at least half of
/// the dump's prefixes. Many peers send partial feeds (customer routes only); a prefix is
/// thinly seen when few *full-feed* peers have it, not when few peers of all kinds do (a
/// 2002 RIS dump has 36 peers of which one has a full table).
fn full_feed_peers(base: &PrefixMap<u32>, sets: &[RouteSet]) -> usize {
    let mut uses = vec![0usize; sets.len()];
    for set in base.values() {
        uses[*set as usize] += 1;
    }
    let mut per_peer: HashMap<u32, usize> = HashMap::new();
    for (set, n) in sets.iter().zip(uses) {
        let mut seen = HashSet::new();
        for (peer, _) in set.pairs() {
            if seen.insert(peer) {
                *per_peer.entry(peer).or_default() += n;
            }
        }
    }
    per_peer
        .values()
        .filter(|n| 2 * **n >= base.len().max(1))
        .count()
}

impl CollectorOrigins {
    /// The union of the origins announced for exactly `prefix`; `None` when no peer has a
    /// route for it. (Under ADD-PATH, a peer's updates replace all its dump paths.)
    pub fn origins(&self, prefix: PrefixKey) -> Option<BTreeSet<u32>> {
        self.origins_and_peers(prefix).map(|(origins, _)| origins)
    }

    /// Like [`Self::origins`], with the set of peers (by index) that have a route.
    pub fn origins_and_peers(&self, prefix: PrefixKey) -> Option<(BTreeSet<u32>, BTreeSet<u32>)> {
        let overrides = self
            .overrides
            .get_key(prefix)
            .map_or(&[][..], Vec::as_slice);
        let mut out = BTreeSet::new();
        let mut peers = BTreeSet::new();
        if let Some(set) = self.base.get_key(prefix) {
            for (peer, origins) in self.sets[*set as usize].pairs() {
                if self.downed.contains(&peer) || overrides.iter().any(|(p, _)| *p == peer) {
                    continue;
                }
                peers.insert(peer);
                out.extend(origins.iter().copied());
            }
        }
        for (peer, origins) in overrides {
            if let Some(origins) = origins {
                peers.insert(*peer);
                out.extend(origins.iter().copied());
            }
        }
        (!peers.is_empty()).then_some((out, peers))
    }

    /// Peers of the dump with a route for at least half of its prefixes.
    pub fn full_feed_peers(&self) -> usize {
        self.full_feed_peers
    }

    /// The prefix lengths with a route (in the dump or in updates), so that a
    /// longest-prefix match probes only those.
    pub fn lengths(&self) -> Lengths {
        self.base.lengths().union(self.overrides.lengths())
    }

    /// Prefixes in the dump.
    pub fn dump_prefixes(&self) -> usize {
        self.base.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn update(peer: i64, prefix: &str, origins: Option<&[u32]>, path: Option<&str>) -> Event {
        Event::Update {
            peer,
            peer_index: peer as u32,
            prefix: p(prefix),
            path_id: 0,
            origins: origins.map(<[u32]>::to_vec),
            target_path: path.map(|s| s.parse().unwrap()),
            is_target: prefix.starts_with("175.45."),
        }
    }

    #[test]
    fn session_down_withdraws_all_target_routes_of_the_peer() {
        let mut routes = TargetRoutes::default();
        routes.announce(
            1,
            p("175.45.176.0/22"),
            0,
            "3356 4837 131279".parse().unwrap(),
        );
        routes.announce(
            1,
            p("175.45.177.0/24"),
            0,
            "3356 20485 131279".parse().unwrap(),
        );
        routes.announce(
            2,
            p("175.45.176.0/22"),
            0,
            "1299 20485 131279".parse().unwrap(),
        );
        routes.apply(&Event::SessionDown {
            peer: 1,
            peer_index: 1,
        });
        assert_eq!(
            routes.prefixes().collect::<Vec<_>>(),
            vec![p("175.45.176.0/22")]
        );
        assert_eq!(routes.routes(p("175.45.176.0/22")).count(), 1);
        // The peer comes back with one announcement.
        routes.apply(&update(
            1,
            "175.45.177.0/24",
            Some(&[131_279]),
            Some("3356 4837 131279"),
        ));
        assert_eq!(routes.routes(p("175.45.177.0/24")).count(), 1);
        routes.apply(&update(1, "175.45.177.0/24", None, None));
        assert_eq!(routes.routes(p("175.45.177.0/24")).count(), 0);
        // Non-target updates do not touch target routes.
        routes.apply(&update(2, "8.8.8.0/24", Some(&[15169]), None));
        assert_eq!(routes.all().count(), 1);
    }

    #[test]
    fn origins_follow_updates_and_session_downs() {
        let nk = [131_279u32];
        let cn = [4837u32];
        let base_set = RouteSet::from_pairs([(0, &nk[..]), (1, &nk[..]), (2, &cn[..])]);
        let key = super::super::prefix::to_parts(p("175.45.176.0/22"));
        let other = super::super::prefix::to_parts(p("10.0.0.0/8"));
        let base: PrefixMap<u32> = [(key, 0u32), (other, 1u32)].into_iter().collect();
        let sets = vec![base_set, RouteSet::from_pairs([(0, &cn[..])])];

        let b = OriginsBuilder::default();
        let o = b.finish(base.clone(), sets.clone());
        assert_eq!(o.origins(key), Some(BTreeSet::from([4837, 131_279])));

        // Peer 2 withdraws: only NK remains. Peer 0's session goes down: it loses 10/8 too.
        let mut b = OriginsBuilder::default();
        b.apply(&update(2, "175.45.176.0/22", None, None));
        b.apply(&Event::SessionDown {
            peer: 0,
            peer_index: 0,
        });
        let o = b.finish(base.clone(), sets.clone());
        assert_eq!(o.origins(key), Some(BTreeSet::from([131_279])));
        assert_eq!(o.origins(other), None);

        // After the session down, peer 0 announces 10/8 again with a new origin; a prefix not
        // in the dump appears.
        let mut b = OriginsBuilder::default();
        b.apply(&update(0, "10.0.0.0/8", Some(&[64_500]), None));
        b.apply(&Event::SessionDown {
            peer: 0,
            peer_index: 0,
        });
        b.apply(&update(0, "10.0.0.0/8", Some(&[3356]), None));
        b.apply(&update(1, "192.0.2.0/24", Some(&[64_501]), None));
        let o = b.finish(base, sets);
        assert_eq!(o.origins(other), Some(BTreeSet::from([3356])));
        assert_eq!(o.origins(key), Some(BTreeSet::from([131_279, 4837])));
        assert_eq!(
            o.origins(super::super::prefix::to_parts(p("192.0.2.0/24"))),
            Some(BTreeSet::from([64_501]))
        );
    }
}
