//! The agent service end to end with the real collector, in the emulated Internet.
//!
//! The collector (`nkpath-collector serve`) runs in the testbed's collector host
//! (`coll`); agents run `nkpath-agent run` in the vantage points as the service runs
//! them (nobody, CAP_NET_RAW only, through setpriv), as `scripts/demo.sh` does. What
//! the agents measured (their `status --json`: the last round's traces and pings) is
//! compared one for one with what the collector's database holds, also when the
//! collector or an agent is killed with SIGKILL half-way through the uploads, and
//! when the spool is full. Names and ASNs come from the testbed's DNS server and are
//! checked against the manifest. Nothing is sent from the root namespace.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::collector::{Collector, chown_nobody};
use common::{agent_command, run_agent, shared_testbed, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nkpath_agent::service::spool::RoundSummary;
use nkpath_testbed::{Options, Testbed, require_tools};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use uuid::Uuid;

/// The vantage points, one agent in each.
const VPS: [&str; 3] = ["devp", "jpvp", "usvp"];

/// What every agent may probe.
const ALLOWLIST: &str = "175.45.176.0/22";

/// What every agent probes each round: 32 addresses, half behind each NK upstream,
/// so that a round takes seconds.
const TARGETS: [&str; 2] = ["175.45.176.0/28", "175.45.177.0/28"];

/// Addresses in [`TARGETS`]: one ping result each per round (`liveness.pings = 1`).
const TARGET_ADDRESSES: u64 = 32;

/// How long an agent's `run --rounds N` may take: its rounds (seconds each) and the
/// upload of their results.
const AGENT_EXIT_TIMEOUT: Duration = Duration::from_secs(150);

// ---- The collector ---------------------------------------------------------------

/// One result row of the collector's database.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    result_id: Uuid,
    agent_id: String,
    round_id: Uuid,
    kind: String,
}

