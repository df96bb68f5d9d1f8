//! The scheduler's inputs and outputs in the database: settings, each agent's vantage AS,
//! the bookings, and the work agents actually did (counted from their uploaded results).
//!
//! [`assign`] is what the upload handler calls once a batch is stored: it counts the
//! batch's probes, then answers with the agent's next booked round (booking one when it has
//! none), as the acknowledgement's `targets` and `pause_until`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::schedule::{Booking, Budget, Calendar, Request, Slot, TargetNet, Vantage, slash24};
use crate::bgp::prefix::{covering, overlaps, to_parts};
use crate::bgp::routeset::parse_asns;
use crate::results::{format_time, parse_time};
use crate::store::migrations::OPEN_UNTIL;

/// Default collector round: the agents' default round interval (15 minutes).
pub const DEFAULT_ROUND_SECS: u32 = 900;
/// Default fleet-wide cap: 1 probe per second into each /24, averaged over a round.
pub const DEFAULT_CAP_PPS: f64 = 1.0;
/// Probes per target an agent is booked at until its results measured it: 3 pings and a
/// trace of 20 hops with 3 attempts, rounded up.
pub const DEFAULT_COST: u64 = 64;
/// How long a host that answered a ping counts as live.
pub const LIVE_FOR: time::Duration = time::Duration::days(7);
/// The seed of the address rotation (fixed: bookings are reproducible).
pub const SEED: u64 = 0x6e6b_7061_7468;
/// How many recent per-minute rows of an agent measure its cost.
const COST_SAMPLE: u32 = 50;

const KEY_ROUND: &str = "fleet_round_s";
const KEY_CAP: &str = "fleet_cap_pps";
const KEY_ENABLED: &str = "fleet_schedule";

/// Shortest round the setting takes (the agents' shortest interval).
pub const MIN_ROUND_SECS: u32 = 60;

/// The fleet's budget as stored (defaults when never set).
pub fn budget(conn: &Connection) -> rusqlite::Result<Budget> {
    let round_secs = crate::settings::get(conn, KEY_ROUND)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUND_SECS);
    let cap_pps = crate::settings::get(conn, KEY_CAP)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CAP_PPS);
    Ok(Budget {
        round_secs,
        cap_pps,
    })
}

/// Stores the round length and the cap. Bookings already made keep their rounds.
pub fn set_budget(conn: &Connection, budget: Budget) -> rusqlite::Result<()> {
    crate::settings::put(conn, KEY_ROUND, &budget.round_secs.to_string())?;
    crate::settings::put(conn, KEY_CAP, &budget.cap_pps.to_string())
}

/// Whether the collector schedules the fleet (`fleet --schedule on`); off until turned
/// on, so that upgrading a collector does not change what its agents do.
pub fn enabled(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(crate::settings::get(conn, KEY_ENABLED)?.is_some_and(|v| v == "on"))
}

/// Turns scheduling on or off. Off, acks carry no assignment: each agent keeps the last one
/// it got until it expires, then probes its own targets.
pub fn set_enabled(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    crate::settings::put(conn, KEY_ENABLED, if on { "on" } else { "off" })
}

/// What the acknowledgement of an upload carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The agent's targets for its next booked round (`a.b.c.d/32`), or `None` to leave
    /// its list as it is.
    pub targets: Option<Vec<String>>,
    /// Not before the start of that round.
    pub pause_until: Option<OffsetDateTime>,
}

/// Counts the batch's work, then, when scheduling is on, returns the agent's next
/// assignment, booking one if it has none after the current round (an empty assignment
/// when off). Run after the batch's results are committed.
pub fn assign(
    conn: &mut Connection,
    agent: &str,
    peer: Option<IpAddr>,
    batch_id: Uuid,
    now: OffsetDateTime,
) -> rusqlite::Result<Assignment> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    count_batch(&tx, agent, batch_id)?;
    if !enabled(&tx)? {
        tx.commit()?;
        return Ok(Assignment::default());
    }
    let budget = budget(&tx)?;
    let now_round = budget.round_at(now.unix_timestamp());
    let slot = if let Some(slot) = booked_after(&tx, agent, now_round)? {
        slot
    } else {
        let vantage = vantage(&tx, agent, peer, now)?;
        let mut calendar = calendar(&tx, budget, now_round, now)?;
        let slot = calendar.next_slot(&Request {
            agent,
            vantage: &vantage,
            cost: measured_cost(&tx, agent)?.unwrap_or(DEFAULT_COST),
            now_round,
        });
        if let Slot::Work { bookings, .. } = &slot {
            store_bookings(&tx, bookings, now)?;
        }
        slot
    };
    tx.commit()?;
    Ok(to_assignment(&slot, budget, now))
}

