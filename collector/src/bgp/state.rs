//! The BGP state at a time t, built from the database.
//!
//! Per collector: the last RIB dump with MRT timestamp ≤ t, replayed with every loaded
//! BGP4MP event stamped from the dump's second up to t, in file order.
//!
//! Events of the dump's own second are replayed after it: MRT times are whole seconds, so
//! an event of that second may have reached the collector before or after the dump was taken
//! (or, for a dump written over several seconds, before or after its prefix was written).
//! Replaying is safe either way, because every event overwrites what it is about (a route, or
//! all routes of a peer): one the dump already holds leaves it as it is, in order with the
//! events after it. Taking them to be in the dump would lose every change made in that
//! second after the dump, such as a session going down right after it.
//!
//! A peer whose session is seen going to Established (a BGP4MP state change to 6) has a known
//! state from that moment on without any dump: no routes, then what its updates announce and
//! withdraw. So an update file alone gives a state for the peers whose sessions start in it;
//! the other peers of a collector without a dump ≤ t contribute nothing, and so do such peers
//! while none of them has a route yet (their tables are still arriving). When no collector
//! has a dump ≤ t or such a peer, the state is `None`: there is no BGP data for t, and
//! nothing is borrowed from a later snapshot.
//!
//! Maximum replay age ([`MAX_REPLAY_AGE_S`], 24 h; [`BgpState::at_with`] takes another):
//! updates are replayed over a base — the collector's RIB dump, or a peer's session start —
//! only while the base is at most that old. Bases are per peer: an update of a peer whose
//! base is older than the maximum age before it ends that peer's base (its routes are dropped,
//! and it contributes nothing until a newer dump of its collector or a new session start),
//! and nobody else's. An update file of another year loaded under the same collector name
//! (files without a collector name all go to `unknown`) thus never stacks onto an old dump,
//! and never hides the routes of the peers it says nothing about either: a RIS dump of rrc05
//! and, years later, an update file of rrc01 both loaded as `unknown` leave the dump the state
//! of rrc05's peers. A state is per collector: one collector (or peer) without data never
//! hides another's. With no event of a peer after it, a base stays that peer's state for any
//! later t: the state's age ([`BgpState::age_s`]) then says how old it is, and the verdicts
//! say `stale-bgp`. The rule is the same in [`super::timeline`].
//!
//! A collector has no state at all at a time inside one of its sync gaps (update slots the
//! archive never published, or files given up on; see [`crate::store::sync`]): a trace there
//! is judged with the other collectors, or as without BGP data.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use time::OffsetDateTime;

use super::aspath::AsPath;
use super::prefix::{covering, from_parts, overlaps_any, to_parts};
use super::prefix_map::{Lengths, PrefixMap};
use super::replay::{
    CollectorOrigins, Event, OriginsBuilder, PeerId, Replay, TargetRoutes, TimedEvent,
};
use super::routeset::{RouteSet, parse_asns};
use super::unix_seconds;
use super::upstream::{AnnouncedUpstreams, Visibility};
use crate::settings::{SettingsError, Target};
use crate::store::bgp::{RibDump, StoredUpdate};
use crate::store::{Db, DbError};

/// The maximum replay age (seconds): updates are replayed over a base (a RIB dump, or a
/// peer's session going to Established) only up to this long after it (see the module docs).
pub const MAX_REPLAY_AGE_S: i64 = 24 * 3600;

/// Why BGP data could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BgpError {
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A stored value does not parse.
    #[error("malformed BGP data in the database: {0}")]
    Malformed(String),
    /// The stored target settings are malformed.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// A collector peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// `peers.id`.
    pub id: PeerId,
    /// Collector name.
    pub collector: String,
    /// `collectors.id`.
    pub collector_id: i64,
    /// Index within the collector.
    pub index: u32,
    /// Peer address.
    pub address: IpAddr,
    /// Peer ASN.
    pub asn: u32,
}

