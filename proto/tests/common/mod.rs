//! Canonical sample values, one per document type. The golden files are
//! these values serialized; the decode tests break them one field at a time.
//!
//! Addresses are from the documentation ranges, except the target, which is
//! in the prefix nkpath watches (175.45.176.0/22).

#![allow(dead_code)] // each test binary uses a different subset

use std::net::Ipv4Addr;

use nkpath_proto::{
    AnnotationSource, FlowId, Hop, HopAnnotation, InheritedFrom, MplsLabel, MultipathHop,
    MultipathInterface, MultipathLink, MultipathParams, MultipathResult, PingResult, Probe,
    ProbeParams, Protocol, Refusal, Reply, ResultRecord, SCHEMA_VERSION, StopReason, TraceResult,
    UploadAck, UploadBatch,
};
use time::macros::datetime;
use uuid::{Uuid, uuid};

pub const AGENT_ID: &str = "vp-fra1";
pub const AGENT_VERSION: &str = "0.1.0";
pub const TARGET: Ipv4Addr = Ipv4Addr::new(175, 45, 176, 1);
pub const SOURCE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const ROUND_ID: Uuid = uuid!("5a3c1e2f-0000-4000-8000-000000000001");
pub const TRACE_ID: Uuid = uuid!("7f1c2d3e-4b5a-4c6d-8e7f-0123456789ab");
pub const TCP_TRACE_ID: Uuid = uuid!("7f1c2d3e-4b5a-4c6d-8e7f-0123456789ac");
pub const PING_ID: Uuid = uuid!("0b0e5f3c-7d7a-4a8e-9d43-2b1f1b7a6c01");
pub const MULTIPATH_ID: Uuid = uuid!("7f1c2d3e-4b5a-4c6d-8e7f-0123456789ae");
pub const BATCH_ID: Uuid = uuid!("c0ffee00-1234-4abc-8def-000000000042");

pub fn params() -> ProbeParams {
    ProbeParams {
        attempts: 3,
        timeout_ms: 2_000,
        gap_limit: 5,
        first_ttl: 1,
        max_ttl: 30,
        pps: 50,
        per_prefix_pps: 1,
    }
}

/// ICMP time exceeded (type 11, code 0) quoting the probe with `quoted_ttl`.
fn time_exceeded(address: Ipv4Addr, rtt_us: u32, reply_ttl: u8, quoted_ttl: u8) -> Reply {
    Reply {
        address,
        rtt_us,
        reply_ttl,
        icmp_type: Some(11),
        icmp_code: Some(0),
        tcp_flags: None,
        quoted_ttl: Some(quoted_ttl),
        mpls_labels: Vec::new(),
    }
}

fn probe(attempt: u8, sent_at_us: u64, reply: Option<Reply>) -> Probe {
    Probe {
        attempt,
        sent_at_us,
        reply,
    }
}

/// An ICMP Paris trace that exercises every field: several hops, a silent
/// probe, time-exceeded replies quoting TTL 1 and (one router) 0, a reply
/// with a two-label MPLS stack, a final echo reply, and annotations from
/// both sources.
pub fn trace() -> TraceResult {
    let gateway = Ipv4Addr::new(198, 51, 100, 1);
    let transit = Ipv4Addr::new(203, 0, 113, 9);
    let lsr = Ipv4Addr::new(203, 0, 113, 33);
    let border = Ipv4Addr::new(192, 0, 2, 61);
    let mut in_tunnel = time_exceeded(lsr, 31_870, 252, 1);
    in_tunnel.mpls_labels = vec![
        MplsLabel {
            label: 24_001,
            tc: 0,
            bottom_of_stack: false,
            ttl: 1,
        },
        MplsLabel {
            label: 16_005,
            tc: 5,
            bottom_of_stack: true,
            ttl: 1,
        },
    ];
    TraceResult {
        schema_version: SCHEMA_VERSION,
        result_id: TRACE_ID,
        agent_id: AGENT_ID.into(),
        agent_version: AGENT_VERSION.into(),
        round_id: ROUND_ID,
        source: SOURCE,
        target: TARGET,
        protocol: Protocol::Icmp,
        flow: FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: 0x1c46,
        },
        params: params(),
        started_at: datetime!(2017-10-01 00:00:00 UTC),
        hops: vec![
            Hop {
                ttl: 1,
                probes: vec![
                    probe(1, 0, Some(time_exceeded(gateway, 412, 64, 1))),
                    probe(2, 20_000, Some(time_exceeded(gateway, 398, 64, 1))),
                ],
                inherited: None,
            },
            Hop {
                ttl: 2,
                probes: vec![
                    probe(1, 40_000, None),
                    probe(2, 2_040_000, Some(time_exceeded(transit, 8_120, 253, 1))),
                ],
                inherited: None,
            },
            Hop {
                ttl: 3,
                probes: vec![probe(1, 2_060_000, Some(in_tunnel))],
                inherited: None,
            },
            Hop {
                ttl: 4,
                probes: vec![probe(
                    1,
                    2_080_000,
                    Some(time_exceeded(border, 188_400, 249, 0)),
                )],
                inherited: None,
            },
            Hop {
                ttl: 5,
                probes: vec![probe(
                    1,
                    2_100_000,
                    Some(Reply {
                        address: TARGET,
                        rtt_us: 212_500,
                        reply_ttl: 52,
                        icmp_type: Some(0),
                        icmp_code: Some(0),
                        tcp_flags: None,
                        quoted_ttl: None,
                        mpls_labels: Vec::new(),
                    }),
                )],
                inherited: None,
            },
        ],
        stop_reason: StopReason::Reached,
        annotations: vec![
            HopAnnotation {
                address: gateway,
                name: Some("gw1.fra.example.net".into()),
                asn: None,
                source: AnnotationSource::Ptr,
                resolved_at: datetime!(2017-10-01 00:00:02.5 UTC),
            },
            HopAnnotation {
                address: lsr,
                name: None,
                asn: Some(4837),
                source: AnnotationSource::Cymru,
                resolved_at: datetime!(2017-10-01 00:00:03 UTC),
            },
            HopAnnotation {
                address: TARGET,
                name: None,
                asn: Some(131_279),
                source: AnnotationSource::Cymru,
                resolved_at: datetime!(2017-10-01 00:00:03 UTC),
            },
        ],
        source_stop: None,
    }
}

