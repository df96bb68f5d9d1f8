//! Every rule a decoded value must follow beyond its JSON shape, in one
//! place. Serde checks types; these check ranges and the relations between
//! fields, so that a result that reaches the collector's store means what it
//! says.
//!
//! Errors name the field by its full path from the document root,
//! `hops[3].probes[0].reply.mpls_labels[0].label`: each level checks its own
//! fields by name and the level above prefixes its own position
//! ([`ValidationError::within`]), so paths cost nothing until something fails.

use std::fmt::{self, Display};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use serde_json::value::RawValue;
use time::{OffsetDateTime, UtcOffset};

use crate::limits;
use crate::version::parse_decimal;
use crate::{
    Hop, HopAnnotation, MplsLabel, MultipathHop, MultipathParams, MultipathResult, PingResult,
    Probe, ProbeParams, Reply, ResultRecord, SchemaVersion, TraceResult, UploadAck, UploadBatch,
};

/// A value that is well-typed but breaks a rule of the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// Full path of the offending field, e.g. `hops[3].probes[0].reply.rtt_us`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    /// An error about `field` (a path relative to the value being checked).
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error seen from the value that contains this one at
    /// `parent`: `ttl` within `hops[3]` is `hops[3].ttl`.
    #[must_use]
    pub fn within(mut self, parent: impl Display) -> Self {
        self.field = if self.field.is_empty() || self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Checks the rules of the schema that types alone cannot express.
///
/// [`decode`](crate::decode) calls it on every document; writers may call
/// it before sending so that they fail where the bug is.
pub trait Validate {
    /// `Ok` if the value follows every rule; otherwise the first broken one.
    fn validate(&self) -> Result<(), ValidationError>;
}

impl Validate for ProbeParams {
    fn validate(&self) -> Result<(), ValidationError> {
        in_range("attempts", self.attempts, &limits::ATTEMPTS)?;
        in_range("timeout_ms", self.timeout_ms, &limits::TIMEOUT_MS)?;
        in_range("gap_limit", self.gap_limit, &limits::GAP_LIMIT)?;
        in_range("max_ttl", self.max_ttl, &limits::MAX_TTL)?;
        if self.first_ttl == 0 || self.first_ttl > self.max_ttl {
            return Err(ValidationError::new(
                "first_ttl",
                format!(
                    "{} is outside 1..=max_ttl ({})",
                    self.first_ttl, self.max_ttl
                ),
            ));
        }
        in_range("pps", self.pps, &limits::PPS)?;
        in_range(
            "per_prefix_pps",
            self.per_prefix_pps,
            &limits::PER_PREFIX_PPS,
        )
    }
}

impl Validate for MplsLabel {
    fn validate(&self) -> Result<(), ValidationError> {
        in_range("label", self.label, &limits::MPLS_LABEL)?;
        in_range("tc", self.tc, &limits::MPLS_TC)
    }
}

impl Validate for TraceResult {
    fn validate(&self) -> Result<(), ValidationError> {
        check_schema_version(self.schema_version)?;
        check_trace_agent_id(&self.agent_id)?;
        check_agent_version(&self.agent_version)?;
        if self.flow.protocol() != self.protocol {
            return Err(ValidationError::new(
                "flow.protocol",
                format!(
                    "{}, but the trace's protocol is {}: the flow identifier must be of the protocol probed",
                    self.flow.protocol(),
                    self.protocol
                ),
            ));
        }
        self.params.validate().map_err(|e| e.within("params"))?;
        check_time("started_at", self.started_at)?;
        let mut previous_ttl = None;
        for (i, hop) in self.hops.iter().enumerate() {
            check_hop(hop, previous_ttl, &self.params).map_err(|e| e.within(Index("hops", i)))?;
            check_inherited(hop, self.protocol).map_err(|e| e.within(Index("hops", i)))?;
            previous_ttl = Some(hop.ttl);
        }
        check_count("annotations", self.annotations.len(), &limits::ANNOTATIONS)?;
        for (i, annotation) in self.annotations.iter().enumerate() {
            check_annotation(annotation).map_err(|e| e.within(Index("annotations", i)))?;
        }
        if let Some(word) = &self.source_stop {
            check_source_stop(word, &self.agent_id)?;
        }
        Ok(())
    }
}

/// The source's stop word of an imported trace: only an imported trace has a
/// source to quote, and the word is short printable ASCII, as the sources
/// spell theirs.
fn check_source_stop(word: &str, agent_id: &str) -> Result<(), ValidationError> {
    if crate::imported_from(agent_id).is_none() {
        return Err(ValidationError::new(
            "source_stop",
            format!(
                "set on a trace of agent {agent_id:?}: only traces imported from a public \
                 source (agent_id \"atlas:…\" or \"scamper:…\") carry their source's stop reason"
            ),
        ));
    }
    if let Some(c) = word.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "source_stop",
            format!("contains {c:?}: expected printable ASCII without spaces"),
        ));
    }
    check_len("source_stop", word, &limits::SOURCE_STOP_LEN)
}

