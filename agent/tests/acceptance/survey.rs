//! What a volunteer is promised, checked on the wire of the emulated Internet: a
//! survey keeps its rate cap and its allowlist (counted by tcpdump inside the vantage
//! point, not by the agent), every part of the block ends its traces the way its
//! border treats it, targets outside the allowlist are refused before a packet
//! leaves, and the agent probes as an unprivileged user with CAP_NET_RAW only.
//! Read-only: the testbed shared by this binary; one vantage point per test.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::thread;
use std::time::Duration;

use crate::common::{
    Capture, Running, SurveySummary, agent_command, assert_trace_matches, flow_query, pcap,
    proc_status, read_results, render, root_agent_command, run_agent, scratch_dir, shared_testbed,
    vp_interface, vp_lock, wait_for,
};
use ipnet::Ipv4Net;
use nkpath_proto::{StopReason, TraceResult};
use nkpath_testbed::{PathEnd, Testbed};

/// Every address of a prefix, network and broadcast included (as the agent surveys).
fn addresses(net: &Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    (u32::from(net.network())..=u32::from(net.broadcast())).map(Ipv4Addr::from)
}

/// How the border treats an address of the block, from the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// nkhost answers it.
    Answering,
    /// Blackholed at the border: nobody answers, the border included.
    Silent,
    /// The border rejects it with ICMP admin-prohibited.
    AdminProhibited,
    /// The border–host link, carved out of a silent part.
    BorderLink,
}

fn part_of(tb: &Testbed, addr: Ipv4Addr) -> Part {
    let t = &tb.manifest().target;
    if t.border_link.contains(&addr) {
        Part::BorderLink
    } else if t.silent.iter().any(|p| p.contains(&addr)) {
        Part::Silent
    } else if t.admin_prohibited.iter().any(|p| p.contains(&addr)) {
        Part::AdminProhibited
    } else if t.answering.iter().any(|p| p.contains(&addr)) {
        Part::Answering
    } else {
        panic!("{addr} is in no part of the manifest's target: {t:?}")
    }
}

/// The survey's agent-wide rate: twice the default, so the cap is exercised hard.
const PPS: u32 = 200;

/// The per-/24 rate of the survey. The per-/24 bucket counts every probe to a /24
/// until an address inside the block has answered for it; 175.45.179.0/24 never
/// gets such an answer (the border rejects it from its link address, outside the
/// block), so each of its 256 traces pays all its ~7 probes there: ~1,800 probes,
/// three minutes at the default 10/s. At 50/s that /24 takes ~36 s, less than the
/// whole survey (~7,900 probes) needs at 200 pps, so the global cap stays the
/// bottleneck the test is about, and the survey ends in under a minute (~55 s: the
/// last ~14 s are the blackholed traces' timeouts).
const PER_PREFIX_PPS: u32 = 50;

