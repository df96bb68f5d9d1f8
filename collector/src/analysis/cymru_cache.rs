//! Team Cymru answers kept in the database (`cymru_cache`, schema v4), so that a later report
//! maps the same hop addresses without asking the DNS again.
//!
//! Only answers are kept, including "nothing known" (origins and prefix NULL); a lookup that
//! failed (timeout, no resolver) is not, so the next run asks again. An entry older than the
//! TTL is stale: the address is looked up again and the entry replaced.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::{Duration, OffsetDateTime};

use super::cymru::CymruAnswer;
use crate::results::{format_time, parse_time};

/// How long a stored answer is used before the address is looked up again. Origins of the
/// addresses BGP does not cover change rarely; a week keeps a long-running series from
/// asking the same questions every report while still following renumbering.
pub const CYMRU_CACHE_TTL: Duration = Duration::days(7);

/// A stored answer and when it was looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedAnswer {
    /// The answer as the DNS gave it.
    pub answer: CymruAnswer,
    /// When the DNS gave it.
    pub looked_up_at: OffsetDateTime,
}

/// The `cymru_cache` table of one database.
#[derive(Debug, Clone, Copy)]
pub struct CymruCache<'a> {
    conn: &'a Connection,
    ttl: Duration,
}

impl<'a> CymruCache<'a> {
    /// The cache in `conn`, with [`CYMRU_CACHE_TTL`].
    pub fn new(conn: &'a Connection) -> Self {
        Self::with_ttl(conn, CYMRU_CACHE_TTL)
    }

    /// The cache in `conn`, with entries stale after `ttl`.
    pub fn with_ttl(conn: &'a Connection, ttl: Duration) -> Self {
        Self { conn, ttl }
    }

    /// The stored entry of `addr`, fresh or not.
    pub fn get(&self, addr: Ipv4Addr) -> rusqlite::Result<Option<CachedAnswer>> {
        let row: Option<(Option<String>, Option<String>, String)> = self
            .conn
            .query_row(
                "SELECT origins, prefix, looked_up_at FROM cymru_cache WHERE address = ?1",
                [addr.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        // A row this code cannot read is treated as absent: it is looked up and replaced.
        Ok(row.and_then(|(origins, prefix, at)| {
            let origins = origins
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
                .ok()?;
            let prefix = match prefix {
                Some(text) => Some(text.parse::<Ipv4Net>().ok()?),
                None => None,
            };
            Some(CachedAnswer {
                answer: CymruAnswer { origins, prefix },
                looked_up_at: parse_time(&at)?,
            })
        }))
    }

    /// The entry of `addr` when it was looked up less than the TTL before `now`.
    pub fn fresh(
        &self,
        addr: Ipv4Addr,
        now: OffsetDateTime,
    ) -> rusqlite::Result<Option<CymruAnswer>> {
        Ok(self
            .get(addr)?
            .filter(|c| now - c.looked_up_at < self.ttl)
            .map(|c| c.answer))
    }

    /// Stores (or replaces) the answer for `addr`, looked up at `looked_up_at`.
    pub fn put(
        &self,
        addr: Ipv4Addr,
        answer: &CymruAnswer,
        looked_up_at: OffsetDateTime,
    ) -> rusqlite::Result<()> {
        let origins = (!answer.origins.is_empty()).then(|| {
            let list: Vec<String> = answer.origins.iter().map(u32::to_string).collect();
            list.join(" ")
        });
        let prefix = answer
            .prefix
            .filter(|_| origins.is_some())
            .map(|p| p.to_string());
        self.conn.execute(
            "INSERT OR REPLACE INTO cymru_cache (address, origins, prefix, looked_up_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![addr.to_string(), origins, prefix, format_time(looked_up_at)],
        )?;
        Ok(())
    }
}
