//! The agent service's configuration file (`/etc/nkpath/agent.toml`).
//!
//! Reading happens in two steps. First the TOML is deserialized into the
//! `Raw*` structs, which deny unknown fields so that a typo is an error
//! rather than a silently ignored setting. Then `Validator` turns the raw
//! values into a [`Config`] of checked types, collecting every problem
//! instead of stopping at the first. Each problem names the key (e.g.
//! `probing.pps`) and, found through the spans of the parsed document, the
//! line it is on:
//!
//! ```text
//! /etc/nkpath/agent.toml:12: probing.pps = 5000: must be 1..=1000 packets per second
//! ```
//!
//! `examples/agent.toml` documents every option.
//!
//! Rooms: [`raw`] (the file as written), [`validate`] (checked values), [`error`] (problems
//! and their lines). Lines come from the spans toml gives the parsed document, looked up by
//! the problem's dotted key, so a default (not in the file) has none and a key in an array
//! (`targets[1]`) has its element's.

pub mod dropin;
pub mod enroll;
mod error;
mod raw;
mod validate;

pub use error::{ConfigError, Problem};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::Protocol;
use rand::Rng;

use crate::probing::pacing::Rates;
use crate::probing::targets::Allowlist;
use crate::probing::trace::TraceSettings;

/// Where `nkpath-agent run` looks for its configuration unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nkpath/agent.toml";

/// The spool's default location: systemd's `StateDirectory=nkpath`.
pub const DEFAULT_SPOOL_PATH: &str = "/var/lib/nkpath/spool.db";

/// Spooled results at which the agent stops starting new rounds.
pub const DEFAULT_SPOOL_MAX_RESULTS: u64 = 200_000;

/// Default results per upload.
pub const DEFAULT_BATCH_SIZE: usize = 500;

/// Most probes in flight the configuration may ask for.
pub const MAX_IN_FLIGHT: usize = 4096;

/// The shortest round interval: a whole /22 at a polite rate takes minutes.
pub const MIN_INTERVAL: Duration = Duration::from_mins(1);

/// The validated configuration of `nkpath-agent run`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// This agent's id in its results: 1..=64 characters of `[A-Za-z0-9._-]`.
    pub agent_id: String,
    /// Where results are uploaded.
    pub collector: Collector,
    /// What the agent may probe; nothing outside it, whatever anyone says.
    pub allowlist: Allowlist,
    /// What the agent probes each round (inside the allowlist).
    pub targets: Vec<Ipv4Net>,
    /// Probe protocol.
    pub protocol: Protocol,
    /// Destination port of UDP and TCP probes.
    pub port: u16,
    /// When rounds start.
    pub schedule: Schedule,
    /// How traces probe.
    pub probing: Probing,
    /// Liveness pings.
    pub liveness: Liveness,
    /// Hop name and ASN lookups.
    pub dns: Dns,
    /// The local spool.
    pub spool: SpoolSettings,
    /// The uploader.
    pub upload: UploadSettings,
    /// The unprivileged user to become after opening the sockets.
    pub user: String,
}

/// The collector to upload to.
#[derive(Debug, Clone)]
pub struct Collector {
    /// Base URL, http or https, e.g. `https://collector.example.org`;
    /// results go to `{url}/v1/results`.
    pub url: reqwest::Url,
    /// The bearer token.
    pub token: Token,
}

/// A bearer token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A token from its text.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// When rounds start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Time from one round's start to the next.
    pub interval: Duration,
    /// Random spread of each start, so that agents do not probe in step.
    pub jitter: Jitter,
}

/// The random spread of round starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// A fraction of the interval, 0..=0.5.
    Fraction(f64),
    /// An absolute spread, at most half the interval.
    Max(Duration),
}

impl Schedule {
    /// The largest shift of a round start either way.
    pub fn max_jitter(&self) -> Duration {
        match self.jitter {
            Jitter::Fraction(f) => self.interval.mul_f64(f),
            Jitter::Max(d) => d,
        }
    }

    /// The wait before the first round: a random part of the jitter, so that
    /// agents started together (after a reboot, a release) spread out at once.
    pub fn first_delay(&self, rng: &mut impl Rng) -> Duration {
        self.max_jitter().mul_f64(rng.random::<f64>())
    }

