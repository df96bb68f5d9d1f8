//! RIS Live messages as the service sends them today (`wss://ris-live.ripe.net/v1/ws/`):
//! every message is a JSON object `{"type": ..., "data": {...}}`.
//!
//! - `ris_message` with `data.type` `UPDATE`: `timestamp` (UNIX seconds, fractional),
//!   `peer` (address), `peer_asn` (a string), `host` (`rrc21.ripe.net`), `path` (ASNs,
//!   an AS_SET as a nested array), `announcements` (`[{"next_hop", "prefixes": [...]}]`)
//!   and `withdrawals` (prefixes);
//! - `ris_message` with `data.type` `RIS_PEER_STATE`: `state` (`connected` or `down`) of
//!   the session with `peer`;
//! - `ris_message` of other BGP messages (`OPEN`, `KEEPALIVE`, `NOTIFICATION`): nothing
//!   the BGP state needs;
//! - `ris_error` (`data.message`), and control answers (`ris_subscribe_ok`, `pong`,
//!   `ris_rrc_list`).
//!
//! Parsing is pure and total: any text gives a [`LiveMessage`] or a [`ParseError`] saying
//! what is wrong, never a panic (the legacy 2018 flat lines are fuzz input for it).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde_json::{Map, Value};

use crate::bgp::aspath::{AsPath, Segment};

/// One parsed RIS Live message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveMessage {
    /// A BGP UPDATE a collector received from a peer.
    Update(LiveUpdate),
    /// A peer's session went up or down.
    PeerState(PeerState),
    /// Another BGP message (OPEN, KEEPALIVE, NOTIFICATION): not part of the routes.
    OtherBgp,
    /// An answer of the service that carries no BGP data (`ris_subscribe_ok`, `pong`, ...).
    Control(String),
    /// The service reports an error (`ris_error`); it may close the connection after it.
    ServiceError(String),
}

/// Who sent a message: the collector and the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSource {
    /// The collector, as nkpath names it (`rrc21`: the host without `.ripe.net`).
    pub collector: String,
    /// The peer's address.
    pub peer: IpAddr,
    /// The peer's ASN.
    pub peer_asn: u32,
    /// When the collector received the message (UNIX seconds, rounded down as in MRT).
    pub time: i64,
}

/// A BGP UPDATE as RIS Live sends it, its IPv4 prefixes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUpdate {
    /// Collector, peer and time.
    pub source: LiveSource,
    /// The AS path of the announcements (empty for a withdrawal-only message).
    pub path: AsPath,
    /// IPv4 prefixes announced with `path`.
    pub announced: Vec<Ipv4Net>,
    /// IPv4 prefixes withdrawn.
    pub withdrawn: Vec<Ipv4Net>,
    /// IPv6 prefixes in the message (skipped, as `bgp load` skips them).
    pub ipv6_skipped: usize,
}

/// A session state change (`RIS_PEER_STATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Collector, peer and time.
    pub source: LiveSource,
    /// The session is established (`connected`); `false`: it went down.
    pub up: bool,
}

/// Why a message was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object.
    #[error("not a JSON object: {0}")]
    NotJson(String),
    /// No `type`, or a `type` nkpath does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A field is missing or has the wrong shape.
    #[error("field {field}: {detail}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

fn field_error(field: &'static str, detail: impl Into<String>) -> ParseError {
    ParseError::Field {
        field,
        detail: detail.into(),
    }
}

/// Parses one websocket text message.
pub fn parse(text: &str) -> Result<LiveMessage, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Value::Object(top) = value else {
        return Err(ParseError::NotJson(
            "a JSON value that is not an object".into(),
        ));
    };
    let kind = top.get("type").and_then(Value::as_str).unwrap_or_default();
    let data = top.get("data");
    match kind {
        "ris_message" => {
            let Some(Value::Object(data)) = data else {
                return Err(field_error("data", "missing or not an object"));
            };
            ris_message(data)
        }
        "ris_error" => Ok(LiveMessage::ServiceError(
            data.and_then(|d| d.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_owned(),
        )),
        "ris_subscribe_ok" | "pong" | "ris_rrc_list" => Ok(LiveMessage::Control(kind.to_owned())),
        other => Err(ParseError::UnknownType(truncated(other))),
    }
}

fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}

fn ris_message(data: &Map<String, Value>) -> Result<LiveMessage, ParseError> {
    let kind = data.get("type").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "UPDATE" => update(data).map(LiveMessage::Update),
        "RIS_PEER_STATE" => {
            let source = source(data)?;
            let up = match data.get("state").and_then(Value::as_str) {
                Some("connected") => true,
                Some("down") => false,
                Some(other) => {
                    return Err(field_error(
                        "state",
                        format!(
                            "{:?} is neither \"connected\" nor \"down\"",
                            truncated(other)
                        ),
                    ));
                }
                None => return Err(field_error("state", "missing")),
            };
            Ok(LiveMessage::PeerState(PeerState { source, up }))
        }
        "OPEN" | "KEEPALIVE" | "NOTIFICATION" => Ok(LiveMessage::OtherBgp),
        other => Err(ParseError::UnknownType(format!(
            "ris_message/{}",
            truncated(other)
        ))),
    }
}

