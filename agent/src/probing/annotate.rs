//! Hop annotation: the name (PTR) of the addresses a trace saw, looked up over
//! DNS beside the probing, never in its way.
//!
//! An [`Annotator`] owns a background task fed by a bounded queue. Asking for
//! an address ([`Annotator::request`]) never waits: when the queue is full the
//! request is dropped and counted, so a slow or dead resolver costs names, not
//! probes. Answers (and negative answers) are cached for a TTL;
//! [`Annotator::annotate`] requests every hop address of a trace, waits at most
//! a given time, and fills the trace's `annotations` from the cache.
//!
//! Names only: which AS a hop belongs to is the collector's to decide, from BGP
//! data and its own lookups; it never takes an AS from an agent (a volunteer's
//! agent could forge one), so the agent does not ask Team Cymru either.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use nkpath_proto::{AnnotationSource, HopAnnotation, TraceResult};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

/// Default bound on one DNS query.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Default time an answer stays cached.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_hours(1);

/// Default capacity of the request queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

/// Default number of addresses looked up at once.
pub const DEFAULT_CONCURRENT_LOOKUPS: usize = 32;

/// A lookup that failed (timeout, SERVFAIL, refused) is retried after this
/// long at most, instead of being trusted for the whole cache TTL.
const FAILURE_TTL: Duration = Duration::from_mins(5);

/// Past this many cached addresses, expired entries are purged on insert.
const CACHE_SOFT_LIMIT: usize = 1 << 16;

/// Errors setting up the annotator.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    /// The resolver could not be configured (e.g. no readable /etc/resolv.conf).
    #[error("cannot set up the DNS resolver: {0}\nhint: pass the resolver's address explicitly")]
    Resolver(#[source] NetError),
    /// Bad settings.
    #[error("{0}")]
    Settings(String),
}

/// How the annotator resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotatorConfig {
    /// The DNS server to ask; `None` uses the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// Bound on each query.
    pub query_timeout: Duration,
    /// How long answers, including "no such record", stay cached.
    pub cache_ttl: Duration,
    /// Requests waiting for the background task at most; more are dropped.
    pub queue_capacity: usize,
    /// Addresses looked up at once.
    pub concurrent_lookups: usize,
}

impl Default for AnnotatorConfig {
    fn default() -> Self {
        Self {
            resolver: None,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            concurrent_lookups: DEFAULT_CONCURRENT_LOOKUPS,
        }
    }
}

impl AnnotatorConfig {
    fn validate(&self) -> Result<(), AnnotateError> {
        let bad = |what: &str| {
            Err(AnnotateError::Settings(format!(
                "annotator: {what} must be positive"
            )))
        };
        if self.query_timeout.is_zero() {
            return bad("the query timeout");
        }
        if self.cache_ttl.is_zero() {
            return bad("the cache TTL");
        }
        if self.queue_capacity == 0 {
            return bad("the queue capacity");
        }
        if self.concurrent_lookups == 0 {
            return bad("the number of concurrent lookups");
        }
        Ok(())
    }
}

/// The outcome of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer<T> {
    /// The record, and when it came.
    Found(T, OffsetDateTime),
    /// The server said there is no such record.
    Absent,
    /// No usable answer: timeout, server failure, unparsable record.
    Failed,
}

impl<T> Answer<T> {
    fn failed(&self) -> bool {
        matches!(self, Answer::Failed)
    }
}

/// The lookup of one address: its PTR name.
type Resolved = Answer<String>;

/// What is known of one address, one annotation per source that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotations {
    /// From the PTR record: `name` set, `asn` None.
    pub ptr: Option<HopAnnotation>,
}

impl Annotations {
    fn of(address: Ipv4Addr, resolved: &Resolved) -> Self {
        let ptr = match resolved {
            Answer::Found(name, at) => Some(HopAnnotation {
                address,
                name: Some(name.clone()),
                asn: None,
                source: AnnotationSource::Ptr,
                resolved_at: *at,
            }),
            _ => None,
        };
        Self { ptr }
    }

    /// The annotations.
    pub fn into_vec(self) -> Vec<HopAnnotation> {
        self.ptr.into_iter().collect()
    }
}

/// Answers with their expiry. Pure: every call takes the current time.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<Ipv4Addr, (Resolved, Instant)>,
}

impl Cache {
    fn get(&self, addr: Ipv4Addr, now: Instant) -> Option<&Resolved> {
        self.entries
            .get(&addr)
            .filter(|(_, expires)| *expires > now)
            .map(|(resolved, _)| resolved)
    }

