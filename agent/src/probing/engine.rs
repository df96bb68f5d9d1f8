//! The probing engine: many Paris traceroutes at once over the raw sockets.
//!
//! One task owns every [`Trace`] and the [`Pacer`]; one receiver task per receive
//! channel of the [`Network`] (the ICMP and TCP sockets) parses what arrives and
//! passes typed replies, with their arrival times, over a channel. The engine is
//! generic over [`Network`], so its scheduling runs in unit tests over a
//! simulated network in virtual time. Each
//! turn of the loop the engine matches replies to probes (from the packet quoted
//! in the ICMP error, or from the echo reply / TCP segment itself — never from
//! timing), expires probes whose wait is over, starts new traces, and sends the
//! probes the traces want in random order, as far as the rate caps and the cap
//! on probes in flight allow.
//!
//! With the stop set on ([`EngineConfig::stop_set`], [`crate::probing::stop_set`]), the
//! first traces of each /24 (its scouts) probe every TTL; the others are held
//! until the scouts are through, then start at the deepest TTL the scouts
//! settled and probe backward only until their own reply meets the stop set.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use nkpath_proto::{
    FlowId, InheritedFrom, Probe, ProbeParams, Protocol, Reply, SCHEMA_VERSION, TraceResult,
};
use rand::Rng;
use rand::seq::SliceRandom;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::probing::network::Network;
use crate::probing::network::SocketError;
use crate::probing::pacing::{Pacer, Rates};
use crate::probing::packet::{self, Flow, Port, ProbeIdentity, ProbeSpec, TimeToLive};
use crate::probing::parking::{self, Exploration, Fate, ParkedTrace, PrefixFacts};
use crate::probing::start_order;
use crate::probing::stop_set::{SCOUTS_PER_PREFIX, StopSet};
use crate::probing::targets::Slash24;
use crate::probing::trace::{
    Below, Disposition, ReplyClass, StopCheck, Trace, TraceSettings, Want,
};

/// The ICMP echo identifiers of Paris probes come from this range; liveness pings
/// use the other half, so neither ever mistakes the other's replies for its own.
pub const PARIS_ICMP_IDS: std::ops::RangeInclusive<u16> = 0x8000..=0xffff;

/// Default destination port of UDP probes (traceroute's first port).
pub const DEFAULT_UDP_PORT: u16 = 33434;

/// Default destination port of TCP SYN probes.
pub const DEFAULT_TCP_PORT: u16 = 80;

/// Default cap on probes in flight.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Who is probing, for the results.
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    /// The agent's id.
    pub agent_id: String,
    /// The agent's version.
    pub agent_version: String,
}

/// A flow chosen by the user instead of at random (for `trace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowChoice {
    /// UDP/TCP source port.
    pub src_port: Option<u16>,
    /// The ICMP checksum that identifies an ICMP flow.
    pub icmp_checksum: Option<u16>,
}

/// How the engine probes.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Probe protocol.
    pub protocol: Protocol,
    /// Destination port for UDP and TCP.
    pub dst_port: u16,
    /// Per-trace settings.
    pub settings: TraceSettings,
    /// Rate caps.
    pub rates: Rates,
    /// Most probes awaiting an answer at once.
    pub max_in_flight: usize,
    /// Who is probing.
    pub identity: AgentIdentity,
    /// The round these traces belong to.
    pub round_id: Uuid,
    /// Flow fixed by the user, if any.
    pub flow: FlowChoice,
    /// Probe the hops a survey's traces share once (Doubletree stop sets, see
    /// [`crate::probing::stop_set`]); off, every trace probes every TTL with its own flow.
    pub stop_set: bool,
}

/// What a run did, for the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Traces run.
    pub targets: usize,
    /// Traces that reached their target.
    pub reached: usize,
    /// Probes sent.
    pub probes_sent: u64,
    /// Replies recorded.
    pub replies: u64,
    /// Replies that matched no probe of ours (other processes' traffic, other flows).
    pub unmatched: u64,
    /// Packets that failed to parse.
    pub malformed: u64,
    /// Second answers to the same probe.
    pub duplicates: u64,
    /// Answers that came after the probe had timed out.
    pub late: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