/// Where a state's data comes from, per collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSource {
    /// Collector name.
    pub collector: String,
    /// `collectors.id`.
    pub collector_id: i64,
    /// Peers whose routes are known from their session start rather than from the dump.
    pub session_peers: usize,
    /// `mrt_files.id` of the RIB dump; `None` when the dump is not used (see the module docs).
    pub dump_file_id: Option<i64>,
    /// Name of the RIB dump file.
    pub dump_file: Option<String>,
    /// The dump's time (UNIX seconds).
    pub dump_time: Option<i64>,
    /// BGP4MP events replayed after the dump.
    pub events_replayed: usize,
    /// Up to when this collector's data is known (UNIX seconds): the dump's time, or the
    /// end of the newest loaded update file of the collector that starts at or before the
    /// state's time and ends at or after the dump. The state's age is measured from it.
    pub data_until: i64,
}

/// One route of a target-overlapping prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRoute<'a> {
    /// The collector peer.
    pub peer: &'a PeerInfo,
    /// ADD-PATH identifier, 0 without.
    pub path_id: u32,
    /// The AS path.
    pub path: &'a AsPath,
}

/// The result of a longest-prefix match over the origins of a state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LpmMatch {
    /// The matching prefix.
    pub prefix: Ipv4Net,
    /// The union of its origin ASes over the peers with a route.
    pub origins: BTreeSet<u32>,
    /// Collector peers with a route for exactly this prefix.
    pub peers: usize,
    /// Full-feed collector peers of the state's collectors.
    pub peers_total: usize,
}

/// The BGP state at one time (see the module docs).
#[derive(Debug, Clone)]
pub struct BgpState {
    time: i64,
    target: Target,
    sources: Vec<StateSource>,
    peers: HashMap<PeerId, PeerInfo>,
    routes: TargetRoutes,
    origins: Vec<CollectorOrigins>,
}

impl BgpState {
    /// The state at `t`, or `None` when no collector has data for `t` (see the module docs),
    /// with the default maximum replay age.
    pub fn at(db: &Db, t: OffsetDateTime) -> Result<Option<Self>, BgpError> {
        Self::at_with(db, t, MAX_REPLAY_AGE_S)
    }

