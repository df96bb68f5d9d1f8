//! Fleet scheduling in the emulated Internet: the collector (`serve`, scheduling on,
//! 1-minute rounds) shares the tracing among real agents (`nkpath-agent run`, 1-minute
//! rounds, as the service runs them). Three agents, one per vantage point, then three more
//! (a second agent in each vantage point's AS): the probes that reach the NK border per
//! /24 and round, counted in packet captures on the border's inbound interfaces, stay the
//! same, and every vantage AS still traces every /24 in every round.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::collector::{Collector, chown_nobody};
use common::{Capture, agent_command, shared_testbed, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nkpath_testbed::Testbed;
use rusqlite::{Connection, OpenFlags};

/// The collector's round and the agents' interval.
const ROUND_SECS: u64 = 60;

/// Fleet-wide cap: 5 probes/s per /24, 300 per round (three ASes' traces fit).
const CAP_PPS: &str = "5";

/// Rounds measured with three agents, then with six: two with six, so that each AS's
/// pair of agents has to take turns; one with three (the test waits out every round).
const PHASE1_ROUNDS: u64 = 1;
const PHASE2_ROUNDS: u64 = 2;

/// Most a phase's probes per /24 and round may differ from the first phase's: the paths
/// are the same, only the traced addresses of a /24 without a known live host rotate.
/// Without scheduling, six agents would send twice what three send.
const TOLERANCE: f64 = 0.25;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn round_now() -> u64 {
    now_secs() / ROUND_SECS
}

/// Sleeps until `secs` seconds into round `round`.
fn sleep_until_round(round: u64, secs: u64) {
    let at = round * ROUND_SECS + secs;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    if let Some(wait) = Duration::from_secs(at).checked_sub(now) {
        std::thread::sleep(wait);
    }
}

impl Collector {
    fn query<T: rusqlite::types::FromSql>(&self, sql: &str) -> Vec<(String, T)> {
        let conn = Connection::open_with_flags(&self.db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the collector's database");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }
}

/// An agent running `nkpath-agent run` in its vantage point until dropped.
struct Agent {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(tb: &Testbed, work: &Path, collector: &Collector, name: &str, vp: &str) -> Agent {
        Agent::start_every(tb, work, collector, name, vp, "1m")
    }

    /// An agent whose rounds are `interval` apart.
    fn start_every(
        tb: &Testbed,
        work: &Path,
        collector: &Collector,
        name: &str,
        vp: &str,
        interval: &str,
    ) -> Agent {
        let token = collector.add_agent(tb, name);
        let dir = work.join(name);
        fs::create_dir(&dir).unwrap();
        chown_nobody(&dir);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let token_file = dir.join("token");
        fs::write(&token_file, format!("{token}\n")).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        chown_nobody(&token_file);
        let dns = &tb.manifest().dns;
        // Its own targets (its first round, before any assignment): one host per /24.
        let config = format!(
            r#"agent_id = "{name}"
user = "nobody"
allowlist = ["175.45.176.0/22"]
targets = ["175.45.176.1/32", "175.45.177.1/32", "175.45.178.1/32", "175.45.179.1/32"]
protocol = "icmp"

[collector]
url = "http://{listen}"
token_file = "token"

[schedule]
interval = "{interval}"
jitter = 0.0

[probing]
pps = 200
per_prefix_pps = 100
timeout = "1s"

[liveness]
pings = 1
timeout = "1s"

[dns]
resolver = "{dns_addr}:{dns_port}"

[spool]
path = "{spool}"

[upload]
batch_size = 100
max_backoff = "2s"
interval = "1s"
"#,
            listen = collector.listen,
            dns_addr = dns.address,
            dns_port = dns.port,
            spool = dir.join("spool.db").display(),
        );
        let config_path = dir.join("agent.toml");
        fs::write(&config_path, config).unwrap();
        chown_nobody(&config_path);
        let log = work.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = agent_command(
            tb,
            vp,
            &["-v", "run", "--config", config_path.to_str().unwrap()],
        )
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start nkpath-agent run");
        Agent {
            name: name.to_owned(),
            child,
            log,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// Probes reaching the border per (round, /24, source), from the captures.
type Counts = BTreeMap<(u64, Ipv4Addr, Ipv4Addr), u64>;

fn count(packets: &[common::pcap::Captured], block: ipnet::Ipv4Net) -> Counts {
    let mut out = Counts::new();
    for p in packets.iter().filter(|p| block.contains(&p.dst)) {
        let round = p.at.as_secs() / ROUND_SECS;
        let net = Ipv4Addr::from(u32::from(p.dst) & 0xffff_ff00);
        *out.entry((round, net, p.src)).or_default() += 1;
    }
    out
}

/// Waits until every agent named has a booking (its first upload was answered).
fn wait_for_bookings(collector: &Collector, agents: &[&Agent]) {
    let booked = wait_for(Duration::from_secs(90), || {
        let rows: Vec<(String, i64)> =
            collector.query("SELECT agent, count(*) FROM fleet_bookings GROUP BY agent");
        let names: BTreeSet<&str> = rows.iter().map(|(a, _)| a.as_str()).collect();
        agents
            .iter()
            .all(|a| names.contains(a.name.as_str()))
            .then_some(())
    });
    if booked.is_none() {
        let logs: Vec<String> = agents
            .iter()
            .map(|a| {
                format!(
                    "--- {}:\n{}",
                    a.name,
                    fs::read_to_string(&a.log).unwrap_or_default()
                )
            })
            .collect();
        panic!(
            "not every agent got an assignment\n{}\n--- collector:\n{}",
            logs.join("\n"),
            fs::read_to_string(&collector.log).unwrap_or_default()
        );
    }
}

/// Loads BGP data from the route collector: it maps each agent's address to its AS.
fn load_bgp(tb: &Testbed, collector: &Collector) {
    let mut files: Vec<PathBuf> = tb
        .rib_dumps()
        .unwrap()
        .iter()
        .map(|f| tb.mrt_snapshot(f).unwrap())
        .filter(|f| fs::metadata(f).is_ok_and(|m| m.len() > 0))
        .collect();
    files.sort();
    let mut load = vec!["bgp", "load", "--collector", "rc"];
    load.extend(files.iter().map(|f| f.to_str().unwrap()));
    collector.cli(tb, &load);
}

#[test]
fn adding_agents_keeps_the_probes_per_24_and_every_as_covered() {
    let Some(tb) = shared_testbed(&["tcpdump"]) else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("nkpath-fleet")
        .tempdir()
        .unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let collector = Collector::new(tb, work.path(), 8461);
    load_bgp(tb, &collector);
    let mut collector = collector;
    collector.cli(
        tb,
        &[
            "fleet",
            "--schedule",
            "on",
            "--round",
            "1m",
            "--cap",
            CAP_PPS,
        ],
    );
    collector.start(tb);

    let block = tb.manifest().target.prefix;
    let vps: BTreeMap<Ipv4Addr, (String, u32)> = tb
        .manifest()
        .vantage_points
        .values()
        .map(|v| (v.address, (v.node.clone(), v.asn)))
        .collect();
    let captures: Vec<Capture> = ["to-cu", "to-ttk", "to-sat"]
        .iter()
        .map(|iface| Capture::start(tb, "nkbr", iface, "in"))
        .collect();

    // Phase 1: one agent per vantage point, started just after a round begins so that
    // each round's work falls inside its round.
    let start = round_now() + 1;
    sleep_until_round(start, 2);
    let first: Vec<Agent> = vps
        .values()
        .map(|(vp, _)| Agent::start(tb, work.path(), &collector, &format!("{vp}-1"), vp))
        .collect();
    wait_for_bookings(&collector, &first.iter().collect::<Vec<_>>());
    let phase1 = (start + 1..=start + PHASE1_ROUNDS).collect::<Vec<_>>();

    // Phase 2: a second agent in each vantage point; their first (unscheduled) round is
    // in the round they start in, which is not measured.
    let second_start = start + PHASE1_ROUNDS + 1;
    sleep_until_round(second_start, 2);
    let second: Vec<Agent> = vps
        .values()
        .map(|(vp, _)| Agent::start(tb, work.path(), &collector, &format!("{vp}-2"), vp))
        .collect();
    let all: Vec<&Agent> = first.iter().chain(&second).collect();
    wait_for_bookings(&collector, &all);
    let phase2 = (second_start + 1..=second_start + PHASE2_ROUNDS).collect::<Vec<_>>();
    sleep_until_round(second_start + PHASE2_ROUNDS + 1, 1);

    drop(second);
    drop(first);
    let packets: Vec<common::pcap::Captured> = captures
        .into_iter()
        .flat_map(|c| c.stop().packets)
        .collect();
    let counts = count(&packets, block);
    let nets: Vec<Ipv4Addr> = block.subnets(24).unwrap().map(|n| n.network()).collect();

    // Per phase: probes per /24 and round (mean), and the vantage ASes seen per round.
    let per_net = |rounds: &[u64]| -> BTreeMap<Ipv4Addr, f64> {
        nets.iter()
            .map(|net| {
                let total: u64 = counts
                    .iter()
                    .filter(|((r, n, _), _)| rounds.contains(r) && n == net)
                    .map(|(_, c)| c)
                    .sum();
                (*net, total as f64 / rounds.len() as f64)
            })
            .collect()
    };
    let (p1, p2) = (per_net(&phase1), per_net(&phase2));
    println!(
        "probes reaching the NK border per /24 and round \
         (mean of {PHASE1_ROUNDS} round(s) with 3 agents, {PHASE2_ROUNDS} with 6):"
    );
    for net in &nets {
        println!(
            "  {net}/24: 3 agents {:.1}, 6 agents {:.1}",
            p1[net], p2[net]
        );
    }
    for ((round, net, src), n) in &counts {
        println!("  round {round} {net}/24 from {src}: {n} probes");
    }
    for round in phase1.iter().chain(&phase2) {
        for net in &nets {
            let ases: BTreeSet<u32> = counts
                .keys()
                .filter(|(r, n, _)| r == round && n == net)
                .filter_map(|(_, _, src)| vps.get(src).map(|(_, asn)| *asn))
                .collect();
            let want: BTreeSet<u32> = vps.values().map(|(_, asn)| *asn).collect();
            assert_eq!(
                ases, want,
                "round {round}, {net}/24: vantage ASes that traced it"
            );
        }
    }
    for net in &nets {
        assert!(p1[net] > 0.0, "{net}: no probe reached the border");
        let change = (p2[net] - p1[net]).abs() / p1[net];
        assert!(
            change <= TOLERANCE,
            "{net}/24: {:.1} probes per round with 3 agents, {:.1} with 6",
            p1[net],
            p2[net]
        );
    }
    // The agents of one AS took turns: each second agent worked a measured round.
    let booked: Vec<(String, i64)> = collector.query(&format!(
        "SELECT agent, count(DISTINCT round) FROM fleet_bookings
         WHERE round BETWEEN {} AND {} GROUP BY agent",
        phase2[0],
        phase2[phase2.len() - 1]
    ));
    let workers: BTreeSet<&str> = booked.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(workers.len(), 6, "agents booked in phase 2: {booked:?}");
}

/// The cap of the default-collector test: as above, 300 probes per /24 and round, which
/// fits a trace from each of the three ASes at the agents' first, unmeasured, cost.
const DEFAULT_TEST_CAP_PPS: f64 = 5.0;

/// Rounds measured once every agent has its first booking: three, one whole cycle of the
/// slowest (3-minute) agents, so that every interval's turn falls inside the window.
const MEASURED_ROUNDS: u64 = 3;

#[test]
fn a_new_collector_keeps_agents_of_different_intervals_under_the_cap_unasked() {
    let Some(tb) = shared_testbed(&["tcpdump"]) else {
        return;
    };
    let work = tempfile::Builder::new()
        .prefix("nkpath-fleet-default")
        .tempdir()
        .unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let collector = Collector::new(tb, work.path(), 8462);
    load_bgp(tb, &collector);
    // A fresh database: scheduling is never switched on here. Only the round and the cap
    // are set, so that the test takes minutes rather than hours.
    let cap = DEFAULT_TEST_CAP_PPS.to_string();
    collector.cli(tb, &["fleet", "--round", "1m", "--cap", &cap]);
    let mut collector = collector;
    collector.start(tb);

    let block = tb.manifest().target.prefix;
    let vps: Vec<String> = tb
        .manifest()
        .vantage_points
        .values()
        .map(|v| v.node.clone())
        .collect();
    let captures: Vec<Capture> = ["to-cu", "to-ttk", "to-sat"]
        .iter()
        .map(|iface| Capture::start(tb, "nkbr", iface, "in"))
        .collect();

    // Two agents per vantage point, of intervals 1, 2 and 3 minutes.
    let intervals = [("1m", 1u64), ("2m", 2), ("3m", 3)];
    let start = round_now() + 1;
    sleep_until_round(start, 2);
    let mut agents = Vec::new();
    let mut every = BTreeMap::new();
    for (i, vp) in vps.iter().enumerate() {
        for k in 0..2 {
            let (text, rounds) = intervals[(i + k) % intervals.len()];
            let name = format!("{vp}-{text}");
            every.insert(name.clone(), rounds);
            agents.push(Agent::start_every(
                tb,
                work.path(),
                &collector,
                &name,
                vp,
                text,
            ));
        }
    }
    wait_for_bookings(&collector, &agents.iter().collect::<Vec<_>>());
    let first = round_now() + 1;
    let measured: Vec<u64> = (first..first + MEASURED_ROUNDS).collect();
    sleep_until_round(first + MEASURED_ROUNDS, 1);
    drop(agents);
    let packets: Vec<common::pcap::Captured> = captures
        .into_iter()
        .flat_map(|c| c.stop().packets)
        .collect();
    let counts = count(&packets, block);
    let per_round = |round: u64, net: Ipv4Addr| -> u64 {
        counts
            .iter()
            .filter(|((r, n, _), _)| *r == round && *n == net)
            .map(|(_, c)| c)
            .sum()
    };
    let nets: Vec<Ipv4Addr> = block.subnets(24).unwrap().map(|n| n.network()).collect();
    for ((round, net, src), n) in &counts {
        println!("  round {round} {net}/24 from {src}: {n} probes");
    }
    println!(
        "first round (unscheduled, all six agents): {:?} probes per /24",
        nets.iter()
            .map(|&n| per_round(start, n))
            .collect::<Vec<_>>()
    );
    for &net in &nets {
        let total: u64 = measured.iter().map(|&r| per_round(r, net)).sum();
        let pps = total as f64 / (MEASURED_ROUNDS * ROUND_SECS) as f64;
        println!("{net}/24: {total} probes in {MEASURED_ROUNDS} rounds ({pps:.2} probe/s)");
        assert!(total > 0, "{net}/24: no probe reached the border");
        assert!(
            pps <= DEFAULT_TEST_CAP_PPS,
            "{net}/24: {pps:.2} probe/s at the border, over the cap of {DEFAULT_TEST_CAP_PPS}"
        );
    }
    // Scheduled, the two agents of a vantage point take turns: each vantage traced each /24
    // at most once per round (unscheduled, both trace whenever their intervals coincide).
    let done: Vec<(String, String)> = collector.query(&format!(
        "SELECT minute || ' ' || net, group_concat(agent || ':' || traces) FROM fleet_done
         WHERE traces > 0 AND minute BETWEEN {} AND {} GROUP BY minute, net",
        measured[0],
        measured[measured.len() - 1]
    ));
    assert!(!done.is_empty(), "no trace counted in the measured rounds");
    for (slot, agents) in &done {
        let mut per_vp: BTreeMap<&str, u64> = BTreeMap::new();
        for entry in agents.split(',') {
            let (agent, traces) = entry.rsplit_once(':').unwrap();
            let vp = agent.rsplit_once('-').map_or(agent, |(vp, _)| vp);
            *per_vp.entry(vp).or_default() += traces.parse::<u64>().unwrap();
        }
        for (vp, traces) in per_vp {
            assert!(
                traces <= 1,
                "minute and /24 {slot}: {vp}'s agents traced it {traces} times ({agents})"
            );
        }
    }
    // Each agent's booked rounds follow its own interval.
    let booked: Vec<(String, String)> = collector.query(
        "SELECT agent, group_concat(round) FROM
             (SELECT DISTINCT agent, round FROM fleet_bookings ORDER BY agent, round)
         GROUP BY agent",
    );
    assert_eq!(booked.len(), every.len(), "agents booked: {booked:?}");
    for (agent, rounds) in &booked {
        let rounds: Vec<u64> = rounds.split(',').map(|r| r.parse().unwrap()).collect();
        for pair in rounds.windows(2) {
            assert!(
                pair[1] - pair[0] >= every[agent],
                "{agent} (every {} round(s)) booked in rounds {rounds:?}",
                every[agent]
            );
        }
    }
    // The setting was never written: scheduling is on by default.
    let setting: Vec<(String, String)> =
        collector.query("SELECT key, value FROM settings WHERE key = 'fleet_schedule'");
    assert!(setting.is_empty(), "{setting:?}");
}
