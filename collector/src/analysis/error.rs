//! Why traces could not be analysed: the errors of the core's inputs.

use crate::bgp::BgpError;
use crate::settings::SettingsError;

/// Why traces could not be analysed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The BGP data could not be read.
    #[error("reading BGP data: {0}")]
    Bgp(#[from] BgpError),
    /// The target settings could not be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// A time the BGP data names cannot be represented (a corrupt stored row).
    #[error("BGP data names time {0} (UNIX seconds), out of range: the database is damaged")]
    TimeOutOfRange(i64),
}
