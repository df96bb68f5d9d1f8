//! Multipath (MDA) traces: the branches of their diamonds, each branch's entry AS and
//! verdict, and the trace's verdict from its branches'.
//!
//! A **branch** is one distinct path along the trace's links, from an interface no link
//! reaches to the first interface inside the target AS (or to an interface no link leaves).
//! Paths that part only inside the target AS are one branch: they entered the same way.
//! Each branch is judged as a Paris trace of its own hops would be ([`super::entry`]): a TTL
//! its link skips (`far_ttl > near_ttl + 1`) is silent for it, so an entry across that gap is
//! inferred.
//!
//! The trace's verdict ([`combine`]):
//! - `mismatch` when any branch's entry AS is a mismatch, naming that branch;
//! - `match` when every branch with an entry AS matches (`match-covering` when one of them
//!   matches only a covering prefix); when the branches enter through different ASes, all
//!   announced, the trace is **multi-entry** (North Korea's "via either" upstreams, split per
//!   flow on the data plane);
//! - otherwise the verdict of the first branch that neither matches nor lacks an entry AS
//!   (`ambiguous`, `unknown` for stale BGP data), naming it;
//! - `unknown` when no branch has an entry AS.
//!
//! A branch without an entry AS (it went silent before the border) neither confirms nor
//! contradicts the others. Interfaces of a TTL flagged per-packet are not branches of a
//! per-flow diamond; their links are followed like any other (each one is a path some
//! packet took), and `report path` says the TTL is per-packet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use nkpath_proto::{
    FlowId, Hop, MultipathResult, Probe, ProbeParams, Protocol, Reply, TraceResult,
};

use super::entry::{Entry, EntryHop, EntryReply};
use super::verdict::{Verdict, VerdictKind};

/// The most branches one trace is split into: a mesh of wide diamonds has more paths than
/// anyone reads, and past this the report says the list is cut.
pub const MAX_BRANCHES: usize = 256;

/// One path through a multipath trace: its interfaces, ascending TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// (TTL, address) of each interface on the path.
    pub hops: Vec<(u8, Ipv4Addr)>,
}

impl fmt::Display for Branch {
    /// `137.194.164.254 > 137.194.22.119 > … > 8.8.8.8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.hops.iter().map(|(_, a)| a.to_string()).collect();
        f.write_str(&list.join(" > "))
    }
}

/// The distinct paths of `m` along its links, each cut after its first interface that
/// `in_target` holds; the flag says the list was cut at [`MAX_BRANCHES`].
pub fn branches(m: &MultipathResult, in_target: impl Fn(Ipv4Addr) -> bool) -> (Vec<Branch>, bool) {
    type Node = (u8, Ipv4Addr);
    let mut onward: BTreeMap<Node, Vec<Node>> = BTreeMap::new();
    let mut reached: BTreeSet<Node> = BTreeSet::new();
    for link in m.links.iter().filter(|l| l.far_ttl > l.near_ttl) {
        onward
            .entry((link.near_ttl, link.near))
            .or_default()
            .push((link.far_ttl, link.far));
        reached.insert((link.far_ttl, link.far));
    }
    let interfaces: Vec<Node> = m
        .hops
        .iter()
        .flat_map(|h| h.interfaces.iter().map(move |i| (h.ttl, i.address)))
        .collect();
    let first_ttl = interfaces.iter().map(|n| n.0).min();
    // A path starts where no link arrives: at the first TTL that answered, or at an interface
    // with links onward (its near side was never seen).
    let starts = interfaces
        .iter()
        .filter(|n| !reached.contains(n) && (Some(n.0) == first_ttl || onward.contains_key(n)));
    let mut out = Vec::new();
    for &start in starts {
        let mut stack: Vec<Vec<Node>> = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let last = *path.last().expect("a path holds its start");
            if let Some(next) = onward.get(&last).filter(|_| !in_target(last.1)) {
                // Reversed so that paths come out in the links' order.
                for &node in next.iter().rev() {
                    let mut longer = path.clone();
                    longer.push(node);
                    stack.push(longer);
                }
            } else {
                if out.len() == MAX_BRANCHES {
                    return (out, true);
                }
                out.push(Branch { hops: path });
            }
        }
    }
    (out, false)
}

