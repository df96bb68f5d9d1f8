//! Brings a private testbed up, prints its id and manifest path, and holds it until
//! killed or until stdin closes.
//!
//! The tests use it to check that a testbed whose owner is killed (SIGKILL, no chance
//! to clean up) is still removed, by the reaper. It is also a quick way to get a
//! testbed with the harness's semantics from a shell:
//!
//! ```text
//! sudo cargo run -p nkpath-testbed --bin nkpath-testbed-hold [realistic]
//! ```

use std::io::Read;

use nkpath_testbed::{IcmpLimits, Options, Testbed};

fn main() -> anyhow::Result<()> {
    let icmp_limits = match std::env::args().nth(1).as_deref() {
        None | Some("exact") => IcmpLimits::Exact,
        Some("realistic") => IcmpLimits::Realistic,
        Some(other) => anyhow::bail!("usage: nkpath-testbed-hold [exact|realistic], not {other}"),
    };
    let tb = Testbed::start(Options {
        icmp_limits,
        ..Options::default()
    })?;
    println!("id {}", tb.id());
    println!(
        "manifest {}",
        tb.state_dir().join("manifest.json").display()
    );
    // Hold until stdin reaches EOF (or the process is killed).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    tb.down()
}
