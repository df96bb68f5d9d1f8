//! scamper traces, as `sc_warts2json` prints them (one JSON object per line).
//!
//! A `trace` record gives the method (`icmp-echo-paris`, `udp-paris`, `tcp`…), the flow
//! (`sport`/`dport`, or `icmp_sum`), `attempts`, `firsthop`, `wait`, the stop reason, and
//! one entry per reply in `hops` (`probe_ttl`, `probe_id`, `tx`, `rtt`, `icmp_type`,
//! `icmp_code`, `icmp_q_ttl`, `tcp_flags`, `icmpext`). Unanswered probes are not listed;
//! they are rebuilt here so that silent TTLs stay visible: a TTL's probes run from 1 to the
//! highest `probe_id` that answered, and a TTL with no reply up to `hop_count` had
//! `attempts` silent probes. Files written by converters rather than by scamper carry no
//! probing parameters (`attempts` 0, `probe_id` 0, `start` 0): then only the replies are
//! kept, numbered in send order, and the start time is the first probe's send time.
//!
//! Addresses may be IPv4-mapped IPv6 (`::ffff:192.0.2.1`): they are IPv4. Other records
//! (`cycle-start`, `cycle-stop`, `ping`…) are counted and skipped (`tracelb` records are
//! multipath traces: [`super::tracelb`]); a
//! `cycle-start` names the round of the traces that follow it.
//!
//! A warts file (first bytes 0x1205) is converted by running `sc_warts2json`, scamper's
//! own reader, rather than a second warts decoder.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use nkpath_proto::{
    FlowId, Hop, MplsLabel, Probe, ProbeParams, Protocol, Reply, SCHEMA_VERSION, StopReason,
    TraceResult, limits,
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    Conversion, Converter, ImportSummary, Skip, UNKNOWN_PPS, canonical_json, derived_uuid, ipv4,
    stop_from_replies,
};

/// The program that turns warts into JSON.
pub const WARTS2JSON: &str = "sc_warts2json";

/// scamper's other record types, skipped: any other `type` means the file is not scamper
/// output (an Atlas file given the wrong `--format` must not pass as 0 traces, silently).
const OTHER_TYPES: [&str; 12] = [
    "cycle-start",
    "cycle-stop",
    "cycle-def",
    "list",
    "ping",
    "dealias",
    "neighbourdisc",
    "tbit",
    "sting",
    "sniff",
    "host",
    "http",
];

/// scamper's default gap limit (`-g`), not printed in the JSON.
const GAP_LIMIT: u8 = 5;
/// scamper's default wait (`-w`), seconds, for files that record 0.
const DEFAULT_WAIT_S: u32 = 5;

/// Whether `bytes` start like a warts file (magic 0x1205).
pub fn is_warts(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x12, 0x05])
}