    /// The state at `t` with updates replayed over a base only up to `max_replay_age_s`
    /// seconds after it (see the module docs).
    pub fn at_with(
        db: &Db,
        t: OffsetDateTime,
        max_replay_age_s: i64,
    ) -> Result<Option<Self>, BgpError> {
        let t = unix_seconds(t);
        let dumps: HashMap<i64, RibDump> = db
            .latest_rib_dumps(t)?
            .into_iter()
            .map(|d| (d.collector_id, d))
            .collect();
        let target = db.target()?;
        let peers = load_peers(db)?;
        let mut routes = TargetRoutes::default();
        let mut origins = Vec::new();
        let mut sources = Vec::new();
        // Periods `bgp sync` found no update file for: a collector has no state inside them
        // (its missing updates could have changed anything), never a guess.
        let gaps = db.sync_gaps()?;
        for (collector_id, collector) in db.bgp_collectors()? {
            if gaps
                .iter()
                .any(|g| g.collector == collector && g.start <= t && t < g.end)
            {
                continue;
            }
            let dump = dumps.get(&collector_id);
            let mut collector_routes = TargetRoutes::default();
            if let Some(d) = dump {
                load_rib_routes(db, d.file_id, &mut collector_routes)?;
            }
            let from = dump.map_or(i64::MIN, |d| d.time);
            let events = load_events(db, collector_id, from, t, false)?;
            let mut builder = OriginsBuilder::default();
            let mut replay = Replay::new(dump.map(|d| d.time), max_replay_age_s);
            for e in &events {
                replay.step(e, &mut (&mut collector_routes, &mut builder));
            }
            // Peers known only from their session start, with no route yet: their table is
            // still arriving, and an empty table says nothing.
            if !replay.dump_used() && collector_routes.is_empty() && !builder.has_announcements() {
                continue;
            }
            let dump = dump.filter(|_| replay.dump_used());
            let (base, sets) = match dump {
                Some(d) => load_route_sets(db, collector_id, d.time)?,
                None => (PrefixMap::new(), Vec::new()),
            };
            origins.push(builder.finish(base, sets));
            routes.extend(collector_routes);
            // Updates are known up to the end of the update files that start within the
            // maximum age after the oldest base in use (a file years later continues nothing),
            // and never replayed beyond that age.
            let since = replay.oldest_base().unwrap_or(t);
            let replay_until = since.saturating_add(max_replay_age_s);
            let data_until = db
                .updates_known_until(collector_id, since, t.min(replay_until))?
                .map_or(since, |u| u.max(since))
                .min(replay_until);
            sources.push(StateSource {
                collector,
                collector_id,
                session_peers: replay.session_peers().count(),
                dump_file_id: dump.map(|d| d.file_id),
                dump_file: dump.map(|d| d.file.clone()),
                dump_time: dump.map(|d| d.time),
                events_replayed: replay.replayed(),
                data_until,
            });
        }
        if sources.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            time: t,
            target,
            sources,
            peers,
            routes,
            origins,
        }))
    }

    /// A state built in memory from one collector's RIB, as if its dump had been taken at
    /// `time` with no update since: what the analysis sees of a loaded dump, for code and
    /// tests that have routes but no database. Each route is (peer, prefix, AS path); peers
    /// are numbered in order of first appearance.
    pub fn from_rib<'p>(
        time: i64,
        target: Target,
        collector: &str,
        rib: impl IntoIterator<Item = (&'p PeerInfo, Ipv4Net, AsPath)>,
    ) -> Self {
        let mut peers: HashMap<PeerId, PeerInfo> = HashMap::new();
        let mut routes = TargetRoutes::default();
        let mut origins_by_prefix: PrefixMap<Vec<(u32, Vec<u32>)>> = PrefixMap::new();
        for (peer, prefix, path) in rib {
            let prefix = prefix.trunc();
            let index = peer.index;
            peers.entry(peer.id).or_insert_with(|| peer.clone());
            if overlaps_any(prefix, &target.prefixes) {
                routes.announce(peer.id, prefix, 0, path.clone());
            }
            origins_by_prefix
                .entry_key(to_parts(prefix))
                .or_default()
                .push((index, path.origins()));
        }
        let mut base = PrefixMap::new();
        let mut sets = Vec::new();
        for (prefix, pairs) in origins_by_prefix.iter() {
            base.insert(prefix, sets.len() as u32);
            sets.push(RouteSet::from_pairs(
                pairs.iter().map(|(peer, o)| (*peer, o.as_slice())),
            ));
        }
        let source = StateSource {
            collector: collector.to_owned(),
            collector_id: 0,
            session_peers: 0,
            dump_file_id: None,
            dump_file: None,
            dump_time: Some(time),
            events_replayed: 0,
            data_until: time,
        };
        Self {
            time,
            target,
            sources: vec![source],
            peers,
            routes,
            origins: vec![OriginsBuilder::default().finish(base, sets)],
        }
    }

    /// The time of the state (UNIX seconds).
    pub fn time(&self) -> i64 {
        self.time
    }

    /// The age of the state at its own time; see [`Self::age_at`].
    pub fn age_s(&self) -> i64 {
        self.age_at(self.time)
    }

    /// The age of the BGP data at `t` (UNIX seconds, at or after the state's time, before
    /// the next change): `t` minus the newest `data_until` of the state's collectors, i.e.
    /// how long before `t` the freshest loaded BGP data ends.
    pub fn age_at(&self, t: i64) -> i64 {
        let newest = self
            .sources
            .iter()
            .map(|s| s.data_until)
            .max()
            .unwrap_or(i64::MIN / 2);
        (t - newest).max(0)
    }

    /// The target this database was loaded for.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The RIB dump (and count of replayed events) used for each collector.
    pub fn sources(&self) -> &[StateSource] {
        &self.sources
    }

    /// A collector peer by id.
    pub fn peer(&self, id: PeerId) -> Option<&PeerInfo> {
        self.peers.get(&id)
    }

    /// Target-overlapping prefixes that have at least one route.
    pub fn target_prefixes(&self) -> Vec<Ipv4Net> {
        self.routes.prefixes().collect()
    }

    /// The routes for exactly `prefix` (only target-overlapping prefixes keep paths).
    pub fn routes(&self, prefix: Ipv4Net) -> Vec<PeerRoute<'_>> {
        self.routes
            .routes(prefix.trunc())
            .filter_map(|((peer, path_id), path)| {
                Some(PeerRoute {
                    peer: self.peers.get(peer)?,
                    path_id: *path_id,
                    path,
                })
            })
            .collect()
    }

    /// Every route of every target-overlapping prefix.
    pub fn target_routes(&self) -> impl Iterator<Item = (Ipv4Net, PeerRoute<'_>)> {
        self.routes
            .all()
            .filter_map(|(prefix, (peer, path_id), path)| {
                Some((
                    prefix,
                    PeerRoute {
                        peer: self.peers.get(peer)?,
                        path_id: *path_id,
                        path,
                    },
                ))
            })
    }

    /// The upstreams announced for `prefix` by the collector peers, with its target AS.
    pub fn announced_upstreams(&self, prefix: Ipv4Net) -> AnnouncedUpstreams {
        AnnouncedUpstreams::from_routes(
            self.routes
                .routes(prefix.trunc())
                .map(|((peer, _), path)| (*peer, path)),
            self.target.asn,
        )
    }

    /// Visibility of `upstream` for `prefix`: peers whose route has it directly before the
    /// origin, over peers with any route.
    pub fn visibility(&self, prefix: Ipv4Net, upstream: u32) -> Visibility {
        self.announced_upstreams(prefix).visibility(upstream)
    }

    /// Longest-prefix match of `addr` over all prefixes with a route in this state: the
    /// prefix and the union of its origin ASes. `None` when no route covers `addr`.
    pub fn origins_lpm(&self, addr: Ipv4Addr) -> Option<(Ipv4Net, BTreeSet<u32>)> {
        self.lpm_within(addr, 0..=32).map(|m| (m.prefix, m.origins))
    }

    /// Longest-prefix match of `addr` over the prefixes of these lengths only (the hop
    /// mapping table: CAIDA's prefix-to-AS keeps /8 to /24, so that a default route or an
    /// aggregate /0–/7 never names an origin, and host routes do not either).
    pub fn lpm_within(&self, addr: Ipv4Addr, lengths: RangeInclusive<u8>) -> Option<LpmMatch> {
        let present = self
            .origins
            .iter()
            .fold(Lengths::default(), |all, c| all.union(c.lengths()));
        present.longest_first(lengths).find_map(|len| {
            let prefix = covering(addr, len);
            let key = to_parts(prefix);
            let mut all = BTreeSet::new();
            let mut peers = 0;
            for collector in &self.origins {
                if let Some((origins, seen_by)) = collector.origins_and_peers(key) {
                    peers += seen_by.len();
                    all.extend(origins);
                }
            }
            (!all.is_empty()).then(|| LpmMatch {
                prefix,
                origins: all,
                peers,
                peers_total: self.peers_total(),
            })
        })
    }

    /// Full-feed peers of the collectors this state is built from (peers with a route for at
    /// least half of their dump's prefixes): the "of many" in "seen by 1 of 35 peers".
    pub fn peers_total(&self) -> usize {
        self.origins
            .iter()
            .map(CollectorOrigins::full_feed_peers)
            .sum()
    }

    /// Whether `prefix` overlaps the target prefixes.
    pub fn is_target_prefix(&self, prefix: Ipv4Net) -> bool {
        overlaps_any(prefix, &self.target.prefixes)
    }
}

