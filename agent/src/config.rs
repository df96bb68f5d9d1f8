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

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::{Protocol, limits};
use rand::Rng;
use serde::Deserialize;

use crate::engine::{DEFAULT_MAX_IN_FLIGHT, DEFAULT_TCP_PORT, DEFAULT_UDP_PORT};
use crate::pacing::{DEFAULT_PER_PREFIX_PPS, DEFAULT_PPS, MAX_PPS, Rates};
use crate::privilege::DEFAULT_USER;
use crate::targets::{self, Allowlist, DEFAULT_TARGET, MAX_TARGETS};
use crate::trace::TraceSettings;

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

/// One thing wrong in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the key is in the file (a default is not).
    pub line: Option<usize>,
    /// Dotted key, e.g. `probing.pps` or `targets[1]`; empty for a syntax
    /// error that belongs to no key.
    pub key: String,
    /// The offending value as written, when it is safe to show.
    pub value: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or the token file) cannot be read.
    #[error("cannot read {}: {source}; pass --config FILE with the agent's configuration", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems; each is on its own line of the message.
    #[error("{}", render_problems(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Everything wrong, in file order where known.
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| render_problem(path, p))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_problem(path: &Path, p: &Problem) -> String {
    let mut out = path.display().to_string();
    if let Some(line) = p.line {
        out.push(':');
        out += &line.to_string();
    }
    out += ": ";
    if !p.key.is_empty() {
        out += &p.key;
        if let Some(value) = &p.value {
            out += " = ";
            out += value;
        }
        out += ": ";
    }
    out += &p.message;
    out
}

impl ConfigError {
    /// The problems found (empty when the file could not be read).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Read { .. } => &[],
            Self::Invalid { problems, .. } => problems,
        }
    }
}

/// Reads and validates the configuration file (and the token file it names).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
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
            line: line_of_key(&text, key),
            key: key.to_owned(),
            value: Some(value),
            message,
        });
    };
    match nix::unistd::User::from_name(&config.user) {
        Ok(Some(user)) if user.uid.is_root() => found(
            "user",
            quoted(&config.user),
            "has uid 0; name an unprivileged account (the default is \"nobody\")".into(),
        ),
        Ok(Some(_)) => {}
        Ok(None) | Err(_) => found(
            "user",
            quoted(&config.user),
            "no such user on this machine; create it or name another unprivileged account".into(),
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
    let raw: RawConfig =
        toml::from_str(text).map_err(|e| invalid(vec![syntax_problem(text, &e)]))?;
    let mut v = Validator {
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

fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e.span().map(|span| line_at(text, span.start));
    // For an unknown or duplicate key the span covers the key itself.
    let key = e
        .span()
        .and_then(|span| text.get(span))
        .filter(|s| !s.contains('\n') && s.len() <= 64 && !s.contains('"'))
        .filter(|_| e.message().contains("field"))
        .map(str::to_owned)
        .unwrap_or_default();
    let mut message = e.message().trim_end().to_owned();
    if message.starts_with("unknown field") {
        message += " (a typo? see examples/agent.toml for every option)";
    }
    Problem {
        line,
        key,
        value: None,
        message,
    }
}

/// 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// The line of a dotted key such as `probing.pps` or `targets[1]`, from the
/// spans of the parsed document; `None` when the key is not in the file.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut span = None;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let (_, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name)?;
        span = Some(value.span());
        let mut value = value;
        if let Some(i) = index
            && let DeValue::Array(items) = value.get_ref()
            && let Some(item) = items.get(i)
        {
            span = Some(item.span());
            value = item;
        }
        if parts.peek().is_some() {
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => break,
            }
        }
    }
    span.map(|s| line_at(text, s.start))
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

