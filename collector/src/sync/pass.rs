//! One sync pass: for each collector, list what its archive published in the window, fetch
//! what is not remembered as loaded, and load it, oldest slot first (a RIB before the update
//! file of the same slot).

use std::path::{Path, PathBuf};
use std::time::Duration;

use bgpkit_parser::BgpkitParser;
use time::OffsetDateTime;

use super::archive::{Kind, Layout, YearMonth, listing_names};
use super::fetch::{FetchError, Fetcher, RetryPolicy};
use crate::mrt::{self, LoadError, LoadOptions, LoadOutcome};
use crate::store::sync::{SyncFile, SyncGap, SyncPass, SyncStatus};
use crate::store::{Db, DbError};

/// The public RouteViews archive.
pub const ROUTEVIEWS_ARCHIVE: &str = "https://archive.routeviews.org";
/// The public RIPE RIS archive.
pub const RIS_ARCHIVE: &str = "https://data.ris.ripe.net";
/// The collectors synced when none is named: one of each archive.
pub const DEFAULT_COLLECTORS: &[&str] = &["route-views2", "rrc00"];
/// Default seconds between two RIB dumps loaded for one collector.
pub const DEFAULT_RIB_PERIOD_S: i64 = 8 * 3600;
/// Default passes a file is tried in before its slot is given up as a gap.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// How far a file's first record may lie from the slot its name gives (seconds): archives
/// start a file at its slot, give or take a dump's start-up; a file further off is not the
/// slot's file.
const SLOT_TOLERANCE_S: i64 = 3600;
/// Months looked back through for the newest RIB dump when nothing was synced yet.
const RIB_SEARCH_MONTHS: usize = 2;

/// What a sync pass is told.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Route collectors, by name (`route-views2`, `route-views.sg`, `rrc00`, ...).
    pub collectors: Vec<String>,
    /// The RouteViews archive (no trailing slash needed).
    pub routeviews_base: String,
    /// The RIPE RIS archive.
    pub ris_base: String,
    /// Window start (UNIX seconds); `None`: where the last pass stopped, or for a collector
    /// never synced, the newest RIB dump published.
    pub from: Option<i64>,
    /// Window end; `None`: now.
    pub to: Option<i64>,
    /// Seconds between two RIB dumps loaded for one collector (the archives publish one
    /// every 2 h (RouteViews) or 8 h (RIS); the update files carry the state between).
    pub rib_period_s: i64,
    /// Passes a file is tried in before its slot is given up as a gap (when a later slot is
    /// published).
    pub max_attempts: u32,
    /// Retries within one pass.
    pub retry: RetryPolicy,
    /// Where downloads are kept while they load (deleted after).
    pub work_dir: PathBuf,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            collectors: DEFAULT_COLLECTORS.iter().map(ToString::to_string).collect(),
            routeviews_base: ROUTEVIEWS_ARCHIVE.to_string(),
            ris_base: RIS_ARCHIVE.to_string(),
            from: None,
            to: None,
            rib_period_s: DEFAULT_RIB_PERIOD_S,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry: RetryPolicy::default(),
            work_dir: std::env::temp_dir().join(format!("nkpath-sync-{}", std::process::id())),
        }
    }
}

/// Why a file was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The loader refused the file; nothing of it is in the database.
    #[error("{url}: {source}")]
    Load {
        /// The URL.
        url: String,
        /// Why.
        source: Box<LoadError>,
    },
    /// The file's records are not of its slot: loading it would move the collector's state
    /// back (or ahead) in time.
    #[error(
        "{url}: its first record is of {first}, not of its slot {slot}: not the slot's file \
         (a mirror serving an old or misnamed file?); not loaded"
    )]
    WrongTime {
        /// The URL.
        url: String,
        /// The first record's time.
        first: String,
        /// The slot's time.
        slot: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

/// What a pass did for one collector.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectorReport {
    /// The collector.
    pub collector: String,
    /// URLs downloaded and loaded in this pass.
    pub loaded: Vec<String>,
    /// URLs downloaded whose data the database already held (loaded under another name).
    pub already_loaded: Vec<String>,
    /// Files published in the window and remembered as loaded (not fetched again).
    pub remembered: usize,
    /// Files that failed: URL and why.
    pub failed: Vec<(String, String)>,
    /// Gaps recorded in this pass.
    pub gaps: Vec<SyncGap>,
    /// An error that stopped the pass over this collector (its archive unreachable).
    pub error: Option<String>,
}

impl CollectorReport {
    /// Something failed.
    pub fn has_failures(&self) -> bool {
        self.error.is_some() || !self.failed.is_empty()
    }
}

