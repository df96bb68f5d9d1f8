//! The agent's Paris traceroutes in the emulated Internet, on real sockets: every
//! probe of every TTL is answered by the interface the routing tables say the flow
//! arrives on, with each protocol and from each vantage point, and a per-flow load
//! balancer never splits one trace while other flows do take its other branch.
//!
//! Expectations come from the live namespaces (`Testbed::expected_trace`, which walks
//! `ip route get ... iif ...` router by router, including the ECMP hash and jpgw's ICMP
//! jhash marks) for the exact flow the agent is told to use (`--src-port`,
//! `--icmp-checksum`). Read-only: the testbed shared by this binary.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::thread;

use crate::common::{
    assert_trace_matches, render, shared_testbed, trace_json, vp_interface, vp_lock,
};
use nkpath_proto::{FlowId, StopReason, TraceResult};
use nkpath_testbed::{
    FlowProtocol, FlowQuery, IPPROTO_TCP, IPPROTO_UDP, PathEnd, RouteQuery, Testbed,
};

/// Probes per TTL in these traces: enough that a trace split by a load balancer
/// would show it (each probe of a classic traceroute is a coin toss at an ECMP hop).
const ATTEMPTS: &str = "4";

/// Destination ports of the UDP and TCP flows.
const UDP_PORT: u16 = 33434;
const TCP_PORT: u16 = 80;

/// One target per part of the block that answers or that the border rejects: the
/// first address of each, as the manifest describes them.
fn targets(tb: &Testbed) -> Vec<Ipv4Addr> {
    let t = &tb.manifest().target;
    let parts: Vec<_> = t.answering.iter().chain(&t.admin_prohibited).collect();
    assert!(
        parts.len() >= 2,
        "the manifest describes no answering and rejected parts: {t:?}"
    );
    parts.iter().map(|p| p.hosts().next().unwrap()).collect()
}

/// The `trace` arguments that fix the flow, so that its path can be computed.
fn flow_args(flow: &FlowQuery) -> Vec<String> {
    let s = |v: &str| v.to_owned();
    match flow.protocol {
        FlowProtocol::Udp { sport, dport } => {
            vec![
                s("--proto"),
                s("udp"),
                s("--src-port"),
                sport.to_string(),
                s("--port"),
                dport.to_string(),
            ]
        }
        FlowProtocol::Tcp { sport, dport } => {
            vec![
                s("--proto"),
                s("tcp"),
                s("--src-port"),
                sport.to_string(),
                s("--port"),
                dport.to_string(),
            ]
        }
        FlowProtocol::Icmp { checksum, .. } => vec![
            s("--proto"),
            s("icmp"),
            s("--icmp-checksum"),
            checksum.to_string(),
        ],
    }
}

/// Runs `trace` of one fixed flow in `vp` and checks it against the routing tables,
/// probe by probe. Returns the result.
fn trace_and_check(
    tb: &Testbed,
    vp: &str,
    dst: Ipv4Addr,
    flow: &FlowQuery,
    extra: &[&str],
) -> TraceResult {
    let what = format!("{vp} -> {dst} {:?}", flow.protocol);
    let expected = tb
        .expected_trace(vp, dst, flow)
        .unwrap_or_else(|e| panic!("{what}: no expected path: {e:#}"));
    let dst_s = dst.to_string();
    let fargs = flow_args(flow);
    // Every probe must be answered here (exact ICMP limits): a generous timeout keeps a
    // reply that a loaded 2-core machine delivers late from counting as silence. It costs
    // nothing when replies come, and no probe of these paths goes unanswered.
    let mut args: Vec<&str> = vec!["--attempts", ATTEMPTS, "--timeout", "3", "--gap-limit", "3"];
    args.extend(fargs.iter().map(String::as_str));
    args.extend_from_slice(extra);
    args.push(&dst_s);
    let result = trace_json(tb, vp, &args);
    let flow_id = match flow.protocol {
        FlowProtocol::Udp { sport, dport } => FlowId::Udp {
            src_port: sport,
            dst_port: dport,
        },
        FlowProtocol::Tcp { sport, dport } => FlowId::Tcp {
            src_port: sport,
            dst_port: dport,
        },
        FlowProtocol::Icmp { checksum, .. } => FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum,
        },
    };
    assert_eq!(
        result.flow, flow_id,
        "{what}: the agent did not use the flow it was given"
    );
    assert_eq!(result.target, dst);
    assert_trace_matches(&what, &result, &expected, ATTEMPTS.parse().unwrap());
    result
}

