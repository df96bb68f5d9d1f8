//! `nkpath-agent run`: rounds on a schedule, results spooled, uploads in the
//! background.
//!
//! Each round: a liveness sweep of the targets with ICMP echo (when enabled),
//! then Paris traces of the live addresses plus at least one address per /24,
//! all drawing from one [`Pacer`]. Every result goes to the spool the moment it
//! exists, through the [`SpoolWriter`] thread (disk syncs never hold the probing
//! thread back); the uploader sends what is spooled and deletes only what the
//! collector acknowledged. A paused agent (the collector's `pause_until`) and an
//! agent whose spool is full start no round: it never probes what it cannot keep.
//! Nor does an agent whose spool's disk cannot take the round's results
//! ([`Spool::check_room`]): it says so in the log and in `status`, keeps
//! uploading, and probes again once there is room. A round whose results still
//! fail to be stored for lack of space ends there; the agent keeps running.

//!
//! The service room: [`config`] (the configuration file), [`spool`] and [`spool_writer`]
//! (results kept on disk until acknowledged), [`upload`] (to the collector), [`status`]
//! (`nkpath-agent status`), and the round loop here.

pub mod config;
pub mod disk;
pub mod spool;
pub mod spool_writer;
pub mod status;
pub mod upload;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use nkpath_proto::{ResultRecord, StopReason, TraceResult};
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::probing::annotate::AnnotateError;
use crate::probing::annotate::{Annotator, AnnotatorConfig};
use crate::probing::engine::EngineError;
use crate::probing::engine::{self, AgentIdentity, EngineConfig, FlowChoice};
use crate::probing::liveness::LivenessError;
use crate::probing::liveness::{self, Pinger, SweepOptions};
use crate::probing::mda::MdaConfig;
use crate::probing::network::SocketError;
use crate::probing::pacing::Pacer;
use crate::probing::sockets::{AsyncSockets, RawSockets};
use crate::probing::targets::{self, TargetError};
use crate::service::config::{Config, MdaRound};
use crate::service::spool::{RoundSummary, Spool, SpoolError};
use crate::service::spool_writer::{SpoolWriter, WriterGone};
use crate::service::upload::{UploadError, UploaderConfig};

/// How often a full spool is complained about in the log.
const SPOOL_FULL_WARNING_EVERY: Duration = Duration::from_hours(1);

/// How often a waiting agent looks for a pause the collector set meanwhile: a booked round
/// starts within this of its start.
const PAUSE_POLL: Duration = Duration::from_secs(2);

/// How long `--rounds N` waits for the spool to drain before exiting.
const DRAIN_WAIT: Duration = Duration::from_mins(2);