impl Collector {
    /// Every result row of the database, read through a read-only connection.
    fn rows(&self) -> Vec<Row> {
        let conn = Connection::open_with_flags(
            &self.db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("open the collector's database read-only");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let mut stmt = conn
            .prepare("SELECT result_id, agent_id, round_id, kind FROM results")
            .unwrap();
        stmt.query_map([], |r| {
            let uuid = |i: usize| -> rusqlite::Result<Uuid> {
                let text: String = r.get(i)?;
                Ok(text
                    .parse()
                    .unwrap_or_else(|e| panic!("bad uuid {text}: {e}")))
            };
            Ok(Row {
                result_id: uuid(0)?,
                agent_id: r.get(1)?,
                round_id: uuid(2)?,
                kind: r.get(3)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    }

    /// The result ids stored for one agent.
    fn ids_of(&self, agent: &str) -> BTreeSet<Uuid> {
        self.rows()
            .into_iter()
            .filter(|r| r.agent_id == agent)
            .map(|r| r.result_id)
            .collect()
    }
}

// ---- Agents --------------------------------------------------------------------

/// A scratch directory that nobody may traverse (the agents' directories are inside).
fn work_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("nkpath-service")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The settings of one agent's configuration that the tests vary.
#[derive(Debug, Clone)]
struct AgentSpec {
    name: String,
    vp: &'static str,
    url: String,
    batch_size: usize,
    max_backoff: &'static str,
    upload_timeout: &'static str,
    max_results: u64,
}

impl AgentSpec {
    fn new(name: &str, vp: &'static str, url: &str) -> AgentSpec {
        AgentSpec {
            name: name.to_owned(),
            vp,
            url: url.to_owned(),
            batch_size: 8,
            max_backoff: "2s",
            upload_timeout: "10s",
            max_results: 200_000,
        }
    }
}

/// An agent's directory (owned by nobody, like `StateDirectory=`): configuration,
/// token file, spool and log.
struct Agent {
    name: String,
    vp: &'static str,
    config: PathBuf,
    spool: PathBuf,
    log: PathBuf,
}

/// The demo's configuration (scripts/demo.sh) with a small target set, fast rates and
/// the spec's upload and spool settings.
fn config_text(spec: &AgentSpec, dns: SocketAddr, spool: &Path) -> String {
    let targets = TARGETS.map(|t| format!("{t:?}")).join(", ");
    format!(
        r#"agent_id = "{name}"
user = "nobody"
allowlist = ["{ALLOWLIST}"]
targets = [{targets}]
protocol = "icmp"

[collector]
url = "{url}"
token_file = "token"

[schedule]
interval = "1m"
jitter = 0.0

[probing]
pps = 200
per_prefix_pps = 100
timeout = "1s"

[liveness]
pings = 1
timeout = "1s"

[dns]
resolver = "{dns}"

[spool]
path = "{spool}"
max_results = {max_results}

[upload]
batch_size = {batch_size}
max_backoff = "{max_backoff}"
timeout = "{upload_timeout}"
interval = "1s"
"#,
        name = spec.name,
        url = spec.url,
        spool = spool.display(),
        max_results = spec.max_results,
        batch_size = spec.batch_size,
        max_backoff = spec.max_backoff,
        upload_timeout = spec.upload_timeout,
    )
}

impl Agent {
    /// Writes the agent's directory under `work`.
    fn setup(tb: &Testbed, work: &Path, spec: &AgentSpec, token: &str) -> Agent {
        let dir = work.join(&spec.name);
        fs::create_dir(&dir).unwrap();
        chown_nobody(&dir);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let dns = &tb.manifest().dns;
        let dns = SocketAddr::new(dns.address.into(), dns.port);
        let spool = dir.join("spool.db");
        let config = dir.join("agent.toml");
        let token_file = dir.join("token");
        fs::write(&token_file, format!("{token}\n")).unwrap();
        fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
        chown_nobody(&token_file);
        fs::write(&config, config_text(spec, dns, &spool)).unwrap();
        chown_nobody(&config);
        Agent {
            name: spec.name.clone(),
            vp: spec.vp,
            config,
            spool,
            log: work.join(format!("{}.log", spec.name)),
        }
    }

    /// Starts `nkpath-agent -v run --config FILE [ARGS...]` in the agent's vantage
    /// point, as the service runs it; stdout and stderr go to its log.
    fn spawn(&self, tb: &Testbed, args: &[&str]) -> AgentRun {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let config = self.config.to_str().unwrap();
        let mut all = vec!["-v", "run", "--config", config];
        all.extend_from_slice(args);
        let child = agent_command(tb, self.vp, &all)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nkpath-agent run");
        AgentRun {
            child,
            name: self.name.clone(),
            log: self.log.clone(),
        }
    }

    /// `nkpath-agent status --json`, run as the agent's user in its vantage point
    /// (the spool belongs to nobody); `None` while there is no spool yet.
    fn try_status(&self, tb: &Testbed) -> Option<Status> {
        let config = self.config.to_str().unwrap();
        let out = agent_command(tb, self.vp, &["status", "--config", config, "--json"])
            .output()
            .expect("run nkpath-agent status");
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bad status JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        }))
    }

    fn status(&self, tb: &Testbed) -> Status {
        let config = self.config.to_str().unwrap();
        let out = run_agent(tb, self.vp, &["status", "--config", config, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The ids in the spool, read from a copy of its files (opening the spool itself as
    /// root could leave root-owned `-shm`/`-wal` files the agent cannot open).
    fn spooled_ids(&self, scratch: &Path) -> BTreeSet<Uuid> {
        let copy = scratch.join(format!("{}-spool-copy.db", self.name));
        for suffix in ["", "-wal"] {
            let from = PathBuf::from(format!("{}{suffix}", self.spool.display()));
            let to = PathBuf::from(format!("{}{suffix}", copy.display()));
            if from.exists() {
                fs::copy(&from, &to).unwrap();
            }
        }
        let conn = Connection::open(&copy).unwrap();
        let ids = conn
            .prepare("SELECT result_id FROM results")
            .unwrap()
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|id| id.unwrap().parse().unwrap())
            .collect();
        drop(conn);
        let _ = fs::remove_file(&copy);
        ids
    }
}

/// The part of `nkpath-agent status --json` the tests read.
#[derive(Debug, Deserialize)]
struct Status {
    spool_depth: u64,
    spool_full: bool,
    quarantined: u64,
    last_round: Option<RoundSummary>,
}

/// A running `nkpath-agent run`, killed if the test fails first.
struct AgentRun {
    child: Child,
    name: String,
    log: PathBuf,
}

impl AgentRun {
    fn log_text(&self) -> String {
        format!(
            "--- log of {}:\n{}",
            self.name,
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// Waits for the agent to exit; panics with its log if it takes longer than
    /// `timeout`.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = wait_for(timeout, || self.child.try_wait().unwrap());
        status.unwrap_or_else(|| {
            panic!(
                "agent {} still running after {timeout:?}\n{}",
                self.name,
                self.log_text()
            )
        })
    }

    fn wait_success(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "agent {} failed: {status}\n{}",
            self.name,
            self.log_text()
        );
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal the agent");
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// Registers one agent per spec with the collector and writes its directory.
fn enroll(tb: &Testbed, work: &Path, collector: &Collector, specs: &[AgentSpec]) -> Vec<Agent> {
    specs
        .iter()
        .map(|spec| {
            let token = collector.add_agent(tb, &spec.name);
            Agent::setup(tb, work, spec, &token)
        })
        .collect()
}

// ---- Checks ------------------------------------------------------------------------

/// The collector's database holds exactly what the agents produced: for each agent,
/// one row per result of its last round (traces and pings, by kind), all of that
/// round, none of another agent; every id once; each agent's spool empty. Returns the
/// agents' statuses.
fn assert_one_for_one(tb: &Testbed, agents: &[Agent], collector: &Collector) -> Vec<Status> {
    let rows = collector.rows();
    let ids: BTreeSet<Uuid> = rows.iter().map(|r| r.result_id).collect();
    assert_eq!(ids.len(), rows.len(), "a result id is stored twice");
    let names: BTreeSet<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    let strangers: Vec<&Row> = rows
        .iter()
        .filter(|r| !names.contains(r.agent_id.as_str()))
        .collect();
    assert!(
        strangers.is_empty(),
        "rows of unknown agents: {strangers:?}"
    );
    let mut statuses = Vec::new();
    for agent in agents {
        let status = agent.status(tb);
        let round = status
            .last_round
            .as_ref()
            .unwrap_or_else(|| panic!("{} ran no round: {status:?}", agent.name));
        assert_eq!(
            (status.spool_depth, status.quarantined),
            (0, 0),
            "{}: results left in the spool or quarantined: {status:?}",
            agent.name
        );
        assert_eq!(
            round.pings, TARGET_ADDRESSES,
            "{}: one ping result per target address",
            agent.name
        );
        assert!(round.traces > 0, "{}: no trace in {round:?}", agent.name);
        let mine: Vec<&Row> = rows.iter().filter(|r| r.agent_id == agent.name).collect();
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for row in &mine {
            *kinds.entry(row.kind.as_str()).or_default() += 1;
        }
        let expected: BTreeMap<&str, u64> =
            BTreeMap::from([("ping", round.pings), ("trace", round.traces)]);
        assert_eq!(
            kinds, expected,
            "{}: the collector's rows by kind against the agent's last round {round:?}",
            agent.name
        );
        let other_rounds: Vec<&&Row> = mine
            .iter()
            .filter(|r| r.round_id != round.round_id)
            .collect();
        assert!(
            other_rounds.is_empty(),
            "{}: rows of another round than {}: {other_rounds:?}",
            agent.name,
            round.round_id
        );
        statuses.push(status);
    }
    statuses
}

/// `Icmp: ... OutEchos` of a node's namespace (`/proc/net/snmp` read inside it).
fn out_echos(tb: &Testbed, node: &str) -> u64 {
    let snmp = tb.exec(node, &["cat", "/proc/net/snmp"]).unwrap();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp: "));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "OutEchos")
        .expect("OutEchos in /proc/net/snmp");
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

// ---- Tests ---------------------------------------------------------------------------

/// Three agents, one round each: the database holds every result they produced, once.
#[test]
fn three_agents_upload_exactly_what_they_measured() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let work = work_dir();
    let mut collector = Collector::new(tb, work.path(), 8441);
    let specs: Vec<AgentSpec> = VPS
        .iter()
        .map(|vp| AgentSpec::new(&format!("svc-all-{vp}"), vp, &collector.url()))
        .collect();
    let agents = enroll(tb, work.path(), &collector, &specs);
    collector.start(tb);
    let mut runs: Vec<AgentRun> = agents
        .iter()
        .map(|a| a.spawn(tb, &["--rounds", "1"]))
        .collect();
    for run in &mut runs {
        run.wait_success(AGENT_EXIT_TIMEOUT);
    }
    assert_one_for_one(tb, &agents, &collector);
}

/// The collector killed with SIGKILL while three agents upload, and restarted on the
/// same database and address: the agents back off, retry, and in the end the database
/// holds every result once.
#[test]
fn collector_killed_mid_upload_loses_and_duplicates_nothing() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let work = work_dir();
    let mut collector = Collector::new(tb, work.path(), 8442);
    let specs: Vec<AgentSpec> = VPS
        .iter()
        .map(|vp| AgentSpec::new(&format!("svc-crash-{vp}"), vp, &collector.url()))
        .collect();
    let agents = enroll(tb, work.path(), &collector, &specs);
    collector.start(tb);
    let mut runs: Vec<AgentRun> = agents
        .iter()
        .map(|a| a.spawn(tb, &["--rounds", "1"]))
        .collect();
    let first = wait_for(Duration::from_mins(1), || {
        Some(collector.rows().len()).filter(|&n| n > 0)
    });
    assert!(
        first.is_some(),
        "no result reached the collector\n{}",
        collector.log_text()
    );
    collector.kill9();
    let at_kill = collector.rows().len();
    // Down long enough for every agent's uploads to fail at least once.
    std::thread::sleep(Duration::from_secs(4));
    collector.start(tb);
    for run in &mut runs {
        run.wait_success(AGENT_EXIT_TIMEOUT);
    }
    assert_one_for_one(tb, &agents, &collector);
    let total = collector.rows().len();
    assert!(
        at_kill < total,
        "the collector was killed after every upload ({at_kill} of {total} stored): the test proved nothing"
    );
    // The uploaders did meet the dead collector, and backed off (their logs say so).
    let retried = runs
        .iter()
        .filter(|r| r.log_text().contains("cannot reach the collector"))
        .count();
    assert!(
        retried > 0,
        "no agent saw the collector down\n{}",
        runs.iter()
            .map(AgentRun::log_text)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An agent killed with SIGKILL in the middle of an upload, then restarted with
/// `--rounds 0` (upload what is spooled, probe nothing, exit): every result of its
/// round is stored once.
///
/// The kill falls at the worst moment, made certain with SIGSTOP: the collector is
/// frozen while the round ends, so that the spool fills and a batch goes out without an
/// answer; then the agent is frozen and the collector thawed: it stores that batch
/// (unless it had just before it froze) and answers into the frozen agent's socket;
/// then the agent is killed. That batch is stored and still spooled: the restarted
/// agent sends it again and the collector must not store it twice.
#[test]
fn agent_killed_mid_upload_loses_and_duplicates_nothing() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let work = work_dir();
    let mut collector = Collector::new(tb, work.path(), 8443);
    let mut spec = AgentSpec::new("svc-kill-devp", "devp", &collector.url());
    spec.batch_size = 4;
    // The frozen batch must not time out (and be sent again) before the kill.
    spec.upload_timeout = "2m";
    let agents = enroll(tb, work.path(), &collector, &[spec]);
    let agent = &agents[0];
    collector.start(tb);
    let mut run = agent.spawn(tb, &["--rounds", "1"]);
    let uploading = wait_for(Duration::from_mins(1), || {
        Some(collector.ids_of(&agent.name).len()).filter(|&n| n > 0)
    });
    assert!(
        uploading.is_some(),
        "nothing uploaded\n{}\n{}",
        run.log_text(),
        collector.log_text()
    );
    collector.signal(Signal::SIGSTOP);
    let round = wait_for(Duration::from_mins(1), || {
        agent.try_status(tb).and_then(|s| s.last_round)
    })
    .unwrap_or_else(|| panic!("the round did not end\n{}", run.log_text()));
    // Longer than the uploader's idle interval (1s): whatever it was doing, it has sent
    // a batch by now, which waits in the frozen collector's socket.
    std::thread::sleep(Duration::from_secs(2));
    run.signal(Signal::SIGSTOP);
    collector.signal(Signal::SIGCONT);
    // The thawed collector stores the batch (if it had not before it froze) and answers
    // into the frozen agent's socket: those results are now stored and still spooled.
    let overlap = wait_for(Duration::from_secs(20), || {
        let stored = collector.ids_of(&agent.name);
        let spooled = agent.spooled_ids(work.path());
        Some(stored.intersection(&spooled).count()).filter(|&n| n > 0)
    });
    run.kill9();
    let stored = collector.ids_of(&agent.name);
    let spooled = agent.spooled_ids(work.path());
    let unacknowledged: BTreeSet<Uuid> = stored.intersection(&spooled).copied().collect();
    assert!(
        overlap.is_some() && !unacknowledged.is_empty(),
        "no result is both stored and spooled: the kill did not fall mid-upload \
         ({} stored, {} spooled)\n{}\n{}",
        stored.len(),
        spooled.len(),
        run.log_text(),
        collector.log_text()
    );
    eprintln!(
        "agent killed with {} results spooled, {} stored, {} of them both",
        spooled.len(),
        stored.len(),
        unacknowledged.len()
    );
    let expected: BTreeSet<Uuid> = stored.union(&spooled).copied().collect();
    assert_eq!(
        expected.len() as u64,
        round.traces + round.pings,
        "stored and spooled results at the kill against the round {round:?}"
    );

    let mut rerun = agent.spawn(tb, &["--rounds", "0"]);
    rerun.wait_success(AGENT_EXIT_TIMEOUT);
    let statuses = assert_one_for_one(tb, &agents, &collector);
    assert_eq!(
        statuses[0].last_round.as_ref(),
        Some(&round),
        "--rounds 0 ran a round"
    );
    assert_eq!(collector.ids_of(&agent.name), expected);
}

/// With the spool full and no collector to take results, the agent keeps every result
/// of its first round and starts no other: no echo request leaves the vantage point
/// after the first round, though the second round's time came.
#[test]
fn a_full_spool_stops_probing_and_keeps_everything() {
    if !require_tools(&["setpriv"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options::default()) else {
        return;
    };
    let work = work_dir();
    let service = &tb.manifest().collector;
    // Nothing listens on the discard port of the collector host: every upload fails.
    let url = format!("http://{}:9", service.address);
    let mut spec = AgentSpec::new("svc-full-devp", "devp", &url);
    spec.max_results = 10;
    let agent = Agent::setup(&tb, work.path(), &spec, "no-collector-token");
    let echos_before = out_echos(&tb, "devp");
    let mut run = agent.spawn(&tb, &[]);
    let round = wait_for(Duration::from_mins(1), || {
        agent.try_status(&tb).and_then(|s| s.last_round)
    })
    .unwrap_or_else(|| panic!("the first round did not end\n{}", run.log_text()));
    let echos_after_round = out_echos(&tb, "devp");
    assert!(
        echos_after_round - echos_before >= round.traces + round.pings,
        "the counter missed the round's echo requests ({echos_before} -> {echos_after_round}, round {round:?})"
    );
    // The second round is due 1m after the first started; the agent says it skips it.
    let skipped = wait_for(Duration::from_secs(90), || {
        fs::read_to_string(&agent.log)
            .unwrap()
            .contains("spool full: not probing")
            .then_some(())
    });
    assert!(
        skipped.is_some(),
        "the agent never reported its full spool\n{}",
        run.log_text()
    );
    std::thread::sleep(Duration::from_secs(3));
    let echos_at_end = out_echos(&tb, "devp");
    run.signal(Signal::SIGTERM);
    run.wait_success(Duration::from_secs(30));
    assert_eq!(
        echos_at_end,
        echos_after_round,
        "echo requests left the vantage point after the first round\n{}",
        run.log_text()
    );
    let status = agent.status(&tb);
    assert!(status.spool_full, "{status:?}");
    assert_eq!(
        status.last_round.as_ref(),
        Some(&round),
        "another round ran: {status:?}"
    );
    assert_eq!(
        status.spool_depth,
        round.traces + round.pings,
        "the spool lost results of the round: {status:?}"
    );
    assert!(status.spool_depth > spec.max_results);
    assert_eq!(status.quarantined, 0);
}

/// `trace --resolver` names every router hop by its PTR record, as the testbed's DNS server
/// publishes them, and claims no AS: origin ASes are the collector's to map (an agent's
/// answer could be forged), so the agent does not look them up.
#[test]
fn trace_shows_ptr_names_from_dns_and_no_asns() {
    let Some(tb) = shared_testbed(&[]) else {
        return;
    };
    let manifest = tb.manifest();
    let resolver = SocketAddr::new(manifest.dns.address.into(), manifest.dns.port).to_string();
    let target: Ipv4Addr = "175.45.176.1".parse().unwrap();
    for vp in VPS {
        let out = run_agent(
            tb,
            vp,
            &["trace", "--resolver", &resolver, &target.to_string()],
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let hops: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<u8>().is_ok())
            })
            .collect();
        let mut routers = 0;
        for line in &hops {
            let addr: Ipv4Addr = line
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("{vp}: unanswered hop `{line}`\n{text}"));
            assert!(
                !line.contains("[AS"),
                "{vp}: the agent claims an AS: `{line}`\n{text}"
            );
            if addr == target {
                continue;
            }
            let (_, iface) = manifest
                .interface_of_address(addr)
                .unwrap_or_else(|| panic!("{vp}: {addr} is no interface of the testbed"));
            let want = format!("{addr} ({})", iface.dns_name);
            assert!(
                line.contains(&want),
                "{vp}: expected `{want}` in `{line}`\n{text}"
            );
            routers += 1;
        }
        assert!(routers >= 3, "{vp}: only {routers} router hops\n{text}");
        assert!(
            hops.last().is_some_and(|l| l.contains(&target.to_string())),
            "{vp}: the trace did not reach {target}\n{text}"
        );
    }
}

/// `check-config` names the line and key of a bad value and fails; it accepts the
/// demo's configuration.
#[test]
fn check_config_names_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let agent = env!("CARGO_BIN_EXE_nkpath-agent");
    let token = dir.path().join("token");
    fs::write(&token, "t0ken\n").unwrap();
    let spec = AgentSpec::new("svc-check", "devp", "http://88.198.20.2:8080");
    let dns: SocketAddr = "4.68.53.2:53".parse().unwrap();
    let good = config_text(&spec, dns, &dir.path().join("spool.db"));
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let out = Command::new(agent)
            .args(["check-config", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            path,
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (path, status, stdout, stderr) = check("good.toml", &good);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{}: OK", path.display())),
        "{stdout}"
    );

    let bad = good.replace("pps = 200", "pps = 5000");
    let line = bad.lines().position(|l| l == "pps = 5000").unwrap() + 1;
    let (path, status, stdout, stderr) = check("bad.toml", &bad);
    assert!(!status.success(), "accepted pps = 5000: {stdout}");
    let want = format!("{}:{line}: probing.pps = 5000", path.display());
    assert!(stderr.contains(&want), "expected `{want}` in: {stderr}");

    let typo = good.replace("per_prefix_pps = 100", "per_prefix_ppps = 100");
    let line = typo
        .lines()
        .position(|l| l.starts_with("per_prefix_ppps"))
        .unwrap()
        + 1;
    let (path, status, _, stderr) = check("typo.toml", &typo);
    assert!(!status.success(), "accepted an unknown key");
    let want = format!("{}:{line}: per_prefix_ppps", path.display());
    assert!(stderr.contains(&want), "expected `{want}` in: {stderr}");
}
