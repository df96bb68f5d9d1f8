//! Support for the agent's tests in the emulated Internet: running the agent the way
//! the service runs it, capturing what leaves a vantage point, and comparing traces
//! with the paths the routing tables give.
#![allow(dead_code)]

pub mod collector;
pub mod pcap;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use nkpath_proto::{FlowId, Protocol, Reply, StopReason, TraceResult};
use nkpath_testbed::{ExpectedTrace, FlowQuery, PathEnd, Testbed};

/// ICMP types and codes the checks name.
pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACHABLE: u8 = 3;
pub const ICMP_PORT_UNREACHABLE: u8 = 3;
pub const ICMP_ADMIN_PROHIBITED: u8 = 13;
pub const ICMP_TIME_EXCEEDED: u8 = 11;
/// TCP RST, as a closed port answers a SYN.
pub const TCP_RST: u8 = 0x04;

/// The testbed shared by this test binary, when it and the programs a test needs
/// besides the testbed's own (`setpriv` always) are here; `None` (skip) otherwise, or
/// a panic under `CI=true` (see [`Testbed::shared`]).
pub fn shared_testbed(tools: &[&str]) -> Option<&'static Testbed> {
    let mut all = vec!["setpriv"];
    all.extend_from_slice(tools);
    if !nkpath_testbed::require_tools(&all) {
        return None;
    }
    Testbed::shared()
}

/// The agent binary as the service runs it: a world-readable copy outside the build
/// tree (which an unprivileged user may not be able to reach), in a root-owned
/// directory of the system's temp dir. The copy is named after the build's size and
/// time, so that repeated runs reuse it and a new build replaces it; older copies are
/// removed.
pub fn agent_binary() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let built = Path::new(env!("CARGO_BIN_EXE_nkpath-agent"));
        let meta = fs::metadata(built).expect("the agent binary is built");
        let stamp = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join("nkpath-agent-tests");
        fs::create_dir_all(&dir).unwrap();
        // Someone else's directory (or a symlink) in a shared temp dir could swap the
        // binary under us: accept only our own, plain directory.
        let dir_meta = fs::symlink_metadata(&dir).unwrap();
        assert!(
            dir_meta.is_dir() && dir_meta.uid() == nix::unistd::geteuid().as_raw(),
            "{} is not a directory of ours",
            dir.display()
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let name = format!("nkpath-agent-{}-{stamp}", meta.len());
        let path = dir.join(&name);
        if !path.is_file() {
            // Copy then rename, so that a concurrent test process never runs a half copy.
            let partial = dir.join(format!(".{name}.{}", std::process::id()));
            fs::copy(built, &partial).unwrap();
            fs::set_permissions(&partial, fs::Permissions::from_mode(0o755)).unwrap();
            fs::rename(&partial, &path).unwrap();
        }
        remove_stale_copies(&dir, &name);
        path
    })
}

