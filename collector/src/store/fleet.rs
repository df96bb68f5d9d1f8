//! Fleet scheduling's tables: each agent's vantage (`fleet_agents`), the bookings
//! (`fleet_bookings`), the work counted from uploads (`fleet_done`, and `fleet_live`, the
//! hosts each agent found answering), the upload batches stored (`upload_batches`, by agent
//! and batch id), and the lookups the scheduler makes in other tables (the origin AS of an
//! agent's address, from the newest RIB dumps or the Team Cymru cache).
//!
//! The bookkeeping of an upload runs inside the upload's own transaction, in a savepoint
//! ([`WriteTx::in_savepoint`]): when it fails, its writes are rolled back alone and the
//! upload's results still commit.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nkpath_proto::timestamp;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, DbError, WriteTx, bgp, caches};

/// One row of `fleet_bookings`: agent `agent` traces `address` (in the target /24 `net`) in
/// collector round `round`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    /// The collector round (UNIX time / round length).
    pub round: u64,
    /// The agent booked.
    pub agent: String,
    /// Its vantage as stored: `AS<n>` or `unknown:<agent>`.
    pub vantage: String,
    /// The target /24.
    pub net: Ipv4Net,
    /// The address to trace.
    pub address: Ipv4Addr,
    /// The agent's cost per target when booked, in probes.
    pub probes: u64,
}

/// Work counted from uploaded results: one minute, agent and target /24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work<'a> {
    /// UNIX minute of the results' start.
    pub minute: i64,
    /// The agent.
    pub agent: &'a str,
    /// The target /24.
    pub net: Ipv4Net,
    /// Traces, and the probes they sent.
    pub traces: u64,
    /// Probes sent by those traces.
    pub trace_probes: u64,
    /// Ping results.
    pub pings: u64,
    /// Pings they sent.
    pub ping_probes: u64,
}

/// An agent's cached vantage: the address it was looked up for and its origin AS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VantageRow {
    /// The address, as stored.
    pub address: String,
    /// Its origin AS, `None` when nothing mapped it.
    pub asn: Option<u32>,
}

/// A row of the fleet report's agents table: an agent with a valid token and its vantage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetAgentRow {
    /// The agent.
    pub agent: String,
    /// The address its vantage was looked up for, if ever.
    pub address: Option<String>,
    /// Its origin AS, if known.
    pub asn: Option<i64>,
}

/// Work of one agent over a span: traces and probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWork {
    /// The agent.
    pub agent: String,
    /// Traces counted.
    pub traces: i64,
    /// Probes counted (trace probes and pings).
    pub probes: i64,
}

/// Work into one target /24 over one hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourlyWork {
    /// UNIX hour.
    pub hour: i64,
    /// The target /24, as stored.
    pub net: String,
    /// Traces counted.
    pub traces: i64,
    /// Probes counted (trace probes and pings).
    pub probes: i64,
    /// Agents that sent them.
    pub agents: i64,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn bookings(
    conn: &Connection,
    condition: &str,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<BookingRow>> {
    let sql = format!(
        "SELECT round, agent, vantage, net, address, probes FROM fleet_bookings
         WHERE {condition} ORDER BY round, agent, net"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args, |r| {
        let net: String = r.get(3)?;
        let address: String = r.get(4)?;
        Ok(BookingRow {
            round: r.get::<_, i64>(0)?.try_into().unwrap_or(0),
            agent: r.get(1)?,
            vantage: r.get(2)?,
            net: net.parse().unwrap_or_default(),
            address: address.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            probes: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
        })
    })?;
    rows.collect()
}

fn bookings_from(conn: &Connection, first_round: u64) -> rusqlite::Result<Vec<BookingRow>> {
    bookings(conn, "round >= ?1", [to_i64(first_round)])
}

impl Db {
    /// Every booking of round `first_round` or later.
    pub fn fleet_bookings_from(&self, first_round: u64) -> Result<Vec<BookingRow>, DbError> {
        Ok(bookings_from(&self.conn, first_round)?)
    }

