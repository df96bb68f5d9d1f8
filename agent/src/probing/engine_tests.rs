//! The engine's scheduling over the simulated network ([`super::simnet`]), on
//! tokio's paused clock: hops found, probes sent and end times in virtual time,
//! without root. The acceptance tests check the same behaviour on real sockets
//! in the emulated Internet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::{Protocol, StopReason, TraceResult};
use tokio::time::Instant;
use uuid::Uuid;

use super::simnet::{End, HOP_DELAY, Node, Route, SentProbe, SimNet};
use crate::probing::engine::{self, AgentIdentity, EngineConfig, FlowChoice, RunStats};
use crate::probing::pacing::Rates;
use crate::probing::parking::{PILOTS_PER_PREFIX, patience};
use crate::probing::targets::Allowlist;
use crate::probing::trace::TraceSettings;

/// A rate at which pacing never holds a lone trace back.
const FAST: u32 = crate::probing::pacing::MAX_PPS;

/// The wait for the first token of a fresh pacer at [`FAST`] (1/rate), rounded
/// up to tokio's timer resolution of 1 ms.
const FIRST_TOKEN: Duration = Duration::from_millis(2);

const VANTAGE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// The target block (the allowlist); its /24s are modelled one by one.
fn block() -> Ipv4Net {
    "10.9.0.0/22".parse().unwrap()
}

fn net(text: &str) -> Ipv4Net {
    text.parse().unwrap()
}

/// Transit routers outside the block, `10.1.<branch>.<hop>`.
fn transit(branch: u8, hops: u8) -> Vec<Node> {
    (1..=hops)
        .map(|h| Node::router(Ipv4Addr::new(10, 1, branch, h)))
        .collect()
}

fn config(pps: u32, per_prefix_pps: u32) -> EngineConfig {
    EngineConfig {
        protocol: Protocol::Icmp,
        dst_port: engine::DEFAULT_UDP_PORT,
        settings: TraceSettings::SURVEY,
        rates: Rates::new(pps, per_prefix_pps).unwrap(),
        max_in_flight: engine::DEFAULT_MAX_IN_FLIGHT,
        stop_set: false,
        identity: AgentIdentity {
            agent_id: "sim".into(),
            agent_version: "0".into(),
        },
        round_id: Uuid::new_v4(),
        flow: FlowChoice::default(),
    }
}

/// One result with the virtual time the engine handed it over.
struct Finished {
    at: Instant,
    result: TraceResult,
}

/// What a run over the simulated network produced.
struct Run {
    start: Instant,
    stats: RunStats,
    finished: Vec<Finished>,
    log: Vec<SentProbe>,
}

impl Run {
    fn by_target(&self) -> BTreeMap<Ipv4Addr, &TraceResult> {
        self.finished
            .iter()
            .map(|f| (f.result.target, &f.result))
            .collect()
    }

    fn end(&self) -> Instant {
        self.start + self.stats.elapsed
    }

    fn last_probe(&self) -> Instant {
        self.log.iter().map(|p| p.at).max().unwrap_or(self.start)
    }

    fn probes_to(&self, dst: Ipv4Addr) -> impl Iterator<Item = &SentProbe> {
        self.log.iter().filter(move |p| p.dst == dst)
    }
}

async fn survey(routes: Vec<Route>, targets: &[Ipv4Addr], cfg: &EngineConfig) -> Run {
    let sim = Arc::new(SimNet::new(VANTAGE, Allowlist::new(vec![block()]), routes));
    let start = Instant::now();
    let mut finished = Vec::new();
    let stats = engine::run(Arc::clone(&sim), targets, cfg, |result| {
        finished.push(Finished {
            at: Instant::now(),
            result,
        });
    })
    .await
    .expect("the run over the simulated network");
    assert_eq!(finished.len(), targets.len(), "one result per target");
    assert_eq!(stats.probes_sent, sim.log().len() as u64);
    Run {
        start,
        stats,
        finished,
        log: sim.log(),
    }
}

/// The addresses that answered, TTL by TTL.
fn answered(result: &TraceResult) -> Vec<(u8, Ipv4Addr)> {
    result
        .hops
        .iter()
        .filter_map(|h| {
            h.probes
                .iter()
                .find_map(|p| p.reply.as_ref())
                .map(|r| (h.ttl, r.address))
        })
        .collect()
}