/// A file the archive publishes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    slot: i64,
    kind: Kind,
    url: String,
    name: String,
}

/// Runs one pass over every configured collector; `now` is the UNIX time the window ends at
/// when `to` is not set (slots after it are never fetched).
pub async fn run_pass(db: &mut Db, config: &SyncConfig, now: i64) -> Vec<CollectorReport> {
    let mut reports = Vec::new();
    // One client per archive: each archive gets one request at a time (this pass is
    // sequential), and its own connection pool.
    let fetcher = match Fetcher::new(config.retry) {
        Ok(f) => f,
        Err(e) => {
            return config
                .collectors
                .iter()
                .map(|c| CollectorReport {
                    collector: c.clone(),
                    error: Some(format!("cannot start the HTTP client: {e}")),
                    ..CollectorReport::default()
                })
                .collect();
        }
    };
    if let Err(e) = std::fs::create_dir_all(&config.work_dir) {
        let error = format!(
            "cannot create the download directory {}: {e}",
            config.work_dir.display()
        );
        return config
            .collectors
            .iter()
            .map(|c| CollectorReport {
                collector: c.clone(),
                error: Some(error.clone()),
                ..CollectorReport::default()
            })
            .collect();
    }
    for collector in &config.collectors {
        let mut report = CollectorReport {
            collector: collector.clone(),
            ..CollectorReport::default()
        };
        match Layout::new(collector, &config.routeviews_base, &config.ris_base) {
            Some(layout) => {
                if let Err(e) =
                    sync_collector(db, config, &fetcher, &layout, now, &mut report).await
                {
                    tracing::warn!("collector {collector}: {e}");
                    report.error = Some(e.to_string());
                }
            }
            None => {
                report.error = Some(format!(
                    "{collector} is not a collector name of RouteViews (route-views*) or \
                     RIPE RIS (rrcNN)"
                ));
            }
        }
        let pass = SyncPass {
            collector: collector.clone(),
            last_pass: OffsetDateTime::now_utc(),
            last_error: report
                .error
                .clone()
                .or_else(|| report.failed.first().map(|(_, e)| e.clone())),
        };
        if let Err(e) = db.put_sync_pass(&pass) {
            tracing::warn!("collector {collector}: cannot record the pass: {e}");
        }
        reports.push(report);
    }
    let _ = std::fs::remove_dir_all(&config.work_dir);
    reports
}

