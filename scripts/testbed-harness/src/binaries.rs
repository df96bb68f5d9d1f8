//! The workspace's binaries as the tests of another crate need them.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::UNIX_EPOCH;

/// The binary `name` of the workspace package of the same name (e.g.
/// `nkpath-collector` from the agent's tests, which cargo does not build for
/// them), built by the cargo running the tests and copied world-readable
/// outside the build tree, so that an unprivileged user (the service's) can
/// run it. Built and copied once per test process.
pub fn workspace_binary(name: &str) -> PathBuf {
    static COPIES: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut copies = COPIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    copies
        .entry(name.to_owned())
        .or_insert_with(|| world_readable_copy(&build(name)))
        .clone()
}

fn build(name: &str) -> PathBuf {
    // A test binary lives in target/PROFILE/deps; the binaries in target/PROFILE.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/PROFILE");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    // The same selection as `cargo test --workspace` (every binary, every test
    // target), so that features resolve as they did for the running tests: the
    // binaries are then already built and this is a no-op. `-p NAME` alone
    // resolves features for that package only and recompiles it and its
    // dependencies (about a minute per binary on two cores).
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--workspace",
            "--bins",
            "--tests",
            "--manifest-path",
        ])
        .arg(&manifest);
    // What cargo set for this test process describes this package, not the build:
    // build scripts that watch these variables (ring's, cc's) would rerun.
    for (var, _) in std::env::vars_os() {
        if var.to_str().is_some_and(describes_the_running_test) {
            build.env_remove(&var);
        }
    }
    if profile_dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {name} failed");
    let built = profile_dir.join(name);
    assert!(built.is_file(), "{} missing", built.display());
    built
}

/// The variables cargo sets for a running test (`CARGO_PKG_NAME`, `OUT_DIR`, ...),
/// as opposed to those that configure cargo (`CARGO_HOME`, `CARGO_TARGET_DIR`, ...).
fn describes_the_running_test(var: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_CFG_",
    ];
    const NAMES: [&str; 4] = [
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|p| var.starts_with(p)) || NAMES.contains(&var)
}

/// One copy per build (named by size and time) in the temporary directory,
/// reused by later runs; copied then renamed, so that a concurrent test
/// process never runs a half copy.
fn world_readable_copy(built: &Path) -> PathBuf {
    let meta = fs::metadata(built).unwrap();
    let stamp = meta
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join("nkpath-test-binaries");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let name = built.file_name().unwrap().to_string_lossy();
    let copy = dir.join(format!("{name}-{}-{stamp}", meta.len()));
    if !copy.is_file() {
        let partial = dir.join(format!(".partial.{}", std::process::id()));
        fs::copy(built, &partial).unwrap();
        fs::set_permissions(&partial, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&partial, &copy).unwrap();
    }
    copy
}