fn source(data: &Map<String, Value>) -> Result<LiveSource, ParseError> {
    let host = data
        .get("host")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("host", "missing or not a string"))?;
    let collector = collector_of_host(host)
        .ok_or_else(|| field_error("host", format!("{:?} names no collector", truncated(host))))?;
    let peer = data
        .get("peer")
        .and_then(Value::as_str)
        .ok_or_else(|| field_error("peer", "missing or not a string"))?;
    let peer: IpAddr = peer
        .parse()
        .map_err(|_| field_error("peer", format!("{:?} is not an address", truncated(peer))))?;
    let peer_asn = match data.get("peer_asn") {
        Some(Value::String(s)) => s.parse::<u32>().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
    .ok_or_else(|| field_error("peer_asn", "missing or not an ASN"))?;
    let time = data
        .get("timestamp")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && (0.0..1e11).contains(t))
        .ok_or_else(|| field_error("timestamp", "missing or not a UNIX time"))?;
    // MRT keeps whole seconds; rounding down puts a live row in the same second as the
    // archive's record of the same message.
    #[allow(clippy::cast_possible_truncation)]
    let time = time.floor() as i64;
    Ok(LiveSource {
        collector,
        peer,
        peer_asn,
        time,
    })
}

/// The collector a RIS Live `host` names: `rrc21.ripe.net` → `rrc21`. Other hosts (a test
/// collector) keep their name.
pub fn collector_of_host(host: &str) -> Option<String> {
    let name = host.trim().to_ascii_lowercase();
    let name = name.strip_suffix(".ripe.net").unwrap_or(&name).to_owned();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then_some(name)
}

fn update(data: &Map<String, Value>) -> Result<LiveUpdate, ParseError> {
    let source = source(data)?;
    let mut ipv6_skipped = 0;
    let mut v4 = |value: &Value, field: &'static str| -> Result<Option<Ipv4Net>, ParseError> {
        let text = value
            .as_str()
            .ok_or_else(|| field_error(field, "a prefix that is not a string"))?;
        match text.parse::<IpNet>() {
            Ok(IpNet::V4(p)) => Ok(Some(p.trunc())),
            Ok(IpNet::V6(_)) => {
                ipv6_skipped += 1;
                Ok(None)
            }
            Err(_) => Err(field_error(
                field,
                format!("{:?} is not a prefix", truncated(text)),
            )),
        }
    };
    let mut withdrawn = Vec::new();
    match data.get("withdrawals") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for p in list {
                withdrawn.extend(v4(p, "withdrawals")?);
            }
        }
        Some(_) => return Err(field_error("withdrawals", "not an array")),
    }
    let mut announced = Vec::new();
    match data.get("announcements") {
        None | Some(Value::Null) => {}
        Some(Value::Array(groups)) => {
            for group in groups {
                let prefixes = group
                    .get("prefixes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| field_error("announcements", "a group without prefixes"))?;
                for p in prefixes {
                    announced.extend(v4(p, "announcements")?);
                }
            }
        }
        Some(_) => return Err(field_error("announcements", "not an array")),
    }
    let path = match data.get("path") {
        None | Some(Value::Null) if !announced.is_empty() => {
            return Err(field_error("path", "announcements without an AS path"));
        }
        None | Some(Value::Null) => AsPath::default(),
        Some(value) => as_path(value)?,
    };
    Ok(LiveUpdate {
        source,
        path,
        announced,
        withdrawn,
        ipv6_skipped,
    })
}

