//! The JSON export of validated ROA payloads.
//!
//! One shape, written by rpki-client (`-j`), Routinator (`--format json`), gortr and stayrtr:
//! `{"roas": [{"asn", "prefix", "maxLength", "ta", ...}], "metadata": {...}}`. The details
//! differ: `asn` is `"AS131279"` in older exports and the number `131279` in current
//! rpki-client; the generation time is `metadata.buildtime` (rpki-client, RFC 3339),
//! `metadata.generated` (Routinator and gortr, Unix seconds) or `metadata.generatedTime`
//! (Routinator, RFC 3339). A published export also holds broken entries (a `null` prefix, an
//! `asn` of `"AS"`): each is skipped with its reason, never guessed, and the rest loads.

use ipnet::{IpNet, Ipv4Net};
use serde_json::Value;

/// One validated ROA payload for IPv4: `asn` may originate `prefix` and its more-specifics
/// up to `/max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vrp {
    /// The ROA's prefix.
    pub prefix: Ipv4Net,
    /// The longest prefix length it allows.
    pub max_len: u8,
    /// The AS it authorises (0: none may originate, RFC 6483).
    pub asn: u32,
}

/// An entry of the export that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedVrp {
    /// Position in the `roas` array, from 0.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// A parsed export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrpFile {
    /// When the validator produced the export (Unix seconds), if the file says.
    pub generated: Option<i64>,
    /// The IPv4 payloads, in file order.
    pub vrps: Vec<Vrp>,
    /// Well-formed IPv6 payloads: counted, not kept (nkpath's targets are IPv4).
    pub ipv6: usize,
    /// Entries that could not be read.
    pub skipped: Vec<SkippedVrp>,
}

/// Why a whole file cannot be read as a VRP export.
#[derive(Debug, thiserror::Error)]
pub enum VrpFileError {
    /// Not JSON at all (an error page, a truncated download).
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but without the `roas` array.
    #[error("no \"roas\" array at the top level: not an rpki-client or Routinator JSON export")]
    NoRoas,
    /// A generation time that is not a time.
    #[error("metadata time {0:?} is neither Unix seconds nor an RFC 3339 time")]
    BadTime(String),
}

/// Parses an export; broken entries are listed in [`VrpFile::skipped`].
pub fn parse_vrp_file(bytes: &[u8]) -> Result<VrpFile, VrpFileError> {
    let doc: Value = serde_json::from_slice(bytes)?;
    let roas = doc
        .get("roas")
        .and_then(Value::as_array)
        .ok_or(VrpFileError::NoRoas)?;
    let mut file = VrpFile {
        generated: generation_time(doc.get("metadata"))?,
        vrps: Vec::with_capacity(roas.len()),
        ipv6: 0,
        skipped: Vec::new(),
    };
    for (index, entry) in roas.iter().enumerate() {
        match parse_entry(entry) {
            Ok(Entry::V4(vrp)) => file.vrps.push(vrp),
            Ok(Entry::V6) => file.ipv6 += 1,
            Err(reason) => file.skipped.push(SkippedVrp { index, reason }),
        }
    }
    Ok(file)
}

enum Entry {
    V4(Vrp),
    V6,
}

fn parse_entry(entry: &Value) -> Result<Entry, String> {
    let asn = parse_asn(entry.get("asn"))?;
    let prefix: IpNet = match entry.get("prefix") {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| format!("prefix {s:?} is not an IP prefix"))?,
        other => return Err(format!("prefix is {}, not a string", describe(other))),
    };
    let max_len = match entry.get("maxLength") {
        Some(v) => v
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("maxLength {v} is not a prefix length"))?,
        // RFC 6482: without maxLength, the prefix's own length.
        None => prefix.prefix_len(),
    };
    if max_len < prefix.prefix_len() || max_len > prefix.max_prefix_len() {
        return Err(format!(
            "maxLength {max_len} outside {}..={} for {prefix}",
            prefix.prefix_len(),
            prefix.max_prefix_len()
        ));
    }
    if prefix.trunc() != prefix {
        return Err(format!("prefix {prefix} has host bits set"));
    }
    match prefix {
        IpNet::V4(prefix) => Ok(Entry::V4(Vrp {
            prefix,
            max_len,
            asn,
        })),
        IpNet::V6(_) => Ok(Entry::V6),
    }
}

