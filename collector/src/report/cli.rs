//! Command-line arguments and runners of `report`, `export` and `ixp` (flattened into the
//! collector's CLI by `main.rs`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use nkpath_proto::timestamp::{self, DayEnd};
use time::OffsetDateTime;

use super::bins::{BinSize, parse_bin_size};
use super::upstreams::{By, Count};
use super::{Format, render};
use crate::analysis::cymru::OriginLookup;
use crate::analysis::ixp::IxpTable;
use crate::analysis::{AnalysisOptions, Analyzer, Mapper, TraceAnalysis};
use crate::bgp::timeline::upstream_changes;
use crate::sources::cymru::CymruLookup;
use crate::sources::cymru_cache::CymruCache;
use crate::sources::dns::DnsTxtResolver;
use crate::sources::ixp::{read_file, store_table, stored_table};
use crate::store::Db;

/// Options shared by every report and the export.
#[derive(Debug, Clone, Args)]
pub struct AnalysisArgs {
    /// Only traces started at or after this time (RFC 3339, or a date YYYY-MM-DD, UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<OffsetDateTime>,
    /// Only traces started before or at this time (a date means the end of that day).
    #[arg(long, value_name = "TIME", value_parser = parse_time_end)]
    pub until: Option<OffsetDateTime>,
    /// DNS server (IP or IP:PORT) for Team Cymru origin lookups of hop addresses that no
    /// loaded BGP table covers [default: the system's resolvers].
    #[arg(long, value_name = "ADDR", value_parser = parse_resolver)]
    pub resolver: Option<SocketAddr>,
    /// No DNS lookups: addresses no loaded table covers stay unmapped.
    #[arg(long, conflicts_with = "resolver")]
    pub no_dns: bool,
    /// A trace this many minutes or closer to a change of its prefix's announced set is
    /// flagged transitional.
    #[arg(long, value_name = "MINUTES", default_value_t = 15)]
    pub transition_window: u32,
    /// A trace whose BGP state (the newest loaded RIB dump and updates before it) is older
    /// than this gets verdict `unknown` with reason `stale-bgp`: a duration (`3m`, `2h`,
    /// `1d`) or a bare number of hours.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_max_age)]
    pub max_bgp_age: std::time::Duration,
    /// Shortest prefix of the hop-mapping table: hops covered only by shorter prefixes
    /// (a default route, /0–/7 aggregates) stay unmapped.
    #[arg(long, value_name = "LEN", default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub map_min_len: u8,
    /// Longest prefix of the hop-mapping table: longer ones (link /30s, host routes) are
    /// not used, as in CAIDA's prefix-to-AS.
    #[arg(long, value_name = "LEN", default_value_t = 24, value_parser = clap::value_parser!(u8).range(0..=32))]
    pub map_max_len: u8,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// `nkpath-collector report ...`
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The share of the data plane entering the target AS through each upstream, beside the
    /// announced upstreams and their visibility over the same period.
    Upstreams {
        /// Group rows by.
        #[arg(long, value_enum, default_value_t = By::All)]
        by: By,
        /// What one counted unit is.
        #[arg(long, value_enum, default_value_t = Count::Units)]
        count: Count,
        /// Also list both planes per time bin and target /24 (the numbers `report html`
        /// draws): `auto` (an hour for periods up to a week, a day beyond) or a length such
        /// as 15m, 1h, 1d. Bins are aligned to UTC.
        #[arg(long, value_name = "SIZE", value_parser = parse_bin_size)]
        bin: Option<BinSize>,
        /// Options shared by every report.
        #[command(flatten)]
        common: AnalysisArgs,
    },
    /// The traces with verdict mismatch or ambiguous, grouped by agent, target /24, entry
    /// AS and announced upstreams: first and last time, number of traces and the hop that
    /// shows the entry. `--each` lists every trace.
    Mismatches {
        /// One row per trace (time, agent, target, entry AS, verdict and reason, announced
        /// set, entry hop, BGP age, result id) instead of one per group.
        #[arg(long)]
        each: bool,
        /// Options shared by every report.
        #[command(flatten)]
        common: AnalysisArgs,
    },
    /// When an upstream appeared or disappeared, in BGP and in the data plane.
    Changes {
        /// Options shared by every report.
        #[command(flatten)]
        common: AnalysisArgs,
    },
    /// One self-contained HTML page with charts and tables: upstreams over time per target
    /// /24 (control plane above data plane), the path map of the latest day, latency per
    /// entry AS, freshness of the BGP data, and the tables of `report upstreams` and
    /// `report mismatches`.
    ///
    /// The page loads nothing and runs no script (inline SVG and CSS, and a
    /// Content-Security-Policy that forbids the rest), so it opens offline and can be mailed
    /// or archived. The file is written atomically (a new file renamed over FILE).
    #[command(after_help = HTML_EXAMPLES)]
    Html {
        /// The HTML file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Time bins of the charts: `auto` (an hour for periods up to a week, a day beyond)
        /// or a length such as 15m, 1h, 1d.
        #[arg(long, value_name = "SIZE", value_parser = parse_bin_size, default_value = "auto")]
        bin: BinSize,
        /// What one counted unit of the shares is.
        #[arg(long, value_enum, default_value_t = Count::Units)]
        count: Count,
        /// The outage thresholds of the reachability section (as `report reachability`).
        #[command(flatten)]
        outages: super::reachability::OutageArgs,
        /// Options shared by every report (`--format` does not apply).
        #[command(flatten)]
        common: AnalysisArgs,
    },
    /// Reachability per target /24 and time bin: the data plane (an address of the /24
    /// answered a trace or a liveness ping; agents that tried; the last hop reached when
    /// nothing answered) beside the control plane (share of full-feed collector peers with a
    /// route, announced upstreams) and the RPKI state; then the outage list (data-plane,
    /// control-plane, rpki-invalid, unreachable-while-announced; see the README, "Outages").
    Reachability {
        /// Time bins: a length such as 15m, 1h, 1d, or `auto`. Bins are aligned to UTC.
        #[arg(long, value_name = "SIZE", value_parser = parse_bin_size, default_value = "1h")]
        bin: BinSize,
        /// RPKI data older than this (from its generation time) gives state `unknown`.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_max_age)]
        max_rpki_age: std::time::Duration,
        /// The outage thresholds.
        #[command(flatten)]
        outages: super::reachability::OutageArgs,
        /// Options shared by every report.
        #[command(flatten)]
        common: AnalysisArgs,
    },
    /// The latest trace of an agent to a target, hop by hop.
    Path {
        /// The agent id.
        #[arg(long)]
        agent: String,
        /// The target address.
        #[arg(long)]
        target: Ipv4Addr,
        /// Options shared by every report.
        #[command(flatten)]
        common: AnalysisArgs,
    },
}

