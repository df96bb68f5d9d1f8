//! Running one multipath trace over a [`Network`]: builds the probes the
//! [`Mda`] asks for, sends them through the agent's [`Pacer`] (the global and
//! per-/24 rate caps) and the network's allowlist check, matches the replies,
//! times out the rest, and stops at the probe and time budget.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use nkpath_proto::{
    FlowId, MultipathParams, MultipathResult, Protocol, SCHEMA_VERSION, StopReason,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::algorithm::{Mda, MdaSettings, Step, Want};
use super::rule::Confidence;
use crate::probing::engine::{self, AgentIdentity, EngineError, PARIS_ICMP_IDS};
use crate::probing::network::{Network, SocketError};
use crate::probing::pacing::Pacer;
use crate::probing::packet::{self, Flow, Port, ProbeIdentity, ProbeSpec, TimeToLive};

/// Default probe budget of one multipath trace.
pub const DEFAULT_MAX_PROBES: u32 = 3_000;

/// Default time budget of one multipath trace.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_mins(5);

/// Most probes one trace can tell apart: a probe's identity is 16 bits, and
/// 0 is not a valid UDP identity.
pub const MAX_PROBES_CEILING: u32 = u16::MAX as u32;

/// How one multipath trace probes.
#[derive(Debug, Clone)]
pub struct MdaConfig {
    /// Probe protocol.
    pub protocol: Protocol,
    /// Destination port for UDP and TCP.
    pub dst_port: u16,
    /// The stopping rule's confidence.
    pub confidence: Confidence,
    /// How long to wait for each probe's reply.
    pub timeout: Duration,
    /// The first TTL probed.
    pub first_ttl: u8,
    /// The last TTL probed.
    pub max_ttl: u8,
    /// Consecutive silent TTLs that end the trace.
    pub gap_limit: u8,
    /// Most probes the trace may send; reaching it ends the trace, flagged.
    pub max_probes: u32,
    /// Longest the trace may run; reaching it ends the trace, flagged.
    pub max_time: Duration,
    /// The seed the flow identifiers are drawn from: the same seed probes the
    /// same flows, so that runs are repeatable.
    pub seed: u64,
    /// Who is probing.
    pub identity: AgentIdentity,
    /// The round the trace belongs to.
    pub round_id: Uuid,
}

impl MdaConfig {
    /// Checks the settings; the error names what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.first_ttl == 0 || self.first_ttl > self.max_ttl {
            return Err(format!(
                "the first TTL ({}) must lie in 1..=max TTL ({})",
                self.first_ttl, self.max_ttl
            ));
        }
        if !nkpath_proto::limits::MAX_TTL.contains(&self.max_ttl) {
            return Err(format!("the max TTL ({}) must lie in 1..=64", self.max_ttl));
        }
        if !(1..=MAX_PROBES_CEILING).contains(&self.max_probes) {
            return Err(format!(
                "--max-probes {} must lie in 1..={MAX_PROBES_CEILING}",
                self.max_probes
            ));
        }
        let seconds = self.max_time.as_secs();
        if !(1..=u64::from(*nkpath_proto::limits::MDA_MAX_SECONDS.end())).contains(&seconds) {
            return Err(format!(
                "--max-seconds {seconds} must lie in 1..={}",
                nkpath_proto::limits::MDA_MAX_SECONDS.end()
            ));
        }
        if self.gap_limit == 0 {
            return Err("the gap limit must be at least 1".into());
        }
        Ok(())
    }
}

/// The flow identifiers of one trace, drawn from the seed: UDP and TCP vary
/// the source port, ICMP the checksum (the field a balancer hashes; the
/// payload's compensation word pins each probe's checksum to its flow's).
#[derive(Debug)]
struct Flows {
    protocol: Protocol,
    dst_port: u16,
    icmp_identifier: u16,
    seq_base: u32,
    /// Where the sequence of flow values starts, and its stride (odd, so
    /// that consecutive flows never repeat a value within 2^16).
    start: u16,
    created: Vec<Flow>,
}

/// Source ports of UDP and TCP flows: 2^14 ports of the dynamic range, so
/// that 2^14 consecutive flows never share one.
const PORT_BASE: u16 = 32_768;
const PORT_SPAN: u16 = 1 << 14;
/// Odd, so that `start + i × STRIDE` repeats no value within 2^16 flows (nor its
/// low 14 bits within 2^14).
const STRIDE: u16 = 0x9e37;

