//! `survey --out FILE` writes FILE whole and never through a symlink: run as root (as an
//! operator runs it; without root the test says it skips) against 127.0.0.1 only.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use nkpath_proto::{TraceResult, decode};

#[test]
fn a_symlink_at_the_survey_output_is_replaced_not_followed() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipping: a survey needs root for its raw sockets");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The agent drops to nobody before it renames its file into place.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let precious = dir.path().join("precious.txt");
    fs::write(&precious, "not a survey\n").unwrap();
    let out = dir.path().join("survey.jsonl");
    std::os::unix::fs::symlink(&precious, &out).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_nkpath-agent"))
        .args(["survey", "--agent-id", "t1", "--targets", "127.0.0.1/32"])
        .args(["--allow", "127.0.0.1/32", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(fs::read_to_string(&precious).unwrap(), "not a survey\n");
    assert!(fs::symlink_metadata(&out).unwrap().is_file());
    let text = fs::read_to_string(&out).unwrap();
    let traces: Vec<TraceResult> = text.lines().map(|l| decode(l).unwrap()).collect();
    assert_eq!(traces.len(), 1, "{text}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no file left behind"
    );
}