/// The JSON lines `sc_warts2json` prints for the warts data `warts` (given on its standard
/// input, so that a decompressed file needs no temporary copy). A missing program, a
/// failure, or any complaint on its stderr (it reports a truncated file there and still
/// exits 0) is an error: a partial conversion must not be stored as if complete.
pub fn warts_to_json(warts: &[u8]) -> Result<String, String> {
    let child = Command::new(WARTS2JSON)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let output = child
        .and_then(|mut child| {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // Written from a thread: the child's output pipes must be read meanwhile.
            std::thread::scope(|scope| {
                let writer = scope.spawn(move || {
                    use std::io::Write as _;
                    // A broken pipe means the child stopped reading; its stderr says why.
                    let _ = stdin.write_all(warts);
                });
                let output = child.wait_with_output();
                let _ = writer.join();
                output
            })
        })
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "a warts file: reading it needs {WARTS2JSON} (from scamper; Debian/Ubuntu \
                 package `scamper`), which is not installed. Install it, or convert the file \
                 elsewhere with `{WARTS2JSON} FILE > FILE.json` and import the JSON"
                )
            } else {
                format!("cannot run {WARTS2JSON}: {e}")
            }
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !stderr.trim().is_empty() {
        return Err(format!(
            "{WARTS2JSON} could not read the whole warts file ({}): {} (nothing was stored)",
            output.status,
            stderr.trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("{WARTS2JSON} printed non-UTF-8: {e}"))
}

/// The fields read first, to skip what is not a trace.
#[derive(Debug, Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A `cycle-start` record: the round of the traces after it.
#[derive(Debug, Deserialize)]
struct CycleStart {
    list_name: Option<String>,
    id: Option<u32>,
    start_time: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct ScamperTrace {
    version: Option<String>,
    method: String,
    src: Option<String>,
    dst: String,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_sum: Option<u16>,
    stop_reason: String,
    start: Timeval,
    hop_count: u16,
    attempts: u8,
    hoplimit: u8,
    firsthop: u8,
    wait: u32,
    #[serde(default)]
    hops: Vec<ScamperReply>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Timeval {
    sec: i64,
    usec: i64,
}

impl Timeval {
    fn micros(self) -> i128 {
        i128::from(self.sec) * 1_000_000 + i128::from(self.usec)
    }
}

/// One reply ("hop" in scamper's words).
#[derive(Debug, Deserialize)]
struct ScamperReply {
    addr: String,
    probe_ttl: u8,
    probe_id: u8,
    tx: Option<Timeval>,
    /// ms.
    rtt: f64,
    reply_ttl: u8,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_q_ttl: Option<u8>,
    tcp_flags: Option<u8>,
    #[serde(default)]
    icmpext: Vec<ScamperIcmpExt>,
}

#[derive(Debug, Deserialize)]
struct ScamperIcmpExt {
    ie_cn: u8,
    ie_ct: u8,
    #[serde(default)]
    mpls_labels: Vec<ScamperMpls>,
}

#[derive(Debug, Deserialize)]
struct ScamperMpls {
    #[serde(rename = "mpls_ttl")]
    ttl: u8,
    #[serde(rename = "mpls_s")]
    s: u8,
    #[serde(rename = "mpls_exp")]
    exp: u8,
    #[serde(rename = "mpls_label")]
    label: u32,
}

/// Converts the records of one scamper file.
pub(super) struct ScamperConverter {
    agent_id: String,
    /// The round of the traces read since the last `cycle-start`.
    round: uuid::Uuid,
}

impl ScamperConverter {
    pub(super) fn new(file: &Path) -> Self {
        let agent_id = agent_id(file);
        let round = derived_uuid(&[b"scamper file", agent_id.as_bytes()]);
        Self { agent_id, round }
    }
}

/// `scamper:` and the file name, reduced to the agent id alphabet and its 64 characters.
fn agent_id(file: &Path) -> String {
    const PREFIX: &str = "scamper:";
    let name: String = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(limits::AGENT_ID_LEN.end() - PREFIX.len())
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        format!("{PREFIX}input")
    } else {
        format!("{PREFIX}{name}")
    }
}

impl Converter for ScamperConverter {
    fn convert(
        &mut self,
        record: &serde_json::Value,
        summary: &mut ImportSummary,
    ) -> Result<Conversion, String> {
        let header =
            Header::deserialize(record).map_err(|e| format!("not a scamper record: {e}"))?;
        match header.kind.as_deref() {
            Some("trace") => {}
            Some("tracelb") => {
                return super::tracelb::convert(record, &self.agent_id, self.round, summary);
            }
            Some("cycle-start") => {
                let cycle = CycleStart::deserialize(record)
                    .map_err(|e| format!("not a scamper cycle-start: {e}"))?;
                self.round = derived_uuid(&[
                    b"scamper cycle",
                    cycle.list_name.unwrap_or_default().as_bytes(),
                    &cycle.id.unwrap_or(0).to_be_bytes(),
                    &cycle.start_time.unwrap_or(0).to_be_bytes(),
                ]);
                return Ok(Conversion::Skip(Skip::NotATrace("cycle-start".into())));
            }
            Some(other) if OTHER_TYPES.contains(&other) => {
                return Ok(Conversion::Skip(Skip::NotATrace(other.to_owned())));
            }
            Some(other) => {
                return Err(format!(
                    "not a scamper record: type {other:?}{}",
                    if other == "traceroute" {
                        " (a RIPE Atlas result? try --format atlas)"
                    } else {
                        ""
                    }
                ));
            }
            None => return Err("not a scamper record: missing field `type`".into()),
        }
        let trace =
            ScamperTrace::deserialize(record).map_err(|e| format!("not a scamper trace: {e}"))?;
        let Some(target) = ipv4(&trace.dst)? else {
            return Ok(Conversion::Skip(Skip::Ipv6));
        };
        let source = match trace.src.as_deref().map(ipv4).transpose()?.flatten() {
            Some(source) => source,
            None if trace.src.is_none() => return Err("a trace without `src`".into()),
            None => return Ok(Conversion::Skip(Skip::Ipv6)),
        };
        self.to_trace(&trace, record, source, target, summary)
            .map(|t| Conversion::Trace(Box::new(t)))
            .map_err(|e| format!("trace to {}: {e}", trace.dst))
    }
}

impl ScamperConverter {
    fn to_trace(
        &self,
        trace: &ScamperTrace,
        record: &serde_json::Value,
        source: Ipv4Addr,
        target: Ipv4Addr,
        summary: &mut ImportSummary,
    ) -> Result<TraceResult, String> {
        let protocol = match trace.method.split('-').next() {
            Some("icmp") => Protocol::Icmp,
            Some("udp") => Protocol::Udp,
            Some("tcp") => Protocol::Tcp,
            _ => return Err(format!("method {:?} unknown", trace.method)),
        };
        let flow = match protocol {
            Protocol::Icmp => FlowId::Icmp {
                icmp_type: 8,
                icmp_code: 0,
                checksum: trace.icmp_sum.unwrap_or(0),
            },
            Protocol::Udp => FlowId::Udp {
                src_port: trace.sport.unwrap_or(0),
                dst_port: trace.dport.unwrap_or(0),
            },
            Protocol::Tcp => FlowId::Tcp {
                src_port: trace.sport.unwrap_or(0),
                dst_port: trace.dport.unwrap_or(0),
            },
        };
        // Converter-written files record no start: the first probe's send time is the
        // closest thing to it.
        let start = if trace.start.sec > 0 {
            trace.start
        } else {
            summary.note("start time missing: taken from the first probe sent");
            trace
                .hops
                .iter()
                .filter_map(|h| h.tx)
                .min_by_key(|t| t.micros())
                .ok_or("no start time and no probe send time")?
        };
        let started_at = OffsetDateTime::from_unix_timestamp_nanos(start.micros() * 1000)
            .map_err(|e| format!("start {}: {e}", start.sec))?;

        // Replies by TTL, then by probe.
        let mut by_ttl: BTreeMap<u8, Vec<&ScamperReply>> = BTreeMap::new();
        for reply in &trace.hops {
            by_ttl.entry(reply.probe_ttl).or_default().push(reply);
        }
        let native = trace.attempts > 0;
        let first_ttl = trace.firsthop.max(1);
        let last_ttl = by_ttl
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(u8::try_from(trace.hop_count).unwrap_or(u8::MAX));
        if by_ttl.keys().next().is_some_and(|&ttl| ttl < first_ttl) {
            return Err(format!("a reply below firsthop {first_ttl}"));
        }
        let mut hops = Vec::new();
        for ttl in first_ttl..=last_ttl {
            let replies = by_ttl.remove(&ttl).unwrap_or_default();
            let probes = if replies.is_empty() {
                if !native {
                    continue;
                }
                (1..=trace.attempts)
                    .map(|attempt| Probe {
                        attempt,
                        sent_at_us: 0,
                        reply: None,
                    })
                    .collect()
            } else {
                probes(&replies, start, native, summary).map_err(|e| format!("ttl {ttl}: {e}"))?
            };
            hops.push(Hop {
                ttl,
                probes,
                inherited: None,
            });
        }
        let max_seen = hops.iter().map(|h| h.probes.len()).max().unwrap_or(1);
        let attempts = u8::try_from(max_seen)
            .ok()
            .map(|seen| seen.max(trace.attempts))
            .filter(|a| limits::ATTEMPTS.contains(a))
            .ok_or_else(|| format!("{max_seen} probes per TTL: the wire format takes 1..=10"))?;
        let wire_max = *limits::MAX_TTL.end();
        if last_ttl > wire_max {
            return Err(format!(
                "TTL {last_ttl} is beyond the wire format's {wire_max}"
            ));
        }
        // scamper's hop limit 0 means 255: capped to what the wire format carries.
        let max_ttl = match trace.hoplimit {
            0 => wire_max,
            limit => limit.min(wire_max),
        }
        .max(last_ttl)
        .max(first_ttl);
        let wait_s = if trace.wait == 0 {
            DEFAULT_WAIT_S
        } else {
            trace.wait
        };
        let timeout_ms = wait_s
            .checked_mul(1000)
            .filter(|t| limits::TIMEOUT_MS.contains(t))
            .ok_or_else(|| format!("wait {wait_s} s is beyond the wire format's 60 s"))?;
        let params = ProbeParams {
            attempts,
            timeout_ms,
            gap_limit: GAP_LIMIT,
            first_ttl,
            max_ttl,
            pps: UNKNOWN_PPS,
            per_prefix_pps: UNKNOWN_PPS,
        };
        let stop_reason = stop_reason(&trace.stop_reason, &hops, target, &params, summary);
        let source_stop = source_stop(&trace.stop_reason, summary);
        // `ftime` is the start in the local time of whoever ran sc_warts2json: leave it out
        // of the id, which must not depend on that.
        let mut identity = record.clone();
        if let Some(start) = identity.get_mut("start").and_then(|s| s.as_object_mut()) {
            start.remove("ftime");
        }
        Ok(TraceResult {
            schema_version: SCHEMA_VERSION,
            result_id: derived_uuid(&[b"scamper", canonical_json(&identity).as_bytes()]),
            agent_id: self.agent_id.clone(),
            agent_version: format!(
                "scamper-trace-{}",
                trace.version.as_deref().unwrap_or("unknown")
            ),
            round_id: self.round,
            source,
            target,
            protocol,
            flow,
            params,
            started_at,
            hops,
            stop_reason,
            annotations: Vec::new(),
            source_stop,
        })
    }
}

/// The probes of one TTL from its replies. scamper numbers probes from 1 (`probe_id`), so
/// unanswered ones are the numbers missing below the highest; converter-written files use
/// 0 for all, and their replies are numbered in send order instead.
fn probes(
    replies: &[&ScamperReply],
    start: Timeval,
    native: bool,
    summary: &mut ImportSummary,
) -> Result<Vec<Probe>, String> {
    let mut by_attempt: BTreeMap<u8, &ScamperReply> = BTreeMap::new();
    if native && replies.iter().all(|r| r.probe_id > 0) {
        for &reply in replies {
            if by_attempt.insert(reply.probe_id, reply).is_some() {
                summary.note("second replies to one probe ignored");
            }
        }
    } else {
        let mut sorted = replies.to_vec();
        sorted.sort_by_key(|r| r.tx.map(Timeval::micros));
        for (i, reply) in sorted.into_iter().enumerate() {
            let attempt = u8::try_from(i + 1).map_err(|_| "too many replies".to_owned())?;
            by_attempt.insert(attempt, reply);
        }
    }
    let highest = by_attempt.keys().next_back().copied().unwrap_or(0);
    (1..=highest)
        .map(|attempt| {
            let Some(reply) = by_attempt.get(&attempt) else {
                return Ok(Probe {
                    attempt,
                    sent_at_us: 0,
                    reply: None,
                });
            };
            let sent_at_us = reply
                .tx
                .map(|tx| tx.micros() - start.micros())
                .and_then(|us| u64::try_from(us).ok())
                .unwrap_or(0);
            Ok(Probe {
                attempt,
                sent_at_us,
                reply: Some(to_reply(reply)?),
            })
        })
        .collect()
}

fn to_reply(reply: &ScamperReply) -> Result<Reply, String> {
    let address = ipv4(&reply.addr)?
        .ok_or_else(|| format!("reply from {} (IPv6) in an IPv4 trace", reply.addr))?;
    if !(0.0..4_000_000.0).contains(&reply.rtt) {
        return Err(format!("rtt {} ms is out of range", reply.rtt));
    }
    // Rounded to the µs of the wire format; below 4e6 ms it fits a u32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rtt_us = (reply.rtt * 1000.0).round() as u32;
    let (icmp_type, icmp_code, tcp_flags) = match (reply.icmp_type, reply.icmp_code) {
        (Some(t), Some(c)) => (Some(t), Some(c), None),
        _ => match reply.tcp_flags {
            Some(flags) => (None, None, Some(flags)),
            None => return Err(format!("reply from {} is neither ICMP nor TCP", reply.addr)),
        },
    };
    let mpls_labels = reply
        .icmpext
        .iter()
        .filter(|ie| ie.ie_cn == 1 && ie.ie_ct == 1)
        .flat_map(|ie| &ie.mpls_labels)
        .map(|m| MplsLabel {
            label: m.label,
            tc: m.exp,
            bottom_of_stack: m.s != 0,
            ttl: m.ttl,
        })
        .collect();
    Ok(Reply {
        address,
        rtt_us,
        reply_ttl: reply.reply_ttl,
        icmp_type,
        icmp_code,
        tcp_flags,
        quoted_ttl: icmp_type.and(reply.icmp_q_ttl),
        mpls_labels,
    })
}

/// nkpath's stop reason for a scamper trace: judged from its replies
/// ([`super::stop_from_replies`]), whatever scamper's word (files written by converters say
/// `COMPLETED` of traces that never heard from their target). The one word the replies
/// cannot show is `HALTED` (scamper was stopped): it stays `cancelled` unless the target
/// answered. A word the replies contradict is counted in a note; it is kept in
/// `source_stop` either way.
fn stop_reason(
    scamper: &str,
    hops: &[Hop],
    target: Ipv4Addr,
    params: &ProbeParams,
    summary: &mut ImportSummary,
) -> StopReason {
    let judged = stop_from_replies(hops, target, params);
    if scamper == "HALTED" && judged != StopReason::Reached {
        return StopReason::Cancelled;
    }
    let claimed = match scamper {
        "COMPLETED" => Some(StopReason::Reached),
        "UNREACH" => Some(StopReason::Unreachable),
        "GAPLIMIT" => Some(StopReason::GapLimit),
        "HOPLIMIT" => Some(StopReason::MaxTtl),
        // LOOP, ICMP, ERROR, NONE…: no wire counterpart to compare with.
        _ => None,
    };
    if claimed.is_some_and(|claimed| claimed != judged) {
        summary.note("scamper stop reasons the replies contradict (kept in source_stop)");
    }
    judged
}

/// scamper's stop word, kept verbatim when it is what the wire format takes (a short
/// printable ASCII word, as scamper writes them); anything else is counted and left out
/// rather than refusing the trace.
fn source_stop(word: &str, summary: &mut ImportSummary) -> Option<String> {
    let fits =
        limits::SOURCE_STOP_LEN.contains(&word.len()) && word.chars().all(|c| c.is_ascii_graphic());
    if fits {
        Some(word.to_owned())
    } else {
        summary.note("scamper stop reasons not kept (not a short ASCII word)");
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UDP Paris trace of `trace_google_dns_v4_default.warts` as sc_warts2json prints
    /// it, shortened to hops 1 and 7 with one MPLS extension added to hop 1.
    const TRACE: &str = r#"{"type":"trace","version":"0.1", "userid":0, "method":"udp-paris",
        "src":"137.194.165.109", "dst":"8.8.8.8", "sport":57352, "dport":33435,
        "stop_reason":"COMPLETED", "stop_data":0,
        "start":{"sec":1644327319, "usec":811234, "ftime":"2022-02-08 13:35:19"},
        "hop_count":7, "attempts":2, "hoplimit":0, "firsthop":1, "wait":5, "wait_probe":0,
        "tos":0, "probe_size":44, "probe_count":8, "hops":[
        {"addr":"137.194.164.254", "probe_ttl":1, "probe_id":1, "probe_size":44,
         "tx":{"sec":1644327319, "usec":811608}, "rtt":1.057, "reply_ttl":254, "reply_tos":0,
         "reply_ipid":387, "reply_size":56, "icmp_type":11, "icmp_code":0, "icmp_q_ttl":1,
         "icmp_q_ipl":44, "icmp_q_tos":0,
         "icmpext":[{"ie_cn":1,"ie_ct":1,"ie_dl":4,"mpls_labels":[
            {"mpls_ttl":1,"mpls_s":1,"mpls_exp":0,"mpls_label":24008}]}]},
        {"addr":"8.8.8.8", "probe_ttl":7, "probe_id":2, "probe_size":44,
         "tx":{"sec":1644327330, "usec":79158}, "rtt":1.969, "reply_ttl":118, "reply_tos":0,
         "reply_ipid":0, "reply_size":56, "icmp_type":3, "icmp_code":3, "icmp_q_ttl":1,
         "icmp_q_ipl":44, "icmp_q_tos":128}]}"#;

    fn convert(json: &str) -> (Result<Conversion, String>, ImportSummary) {
        let mut converter = ScamperConverter::new(Path::new("/x/run 1.warts"));
        let mut summary = ImportSummary::default();
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        (converter.convert(&value, &mut summary), summary)
    }

    fn trace(json: &str) -> TraceResult {
        match convert(json).0 {
            Ok(Conversion::Trace(t)) => *t,
            other => panic!("not a trace: {other:?}"),
        }
    }

    #[test]
    fn silent_probes_are_rebuilt() {
        let t = trace(TRACE);
        assert_eq!(t.agent_id, "scamper:run_1.warts");
        assert_eq!(t.agent_version, "scamper-trace-0.1");
        assert_eq!(
            t.flow,
            FlowId::Udp {
                src_port: 57352,
                dst_port: 33435
            }
        );
        assert_eq!(
            t.hops.iter().map(|h| h.ttl).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7]
        );
        // TTLs 2..=6 had no reply: `attempts` (2) silent probes each; TTL 7 answered its
        // second probe.
        assert!(
            t.hops[1..6]
                .iter()
                .all(|h| h.probes.len() == 2 && h.probes.iter().all(|p| p.reply.is_none()))
        );
        let last = &t.hops[6].probes;
        assert_eq!(last.len(), 2);
        assert!(last[0].reply.is_none());
        let reply = last[1].reply.as_ref().unwrap();
        assert_eq!(reply.address, Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!((reply.icmp_type, reply.icmp_code), (Some(3), Some(3)));
        assert_eq!(reply.rtt_us, 1969);
        assert_eq!(last[1].sent_at_us, 10_267_924);
        let first = t.hops[0].probes[0].reply.as_ref().unwrap();
        assert_eq!(first.quoted_ttl, Some(1));
        assert_eq!(first.mpls_labels[0].label, 24008);
        assert!(first.mpls_labels[0].bottom_of_stack);
        assert_eq!(t.stop_reason, StopReason::Reached);
        assert_eq!(
            (t.params.attempts, t.params.timeout_ms, t.params.max_ttl),
            (2, 5000, 64)
        );
    }

    #[test]
    fn the_id_ignores_the_local_time_rendering() {
        let a = trace(TRACE);
        let b = trace(&TRACE.replace("13:35:19", "14:35:19"));
        assert_eq!(a.result_id, b.result_id);
        let c = trace(&TRACE.replace("\"rtt\":1.969", "\"rtt\":1.97"));
        assert_ne!(a.result_id, c.result_id);
    }

    #[test]
    fn completed_without_the_target_is_not_reached() {
        let json = TRACE.replace(r#""addr":"8.8.8.8""#, r#""addr":"192.0.2.1""#);
        let (got, summary) = convert(&json);
        let Ok(Conversion::Trace(t)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(t.stop_reason, StopReason::Unreachable);
        assert_eq!(t.source_stop.as_deref(), Some("COMPLETED"));
        assert_eq!(summary.notes.len(), 1, "{:?}", summary.notes);
    }

    #[test]
    fn the_source_word_is_kept_and_the_stop_reason_judged_from_the_replies() {
        // The target answered at TTL 7 whatever scamper says; HALTED is the one word the
        // replies cannot show, and the target's answer still wins over it.
        for word in ["COMPLETED", "GAPLIMIT", "LOOP", "HALTED", "ERROR"] {
            let json = TRACE.replace("\"COMPLETED\"", &format!("\"{word}\""));
            let t = trace(&json);
            assert_eq!(t.stop_reason, StopReason::Reached, "{word}");
            assert_eq!(t.source_stop.as_deref(), Some(word));
        }
        // Without the target's reply: a router's time exceeded last, below the hop limit.
        let unanswered = TRACE
            .replace(
                r#""icmp_type":3, "icmp_code":3"#,
                r#""icmp_type":11, "icmp_code":0"#,
            )
            .replace(r#""addr":"8.8.8.8""#, r#""addr":"192.0.2.1""#);
        for (word, wire) in [
            ("COMPLETED", StopReason::MaxTtl),
            ("HOPLIMIT", StopReason::MaxTtl),
            ("LOOP", StopReason::MaxTtl),
            ("HALTED", StopReason::Cancelled),
        ] {
            let json = unanswered.replace("\"COMPLETED\"", &format!("\"{word}\""));
            let t = trace(&json);
            assert_eq!(t.stop_reason, wire, "{word}");
            assert_eq!(t.source_stop.as_deref(), Some(word));
        }
        // A word the wire format cannot carry is left out, not a refused trace.
        let (got, summary) = convert(&TRACE.replace("\"COMPLETED\"", "\"NOT A WORD\""));
        let Ok(Conversion::Trace(t)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(t.source_stop, None);
        assert_eq!(summary.notes.len(), 1, "{:?}", summary.notes);
    }

    #[test]
    fn mapped_ipv6_is_ipv4_and_ipv6_is_skipped() {
        let mapped = TRACE
            .replace("\"8.8.8.8\"", "\"::ffff:8.8.8.8\"")
            .replace("\"137.194.165.109\"", "\"::ffff:137.194.165.109\"");
        let t = trace(&mapped);
        assert_eq!(t.target, Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!(t.source, Ipv4Addr::new(137, 194, 165, 109));
        assert_eq!(t.stop_reason, StopReason::Reached);
        let v6 = TRACE.replace("\"dst\":\"8.8.8.8\"", "\"dst\":\"2001:4860:4860::8888\"");
        assert!(matches!(convert(&v6).0, Ok(Conversion::Skip(Skip::Ipv6))));
    }

    #[test]
    fn other_records_are_skipped_and_cycles_name_rounds() {
        let mut converter = ScamperConverter::new(Path::new("a.warts"));
        let mut summary = ImportSummary::default();
        let mut run = |json: &str| {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            converter.convert(&value, &mut summary).unwrap()
        };
        let Conversion::Trace(before) = run(TRACE) else {
            panic!()
        };
        let cycle = run(
            r#"{"type":"cycle-start", "list_name":"default", "id":0, "start_time":1644327319}"#,
        );
        assert!(matches!(cycle, Conversion::Skip(Skip::NotATrace(k)) if k == "cycle-start"));
        let Conversion::Trace(after) = run(TRACE) else {
            panic!()
        };
        assert_ne!(before.round_id, after.round_id);
        let ping = run(r#"{"type":"ping", "version":"0.4"}"#);
        assert!(matches!(ping, Conversion::Skip(Skip::NotATrace(k)) if k == "ping"));
        let atlas = serde_json::json!({"type": "traceroute", "af": 4});
        let err = converter.convert(&atlas, &mut summary).unwrap_err();
        assert!(err.contains("--format atlas"), "{err}");
    }

    #[test]
    fn malformed_traces_say_why() {
        for (from, to, expected) in [
            ("\"udp-paris\"", "\"sctp\"", "method"),
            ("\"probe_ttl\":7", "\"probe_ttl\":70", "beyond"),
            ("\"attempts\":2", "\"attempts\":11", "1..=10"),
            (
                "\"icmp_type\":3, \"icmp_code\":3,",
                "",
                "neither ICMP nor TCP",
            ),
            ("\"addr\":\"8.8.8.8\"", "\"addr\":\"2001:db8::1\"", "IPv6"),
            ("\"hop_count\":7", "\"hop_count\":\"7\"", "invalid type"),
        ] {
            let json = TRACE.replace(from, to);
            let err = convert(&json).0.unwrap_err();
            assert!(err.contains(expected), "{to}: {err}");
        }
    }

    #[test]
    fn warts_files_are_recognised_by_their_magic() {
        assert!(is_warts(&[0x12, 0x05, 0x00, 0x01]));
        assert!(!is_warts(b"{\"type\":\"trace\"}"));
        assert!(!is_warts(&[0x12]));
    }

    #[test]
    fn agent_ids_fit_the_rule() {
        assert_eq!(agent_id(Path::new("dir/a b?.json")), "scamper:a_b_.json");
        assert_eq!(agent_id(Path::new("/")), "scamper:input");
        assert_eq!(agent_id(&Path::new("x").join("y".repeat(100))).len(), 64);
    }
}