    fn insert(&mut self, addr: Ipv4Addr, resolved: Resolved, now: Instant, ttl: Duration) {
        // A failure is retried sooner: the resolver may be back.
        let ttl = if resolved.failed() {
            ttl.min(FAILURE_TTL)
        } else {
            ttl
        };
        if self.entries.len() >= CACHE_SOFT_LIMIT {
            self.entries.retain(|_, (_, expires)| *expires > now);
        }
        self.entries.insert(addr, (resolved, now + ttl));
    }
}

#[derive(Debug, Default)]
struct State {
    cache: Cache,
    /// Addresses queued or being looked up.
    pending: HashSet<Ipv4Addr>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken whenever an answer is stored.
    stored: Notify,
    dropped: AtomicU64,
    cache_ttl: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent under every early exit: a panic elsewhere is no reason to stop annotating.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(&self, addr: Ipv4Addr, resolved: Resolved) {
        {
            let mut state = self.lock();
            state
                .cache
                .insert(addr, resolved, Instant::now(), self.cache_ttl);
            state.pending.remove(&addr);
        }
        self.stored.notify_waiters();
    }
}

/// The DNS question the annotator asks, behind a trait so that the queue and
/// cache are tested without a network.
trait Lookups: Send + Sync + 'static {
    /// The PTR name of `addr`.
    fn ptr(&self, addr: Ipv4Addr) -> impl Future<Output = Answer<String>> + Send;
}

/// What an [`Annotator::annotate`] call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnotateSummary {
    /// Distinct addresses in the trace's hops.
    pub addresses: usize,
    /// Of these, how many had their lookup finished (answered or not) in time.
    pub resolved: usize,
}

/// Looks up names of hop addresses in the background.
///
/// Create it inside the tokio runtime that will use it (it spawns its task
/// there); it needs no privilege, so it may come after the privilege drop. The
/// background task ends when the annotator is dropped.
#[derive(Debug)]
pub struct Annotator {
    requests: mpsc::Sender<Ipv4Addr>,
    shared: Arc<Shared>,
}

impl Annotator {
    /// An annotator asking `config.resolver` (or the system's resolver).
    pub fn new(config: &AnnotatorConfig) -> Result<Self, AnnotateError> {
        config.validate()?;
        let resolver = build_resolver(config)?;
        Ok(Self::with_lookups(
            config,
            HickoryLookups {
                resolver,
                timeout: config.query_timeout,
            },
        ))
    }

    fn with_lookups(config: &AnnotatorConfig, lookups: impl Lookups) -> Self {
        let (requests, queue) = mpsc::channel(config.queue_capacity);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stored: Notify::new(),
            dropped: AtomicU64::new(0),
            cache_ttl: config.cache_ttl,
        });
        tokio::spawn(work(
            Arc::new(lookups),
            queue,
            Arc::clone(&shared),
            config.query_timeout,
            config.concurrent_lookups,
        ));
        Self { requests, shared }
    }

    /// Asks for `addr` to be looked up, without ever waiting. Returns false when
    /// the request was dropped because the queue is full (see [`Self::dropped`]);
    /// true when it was queued, or is already cached or on its way.
    pub fn request(&self, addr: Ipv4Addr) -> bool {
        {
            let mut state = self.shared.lock();
            if state.pending.contains(&addr) || state.cache.get(addr, Instant::now()).is_some() {
                return true;
            }
            state.pending.insert(addr);
        }
        if self.requests.try_send(addr).is_ok() {
            return true;
        }
        self.shared.lock().pending.remove(&addr);
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%addr, "annotation request dropped: the DNS queue is full");
        false
    }

    /// What the cache holds for `addr`: `None` while no lookup has finished
    /// (or the answer expired); otherwise the annotations of the sources that
    /// answered, possibly none.
    pub fn lookup_now(&self, addr: Ipv4Addr) -> Option<Annotations> {
        self.shared
            .lock()
            .cache
            .get(addr, Instant::now())
            .map(|resolved| Annotations::of(addr, resolved))
    }

    /// Requests dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Requests every hop address of `trace`, waits at most `wait` for their
    /// lookups, and replaces `trace.annotations` with what is known then: per
    /// address in hop order, a PTR annotation when the
    /// source answered. Lookups still running go on and fill the cache.
    pub async fn annotate(&self, trace: &mut TraceResult, wait: Duration) -> AnnotateSummary {
        let addresses = hop_addresses(trace);
        for &addr in &addresses {
            self.request(addr);
        }
        let deadline = Instant::now() + wait;
        loop {
            // Registered before checking, so that an answer stored in between still wakes us.
            let stored = self.shared.stored.notified();
            tokio::pin!(stored);
            stored.as_mut().enable();
            if self.settled(&addresses) {
                break;
            }
            if tokio::time::timeout_at(deadline, stored).await.is_err() {
                break;
            }
        }
        let known: Vec<Annotations> = addresses
            .iter()
            .filter_map(|&a| self.lookup_now(a))
            .collect();
        let summary = AnnotateSummary {
            addresses: addresses.len(),
            resolved: known.len(),
        };
        trace.annotations = known.into_iter().flat_map(Annotations::into_vec).collect();
        summary
    }

    /// Whether nothing more will come for these addresses: each is cached, or
    /// is not pending (its request was dropped).
    fn settled(&self, addresses: &[Ipv4Addr]) -> bool {
        let state = self.shared.lock();
        let now = Instant::now();
        addresses
            .iter()
            .all(|&a| state.cache.get(a, now).is_some() || !state.pending.contains(&a))
    }
}