/// `131279`, `"131279"`, `"AS131279"` or `"as131279"`.
fn parse_asn(value: Option<&Value>) -> Result<u32, String> {
    let parsed = match value {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => {
            let digits = s
                .strip_prefix("AS")
                .or_else(|| s.strip_prefix("as"))
                .unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                digits.parse().ok()
            }
        }
        _ => None,
    };
    parsed.ok_or_else(|| format!("asn is {}, not an AS number", describe(value)))
}

fn generation_time(metadata: Option<&Value>) -> Result<Option<i64>, VrpFileError> {
    let Some(metadata) = metadata else {
        return Ok(None);
    };
    for key in ["buildtime", "generated", "generatedTime"] {
        match metadata.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                return n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| VrpFileError::BadTime(n.to_string()));
            }
            Some(Value::String(s)) => {
                if let Ok(secs) = s.parse::<i64>() {
                    return Ok(Some(secs));
                }
                return nkpath_proto::timestamp::parse(s)
                    .map(|t| Some(t.unix_timestamp()))
                    .ok_or_else(|| VrpFileError::BadTime(s.clone()));
            }
            Some(other) => return Err(VrpFileError::BadTime(other.to_string())),
        }
    }
    Ok(None)
}

fn describe(value: Option<&Value>) -> String {
    match value {
        None => "missing".into(),
        Some(Value::Null) => "null".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_asn_spellings_and_every_generation_time_field() {
        let routinator = br#"{"roas": [{"asn": "AS131279", "prefix": "175.45.176.0/22",
            "maxLength": 22, "ta": "apnic"}], "metadata": {"generated": 1742256000}}"#;
        let file = parse_vrp_file(routinator).unwrap();
        assert_eq!(file.generated, Some(1_742_256_000));
        assert_eq!(
            file.vrps,
            [Vrp {
                prefix: "175.45.176.0/22".parse().unwrap(),
                max_len: 22,
                asn: 131_279
            }]
        );

        let rpki_client = br#"{"metadata": {"buildtime": "2025-03-18T00:00:00Z"},
            "roas": [{"asn": 131279, "prefix": "175.45.176.0/22", "maxLength": 24,
            "ta": "apnic", "expires": 1742860800}]}"#;
        let file = parse_vrp_file(rpki_client).unwrap();
        assert_eq!(file.generated, Some(1_742_256_000));
        assert_eq!(file.vrps[0].asn, 131_279);
        assert_eq!(file.vrps[0].max_len, 24);

        let generated_time =
            br#"{"roas": [], "metadata": {"generatedTime": "2025-03-18T00:00:00Z"}}"#;
        assert_eq!(
            parse_vrp_file(generated_time).unwrap().generated,
            Some(1_742_256_000)
        );
        assert_eq!(parse_vrp_file(br#"{"roas": []}"#).unwrap().generated, None);
    }

    #[test]
    fn broken_entries_are_skipped_with_their_reason_and_the_rest_loads() {
        let doc = br#"{"roas": [
            {"asn": "AS", "prefix": "172.31.0.0/16", "maxLength": 32},
            {"asn": "AS4242420916", "prefix": null, "maxLength": 112},
            {"asn": "AS64512", "prefix": "172.20.0.0/14", "maxLength": 12},
            {"asn": "AS64512", "prefix": "172.20.0.1/14", "maxLength": 24},
            {"asn": "AS64512", "prefix": "fd00::/8", "maxLength": 64},
            {"asn": "AS64512", "prefix": "172.20.0.0/14"}
        ]}"#;
        let file = parse_vrp_file(doc).unwrap();
        let reasons: Vec<(usize, &str)> = file
            .skipped
            .iter()
            .map(|s| (s.index, s.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (0, "asn is \"AS\", not an AS number"),
                (1, "prefix is null, not a string"),
                (2, "maxLength 12 outside 14..=32 for 172.20.0.0/14"),
                (3, "prefix 172.20.0.1/14 has host bits set"),
            ]
        );
        assert_eq!(file.ipv6, 1);
        // Without maxLength, the prefix's own length (RFC 6482).
        assert_eq!(file.vrps.len(), 1);
        assert_eq!(file.vrps[0].max_len, 14);
    }

    #[test]
    fn a_file_that_is_not_an_export_is_refused_whole() {
        assert!(matches!(
            parse_vrp_file(b"<html>"),
            Err(VrpFileError::Json(_))
        ));
        assert!(matches!(
            parse_vrp_file(b"{\"vrps\": []}"),
            Err(VrpFileError::NoRoas)
        ));
        assert!(matches!(
            parse_vrp_file(br#"{"roas": [], "metadata": {"buildtime": "yesterday"}}"#),
            Err(VrpFileError::BadTime(_))
        ));
    }
}
