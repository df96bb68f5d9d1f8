//! RIPE Atlas traceroute results, as the Atlas API and daily dumps publish them.
//!
//! One result is one probe's traceroute in one measurement: `msm_id`, `prb_id`, `timestamp`,
//! `proto`, `paris_id`, and per hop the entries of the packets sent (usually three): a
//! reply (`from`, `rtt` in ms, reply `ttl`, optional `err`, `ittl`, `icmpext`), a timeout
//! (`"x": "*"`), or extras that are not probes of that hop (`late` and `dup` replies, send
//! `error`s).
//!
//! What an Atlas result does not say, and what is stored instead:
//! - the ICMP type of a reply: from the target, the reply the probe protocol asks for (echo
//!   reply, port unreachable, or a TCP segment); with `err`, destination unreachable with
//!   the code `err` names; else time exceeded.
//! - the flow header values: Atlas records `paris_id`, the number it varies the flow by,
//!   not the ports or checksum. It is kept where the flow varies (the ICMP checksum field,
//!   the UDP/TCP source port) with 0 for the unknown destination port, so traces of one
//!   `paris_id` share a flow id as they shared a flow.
//! - per-probe send times (stored as 0), the timeout and gap limit (Atlas defaults: 4 s, 5
//!   silent hops), rate caps (1000 pps, the largest the wire format takes: no cap known).
//!
//! Atlas's hop 255 is the probe it sends with TTL 255 after giving up on a gap, to see if
//! the target is up: it is not a position on the path (and beyond the wire format's 64),
//! so it is dropped and counted.
//!
//! Atlas records no stop reason (`source_stop` stays absent). nkpath's is judged from the
//! replies ([`super::stop_from_replies`]) against Atlas's limits: a reply from the target
//! is `reached`; a "destination unreachable" (`err`) at the last hop, `unreachable`; a last
//! hop at the measurement's maximum (32, Atlas's default, unless the result went further),
//! `max_ttl`; a silent last hop (Atlas gives up after 5 silent hops), `gap_limit`.

use std::net::Ipv4Addr;

use nkpath_proto::{
    FlowId, Hop, MplsLabel, Probe, ProbeParams, Protocol, Reply, SCHEMA_VERSION, TraceResult,
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    Conversion, Converter, ImportSummary, Skip, UNKNOWN_PPS, canonical_json, derived_uuid,
    stop_from_replies,
};

/// Atlas's default `response_timeout`, ms (results do not record it).
const TIMEOUT_MS: u32 = 4000;
/// Consecutive silent hops after which Atlas gives up (then sends its TTL-255 probe).
const GAP_LIMIT: u8 = 5;
/// Atlas's default `max_hops`.
const MAX_HOPS: u8 = 32;
/// The hop number of Atlas's final TTL-255 probe.
const FINAL_PROBE_HOP: u16 = 255;
/// Atlas's other measurement types, skipped: any other `type` means the file is not Atlas
/// results (a scamper file given the wrong `--format` must not pass as 0 traces, silently).
const OTHER_TYPES: [&str; 6] = ["ping", "dns", "sslcert", "http", "ntp", "wifi"];

/// The fields of a result read before the rest, to skip what is not an IPv4 traceroute.
#[derive(Debug, Deserialize)]
struct Header {
    #[serde(rename = "type")]
    kind: Option<String>,
    af: Option<u8>,
}

/// One Atlas traceroute result.
#[derive(Debug, Deserialize)]
struct AtlasResult {
    msm_id: u64,
    prb_id: u64,
    /// Start, Unix seconds.
    timestamp: i64,
    /// Probe firmware version.
    fw: Option<u32>,
    /// Absent when the name could not be resolved (then a hop carries the `error`).
    dst_addr: Option<String>,
    /// The probe's public address as the Atlas servers see it.
    from: Option<String>,
    /// The probe's own (often private) address.
    src_addr: Option<String>,
    proto: String,
    paris_id: Option<u16>,
    result: Vec<AtlasHop>,
}

#[derive(Debug, Deserialize)]
struct AtlasHop {
    hop: Option<u16>,
    /// The measurement failed (name resolution, connect…).
    error: Option<String>,
    #[serde(default)]
    result: Vec<AtlasEntry>,
}

