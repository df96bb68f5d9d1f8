//! nkpath-collector: the command line.

use std::io::{BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipnet::Ipv4Net;
use nkpath_collector::import::{self, Format, OutsideTargets};
use nkpath_collector::mrt::{self, LoadOptions, LoadOutcome};
use nkpath_collector::settings::Target;
use nkpath_collector::sync::archive::Archive;
use nkpath_collector::text::escape_control;
use nkpath_collector::{Db, store};
use nkpath_proto::timestamp;

/// Stores nkpath agents' traces, loads BGP data (MRT) and checks data-plane paths into the
/// target network against the upstreams BGP announces.
#[derive(Debug, Parser)]
#[command(name = "nkpath-collector", version, about, long_about = None)]
struct Cli {
    /// The database file (SQLite; created if missing, upgraded in place if older).
    #[arg(long, global = true, env = "NKPATH_DB", default_value = store::DEFAULT_PATH)]
    db: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import agent results (JSONL, the agent's survey output) or public traceroutes.
    ///
    /// nkpath (default): one TraceResult JSON per line, or ResultRecord lines with "kind".
    /// atlas: RIPE Atlas traceroute results, a JSON array or JSON lines; stored with agent id
    /// atlas:MSM/PRB. scamper: sc_warts2json output (JSON lines), or a warts file, which is
    /// converted by running sc_warts2json; stored with agent id scamper:FILE. Atlas and
    /// scamper files may be gzip or bzip2 compressed. These imports keep IPv4 traceroutes
    /// only (IPv6 and other records are counted and skipped).
    ///
    /// Every format follows the same rules: a result that started before 2000 or more than
    /// a day ahead of this clock is refused with its line; a trace toward an address outside
    /// the target prefixes never went toward the target network, so it is refused and
    /// counted (--keep-outside stores it as context, never counted in reports or exports).
    ///
    /// Results already stored (same result_id; imported traces get an id derived from the
    /// record) are left as they are, so importing twice is harmless. A record that does not
    /// decode is reported with its line number and skipped; all good records are stored in
    /// one transaction.
    #[command(after_help = IMPORT_EXAMPLES)]
    Import {
        /// What the file holds.
        #[arg(long, value_enum, default_value_t = Format::Nkpath)]
        format: Format,
        /// Store traces toward addresses outside the target prefixes as context instead of
        /// refusing them: kept in the database, never counted in reports or exports.
        #[arg(long)]
        keep_outside: bool,
        /// Largest size a compressed file (atlas, scamper) may decompress to, in bytes; a
        /// file that would decompress to more is refused with nothing stored. Default: 100
        /// times the compressed file's size, at least 64 MiB (traceroute JSON compresses 10
        /// to 20 times; a decompression bomb 1,000 times and more).
        #[arg(long, value_name = "BYTES")]
        max_decompressed: Option<u64>,
        /// The file.
        file: PathBuf,
    },
    /// BGP data: load MRT RIB dumps and update files.
    #[command(subcommand)]
    Bgp(BgpCommand),
    /// Serve the HTTP API agents upload their results to.
    Serve(Box<nkpath_collector::server::cli::ServeArgs>),
    /// Agents allowed to upload: add (prints a new token), list, revoke.
    #[command(subcommand)]
    Agent(nkpath_collector::server::cli::AgentCommand),
    /// Reports: upstream shares, mismatches, changes, single paths (table, JSON or CSV).
    #[command(subcommand)]
    Report(nkpath_collector::report::cli::ReportCommand),
    /// Export CSV datasets (traces, hops, AS paths with verdicts, BGP upstreams).
    Export(nkpath_collector::report::cli::ExportArgs),
    /// Fleet scheduling: settings (--schedule, --round, --cap) and the report of agents,
    /// their vantage AS, booked and done work, and probes per /24 per hour against the cap.
    Fleet(nkpath_collector::fleet::report::FleetArgs),
    /// IXP peering LAN prefixes for hop mapping.
    #[command(subcommand)]
    Ixp(nkpath_collector::report::cli::IxpCommand),
    /// RPKI data: load validated ROA payloads, to judge announcements of the targets
    /// (RFC 6811: valid, invalid-asn, invalid-length, not-found).
    #[command(subcommand)]
    Rpki(RpkiCommand),
}

#[derive(Debug, Subcommand)]
enum RpkiCommand {
    /// Load one export of validated ROA payloads, as rpki-client (-j) and Routinator
    /// (--format json) write it: {"roas": [{"asn", "prefix", "maxLength", ...}], "metadata"}.
    ///
    /// "asn" may be a number (131279) or text ("AS131279"). The export's generation time is
    /// read from metadata.buildtime (rpki-client), metadata.generated or generatedTime
    /// (Routinator); exports are kept by that time, so every announcement is judged by the
    /// export current at its time. An entry that cannot be read (a null prefix, an "asn" of
    /// "AS") is reported and skipped; the rest loads. IPv6 payloads are counted, not kept:
    /// the targets are IPv4.
    #[command(after_help = RPKI_EXAMPLES)]
    Load {
        /// The export's generation time, when the file does not say it or says it wrongly
        /// (RFC 3339, e.g. 2025-03-18T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        generated: Option<String>,
        /// The JSON file.
        file: PathBuf,
    },
}

const RPKI_EXAMPLES: &str = "Examples:
  rpki-client -j -d /var/db/rpki-client/ && nkpath-collector rpki load /var/db/rpki-client/json
  routinator vrps --format json > vrps.json && nkpath-collector rpki load vrps.json";

#[derive(Debug, Subcommand)]
enum BgpCommand {
    /// Load MRT files: RIB dumps and BGP4MP update files as RouteViews and RIPE RIS publish
    /// them.
    ///
    /// Accepts TABLE_DUMP_V2 and legacy TABLE_DUMP RIB dumps and BGP4MP update files, plain,
    /// gzip or bzip2 (recognised by their first bytes, not their names). Each file is loaded
    /// in one transaction: the first error (corrupt or truncated record, damaged compressed
    /// stream) names the file and the decompressed offset and loads nothing from that file;
    /// the other files are still loaded, and the exit status is 1. A file loaded before
    /// (same SHA-256) is skipped.
    ///
    /// Kept: the collector peers; the full AS path of every route for a prefix overlapping
    /// the target prefixes; for every other IPv4 prefix, its origin ASes per peer (for hop
    /// mapping); the pairs of adjacent ASes of every path (for the border rule). IPv6 is
    /// skipped and counted.
    ///
    /// Update files are replayed over a RIB dump of the same collector taken at most 24 h
    /// before them; peers whose sessions are seen going to Established in an update file are
    /// known from then on without a dump. An update file with neither adds nothing yet, and
    /// bgp load warns.
    #[command(after_help = LOAD_EXAMPLES)]
    Load(LoadArgs),
    /// Fetch and load MRT files from the public archives (RouteViews, RIPE RIS) in their own
    /// directory layouts, remembering what was loaded.
    ///
    /// Each pass lists what each collector's archive published in the window and loads, in
    /// slot order per collector (a RIB dump before the updates of the same slot), every file
    /// not loaded before, exactly as bgp load does (all or nothing). Requests go one at a
    /// time, retried with backoff (Retry-After honoured), with a User-Agent naming nkpath.
    /// A file whose records are not of its slot's time is refused. A file that keeps
    /// failing while later slots are published is given up after --max-attempts passes, and
    /// update slots with no file are recorded as gaps.
    Sync(nkpath_collector::sync::cli::SyncArgs),
    /// Per synced collector: the last file loaded, the age of its BGP data, the last error.
    Status,
    /// Follow RIS Live: store the BGP messages of the target prefixes and their
    /// more-specifics as RIS collectors receive them, until Ctrl-C or SIGTERM.
    ///
    /// The rows are provisional: loading the collector's update file for the same period
    /// (bgp load) replaces them, without duplicates; messages for a time an update file of
    /// their collector already covers are not stored. A connection that fails, closes or
    /// stays silent for --ris-live-stall seconds is opened again after a backoff (1 s
    /// doubling up to 5 min); each such event is logged with the URL.
    #[command(after_help = LIVE_EXAMPLES)]
    Live(LiveArgs),
}

const LIVE_EXAMPLES: &str = "Examples:
  nkpath-collector bgp live
  nkpath-collector bgp live --ris-live-host rrc00 --ris-live-host rrc21
  RUST_LOG=info nkpath-collector bgp live --ris-live wss://ris-live.ripe.net/v1/ws/";

#[derive(Debug, Args)]
struct LiveArgs {
    #[command(flatten)]
    ris_live: nkpath_collector::live::RisLiveArgs,

    #[command(flatten)]
    alerts: nkpath_collector::alerts::AlertArgs,
}

const IMPORT_EXAMPLES: &str = "Examples:
  nkpath-collector import survey.jsonl
  nkpath-collector import --format atlas RIPE-Atlas-measurement-5017.json
  nkpath-collector import --format scamper traces.warts
  nkpath-collector import --format atlas --keep-outside traceroute-2021-04-22.bz2";

const LOAD_EXAMPLES: &str = "Examples:
  nkpath-collector bgp load --collector route-views2 rib.20171001.0000.bz2 updates.20171001.*.bz2
  nkpath-collector --db /var/lib/nkpath/nkpath.db bgp load rrc00/2025.01/bview.20250101.0000.gz";

#[derive(Debug, Args)]
struct LoadArgs {
    /// Route collector the files come from, e.g. route-views2 or rrc00. Default: taken from
    /// the file name or its directories (rrcNN, route-views*), else "unknown" (with a
    /// warning: files of different collectors must not share a name). Updates are replayed
    /// over RIB dumps of the same collector, so name both the same way.
    #[arg(long, value_name = "NAME")]
    collector: Option<String>,

    /// Target prefix whose overlapping routes keep their full AS path (repeatable).
    /// Default: the database's stored target, else 175.45.176.0/22. Stored in the database;
    /// it cannot change once BGP data is loaded.
    #[arg(long = "target-prefix", value_name = "PREFIX")]
    target_prefixes: Vec<Ipv4Net>,

    /// Origin AS of the target. Default: the database's stored target, else 131279.
    #[arg(long, value_name = "ASN")]
    target_asn: Option<u32>,

    /// Keep the complete records of a file cut short (a partial download) instead of refusing
    /// it; the file is flagged as truncated. A RIB dump loaded this way lacks the prefixes
    /// after the cut: hops there are not mapped, and those prefixes have no announced upstream.
    #[arg(long)]
    accept_truncated: bool,

    /// How long a RIB dump's load holds the database's write lock before it commits a part
    /// (invisible until the whole dump is in) and lets agents' uploads in: `1s`, `250ms`.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = nkpath_collector::sync::cli::parse_duration)]
    hold_lock: std::time::Duration,

    /// MRT files to load, in any order.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    #[command(flatten)]
    alerts: nkpath_collector::alerts::AlertArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,nkpath_collector::server=info,nkpath_collector::sync=info,\
                     nkpath_collector::live=info,nkpath_collector::alerts=info",
                )
            }),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: in a file or a journal they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nkpath-collector: {}", escape_control(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut db = Db::open(&cli.db)?;
    match cli.command {
        Command::Import {
            format,
            keep_outside,
            max_decompressed,
            file,
        } => {
            let outside = if keep_outside {
                OutsideTargets::KeepAsContext
            } else {
                OutsideTargets::Refuse
            };
            if format == Format::Nkpath {
                import(&mut db, &file, outside)
            } else {
                import_public(&mut db, &file, format, outside, max_decompressed)
            }
        }
        Command::Bgp(BgpCommand::Load(args)) => bgp_load(&mut db, args),
        Command::Bgp(BgpCommand::Sync(args)) => nkpath_collector::sync::cli::sync(&mut db, &args),
        Command::Bgp(BgpCommand::Status) => nkpath_collector::sync::cli::status(&db),
        Command::Bgp(BgpCommand::Live(args)) => bgp_live(db, &args),
        Command::Serve(args) => nkpath_collector::server::cli::serve(db, &args),
        Command::Agent(command) => nkpath_collector::server::cli::agent(&mut db, &command),
        Command::Report(command) => {
            nkpath_collector::report::cli::run_report(&db, &command).map(|()| ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            nkpath_collector::report::cli::run_export(&db, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Fleet(args) => {
            nkpath_collector::fleet::report::run(&db, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Ixp(command) => {
            nkpath_collector::report::cli::run_ixp(&db, &command).map(|()| ExitCode::SUCCESS)
        }
        Command::Rpki(RpkiCommand::Load { generated, file }) => {
            rpki_load(&mut db, &file, generated.as_deref())
        }
    }
}

fn rpki_load(db: &mut Db, file: &Path, generated: Option<&str>) -> anyhow::Result<ExitCode> {
    let generated = generated
        .map(|text| {
            timestamp::parse(text)
                .map(time::OffsetDateTime::unix_timestamp)
                .with_context(|| format!("--generated {text:?} is not an RFC 3339 time"))
        })
        .transpose()?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let summary = nkpath_collector::rpki::load_rpki_file(db, file, generated, now)?;
    const SHOWN: usize = 20;
    for skipped in summary.skipped.iter().take(SHOWN) {
        eprintln!(
            "{}: entry {}: skipped: {}",
            file.display(),
            skipped.index,
            escape_control(&skipped.reason)
        );
    }
    if summary.skipped.len() > SHOWN {
        eprintln!(
            "{}: {} more entries skipped",
            file.display(),
            summary.skipped.len() - SHOWN
        );
    }
    println!(
        "{}: generated {}: {} IPv4 ROA payloads loaded, {} IPv6 counted and not kept \
         (targets are IPv4), {} entries skipped",
        file.display(),
        timestamp::display_unix(summary.generated),
        summary.vrps,
        summary.ipv6,
        summary.skipped.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn import(db: &mut Db, file: &PathBuf, outside: OutsideTargets) -> anyhow::Result<ExitCode> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let report = db
        .import_results_with(BufReader::new(input), outside)
        .with_context(|| format!("importing {} (nothing was stored)", file.display()))?;
    for bad in &report.rejected {
        eprintln!(
            "{}:{}: skipped: {}",
            file.display(),
            bad.line,
            escape_control(&bad.error)
        );
    }
    println!(
        "{}: {} lines, {} results stored, {} already stored, {} lines skipped",
        file.display(),
        report.lines,
        report.stored,
        report.already_stored,
        report.rejected.len()
    );
    print_outside(db, report.refused_outside, report.stored_context)?;
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The line of an import summary about results outside the target prefixes, if any.
fn print_outside(db: &Db, refused: usize, kept: usize) -> anyhow::Result<()> {
    if refused == 0 && kept == 0 {
        return Ok(());
    }
    let prefixes: Vec<String> = db
        .target()?
        .prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    let prefixes = prefixes.join(", ");
    if refused > 0 {
        println!(
            "  {refused} outside the target prefixes ({prefixes}): refused (they never went \
             toward the target; --keep-outside stores them as context)"
        );
    }
    if kept > 0 {
        println!(
            "  {kept} outside the target prefixes ({prefixes}): stored as context, never \
             counted in reports or exports"
        );
    }
    Ok(())
}

fn import_public(
    db: &mut Db,
    file: &Path,
    format: Format,
    outside: OutsideTargets,
    max_decompressed: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let s = import::import_file_with_limit(db, file, format, outside, max_decompressed)?;
    if let Some(compression) = s.decompressed {
        println!("{}: {compression}-compressed", file.display());
    }
    if let Some(program) = s.converted_with {
        println!("{}: a warts file, read through {program}", file.display());
    }
    for bad in &s.malformed {
        eprintln!(
            "{}:{}: skipped: {}",
            file.display(),
            bad.line,
            escape_control(&bad.error)
        );
    }
    for refused in &s.refused_time {
        eprintln!(
            "{}:{}: refused: {}",
            file.display(),
            refused.line,
            escape_control(&refused.error)
        );
    }
    println!(
        "{}: {format}: {} records read, {} traces stored, {} already stored",
        file.display(),
        s.records,
        s.stored,
        s.already_stored
    );
    let non_trace: Vec<String> = s
        .skipped_non_trace
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    println!(
        "  skipped: {} IPv6, {} non-trace{}, {} failed measurements, {} malformed",
        s.skipped_ipv6,
        s.skipped_non_trace.values().sum::<usize>(),
        if non_trace.is_empty() {
            String::new()
        } else {
            format!(" ({})", non_trace.join(", "))
        },
        s.skipped_failed,
        s.malformed.len()
    );
    if s.skipped_ipv6 > 0 {
        println!("  (IPv6 traceroutes are not imported: the target network is IPv4)");
    }
    if s.skipped_ipv6_multipath > 0 {
        println!(
            "  skipped: {} IPv6 multipath traces (tracelb): {}",
            s.skipped_ipv6_multipath,
            nkpath_collector::import::IPV6_MULTIPATH_REASON
        );
    }
    if !s.refused_time.is_empty() {
        println!(
            "  {} refused by the time rule (started before 2000 or in the future)",
            s.refused_time.len()
        );
    }
    print_outside(db, s.refused_outside, s.stored_context)?;
    for (what, n) in &s.notes {
        println!("  note: {n} {what}");
    }
    Ok(if s.malformed.is_empty() && s.refused_time.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn bgp_load(db: &mut Db, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let target = if args.target_prefixes.is_empty() && args.target_asn.is_none() {
        None
    } else {
        let stored = db.target()?;
        Some(Target {
            prefixes: if args.target_prefixes.is_empty() {
                stored.prefixes
            } else {
                args.target_prefixes.iter().map(Ipv4Net::trunc).collect()
            },
            asn: args.target_asn.unwrap_or(stored.asn),
        })
    };
    let options = LoadOptions {
        collector: args.collector,
        target,
        accept_truncated: args.accept_truncated,
        hold_lock: Some(args.hold_lock),
    };
    let mut failed = 0usize;
    for file in &args.files {
        let collector = options
            .collector
            .clone()
            .unwrap_or_else(|| mrt::derive_collector(file));
        let progress = progress_bar(file);
        let outcome = mrt::load_file(db, file, &options, Some(&progress));
        progress.finish_and_clear();
        match outcome {
            Ok(LoadOutcome::Loaded(s)) => {
                print_summary(file, &s);
                for warning in &s.warnings {
                    eprintln!("nkpath-collector: warning: {}: {warning}", file.display());
                }
            }
            Ok(LoadOutcome::AlreadyLoaded {
                file,
                loaded_as,
                sha256,
                same_data_recompressed,
            }) => {
                let what = if same_data_recompressed {
                    "the same MRT data (differently compressed) was already loaded"
                } else {
                    "already loaded"
                };
                println!(
                    "{}: skipped, {what} as {loaded_as} (sha256 {sha256})",
                    file.display()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("nkpath-collector: collector {collector}: {e}");
            }
        }
    }
    if let Some(config) = args.alerts.config() {
        let (found, sent) = nkpath_collector::alerts::after_load(db, &config, None)
            .context("alerts (--on-change)")?;
        eprintln!(
            "nkpath-collector: alerts: {} new event(s), {} kept as history; {} run(s) of \
             --on-change, {} failed; {} event(s) wait for a later run",
            found.pending, found.history, sent.sent, sent.failed, sent.waiting
        );
    }
    if failed > 0 {
        eprintln!(
            "nkpath-collector: {failed} of {} files not loaded",
            args.files.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn bgp_live(db: Db, args: &LiveArgs) -> anyhow::Result<ExitCode> {
    use nkpath_collector::{alerts, live};
    let target = db.target()?;
    // Without --ris-live-host: the RIS collectors `bgp sync` fetched into this database.
    let synced = Archive::ris_only(&db.synced_collectors()?);
    let options = args
        .ris_live
        .options(live::DEFAULT_URL, target.prefixes.clone(), &synced);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    eprintln!(
        "nkpath-collector: following RIS Live at {} (Ctrl-C stops)",
        live::client::client_url(&options.url)
    );
    let runner = match args.alerts.config() {
        Some(config) => {
            let alerts_db = Db::open(db.path()).context("cannot open the database for alerts")?;
            Some(alerts::spawn_runner(alerts_db, config)?)
        }
        None => None,
    };
    let handle = runner.as_ref().map(|(h, _)| h.clone());
    runtime
        .block_on(live::run(
            db,
            options,
            move |_, _, heard| {
                if let Some(h) = &handle {
                    h.nudge(Some(heard));
                }
            },
            nkpath_collector::server::shutdown_signal(),
        ))
        .context("RIS Live")?;
    if let Some((handle, thread)) = runner {
        drop(handle);
        let _ = thread.join();
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(file: &std::path::Path, s: &mrt::FileSummary) {
    let span = if s.first_time == s.last_time {
        timestamp::display_unix(s.first_time)
    } else {
        format!(
            "{} to {}",
            timestamp::display_unix(s.first_time),
            timestamp::display_unix(s.last_time)
        )
    };
    let what = if s.kind == "rib" {
        "RIB dump"
    } else {
        "updates"
    };
    println!(
        "{}: loaded {what} ({}, {}) for collector {}, sha256 {}",
        file.display(),
        s.format,
        s.compression,
        s.collector,
        s.sha256
    );
    println!("  time: {span}");
    if let Some(at) = s.truncated_at {
        println!(
            "  truncated at byte {at} (decompressed): kept {} complete records",
            s.records
        );
    }
    if s.kind == "rib" {
        println!(
            "  {} peers, {} IPv4 prefixes, {} routes ({} with full AS path)",
            s.peers, s.prefixes, s.rib_entries, s.target_routes
        );
    } else {
        println!(
            "  {} peers, {} IPv4 prefixes, {} announcements ({} with full AS path), {} withdrawals, \
             {} state changes",
            s.peers, s.prefixes, s.announcements, s.target_routes, s.withdrawals, s.state_changes
        );
    }
    if s.provisional_replaced > 0 {
        println!(
            "  replaced {} provisional RIS Live rows of collector {}",
            s.provisional_replaced, s.collector
        );
    }
    println!("  {} adjacent AS pairs", s.as_adjacencies);
    println!(
        "  skipped: {} IPv6, {} other address families, {} malformed NLRI",
        s.ipv6_skipped, s.other_skipped, s.malformed_nlri
    );
    println!(
        "  {} MRT records, {} bytes decompressed, {:.1} s",
        s.records,
        s.mrt_bytes,
        s.elapsed.as_secs_f64()
    );
}

/// A byte progress bar on stderr, drawn only when stderr is a terminal.
fn progress_bar(file: &std::path::Path) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}
