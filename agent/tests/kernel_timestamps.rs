//! RTTs come from the kernel's receive timestamps, so a slow spool cannot inflate
//! them: in the emulated Internet, a survey whose results go through a spool writer
//! that takes 100 ms per result and queues one result at most (so the probing
//! thread stalls on every finished trace, the worst backpressure) reports every RTT
//! within 1 ms of the one tcpdump sees on the vantage point's interface. (Dated in
//! user space when the receiving task read them, as before, about a quarter of
//! these RTTs came out 1 to 3 ms too long.)
//!
//! The survey runs inside the vantage point's namespace (this test binary re-runs
//! itself there as nobody with CAP_NET_RAW only, see `common::run_in_namespace`);
//! nothing is sent from the root namespace. Read-only: the testbed shared by this
//! binary.

mod common;

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pcap::EchoKey;
use common::{Capture, render, vp_interface, vp_lock};
use nkpath_agent::probing::engine::{self, AgentIdentity, EngineConfig, FlowChoice};
use nkpath_agent::probing::pacing::{MAX_PPS, Rates};
use nkpath_agent::probing::sockets::RawSockets;
use nkpath_agent::probing::targets::Allowlist;
use nkpath_agent::probing::trace::TraceSettings;
use nkpath_agent::service::spool::SpoolError;
use nkpath_agent::service::spool_writer::{ResultStore, SpoolWriter};
use nkpath_proto::{Protocol, ResultRecord, TraceResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const JOB_ENV: &str = "NKPATH_TIMESTAMP_TEST_JOB";
const OUT_ENV: &str = "NKPATH_TIMESTAMP_TEST_OUT";

/// How far an RTT may be from the capture's.
const TOLERANCE: Duration = Duration::from_millis(1);

#[derive(Debug, Serialize, Deserialize)]
struct Job {
    targets: Vec<Ipv4Addr>,
    write_delay_ms: u64,
    queue: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    traces: Vec<TraceResult>,
    /// Time the probing thread spent blocked handing results to the writer.
    stalled_ms: u64,
}

/// Not a test: the code that runs inside a namespace, started by the test below.
#[test]
#[ignore = "helper: the tests of this file run it inside a testbed namespace"]
fn in_namespace() {
    let Ok(job) = std::env::var(JOB_ENV) else {
        return;
    };
    let out = std::env::var(OUT_ENV).expect("output path");
    let job: Job = serde_json::from_str(&job).expect("job");
    let outcome = run_job(&job);
    fs::write(out, serde_json::to_vec(&outcome).unwrap()).unwrap();
}

/// A spool on a very slow disk.
struct SlowStore {
    delay: Duration,
    traces: Mutex<Vec<TraceResult>>,
}

impl ResultStore for SlowStore {
    fn put(&self, record: &ResultRecord) -> Result<(), SpoolError> {
        std::thread::sleep(self.delay);
        if let ResultRecord::Trace(t) = record {
            self.traces.lock().unwrap().push(t.clone());
        }
        Ok(())
    }
}

fn run_job(job: &Job) -> Outcome {
    // The agent's order: raw sockets, then a single-threaded runtime.
    let sockets = RawSockets::open().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(SlowStore {
        delay: Duration::from_millis(job.write_delay_ms),
        traces: Mutex::new(Vec::new()),
    });
    let writer = SpoolWriter::start(Arc::clone(&store), job.queue).unwrap();
    let mut stalled = Duration::ZERO;
    rt.block_on(async {
        let sockets = Arc::new(sockets.into_async(Allowlist::default()).unwrap());
        let cfg = EngineConfig {
            protocol: Protocol::Icmp,
            dst_port: engine::DEFAULT_UDP_PORT,
            settings: TraceSettings::SURVEY,
            rates: Rates::new(MAX_PPS, MAX_PPS).unwrap(),
            max_in_flight: engine::DEFAULT_MAX_IN_FLIGHT,
            stop_set: false,
            identity: AgentIdentity {
                agent_id: "test".into(),
                agent_version: "0".into(),
            },
            round_id: Uuid::new_v4(),
            flow: FlowChoice::default(),
        };
        engine::run(sockets, &job.targets, &cfg, |r| {
            let started = Instant::now();
            writer.put(ResultRecord::Trace(r)).unwrap();
            stalled += started.elapsed();
        })
        .await
        .unwrap();
    });
    drop(writer);
    let traces = std::mem::take(&mut *store.traces.lock().unwrap());
    Outcome {
        traces,
        stalled_ms: stalled.as_millis() as u64,
    }
}

#[test]
fn rtts_stay_within_a_millisecond_of_the_wire_while_the_spool_is_slow() {
    let Some(tb) = common::shared_testbed(&["tcpdump"]) else {
        return;
    };
    let vp = "devp";
    let _lock = vp_lock(vp);
    let (vp_address, iface) = vp_interface(tb, vp);
    let targets: Vec<Ipv4Addr> = tb
        .manifest()
        .target
        .answering
        .iter()
        .flat_map(|part| part.hosts().take(32))
        .collect();
    let job = Job {
        targets: targets.clone(),
        write_delay_ms: 100,
        queue: 1,
    };
    let capture = Capture::start(tb, vp, &iface, "inout");
    let outcome: Outcome =
        common::run_in_namespace(tb, vp, "timestamp-test", (JOB_ENV, OUT_ENV), &job);
    let captured = capture.stop();
    assert_eq!(captured.dropped_by_kernel, 0, "tcpdump missed packets");
    assert_eq!(outcome.traces.len(), targets.len(), "a result per target");
    // The premise: the probing thread really was held up by the spool.
    assert!(
        outcome.stalled_ms >= 1000,
        "the probing thread stalled only {} ms",
        outcome.stalled_ms
    );

    // Each probe on the wire by (target, TTL) (one attempt per TTL), and the
    // first answer to each echo request.
    let mut probes: HashMap<(Ipv4Addr, u8), (EchoKey, Duration)> = HashMap::new();
    let mut answers: HashMap<EchoKey, Duration> = HashMap::new();
    for p in &captured.packets {
        let Some(key) = p.echo else { continue };
        if p.src == vp_address {
            probes.insert((p.dst, p.ttl), (key, p.at));
        } else if p.dst == vp_address {
            answers.entry(key).or_insert(p.at);
        }
    }
    let mut compared = 0;
    let mut off_by: Vec<(Duration, String)> = Vec::new();
    for trace in &outcome.traces {
        for hop in &trace.hops {
            for probe in &hop.probes {
                let Some(reply) = &probe.reply else { continue };
                let (key, sent) = probes[&(trace.target, hop.ttl)];
                let answered = answers
                    .get(&key)
                    .unwrap_or_else(|| panic!("no answer to {key:?} captured:\n{}", render(trace)));
                let wire = answered.saturating_sub(sent);
                let reported = Duration::from_micros(u64::from(reply.rtt_us));
                let what = format!(
                    "{} TTL {}: RTT {reported:?}, on the wire {wire:?}",
                    trace.target, hop.ttl
                );
                off_by.push((wire.abs_diff(reported), what));
                compared += 1;
            }
        }
    }
    off_by.sort();
    let worst = off_by.last().map_or(Duration::ZERO, |(off, _)| *off);
    let beyond: Vec<&String> = off_by
        .iter()
        .filter(|(off, _)| *off > TOLERANCE)
        .map(|(_, what)| what)
        .collect();
    assert!(
        beyond.is_empty(),
        "{} of {compared} RTTs off by more than {TOLERANCE:?} (worst {worst:?}); the probing \
         thread stalled {} ms on the spool:\n{beyond:#?}",
        beyond.len(),
        outcome.stalled_ms
    );
    assert!(
        compared >= targets.len() * 2,
        "only {compared} replies compared"
    );
    eprintln!(
        "{compared} RTTs within {worst:?} of the capture; the probing thread stalled {} ms on the spool",
        outcome.stalled_ms
    );
}
