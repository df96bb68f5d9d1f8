//! The IXP table from files and in the database: `nkpath-collector ixp load FILE...` reads
//! PeeringDB `ixpfx.json` dumps (names from `ixlan.json` and `ix.json` beside them when
//! present) and PCH `ixp_subnets.csv` files ([`read_file`]), and stores the IPv4 prefixes as
//! one JSON list ([`store_table`]; the store keeps it as a setting), replacing the previous
//! list; reports read it back ([`stored_table`]).

use std::path::{Path, PathBuf};

use crate::analysis::ixp::{
    IxpFormatError, IxpPrefix, IxpTable, PeeringDbNames, is_peeringdb, parse_ixp_list,
};
use crate::store::{Db, DbError};

/// Why an IXP list could not be read or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IxpError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is neither a PeeringDB `ixpfx.json` dump nor a PCH `ixp_subnets.csv`.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what was expected.
        reason: IxpFormatError,
    },
    /// The stored list is malformed.
    #[error(
        "setting {key} in the database is malformed ({0}); load the IXP list again",
        key = crate::store::caches::IXP_TABLE_KEY
    )]
    Stored(serde_json::Error),
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Reads IXP prefixes from a PeeringDB `ixpfx.json` or a PCH `ixp_subnets.csv` (recognised by
/// content). IPv6 rows are skipped.
pub fn read_file(path: &Path) -> Result<Vec<IxpPrefix>, IxpError> {
    let text = std::fs::read_to_string(path).map_err(|source| IxpError::Read {
        path: path.to_owned(),
        source,
    })?;
    let names = if is_peeringdb(&text) {
        peeringdb_names_beside(path).unwrap_or_default()
    } else {
        PeeringDbNames::default()
    };
    parse_ixp_list(&text, &names).map_err(|reason| IxpError::Format {
        path: path.to_owned(),
        reason,
    })
}

/// ixlan id → exchange name, from `ixlan.json` and `ix.json` beside a PeeringDB prefix dump;
/// `None` when either is missing or unreadable (prefixes are then named by their ixlan id).
fn peeringdb_names_beside(path: &Path) -> Option<PeeringDbNames> {
    let dir = path.parent()?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    PeeringDbNames::parse(&read("ixlan.json")?, &read("ix.json")?)
}

/// The table stored in the database (empty when none was loaded).
pub fn stored_table(db: &Db) -> Result<IxpTable, IxpError> {
    let Some(text) = db.ixp_table_json()? else {
        return Ok(IxpTable::default());
    };
    let prefixes: Vec<IxpPrefix> = serde_json::from_str(&text).map_err(IxpError::Stored)?;
    Ok(IxpTable::new(prefixes))
}

/// Stores `table` in the database, replacing the previous one.
pub fn store_table(db: &Db, table: &IxpTable) -> Result<(), IxpError> {
    let json = serde_json::to_string(table.prefixes()).map_err(IxpError::Stored)?;
    db.put_ixp_table_json(&json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_round_trip() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(stored_table(&db).unwrap(), IxpTable::default());
        let table = IxpTable::new(vec![IxpPrefix {
            prefix: "206.223.119.0/24".parse().unwrap(),
            name: "Equinix Ashburn".into(),
        }]);
        store_table(&db, &table).unwrap();
        assert_eq!(stored_table(&db).unwrap(), table);
    }

    #[test]
    fn peeringdb_names_come_from_the_files_beside_the_dump() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "ixpfx.json",
            r#"{"data": [{"prefix": "80.81.192.0/21", "ixlan_id": 7},
                         {"prefix": "2001:7f8::/64", "ixlan_id": 7},
                         {"prefix": "206.223.119.0/24", "ixlan_id": 8}]}"#,
        );
        write("ixlan.json", r#"{"data": [{"id": 7, "ix_id": 31}]}"#);
        write(
            "ix.json",
            r#"{"data": [{"id": 31, "name": "DE-CIX Frankfurt"}]}"#,
        );
        let names: Vec<String> = read_file(&dir.path().join("ixpfx.json"))
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["DE-CIX Frankfurt", "PeeringDB ixlan 8"]);
        write("bad.csv", "no,columns\n");
        assert!(matches!(
            read_file(&dir.path().join("bad.csv")),
            Err(IxpError::Format { .. })
        ));
    }
}
