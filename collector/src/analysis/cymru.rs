//! Team Cymru's IP-to-ASN DNS service, for hop addresses no loaded BGP table covers.
//!
//! A TXT query for `D.C.B.A.origin.asn.cymru.com` answers
//! `"ASN [ASN...] | PREFIX | CC | REGISTRY | DATE"`. Answers are kept in the database with
//! the time they were looked up ([`super::cymru_cache`]) and reused until they are older than
//! its TTL; within a run, answers and failures are also kept in memory, so a failing server
//! costs one timeout per address, not one per hop.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use ipnet::Ipv4Net;
use time::OffsetDateTime;

use nkpath_proto::cymru;

use super::cymru_cache::CymruCache;

/// The origin ASes of an address, by some lookup outside the loaded BGP data.
pub trait OriginLookup {
    /// The origin ASes of `addr` (empty when unknown).
    fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32>;
}

/// What Team Cymru says of one address: the origins of the most specific prefix it knows,
/// or nothing (`origins` empty, `prefix` `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CymruAnswer {
    /// The origin ASes, as listed.
    pub origins: Vec<u32>,
    /// The prefix they originate.
    pub prefix: Option<Ipv4Net>,
}

/// A lookup that got no answer at all (timeout, unreachable or refusing server): unlike an
/// answer saying "nothing known", it says nothing about the address and is not stored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LookupFailed(pub String);

/// Asks the DNS for TXT records.
pub trait TxtResolver {
    /// The TXT strings of `name`; empty when the server answered that there are none
    /// (NXDOMAIN or no TXT record).
    fn txt(&mut self, name: &str) -> Result<Vec<String>, LookupFailed>;
}

/// TXT queries with hickory-resolver.
pub struct DnsTxtResolver {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
}

impl std::fmt::Debug for DnsTxtResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsTxtResolver").finish_non_exhaustive()
    }
}

/// Why the DNS resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up DNS lookups ({0}); pass --resolver ADDR, or --no-dns to map hops from BGP data only"
)]
pub struct ResolverSetupError(String);

impl DnsTxtResolver {
    /// Queries to `server` (IP:PORT), or to the system's resolvers when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ResolverSetupError> {
        let setup = |e: &dyn std::fmt::Display| ResolverSetupError(e.to_string());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup(&e))?;
        let mut builder = match server {
            Some(server) => {
                let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut name_server.connections {
                    connection.port = server.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![name_server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| setup(&e))?,
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        let resolver = {
            let _guard = runtime.enter();
            builder.build().map_err(|e| setup(&e))?
        };
        Ok(Self { runtime, resolver })
    }
}

impl TxtResolver for DnsTxtResolver {
    fn txt(&mut self, name: &str) -> Result<Vec<String>, LookupFailed> {
        match self.runtime.block_on(self.resolver.txt_lookup(name)) {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()),
            // NXDOMAIN or NOERROR without TXT records: an answer, "nothing known".
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(LookupFailed(e.to_string())),
        }
    }
}

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

/// The origins of the most specific prefix among the TXT answers.
pub fn best_origins<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    best_answer(texts).origins
}

/// The most specific prefix among the TXT answers, with its origins (read by the parser the
/// agent uses too, [`nkpath_proto::cymru`]; unreadable answers are ignored; none left:
/// nothing known).
pub fn best_answer<'a>(texts: impl IntoIterator<Item = &'a str>) -> CymruAnswer {
    cymru::best(texts).map_or_else(CymruAnswer::default, |o| CymruAnswer {
        origins: o.origins,
        prefix: o.prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_most_specific_answer() {
        let got = best_origins([
            "131279 | 175.45.176.0/22 | KP | apnic | 2009-12-18",
            "131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18",
            "4837 4134 | 175.45.0.0/16 | CN | apnic | 2009-12-18",
        ]);
        assert_eq!(got, vec![131_279]);
        let answer = best_answer(["4837 | 175.45.0.0/16 | CN | apnic | x", "bad | x"]);
        assert_eq!(answer.prefix, Some("175.45.0.0/16".parse().unwrap()));
        assert_eq!(best_answer(["garbage"]), CymruAnswer::default());
        assert_eq!(best_origins(["garbage"]), Vec::<u32>::new());
        assert_eq!(
            best_origins(["4837 4134 | 1.0.0.0/8 | CN | apnic | x"]),
            vec![4837, 4134]
        );
    }
}