/// A TCP trace answered by a SYN-ACK, with no annotations (so the field is
/// left out).
pub fn tcp_trace() -> TraceResult {
    TraceResult {
        result_id: TCP_TRACE_ID,
        protocol: Protocol::Tcp,
        flow: FlowId::Tcp {
            src_port: 40_123,
            dst_port: 80,
        },
        params: ProbeParams {
            attempts: 1,
            ..params()
        },
        hops: vec![
            Hop {
                ttl: 1,
                probes: vec![probe(
                    1,
                    0,
                    Some(time_exceeded(Ipv4Addr::new(198, 51, 100, 1), 405, 64, 1)),
                )],
                // Probed by another trace of the survey (a stop set): schema 1.1.
                inherited: Some(InheritedFrom {
                    target: Ipv4Addr::new(175, 45, 176, 9),
                    flow: FlowId::Tcp {
                        src_port: 40_001,
                        dst_port: 80,
                    },
                }),
            },
            Hop {
                ttl: 2,
                probes: vec![probe(
                    1,
                    20_000,
                    Some(Reply {
                        address: TARGET,
                        rtt_us: 211_900,
                        reply_ttl: 52,
                        icmp_type: None,
                        icmp_code: None,
                        tcp_flags: Some(0x12), // SYN-ACK
                        quoted_ttl: None,
                        mpls_labels: Vec::new(),
                    }),
                )],
                inherited: None,
            },
        ],
        annotations: Vec::new(),
        ..trace()
    }
}

pub fn ping() -> PingResult {
    PingResult {
        schema_version: SCHEMA_VERSION,
        result_id: PING_ID,
        agent_id: AGENT_ID.into(),
        agent_version: AGENT_VERSION.into(),
        round_id: ROUND_ID,
        source: SOURCE,
        target: TARGET,
        started_at: datetime!(2017-10-01 00:00:10 UTC),
        sent: 4,
        received: 3,
        rtts_us: vec![212_000, 215_500, 213_250],
    }
}

pub fn batch() -> UploadBatch {
    UploadBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: AGENT_ID.into(),
        agent_version: AGENT_VERSION.into(),
        batch_id: BATCH_ID,
        sent_at: datetime!(2017-10-01 00:05:00 UTC),
        results: vec![trace().into(), ping().into()],
        round_interval_s: Some(900),
    }
}

/// An ack with every optional field: a refusal with and one without an id,
/// a pause and new targets.
pub fn ack() -> UploadAck {
    UploadAck {
        schema_version: SCHEMA_VERSION,
        batch_id: BATCH_ID,
        received_at: datetime!(2017-10-01 00:05:01.25 UTC),
        accepted: vec![TRACE_ID, PING_ID],
        refused: vec![
            Refusal {
                id: Some(uuid!("7f1c2d3e-4b5a-4c6d-8e7f-0123456789ad")),
                field: "results[2].hops[0].ttl".into(),
                reason: "0 is outside the probed range first_ttl..=max_ttl (1..=30)".into(),
            },
            Refusal {
                id: None,
                field: "results[3]".into(),
                reason: "invalid JSON: missing field `kind`".into(),
            },
        ],
        refused_unlisted: 3,
        pause_until: Some(datetime!(2017-10-01 01:00:00 UTC)),
        targets: Some(vec!["175.45.176.0/22".into(), "210.52.109.0/24".into()]),
        result_kinds: vec!["trace".into(), "ping".into(), "multipath".into()],
    }
}

/// The usual ack: everything stored, no instructions.
pub fn minimal_ack() -> UploadAck {
    UploadAck {
        refused: Vec::new(),
        refused_unlisted: 0,
        pause_until: None,
        targets: None,
        result_kinds: Vec::new(),
        ..ack()
    }
}

