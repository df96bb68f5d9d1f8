//! Each agent's round interval as its uploads report it (`fleet_intervals`, v8), and the
//! last round the scheduler booked it in: the scheduler books an agent's rounds its own
//! interval apart.

use std::collections::BTreeMap;

use nkpath_proto::timestamp;
use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, DbError, WriteTx};

impl Db {
    /// Every agent's last reported round interval (seconds, as clamped when stored).
    pub fn fleet_intervals(&self) -> Result<BTreeMap<String, u32>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT agent, interval_s FROM fleet_intervals")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (agent, secs) = row?;
            out.insert(agent, u32::try_from(secs).unwrap_or(u32::MAX));
        }
        Ok(out)
    }
}

impl WriteTx<'_> {
    /// Stores `agent`'s round interval, `secs` seconds, as reported at `at`.
    pub fn set_fleet_interval(
        &self,
        agent: &str,
        secs: u32,
        at: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.sql().execute(
            "INSERT INTO fleet_intervals (agent, interval_s, reported_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (agent) DO UPDATE SET interval_s = excluded.interval_s,
                 reported_at = excluded.reported_at",
            params![agent, secs, timestamp::stored(at)],
        )?;
        Ok(())
    }

    /// The latest round `agent` is booked in, if any.
    pub fn last_booked_round(&self, agent: &str) -> Result<Option<u64>, DbError> {
        let round: Option<i64> = self
            .sql()
            .query_row(
                "SELECT max(round) FROM fleet_bookings WHERE agent = ?1",
                [agent],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        Ok(round.and_then(|r| u64::try_from(r).ok()))
    }
}
