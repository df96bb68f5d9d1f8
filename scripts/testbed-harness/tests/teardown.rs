//! Testbeds leave nothing behind: not after `down`, and not when their owner is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nkpath_testbed::{IcmpLimits, Options, SCRIPT, Testbed};

/// Namespaces of testbed `id` that still exist.
fn namespaces_of(id: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&format!("{id}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Live (non-zombie) processes whose command line names the state dir.
fn processes_of(state_dir: &Path) -> Vec<String> {
    let needle = state_dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn leftovers(id: &str, state_dir: &Path) -> Vec<String> {
    let mut left = namespaces_of(id);
    left.extend(processes_of(state_dir));
    if state_dir.exists() {
        left.push(format!("{} still exists", state_dir.display()));
    }
    left
}

fn wait_clean(id: &str, state_dir: &Path, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = leftovers(id, state_dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn down_removes_namespaces_processes_and_state() {
    let Some(tb) = Testbed::private(Options {
        icmp_limits: IcmpLimits::Realistic,
        ..Options::default()
    }) else {
        return;
    };
    let id = tb.id().to_owned();
    let state_dir = tb.state_dir().to_path_buf();
    assert_eq!(namespaces_of(&id).len(), tb.manifest().nodes.len());
    let daemons = processes_of(&state_dir);
    assert!(
        daemons.iter().filter(|p| p.contains("bird -c")).count() == 10
            && daemons.iter().any(|p| p.contains("dnsmasq")),
        "{daemons:#?}"
    );
    // Realistic limits: the kernel defaults, set explicitly in every node.
    let limit = tb
        .exec("cu", &["sysctl", "-n", "net.ipv4.icmp_ratelimit"])
        .unwrap();
    assert_eq!(limit.trim(), "1000");
    let status = Command::new("python3")
        .args([SCRIPT, "status", "--id", &id])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("namespaces (22/22)"), "{status}");
    assert!(status.contains("Established"), "{status}");

    tb.down().unwrap();
    let left = leftovers(&id, &state_dir);
    assert!(left.is_empty(), "left behind after down: {left:#?}");
    // down is idempotent.
    let again = Command::new("python3")
        .args([SCRIPT, "down", "--id", &id])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
}

#[test]
fn reaper_cleans_up_after_a_killed_owner() {
    if let Err(reason) = Testbed::available() {
        nkpath_testbed::skip_or_panic(&reason);
        return;
    }
    // A separate process owns the testbed and dies by SIGKILL: no Drop, no atexit.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_nkpath-testbed-hold"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    let id = lines.next().unwrap().unwrap();
    let id = id.strip_prefix("id ").unwrap().to_owned();
    let manifest = lines.next().unwrap().unwrap();
    let manifest = PathBuf::from(manifest.strip_prefix("manifest ").unwrap());
    let state_dir = manifest.parent().unwrap().to_path_buf();
    assert!(manifest.is_file());
    assert_eq!(namespaces_of(&id).len(), 22);
    assert!(!processes_of(&state_dir).is_empty());

    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let left = wait_clean(&id, &state_dir, Duration::from_secs(30));
    assert!(left.is_empty(), "the reaper left behind: {left:#?}");
}
