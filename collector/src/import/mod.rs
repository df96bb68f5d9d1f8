//! Imports of public traceroutes (RIPE Atlas results, scamper traces), stored beside the
//! agents' own results so that reports and exports see them.
//!
//! Each public record is converted into the wire type agents send, [`TraceResult`], and
//! stored in the same shape as an agent's result ([`StoredRecord`]), so analysis needs no
//! second reader. What the public formats do not record is filled with documented
//! stand-ins (see [`atlas`] and [`scamper`]); what they record is kept as it was.
//!
//! - The source is kept in `agent_id`: `atlas:MSM/PRB` or `scamper:FILE`; [`is_imported`]
//!   tells them from agents.
//! - `result_id` is derived from the record's content, so importing a file twice stores
//!   nothing new; `round_id` from the measurement round (Atlas) or scamper cycle.
//! - IPv4 only: IPv6 records are counted and skipped, as are records that are not
//!   traceroutes and measurements that failed before probing.
//! - The rules of every import ([`crate::admission::Admission::place`]), whatever the
//!   format: a trace that started before 2000 or more than a day ahead of the collector's
//!   clock is refused with its line; a trace whose target lies outside the target prefixes
//!   never went toward the target network, so it is refused and counted, or with
//!   `--keep-outside` ([`OutsideTargets::KeepAsContext`]) stored as context, which reports
//!   and exports never count ([`crate::results::stored_traces`]).
//! - The stop reason: nkpath's own, judged from the replies ([`stop_from_replies`]); the
//!   source's word, when it records one (scamper), is kept verbatim in `source_stop`.
//! - A record that cannot be read or converted is reported with its line and stores
//!   nothing; the others are stored in one transaction.

pub mod atlas;
mod records;
pub mod scamper;
mod tracelb;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nkpath_proto::{Hop, ProbeParams, ResultRecord, StopReason, TraceResult};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

pub use crate::admission::OutsideTargets;
use crate::admission::Placement;
use crate::results::RejectedLine;
use crate::store::results::StoredRecord;
use crate::store::{Db, DbError};

pub use records::SplitError;

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// nkpath results as agents write them (JSON lines of TraceResult / ResultRecord).
    Nkpath,
    /// RIPE Atlas traceroute results (a JSON array or JSON lines).
    Atlas,
    /// scamper traces: `sc_warts2json` output, or a warts file (converted with it).
    Scamper,
}

impl Format {
    /// The format's name on the command line and in `agent_id`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Nkpath => "nkpath",
            Self::Atlas => "atlas",
            Self::Scamper => "scamper",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The public source of a stored trace: `Some("atlas")` or `Some("scamper")` for imported
/// traces (whose `agent_id` is `atlas:MSM/PRB` or `scamper:FILE`), `None` for an agent's.
/// Reports use it to count imported traces apart from the agents' own.
pub fn is_imported(agent_id: &str) -> Option<&'static str> {
    // The wire format owns the `SOURCE:ID` convention (and reports read it from there).
    nkpath_proto::imported_from(agent_id)
}

/// What converting one public record gave.
#[derive(Debug)]
pub enum Conversion {
    /// A trace to store.
    Trace(Box<TraceResult>),
    /// A multipath trace to store (scamper `tracelb`).
    Multipath(Box<nkpath_proto::MultipathResult>),
    /// A record deliberately not imported.
    Skip(Skip),
}

/// Why a well-formed record is not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// An IPv6 traceroute: the target network and the wire format are IPv4.
    Ipv6,
    /// An IPv6 multipath trace (scamper `tracelb`): the multipath wire format is IPv4-only
    /// ([`IPV6_MULTIPATH_REASON`]).
    Ipv6Multipath,
    /// Not a traceroute (scamper `cycle-start`, `ping`, `tracelb`; Atlas `ping`…): its type.
    NotATrace(String),
    /// The measurement failed before probing (Atlas: "name resolution failed", "connect
    /// failed"): there is no path to keep.
    Failed(String),
}