impl Flows {
    fn new(cfg: &MdaConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            protocol: cfg.protocol,
            dst_port: cfg.dst_port,
            icmp_identifier: rng.random_range(PARIS_ICMP_IDS),
            seq_base: rng.random(),
            start: rng.random(),
            created: Vec::new(),
        }
    }

    /// Flow `index`, creating those up to it.
    fn get(&mut self, index: u32) -> Flow {
        while self.created.len() <= index as usize {
            let i = self.created.len() as u16;
            let value = self.start.wrapping_add(i.wrapping_mul(STRIDE));
            let port = Port(PORT_BASE + value % PORT_SPAN);
            let flow = match self.protocol {
                Protocol::Icmp => Flow::Icmp {
                    identifier: self.icmp_identifier,
                    checksum: value,
                },
                Protocol::Udp => Flow::Udp {
                    src_port: port,
                    dst_port: Port(self.dst_port),
                },
                Protocol::Tcp => Flow::Tcp {
                    src_port: port,
                    dst_port: Port(self.dst_port),
                    seq_base: self.seq_base,
                },
            };
            self.created.push(flow);
        }
        self.created[index as usize]
    }
}

/// A received reply, parsed, with its arrival time.
struct Arrival {
    at: Instant,
    reply: Result<packet::Reply, packet::PacketError>,
}

/// Runs one multipath trace toward `target`. Every probe draws from `pacer`
/// and is checked against the network's allowlist; a target outside it is
/// refused before anything is sent.
pub async fn trace<N: Network>(
    network: Arc<N>,
    target: Ipv4Addr,
    cfg: &MdaConfig,
    pacer: &mut Pacer,
) -> Result<MultipathResult, EngineError> {
    cfg.validate().map_err(EngineError::Settings)?;
    if !network.allowlist().allows(target) {
        return Err(SocketError::NotAllowed(target).into());
    }
    let source = network
        .source_for(target)
        .map_err(|source| EngineError::NoSource { target, source })?;
    let (tx, mut rx) = mpsc::channel::<Arrival>(4096);
    let receivers: Vec<_> = (0..network.channels())
        .map(|channel| tokio::spawn(receive(Arc::clone(&network), channel, tx.clone())))
        .collect();
    drop(tx);
    let mut run = Run {
        network: network.as_ref(),
        target,
        source,
        cfg,
        pacer,
        flows: Flows::new(cfg),
        mda: Mda::new(MdaSettings {
            target,
            confidence: cfg.confidence,
            first_ttl: cfg.first_ttl,
            max_ttl: cfg.max_ttl,
            gap_limit: cfg.gap_limit,
        }),
        sent: 0,
        next_identity: 1,
        buf: vec![0; packet::MAX_PROBE_LEN],
    };
    let wall_start = OffsetDateTime::now_utc();
    let outcome = run.drive(&mut rx).await;
    for r in receivers {
        r.abort();
    }
    let (stop_reason, budget_hit) = outcome?;
    Ok(run.result(wall_start, stop_reason, budget_hit))
}

async fn receive<N: Network>(network: Arc<N>, channel: usize, tx: mpsc::Sender<Arrival>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, at) = match network.recv(channel, &mut buf).await {
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

struct Run<'a, N> {
    network: &'a N,
    target: Ipv4Addr,
    source: Ipv4Addr,
    cfg: &'a MdaConfig,
    pacer: &'a mut Pacer,
    flows: Flows,
    mda: Mda,
    sent: u32,
    next_identity: u16,
    buf: Vec<u8>,
}

/// A probe awaiting its reply.
struct Outstanding {
    want: Want,
    sent_at: Instant,
}