/// Errors that end a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A socket failed: the agent exits and its supervisor restarts it.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// No route toward the targets.
    #[error("cannot find a source address toward {target}: {source}")]
    NoSource {
        /// The target.
        target: Ipv4Addr,
        /// Why.
        source: std::io::Error,
    },
    /// Bad settings.
    #[error("{0}")]
    Settings(String),
}

/// A received reply, parsed, with its arrival time.
struct Arrival {
    at: Instant,
    reply: Result<packet::Reply, packet::PacketError>,
}

/// One trace with the flow it uses.
struct Slot {
    trace: Trace,
    flow: Flow,
    in_flight: usize,
}

/// Runs one Paris traceroute per target with a pacer of its own and hands each
/// result to `on_result` as soon as it finishes.
pub async fn run<N: Network>(
    sockets: Arc<N>,
    targets: &[Ipv4Addr],
    cfg: &EngineConfig,
    on_result: impl FnMut(TraceResult),
) -> Result<RunStats, EngineError> {
    let mut pacer = Pacer::new(cfg.rates, Instant::now());
    run_paced(sockets, targets, cfg, &mut pacer, on_result).await
}

/// Like [`run`], but with the caller's pacer, so that every packet the agent
/// sends (liveness pings included) draws from the same global and per-/24
/// buckets, and what one round learned about /24 boundaries carries over.
pub async fn run_paced<N: Network>(
    sockets: Arc<N>,
    targets: &[Ipv4Addr],
    cfg: &EngineConfig,
    pacer: &mut Pacer,
    mut on_result: impl FnMut(TraceResult),
) -> Result<RunStats, EngineError> {
    cfg.settings.validate().map_err(EngineError::Settings)?;
    let Some(&first) = targets.first() else {
        return Ok(RunStats::default());
    };
    let source = sockets
        .source_for(first)
        .map_err(|source| EngineError::NoSource {
            target: first,
            source,
        })?;

    let (tx, mut rx) = mpsc::channel::<Arrival>(4096);
    let receivers: Vec<_> = (0..sockets.channels())
        .map(|channel| tokio::spawn(receive(Arc::clone(&sockets), channel, tx.clone())))
        .collect();
    drop(tx);

    let mut engine = Engine::new(source, targets, cfg, sockets.as_ref(), pacer);
    let result = engine.drive(&mut rx, &mut on_result).await;
    for r in receivers {
        r.abort();
    }
    result?;
    engine.stats.probes_sent = sockets.sent();
    Ok(engine.stats)
}

async fn receive<N: Network>(sockets: Arc<N>, channel: usize, tx: mpsc::Sender<Arrival>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, at) = match sockets.recv(channel, &mut buf).await {
            Ok(received) => (received.len, received.at),
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let reply = packet::Reply::parse(&buf[..len]);
        if tx.send(Arrival { at, reply }).await.is_err() {
            return;
        }
    }
}

struct Engine<'a, N> {
    cfg: &'a EngineConfig,
    sockets: &'a N,
    source: Ipv4Addr,
    slots: Vec<Slot>,
    by_target: HashMap<Ipv4Addr, usize>,
    waiting: Vec<usize>,
    active: Vec<usize>,
    parked: Vec<usize>,
    /// Traces per /24 that are waiting or active (neither parked nor done).
    live: HashMap<Slash24, usize>,
    /// Traces per /24 in this run.
    per_prefix: HashMap<Slash24, usize>,
    /// Per /24: the deepest hop from which any of its traces got an answer
    /// ([`crate::probing::trace::answering_hop`]): its horizon.
    deepest: HashMap<Slash24, u8>,
    /// The /24s for which some trace ended on an answer (reached or unreachable).
    ended: HashSet<Slash24>,
    /// Per /24: its pilots past the gap limit at its current horizon.
    explorations: HashMap<Slash24, Exploration>,
    /// The /24s where some trace parked: their traces wait out silent TTLs, so
    /// the rest of them start first (see [`crate::probing::start_order`]).
    slow: HashSet<Slash24>,
    /// What the traces' own probes saw, TTL by TTL, per /24 (stop set on).
    stops: StopSet,
    /// Per /24: its scouts, the traces that probe every TTL (stop set on).
    scouts: HashMap<Slash24, Vec<usize>>,
    /// Traces that have sent nothing, held until their /24's scouts are through.
    held: Vec<usize>,
    in_flight: usize,
    pacer: &'a mut Pacer,
    wall_start: OffsetDateTime,
    start: Instant,
    stats: RunStats,
    buf: Vec<u8>,
}