/// A hop's TTL lies in the probed range and follows the previous hop's; its
/// probes are numbered 1..=attempts, ascending, so that "attempt 2 of TTL 5"
/// names exactly one probe.
fn check_hop(
    hop: &Hop,
    previous_ttl: Option<u8>,
    params: &ProbeParams,
) -> Result<(), ValidationError> {
    let ttls = params.first_ttl..=params.max_ttl;
    if !ttls.contains(&hop.ttl) {
        return Err(ValidationError::new(
            "ttl",
            format!(
                "{} is outside the probed range first_ttl..=max_ttl ({}..={})",
                hop.ttl, params.first_ttl, params.max_ttl
            ),
        ));
    }
    if let Some(previous) = previous_ttl.filter(|&previous| hop.ttl <= previous) {
        return Err(ValidationError::new(
            "ttl",
            format!(
                "{} comes after ttl {previous}: hops must be sorted by ttl, each ttl once",
                hop.ttl
            ),
        ));
    }
    if hop.probes.is_empty() {
        return Err(ValidationError::new(
            "probes",
            "empty: a hop lists the probes sent with its ttl",
        ));
    }
    let mut previous_attempt = 0;
    for (i, probe) in hop.probes.iter().enumerate() {
        check_probe(probe, previous_attempt, params).map_err(|e| e.within(Index("probes", i)))?;
        previous_attempt = probe.attempt;
    }
    Ok(())
}

/// An inherited hop came from a trace of the same protocol: a flow of
/// another protocol would name no trace of the survey.
fn check_inherited(hop: &Hop, protocol: crate::Protocol) -> Result<(), ValidationError> {
    match hop.inherited {
        Some(from) if from.flow.protocol() != protocol => Err(ValidationError::new(
            "inherited.flow.protocol",
            format!(
                "{}, but the trace's protocol is {protocol}: a hop is inherited only from a trace of the same protocol",
                from.flow.protocol()
            ),
        )),
        _ => Ok(()),
    }
}

fn check_probe(
    probe: &Probe,
    previous_attempt: u8,
    params: &ProbeParams,
) -> Result<(), ValidationError> {
    if probe.attempt == 0 || probe.attempt > params.attempts {
        return Err(ValidationError::new(
            "attempt",
            format!(
                "{} is outside 1..=attempts ({})",
                probe.attempt, params.attempts
            ),
        ));
    }
    if probe.attempt <= previous_attempt {
        return Err(ValidationError::new(
            "attempt",
            format!(
                "{} comes after attempt {previous_attempt}: probes must be sorted by attempt, each once",
                probe.attempt
            ),
        ));
    }
    match &probe.reply {
        Some(reply) => check_reply(reply).map_err(|e| e.within("reply")),
        None => Ok(()),
    }
}

