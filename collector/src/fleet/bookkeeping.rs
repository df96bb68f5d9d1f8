//! The scheduler's bookkeeping: its settings, the work agents did (counted from their
//! uploaded results), each agent's vantage AS, and the assignment an upload's
//! acknowledgement carries. The tables are [`crate::store::fleet`]'s.
//!
//! [`account_upload`] is what the upload handler calls inside the upload's transaction, once
//! the batch's results are written: it counts the results the batch stored, then, when
//! scheduling is on, answers with the agent's next booked round (booking one when it has
//! none), as the acknowledgement's `targets` and `pause_until`. It runs in a savepoint, so
//! that a failure of the fleet tables is logged and rolled back alone: the results commit
//! whatever the scheduler does.
//!
//! Every agent's report is one untrusted voice: what its results say steers only that
//! agent. The hosts its pings found answering are preferred among its own targets only (a
//! lone agent still traces the hosts it found), and the probes its results say it sent
//! count against its own next booking only, beyond what it was booked for: an agent that
//! claims to have flooded a /24 delays itself, not the others. A result is counted once,
//! when it is first stored (a resent batch stores nothing new).

use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use nkpath_proto::ResultRecord;
use time::OffsetDateTime;

use super::schedule::{Booking, Budget, Calendar, Request, Slot, TargetNet, Vantage, slash24};
use crate::bgp::prefix::overlaps;
use crate::store::fleet::{BookingRow, Work};
use crate::store::settings::SettingsStore;
use crate::store::{DbError, WriteTx};

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
/// Longest agent interval the scheduler follows (a day): a longer one reported is taken as
/// this, so that an agent's bookings stay within the calendar's horizon.
pub const MAX_INTERVAL_SECS: u32 = 86_400;

/// The interval the scheduler follows for an agent that reported `reported` seconds:
/// clamped to [`MIN_ROUND_SECS`]..=[`MAX_INTERVAL_SECS`]; an agent that reports none (an
/// older build) is taken to follow the collector's round.
pub fn followed_interval(reported: Option<u32>, budget: Budget) -> u32 {
    reported
        .unwrap_or(budget.round_secs)
        .clamp(MIN_ROUND_SECS, MAX_INTERVAL_SECS)
}

/// Collector rounds in one interval of `interval_s` seconds, rounded up (at least 1).
pub fn rounds_per_interval(interval_s: u32, budget: Budget) -> u64 {
    u64::from(interval_s)
        .div_ceil(u64::from(budget.round_secs.max(1)))
        .max(1)
}

/// The fleet's budget as stored (defaults when never set).
pub fn budget(settings: &impl SettingsStore) -> Result<Budget, DbError> {
    let round_secs = settings
        .setting(KEY_ROUND)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUND_SECS);
    let cap_pps = settings
        .setting(KEY_CAP)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CAP_PPS);
    Ok(Budget {
        round_secs,
        cap_pps,
    })
}

/// Stores the round length and the cap. Bookings already made keep their rounds.
pub fn set_budget(settings: &impl SettingsStore, budget: Budget) -> Result<(), DbError> {
    settings.put_setting(KEY_ROUND, &budget.round_secs.to_string())?;
    settings.put_setting(KEY_CAP, &budget.cap_pps.to_string())
}

/// Whether the collector schedules the fleet: on unless set off (`fleet --schedule off`).
/// A new database has no setting, so a new collector schedules its agents from the start;
/// upgrading an older database writes `off` into it (schema v8), so that an upgrade does
/// not change what its agents do.
pub fn enabled(settings: &impl SettingsStore) -> Result<bool, DbError> {
    Ok(settings.setting(KEY_ENABLED)?.is_none_or(|v| v == "on"))
}

/// Turns scheduling on or off. Off, acks carry no assignment: each agent keeps the last one
/// it got until it expires, then probes its own targets.
pub fn set_enabled(settings: &impl SettingsStore, on: bool) -> Result<(), DbError> {
    settings.put_setting(KEY_ENABLED, if on { "on" } else { "off" })
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

/// An upload as the fleet's bookkeeping sees it.
#[derive(Debug, Clone, Copy)]
pub struct Upload<'a> {
    /// The agent the token belongs to.
    pub agent: &'a str,
    /// The connection's peer address, when known.
    pub peer: Option<IpAddr>,
    /// The collector's clock when it arrived.
    pub received_at: OffsetDateTime,
    /// The round interval the agent reported, in seconds (none from older agents).
    pub round_interval_s: Option<u32>,
}