/// `[3356, 4837, [131279, 4134]]`: ASNs in order, an AS_SET as a nested array.
fn as_path(value: &Value) -> Result<AsPath, ParseError> {
    let asn = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| field_error("path", "an element that is not an ASN"))
    };
    let Value::Array(items) = value else {
        return Err(field_error("path", "not an array"));
    };
    let mut segments = Vec::new();
    let mut sequence = Vec::new();
    for item in items {
        if let Value::Array(set) = item {
            if !sequence.is_empty() {
                segments.push(Segment::Seq(std::mem::take(&mut sequence)));
            }
            segments.push(Segment::Set(set.iter().map(asn).collect::<Result<_, _>>()?));
        } else {
            sequence.push(asn(item)?);
        }
    }
    if !sequence.is_empty() {
        segments.push(Segment::Seq(sequence));
    }
    Ok(AsPath::new(segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPDATE: &str = r#"{"type": "ris_message", "data": {"timestamp": 1733400000.52,
        "peer": "192.0.2.1", "peer_asn": "64500", "id": "x", "host": "rrc00.ripe.net",
        "type": "UPDATE", "path": [64500, 3356, 4837, 131279], "community": [[3356, 1]],
        "origin": "IGP", "announcements": [{"next_hop": "192.0.2.1",
        "prefixes": ["175.45.176.0/24", "2001:db8::/32"]}],
        "withdrawals": ["175.45.178.0/24"]}}"#;

    #[test]
    fn an_update_in_todays_format() {
        let LiveMessage::Update(u) = parse(UPDATE).unwrap() else {
            panic!("not an update")
        };
        assert_eq!(u.source.collector, "rrc00");
        assert_eq!(u.source.peer, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(u.source.peer_asn, 64500);
        assert_eq!(u.source.time, 1_733_400_000);
        assert_eq!(u.path.to_string(), "64500 3356 4837 131279");
        assert_eq!(u.announced, ["175.45.176.0/24".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(u.withdrawn, ["175.45.178.0/24".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(u.ipv6_skipped, 1);
    }

    #[test]
    fn as_sets_and_numeric_peer_asns() {
        let text = r#"{"type":"ris_message","data":{"timestamp":1.0,"peer":"10.0.0.1",
            "peer_asn":64500,"host":"rc","type":"UPDATE","path":[1,2,[3,4]],
            "announcements":[{"next_hop":"10.0.0.1","prefixes":["10.1.2.3/24"]}]}}"#;
        let LiveMessage::Update(u) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(u.path.to_string(), "1 2 {3,4}");
        assert_eq!(u.path.origins(), [3, 4]);
        assert_eq!(u.source.collector, "rc");
        // Host bits are cleared, as `bgp load` stores prefixes.
        assert_eq!(u.announced[0].to_string(), "10.1.2.0/24");
    }

    #[test]
    fn peer_states_and_service_messages() {
        let state = |s: &str| {
            parse(&format!(
                r#"{{"type":"ris_message","data":{{"timestamp":5.9,"peer":"10.0.0.1",
                "peer_asn":"1","host":"rrc01.ripe.net","type":"RIS_PEER_STATE","state":"{s}"}}}}"#
            ))
        };
        let LiveMessage::PeerState(p) = state("down").unwrap() else {
            panic!()
        };
        assert!(!p.up);
        assert_eq!(p.source.time, 5);
        assert!(matches!(
            state("connected"),
            Ok(LiveMessage::PeerState(PeerState { up: true, .. }))
        ));
        assert!(matches!(
            state("sideways"),
            Err(ParseError::Field { field: "state", .. })
        ));
        assert_eq!(
            parse(r#"{"type":"ris_error","data":{"message":"too slow"}}"#).unwrap(),
            LiveMessage::ServiceError("too slow".into())
        );
        assert_eq!(
            parse(r#"{"type":"pong","data":{}}"#).unwrap(),
            LiveMessage::Control("pong".into())
        );
        let keepalive = r#"{"type":"ris_message","data":{"type":"KEEPALIVE"}}"#;
        assert_eq!(parse(keepalive).unwrap(), LiveMessage::OtherBgp);
    }

    #[test]
    fn garbage_is_an_error_that_says_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not a JSON object"),
            ("[1,2]", "not a JSON object"),
            (r#"{"type":"x"}"#, "unknown message type"),
            (r#"{"type":"ris_message"}"#, "field data"),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","peer":"10.0.0.1","peer_asn":"1","timestamp":1}}"#,
                "field host",
            ),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rc","peer":"nope","peer_asn":"1","timestamp":1}}"#,
                "field peer",
            ),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rc","peer":"10.0.0.1","peer_asn":"1","timestamp":-1}}"#,
                "field timestamp",
            ),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rc","peer":"10.0.0.1","peer_asn":"1","timestamp":1,"path":[1,"x"],"announcements":[{"prefixes":["10.0.0.0/8"]}]}}"#,
                "field path",
            ),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rc","peer":"10.0.0.1","peer_asn":"1","timestamp":1,"announcements":[{"prefixes":["10.0.0.0/8"]}]}}"#,
                "announcements without an AS path",
            ),
            (
                r#"{"type":"ris_message","data":{"type":"UPDATE","host":"rc","peer":"10.0.0.1","peer_asn":"1","timestamp":1,"withdrawals":["10.0.0.0/33"]}}"#,
                "field withdrawals",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_legacy_2018_lines_are_refused_not_misread() {
        let legacy = r#"{"timestamp":1534175898.17,"host":"rrc21","peer":"37.49.236.123","prefix":"185.124.96.0/22","type":"W","peer_asn":"198290"}"#;
        assert!(matches!(parse(legacy), Err(ParseError::UnknownType(_))));
    }
}