/// A reply is either ICMP (type and code) or TCP (flags), and only ICMP
/// errors quote the probe or carry MPLS extensions.
fn check_reply(reply: &Reply) -> Result<(), ValidationError> {
    if reply.icmp_code.is_some() != reply.icmp_type.is_some() {
        return Err(ValidationError::new(
            "icmp_code",
            "must be set exactly when icmp_type is",
        ));
    }
    let is_icmp = reply.icmp_type.is_some();
    match (is_icmp, reply.tcp_flags.is_some()) {
        (true, true) => {
            return Err(ValidationError::new(
                "tcp_flags",
                "set on an ICMP reply: a reply has icmp_type and icmp_code (ICMP) or tcp_flags (TCP), not both",
            ));
        }
        (false, false) => {
            return Err(ValidationError::new(
                "icmp_type",
                "missing: a reply has icmp_type and icmp_code (ICMP) or tcp_flags (TCP)",
            ));
        }
        _ => {}
    }
    if !is_icmp && reply.quoted_ttl.is_some() {
        return Err(ValidationError::new(
            "quoted_ttl",
            "set on a TCP reply: only ICMP errors quote the probe",
        ));
    }
    if !is_icmp && !reply.mpls_labels.is_empty() {
        return Err(ValidationError::new(
            "mpls_labels",
            "set on a TCP reply: only ICMP errors carry MPLS extensions",
        ));
    }
    check_count("mpls_labels", reply.mpls_labels.len(), &limits::MPLS_LABELS)?;
    for (i, label) in reply.mpls_labels.iter().enumerate() {
        label
            .validate()
            .map_err(|e| e.within(Index("mpls_labels", i)))?;
    }
    Ok(())
}

impl Validate for MultipathParams {
    fn validate(&self) -> Result<(), ValidationError> {
        if !limits::MDA_CONFIDENCES.contains(&self.confidence) {
            return Err(ValidationError::new(
                "confidence",
                format!("{} is not one of 95, 99 (percent)", self.confidence),
            ));
        }
        in_range("timeout_ms", self.timeout_ms, &limits::TIMEOUT_MS)?;
        in_range("max_ttl", self.max_ttl, &limits::MAX_TTL)?;
        if self.first_ttl == 0 || self.first_ttl > self.max_ttl {
            return Err(ValidationError::new(
                "first_ttl",
                format!(
                    "{} is outside 1..=max_ttl ({})",
                    self.first_ttl, self.max_ttl
                ),
            ));
        }
        in_range("gap_limit", self.gap_limit, &limits::GAP_LIMIT)?;
        in_range("max_probes", self.max_probes, &limits::MDA_MAX_PROBES)?;
        in_range("max_seconds", self.max_seconds, &limits::MDA_MAX_SECONDS)?;
        in_range("pps", self.pps, &limits::PPS)?;
        in_range(
            "per_prefix_pps",
            self.per_prefix_pps,
            &limits::PER_PREFIX_PPS,
        )
    }
}