impl<'a, N: Network> Engine<'a, N> {
    fn new(
        source: Ipv4Addr,
        targets: &[Ipv4Addr],
        cfg: &'a EngineConfig,
        sockets: &'a N,
        pacer: &'a mut Pacer,
    ) -> Self {
        let mut rng = rand::rng();
        let icmp_identifier = rng.random_range(PARIS_ICMP_IDS);
        let slots: Vec<Slot> = targets
            .iter()
            .map(|&t| Slot {
                trace: Trace::new(t, cfg.settings),
                flow: choose_flow(cfg, icmp_identifier, &mut rng),
                in_flight: 0,
            })
            .collect();
        let by_target = targets.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let mut live: HashMap<Slash24, usize> = HashMap::new();
        for &t in targets {
            *live.entry(Slash24::of(t)).or_default() += 1;
        }
        // Start the traces in a random order; `waiting` is popped from the back.
        let mut waiting: Vec<usize> = (0..slots.len()).collect();
        waiting.shuffle(&mut rng);
        let now = Instant::now();
        Self {
            cfg,
            sockets,
            source,
            slots,
            by_target,
            waiting,
            active: Vec::new(),
            parked: Vec::new(),
            per_prefix: live.clone(),
            live,
            deepest: HashMap::new(),
            ended: HashSet::new(),
            explorations: HashMap::new(),
            slow: HashSet::new(),
            stops: StopSet::new(),
            scouts: HashMap::new(),
            held: Vec::new(),
            in_flight: 0,
            pacer,
            wall_start: OffsetDateTime::now_utc(),
            start: now,
            stats: RunStats {
                targets: targets.len(),
                ..RunStats::default()
            },
            buf: vec![0u8; 1500],
        }
    }

    async fn drive(
        &mut self,
        rx: &mut mpsc::Receiver<Arrival>,
        on_result: &mut impl FnMut(TraceResult),
    ) -> Result<(), EngineError> {
        loop {
            while let Ok(arrival) = rx.try_recv() {
                self.handle(arrival);
            }
            let now = Instant::now();
            self.expire(now);
            self.release_held();
            self.start_traces();
            let (sendable, mut wake) = self.collect(now, on_result);
            let settled = self.settle_parked(now, on_result);
            if settled.resumed {
                continue;
            }
            wake = earliest(wake, settled.wake);
            if self.active.is_empty()
                && self.waiting.is_empty()
                && self.parked.is_empty()
                && self.held.is_empty()
            {
                break;
            }
            let sent_any = self.send_some(sendable, &mut wake).await?;
            if sent_any {
                continue;
            }
            let wake = wake.unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                arrival = rx.recv() => match arrival {
                    Some(arrival) => self.handle(arrival),
                    None => return Err(EngineError::Socket(SocketError::Io {
                        op: "receiving",
                        source: std::io::Error::other("receiver tasks ended"),
                    })),
                },
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        self.stats.elapsed = self.start.elapsed();
        Ok(())
    }

    fn expire(&mut self, now: Instant) {
        let mut silent = Vec::new();
        for &i in &self.active {
            let slot = &mut self.slots[i];
            silent.clear();
            let expired = slot.trace.expire_noting(now, &mut silent);
            slot.in_flight -= expired;
            self.in_flight -= expired;
            if self.cfg.stop_set {
                let s24 = Slash24::of(slot.trace.target());
                for &ttl in &silent {
                    self.stops.observe_silence(s24, ttl);
                }
            }
        }
    }

    /// Decides how a trace that has sent nothing starts (stop set on): as one of
    /// its /24's scouts from the first TTL, at the TTL its scouts settled once
    /// they are through, or not yet (`false`: hold it).
    fn may_start(&mut self, i: usize) -> bool {
        let s24 = self.prefix_of(i);
        if !self.cfg.stop_set
            || self.per_prefix.get(&s24).copied().unwrap_or(0) <= SCOUTS_PER_PREFIX
        {
            return true;
        }
        let scouts = self.scouts.entry(s24).or_default();
        if scouts.contains(&i) {
            return true;
        }
        if scouts.len() < SCOUTS_PER_PREFIX {
            scouts.push(i);
            return true;
        }
        if !self.scouts_through(s24) {
            return false;
        }
        let ttl = self.stops.start_ttl(s24, self.cfg.settings.first_ttl);
        self.slots[i].trace.start_at(ttl);
        true
    }

    /// Whether every scout of the /24 has ended or parked: what they settled is
    /// all the other traces can learn from them.
    fn scouts_through(&self, s24: Slash24) -> bool {
        self.scouts.get(&s24).is_some_and(|scouts| {
            scouts.iter().all(|&s| {
                let trace = &self.slots[s].trace;
                trace.stop_reason().is_some() || trace.is_parked()
            })
        })
    }

    /// Held traces whose /24's scouts are through go back to the waiting ones.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        let (release, hold): (Vec<usize>, Vec<usize>) = held
            .into_iter()
            .partition(|&i| self.scouts_through(self.prefix_of(i)));
        self.held = hold;
        self.waiting.extend(release);
    }

