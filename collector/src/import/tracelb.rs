//! scamper `tracelb` records (its MDA), as `sc_warts2json` prints them, converted to
//! multipath results.
//!
//! A record lists `nodes` (interfaces) and, per node, `links`: `links[i]` holds the
//! interfaces `i + 1` hops past the node (`*` where the hops between were silent), each with
//! the probes (`ttl`, `flowid`) it answered. The far end answered at the probe's TTL, the
//! near end `i + 1` TTLs before; where one position holds several interfaces (a diamond
//! scamper kept inside one link), a probe's near end is the interface its flow answered at
//! the position before, so the links are those of the flows. scamper keeps no
//! probe of the first hop: that interface is kept with its address and no reply. The
//! flow of a probe is its `flowid` in the field the method varies (`udp-dport`: the
//! destination port; `udp-sport`, `tcp-sport`, `tcp-ack-sport`: the source port;
//! `icmp-echo`: the checksum).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use nkpath_proto::{
    FlowId, MultipathHop, MultipathInterface, MultipathLink, MultipathParams, MultipathResult,
    Protocol, Reply, SCHEMA_VERSION, StopReason, limits,
};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Conversion, ImportSummary, Skip, UNKNOWN_PPS, canonical_json, derived_uuid, ipv4};

#[derive(Debug, Deserialize)]
struct Tracelb {
    method: String,
    src: Option<String>,
    dst: String,
    sport: Option<u16>,
    dport: Option<u16>,
    start: Start,
    firsthop: u8,
    confidence: u8,
    gaplimit: u8,
    wait_timeout: u32,
    probec: u32,
    probec_max: u32,
    #[serde(default)]
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Start {
    sec: i64,
    usec: i64,
}

#[derive(Debug, Deserialize)]
struct Node {
    addr: Option<String>,
    #[serde(default)]
    links: Vec<Vec<Segment>>,
}

#[derive(Debug, Deserialize)]
struct Segment {
    addr: Option<String>,
    #[serde(default)]
    probes: Vec<LbProbe>,
}

#[derive(Debug, Deserialize)]
struct LbProbe {
    ttl: u8,
    flowid: u16,
    #[serde(default)]
    replies: Vec<LbReply>,
}

#[derive(Debug, Deserialize)]
struct LbReply {
    ttl: u8,
    rtt: f64,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    icmp_q_ttl: Option<u8>,
    tcp_flags: Option<u8>,
}

/// One interface at one TTL, as it is being gathered.
#[derive(Default)]
struct Seen {
    reply: Option<Reply>,
    flows: BTreeSet<u32>,
    probes: u32,
}

/// Converts one `tracelb` record of the file `agent_id` names, in round `round`.
pub(super) fn convert(
    record: &serde_json::Value,
    agent_id: &str,
    round: uuid::Uuid,
    summary: &mut ImportSummary,
) -> Result<Conversion, String> {
    let lb = Tracelb::deserialize(record).map_err(|e| format!("not a scamper tracelb: {e}"))?;
    let Some(target) = ipv4(&lb.dst)? else {
        return Ok(Conversion::Skip(Skip::Ipv6Multipath));
    };
    let Some(source) = lb.src.as_deref().map(ipv4).transpose()?.flatten() else {
        return Ok(Conversion::Skip(Skip::Ipv6Multipath));
    };
    let (protocol, flow_of) = flows_of(&lb)?;
    let mut flows: Vec<FlowId> = Vec::new();
    let mut flow_index = |id: u16| -> u32 {
        let flow = flow_of(id);
        if let Some(i) = flows.iter().position(|f| *f == flow) {
            i as u32
        } else {
            flows.push(flow);
            flows.len() as u32 - 1
        }
    };
    let mut hops: BTreeMap<u8, BTreeMap<Ipv4Addr, Seen>> = BTreeMap::new();
    let mut links: BTreeMap<(u8, Ipv4Addr, u8, Ipv4Addr), BTreeSet<u32>> = BTreeMap::new();
    for node in &lb.nodes {
        let node_addr = responder(node.addr.as_deref())?;
        // Where each flow was last seen along this node's links: (TTL, interface).
        let mut last_seen: BTreeMap<u16, (u8, Ipv4Addr)> = BTreeMap::new();
        // `links[i]`: the interfaces i + 1 hops past the node (`*` for a silent one). Several
        // interfaces at one position are a diamond scamper did not split into nodes: each
        // probe's near end is where its flow answered last, else the node.
        for (i, segments) in node.links.iter().enumerate() {
            let hopc = u8::try_from(i + 1).map_err(|_| "a link of over 255 hops")?;
            let mut here: Vec<(u16, (u8, Ipv4Addr))> = Vec::new();
            for segment in segments {
                let Some(far) = responder(segment.addr.as_deref())? else {
                    continue;
                };
                for probe in &segment.probes {
                    let flow = flow_index(probe.flowid);
                    let seen = hops.entry(probe.ttl).or_default().entry(far).or_default();
                    seen.probes += 1;
                    let Some(reply) = probe.replies.first() else {
                        continue;
                    };
                    seen.flows.insert(flow);
                    if seen.reply.is_none() {
                        seen.reply = Some(to_reply(far, reply)?);
                    }
                    here.push((probe.flowid, (probe.ttl, far)));
                    let near = match last_seen.get(&probe.flowid) {
                        Some(&(ttl, address)) if ttl < probe.ttl => Some((ttl, address)),
                        _ => probe.ttl.checked_sub(hopc).zip(node_addr),
                    };
                    if let Some((near_ttl, near)) = near
                        && near_ttl >= 1
                    {
                        hops.entry(near_ttl).or_default().entry(near).or_default();
                        links
                            .entry((near_ttl, near, probe.ttl, far))
                            .or_default()
                            .insert(flow);
                    }
                }
            }
            last_seen.extend(here);
        }
    }
    if hops.is_empty() {
        summary.note("tracelb without any answered probe: nothing to keep");
        return Err("a tracelb record without any answered probe".into());
    }
    let reached = hops
        .values()
        .any(|interfaces| interfaces.contains_key(&target));
    let max_ttl = hops.keys().copied().max().unwrap_or(1).max(lb.firsthop);
    let first_ttl = hops
        .keys()
        .copied()
        .min()
        .unwrap_or(1)
        .min(lb.firsthop)
        .max(1);
    let started_at = OffsetDateTime::from_unix_timestamp_nanos(
        (i128::from(lb.start.sec) * 1_000_000 + i128::from(lb.start.usec)) * 1000,
    )
    .map_err(|e| format!("start time out of range: {e}"))?;
    let result = MultipathResult {
        schema_version: SCHEMA_VERSION,
        result_id: derived_uuid(&[
            b"scamper tracelb",
            agent_id.as_bytes(),
            canonical_json(record).as_bytes(),
        ]),
        agent_id: agent_id.to_owned(),
        agent_version: "scamper".into(),
        round_id: round,
        source,
        target,
        protocol,
        params: MultipathParams {
            confidence: lb.confidence,
            timeout_ms: lb.wait_timeout.saturating_mul(1000).clamp(1, 60_000),
            first_ttl,
            max_ttl,
            gap_limit: lb.gaplimit.clamp(1, 32),
            max_probes: lb.probec_max.clamp(1, *limits::MDA_MAX_PROBES.end()),
            // scamper records no time budget.
            max_seconds: *limits::MDA_MAX_SECONDS.end(),
            pps: UNKNOWN_PPS,
            per_prefix_pps: UNKNOWN_PPS,
        },
        started_at,
        flows,
        hops: hops
            .into_iter()
            .map(|(ttl, interfaces)| MultipathHop {
                ttl,
                probes: interfaces.values().map(|s| s.probes).sum(),
                interfaces: interfaces
                    .into_iter()
                    .map(|(address, seen)| MultipathInterface {
                        address,
                        reply: seen.reply,
                        flows: seen.flows.into_iter().collect(),
                    })
                    .collect(),
                silent_flows: Vec::new(),
                per_packet: false,
            })
            .collect(),
        links: links
            .into_iter()
            .map(|((near_ttl, near, far_ttl, far), flows)| MultipathLink {
                near_ttl,
                near,
                far_ttl,
                far,
                flows: flows.into_iter().collect(),
            })
            .collect(),
        probes_sent: lb.probec,
        stop_reason: if reached {
            StopReason::Reached
        } else {
            StopReason::GapLimit
        },
        budget_hit: lb.probec >= lb.probec_max,
        annotations: Vec::new(),
        source_stop: None,
    };
    Ok(Conversion::Multipath(Box::new(result)))
}

/// The protocol of `lb`'s method and how a `flowid` becomes a flow.
fn flows_of(lb: &Tracelb) -> Result<(Protocol, impl Fn(u16) -> FlowId), String> {
    let (sport, dport) = (lb.sport.unwrap_or(0), lb.dport.unwrap_or(0));
    let (protocol, varies_source) = match lb.method.as_str() {
        "udp-dport" => (Protocol::Udp, false),
        "udp-sport" => (Protocol::Udp, true),
        "icmp-echo" => (Protocol::Icmp, false),
        "tcp-sport" | "tcp-ack-sport" => (Protocol::Tcp, true),
        other => return Err(format!("tracelb method {other:?} unknown")),
    };
    Ok((protocol, move |id: u16| match protocol {
        Protocol::Icmp => FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: id,
        },
        Protocol::Udp if varies_source => FlowId::Udp {
            src_port: id,
            dst_port: dport,
        },
        Protocol::Udp => FlowId::Udp {
            src_port: sport,
            dst_port: id,
        },
        Protocol::Tcp => FlowId::Tcp {
            src_port: id,
            dst_port: dport,
        },
    }))
}

