//! RPKI: validated ROA payloads (VRPs) as rpki-client and Routinator export them, route
//! origin validation against them (RFC 6811), and the state of an announcement at a time.
//!
//! Parsing works on bytes and validation on values; only `load` and `at_time` touch the store.

pub mod at_time;
pub mod load;
pub mod validate;
pub mod vrp;

pub use at_time::{DEFAULT_MAX_RPKI_AGE_S, state_at};
pub use load::{RpkiLoadError, RpkiLoadSummary, load_rpki_file};
pub use validate::{RpkiState, validate};
pub use vrp::{SkippedVrp, Vrp, VrpFile, VrpFileError, parse_vrp_file};