    fn start_traces(&mut self) {
        // Keep as many traces active as probes may be in flight: each active trace
        // has at most one probe out at a time in survey mode.
        if self.active.len() >= self.cfg.max_in_flight || self.waiting.is_empty() {
            return;
        }
        let mut active: HashMap<Slash24, usize> = HashMap::new();
        for &i in &self.active {
            *active.entry(self.prefix_of(i)).or_default() += 1;
        }
        let with_work = self.live.values().filter(|&&n| n > 0).count();
        let cap = start_order::slow_prefix_cap(
            self.cfg.max_in_flight,
            with_work,
            self.cfg.rates.per_prefix_pps(),
            self.cfg.settings.timeout,
        );
        while self.active.len() < self.cfg.max_in_flight {
            let slots = &self.slots;
            let Some(k) = start_order::next_start(
                &self.waiting,
                |i| Slash24::of(slots[i].trace.target()),
                &self.slow,
                &active,
                cap,
            ) else {
                break;
            };
            let i = self.waiting.swap_remove(k);
            *active.entry(self.prefix_of(i)).or_default() += 1;
            self.active.push(i);
        }
    }

    fn prefix_of(&self, i: usize) -> Slash24 {
        Slash24::of(self.slots[i].trace.target())
    }

    /// Finishes done traces and lists the (trace, TTL) pairs ready to send.
    fn collect(
        &mut self,
        now: Instant,
        on_result: &mut impl FnMut(TraceResult),
    ) -> (Vec<(usize, u8)>, Option<Instant>) {
        let mut sendable = Vec::new();
        let mut wake: Option<Instant> = None;
        let mut still_active = Vec::with_capacity(self.active.len());
        for i in std::mem::take(&mut self.active) {
            if self.slots[i].trace.unstarted() && !self.may_start(i) {
                // Still live: it waits, like a trace not yet started.
                self.held.push(i);
                continue;
            }
            let stops = PrefixStops {
                set: self.cfg.stop_set.then_some(&self.stops),
                s24: self.prefix_of(i),
            };
            match self.slots[i].trace.want_with(now, &stops) {
                Want::Done => {
                    let result = self.result_of(i);
                    let s24 = Slash24::of(result.target);
                    match result.stop_reason {
                        nkpath_proto::StopReason::Reached => {
                            self.stats.reached += 1;
                            self.ended.insert(s24);
                        }
                        nkpath_proto::StopReason::Unreachable => {
                            self.ended.insert(s24);
                        }
                        _ => {}
                    }
                    self.leave_live(s24);
                    on_result(result);
                }
                Want::Parked => {
                    let s24 = self.prefix_of(i);
                    self.leave_live(s24);
                    self.slow.insert(s24);
                    self.parked.push(i);
                }
                Want::Send { ttl } => {
                    sendable.push((i, ttl));
                    still_active.push(i);
                }
                Want::Wait(at) => {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                    still_active.push(i);
                }
            }
        }
        self.active = still_active;
        (sendable, wake)
    }

    fn leave_live(&mut self, s24: Slash24) {
        if let Some(n) = self.live.get_mut(&s24) {
            *n = n.saturating_sub(1);
        }
    }