/// Every collector peer.
pub(crate) fn load_peers(db: &Db) -> Result<HashMap<PeerId, PeerInfo>, BgpError> {
    let mut out = HashMap::new();
    for row in db.bgp_peers()? {
        let address = row
            .address
            .parse()
            .map_err(|_| BgpError::Malformed(format!("peer address {:?}", row.address)))?;
        let peer = PeerInfo {
            id: row.id,
            collector: row.collector,
            collector_id: row.collector_id,
            index: row.index,
            address,
            asn: row.asn,
        };
        out.insert(peer.id, peer);
    }
    Ok(out)
}

fn prefix_of((net, len): (u32, u8)) -> Result<Ipv4Net, BgpError> {
    from_parts(net, len).ok_or_else(|| BgpError::Malformed(format!("prefix length {len}")))
}

fn parse_path(text: &str) -> Result<AsPath, BgpError> {
    text.parse()
        .map_err(|e| BgpError::Malformed(format!("{e}")))
}

/// Adds the target routes of a RIB dump.
pub(crate) fn load_rib_routes(
    db: &Db,
    file_id: i64,
    routes: &mut TargetRoutes,
) -> Result<(), BgpError> {
    for row in db.rib_routes(file_id)? {
        let prefix = prefix_of(row.prefix)?;
        routes.announce(row.peer_id, prefix, row.path_id, parse_path(&row.as_path)?);
    }
    Ok(())
}