impl Validate for MultipathResult {
    fn validate(&self) -> Result<(), ValidationError> {
        if self.schema_version < crate::version::MULTIPATH_SINCE {
            return Err(ValidationError::new(
                "schema_version",
                format!(
                    "{}: multipath results exist since {}",
                    self.schema_version,
                    crate::version::MULTIPATH_SINCE
                ),
            ));
        }
        check_schema_version(self.schema_version)?;
        check_trace_agent_id(&self.agent_id)?;
        check_agent_version(&self.agent_version)?;
        self.params.validate().map_err(|e| e.within("params"))?;
        check_time("started_at", self.started_at)?;
        let flows = self.flows.len();
        check_count(
            "flows",
            flows,
            &(0..=*limits::MDA_MAX_PROBES.end() as usize),
        )?;
        for (i, flow) in self.flows.iter().enumerate() {
            if flow.protocol() != self.protocol {
                return Err(ValidationError::new(
                    "protocol",
                    format!(
                        "{}, but the trace's protocol is {}: every flow must be of the protocol probed",
                        flow.protocol(),
                        self.protocol
                    ),
                )
                .within(Index("flows", i)));
            }
        }
        let mut previous_ttl = None;
        for (i, hop) in self.hops.iter().enumerate() {
            check_multipath_hop(hop, previous_ttl, &self.params, flows)
                .map_err(|e| e.within(Index("hops", i)))?;
            previous_ttl = Some(hop.ttl);
        }
        let mut previous = None;
        for (i, link) in self.links.iter().enumerate() {
            let key = (link.near_ttl, link.near, link.far_ttl, link.far);
            let at = |e: ValidationError| e.within(Index("links", i));
            if previous.is_some_and(|p| p >= key) {
                return Err(at(ValidationError::new(
                    "",
                    "out of order: links are sorted by (near_ttl, near, far_ttl, far), each once",
                )));
            }
            previous = Some(key);
            if link.far_ttl <= link.near_ttl {
                return Err(at(ValidationError::new(
                    "far_ttl",
                    format!("{} is not above near_ttl ({})", link.far_ttl, link.near_ttl),
                )));
            }
            for (field, ttl, address) in [
                ("near", link.near_ttl, link.near),
                ("far", link.far_ttl, link.far),
            ] {
                let seen = self
                    .hop(ttl)
                    .is_some_and(|hop| hop.addresses().any(|a| a == address));
                if !seen {
                    return Err(at(ValidationError::new(
                        field,
                        format!("{address} is not an interface of the hop at ttl {ttl}"),
                    )));
                }
            }
            check_flow_indexes(&link.flows, flows).map_err(at)?;
        }
        check_count("annotations", self.annotations.len(), &limits::ANNOTATIONS)?;
        for (i, annotation) in self.annotations.iter().enumerate() {
            check_annotation(annotation).map_err(|e| e.within(Index("annotations", i)))?;
        }
        if let Some(word) = &self.source_stop {
            check_source_stop(word, &self.agent_id)?;
        }
        Ok(())
    }
}

/// A multipath hop: TTL in range and sorted, interfaces each once, flow
/// indexes that name flows of the trace.
fn check_multipath_hop(
    hop: &MultipathHop,
    previous_ttl: Option<u8>,
    params: &MultipathParams,
    flows: usize,
) -> Result<(), ValidationError> {
    let ttls = params.first_ttl..=params.max_ttl;
    if !ttls.contains(&hop.ttl) {
        return Err(ValidationError::new(
            "ttl",
            format!(
                "{} is outside the probed range first_ttl..=max_ttl ({}..={})",
                hop.ttl, params.first_ttl, params.max_ttl
            ),
        ));
    }
    if let Some(previous) = previous_ttl.filter(|&previous| hop.ttl <= previous) {
        return Err(ValidationError::new(
            "ttl",
            format!(
                "{} comes after ttl {previous}: hops must be sorted by ttl, each ttl once",
                hop.ttl
            ),
        ));
    }
    for (i, interface) in hop.interfaces.iter().enumerate() {
        let at = |e: ValidationError| e.within(Index("interfaces", i));
        let address = interface.address;
        if hop.interfaces[..i]
            .iter()
            .any(|other| other.address == address)
        {
            return Err(at(ValidationError::new(
                "address",
                format!("{address} is listed twice: each interface once per hop"),
            )));
        }
        if let Some(reply) = &interface.reply {
            if reply.address != address {
                return Err(at(ValidationError::new(
                    "reply.address",
                    format!("{}, but the interface is {address}", reply.address),
                )));
            }
            check_reply(reply)
                .map_err(|e| e.within("reply"))
                .map_err(at)?;
        }
        check_flow_indexes(&interface.flows, flows).map_err(at)?;
    }
    check_flow_indexes(&hop.silent_flows, flows)
        .map_err(|e| ValidationError::new("silent_flows", e.reason))
}