async fn sync_collector(
    db: &mut Db,
    config: &SyncConfig,
    fetcher: &Fetcher,
    layout: &Layout,
    now: i64,
    report: &mut CollectorReport,
) -> Result<(), SyncError> {
    let remembered = db.sync_files(&layout.collector)?;
    let to = config.to.unwrap_or(now).min(now);
    let months_url = layout.months_url();
    let Some(listing) = fetcher.listing(&months_url).await? else {
        return Err(FetchError::NotFound { url: months_url }.into());
    };
    let mut months: Vec<YearMonth> = listing_names(&listing)
        .iter()
        .filter_map(|n| YearMonth::parse_dir(n))
        .collect();
    months.sort_unstable();
    months.dedup();
    let start = if let Some(from) = config.from.or_else(|| resume_point(&remembered)) {
        from
    } else if let Some(t) = newest_rib(fetcher, layout, &months, to).await? {
        t
    } else {
        tracing::info!(
            "collector {}: no RIB dump published in the last {RIB_SEARCH_MONTHS} months up to \
             now; nothing to start from yet",
            layout.collector
        );
        return Ok(());
    };
    let candidates = published(fetcher, layout, &months, start, to).await?;
    record_gaps(db, layout, &candidates, report)?;
    let mut last_rib = remembered
        .iter()
        .filter(|f| f.kind == Kind::Rib.as_str() && f.status == SyncStatus::Loaded)
        .map(|f| f.slot_time)
        .max();
    let newest_published = candidates.last().map(|c| c.slot);
    for c in &candidates {
        let known = db.sync_file(&c.url)?;
        if let Some(k) = &known
            && k.status != SyncStatus::Failed
        {
            report.remembered += 1;
            if c.kind == Kind::Rib && k.status == SyncStatus::Loaded {
                last_rib = last_rib.max(Some(c.slot));
            }
            continue;
        }
        if c.kind == Kind::Rib
            && let Some(last) = last_rib
            && (c.slot - last).abs() < config.rib_period_s
        {
            continue;
        }
        let attempts = known.as_ref().map_or(0, |k| k.attempts) + 1;
        // A file downloaded whole that the loader refused fails the same way until the
        // archive replaces it: fetched again only when its size changed.
        if let Some(k) = &known
            && let Some(bytes) = k.bytes
            && fetcher.size(&c.url).await.ok().flatten() == Some(bytes)
        {
            let message = k.last_error.clone().unwrap_or_default();
            let mut row = k.clone();
            row.attempts = attempts;
            row.updated_at = OffsetDateTime::now_utc();
            if attempts >= config.max_attempts && newest_published.is_some_and(|n| n > c.slot) {
                row.status = SyncStatus::Gap;
                give_up(db, layout, c, attempts, &message, report)?;
            }
            db.put_sync_file(&row)?;
            report
                .failed
                .push((c.url.clone(), format!("unchanged since: {message}")));
            continue;
        }
        let mut row = SyncFile {
            url: c.url.clone(),
            collector: layout.collector.clone(),
            kind: c.kind.as_str().to_string(),
            slot_time: c.slot,
            status: SyncStatus::Loaded,
            bytes: None,
            attempts,
            last_error: None,
            updated_at: OffsetDateTime::now_utc(),
        };
        let dest = config.work_dir.join(&c.name);
        let result = fetch_and_load(db, fetcher, layout, c, &dest, &mut row).await;
        let _ = std::fs::remove_file(&dest);
        match result {
            Ok(outcome) => {
                if matches!(outcome, LoadOutcome::AlreadyLoaded { .. }) {
                    tracing::info!("{}: its data was already loaded; remembered", c.url);
                    report.already_loaded.push(c.url.clone());
                } else {
                    tracing::info!("{}: loaded for collector {}", c.url, layout.collector);
                    report.loaded.push(c.url.clone());
                }
                if c.kind == Kind::Rib {
                    last_rib = last_rib.max(Some(c.slot));
                }
            }
            Err(SyncError::Db(e)) => return Err(SyncError::Db(e)),
            Err(e) => {
                let message = e.to_string();
                tracing::warn!("collector {}: {message}", layout.collector);
                row.last_error = Some(message.clone());
                // A file that keeps failing while later slots are published is given up:
                // its slot becomes a gap instead of holding the collector back for ever.
                let later = newest_published.is_some_and(|n| n > c.slot);
                if attempts >= config.max_attempts && later {
                    row.status = SyncStatus::Gap;
                    give_up(db, layout, c, attempts, &message, report)?;
                } else {
                    row.status = SyncStatus::Failed;
                }
                report.failed.push((c.url.clone(), message));
            }
        }
        row.updated_at = OffsetDateTime::now_utc();
        db.put_sync_file(&row)?;
    }
    Ok(())
}

/// Records a file given up on: an update file's slot becomes a gap (a RIB dump's does not:
/// the update files carry the state across it).
fn give_up(
    db: &Db,
    layout: &Layout,
    c: &Candidate,
    attempts: u32,
    message: &str,
    report: &mut CollectorReport,
) -> Result<(), DbError> {
    tracing::warn!(
        "{}: given up after {attempts} tries; its slot is recorded as a gap",
        c.url
    );
    if c.kind == Kind::Updates {
        let gap = SyncGap {
            collector: layout.collector.clone(),
            start: c.slot,
            end: c.slot + layout.archive.update_period(),
            reason: format!("given up after {attempts} tries: {message}"),
        };
        db.put_sync_gap(&gap)?;
        report.gaps.push(gap);
    }
    Ok(())
}

/// Where a collector synced before resumes: its oldest file still to retry, else its newest
/// slot done.
fn resume_point(remembered: &[SyncFile]) -> Option<i64> {
    let failed = remembered
        .iter()
        .filter(|f| f.status == SyncStatus::Failed)
        .map(|f| f.slot_time)
        .min();
    let done = remembered
        .iter()
        .filter(|f| f.status != SyncStatus::Failed)
        .map(|f| f.slot_time)
        .max();
    match (failed, done) {
        (Some(f), Some(d)) => Some(f.min(d)),
        (f, d) => f.or(d),
    }
}

/// The slot of the newest RIB dump published at or before `to`, looking back a few months.
async fn newest_rib(
    fetcher: &Fetcher,
    layout: &Layout,
    months: &[YearMonth],
    to: i64,
) -> Result<Option<i64>, SyncError> {
    let Some(last) = YearMonth::of(to) else {
        return Ok(None);
    };
    for &month in months
        .iter()
        .rev()
        .filter(|m| **m <= last)
        .take(RIB_SEARCH_MONTHS)
    {
        let url = layout.month_dir(month, Kind::Rib);
        let Some(listing) = fetcher.listing(&url).await? else {
            continue;
        };
        let newest = listing_names(&listing)
            .iter()
            .filter_map(|n| layout.parse_file_name(n))
            .filter(|&(kind, slot)| kind == Kind::Rib && slot <= to)
            .map(|(_, slot)| slot)
            .max();
        if newest.is_some() {
            return Ok(newest);
        }
    }
    Ok(None)
}

