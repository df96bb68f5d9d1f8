//! Whether the testbed can run on this machine, and the skip-or-fail rule of its tests.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Programs `scripts/testbed` needs, with the Debian package that has each.
const TESTBED_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bird", "bird2"),
    ("birdc", "bird2"),
    ("dnsmasq", "dnsmasq-base"),
    ("nft", "nftables"),
    ("sysctl", "procps"),
    ("setsid", "util-linux"),
    ("python3", "python3"),
    ("dig", "dnsutils"),
];

/// Whether `CI=true`: testbed tests must run, never skip.
pub fn under_ci() -> bool {
    env::var("CI").is_ok_and(|v| v == "true")
}

/// The skip rule of testbed tests: prints `skipping: <reason>` and returns `false`, or,
/// under `CI=true`, panics with the reason.
pub fn skip_or_panic(reason: &str) -> bool {
    assert!(!under_ci(), "CI=true, so this test may not skip: {reason}");
    eprintln!("skipping: {reason}");
    false
}

/// `true` when every program is on `PATH`; otherwise applies [`skip_or_panic`].
/// For tests that drive peer tools (`scamper`, `traceroute`, `bgpdump`, ...).
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip_or_panic(&format!(
        "missing programs: {} (scripts/install-deps installs them)",
        missing.join(", ")
    ))
}

/// The program's path if it is on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

pub(crate) fn available() -> Result<(), String> {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    AVAILABLE.get_or_init(check).clone()
}

fn check() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err("the testbed needs Linux network namespaces".into());
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "not root (uid {uid}); the testbed builds network namespaces: run the tests as root"
            ));
        }
        None => return Err("cannot read the effective uid from /proc/self/status".into()),
    }
    let missing: Vec<String> = TESTBED_TOOLS
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(tool, package)| format!("{tool} ({package})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing programs: {}; scripts/install-deps installs them",
            missing.join(", ")
        ));
    }
    if !Path::new(crate::SCRIPT).is_file() {
        return Err(format!("{} not found", crate::SCRIPT));
    }
    netns_works()
}

/// Creates and deletes a throwaway namespace: root in a container may still lack the
/// rights to.
fn netns_works() -> Result<(), String> {
    let name = format!("nkpath-probe-{}", std::process::id());
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))
    };
    let add = run(&["netns", "add", &name])?;
    if !add.status.success() {
        return Err(format!(
            "`ip netns add` does not work here: {}",
            String::from_utf8_lossy(&add.stderr).trim()
        ));
    }
    let del = run(&["netns", "del", &name])?;
    if !del.status.success() {
        return Err(format!(
            "`ip netns del {name}` failed: {}",
            String::from_utf8_lossy(&del.stderr).trim()
        ));
    }
    Ok(())
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
