//! `nkpath-collector export --out DIR`: CSV datasets of the analysed traces and the announced
//! upstreams, with `export.json` saying what produced them. The schemas are documented in
//! `collector/EXPORTS.md`.
//!
//! Every file is UTF-8 with a header row, RFC 4180 quoting (the csv crate), times in ISO 8601
//! UTC, and empty fields for missing values, so pandas and DuckDB load them as they are.
//!
//! Each file is written under a new name and renamed into place once every file is complete
//! ([`nkpath_proto::atomic_file`]): an export that fails leaves the directory as it was, and
//! a symlink in the directory is replaced, never written through. A directory that already
//! holds anything is refused unless the user says `--force` ([`check_out_dir`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nkpath_proto::atomic_file::{AtomicFile, CommitError};
use nkpath_proto::timestamp;
use serde::Serialize;

use crate::analysis::{HopClass, TraceAnalysis};
use crate::bgp::BgpError;
use crate::bgp::timeline::{loaded_span, walk_target_routes};
use crate::settings::SettingsError;
use crate::store::{Db, DbError};

/// Why an export could not be written. Nothing in the directory changed unless the error
/// says which file could not be renamed into place; the database is only read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A file or the directory cannot be written.
    #[error("cannot write {}: {source}; choose another --out directory", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory already holds files and `--force` was not given.
    #[error(
        "{} is not empty: an export replaces the files it writes there; give --force to replace them, or choose an empty or new directory",
        dir.display()
    )]
    NotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A complete file could not be renamed into place.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Writing CSV failed.
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Writing failed.
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    /// JSON could not be written.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The target settings could not be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The BGP data could not be read.
    #[error("reading BGP data: {0}")]
    Bgp(#[from] BgpError),
}

/// Rows written per file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// traces.csv rows.
    pub traces: usize,
    /// hops.csv rows.
    pub hops: usize,
    /// as_paths.csv rows.
    pub as_paths: usize,
    /// bgp_upstreams.csv rows.
    pub bgp_upstreams: usize,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