/// Sets the ack's `targets` and `pause_until` from [`assign`]. A failure is logged and the
/// ack left without them: the results are stored whatever the scheduler says, and the
/// agent keeps its current list.
pub fn fill_ack(
    db: &mut crate::Db,
    agent: &str,
    peer: Option<IpAddr>,
    ack: &mut nkpath_proto::UploadAck,
) {
    match assign(db.conn_mut(), agent, peer, ack.batch_id, ack.received_at) {
        Ok(a) => {
            ack.targets = a.targets;
            ack.pause_until = a.pause_until;
        }
        Err(e) => tracing::error!(agent, "fleet scheduling failed, no assignment sent: {e}"),
    }
}

fn to_assignment(slot: &Slot, budget: Budget, now: OffsetDateTime) -> Assignment {
    let start = |round| {
        OffsetDateTime::from_unix_timestamp(budget.round_start(round))
            .ok()
            .filter(|t| *t > now)
    };
    match slot {
        Slot::Work { round, bookings } => Assignment {
            targets: Some(
                bookings
                    .iter()
                    .map(|b| format!("{}/32", b.address))
                    .collect(),
            ),
            pause_until: start(*round),
        },
        Slot::Idle { until } => Assignment {
            targets: None,
            pause_until: start(*until),
        },
    }
}