/// Why the service stopped. A socket or spool failure ends the process: its supervisor
/// (systemd) restarts it with fresh sockets, and nothing spooled is lost.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The raw sockets could not be set up for async use.
    #[error(transparent)]
    Sockets(#[from] SocketError),
    /// The spool writer thread could not be started.
    #[error("starting the spool writer thread: {0}")]
    WriterThread(std::io::Error),
    /// The spool writer thread stopped.
    #[error(transparent)]
    WriterGone(#[from] WriterGone),
    /// The DNS annotator could not be started.
    #[error("starting the DNS annotator: {0}")]
    Annotator(#[from] AnnotateError),
    /// The spool failed.
    #[error("spool: {0}")]
    Spool(#[from] SpoolError),
    /// Storing a round's pings or traces failed.
    #[error("spooling {what}: {source}")]
    Spooling {
        /// `pings` or `results`.
        what: &'static str,
        /// Why.
        source: SpoolError,
    },
    /// The targets could not be expanded.
    #[error(transparent)]
    Targets(#[from] TargetError),
    /// The liveness sweep failed.
    #[error("liveness sweep: {0}")]
    Liveness(#[from] LivenessError),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The uploader failed.
    #[error("the uploader failed: {0}")]
    Upload(#[from] UploadError),
    /// The uploader task panicked or was cancelled.
    #[error("the uploader task failed: {0}")]
    UploaderTask(tokio::task::JoinError),
}

impl ServiceError {
    /// Whether the spool failed for lack of disk space (the agent goes on: no round starts
    /// until there is room again).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::Spool(e) | Self::Spooling { source: e, .. } => e.is_disk_full(),
            _ => false,
        }
    }
}

/// Everything `run` needs that had to be prepared while privileged.
pub struct Prepared {
    /// The configuration.
    pub config: Config,
    /// The raw sockets of the Paris engine.
    pub sockets: RawSockets,
    /// The liveness pinger (its raw socket), when liveness is enabled.
    pub pinger: Option<Pinger>,
    /// The spool, opened.
    pub spool: Arc<Spool>,
}

/// Runs rounds until SIGTERM/SIGINT, or until `rounds` rounds are done and
/// their results uploaded (for demos and tests).
pub async fn run(prepared: Prepared, rounds: Option<u32>) -> Result<(), ServiceError> {
    let Prepared {
        config,
        sockets,
        pinger,
        spool,
    } = prepared;
    let sockets = Arc::new(sockets.into_async(config.allowlist.clone())?);
    let writer = SpoolWriter::start(Arc::clone(&spool), spool_writer::DEFAULT_CAPACITY)
        .map_err(ServiceError::WriterThread)?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());

    let uploader_stop = CancellationToken::new();
    let uploader = tokio::spawn(upload::upload_loop(
        Arc::clone(&spool),
        UploaderConfig::from_config(&config),
        uploader_stop.clone(),
    ));
    let annotator = Annotator::new(&AnnotatorConfig {
        resolver: config.dns.resolver,
        query_timeout: config.dns.timeout,
        ..AnnotatorConfig::default()
    })?;

    tracing::info!("{}", config.summary());
    let mut rounds_done = 0u32;
    let mut pacer = Pacer::new(config.probing.rates, Instant::now());
    let mut last_full_warning: Option<Instant> = None;
    // Rounds start `interval ± jitter` after the previous start, whatever the rounds take.
    let mut next_start = Instant::now() + config.schedule.first_delay(&mut rand::rng());
    let mut last_start = OffsetDateTime::now_utc();
    loop {
        if rounds.is_some_and(|n| rounds_done >= n) {
            break;
        }
        if !sleep_until_start(next_start, &spool, last_start, &shutdown).await? {
            break;
        }
        next_start = Instant::now() + config.schedule.next_delay(&mut rand::rng());
        match may_start_round(&config, &spool, &mut last_full_warning)? {
            RoundGate::Go => last_start = OffsetDateTime::now_utc(),
            RoundGate::Skip => continue,
            RoundGate::Paused(until) => {
                // The collector booked this agent's next round to start when the pause
                // ends: start it then, not at the next interval, which may fall into a
                // round booked for other agents.
                let left = (until - OffsetDateTime::now_utc()).unsigned_abs();
                next_start = next_start.min(Instant::now() + left);
                continue;
            }
        }
        let round = Round {
            config: &config,
            sockets: Arc::clone(&sockets),
            pinger: pinger.as_ref(),
            spool: &spool,
            writer: &writer,
            annotator: &annotator,
        };
        match round.run(&mut pacer).await {
            Ok(summary) => {
                tracing::info!(
                    round = %summary.round_id,
                    traces = summary.traces,
                    reached = summary.reached,
                    pings = summary.pings,
                    "round done"
                );
                spool.set_last_round(&summary)?;
            }
            Err(e) if e.is_disk_full() => {
                // What was stored stays; the next round waits for room (`may_start_round`).
                tracing::error!(
                    "{e:#}; the round ends here, the agent goes on and probes again once the spool's disk has room"
                );
                let _ = spool.set_last_error(&format!("{e:#}"));
            }
            Err(e) => {
                // A socket failure ends the process: the supervisor restarts it with fresh sockets.
                let _ = spool.set_last_error(&format!("{e:#}"));
                return Err(e);
            }
        }
        rounds_done += 1;
    }
    // Every result is stored (the writer empties its queue) before the drain
    // counts what is left and before the process exits.
    drop(writer);
    if rounds.is_some() {
        drain(&spool, &shutdown).await;
    }
    uploader_stop.cancel();
    match uploader.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ServiceError::UploaderTask(e)),
    }
}

enum RoundGate {
    Go,
    Skip,
    /// Paused by the collector until then.
    Paused(OffsetDateTime),
}

fn may_start_round(
    config: &Config,
    spool: &Spool,
    last_full_warning: &mut Option<Instant>,
) -> Result<RoundGate, ServiceError> {
    let state = spool.state()?;
    if let Some(until) = state.paused_at(OffsetDateTime::now_utc()) {
        tracing::info!(%until, "paused by the collector: the next round starts when the pause ends");
        return Ok(RoundGate::Paused(until));
    }
    if spool.refresh_full(config.spool.max_results)? {
        let now = Instant::now();
        if last_full_warning.is_none_or(|at| now.duration_since(at) >= SPOOL_FULL_WARNING_EVERY) {
            tracing::warn!(
                max = config.spool.max_results,
                "spool full: not probing until uploads make room (nothing is dropped)"
            );
            *last_full_warning = Some(now);
        }
        return Ok(RoundGate::Skip);
    }
    let targets = targets::expand(
        &upload::effective_targets(config, &state),
        &config.allowlist,
    )?;
    if let Some(short) = spool.check_room(targets.len() as u64)? {
        let now = Instant::now();
        if last_full_warning.is_none_or(|at| now.duration_since(at) >= SPOOL_FULL_WARNING_EVERY) {
            tracing::warn!(
                spool = %spool.path().display(),
                "the spool cannot take a round: {short} (uploads go on)"
            );
            *last_full_warning = Some(now);
        }
        return Ok(RoundGate::Skip);
    }
    if state.disk_short.is_some() {
        tracing::info!("the spool's disk has room again: probing resumes");
        *last_full_warning = None;
    }
    Ok(RoundGate::Go)
}

struct Round<'a> {
    config: &'a Config,
    sockets: Arc<AsyncSockets>,
    pinger: Option<&'a Pinger>,
    spool: &'a Spool,
    writer: &'a SpoolWriter,
    annotator: &'a Annotator,
}

