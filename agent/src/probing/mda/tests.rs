//! Multipath traces over the simulated network ([`crate::probing::simnet`]), on
//! tokio's paused clock: per-flow diamonds of width 2 and 3, nested and meshed
//! diamonds, a per-packet balancer, a silent branch, the budget, the
//! allowlist and the pacer; probe counts against the stopping rule.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::{MultipathResult, Protocol, StopReason, Validate};
use uuid::Uuid;

use super::algorithm::{Enumeration, Mda, MdaSettings, Step};
use super::rule::Confidence;
use super::run::{self, MdaConfig};
use crate::probing::engine::{AgentIdentity, EngineError};
use crate::probing::network::SocketError;
use crate::probing::pacing::{Pacer, Rates};
use crate::probing::simnet::{End, Node, Route, SentProbe, SimNet};
use crate::probing::targets::Allowlist;

const VANTAGE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

fn block() -> Ipv4Net {
    "10.9.0.0/22".parse().unwrap()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 1, 0, last)
}

fn r(last: u8) -> Node {
    Node::router(ip(last))
}

fn route(branches: Vec<Vec<Node>>) -> Route {
    Route {
        prefix: block(),
        branches,
        end: End::Answers,
    }
}

fn config(protocol: Protocol) -> MdaConfig {
    MdaConfig {
        protocol,
        dst_port: 33_435,
        confidence: Confidence::P95,
        timeout: Duration::from_secs(1),
        first_ttl: 1,
        max_ttl: 16,
        gap_limit: 3,
        max_probes: run::DEFAULT_MAX_PROBES,
        max_time: run::DEFAULT_MAX_TIME,
        seed: 7,
        identity: AgentIdentity {
            agent_id: "sim".into(),
            agent_version: "0".into(),
        },
        round_id: Uuid::nil(),
    }
}

struct Traced {
    result: MultipathResult,
    log: Vec<SentProbe>,
}

async fn trace_with(sim: SimNet, cfg: &MdaConfig, rates: Rates) -> Result<Traced, EngineError> {
    let sim = Arc::new(sim);
    let mut pacer = Pacer::new(rates, tokio::time::Instant::now());
    let result = run::trace(Arc::clone(&sim), TARGET, cfg, &mut pacer).await?;
    result.validate().expect("a valid wire result");
    assert_eq!(u64::from(result.probes_sent), sim.log().len() as u64);
    Ok(Traced {
        result,
        log: sim.log(),
    })
}

fn sim(branches: Vec<Vec<Node>>) -> SimNet {
    SimNet::new(
        VANTAGE,
        Allowlist::new(vec![block()]),
        vec![route(branches)],
    )
}

async fn trace(branches: Vec<Vec<Node>>) -> Traced {
    trace_with(sim(branches), &config(Protocol::Icmp), fast())
        .await
        .unwrap()
}

fn fast() -> Rates {
    Rates::new(
        crate::probing::pacing::MAX_PPS,
        crate::probing::pacing::MAX_PPS,
    )
    .unwrap()
}

/// The interfaces found at each TTL, sorted.
fn interfaces(result: &MultipathResult) -> Vec<(u8, Vec<Ipv4Addr>)> {
    result
        .hops
        .iter()
        .map(|h| {
            let mut a: Vec<Ipv4Addr> = h.addresses().collect();
            a.sort();
            (h.ttl, a)
        })
        .collect()
}

/// The links found, as (near TTL, near, far TTL, far).
fn links(result: &MultipathResult) -> BTreeSet<(u8, Ipv4Addr, u8, Ipv4Addr)> {
    result
        .links
        .iter()
        .map(|l| (l.near_ttl, l.near, l.far_ttl, l.far))
        .collect()
}

fn probes_at(result: &MultipathResult, ttl: u8) -> u32 {
    result.hop(ttl).map_or(0, |h| h.probes)
}