pub fn flows() -> Vec<FlowId> {
    vec![
        FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: 0x1c46,
        },
        FlowId::Udp {
            src_port: 33_434,
            dst_port: 33_435,
        },
        FlowId::Tcp {
            src_port: 40_123,
            dst_port: 80,
        },
    ]
}

pub fn trace_record() -> ResultRecord {
    trace().into()
}

pub fn ping_record() -> ResultRecord {
    ping().into()
}

/// An ICMP multipath trace through a diamond of width 2 at TTL 2 (both
/// branches meet again at TTL 3), a TTL where one flow drew two interfaces
/// (a per-packet balancer, TTL 4), a silent flow, and the target at TTL 5.
/// Flows differ by their checksum, which is the ICMP flow identifier.
pub fn multipath() -> MultipathResult {
    let gateway = Ipv4Addr::new(198, 51, 100, 1);
    let left = Ipv4Addr::new(203, 0, 113, 9);
    let right = Ipv4Addr::new(203, 0, 113, 10);
    let join = Ipv4Addr::new(203, 0, 113, 33);
    let pp_a = Ipv4Addr::new(192, 0, 2, 61);
    let pp_b = Ipv4Addr::new(192, 0, 2, 62);
    let flow = |checksum| FlowId::Icmp {
        icmp_type: 8,
        icmp_code: 0,
        checksum,
    };
    let interface = |reply: Reply, flows: &[u32]| MultipathInterface {
        address: reply.address,
        reply: Some(reply),
        flows: flows.to_vec(),
    };
    let link = |near_ttl, near, far, flows: &[u32]| MultipathLink {
        near_ttl,
        near,
        far_ttl: near_ttl + 1,
        far,
        flows: flows.to_vec(),
    };
    MultipathResult {
        schema_version: SCHEMA_VERSION,
        result_id: MULTIPATH_ID,
        agent_id: AGENT_ID.into(),
        agent_version: AGENT_VERSION.into(),
        round_id: ROUND_ID,
        source: SOURCE,
        target: TARGET,
        protocol: Protocol::Icmp,
        params: MultipathParams {
            confidence: 95,
            timeout_ms: 2_000,
            first_ttl: 1,
            max_ttl: 30,
            gap_limit: 3,
            max_probes: 1_000,
            max_seconds: 120,
            pps: 50,
            per_prefix_pps: 10,
        },
        started_at: datetime!(2017-10-01 00:00:00 UTC),
        flows: vec![flow(0x1c46), flow(0x1c47), flow(0x1c48)],
        hops: vec![
            MultipathHop {
                ttl: 1,
                interfaces: vec![interface(time_exceeded(gateway, 412, 64, 1), &[0, 1, 2])],
                silent_flows: Vec::new(),
                probes: 3,
                per_packet: false,
            },
            MultipathHop {
                ttl: 2,
                interfaces: vec![
                    interface(time_exceeded(left, 8_120, 253, 1), &[0, 2]),
                    interface(time_exceeded(right, 8_310, 253, 1), &[1]),
                ],
                silent_flows: Vec::new(),
                probes: 3,
                per_packet: false,
            },
            MultipathHop {
                ttl: 3,
                interfaces: vec![interface(time_exceeded(join, 31_870, 252, 1), &[0, 1])],
                silent_flows: vec![2],
                probes: 3,
                per_packet: false,
            },
            MultipathHop {
                ttl: 4,
                interfaces: vec![
                    interface(time_exceeded(pp_a, 188_400, 249, 0), &[0]),
                    interface(time_exceeded(pp_b, 188_950, 249, 0), &[0]),
                ],
                silent_flows: Vec::new(),
                probes: 2,
                per_packet: true,
            },
            MultipathHop {
                ttl: 5,
                interfaces: vec![interface(
                    Reply {
                        address: TARGET,
                        rtt_us: 212_500,
                        reply_ttl: 52,
                        icmp_type: Some(0),
                        icmp_code: Some(0),
                        tcp_flags: None,
                        quoted_ttl: None,
                        mpls_labels: Vec::new(),
                    },
                    &[0],
                )],
                silent_flows: Vec::new(),
                probes: 1,
                per_packet: false,
            },
        ],
        links: vec![
            link(1, gateway, left, &[0, 2]),
            link(1, gateway, right, &[1]),
            link(2, left, join, &[0]),
            link(2, right, join, &[1]),
            link(3, join, pp_a, &[0]),
            link(3, join, pp_b, &[0]),
            link(4, pp_a, TARGET, &[0]),
        ],
        probes_sent: 12,
        stop_reason: StopReason::Reached,
        budget_hit: false,
        annotations: vec![HopAnnotation {
            address: gateway,
            name: Some("gw1.fra.example.net".into()),
            asn: None,
            source: AnnotationSource::Ptr,
            resolved_at: datetime!(2017-10-01 00:00:02.5 UTC),
        }],
        source_stop: None,
    }
}

pub fn multipath_record() -> ResultRecord {
    multipath().into()
}