/// The branch's hops as the entry inference reads them: `hop_replies` gives the mapped reply
/// of an address at a TTL; the TTLs the branch skips are silent.
pub fn branch_entry_hops(
    branch: &Branch,
    hop_replies: impl Fn(u8, Ipv4Addr) -> Option<EntryReply>,
) -> Vec<EntryHop> {
    let mut out: Vec<EntryHop> = Vec::new();
    for &(ttl, address) in &branch.hops {
        if let Some(previous) = out.last().map(|h| h.ttl) {
            for silent in previous.saturating_add(1)..ttl {
                out.push(EntryHop {
                    ttl: silent,
                    replies: Vec::new(),
                    inherited: false,
                });
            }
        }
        out.push(EntryHop {
            ttl,
            replies: hop_replies(ttl, address).into_iter().collect(),
            inherited: false,
        });
    }
    out
}

/// One branch with its entry AS and verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchJudgement {
    /// The path.
    pub branch: Branch,
    /// Its entry AS.
    pub entry: Entry,
    /// Its verdict.
    pub verdict: Verdict,
}

/// The verdict of a multipath trace from its branches'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    /// The trace's verdict.
    pub verdict: Verdict,
    /// The branches enter through different ASes, every one announced.
    pub multi_entry: bool,
    /// The branch the verdict rests on (index into the branches): the mismatching or
    /// otherwise judged one, the first matching one for a match.
    pub named: Option<usize>,
}

/// The trace's verdict from `branches` (see the module documentation).
pub fn combine(branches: &[BranchJudgement]) -> Combined {
    let label = |i: usize| format!("branch {} ({})", i + 1, branches[i].branch);
    if let Some(i) = branches
        .iter()
        .position(|b| b.verdict.kind == VerdictKind::Mismatch)
    {
        let b = &branches[i];
        return Combined {
            verdict: Verdict {
                kind: VerdictKind::Mismatch,
                reason: format!(
                    "{} enters through {}, which is not announced",
                    label(i),
                    b.entry.label()
                ),
            },
            multi_entry: false,
            named: Some(i),
        };
    }
    let with_entry: Vec<usize> = (0..branches.len())
        .filter(|&i| branches[i].entry.asn.is_some())
        .collect();
    let is_match = |i: &usize| {
        matches!(
            branches[*i].verdict.kind,
            VerdictKind::Match | VerdictKind::MatchCovering
        )
    };
    if let Some(&i) = with_entry.iter().find(|i| !is_match(i)) {
        let b = &branches[i];
        return Combined {
            verdict: Verdict {
                kind: b.verdict.kind,
                reason: format!("{}: {}", label(i), b.verdict.reason),
            },
            multi_entry: false,
            named: Some(i),
        };
    }
    let Some(&first) = with_entry.first() else {
        // No branch shows an entry AS: the first branch's reason says why (no BGP data,
        // several ASes at one TTL, silence before the border).
        return Combined {
            verdict: branches.first().map_or_else(
                || Verdict {
                    kind: VerdictKind::Unknown,
                    reason: "no branch: the trace has no links".into(),
                },
                |b| b.verdict.clone(),
            ),
            multi_entry: false,
            named: (!branches.is_empty()).then_some(0),
        };
    };
    let ases: BTreeSet<u32> = with_entry
        .iter()
        .filter_map(|&i| branches[i].entry.asn)
        .collect();
    let kind = if with_entry
        .iter()
        .any(|&i| branches[i].verdict.kind == VerdictKind::MatchCovering)
    {
        VerdictKind::MatchCovering
    } else {
        VerdictKind::Match
    };
    if ases.len() == 1 {
        return Combined {
            verdict: branches[first].verdict.clone(),
            multi_entry: false,
            named: Some(first),
        };
    }
    let list: Vec<String> = ases
        .iter()
        .map(|asn| {
            let of: Vec<String> = with_entry
                .iter()
                .filter(|&&i| branches[i].entry.asn == Some(*asn))
                .map(|i| (i + 1).to_string())
                .collect();
            format!("AS{asn} (branch {})", of.join(", "))
        })
        .collect();
    Combined {
        verdict: Verdict {
            kind,
            reason: format!(
                "multi-entry: the branches enter through {}, all announced",
                list.join(", ")
            ),
        },
        multi_entry: true,
        named: Some(first),
    }
}