#[test]
fn survey_of_the_block_keeps_the_rate_cap_and_the_allowlist() {
    let Some(tb) = shared_testbed(&["tcpdump"]) else {
        return;
    };
    let vp = "devp";
    let _vp = vp_lock(vp);
    let (vp_address, iface) = vp_interface(tb, vp);
    let block = tb.manifest().target.prefix;
    let dir = scratch_dir();
    let out = dir.path().join("survey.jsonl");
    let (block_s, out_s, pps, per_prefix) = (
        block.to_string(),
        out.display().to_string(),
        PPS.to_string(),
        PER_PREFIX_PPS.to_string(),
    );
    let args = [
        "survey",
        "--agent-id",
        "test",
        "--out",
        &out_s,
        "--allow",
        &block_s,
        "--pps",
        &pps,
        "--per-prefix-pps",
        &per_prefix,
        "--targets",
        &block_s,
    ];

    let capture = Capture::start(tb, vp, &iface, "out");
    let output = agent_command(tb, vp, &args).output().expect("spawn agent");
    let captured = capture.stop();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "survey failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = SurveySummary::parse(&stdout);
    eprintln!("{vp}: {}", stdout.trim());

    // On the wire: every packet the capture saw, counted against the agent's own count.
    assert_eq!(
        captured.dropped_by_kernel, 0,
        "the capture lost packets: counts below mean nothing"
    );
    let packets = &captured.packets;
    let foreign: Vec<_> = packets.iter().filter(|p| p.src != vp_address).collect();
    assert!(
        foreign.is_empty(),
        "packets from other sources left {vp}: {:?}",
        &foreign[..foreign.len().min(5)]
    );
    let outside: Vec<_> = packets.iter().filter(|p| !block.contains(&p.dst)).collect();
    assert!(
        outside.is_empty(),
        "{} packets outside the allowlist {block}: {:?}",
        outside.len(),
        &outside[..outside.len().min(5)]
    );
    assert_eq!(
        packets.len() as u64,
        summary.probes_sent,
        "captured packets vs the survey's probe count"
    );
    let times: Vec<Duration> = packets.iter().map(|p| p.at).collect();
    let busiest = pcap::max_in_any_second(&times);
    let depth = PPS / 10;
    eprintln!(
        "{vp}: {} packets, busiest second {busiest} (cap {PPS} + burst {depth})",
        packets.len()
    );
    assert!(
        busiest <= (PPS + depth) as usize,
        "{busiest} packets in one second, cap {PPS} + burst {depth}"
    );
    // The premise of the check: the survey ran against the cap, not far below it.
    assert!(
        busiest >= (PPS / 2) as usize,
        "busiest second only {busiest} packets: the cap was never approached"
    );

    // One result per address of the block.
    let results = read_results(&out);
    let by_target: BTreeMap<Ipv4Addr, &TraceResult> =
        results.iter().map(|r| (r.target, r)).collect();
    assert_eq!(results.len(), by_target.len(), "a target traced twice");
    assert_eq!(
        by_target.keys().copied().collect::<Vec<_>>(),
        addresses(&block).collect::<Vec<_>>()
    );
    assert_eq!(summary.targets, results.len() as u64);
    let reached = results
        .iter()
        .filter(|r| r.stop_reason == StopReason::Reached)
        .count();
    assert_eq!(summary.reached, reached as u64);

    // Each part ends its traces the way the border treats it.
    check_stop_reasons(tb, vp, &by_target);
}

/// A spread of targets from each part: the first, the last and some between.
fn sample(tb: &Testbed) -> Vec<Ipv4Addr> {
    let t = &tb.manifest().target;
    let mut picked = BTreeSet::new();
    for part in t
        .answering
        .iter()
        .chain(&t.silent)
        .chain(&t.admin_prohibited)
    {
        let all: Vec<Ipv4Addr> = addresses(part)
            .filter(|a| !t.border_link.contains(a))
            .collect();
        for i in 0..6 {
            picked.insert(all[i * (all.len() - 1) / 5]);
        }
    }
    // The border link's assigned addresses (the network and broadcast addresses of the
    // link are not hosts: ARP for them fails, with an ICMP error after the ARP timeout
    // or none, which no path walker can predict).
    let m = tb.manifest();
    picked.extend(
        m.nodes
            .values()
            .flat_map(|n| &n.interfaces)
            .map(|i| i.address)
            .filter(|a| t.border_link.contains(a)),
    );
    picked.into_iter().collect()
}

