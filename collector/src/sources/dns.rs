//! TXT queries over DNS with hickory-resolver, on a tokio runtime of their own: the
//! collector's one piece of DNS glue. Reports run synchronously, so each query is driven to
//! its end with `block_on`.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// A lookup that got no answer at all (timeout, unreachable or refusing server): unlike an
/// answer saying "nothing known", it says nothing about the name.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LookupFailed(pub String);

/// Asks the DNS for TXT records.
pub trait TxtResolver {
    /// The TXT strings of `name`; empty when the server answered that there are none
    /// (NXDOMAIN or no TXT record).
    fn txt(&mut self, name: &str) -> Result<Vec<String>, LookupFailed>;
}

/// Why the DNS resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up DNS lookups ({0}); pass --resolver ADDR, or --no-dns to map hops from BGP data only"
)]
pub struct ResolverSetupError(String);

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
        // One attempt: a failure is not stored, so the next report asks again.
        options.attempts = 1;
        // Answers come from DNS, never from this host's /etc/hosts.
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
                    // A TXT record may be split in several strings: they are one text.
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
