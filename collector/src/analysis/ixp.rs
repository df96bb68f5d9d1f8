//! IXP peering LAN prefixes: addresses there belong to an exchange, not to the AS whose
//! router answers, so hop mapping marks them instead of forcing them into an AS.
//!
//! `nkpath-collector ixp load FILE...` reads PeeringDB `ixpfx.json` dumps (names come from
//! `ixlan.json` and `ix.json` beside it when present) and PCH `ixp_subnets.csv` files, and
//! stores the IPv4 prefixes in the `settings` table (key `ixp_prefixes`, JSON), replacing
//! the previous list.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::bgp::PrefixMap;
use crate::store::Db;

const KEY: &str = "ixp_prefixes";

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
        reason: String,
    },
    /// The stored list is malformed.
    #[error("setting {KEY} in the database is malformed ({0}); load the IXP list again")]
    Stored(serde_json::Error),
    /// A database error.
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    /// A database error from the store.
    #[error(transparent)]
    Store(#[from] crate::store::DbError),
}

/// One IXP peering LAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IxpPrefix {
    /// The LAN prefix.
    pub prefix: Ipv4Net,
    /// The exchange's name.
    pub name: String,
}

/// The loaded IXP prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IxpTable {
    prefixes: Vec<IxpPrefix>,
    /// Index into `prefixes`, for the lookup every hop takes.
    index: PrefixMap<usize>,
}

impl IxpTable {
    /// A table of these prefixes.
    pub fn new(mut prefixes: Vec<IxpPrefix>) -> Self {
        prefixes.sort_by(|a, b| a.prefix.cmp(&b.prefix).then(a.name.cmp(&b.name)));
        prefixes.dedup_by(|a, b| a.prefix == b.prefix);
        let index = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.prefix, i))
            .collect();
        Self { prefixes, index }
    }

    /// The prefixes.
    pub fn prefixes(&self) -> &[IxpPrefix] {
        &self.prefixes
    }

    /// The most specific IXP prefix containing `addr`.
    pub fn lookup(&self, addr: Ipv4Addr) -> Option<&IxpPrefix> {
        self.index
            .longest_match(addr)
            .map(|(_, i)| &self.prefixes[*i])
    }

    /// The table stored in the database (empty when none was loaded).
    pub fn stored(db: &Db) -> Result<Self, IxpError> {
        let text: Option<String> = crate::settings::get(db.conn(), KEY)?;
        let Some(text) = text else {
            return Ok(Self::default());
        };
        let prefixes: Vec<IxpPrefix> = serde_json::from_str(&text).map_err(IxpError::Stored)?;
        Ok(Self::new(prefixes))
    }

    /// Stores this table in the database, replacing the previous one.
    pub fn store(&self, db: &Db) -> Result<(), IxpError> {
        db.conn().execute(
            "INSERT INTO settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [
                KEY,
                &serde_json::to_string(&self.prefixes).map_err(IxpError::Stored)?,
            ],
        )?;
        Ok(())
    }
}

/// Reads IXP prefixes from a PeeringDB `ixpfx.json` or a PCH `ixp_subnets.csv` (recognised by
/// content). IPv6 rows are skipped.
pub fn read_file(path: &Path) -> Result<Vec<IxpPrefix>, IxpError> {
    let text = std::fs::read_to_string(path).map_err(|source| IxpError::Read {
        path: path.to_owned(),
        source,
    })?;
    let format = |reason: String| IxpError::Format {
        path: path.to_owned(),
        reason,
    };
    if text.trim_start().starts_with('{') {
        read_peeringdb(path, &text).map_err(format)
    } else {
        read_pch(&text).map_err(|e| format(format!("not a PCH ixp_subnets CSV: {e}")))
    }
}

#[derive(Deserialize)]
struct PdbDump<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct PdbPrefix {
    prefix: String,
    #[serde(default)]
    ixlan_id: Option<u64>,
}

#[derive(Deserialize)]
struct PdbIxlan {
    id: u64,
    ix_id: u64,
}

#[derive(Deserialize)]
struct PdbIx {
    id: u64,
    name: String,
}

