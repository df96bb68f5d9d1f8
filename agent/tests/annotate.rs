//! Hop annotation in the emulated Internet: PTR names from the testbed's DNS
//! server, for the hops of a real trace (and no origin ASes: the agent leaves
//! those to the collector).
//!
//! The trace and the lookups run inside a vantage point's namespace: this test
//! binary starts itself there (`ip netns exec NS setpriv ... <this binary> --exact
//! in_namespace --ignored`), as an unprivileged user with CAP_NET_RAW only, with
//! the job in an environment variable; the `in_namespace` helper writes the
//! outcome as JSON. Nothing is sent from the root namespace.
//!
//! Expectations come from the manifest: each interface's `dns_name`.
//! Read-only: the testbed shared by this binary.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{render, vp_lock};
use nkpath_agent::probing::annotate::{AnnotateSummary, Annotator, AnnotatorConfig};
use nkpath_agent::probing::engine::{self, AgentIdentity, EngineConfig, FlowChoice};
use nkpath_agent::probing::pacing::Rates;
use nkpath_agent::probing::sockets::RawSockets;
use nkpath_agent::probing::targets::Allowlist;
use nkpath_agent::probing::trace::TraceSettings;
use nkpath_proto::{AnnotationSource, Protocol, StopReason, TraceResult};
use nkpath_testbed::Testbed;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// Environment variables that carry the job into the namespace and the outcome back.
const JOB_ENV: &str = "NKPATH_ANNOTATE_TEST_JOB";
const OUT_ENV: &str = "NKPATH_ANNOTATE_TEST_OUT";

/// Trace `target`, then annotate the trace once per resolver, each with a fresh annotator.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    target: Ipv4Addr,
    resolvers: Vec<SocketAddr>,
    query_timeout_ms: u64,
    wait_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Annotated {
    resolver: SocketAddr,
    trace: TraceResult,
    addresses: usize,
    resolved: usize,
    elapsed_ms: u64,
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
    let outcome = run_job(&job);
    fs::write(out, serde_json::to_vec(&outcome).unwrap()).unwrap();
}

fn run_job(job: &Job) -> Vec<Annotated> {
    let sockets = RawSockets::open().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sockets = Arc::new(sockets.into_async(Allowlist::default()).unwrap());
        let cfg = EngineConfig {
            protocol: Protocol::Icmp,
            dst_port: engine::DEFAULT_UDP_PORT,
            settings: TraceSettings::SURVEY,
            rates: Rates::default(),
            max_in_flight: engine::DEFAULT_MAX_IN_FLIGHT,
            stop_set: false,
            identity: AgentIdentity {
                agent_id: "test".into(),
                agent_version: "0".into(),
            },
            round_id: Uuid::new_v4(),
            flow: FlowChoice::default(),
        };
        let mut traces = Vec::new();
        engine::run(sockets, &[job.target], &cfg, |r| traces.push(r))
            .await
            .unwrap();
        let trace = traces.pop().expect("one trace");
        let mut out = Vec::new();
        for &resolver in &job.resolvers {
            let annotator = Annotator::new(&AnnotatorConfig {
                resolver: Some(resolver),
                query_timeout: Duration::from_millis(job.query_timeout_ms),
                ..AnnotatorConfig::default()
            })
            .unwrap();
            let mut annotated = trace.clone();
            let started = Instant::now();
            let AnnotateSummary {
                addresses,
                resolved,
            } = annotator
                .annotate(&mut annotated, Duration::from_millis(job.wait_ms))
                .await;
            out.push(Annotated {
                resolver,
                trace: annotated,
                addresses,
                resolved,
                elapsed_ms: started.elapsed().as_millis() as u64,
            });
        }
        out
    })
}

/// Runs `job` in `node` as nobody with CAP_NET_RAW only, and returns its outcome.
fn run_in(tb: &Testbed, node: &str, job: &Job) -> Vec<Annotated> {
    common::run_in_namespace(tb, node, "annotate-test", (JOB_ENV, OUT_ENV), job)
}