/// Counts the results `upload` newly stored, then, when scheduling is on, returns the
/// agent's next assignment (an empty one when off). Runs inside the upload's transaction
/// `tx`, after its results are written, in a savepoint: a failure is logged, its writes
/// rolled back, and the ack goes without an assignment (the agent keeps its current list).
pub fn account_upload(
    tx: &WriteTx<'_>,
    upload: &Upload<'_>,
    stored: &[&ResultRecord],
) -> Assignment {
    let accounted = tx.in_savepoint(|tx| {
        count_results(tx, upload.agent, stored)?;
        let budget = budget(tx)?;
        let interval = followed_interval(upload.round_interval_s, budget);
        if upload.round_interval_s.is_some() {
            tx.set_fleet_interval(upload.agent, interval, upload.received_at)?;
        }
        assign(tx, upload.agent, upload.peer, upload.received_at, interval)
    });
    accounted.unwrap_or_else(|e| {
        tracing::error!(
            agent = upload.agent,
            "fleet bookkeeping failed, rolled back (the results are stored; no assignment sent): {e}"
        );
        Assignment::default()
    })
}

/// When scheduling is on, the agent's next assignment, booking one if it has none after the
/// current round (and not before its last booked round plus its interval of `interval_s`
/// seconds); an empty assignment when off.
pub fn assign(
    tx: &WriteTx<'_>,
    agent: &str,
    peer: Option<IpAddr>,
    now: OffsetDateTime,
    interval_s: u32,
) -> Result<Assignment, DbError> {
    if !enabled(tx)? {
        return Ok(Assignment::default());
    }
    let budget = budget(tx)?;
    let now_round = budget.round_at(now.unix_timestamp());
    let slot = if let Some((round, rows)) = tx.bookings_of_agent_after(agent, now_round)? {
        Slot::Work {
            round,
            bookings: rows.into_iter().map(to_booking).collect(),
        }
    } else {
        let vantage = vantage(tx, agent, peer, now)?;
        let mut calendar = calendar(tx, agent, budget, now_round, now)?;
        let slot = calendar.next_slot(&Request {
            agent,
            vantage: &vantage,
            cost: measured_cost(tx, agent)?.unwrap_or(DEFAULT_COST),
            now_round,
            not_before: tx
                .last_booked_round(agent)?
                .map_or(0, |last| last + rounds_per_interval(interval_s, budget)),
        });
        if let Slot::Work { bookings, .. } = &slot {
            let rows: Vec<BookingRow> = bookings.iter().map(to_row).collect();
            tx.insert_bookings(&rows, now)?;
        }
        slot
    };
    Ok(to_assignment(&slot, budget, now))
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

/// A stored booking.
pub fn to_booking(row: BookingRow) -> Booking {
    Booking {
        round: row.round,
        vantage: parse_vantage(&row.vantage),
        agent: row.agent,
        net: row.net,
        address: row.address,
        probes: row.probes,
    }
}

fn to_row(booking: &Booking) -> BookingRow {
    BookingRow {
        round: booking.round,
        agent: booking.agent.clone(),
        vantage: vantage_text(&booking.vantage),
        net: booking.net,
        address: booking.address,
        probes: booking.probes,
    }
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

/// The calendar of the rounds after `now_round` as `agent` may book it: the targets with the
/// hosts its own pings found live, every booking, and what `agent` itself sent beyond its
/// bookings in the last full round (its overrun, taken off its own room in the next round).
fn calendar(
    tx: &WriteTx<'_>,
    agent: &str,
    budget: Budget,
    now_round: u64,
    now: OffsetDateTime,
) -> Result<Calendar, DbError> {
    let target = crate::settings::stored_target(tx)
        .ok()
        .flatten()
        .unwrap_or_default();
    let live = tx.live_hosts(agent, now - LIVE_FOR)?;
    let targets = super::schedule::split_into_24s(&target.prefixes)
        .into_iter()
        .map(|net| TargetNet {
            net,
            live: live.iter().copied().filter(|a| net.contains(a)).collect(),
        })
        .collect();
    let mut calendar = Calendar::new(budget, SEED, targets);
    calendar.set_vantages(tx.vantage_count()?);
    for row in tx.bookings_after(now_round)? {
        calendar.book(&to_booking(row));
    }
    if now_round > 0 {
        let nets: Vec<Ipv4Net> = calendar.targets().iter().map(|t| t.net).collect();
        for (net, over) in overrun(tx, agent, budget, now_round - 1)? {
            for &t in nets.iter().filter(|&&t| overlaps(t, net)) {
                calendar.set_overspend(t, over);
            }
        }
    }
    Ok(calendar)
}

/// The probes `agent`'s results say it sent into each /24 in round `round` beyond what it
/// was booked for there (all of them when it was not booked). Only the agent's own claims
/// count, and only against itself: another agent's claim never takes room from it.
fn overrun(
    tx: &WriteTx<'_>,
    agent: &str,
    budget: Budget,
    round: u64,
) -> Result<Vec<(Ipv4Net, u64)>, DbError> {
    let from = budget.round_start(round);
    let to = budget.round_start(round + 1);
    let spent = tx.agent_probes_between(agent, from, to)?;
    let booked = tx.agent_booked_probes(agent, round)?;
    Ok(spent
        .into_iter()
        .map(|(net, probes)| {
            let allowed: u64 = booked
                .iter()
                .filter(|&(&b, _)| overlaps(b, net))
                .map(|(_, &p)| p)
                .sum();
            (net, probes.saturating_sub(allowed))
        })
        .filter(|&(_, over)| over > 0)
        .collect())
}

/// Probes per target the agent sent lately (pings and trace probes per traced target),
/// rounded up; `None` before it traced anything.
fn measured_cost(tx: &WriteTx<'_>, agent: &str) -> Result<Option<u64>, DbError> {
    Ok(tx
        .recent_trace_work(agent, COST_SAMPLE)?
        .and_then(|(traces, probes)| (traces > 0).then(|| probes.div_ceil(traces))))
}

/// The agent's vantage: the origin AS of its upload address (the peer address, else the
/// last one recorded), from the newest loaded RIB dumps, else the Team Cymru cache;
/// looked up again when the address changes.
fn vantage(
    tx: &WriteTx<'_>,
    agent: &str,
    peer: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Vantage, DbError> {
    let address: Option<Ipv4Addr> = match peer {
        Some(IpAddr::V4(a)) => Some(a),
        _ => tx.last_address(agent)?.and_then(|a| a.parse().ok()),
    };
    let Some(address) = address else {
        return Ok(Vantage::Unknown(agent.to_owned()));
    };
    let asn = match tx.cached_vantage(agent)? {
        Some(cached) if cached.asn.is_some() && cached.address == address.to_string() => cached.asn,
        _ => {
            let asn = tx.fleet_origin_of(address)?;
            tx.cache_vantage(agent, address, asn, now)?;
            asn
        }
    };
    Ok(asn.map_or_else(|| Vantage::Unknown(agent.to_owned()), Vantage::As))
}

/// Adds the probes of the results an upload newly stored to the counted work (per minute,
/// agent and target /24) and its answering hosts to the agent's live hosts. Each result is
/// newly stored once (by result id), so it is counted once, whatever batch carried it.
fn count_results(tx: &WriteTx<'_>, agent: &str, stored: &[&ResultRecord]) -> Result<(), DbError> {
    for record in stored {
        let started = record.started_at();
        let mut work = Work {
            minute: started.unix_timestamp().div_euclid(60),
            agent,
            net: slash24(record.target()),
            traces: 0,
            trace_probes: 0,
            pings: 0,
            ping_probes: 0,
        };
        match record {
            ResultRecord::Ping(p) => {
                work.pings = 1;
                work.ping_probes = u64::from(p.sent);
                tx.add_work(&work)?;
                if p.received > 0 {
                    tx.note_live(agent, p.target, started)?;
                }
            }
            ResultRecord::Trace(t) => {
                work.traces = 1;
                work.trace_probes = t.hops.iter().map(|h| h.probes.len() as u64).sum();
                tx.add_work(&work)?;
            }
            ResultRecord::Multipath(m) => {
                // A multipath trace is a trace of its target, however many flows it took.
                work.traces = 1;
                work.trace_probes = u64::from(m.probes_sent);
                tx.add_work(&work)?;
            }
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
