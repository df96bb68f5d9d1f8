//! Alerts (`--on-change CMD`): the operator's command runs with a JSON document on standard
//! input when the announced upstream set of a target prefix changes, a new data-plane
//! mismatch appears, or an outage of a target /24 starts or ends (see
//! [`crate::analysis::reachability`]).
//!
//! Driven by the stored state only, whatever brought it in (`bgp load`, the archive sync,
//! RIS Live): [`after_load`] evaluates and sends once; [`spawn_runner`] does so periodically
//! and when nudged, for `serve` and `bgp live`.
//!
//! - [`rules`]: the decisions, pure (which changes qualify, catch-up, coalescing);
//! - [`evaluate`]: the stored state read, events found and stored with a watermark;
//! - [`command`]: running the command with a timeout;
//! - [`dispatch`] (here): the runs that are due, each recorded before and after it runs, so
//!   that a restart neither repeats nor loses an alert.

pub mod command;
pub mod evaluate;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nkpath_proto::timestamp;
use time::OffsetDateTime;

pub use command::{CommandOutcome, run_command};
pub use evaluate::{Evaluation, evaluate};
pub use rules::Rules;

use crate::store::{Db, DbError};
use crate::text::escape_control;

/// Runs of the command an event is part of at most (the first and two retries, a minute
/// apart); after the last failure it is stored as failed.
pub const MAX_ATTEMPTS: u32 = 3;
/// Default timeout of the command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Version of the alert document's layout.
pub const DOCUMENT_VERSION: u32 = 1;
/// How often [`spawn_runner`] evaluates without being nudged.
pub const RUNNER_TICK: Duration = Duration::from_secs(5);

/// Why an evaluation or a dispatch failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The BGP state could not be read.
    #[error(transparent)]
    Bgp(#[from] crate::bgp::BgpError),
    /// The target settings could not be read.
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    /// The stored traces could not be read.
    #[error(transparent)]
    Traces(#[from] crate::results::ReadTracesError),
    /// The traces could not be analysed.
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    /// The IXP table could not be read.
    #[error(transparent)]
    Ixp(#[from] crate::sources::ixp::IxpError),
    /// The reachability of the target /24s could not be judged.
    #[error("judging outages: {0}")]
    Report(String),
}

/// The command and the settings of the alerts.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// The shell command to run.
    pub command: String,
    /// The rules.
    pub rules: Rules,
    /// Longest a run may take before it is killed.
    pub timeout: Duration,
}

/// The alert options of `serve`, `bgp live` and `bgp load`.
#[derive(Debug, Clone, clap::Args)]
pub struct AlertArgs {
    /// Run CMD (with sh -c) with a JSON document on standard input when the announced
    /// upstream set of a target prefix changes, or a new data-plane mismatch appears (see
    /// the README, "Alerts"). At most one run per prefix per --alert-interval; later events
    /// wait for the next run.
    #[arg(long = "on-change", value_name = "CMD")]
    pub on_change: Option<String>,

    /// An upstream counts in a prefix's announced set when at least this share of the peers
    /// with a route for the prefix reach it through that upstream (0 to 1).
    #[arg(long = "alert-min-share", value_name = "SHARE", default_value_t = Rules::default().min_share, value_parser = parse_share)]
    pub min_share: f64,

    /// A new announced set counts once it has held this many seconds (shorter flaps are
    /// no change).
    #[arg(long = "alert-min-duration", value_name = "SECONDS", default_value_t = Rules::default().min_duration_s, value_parser = clap::value_parser!(i64).range(0..))]
    pub min_duration_s: i64,

    /// At most one run of the command per prefix in this many seconds; events in between
    /// wait for the next run, which sends them together.
    #[arg(long = "alert-interval", value_name = "SECONDS", default_value_t = Rules::default().rate_limit_s, value_parser = clap::value_parser!(i64).range(1..))]
    pub interval_s: i64,

    /// Events found more than this many seconds after they happened (a backfill), or
    /// after a gap this long in the evaluations (catching up), are kept as history and
    /// never sent.
    #[arg(long = "alert-max-delay", value_name = "SECONDS", default_value_t = Rules::default().max_delay_s, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_delay_s: i64,

    /// Seconds a run of the command may take before it is killed.
    #[arg(long = "alert-timeout", value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_s: u64,

    /// The thresholds of the outages whose start and end alert (as in `report
    /// reachability`).
    #[command(flatten)]
    pub outages: crate::report::reachability::OutageArgs,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a share between 0 and 1")),
    }
}

impl AlertArgs {
    /// The configuration, when `--on-change` is given.
    pub fn config(&self) -> Option<AlertConfig> {
        let command = self.on_change.clone()?;
        Some(AlertConfig {
            command,
            rules: Rules {
                min_share: self.min_share,
                min_duration_s: self.min_duration_s,
                max_delay_s: self.max_delay_s,
                rate_limit_s: self.interval_s,
                outage: self.outages.settings(),
            },
            timeout: Duration::from_secs(self.timeout_s),
        })
    }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The data time up to which the stored BGP state is known: the end of the newest data
/// loaded, or `heard` (a live feed heard from up to then) when later.
pub fn data_horizon(db: &Db, heard: Option<i64>) -> Result<i64, DbError> {
    let end = db.loaded_bgp_span()?.map(|(_, b)| b);
    Ok(end.max(heard).unwrap_or(i64::MIN / 2))
}

/// What a dispatch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Runs that delivered.
    pub sent: usize,
    /// Runs that failed (their events wait for a retry, or are failed for good).
    pub failed: usize,
    /// Events still waiting (their prefix ran less than a minute ago, or a retry).
    pub waiting: usize,
}