/// The agent's earliest booking after `now_round`, if any.
fn booked_after(conn: &Connection, agent: &str, now_round: u64) -> rusqlite::Result<Option<Slot>> {
    let round: Option<i64> = conn
        .query_row(
            "SELECT min(round) FROM fleet_bookings WHERE agent = ?1 AND round > ?2",
            params![agent, to_i64(now_round)],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(round) = round else {
        return Ok(None);
    };
    let bookings = bookings_where(conn, "agent = ?1 AND round = ?2", params![agent, round])?;
    Ok(Some(Slot::Work {
        round: u64::try_from(round).unwrap_or(0),
        bookings,
    }))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Bookings matching an SQL condition.
pub fn bookings_where(
    conn: &Connection,
    condition: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<Booking>> {
    let sql = format!(
        "SELECT round, agent, vantage, net, address, probes FROM fleet_bookings
         WHERE {condition} ORDER BY round, agent, net"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(args, |r| {
        let vantage: String = r.get(2)?;
        let net: String = r.get(3)?;
        let address: String = r.get(4)?;
        Ok(Booking {
            round: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
            agent: r.get(1)?,
            vantage: parse_vantage(&vantage),
            net: net.parse().unwrap_or_default(),
            address: address.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            probes: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
        })
    })?;
    rows.collect()
}

/// `AS123` or `unknown:AGENT`, as stored.
pub fn vantage_text(v: &Vantage) -> String {
    match v {
        Vantage::As(asn) => format!("AS{asn}"),
        Vantage::Unknown(agent) => format!("unknown:{agent}"),
    }
}

fn parse_vantage(text: &str) -> Vantage {
    text.strip_prefix("AS")
        .and_then(|n| n.parse().ok())
        .map_or_else(
            || Vantage::Unknown(text.trim_start_matches("unknown:").to_owned()),
            Vantage::As,
        )
}

fn store_bookings(
    conn: &Connection,
    bookings: &[Booking],
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO fleet_bookings (round, agent, vantage, net, address, probes, booked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for b in bookings {
        stmt.execute(params![
            to_i64(b.round),
            b.agent,
            vantage_text(&b.vantage),
            b.net.to_string(),
            b.address.to_string(),
            to_i64(b.probes),
            format_time(now),
        ])?;
    }
    Ok(())
}

/// The calendar of the rounds after `now_round`: targets, live hosts, bookings, and the
/// overspend of the last full round.
fn calendar(
    conn: &Connection,
    budget: Budget,
    now_round: u64,
    now: OffsetDateTime,
) -> rusqlite::Result<Calendar> {
    let target = crate::settings::stored_target(conn)
        .ok()
        .flatten()
        .unwrap_or_default();
    let live = live_hosts(conn, now)?;
    let targets = super::schedule::split_into_24s(&target.prefixes)
        .into_iter()
        .map(|net| TargetNet {
            net,
            live: live.iter().copied().filter(|a| net.contains(a)).collect(),
        })
        .collect();
    let mut calendar = Calendar::new(budget, SEED, targets);
    let vantages: i64 = conn.query_row(
        "SELECT count(DISTINCT coalesce('AS' || vantage_asn, 'unknown:' || agent))
         FROM fleet_agents",
        [],
        |r| r.get(0),
    )?;
    calendar.set_vantages(u64::try_from(vantages).unwrap_or(1));
    for b in bookings_where(conn, "round > ?1", [to_i64(now_round)])? {
        calendar.book(&b);
    }
    if now_round > 0 {
        let last = now_round - 1;
        let spent = probes_between(
            conn,
            budget.round_start(last),
            budget.round_start(now_round),
        )?;
        let nets: Vec<Ipv4Net> = calendar.targets().iter().map(|t| t.net).collect();
        for (net, probes) in spent {
            let over = probes.saturating_sub(budget.probes_per_round());
            for &t in nets.iter().filter(|&&t| overlaps(t, net)) {
                calendar.set_overspend(t, over);
            }
        }
    }
    Ok(calendar)
}

/// Hosts that answered a ping in the last [`LIVE_FOR`].
fn live_hosts(conn: &Connection, now: OffsetDateTime) -> rusqlite::Result<Vec<Ipv4Addr>> {
    let since = format_time(now - LIVE_FOR);
    let mut stmt = conn
        .prepare_cached("SELECT address FROM fleet_live WHERE last_seen >= ?1 ORDER BY address")?;
    let rows = stmt.query_map([since], |r| r.get::<_, String>(0))?;
    Ok(rows
        .filter_map(|r| r.ok().and_then(|a| a.parse().ok()))
        .collect())
}

/// Probes sent into each /24 by the fleet between two UNIX times (minute buckets).
pub fn probes_between(
    conn: &Connection,
    from: i64,
    to: i64,
) -> rusqlite::Result<BTreeMap<Ipv4Net, u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT net, sum(trace_probes + ping_probes) FROM fleet_done
         WHERE minute >= ?1 AND minute < ?2 GROUP BY net",
    )?;
    let rows = stmt.query_map(params![from.div_euclid(60), to.div_euclid(60)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (net, probes) = row?;
        if let Ok(net) = net.parse() {
            out.insert(net, u64::try_from(probes).unwrap_or(0));
        }
    }
    Ok(out)
}

/// Probes per target the agent sent lately (pings and trace probes per traced target),
/// rounded up; `None` before it traced anything.
fn measured_cost(conn: &Connection, agent: &str) -> rusqlite::Result<Option<u64>> {
    let (traces, probes): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT sum(traces), sum(trace_probes + ping_probes) FROM (
             SELECT traces, trace_probes, ping_probes FROM fleet_done
             WHERE agent = ?1 AND traces > 0 ORDER BY minute DESC LIMIT ?2)",
        params![agent, COST_SAMPLE],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (Some(traces), Some(probes)) = (traces, probes) else {
        return Ok(None);
    };
    let (traces, probes) = (
        u64::try_from(traces).unwrap_or(0),
        u64::try_from(probes).unwrap_or(0),
    );
    Ok((traces > 0).then(|| probes.div_ceil(traces)))
}

/// The agent's vantage: the origin AS of its upload address (the peer address, else the
/// last one recorded), from the newest loaded RIB dumps, else the Team Cymru cache;
/// looked up again when the address changes.
fn vantage(
    conn: &Connection,
    agent: &str,
    peer: Option<IpAddr>,
    now: OffsetDateTime,
) -> rusqlite::Result<Vantage> {
    let address = match peer {
        Some(IpAddr::V4(a)) => Some(a),
        _ => conn
            .query_row(
                "SELECT last_address FROM agents WHERE name = ?1",
                [agent],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten()
            .and_then(|a| a.parse().ok()),
    };
    let Some(address) = address else {
        return Ok(Vantage::Unknown(agent.to_owned()));
    };
    let cached: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT address, vantage_asn FROM fleet_agents WHERE agent = ?1",
            [agent],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let asn = match cached {
        Some((a, Some(asn))) if a == address.to_string() => u32::try_from(asn).ok(),
        _ => {
            let asn = origin_of(conn, address)?;
            conn.execute(
                "INSERT INTO fleet_agents (agent, address, vantage_asn, looked_up_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (agent) DO UPDATE SET address = excluded.address,
                     vantage_asn = excluded.vantage_asn, looked_up_at = excluded.looked_up_at",
                params![agent, address.to_string(), asn, format_time(now)],
            )?;
            asn
        }
    };
    Ok(asn.map_or_else(|| Vantage::Unknown(agent.to_owned()), Vantage::As))
}

/// The origin AS of `addr`: longest match (/32 to /8) in any collector's newest RIB dump,
/// else the Team Cymru cache; the lowest ASN when several originate it.
pub fn origin_of(conn: &Connection, addr: Ipv4Addr) -> rusqlite::Result<Option<u32>> {
    let collectors: Vec<i64> = conn
        .prepare_cached("SELECT id FROM collectors ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT s.origins FROM prefix_origins p JOIN route_sets s ON s.id = p.route_set_id
         WHERE p.collector_id = ?1 AND p.net = ?2 AND p.len = ?3 AND p.valid_until = ?4",
    )?;
    for len in (8u8..=32).rev() {
        let (net, _) = to_parts(covering(addr, len));
        for &collector in &collectors {
            let origins: Option<String> = stmt
                .query_row(params![collector, net, len, OPEN_UNTIL], |r| r.get(0))
                .optional()?;
            if let Some(asn) = origins.and_then(|o| lowest_asn(&o)) {
                return Ok(Some(asn));
            }
        }
    }
    let cached = crate::analysis::cymru_cache::CymruCache::new(conn).get(addr)?;
    Ok(cached.and_then(|c| c.answer.origins.iter().min().copied()))
}

/// The lowest of a route set's origins (`'4134 4837'`).
fn lowest_asn(origins: &str) -> Option<u32> {
    parse_asns(origins)?.into_iter().min()
}

/// The parts of a stored result that say how many probes it sent.
#[derive(Deserialize)]
struct Counted {
    #[serde(default)]
    hops: Vec<CountedHop>,
    #[serde(default)]
    sent: u64,
    #[serde(default)]
    received: u64,
}

#[derive(Deserialize)]
struct CountedHop {
    #[serde(default)]
    probes: Vec<serde::de::IgnoredAny>,
}

/// Adds the probes of a stored batch's results to `fleet_done` (per minute, agent and
/// target /24) and its answering hosts to `fleet_live`, once per batch id.
fn count_batch(conn: &Connection, agent: &str, batch_id: Uuid) -> rusqlite::Result<()> {
    let batch = batch_id.hyphenated().to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT r.kind, r.target, r.started_at, r.json FROM receipts c
         JOIN results r ON r.result_id = c.result_id
         WHERE c.batch_id = ?1 AND c.agent = ?2",
    )?;
    let rows: Vec<(String, String, String, String)> = stmt
        .query_map(params![batch, agent], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(()); // nothing new was stored: nothing to count, and nothing changes
    }
    let fresh = conn.execute(
        "INSERT OR IGNORE INTO fleet_batches (batch_id) VALUES (?1)",
        [&batch],
    )?;
    if fresh == 0 {
        return Ok(()); // a retried batch: counted when it first arrived
    }
    let mut add = conn.prepare_cached(
        "INSERT INTO fleet_done (minute, agent, net, traces, trace_probes, pings, ping_probes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (minute, agent, net) DO UPDATE SET
             traces = traces + excluded.traces,
             trace_probes = trace_probes + excluded.trace_probes,
             pings = pings + excluded.pings,
             ping_probes = ping_probes + excluded.ping_probes",
    )?;
    let mut live = conn.prepare_cached(
        "INSERT INTO fleet_live (address, last_seen) VALUES (?1, ?2)
         ON CONFLICT (address) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
    )?;
    for (kind, target, started_at, json) in rows {
        let (Ok(target), Some(started), Ok(counted)) = (
            target.parse::<Ipv4Addr>(),
            parse_time(&started_at),
            serde_json::from_str::<Counted>(&json),
        ) else {
            continue;
        };
        let minute = started.unix_timestamp().div_euclid(60);
        let net = slash24(target).to_string();
        if kind == "ping" {
            add.execute(params![minute, agent, net, 0, 0, 1, to_i64(counted.sent)])?;
            if counted.received > 0 {
                live.execute(params![target.to_string(), started_at])?;
            }
        } else {
            let probes: usize = counted.hops.iter().map(|h| h.probes.len()).sum();
            add.execute(params![minute, agent, net, 1, probes, 0, 0])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vantages_round_trip_as_text() {
        for v in [Vantage::As(4837), Vantage::Unknown("vp-1".into())] {
            assert_eq!(parse_vantage(&vantage_text(&v)), v);
        }
        assert_eq!(lowest_asn("4837 4134"), Some(4134));
        assert_eq!(lowest_asn(""), None);
    }

    #[test]
    fn work_becomes_host_prefixes_not_before_its_round() {
        let budget = Budget {
            round_secs: 60,
            cap_pps: 1.0,
        };
        let now = OffsetDateTime::from_unix_timestamp(6_030).unwrap(); // round 100
        let booking = |round| Booking {
            round,
            agent: "a".into(),
            vantage: Vantage::As(1),
            net: "175.45.176.0/24".parse().unwrap(),
            address: "175.45.176.9".parse().unwrap(),
            probes: 40,
        };
        let got = to_assignment(
            &Slot::Work {
                round: 101,
                bookings: vec![booking(101)],
            },
            budget,
            now,
        );
        assert_eq!(got.targets, Some(vec!["175.45.176.9/32".to_owned()]));
        assert_eq!(
            got.pause_until,
            Some(OffsetDateTime::from_unix_timestamp(6_060).unwrap())
        );
        let idle = to_assignment(&Slot::Idle { until: 200 }, budget, now);
        assert_eq!(idle.targets, None);
        assert_eq!(
            idle.pause_until,
            Some(OffsetDateTime::from_unix_timestamp(12_000).unwrap())
        );
    }
}
