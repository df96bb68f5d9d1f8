//! Settings stored in the database: what the target network is.
//!
//! The target prefixes decide which routes `bgp load` keeps with their full AS path, so they
//! are fixed once BGP data is loaded: a database answers for one target.

use ipnet::Ipv4Net;

use crate::store::settings::SettingsStore;
use crate::store::{Db, DbError};

/// The default target: North Korea's block.
pub const DEFAULT_TARGET_PREFIX: &str = "175.45.176.0/22";
/// The default target AS: Star JV (North Korea).
pub const DEFAULT_TARGET_ASN: u32 = 131_279;

const KEY_PREFIXES: &str = "target_prefixes";
const KEY_ASN: &str = "target_asn";

/// The network nkpath watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Target prefixes (routes overlapping any of them keep their full AS path).
    pub prefixes: Vec<Ipv4Net>,
    /// The target's origin AS.
    pub asn: u32,
}

impl Default for Target {
    fn default() -> Self {
        Self {
            prefixes: vec![DEFAULT_TARGET_PREFIX.parse().expect("valid default prefix")],
            asn: DEFAULT_TARGET_ASN,
        }
    }
}

impl Target {
    fn prefixes_text(&self) -> String {
        self.prefixes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Settings that conflict with what the database already holds.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A stored setting does not parse.
    #[error("setting {key} in the database is malformed: {value:?}")]
    Malformed {
        /// The setting's key.
        key: &'static str,
        /// The stored text.
        value: String,
    },
    /// The database already holds BGP data for another target.
    #[error(
        "the database holds BGP data loaded for target prefixes {stored_prefixes} and AS{stored_asn}; \
         it cannot switch to {wanted_prefixes} and AS{wanted_asn}: use another --db, or the stored target"
    )]
    TargetConflict {
        /// Prefixes in the database.
        stored_prefixes: String,
        /// ASN in the database.
        stored_asn: u32,
        /// Prefixes asked for.
        wanted_prefixes: String,
        /// ASN asked for.
        wanted_asn: u32,
    },
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The stored target, if any, as `store` (the database or a write transaction) sees it.
pub fn stored_target(store: &impl SettingsStore) -> Result<Option<Target>, SettingsError> {
    let (Some(prefixes), Some(asn)) = (store.setting(KEY_PREFIXES)?, store.setting(KEY_ASN)?)
    else {
        return Ok(None);
    };
    let malformed_prefixes = || SettingsError::Malformed {
        key: KEY_PREFIXES,
        value: prefixes.clone(),
    };
    let parsed = prefixes
        .split(',')
        .map(|p| p.trim().parse::<Ipv4Net>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| malformed_prefixes())?;
    if parsed.is_empty() {
        return Err(malformed_prefixes());
    }
    let asn = asn.parse().map_err(|_| SettingsError::Malformed {
        key: KEY_ASN,
        value: asn,
    })?;
    Ok(Some(Target {
        prefixes: parsed,
        asn,
    }))
}

/// Decides the target for a load: the stored one when `wanted` is `None`; otherwise `wanted`,
/// which is stored, unless BGP data already loaded was kept for a different target. Call it
/// inside the load's transaction.
pub(crate) fn resolve_target(
    store: &impl SettingsStore,
    wanted: Option<&Target>,
) -> Result<Target, SettingsError> {
    let stored = stored_target(store)?;
    let target = match (stored, wanted) {
        (Some(stored), None) => return Ok(stored),
        (None, None) => Target::default(),
        (Some(stored), Some(wanted)) if same_target(&stored, wanted) => return Ok(stored),
        (Some(stored), Some(wanted)) => {
            if store.holds_bgp_data()? {
                return Err(SettingsError::TargetConflict {
                    stored_prefixes: stored.prefixes_text(),
                    stored_asn: stored.asn,
                    wanted_prefixes: wanted.prefixes_text(),
                    wanted_asn: wanted.asn,
                });
            }
            wanted.clone()
        }
        (None, Some(wanted)) => wanted.clone(),
    };
    store.put_setting(KEY_PREFIXES, &target.prefixes_text())?;
    store.put_setting(KEY_ASN, &target.asn.to_string())?;
    Ok(target)
}

fn same_target(a: &Target, b: &Target) -> bool {
    let norm = |t: &Target| {
        let mut p: Vec<Ipv4Net> = t.prefixes.iter().map(Ipv4Net::trunc).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    a.asn == b.asn && norm(a) == norm(b)
}

impl Db {
    /// The target stored in the database, or the default when none is stored yet.
    pub fn target(&self) -> Result<Target, SettingsError> {
        Ok(stored_target(self)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_then_stored_then_conflict_only_with_data() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.target().unwrap(), Target::default());
        let custom = Target {
            prefixes: vec!["10.1.0.0/16".parse().unwrap()],
            asn: 64500,
        };
        assert_eq!(resolve_target(&db, Some(&custom)).unwrap(), custom);
        assert_eq!(resolve_target(&db, None).unwrap(), custom);
        // No BGP data yet: switching is allowed.
        assert_eq!(
            resolve_target(&db, Some(&Target::default())).unwrap(),
            Target::default()
        );
        db.sql_for_tests()
            .execute_batch(
                "INSERT INTO collectors (id, name) VALUES (1, 'c');
                 INSERT INTO mrt_files VALUES (1, 1, 'f', 'a', 'b', 'none', 'updates', 'BGP4MP',
                   NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0, 0, NULL, NULL);",
            )
            .unwrap();
        let err = resolve_target(&db, Some(&custom)).unwrap_err();
        assert!(err.to_string().contains("cannot switch"), "{err}");
    }
}
