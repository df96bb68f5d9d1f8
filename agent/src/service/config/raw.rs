//! The configuration file as written: structs that serde fills from the TOML, denying
//! unknown fields so that a typo is an error rather than a silently ignored setting. Defaults
//! are those of `examples/agent.toml`.

use std::path::PathBuf;

use nkpath_proto::Protocol;
use serde::Deserialize;

use super::{DEFAULT_BATCH_SIZE, DEFAULT_SPOOL_MAX_RESULTS, DEFAULT_SPOOL_PATH};
use crate::probing::engine::DEFAULT_MAX_IN_FLIGHT;
use crate::probing::pacing::{DEFAULT_PER_PREFIX_PPS, DEFAULT_PPS};
use crate::probing::privilege::DEFAULT_USER;
use crate::probing::targets::DEFAULT_TARGET;
use crate::probing::trace::TraceSettings;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) agent_id: String,
    pub(super) collector: RawCollector,
    #[serde(default = "default_prefixes")]
    pub(super) allowlist: Vec<String>,
    #[serde(default = "default_prefixes")]
    pub(super) targets: Vec<String>,
    #[serde(default = "default_protocol")]
    pub(super) protocol: Protocol,
    pub(super) port: Option<u16>,
    #[serde(default)]
    pub(super) schedule: RawSchedule,
    #[serde(default)]
    pub(super) probing: RawProbing,
    #[serde(default)]
    pub(super) liveness: RawLiveness,
    #[serde(default)]
    pub(super) dns: RawDns,
    #[serde(default)]
    pub(super) spool: RawSpool,
    #[serde(default)]
    pub(super) upload: RawUpload,
    #[serde(default = "default_user")]
    pub(super) user: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCollector {
    pub(super) url: String,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawJitter {
    Fraction(f64),
    Duration(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSchedule {
    pub(super) interval: String,
    pub(super) jitter: RawJitter,
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
pub(super) struct RawProbing {
    pub(super) pps: i64,
    pub(super) per_prefix_pps: i64,
    pub(super) attempts: i64,
    pub(super) timeout: String,
    pub(super) gap_limit: i64,
    pub(super) max_ttl: i64,
    pub(super) max_in_flight: i64,
    pub(super) stop_set: bool,
    pub(super) mda: bool,
    pub(super) mda_confidence: i64,
    pub(super) mda_max_probes: i64,
    pub(super) mda_max_seconds: i64,
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
            stop_set: true,
            mda: false,
            mda_confidence: 95,
            mda_max_probes: crate::probing::mda::run::DEFAULT_MAX_PROBES.into(),
            mda_max_seconds: crate::probing::mda::run::DEFAULT_MAX_TIME.as_secs() as i64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLiveness {
    pub(super) enabled: bool,
    pub(super) pings: i64,
    pub(super) timeout: String,
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
pub(super) struct RawDns {
    pub(super) resolver: Option<String>,
    pub(super) timeout: String,
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
pub(super) struct RawSpool {
    pub(super) path: PathBuf,
    pub(super) max_results: i64,
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
pub(super) struct RawUpload {
    pub(super) batch_size: i64,
    pub(super) max_backoff: String,
    pub(super) timeout: String,
    pub(super) interval: String,
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

pub(super) fn default_prefixes() -> Vec<String> {
    vec![DEFAULT_TARGET.to_owned()]
}

pub(super) fn default_protocol() -> Protocol {
    Protocol::Icmp
}

pub(super) fn default_user() -> String {
    DEFAULT_USER.to_owned()
}