/// `nkpath-collector export ...`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write the CSV files and export.json into (created if missing; one that
    /// already holds anything is refused without --force). Each file is written whole under
    /// a new name and renamed into place; a symlink there is replaced, never written through.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write into a directory that is not empty, replacing the export's files in it.
    #[arg(long)]
    pub force: bool,

    /// Also write each chart of `report html` as its own SVG file beside the CSV files
    /// (`chart-*.svg`), for papers.
    #[arg(long)]
    pub charts: bool,
    /// Options shared with the reports.
    #[command(flatten)]
    pub common: AnalysisArgs,
}

/// `nkpath-collector ixp ...`
#[derive(Debug, Subcommand)]
pub enum IxpCommand {
    /// Load IXP peering LAN prefixes (PeeringDB ixpfx.json, with ixlan.json and ix.json
    /// beside it for names, or PCH ixp_subnets.csv); replaces the stored list.
    Load {
        /// The files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse()
        .map_err(|_| format!("'{s}' is not an IP address or IP:PORT"))
}

/// A time argument: RFC 3339, or a date (its midnight, UTC).
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    timestamp::parse_user(s, DayEnd::Start)
}

/// `--max-bgp-age`: a duration, or a bare number of hours (as the option once took).
fn parse_max_age(s: &str) -> Result<std::time::Duration, String> {
    if let Ok(hours) = s.trim().parse::<u64>() {
        return Ok(std::time::Duration::from_secs(hours.saturating_mul(3600)));
    }
    humantime::parse_duration(s).map_err(|e| {
        format!("'{s}' is not a duration like 3m, 2h or 1d, nor a number of hours: {e}")
    })
}

/// An end-of-period argument: RFC 3339, or a date (its last instant, UTC).
fn parse_time_end(s: &str) -> Result<OffsetDateTime, String> {
    timestamp::parse_user(s, DayEnd::End)
}

