//! Surveys against routers that rate-limit their ICMP errors the way Linux does by
//! default (a private testbed with `realistic` limits: about one time-exceeded per
//! second per source, bursts of a few). Silence there is rate limiting, not the end
//! of the path: the agent records those hops as silent and still follows every
//! reachable target to its end instead of stopping on the gap limit.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::common::{
    SurveySummary, agent_command, assert_replies_on_path, flow_query, read_results, render,
    scratch_dir,
};
use ipnet::Ipv4Net;
use nkpath_proto::{StopReason, TraceResult};
use nkpath_testbed::{IcmpLimits, Options, PathEnd, Testbed};

#[test]
fn rate_limited_hops_are_silent_and_reachable_targets_are_still_reached() {
    if !nkpath_testbed::require_tools(&["setpriv"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options {
        icmp_limits: IcmpLimits::Realistic,
        ..Options::default()
    }) else {
        return;
    };
    let m = tb.manifest();
    assert_eq!(m.icmp_limits, "realistic");
    let t = &m.target;
    let vp = "devp";
    // Two /24s where every address answers, one behind each upstream of this vantage
    // point: 512 traces, about a minute at the default rates (100 packets/s, 10 per
    // /24). (The half-blackholed /24 would add more than a minute: the probes its
    // silent traces send past the border all count against that /24's 10 per second.)
    let parts: Vec<Ipv4Net> = t
        .answering
        .iter()
        .filter(|p| p.prefix_len() == 24)
        .take(2)
        .copied()
        .collect();
    assert_eq!(parts.len(), 2, "two answering /24s in {t:?}");
    let dir = scratch_dir();
    let out = dir.path().join("survey.jsonl");
    let out_s = out.display().to_string();
    let targets: Vec<String> = parts.iter().map(ToString::to_string).collect();
    let mut args = vec!["survey", "--agent-id", "test", "--out", &out_s, "--targets"];
    args.extend(targets.iter().map(String::as_str));
    let started = Instant::now();
    let output = agent_command(&tb, vp, &args).output().expect("spawn agent");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "survey failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = SurveySummary::parse(&stdout);
    eprintln!("{vp}: {} ({:.1} s)", stdout.trim(), elapsed.as_secs_f64());
    let results = read_results(&out);
    let by_target: BTreeMap<Ipv4Addr, &TraceResult> =
        results.iter().map(|r| (r.target, r)).collect();
    assert_eq!(by_target.len() as u64, summary.targets);
    assert_eq!(
        by_target.len(),
        parts
            .iter()
            .map(|p| 1usize << (32 - p.prefix_len()))
            .sum::<usize>()
    );

    // Every reply matches the path of its flow, on a spread of targets; the
    // destinations answer at the same TTL on every path from here.
    let mut dest_ttls = BTreeSet::new();
    for (dst, result) in by_target.iter().step_by(16) {
        let expected = tb
            .expected_trace(vp, *dst, &flow_query(&result.flow))
            .unwrap();
        assert_eq!(expected.end, PathEnd::Reached, "{dst}");
        dest_ttls.insert(expected.hops.last().unwrap().ttl);
        assert_replies_on_path(&format!("{vp} -> {dst}"), result, &expected);
    }
    assert_eq!(dest_ttls.len(), 1, "destination TTLs {dest_ttls:?}");
    let dest_ttl = dest_ttls.into_iter().next().unwrap();

    // Every target was reached: no gap limit before the border, although many paths
    // had stretches of silence as long as the gap limit (counted below).
    let not_reached: Vec<String> = results
        .iter()
        .filter(|r| r.stop_reason != StopReason::Reached)
        .map(render)
        .collect();
    assert!(
        not_reached.is_empty(),
        "{} answering targets not reached:\n{}",
        not_reached.len(),
        not_reached.join("\n")
    );
    assert_eq!(summary.reached, results.len() as u64);

    // Rate-limited hops are recorded as silent: a TTL below the destination's with no
    // reply in one trace, while other traces got a reply there.
    let answered_ttls: BTreeSet<u8> = results
        .iter()
        .flat_map(|r| {
            r.hops
                .iter()
                .filter(|h| h.probes.iter().any(|p| p.reply.is_some()))
                .map(|h| h.ttl)
        })
        .collect();
    let gap_limit = results[0].params.gap_limit;
    let mut silent_hops = 0;
    let mut traces_with_silence = 0;
    let mut past_a_long_gap = 0;
    for result in &results {
        let quiet: Vec<u8> = result
            .hops
            .iter()
            .filter(|h| h.ttl < dest_ttl && h.probes.iter().all(|p| p.reply.is_none()))
            .map(|h| h.ttl)
            .collect();
        assert!(
            quiet.iter().all(|ttl| answered_ttls.contains(ttl)),
            "silent where nothing answers: {}",
            render(result)
        );
        silent_hops += quiet.len();
        traces_with_silence += usize::from(!quiet.is_empty());
        past_a_long_gap += usize::from(longest_silence(result) >= gap_limit);
    }
    eprintln!(
        "{vp}, realistic ICMP limits, {}: {} of {} targets reached; {silent_hops} silent hops below the \
         destination (TTL {dest_ttl}) in {traces_with_silence} traces; {past_a_long_gap} traces reached their \
         target past {gap_limit} or more silent TTLs in a row",
        targets.join(" "),
        summary.reached,
        results.len(),
    );
    assert!(
        silent_hops > 0,
        "no rate-limited hop at all: are the limits realistic?"
    );
    // The premise of "every target reached": silences as long as the gap limit occurred.
    assert!(
        past_a_long_gap > 0,
        "no trace met a silence as long as the gap limit"
    );
}

/// The most consecutive silent TTLs in a trace.
fn longest_silence(result: &TraceResult) -> u8 {
    let mut longest = 0;
    let mut run = 0;
    for hop in &result.hops {
        if hop.probes.iter().all(|p| p.reply.is_none()) {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}