/// Flow indexes: ascending, each once, below the number of flows.
fn check_flow_indexes(indexes: &[u32], flows: usize) -> Result<(), ValidationError> {
    let mut previous = None;
    for &index in indexes {
        if index as usize >= flows {
            return Err(ValidationError::new(
                "flows",
                format!("flow {index} does not exist: the trace lists {flows} flows"),
            ));
        }
        if previous.is_some_and(|p| p >= index) {
            return Err(ValidationError::new(
                "flows",
                format!("flow {index} is out of order: flow indexes are ascending, each once"),
            ));
        }
        previous = Some(index);
    }
    Ok(())
}

impl Validate for PingResult {
    fn validate(&self) -> Result<(), ValidationError> {
        check_schema_version(self.schema_version)?;
        check_agent_id(&self.agent_id)?;
        check_agent_version(&self.agent_version)?;
        check_time("started_at", self.started_at)?;
        in_range("sent", self.sent, &limits::PING_SENT)?;
        if self.received > self.sent {
            return Err(ValidationError::new(
                "received",
                format!("{} is more than sent ({})", self.received, self.sent),
            ));
        }
        if self.rtts_us.len() != self.received as usize {
            return Err(ValidationError::new(
                "rtts_us",
                format!(
                    "{} entries, but received is {}: one round-trip time per reply",
                    self.rtts_us.len(),
                    self.received
                ),
            ));
        }
        Ok(())
    }
}

impl Validate for ResultRecord {
    fn validate(&self) -> Result<(), ValidationError> {
        match self {
            Self::Trace(trace) => trace.validate(),
            Self::Ping(ping) => ping.validate(),
            Self::Multipath(multipath) => multipath.validate(),
        }
    }
}

impl<R: Validate> Validate for UploadBatch<R> {
    fn validate(&self) -> Result<(), ValidationError> {
        check_schema_version(self.schema_version)?;
        check_agent_id(&self.agent_id)?;
        check_agent_version(&self.agent_version)?;
        check_time("sent_at", self.sent_at)?;
        let count = self.results.len();
        if !limits::BATCH_RESULTS.contains(&count) {
            return Err(ValidationError::new(
                "results",
                format!(
                    "{count} results; a batch carries {}..={} (split bigger uploads)",
                    limits::BATCH_RESULTS.start(),
                    limits::BATCH_RESULTS.end()
                ),
            ));
        }
        for (i, result) in self.results.iter().enumerate() {
            result
                .validate()
                .map_err(|e| e.within(Index("results", i)))?;
        }
        Ok(())
    }
}

/// Results kept as raw JSON are checked when they are decoded on their own
/// (`decode::<ResultRecord>(raw.get())`), so that one bad result can be
/// refused without refusing its batch.
impl Validate for Box<RawValue> {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

/// Like `Box<RawValue>`: checked when decoded on its own.
impl Validate for serde_json::Value {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for UploadAck {
    fn validate(&self) -> Result<(), ValidationError> {
        check_schema_version(self.schema_version)?;
        check_time("received_at", self.received_at)?;
        if let Some(until) = self.pause_until {
            check_time("pause_until", until)?;
        }
        for (i, target) in self.targets.iter().flatten().enumerate() {
            check_prefix(target)
                .map_err(|reason| ValidationError::new("", reason).within(Index("targets", i)))?;
        }
        Ok(())
    }
}

/// `decode` refuses other majors before deserializing; this catches values
/// built in memory and results nested in a batch.
fn check_schema_version(version: SchemaVersion) -> Result<(), ValidationError> {
    if version.is_readable() {
        return Ok(());
    }
    Err(ValidationError::new(
        "schema_version",
        format!(
            "major version {} is not supported: this build reads {}.x",
            version.major,
            crate::SCHEMA_VERSION.major
        ),
    ))
}

/// Agent ids end up in file names, URLs and CSV columns, hence the small
/// alphabet.
fn check_agent_id(id: &str) -> Result<(), ValidationError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(c) = id.chars().find(|&c| !allowed(c)) {
        return Err(ValidationError::new(
            "agent_id",
            format!("contains {c:?}: only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"),
        ));
    }
    check_len("agent_id", id, &limits::AGENT_ID_LEN)
}

/// A trace's `agent_id` is an agent's id, or names the public source of an
/// imported trace: `SOURCE:ID`, a lowercase source name and an id of
/// `/`-separated parts of the agent alphabet (`atlas:5017/190`,
/// `scamper:trace.warts`). The colon can never start a name an agent was
/// given, so imported traces cannot pass for an agent's; `.` and `..` parts
/// are refused so the id stays harmless in a path or URL.
fn check_trace_agent_id(id: &str) -> Result<(), ValidationError> {
    let Some((source, rest)) = id.split_once(':') else {
        return check_agent_id(id);
    };
    let invalid = |why: &str| {
        Err(ValidationError::new(
            "agent_id",
            format!("{id:?} is not SOURCE:ID like \"atlas:5017/190\": {why}"),
        ))
    };
    if source.is_empty() || !source.bytes().all(|b| b.is_ascii_lowercase()) {
        return invalid("the source is 1 or more of a-z");
    }
    for part in rest.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return invalid("the id is '/'-separated parts, none empty, '.' or '..'");
        }
        if let Some(c) = part
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return invalid(&format!(
                "the id contains {c:?}: only A-Z, a-z, 0-9, '.', '_', '-' and '/' are allowed"
            ));
        }
    }
    check_len("agent_id", id, &limits::AGENT_ID_LEN)
}

