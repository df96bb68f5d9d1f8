//! `rpki load`: one export into the store, all or nothing.

use std::path::Path;

use crate::store::rpki::{NewRpkiFile, StoredVrp};
use crate::store::{Db, DbError};

use super::vrp::{SkippedVrp, VrpFile, VrpFileError, parse_vrp_file};

/// What one load stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpkiLoadSummary {
    /// The export's generation time (Unix seconds): from its metadata, or given by the user.
    pub generated: i64,
    /// IPv4 payloads stored.
    pub vrps: usize,
    /// IPv6 payloads counted and not kept.
    pub ipv6: usize,
    /// Entries that could not be read, with their reasons.
    pub skipped: Vec<SkippedVrp>,
}

/// Why an export was not loaded (nothing of it was stored).
#[derive(Debug, thiserror::Error)]
pub enum RpkiLoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not an export.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong with it.
        source: VrpFileError,
    },
    /// Neither the file nor the user says when it was generated.
    #[error(
        "{path} does not say when it was generated (no metadata.buildtime, generated or \
         generatedTime): give the time with --generated"
    )]
    NoTime {
        /// The file.
        path: String,
    },
    /// The database refused it.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Loads the export at `path`; `generated` overrides (or supplies) its generation time.
pub fn load_rpki_file(
    db: &mut Db,
    path: &Path,
    generated: Option<i64>,
    now: i64,
) -> Result<RpkiLoadSummary, RpkiLoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| RpkiLoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let file = parse_vrp_file(&bytes).map_err(|source| RpkiLoadError::Format {
        path: shown.clone(),
        source,
    })?;
    let generated = generated.or(file.generated).ok_or(RpkiLoadError::NoTime {
        path: shown.clone(),
    })?;
    store(db, &file, generated, &shown, now)?;
    Ok(RpkiLoadSummary {
        generated,
        vrps: file.vrps.len(),
        ipv6: file.ipv6,
        skipped: file.skipped,
    })
}

fn store(
    db: &mut Db,
    file: &VrpFile,
    generated: i64,
    source: &str,
    now: i64,
) -> Result<(), DbError> {
    let stored: Vec<StoredVrp> = file
        .vrps
        .iter()
        .map(|v| StoredVrp {
            net: u32::from(v.prefix.network()),
            len: v.prefix.prefix_len(),
            max_len: v.max_len,
            asn: v.asn,
        })
        .collect();
    let tx = db.write()?;
    tx.insert_rpki_file(
        NewRpkiFile {
            generated,
            loaded_at: now,
            source,
            ipv6: file.ipv6 as u64,
            skipped: file.skipped.len() as u64,
        },
        &stored,
    )?;
    tx.commit()
}