fn check_stop_reasons(tb: &Testbed, vp: &str, results: &BTreeMap<Ipv4Addr, &TraceResult>) {
    let m = tb.manifest();
    let block = m.target.prefix;
    // Hop by hop, for a sample: every probe answered by the interface the routing
    // tables give the result's flow (computing this for all 1,024 would take a minute).
    let sample = sample(tb);
    let expected: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = sample
            .chunks(sample.len().div_ceil(4))
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|&dst| {
                            (
                                dst,
                                tb.expected_trace(vp, dst, &flow_query(&results[&dst].flow))
                                    .unwrap(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut silent_from = BTreeSet::new();
    for (dst, want) in &expected {
        assert_trace_matches(&format!("survey {vp} -> {dst}"), results[dst], want, 1);
        if let PathEnd::Blackhole { ttl, .. } = want.end {
            silent_from.insert(ttl);
        }
    }
    // Where the silence starts, from the sample: the same TTL for the whole part.
    assert_eq!(
        silent_from.len(),
        1,
        "blackhole TTLs of the sample: {silent_from:?}"
    );
    let silent_from = silent_from.into_iter().next().unwrap();
    let border: BTreeSet<Ipv4Addr> = m.addresses_of(&m.target_border()).into_iter().collect();

    // By part, for every target.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (dst, result) in results {
        let part = part_of(tb, *dst);
        *counts
            .entry(format!("{part:?} {:?}", result.stop_reason))
            .or_default() += 1;
        let what = || format!("{vp} -> {dst} ({part:?})\n{}", render(result));
        let replies: Vec<(u8, &nkpath_proto::Reply)> = result
            .hops
            .iter()
            .flat_map(|h| {
                h.probes
                    .iter()
                    .filter_map(move |p| p.reply.as_ref().map(|r| (h.ttl, r)))
            })
            .collect();
        let last = result.hops.last().expect("a trace probes at least one TTL");
        match part {
            Part::Answering => {
                assert_eq!(result.stop_reason, StopReason::Reached, "{}", what());
                assert!(
                    last.probes
                        .iter()
                        .any(|p| p.reply.as_ref().is_some_and(|r| r.address == *dst)),
                    "{}",
                    what()
                );
                // Exact ICMP limits: every TTL on the way answered.
                assert!(
                    result
                        .hops
                        .iter()
                        .all(|h| h.probes.iter().any(|p| p.reply.is_some())),
                    "{}",
                    what()
                );
            }
            Part::Silent => {
                assert_eq!(result.stop_reason, StopReason::GapLimit, "{}", what());
                // The transit hops answer, then nothing: not the border, not the block.
                for (ttl, reply) in &replies {
                    assert!(
                        *ttl < silent_from,
                        "answer at TTL {ttl} >= {silent_from}: {}",
                        what()
                    );
                    assert!(
                        !block.contains(&reply.address) && !border.contains(&reply.address),
                        "{}",
                        what()
                    );
                }
                assert!(
                    (1..silent_from).all(|ttl| replies.iter().any(|(t, _)| *t == ttl)),
                    "a transit hop is missing: {}",
                    what()
                );
                assert!(
                    last.ttl - (silent_from - 1) >= result.params.gap_limit,
                    "{}",
                    what()
                );
            }
            Part::AdminProhibited => {
                assert_eq!(result.stop_reason, StopReason::Unreachable, "{}", what());
                let reject = last
                    .probes
                    .iter()
                    .find_map(|p| p.reply.as_ref())
                    .unwrap_or_else(|| panic!("{}", what()));
                assert_eq!(
                    (reject.icmp_type, reject.icmp_code),
                    (Some(3), Some(13)),
                    "{}",
                    what()
                );
                assert!(
                    border.contains(&reject.address),
                    "rejected by {}, not the border: {}",
                    reject.address,
                    what()
                );
            }
            // Checked hop by hop above (assigned addresses) or not predictable.
            Part::BorderLink => {}
        }
    }
    eprintln!("{vp}: stop reasons by part: {counts:?}");
}

/// The node that borders the target block (`target-border` role).
trait TargetBorder {
    fn target_border(&self) -> String;
}

impl TargetBorder for nkpath_testbed::Manifest {
    fn target_border(&self) -> String {
        let borders: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.role == "target-border")
            .map(|(k, _)| k)
            .collect();
        assert_eq!(borders.len(), 1, "target borders: {borders:?}");
        borders[0].clone()
    }
}

/// `trace 8.8.8.8`, a survey of a prefix larger than the allowlist, and a trace to an
/// address of the block outside a narrower `--allow` are refused with an error that
/// names the allowlist; the capture shows that nothing left, while a permitted trace
/// run afterwards does show up in it (the capture works).
#[test]
fn targets_outside_the_allowlist_are_refused_before_any_packet() {
    let Some(tb) = shared_testbed(&["tcpdump"]) else {
        return;
    };
    let vp = "jpvp";
    let _vp = vp_lock(vp);
    let (_, iface) = vp_interface(tb, vp);
    let t = &tb.manifest().target;
    let block = t.prefix;
    let wider = block.supernet().unwrap().to_string();
    let narrow = t.answering[0].to_string();
    let elsewhere = t
        .answering
        .iter()
        .find(|p| !t.answering[0].contains(*p))
        .unwrap()
        .network()
        .to_string();
    let allowed = t.answering[0].network().to_string();
    let dir = scratch_dir();
    let out = dir.path().join("refused.jsonl");
    let out_s = out.display().to_string();
    let refused: [Vec<&str>; 3] = [
        vec!["trace", "--agent-id", "test", "8.8.8.8"],
        vec![
            "survey",
            "--agent-id",
            "test",
            "--out",
            &out_s,
            "--targets",
            &wider,
        ],
        vec![
            "trace",
            "--agent-id",
            "test",
            "--allow",
            &narrow,
            &elsewhere,
        ],
    ];

    let capture = Capture::start(tb, vp, &iface, "out");
    for args in &refused {
        let output = agent_command(tb, vp, args).output().expect("spawn agent");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?} was not refused: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(
            stderr.contains("allowlist"),
            "{args:?}: the error does not name the allowlist: {stderr}"
        );
    }
    assert!(!out.exists(), "the refused survey created its output file");
    // The control: one permitted probe per TTL, two TTLs.
    run_agent(
        tb,
        vp,
        &[
            "trace",
            "--agent-id",
            "test",
            "--attempts",
            "1",
            "--max-ttl",
            "2",
            &allowed,
        ],
    );
    let captured = capture.stop();

    assert_eq!(captured.dropped_by_kernel, 0);
    let dsts: Vec<Ipv4Addr> = captured.packets.iter().map(|p| p.dst).collect();
    let allowed: Ipv4Addr = allowed.parse().unwrap();
    assert_eq!(
        dsts,
        [allowed, allowed],
        "only the permitted trace's two probes may leave {vp}"
    );
}