    fn make_live(&mut self, i: usize) {
        *self
            .live
            .entry(Slash24::of(self.slots[i].trace.target()))
            .or_default() += 1;
        self.active.push(i);
    }

    /// Decides the fate of parked traces /24 by /24 (see [`crate::probing::parking`]) and
    /// applies it: resumed traces and pilots go back to the active ones, traces
    /// that give up are finished.
    fn settle_parked(&mut self, now: Instant, on_result: &mut impl FnMut(TraceResult)) -> Settled {
        let mut settled = Settled::default();
        if self.parked.is_empty() {
            return settled;
        }
        let mut by_prefix: HashMap<Slash24, Vec<usize>> = HashMap::new();
        for &i in &self.parked {
            by_prefix
                .entry(Slash24::of(self.slots[i].trace.target()))
                .or_default()
                .push(i);
        }
        let patience = parking::patience(self.cfg.settings.timeout);
        let mut still_parked = Vec::new();
        for (s24, traces) in by_prefix {
            let facts = self.facts_of(s24);
            let views: Vec<ParkedTrace> = traces
                .iter()
                .map(|&i| self.parked_view(i, facts.horizon))
                .collect();
            let exploration = self.explorations.entry(s24).or_default();
            let fates = exploration.decide(&facts, &views, patience, now);
            for (i, fate) in traces.into_iter().zip(fates) {
                let trace = &mut self.slots[i].trace;
                match fate {
                    Fate::Resume => {
                        trace.resume(facts.horizon);
                        self.make_live(i);
                        settled.resumed = true;
                    }
                    Fate::Pilot => {
                        trace.force_step();
                        self.make_live(i);
                        settled.resumed = true;
                    }
                    Fate::Wait(until) => {
                        settled.wake = earliest(settled.wake, until);
                        still_parked.push(i);
                    }
                    Fate::GiveUp => {
                        trace.give_up();
                        on_result(self.result_of(i));
                    }
                }
            }
        }
        self.parked = still_parked;
        settled
    }

    /// What the parking decision needs to know about a /24. Starts a new
    /// exploration of it when its horizon moved.
    fn facts_of(&mut self, s24: Slash24) -> PrefixFacts {
        let horizon = self.deepest.get(&s24).copied().unwrap_or(0);
        let exploration = self.explorations.entry(s24).or_default();
        exploration.follow(horizon);
        let pilots_probing = exploration
            .pilots()
            .iter()
            .filter(|&&i| {
                let trace = &self.slots[i].trace;
                !trace.is_parked() && trace.stop_reason().is_none()
            })
            .count();
        let live = self.live.get(&s24).copied().unwrap_or(0);
        PrefixFacts {
            horizon,
            may_pilot: self.may_pilot(s24),
            others_live: live.saturating_sub(pilots_probing),
            pilots_probing,
        }
    }

    fn parked_view(&self, i: usize, horizon: u8) -> ParkedTrace {
        let trace = &self.slots[i].trace;
        ParkedTrace {
            id: i,
            ttl: trace.ttl(),
            may_resume: trace.may_resume(horizon),
            can_force: trace.can_force(),
            parked_since: trace.parked_since().unwrap_or(self.start),
        }
    }

    /// Pilots only make sense in a survey of a /24 whose paths nobody has
    /// followed to their end yet: a lone trace (the `trace` command) keeps the
    /// plain gap limit.
    fn may_pilot(&self, s24: Slash24) -> bool {
        !self.ended.contains(&s24) && self.per_prefix.get(&s24).copied().unwrap_or(0) > 1
    }

    async fn send_some(
        &mut self,
        mut sendable: Vec<(usize, u8)>,
        wake: &mut Option<Instant>,
    ) -> Result<bool, EngineError> {
        // A random order over the (target, TTL) pairs ready now, so that no
        // target, /24 or TTL is favoured and consecutive packets rarely share a path.
        sendable.shuffle(&mut rand::rng());
        let mut sent_any = false;
        for (i, ttl) in sendable {
            if self.in_flight >= self.cfg.max_in_flight {
                break;
            }
            let target = self.slots[i].trace.target();
            // Tokens are taken at the moment of sending, not at the start of the
            // turn: the rate cap holds for packets on the wire.
            match self.pacer.try_acquire(target, Some(ttl), Instant::now()) {
                Ok(()) => {
                    self.send_probe(i, ttl).await?;
                    sent_any = true;
                }
                Err(at) => *wake = Some(wake.map_or(at, |w| w.min(at))),
            }
        }
        Ok(sent_any)
    }