/// The entry ASes a multipath trace counts for: each AS some branch enters through, once,
/// inferred unless a branch observed it; `(None, false)` when no branch has an entry AS.
pub fn entry_ases(branches: &[BranchJudgement]) -> Vec<(Option<u32>, bool)> {
    let mut ases: BTreeMap<u32, bool> = BTreeMap::new();
    for b in branches {
        if let Some(asn) = b.entry.asn {
            *ases.entry(asn).or_insert(true) &= b.entry.inferred;
        }
    }
    if ases.is_empty() {
        return vec![(None, false)];
    }
    ases.into_iter().map(|(a, i)| (Some(a), i)).collect()
}

/// A multipath trace as a trace whose TTLs were answered by every interface of that TTL (one
/// probe per interface, one silent probe per silent flow): the hop-by-hop view every report
/// reads (hop mapping, latency, the data-plane AS path). Judging is per branch.
pub fn as_trace(m: &MultipathResult) -> TraceResult {
    let hops = m
        .hops
        .iter()
        .map(|hop| {
            let answered = hop.interfaces.iter().map(|i| Probe {
                attempt: 0,
                sent_at_us: 0,
                reply: Some(
                    i.reply
                        .clone()
                        .unwrap_or_else(|| unrecorded_reply(i.address)),
                ),
            });
            let silent = hop.silent_flows.iter().map(|_| Probe {
                attempt: 0,
                sent_at_us: 0,
                reply: None,
            });
            let mut probes: Vec<Probe> = answered.chain(silent).collect();
            if probes.is_empty() {
                probes.push(Probe {
                    attempt: 0,
                    sent_at_us: 0,
                    reply: None,
                });
            }
            Hop {
                ttl: hop.ttl,
                probes,
                inherited: None,
            }
        })
        .collect();
    TraceResult {
        schema_version: m.schema_version,
        result_id: m.result_id,
        agent_id: m.agent_id.clone(),
        agent_version: m.agent_version.clone(),
        round_id: m.round_id,
        source: m.source,
        target: m.target,
        protocol: m.protocol,
        flow: m
            .flows
            .first()
            .copied()
            .unwrap_or_else(|| first_flow(m.protocol)),
        params: ProbeParams {
            attempts: 1,
            timeout_ms: m.params.timeout_ms,
            gap_limit: m.params.gap_limit,
            first_ttl: m.params.first_ttl,
            max_ttl: m.params.max_ttl,
            pps: m.params.pps,
            per_prefix_pps: m.params.per_prefix_pps,
        },
        started_at: m.started_at,
        hops,
        stop_reason: m.stop_reason,
        annotations: m.annotations.clone(),
        source_stop: m.source_stop.clone(),
    }
}

/// The stand-in reply of an interface whose source recorded none (scamper keeps no probe of
/// its first hop): a time exceeded with no RTT, so it maps like any router.
fn unrecorded_reply(address: Ipv4Addr) -> Reply {
    Reply {
        address,
        rtt_us: 0,
        reply_ttl: 0,
        icmp_type: Some(11),
        icmp_code: Some(0),
        tcp_flags: None,
        quoted_ttl: None,
        mpls_labels: Vec::new(),
    }
}

/// A flow of `protocol` for a multipath trace that recorded none.
fn first_flow(protocol: Protocol) -> FlowId {
    match protocol {
        Protocol::Icmp => FlowId::Icmp {
            icmp_type: 8,
            icmp_code: 0,
            checksum: 0,
        },
        Protocol::Udp => FlowId::Udp {
            src_port: 0,
            dst_port: 0,
        },
        Protocol::Tcp => FlowId::Tcp {
            src_port: 0,
            dst_port: 0,
        },
    }
}

