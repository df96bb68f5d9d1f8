//! The real collector (`nkpath-collector`) in the testbed's collector host, on a
//! database of its own, for the tests that run agents against it; and the `nobody`
//! ownership the agents' files need.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Group, Pid, User};
use nkpath_testbed::Testbed;

use super::wait_for;

/// The collector binary (`cargo test -p nkpath-agent` does not build it),
/// copied world-readable outside the build tree like the agent.
pub fn collector_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| nkpath_testbed::workspace_binary("nkpath-collector"))
}

/// The service user's uid and gid.
pub fn nobody() -> (nix::unistd::Uid, nix::unistd::Gid) {
    let user = User::from_name("nobody").unwrap().expect("user nobody");
    let group = Group::from_name("nogroup").unwrap().expect("group nogroup");
    (user.uid, group.gid)
}

/// Gives `path` to the service user, as `StateDirectory=` would.
pub fn chown_nobody(path: &Path) {
    let (uid, gid) = nobody();
    std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw())).unwrap();
}

/// `nkpath-collector` in the testbed's collector host, on a database of its own;
/// `serve` runs from [`Collector::start`] until dropped or killed.
pub struct Collector {
    pub node: String,
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Collector {
    /// A collector (not started yet) with its database in `work`, to listen on `port`
    /// at the collector host's address.
    pub fn new(tb: &Testbed, work: &Path, port: u16) -> Collector {
        let service = &tb.manifest().collector;
        Collector {
            node: service.node.clone(),
            listen: SocketAddr::new(service.address.into(), port),
            db: work.join("collector.db"),
            log: work.join("collector.log"),
            child: None,
        }
    }

    /// The base URL agents upload to.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// Runs `nkpath-collector --db DB ARGS...` to its end and returns its output;
    /// panics with its stderr when it fails.
    pub fn cli(&self, tb: &Testbed, args: &[&str]) -> String {
        let out = tb
            .command(&self.node, collector_binary())
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run nkpath-collector");
        assert!(
            out.status.success(),
            "nkpath-collector {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `agent add NAME`: registers an agent and returns its token.
    pub fn add_agent(&self, tb: &Testbed, name: &str) -> String {
        let token = self.cli(tb, &["agent", "add", name]).trim().to_owned();
        assert!(!token.is_empty(), "agent add printed no token");
        token
    }

    /// Starts `serve` and returns once it listens and `GET /v1/health` answers ok.
    pub fn start(&mut self, tb: &Testbed) {
        assert!(self.child.is_none(), "the collector is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = tb
            .command(&self.node, collector_binary())
            .arg("--db")
            .arg(&self.db)
            .args(["serve", "--listen", &self.listen.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start nkpath-collector serve");
        let stdout = child.stdout.take().unwrap();
        self.child = Some(child);
        // Reads stdout to its end, so that the collector never blocks on it.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(30));
        let expected = format!("listening on {}", self.url());
        assert!(
            first.as_deref() == Ok(expected.as_str()),
            "the collector did not say `{expected}`: {first:?}\n{}",
            self.log_text()
        );
        let health = format!("{}/v1/health", self.url());
        let answer = wait_for(Duration::from_secs(20), || {
            tb.exec(
                &self.node,
                &[
                    "python3",
                    "-c",
                    "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())",
                    &health,
                ],
            )
            .ok()
        });
        let answer =
            answer.unwrap_or_else(|| panic!("GET {health} never answered\n{}", self.log_text()));
        let json: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
        assert_eq!(json["status"], "ok", "health: {answer}");
    }

    /// Sends `signal` to the collector process.
    pub fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the collector runs");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal the collector");
    }

    /// SIGKILL, as a crash or `kill -9` would.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the collector runs");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The collector's log, for failure messages.
    pub fn log_text(&self) -> String {
        format!(
            "--- collector log:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
