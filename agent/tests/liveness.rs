//! Liveness sweeps in the emulated Internet, on real sockets.
//!
//! The sweep runs inside a vantage point's namespace: this test binary starts
//! itself there (`ip netns exec NS setpriv ... <this binary> --exact in_namespace
//! --ignored`), as an unprivileged user with CAP_NET_RAW only, like the agent
//! after its privilege drop, with the job in an environment variable; the
//! `in_namespace` helper runs it and writes the outcome as JSON. Nothing is sent
//! from the root namespace.
//!
//! Expectations come from the manifest (which parts of the target block answer,
//! which are silent or rejected) and from the live routing tables
//! (`Testbed::expected_trace`). Read-only: the testbed shared by this binary.

mod common;

use std::fs;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_trace_matches, flow_query, render, vp_lock};
use nkpath_agent::probing::engine::{self, AgentIdentity, EngineConfig, FlowChoice};
use nkpath_agent::probing::liveness::{self, Pinger, SweepOptions};
use nkpath_agent::probing::pacing::{Pacer, Rates};
use nkpath_agent::probing::sockets::RawSockets;
use nkpath_agent::probing::targets::Allowlist;
use nkpath_agent::probing::trace::TraceSettings;
use nkpath_proto::{PingResult, Protocol, TraceResult, Validate};
use nkpath_testbed::Testbed;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Environment variables that carry the job into the namespace and the outcome back.
const JOB_ENV: &str = "NKPATH_LIVENESS_TEST_JOB";
const OUT_ENV: &str = "NKPATH_LIVENESS_TEST_OUT";

/// What to do inside the namespace.
#[derive(Debug, Serialize, Deserialize)]
enum Job {
    /// One sweep.
    Sweep {
        targets: Vec<Ipv4Addr>,
        allow: Vec<String>,
        count: u16,
        rates: (u32, u32),
    },
    /// Paris ICMP traces (the engine) and a sweep of the same targets at the same
    /// time, in one process, as the agent will run them.
    SweepWhileTracing { targets: Vec<Ipv4Addr>, count: u16 },
}

#[derive(Debug, Serialize, Deserialize)]
enum Outcome {
    Sweep {
        results: Result<Vec<PingResult>, String>,
        chosen: Vec<Ipv4Addr>,
        /// Echo requests that left the namespace during the sweep (`Icmp: OutEchos`).
        echo_requests_sent: u64,
    },
    SweepWhileTracing {
        pings: Vec<PingResult>,
        traces: Vec<TraceResult>,
        /// Replies the engine's socket received that matched none of its probes.
        engine_unmatched: u64,
    },
}

fn identity() -> AgentIdentity {
    AgentIdentity {
        agent_id: "test".into(),
        agent_version: "0".into(),
    }
}

/// Not a test: the code that runs inside a namespace, started by the tests below.
/// Does nothing when started any other way.
#[test]
#[ignore = "helper: the tests of this file run it inside a testbed namespace"]
fn in_namespace() {
    let Ok(job) = std::env::var(JOB_ENV) else {
        return;
    };
    let out = std::env::var(OUT_ENV).expect("output path");
    let job: Job = serde_json::from_str(&job).expect("job");
    let outcome = run_job(job);
    fs::write(out, serde_json::to_vec(&outcome).unwrap()).unwrap();
}

