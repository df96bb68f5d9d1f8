//! `report html`: one self-contained HTML page with the charts (inline SVG drawn here) and
//! the tables of the text reports. No script, no font, no request: a Content-Security-Policy
//! `default-src 'none'` (inline styles allowed) says so to the browser, and every string
//! from the network (PTR names, agent ids, AS and file names) passes [`escape_html`].
//!
//! Every drawn mark carries its numbers as `data-*` attributes (`data-asn`, `data-n`,
//! `data-of`, `data-bin`, …) and a `<title>` tooltip; the per-bin numbers are those of
//! `report upstreams --bin` (both come from [`crate::report::timeline`]).

mod freshness;
mod latency;
mod palette;
mod pathmap;
mod reachability_chart;
mod svg;
mod timeline_chart;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use nkpath_proto::timestamp;
use time::OffsetDateTime;

use self::palette::Palette;
use super::bins::BinSize;
use super::timeline::{self, Timeline};
use super::upstreams::{By, Count};
use super::{ReportError, Table};
use crate::analysis::{TraceAnalysis, VerdictKind};
use crate::bgp::timeline::loaded_span;
use crate::store::Db;
use crate::text::escape_html;

/// What the page is built from besides the traces.
#[derive(Debug, Clone, Copy)]
pub struct HtmlOptions {
    /// What the shares count.
    pub unit: Count,
    /// The time bins.
    pub bin: BinSize,
    /// The maximum BGP state age of the analysis (seconds), drawn on the freshness chart.
    pub max_bgp_age_s: i64,
    /// The outage thresholds of the reachability section (as `report reachability`'s).
    pub outages: crate::analysis::reachability::Settings,
}

/// One chart: a name for its file (`upstreams-175.45.176.0-24-agents`) and the SVG.
#[derive(Debug, Clone)]
pub struct Chart {
    /// File stem, ASCII letters, digits, `.` and `-` only.
    pub name: String,
    /// The SVG document.
    pub svg: String,
}

/// The page and its charts.
#[derive(Debug, Clone)]
pub struct HtmlReport {
    /// The HTML document.
    pub html: String,
    /// Each chart on its own.
    pub charts: Vec<Chart>,
}