/// Runs the command for every prefix whose run is due at `now` (see [`rules::due_runs`]).
/// Each run is stored before it starts and its outcome after it ends.
pub fn dispatch(db: &mut Db, config: &AlertConfig, now: i64) -> Result<Dispatched, AlertError> {
    let pending = db.pending_alert_events()?;
    let last: BTreeMap<String, i64> = db.last_alert_runs()?.into_iter().collect();
    let plain: Vec<rules::Pending> = pending
        .iter()
        .map(|p| rules::Pending {
            id: p.id,
            prefix: p.prefix.clone(),
            time: p.time,
        })
        .collect();
    let runs = rules::due_runs(&plain, &last, now, &config.rules);
    let mut done = Dispatched::default();
    let in_runs: usize = runs.iter().map(|r| r.events.len()).sum();
    done.waiting = pending.len() - in_runs;
    for run in runs {
        let events: Vec<&crate::store::alerts::PendingAlertEvent> = run
            .events
            .iter()
            .filter_map(|id| pending.iter().find(|p| p.id == *id))
            .collect();
        let document = document(&run.prefix, now, &events);
        let tx = db.write()?;
        let run_id = tx.insert_alert_run(&run.prefix, now)?;
        tx.commit()?;
        let outcome = run_command(
            &config.command,
            document.as_bytes(),
            &[("NKPATH_ALERT_PREFIX", run.prefix.as_str())],
            config.timeout,
        );
        let final_attempt = events.iter().any(|e| e.attempts + 1 >= MAX_ATTEMPTS);
        let tx = db.write()?;
        tx.finish_alert_run(
            run_id,
            &outcome.describe(),
            outcome.succeeded(),
            final_attempt,
            &run.events,
        )?;
        tx.commit()?;
        if outcome.succeeded() {
            done.sent += 1;
            tracing::info!(
                "alert for {}: {} event(s) sent to --on-change",
                run.prefix,
                events.len()
            );
        } else {
            done.failed += 1;
            let next = if final_attempt {
                "given up: the events are stored as failed"
            } else {
                "retried in a minute"
            };
            tracing::error!(
                "alert for {}: --on-change {}: {}; {next}",
                run.prefix,
                escape_control(&outcome.describe()),
                escape_control(&config.command)
            );
        }
    }
    Ok(done)
}

/// The alert document of a run: the prefix, when it was sent, and its events (oldest first).
pub fn document(
    prefix: &str,
    now: i64,
    events: &[&crate::store::alerts::PendingAlertEvent],
) -> String {
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.json).unwrap_or(serde_json::Value::Null))
        .collect();
    serde_json::json!({
        "nkpath_alert": DOCUMENT_VERSION,
        "prefix": prefix,
        "sent_at": timestamp::display_unix(now),
        "events": events,
    })
    .to_string()
}

/// Evaluates the stored state (see [`evaluate`]) and sends the runs that are due: what the
/// archive sync and `bgp load` call after loading. `heard`: until when a live feed was heard
/// from, if any.
pub fn after_load(
    db: &mut Db,
    config: &AlertConfig,
    heard: Option<i64>,
) -> Result<(Evaluation, Dispatched), AlertError> {
    let now = unix_now();
    let horizon = data_horizon(db, heard)?;
    let evaluation = evaluate(db, &config.rules, horizon, now)?;
    let dispatched = dispatch(db, config, now)?;
    Ok((evaluation, dispatched))
}

/// A handle to the background alert runner: nudge it after new data, tell it until when a
/// live feed was heard from.
#[derive(Debug, Clone)]
pub struct RunnerHandle {
    nudge: mpsc::Sender<()>,
    heard: Arc<AtomicI64>,
}

impl RunnerHandle {
    /// New data is stored (`heard`: the live feed was heard from up to then): evaluate soon.
    pub fn nudge(&self, heard: Option<i64>) {
        if let Some(h) = heard {
            self.heard.fetch_max(h, Ordering::Relaxed);
        }
        let _ = self.nudge.send(());
    }
}

/// Runs [`after_load`] every [`RUNNER_TICK`] and whenever nudged, on a thread of its own
/// with its own database connection, until every [`RunnerHandle`] is dropped.
pub fn spawn_runner(
    mut db: Db,
    config: AlertConfig,
) -> std::io::Result<(RunnerHandle, JoinHandle<()>)> {
    let (nudge, nudges) = mpsc::channel::<()>();
    let heard = Arc::new(AtomicI64::new(i64::MIN));
    let seen = Arc::clone(&heard);
    let thread = std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || {
            loop {
                match nudges.recv_timeout(RUNNER_TICK) {
                    Ok(()) => while nudges.try_recv().is_ok() {},
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
                let heard = Some(seen.load(Ordering::Relaxed)).filter(|h| *h > i64::MIN);
                match after_load(&mut db, &config, heard) {
                    Ok((e, _)) if e.pending > 0 || e.history > 0 => tracing::info!(
                        "alerts: {} new event(s) to send, {} kept as history (before {})",
                        e.pending,
                        e.history,
                        timestamp::display_unix(e.armed_since)
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        "alerts: evaluation failed: {}",
                        escape_control(&e.to_string())
                    ),
                }
            }
        })?;
    Ok((RunnerHandle { nudge, heard }, thread))
}