impl Round<'_> {
    /// One multipath trace per /24 of the round, toward the lowest address
    /// traced in it, through the round's pacer; each spooled as it ends.
    async fn multipath(
        &self,
        traced: &[Ipv4Addr],
        engine: &EngineConfig,
        mda: MdaRound,
        pacer: &mut Pacer,
    ) -> Result<(), ServiceError> {
        let mut lowest: std::collections::BTreeMap<targets::Slash24, Ipv4Addr> =
            std::collections::BTreeMap::new();
        for &target in traced {
            let entry = lowest.entry(targets::Slash24::of(target)).or_insert(target);
            *entry = (*entry).min(target);
        }
        for (i, &target) in lowest.values().enumerate() {
            let cfg = MdaConfig {
                protocol: engine.protocol,
                dst_port: engine.dst_port,
                confidence: mda.confidence,
                timeout: engine.settings.timeout,
                first_ttl: engine.settings.first_ttl,
                max_ttl: engine.settings.max_ttl,
                gap_limit: engine.settings.gap_limit,
                max_probes: mda.max_probes,
                max_time: mda.max_time,
                seed: rand::random::<u64>().wrapping_add(i as u64),
                identity: engine.identity.clone(),
                round_id: engine.round_id,
            };
            let result =
                crate::probing::mda::trace(Arc::clone(&self.sockets), target, &cfg, pacer).await?;
            self.writer.put(ResultRecord::Multipath(result))?;
        }
        Ok(())
    }

    async fn run(&self, pacer: &mut Pacer) -> Result<RoundSummary, ServiceError> {
        let config = self.config;
        let round_id = Uuid::new_v4();
        let started_at = OffsetDateTime::now_utc();
        let state = self.spool.state()?;
        let nets = upload::effective_targets(config, &state);
        let all_targets = targets::expand(&nets, &config.allowlist)?;
        let identity = AgentIdentity {
            agent_id: config.agent_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        };

        let mut pings = 0u64;
        let trace_targets: Vec<Ipv4Addr> = match self.pinger {
            Some(pinger) => {
                let options = SweepOptions {
                    count: u16::try_from(config.liveness.pings).unwrap_or(u16::MAX),
                    timeout: config.liveness.timeout,
                    ..SweepOptions::default()
                };
                let results = liveness::sweep(
                    pinger,
                    &all_targets,
                    pacer,
                    &config.allowlist,
                    &options,
                    &identity,
                    round_id,
                )
                .await?;
                let chosen = liveness::choose_trace_targets(&results, &all_targets);
                for ping in results {
                    self.writer.put(ResultRecord::Ping(ping))?;
                }
                // The pings are stored before tracing starts, as before the
                // writer thread: a spool that fails ends the round here.
                let written = self.writer.flush().await?;
                if let Some(e) = written.error {
                    return Err(ServiceError::Spooling {
                        what: "pings",
                        source: e,
                    });
                }
                pings = written.pings;
                chosen
            }
            None => all_targets,
        };

        let engine_config = EngineConfig {
            protocol: config.protocol,
            dst_port: config.port,
            settings: config.probing.trace_settings(),
            rates: config.probing.rates,
            max_in_flight: config.probing.max_in_flight,
            identity,
            round_id,
            flow: FlowChoice::default(),
            stop_set: config.probing.stop_set,
        };
        let mut reached = 0u64;
        let mut writer_gone: Option<spool_writer::WriterGone> = None;
        engine::run_paced(
            Arc::clone(&self.sockets),
            &trace_targets,
            &engine_config,
            pacer,
            |mut trace| {
                annotate_from_cache(self.annotator, &mut trace);
                if trace.stop_reason == StopReason::Reached {
                    reached += 1;
                }
                // Blocks only when the writer is a whole queue behind.
                if writer_gone.is_none()
                    && let Err(e) = self.writer.put(ResultRecord::Trace(trace))
                {
                    writer_gone = Some(e);
                }
            },
        )
        .await?;
        if let Some(e) = writer_gone {
            return Err(e.into());
        }
        if let Some(mda) = config.probing.mda {
            self.multipath(&trace_targets, &engine_config, mda, pacer)
                .await?;
        }
        let written = self.writer.flush().await?;
        if let Some(e) = written.error {
            return Err(ServiceError::Spooling {
                what: "results",
                source: e,
            });
        }
        let traces = written.traces;
        Ok(RoundSummary {
            round_id,
            started_at,
            ended_at: OffsetDateTime::now_utc(),
            traces,
            reached,
            pings,
        })
    }
}