fn read_peeringdb(path: &Path, text: &str) -> Result<Vec<IxpPrefix>, String> {
    let dump: PdbDump<PdbPrefix> = serde_json::from_str(text).map_err(|e| {
        format!("not a PeeringDB ixpfx dump ({{\"data\": [{{\"prefix\": ...}}]}}): {e}")
    })?;
    let names = peeringdb_names(path).unwrap_or_default();
    Ok(dump
        .data
        .into_iter()
        .filter_map(|p| {
            let prefix: Ipv4Net = p.prefix.parse().ok()?;
            let name = p
                .ixlan_id
                .and_then(|id| names.get(&id).cloned())
                .unwrap_or_else(|| match p.ixlan_id {
                    Some(id) => format!("PeeringDB ixlan {id}"),
                    None => "PeeringDB IXP".to_owned(),
                });
            Some(IxpPrefix {
                prefix: prefix.trunc(),
                name,
            })
        })
        .collect())
}

/// ixlan id → exchange name, from `ixlan.json` and `ix.json` beside the prefix dump.
fn peeringdb_names(path: &Path) -> Option<HashMap<u64, String>> {
    let dir = path.parent()?;
    let ixlans: PdbDump<PdbIxlan> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ixlan.json")).ok()?).ok()?;
    let ixes: PdbDump<PdbIx> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ix.json")).ok()?).ok()?;
    let ix_names: HashMap<u64, String> = ixes.data.into_iter().map(|ix| (ix.id, ix.name)).collect();
    Some(
        ixlans
            .data
            .into_iter()
            .filter_map(|lan| Some((lan.id, ix_names.get(&lan.ix_id)?.clone())))
            .collect(),
    )
}

fn read_pch(text: &str) -> Result<Vec<IxpPrefix>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no column {name:?}"))
    };
    let (name_col, subnet_col) = (column("short_name")?, column("subnet")?);
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| e.to_string())?;
        let (Some(name), Some(subnet)) = (row.get(name_col), row.get(subnet_col)) else {
            continue;
        };
        if let Ok(prefix) = subnet.parse::<Ipv4Net>() {
            out.push(IxpPrefix {
                prefix: prefix.trunc(),
                name: name.to_owned(),
            });
        }
    }
    if out.is_empty() {
        return Err("no IPv4 subnet rows".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pch_csv_and_lookup() {
        let csv = "exchange_point_id, short_name, status, version, multicast, mlpa, subnet, participants\n\
                   2, NAP CABASE Buenos Aires, Active, IPv6, Unicast, None, 2001:13c7:6001::/64, 5\n\
                   2, NAP CABASE Buenos Aires, Active, IPv4, Unicast, None, 200.0.17.0/24, 71\n";
        let table = IxpTable::new(read_pch(csv).unwrap());
        assert_eq!(table.prefixes().len(), 1);
        let hit = table.lookup("200.0.17.9".parse().unwrap()).unwrap();
        assert_eq!(hit.name, "NAP CABASE Buenos Aires");
        assert!(table.lookup("200.0.18.9".parse().unwrap()).is_none());
    }

    #[test]
    fn lookup_takes_the_most_specific_lan() {
        let lan = |prefix: &str, name: &str| IxpPrefix {
            prefix: prefix.parse().unwrap(),
            name: name.into(),
        };
        let table = IxpTable::new(vec![
            lan("80.81.192.0/21", "DE-CIX wide"),
            lan("80.81.194.0/24", "DE-CIX LAN"),
        ]);
        let name = |a: &str| table.lookup(a.parse().unwrap()).map(|p| p.name.as_str());
        assert_eq!(name("80.81.194.7"), Some("DE-CIX LAN"));
        assert_eq!(name("80.81.193.7"), Some("DE-CIX wide"));
        assert_eq!(name("80.81.200.7"), None);
    }

    #[test]
    fn stored_round_trip() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(IxpTable::stored(&db).unwrap(), IxpTable::default());
        let table = IxpTable::new(vec![IxpPrefix {
            prefix: "206.223.119.0/24".parse().unwrap(),
            name: "Equinix Ashburn".into(),
        }]);
        table.store(&db).unwrap();
        assert_eq!(IxpTable::stored(&db).unwrap(), table);
    }
}
