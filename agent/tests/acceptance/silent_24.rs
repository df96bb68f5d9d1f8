//! A /24 that is silent behind a border answering from inside the block, the common
//! case of real North Korean space (a private testbed in the `silent-24` scenario:
//! the border answers from its address in 175.45.178.0/24 and drops 175.45.179.0/24
//! without a word). A survey of that /24 ends every trace on the gap limit, with the
//! hops up to the border as the routing tables give them and nothing past it; no
//! trace is pushed on while it waits for the others, except the /24's few pilots.

use std::collections::BTreeMap;

use crate::common::{
    SurveySummary, agent_command, assert_trace_matches, flow_query, read_results, render,
    scratch_dir,
};
use nkpath_agent::probing::parking::PILOTS_PER_PREFIX;
use nkpath_proto::{StopReason, TraceResult};
use nkpath_testbed::{Options, PathEnd, Scenario, Testbed};

/// The deepest TTL a trace probed.
fn deepest_probed(result: &TraceResult) -> u8 {
    result.hops.last().map_or(0, |h| h.ttl)
}

#[test]
fn a_slash24_silent_behind_its_border_ends_every_trace_on_the_gap_limit() {
    if !nkpath_testbed::require_tools(&["setpriv"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options {
        scenario: Scenario::Silent24,
        ..Options::default()
    }) else {
        return;
    };
    let m = tb.manifest();
    assert_eq!(m.scenario, "silent-24");
    let block = m.target.prefix;
    let silent = *m
        .target
        .silent
        .iter()
        .find(|p| p.prefix_len() == 24)
        .unwrap_or_else(|| panic!("no silent /24 in {:?}", m.target));
    let vp = "devp";
    let dir = scratch_dir();
    let out = dir.path().join("survey.jsonl");
    let (out_s, targets) = (out.display().to_string(), silent.to_string());
    // The bench's settings: every probe of this /24 counts against its own bucket
    // once the border answered from inside the block, so the per-/24 rate is the
    // global one (at the default 10/s this survey would take minutes).
    let args = [
        "survey",
        "--agent-id",
        "test",
        "--out",
        &out_s,
        "--pps",
        "200",
        "--per-prefix-pps",
        "200",
        "--targets",
        &targets,
    ];
    let output = agent_command(&tb, vp, &args).output().expect("spawn agent");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "survey failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = SurveySummary::parse(&stdout);
    eprintln!("{vp}: {}", stdout.trim());
    let results = read_results(&out);
    let by_target: BTreeMap<_, &TraceResult> = results.iter().map(|r| (r.target, r)).collect();
    assert_eq!(by_target.len(), 256);
    assert_eq!(summary.targets, 256);
    assert_eq!(summary.reached, 0);

    // Hop by hop, for a spread of targets: the path the routing tables give each
    // flow, ending at the border, whose answer comes from inside the block but not
    // from the silent /24 (the premise of the scenario).
    let mut silent_from = None;
    for (dst, result) in by_target.iter().step_by(51) {
        let expected = tb
            .expected_trace(vp, *dst, &flow_query(&result.flow))
            .unwrap();
        let PathEnd::Dropped {
            silent_from: from, ..
        } = expected.end
        else {
            panic!("{vp} -> {dst}: the path ends {:?}", expected.end);
        };
        let border = expected.hops.last().expect("hops before the border");
        assert!(
            block.contains(&border.address) && !silent.contains(&border.address),
            "{vp} -> {dst}: the border answers from {}",
            border.address
        );
        assert_trace_matches(&format!("survey {vp} -> {dst}"), result, &expected, 1);
        assert_eq!(*silent_from.get_or_insert(from), from, "{vp} -> {dst}");
    }
    let silent_from = silent_from.expect("a sample");

    // Every trace: the border answered, nothing past it, and the trace stopped on the
    // gap limit exactly that many TTLs past the border, not on its time budget after
    // waiting for others; only the pilots probed one more gap limit.
    let gap_limit = results[0].params.gap_limit;
    let border_ttl = silent_from - 1;
    let mut pilots = Vec::new();
    for result in &results {
        let what = || render(result);
        assert_eq!(result.stop_reason, StopReason::GapLimit, "{}", what());
        let answered: Vec<u8> = result
            .hops
            .iter()
            .filter(|h| h.probes.iter().any(|p| p.reply.is_some()))
            .map(|h| h.ttl)
            .collect();
        assert_eq!(answered.last(), Some(&border_ttl), "{}", what());
        match deepest_probed(result) - border_ttl {
            d if d == gap_limit => {}
            d if d == 2 * gap_limit => pilots.push(result.target),
            d => panic!("probed {d} TTLs past the border: {}", what()),
        }
    }
    eprintln!(
        "{vp}: {silent}: every trace stopped {gap_limit} TTLs past the border (TTL {border_ttl}), \
         pilots {pilots:?}; {} probes",
        summary.probes_sent
    );
    assert!(
        (1..=PILOTS_PER_PREFIX).contains(&pilots.len()),
        "{} traces went one more gap limit: {pilots:?}",
        pilots.len()
    );
}