/// Every address that answered in the trace, each once, in hop order.
fn hop_addresses(trace: &TraceResult) -> Vec<Ipv4Addr> {
    let mut seen = HashSet::new();
    trace
        .hops
        .iter()
        .flat_map(nkpath_proto::Hop::addresses)
        .filter(|&a| seen.insert(a))
        .collect()
}

/// The background task: takes requests off the queue and looks them up, at
/// most `concurrency` addresses at once. While all slots are busy the queue
/// fills, and further requests are dropped by [`Annotator::request`].
async fn work(
    lookups: Arc<impl Lookups>,
    mut queue: mpsc::Receiver<Ipv4Addr>,
    shared: Arc<Shared>,
    timeout: Duration,
    concurrency: usize,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    while let Some(addr) = queue.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let lookups = Arc::clone(&lookups);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let ptr = bounded(timeout, lookups.ptr(addr)).await;
            shared.store(addr, ptr);
            drop(slot);
        });
    }
}

/// A lookup that takes longer than `timeout` has failed.
async fn bounded<T>(timeout: Duration, lookup: impl Future<Output = Answer<T>>) -> Answer<T> {
    tokio::time::timeout(timeout, lookup)
        .await
        .unwrap_or(Answer::Failed)
}

/// The lookups done with hickory-resolver.
struct HickoryLookups {
    resolver: TokioResolver,
    timeout: Duration,
}

fn build_resolver(config: &AnnotatorConfig) -> Result<TokioResolver, AnnotateError> {
    let mut builder = match config.resolver {
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
        None => TokioResolver::builder_tokio().map_err(AnnotateError::Resolver)?,
    };
    let options = builder.options_mut();
    options.timeout = config.query_timeout;
    // One attempt: the next round asks again, and a dead resolver must cost little.
    options.attempts = 1;
    // Answers come from DNS, never from this host's /etc/hosts.
    options.use_hosts_file = ResolveHosts::Never;
    builder.build().map_err(AnnotateError::Resolver)
}

impl Lookups for HickoryLookups {
    async fn ptr(&self, addr: Ipv4Addr) -> Answer<String> {
        match self.resolver.reverse_lookup(IpAddr::V4(addr)).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .find_map(|record| match &record.data {
                    RData::PTR(ptr) => Some(ptr.0.to_ascii().trim_end_matches('.').to_owned()),
                    _ => None,
                })
                .filter(|name| !name.is_empty())
                .map_or(Answer::Absent, |name| {
                    Answer::Found(name, OffsetDateTime::now_utc())
                }),
            Err(e) => negative(&e, addr, "PTR", self.timeout),
        }
    }
}