/// Replays the trace's outcomes through a fresh machine, to read its ledger
/// of enumerations (the result does not carry it).
fn ledger(traced: &Traced) -> Vec<Enumeration> {
    let settings = MdaSettings {
        target: TARGET,
        confidence: Confidence::P95,
        first_ttl: 1,
        max_ttl: 16,
        gap_limit: 3,
    };
    let mut mda = Mda::new(settings);
    let mut log = traced.log.iter();
    loop {
        match mda.step() {
            Step::Done(_) => break,
            Step::Probe(wants) => {
                for want in wants {
                    let Some(sent) = log.next() else {
                        return mda.enumerations().to_vec();
                    };
                    assert_eq!(sent.ttl, want.ttl, "the replay follows the trace");
                    let outcome = traced
                        .result
                        .hop(want.ttl)
                        .and_then(|h| {
                            h.interfaces
                                .iter()
                                .find(|i| Some(i.address) == sent.answered_by)
                        })
                        .map(|i| {
                            let class = if i.address == TARGET {
                                crate::probing::trace::ReplyClass::Reached
                            } else {
                                crate::probing::trace::ReplyClass::Transit
                            };
                            (i.reply.clone().expect("the agent keeps every reply"), class)
                        });
                    mda.record(want, outcome);
                }
            }
        }
    }
    mda.enumerations().to_vec()
}