/// One entry of a hop: a reply, a timeout, or an extra.
#[derive(Debug, Deserialize)]
struct AtlasEntry {
    /// `"*"`: no reply.
    x: Option<String>,
    /// A reply that arrived after its probe timed out, N packets late: not this hop's.
    late: Option<u32>,
    /// A duplicate reply.
    dup: Option<bool>,
    /// The packet could not be sent.
    error: Option<String>,
    from: Option<String>,
    /// Round-trip time, ms.
    rtt: Option<f64>,
    /// The reply's IP TTL.
    ttl: Option<u8>,
    /// The probe's TTL quoted in the ICMP error; left out when 1.
    ittl: Option<u8>,
    /// Destination unreachable: a letter or the numeric code.
    err: Option<AtlasErr>,
    /// Fragmentation needed: the next-hop MTU.
    mtu: Option<u32>,
    /// TCP flags of a TCP reply, as letters ("SA", "R").
    flags: Option<String>,
    icmpext: Option<IcmpExt>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AtlasErr {
    Letter(String),
    Code(u64),
}

/// RFC 4884 ICMP extension objects.
#[derive(Debug, Deserialize)]
struct IcmpExt {
    #[serde(default)]
    obj: Vec<IcmpExtObject>,
}

#[derive(Debug, Deserialize)]
struct IcmpExtObject {
    class: u8,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    mpls: Vec<AtlasMpls>,
}

/// A label stack entry of an MPLS object (class 1, type 1; RFC 4950).
#[derive(Debug, Deserialize)]
struct AtlasMpls {
    label: u32,
    exp: u8,
    s: u8,
    ttl: u8,
}

/// Converts Atlas results.
pub(super) struct AtlasConverter;

impl Converter for AtlasConverter {
    fn convert(
        &mut self,
        record: &serde_json::Value,
        summary: &mut ImportSummary,
    ) -> Result<Conversion, String> {
        convert(record, summary)
    }
}

fn convert(record: &serde_json::Value, summary: &mut ImportSummary) -> Result<Conversion, String> {
    let header = Header::deserialize(record).map_err(|e| format!("not an Atlas result: {e}"))?;
    match header.kind.as_deref() {
        Some("traceroute") => {}
        Some(other) if OTHER_TYPES.contains(&other) => {
            return Ok(Conversion::Skip(Skip::NotATrace(other.to_owned())));
        }
        Some(other) => {
            return Err(format!(
                "not an Atlas result: type {other:?}{}",
                if other == "trace" {
                    " (a scamper trace? try --format scamper)"
                } else {
                    ""
                }
            ));
        }
        None => return Err("not an Atlas result: missing field `type`".into()),
    }
    match header.af {
        Some(4) => {}
        Some(6) => return Ok(Conversion::Skip(Skip::Ipv6)),
        other => return Err(format!("address family {other:?}: expected `af` 4 or 6")),
    }
    let result = AtlasResult::deserialize(record)
        .map_err(|e| format!("not an Atlas traceroute result: {e}"))?;
    if let Some(error) = result.result.iter().find_map(|h| h.error.as_ref()) {
        return Ok(Conversion::Skip(Skip::Failed(error.clone())));
    }
    let trace = to_trace(&result, record, summary)
        .map_err(|e| format!("msm {} probe {}: {e}", result.msm_id, result.prb_id))?;
    match trace {
        Some(trace) => Ok(Conversion::Trace(Box::new(trace))),
        None => Ok(Conversion::Skip(Skip::Failed(
            "no packet could be sent".into(),
        ))),
    }
}

fn to_trace(
    result: &AtlasResult,
    record: &serde_json::Value,
    summary: &mut ImportSummary,
) -> Result<Option<TraceResult>, String> {
    let target: Ipv4Addr = ipv4("dst_addr", result.dst_addr.as_deref())?;
    let source = ipv4("from", result.from.as_deref())
        .or_else(|_| ipv4("src_addr", result.src_addr.as_deref()))?;
    let protocol = match result.proto.as_str() {
        "ICMP" => Protocol::Icmp,
        "UDP" => Protocol::Udp,
        "TCP" => Protocol::Tcp,
        other => return Err(format!("proto {other:?}: expected ICMP, UDP or TCP")),
    };
    let paris_id = result.paris_id.unwrap_or(0);
    let flow = match protocol {
        Protocol::Icmp => FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: paris_id,
        },
        Protocol::Udp => FlowId::Udp {
            src_port: paris_id,
            dst_port: 0,
        },
        Protocol::Tcp => FlowId::Tcp {
            src_port: paris_id,
            dst_port: 0,
        },
    };
    let started_at = OffsetDateTime::from_unix_timestamp(result.timestamp)
        .map_err(|e| format!("timestamp {}: {e}", result.timestamp))?;