/// Why an IPv6 `tracelb` record is skipped, as the import summary says it.
pub const IPV6_MULTIPATH_REASON: &str = "wire format IPv4-only";

/// What an import of a public file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Records read (array elements or non-blank lines).
    pub records: usize,
    /// Traces toward the target prefixes stored by this import.
    pub stored: usize,
    /// Traces outside the target prefixes stored as context (`--keep-outside`): never
    /// counted in target reports.
    pub stored_context: usize,
    /// Traces outside the target prefixes refused (without `--keep-outside`).
    pub refused_outside: usize,
    /// Traces whose id was already stored (left as they were).
    pub already_stored: usize,
    /// IPv6 records skipped.
    pub skipped_ipv6: usize,
    /// IPv6 multipath traces (`tracelb`) skipped, for [`IPV6_MULTIPATH_REASON`].
    pub skipped_ipv6_multipath: usize,
    /// Records that are not traceroutes, by type.
    pub skipped_non_trace: BTreeMap<String, usize>,
    /// Measurements that failed before probing.
    pub skipped_failed: usize,
    /// Records that could not be read or converted: nothing of them was stored.
    pub malformed: Vec<RejectedLine>,
    /// Traces the time rule refuses (started before 2000, or in the future), with why.
    pub refused_time: Vec<RejectedLine>,
    /// How often the conversion met something worth knowing (late replies dropped, start
    /// time taken from the first probe…), by what.
    pub notes: BTreeMap<&'static str, usize>,
    /// Set when the file was first converted by an external program (warts to JSON).
    pub converted_with: Option<&'static str>,
    /// Set when the file was compressed: `gzip` or `bzip2`.
    pub decompressed: Option<&'static str>,
}

impl ImportSummary {
    /// Counts `what` once in [`ImportSummary::notes`].
    pub(crate) fn note(&mut self, what: &'static str) {
        *self.notes.entry(what).or_default() += 1;
    }

    /// Records skipped on purpose (IPv6, non-trace, failed measurements).
    pub fn skipped(&self) -> usize {
        self.skipped_ipv6
            + self.skipped_ipv6_multipath
            + self.skipped_non_trace.values().sum::<usize>()
            + self.skipped_failed
    }
}

/// Why an import of a public file failed as a whole (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum ImportFileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON records (a syntax error in an array, a truncated array).
    #[error("{}: {source} (nothing was stored)", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// Where and what.
        source: SplitError,
    },
    /// The file could not be decompressed, or a warts file converted to JSON.
    #[error("{}: {message}", file.display())]
    Convert {
        /// The file.
        file: PathBuf,
        /// Why, and what to do.
        message: String,
    },
    /// A database error; the transaction was rolled back.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored target cannot be read (nothing was stored).
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
}

/// Reads public records one by one; each format implements it.
trait Converter {
    /// Converts one record, counting notes in `summary`. `Err` is a malformed record,
    /// with the reason.
    fn convert(
        &mut self,
        record: &serde_json::Value,
        summary: &mut ImportSummary,
    ) -> Result<Conversion, String>;
}

/// How far a compressed file may grow when decompressed, by default: this many times its
/// own size. Traceroute JSON compresses 10 to 20 times (a RIPE Atlas file of 530 kB: 10× with
/// gzip, 19× with bzip2); a gzip bomb, 1,000 times, and a bzip2 one far more.
pub const MAX_DECOMPRESSION_RATIO: u64 = 100;

/// The least the default limit allows, however small the compressed file: 64 MiB.
pub const MIN_DECOMPRESSED_LIMIT: u64 = 64 << 20;

/// The most a compressed file of `compressed` bytes may decompress to: `max` when given,
/// else [`MAX_DECOMPRESSION_RATIO`] times its size, at least [`MIN_DECOMPRESSED_LIMIT`].
/// Memory then stays proportional to the size of the file, as for a plain file.
pub fn decompressed_limit(compressed: u64, max: Option<u64>) -> u64 {
    max.unwrap_or_else(|| {
        compressed
            .saturating_mul(MAX_DECOMPRESSION_RATIO)
            .max(MIN_DECOMPRESSED_LIMIT)
    })
}