/// Every file published with its slot in `[start, to]`, oldest slot first.
async fn published(
    fetcher: &Fetcher,
    layout: &Layout,
    months: &[YearMonth],
    start: i64,
    to: i64,
) -> Result<Vec<Candidate>, SyncError> {
    let (Some(first), Some(last)) = (YearMonth::of(start), YearMonth::of(to)) else {
        return Ok(Vec::new());
    };
    let mut dirs: Vec<String> = Vec::new();
    for &month in months.iter().filter(|m| first <= **m && **m <= last) {
        for kind in [Kind::Rib, Kind::Updates] {
            let dir = layout.month_dir(month, kind);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        // A month directory not there yet (404) holds nothing published: normal.
        let Some(listing) = fetcher.listing(&dir).await? else {
            continue;
        };
        for name in listing_names(&listing) {
            if let Some((kind, slot)) = layout.parse_file_name(&name)
                && (start..=to).contains(&slot)
            {
                out.push(Candidate {
                    slot,
                    kind,
                    url: format!("{dir}{name}"),
                    name,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Records the update slots skipped between two published update files: the archive will
/// not publish them any more (a later slot is out), so they are gaps, not delays.
fn record_gaps(
    db: &Db,
    layout: &Layout,
    candidates: &[Candidate],
    report: &mut CollectorReport,
) -> Result<(), DbError> {
    let period = layout.archive.update_period();
    let updates: Vec<i64> = candidates
        .iter()
        .filter(|c| c.kind == Kind::Updates)
        .map(|c| c.slot)
        .collect();
    let known = db.sync_gaps()?;
    for pair in updates.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b - a > period {
            let gap = SyncGap {
                collector: layout.collector.clone(),
                start: a + period,
                end: b,
                reason: "no update file published for these slots".to_string(),
            };
            if !known.contains(&gap) {
                tracing::info!(
                    "collector {}: no update files from {} to {}: recorded as a gap",
                    layout.collector,
                    nkpath_proto::timestamp::display_unix(gap.start),
                    nkpath_proto::timestamp::display_unix(gap.end)
                );
                db.put_sync_gap(&gap)?;
                report.gaps.push(gap);
            }
        }
    }
    Ok(())
}

async fn fetch_and_load(
    db: &mut Db,
    fetcher: &Fetcher,
    layout: &Layout,
    c: &Candidate,
    dest: &Path,
    row: &mut SyncFile,
) -> Result<LoadOutcome, SyncError> {
    let bytes = fetcher.download(&c.url, dest).await?;
    row.bytes = Some(bytes);
    check_slot(dest, c, layout)?;
    let options = LoadOptions {
        collector: Some(layout.collector.clone()),
        target: None,
        // Never: a cut download is downloaded again, not loaded in part.
        accept_truncated: false,
        hold_lock: None,
    };
    // The load runs here, on this thread: a pass is sequential and its runtime is its own.
    mrt::load_file(db, dest, &options, None).map_err(|source| match source {
        LoadError::Db { source, .. } => SyncError::Db(source),
        source => SyncError::Load {
            url: c.url.clone(),
            source: Box::new(source),
        },
    })
}

/// Refuses a file whose first record is far from its slot (see [`SLOT_TOLERANCE_S`]). A file
/// whose first record does not parse is left to the loader, which names the damage.
fn check_slot(path: &Path, c: &Candidate, layout: &Layout) -> Result<(), SyncError> {
    let Ok(input) = mrt::input::open(path) else {
        return Ok(());
    };
    let mut records = BgpkitParser::from_reader(input.reader).into_fallible_record_iter();
    let Some(Ok(first)) = records.next() else {
        return Ok(());
    };
    let t = i64::from(first.common_header.timestamp);
    let end = match c.kind {
        Kind::Rib => c.slot,
        Kind::Updates => c.slot + layout.archive.update_period(),
    };
    if t < c.slot - SLOT_TOLERANCE_S || t > end + SLOT_TOLERANCE_S {
        return Err(SyncError::WrongTime {
            url: c.url.clone(),
            first: nkpath_proto::timestamp::display_unix(t),
            slot: nkpath_proto::timestamp::display_unix(c.slot),
        });
    }
    Ok(())
}

/// Waits `period` give or take a tenth, at random: pollers of many collectors started at
/// once drift apart instead of asking the archive in step.
pub fn jittered(period: Duration) -> Duration {
    use rand::Rng as _;
    let factor = rand::rng().random_range(0.9..1.1);
    period.mul_f64(factor)
}