/// A multipath trace built from the paths its flows took, as an agent would upload it: the
/// fixture of the tests here and of the analyzer's.
#[cfg(test)]
pub(crate) fn from_paths(
    started_at: i64,
    target: &str,
    paths: &[&[(u8, &str)]],
) -> MultipathResult {
    use serde_json::json;
    let mut hops: BTreeMap<u8, Vec<(String, BTreeSet<usize>)>> = BTreeMap::new();
    let mut links: BTreeMap<(u8, Ipv4Addr, u8, Ipv4Addr), BTreeSet<usize>> = BTreeMap::new();
    for (flow, path) in paths.iter().enumerate() {
        for (i, &(ttl, address)) in path.iter().enumerate() {
            let interfaces = hops.entry(ttl).or_default();
            match interfaces.iter_mut().find(|(a, _)| a == address) {
                Some((_, flows)) => {
                    flows.insert(flow);
                }
                None => interfaces.push((address.to_owned(), BTreeSet::from([flow]))),
            }
            if let Some(&(near_ttl, near)) = i.checked_sub(1).map(|j| &path[j]) {
                let key = (
                    near_ttl,
                    near.parse().unwrap(),
                    ttl,
                    address.parse().unwrap(),
                );
                links.entry(key).or_default().insert(flow);
            }
        }
    }
    let hops: Vec<serde_json::Value> = hops
        .into_iter()
        .map(|(ttl, interfaces)| {
            let interfaces: Vec<serde_json::Value> = interfaces
                .iter()
                .map(|(address, flows)| {
                    let (t, c) = if address == target { (0, 0) } else { (11, 0) };
                    json!({"address": address, "flows": flows, "reply": {
                        "address": address, "rtt_us": 1000 * u32::from(ttl), "reply_ttl": 250,
                        "icmp_type": t, "icmp_code": c, "tcp_flags": null, "quoted_ttl": 1}})
                })
                .collect();
            json!({"ttl": ttl, "interfaces": interfaces, "silent_flows": [],
                   "probes": paths.len(), "per_packet": false})
        })
        .collect();
    let links: Vec<serde_json::Value> = links
        .into_iter()
        .map(|((nt, n, ft, f), flows)| {
            json!({"near_ttl": nt, "near": n, "far_ttl": ft, "far": f, "flows": flows})
        })
        .collect();
    let flows: Vec<serde_json::Value> = (0..paths.len())
        .map(|i| json!({"protocol": "icmp", "icmp_type": 8, "icmp_code": 0, "checksum": 7000 + i}))
        .collect();
    let started = time::OffsetDateTime::from_unix_timestamp(started_at).unwrap();
    let json = json!({
        "kind": "multipath", "schema_version": "1.5",
        "result_id": "00000000-0000-4000-8000-0000000000aa",
        "agent_id": "vp-test", "agent_version": "0.1.0",
        "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
        "source": "5.9.0.7", "target": target, "protocol": "icmp",
        "params": {"confidence": 95, "timeout_ms": 2000, "first_ttl": 1, "max_ttl": 30,
                   "gap_limit": 3, "max_probes": 1000, "max_seconds": 120, "pps": 50,
                   "per_prefix_pps": 10},
        "started_at": nkpath_proto::timestamp::precise(started),
        "flows": flows, "hops": hops, "links": links, "probes_sent": 40,
        "stop_reason": "reached", "budget_hit": false
    });
    match nkpath_proto::decode::<nkpath_proto::ResultRecord>(&json.to_string()).unwrap() {
        nkpath_proto::ResultRecord::Multipath(m) => m,
        _ => unreachable!("built as a multipath record"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::hopmap::HopClass;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// Two balancers in a row (2 × 2 paths) before the target AS's border router, then two
    /// routers inside the target.
    const WIDE: [&[(u8, &str)]; 4] = [
        &[
            (1, "10.0.0.1"),
            (2, "10.0.1.1"),
            (3, "10.0.2.1"),
            (4, "175.45.176.1"),
            (5, "175.45.176.9"),
        ],
        &[
            (1, "10.0.0.1"),
            (2, "10.0.1.2"),
            (3, "10.0.2.1"),
            (4, "175.45.176.1"),
            (5, "175.45.176.9"),
        ],
        &[
            (1, "10.0.0.1"),
            (2, "10.0.1.1"),
            (3, "10.0.2.2"),
            (4, "175.45.176.1"),
            (5, "175.45.176.9"),
        ],
        &[
            (1, "10.0.0.1"),
            (2, "10.0.1.2"),
            (3, "10.0.2.2"),
            (4, "175.45.176.2"),
            (5, "175.45.176.9"),
        ],
    ];

    fn in_nk(a: Ipv4Addr) -> bool {
        a.octets()[..2] == [175, 45]
    }

    #[test]
    fn every_distinct_path_to_the_target_as_is_one_branch() {
        let m = from_paths(1_420_070_400, "175.45.176.9", &WIDE);
        let (branches, cut) = branches(&m, in_nk);
        assert!(!cut);
        let paths: BTreeSet<Vec<String>> = branches
            .iter()
            .map(|b| b.hops.iter().map(|(_, a)| a.to_string()).collect())
            .collect();
        // The links allow every combination of the two balancers (also 10.0.1.1 > 10.0.2.2 >
        // 175.45.176.2, which no single flow took); each path stops at the first NK router.
        let mut want = BTreeSet::new();
        for second in ["10.0.1.1", "10.0.1.2"] {
            for third in ["10.0.2.1", "10.0.2.2"] {
                let fourth: &[&str] = if third == "10.0.2.1" {
                    &["175.45.176.1"]
                } else {
                    &["175.45.176.1", "175.45.176.2"]
                };
                for f in fourth {
                    want.insert(["10.0.0.1", second, third, f].map(String::from).to_vec());
                }
            }
        }
        assert_eq!(paths, want);
    }

    #[test]
    fn a_branch_across_silent_ttls_has_them_silent() {
        let m = from_paths(
            1_420_070_400,
            "175.45.176.9",
            &[
                &[(1, "10.0.0.1"), (4, "175.45.176.9")],
                &[(1, "10.0.0.1"), (2, "10.0.1.1"), (4, "175.45.176.9")],
            ],
        );
        let (branches, _) = branches(&m, in_nk);
        assert_eq!(branches.len(), 2);
        let gap = branches.iter().find(|b| b.hops.len() == 2).unwrap();
        let hops = branch_entry_hops(gap, |_, address| {
            Some(EntryReply {
                address,
                class: HopClass::As(1),
                kind: None,
                mpls: false,
            })
        });
        let shape: Vec<(u8, usize)> = hops.iter().map(|h| (h.ttl, h.replies.len())).collect();
        assert_eq!(shape, [(1, 1), (2, 0), (3, 0), (4, 1)]);
    }

    #[test]
    fn branches_stop_at_the_cap_and_say_so() {
        // 9 TTLs of two-way balancers: 2^9 = 512 paths.
        let names: Vec<[String; 2]> = (1..=9u8)
            .map(|t| [format!("10.0.{t}.1"), format!("10.0.{t}.2")])
            .collect();
        let mut paths: Vec<Vec<(u8, &str)>> = Vec::new();
        for bits in 0..512u32 {
            paths.push(
                (0..9)
                    .map(|t| ((t + 1) as u8, names[t][(bits >> t & 1) as usize].as_str()))
                    .collect(),
            );
        }
        let refs: Vec<&[(u8, &str)]> = paths.iter().map(Vec::as_slice).collect();
        let m = from_paths(1_420_070_400, "175.45.176.9", &refs);
        let (branches, cut) = branches(&m, in_nk);
        assert!(cut);
        assert_eq!(branches.len(), MAX_BRANCHES);
    }

    fn judged(path: &[(u8, &str)], asn: Option<u32>, kind: VerdictKind) -> BranchJudgement {
        BranchJudgement {
            branch: Branch {
                hops: path.iter().map(|(t, a)| (*t, ip(a))).collect(),
            },
            entry: Entry {
                asn,
                hop: asn.map(|_| (path[path.len() - 2].0, ip(path[path.len() - 2].1))),
                ..Entry::default()
            },
            verdict: Verdict {
                kind,
                reason: format!("{kind} reason"),
            },
        }
    }

    const VIA_CU: [(u8, &str); 3] = [(1, "10.0.0.1"), (2, "219.158.1.1"), (3, "175.45.176.1")];
    const VIA_TTK: [(u8, &str); 3] = [(1, "10.0.0.1"), (2, "188.43.1.1"), (3, "175.45.176.1")];
    const SILENT: [(u8, &str); 2] = [(1, "10.0.0.1"), (2, "10.9.9.9")];

    #[test]
    fn branches_through_different_announced_upstreams_match_as_multi_entry() {
        let c = combine(&[
            judged(&VIA_CU, Some(4837), VerdictKind::Match),
            judged(&SILENT, None, VerdictKind::Unknown),
            judged(&VIA_TTK, Some(20485), VerdictKind::Match),
        ]);
        assert_eq!(c.verdict.kind, VerdictKind::Match);
        assert!(c.multi_entry);
        assert_eq!(
            c.verdict.reason,
            "multi-entry: the branches enter through AS4837 (branch 1), AS20485 (branch 3), \
             all announced"
        );
        let ases = entry_ases(&[
            judged(&VIA_CU, Some(4837), VerdictKind::Match),
            judged(&VIA_TTK, Some(20485), VerdictKind::Match),
        ]);
        assert_eq!(ases, [(Some(4837), false), (Some(20485), false)]);
    }

    #[test]
    fn one_branch_through_an_unannounced_as_makes_the_trace_a_mismatch_naming_it() {
        let c = combine(&[
            judged(&VIA_CU, Some(4837), VerdictKind::Match),
            judged(&VIA_TTK, Some(20485), VerdictKind::Mismatch),
        ]);
        assert_eq!(c.verdict.kind, VerdictKind::Mismatch);
        assert!(!c.multi_entry);
        assert_eq!(c.named, Some(1));
        assert!(
            c.verdict.reason.starts_with(
                "branch 2 (10.0.0.1 > 188.43.1.1 > 175.45.176.1) enters through AS20485"
            ),
            "{}",
            c.verdict.reason
        );
    }

    #[test]
    fn branches_of_one_entry_as_keep_its_verdict_and_others_name_their_branch() {
        let same = combine(&[
            judged(&VIA_CU, Some(4837), VerdictKind::Match),
            judged(
                &[(1, "10.0.0.2"), (2, "219.158.1.2"), (3, "175.45.176.1")],
                Some(4837),
                VerdictKind::Match,
            ),
        ]);
        assert_eq!(
            (same.verdict.kind, same.multi_entry),
            (VerdictKind::Match, false)
        );
        let border = combine(&[
            judged(&VIA_CU, Some(4837), VerdictKind::Match),
            judged(&VIA_TTK, Some(20485), VerdictKind::Ambiguous),
        ]);
        assert_eq!(border.verdict.kind, VerdictKind::Ambiguous);
        assert!(
            border.verdict.reason.starts_with("branch 2 ("),
            "{}",
            border.verdict.reason
        );
        let none = combine(&[judged(&SILENT, None, VerdictKind::Unknown)]);
        assert_eq!(
            (none.verdict.kind, none.named),
            (VerdictKind::Unknown, Some(0))
        );
        assert_eq!(
            entry_ases(&[judged(&SILENT, None, VerdictKind::Unknown)]),
            [(None, false)]
        );
    }

    #[test]
    fn the_hop_view_has_every_interface_of_every_ttl() {
        let m = from_paths(1_420_070_400, "175.45.176.9", &WIDE);
        let t = as_trace(&m);
        let per_ttl: Vec<(u8, Vec<Ipv4Addr>)> =
            t.hops.iter().map(|h| (h.ttl, h.addresses())).collect();
        let want: Vec<(u8, Vec<Ipv4Addr>)> = m
            .hops
            .iter()
            .map(|h| (h.ttl, h.addresses().collect()))
            .collect();
        assert_eq!(per_ttl, want);
        assert_eq!(
            (t.result_id, t.target, t.started_at),
            (m.result_id, m.target, m.started_at)
        );
    }
}