/// Imports a RIPE Atlas or scamper file, plain or compressed (gzip, bzip2), by the rules of
/// every import (see the module documentation; `outside` says what becomes of traces outside
/// the target prefixes). All traces converted and admitted are stored in one transaction.
/// nkpath JSON lines go through [`Db::import_results_with`]. A compressed file may decompress
/// to [`decompressed_limit`] with its default.
pub fn import_file(
    db: &mut Db,
    file: &Path,
    format: Format,
    outside: OutsideTargets,
) -> Result<ImportSummary, ImportFileError> {
    import_file_with_limit(db, file, format, outside, None)
}

/// [`import_file`], with the limit on the decompressed size of a compressed file given
/// (`None`: [`decompressed_limit`]'s default).
pub fn import_file_with_limit(
    db: &mut Db,
    file: &Path,
    format: Format,
    outside: OutsideTargets,
    max_decompressed: Option<u64>,
) -> Result<ImportSummary, ImportFileError> {
    let bytes = std::fs::read(file).map_err(|source| ImportFileError::Read {
        file: file.to_owned(),
        source,
    })?;
    let limit = decompressed_limit(bytes.len() as u64, max_decompressed);
    if format == Format::Nkpath {
        let mut summary = ImportSummary::default();
        let bytes =
            decompress(bytes, limit, &mut summary).map_err(|message| ImportFileError::Convert {
                file: file.to_owned(),
                message,
            })?;
        return import_nkpath(db, file, &bytes, outside, summary);
    }
    let Parsed {
        mut summary,
        traces,
    } = parse_public(file, bytes, format, limit)?;
    let received_at = OffsetDateTime::now_utc();
    let tx = db.write()?;
    let rules = crate::results::import_admission(&tx, received_at)?;
    for (line, trace) in &traces {
        let placement = match rules.place(trace.record()) {
            Ok(placement) => placement,
            Err(refusal) => {
                summary.refused_time.push(RejectedLine {
                    line: *line,
                    error: refusal.to_string(),
                });
                continue;
            }
        };
        if placement == Placement::Outside && outside == OutsideTargets::Refuse {
            summary.refused_outside += 1;
        } else if !tx.insert_result(trace, received_at)? {
            summary.already_stored += 1;
        } else if placement == Placement::Target {
            summary.stored += 1;
        } else {
            summary.stored_context += 1;
        }
    }
    tx.commit()?;
    Ok(summary)
}

/// A public file read and converted, not yet stored.
#[derive(Debug)]
pub struct Parsed {
    /// What the reading counted (records, skipped, malformed, notes).
    pub summary: ImportSummary,
    /// The traces converted, in their stored shape, with the line each starts on.
    pub traces: Vec<(usize, StoredRecord)>,
}

