//! A result of either kind, as the agent spools and uploads it.

use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::multipath::MultipathResult;
use crate::ping::PingResult;
use crate::tagged::{self, Tagged};
use crate::trace::TraceResult;
use crate::version::SchemaVersion;

/// One result of any kind: the result's own object with a `"kind"` field
/// added, `"trace"`, `"ping"` or (since 1.4) `"multipath"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ResultRecord {
    /// A traceroute.
    Trace(TraceResult),
    /// A ping.
    Ping(PingResult),
    /// A multipath (MDA) trace, since 1.4. Readers before 1.4 refuse this
    /// kind: send it only to a collector that lists it in its
    /// [`crate::UploadAck::result_kinds`].
    Multipath(MultipathResult),
}

/// Every value of `"kind"` this build reads, as a collector advertises
/// them ([`crate::UploadAck::result_kinds`]).
pub const RESULT_KINDS: [&str; 3] = ["trace", "ping", "multipath"];

impl ResultRecord {
    /// The result's unique id.
    pub fn result_id(&self) -> Uuid {
        match self {
            Self::Trace(t) => t.result_id,
            Self::Ping(p) => p.result_id,
            Self::Multipath(m) => m.result_id,
        }
    }

    /// The agent that measured it.
    pub fn agent_id(&self) -> &str {
        match self {
            Self::Trace(t) => &t.agent_id,
            Self::Ping(p) => &p.agent_id,
            Self::Multipath(m) => &m.agent_id,
        }
    }

    /// The schema version the result follows.
    pub fn schema_version(&self) -> SchemaVersion {
        match self {
            Self::Trace(t) => t.schema_version,
            Self::Ping(p) => p.schema_version,
            Self::Multipath(m) => m.schema_version,
        }
    }

    /// The value of the `"kind"` field: one of [`RESULT_KINDS`].
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trace(_) => "trace",
            Self::Ping(_) => "ping",
            Self::Multipath(_) => "multipath",
        }
    }

    /// The measurement round it belongs to.
    pub fn round_id(&self) -> Uuid {
        match self {
            Self::Trace(t) => t.round_id,
            Self::Ping(p) => p.round_id,
            Self::Multipath(m) => m.round_id,
        }
    }

    /// The address measured.
    pub fn target(&self) -> Ipv4Addr {
        match self {
            Self::Trace(t) => t.target,
            Self::Ping(p) => p.target,
            Self::Multipath(m) => m.target,
        }
    }

    /// When the measurement started.
    pub fn started_at(&self) -> OffsetDateTime {
        match self {
            Self::Trace(t) => t.started_at,
            Self::Ping(p) => p.started_at,
            Self::Multipath(m) => m.started_at,
        }
    }
}

impl From<TraceResult> for ResultRecord {
    fn from(trace: TraceResult) -> Self {
        Self::Trace(trace)
    }
}

impl From<MultipathResult> for ResultRecord {
    fn from(multipath: MultipathResult) -> Self {
        Self::Multipath(multipath)
    }
}

impl From<PingResult> for ResultRecord {
    fn from(ping: PingResult) -> Self {
        Self::Ping(ping)
    }
}

/// The values of `"kind"`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Trace,
    Ping,
    Multipath,
}

impl<'de> Deserialize<'de> for ResultRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged::deserialize(deserializer)
    }
}

impl Tagged for ResultRecord {
    const TAG: &'static str = "kind";
    const EXPECTING: &'static str = "a result object with a \"kind\" field";
    type Tag = Kind;

    fn variant<'de, D: Deserializer<'de>>(tag: Kind, fields: D) -> Result<Self, D::Error> {
        match tag {
            Kind::Trace => TraceResult::deserialize(fields).map(Self::Trace),
            Kind::Ping => PingResult::deserialize(fields).map(Self::Ping),
            Kind::Multipath => MultipathResult::deserialize(fields).map(Self::Multipath),
        }
    }
}