/// The BGP4MP events of a collector with `from <= time <= until`, in replay order (see the
/// module docs for why a dump's own second is included). Among the state changes, only
/// sessions leaving or reaching Established; only target-overlapping updates when
/// `targets_only`.
pub(crate) fn load_events(
    db: &Db,
    collector_id: i64,
    from: i64,
    until: i64,
    targets_only: bool,
) -> Result<Vec<TimedEvent>, BgpError> {
    let mut events = Vec::new();
    db.for_each_update(collector_id, from, until, targets_only, |u| {
        events.push(update_event(collector_id, &u)?);
        Ok::<_, BgpError>(())
    })?;
    for s in db.session_changes(collector_id, from, until)? {
        let (peer, peer_index) = (s.peer_id, s.peer_index);
        events.push(TimedEvent {
            time: s.time,
            file_id: s.file_id,
            seq: s.seq,
            collector: collector_id,
            event: if s.up {
                Event::SessionUp { peer, peer_index }
            } else {
                Event::SessionDown { peer, peer_index }
            },
        });
    }
    events.sort_by_key(TimedEvent::order_key);
    Ok(events)
}

/// A stored announcement or withdrawal as a replay event.
fn update_event(collector_id: i64, u: &StoredUpdate<'_>) -> Result<TimedEvent, BgpError> {
    let origins = match u.origins {
        Some(text) => {
            Some(parse_asns(text).ok_or_else(|| BgpError::Malformed(format!("origins {text:?}")))?)
        }
        None => None,
    };
    Ok(TimedEvent {
        time: u.time,
        file_id: u.file_id,
        seq: u.seq,
        collector: collector_id,
        event: Event::Update {
            peer: u.peer_id,
            peer_index: u.peer_index,
            prefix: prefix_of(u.prefix)?,
            path_id: u.path_id,
            origins,
            target_path: u.as_path.map(parse_path).transpose()?,
            is_target: u.is_target,
        },
    })
}

/// Every time (UNIX seconds, ascending) at which the BGP state may change: dump times, the
/// first record of each file, updates and session changes, and the bounds of sync gaps.
pub fn change_times(db: &Db) -> Result<Vec<i64>, BgpError> {
    let mut times = db.bgp_change_times()?;
    // A sync gap starts and ends a period where a collector has no state.
    for gap in db.sync_gaps()? {
        times.extend([gap.start, gap.end]);
    }
    times.sort_unstable();
    times.dedup();
    Ok(times)
}