/// How a test starts the agent: [`agent_command`] or [`root_agent_command`].
type AgentCommand = fn(&Testbed, &str, &[&str]) -> std::process::Command;

/// The agent's credentials while a survey runs, as the kernel reports them.
fn assert_unprivileged(how: &str, pid: u32) {
    let status = proc_status(pid).unwrap_or_else(|| panic!("{how}: the agent (pid {pid}) is gone"));
    let field = |k: &str| {
        status
            .get(k)
            .unwrap_or_else(|| panic!("{how}: no {k} in /proc/{pid}/status"))
            .as_str()
    };
    assert!(
        field("Name").starts_with("nkpath-agent"),
        "{how}: pid {pid} is {}",
        field("Name")
    );
    for ids in ["Uid", "Gid"] {
        let values: Vec<u32> = field(ids)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values.len(), 4, "{how}: {ids}: {values:?}");
        assert!(
            values.iter().all(|&v| v != 0),
            "{how}: {ids} (real, effective, saved, fs) {values:?}"
        );
    }
    assert_eq!(field("Groups"), "", "{how}: supplementary groups left");
    let caps = |k: &str| u64::from_str_radix(field(k), 16).unwrap();
    const CAP_NET_RAW: u64 = 1 << 13;
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            caps(set) & !CAP_NET_RAW,
            0,
            "{how}: {set} = {:#x}, more than CAP_NET_RAW",
            caps(set)
        );
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(caps(set), 0, "{how}: {set} = {:#x}", caps(set));
    }
    assert_eq!(field("NoNewPrivs"), "1", "{how}: no_new_privs not set");
}

/// While a survey probes — started through setpriv as nobody with only CAP_NET_RAW
/// (the service), and started as plain root (an operator by hand) — the agent runs
/// with non-zero uids and gids, no groups, no capability but CAP_NET_RAW in any set,
/// and no_new_privs.
#[test]
fn surveys_probe_without_root_and_with_net_raw_only() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let vp = "usvp";
    let _vp = vp_lock(vp);
    let t = &tb.manifest().target;
    let dir = scratch_dir();
    // Slow surveys of two /24s (one each): they are still running when checked, and a
    // few traces at a time means the first result comes in a second or two.
    let starts: [(&str, AgentCommand, Ipv4Net); 2] = [
        ("setpriv nobody +net_raw", agent_command, t.answering[0]),
        ("root", root_agent_command, t.answering[1]),
    ];
    let runs: Vec<(&str, Running, std::path::PathBuf)> = starts
        .iter()
        .map(|(how, command, targets)| {
            let out = dir
                .path()
                .join(format!("{}.jsonl", how.split(' ').next().unwrap()));
            let (out_s, targets_s) = (out.display().to_string(), targets.to_string());
            let args = [
                "survey",
                "--agent-id",
                "test",
                "--out",
                &out_s,
                "--targets",
                &targets_s,
                "--pps",
                "20",
                "--max-in-flight",
                "2",
            ];
            (*how, Running::spawn(command(tb, vp, &args)), out)
        })
        .collect();
    for (how, run, out) in runs {
        let probing = wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(&out)
                .ok()
                .filter(|s| s.contains('\n'))
        });
        assert!(probing.is_some(), "{how}: no trace result within 30 s");
        assert_unprivileged(how, run.pid());
        let stderr = run.terminate();
        assert!(!stderr.contains("error"), "{how}: {stderr}");
    }
}