fn run_job(job: Job) -> Outcome {
    // The agent's order: raw sockets, then the runtime, then the pinger in its context.
    let sockets = matches!(job, Job::SweepWhileTracing { .. }).then(|| RawSockets::open().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pinger = {
        let _entered = rt.enter();
        Pinger::new().unwrap()
    };
    let round_id = Uuid::new_v4();
    match job {
        Job::Sweep {
            targets,
            allow,
            count,
            rates,
        } => {
            let allowlist = Allowlist::parse(&allow).unwrap();
            let rates = Rates::new(rates.0, rates.1).unwrap();
            let opts = SweepOptions {
                count,
                timeout: Duration::from_secs(1),
                ..SweepOptions::default()
            };
            let before = out_echos();
            let results = rt.block_on(async {
                let mut pacer = Pacer::new(rates, tokio::time::Instant::now());
                liveness::sweep(
                    &pinger,
                    &targets,
                    &mut pacer,
                    &allowlist,
                    &opts,
                    &identity(),
                    round_id,
                )
                .await
            });
            let echo_requests_sent = out_echos() - before;
            let chosen = results
                .as_ref()
                .map(|r| liveness::choose_trace_targets(r, &targets))
                .unwrap_or_default();
            Outcome::Sweep {
                results: results.map_err(|e| e.to_string()),
                chosen,
                echo_requests_sent,
            }
        }
        Job::SweepWhileTracing { targets, count } => {
            let allowlist = Allowlist::default();
            // The same modest rates for both; the per-/24 cap keeps both running for a while.
            let rates = Rates::new(100, 10).unwrap();
            let cfg = EngineConfig {
                protocol: Protocol::Icmp,
                dst_port: engine::DEFAULT_UDP_PORT,
                settings: TraceSettings::SURVEY,
                rates,
                max_in_flight: engine::DEFAULT_MAX_IN_FLIGHT,
                stop_set: false,
                identity: identity(),
                round_id,
                flow: FlowChoice::default(),
            };
            let opts = SweepOptions {
                count,
                ..SweepOptions::default()
            };
            rt.block_on(async {
                let sockets = Arc::new(sockets.unwrap().into_async(allowlist.clone()).unwrap());
                let mut traces = Vec::new();
                let mut pacer = Pacer::new(rates, tokio::time::Instant::now());
                let who = identity();
                let (stats, pings) = tokio::join!(
                    engine::run(sockets, &targets, &cfg, |r| traces.push(r)),
                    liveness::sweep(
                        &pinger, &targets, &mut pacer, &allowlist, &opts, &who, round_id
                    ),
                );
                Outcome::SweepWhileTracing {
                    pings: pings.unwrap(),
                    engine_unmatched: stats.unwrap().unmatched,
                    traces,
                }
            })
        }
    }
}

/// The namespace's count of ICMP echo requests sent (`/proc/net/snmp`, per namespace).
fn out_echos() -> u64 {
    let snmp = fs::read_to_string("/proc/net/snmp").unwrap();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp:"));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let column = names
        .split_whitespace()
        .position(|n| n == "OutEchos")
        .unwrap();
    values
        .split_whitespace()
        .nth(column)
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `job` in `node` as nobody with CAP_NET_RAW only, and returns its outcome.
fn run_in(tb: &Testbed, node: &str, job: &Job) -> Outcome {
    common::run_in_namespace(tb, node, "liveness-test", (JOB_ENV, OUT_ENV), job)
}

fn part_of(parts: &[ipnet::Ipv4Net], addr: Ipv4Addr) -> bool {
    parts.iter().any(|p| p.contains(&addr))
}

#[test]
fn sweep_finds_the_answering_block_alive_and_the_silent_and_rejected_ones_dead() {
    let Some(tb) = Testbed::shared() else { return };
    let vp = "devp";
    let _lock = vp_lock(vp);
    let target = &tb.manifest().target;
    let (silent, rejected) = (
        Ipv4Addr::new(175, 45, 178, 200),
        Ipv4Addr::new(175, 45, 179, 1),
    );
    let answering: ipnet::Ipv4Net = "175.45.176.0/24".parse().unwrap();
    // What the manifest says these parts of the block do.
    assert!(
        target.answering.iter().any(|p| p.contains(&answering)),
        "{target:?}"
    );
    assert!(part_of(&target.silent, silent), "{target:?}");
    assert!(part_of(&target.admin_prohibited, rejected), "{target:?}");

    let mut targets: Vec<Ipv4Addr> = answering.hosts().collect();
    targets.extend([silent, rejected]);
    let count = 2;
    let Outcome::Sweep {
        results,
        chosen,
        echo_requests_sent,
    } = run_in(
        tb,
        vp,
        &Job::Sweep {
            targets: targets.clone(),
            allow: vec!["175.45.176.0/22".into()],
            count,
            rates: (500, 500),
        },
    )
    else {
        panic!("wrong outcome")
    };
    let results = results.unwrap();

    assert_eq!(results.len(), targets.len());
    let source = tb.manifest().vp_address(vp).unwrap();
    for (result, &t) in results.iter().zip(&targets) {
        result
            .validate()
            .unwrap_or_else(|e| panic!("{t}: invalid result {result:?}: {e}"));
        assert_eq!(
            (result.target, result.source, result.sent),
            (t, source, u32::from(count)),
            "{result:?}"
        );
        let expected = if part_of(&target.answering, t) {
            u32::from(count)
        } else {
            0
        };
        assert_eq!(result.received, expected, "{t}: {result:?}");
        assert_eq!(result.rtts_us.len(), expected as usize, "{t}: {result:?}");
    }
    let alive = |a: Ipv4Addr| results.iter().find(|r| r.target == a).unwrap().is_alive();
    assert!(answering.hosts().all(alive), "all of {answering} answers");
    assert!(!alive(silent), "{silent} is blackholed");
    assert!(
        !alive(rejected),
        "{rejected} is rejected with admin-prohibited, which is no echo reply"
    );
    assert_eq!(
        echo_requests_sent,
        targets.len() as u64 * u64::from(count),
        "one echo request per ping"
    );

    // Every live address is traced, and each silent /24 (one target each here) once.
    assert_eq!(chosen, targets);
}

#[test]
fn sweep_outside_the_allowlist_sends_nothing() {
    let Some(tb) = Testbed::shared() else { return };
    let vp = "devp";
    let _lock = vp_lock(vp);
    let Outcome::Sweep {
        results,
        echo_requests_sent,
        ..
    } = run_in(
        tb,
        vp,
        &Job::Sweep {
            targets: vec![
                Ipv4Addr::new(175, 45, 176, 1),
                Ipv4Addr::new(175, 45, 177, 1),
            ],
            allow: vec!["175.45.176.0/24".into()],
            count: 1,
            rates: (100, 10),
        },
    )
    else {
        panic!("wrong outcome")
    };
    let err = results.unwrap_err();
    assert!(
        err.contains("175.45.177.1") && err.contains("allowlist"),
        "{err}"
    );
    assert_eq!(echo_requests_sent, 0);
}

#[test]
fn paris_replies_and_ping_replies_are_never_confused() {
    let Some(tb) = Testbed::shared() else { return };
    // jpvp: its gateway balances ICMP per flow, so the Paris flow must hold too.
    let vp = "jpvp";
    let _lock = vp_lock(vp);
    let parts = &tb.manifest().target.answering;
    let mut targets: Vec<Ipv4Addr> = parts.iter().map(|p| p.hosts().next().unwrap()).collect();
    targets.push(parts[0].hosts().nth(1).unwrap());
    let count = 5;
    let Outcome::SweepWhileTracing {
        pings,
        traces,
        engine_unmatched,
    } = run_in(
        tb,
        vp,
        &Job::SweepWhileTracing {
            targets: targets.clone(),
            count,
        },
    )
    else {
        panic!("wrong outcome")
    };

    // Every ping answered exactly once: no Paris reply counted, none of ours lost to the engine.
    for (ping, &t) in pings.iter().zip(&targets) {
        ping.validate().unwrap();
        assert_eq!(
            (ping.target, ping.sent, ping.received, ping.rtts_us.len()),
            (t, u32::from(count), u32::from(count), count as usize),
            "{ping:?}"
        );
    }
    // Every trace exactly as the routing tables say: no echo reply to a ping taken
    // for the destination's answer at a lower TTL.
    assert_eq!(traces.len(), targets.len());
    for trace in &traces {
        let expected = tb
            .expected_trace(vp, trace.target, &flow_query(&trace.flow))
            .unwrap();
        assert_trace_matches(&format!("{vp} -> {}", trace.target), trace, &expected, 1);
    }
    // And the two did run at the same time: the engine saw ping replies and left them alone.
    assert!(
        engine_unmatched > 0,
        "the engine saw none of the ping replies: the sweep and the traces did not overlap\n{}",
        traces.iter().map(render).collect::<String>()
    );
}