fn asns(list: &[u32]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn writer(dir: &Path, name: &str) -> Result<csv::Writer<AtomicFile>, ExportError> {
    let path = dir.join(name);
    let file = AtomicFile::create(&path).map_err(|source| ExportError::Write { path, source })?;
    Ok(csv::Writer::from_writer(file))
}

/// The complete file of a CSV writer, to commit once every file is written.
fn finish(writer: csv::Writer<AtomicFile>) -> Result<AtomicFile, ExportError> {
    writer
        .into_inner()
        .map_err(|e| ExportError::Io(e.into_error()))
}

/// Refuses an existing `dir` that holds anything unless `force`: an export replaces its
/// files, and a user pointing it at a directory in use should say so.
pub fn check_out_dir(dir: &Path, force: bool) -> Result<(), ExportError> {
    if force {
        return Ok(());
    }
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(ExportError::NotEmpty {
            dir: dir.to_owned(),
        }),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ExportError::Write {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Writes the datasets of `analyses` into `dir`.
pub fn export(
    db: &Db,
    analyses: &[TraceAnalysis],
    dir: &Path,
) -> Result<ExportSummary, ExportError> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut summary = ExportSummary::default();

    let mut traces = writer(dir, "traces.csv")?;
    traces.write_record([
        "result_id",
        "agent_id",
        "agent_version",
        "round_id",
        "source",
        "target",
        "protocol",
        "flow",
        "started_at",
        "stop_reason",
        "hops_probed",
        "attempts",
        "timeout_ms",
        "gap_limit",
        "first_ttl",
        "max_ttl",
        "pps",
        "per_prefix_pps",
    ])?;
    let mut hops = writer(dir, "hops.csv")?;
    hops.write_record([
        "result_id",
        "ttl",
        "attempt",
        "sent_at_us",
        "address",
        "rtt_us",
        "reply_ttl",
        "icmp_type",
        "icmp_code",
        "tcp_flags",
        "quoted_ttl",
        "hop_class",
        "asn",
        "ixp",
        "name",
        "inherited_from",
    ])?;
    let mut paths = writer(dir, "as_paths.csv")?;
    paths.write_record([
        "result_id",
        "agent_id",
        "target",
        "started_at",
        "agent_asn",
        "data_plane_as_path",
        "entry_asn",
        "entry_inferred",
        "entry_ttl",
        "entry_address",
        "announced_prefix",
        "announced_upstreams",
        "verdict",
        "verdict_reason",
        "transitional",
        "bgp_peer",
        "bgp_peer_as_path",
        "bgp_missing_from_data_plane",
        "data_plane_missing_from_bgp",
        "bgp_age_s",
        "entry_reasons",
        "source",
        "branches",
        "multi_entry",
        "entry_asns",
    ])?;
    let mut params: BTreeMap<String, (serde_json::Value, usize)> = BTreeMap::new();
    for a in analyses {
        let t = &a.trace;
        let p = &t.params;
        let flow = serde_json::to_string(&t.flow)?;
        traces.write_record([
            t.result_id.to_string(),
            t.agent_id.clone(),
            t.agent_version.clone(),
            t.round_id.to_string(),
            t.source.to_string(),
            t.target.to_string(),
            t.protocol.to_string(),
            flow,
            timestamp::stored(t.started_at),
            serde_json::to_value(t.stop_reason)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            t.hops.len().to_string(),
            p.attempts.to_string(),
            p.timeout_ms.to_string(),
            p.gap_limit.to_string(),
            p.first_ttl.to_string(),
            p.max_ttl.to_string(),
            p.pps.to_string(),
            p.per_prefix_pps.to_string(),
        ])?;
        summary.traces += 1;
        let value = serde_json::json!({ "protocol": t.protocol.as_str(), "params": p });
        params.entry(value.to_string()).or_insert((value, 0)).1 += 1;

        // Every address that replied, at every TTL, was mapped by the analysis.
        let classes: BTreeMap<(u8, Ipv4Addr), &HopClass> = a
            .hops
            .iter()
            .flat_map(|h| h.replies.iter().map(|r| ((h.ttl, r.address), &r.class)))
            .collect();
        let names: BTreeMap<_, _> = t
            .annotations
            .iter()
            .filter_map(|n| Some((n.address, n.name.clone()?)))
            .collect();
        for hop in &t.hops {
            for probe in &hop.probes {
                let r = probe.reply.as_ref();
                let class = r.and_then(|r| classes.get(&(hop.ttl, r.address)).copied());
                hops.write_record([
                    t.result_id.to_string(),
                    hop.ttl.to_string(),
                    probe.attempt.to_string(),
                    probe.sent_at_us.to_string(),
                    opt(r.map(|r| r.address)),
                    opt(r.map(|r| r.rtt_us)),
                    opt(r.map(|r| r.reply_ttl)),
                    opt(r.and_then(|r| r.icmp_type)),
                    opt(r.and_then(|r| r.icmp_code)),
                    opt(r.and_then(|r| r.tcp_flags)),
                    opt(r.and_then(|r| r.quoted_ttl)),
                    r.map_or("silent", |_| class.map_or("unmapped", |c| c.kind()))
                        .to_owned(),
                    opt(class.and_then(HopClass::asn)),
                    match class {
                        Some(HopClass::Ixp(name)) => name.clone(),
                        _ => String::new(),
                    },
                    r.and_then(|r| names.get(&r.address).cloned())
                        .unwrap_or_default(),
                    opt(hop.inherited.map(|from| from.target)),
                ])?;
                summary.hops += 1;
            }
        }

        let ann = a.announced_prefix();
        let cmp = a.peer_comparison.as_ref();
        let multi_entry = a.multipath.as_ref().is_some_and(|m| m.multi_entry);
        // A multi-entry trace has no single entry AS: `entry_asns` lists them, as it counts.
        let entry_asns: Vec<u32> = a.entry_ases().iter().filter_map(|e| e.0).collect();
        paths.write_record([
            t.result_id.to_string(),
            t.agent_id.clone(),
            t.target.to_string(),
            timestamp::stored(t.started_at),
            opt(a.agent_asn),
            asns(&a.data_path),
            opt(a.entry.asn.filter(|_| !multi_entry)),
            a.entry.inferred.to_string(),
            opt(a.entry.hop.map(|h| h.0)),
            opt(a.entry.hop.map(|h| h.1)),
            opt(ann.map(|p| p.prefix)),
            ann.map_or_else(String::new, |p| {
                asns(&p.upstreams.iter().copied().collect::<Vec<_>>())
            }),
            a.verdict.kind.to_string(),
            a.verdict.reason.clone(),
            a.transitional.to_string(),
            cmp.map_or_else(String::new, |c| c.peer.clone()),
            cmp.map_or_else(String::new, |c| asns(&c.bgp_path)),
            cmp.map_or_else(String::new, |c| asns(&c.missing)),
            cmp.map_or_else(String::new, |c| asns(&c.extra)),
            opt(a.bgp_age_s),
            a.entry.reasons.join("; "),
            a.source_kind().to_owned(),
            opt(a.multipath.as_ref().map(|m| m.branches.len())),
            multi_entry.to_string(),
            asns(&entry_asns),
        ])?;
        summary.as_paths += 1;
    }
    let mut files = vec![finish(traces)?, finish(hops)?, finish(paths)?];
    let (rows, upstreams) = write_bgp_upstreams(db, dir)?;
    summary.bgp_upstreams = rows;
    files.push(upstreams);
    files.push(write_metadata(
        db,
        dir,
        &summary,
        params.into_values().collect(),
    )?);
    // Every file is complete: only now does any of them replace what the directory held.
    for file in files {
        file.commit()?;
    }
    Ok(summary)
}

/// Piecewise-constant announced upstreams of every target-overlapping prefix over the loaded
/// BGP data: one row per (prefix, upstream, interval with constant visibility).
fn write_bgp_upstreams(db: &Db, dir: &Path) -> Result<(usize, AtomicFile), ExportError> {
    let mut out = writer(dir, "bgp_upstreams.csv")?;
    out.write_record([
        "valid_from",
        "valid_until",
        "prefix",
        "upstream_asn",
        "peers_via_upstream",
        "peers_with_route",
    ])?;
    let Some((first, last)) = loaded_span(db)? else {
        return Ok((0, finish(out)?));
    };
    let target_asn = db.target()?.asn;
    type Key = (Ipv4Net, u32);
    let mut open: BTreeMap<Key, (i64, usize, usize)> = BTreeMap::new();
    let mut rows: Vec<(Key, i64, Option<i64>, usize, usize)> = Vec::new();
    walk_target_routes(db, first, last, |t, view, _| {
        let mut now: BTreeMap<Key, (usize, usize)> = BTreeMap::new();
        for prefix in view.prefixes() {
            let ann = view.announced_upstreams(prefix, target_asn);
            for (up, n) in &ann.upstreams {
                now.insert((prefix, *up), (*n, ann.peers_with_route));
            }
        }
        let keys: Vec<Key> = open.keys().copied().collect();
        for key in keys {
            let (start, n, d) = open[&key];
            if now.get(&key) != Some(&(n, d)) {
                rows.push((key, start, Some(t), n, d));
                open.remove(&key);
            }
        }
        for (key, (n, d)) in now {
            open.entry(key).or_insert((t, n, d));
        }
    })?;
    for (key, (start, n, d)) in open {
        rows.push((key, start, None, n, d));
    }
    rows.sort_by_key(|(key, start, ..)| (*start, *key));
    for ((prefix, up), start, end, n, d) in &rows {
        out.write_record([
            timestamp::display_unix(*start),
            end.map_or_else(String::new, timestamp::display_unix),
            prefix.to_string(),
            up.to_string(),
            n.to_string(),
            d.to_string(),
        ])?;
    }
    Ok((rows.len(), finish(out)?))
}

fn write_metadata(
    db: &Db,
    dir: &Path,
    summary: &ExportSummary,
    params: Vec<(serde_json::Value, usize)>,
) -> Result<AtomicFile, ExportError> {
    let files: Vec<serde_json::Value> = db
        .mrt_files()?
        .into_iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name,
                "sha256": f.sha256,
                "kind": f.kind,
                "format": f.format,
                "collector": f.collector,
                "first_time": timestamp::display_unix(f.first_time),
                "last_time": timestamp::display_unix(f.last_time),
                "truncated": f.truncated,
            })
        })
        .collect();
    let target = db.target()?;
    let meta = serde_json::json!({
        "producer": "nkpath-collector export",
        "nkpath_version": env!("CARGO_PKG_VERSION"),
        "generated_at": timestamp::stored(time::OffsetDateTime::now_utc()),
        "schema": "collector/EXPORTS.md of the nkpath repository",
        "target": {
            "prefixes": target.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "asn": target.asn,
        },
        "files": {
            "traces.csv": summary.traces,
            "hops.csv": summary.hops,
            "as_paths.csv": summary.as_paths,
            "bgp_upstreams.csv": summary.bgp_upstreams,
        },
        "probing_parameters": params.into_iter().map(|(mut v, n)| {
            v["traces"] = n.into();
            v
        }).collect::<Vec<_>>(),
        "mrt_files": files,
    });
    let path = dir.join("export.json");
    let mut file =
        AtomicFile::create(&path).map_err(|source| ExportError::Write { path, source })?;
    std::io::Write::write_all(
        &mut file,
        (serde_json::to_string_pretty(&meta)? + "\n").as_bytes(),
    )?;
    Ok(file)
}
