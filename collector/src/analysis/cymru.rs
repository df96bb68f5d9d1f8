//! Team Cymru's IP-to-ASN DNS service, for hop addresses no loaded BGP table covers.
//!
//! A TXT query for `D.C.B.A.origin.asn.cymru.com` answers
//! `"ASN [ASN...] | PREFIX | CC | REGISTRY | DATE"`. Answers (and failures) are cached in
//! memory for the run; a persistent cache would need a table of its own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// The origin ASes of an address, by some lookup outside the loaded BGP data.
pub trait OriginLookup {
    /// The origin ASes of `addr` (empty when unknown).
    fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32>;
}

/// Team Cymru lookups over DNS with hickory-resolver, cached in memory.
pub struct CymruLookup {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
    cache: HashMap<Ipv4Addr, Vec<u32>>,
}

impl std::fmt::Debug for CymruLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CymruLookup")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl CymruLookup {
    /// Lookups at `server` (IP:PORT), or at the system's resolvers when `None`.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
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
            None => TokioResolver::builder_tokio()?,
        };
        let options = builder.options_mut();
        options.timeout = Duration::from_secs(2);
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        let resolver = {
            let _guard = runtime.enter();
            builder.build()?
        };
        Ok(Self {
            runtime,
            resolver,
            cache: HashMap::new(),
        })
    }
}

impl OriginLookup for CymruLookup {
    fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32> {
        if let Some(hit) = self.cache.get(&addr) {
            return hit.clone();
        }
        let name = origin_name(addr);
        let texts: Vec<String> = self
            .runtime
            .block_on(self.resolver.txt_lookup(name.as_str()))
            .map_or_else(
                |e| {
                    tracing::debug!(%addr, "Team Cymru lookup failed: {e}");
                    Vec::new()
                },
                |lookup| {
                    lookup
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
                        .collect()
                },
            );
        let origins = best_origins(texts.iter().map(String::as_str));
        self.cache.insert(addr, origins.clone());
        origins
    }
}

/// `D.C.B.A.origin.asn.cymru.com.`
pub fn origin_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{d}.{c}.{b}.{a}.origin.asn.cymru.com.")
}

/// The origins of the most specific prefix among the TXT answers.
pub fn best_origins<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    texts
        .into_iter()
        .filter_map(|text| {
            let mut fields = text.split('|').map(str::trim);
            let asns: Vec<u32> = fields
                .next()?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let len = fields.next()?.parse::<ipnet::Ipv4Net>().ok()?.prefix_len();
            (!asns.is_empty()).then_some((len, asns))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, asns)| asns)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_most_specific_answer() {
        assert_eq!(
            origin_name("175.45.176.1".parse().unwrap()),
            "1.176.45.175.origin.asn.cymru.com."
        );
        let got = best_origins([
            "131279 | 175.45.176.0/22 | KP | apnic | 2009-12-18",
            "131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18",
            "4837 4134 | 175.45.0.0/16 | CN | apnic | 2009-12-18",
        ]);
        assert_eq!(got, vec![131_279]);
        assert_eq!(best_origins(["garbage"]), Vec::<u32>::new());
        assert_eq!(
            best_origins(["4837 4134 | 1.0.0.0/8 | CN | apnic | x"]),
            vec![4837, 4134]
        );
    }
}