    /// The wait from one round's start to the next: the interval, shifted by
    /// up to [`Self::max_jitter`] either way.
    pub fn next_delay(&self, rng: &mut impl Rng) -> Duration {
        let jitter = self.max_jitter();
        let shift = jitter.mul_f64(rng.random::<f64>() * 2.0);
        (self.interval + shift).saturating_sub(jitter)
    }
}

/// How traces probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probing {
    /// Agent-wide and per-/24 rate caps.
    pub rates: Rates,
    /// Probes per TTL at most.
    pub attempts: u8,
    /// Wait for each probe's reply.
    pub timeout: Duration,
    /// Silent TTLs in a row before a trace gives up.
    pub gap_limit: u8,
    /// The last TTL probed.
    pub max_ttl: u8,
    /// Most probes awaiting an answer at once.
    pub max_in_flight: usize,
    /// Probe the hops a round's traces share once (Doubletree stop sets).
    pub stop_set: bool,
    /// Also one multipath trace per /24 each round; `None`: off.
    pub mda: Option<MdaRound>,
}

/// The multipath traces of a round (`probing.mda = true`): one per /24 of the
/// round's targets, toward the lowest address traced in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdaRound {
    /// The stopping rule's confidence.
    pub confidence: crate::probing::mda::Confidence,
    /// Most probes per multipath trace.
    pub max_probes: u32,
    /// Longest one multipath trace may run.
    pub max_time: Duration,
}

impl Probing {
    /// The per-trace settings of a scheduled round.
    pub fn trace_settings(&self) -> TraceSettings {
        TraceSettings {
            attempts: self.attempts,
            timeout: self.timeout,
            gap_limit: self.gap_limit,
            max_ttl: self.max_ttl,
            ..TraceSettings::SURVEY
        }
    }
}

/// Liveness pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// Whether targets are pinged each round.
    pub enabled: bool,
    /// Echo requests per target.
    pub pings: u32,
    /// Wait for each reply.
    pub timeout: Duration,
}

/// Hop name and ASN lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dns {
    /// The resolver to ask; `None` for the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
    /// Wait for each answer.
    pub timeout: Duration,
}

/// The local spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    /// The SQLite file.
    pub path: PathBuf,
    /// Spooled results at which the spool is full: the agent starts no new
    /// round until uploads bring it below (nothing is ever dropped).
    pub max_results: u64,
}

/// The uploader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadSettings {
    /// Results per upload, 1..=10 000.
    pub batch_size: usize,
    /// The longest wait between retries (and after a refused token).
    pub max_backoff: Duration,
    /// Time limit of one upload request.
    pub timeout: Duration,
    /// How often an idle uploader looks for new results.
    pub interval: Duration,
}

impl Config {
    /// The configuration in one line, for the log and `check-config`.
    pub fn summary(&self) -> String {
        let addresses: u64 = self
            .targets
            .iter()
            .map(|n| 1u64 << (32 - n.prefix_len()))
            .sum();
        format!(
            "agent {} uploads to {}; {} traces to {} ({} addresses, allowlist {}) every {} ± {}, at most {} packets/s ({} per /24); spool {} (full at {} results)",
            self.agent_id,
            self.collector.url,
            self.protocol,
            join(&self.targets),
            addresses,
            self.allowlist,
            humantime::format_duration(self.schedule.interval),
            humantime::format_duration(self.schedule.max_jitter()),
            self.probing.rates.pps(),
            self.probing.rates.per_prefix_pps(),
            self.spool.path.display(),
            self.spool.max_results,
        )
    }
}

