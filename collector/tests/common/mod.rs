//! Shared test helpers: locating the shared real data, dumping a database for before/after
//! comparisons, and writing small MRT files with chosen routes.
//!
//! MRT fixtures are built as bgpkit-parser models and encoded with bgpkit-parser's own
//! encoder (`MrtRecord::encode`), so the bytes are what a real TABLE_DUMP_V2 / BGP4MP writer
//! produces, and the same crate parses them back in the loader.

#![allow(dead_code)]

pub mod html_marks;
pub mod mirror;
pub mod rislive;
pub mod server;
pub mod traces;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use bgpkit_parser::models::{
    AsPathSegment, Asn, AttributeValue, Attributes, Bgp4MpEnum, Bgp4MpMessage, Bgp4MpStateChange,
    Bgp4MpType, BgpMessage, BgpState, BgpUpdateMessage, CommonHeader, EntryType, MrtMessage,
    MrtRecord, NetworkPrefix, Origin, Peer, PeerIndexTable, RibAfiEntries, RibEntry,
    TableDumpV2Message, TableDumpV2Type,
};
use nkpath_collector::Db;

/// `nkpath-collector --db DB ARGS...`: its standard output; the test fails with the
/// command's standard error when it does not succeed.
pub fn collector(db: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nkpath-collector"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `../shared/data/real/<sub>` relative to the repository root, or `None` (with a message)
/// when it is missing outside CI. Under `CI=true` a missing directory fails the test.
pub fn shared_data(sub: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/real")
        .join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "shared data directory {} is missing (CI=true: this is a failure)",
        dir.display()
    );
    eprintln!("SKIP: shared data directory {} is missing", dir.display());
    None
}

/// Every row of every table, in a stable order: equal strings mean equal databases.
pub fn dump_all(db: &Db) -> String {
    let conn = db.sql_for_tests();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut out = String::new();
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let n = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    let _ = write!(line, "{v:?}|");
                }
                Ok(line)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        let _ = writeln!(out, "== {table} ({} rows)", rows.len());
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

/// A collector peer in a fixture.
#[derive(Debug, Clone, Copy)]
pub struct FixturePeer {
    pub ip: Ipv4Addr,
    pub asn: u32,
}

pub fn peer(ip: &str, asn: u32) -> FixturePeer {
    FixturePeer {
        ip: ip.parse().unwrap(),
        asn,
    }
}

/// Parses `"3356 4837 {1,2} 131279"` into bgpkit segments.
fn segments(path: &str) -> bgpkit_parser::models::AsPath {
    let mut segs = Vec::new();
    let mut seq: Vec<u32> = Vec::new();
    for token in path.split_whitespace() {
        if let Some(inner) = token.strip_prefix('{') {
            if !seq.is_empty() {
                segs.push(AsPathSegment::sequence(std::mem::take(&mut seq)));
            }
            let set: Vec<u32> = inner
                .trim_end_matches('}')
                .split(',')
                .map(|a| a.parse().unwrap())
                .collect();
            segs.push(AsPathSegment::set(set));
        } else {
            seq.push(token.parse().unwrap());
        }
    }
    if !seq.is_empty() {
        segs.push(AsPathSegment::sequence(seq));
    }
    bgpkit_parser::models::AsPath::from_segments(segs)
}

fn attributes(path: &str, next_hop: Ipv4Addr) -> Attributes {
    let mut attrs = Attributes::default();
    attrs.add_attr(AttributeValue::Origin(Origin::IGP).into());
    attrs.add_attr(AttributeValue::AsPath(segments(path)).into());
    attrs.add_attr(AttributeValue::NextHop(IpAddr::V4(next_hop)).into());
    attrs
}

fn record(time: u32, entry_type: EntryType, subtype: u16, message: MrtMessage) -> Vec<u8> {
    MrtRecord {
        common_header: CommonHeader {
            timestamp: time,
            microsecond_timestamp: None,
            entry_type,
            entry_subtype: subtype,
            length: 0,
        },
        message,
    }
    .encode()
    .expect("encodable fixture")
    .to_vec()
}