    let mut hops: Vec<Hop> = Vec::new();
    let mut sent_any = false;
    for hop in &result.result {
        let number = hop.hop.ok_or("a hop without its `hop` number")?;
        let mut probes = Vec::new();
        for entry in &hop.result {
            if entry.late.is_some() {
                summary.note("late replies ignored (not matched to a probe)");
                continue;
            }
            if entry.dup == Some(true) {
                summary.note("duplicate replies ignored");
                continue;
            }
            if entry.error.is_some() {
                summary.note("packets Atlas could not send");
                continue;
            }
            let reply = if entry.x.is_some() {
                None
            } else {
                Some(reply(entry, target, protocol).map_err(|e| format!("hop {number}: {e}"))?)
            };
            let attempt = u8::try_from(probes.len() + 1)
                .map_err(|_| format!("hop {number}: too many packets"))?;
            probes.push(Probe {
                attempt,
                sent_at_us: 0,
                reply,
            });
        }
        sent_any |= !probes.is_empty();
        if number == FINAL_PROBE_HOP {
            summary.note("TTL-255 final probes dropped");
            continue;
        }
        let ttl = u8::try_from(number)
            .ok()
            .filter(|ttl| (1..=nkpath_proto::limits::MAX_TTL.end().to_owned()).contains(ttl))
            .ok_or_else(|| format!("hop {number}: outside 1..=64"))?;
        if hops.last().is_some_and(|last| last.ttl >= ttl) {
            return Err(format!("hop {number} out of order"));
        }
        if probes.is_empty() {
            summary.note("hops without any probe dropped");
            continue;
        }
        hops.push(Hop {
            ttl,
            probes,
            inherited: None,
        });
    }
    if !sent_any {
        return Ok(None);
    }
    let attempts = hops.iter().map(|h| h.probes.len()).max().unwrap_or(1);
    let attempts = u8::try_from(attempts)
        .ok()
        .filter(|a| nkpath_proto::limits::ATTEMPTS.contains(a))
        .ok_or_else(|| format!("{attempts} packets per hop: the wire format takes 1..=10"))?;
    let first_ttl = hops.first().map_or(1, |h| h.ttl);
    let max_ttl = hops.last().map_or(MAX_HOPS, |h| h.ttl.max(MAX_HOPS));
    let params = ProbeParams {
        attempts,
        timeout_ms: TIMEOUT_MS,
        gap_limit: GAP_LIMIT,
        first_ttl,
        max_ttl,
        pps: UNKNOWN_PPS,
        per_prefix_pps: UNKNOWN_PPS,
    };
    let stop_reason = stop_from_replies(&hops, target, &params);
    let canonical = canonical_json(record);
    let msm = result.msm_id.to_string();
    Ok(Some(TraceResult {
        schema_version: SCHEMA_VERSION,
        result_id: derived_uuid(&[b"atlas", canonical.as_bytes()]),
        agent_id: format!("atlas:{}/{}", result.msm_id, result.prb_id),
        agent_version: result
            .fw
            .map_or_else(|| "atlas".to_owned(), |fw| format!("atlas-fw{fw}")),
        round_id: derived_uuid(&[
            b"atlas round",
            msm.as_bytes(),
            &result.timestamp.to_be_bytes(),
        ]),
        source,
        target,
        protocol,
        flow,
        params,
        started_at,
        hops,
        stop_reason,
        annotations: Vec::new(),
        // Atlas records no stop reason.
        source_stop: None,
    }))
}

fn ipv4(field: &str, text: Option<&str>) -> Result<Ipv4Addr, String> {
    let text = text.ok_or_else(|| format!("missing `{field}`"))?;
    text.parse()
        .map_err(|_| format!("`{field}` {text:?} is not an IPv4 address"))
}