    /// The agents with a valid token, by name, with their cached vantage.
    pub fn fleet_agents(&self) -> Result<Vec<FleetAgentRow>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT a.name, f.address, f.vantage_asn FROM agents a
             LEFT JOIN fleet_agents f ON f.agent = a.name WHERE a.revoked_at IS NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(FleetAgentRow {
                agent: r.get(0)?,
                address: r.get(1)?,
                asn: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each agent's counted work in UNIX minutes `from..to`.
    pub fn fleet_work_by_agent(&self, from: i64, to: i64) -> Result<Vec<AgentWork>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT agent, sum(traces), sum(trace_probes + ping_probes) FROM fleet_done
             WHERE minute >= ?1 AND minute < ?2 GROUP BY agent",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(AgentWork {
                agent: r.get(0)?,
                traces: r.get(1)?,
                probes: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The counted work into each target /24 per hour, in UNIX minutes `from..to`, by hour
    /// then prefix.
    pub fn fleet_work_by_hour(&self, from: i64, to: i64) -> Result<Vec<HourlyWork>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT minute / 60, net, sum(traces), sum(trace_probes + ping_probes),
                    count(DISTINCT agent)
             FROM fleet_done WHERE minute >= ?1 AND minute < ?2
             GROUP BY minute / 60, net ORDER BY minute / 60, net",
        )?;
        let rows = stmt.query_map(params![from, to], |r| {
            Ok(HourlyWork {
                hour: r.get(0)?,
                net: r.get(1)?,
                traces: r.get(2)?,
                probes: r.get(3)?,
                agents: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The origin AS of `addr` for fleet vantages ([`WriteTx::fleet_origin_of`]).
    pub fn fleet_origin_of(&self, addr: Ipv4Addr) -> Result<Option<u32>, DbError> {
        Ok(origin_of(&self.conn, addr)?)
    }
}

impl WriteTx<'_> {
    /// The digest of the result ids of `agent`'s upload batch `batch_id`, if it stored that
    /// batch before.
    pub fn batch_digest(
        &self,
        agent: &str,
        batch_id: uuid::Uuid,
    ) -> Result<Option<String>, DbError> {
        Ok(self
            .sql()
            .prepare_cached(
                "SELECT results_sha256 FROM upload_batches WHERE agent = ?1 AND batch_id = ?2",
            )?
            .query_row(params![agent, batch_id.hyphenated().to_string()], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Records `agent`'s upload batch `batch_id` and the digest of its result ids (nothing
    /// when it is recorded already).
    pub fn insert_batch(
        &self,
        agent: &str,
        batch_id: uuid::Uuid,
        results_sha256: &str,
    ) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT OR IGNORE INTO upload_batches (agent, batch_id, results_sha256)
                 VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                agent,
                batch_id.hyphenated().to_string(),
                results_sha256
            ])?;
        Ok(())
    }

    /// Adds `work` to the counted work.
    pub fn add_work(&self, work: &Work<'_>) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT INTO fleet_done (minute, agent, net, traces, trace_probes, pings,
                                         ping_probes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (minute, agent, net) DO UPDATE SET
                     traces = traces + excluded.traces,
                     trace_probes = trace_probes + excluded.trace_probes,
                     pings = pings + excluded.pings,
                     ping_probes = ping_probes + excluded.ping_probes",
            )?
            .execute(params![
                work.minute,
                work.agent,
                work.net.to_string(),
                to_i64(work.traces),
                to_i64(work.trace_probes),
                to_i64(work.pings),
                to_i64(work.ping_probes),
            ])?;
        Ok(())
    }

    /// Notes that target host `address` answered a ping of `agent`'s at `at`.
    pub fn note_live(
        &self,
        agent: &str,
        address: Ipv4Addr,
        at: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "INSERT INTO fleet_live (agent, address, last_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent, address) DO UPDATE SET
                     last_seen = max(last_seen, excluded.last_seen)",
            )?
            .execute(params![agent, address.to_string(), timestamp::stored(at)])?;
        Ok(())
    }

    /// Target hosts that answered a ping of `agent`'s at `since` or later, by address.
    pub fn live_hosts(&self, agent: &str, since: OffsetDateTime) -> Result<Vec<Ipv4Addr>, DbError> {
        let mut stmt = self.sql().prepare_cached(
            "SELECT address FROM fleet_live WHERE agent = ?1 AND last_seen >= ?2
             ORDER BY address",
        )?;
        let rows = stmt.query_map(params![agent, timestamp::stored(since)], |r| {
            r.get::<_, String>(0)
        })?;
        Ok(rows
            .filter_map(|r| r.ok().and_then(|a| a.parse().ok()))
            .collect())
    }

    /// The earliest round after `round` in which `agent` is booked, and its bookings.
    pub fn bookings_of_agent_after(
        &self,
        agent: &str,
        round: u64,
    ) -> Result<Option<(u64, Vec<BookingRow>)>, DbError> {
        let next: Option<i64> = self
            .sql()
            .query_row(
                "SELECT min(round) FROM fleet_bookings WHERE agent = ?1 AND round > ?2",
                params![agent, to_i64(round)],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(next) = next else {
            return Ok(None);
        };
        let rows = bookings(
            self.sql(),
            "agent = ?1 AND round = ?2",
            params![agent, next],
        )?;
        Ok(Some((u64::try_from(next).unwrap_or(0), rows)))
    }

    /// Every booking of a round after `round`.
    pub fn bookings_after(&self, round: u64) -> Result<Vec<BookingRow>, DbError> {
        Ok(bookings(self.sql(), "round > ?1", [to_i64(round)])?)
    }

    /// Stores `rows` (replacing bookings of the same round, agent and /24), booked at `at`.
    pub fn insert_bookings(&self, rows: &[BookingRow], at: OffsetDateTime) -> Result<(), DbError> {
        let mut stmt = self.sql().prepare_cached(
            "INSERT OR REPLACE INTO fleet_bookings
                 (round, agent, vantage, net, address, probes, booked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for b in rows {
            stmt.execute(params![
                to_i64(b.round),
                b.agent,
                b.vantage,
                b.net.to_string(),
                b.address.to_string(),
                to_i64(b.probes),
                timestamp::stored(at),
            ])?;
        }
        Ok(())
    }

    /// How many distinct vantages the fleet has (agents of an unknown AS count alone).
    pub fn vantage_count(&self) -> Result<u64, DbError> {
        let n: i64 = self.sql().query_row(
            "SELECT count(DISTINCT coalesce('AS' || vantage_asn, 'unknown:' || agent))
             FROM fleet_agents",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(1))
    }

    /// Probes `agent`'s results say it sent into each /24 between two UNIX times (counted
    /// per minute).
    pub fn agent_probes_between(
        &self,
        agent: &str,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<Ipv4Net, u64>, DbError> {
        let mut stmt = self.sql().prepare_cached(
            "SELECT net, sum(trace_probes + ping_probes) FROM fleet_done
             WHERE agent = ?1 AND minute >= ?2 AND minute < ?3 GROUP BY net",
        )?;
        let rows = stmt.query_map(
            params![agent, from.div_euclid(60), to.div_euclid(60)],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )?;
        per_net(rows)
    }

    /// Probes `agent` was booked for in each target prefix in round `round`.
    pub fn agent_booked_probes(
        &self,
        agent: &str,
        round: u64,
    ) -> Result<BTreeMap<Ipv4Net, u64>, DbError> {
        let mut stmt = self.sql().prepare_cached(
            "SELECT net, sum(probes) FROM fleet_bookings
             WHERE agent = ?1 AND round = ?2 GROUP BY net",
        )?;
        let rows = stmt.query_map(params![agent, to_i64(round)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        per_net(rows)
    }

    /// Traces and probes (trace probes and pings) of `agent`'s `sample` most recent minutes
    /// that had traces; `None` before it traced anything.
    pub fn recent_trace_work(
        &self,
        agent: &str,
        sample: u32,
    ) -> Result<Option<(u64, u64)>, DbError> {
        let (traces, probes): (Option<i64>, Option<i64>) = self.sql().query_row(
            "SELECT sum(traces), sum(trace_probes + ping_probes) FROM (
                 SELECT traces, trace_probes, ping_probes FROM fleet_done
                 WHERE agent = ?1 AND traces > 0 ORDER BY minute DESC LIMIT ?2)",
            params![agent, sample],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(traces), Some(probes)) = (traces, probes) else {
            return Ok(None);
        };
        Ok(Some((
            u64::try_from(traces).unwrap_or(0),
            u64::try_from(probes).unwrap_or(0),
        )))
    }

    /// `agent`'s cached vantage, if it was ever looked up.
    pub fn cached_vantage(&self, agent: &str) -> Result<Option<VantageRow>, DbError> {
        Ok(self
            .sql()
            .query_row(
                "SELECT address, vantage_asn FROM fleet_agents WHERE agent = ?1",
                [agent],
                |r| {
                    let asn: Option<i64> = r.get(1)?;
                    Ok(VantageRow {
                        address: r.get(0)?,
                        asn: asn.and_then(|a| u32::try_from(a).ok()),
                    })
                },
            )
            .optional()?)
    }

    /// Caches `agent`'s vantage: `asn` for `address`, looked up at `at`.
    pub fn cache_vantage(
        &self,
        agent: &str,
        address: Ipv4Addr,
        asn: Option<u32>,
        at: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.sql().execute(
            "INSERT INTO fleet_agents (agent, address, vantage_asn, looked_up_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (agent) DO UPDATE SET address = excluded.address,
                 vantage_asn = excluded.vantage_asn, looked_up_at = excluded.looked_up_at",
            params![agent, address.to_string(), asn, timestamp::stored(at)],
        )?;
        Ok(())
    }

    /// The origin AS of `addr`: longest match (/32 to /8) in any collector's newest RIB
    /// dump, else the Team Cymru cache; the lowest ASN when several originate it.
    pub fn fleet_origin_of(&self, addr: Ipv4Addr) -> Result<Option<u32>, DbError> {
        Ok(origin_of(self.sql(), addr)?)
    }
}

/// Rows of (prefix as stored, probes) as a map; rows whose prefix does not parse are left out.
fn per_net(
    rows: impl Iterator<Item = rusqlite::Result<(String, i64)>>,
) -> Result<BTreeMap<Ipv4Net, u64>, DbError> {
    let mut out = BTreeMap::new();
    for row in rows {
        let (net, probes) = row?;
        if let Ok(net) = net.parse() {
            out.insert(net, u64::try_from(probes).unwrap_or(0));
        }
    }
    Ok(out)
}

fn origin_of(conn: &Connection, addr: Ipv4Addr) -> rusqlite::Result<Option<u32>> {
    let collectors = bgp::read::collector_ids(conn)?;
    for len in (8u8..=32).rev() {
        // Prefixes are stored as (network address as an integer, length).
        let net = u32::from(addr) & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        for &collector in &collectors {
            let origins = bgp::read::newest_dump_origins(conn, collector, (net, len))?;
            if let Some(asn) = origins.as_deref().and_then(lowest_asn) {
                return Ok(Some(asn));
            }
        }
    }
    // A row the cache itself cannot read counts as absent.
    Ok(caches::cymru_answer(conn, addr)?.and_then(|a| a.origins.into_iter().min()))
}

/// The lowest of a route set's origins (`'4134 4837'`); `None` when empty or unreadable.
fn lowest_asn(origins: &str) -> Option<u32> {
    origins
        .split_ascii_whitespace()
        .map(|a| a.parse::<u32>().ok())
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_origin_is_the_vantage() {
        assert_eq!(lowest_asn("4837 4134"), Some(4134));
        assert_eq!(lowest_asn(""), None);
        assert_eq!(lowest_asn("4837 x"), None);
    }

    #[test]
    fn a_failed_savepoint_rolls_back_alone() {
        let mut db = Db::open_in_memory().unwrap();
        let tx = db.write().unwrap();
        tx.put_setting("kept", "1").unwrap();
        let failed: Result<(), DbError> = tx.in_savepoint(|tx| {
            tx.put_setting("dropped", "1")?;
            Err(rusqlite::Error::InvalidQuery.into())
        });
        assert!(failed.is_err());
        tx.in_savepoint(|tx| tx.put_setting("also kept", "1"))
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(db.setting("kept").unwrap().as_deref(), Some("1"));
        assert_eq!(db.setting("dropped").unwrap(), None);
        assert_eq!(db.setting("also kept").unwrap().as_deref(), Some("1"));
    }
}