impl AnalysisArgs {
    /// Analysis options from these arguments.
    pub fn options(&self) -> AnalysisOptions {
        AnalysisOptions {
            since: self.since,
            until: self.until,
            transition_window_s: i64::from(self.transition_window) * 60,
            max_bgp_age_s: i64::try_from(self.max_bgp_age.as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// The hop mapper: the stored IXP list, and unless `--no-dns` Team Cymru lookups
    /// through the database's cache (`--no-dns` neither reads nor writes it).
    pub fn mapper<'a>(&self, db: &'a Db) -> anyhow::Result<Mapper<'a>> {
        let fallback: Option<Box<dyn OriginLookup + 'a>> = if self.no_dns {
            None
        } else {
            let resolver =
                DnsTxtResolver::new(self.resolver).context("cannot set up DNS lookups")?;
            Some(Box::new(CymruLookup::new(
                resolver,
                Some(CymruCache::new(db)),
            )))
        };
        if self.map_min_len > self.map_max_len {
            bail!(
                "--map-min-len {} is longer than --map-max-len {}",
                self.map_min_len,
                self.map_max_len
            );
        }
        Ok(Mapper::new(stored_table(db)?, fallback)
            .with_prefix_lengths(self.map_min_len..=self.map_max_len))
    }

    /// Analyses the traces of the period, multipath traces included.
    pub fn analyze(&self, db: &Db) -> anyhow::Result<Vec<TraceAnalysis>> {
        let options = self.options();
        let traces = crate::results::stored_traces(db, options.since, options.until)?;
        let multipaths = crate::results::stored_multipath(db, options.since, options.until)?;
        Analyzer::new(db, self.mapper(db)?, options)?
            .analyze_all_with(traces, multipaths)
            .map_err(Into::into)
    }

    /// The period of `report upstreams` and `report html`: the arguments, else the span of
    /// the analysed traces, else (no traces) the span of the loaded BGP data.
    pub fn report_period(
        &self,
        db: &Db,
        analyses: &[TraceAnalysis],
    ) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
        let (mut a, mut b) = self.period(analyses);
        if analyses.is_empty()
            && let Some((first, last)) = super::upstreams::bgp_period(db)?
        {
            a = self.since.unwrap_or(first);
            b = self.until.unwrap_or(last);
        }
        Ok((a, b))
    }

    /// The period: the arguments, else the span of the analysed traces.
    pub fn period(&self, analyses: &[TraceAnalysis]) -> (OffsetDateTime, OffsetDateTime) {
        let first = analyses.iter().map(|a| a.trace.started_at).min();
        let last = analyses.iter().map(|a| a.trace.started_at).max();
        let now = OffsetDateTime::now_utc();
        (
            self.since.or(first).unwrap_or(now),
            self.until.or(last).unwrap_or(now),
        )
    }
}

const HTML_EXAMPLES: &str = "Examples:
  nkpath-collector report html --out report.html
  nkpath-collector report html --since 2026-11-01 --until 2026-11-30 --bin 1d --no-dns --out nov.html";

/// Builds the HTML page of `report html` (and the charts of `export --charts`).
fn html_report(
    db: &Db,
    common: &AnalysisArgs,
    analyses: &[TraceAnalysis],
    bin: BinSize,
    count: Count,
    outages: crate::analysis::reachability::Settings,
) -> anyhow::Result<super::html::HtmlReport> {
    let (a, b) = common.report_period(db, analyses)?;
    let options = super::html::HtmlOptions {
        unit: count,
        bin,
        max_bgp_age_s: common.options().max_bgp_age_s,
        outages,
    };
    Ok(super::html::build(db, analyses, a, b, &options)?)
}

/// Runs `report html`.
fn run_html(
    db: &Db,
    out: &Path,
    (bin, count): (BinSize, Count),
    outages: &super::reachability::OutageArgs,
    common: &AnalysisArgs,
) -> anyhow::Result<()> {
    if common.format != Format::Table {
        bail!(
            "report html writes HTML: --format does not apply (use report upstreams for JSON or CSV)"
        );
    }
    let analyses = common.analyze(db)?;
    let report = html_report(db, common, &analyses, bin, count, outages.settings())?;
    super::html::write_atomic(out, report.html.as_bytes()).with_context(|| {
        format!(
            "cannot write {} (does its directory exist and can this user write there?)",
            out.display()
        )
    })?;
    println!(
        "{}: {} charts, {} traces, {} bytes",
        out.display(),
        report.charts.len(),
        analyses.len(),
        report.html.len()
    );
    Ok(())
}