/// The IPv4 address of a node or segment; `None` for one that never answered (`*`).
fn responder(addr: Option<&str>) -> Result<Option<Ipv4Addr>, String> {
    match addr {
        None | Some("*") => Ok(None),
        Some(text) => ipv4(text),
    }
}

fn to_reply(address: Ipv4Addr, reply: &LbReply) -> Result<Reply, String> {
    if !(0.0..4_000_000.0).contains(&reply.rtt) {
        return Err(format!("rtt {} ms is out of range", reply.rtt));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rtt_us = (reply.rtt * 1000.0).round() as u32;
    let (icmp_type, icmp_code, tcp_flags) = match (reply.icmp_type, reply.icmp_code) {
        (Some(t), Some(c)) => (Some(t), Some(c), None),
        _ => match reply.tcp_flags {
            Some(flags) => (None, None, Some(flags)),
            None => return Err(format!("reply from {address} is neither ICMP nor TCP")),
        },
    };
    Ok(Reply {
        address,
        rtt_us,
        reply_ttl: reply.ttl,
        icmp_type,
        icmp_code,
        tcp_flags,
        quoted_ttl: icmp_type.and(reply.icmp_q_ttl),
        mpls_labels: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn probe(ttl: u8, flowid: u16) -> serde_json::Value {
        json!({"ttl": ttl, "flowid": flowid, "replies": [
            {"ttl": 250, "rtt": 1.0, "icmp_type": 11, "icmp_code": 0, "icmp_q_ttl": 1}]})
    }

    /// A diamond as scamper 20211212 writes it on the testbed (`tracelb -P udp-sport` from
    /// devp): no nodes inside it, one link of the first hop with two interfaces at each of
    /// its first two positions. The links are those the flows took.
    #[test]
    fn a_diamond_inside_one_scamper_link_is_linked_flow_by_flow() {
        let record = json!({
            "type": "tracelb", "method": "udp-sport", "src": "88.198.10.2",
            "dst": "175.45.176.1", "sport": 33435, "dport": 33434,
            "start": {"sec": 1_700_000_000, "usec": 0}, "firsthop": 1, "confidence": 95,
            "gaplimit": 3, "wait_timeout": 5, "probec": 12, "probec_max": 3000,
            "nodes": [
                {"addr": "88.198.10.1", "links": [
                    [{"addr": "88.198.11.1", "probes": [probe(2, 1), probe(2, 3)]},
                     {"addr": "88.198.11.5", "probes": [probe(2, 2)]}],
                    [{"addr": "88.198.12.1", "probes": [probe(3, 1), probe(3, 3)]},
                     {"addr": "88.198.12.5", "probes": [probe(3, 2)]}],
                    [{"addr": "62.115.1.9", "probes": [probe(4, 1), probe(4, 2)]}]]},
                {"addr": "62.115.1.9", "links": []}
            ]
        });
        let mut summary = ImportSummary::default();
        let Ok(Conversion::Multipath(m)) =
            convert(&record, "scamper:t", uuid::Uuid::nil(), &mut summary)
        else {
            panic!("not converted");
        };
        let links: Vec<(u8, String, u8, String)> = m
            .links
            .iter()
            .map(|l| (l.near_ttl, l.near.to_string(), l.far_ttl, l.far.to_string()))
            .collect();
        let want: Vec<(u8, String, u8, String)> = [
            (1, "88.198.10.1", 2, "88.198.11.1"),
            (1, "88.198.10.1", 2, "88.198.11.5"),
            (2, "88.198.11.1", 3, "88.198.12.1"),
            (2, "88.198.11.5", 3, "88.198.12.5"),
            (3, "88.198.12.1", 4, "62.115.1.9"),
            (3, "88.198.12.5", 4, "62.115.1.9"),
        ]
        .iter()
        .map(|(a, b, c, d)| (*a, (*b).to_owned(), *c, (*d).to_owned()))
        .collect();
        assert_eq!(links, want);
    }
}