    async fn send_probe(&mut self, i: usize, ttl: u8) -> Result<(), EngineError> {
        let slot = &self.slots[i];
        let spec = ProbeSpec {
            src: self.source,
            dst: slot.trace.target(),
            ttl: TimeToLive(ttl),
            flow: slot.flow,
            identity: ProbeIdentity(slot.trace.next_identity()),
        };
        let len = packet::build_probe(&spec, &mut self.buf).map_err(|e| {
            EngineError::Settings(format!("cannot build a probe for {}: {e}", spec.dst))
        })?;
        let sent_at = self.sockets.send(spec.dst, &self.buf[..len]).await?;
        let slot = &mut self.slots[i];
        slot.trace.sent(ttl, sent_at);
        slot.in_flight += 1;
        self.in_flight += 1;
        Ok(())
    }

    fn handle(&mut self, arrival: Arrival) {
        let reply = match arrival.reply {
            Ok(reply) => reply,
            Err(e) if e.is_malformed() => {
                self.stats.malformed += 1;
                return;
            }
            // Other ICMP messages and other TCP traffic: not ours to count.
            Err(_) => return,
        };
        let target = reply_target(&reply);
        let Some(&i) = self.by_target.get(&target) else {
            self.stats.unmatched += 1;
            return;
        };
        let slot = &mut self.slots[i];
        let Some(ProbeIdentity(identity)) = packet::probe_identity(&reply, &slot.flow, target)
        else {
            self.stats.unmatched += 1;
            return;
        };
        let (Some(sent_at), Some(ttl)) =
            (slot.trace.sent_at(identity), slot.trace.ttl_of(identity))
        else {
            self.stats.unmatched += 1;
            return;
        };
        let (record, class) = to_record(
            &reply,
            target,
            arrival.at.saturating_duration_since(sent_at),
        );
        let from = record.address;
        let hop = crate::probing::trace::answering_hop(ttl, &record);
        let witness = (self.cfg.stop_set && class == ReplyClass::Transit).then(|| {
            let started = slot.trace.first_sent().unwrap_or(sent_at);
            Probe {
                attempt: slot.trace.attempt_of(identity).unwrap_or(1),
                sent_at_us: sent_at.saturating_duration_since(started).as_micros() as u64,
                reply: Some(record.clone()),
            }
        });
        match slot.trace.reply(identity, record, class) {
            Disposition::Recorded => {
                slot.in_flight -= 1;
                self.in_flight -= 1;
                self.stats.replies += 1;
                let deepest = self.deepest.entry(Slash24::of(target)).or_default();
                *deepest = (*deepest).max(hop);
                if self.sockets.allowlist().allows(from) {
                    self.pacer.learn_boundary(target, ttl);
                }
                if let Some(probe) = witness {
                    let from_trace = InheritedFrom {
                        target,
                        flow: flow_id(&self.slots[i].flow),
                    };
                    self.stops
                        .observe_reply(Slash24::of(target), ttl, from, probe, from_trace);
                }
            }
            Disposition::Duplicate => self.stats.duplicates += 1,
            Disposition::Late => self.stats.late += 1,
            Disposition::Unknown => self.stats.unmatched += 1,
        }
    }

    fn result_of(&self, i: usize) -> TraceResult {
        let slot = &self.slots[i];
        let trace = &slot.trace;
        let started_at = trace
            .first_sent()
            .map_or_else(OffsetDateTime::now_utc, |first| {
                self.wall_start + first.saturating_duration_since(self.start)
            });
        let s = trace.settings();
        TraceResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: self.cfg.identity.agent_id.clone(),
            agent_version: self.cfg.identity.agent_version.clone(),
            round_id: self.cfg.round_id,
            source: self.source,
            target: trace.target(),
            protocol: self.cfg.protocol,
            flow: flow_id(&slot.flow),
            params: ProbeParams {
                attempts: s.attempts,
                timeout_ms: s.timeout.as_millis() as u32,
                gap_limit: s.gap_limit,
                first_ttl: s.first_ttl,
                max_ttl: s.max_ttl,
                pps: self.cfg.rates.pps(),
                per_prefix_pps: self.cfg.rates.per_prefix_pps(),
            },
            started_at,
            hops: trace.hops(),
            stop_reason: trace
                .stop_reason()
                .unwrap_or(nkpath_proto::StopReason::Cancelled),
            annotations: Vec::new(),
            source_stop: None,
        }
    }
}

