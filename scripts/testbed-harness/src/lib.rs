//! Test support for the emulated Internet of nkpath.
//!
//! `scripts/testbed` builds an Internet out of Linux network namespaces: vantage-point
//! hosts (`devp`, `jpvp`, `usvp`) behind ECMP gateways, transits, China Unicom (`cu`)
//! and TransTeleCom (`ttk`) routers, the North Korean border (`nkbr`) and the whole
//! 175.45.176.0/22 answered by `nkhost`; real BGP between the ASes (BIRD 2), a route
//! collector (`rc`) writing MRT files, and a DNS server (`dns`) with PTR and
//! Team-Cymru-style TXT records. This crate brings testbeds up and down for tests and
//! answers questions about them.
//!
//! ```no_run
//! use nkpath_testbed::{FlowQuery, Testbed};
//!
//! // In a read-only test: the testbed shared by this test binary (None = skipped).
//! let Some(tb) = Testbed::shared() else { return };
//! let dst = "175.45.176.1".parse().unwrap();
//! let path = tb.expected_path("devp", dst, &FlowQuery::udp(40000, 33435)).unwrap();
//! let out = tb.exec("devp", &["scamper", "-O", "json", "-c",
//!     "trace -P udp-paris -q 1 -s 40000 -d 33435", "-i", "175.45.176.1"]).unwrap();
//! # let _ = (path, out);
//! ```
//!
//! Testbeds are torn down when a private [`Testbed`] is dropped or [`Testbed::down`]
//! is called, and in every case by a reaper process (`scripts/testbed reap`, started
//! detached with `setsid`) as soon as the test process exits, even when it panics,
//! aborts or is killed.
//!
//! Probes must only ever be sent inside the testbed's namespaces: use
//! [`Testbed::command`] / [`Testbed::exec`], never the root namespace.
//!
//! The topology, addressing plan, routing policy and manifest format are described in
//! `scripts/TESTBED.md`.

mod availability;
mod binaries;
mod bird;
pub mod jhash;
mod manifest;
pub mod mrt;
mod path;
mod peers;
mod route;

pub use binaries::workspace_binary;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

pub use availability::{require_tools, skip_or_panic, under_ci, which};
pub use bird::{BirdRoute, parse_show_route_all};
pub use manifest::{
    AsInfo, BgpNeighbor, DnsService, IcmpJhash, Interface, Manifest, Node, RouteCollector, Service,
    Session, SideDoor, Target, VantagePoint,
};
pub use path::{ExpectedHop, ExpectedTrace, FlowProtocol, FlowQuery, PathEnd};
pub use peers::{ScamperHop, ScamperTrace, TracerouteHop, parse_traceroute};
pub use route::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, RouteEntry, RouteGet, RouteQuery};

/// `scripts/testbed`, the program that builds and removes testbeds.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testbed");

/// ICMP rate limits of the routers (`scripts/testbed up --icmp-limits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IcmpLimits {
    /// No limits: every probe that should be answered is answered.
    #[default]
    Exact,
    /// The kernel defaults, set explicitly: errors limited per destination by a 1 s token
    /// bucket (`icmp_ratelimit=1000`), `icmp_msgs_per_sec=1000`.
    Realistic,
}

impl IcmpLimits {
    /// The value of `--icmp-limits`.
    pub fn as_str(self) -> &'static str {
        match self {
            IcmpLimits::Exact => "exact",
            IcmpLimits::Realistic => "realistic",
        }
    }
}

/// What the border does with the parts of the block nkhost does not answer
/// (`scripts/testbed up --scenario`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scenario {
    /// 175.45.179.0/24 rejected with ICMP admin-prohibited; the border answers from
    /// its upstream links (addresses of its neighbours' blocks).
    #[default]
    Reference,
    /// The border answers from an address inside the block (in 175.45.178.0/24) and
    /// drops 175.45.179.0/24 without an error: a whole /24 silent behind it.
    Silent24,
}

impl Scenario {
    /// The value of `--scenario`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Reference => "reference",
            Scenario::Silent24 => "silent-24",
        }
    }
}

/// How to build a testbed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// ICMP rate limits of the routers.
    pub icmp_limits: IcmpLimits,
    /// What the border does.
    pub scenario: Scenario,
}