/// Every node's next hops were enumerated with exactly n(k + 1) flows, k the
/// next hops found: never fewer (the confidence), never more (the cost).
fn assert_stopping_rule(traced: &Traced) {
    let ledger = ledger(traced);
    assert!(!ledger.is_empty());
    for e in ledger {
        assert!(!e.gave_up, "{e:?}");
        let needed = Confidence::P95.flows_needed(e.next_hops as usize + 1);
        assert_eq!(e.flows, needed, "{e:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_path_without_balancers_costs_n2_probes_per_ttl() {
    let t = trace(vec![vec![r(1), r(2), r(3)]]).await;
    assert_eq!(
        interfaces(&t.result),
        [
            (1, vec![ip(1)]),
            (2, vec![ip(2)]),
            (3, vec![ip(3)]),
            (4, vec![TARGET])
        ]
    );
    assert_eq!(t.result.stop_reason, StopReason::Reached);
    assert!(!t.result.budget_hit);
    // n(2) = 6 flows at each TTL; the same 6 flows all the way (every flow
    // crosses a lone interface: no node control needed).
    assert_eq!(t.result.probes_sent, 4 * 6);
    assert_eq!(t.result.flows.len(), 6);
    assert_eq!(
        links(&t.result),
        BTreeSet::from([
            (1, ip(1), 2, ip(2)),
            (2, ip(2), 3, ip(3)),
            (3, ip(3), 4, TARGET)
        ])
    );
    assert_stopping_rule(&t);
}

#[tokio::test(start_paused = true)]
async fn a_diamond_of_width_2_shows_both_branches() {
    let t = trace(vec![vec![r(1), r(21), r(3)], vec![r(1), r(22), r(3)]]).await;
    assert_eq!(
        interfaces(&t.result),
        [
            (1, vec![ip(1)]),
            (2, vec![ip(21), ip(22)]),
            (3, vec![ip(3)]),
            (4, vec![TARGET])
        ]
    );
    assert_eq!(
        links(&t.result),
        BTreeSet::from([
            (1, ip(1), 2, ip(21)),
            (1, ip(1), 2, ip(22)),
            (2, ip(21), 3, ip(3)),
            (2, ip(22), 3, ip(3)),
            (3, ip(3), 4, TARGET)
        ])
    );
    assert!(t.result.has_diamond());
    assert!(t.result.hops.iter().all(|h| !h.per_packet));
    // TTL 1: n(2) = 6. TTL 3: n(2) = 6 flows through each branch. TTL 4: 6.
    assert_eq!(probes_at(&t.result, 1), 6);
    assert_eq!(probes_at(&t.result, 3), 12);
    assert_eq!(probes_at(&t.result, 4), 6);
    // TTL 2: n(3) = 11 flows, 5 repeats of one of them (the per-packet check),
    // and the flows node control sent to find 6 flows through each branch.
    let node_control = t.result.flows.len() as u32 - 11;
    assert_eq!(probes_at(&t.result, 2), 11 + 5 + node_control);
    assert_stopping_rule(&t);
}

#[tokio::test(start_paused = true)]
async fn a_diamond_of_width_3_needs_16_flows_at_its_ttl() {
    let t = trace(vec![
        vec![r(1), r(21), r(3)],
        vec![r(1), r(22), r(3)],
        vec![r(1), r(23), r(3)],
    ])
    .await;
    assert_eq!(interfaces(&t.result)[1], (2, vec![ip(21), ip(22), ip(23)]));
    let ledger = ledger(&t);
    let first_hop = ledger.iter().find(|e| e.ttl == 1).unwrap();
    assert_eq!((first_hop.next_hops, first_hop.flows), (3, 16));
    assert_stopping_rule(&t);
    assert_eq!(t.result.stop_reason, StopReason::Reached);
}

#[tokio::test(start_paused = true)]
async fn nested_diamonds_keep_each_branch_to_its_own_next_hops() {
    let t = trace(vec![
        vec![r(1), r(21), r(31), r(4)],
        vec![r(1), r(21), r(32), r(4)],
        vec![r(1), r(22), r(33), r(4)],
        vec![r(1), r(22), r(34), r(4)],
    ])
    .await;
    let found = links(&t.result);
    for link in [
        (2, ip(21), 3, ip(31)),
        (2, ip(21), 3, ip(32)),
        (2, ip(22), 3, ip(33)),
        (2, ip(22), 3, ip(34)),
    ] {
        assert!(found.contains(&link), "{link:?} missing from {found:?}");
    }
    // Node control: no flow through 10.1.0.21 ever showed up behind 10.1.0.22's branches.
    assert!(!found.contains(&(2, ip(21), 3, ip(33))));
    assert!(!found.contains(&(2, ip(22), 3, ip(31))));
    assert_eq!(
        interfaces(&t.result)[2],
        (3, vec![ip(31), ip(32), ip(33), ip(34)])
    );
    assert_stopping_rule(&t);
}

#[tokio::test(start_paused = true)]
async fn a_meshed_diamond_shows_every_cross_link() {
    let t = trace(vec![
        vec![r(1), r(21), r(31), r(4)],
        vec![r(1), r(21), r(32), r(4)],
        vec![r(1), r(22), r(31), r(4)],
        vec![r(1), r(22), r(32), r(4)],
    ])
    .await;
    let found = links(&t.result);
    for link in [
        (2, ip(21), 3, ip(31)),
        (2, ip(21), 3, ip(32)),
        (2, ip(22), 3, ip(31)),
        (2, ip(22), 3, ip(32)),
    ] {
        assert!(found.contains(&link), "{link:?} missing from {found:?}");
    }
    assert_stopping_rule(&t);
}

#[tokio::test(start_paused = true)]
async fn a_per_packet_balancer_is_flagged_and_never_drawn_as_a_diamond() {
    let balanced = sim(vec![vec![r(1), r(21), r(3)], vec![r(1), r(22), r(3)]]).per_packet(block());
    let t = trace_with(balanced, &config(Protocol::Icmp), fast())
        .await
        .unwrap();
    let hop = t.result.hop(2).unwrap();
    assert!(hop.per_packet, "{hop:?}");
    assert!(!t.result.has_diamond());
    assert!(
        t.result
            .hops
            .iter()
            .filter(|h| h.per_packet)
            .all(|h| h.ttl == 2)
    );
    assert_eq!(t.result.stop_reason, StopReason::Reached);
}

#[tokio::test(start_paused = true)]
async fn a_silent_branch_is_crossed_by_links_over_the_gap() {
    let t = trace(vec![
        vec![r(1), r(21), r(3)],
        vec![r(1), Node::Silent, r(3)],
    ])
    .await;
    let hop = t.result.hop(2).unwrap();
    assert_eq!(hop.addresses().collect::<Vec<_>>(), [ip(21)]);
    assert!(!hop.silent_flows.is_empty());
    let found = links(&t.result);
    assert!(found.contains(&(1, ip(1), 2, ip(21))));
    assert!(found.contains(&(2, ip(21), 3, ip(3))));
    assert!(found.contains(&(1, ip(1), 3, ip(3))), "{found:?}");
    assert_eq!(t.result.stop_reason, StopReason::Reached);
    assert_stopping_rule(&t);
}

#[tokio::test(start_paused = true)]
async fn the_probe_budget_always_ends_the_trace_and_is_flagged() {
    let cfg = MdaConfig {
        max_probes: 10,
        ..config(Protocol::Icmp)
    };
    let t = trace_with(sim(vec![vec![r(1), r(2), r(3)]]), &cfg, fast())
        .await
        .unwrap();
    assert_eq!(t.result.probes_sent, 10);
    assert_eq!(t.log.len(), 10);
    assert!(t.result.budget_hit);
    assert_eq!(t.result.stop_reason, StopReason::ProbeBudget);
}

#[tokio::test(start_paused = true)]
async fn the_time_budget_always_ends_the_trace_and_is_flagged() {
    // 1 probe per second: the 24 probes of this path would take 24 s.
    let cfg = MdaConfig {
        max_time: Duration::from_secs(5),
        ..config(Protocol::Icmp)
    };
    let start = tokio::time::Instant::now();
    let t = trace_with(
        sim(vec![vec![r(1), r(2), r(3)]]),
        &cfg,
        Rates::new(1, 1).unwrap(),
    )
    .await
    .unwrap();
    assert!(t.result.budget_hit);
    assert_eq!(t.result.stop_reason, StopReason::TimeBudget);
    assert!(start.elapsed() <= Duration::from_secs(5) + Duration::from_millis(10));
    assert!(t.log.len() <= 6);
}

#[tokio::test(start_paused = true)]
async fn probes_stay_inside_the_rate_caps() {
    let rates = Rates::new(20, 20).unwrap();
    let t = trace_with(
        sim(vec![vec![r(1), r(2), r(3)]]),
        &config(Protocol::Icmp),
        rates,
    )
    .await
    .unwrap();
    let sent: Vec<_> = t.log.iter().map(|p| p.at).collect();
    // After the burst, one token per 50 ms.
    let burst = rates.depth() as usize;
    let span = *sent.last().unwrap() - sent[0];
    let paced = (sent.len() - burst) as u32;
    assert!(
        span >= Duration::from_millis(50) * (paced - 1),
        "{} probes in {span:?}",
        sent.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_outside_the_allowlist_is_refused_before_any_probe() {
    let net = SimNet::new(
        VANTAGE,
        Allowlist::new(vec!["10.8.0.0/24".parse().unwrap()]),
        vec![route(vec![vec![r(1)]])],
    );
    let net = Arc::new(net);
    let mut pacer = Pacer::new(fast(), tokio::time::Instant::now());
    let err = run::trace(
        Arc::clone(&net),
        TARGET,
        &config(Protocol::Icmp),
        &mut pacer,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Socket(SocketError::NotAllowed(a)) if a == TARGET));
    assert!(net.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_probes_the_same_flows_and_finds_the_same_paths() {
    let branches = || vec![vec![r(1), r(21), r(3)], vec![r(1), r(22), r(3)]];
    let a = trace(branches()).await;
    let b = trace(branches()).await;
    assert_eq!(a.result.flows, b.result.flows);
    // RTTs are exact in virtual time too: the hops are equal in every field.
    assert_eq!(a.result.hops, b.result.hops);
    assert_eq!(a.result.links, b.result.links);
    let other = trace_with(
        sim(branches()),
        &MdaConfig {
            seed: 8,
            ..config(Protocol::Icmp)
        },
        fast(),
    )
    .await
    .unwrap();
    assert_ne!(a.result.flows, other.result.flows);
}

#[tokio::test(start_paused = true)]
async fn udp_flows_vary_the_source_port_and_icmp_flows_the_checksum() {
    let branches = || vec![vec![r(1), r(21), r(3)], vec![r(1), r(22), r(3)]];
    let udp = trace_with(sim(branches()), &config(Protocol::Udp), fast())
        .await
        .unwrap();
    let ports: BTreeSet<u16> = udp
        .result
        .flows
        .iter()
        .map(|f| match f {
            nkpath_proto::FlowId::Udp { src_port, dst_port } => {
                assert_eq!(*dst_port, 33_435);
                *src_port
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ports.len(), udp.result.flows.len(), "one port per flow");
    assert_eq!(interfaces(&udp.result)[1], (2, vec![ip(21), ip(22)]));
    // The simulated target answers only ICMP: the UDP trace ends at the gap limit.
    assert_eq!(udp.result.stop_reason, StopReason::GapLimit);

    let icmp = trace(branches()).await;
    let checksums: BTreeSet<u16> = icmp
        .result
        .flows
        .iter()
        .map(|f| match f {
            nkpath_proto::FlowId::Icmp { checksum, .. } => *checksum,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        checksums.len(),
        icmp.result.flows.len(),
        "one checksum per flow"
    );
}
