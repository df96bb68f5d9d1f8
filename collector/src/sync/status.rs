//! How each synced collector stands: the last file loaded, how old its BGP data is, and the
//! last error of its last pass.

use serde::Serialize;

use crate::store::sync::SyncStatus;
use crate::store::{Db, DbError};

/// One collector's sync status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectorStatus {
    /// The collector.
    pub collector: String,
    /// URL of the last file loaded by sync (newest slot).
    pub last_file: Option<String>,
    /// When the newest BGP data of this collector was recorded (RFC 3339).
    pub newest_data: Option<String>,
    /// Seconds from the newest BGP data to `now`.
    pub bgp_age_s: Option<i64>,
    /// When the last pass ended (RFC 3339).
    pub last_pass: Option<String>,
    /// The last pass's first error, if it had one.
    pub last_error: Option<String>,
}

/// The status of every collector sync has passed over, or loaded files of, at `now`
/// (UNIX seconds).
pub fn collector_status(db: &Db, now: i64) -> Result<Vec<CollectorStatus>, DbError> {
    let passes = db.sync_passes()?;
    let files = db.mrt_files()?;
    let mut names: Vec<String> = passes.iter().map(|p| p.collector.clone()).collect();
    names.extend(db.synced_collectors()?);
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let newest = files
            .iter()
            .filter(|f| f.collector == name)
            .map(|f| f.last_time)
            .max();
        let last_file = db
            .sync_files(&name)?
            .into_iter()
            .rev()
            .find(|f| f.status == SyncStatus::Loaded)
            .map(|f| f.url);
        let pass = passes.iter().find(|p| p.collector == name);
        out.push(CollectorStatus {
            collector: name,
            last_file,
            newest_data: newest.map(nkpath_proto::timestamp::display_unix),
            bgp_age_s: newest.map(|t| now - t),
            last_pass: pass.map(|p| nkpath_proto::timestamp::display(p.last_pass)),
            last_error: pass.and_then(|p| p.last_error.clone()),
        });
    }
    Ok(out)
}