/// A name is kept as the agent found it (escaped only when printed), but
/// not of any length.
fn check_annotation(annotation: &HopAnnotation) -> Result<(), ValidationError> {
    if let Some(name) = &annotation.name {
        check_len("name", name, &limits::ANNOTATION_NAME_LEN)?;
    }
    check_time("resolved_at", annotation.resolved_at)
}

/// A time must be writable in UTC ([`limits::UTC_YEARS`]): readers store and
/// compare times in UTC, and a conversion that fails there must fail here,
/// with the field's name, instead.
fn check_time(field: &str, time: OffsetDateTime) -> Result<(), ValidationError> {
    let year = time
        .checked_to_offset(UtcOffset::UTC)
        .map_or_else(|| utc_year_beyond_range(time), OffsetDateTime::year);
    if limits::UTC_YEARS.contains(&year) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!(
            "is year {year} in UTC; times must lie in years {}..={} in UTC (check the offset and the clock)",
            limits::UTC_YEARS.start(),
            limits::UTC_YEARS.end()
        ),
    ))
}

/// The UTC year of a time `time` cannot even represent in UTC: one past its
/// own year's neighbour in the offset's direction.
fn utc_year_beyond_range(time: OffsetDateTime) -> i32 {
    if time.offset().is_negative() {
        time.year() + 1
    } else {
        time.year() - 1
    }
}

fn check_count(
    field: &str,
    count: usize,
    range: &RangeInclusive<usize>,
) -> Result<(), ValidationError> {
    if range.contains(&count) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("{count} entries; at most {} are allowed", range.end()),
    ))
}

fn check_agent_version(version: &str) -> Result<(), ValidationError> {
    check_len("agent_version", version, &limits::AGENT_VERSION_LEN)
}

fn check_len(
    field: &str,
    text: &str,
    range: &RangeInclusive<usize>,
) -> Result<(), ValidationError> {
    let len = text.chars().count();
    if range.contains(&len) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!(
            "{len} characters long; expected {}..={}",
            range.start(),
            range.end()
        ),
    ))
}

fn in_range<T: PartialOrd + Display + Copy>(
    field: &str,
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), ValidationError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("{value} is outside {}..={}", range.start(), range.end()),
    ))
}

