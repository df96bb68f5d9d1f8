//! A running `nkpath-collector serve` for the HTTP tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_nkpath-collector");

/// A running `serve`; killed when dropped, its log printed if the test failed.
pub struct Server {
    pub child: Child,
    /// The address it listens on (`127.0.0.1:PORT`).
    pub addr: String,
    log: PathBuf,
}

impl Server {
    /// Starts `serve --listen LISTEN EXTRA...` on `db` and waits for its "listening on" line.
    pub fn start(db: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::start_with_prefix(&[], BIN, db, listen, extra)
    }

    /// Starts `PREFIX... BIN --db DB serve ...` (e.g. `ip netns exec NS` as the prefix).
    pub fn start_with_prefix(
        prefix: &[&str],
        bin: &str,
        db: &Path,
        listen: &str,
        extra: &[&str],
    ) -> Self {
        let log = db.with_extension(format!("{}.log", Uuid::new_v4()));
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(bin);
                command
            }
            None => Command::new(bin),
        };
        let mut child = command
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", listen])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening on "),
            "serve did not start: {line:?}; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        let addr = line.trim().rsplit("://").next().unwrap().to_owned();
        Self { child, addr, log }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- collector log:\n{}", self.log());
        }
    }
}
