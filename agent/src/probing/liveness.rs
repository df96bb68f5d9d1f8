//! Liveness sweeps: which target addresses answer ICMP echo, before tracing.
//!
//! A survey of a /22 traces far fewer addresses when it knows which ones are
//! alive. [`sweep`] pings every target through one [`Pinger`] (a single raw
//! ICMP socket, opened while privileged) under the same [`Pacer`] as the Paris
//! engine, so pings and probes share the global and per-/24 rate caps.
//! [`choose_trace_targets`] then keeps the live addresses plus one address of
//! every silent /24, so that a /24 whose hosts all ignore pings is still traced.
//!
//! # Telling pings from Paris probes
//!
//! The pinger's raw socket sees every ICMP packet that reaches the host,
//! including the echo replies and ICMP errors that answer the Paris engine's
//! ICMP probes, and the engine's raw socket sees the pinger's. They are kept
//! apart by the ICMP identifier: Paris probes use [`PARIS_ICMP_IDS`]
//! (0x8000..=0xffff), pings [`LIVENESS_ICMP_IDS`] (0x0000..=0x7fff).
//! surge-ping hands a packet to a waiting ping only when its (address,
//! identifier, sequence) equals the ping's: for an echo reply the sender, for
//! an ICMP error the quoted destination, identifier and sequence. So a Paris
//! reply can never complete a ping, and the engine drops echo replies whose
//! identifier is not its flow's (see `packet::probe_identity`). On top of that
//! a ping only counts as answered when the packet is an *echo reply* whose
//! source is the target: an ICMP error quoting the ping (unreachable, time
//! exceeded) is a sign of life of a router, not of the target.
//!
//! Every ping also takes a fresh (identifier, sequence) pair from a counter of
//! the [`Pinger`], so a reply that arrives after its ping timed out can never
//! be counted for a later ping to the same address.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nkpath_proto::{PingResult, SCHEMA_VERSION};
use pnet_packet::icmp::IcmpTypes;
use surge_ping::{Client, Config, ICMP, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use crate::probing::engine::{AgentIdentity, PARIS_ICMP_IDS};
use crate::probing::pacing::Pacer;
use crate::probing::targets::{Allowlist, Slash24};

/// The ICMP echo identifiers of liveness pings: the half that Paris probes never use.
pub const LIVENESS_ICMP_IDS: RangeInclusive<u16> = 0x0000..=0x7fff;

// The two ranges must never overlap, or one side could count the other's replies.
const _: () = assert!(*LIVENESS_ICMP_IDS.end() < *PARIS_ICMP_IDS.start());

/// The echo payload: lets an operator who captures our traffic see what it is.
const PAYLOAD: &[u8] = b"nkpath liveness";

/// Default pings per target.
pub const DEFAULT_COUNT: u16 = 1;

/// Default wait for each echo reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Default number of pings awaiting their reply at once.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Errors that stop a sweep.
#[derive(Debug, thiserror::Error)]
pub enum LivenessError {
    /// Opening the ICMP socket failed, usually for lack of CAP_NET_RAW.
    #[error(
        "cannot open the ICMP socket for liveness pings: {0}\n\
         hint: create the pinger before dropping privileges (the agent needs CAP_NET_RAW)"
    )]
    Open(std::io::Error),
    /// The socket opened as an unprivileged ICMP datagram socket, whose
    /// identifiers the kernel picks: they could fall in the Paris range.
    #[error(
        "the ICMP socket for liveness pings is not a raw socket; without CAP_NET_RAW the kernel \
         would choose the echo identifiers, which must stay apart from the Paris probes'"
    )]
    NotRaw,
    /// A target lies outside the allowlist: nothing was sent.
    #[error("refusing to ping {0}: outside the allowlist (nothing was sent)")]
    NotAllowed(Ipv4Addr),
    /// No route toward the targets.
    #[error("cannot find a source address toward {target}: {source}")]
    NoSource {
        /// The target.
        target: Ipv4Addr,
        /// Why.
        source: std::io::Error,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The socket or its receiving task failed: the agent exits and its supervisor restarts it.
    #[error("liveness ping to {target} failed: {source}")]
    Ping {
        /// The target of the failed ping.
        target: Ipv4Addr,
        /// The failure.
        source: SurgeError,
    },
}