fn negative<T>(e: &NetError, addr: Ipv4Addr, what: &str, timeout: Duration) -> Answer<T> {
    if e.is_no_records_found() {
        Answer::Absent
    } else {
        tracing::debug!(%addr, ?timeout, "{what} lookup failed: {e}");
        Answer::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkpath_proto::{
        FlowId, Hop, Probe, ProbeParams, Protocol, Reply, SCHEMA_VERSION, StopReason,
    };
    use uuid::Uuid;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn found() -> Resolved {
        Answer::Found("r1.example.net".into(), OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn cache_entries_expire_after_the_ttl() {
        let now = Instant::now();
        let mut cache = Cache::default();
        cache.insert(ip("192.0.2.1"), found(), now, Duration::from_hours(1));
        assert!(
            cache
                .get(ip("192.0.2.1"), now + Duration::from_secs(3599))
                .is_some()
        );
        assert!(
            cache
                .get(ip("192.0.2.1"), now + Duration::from_hours(1))
                .is_none()
        );
        assert!(cache.get(ip("192.0.2.2"), now).is_none());
    }

    #[test]
    fn failures_are_cached_for_a_shorter_time() {
        let now = Instant::now();
        let mut cache = Cache::default();
        cache.insert(
            ip("192.0.2.1"),
            Answer::Failed,
            now,
            Duration::from_hours(1),
        );
        assert!(
            cache
                .get(ip("192.0.2.1"), now + FAILURE_TTL - Duration::from_secs(1))
                .is_some()
        );
        assert!(cache.get(ip("192.0.2.1"), now + FAILURE_TTL).is_none());
    }

    /// Lookups that answer at once from a table, counting the questions.
    #[derive(Default)]
    struct Table {
        names: HashMap<Ipv4Addr, String>,
        asked: Mutex<Vec<Ipv4Addr>>,
    }

    impl Lookups for Table {
        async fn ptr(&self, addr: Ipv4Addr) -> Answer<String> {
            self.asked.lock().unwrap().push(addr);
            self.names.get(&addr).map_or(Answer::Absent, |n| {
                Answer::Found(n.clone(), OffsetDateTime::now_utc())
            })
        }
    }

    impl Lookups for Arc<Table> {
        fn ptr(&self, addr: Ipv4Addr) -> impl Future<Output = Answer<String>> + Send {
            Table::ptr(self, addr)
        }
    }

    /// A resolver that never answers.
    struct Dead;

    impl Lookups for Dead {
        async fn ptr(&self, _: Ipv4Addr) -> Answer<String> {
            std::future::pending().await
        }
    }

    fn config(queue_capacity: usize, concurrent_lookups: usize) -> AnnotatorConfig {
        AnnotatorConfig {
            queue_capacity,
            concurrent_lookups,
            ..AnnotatorConfig::default()
        }
    }

    #[tokio::test]
    async fn full_queue_drops_requests_instead_of_blocking() {
        // One lookup slot, stuck forever; a queue of 4.
        let annotator = Annotator::with_lookups(&config(4, 1), Dead);
        let addrs: Vec<Ipv4Addr> = (1..=100).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
        let accepted = addrs.iter().filter(|&&a| annotator.request(a)).count();
        // Let the worker take what it can, then try again: still nothing blocks.
        tokio::task::yield_now().await;
        let accepted_later = addrs.iter().filter(|&&a| annotator.request(a)).count();
        // At most the queue plus what the worker holds (one looking up, one waiting for the slot).
        assert!((4..=6).contains(&accepted), "{accepted}");
        assert!((4..=6).contains(&accepted_later), "{accepted_later}");
        assert_eq!(
            annotator.dropped(),
            (200 - accepted - accepted_later) as u64
        );
        assert!(annotator.lookup_now(addrs[0]).is_none());
    }

    #[tokio::test]
    async fn repeated_requests_are_asked_once_and_served_from_the_cache() {
        let table = Arc::new(Table {
            names: HashMap::from([(ip("192.0.2.1"), "a.example".to_owned())]),
            ..Table::default()
        });
        let annotator = Annotator::with_lookups(&AnnotatorConfig::default(), Arc::clone(&table));
        for _ in 0..5 {
            assert!(annotator.request(ip("192.0.2.1")));
        }
        let mut trace = trace_through(&[ip("192.0.2.1")]);
        annotator.annotate(&mut trace, Duration::from_secs(5)).await;
        annotator.annotate(&mut trace, Duration::from_secs(5)).await;
        assert_eq!(*table.asked.lock().unwrap(), vec![ip("192.0.2.1")]);
        let known = annotator.lookup_now(ip("192.0.2.1")).unwrap();
        assert_eq!(known.ptr.unwrap().name.as_deref(), Some("a.example"));
    }

    fn trace_through(addrs: &[Ipv4Addr]) -> TraceResult {
        let reply = |address| Reply {
            address,
            rtt_us: 1000,
            reply_ttl: 60,
            icmp_type: Some(11),
            icmp_code: Some(0),
            tcp_flags: None,
            quoted_ttl: Some(1),
            mpls_labels: Vec::new(),
        };
        TraceResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::nil(),
            agent_id: "t".into(),
            agent_version: "0".into(),
            round_id: Uuid::nil(),
            source: ip("192.0.2.254"),
            target: ip("175.45.176.1"),
            protocol: Protocol::Icmp,
            flow: FlowId::Icmp {
                icmp_type: 8,
                icmp_code: 0,
                checksum: 1,
            },
            params: ProbeParams {
                attempts: 2,
                timeout_ms: 1000,
                gap_limit: 3,
                first_ttl: 1,
                max_ttl: 30,
                pps: 100,
                per_prefix_pps: 10,
            },
            started_at: OffsetDateTime::UNIX_EPOCH,
            hops: addrs
                .iter()
                .enumerate()
                .map(|(i, &a)| Hop {
                    ttl: i as u8 + 1,
                    // Twice per hop, plus a silent probe: each address is still annotated once.
                    probes: vec![
                        Probe {
                            attempt: 0,
                            sent_at_us: 0,
                            reply: Some(reply(a)),
                        },
                        Probe {
                            attempt: 1,
                            sent_at_us: 0,
                            reply: None,
                        },
                        Probe {
                            attempt: 2,
                            sent_at_us: 0,
                            reply: Some(reply(a)),
                        },
                    ],
                    inherited: None,
                })
                .collect(),
            stop_reason: StopReason::Reached,
            annotations: Vec::new(),
            source_stop: None,
        }
    }

    #[tokio::test]
    async fn annotate_fills_one_name_per_address_in_hop_order() {
        let (r1, r2, target) = (ip("198.51.100.1"), ip("203.0.113.9"), ip("175.45.176.1"));
        let table = Table {
            names: HashMap::from([
                (r1, "to-cu.nkbr.kptc.nkpath.test".to_owned()),
                (r2, "r2.example".to_owned()),
            ]),
            ..Table::default()
        };
        let annotator = Annotator::with_lookups(&AnnotatorConfig::default(), table);
        let mut trace = trace_through(&[r1, r2, r1, target]);
        let summary = annotator.annotate(&mut trace, Duration::from_secs(5)).await;
        assert_eq!(
            summary,
            AnnotateSummary {
                addresses: 3,
                resolved: 3
            }
        );
        let got: Vec<(Ipv4Addr, Option<&str>, Option<u32>, AnnotationSource)> = trace
            .annotations
            .iter()
            .map(|a| (a.address, a.name.as_deref(), a.asn, a.source))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    r1,
                    Some("to-cu.nkbr.kptc.nkpath.test"),
                    None,
                    AnnotationSource::Ptr
                ),
                (r2, Some("r2.example"), None, AnnotationSource::Ptr),
            ]
        );
    }

    #[tokio::test]
    async fn annotate_gives_up_after_the_wait_with_a_dead_resolver() {
        let annotator = Annotator::with_lookups(&AnnotatorConfig::default(), Dead);
        let mut trace = trace_through(&[ip("198.51.100.1"), ip("198.51.100.2")]);
        let started = Instant::now();
        let summary = annotator
            .annotate(&mut trace, Duration::from_millis(50))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(
            summary,
            AnnotateSummary {
                addresses: 2,
                resolved: 0
            }
        );
        assert!(trace.annotations.is_empty());
    }

    #[tokio::test]
    async fn a_lookup_slower_than_the_query_timeout_counts_as_failed() {
        let config = AnnotatorConfig {
            query_timeout: Duration::from_millis(20),
            ..AnnotatorConfig::default()
        };
        let annotator = Annotator::with_lookups(&config, Dead);
        let mut trace = trace_through(&[ip("198.51.100.1")]);
        let summary = annotator
            .annotate(&mut trace, Duration::from_secs(10))
            .await;
        // Settled long before the 10 s wait: the query timeout bounds each lookup.
        assert_eq!(
            summary,
            AnnotateSummary {
                addresses: 1,
                resolved: 1
            }
        );
        assert!(trace.annotations.is_empty());
        assert_eq!(
            annotator.lookup_now(ip("198.51.100.1")),
            Some(Annotations { ptr: None })
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(AnnotatorConfig::default().validate().is_ok());
        assert!(config(0, 1).validate().is_err());
        assert!(config(1, 0).validate().is_err());
        let zero_timeout = AnnotatorConfig {
            query_timeout: Duration::ZERO,
            ..AnnotatorConfig::default()
        };
        assert!(zero_timeout.validate().is_err());
    }
}