/// Reads a RIPE Atlas or scamper file's `bytes` (named `file` in messages and scamper
/// agent ids), plain or compressed, decompressing at most `limit` bytes, and converts its
/// records: everything of an import that needs no database. A warts file is converted by
/// running [`scamper::WARTS2JSON`]. `Format::Nkpath` is not read here (it is stored line by
/// line as it is read): it converts nothing.
pub fn parse_public(
    file: &Path,
    bytes: Vec<u8>,
    format: Format,
    limit: u64,
) -> Result<Parsed, ImportFileError> {
    let mut summary = ImportSummary::default();
    let convert_error = |message| ImportFileError::Convert {
        file: file.to_owned(),
        message,
    };
    let bytes = decompress(bytes, limit, &mut summary).map_err(convert_error)?;
    let (text, mut converter): (String, Box<dyn Converter>) = match format {
        Format::Nkpath => {
            return Ok(Parsed {
                summary,
                traces: Vec::new(),
            });
        }
        Format::Atlas => (utf8(file, bytes)?, Box::new(atlas::AtlasConverter)),
        Format::Scamper => {
            let text = if scamper::is_warts(&bytes) {
                summary.converted_with = Some(scamper::WARTS2JSON);
                scamper::warts_to_json(&bytes).map_err(convert_error)?
            } else {
                utf8(file, bytes)?
            };
            (text, Box::new(scamper::ScamperConverter::new(file)))
        }
    };
    let items = records::split(&text).map_err(|source| ImportFileError::Syntax {
        file: file.to_owned(),
        source,
    })?;
    let mut traces = Vec::new();
    for item in items {
        summary.records += 1;
        let converted = item
            .json
            .and_then(|raw| {
                serde_json::from_str::<serde_json::Value>(raw.get())
                    .map_err(|e| format!("invalid JSON: {e}"))
            })
            .and_then(|value| converter.convert(&value, &mut summary))
            .and_then(|conversion| match conversion {
                Conversion::Trace(trace) => to_stored(*trace).map(Some),
                Conversion::Multipath(multipath) => {
                    StoredRecord::from_record(&ResultRecord::Multipath(*multipath))
                        .map(Some)
                        .map_err(|e| format!("converted multipath trace refused: {e}"))
                }
                Conversion::Skip(Skip::Ipv6) => {
                    summary.skipped_ipv6 += 1;
                    Ok(None)
                }
                Conversion::Skip(Skip::Ipv6Multipath) => {
                    summary.skipped_ipv6_multipath += 1;
                    Ok(None)
                }
                Conversion::Skip(Skip::NotATrace(kind)) => {
                    *summary.skipped_non_trace.entry(kind).or_default() += 1;
                    Ok(None)
                }
                Conversion::Skip(Skip::Failed(_)) => {
                    summary.skipped_failed += 1;
                    Ok(None)
                }
            });
        match converted {
            Ok(Some(trace)) => traces.push((item.line, trace)),
            Ok(None) => {}
            Err(error) => summary.malformed.push(RejectedLine {
                line: item.line,
                error,
            }),
        }
    }
    Ok(Parsed { summary, traces })
}

/// nkpath JSON lines through [`Db::import_results`], counted as a summary.
fn import_nkpath(
    db: &mut Db,
    file: &Path,
    bytes: &[u8],
    outside: OutsideTargets,
    mut summary: ImportSummary,
) -> Result<ImportSummary, ImportFileError> {
    let report = db
        .import_results_with(bytes, outside)
        .map_err(|e| match e {
            crate::results::ImportError::Db(e) => ImportFileError::Db(e),
            crate::results::ImportError::Settings(e) => ImportFileError::Convert {
                file: file.to_owned(),
                message: format!("nothing was stored: {e}"),
            },
            crate::results::ImportError::Read { line, source } => ImportFileError::Syntax {
                file: file.to_owned(),
                source: records::SplitError {
                    line,
                    column: 1,
                    message: source.to_string(),
                },
            },
        })?;
    summary.records = report.lines;
    summary.stored = report.stored;
    summary.stored_context = report.stored_context;
    summary.refused_outside = report.refused_outside;
    summary.already_stored = report.already_stored;
    summary.malformed = report.rejected;
    Ok(summary)
}

/// The file's bytes, decompressed when its first bytes say gzip or bzip2 (Atlas daily dumps
/// are published as bzip2), as a stream that stops past `limit` bytes: a file that would
/// decompress to more is refused before it takes more memory than that. A damaged or
/// truncated stream is an error too: half a file must not be stored as if whole.
fn decompress(bytes: Vec<u8>, limit: u64, summary: &mut ImportSummary) -> Result<Vec<u8>, String> {
    use crate::mrt::input::Compression;
    use std::io::Read as _;
    let compression = Compression::detect(&bytes);
    let decoder: Box<dyn std::io::Read + '_> = match compression {
        Compression::None => return Ok(bytes),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(&bytes[..])),
    };
    let mut out = Vec::new();
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress ({compression}): {e} (nothing was stored)"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "decompresses ({compression}) to more than {limit} bytes from {} bytes: refused, \
             nothing was stored (a decompression bomb?). If the file is genuine, raise the \
             limit with --max-decompressed BYTES, or decompress it and import the plain file",
            bytes.len()
        ));
    }
    summary.decompressed = Some(compression.as_str());
    Ok(out)
}