/// The one ICMP socket of liveness pings, reused for every ping of every sweep.
///
/// Create it once, at startup, *inside* a tokio runtime context (it registers
/// its socket with the runtime and spawns its receiving task) and *before* the
/// privilege drop (it opens a raw socket, which needs CAP_NET_RAW):
///
/// ```text
/// let sockets = RawSockets::open()?;              // Paris raw sockets
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let pinger = { let _guard = rt.enter(); Pinger::new()? };
/// drop_privileges(user)?;
/// rt.block_on(run(sockets, pinger));
/// ```
///
/// The receiving task runs on that runtime, so the pinger must be used on it.
pub struct Pinger {
    client: Client,
    /// Source of (identifier, sequence) pairs: bits 16..31 (masked to
    /// [`LIVENESS_ICMP_IDS`]) give the identifier, bits 0..16 the sequence.
    next: AtomicU32,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinger")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Pinger {
    /// Opens the raw ICMP socket. Needs CAP_NET_RAW and a tokio runtime context.
    pub fn new() -> Result<Self, LivenessError> {
        let config = Config::builder()
            .kind(ICMP::V4)
            .sock_type_hint(socket2::Type::RAW)
            .build();
        let client = Client::new(&config).map_err(LivenessError::Open)?;
        // surge-ping falls back to a datagram socket when the raw one cannot be
        // opened; refuse that: the kernel would choose the identifiers.
        if client.get_socket().get_type() != socket2::Type::RAW {
            return Err(LivenessError::NotRaw);
        }
        // A random start, so that two agents on one host rarely share pairs.
        Ok(Self {
            client,
            next: AtomicU32::new(rand::random()),
        })
    }

    /// A fresh (identifier, sequence) pair; pairs repeat only after 2^31 pings.
    fn next_ids(&self) -> (PingIdentifier, PingSequence) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        ids_of(n)
    }
}

/// The identifier and sequence numbered `n`.
fn ids_of(n: u32) -> (PingIdentifier, PingSequence) {
    let identifier = (n >> 16) as u16 & *LIVENESS_ICMP_IDS.end();
    (PingIdentifier(identifier), PingSequence(n as u16))
}