/// Every address that answered in the trace, each once, in hop order.
fn hop_addresses(trace: &TraceResult) -> Vec<Ipv4Addr> {
    let mut all: Vec<Ipv4Addr> = Vec::new();
    for a in trace.hops.iter().flat_map(nkpath_proto::Hop::addresses) {
        if !all.contains(&a) {
            all.push(a);
        }
    }
    all
}

#[test]
fn router_names_come_back_from_the_testbed_dns_and_no_origin_ases() {
    let Some(tb) = Testbed::shared() else { return };
    let manifest = tb.manifest();
    let dns = SocketAddr::from((manifest.dns.address, manifest.dns.port));
    // devp's paths cross Hetzner, Arelion, TransTeleCom and the NK border: five ASes,
    // and link addresses whose block belongs to the other end's AS.
    let vp = "devp";
    let _lock = vp_lock(vp);
    let target = manifest.target.answering[0].hosts().next().unwrap();
    let job = Job {
        target,
        resolvers: vec![dns],
        query_timeout_ms: 2000,
        wait_ms: 10_000,
    };
    let run = run_in(tb, vp, &job).pop().unwrap();
    let trace = &run.trace;
    let what = render(trace);
    assert_eq!(trace.stop_reason, StopReason::Reached, "{what}");

    let addresses = hop_addresses(trace);
    assert!(addresses.len() >= 5, "{what}");
    assert_eq!(
        (run.addresses, run.resolved),
        (addresses.len(), addresses.len()),
        "{what}"
    );
    let mut named = 0;
    for &a in &addresses {
        let of = |source| -> Vec<_> {
            trace
                .annotations
                .iter()
                .filter(|n| n.address == a && n.source == source)
                .map(|n| (n.name.as_deref(), n.asn))
                .collect()
        };
        let name = manifest
            .interface_of_address(a)
            .map(|(_, i)| i.dns_name.trim_end_matches('.'));
        let expected_ptr: Vec<_> = name.map(|n| (Some(n), None)).into_iter().collect();
        assert_eq!(
            of(AnnotationSource::Ptr),
            expected_ptr,
            "PTR of {a}\n{what}"
        );
        named += expected_ptr.len();
        // The testbed's DNS answers Team Cymru's zone too; the agent does not ask it.
        assert!(
            of(AnnotationSource::Cymru).is_empty(),
            "origin AS of {a} looked up\n{what}"
        );
    }
    assert!(
        named >= 4,
        "too few router interfaces on the path to check names\n{what}"
    );
    let strays: Vec<_> = trace
        .annotations
        .iter()
        .filter(|n| !addresses.contains(&n.address))
        .collect();
    assert!(
        strays.is_empty(),
        "annotations of addresses not in the trace: {strays:?}"
    );
}

#[test]
fn a_dead_resolver_costs_at_most_the_wait() {
    let Some(tb) = Testbed::shared() else { return };
    let manifest = tb.manifest();
    // A blackholed address (never answers) and a host with nothing on port 53 (the
    // kernel refuses): each query would take up to 5 s; annotate waits 1 s.
    let silent = manifest.target.silent[0].hosts().nth(10).unwrap();
    let refused = manifest.collector.address;
    let vp = "jpvp";
    let _lock = vp_lock(vp);
    let wait_ms = 1000;
    let job = Job {
        target: manifest.target.answering[0].hosts().next().unwrap(),
        resolvers: vec![
            SocketAddr::from((silent, 53)),
            SocketAddr::from((refused, 53)),
        ],
        query_timeout_ms: 5000,
        wait_ms,
    };
    let runs = run_in(tb, vp, &job);
    assert_eq!(runs.len(), 2);
    for run in &runs {
        let what = format!("resolver {}: {run:?}", run.resolver);
        assert_eq!(run.trace.stop_reason, StopReason::Reached, "{what}");
        assert!(run.addresses >= 5, "{what}");
        assert!(run.trace.annotations.is_empty(), "{what}");
        // Bounded by the wait, not by the 5 s query timeout (with slack for a loaded machine).
        assert!(run.elapsed_ms < wait_ms + 2000, "{what}");
    }
    // The silent one really made annotate wait, with nothing resolved.
    let silent_run = &runs[0];
    assert_eq!(silent_run.resolved, 0, "{silent_run:?}");
    assert!(silent_run.elapsed_ms >= wait_ms, "{silent_run:?}");
}