/// The reply of one entry that has a `from`.
fn reply(entry: &AtlasEntry, target: Ipv4Addr, protocol: Protocol) -> Result<Reply, String> {
    let address = ipv4("from", entry.from.as_deref())?;
    let rtt_ms = entry.rtt.ok_or("a reply without `rtt`")?;
    if !(0.0..4_000_000.0).contains(&rtt_ms) {
        return Err(format!("rtt {rtt_ms} ms is out of range"));
    }
    // Rounded to the µs of the wire format; below 4e6 ms it fits a u32.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rtt_us = (rtt_ms * 1000.0).round() as u32;
    let reply_ttl = entry.ttl.ok_or("a reply without `ttl`")?;
    // Atlas leaves `ittl` out when it is 1, the normal value.
    let quoted_ttl = Some(entry.ittl.unwrap_or(1));
    let icmp = |icmp_type: u8, icmp_code: u8, quoted_ttl: Option<u8>| Reply {
        address,
        rtt_us,
        reply_ttl,
        icmp_type: Some(icmp_type),
        icmp_code: Some(icmp_code),
        tcp_flags: None,
        quoted_ttl,
        mpls_labels: mpls(entry.icmpext.as_ref()),
    };
    Ok(if let Some(err) = &entry.err {
        icmp(3, unreachable_code(err)?, quoted_ttl)
    } else if entry.mtu.is_some() {
        // Fragmentation needed.
        icmp(3, 4, quoted_ttl)
    } else if address == target {
        match protocol {
            Protocol::Icmp => icmp(0, 0, None),
            Protocol::Udp => icmp(3, 3, quoted_ttl),
            Protocol::Tcp => Reply {
                address,
                rtt_us,
                reply_ttl,
                icmp_type: None,
                icmp_code: None,
                tcp_flags: Some(tcp_flags(
                    entry
                        .flags
                        .as_deref()
                        .ok_or("a TCP reply from the target without `flags`")?,
                )?),
                quoted_ttl: None,
                mpls_labels: Vec::new(),
            },
        }
    } else {
        icmp(11, 0, quoted_ttl)
    })
}

/// The ICMP destination-unreachable code Atlas's `err` stands for: its letters are those
/// of traceroute's `!N`, `!H`, `!P`, `!p`, `!A`/`!X` (network, host, protocol, port,
/// administratively prohibited); a number is the code itself.
fn unreachable_code(err: &AtlasErr) -> Result<u8, String> {
    match err {
        AtlasErr::Letter(letter) => match letter.as_str() {
            "N" => Ok(0),
            "H" => Ok(1),
            "P" => Ok(2),
            "p" => Ok(3),
            "A" | "X" => Ok(13),
            other => Err(format!("err {other:?}: not an Atlas unreachable code")),
        },
        AtlasErr::Code(code) => {
            u8::try_from(*code).map_err(|_| format!("err {code}: not an ICMP code"))
        }
    }
}

/// The MPLS label stack of the extension's MPLS objects (class 1, type 1), top first.
fn mpls(ext: Option<&IcmpExt>) -> Vec<MplsLabel> {
    ext.into_iter()
        .flat_map(|ext| &ext.obj)
        .filter(|obj| obj.class == 1 && obj.kind == 1)
        .flat_map(|obj| &obj.mpls)
        .map(|entry| MplsLabel {
            label: entry.label,
            tc: entry.exp,
            bottom_of_stack: entry.s != 0,
            ttl: entry.ttl,
        })
        .collect()
}