/// The route sets of every prefix in a collector's RIB dump taken at `dump_time`.
fn load_route_sets(
    db: &Db,
    collector_id: i64,
    dump_time: i64,
) -> Result<(PrefixMap<u32>, Vec<RouteSet>), BgpError> {
    let mut base = PrefixMap::new();
    let mut index_of: HashMap<i64, u32> = HashMap::new();
    db.for_each_dump_prefix(collector_id, dump_time, |prefix, id| {
        let next = index_of.len() as u32;
        let index = *index_of.entry(id).or_insert(next);
        base.insert_key(prefix, index);
    })?;
    let mut sets = vec![RouteSet::default(); index_of.len()];
    for (id, index) in index_of {
        let text = db.route_set_text(id)?;
        sets[index as usize] =
            RouteSet::decode(&text).map_err(|e| BgpError::Malformed(e.to_string()))?;
    }
    Ok((base, sets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::replay::OriginsBuilder;

    fn p(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    /// A database with collector `rc`'s empty RIB dump taken at 1000 and an empty update
    /// file spanning `updates` (first and last time).
    fn dump_at_1000_and_updates(updates: (i64, i64)) -> Db {
        let db = Db::open_in_memory().unwrap();
        db.sql_for_tests()
            .execute_batch(&format!(
                "INSERT INTO collectors (id, name) VALUES (1, 'rc');
                 INSERT INTO mrt_files VALUES (1, 1, 'rib', 'a', 'b', 'none', 'rib',
                     'TABLE_DUMP_V2', 1000, 1000, 1000, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0, 0, NULL, NULL);
                 INSERT INTO mrt_files VALUES (2, 1, 'upd', 'c', 'd', 'none', 'updates',
                     'BGP4MP', NULL, {}, {}, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0, 0, NULL, NULL);",
                updates.0, updates.1
            ))
            .unwrap();
        db
    }

    #[test]
    fn no_dump_at_or_before_t_means_no_state() {
        let db = dump_at_1000_and_updates((900, 990));
        let at = |t| BgpState::at(&db, OffsetDateTime::from_unix_timestamp(t).unwrap()).unwrap();
        assert!(
            at(999).is_none(),
            "updates alone are no state, and 1000 is later"
        );
        let state = at(1000).unwrap();
        assert_eq!(state.sources()[0].dump_time, Some(1000));
        assert!(state.origins_lpm("10.0.0.1".parse().unwrap()).is_none());
        assert_eq!(
            at(5000).unwrap().sources()[0].dump_file.as_deref(),
            Some("rib")
        );
        // The updates file ends before the dump: the age counts from the dump.
        assert_eq!(at(5000).unwrap().age_s(), 4000);
        assert_eq!(at(1000).unwrap().age_s(), 0);
    }

    #[test]
    fn age_counts_from_the_end_of_the_update_files_after_the_dump() {
        let db = dump_at_1000_and_updates((1000, 1299));
        let age = |t| {
            BgpState::at(&db, OffsetDateTime::from_unix_timestamp(t).unwrap())
                .unwrap()
                .unwrap()
                .age_s()
        };
        assert_eq!(age(1100), 0, "inside the updates file");
        assert_eq!(age(1299), 0);
        assert_eq!(age(1299 + 86_400), 86_400);
        let state = BgpState::at(&db, OffsetDateTime::from_unix_timestamp(1100).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(state.age_at(1200), 0);
        assert_eq!(state.age_at(1299 + 60), 60);
    }

    #[test]
    fn lpm_takes_the_longest_prefix_that_still_has_a_route() {
        let one = [1u32];
        let two = [2u32];
        let three = [3u32];
        let sets = vec![
            RouteSet::from_pairs([(0, &one[..])]),
            RouteSet::from_pairs([(0, &two[..]), (1, &two[..])]),
            RouteSet::from_pairs([(1, &three[..])]),
        ];
        let base: PrefixMap<u32> = [
            (p("0.0.0.0/0"), 0),
            (p("10.1.0.0/16"), 1),
            (p("10.1.2.0/24"), 2),
        ]
        .into_iter()
        .collect();
        let mut builder = OriginsBuilder::default();
        // Peer 1 withdraws the /24 (its only route there).
        builder.apply(&Event::Update {
            peer: 11,
            peer_index: 1,
            prefix: p("10.1.2.0/24"),
            path_id: 0,
            origins: None,
            target_path: None,
            is_target: false,
        });
        let state = BgpState {
            time: 0,
            target: Target::default(),
            sources: Vec::new(),
            peers: HashMap::new(),
            routes: TargetRoutes::default(),
            origins: vec![builder.finish(base, sets)],
        };
        let lpm = |a: &str| state.origins_lpm(a.parse().unwrap());
        assert_eq!(
            lpm("10.1.2.3"),
            Some((p("10.1.0.0/16"), BTreeSet::from([2])))
        );
        assert_eq!(
            lpm("10.1.9.9"),
            Some((p("10.1.0.0/16"), BTreeSet::from([2])))
        );
        assert_eq!(
            lpm("192.0.2.1"),
            Some((p("0.0.0.0/0"), BTreeSet::from([1])))
        );
    }
}