/// An IPv4 prefix in canonical CIDR form: `175.45.176.0/22`, not
/// `175.45.176.1/22`, because a target list decides what the agents probe
/// and must not be ambiguous.
fn check_prefix(text: &str) -> Result<(), String> {
    let malformed = || format!("{text:?} is not an IPv4 prefix like \"175.45.176.0/22\"");
    let (address, len) = text.split_once('/').ok_or_else(malformed)?;
    let address: Ipv4Addr = address.parse().map_err(|_| malformed())?;
    let len = parse_decimal(len)
        .filter(|&len| len <= 32)
        .ok_or_else(malformed)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(address) & mask);
    if network != address {
        return Err(format!(
            "{text:?} has host bits set: did you mean \"{network}/{len}\"?"
        ));
    }
    Ok(())
}

/// `name[index]`, displayed lazily for [`ValidationError::within`].
struct Index(&'static str, usize);

impl Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_builds_the_full_path() {
        let e = ValidationError::new("label", "too big")
            .within(Index("mpls_labels", 0))
            .within("reply")
            .within(Index("probes", 1))
            .within(Index("hops", 3));
        assert_eq!(e.field, "hops[3].probes[1].reply.mpls_labels[0].label");
        assert_eq!(
            ValidationError::new("", "bad")
                .within(Index("targets", 2))
                .field,
            "targets[2]"
        );
        assert_eq!(
            e.to_string(),
            "invalid hops[3].probes[1].reply.mpls_labels[0].label: too big"
        );
    }

    #[test]
    fn agent_ids_use_a_small_alphabet() {
        for good in ["a", "vp-fra1", "VP_01.nk-watch", &"x".repeat(64)] {
            check_agent_id(good).unwrap();
        }
        for bad in ["", "vp fra1", "vp/fra1", "vp\nfra1", "ü", &"x".repeat(65)] {
            let e = check_agent_id(bad).unwrap_err();
            assert_eq!(e.field, "agent_id", "{bad:?}");
        }
    }

    #[test]
    fn imported_traces_name_their_source() {
        for good in [
            "vp-fra1",
            "atlas:5017/190",
            "scamper:trace_google_dns_v4_default.warts",
            &format!("atlas:{}", "1".repeat(58)),
        ] {
            check_trace_agent_id(good).unwrap();
        }
        for bad in [
            "atlas:",
            ":190",
            "Atlas:5017/190",
            "atlas:5017//190",
            "atlas:5017/190/",
            "atlas:../190",
            "scamper:./x",
            "atlas:5017:190",
            "atlas:5017 190",
            "vp/../fra1",
            &format!("atlas:{}", "1".repeat(59)),
        ] {
            let e = check_trace_agent_id(bad).unwrap_err();
            assert_eq!(e.field, "agent_id", "{bad:?}");
        }
        // Pings and uploads keep the agent alphabet: only imported traces
        // carry a source.
        assert!(check_agent_id("atlas:5017/190").is_err());
    }

    #[test]
    fn prefixes_must_be_canonical_ipv4_cidr() {
        for good in [
            "175.45.176.0/22",
            "0.0.0.0/0",
            "10.1.2.3/32",
            "210.52.109.0/24",
        ] {
            assert_eq!(check_prefix(good), Ok(()), "{good}");
        }
        for bad in [
            "175.45.176.0",
            "175.45.176.0/",
            "175.45.176.0/33",
            "175.45.176.0/022",
            "175.45.176.0/-1",
            "175.45.176.0/22/1",
            "175.045.176.0/22",
            "2001:db8::/32",
            "",
        ] {
            assert!(
                check_prefix(bad)
                    .unwrap_err()
                    .contains("not an IPv4 prefix"),
                "{bad}"
            );
        }
        assert_eq!(
            check_prefix("175.45.177.0/22").unwrap_err(),
            "\"175.45.177.0/22\" has host bits set: did you mean \"175.45.176.0/22\"?"
        );
    }

    #[test]
    fn ranges_report_value_and_bounds() {
        assert_eq!(in_range("tc", 7u8, &limits::MPLS_TC), Ok(()));
        let e = in_range("tc", 8u8, &limits::MPLS_TC).unwrap_err();
        assert_eq!(e.to_string(), "invalid tc: 8 is outside 0..=7");
    }
}