/// A TABLE_DUMP_V2 RIB dump taken at `time`: `routes` are (prefix, peer index in `peers`,
/// AS path), grouped into one RIB record per prefix in the order first seen.
pub fn rib(time: u32, peers: &[FixturePeer], routes: &[(&str, usize, &str)]) -> Vec<u8> {
    let mut table = PeerIndexTable::default();
    for p in peers {
        table
            .add_peer(Peer::new(p.ip, IpAddr::V4(p.ip), Asn::new_32bit(p.asn)))
            .unwrap();
    }
    let mut out = record(
        time,
        EntryType::TABLE_DUMP_V2,
        TableDumpV2Type::PeerIndexTable as u16,
        MrtMessage::TableDumpV2Message(TableDumpV2Message::PeerIndexTable(table)),
    );
    // Grouped by prefix in one pass: full-table fixtures have hundreds of thousands.
    let mut order: Vec<&str> = Vec::new();
    let mut by_prefix: std::collections::HashMap<&str, Vec<&(&str, usize, &str)>> =
        std::collections::HashMap::new();
    for route in routes {
        let entries = by_prefix.entry(route.0).or_default();
        if entries.is_empty() {
            order.push(route.0);
        }
        entries.push(route);
    }
    for (seq, prefix) in order.iter().enumerate() {
        let entries = by_prefix[prefix]
            .iter()
            .map(|(_, peer, path)| RibEntry {
                peer_index: *peer as u16,
                originated_time: time - 100,
                path_id: None,
                attributes: attributes(path, peers[*peer].ip),
            })
            .collect();
        let rib = RibAfiEntries {
            rib_type: TableDumpV2Type::RibIpv4Unicast,
            sequence_number: seq as u32,
            prefix: NetworkPrefix::new(prefix.parse().unwrap(), None),
            rib_entries: entries,
        };
        out.extend(record(
            time,
            EntryType::TABLE_DUMP_V2,
            TableDumpV2Type::RibIpv4Unicast as u16,
            MrtMessage::TableDumpV2Message(TableDumpV2Message::RibAfi(rib)),
        ));
    }
    out
}

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

/// One BGP4MP_MESSAGE_AS4 UPDATE from `peer`: `announce` with `path`, and `withdraw`.
pub fn update(
    time: u32,
    peer: FixturePeer,
    announce: &[&str],
    path: &str,
    withdraw: &[&str],
) -> Vec<u8> {
    let prefixes = |list: &[&str]| {
        list.iter()
            .map(|p| NetworkPrefix::new(p.parse().unwrap(), None))
            .collect()
    };
    let attributes = if announce.is_empty() {
        Attributes::default()
    } else {
        attributes(path, peer.ip)
    };
    let message = Bgp4MpMessage {
        msg_type: Bgp4MpType::MessageAs4,
        peer_asn: Asn::new_32bit(peer.asn),
        local_asn: Asn::new_32bit(6447),
        interface_index: 0,
        peer_ip: IpAddr::V4(peer.ip),
        local_ip: IpAddr::V4(LOCAL),
        bgp_message: BgpMessage::Update(BgpUpdateMessage {
            withdrawn_prefixes: prefixes(withdraw),
            attributes,
            announced_prefixes: prefixes(announce),
        }),
    };
    record(
        time,
        EntryType::BGP4MP,
        Bgp4MpType::MessageAs4 as u16,
        MrtMessage::Bgp4Mp(Bgp4MpEnum::Message(message)),
    )
}

/// One BGP4MP_STATE_CHANGE_AS4 of `peer`.
pub fn state_change(time: u32, peer: FixturePeer, old: BgpState, new: BgpState) -> Vec<u8> {
    let change = Bgp4MpStateChange {
        msg_type: Bgp4MpType::StateChangeAs4,
        peer_asn: Asn::new_32bit(peer.asn),
        local_asn: Asn::new_32bit(6447),
        interface_index: 0,
        peer_ip: IpAddr::V4(peer.ip),
        local_addr: IpAddr::V4(LOCAL),
        old_state: old,
        new_state: new,
    };
    record(
        time,
        EntryType::BGP4MP,
        Bgp4MpType::StateChangeAs4 as u16,
        MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(change)),
    )
}

/// Offsets of the records of a plain MRT stream (walking the common headers).
pub fn record_offsets(mrt: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 12 <= mrt.len() {
        offsets.push(at);
        let len = u32::from_be_bytes(mrt[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 12 + len;
    }
    assert_eq!(at, mrt.len(), "stream ends at a record boundary");
    offsets
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn bzip2(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}