fn join(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads and validates the configuration file with its drop-ins (`agent.d/*.toml` beside
/// it, see [`dropin`]) and the token file it names.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let drop_ins = dropin::files(&dropin::dir_of(path))?;
    match dropin::merge(&text, &drop_ins)? {
        Some(merged) => parse(path, &merged),
        None => parse(path, &text),
    }
}

/// `nkpath-agent check-config`: [`load`], plus the checks that depend on this
/// machine rather than on the file: the unprivileged user exists and the
/// spool's directory exists. Returns the configuration when all is well.
pub fn check(path: &Path) -> Result<Config, ConfigError> {
    let config = load(path)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut problems = Vec::new();
    let mut found = |key: &str, value: String, message: String| {
        problems.push(Problem {
            line: error::line_of_key(&text, key),
            key: key.to_owned(),
            value: Some(value),
            message,
        });
    };
    match crate::probing::accounts::resolve(&config.user) {
        Some(account) if account.uid == 0 => found(
            "user",
            quoted(&config.user),
            "has uid 0; name an unprivileged account (the default is \"nobody\")".into(),
        ),
        Some(_) => {}
        None => found(
            "user",
            quoted(&config.user),
            "no such user in /etc/passwd; create it, name another unprivileged account, or \
             give its numeric \"UID\" or \"UID:GID\""
                .into(),
        ),
    }
    if let Some(dir) = config
        .spool
        .path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        found(
            "spool.path",
            quoted(&config.spool.path.display().to_string()),
            format!(
                "directory {} does not exist; create it (systemd: StateDirectory=nkpath) or choose another path",
                dir.display()
            ),
        );
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}

/// Parses and validates configuration text; `path` names it in errors and
/// anchors a relative `token_file`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_owned(),
        problems,
    };
    let raw: raw::RawConfig =
        toml::from_str(text).map_err(|e| invalid(vec![error::syntax_problem(text, &e)]))?;
    let mut v = validate::Validator {
        text,
        problems: Vec::new(),
    };
    let config = v.config(path, raw);
    let mut problems = v.problems;
    if problems.is_empty()
        && let Some(config) = config
    {
        return Ok(config);
    }
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(invalid(problems))
}