/// The stop set as one trace's /24 sees it; `None` when the stop set is off.
struct PrefixStops<'a> {
    set: Option<&'a StopSet>,
    s24: Slash24,
}

impl StopCheck for PrefixStops<'_> {
    fn inherit_below(&self, ttl: u8, address: Ipv4Addr) -> Option<Below> {
        self.set?.inherit_below(self.s24, ttl, address)
    }
}

/// What settling the parked traces did, for the engine loop.
#[derive(Debug, Default)]
struct Settled {
    /// Some trace resumed probing (as itself or as a pilot).
    resumed: bool,
    /// When a waiting trace's patience ends, the earliest.
    wake: Option<Instant>,
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn choose_flow(cfg: &EngineConfig, icmp_identifier: u16, rng: &mut impl Rng) -> Flow {
    // Source ports above the usual ephemeral ranges' start, away from well-known services.
    let src_port = cfg
        .flow
        .src_port
        .unwrap_or_else(|| rng.random_range(20_000..=60_999));
    match cfg.protocol {
        Protocol::Icmp => Flow::Icmp {
            checksum: cfg.flow.icmp_checksum.unwrap_or_else(|| rng.random()),
            identifier: icmp_identifier,
        },
        Protocol::Udp => Flow::Udp {
            src_port: Port(src_port),
            dst_port: Port(cfg.dst_port),
        },
        Protocol::Tcp => Flow::Tcp {
            src_port: Port(src_port),
            dst_port: Port(cfg.dst_port),
            seq_base: rng.random(),
        },
    }
}

/// The flow as the wire format records it.
pub(crate) fn flow_id(flow: &Flow) -> FlowId {
    match *flow {
        Flow::Icmp { checksum, .. } => FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum,
        },
        Flow::Udp { src_port, dst_port } => FlowId::Udp {
            src_port: src_port.0,
            dst_port: dst_port.0,
        },
        Flow::Tcp {
            src_port, dst_port, ..
        } => FlowId::Tcp {
            src_port: src_port.0,
            dst_port: dst_port.0,
        },
    }
}

/// The target a reply is about: the quoted destination of an ICMP error, or the
/// sender of an echo reply or TCP segment.
pub(crate) fn reply_target(reply: &packet::Reply) -> Ipv4Addr {
    match reply {
        packet::Reply::TimeExceeded { quote, .. }
        | packet::Reply::DestUnreachable { quote, .. } => quote.dst,
        packet::Reply::EchoReply { from, .. } | packet::Reply::Tcp { from, .. } => *from,
    }
}

/// Turns a parsed reply into the wire record and decides what it says about the path.
pub(crate) fn to_record(
    reply: &packet::Reply,
    target: Ipv4Addr,
    rtt: Duration,
) -> (Reply, ReplyClass) {
    let rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
    let from = reply.sender();
    let mut record = Reply::new(from, rtt_us, reply.reply_ttl().0, reply.kind());
    record.quoted_ttl = reply.quote().map(|quote| quote.quoted_ttl.0);
    record.mpls_labels = reply.mpls().iter().copied().map(mpls_label).collect();
    let class = match reply {
        packet::Reply::TimeExceeded { .. } => ReplyClass::Transit,
        // From a router on the way, the probe was refused or had no route; from the target
        // itself (protocol or port unreachable), it arrived.
        packet::Reply::DestUnreachable { .. } if from != target => ReplyClass::Unreachable,
        packet::Reply::DestUnreachable { .. }
        | packet::Reply::EchoReply { .. }
        | packet::Reply::Tcp { .. } => ReplyClass::Reached,
    };
    (record, class)
}

fn mpls_label(entry: packet::MplsLabelEntry) -> nkpath_proto::MplsLabel {
    nkpath_proto::MplsLabel {
        label: entry.label,
        tc: entry.traffic_class,
        bottom_of_stack: entry.bottom_of_stack,
        ttl: entry.ttl.0,
    }
}
