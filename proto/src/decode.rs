//! Decoding a document from JSON: version check, then typed deserialization,
//! then validation, each failure naming the field at fault.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tagged::{PathCapture, join_path};
use crate::validate::{Validate, ValidationError};
use crate::version::{SCHEMA_VERSION, SchemaVersion};
use crate::{MultipathResult, PingResult, ResultRecord, TraceResult, UploadAck, UploadBatch};

/// A top-level document: it carries a `schema_version` and can be validated.
pub trait Versioned: Validate {
    /// The version the document says it follows.
    fn schema_version(&self) -> SchemaVersion;
}

impl Versioned for TraceResult {
    fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }
}

impl Versioned for MultipathResult {
    fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }
}

impl Versioned for PingResult {
    fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }
}

impl Versioned for ResultRecord {
    fn schema_version(&self) -> SchemaVersion {
        ResultRecord::schema_version(self)
    }
}

impl<R: Validate> Versioned for UploadBatch<R> {
    fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }
}

impl Versioned for UploadAck {
    fn schema_version(&self) -> SchemaVersion {
        self.schema_version
    }
}

/// Why a document could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The text is not JSON, or a field is missing or has the wrong type.
    #[error("invalid JSON{}: {error}", at(path))]
    Json {
        /// Path of the field being read when it failed, e.g.
        /// `hops[2].probes[0].reply.rtt_us`; empty for the document itself.
        path: String,
        /// serde_json's description, with line and column.
        error: serde_json::Error,
    },
    /// The document is of a major version this build cannot read.
    #[error(
        "schema_version {found} is not supported: this build reads {}.x; upgrade nkpath to read it",
        SCHEMA_VERSION.major
    )]
    UnsupportedMajor {
        /// The version the document declares.
        found: SchemaVersion,
    },
    /// A field is well-typed but breaks a rule of the schema, or
    /// `schema_version` is missing or malformed.
    #[error("invalid {field}: {reason}")]
    Field {
        /// Full path of the field, e.g. `hops[3].probes[0].reply.mpls_labels[0].label`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

impl DecodeError {
    /// Path of the field at fault (empty when it is the document itself),
    /// for a [`Refusal`](crate::Refusal) or a log line.
    pub fn field(&self) -> &str {
        match self {
            Self::Json { path, .. } => path,
            Self::UnsupportedMajor { .. } => "schema_version",
            Self::Field { field, .. } => field,
        }
    }
}

impl From<ValidationError> for DecodeError {
    fn from(e: ValidationError) -> Self {
        Self::Field {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// Decodes and validates one document.
///
/// 1. Reads `schema_version` alone, so that a document of another major
///    version is refused as such ([`DecodeError::UnsupportedMajor`]) rather
///    than with whatever type error its new shape would cause. Any `1.x`
///    passes: minor versions only add fields, which are ignored.
/// 2. Deserializes `T`; errors keep the path of the field being read.
/// 3. Runs [`Validate::validate`].
///
/// ```
/// use nkpath_proto::{decode, DecodeError, PingResult};
///
/// let json = r#"{
///     "schema_version": "1.0",
///     "result_id": "0b0e5f3c-7d7a-4a8e-9d43-2b1f1b7a6c01",
///     "agent_id": "vp-fra1",
///     "agent_version": "0.1.0",
///     "round_id": "5a3c1e2f-0000-4000-8000-000000000001",
///     "source": "198.51.100.7",
///     "target": "175.45.176.1",
///     "started_at": "2017-10-01T00:00:00Z",
///     "sent": 3,
///     "received": 4,
///     "rtts_us": [212000, 215500, 213250, 214000]
/// }"#;
/// let err = decode::<PingResult>(json).unwrap_err();
/// assert_eq!(err.field(), "received");
/// assert_eq!(err.to_string(), "invalid received: 4 is more than sent (3)");
/// ```
pub fn decode<T: Versioned + DeserializeOwned>(json: &str) -> Result<T, DecodeError> {
    decode_slice(json.as_bytes())
}

/// [`decode`] from bytes, e.g. an HTTP body or a spool row.
pub fn decode_slice<T: Versioned + DeserializeOwned>(json: &[u8]) -> Result<T, DecodeError> {
    if let Err(version_error) = check_version(json) {
        return Err(match version_error {
            // Not an object we can read the version from: the full
            // deserialization names where the text goes wrong.
            VersionError::Unreadable(e) => match deserialize::<T>(json) {
                Err(e) => e,
                Ok(_) => DecodeError::Json {
                    path: String::new(),
                    error: e,
                },
            },
            VersionError::Decode(e) => e,
        });
    }
    let value = deserialize::<T>(json)?;
    value.validate()?;
    Ok(value)
}

fn deserialize<T: DeserializeOwned>(json: &[u8]) -> Result<T, DecodeError> {
    let json_error = |path: String, error| DecodeError::Json { path, error };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let capture = PathCapture::start();
    let result = serde_path_to_error::deserialize(&mut deserializer);
    let inner_path = capture.finish();
    let value = result.map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error shows the root as ".".
        let path = if path == "." { "" } else { &path };
        json_error(join_path(path, &inner_path), e.into_inner())
    })?;
    // Nothing but whitespace may follow the document.
    deserializer
        .end()
        .map_err(|e| json_error(String::new(), e))?;
    Ok(value)
}

enum VersionError {
    /// The text is not a JSON object.
    Unreadable(serde_json::Error),
    Decode(DecodeError),
}

fn check_version(json: &[u8]) -> Result<(), VersionError> {
    // Only the version is read; every other field is skipped unparsed.
    #[derive(Deserialize)]
    struct Envelope {
        schema_version: Option<Value>,
    }
    let invalid = |reason: String| {
        VersionError::Decode(DecodeError::Field {
            field: "schema_version".into(),
            reason,
        })
    };
    let envelope: Envelope = serde_json::from_slice(json).map_err(VersionError::Unreadable)?;
    let version = match envelope.schema_version {
        None => {
            return Err(invalid(format!(
                "missing: every document starts with its version, e.g. \"schema_version\": \"{SCHEMA_VERSION}\""
            )));
        }
        Some(Value::String(text)) => text
            .parse::<SchemaVersion>()
            .map_err(|e| invalid(e.to_string()))?,
        Some(other) => {
            return Err(invalid(format!(
                "{other}, not a string like \"{SCHEMA_VERSION}\""
            )));
        }
    };
    if version.is_readable() {
        Ok(())
    } else {
        Err(VersionError::Decode(DecodeError::UnsupportedMajor {
            found: version,
        }))
    }
}
