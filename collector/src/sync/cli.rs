//! The `bgp sync` and `bgp status` subcommands, and the sync arguments `serve` shares.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use nkpath_proto::timestamp::{self, DayEnd};
use time::OffsetDateTime;

use super::fetch::RetryPolicy;
use super::pass::{
    DEFAULT_COLLECTORS, DEFAULT_MAX_ATTEMPTS, DEFAULT_RIB_PERIOD_S, RIS_ARCHIVE,
    ROUTEVIEWS_ARCHIVE, SyncConfig, run_pass,
};
use super::status::collector_status;
use crate::store::Db;
use crate::text::escape_control;

/// Where and what to sync: shared by `bgp sync` and `serve --bgp-sync`.
#[derive(Debug, Clone, Args)]
pub struct ArchiveArgs {
    /// Route collector to sync (repeatable; given, it replaces the defaults route-views2 and
    /// rrc00). RouteViews names (route-views2, route-views.sg, ...) are fetched from
    /// --routeviews-base, RIPE RIS names (rrc00 ... rrc26) from --ris-base.
    #[arg(long = "collector", value_name = "NAME")]
    pub collectors: Vec<String>,

    /// The RouteViews archive (its bgpdata layout).
    #[arg(long, value_name = "URL", default_value = ROUTEVIEWS_ARCHIVE)]
    pub routeviews_base: String,

    /// The RIPE RIS archive (its rrcNN layout).
    #[arg(long, value_name = "URL", default_value = RIS_ARCHIVE)]
    pub ris_base: String,

    /// Load a RIB dump at most this often per collector; the update files carry the state in
    /// between (e.g. 8h, 30m).
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = parse_duration)]
    pub rib_every: Duration,

    /// Tries per request before a pass gives up on it (waits double from --retry-wait).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub retries: u32,

    /// Wait after a first failed request (doubled after each further one; a server's
    /// Retry-After is followed instead, up to 5 min).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub retry_wait: Duration,

    /// Passes a file is tried in before its slot is given up and recorded as a gap (when a
    /// later slot is published).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ATTEMPTS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
}

impl ArchiveArgs {
    /// The sync settings these arguments give, with the window `[from, to]`.
    pub fn config(&self, from: Option<i64>, to: Option<i64>) -> SyncConfig {
        let collectors = if self.collectors.is_empty() {
            DEFAULT_COLLECTORS.iter().map(ToString::to_string).collect()
        } else {
            self.collectors.clone()
        };
        SyncConfig {
            collectors,
            routeviews_base: self.routeviews_base.clone(),
            ris_base: self.ris_base.clone(),
            from,
            to,
            rib_period_s: i64::try_from(self.rib_every.as_secs()).unwrap_or(DEFAULT_RIB_PERIOD_S),
            max_attempts: self.max_attempts,
            retry: RetryPolicy {
                tries: self.retries,
                base: self.retry_wait,
                ..RetryPolicy::default()
            },
            ..SyncConfig::default()
        }
    }
}

/// Arguments of `bgp sync`.
#[derive(Debug, Args)]
#[command(after_help = SYNC_EXAMPLES)]
pub struct SyncArgs {
    /// Where to fetch from and what.
    #[command(flatten)]
    pub archives: ArchiveArgs,

    /// Window start (RFC 3339 or a date, UTC): files whose slot time is at or after it.
    /// Default: where the last sync of the collector stopped; for a collector never synced,
    /// the newest RIB dump published, then every update file since.
    #[arg(long, value_name = "TIME", value_parser = parse_from)]
    pub from: Option<OffsetDateTime>,

    /// Window end (RFC 3339 or a date, its last second): files whose slot time is at or
    /// before it. Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_to)]
    pub to: Option<OffsetDateTime>,

    /// One pass, then exit (status 1 when any file failed, after loading the others).
    /// Without it, passes repeat every --every until stopped.
    #[arg(long)]
    pub once: bool,

    /// Time between passes without --once (give or take a tenth, at random).
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub every: Duration,
}

const SYNC_EXAMPLES: &str = "Examples:
  nkpath-collector bgp sync --once
  nkpath-collector bgp sync --once --collector route-views.sg --from 2025-01-01 --to 2025-01-02
  nkpath-collector bgp sync --routeviews-base http://mirror.example/routeviews --ris-base http://mirror.example/ris

Downloads are loaded like bgp load (all or nothing; never --accept-truncated) and remembered
by URL: a file loaded before is not downloaded again. A 404 for a slot not yet published is
normal; an update slot missing while later ones are published is recorded as a gap.";

/// A duration: `90s`, `15m`, `8h`, `1h 30m` (humantime), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration like 90s, 15m or 8h: {e}"))
}

fn parse_from(s: &str) -> Result<OffsetDateTime, String> {
    timestamp::parse_user(s, DayEnd::Start)
}

fn parse_to(s: &str) -> Result<OffsetDateTime, String> {
    timestamp::parse_user(s, DayEnd::End)
}

/// Runs `bgp sync`.
pub fn sync(db: &mut Db, args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let config = args.archives.config(
        args.from.map(OffsetDateTime::unix_timestamp),
        args.to.map(OffsetDateTime::unix_timestamp),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    loop {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let reports = runtime.block_on(run_pass(db, &config, now));
        let mut failed = false;
        let mut out = std::io::stdout().lock();
        for r in &reports {
            writeln!(
                out,
                "{}: {} loaded, {} already in the database, {} remembered as loaded, {} failed, \
                 {} gaps recorded",
                r.collector,
                r.loaded.len(),
                r.already_loaded.len(),
                r.remembered,
                r.failed.len(),
                r.gaps.len()
            )?;
            for url in &r.loaded {
                writeln!(out, "  loaded {}", escape_control(url))?;
            }
            for (url, e) in &r.failed {
                eprintln!(
                    "nkpath-collector: {}: {}",
                    escape_control(url),
                    escape_control(e)
                );
            }
            if let Some(e) = &r.error {
                eprintln!(
                    "nkpath-collector: collector {}: {}",
                    r.collector,
                    escape_control(e)
                );
            }
            failed |= r.has_failures();
        }
        drop(out);
        if args.once {
            return Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            });
        }
        std::thread::sleep(super::pass::jittered(args.every));
    }
}

/// Runs `bgp status`: per collector, the last file loaded, the age of its BGP data and its
/// last error (tab-separated).
pub fn status(db: &Db) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let rows = collector_status(db, now)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "collector\tlast_file\tnewest_data\tbgp_age\tlast_pass\tlast_error"
    )?;
    for s in &rows {
        let age = s
            .bgp_age_s
            .map(|a| {
                humantime::format_duration(Duration::from_secs(a.max(0).unsigned_abs())).to_string()
            })
            .unwrap_or_default();
        let cells = [
            s.collector.clone(),
            s.last_file.clone().unwrap_or_default(),
            s.newest_data.clone().unwrap_or_default(),
            age,
            s.last_pass.clone().unwrap_or_default(),
            s.last_error.clone().unwrap_or_default(),
        ]
        .map(|c| escape_control(&c).into_owned());
        writeln!(out, "{}", cells.join("\t"))?;
    }
    if rows.is_empty() {
        eprintln!("no collector synced yet: run bgp sync (or serve --bgp-sync)");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3m"), Ok(Duration::from_mins(3)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_hours(8)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
    }
}