/// Runs a report and prints it.
pub fn run_report(db: &Db, command: &ReportCommand) -> anyhow::Result<()> {
    // Each report with the period whose BGP states it uses.
    let (mut tables, format, (from, to)) = match command {
        ReportCommand::Upstreams {
            by,
            count,
            bin,
            common,
        } => {
            let analyses = common.analyze(db)?;
            let (a, b) = common.report_period(db, &analyses)?;
            let mut tables = super::upstreams::report(db, &analyses, *by, *count, a, b)?;
            if let Some(size) = bin {
                let timeline = super::timeline::build(db, &analyses, *count, *size, a, b)?;
                tables.extend(timeline.tables());
            }
            (tables, common.format, (a, b))
        }
        ReportCommand::Mismatches { each, common } => {
            let analyses = common.analyze(db)?;
            let report = if *each {
                super::mismatches::report_each
            } else {
                super::mismatches::report
            };
            (report(&analyses), common.format, common.period(&analyses))
        }
        ReportCommand::Changes { common } => {
            let analyses = common.analyze(db)?;
            let span = crate::bgp::timeline::loaded_span(db)?;
            let (mut a, mut b) = common.period(&analyses);
            if let Some((first, last)) = span {
                if common.since.is_none() {
                    a = a.min(OffsetDateTime::from_unix_timestamp(first)?);
                }
                if common.until.is_none() {
                    b = b.max(OffsetDateTime::from_unix_timestamp(last)?);
                }
            }
            let bgp = upstream_changes(db, a, b)?;
            (
                super::changes::report(&bgp, &analyses),
                common.format,
                (a, b),
            )
        }
        ReportCommand::Path {
            agent,
            target,
            common,
        } => {
            let analyses = common.analyze(db)?;
            let (Some(trace), Some(tables)) = (
                super::path::latest(&analyses, agent, *target),
                super::path::report(&analyses, agent, *target),
            ) else {
                bail!("no trace from agent {agent} to {target} in the database (and period)");
            };
            let t = trace.trace.started_at;
            (tables, common.format, (t, t))
        }
        ReportCommand::Reachability {
            bin,
            max_rpki_age,
            outages,
            common,
        } => {
            let analyses = common.analyze(db)?;
            let options = common.options();
            let pings = crate::results::stored_pings(db, options.since, options.until)?;
            let (a, b) = common.report_period(db, &analyses)?;
            let report = super::reachability::build(
                db,
                &analyses,
                &pings,
                a,
                b,
                *bin,
                &outages.settings(),
                i64::try_from(max_rpki_age.as_secs()).unwrap_or(i64::MAX),
                OffsetDateTime::now_utc().unix_timestamp(),
            )?;
            (report.tables(), common.format, (a, b))
        }
        ReportCommand::Html {
            out,
            bin,
            count,
            outages,
            common,
        } => return run_html(db, out, (*bin, *count), outages, common),
    };
    super::flag_truncated_dumps(db, &mut tables, from, to)?;
    print!("{}", render(&tables, format)?);
    Ok(())
}

/// Runs an export.
pub fn run_export(db: &Db, args: &ExportArgs) -> anyhow::Result<()> {
    // Checked before the analysis: a refused directory costs nothing.
    crate::export::check_out_dir(&args.out, args.force)?;
    let analyses = args.common.analyze(db)?;
    let summary = crate::export::export(db, &analyses, &args.out)?;
    if args.charts {
        let report = html_report(
            db,
            &args.common,
            &analyses,
            BinSize::Auto,
            Count::Units,
            crate::analysis::reachability::Settings::default(),
        )?;
        for chart in &report.charts {
            let file = args.out.join(format!("chart-{}.svg", chart.name));
            let svg = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n",
                chart.svg
            );
            super::html::write_atomic(&file, svg.as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
        }
        println!(
            "{}: {} charts (chart-*.svg)",
            args.out.display(),
            report.charts.len()
        );
    }
    println!(
        "{}: {} traces, {} hops, {} as_paths, {} bgp_upstreams rows; see export.json",
        args.out.display(),
        summary.traces,
        summary.hops,
        summary.as_paths,
        summary.bgp_upstreams
    );
    Ok(())
}

/// Runs `ixp load`.
pub fn run_ixp(db: &Db, command: &IxpCommand) -> anyhow::Result<()> {
    match command {
        IxpCommand::Load { files } => {
            let mut all = Vec::new();
            for file in files {
                let prefixes = read_file(file)?;
                println!("{}: {} IPv4 IXP prefixes", file.display(), prefixes.len());
                all.extend(prefixes);
            }
            let table = IxpTable::new(all);
            store_table(db, &table)?;
            println!("{} IXP prefixes stored", table.prefixes().len());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_bgp_age_takes_durations_and_bare_hours() {
        assert_eq!(parse_max_age("3m"), Ok(std::time::Duration::from_mins(3)));
        assert_eq!(parse_max_age("24"), Ok(std::time::Duration::from_hours(24)));
        assert_eq!(parse_max_age("1d"), Ok(std::time::Duration::from_hours(24)));
        assert!(parse_max_age("old").is_err());
    }
}