/// Removes copies of other builds made more than 15 minutes ago (longer than a test
/// run: a test process of another build may still be using a recent one).
fn remove_stale_copies(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_mins(15));
        if stale && entry.file_name() != keep {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A scratch directory the unprivileged agent may write its output to.
pub fn scratch_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("nkpath-agent-out")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// A command that runs the agent in `node` as the service runs it: as nobody with
/// CAP_NET_RAW only ([`Testbed::command_as_nobody_with_net_raw`]); the child's pid is the
/// agent's.
pub fn agent_command(tb: &Testbed, node: &str, args: &[&str]) -> Command {
    let mut cmd = tb.command_as_nobody_with_net_raw(node, agent_binary());
    cmd.args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// A command that runs the agent in `node` as plain root (an operator who starts it
/// by hand); it must drop to nobody by itself.
pub fn root_agent_command(tb: &Testbed, node: &str, args: &[&str]) -> Command {
    let mut cmd = tb.command(node, agent_binary());
    cmd.args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs the agent to completion; panics with its stderr when it fails.
pub fn run_agent(tb: &Testbed, node: &str, args: &[&str]) -> Output {
    let out = agent_command(tb, node, args).output().expect("spawn agent");
    assert!(
        out.status.success(),
        "nkpath-agent {args:?} in {node} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `nkpath-agent trace --json` in `node`, parsed.
pub fn trace_json(tb: &Testbed, node: &str, args: &[&str]) -> TraceResult {
    let mut all = vec!["trace", "--json", "--agent-id", "test"];
    all.extend_from_slice(args);
    let out = run_agent(tb, node, &all);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from the agent: {e}\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The closing line of `nkpath-agent survey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurveySummary {
    /// Traces run.
    pub targets: u64,
    /// Traces that reached their target.
    pub reached: u64,
    /// Probes sent.
    pub probes_sent: u64,
    /// Replies recorded.
    pub replies: u64,
}

impl SurveySummary {
    /// Finds and parses `survey done: N targets, N reached, N probes sent, N replies ...`.
    pub fn parse(stdout: &str) -> Self {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("survey done:"))
            .unwrap_or_else(|| panic!("no summary line in the survey's output:\n{stdout}"));
        let number_before = |label: &str| -> u64 {
            let words: Vec<&str> = line
                .split([' ', ',', '('])
                .filter(|w| !w.is_empty())
                .collect();
            let at = words
                .windows(label.split(' ').count() + 1)
                .position(|w| w[1..].join(" ") == label)
                .unwrap_or_else(|| panic!("no '{label}' in the summary: {line}"));
            words[at]
                .parse()
                .unwrap_or_else(|_| panic!("bad number before '{label}': {line}"))
        };
        Self {
            targets: number_before("targets"),
            reached: number_before("reached"),
            probes_sent: number_before("probes sent"),
            replies: number_before("replies"),
        }
    }
}

/// Serialises the tests that probe from one vantage point, so that counters and
/// captures in the shared testbed see one test's traffic only.
pub fn vp_lock(node: &str) -> MutexGuard<'static, ()> {
    static LOCKS: OnceLock<Mutex<HashMap<String, &'static Mutex<()>>>> = OnceLock::new();
    let map = LOCKS.get_or_init(Default::default);
    let lock: &'static Mutex<()> = {
        let mut map = map.lock().unwrap();
        map.entry(node.to_owned())
            .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
    };
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads JSON lines of trace results.
pub fn read_results(path: &Path) -> Vec<TraceResult> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

/// The vantage point's address and the interface that carries it.
pub fn vp_interface(tb: &Testbed, vp: &str) -> (Ipv4Addr, String) {
    let address = tb
        .manifest()
        .vp_address(vp)
        .unwrap_or_else(|| panic!("{vp} is not a vantage point"));
    let iface = tb.manifest().nodes[vp]
        .interfaces
        .iter()
        .find(|i| i.address == address)
        .unwrap_or_else(|| panic!("no interface of {vp} has {address}"));
    (address, iface.name.clone())
}

/// A tcpdump capture running inside a node, writing a pcap file.
pub struct Capture {
    child: Child,
    stderr: Option<JoinHandle<String>>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a stopped capture saw.
#[derive(Debug)]
pub struct Captured {
    /// Every IPv4 packet, in capture order.
    pub packets: Vec<pcap::Captured>,
    /// tcpdump's own report of packets the kernel dropped before it could read them.
    pub dropped_by_kernel: u64,
}

impl Capture {
    /// Starts `tcpdump -i IFACE -Q DIRECTION` in `node` and returns once it listens
    /// (tcpdump says so on stderr after its filter is attached), so that nothing sent
    /// afterwards is missed.
    pub fn start(tb: &Testbed, node: &str, iface: &str, direction: &str) -> Capture {
        let dir = tempfile::Builder::new()
            .prefix("nkpath-capture")
            .tempdir()
            .unwrap();
        let file = dir.path().join("capture.pcap");
        let mut child = tb
            .command(node, "tcpdump")
            // -U with -w: write each packet as it comes; --immediate-mode: no batching in
            // the kernel ring; -s and -B: headers are all we read, in a ring of many
            // slots (a full-size snapshot leaves room for a handful of packets only);
            // -Z root: write the file as root (tcpdump would drop to its own user).
            .args([
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "128",
                "-B",
                "4096",
                "-Z",
                "root",
                "-i",
                iface,
                "-Q",
                direction,
            ])
            .arg("-w")
            .arg(&file)
            .arg("ip")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start tcpdump");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            let mut lines = BufReader::new(stderr);
            let mut line = String::new();
            while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                all.push_str(&line);
                line.clear();
            }
            all
        });
        let mut capture = Capture {
            child,
            stderr: Some(reader),
            file,
            _dir: dir,
        };
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            capture.kill();
            let said = capture
                .stderr
                .take()
                .map(|h| h.join().unwrap())
                .unwrap_or_default();
            panic!("tcpdump in {node} did not start listening on {iface}: {said}");
        }
        capture
    }

    /// Stops the capture (SIGINT, as a user would, so that tcpdump flushes the file
    /// and reports its counters) and reads it. Waits a moment first: packets the kernel
    /// has handed to the capture socket must reach the file.
    pub fn stop(mut self) -> Captured {
        std::thread::sleep(Duration::from_millis(500));
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).expect("signal tcpdump");
        let status = self.child.wait().expect("wait for tcpdump");
        let said = self
            .stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        assert!(status.success(), "tcpdump failed ({status}): {said}");
        let dropped_by_kernel = said
            .lines()
            .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("tcpdump reported no drop counter: {said}"));
        let reported: usize = said
            .lines()
            .find_map(|l| l.strip_suffix(" packets captured"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("tcpdump reported no capture count: {said}"));
        let bytes = fs::read(&self.file).expect("read the capture");
        let packets = pcap::parse(&bytes);
        assert_eq!(
            packets.len(),
            reported,
            "the pcap file holds fewer packets than tcpdump captured"
        );
        Captured {
            packets,
            dropped_by_kernel,
        }
    }

    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running process started by a test, killed (by its pid) if the test fails first.
pub struct Running {
    /// The process.
    pub child: Child,
}

impl Running {
    /// Spawns `cmd` with stdout and stderr captured.
    pub fn spawn(mut cmd: Command) -> Running {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot spawn");
        Running { child }
    }

    /// The pid (the agent's, once `ip netns exec` and `setpriv` have exec'd).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process with SIGTERM and returns its stderr.
    pub fn terminate(mut self) -> String {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        stderr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The flow of a trace result as the harness's path walker takes it.
// By reference: callers hold the flows inside borrowed results.
#[allow(clippy::trivially_copy_pass_by_ref)]
pub fn flow_query(flow: &FlowId) -> FlowQuery {
    match *flow {
        FlowId::Icmp {
            icmp_type,
            icmp_code,
            checksum,
        } => {
            assert_eq!(
                (icmp_type, icmp_code),
                (8, 0),
                "Paris ICMP probes are echo requests"
            );
            FlowQuery::icmp_echo(checksum)
        }
        FlowId::Udp { src_port, dst_port } => FlowQuery::udp(src_port, dst_port),
        FlowId::Tcp { src_port, dst_port } => FlowQuery::tcp(src_port, dst_port),
    }
}

/// Whether `reply` is what the destination itself sends to a probe of `protocol`.
fn is_destination_answer(protocol: Protocol, reply: &Reply) -> bool {
    match protocol {
        Protocol::Icmp => reply.icmp_type == Some(ICMP_ECHO_REPLY),
        Protocol::Udp => {
            (reply.icmp_type, reply.icmp_code)
                == (Some(ICMP_DEST_UNREACHABLE), Some(ICMP_PORT_UNREACHABLE))
        }
        Protocol::Tcp => reply.tcp_flags.is_some_and(|f| f & TCP_RST != 0),
    }
}

/// Checks a trace result against the path the routing tables give its flow, probe by
/// probe: every probe of every TTL up to the end of the path was answered by the
/// expected interface with the expected kind of message, nothing answered past the
/// end, and the stop reason matches how the path ends. `probes_per_hop` is how many
/// probes each answered TTL must hold (the `trace` command sends every attempt; a
/// survey moves on after the first answer).
pub fn assert_trace_matches(
    what: &str,
    result: &TraceResult,
    expected: &ExpectedTrace,
    probes_per_hop: usize,
) {
    let context = || format!("{what}\nexpected {expected:#?}\ngot {}", render(result));
    assert_eq!(result.source, expected.src, "{what}: source address");
    let ttls: Vec<u8> = result.hops.iter().map(|h| h.ttl).collect();
    let first = result.params.first_ttl;
    assert!(
        ttls.iter().copied().eq(first..first + ttls.len() as u8),
        "{what}: TTLs not probed in order from {first}: {ttls:?}"
    );
    for want in &expected.hops {
        let hop = result
            .hops
            .iter()
            .find(|h| h.ttl == want.ttl)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: TTL {} ({}) never probed\n{}",
                    want.ttl,
                    want.node,
                    context()
                )
            });
        assert_eq!(
            hop.probes.len(),
            probes_per_hop,
            "{what}: TTL {} has {} probes\n{}",
            want.ttl,
            hop.probes.len(),
            context()
        );
        for probe in &hop.probes {
            let reply = probe.reply.as_ref().unwrap_or_else(|| {
                panic!(
                    "{what}: probe {} at TTL {} unanswered, {} ({}) should answer\n{}",
                    probe.attempt,
                    want.ttl,
                    want.address,
                    want.node,
                    context()
                )
            });
            assert_eq!(
                reply.address,
                want.address,
                "{what}: probe {} at TTL {} answered by {}, expected {} ({})\n{}",
                probe.attempt,
                want.ttl,
                reply.address,
                want.address,
                want.node,
                context()
            );
        }
    }
    let last = expected.hops.last().map_or(0, |h| h.ttl);
    let kind = |ttl: u8| -> Vec<&Reply> {
        result
            .hops
            .iter()
            .filter(|h| h.ttl == ttl)
            .flat_map(|h| h.probes.iter().filter_map(|p| p.reply.as_ref()))
            .collect()
    };
    for want in &expected.hops {
        let final_hop = want.ttl == last;
        for reply in kind(want.ttl) {
            let ok = match (&expected.end, final_hop) {
                (PathEnd::Reached, true) => is_destination_answer(result.protocol, reply),
                (PathEnd::Rejected { .. }, true) => {
                    (reply.icmp_type, reply.icmp_code)
                        == (Some(ICMP_DEST_UNREACHABLE), Some(ICMP_ADMIN_PROHIBITED))
                }
                _ => reply.icmp_type == Some(ICMP_TIME_EXCEEDED),
            };
            assert!(
                ok,
                "{what}: TTL {} answered with {reply:?}\n{}",
                want.ttl,
                context()
            );
        }
    }
    let past_end: Vec<_> = result
        .hops
        .iter()
        .filter(|h| h.ttl > last)
        .flat_map(|h| {
            h.probes
                .iter()
                .filter_map(|p| p.reply.as_ref())
                .map(move |r| (h.ttl, r.address))
        })
        .collect();
    assert!(
        past_end.is_empty(),
        "{what}: answers past the end of the path: {past_end:?}\n{}",
        context()
    );
    match &expected.end {
        PathEnd::Reached => {
            assert_eq!(
                result.stop_reason,
                StopReason::Reached,
                "{what}\n{}",
                context()
            );
            assert_eq!(
                ttls.last(),
                Some(&last),
                "{what}: probed past the destination\n{}",
                context()
            );
        }
        PathEnd::Rejected { .. } => {
            assert_eq!(
                result.stop_reason,
                StopReason::Unreachable,
                "{what}\n{}",
                context()
            );
            assert_eq!(
                ttls.last(),
                Some(&last),
                "{what}: probed past the reject\n{}",
                context()
            );
        }
        PathEnd::Blackhole { .. } | PathEnd::Dropped { .. } => {
            assert_eq!(
                result.stop_reason,
                StopReason::GapLimit,
                "{what}\n{}",
                context()
            );
            let silent = ttls.last().copied().unwrap_or(0).saturating_sub(last);
            assert!(
                silent >= result.params.gap_limit,
                "{what}: gave up after {silent} silent TTLs, gap limit {}\n{}",
                result.params.gap_limit,
                context()
            );
        }
        PathEnd::Unreachable { node, .. } => {
            panic!("{what}: the path dead-ends at {node} without a route")
        }
    }
}

/// Checks the replies a trace did get against the path the routing tables give its
/// flow, where routers may stay silent (rate-limited ICMP): every reply came from the
/// expected interface for its TTL, nothing answered past the end of the path, and a
/// trace that stopped on an answer stopped on the right one.
pub fn assert_replies_on_path(what: &str, result: &TraceResult, expected: &ExpectedTrace) {
    let context = || {
        format!(
            "{what}\nexpected {:?}\ngot {}",
            expected.hops,
            render(result)
        )
    };
    for hop in &result.hops {
        let want = expected.hops.iter().find(|h| h.ttl == hop.ttl);
        for reply in hop.probes.iter().filter_map(|p| p.reply.as_ref()) {
            let want = want.unwrap_or_else(|| {
                panic!(
                    "{what}: TTL {} answered past the end of the path\n{}",
                    hop.ttl,
                    context()
                )
            });
            assert_eq!(
                reply.address,
                want.address,
                "{what}: TTL {} ({})\n{}",
                hop.ttl,
                want.node,
                context()
            );
        }
    }
    let end_ok = match (&expected.end, result.stop_reason) {
        (PathEnd::Reached, StopReason::Reached)
        | (PathEnd::Rejected { .. }, StopReason::Unreachable) => {
            result.hops.last().map(|h| h.ttl) == expected.hops.last().map(|h| h.ttl)
        }
        (_, StopReason::Reached | StopReason::Unreachable) => false,
        _ => true,
    };
    assert!(
        end_ok,
        "{what}: stopped {:?}, path ends {:?}\n{}",
        result.stop_reason,
        expected.end,
        context()
    );
}

/// A trace result as traceroute prints it, for failure messages.
pub fn render(result: &TraceResult) -> String {
    let mut out = format!(
        "{} -> {} {:?} stop {:?}\n",
        result.source, result.target, result.flow, result.stop_reason
    );
    for hop in &result.hops {
        let probes: Vec<String> = hop
            .probes
            .iter()
            .map(|p| match &p.reply {
                None => "*".to_owned(),
                Some(r) => match (r.icmp_type, r.icmp_code, r.tcp_flags) {
                    (Some(t), Some(c), _) => format!("{} (icmp {t}/{c})", r.address),
                    (_, _, Some(f)) => format!("{} (tcp {f:#04x})", r.address),
                    _ => r.address.to_string(),
                },
            })
            .collect();
        let _ = writeln!(out, "{:3}  {}", hop.ttl, probes.join("  "));
    }
    out
}

/// `/proc/PID/status` as key → value.
pub fn proc_status(pid: u32) -> Option<HashMap<String, String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect(),
    )
}

/// This test binary, copied once where the unprivileged user can run it.
fn this_test_binary(name: &str) -> PathBuf {
    static COPIES: OnceLock<Mutex<HashMap<String, (tempfile::TempDir, PathBuf)>>> = OnceLock::new();
    let mut copies = COPIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (_, path) = copies.entry(name.to_owned()).or_insert_with(|| {
        let dir = tempfile::Builder::new()
            .prefix(&format!("nkpath-{name}"))
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join(name);
        fs::copy(std::env::current_exe().unwrap(), &path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    });
    path.clone()
}

/// Runs library code inside `node` the way the service runs: the test binary
/// re-runs itself there as nobody with CAP_NET_RAW only, executing its ignored
/// test `in_namespace`, which reads `job` (JSON) from `job_env` and writes its
/// outcome (JSON) to the file named by `out_env`.
pub fn run_in_namespace<J, O>(
    tb: &Testbed,
    node: &str,
    name: &str,
    (job_env, out_env): (&str, &str),
    job: &J,
) -> O
where
    J: serde::Serialize + std::fmt::Debug,
    O: serde::de::DeserializeOwned,
{
    let scratch = scratch_dir();
    let out = scratch.path().join("outcome.json");
    let output = tb
        .command_as_nobody_with_net_raw(node, this_test_binary(name))
        .args([
            "--exact",
            "in_namespace",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(job_env, serde_json::to_string(job).unwrap())
        .env(out_env, &out)
        .output()
        .expect("start the test binary in the namespace");
    assert!(
        output.status.success() && out.exists(),
        "{job:?} in {node} failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&fs::read(&out).unwrap()).unwrap()
}
