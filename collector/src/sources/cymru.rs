//! Team Cymru's IP-to-ASN DNS service as the hop mapper's [`OriginLookup`], for hop
//! addresses no loaded BGP table covers.
//!
//! Each address is answered, in this order, from memory (answers and failures of this run,
//! so a failing server costs one timeout per address, not one per hop), from the database
//! cache when fresh ([`super::cymru_cache`]), else from the DNS ([`super::dns`]), whose
//! answer is stored in the cache with the time of the lookup.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use nkpath_proto::cymru;
use time::OffsetDateTime;

use super::cymru_cache::CymruCache;
use super::dns::{LookupFailed, TxtResolver};
use crate::analysis::cymru::{CymruAnswer, OriginLookup, best_answer};

/// Team Cymru lookups: in memory for the run, then the database cache (when given), then
/// the DNS; DNS answers are stored in the cache with the time of the lookup.
pub struct CymruLookup<'a> {
    resolver: Box<dyn TxtResolver + 'a>,
    cache: Option<CymruCache<'a>>,
    memory: HashMap<Ipv4Addr, Vec<u32>>,
}

impl std::fmt::Debug for CymruLookup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CymruLookup")
            .field("persistent", &self.cache.is_some())
            .field("in_memory", &self.memory.len())
            .finish_non_exhaustive()
    }
}

impl<'a> CymruLookup<'a> {
    /// Lookups with `resolver`, kept in `cache` when given.
    pub fn new(resolver: impl TxtResolver + 'a, cache: Option<CymruCache<'a>>) -> Self {
        Self {
            resolver: Box::new(resolver),
            cache,
            memory: HashMap::new(),
        }
    }

    /// The answer for `addr`: a fresh cached one, else the DNS's (stored). `Err` when the DNS
    /// gave none.
    pub fn answer(&mut self, addr: Ipv4Addr) -> Result<CymruAnswer, LookupFailed> {
        let now = OffsetDateTime::now_utc();
        if let Some(cache) = &self.cache {
            match cache.fresh(addr, now) {
                Ok(Some(hit)) => return Ok(hit),
                Ok(None) => {}
                Err(e) => tracing::warn!(%addr, "cannot read the Team Cymru cache: {e}"),
            }
        }
        let texts = self.resolver.txt(&cymru::origin_name(addr))?;
        let answer = best_answer(texts.iter().map(String::as_str));
        if let Some(cache) = &self.cache
            && let Err(e) = cache.put(addr, &answer, now)
        {
            // The answer is still used; only the next run will have to ask again.
            tracing::warn!(%addr, "cannot store a Team Cymru answer: {e}");
        }
        Ok(answer)
    }
}

impl OriginLookup for CymruLookup<'_> {
    fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32> {
        if let Some(hit) = self.memory.get(&addr) {
            return hit.clone();
        }
        let origins = self.answer(addr).map_or_else(
            |e| {
                tracing::debug!(%addr, "Team Cymru lookup failed: {e}");
                Vec::new()
            },
            |answer| answer.origins,
        );
        self.memory.insert(addr, origins.clone());
        origins
    }
}
