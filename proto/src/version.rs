//! The schema version every top-level document carries, and the rule for
//! which versions a build can read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The version this build writes, and whose major version it reads.
pub const SCHEMA_VERSION: SchemaVersion = SchemaVersion { major: 1, minor: 5 };

/// The first version with multipath results (`"kind": "multipath"`): an
/// older reader refuses that kind, so a writer sends one only to a reader
/// that says it accepts it (see [`crate::UploadAck::result_kinds`]).
pub const MULTIPATH_SINCE: SchemaVersion = SchemaVersion { major: 1, minor: 4 };

/// A wire schema version, serialized as the string `"MAJOR.MINOR"`, e.g. `"1.0"`.
///
/// A minor version only adds optional fields, so a reader of `1.0` can read
/// any `1.x` document (it ignores the fields it does not know). A new major
/// version may change anything and is refused; see
/// [`SchemaVersion::is_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchemaVersion {
    /// Incompatible changes bump this.
    pub major: u16,
    /// Additions of optional fields bump this.
    pub minor: u16,
}

impl SchemaVersion {
    /// A version from its two parts.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// Whether this build can read documents of this version: same major
    /// version as [`SCHEMA_VERSION`], any minor version.
    pub const fn is_readable(self) -> bool {
        self.major == SCHEMA_VERSION.major
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a string is not a `"MAJOR.MINOR"` schema version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a schema version: expected \"MAJOR.MINOR\" like \"1.0\"")]
pub struct ParseSchemaVersionError {
    input: String,
}

impl FromStr for SchemaVersion {
    type Err = ParseSchemaVersionError;

    /// Parses the canonical form only: two decimal numbers without sign or
    /// leading zeros, so that every accepted string prints back unchanged.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSchemaVersionError {
            input: s.to_owned(),
        };
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        Ok(Self {
            major: parse_decimal(major).ok_or_else(err)?,
            minor: parse_decimal(minor).ok_or_else(err)?,
        })
    }
}

/// A number in canonical decimal: `0`, or digits without a leading zero.
/// Stricter than `u16::from_str`, which would also take "+1" and "01".
pub(crate) fn parse_decimal(part: &str) -> Option<u16> {
    let canonical = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    canonical.then(|| part.parse().ok()).flatten()
}

impl Serialize for SchemaVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SchemaVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = SchemaVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a schema version string like \"1.0\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SchemaVersion, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonical_versions() {
        for (text, version) in [
            ("1.0", SchemaVersion::new(1, 0)),
            ("1.7", SchemaVersion::new(1, 7)),
            ("2.10", SchemaVersion::new(2, 10)),
            ("0.0", SchemaVersion::new(0, 0)),
            ("65535.65535", SchemaVersion::new(u16::MAX, u16::MAX)),
        ] {
            assert_eq!(text.parse::<SchemaVersion>(), Ok(version), "{text}");
            assert_eq!(version.to_string(), text);
        }
    }

    #[test]
    fn rejects_non_canonical_versions() {
        for text in [
            "", "1", "1.", ".0", "x.y", "1.0.0", "01.0", "1.00", "+1.0", "-1.0", " 1.0", "1.0 ",
            "1,0", "65536.0", "1.65536",
        ] {
            let err = text.parse::<SchemaVersion>().unwrap_err();
            assert!(err.to_string().contains("MAJOR.MINOR"), "{text}: {err}");
        }
    }

    #[test]
    fn only_the_current_major_is_readable() {
        assert!(SCHEMA_VERSION.is_readable());
        assert!(SchemaVersion::new(1, 9).is_readable());
        assert!(!SchemaVersion::new(2, 0).is_readable());
        assert!(!SchemaVersion::new(0, 9).is_readable());
    }

    #[test]
    fn versions_order_by_major_then_minor() {
        assert!(SchemaVersion::new(1, 10) > SchemaVersion::new(1, 9));
        assert!(SchemaVersion::new(2, 0) > SchemaVersion::new(1, 10));
    }
}