/// The text of a JSON file; not UTF-8 is refused naming the line of the first bad byte.
fn utf8(file: &Path, bytes: Vec<u8>) -> Result<String, ImportFileError> {
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..bad];
        let line = before.split(|&b| b == b'\n').count();
        let column = bad
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        ImportFileError::Syntax {
            file: file.to_owned(),
            source: records::SplitError {
                line,
                column,
                message: "not UTF-8 text (a binary file? see --format)".into(),
            },
        }
    })
}

/// A converted trace in its stored shape, checked as analysis will decode it: a conversion
/// that breaks a rule of the wire format is a malformed record here, not a row that fails
/// later.
fn to_stored(trace: TraceResult) -> Result<StoredRecord, String> {
    StoredRecord::from_record(&ResultRecord::Trace(trace))
        .map_err(|e| format!("converted trace refused: {e}"))
}

/// An IPv4 address, also from its IPv4-mapped IPv6 form; `None` for other IPv6.
pub(crate) fn ipv4(text: &str) -> Result<Option<std::net::Ipv4Addr>, String> {
    match text.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => Ok(Some(v4)),
        Ok(std::net::IpAddr::V6(v6)) => Ok(v6.to_ipv4_mapped()),
        Err(_) => Err(format!("{text:?} is not an IP address")),
    }
}

/// A UUID derived from `parts`: SHA-256 over them (length-prefixed), truncated, marked as
/// a version 8 (custom) UUID. The same record always gets the same id, so a second import
/// of a file stores nothing new.
pub(crate) fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"nkpath-import\0");
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The record's JSON with object keys sorted (serde_json's map is ordered), so the id
/// does not depend on how a file was pretty-printed or which key came first.
pub(crate) fn canonical_json(record: &serde_json::Value) -> String {
    record.to_string()
}

/// nkpath's own stop reason for an imported trace, judged from its replies and the limits
/// it was probed with (`params`), whatever its source says (the source's word is kept apart,
/// in `source_stop`). In order:
///
/// | the replies | stop reason |
/// |---|---|
/// | the target answered (at any TTL) | `reached` |
/// | a router answered "destination unreachable" at the last TTL probed | `unreachable` |
/// | the last TTL probed is `params.max_ttl` (or beyond) | `max_ttl` |
/// | the last TTL probed was silent | `gap_limit` |
/// | a router answered at the last TTL probed, below `max_ttl` | `max_ttl` |
///
/// A source gives up after `gap_limit` silent TTLs; fewer at the end means a record that
/// leaves TTLs out. The last row is a trace that ended before any limit its record shows
/// (files written by converters, which keep only the TTLs that answered): nkpath has no
/// "unknown" reason, and `max_ttl` claims nothing about the target. `reached` is never
/// given without a reply from the target.
pub(crate) fn stop_from_replies(
    hops: &[Hop],
    target: Ipv4Addr,
    params: &ProbeParams,
) -> StopReason {
    fn replies(hop: &Hop) -> impl Iterator<Item = &nkpath_proto::Reply> {
        hop.probes.iter().filter_map(|p| p.reply.as_ref())
    }
    if hops.iter().flat_map(replies).any(|r| r.address == target) {
        return StopReason::Reached;
    }
    let Some(last) = hops.last() else {
        return StopReason::GapLimit;
    };
    if replies(last).any(|r| r.icmp_type == Some(3)) {
        return StopReason::Unreachable;
    }
    if last.ttl >= params.max_ttl {
        StopReason::MaxTtl
    } else if replies(last).next().is_none() {
        StopReason::GapLimit
    } else {
        StopReason::MaxTtl
    }
}