pub(super) fn quoted(s: &str) -> String {
    format!("{s:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probing::engine::{DEFAULT_TCP_PORT, DEFAULT_UDP_PORT};

    const MINIMAL: &str = r#"
agent_id = "vp-fra1"
[collector]
url = "https://collector.example.org"
token = "s3cret"
"#;

    fn parse_text(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("agent.toml"), text)
    }

    fn errors(text: &str) -> String {
        parse_text(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_file_takes_the_defaults() {
        let c = parse_text(MINIMAL).unwrap();
        assert_eq!(c.agent_id, "vp-fra1");
        assert_eq!(c.targets, ["175.45.176.0/22".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(c.allowlist, Allowlist::default());
        assert_eq!(c.protocol, Protocol::Icmp);
        assert_eq!(c.schedule.interval, Duration::from_mins(15));
        assert_eq!(c.schedule.max_jitter(), Duration::from_secs(90));
        assert_eq!(c.probing.rates, Rates::default());
        assert!(c.probing.stop_set, "stop sets are on unless turned off");
        assert_eq!(c.spool.path, Path::new(DEFAULT_SPOOL_PATH));
        assert_eq!(c.user, "nobody");
        assert_eq!(c.collector.token.expose(), "s3cret");
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the token must not be printed"
        );
    }

    #[test]
    fn documented_example_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The example names a token file under /etc; give the token inline here.
        let text = text.replace("token_file = \"/etc/nkpath/token\"", "token = \"example\"");
        let c = parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.agent_id, "vp-example-1");
        assert_eq!(c.schedule.interval, Duration::from_mins(15));
        assert_eq!(c.protocol, Protocol::Icmp);
        assert!(c.liveness.enabled);
        assert_eq!(c.dns.resolver, None);
        assert!(c.probing.stop_set);
        let off = text.replace("stop_set = true", "stop_set = false");
        assert!(!parse(&path, &off).unwrap().probing.stop_set);
        assert_eq!(c.probing.mda, None, "multipath traces are opt-in");
        let on = text.replace("mda = false", "mda = true");
        let mda = parse(&path, &on).unwrap().probing.mda.expect("turned on");
        assert_eq!(mda.confidence, crate::probing::mda::Confidence::P95);
        assert_eq!(mda.max_probes, 3_000);
        let bad = on.replace("mda_confidence = 95", "mda_confidence = 90");
        let err = parse(&path, &bad).unwrap_err().to_string();
        assert!(err.contains("probing.mda_confidence"), "{err}");
    }

    #[test]
    fn rate_above_the_ceiling_names_line_and_key() {
        let text = format!("{MINIMAL}\n[probing]\npps = 5000\n");
        let err = errors(&text);
        assert_eq!(
            err,
            "agent.toml:8: probing.pps = 5000: must be 1..=1000 packets per second"
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let text = r#"
agent_id = "bad id"
targets = ["175.45.176.0/24", "8.8.8.0/24"]
[collector]
url = "ftp://collector.example.org"
token = "t"
[schedule]
jitter = 0.9
"#;
        let err = parse_text(text).unwrap_err();
        let lines: Vec<(Option<usize>, &str)> = err
            .problems()
            .iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (Some(2), "agent_id"),
                (Some(3), "targets[1]"),
                (Some(5), "collector.url"),
                (Some(8), "schedule.jitter")
            ]
        );
        let text = err.to_string();
        assert!(text.contains("outside the allowlist"), "{text}");
        assert!(text.contains("scheme \"ftp\""), "{text}");
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let text = format!("{MINIMAL}\n[probing]\nppps = 10\n");
        let err = errors(&text);
        assert!(
            err.starts_with("agent.toml:8: ppps: unknown field `ppps`"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = errors("agent_id = \"a\"\n[collector\nurl = 1\n");
        assert!(err.starts_with("agent.toml:2: "), "{err}");
    }

    #[test]
    fn jitter_is_a_fraction_or_a_duration() {
        let c = parse_text(&format!(
            "{MINIMAL}[schedule]\ninterval = \"1h\"\njitter = \"5m\"\n"
        ))
        .unwrap();
        assert_eq!(c.schedule.jitter, Jitter::Max(Duration::from_mins(5)));
        let err = errors(&format!(
            "{MINIMAL}[schedule]\ninterval = \"10m\"\njitter = \"6m\"\n"
        ));
        assert!(
            err.contains("schedule.jitter = \"6m\": must be 0s..=5m"),
            "{err}"
        );
        let err = errors(&format!(
            "{MINIMAL}[schedule]\ninterval = \"ten minutes\"\n"
        ));
        assert!(err.contains("schedule.interval = \"ten minutes\""), "{err}");
    }

    #[test]
    fn next_delay_stays_within_the_jitter() {
        let schedule = Schedule {
            interval: Duration::from_mins(10),
            jitter: Jitter::Fraction(0.1),
        };
        let mut rng = rand::rng();
        let delays: Vec<Duration> = (0..1000).map(|_| schedule.next_delay(&mut rng)).collect();
        assert!(
            delays
                .iter()
                .all(|d| (Duration::from_mins(9)..=Duration::from_mins(11)).contains(d))
        );
        // Spread out, not in step.
        assert!(delays.iter().any(|d| *d < Duration::from_secs(580)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(620)));
    }

    #[test]
    fn token_comes_from_a_file_next_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
        let text = MINIMAL.replace("token = \"s3cret\"", "token_file = \"token\"");
        let c = parse(&dir.path().join("agent.toml"), &text).unwrap();
        assert_eq!(c.collector.token.expose(), "from-file");

        let text = MINIMAL.replace("token = \"s3cret\"", "token_file = \"missing\"");
        let err = parse(&dir.path().join("agent.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(":5: collector.token_file"), "{err}");
        assert!(err.contains("cannot read it"), "{err}");
    }

    #[test]
    fn token_is_never_echoed() {
        let err = errors(&MINIMAL.replace("s3cret", "has space"));
        assert!(
            err.contains("collector.token: the token may only hold"),
            "{err}"
        );
        assert!(!err.contains("has space"), "{err}");
    }

    #[test]
    fn check_looks_at_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let text = "agent_id = \"t1\"\nuser = \"root\"\n[collector]\nurl = \"https://c.example.org\"\ntoken = \"t\"\n[spool]\npath = \"/nonexistent-nkpath/spool.db\"\n";
        std::fs::write(&path, text).unwrap();
        assert!(load(&path).is_ok());
        let err = check(&path).unwrap_err().to_string();
        assert!(
            err.contains("agent.toml:2: user = \"root\": has uid 0"),
            "{err}"
        );
        assert!(err.contains(":7: spool.path = \"/nonexistent-nkpath/spool.db\": directory /nonexistent-nkpath does not exist"), "{err}");
    }

    #[test]
    fn port_defaults_by_protocol() {
        let c = parse_text(&format!("protocol = \"tcp\"\n{MINIMAL}")).unwrap();
        assert_eq!(c.port, DEFAULT_TCP_PORT);
        let c = parse_text(&format!("protocol = \"udp\"\n{MINIMAL}")).unwrap();
        assert_eq!(c.port, DEFAULT_UDP_PORT);
        let err = errors(&format!("protocol = \"sctp\"\n{MINIMAL}"));
        assert!(err.starts_with("agent.toml:1: "), "{err}");
    }
}
