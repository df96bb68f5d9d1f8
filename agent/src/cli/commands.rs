//! The `trace` and `survey` commands, run inside the tokio runtime.

use std::io::{BufWriter, IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nkpath_proto::atomic_file::AtomicFile;
use nkpath_proto::{MultipathResult, StopReason, TraceResult};

use crate::cli::Plan;
use crate::cli::output::{render_multipath, render_trace};
use crate::probing::annotate::{Annotator, AnnotatorConfig};
use crate::probing::engine::{self, RunStats};
use crate::probing::mda::{self, MdaConfig};
use crate::probing::pacing::Pacer;
use crate::probing::sockets::RawSockets;

/// How long `trace --resolver` waits for names after the trace.
const NAME_WAIT: Duration = Duration::from_secs(3);

/// `nkpath-agent trace`: one trace, printed.
pub async fn trace(
    plan: Plan,
    sockets: RawSockets,
    json: bool,
    resolver: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let sockets = Arc::new(sockets.into_async(plan.allowlist)?);
    if let Some(cfg) = &plan.mda {
        let target = *plan.targets.first().context("no target to trace")?;
        let mut pacer = Pacer::new(plan.engine.rates, tokio::time::Instant::now());
        let result = mda::trace(sockets, target, cfg, &mut pacer).await?;
        let mut stdout = std::io::stdout().lock();
        if json {
            serde_json::to_writer_pretty(&mut stdout, &result)?;
            writeln!(stdout)?;
        } else {
            write!(stdout, "{}", render_multipath(&result))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut results: Vec<TraceResult> = Vec::new();
    engine::run(sockets, &plan.targets, &plan.engine, |r| results.push(r)).await?;
    let mut result = results.pop().context("the engine returned no trace")?;
    if let Some(resolver) = resolver {
        let annotator = Annotator::new(&AnnotatorConfig {
            resolver: Some(resolver),
            ..AnnotatorConfig::default()
        })?;
        annotator.annotate(&mut result, NAME_WAIT).await;
    }
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &result)?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", render_trace(&result))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `nkpath-agent survey`: every target once, one JSON line per trace, written to `out`'s
/// new file and renamed over its destination at the end (also when the survey stops on an
/// error: what was measured is kept, in whole lines).
pub async fn survey(plan: Plan, sockets: RawSockets, out: AtomicFile) -> anyhow::Result<ExitCode> {
    let sockets = Arc::new(sockets.into_async(plan.allowlist.clone())?);
    if let Some(cfg) = &plan.mda {
        return survey_mda(sockets, &plan, cfg, out).await;
    }
    let progress = progress_bar(plan.targets.len() as u64);
    let mut writer = BufWriter::new(out);
    let mut write_error: Option<std::io::Error> = None;
    let stats = engine::run(sockets, &plan.targets, &plan.engine, |result| {
        progress.inc(1);
        if write_error.is_some() {
            return;
        }
        // One line per result, flushed at once: a survey killed half-way keeps what it measured.
        let written = serde_json::to_writer(&mut writer, &result)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"))
            .and_then(|()| writer.flush());
        if let Err(e) = written {
            write_error = Some(e);
        }
    })
    .await;
    progress.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e).context("writing the results");
    }
    commit_survey(writer)?;
    let stats = stats?;
    println!("{}", summary(&stats));
    Ok(ExitCode::SUCCESS)
}

/// `nkpath-agent survey --mda`: one multipath trace per target, one after
/// the other through one pacer, one JSON line per trace.
async fn survey_mda<N: crate::probing::network::Network>(
    sockets: Arc<N>,
    plan: &Plan,
    cfg: &MdaConfig,
    out: AtomicFile,
) -> anyhow::Result<ExitCode> {
    let progress = progress_bar(plan.targets.len() as u64);
    let mut writer = BufWriter::new(out);
    let mut pacer = Pacer::new(plan.engine.rates, tokio::time::Instant::now());
    let started = std::time::Instant::now();
    let (mut reached, mut probes, mut budget_hit) = (0, 0_u64, 0);
    for (i, &target) in plan.targets.iter().enumerate() {
        // Each target its own flows, all repeatable from the one seed.
        let cfg = MdaConfig {
            seed: cfg.seed.wrapping_add(i as u64),
            ..cfg.clone()
        };
        let result: MultipathResult =
            mda::trace(Arc::clone(&sockets), target, &cfg, &mut pacer).await?;
        reached += usize::from(result.stop_reason == StopReason::Reached);
        budget_hit += usize::from(result.budget_hit);
        probes += u64::from(result.probes_sent);
        serde_json::to_writer(&mut writer, &result)?;
        writer.write_all(b"\n")?;
        writer.flush().context("writing the results")?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    commit_survey(writer)?;
    println!(
        "multipath survey done: {} targets, {reached} reached, {budget_hit} ended by their budget, \
         {probes} probes sent, {:.1} s",
        plan.targets.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

/// Flushes a survey's output and renames it into place.
fn commit_survey(writer: BufWriter<AtomicFile>) -> anyhow::Result<()> {
    let out = writer
        .into_inner()
        .map_err(std::io::IntoInnerError::into_error)
        .context("writing the results")?;
    // The rename is made as the user the agent dropped to, who may not write where root
    // created the file: then the complete file stays under its temporary name.
    out.commit().map_err(|e| {
        anyhow::anyhow!(
            "{e}; the survey renames its file as the unprivileged user it runs as: give --user \
             a user who may write that directory, or choose another --out"
        )
    })
}

fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} traces ({eta} left)",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The closing line of a survey.
pub fn summary(stats: &RunStats) -> String {
    format!(
        "survey done: {} targets, {} reached, {} probes sent, {} replies ({} unmatched, {} late, {} malformed), {:.1} s",
        stats.targets,
        stats.reached,
        stats.probes_sent,
        stats.replies,
        stats.unmatched,
        stats.late,
        stats.malformed,
        stats.elapsed.as_secs_f64()
    )
}