/// Rate caps are not recorded by Atlas or scamper; the wire format needs a value in
/// 1..=1000, and the largest says "no cap known" rather than inventing one.
pub(crate) const UNKNOWN_PPS: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use nkpath_proto::{Probe, Reply};

    #[test]
    fn imported_agent_ids_name_their_source() {
        assert_eq!(is_imported("atlas:5017/190"), Some("atlas"));
        assert_eq!(
            is_imported("scamper:trace_google_dns_v4_default.warts"),
            Some("scamper")
        );
        assert_eq!(is_imported("vp-fra1"), None);
        assert_eq!(is_imported("atlas"), None);
        assert_eq!(is_imported("iris:1"), None);
        assert_eq!(is_imported("nkpath:x"), None);
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        let a = derived_uuid(&[b"atlas", b"{\"a\":1}"]);
        assert_eq!(a, derived_uuid(&[b"atlas", b"{\"a\":1}"]));
        assert_ne!(a, derived_uuid(&[b"scamper", b"{\"a\":1}"]));
        // Length prefixes: moving a byte between parts changes the id.
        assert_ne!(derived_uuid(&[b"ab", b"c"]), derived_uuid(&[b"a", b"bc"]));
        assert_eq!(a.get_version_num(), 8);
    }

    #[test]
    fn canonical_json_ignores_key_order_and_spacing() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": [1, 2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    fn hop(ttl: u8, replies: &[Option<(&str, u8)>]) -> Hop {
        Hop {
            ttl,
            probes: replies
                .iter()
                .enumerate()
                .map(|(i, r)| Probe {
                    attempt: u8::try_from(i + 1).unwrap(),
                    sent_at_us: 0,
                    reply: r.map(|(address, icmp_type)| Reply {
                        address: address.parse().unwrap(),
                        rtt_us: 1,
                        reply_ttl: 64,
                        icmp_type: Some(icmp_type),
                        icmp_code: Some(0),
                        tcp_flags: None,
                        quoted_ttl: None,
                        mpls_labels: vec![],
                    }),
                })
                .collect(),
            inherited: None,
        }
    }

    fn params(max_ttl: u8) -> ProbeParams {
        ProbeParams {
            attempts: 2,
            timeout_ms: 1000,
            gap_limit: 5,
            first_ttl: 1,
            max_ttl,
            pps: UNKNOWN_PPS,
            per_prefix_pps: UNKNOWN_PPS,
        }
    }

    #[test]
    fn stop_reasons_follow_the_replies() {
        let target: Ipv4Addr = "192.0.2.1".parse().unwrap();
        let p = params(32);
        let stop = |hops: &[Hop]| stop_from_replies(hops, target, &p);
        let router = Some(("198.51.100.1", 11));
        let reached = [hop(1, &[router]), hop(2, &[None, Some(("192.0.2.1", 0))])];
        assert_eq!(stop(&reached), StopReason::Reached);
        // The target's port unreachable is an answer from the target.
        let port = [hop(1, &[router]), hop(2, &[Some(("192.0.2.1", 3))])];
        assert_eq!(stop(&port), StopReason::Reached);
        let unreachable = [hop(1, &[router]), hop(2, &[Some(("198.51.100.2", 3))])];
        assert_eq!(stop(&unreachable), StopReason::Unreachable);
        let silent = [hop(1, &[router]), hop(2, &[None, None])];
        assert_eq!(stop(&silent), StopReason::GapLimit);
        assert_eq!(stop(&[]), StopReason::GapLimit);
        let cut = [hop(1, &[router])];
        assert_eq!(stop(&cut), StopReason::MaxTtl);
        // Silent up to the hop limit: it ran to its last hop, not into a gap.
        let to_the_limit = [hop(31, &[router]), hop(32, &[None, None])];
        assert_eq!(stop(&to_the_limit), StopReason::MaxTtl);
        assert_eq!(
            stop_from_replies(&silent, target, &params(2)),
            StopReason::MaxTtl
        );
    }
}