/// Adds the names already known for the trace's hops and asks for
/// the others, without waiting: a slow resolver never holds a result back;
/// later traces through the same routers get the answers.
pub fn annotate_from_cache(annotator: &Annotator, trace: &mut TraceResult) {
    let mut addresses: Vec<Ipv4Addr> = trace
        .hops
        .iter()
        .flat_map(|h| {
            h.probes
                .iter()
                .filter_map(|p| p.reply.as_ref().map(|r| r.address))
        })
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    let mut annotations = Vec::new();
    for addr in addresses {
        match annotator.lookup_now(addr) {
            Some(known) => annotations.extend(known.into_vec()),
            None => {
                annotator.request(addr);
            }
        }
    }
    trace.annotations = annotations;
}

/// Sleeps until `next_start`, or until the end of a pause the collector set after the last
/// round started, if that comes first: the collector paused the agent until the start of
/// the round it booked, and the round must run then, not at the agent's next interval,
/// which may fall into a round booked for others. False on shutdown.
async fn sleep_until_start(
    next_start: Instant,
    spool: &Spool,
    last_start: OffsetDateTime,
    shutdown: &CancellationToken,
) -> Result<bool, ServiceError> {
    loop {
        let now = Instant::now();
        let mut start = next_start;
        if let Some(until) = spool.state()?.pause_until.filter(|p| *p > last_start) {
            let left = until - OffsetDateTime::now_utc();
            start = start.min(now + left.try_into().unwrap_or(Duration::ZERO));
        }
        if start <= now {
            return Ok(true);
        }
        if !sleep_until_or_shutdown(start.min(now + PAUSE_POLL), shutdown).await {
            return Ok(false);
        }
    }
}

async fn sleep_until_or_shutdown(at: Instant, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Waits until the uploader has emptied the spool, or the wait is over.
async fn drain(spool: &Spool, shutdown: &CancellationToken) {
    let deadline = Instant::now() + DRAIN_WAIT;
    while Instant::now() < deadline && !shutdown.is_cancelled() {
        match spool.depth() {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("cannot read the spool depth: {e}");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!("results are still spooled; they will be uploaded at the next start");
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot listen for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
