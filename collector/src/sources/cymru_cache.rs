//! Team Cymru answers kept in the database, so that a later report maps the same hop
//! addresses without asking the DNS again.
//!
//! Only answers are kept, including "nothing known" (no origins, no prefix); a lookup that
//! failed (timeout, no resolver) is not, so the next run asks again. An entry older than the
//! TTL is stale: the address is looked up again and the entry replaced. The rows themselves
//! are the store's ([`Db::cymru_answer`], [`Db::put_cymru_answer`]).

use std::net::Ipv4Addr;

use time::{Duration, OffsetDateTime};

use crate::analysis::cymru::CymruAnswer;
use crate::store::caches::StoredCymruAnswer;
use crate::store::{Db, DbError};

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

/// The Team Cymru answers of one database.
#[derive(Debug, Clone, Copy)]
pub struct CymruCache<'a> {
    db: &'a Db,
    ttl: Duration,
}

impl<'a> CymruCache<'a> {
    /// The cache in `db`, with [`CYMRU_CACHE_TTL`].
    pub fn new(db: &'a Db) -> Self {
        Self::with_ttl(db, CYMRU_CACHE_TTL)
    }

    /// The cache in `db`, with entries stale after `ttl`.
    pub fn with_ttl(db: &'a Db, ttl: Duration) -> Self {
        Self { db, ttl }
    }

    /// The stored entry of `addr`, fresh or not.
    pub fn get(&self, addr: Ipv4Addr) -> Result<Option<CachedAnswer>, DbError> {
        Ok(self.db.cymru_answer(addr)?.map(|row| CachedAnswer {
            answer: CymruAnswer {
                origins: row.origins,
                prefix: row.prefix,
            },
            looked_up_at: row.looked_up_at,
        }))
    }

    /// The entry of `addr` when it was looked up less than the TTL before `now`.
    pub fn fresh(
        &self,
        addr: Ipv4Addr,
        now: OffsetDateTime,
    ) -> Result<Option<CymruAnswer>, DbError> {
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
    ) -> Result<(), DbError> {
        self.db.put_cymru_answer(
            addr,
            &StoredCymruAnswer {
                origins: answer.origins.clone(),
                prefix: answer.prefix,
                looked_up_at,
            },
        )
    }
}