fn hosts(prefix: &str) -> Vec<Ipv4Addr> {
    net(prefix).hosts().collect()
}

/// Most probes sent within any one virtual second.
fn most_in_a_second(log: &[SentProbe]) -> usize {
    let mut times: Vec<Instant> = log.iter().map(|p| p.at).collect();
    times.sort_unstable();
    let mut most = 0;
    let mut first = 0;
    for (i, &t) in times.iter().enumerate() {
        while t.duration_since(times[first]) >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

#[tokio::test(start_paused = true)]
async fn a_plain_path_is_traced_hop_by_hop_with_one_probe_per_ttl() {
    let routes = vec![Route {
        prefix: net("10.9.0.0/24"),
        branches: vec![transit(0, 4)],
        end: End::Answers,
    }];
    let target = Ipv4Addr::new(10, 9, 0, 7);
    let run = survey(routes, &[target], &config(FAST, FAST)).await;
    let result = run.by_target()[&target];
    assert_eq!(result.stop_reason, StopReason::Reached);
    let mut expected: Vec<(u8, Ipv4Addr)> =
        (1..=4).map(|h| (h, Ipv4Addr::new(10, 1, 0, h))).collect();
    expected.push((5, target));
    assert_eq!(answered(result), expected);
    let rtts: Vec<u32> = result
        .hops
        .iter()
        .map(|h| h.probes[0].reply.as_ref().unwrap().rtt_us)
        .collect();
    let model: Vec<u32> = (1..=5)
        .map(|h| (HOP_DELAY * 2 * h).as_micros() as u32)
        .collect();
    assert_eq!(rtts, model, "RTTs are the model's, to the microsecond");
    assert_eq!(run.stats.probes_sent, 5);
    // Each TTL follows the previous one's reply, with no wait for a timer; the
    // pacer's buckets start empty, so the first probe waits for one token.
    let round_trips: Duration = (1..=5).map(|h| HOP_DELAY * 2 * h).sum();
    assert!(run.stats.elapsed >= round_trips, "{:?}", run.stats.elapsed);
    assert!(
        run.stats.elapsed <= round_trips + FIRST_TOKEN,
        "{:?}",
        run.stats.elapsed
    );
}

/// Until a /24's boundary is known, every probe toward it counts against its
/// own cap; once an address of the block answered (here the first target
/// reached, at TTL 5), only probes at or past that TTL do, and the hops before
/// it go at the global rate.
#[tokio::test(start_paused = true)]
async fn probes_toward_a_slash24_keep_its_rate_past_its_boundary() {
    let routes = vec![Route {
        prefix: net("10.9.0.0/24"),
        branches: vec![transit(0, 4)],
        end: End::Answers,
    }];
    let targets = hosts("10.9.0.0/28");
    let per_prefix = 10;
    let run = survey(routes, &targets, &config(100, per_prefix)).await;
    assert_eq!(run.stats.reached, targets.len());
    let boundary = 5;
    let learnt = run
        .log
        .iter()
        .filter(|p| p.answered_by.is_some_and(|a| block().contains(&a)))
        .map(|p| p.at + HOP_DELAY * 2 * u32::from(p.ttl))
        .min()
        .expect("a target answered");
    let counted: Vec<Instant> = run
        .log
        .iter()
        .filter(|p| p.at < learnt || p.ttl >= boundary)
        .map(|p| p.at)
        .collect();
    let spacing = Duration::from_secs(1) / per_prefix;
    for pair in counted.windows(2) {
        let gap = pair[1] - pair[0];
        // Tokens are counted in floating point: a nanosecond of slack.
        assert!(
            gap + Duration::from_nanos(1) >= spacing,
            "{gap:?} between counted probes"
        );
    }
    let before_boundary = run
        .log
        .iter()
        .filter(|p| p.at >= learnt && p.ttl < boundary);
    let quick = before_boundary
        .collect::<Vec<_>>()
        .windows(2)
        .any(|pair| pair[1].at - pair[0].at < spacing);
    assert!(
        quick,
        "hops before the boundary were held to the /24's rate"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_hop_costs_one_probe_and_one_timeout() {
    let mut path = transit(0, 4);
    path[2] = Node::Silent;
    let routes = vec![Route {
        prefix: net("10.9.0.0/24"),
        branches: vec![path],
        end: End::Answers,
    }];
    let target = Ipv4Addr::new(10, 9, 0, 7);
    let cfg = config(FAST, FAST);
    let run = survey(routes, &[target], &cfg).await;
    let result = run.by_target()[&target];
    assert_eq!(result.stop_reason, StopReason::Reached);
    let hop = |h| (h, Ipv4Addr::new(10, 1, 0, h));
    assert_eq!(answered(result), vec![hop(1), hop(2), hop(4), (5, target)]);
    assert_eq!(run.stats.probes_sent, 5);
    let round_trips: Duration = [1, 2, 4, 5].iter().map(|&h| HOP_DELAY * 2 * h).sum();
    let elapsed = run.stats.elapsed;
    assert!(elapsed >= round_trips + cfg.settings.timeout, "{elapsed:?}");
    assert!(
        elapsed <= round_trips + cfg.settings.timeout + FIRST_TOKEN,
        "{elapsed:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reachable_slash24_is_surveyed_at_the_rate_with_one_probe_per_hop() {
    let routes = vec![Route {
        prefix: net("10.9.0.0/24"),
        branches: vec![transit(0, 4)],
        end: End::Answers,
    }];
    let targets = hosts("10.9.0.0/24");
    let pps = 200;
    let cfg = config(pps, pps);
    let run = survey(routes, &targets, &cfg).await;
    for result in run.by_target().values() {
        assert_eq!(result.stop_reason, StopReason::Reached, "{}", result.target);
        assert_eq!(answered(result).len(), 5, "{}", result.target);
    }
    let probes = targets.len() * 5;
    assert_eq!(run.stats.probes_sent, probes as u64);
    // The rate holds on the wire (a bucket of `depth` tokens on top)…
    let depth = cfg.rates.depth() as usize;
    assert!(most_in_a_second(&run.log) <= pps as usize + depth);
    // …and the survey takes about probes ÷ rate, never waiting on a timer.
    let at_rate = Duration::from_secs_f64(probes as f64 / f64::from(pps));
    assert!(
        run.stats.elapsed <= at_rate + Duration::from_millis(100),
        "{:?} for {probes} probes at {pps}/s",
        run.stats.elapsed
    );
}

/// Issue 9: a /24 silent behind a border that answers from another /24 of the
/// block. Every trace stops on the gap limit past the border; only the pilots
/// go one more gap limit; parked traces end as soon as the pilots pass the
/// horizon, and the survey ends at most a parked trace's wait plus one timeout
/// after its last probe.
#[tokio::test(start_paused = true)]
async fn a_silent_slash24_ends_its_parked_traces_when_the_pilots_pass_the_horizon() {
    silent_slash24(engine::DEFAULT_MAX_IN_FLIGHT).await;
}

/// The same with traces that start over time (few probes in flight): the traces
/// that park after the pilots found silence stop at once, without waiting.
#[tokio::test(start_paused = true)]
async fn traces_parking_after_the_pilots_found_silence_stop_at_once() {
    silent_slash24(16).await;
}

async fn silent_slash24(max_in_flight: usize) {
    let border = Ipv4Addr::new(10, 9, 0, 1);
    let mut path = transit(0, 3);
    path.push(Node::router(border));
    let routes = vec![Route {
        prefix: net("10.9.1.0/24"),
        branches: vec![path],
        end: End::Silent,
    }];
    let targets = hosts("10.9.1.0/24");
    let cfg = EngineConfig {
        max_in_flight,
        ..config(200, 200)
    };
    let settings = cfg.settings;
    let gap = settings.gap_limit;
    let run = survey(routes, &targets, &cfg).await;

    let border_ttl = 4;
    let mut pilots = BTreeSet::new();
    for result in run.by_target().values() {
        assert_eq!(
            result.stop_reason,
            StopReason::GapLimit,
            "{}",
            result.target
        );
        assert_eq!(answered(result).last(), Some(&(border_ttl, border)));
        let deepest = result.hops.last().unwrap().ttl;
        match deepest - border_ttl {
            d if d == gap => {}
            d if d == 2 * gap => {
                pilots.insert(result.target);
            }
            d => panic!("{} probed {d} TTLs past the border", result.target),
        }
        assert_eq!(
            run.probes_to(result.target).count(),
            usize::from(deepest),
            "{}: one probe per TTL",
            result.target
        );
    }
    assert!(
        (1..=PILOTS_PER_PREFIX).contains(&pilots.len()),
        "pilots: {pilots:?}"
    );
    let probes = targets.len() * usize::from(border_ttl + gap) + pilots.len() * usize::from(gap);
    assert_eq!(run.stats.probes_sent, probes as u64);

    // No trace waits for the others longer than it takes the pilots to finish:
    // each ends one timeout after its own last probe or the pilots' last one.
    let pilots_done = run
        .log
        .iter()
        .filter(|p| pilots.contains(&p.dst))
        .map(|p| p.at)
        .max()
        .unwrap();
    for f in &run.finished {
        let own_last = run.probes_to(f.result.target).map(|p| p.at).max().unwrap();
        let bound = own_last.max(pilots_done) + settings.timeout;
        assert!(
            f.at <= bound,
            "{} ended {:?} after its bound",
            f.result.target,
            f.at - bound
        );
    }
    let last = run.last_probe();
    assert!(
        run.end() <= last + patience(settings.timeout) + settings.timeout,
        "the survey ended {:?} after its last probe",
        run.end() - last
    );
}

/// Routers that answer only a few probes per second: their TTLs are silent for
/// most traces, which park at the gap limit and resume when other traces show
/// that deeper TTLs answer. Every target is still reached, with one probe per TTL.
#[tokio::test(start_paused = true)]
async fn rate_limited_routers_leave_silent_hops_but_every_target_is_reached() {
    let mut path = vec![Node::router(Ipv4Addr::new(10, 1, 0, 1))];
    // As many limited routers in a row as the gap limit: a trace they all ignore
    // parks, and must not stop there.
    let gap = TraceSettings::SURVEY.gap_limit;
    path.extend((2..=gap + 1).map(|h| Node::limited(Ipv4Addr::new(10, 1, 0, h), 1)));
    path.push(Node::router(Ipv4Addr::new(10, 1, 0, gap + 2)));
    let hops = path.len();
    let routes = vec![Route {
        prefix: net("10.9.2.0/24"),
        branches: vec![path],
        end: End::Answers,
    }];
    let targets = hosts("10.9.2.0/26");
    let cfg = config(200, 200);
    let run = survey(routes, &targets, &cfg).await;

    let mut limited_answers = 0;
    for result in run.by_target().values() {
        assert_eq!(result.stop_reason, StopReason::Reached, "{}", result.target);
        assert_eq!(result.hops.last().unwrap().ttl as usize, hops + 1);
        assert_eq!(
            run.probes_to(result.target).count(),
            hops + 1,
            "{}: one probe per TTL",
            result.target
        );
        limited_answers += answered(result)
            .iter()
            .filter(|(ttl, _)| (2..=gap + 1).contains(ttl))
            .count();
    }
    let seconds = run.stats.elapsed.as_secs() + 1;
    assert!(
        limited_answers as u64 <= u64::from(gap) * seconds,
        "{limited_answers} answers from routers limited to 1/s in {seconds} s"
    );
    assert!(
        limited_answers < targets.len() * usize::from(gap),
        "the rate limit silenced nothing"
    );
    // Parked traces wait a bounded time for others' progress, not for the survey.
    assert!(run.end() <= run.last_probe() + patience(cfg.settings.timeout) + cfg.settings.timeout);
}

/// Per-flow ECMP: the Paris flow id is constant within a trace, so every probe
/// of a trace takes one branch and its hops are one consistent path; traces
/// with different flows take different branches.
#[tokio::test(start_paused = true)]
async fn under_per_flow_ecmp_each_trace_follows_one_branch() {
    let routes = vec![Route {
        prefix: net("10.9.3.0/24"),
        branches: vec![transit(0, 5), transit(1, 5)],
        end: End::Answers,
    }];
    let targets = hosts("10.9.3.0/27");
    let run = survey(routes, &targets, &config(200, 200)).await;
    let mut branches_used = BTreeSet::new();
    for result in run.by_target().values() {
        let branches: BTreeSet<usize> = run.probes_to(result.target).map(|p| p.branch).collect();
        assert_eq!(
            branches.len(),
            1,
            "{} split over {branches:?}",
            result.target
        );
        let branch = *branches.first().unwrap();
        branches_used.insert(branch);
        let mut expected: Vec<(u8, Ipv4Addr)> = (1..=5)
            .map(|h| (h, Ipv4Addr::new(10, 1, branch as u8, h)))
            .collect();
        expected.push((6, result.target));
        assert_eq!(answered(result), expected);
    }
    // 31 random flows all on one of two branches: one chance in 2^30.
    assert_eq!(branches_used.len(), 2, "every flow hashed to one branch");
}

// ------------------------------------------------------------------ stop sets

fn with_stop_set(cfg: EngineConfig) -> EngineConfig {
    EngineConfig {
        stop_set: true,
        ..cfg
    }
}

/// The TTLs of a result's hops that were inherited, not probed by its flow.
fn inherited_ttls(result: &TraceResult) -> Vec<u8> {
    result
        .hops
        .iter()
        .filter(|h| h.inherited.is_some())
        .map(|h| h.ttl)
        .collect()
}

/// Issue 9 item 2: paths into a /24 that share four hops. The scouts probe
/// every TTL; every other trace starts at the deepest shared hop, finds its own
/// reply there in the stop set, inherits the three hops below from a scout and
/// probes only the rest: every target is reached with the same hop list as
/// without the stop set, for far fewer probes.
#[tokio::test(start_paused = true)]
async fn a_shared_prefix_is_probed_once_with_the_stop_set() {
    let routes = || {
        vec![Route {
            prefix: net("10.9.0.0/24"),
            branches: vec![transit(0, 4)],
            end: End::Answers,
        }]
    };
    let targets = hosts("10.9.0.0/24");
    let pps = 200;
    let plain = survey(routes(), &targets, &config(pps, pps)).await;
    let run = survey(routes(), &targets, &with_stop_set(config(pps, pps))).await;

    let scouts = crate::probing::stop_set::SCOUTS_PER_PREFIX;
    let full = 5;
    let started_deeper = 2; // the shared hop at TTL 4, then the target
    assert_eq!(plain.stats.probes_sent, (targets.len() * full) as u64);
    assert_eq!(
        run.stats.probes_sent,
        (scouts * full + (targets.len() - scouts) * started_deeper) as u64
    );
    assert!(run.stats.probes_sent * 2 < plain.stats.probes_sent);

    let plain_results = plain.by_target();
    let mut inheriting = 0;
    for result in run.by_target().values() {
        nkpath_proto::Validate::validate(*result)
            .unwrap_or_else(|e| panic!("{}: the collector would refuse it: {e}", result.target));
        assert_eq!(result.stop_reason, StopReason::Reached, "{}", result.target);
        assert_eq!(
            answered(result),
            answered(plain_results[&result.target]),
            "{}: the same hops as when every trace probes every TTL",
            result.target
        );
        let own: BTreeSet<u8> = run.probes_to(result.target).map(|p| p.ttl).collect();
        let inherited = inherited_ttls(result);
        if inherited.is_empty() {
            assert_eq!(
                own.len(),
                full,
                "{}: a scout probes every TTL",
                result.target
            );
            continue;
        }
        inheriting += 1;
        assert_eq!(inherited, [1, 2, 3], "{}", result.target);
        assert_eq!(
            own.into_iter().collect::<Vec<_>>(),
            [4, 5],
            "{}",
            result.target
        );
        for hop in result.hops.iter().filter(|h| h.inherited.is_some()) {
            let from = hop.inherited.unwrap();
            assert_ne!(from.target, result.target);
            assert!(
                inherited_ttls(run.by_target()[&from.target]).is_empty(),
                "{}: inherited from {}, which is no scout",
                result.target,
                from.target
            );
            assert_eq!(from.flow, run.by_target()[&from.target].flow);
        }
    }
    assert_eq!(inheriting, targets.len() - scouts);
    // Still about probes ÷ rate: the others wait only for the scouts' few hops.
    let at_rate = Duration::from_secs_f64(run.stats.probes_sent as f64 / f64::from(pps));
    assert!(
        run.stats.elapsed <= at_rate + Duration::from_millis(100),
        "{:?} for {} probes at {pps}/s",
        run.stats.elapsed,
        run.stats.probes_sent
    );
}

/// Per-flow ECMP near the source: two branches at TTL 2 that merge at TTL 3.
/// A trace that meets the shared TTL 3 cannot tell which branch its own flow
/// took below, so it never inherits TTL 2: it probes back to TTL 1. Every hop
/// a trace records, probed or inherited, lies on the branch its own flow takes.
#[tokio::test(start_paused = true)]
async fn ecmp_near_the_source_is_never_merged_by_the_stop_set() {
    let branch = |b: u8| {
        vec![
            Node::router(Ipv4Addr::new(10, 1, 0, 1)),
            Node::router(Ipv4Addr::new(10, 1, b, 2)),
            Node::router(Ipv4Addr::new(10, 1, 0, 3)),
            Node::router(Ipv4Addr::new(10, 1, 0, 4)),
        ]
    };
    let routes = vec![Route {
        prefix: net("10.9.3.0/24"),
        branches: vec![branch(0), branch(1)],
        end: End::Answers,
    }];
    let targets = hosts("10.9.3.0/24");
    let run = survey(routes, &targets, &with_stop_set(config(200, 200))).await;
    let mut branches_used = BTreeSet::new();
    for result in run.by_target().values() {
        let branches: BTreeSet<usize> = run.probes_to(result.target).map(|p| p.branch).collect();
        assert_eq!(
            branches.len(),
            1,
            "{} split over {branches:?}",
            result.target
        );
        let b = *branches.first().unwrap() as u8;
        branches_used.insert(b);
        let expected = vec![
            (1, Ipv4Addr::new(10, 1, 0, 1)),
            (2, Ipv4Addr::new(10, 1, b, 2)),
            (3, Ipv4Addr::new(10, 1, 0, 3)),
            (4, Ipv4Addr::new(10, 1, 0, 4)),
            (5, result.target),
        ];
        assert_eq!(answered(result), expected, "{}", result.target);
        let inherited = inherited_ttls(result);
        let own: BTreeSet<u8> = run.probes_to(result.target).map(|p| p.ttl).collect();
        assert!(
            own.contains(&2),
            "{} did not probe the balancer's TTL",
            result.target
        );
        assert!(
            inherited.is_empty() || inherited == [1, 3],
            "{} inherited {inherited:?}",
            result.target
        );
        if !inherited.is_empty() {
            assert_eq!(own.into_iter().collect::<Vec<_>>(), [2, 4, 5]);
        }
    }
    assert_eq!(branches_used.len(), 2, "every flow hashed to one branch");
    let scouts = crate::probing::stop_set::SCOUTS_PER_PREFIX;
    assert_eq!(
        run.stats.probes_sent,
        (scouts * 5 + (targets.len() - scouts) * 3) as u64
    );
}

/// A /24 silent behind its border, with the stop set: the traces after the
/// scouts start at the border, inherit the hops before it, and still stop on
/// the gap limit past it; parked traces end as promptly as without the stop set.
#[tokio::test(start_paused = true)]
async fn a_silent_slash24_still_ends_promptly_with_the_stop_set() {
    let border = Ipv4Addr::new(10, 9, 0, 1);
    let mut path = transit(0, 3);
    path.push(Node::router(border));
    let routes = || {
        vec![Route {
            prefix: net("10.9.1.0/24"),
            branches: vec![path.clone()],
            end: End::Silent,
        }]
    };
    let targets = hosts("10.9.1.0/24");
    let plain = survey(routes(), &targets, &config(200, 200)).await;
    let cfg = with_stop_set(config(200, 200));
    let settings = cfg.settings;
    let run = survey(routes(), &targets, &cfg).await;

    let border_ttl = 4;
    for result in run.by_target().values() {
        assert_eq!(
            result.stop_reason,
            StopReason::GapLimit,
            "{}",
            result.target
        );
        assert_eq!(answered(result).last(), Some(&(border_ttl, border)));
        assert_eq!(
            answered(result).len(),
            usize::from(border_ttl),
            "{}",
            result.target
        );
        let inherited = inherited_ttls(result);
        assert!(
            inherited.is_empty() || inherited == [1, 2, 3],
            "{inherited:?}"
        );
    }
    let saved =
        (targets.len() - crate::probing::stop_set::SCOUTS_PER_PREFIX) * usize::from(border_ttl - 1);
    assert_eq!(
        run.stats.probes_sent,
        plain.stats.probes_sent - saved as u64
    );
    let last = run.last_probe();
    assert!(
        run.end() <= last + patience(settings.timeout) + settings.timeout,
        "the survey ended {:?} after its last probe",
        run.end() - last
    );
}