/// How a sweep pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepOptions {
    /// Echo requests per target.
    pub count: u16,
    /// Wait for each reply.
    pub timeout: Duration,
    /// Most pings awaiting a reply at once. The pacer, not this, sets the rate.
    pub concurrency: usize,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            count: DEFAULT_COUNT,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl SweepOptions {
    fn validate(&self) -> Result<(), LivenessError> {
        if self.count == 0 {
            return Err(LivenessError::Options(
                "liveness: count must be at least 1".into(),
            ));
        }
        if self.concurrency == 0 {
            return Err(LivenessError::Options(
                "liveness: concurrency must be at least 1".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(LivenessError::Options(
                "liveness: the timeout must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// One echo request waiting for its turn.
#[derive(Debug, Clone, Copy)]
struct Job {
    target: usize,
}

/// What one echo request came to.
struct Outcome {
    target: usize,
    sent_at: Option<OffsetDateTime>,
    rtt: Option<Duration>,
}

/// Per-target tallies while the sweep runs.
#[derive(Default, Clone)]
struct Tally {
    started_at: Option<OffsetDateTime>,
    sent: u32,
    rtts_us: Vec<u32>,
}

/// Pings every target `opts.count` times and returns one result per target, in
/// the order of `targets`.
///
/// Every target is checked against `allowlist` before anything is sent; one
/// outside it fails the whole sweep with [`LivenessError::NotAllowed`]. Every
/// echo request takes a token from `pacer` (global and per-/24, as a packet
/// that goes all the way) and waits for it when refused. Consecutive requests
/// go to different /24s where possible, and the requests of one target are a
/// whole round of the sweep apart.
pub async fn sweep(
    pinger: &Pinger,
    targets: &[Ipv4Addr],
    pacer: &mut Pacer,
    allowlist: &Allowlist,
    opts: &SweepOptions,
    identity: &AgentIdentity,
    round_id: Uuid,
) -> Result<Vec<PingResult>, LivenessError> {
    opts.validate()?;
    if let Some(&outside) = targets.iter().find(|&&t| !allowlist.allows(t)) {
        return Err(LivenessError::NotAllowed(outside));
    }
    let Some(&first) = targets.first() else {
        return Ok(Vec::new());
    };
    let source = crate::probing::sockets::source_address_for(first).map_err(|source| {
        LivenessError::NoSource {
            target: first,
            source,
        }
    })?;

    let mut queues = job_queues(targets, opts.count);
    let mut tallies = vec![Tally::default(); targets.len()];
    let mut running: JoinSet<Result<Outcome, LivenessError>> = JoinSet::new();

    while !queues.is_empty() {
        while running.len() >= opts.concurrency {
            record(&mut tallies, running.join_next().await)?;
        }
        while let Some(done) = running.try_join_next() {
            record(&mut tallies, Some(done))?;
        }
        match next_job(&mut queues, pacer, targets, Instant::now()) {
            Ok(job) => {
                let dst = targets[job.target];
                // Checked again at the last moment: the allowlist is the promise.
                if !allowlist.allows(dst) {
                    return Err(LivenessError::NotAllowed(dst));
                }
                running.spawn(ping_once(
                    pinger.client.clone(),
                    pinger.next_ids(),
                    job,
                    dst,
                    opts.timeout,
                ));
            }
            Err(at) => tokio::time::sleep_until(at).await,
        }
    }
    while let Some(done) = running.join_next().await {
        record(&mut tallies, Some(done))?;
    }

    Ok(targets
        .iter()
        .zip(tallies)
        .map(|(&target, tally)| PingResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: identity.agent_id.clone(),
            agent_version: identity.agent_version.clone(),
            round_id,
            source,
            target,
            started_at: tally.started_at.unwrap_or_else(OffsetDateTime::now_utc),
            sent: tally.sent,
            received: tally.rtts_us.len() as u32,
            rtts_us: tally.rtts_us,
        })
        .collect())
}

/// The jobs, one queue per /24 (in address order), each holding every target's
/// first request, then every target's second, and so on.
fn job_queues(targets: &[Ipv4Addr], count: u16) -> VecDeque<VecDeque<Job>> {
    let mut by_prefix: BTreeMap<Slash24, Vec<usize>> = BTreeMap::new();
    for (i, &t) in targets.iter().enumerate() {
        by_prefix.entry(Slash24::of(t)).or_default().push(i);
    }
    by_prefix
        .into_values()
        .map(|members| {
            (0..count)
                .flat_map(|_| members.iter().map(|&target| Job { target }))
                .collect()
        })
        .collect()
}

/// Takes the next job whose /24 has a token now, visiting the /24s in turn;
/// when none has, tells when to try again.
fn next_job(
    queues: &mut VecDeque<VecDeque<Job>>,
    pacer: &mut Pacer,
    targets: &[Ipv4Addr],
    now: Instant,
) -> Result<Job, Instant> {
    let mut retry_at: Option<Instant> = None;
    for _ in 0..queues.len() {
        let mut queue = queues.pop_front().expect("non-empty: bounded by len");
        let job = *queue.front().expect("empty queues are removed");
        match pacer.try_acquire(targets[job.target], None, now) {
            Ok(()) => {
                queue.pop_front();
                if !queue.is_empty() {
                    queues.push_back(queue);
                }
                return Ok(job);
            }
            Err(at) => {
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
                queues.push_back(queue);
            }
        }
    }
    Err(retry_at.unwrap_or(now))
}

async fn ping_once(
    client: Client,
    (identifier, sequence): (PingIdentifier, PingSequence),
    job: Job,
    dst: Ipv4Addr,
    timeout: Duration,
) -> Result<Outcome, LivenessError> {
    let mut pinger = client.pinger(IpAddr::V4(dst), identifier).await;
    pinger.timeout(timeout);
    let sent_at = OffsetDateTime::now_utc();
    let outcome = |sent: bool, rtt| Outcome {
        target: job.target,
        sent_at: sent.then_some(sent_at),
        rtt,
    };
    match pinger.ping(sequence, PAYLOAD).await {
        Ok((packet, rtt)) => Ok(outcome(
            true,
            is_echo_reply_from(&packet, dst).then_some(rtt),
        )),
        // No reply in time, or the reply channel closed while the client lives.
        Err(SurgeError::Timeout { .. } | SurgeError::NetworkError) => Ok(outcome(true, None)),
        // The send itself failed (no route, refused by a local firewall): nothing left.
        Err(SurgeError::IOError(e)) => {
            tracing::warn!(target = %dst, "liveness ping not sent: {e}");
            Ok(outcome(false, None))
        }
        Err(source) => Err(LivenessError::Ping {
            target: dst,
            source,
        }),
    }
}

/// Whether the packet surge-ping matched to a ping is the target's echo reply
/// (and not, say, a router's ICMP error quoting the ping).
fn is_echo_reply_from(packet: &IcmpPacket, dst: Ipv4Addr) -> bool {
    match packet {
        IcmpPacket::V4(p) => p.get_icmp_type() == IcmpTypes::EchoReply && p.get_source() == dst,
        IcmpPacket::V6(_) => false,
    }
}

fn record(
    tallies: &mut [Tally],
    done: Option<Result<Result<Outcome, LivenessError>, tokio::task::JoinError>>,
) -> Result<(), LivenessError> {
    let Some(joined) = done else { return Ok(()) };
    let outcome = match joined {
        Ok(outcome) => outcome?,
        // A ping task panicked: that is a bug, surface it.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let tally = &mut tallies[outcome.target];
    if let Some(at) = outcome.sent_at {
        tally.sent += 1;
        tally.started_at = Some(tally.started_at.map_or(at, |s| s.min(at)));
    }
    if let Some(rtt) = outcome.rtt {
        tally
            .rtts_us
            .push(u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX));
    }
    Ok(())
}

/// The addresses to trace after a sweep: every target that answered, plus one
/// target of every /24 none of whose targets answered, so that a /24 that
/// ignores pings (or is filtered) is still traced.
///
/// The stand-in for a silent /24 is its lowest target address: deterministic,
/// so that successive rounds trace the same path and changes between rounds
/// are path changes, not a different choice of address. Targets without a ping
/// result count as silent. The result keeps the order of `all_targets`,
/// without duplicates.
pub fn choose_trace_targets(
    ping_results: &[PingResult],
    all_targets: &[Ipv4Addr],
) -> Vec<Ipv4Addr> {
    let alive: HashSet<Ipv4Addr> = ping_results
        .iter()
        .filter(|r| r.is_alive())
        .map(|r| r.target)
        .collect();
    let mut lowest_of_silent: BTreeMap<Slash24, Ipv4Addr> = BTreeMap::new();
    let live_prefixes: HashSet<Slash24> = all_targets
        .iter()
        .filter(|t| alive.contains(t))
        .map(|&t| Slash24::of(t))
        .collect();
    for &t in all_targets {
        let s24 = Slash24::of(t);
        if !live_prefixes.contains(&s24) {
            lowest_of_silent
                .entry(s24)
                .and_modify(|low| *low = (*low).min(t))
                .or_insert(t);
        }
    }
    let stand_ins: HashSet<Ipv4Addr> = lowest_of_silent.into_values().collect();
    let mut seen = HashSet::new();
    all_targets
        .iter()
        .copied()
        .filter(|t| alive.contains(t) || stand_ins.contains(t))
        .filter(|&t| seen.insert(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::pacing::Rates;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn result(target: &str, received: u32) -> PingResult {
        PingResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: "t".into(),
            agent_version: "0".into(),
            round_id: Uuid::nil(),
            source: ip("192.0.2.1"),
            target: ip(target),
            started_at: OffsetDateTime::UNIX_EPOCH,
            sent: 2,
            received,
            rtts_us: vec![100; received as usize],
        }
    }

    #[test]
    fn identifiers_never_enter_the_paris_range() {
        for n in [
            0,
            1,
            0xffff,
            0x1_0000,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_0000,
            u32::MAX,
        ] {
            let (PingIdentifier(id), _) = ids_of(n);
            assert!(LIVENESS_ICMP_IDS.contains(&id), "{n:#x} -> {id:#x}");
            assert!(!PARIS_ICMP_IDS.contains(&id), "{n:#x} -> {id:#x}");
        }
    }

    #[test]
    fn consecutive_pings_get_distinct_pairs() {
        let mut seen = HashSet::new();
        // Across a sequence wrap-around too.
        for n in 0xfff0..0x1_0010u32 {
            let (PingIdentifier(id), PingSequence(seq)) = ids_of(n);
            assert!(seen.insert((id, seq)), "pair repeated at {n:#x}");
        }
    }

    #[test]
    fn live_addresses_and_one_per_silent_slash24_are_traced() {
        let targets: Vec<Ipv4Addr> = [
            "175.45.176.9",
            "175.45.176.3",
            "175.45.176.1", // one live
            "175.45.177.7",
            "175.45.177.2", // silent: lowest stands in
            "175.45.178.5",
            "175.45.178.6", // both live
            "175.45.179.1", // silent, no ping result at all
        ]
        .iter()
        .map(|s| ip(s))
        .collect();
        let results = vec![
            result("175.45.176.9", 0),
            result("175.45.176.3", 2),
            result("175.45.176.1", 0),
            result("175.45.177.7", 0),
            result("175.45.177.2", 0),
            result("175.45.178.5", 1),
            result("175.45.178.6", 2),
        ];
        assert_eq!(
            choose_trace_targets(&results, &targets),
            vec![
                ip("175.45.176.3"),
                ip("175.45.177.2"),
                ip("175.45.178.5"),
                ip("175.45.178.6"),
                ip("175.45.179.1")
            ]
        );
    }

    #[test]
    fn nothing_alive_still_traces_every_slash24_once() {
        let targets = vec![
            ip("175.45.177.200"),
            ip("175.45.176.4"),
            ip("175.45.177.10"),
            ip("175.45.176.4"),
        ];
        let results: Vec<PingResult> = targets.iter().map(|t| result(&t.to_string(), 0)).collect();
        assert_eq!(
            choose_trace_targets(&results, &targets),
            vec![ip("175.45.176.4"), ip("175.45.177.10")]
        );
        assert!(choose_trace_targets(&results, &[]).is_empty());
    }

    #[test]
    fn jobs_alternate_between_slash24s_and_rounds() {
        let targets = [ip("175.45.176.1"), ip("175.45.176.2"), ip("175.45.177.1")];
        let queues = job_queues(&targets, 2);
        let order: Vec<Vec<usize>> = queues
            .iter()
            .map(|q| q.iter().map(|j| j.target).collect())
            .collect();
        assert_eq!(order, vec![vec![0, 1, 0, 1], vec![2, 2]]);
    }

    #[test]
    fn next_job_respects_the_pacer_and_skips_to_other_slash24s() {
        // Per-/24: 1 pps with depth 1; buckets start empty, so a second after
        // the start each /24 has one token.
        let start = Instant::now();
        let mut pacer = Pacer::new(Rates::new(1000, 1).unwrap(), start);
        let now = start + Duration::from_secs(1);
        let targets = [ip("175.45.176.1"), ip("175.45.176.2"), ip("175.45.177.1")];
        let mut queues = job_queues(&targets, 1);
        assert_eq!(
            next_job(&mut queues, &mut pacer, &targets, now)
                .unwrap()
                .target,
            0
        );
        // 176/24 has no token left: the 177/24 job goes first.
        assert_eq!(
            next_job(&mut queues, &mut pacer, &targets, now)
                .unwrap()
                .target,
            2
        );
        let retry = next_job(&mut queues, &mut pacer, &targets, now).unwrap_err();
        assert!(
            retry > now && retry <= now + Duration::from_millis(1001),
            "{retry:?}"
        );
        assert_eq!(
            next_job(&mut queues, &mut pacer, &targets, retry)
                .unwrap()
                .target,
            1
        );
        assert!(queues.is_empty());
    }

    #[test]
    fn bad_options_are_refused() {
        let ok = SweepOptions::default();
        assert!(ok.validate().is_ok());
        assert!(
            SweepOptions {
                count: 0,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            SweepOptions {
                concurrency: 0,
                ..ok.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            SweepOptions {
                timeout: Duration::ZERO,
                ..ok
            }
            .validate()
            .is_err()
        );
    }
}