/// The CSP of the page: nothing may load or run; inline styles (the `<style>` element and
/// SVG presentation) may apply.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Verdana,sans-serif;font-size:13px;color:#111;max-width:920px;\
margin:1.5em auto;padding:0 1em;line-height:1.4}\
h1{font-size:20px}h2{font-size:16px;margin-top:1.8em;border-bottom:1px solid #ccc}\
figure{margin:1em 0;break-inside:avoid;page-break-inside:avoid}\
figcaption{font-size:12px;color:#333;margin-top:.3em}\
svg.chart{max-width:100%;height:auto;display:block}\
svg .missing{fill:#900;font-style:italic}svg .inbar{font-size:10px;fill:#000}\
.missing-data{border:1px solid #c60;background:#fff4e5;padding:.5em .8em;margin:.8em 0}\
table{border-collapse:collapse;font-size:11px;margin:.5em 0 1.2em;width:100%}\
caption{text-align:left;font-weight:bold;padding:.3em 0}\
th,td{border:1px solid #ccc;padding:2px 4px;text-align:left;vertical-align:top;\
overflow-wrap:anywhere}th{background:#f0f0f0}p.note{font-size:11px;color:#444;margin:.1em 0}\
@page{size:A4;margin:12mm}\
@media print{body{max-width:none;margin:0;padding:0;font-size:10px}\
table{font-size:8px}h2{break-after:avoid}}";

/// Builds the page over `analyses` for `[from, to]`.
pub fn build(
    db: &Db,
    analyses: &[TraceAnalysis],
    from: OffsetDateTime,
    to: OffsetDateTime,
    options: &HtmlOptions,
) -> Result<HtmlReport, ReportError> {
    let target = db.target()?;
    let has_bgp = loaded_span(db)?.is_some();
    let timeline = timeline::build(db, analyses, options.unit, options.bin, from, to)?;
    let palette = palette_of(analyses, &timeline);
    let mut page = Page::default();
    let prefixes: Vec<String> = target.prefixes.iter().map(ToString::to_string).collect();
    let period = format!(
        "{} to {} (UTC)",
        timestamp::display(from),
        timestamp::display(to)
    );
    let _ = write!(
        page.body,
        "<h1>nkpath: how traffic enters AS{} ({})</h1>\
         <p>Period: {}. Generated {}. All times are UTC. Time bins: {} (aligned to UTC). \
         {} traces analysed.</p>",
        target.asn,
        escape_html(&prefixes.join(", ")),
        escape_html(&period),
        escape_html(&timestamp::display(OffsetDateTime::now_utc())),
        escape_html(&timeline.bins.label()),
        analyses.len()
    );
    missing_notes(&mut page, analyses.is_empty(), has_bgp);

    page.section("Upstreams over time, per target /24");
    if timeline.panels.is_empty() {
        page.missing("Nothing to draw: no traces in the period and no announced prefix of the target AS in the loaded BGP data.");
    }
    for (k, panel) in timeline.panels.iter().enumerate() {
        let svg = timeline_chart::draw(&format!("c1-{k}"), &timeline, panel, &palette);
        let caption = format!(
            "{}: top, announced upstreams and their visibility (share of collector peers with a \
             route whose AS path has the upstream directly before AS{}, time-weighted per bin); \
             bottom, entry-AS share per bin, counted in {}. Bins of {}, {}.",
            panel.key.label(),
            target.asn,
            timeline.unit.header(),
            timeline.bins.label(),
            period
        );
        page.figure(
            &format!("upstreams-{}", file_safe(&panel.key.label())),
            svg,
            &caption,
        );
    }

    page.section("Reachability per target /24, beside the upstreams");
    let pings = crate::results::stored_pings(db, Some(from), Some(to))?;
    let reach = super::reachability::build(
        db,
        analyses,
        &pings,
        from,
        to,
        options.bin,
        &options.outages,
        crate::rpki::DEFAULT_MAX_RPKI_AGE_S,
        OffsetDateTime::now_utc().unix_timestamp(),
    )?;
    if reach.targets.is_empty() {
        page.missing("No target /24 to draw.");
    } else {
        page.figure(
            "reachability",
            reachability_chart::draw("c5", &reach),
            &format!(
                "Per target /24: top lane, whether an address of it answered a trace or a ping \
                 in the bin (green yes, red no, grey not tried); bottom lane, share of full-feed \
                 collector peers with a route (bar height; red outline: RPKI-invalid). Bins of \
                 {}, {}; the numbers of `report reachability`.",
                reach.bins.label(),
                period
            ),
        );
        if let Some(outages) = reach.tables().pop() {
            page.table(&outages);
        }
    }

    page.section("Path map, latest period");
    if analyses.is_empty() {
        page.missing("No traces in the period: no path to draw. Import agents' results (`import`) or let agents upload (`serve`).");
    } else {
        let latest_from = (to - time::Duration::days(1)).max(from);
        let latest: Vec<&TraceAnalysis> = analyses
            .iter()
            .filter(|a| a.trace.started_at >= latest_from)
            .collect();
        let which = format!(
            "the latest day of the period, {} to {} (UTC)",
            timestamp::display(latest_from),
            timestamp::display(to)
        );
        let svg = pathmap::draw("c2", &latest, &which, &palette);
        page.figure(
            "path-map",
            svg,
            &format!(
                "Traces ({}) of {which}, from each vantage AS (the agent's AS) through the \
                 public transit ASes of the data-plane path to the entry AS and the target /24. \
                 Band width: number of traces; colour and pattern: entry AS.",
                latest.len()
            ),
        );
        page.table(&entry_hops(&latest, &which));
    }

    page.section("Latency per upstream");
    let spreads = latency::spreads(analyses, &target.prefixes);
    if spreads.is_empty() {
        page.missing("No trace in the period has a reply from inside the target prefixes: no latency to draw.");
    } else {
        let svg = latency::draw("c3", &spreads, &period, &palette);
        page.figure(
            "latency",
            svg,
            &format!(
                "RTT in ms of each trace's deepest reply from inside the target prefixes, per \
                 entry AS and target /24, counted in traces, {period}: bar 10th–90th \
                 percentile, tick median, whiskers minimum–maximum."
            ),
        );
    }

    page.section("Freshness and caveats");
    let dumps = db.latest_rib_dumps(to.unix_timestamp())?;
    let svg = freshness::draw("c4", &dumps, to.unix_timestamp(), options.max_bgp_age_s);
    page.figure(
        "freshness",
        svg,
        &format!(
            "Age of each route collector's newest RIB dump at the end of the period ({}).",
            timestamp::display(to)
        ),
    );
    page.table(&caveats(analyses));
    page.table(&agents(db, analyses)?);

    page.section("Tables: report upstreams and report mismatches, same period");
    let mut tables = super::upstreams::report(db, analyses, By::All, options.unit, from, to)?;
    tables.extend(super::mismatches::report(analyses));
    super::flag_truncated_dumps(db, &mut tables, from, to)?;
    for t in &tables {
        page.table(t);
    }
    Ok(page.finish(target.asn))
}

/// Says what is missing when traces or BGP data are.
fn missing_notes(page: &mut Page, no_traces: bool, has_bgp: bool) {
    match (no_traces, has_bgp) {
        (true, false) => page.missing(
            "No traces and no BGP data yet: nothing to draw. Load RIB dumps with `bgp load` and \
             import traces (`import`) or let agents upload (`serve`).",
        ),
        (true, true) => page.missing(
            "No traces in the period (BGP data only): the data plane (entry-AS shares, path map, \
             latency) is missing; the control plane is drawn. Import traces (`import`) or let \
             agents upload (`serve`).",
        ),
        (false, false) => page.missing(
            "No BGP data loaded (traces only): the announced upstreams, their visibility and \
             the verdicts are missing; hops are mapped to ASes only through DNS, if at all. \
             Load RIB dumps with `bgp load`.",
        ),
        (false, true) => {}
    }
}

/// One palette for every AS the page draws.
fn palette_of(analyses: &[TraceAnalysis], timeline: &Timeline) -> Palette {
    let mut ases: BTreeSet<u32> = BTreeSet::new();
    for a in analyses {
        ases.extend(a.entry.asn);
    }
    for p in &timeline.panels {
        for ups in p.control.values() {
            ases.extend(ups.keys());
        }
    }
    Palette::new(ases)
}

/// Counts the reader must know before trusting the shares.
fn caveats(analyses: &[TraceAnalysis]) -> Table {
    let mut t = Table::new(
        "Caveats: traces of the period by what limits their verdict",
        &["what", "traces"],
    );
    let count = |f: &dyn Fn(&TraceAnalysis) -> bool| analyses.iter().filter(|a| f(a)).count();
    let rows: [(&str, usize); 5] = [
        ("all traces", analyses.len()),
        (
            "judged against stale BGP (verdict unknown, stale-bgp)",
            count(&|a| a.verdict.reason.starts_with("stale-bgp")),
        ),
        (
            "verdict unknown (any reason)",
            count(&|a| a.verdict.kind == VerdictKind::Unknown),
        ),
        (
            "without BGP data at their time",
            count(&|a| !a.has_bgp_data),
        ),
        (
            "transitional (near a change of the announced set)",
            count(&|a| a.transitional),
        ),
    ];
    for (what, n) in rows {
        t.push_cells(vec![super::Cell::name(what), super::Cell::count(n)]);
    }
    t
}

/// Most rows of the entry-hop table.
const ENTRY_HOP_ROWS: usize = 25;

/// The hops that show the entry in `traces`, with their names as the agents' PTR lookups
/// gave them (names come from the network: escaped like every other cell).
fn entry_hops(traces: &[&TraceAnalysis], which: &str) -> Table {
    let mut t = Table::new(
        format!("Entry hops of {which}: the hop directly before the target AS, counted in traces"),
        &["entry_as", "address", "name", "traces"],
    );
    let mut hops: std::collections::BTreeMap<(Option<u32>, std::net::Ipv4Addr, String), usize> =
        std::collections::BTreeMap::new();
    for a in traces {
        let Some((ttl, address)) = a.entry.hop else {
            continue;
        };
        let name = a
            .hops
            .iter()
            .filter(|h| h.ttl == ttl)
            .find_map(|h| h.reply_of(address))
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        *hops.entry((a.entry.asn, address, name)).or_default() += 1;
    }
    let mut rows: Vec<_> = hops.into_iter().collect();
    // The busiest first; a long tail would bury the page.
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if rows.len() > ENTRY_HOP_ROWS {
        let rest: usize = rows[ENTRY_HOP_ROWS..].iter().map(|r| r.1).sum();
        t.notes.push(format!(
            "the {ENTRY_HOP_ROWS} busiest of {} entry hops; the other {} carried {rest} \
             traces (every hop is in the export's hops.csv)",
            rows.len(),
            rows.len() - ENTRY_HOP_ROWS
        ));
        rows.truncate(ENTRY_HOP_ROWS);
    }
    for ((asn, address, name), n) in rows {
        t.push_cells(vec![
            super::Cell::asn(asn),
            super::Cell::name(address.to_string()),
            super::Cell::name(name),
            super::Cell::count(n),
        ]);
    }
    t
}

/// Agents: their last upload and their last trace in the period.
fn agents(db: &Db, analyses: &[TraceAnalysis]) -> Result<Table, ReportError> {
    let mut t = Table::new(
        "Agents: last upload to this collector and last trace in the period (UTC)",
        &[
            "agent",
            "last_upload",
            "last_trace_in_period",
            "traces_in_period",
        ],
    );
    let mut names: BTreeSet<String> = analyses.iter().map(|a| a.trace.agent_id.clone()).collect();
    let enrolled = db.agents()?;
    names.extend(enrolled.iter().map(|a| a.name.clone()));
    for name in names {
        let upload = enrolled
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.last_seen_at.clone());
        let mine: Vec<&TraceAnalysis> = analyses
            .iter()
            .filter(|a| a.trace.agent_id == name)
            .collect();
        let last = mine.iter().map(|a| a.trace.started_at).max();
        t.push_cells(vec![
            super::Cell::name(name),
            upload.map_or_else(super::Cell::missing, super::Cell::name),
            last.map_or_else(super::Cell::missing, |l| {
                super::Cell::name(timestamp::display(l))
            }),
            super::Cell::count(mine.len()),
        ]);
    }
    Ok(t)
}

/// `175.45.176.0/24 (agents)` → `175.45.176.0-24-agents`.
fn file_safe(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The page being assembled.
#[derive(Debug, Default)]
struct Page {
    body: String,
    charts: Vec<Chart>,
}

impl Page {
    fn section(&mut self, title: &str) {
        let _ = write!(self.body, "<h2>{}</h2>", escape_html(title));
    }

    fn missing(&mut self, text: &str) {
        let _ = write!(
            self.body,
            "<p class=\"missing-data\" role=\"note\">{}</p>",
            escape_html(text)
        );
    }

    fn figure(&mut self, name: &str, svg: String, caption: &str) {
        let _ = write!(
            self.body,
            "<figure data-chart=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
            escape_html(name),
            escape_html(caption)
        );
        self.charts.push(Chart {
            name: name.to_owned(),
            svg,
        });
    }

    fn table(&mut self, t: &Table) {
        let _ = write!(
            self.body,
            "<table><caption>{}</caption>",
            escape_html(&t.title)
        );
        for note in &t.notes {
            let _ = write!(
                self.body,
                "<tr><td colspan=\"{}\"><p class=\"note\">{}</p></td></tr>",
                t.columns.len(),
                escape_html(note)
            );
        }
        self.body.push_str("<tr>");
        for c in &t.columns {
            let _ = write!(self.body, "<th>{}</th>", escape_html(c));
        }
        self.body.push_str("</tr>");
        for row in &t.rows {
            self.body.push_str("<tr>");
            for cell in row {
                let _ = write!(self.body, "<td>{}</td>", escape_html(cell.as_str()));
            }
            self.body.push_str("</tr>");
        }
        self.body.push_str("</table>");
    }

    fn finish(self, asn: u32) -> HtmlReport {
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>nkpath report: upstreams of AS{asn}</title><style>{STYLE}</style></head>\
             <body>{}</body></html>\n",
            self.body
        );
        HtmlReport {
            html,
            charts: self.charts,
        }
    }
}

/// Writes `bytes` to `path` atomically and never through a symlink (see
/// [`nkpath_proto::atomic_file`], the one writer of whole files).
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
) -> Result<(), nkpath_proto::atomic_file::CommitError> {
    nkpath_proto::atomic_file::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_charts_are_plain() {
        assert_eq!(
            file_safe("175.45.176.0/24 (agents)"),
            "175.45.176.0-24-agents"
        );
    }

    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = std::env::temp_dir().join(format!("nkpath-html-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let out = dir.join("report.html");
        let _ = std::fs::remove_file(&out);
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_atomic(&out, b"<html>").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "<html>");
        assert!(!std::fs::symlink_metadata(&out).unwrap().is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
