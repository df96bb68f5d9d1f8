//! IXP peering LAN prefixes: addresses there belong to an exchange, not to the AS whose
//! router answers, so hop mapping marks them instead of forcing them into an AS.
//!
//! [`IxpTable`] is the list as a value, with the longest-prefix match every hop takes;
//! [`parse_ixp_list`] reads the text of a PeeringDB `ixpfx.json` dump (exchange names from
//! `ixlan.json` and `ix.json`, [`PeeringDbNames`]) or a PCH `ixp_subnets.csv`. Reading the
//! files and keeping the table in the database (`nkpath-collector ixp load FILE...`) is the
//! adapter `sources::ixp` (outside the core).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::bgp::PrefixMap;

/// Why the text of an IXP list cannot be read: what is wrong, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IxpFormatError(String);

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
}

/// Reads the IXP prefixes of a PeeringDB `ixpfx.json` dump or a PCH `ixp_subnets.csv`
/// (recognised by content: a JSON object is PeeringDB's). `names` gives the exchange of each
/// PeeringDB ixlan id; without one, a prefix is named by its ixlan id. IPv6 rows are skipped.
pub fn parse_ixp_list(
    text: &str,
    names: &PeeringDbNames,
) -> Result<Vec<IxpPrefix>, IxpFormatError> {
    if is_peeringdb(text) {
        parse_peeringdb(text, names).map_err(IxpFormatError)
    } else {
        parse_pch(text).map_err(|e| IxpFormatError(format!("not a PCH ixp_subnets CSV: {e}")))
    }
}

/// Whether `text` looks like a PeeringDB dump (JSON) rather than a PCH CSV: PeeringDB names
/// its exchanges in other files ([`PeeringDbNames`]).
pub fn is_peeringdb(text: &str) -> bool {
    text.trim_start().starts_with('{')
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

fn parse_peeringdb(text: &str, names: &PeeringDbNames) -> Result<Vec<IxpPrefix>, String> {
    let dump: PdbDump<PdbPrefix> = serde_json::from_str(text).map_err(|e| {
        format!("not a PeeringDB ixpfx dump ({{\"data\": [{{\"prefix\": ...}}]}}): {e}")
    })?;
    Ok(dump
        .data
        .into_iter()
        .filter_map(|p| {
            let prefix: Ipv4Net = p.prefix.parse().ok()?;
            let name = p
                .ixlan_id
                .and_then(|id| names.0.get(&id).cloned())
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

/// The exchange name of each PeeringDB ixlan id (an `ixpfx.json` dump names ixlans only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeeringDbNames(HashMap<u64, String>);

impl PeeringDbNames {
    /// The names from PeeringDB's `ixlan.json` and `ix.json` dumps; `None` when either is not
    /// such a dump.
    pub fn parse(ixlan_json: &str, ix_json: &str) -> Option<Self> {
        let ixlans: PdbDump<PdbIxlan> = serde_json::from_str(ixlan_json).ok()?;
        let ixes: PdbDump<PdbIx> = serde_json::from_str(ix_json).ok()?;
        let ix_names: HashMap<u64, String> =
            ixes.data.into_iter().map(|ix| (ix.id, ix.name)).collect();
        Some(Self(
            ixlans
                .data
                .into_iter()
                .filter_map(|lan| Some((lan.id, ix_names.get(&lan.ix_id)?.clone())))
                .collect(),
        ))
    }
}

fn parse_pch(text: &str) -> Result<Vec<IxpPrefix>, String> {
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
        let table = IxpTable::new(parse_pch(csv).unwrap());
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
}