/// Every target with every protocol from one vantage point, traces in parallel (each
/// its own agent process; flows and targets differ, so no agent takes another's
/// replies for its own).
fn paths_from(vp: &str) {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    assert!(
        tb.manifest().vantage_points.contains_key(vp),
        "{vp} is not a vantage point"
    );
    let _vp = vp_lock(vp);
    let targets = targets(tb);
    let mut cases = Vec::new();
    for (i, &dst) in targets.iter().enumerate() {
        let i = i as u16;
        cases.push((dst, FlowQuery::udp(40_000 + i, UDP_PORT + i)));
        cases.push((dst, FlowQuery::tcp(41_000 + i, TCP_PORT)));
        cases.push((dst, FlowQuery::icmp_echo(0x1357u16.wrapping_mul(i + 1))));
    }
    let results: Vec<TraceResult> = thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(dst, flow)| s.spawn(move || trace_and_check(tb, vp, *dst, flow, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Both ways a path ends were seen: the destination answered, and the border rejected.
    let reasons: HashSet<StopReason> = results.iter().map(|r| r.stop_reason).collect();
    assert_eq!(
        reasons,
        HashSet::from([StopReason::Reached, StopReason::Unreachable]),
        "{vp}: stop reasons"
    );
}

#[test]
fn every_probe_follows_the_routing_tables_from_devp() {
    paths_from("devp");
}

#[test]
fn every_probe_follows_the_routing_tables_from_jpvp() {
    paths_from("jpvp");
}

#[test]
fn every_probe_follows_the_routing_tables_from_usvp() {
    paths_from("usvp");
}

/// The gateway of a vantage point (the node at the other end of its interface) and
/// the gateway's interface toward it.
fn gateway(tb: &Testbed, vp: &str) -> (String, String) {
    let (_, iface) = vp_interface(tb, vp);
    let i = tb.manifest().nodes[vp].interface(&iface).unwrap();
    (i.peer_node.clone(), i.peer_interface.clone())
}

/// The vantage points whose gateway balances per flow on the L4 hash.
fn behind_l4_ecmp(tb: &Testbed) -> Vec<String> {
    let vps: Vec<String> = tb
        .manifest()
        .vantage_points
        .keys()
        .filter(|vp| tb.manifest().nodes[&gateway(tb, vp).0].fib_multipath_hash_policy == Some(1))
        .cloned()
        .collect();
    assert!(
        !vps.is_empty(),
        "no vantage point behind an L4 ECMP gateway"
    );
    vps
}

/// The node a flow leaves `gw` toward, as the kernel of `gw` decides it.
fn branch_at(tb: &Testbed, gw: &str, query: &RouteQuery) -> String {
    let route = tb.route_get(gw, query).unwrap();
    let dev = route.dev.expect("a forwarding route has a device");
    tb.manifest().nodes[gw]
        .interface(&dev)
        .unwrap()
        .peer_node
        .clone()
}

/// UDP and TCP behind an L4-hashing ECMP gateway: source ports chosen with `ip route
/// get` at the gateway so that one flow takes each branch; each trace keeps every probe
/// on its predicted branch (and on its whole predicted path), and together they see
/// both branches.
#[test]
fn udp_and_tcp_flows_keep_their_branch_at_ecmp_gateways() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let dst = targets(tb)[0];
    for vp in behind_l4_ecmp(tb) {
        let _vp = vp_lock(&vp);
        let src = tb.manifest().vp_address(&vp).unwrap();
        let (gw, iif) = gateway(tb, &vp);
        for (proto, dport) in [(IPPROTO_UDP, UDP_PORT), (IPPROTO_TCP, TCP_PORT)] {
            // The first source port that goes each way.
            let mut per_branch: Vec<(String, u16)> = Vec::new();
            for sport in 42_000..42_064u16 {
                let query = RouteQuery::to(dst).from(src).iif(iif.as_str()).l4(
                    proto,
                    Some(sport),
                    Some(dport),
                );
                let branch = branch_at(tb, &gw, &query);
                if !per_branch.iter().any(|(b, _)| *b == branch) {
                    per_branch.push((branch, sport));
                }
            }
            assert!(
                per_branch.len() >= 2,
                "{vp}: {gw} sent 64 flows one way: {per_branch:?}"
            );
            let (vp, gw) = (vp.as_str(), gw.as_str());
            let results: Vec<(String, u16, TraceResult)> = thread::scope(|s| {
                let handles: Vec<_> = per_branch
                    .iter()
                    .map(|(branch, sport)| {
                        let flow = if proto == IPPROTO_UDP {
                            FlowQuery::udp(*sport, dport)
                        } else {
                            FlowQuery::tcp(*sport, dport)
                        };
                        s.spawn(move || {
                            (
                                branch.clone(),
                                *sport,
                                trace_and_check(tb, vp, dst, &flow, &[]),
                            )
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut seen = BTreeSet::new();
            for (branch, sport, result) in &results {
                let after_gw = after_node(tb, result, gw);
                assert_eq!(
                    &after_gw,
                    branch,
                    "{vp} sport {sport}: not the predicted branch\n{}",
                    render(result)
                );
                seen.insert(after_gw);
            }
            assert!(seen.len() >= 2, "{vp}: only {seen:?} seen behind {gw}");
        }
    }
}

/// The node that answered at the TTL after `node`'s in a trace where every probe of
/// that TTL came from one node (checked).
fn after_node(tb: &Testbed, result: &TraceResult, node: &str) -> String {
    let m = tb.manifest();
    let gw_ttl = result
        .hops
        .iter()
        .find(|h| {
            h.addresses()
                .iter()
                .any(|a| m.node_of_address(*a) == Some(node))
        })
        .unwrap_or_else(|| panic!("{node} not in the trace\n{}", render(result)))
        .ttl;
    let next = result.hops.iter().find(|h| h.ttl == gw_ttl + 1).unwrap();
    let nodes: BTreeSet<&str> = next
        .addresses()
        .iter()
        .map(|a| m.node_of_address(*a).unwrap_or("?"))
        .collect();
    assert_eq!(
        nodes.len(),
        1,
        "probes of one trace split after {node}: {nodes:?}\n{}",
        render(result)
    );
    nodes.into_iter().next().unwrap().to_owned()
}

/// ICMP behind the gateway that balances ICMP per flow on an nftables jhash of
/// (addresses, type, code, checksum): at least ten checksums, whose branches the
/// harness predicts from the jhash; both branches are predicted and seen, and every
/// trace stays whole on its predicted path.
#[test]
fn icmp_flows_keep_their_branch_at_the_jhash_gateway() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let m = tb.manifest();
    let vps: Vec<String> = m
        .vantage_points
        .keys()
        .filter(|vp| m.nodes[&gateway(tb, vp).0].icmp_jhash.is_some())
        .cloned()
        .collect();
    assert!(
        !vps.is_empty(),
        "no vantage point behind an ICMP-balancing gateway"
    );
    let dst = targets(tb)[0];
    for vp in vps {
        let _vp = vp_lock(&vp);
        let (gw, _) = gateway(tb, &vp);
        // Checksums spread over the 16-bit space; at least ten, and more until both
        // branches are predicted (a fair hash needs a handful).
        let mut predicted: Vec<(u16, String)> = Vec::new();
        for k in 1..=64u16 {
            let checksum = k.wrapping_mul(0x9e37);
            let expected = tb
                .expected_trace(&vp, dst, &FlowQuery::icmp_echo(checksum))
                .unwrap();
            assert_eq!(expected.end, PathEnd::Reached);
            let gw_at = expected.hops.iter().position(|h| h.node == gw).unwrap();
            predicted.push((checksum, expected.hops[gw_at + 1].node.clone()));
            let branches: BTreeSet<&String> = predicted.iter().map(|(_, b)| b).collect();
            if predicted.len() >= 10 && branches.len() >= 2 {
                break;
            }
        }
        let branches: BTreeSet<&String> = predicted.iter().map(|(_, b)| b).collect();
        assert!(
            branches.len() >= 2,
            "{vp}: {gw} predicted one branch for 64 checksums"
        );
        // One agent at a time: concurrent ICMP agents toward one target could only be
        // told apart by their echo identifiers. A per-/24 rate above the default keeps
        // the traces short.
        let mut seen = BTreeSet::new();
        for (checksum, branch) in &predicted {
            let result = trace_and_check(
                tb,
                &vp,
                dst,
                &FlowQuery::icmp_echo(*checksum),
                &["--per-prefix-pps", "100"],
            );
            let after_gw = after_node(tb, &result, &gw);
            assert_eq!(
                &after_gw,
                branch,
                "{vp} checksum {checksum:#06x}\n{}",
                render(&result)
            );
            seen.insert(after_gw);
        }
        assert!(seen.len() >= 2, "{vp}: only {seen:?} seen behind {gw}");
    }
}