// ---- The file as written -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    agent_id: String,
    collector: RawCollector,
    #[serde(default = "default_prefixes")]
    allowlist: Vec<String>,
    #[serde(default = "default_prefixes")]
    targets: Vec<String>,
    #[serde(default = "default_protocol")]
    protocol: Protocol,
    port: Option<u16>,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    probing: RawProbing,
    #[serde(default)]
    liveness: RawLiveness,
    #[serde(default)]
    dns: RawDns,
    #[serde(default)]
    spool: RawSpool,
    #[serde(default)]
    upload: RawUpload,
    #[serde(default = "default_user")]
    user: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    url: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawJitter {
    Fraction(f64),
    Duration(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    interval: String,
    jitter: RawJitter,
}

impl Default for RawSchedule {
    fn default() -> Self {
        Self {
            interval: "15m".into(),
            jitter: RawJitter::Fraction(0.1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawProbing {
    pps: i64,
    per_prefix_pps: i64,
    attempts: i64,
    timeout: String,
    gap_limit: i64,
    max_ttl: i64,
    max_in_flight: i64,
}

impl Default for RawProbing {
    fn default() -> Self {
        let survey = TraceSettings::SURVEY;
        Self {
            pps: DEFAULT_PPS.into(),
            per_prefix_pps: DEFAULT_PER_PREFIX_PPS.into(),
            attempts: survey.attempts.into(),
            timeout: "2s".into(),
            gap_limit: survey.gap_limit.into(),
            max_ttl: survey.max_ttl.into(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLiveness {
    enabled: bool,
    pings: i64,
    timeout: String,
}

impl Default for RawLiveness {
    fn default() -> Self {
        Self {
            enabled: true,
            pings: 3,
            timeout: "2s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDns {
    resolver: Option<String>,
    timeout: String,
}

impl Default for RawDns {
    fn default() -> Self {
        Self {
            resolver: None,
            timeout: "2s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSpool {
    path: PathBuf,
    max_results: i64,
}

impl Default for RawSpool {
    fn default() -> Self {
        Self {
            path: DEFAULT_SPOOL_PATH.into(),
            max_results: DEFAULT_SPOOL_MAX_RESULTS as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpload {
    batch_size: i64,
    max_backoff: String,
    timeout: String,
    interval: String,
}

impl Default for RawUpload {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE as i64,
            max_backoff: "30m".into(),
            timeout: "60s".into(),
            interval: "30s".into(),
        }
    }
}

fn default_prefixes() -> Vec<String> {
    vec![DEFAULT_TARGET.to_owned()]
}

fn default_protocol() -> Protocol {
    Protocol::Icmp
}

fn default_user() -> String {
    DEFAULT_USER.to_owned()
}

// ---- Validation ------------------------------------------------------------

/// Checks raw values one by one, recording a [`Problem`] for each bad one.
struct Validator<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, value: Option<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: line_of_key(self.text, key),
            key: key.to_owned(),
            value,
            message: message.into(),
        });
    }

    /// Keeps `result`'s value, or records its error against `key`.
    fn take<T>(&mut self, key: &str, shown: String, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.problem(key, Some(shown), e)).ok()
    }

    fn int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
        unit: &str,
    ) -> Option<T> {
        let ok = (min..=max).contains(&value);
        let result = T::try_from(value).ok().filter(|_| ok);
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        self.take(
            key,
            value.to_string(),
            result.ok_or(format!("must be {min}..={max}{unit}")),
        )
    }

    fn duration(
        &mut self,
        key: &str,
        text: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let result = humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write a duration like \"30s\", \"15m\" or \"1h 30m\""))
            .and_then(|d| {
                if (min..=max).contains(&d) {
                    Ok(d)
                } else {
                    Err(format!(
                        "must be {}..={}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ))
                }
            });
        self.take(key, quoted(text), result)
    }

    fn prefixes(&mut self, key: &str, items: &[String]) -> Vec<Ipv4Net> {
        if items.is_empty() {
            self.problem(
                key,
                Some("[]".into()),
                format!("must list at least one prefix, e.g. [\"{DEFAULT_TARGET}\"]"),
            );
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let key = format!("{key}[{i}]");
                self.take(
                    &key,
                    quoted(item),
                    targets::parse_prefix(item).map_err(|e| e.to_string()),
                )
            })
            .collect()
    }

    fn config(&mut self, path: &Path, raw: RawConfig) -> Option<Config> {
        let agent_id = self.agent_id(&raw.agent_id);
        let collector = self.collector(path, raw.collector);
        let allow_nets = self.prefixes("allowlist", &raw.allowlist);
        let allowlist = Allowlist::new(allow_nets);
        let targets = self.targets(&raw.targets, &allowlist);
        let port = match (raw.protocol, raw.port) {
            (_, Some(0)) => {
                self.problem("port", Some("0".into()), "must be 1..=65535");
                None
            }
            (_, Some(port)) => Some(port),
            (Protocol::Tcp, None) => Some(DEFAULT_TCP_PORT),
            (_, None) => Some(DEFAULT_UDP_PORT),
        };
        let schedule = self.schedule(&raw.schedule);
        let probing = self.probing(&raw.probing);
        let liveness = self.liveness(&raw.liveness);
        let dns = self.dns(&raw.dns);
        let spool = self.spool(raw.spool);
        let upload = self.upload(&raw.upload);
        if raw.user.is_empty() {
            self.problem(
                "user",
                Some("\"\"".into()),
                "name the unprivileged account to run as, e.g. \"nobody\"",
            );
        }
        Some(Config {
            source: path.to_owned(),
            agent_id: agent_id?,
            collector: collector?,
            allowlist,
            targets,
            protocol: raw.protocol,
            port: port?,
            schedule: schedule?,
            probing: probing?,
            liveness: liveness?,
            dns: dns?,
            spool: spool?,
            upload: upload?,
            user: raw.user,
        })
    }

    fn agent_id(&mut self, id: &str) -> Option<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let result = if !limits::AGENT_ID_LEN.contains(&id.chars().count()) {
            Err("must be 1 to 64 characters long".to_owned())
        } else if let Some(c) = id.chars().find(|&c| !allowed(c)) {
            Err(format!("contains {c:?}: use only A-Z a-z 0-9 . _ -"))
        } else {
            Ok(id.to_owned())
        };
        self.take("agent_id", quoted(id), result)
    }

    fn collector(&mut self, path: &Path, raw: RawCollector) -> Option<Collector> {
        let url = reqwest::Url::parse(&raw.url)
            .map_err(|e| format!("not a URL ({e}); write e.g. \"https://collector.example.org\""))
            .and_then(|url| match url.scheme() {
                "http" | "https" => Ok(url),
                other => Err(format!("scheme {other:?} is not supported: use https:// (or http:// on a trusted network)")),
            })
            .and_then(|url| {
                if url.host_str().is_none_or(str::is_empty) {
                    Err("has no host".to_owned())
                } else if url.query().is_some() || url.fragment().is_some() {
                    Err("must not have a query or fragment: give the collector's base URL".to_owned())
                } else {
                    Ok(url)
                }
            });
        let url = self.take("collector.url", quoted(&raw.url), url);
        let token = match (raw.token, raw.token_file) {
            (Some(_), Some(_)) => {
                self.problem(
                    "collector.token_file",
                    None,
                    "give either collector.token or collector.token_file, not both",
                );
                None
            }
            (None, None) => {
                self.problem(
                    "collector",
                    None,
                    "needs a token: set collector.token_file (a file readable only by root) or collector.token",
                );
                None
            }
            (Some(token), None) => self.token("collector.token", &token),
            (None, Some(file)) => {
                // A relative token file is next to the configuration file.
                let file = path
                    .parent()
                    .map_or_else(|| file.clone(), |dir| dir.join(&file));
                match std::fs::read_to_string(&file) {
                    Ok(text) => self.token("collector.token_file", text.trim()),
                    Err(e) => {
                        self.problem(
                            "collector.token_file",
                            Some(quoted(&file.display().to_string())),
                            format!("cannot read it: {e}"),
                        );
                        None
                    }
                }
            }
        };
        Some(Collector {
            url: url?,
            token: token?,
        })
    }

    fn token(&mut self, key: &str, token: &str) -> Option<Token> {
        // Never echo the token itself.
        if token.is_empty() {
            self.problem(key, None, "the token is empty");
            None
        } else if !token.chars().all(|c| c.is_ascii_graphic()) {
            self.problem(
                key,
                None,
                "the token may only hold printable ASCII without spaces",
            );
            None
        } else {
            Some(Token::new(token))
        }
    }

    fn targets(&mut self, items: &[String], allowlist: &Allowlist) -> Vec<Ipv4Net> {
        let nets = self.prefixes("targets", items);
        let mut total: u64 = 0;
        for (i, net) in nets.iter().enumerate() {
            total += 1u64 << (32 - net.prefix_len());
            if !allowlist.prefixes().is_empty() && !allowlist.allows_net(net) {
                self.problem(
                    &format!("targets[{i}]"),
                    Some(quoted(&net.to_string())),
                    format!("is outside the allowlist ({allowlist}); add it to allowlist if you really mean to probe it"),
                );
            }
        }
        if total > MAX_TARGETS as u64 {
            self.problem(
                "targets",
                None,
                format!("{total} addresses in all; at most {MAX_TARGETS} (a /16)"),
            );
        }
        nets
    }

    fn schedule(&mut self, raw: &RawSchedule) -> Option<Schedule> {
        let interval = self.duration(
            "schedule.interval",
            &raw.interval,
            MIN_INTERVAL,
            Duration::from_hours(24 * 7),
        )?;
        let jitter = match &raw.jitter {
            RawJitter::Fraction(f) => {
                let ok = f.is_finite() && (0.0..=0.5).contains(f);
                self.take(
                    "schedule.jitter",
                    f.to_string(),
                    if ok {
                        Ok(Jitter::Fraction(*f))
                    } else {
                        Err("a fraction of the interval must be 0.0..=0.5".into())
                    },
                )
            }
            RawJitter::Duration(text) => self
                .duration("schedule.jitter", text, Duration::ZERO, interval / 2)
                .map(Jitter::Max),
        }?;
        Some(Schedule { interval, jitter })
    }

    fn probing(&mut self, raw: &RawProbing) -> Option<Probing> {
        let max = i64::from(MAX_PPS);
        let pps = self.int::<u32>("probing.pps", raw.pps, 1, max, "packets per second");
        let per_prefix_pps = self.int::<u32>(
            "probing.per_prefix_pps",
            raw.per_prefix_pps,
            1,
            max,
            "packets per second",
        );
        let attempts = self.int::<u8>("probing.attempts", raw.attempts, 1, 10, "");
        let timeout = self.duration(
            "probing.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        let gap_limit = self.int::<u8>("probing.gap_limit", raw.gap_limit, 1, 32, "");
        let max_ttl = self.int::<u8>("probing.max_ttl", raw.max_ttl, 1, 64, "");
        let max_in_flight = self.int::<usize>(
            "probing.max_in_flight",
            raw.max_in_flight,
            1,
            MAX_IN_FLIGHT as i64,
            "",
        );
        let rates = Rates::new(pps?, per_prefix_pps?)
            .map_err(|e| self.problem("probing", None, e.to_string()))
            .ok()?;
        Some(Probing {
            rates,
            attempts: attempts?,
            timeout: timeout?,
            gap_limit: gap_limit?,
            max_ttl: max_ttl?,
            max_in_flight: max_in_flight?,
        })
    }

    fn liveness(&mut self, raw: &RawLiveness) -> Option<Liveness> {
        let pings = self.int::<u32>("liveness.pings", raw.pings, 1, 10, "");
        let timeout = self.duration(
            "liveness.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        Some(Liveness {
            enabled: raw.enabled,
            pings: pings?,
            timeout: timeout?,
        })
    }

    fn dns(&mut self, raw: &RawDns) -> Option<Dns> {
        let resolver = match &raw.resolver {
            None => Some(None),
            Some(text) => {
                let parsed = text
                    .parse::<SocketAddr>()
                    .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map(Some)
                    .map_err(|_| {
                        "not an address: write e.g. \"9.9.9.9\" or \"192.0.2.53:53\"".to_owned()
                    });
                self.take("dns.resolver", quoted(text), parsed)
            }
        };
        let timeout = self.duration(
            "dns.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        Some(Dns {
            resolver: resolver?,
            timeout: timeout?,
        })
    }

    fn spool(&mut self, raw: RawSpool) -> Option<SpoolSettings> {
        if raw.path.as_os_str().is_empty() || raw.path.is_relative() {
            self.problem(
                "spool.path",
                Some(quoted(&raw.path.display().to_string())),
                format!("must be an absolute path, e.g. \"{DEFAULT_SPOOL_PATH}\""),
            );
        }
        let max_results = self.int::<u64>("spool.max_results", raw.max_results, 1, i64::MAX, "")?;
        Some(SpoolSettings {
            path: raw.path,
            max_results,
        })
    }

    fn upload(&mut self, raw: &RawUpload) -> Option<UploadSettings> {
        let (lo, hi) = (
            *limits::BATCH_RESULTS.start() as i64,
            *limits::BATCH_RESULTS.end() as i64,
        );
        let batch_size = self.int::<usize>("upload.batch_size", raw.batch_size, lo, hi, "results");
        let max_backoff = self.duration(
            "upload.max_backoff",
            &raw.max_backoff,
            Duration::from_secs(1),
            Duration::from_hours(24),
        );
        let timeout = self.duration(
            "upload.timeout",
            &raw.timeout,
            Duration::from_secs(1),
            Duration::from_mins(30),
        );
        let interval = self.duration(
            "upload.interval",
            &raw.interval,
            Duration::from_secs(1),
            Duration::from_hours(24),
        );
        Some(UploadSettings {
            batch_size: batch_size?,
            max_backoff: max_backoff?,
            timeout: timeout?,
            interval: interval?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