/// TCP flags from Atlas's letters (`"SA"`: SYN-ACK).
fn tcp_flags(letters: &str) -> Result<u8, String> {
    letters.chars().try_fold(0u8, |flags, c| {
        let bit = match c {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            other => return Err(format!("TCP flag {other:?} unknown")),
        };
        Ok(flags | bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkpath_proto::StopReason;

    fn convert_json(json: &str) -> (Result<Conversion, String>, ImportSummary) {
        let mut summary = ImportSummary::default();
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        (convert(&value, &mut summary), summary)
    }

    fn trace(json: &str) -> TraceResult {
        match convert_json(json).0 {
            Ok(Conversion::Trace(t)) => *t,
            other => panic!("not a trace: {other:?}"),
        }
    }

    /// A result shaped like Atlas's, small enough to read: UDP, hop 1 a router, hop 2
    /// the target after one timeout, then Atlas's TTL-255 probe.
    const UDP: &str = r#"{"af":4,"type":"traceroute","msm_id":5017,"prb_id":190,
        "timestamp":1447330668,"fw":4720,"dst_addr":"192.0.2.9","from":"198.51.100.7",
        "src_addr":"10.0.0.7","proto":"UDP","paris_id":10,"result":[
        {"hop":1,"result":[{"from":"203.0.113.1","rtt":1.2344,"size":68,"ttl":254},
                           {"from":"203.0.113.1","rtt":2.5,"ttl":254,"ittl":0,
                            "icmpext":{"version":2,"rfc4884":0,"obj":[{"class":1,"type":1,
                            "mpls":[{"exp":1,"label":407904,"s":1,"ttl":1}]}]}}]},
        {"hop":2,"result":[{"x":"*"},{"late":1,"from":"203.0.113.1","ttl":254},
                           {"from":"192.0.2.9","rtt":30,"ttl":50}]},
        {"hop":255,"result":[{"x":"*"}]}]}"#;

    #[test]
    fn a_udp_result_keeps_every_probe_and_reply() {
        let (got, summary) = convert_json(UDP);
        let Ok(Conversion::Trace(t)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(t.agent_id, "atlas:5017/190");
        assert_eq!(t.agent_version, "atlas-fw4720");
        assert_eq!(t.source, Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(t.target, Ipv4Addr::new(192, 0, 2, 9));
        assert_eq!(
            t.flow,
            FlowId::Udp {
                src_port: 10,
                dst_port: 0
            }
        );
        assert_eq!(t.started_at.unix_timestamp(), 1_447_330_668);
        assert_eq!(t.hops.iter().map(|h| h.ttl).collect::<Vec<_>>(), [1, 2]);
        let first = t.hops[0].probes[0].reply.as_ref().unwrap();
        assert_eq!(first.rtt_us, 1234);
        assert_eq!((first.icmp_type, first.icmp_code), (Some(11), Some(0)));
        assert_eq!((first.reply_ttl, first.quoted_ttl), (254, Some(1)));
        let second = t.hops[0].probes[1].reply.as_ref().unwrap();
        assert_eq!(second.quoted_ttl, Some(0));
        assert_eq!(
            second.mpls_labels,
            [MplsLabel {
                label: 407_904,
                tc: 1,
                bottom_of_stack: true,
                ttl: 1
            }]
        );
        // The late reply is not a probe: hop 2 has the timeout and the target's reply.
        let hop2 = &t.hops[1].probes;
        assert_eq!(hop2.len(), 2);
        assert!(hop2[0].reply.is_none());
        let last = hop2[1].reply.as_ref().unwrap();
        assert_eq!((last.icmp_type, last.icmp_code), (Some(3), Some(3)));
        assert_eq!(last.rtt_us, 30_000);
        assert_eq!(t.stop_reason, StopReason::Reached);
        assert_eq!(t.params.attempts, 2);
        assert_eq!((t.params.first_ttl, t.params.max_ttl), (1, 32));
        assert_eq!(
            summary
                .notes
                .get("late replies ignored (not matched to a probe)"),
            Some(&1)
        );
        assert_eq!(summary.notes.get("TTL-255 final probes dropped"), Some(&1));
    }

    #[test]
    fn ids_are_derived_from_the_record() {
        let a = trace(UDP);
        let b = trace(&UDP.replace('\n', " ").replace("  ", " "));
        assert_eq!(a.result_id, b.result_id);
        assert_eq!(a.round_id, b.round_id);
        let other_probe = trace(&UDP.replace("\"prb_id\":190", "\"prb_id\":191"));
        assert_ne!(a.result_id, other_probe.result_id);
        assert_eq!(a.round_id, other_probe.round_id, "same msm and time");
    }

    #[test]
    fn err_codes_become_unreachable_codes() {
        for (err, code) in [
            (r#""N""#, 0),
            (r#""H""#, 1),
            (r#""P""#, 2),
            (r#""p""#, 3),
            (r#""A""#, 13),
            (r#""X""#, 13),
            ("9", 9),
        ] {
            let json = UDP.replace(
                r#"{"from":"192.0.2.9","rtt":30,"ttl":50}"#,
                &format!(r#"{{"from":"203.0.113.2","rtt":30,"ttl":50,"err":{err}}}"#),
            );
            let t = trace(&json);
            let r = t.hops[1].probes[1].reply.as_ref().unwrap();
            assert_eq!((r.icmp_type, r.icmp_code), (Some(3), Some(code)), "{err}");
            assert_eq!(t.stop_reason, StopReason::Unreachable, "{err}");
        }
        let bad = UDP.replace(
            r#"{"from":"192.0.2.9","rtt":30,"ttl":50}"#,
            r#"{"from":"203.0.113.2","rtt":30,"ttl":50,"err":"Q"}"#,
        );
        let err = convert_json(&bad).0.unwrap_err();
        assert!(err.contains("err \"Q\"") && err.contains("hop 2"), "{err}");
    }

    #[test]
    fn icmp_replies_from_the_target_are_echo_replies() {
        let t = trace(&UDP.replace("\"UDP\"", "\"ICMP\""));
        let r = t.hops[1].probes[1].reply.as_ref().unwrap();
        assert_eq!(
            (r.icmp_type, r.icmp_code, r.quoted_ttl),
            (Some(0), Some(0), None)
        );
        assert_eq!(
            t.flow,
            FlowId::Icmp {
                icmp_type: 8,
                icmp_code: 0,
                checksum: 10
            }
        );
    }

    #[test]
    fn tcp_replies_keep_their_flags() {
        let json = UDP
            .replace("\"UDP\"", "\"TCP\"")
            .replace(r#""rtt":30,"ttl":50"#, r#""rtt":30,"ttl":50,"flags":"SA""#);
        let t = trace(&json);
        let r = t.hops[1].probes[1].reply.as_ref().unwrap();
        assert_eq!((r.icmp_type, r.tcp_flags), (None, Some(0x12)));
        let no_flags = UDP.replace("\"UDP\"", "\"TCP\"");
        assert!(convert_json(&no_flags).0.unwrap_err().contains("flags"));
    }

    #[test]
    fn silence_at_the_end_is_the_gap_limit() {
        let json = UDP.replace(r#"{"from":"192.0.2.9","rtt":30,"ttl":50}"#, r#"{"x":"*"}"#);
        let t = trace(&json);
        assert_eq!(t.stop_reason, StopReason::GapLimit);
        assert_eq!(t.source_stop, None, "Atlas records no stop reason");
    }

    #[test]
    fn a_result_that_ran_to_its_last_hop_is_max_ttl() {
        // Silent at hop 32, Atlas's maximum: the trace ran out of hops, not into a gap.
        let json = UDP
            .replace(r#"{"from":"192.0.2.9","rtt":30,"ttl":50}"#, r#"{"x":"*"}"#)
            .replace("\"hop\":2,", "\"hop\":32,");
        let t = trace(&json);
        assert_eq!(t.hops.last().map(|h| h.ttl), Some(32));
        assert_eq!(t.stop_reason, StopReason::MaxTtl);
    }

    #[test]
    fn other_records_are_skipped_with_their_reason() {
        let ipv6 = UDP.replace("\"af\":4", "\"af\":6");
        assert!(matches!(
            convert_json(&ipv6).0,
            Ok(Conversion::Skip(Skip::Ipv6))
        ));
        let ping = UDP.replace("\"traceroute\"", "\"ping\"");
        assert!(matches!(
            convert_json(&ping).0,
            Ok(Conversion::Skip(Skip::NotATrace(kind))) if kind == "ping"
        ));
        let scamper = UDP.replace("\"traceroute\"", "\"trace\"");
        let err = convert_json(&scamper).0.unwrap_err();
        assert!(err.contains("--format scamper"), "{err}");
        let failed = r#"{"af":4,"type":"traceroute","msm_id":1,"prb_id":2,"timestamp":3,
            "proto":"ICMP","result":[{"error":"name resolution failed"}]}"#;
        assert!(matches!(
            convert_json(failed).0,
            Ok(Conversion::Skip(Skip::Failed(e))) if e == "name resolution failed"
        ));
    }

    #[test]
    fn malformed_records_say_why() {
        for (from, to, expected) in [
            (
                "\"dst_addr\":\"192.0.2.9\"",
                "\"dst_addr\":\"x\"",
                "dst_addr",
            ),
            ("\"proto\":\"UDP\"", "\"proto\":\"SCTP\"", "SCTP"),
            ("\"hop\":2", "\"hop\":70", "hop 70"),
            ("\"hop\":2", "\"hop\":1", "out of order"),
            ("\"rtt\":30,", "", "rtt"),
            ("\"msm_id\":5017", "\"msm_id\":\"a\"", "invalid type"),
            ("\"af\":4", "\"af\":5", "address family"),
        ] {
            let json = UDP.replace(from, to);
            let err = convert_json(&json).0.unwrap_err();
            assert!(err.contains(expected), "{to}: {err}");
        }
    }
}