impl<N: Network> Run<'_, N> {
    /// Probes until the MDA is done or a budget ends the trace: the stop
    /// reason, and whether a budget ended it.
    async fn drive(
        &mut self,
        rx: &mut mpsc::Receiver<Arrival>,
    ) -> Result<(StopReason, bool), EngineError> {
        let deadline = Instant::now() + self.cfg.max_time;
        loop {
            let wants = match self.mda.step() {
                Step::Done(reason) => return Ok((reason, false)),
                Step::Probe(wants) => wants,
            };
            let mut outstanding: HashMap<u16, Outstanding> = HashMap::new();
            let mut budget = None;
            for want in wants {
                if self.sent >= self.cfg.max_probes {
                    budget = Some(StopReason::ProbeBudget);
                    break;
                }
                if !self.acquire(want.ttl, deadline).await {
                    budget = Some(StopReason::TimeBudget);
                    break;
                }
                let (identity, sent_at) = self.send(want).await?;
                outstanding.insert(identity, Outstanding { want, sent_at });
            }
            let wait_until = (Instant::now() + self.cfg.timeout).min(deadline);
            while !outstanding.is_empty() {
                let Ok(Some(arrival)) = tokio::time::timeout_at(wait_until, rx.recv()).await else {
                    break;
                };
                self.handle(arrival, &mut outstanding);
            }
            for (_, o) in outstanding {
                self.mda.record(o.want, None);
            }
            if budget.is_none() && Instant::now() >= deadline {
                budget = Some(StopReason::TimeBudget);
            }
            if let Some(reason) = budget {
                return Ok((reason, true));
            }
        }
    }

    /// Waits for the pacer's tokens for a probe with `ttl`; `false` when the
    /// deadline comes first.
    async fn acquire(&mut self, ttl: u8, deadline: Instant) -> bool {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self.pacer.try_acquire(self.target, Some(ttl), now) {
                Ok(()) => return true,
                Err(at) => tokio::time::sleep_until(at.min(deadline)).await,
            }
        }
    }

    async fn send(&mut self, want: Want) -> Result<(u16, Instant), EngineError> {
        let identity = self.next_identity;
        self.next_identity = self.next_identity.wrapping_add(1).max(1);
        let spec = ProbeSpec {
            src: self.source,
            dst: self.target,
            ttl: TimeToLive(want.ttl),
            flow: self.flows.get(want.flow),
            identity: ProbeIdentity(identity),
        };
        let len = packet::build_probe(&spec, &mut self.buf).map_err(|e| {
            EngineError::Settings(format!("cannot build a probe for {}: {e}", spec.dst))
        })?;
        let sent_at = self.network.send(spec.dst, &self.buf[..len]).await?;
        self.sent += 1;
        Ok((identity, sent_at))
    }

    fn handle(&mut self, arrival: Arrival, outstanding: &mut HashMap<u16, Outstanding>) {
        let Ok(reply) = arrival.reply else {
            return;
        };
        if engine::reply_target(&reply) != self.target {
            return;
        }
        let matched = outstanding.iter().find_map(|(&identity, o)| {
            let flow = self.flows.created.get(o.want.flow as usize)?;
            (packet::probe_identity(&reply, flow, self.target) == Some(ProbeIdentity(identity)))
                .then_some(identity)
        });
        let Some(o) = matched.and_then(|identity| outstanding.remove(&identity)) else {
            return;
        };
        let rtt = arrival.at.saturating_duration_since(o.sent_at);
        let (record, class) = engine::to_record(&reply, self.target, rtt);
        if self.network.allowlist().allows(record.address) {
            self.pacer.learn_boundary(self.target, o.want.ttl);
        }
        self.mda.record(o.want, Some((record, class)));
    }

    fn result(
        &mut self,
        started_at: OffsetDateTime,
        stop_reason: StopReason,
        budget_hit: bool,
    ) -> MultipathResult {
        let count = self.mda.flows();
        let flows: Vec<FlowId> = (0..count)
            .map(|i| engine::flow_id(&self.flows.get(i)))
            .collect();
        MultipathResult {
            schema_version: SCHEMA_VERSION,
            result_id: Uuid::new_v4(),
            agent_id: self.cfg.identity.agent_id.clone(),
            agent_version: self.cfg.identity.agent_version.clone(),
            round_id: self.cfg.round_id,
            source: self.source,
            target: self.target,
            protocol: self.cfg.protocol,
            params: MultipathParams {
                confidence: self.cfg.confidence.percent(),
                timeout_ms: u32::try_from(self.cfg.timeout.as_millis()).unwrap_or(u32::MAX),
                first_ttl: self.cfg.first_ttl,
                max_ttl: self.cfg.max_ttl,
                gap_limit: self.cfg.gap_limit,
                max_probes: self.cfg.max_probes,
                max_seconds: u32::try_from(self.cfg.max_time.as_secs()).unwrap_or(u32::MAX),
                pps: self.pacer.rates().pps(),
                per_prefix_pps: self.pacer.rates().per_prefix_pps(),
            },
            started_at,
            flows,
            hops: self.mda.hops(),
            links: self.mda.links(),
            probes_sent: self.sent,
            stop_reason,
            budget_hit,
            annotations: Vec::new(),
            source_stop: None,
        }
    }
}