/// `setpriv` options of [`Testbed::command_as_nobody_with_net_raw`]: nobody, CAP_NET_RAW only.
pub const SETPRIV_NOBODY_NET_RAW: &[&str] = &[
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    "--inh-caps=-all,+net_raw",
    "--ambient-caps=-all,+net_raw",
    "--bounding-set=-all,+net_raw",
];

/// A running testbed: its id, manifest and ways to act inside its nodes.
#[derive(Debug)]
pub struct Testbed {
    id: String,
    manifest: Manifest,
    /// The reaper watching this process; killed once the testbed is down.
    reaper: Mutex<Option<Child>>,
    down: bool,
}

impl Testbed {
    /// Whether testbed tests can run here (root, `ip netns`, bird, ...). `Err(reason)`
    /// otherwise. Checked once per process.
    pub fn available() -> Result<(), String> {
        availability::available()
    }

    /// For tests: the testbed shared by the read-only tests of this test binary (exact
    /// ICMP limits), brought up on first use (thread-safe), torn down by the reaper when
    /// the test process exits. Returns `None` (after printing `skipping: <reason>`) when
    /// the testbed is not available here and env `CI` is not `true`; panics with the
    /// reason when `CI=true`, and when bringing it up fails.
    ///
    /// Tests that use it must not change it (no BGP session shut, no route changed):
    /// use [`Testbed::private`] for that.
    pub fn shared() -> Option<&'static Testbed> {
        static SHARED: OnceLock<Result<Testbed, String>> = OnceLock::new();
        if let Err(reason) = Self::available() {
            skip_or_panic(&reason);
            return None;
        }
        let shared =
            SHARED.get_or_init(|| Testbed::start(Options::default()).map_err(|e| format!("{e:#}")));
        match shared {
            Ok(tb) => Some(tb),
            Err(e) => panic!("the shared testbed could not be brought up: {e}"),
        }
    }

    /// A private testbed for tests that change it (e.g. shut a BGP session). Same skip
    /// rule as [`Testbed::shared`]; panics when bringing it up fails. Torn down on drop.
    pub fn private(opts: Options) -> Option<Testbed> {
        if let Err(reason) = Self::available() {
            skip_or_panic(&reason);
            return None;
        }
        match Testbed::start(opts) {
            Ok(tb) => Some(tb),
            Err(e) => panic!("a private testbed could not be brought up: {e:#}"),
        }
    }

    /// Brings a new testbed up with a fresh id and returns once BGP has converged (the
    /// underlying constructor: no skip logic). A reaper tears it down when this process
    /// exits; dropping the value tears it down at once.
    pub fn start(opts: Options) -> Result<Testbed> {
        let mut last_error = None;
        for _ in 0..5 {
            let id = next_id();
            let reaper = spawn_reaper(&id)?;
            let out = script_command()
                .args([
                    "up",
                    "--id",
                    &id,
                    "--icmp-limits",
                    opts.icmp_limits.as_str(),
                    "--scenario",
                    opts.scenario.as_str(),
                    "--owner-pid",
                    &std::process::id().to_string(),
                ])
                .stdin(Stdio::null())
                .output()
                .context("cannot run scripts/testbed up")?;
            if out.status.success() {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let path = stdout
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .ok_or_else(|| anyhow!("scripts/testbed up printed no manifest path"))?;
                let manifest = read_manifest(Path::new(path.trim()))?;
                return Ok(Testbed {
                    id,
                    manifest,
                    reaper: Mutex::new(Some(reaper)),
                    down: false,
                });
            }
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if !stderr.contains("already up") {
                // up tears down what it built when it fails; make sure of it even if up
                // itself was killed, before the reaper stops watching.
                let _ = script_command()
                    .args(["down", "--id", &id])
                    .stdin(Stdio::null())
                    .output();
            }
            stop_reaper(reaper);
            if !stderr.contains("already up") {
                bail!(
                    "`scripts/testbed up --id {id}` failed ({}):\n{stderr}",
                    out.status
                );
            }
            last_error = Some(stderr);
        }
        bail!("no free testbed id: {}", last_error.unwrap_or_default())
    }

    /// The testbed id (namespaces are `ID-NODE`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What was built.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The namespace of a node.
    pub fn netns(&self, node: &str) -> String {
        self.manifest
            .node(node)
            .map_or_else(|| format!("{}-{node}", self.id), |n| n.netns.clone())
    }

    /// The state dir (configs, sockets, logs, MRT, manifest).
    pub fn state_dir(&self) -> &Path {
        &self.manifest.state_dir
    }

    /// Where the route collector writes MRT files.
    pub fn mrt_dir(&self) -> PathBuf {
        self.manifest.mrt_dir.clone()
    }

    /// The route collector's BGP4MP update file.
    pub fn updates_mrt(&self) -> PathBuf {
        self.manifest.updates_mrt.clone()
    }

    /// The route collector's TABLE_DUMP_V2 RIB dumps, oldest first. The first one was
    /// taken after convergence by `up`; later ones every 10 s (the newest may still be
    /// being written).
    pub fn rib_dumps(&self) -> Result<Vec<PathBuf>> {
        let mut dumps: Vec<PathBuf> = std::fs::read_dir(self.mrt_dir())
            .with_context(|| format!("cannot list {}", self.mrt_dir().display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(OsStr::to_str)
                    .is_some_and(|n| n.starts_with("rib."))
            })
            .collect();
        dumps.sort();
        // BIRD writes its periodic dumps in place: one modified in the last moment may
        // still be incomplete, and a partial dump would look like routes disappearing.
        // rc's table is tiny, so a dump is complete within milliseconds: wait until the
        // newest is a second old (at most a second).
        let newest_age = dumps
            .iter()
            .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .filter_map(|t| t.elapsed().ok())
            .min();
        if let Some(age) = newest_age
            && age < std::time::Duration::from_secs(1)
        {
            std::thread::sleep(std::time::Duration::from_secs(1).saturating_sub(age));
        }
        Ok(dumps)
    }

    /// A copy of an MRT file cut after its last complete record, for files BIRD is still
    /// appending to (`updates.mrt`). The copy lives in `STATE/snapshots/`.
    pub fn mrt_snapshot(&self, file: &Path) -> Result<PathBuf> {
        static SNAPSHOTS: AtomicU32 = AtomicU32::new(0);
        let data =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let complete = &data[..mrt::complete_records_len(&data)];
        let dir = self.state_dir().join("snapshots");
        std::fs::create_dir_all(&dir)?;
        let name = file.file_name().and_then(OsStr::to_str).unwrap_or("mrt");
        let n = SNAPSHOTS.fetch_add(1, Ordering::Relaxed);
        let copy = dir.join(format!("{name}.{n}"));
        std::fs::write(&copy, complete)?;
        Ok(copy)
    }

    /// `ip netns exec NS program` as a Command, for spawning (e.g. the agent).
    pub fn command(&self, node: &str, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"])
            .arg(self.netns(node))
            .arg(program);
        cmd
    }

    /// A command that runs `program` in the node the way the agent's systemd unit runs it: as
    /// nobody, with CAP_NET_RAW as the only capability anywhere (inheritable, ambient and
    /// bounding sets), through `setpriv`. `ip netns exec` and `setpriv` exec, so the child's
    /// pid is the program's. The one place tests start an unprivileged program.
    pub fn command_as_nobody_with_net_raw(
        &self,
        node: &str,
        program: impl AsRef<OsStr>,
    ) -> Command {
        let mut cmd = self.command(node, "setpriv");
        cmd.args(SETPRIV_NOBODY_NET_RAW).arg("--").arg(program);
        cmd
    }

    /// Runs argv in the node and returns its stdout; `Err` with stderr and exit status
    /// when it fails.
    pub fn exec(&self, node: &str, argv: &[&str]) -> Result<String> {
        let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty argv"))?;
        let out = self
            .command(node, program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {program} in {node}"))?;
        if !out.status.success() {
            bail!(
                "`{}` in {node} failed ({}): {} {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `birdc -s SOCKET ARGS...` for a BIRD node; the output without the banner line.
    pub fn birdc(&self, node: &str, args: &[&str]) -> Result<String> {
        let socket = self
            .manifest
            .node(node)
            .and_then(|n| n.bird_socket.as_ref())
            .ok_or_else(|| anyhow!("{node} runs no BIRD"))?;
        let out = Command::new("birdc")
            .arg("-s")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("cannot run birdc")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || stdout.starts_with("Unable to connect") {
            bail!(
                "birdc {} at {node} failed ({}): {stdout}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with(" ready.")))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Every route of a BIRD node (`show route all`), parsed.
    pub fn bird_routes(&self, node: &str) -> Result<Vec<BirdRoute>> {
        Ok(parse_show_route_all(
            &self.birdc(node, &["show", "route", "all"])?,
        ))
    }

    /// `ip -j route get ...` in a node, parsed.
    pub fn route_get(&self, node: &str, q: &RouteQuery) -> Result<RouteGet> {
        let out = Command::new("ip")
            .args(["-n", &self.netns(node), "-j", "route", "get"])
            .args(q.args())
            .stdin(Stdio::null())
            .output()
            .context("cannot run ip route get")?;
        if !out.status.success() {
            bail!(
                "`ip route get {}` in {node}: {}",
                q.args().join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        RouteGet::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Runs a scamper trace in a node: `scamper -O json -p 100 -c 'trace OPTIONS' -i DST`
    /// (100 probes/s instead of scamper's default 20, to keep tests short).
    pub fn scamper_trace(
        &self,
        node: &str,
        dst: std::net::Ipv4Addr,
        options: &str,
    ) -> Result<ScamperTrace> {
        let command = format!("trace {options}");
        let dst = dst.to_string();
        let argv = [
            "scamper", "-O", "json", "-p", "100", "-c", &command, "-i", &dst,
        ];
        let out = self.exec(node, &argv)?;
        ScamperTrace::parse(&out)
    }

    /// Tears the testbed down now (also done on drop, and by the reaper at exit).
    pub fn down(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if self.down {
            return Ok(());
        }
        self.down = true;
        let out = script_command()
            .args(["down", "--id", &self.id])
            .stdin(Stdio::null())
            .output()
            .context("cannot run scripts/testbed down")?;
        if let Some(reaper) = self.reaper.lock().ok().and_then(|mut r| r.take()) {
            stop_reaper(reaper);
        }
        if !out.status.success() {
            bail!(
                "`scripts/testbed down --id {}` failed: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("testbed {}: {e:#}", self.id);
        }
    }
}

fn script_command() -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT);
    cmd
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read manifest {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("bad manifest {}", path.display()))
}

/// Starts `scripts/testbed reap` in its own session, so that it outlives this process
/// (and Ctrl-C of its terminal) and tears the testbed down when this process is gone.
fn spawn_reaper(id: &str) -> Result<Child> {
    Command::new("setsid")
        .arg("python3")
        .arg(SCRIPT)
        .args(["reap", "--id", id, "--pid", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the testbed reaper (setsid scripts/testbed reap)")
}

fn stop_reaper(mut reaper: Child) {
    let _ = reaper.kill();
    let _ = reaper.wait();
}

/// A short id unique among the testbeds of concurrently running test processes:
/// `t` and four base-36 digits mixed from the pid, a per-process counter and the clock
/// (collisions are caught by `up`, which refuses an id in use, and retried).
fn next_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(n).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ u64::from(nanos);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    let mut v = x % 36u64.pow(4);
    let mut digits = [b'0'; 4];
    for d in digits.iter_mut().rev() {
        *d = b"0123456789abcdefghijklmnopqrstuvwxyz"[(v % 36) as usize];
        v /= 36;
    }
    format!("t{}", String::from_utf8_lossy(&digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_lowercase_and_distinct() {
        let ids: Vec<String> = (0..200).map(|_| next_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 5);
            assert!(id.starts_with('t'));
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            );
        }
        let unique: std::collections::BTreeSet<_> = ids.iter().collect();
        assert!(unique.len() > 195, "too many collisions: {}", unique.len());
    }

    #[test]
    fn script_is_beside_the_crate() {
        assert!(Path::new(SCRIPT).is_file(), "{SCRIPT} missing");
    }
}
