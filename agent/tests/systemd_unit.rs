//! The systemd unit that scripts/install-agent.sh installs is valid and grants
//! CAP_NET_RAW only.

use std::path::Path;
use std::process::Command;

const UNIT_TEMPLATE: &str = include_str!("../../scripts/install/nkpath-agent.service");

fn systemd_analyze_available() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (Debian package systemd); scripts/install-deps installs it"
        );
        eprintln!("skipping: systemd-analyze is not installed");
    }
    found
}

#[test]
fn unit_grants_only_cap_net_raw() {
    let lines: Vec<&str> = UNIT_TEMPLATE.lines().map(str::trim).collect();
    for expected in [
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=nkpath",
    ] {
        assert!(lines.contains(&expected), "the unit lacks {expected}");
    }
    assert!(lines.iter().any(|l| l.starts_with("MemoryMax=")));
    assert!(lines.iter().any(|l| l.starts_with("CPUQuota=")));
    assert!(!lines.iter().any(|l| l.starts_with("User=root")));
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if !systemd_analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_nkpath-agent"));
    let unit = UNIT_TEMPLATE.replace("@BINARY@", binary.to_str().unwrap());
    assert!(
        !unit.contains("@BINARY@"),
        "a placeholder is left in the unit"
    );
    let path = dir.path().join("nkpath-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // verify reports unknown directives and bad values as warnings on stderr.
    assert!(
        !stderr.contains("nkpath-agent.service:"),
        "systemd-analyze found problems in the unit:\n{stderr}"
    );
}

/// Most exposure `systemd-analyze security` may give the unit (0 = locked down, 10 = none).
const MAX_EXPOSURE: f64 = 2.5;

#[test]
fn unit_exposure_is_at_most_2_5_with_cap_net_raw_its_only_capability() {
    if !systemd_analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_nkpath-agent"));
    let path = dir.path().join("nkpath-agent.service");
    std::fs::write(
        &path,
        UNIT_TEMPLATE.replace("@BINARY@", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = stdout
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for ")?
                .1
                .split_once(": ")
        })
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in systemd-analyze's output:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    println!("systemd-analyze security --offline=yes: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is over {MAX_EXPOSURE}:\n{stdout}"
    );
    // The hardening keeps what the agent's work needs: no private network, no IP deny list,
    // no user namespace (raw sockets and uploads reach the Internet with CAP_NET_RAW).
    let lines: Vec<&str> = UNIT_TEMPLATE.lines().map(str::trim).collect();
    for forbidden in [
        "PrivateNetwork=yes",
        "PrivateUsers=yes",
        "IPAddressDeny=any",
    ] {
        assert!(!lines.contains(&forbidden), "the unit sets {forbidden}");
    }
    assert!(lines.contains(&"CapabilityBoundingSet=CAP_NET_RAW"));
}
