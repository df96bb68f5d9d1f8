//! Parsed RIS Live messages into the store, as provisional rows (see
//! [`crate::store::bgp::live`]).
//!
//! A batch is written in one transaction. Kept: announcements and withdrawals of IPv4
//! prefixes that overlap a target prefix (the subscription asks for nothing else; anything
//! else a server sends is counted and dropped), and session changes. A message is not
//! stored when
//! - its time is at or before the end of the newest update file of its collector already
//!   loaded: the archive is the authority there, and the state never goes back behind it;
//! - the same row is already stored (a message delivered twice).

use std::collections::HashMap;
use std::net::IpAddr;

use super::message::{LiveMessage, LiveSource, LiveUpdate};
use crate::bgp::ESTABLISHED;
use crate::bgp::prefix::{overlaps_any, to_parts};
use crate::bgp::routeset::join_asns;
use crate::settings::{SettingsError, Target, resolve_target};
use crate::store::bgp::{ProvisionalRow, UpdateRow};
use crate::store::{Db, DbError, WriteTx};

/// BGP FSM state code of Idle (RFC 6396 §4.4.1): where a session that went down is.
const IDLE: u16 = 1;

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Announcements and withdrawals stored.
    pub updates: u64,
    /// Session changes stored.
    pub state_changes: u64,
    /// Rows already stored (delivered twice).
    pub duplicates: u64,
    /// Rows at or before the end of their collector's newest loaded update file.
    pub behind_archive: u64,
    /// Prefixes outside the target prefixes, and IPv6 prefixes (dropped).
    pub ignored: u64,
    /// Newest time of a stored row (UNIX seconds).
    pub newest: Option<i64>,
}

impl Ingested {
    /// Whether the batch changed the stored BGP data.
    pub fn changed(&self) -> bool {
        self.updates + self.state_changes > 0
    }
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The stored target could not be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

/// Stores a batch of messages (see the module docs), in one transaction.
pub fn store_live(db: &mut Db, messages: &[LiveMessage]) -> Result<Ingested, IngestError> {
    let tx = db.write()?;
    let target = resolve_target(&tx, None)?;
    let mut writer = Writer {
        tx: &tx,
        target,
        collectors: HashMap::new(),
        done: Ingested::default(),
    };
    for message in messages {
        match message {
            LiveMessage::Update(u) => writer.update(u)?,
            LiveMessage::PeerState(p) => writer.state_change(&p.source, p.up)?,
            LiveMessage::OtherBgp | LiveMessage::Control(_) | LiveMessage::ServiceError(_) => {}
        }
    }
    let done = writer.done;
    tx.commit()?;
    Ok(done)
}

/// A collector as this batch knows it.
struct Collector {
    id: i64,
    /// Live rows at or before this time are not stored.
    archive_until: Option<i64>,
    peers: HashMap<(IpAddr, u32), (i64, u32)>,
}

struct Writer<'a, 'db> {
    tx: &'a WriteTx<'db>,
    target: Target,
    collectors: HashMap<String, Collector>,
    done: Ingested,
}

impl Writer<'_, '_> {
    fn collector(&mut self, name: &str) -> Result<&mut Collector, DbError> {
        if !self.collectors.contains_key(name) {
            let id = self.tx.collector_id(name)?;
            let mut peers = HashMap::new();
            for p in self.tx.collector_peers(id)? {
                peers.insert((p.address, p.asn), (p.id, p.index));
            }
            let archive_until = self.tx.archive_updates_until(id)?;
            self.collectors.insert(
                name.to_owned(),
                Collector {
                    id,
                    archive_until,
                    peers,
                },
            );
        }
        Ok(self
            .collectors
            .get_mut(name)
            .expect("the collector was just added"))
    }

    /// The collector's id and the peer's id, the peer added if new; `None` when the time
    /// is behind the collector's archive.
    fn place(&mut self, source: &LiveSource) -> Result<Option<(i64, i64)>, DbError> {
        let tx = self.tx;
        let c = self.collector(&source.collector)?;
        if c.archive_until.is_some_and(|until| source.time <= until) {
            return Ok(None);
        }
        let key = (source.peer, source.peer_asn);
        let peer_id = if let Some((id, _)) = c.peers.get(&key) {
            *id
        } else {
            let (id, index) = tx.ensure_peer(c.id, source.peer, source.peer_asn)?;
            c.peers.insert(key, (id, index));
            id
        };
        Ok(Some((c.id, peer_id)))
    }

    fn update(&mut self, u: &LiveUpdate) -> Result<(), DbError> {
        self.done.ignored += u.ipv6_skipped as u64;
        let is_target = |p: &ipnet::Ipv4Net| overlaps_any(*p, &self.target.prefixes);
        let withdrawn: Vec<_> = u.withdrawn.iter().copied().filter(is_target).collect();
        let announced: Vec<_> = u.announced.iter().copied().filter(is_target).collect();
        self.done.ignored +=
            (u.withdrawn.len() + u.announced.len() - withdrawn.len() - announced.len()) as u64;
        if withdrawn.is_empty() && announced.is_empty() {
            return Ok(());
        }
        let Some((collector_id, peer_id)) = self.place(&u.source)? else {
            self.done.behind_archive += (withdrawn.len() + announced.len()) as u64;
            return Ok(());
        };
        let origins = join_asns(&u.path.origins());
        let path = u.path.to_string();
        let rows = withdrawn
            .iter()
            .map(|p| (*p, None))
            .chain(announced.iter().map(|p| (*p, Some(origins.as_str()))));
        for (prefix, origins) in rows {
            let file_id =
                self.tx
                    .provisional_file(collector_id, &u.source.collector, u.source.time)?;
            let mut row = UpdateRow {
                file_id,
                seq: 0,
                time: u.source.time,
                peer_id,
                prefix: to_parts(prefix),
                path_id: 0,
                origins,
                is_target: true,
                as_path: origins.map(|_| path.as_str()),
            };
            if self.tx.provisional_update_exists(collector_id, &row)? {
                self.done.duplicates += 1;
                continue;
            }
            row.seq = self.tx.next_provisional_seq(file_id)?;
            self.tx.insert_update(&row)?;
            let kind = if origins.is_some() {
                ProvisionalRow::Announcement
            } else {
                ProvisionalRow::Withdrawal
            };
            self.tx.count_provisional_row(file_id, row.time, kind)?;
            self.done.updates += 1;
            self.done.newest = self.done.newest.max(Some(row.time));
        }
        Ok(())
    }

    fn state_change(&mut self, source: &LiveSource, up: bool) -> Result<(), DbError> {
        let Some((collector_id, peer_id)) = self.place(source)? else {
            self.done.behind_archive += 1;
            return Ok(());
        };
        let (old, new) = if up {
            (IDLE, ESTABLISHED)
        } else {
            (ESTABLISHED, IDLE)
        };
        if self
            .tx
            .provisional_state_change_exists(collector_id, source.time, peer_id, new)?
        {
            self.done.duplicates += 1;
            return Ok(());
        }
        let file_id = self
            .tx
            .provisional_file(collector_id, &source.collector, source.time)?;
        let seq = self.tx.next_provisional_seq(file_id)?;
        self.tx
            .insert_state_change(file_id, seq, source.time, peer_id, old, new)?;
        self.tx
            .count_provisional_row(file_id, source.time, ProvisionalRow::StateChange)?;
        self.done.state_changes += 1;
        self.done.newest = self.done.newest.max(Some(source.time));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::message::parse;

    fn update(
        time: u32,
        peer: &str,
        path: &str,
        announce: &[&str],
        withdraw: &[&str],
    ) -> LiveMessage {
        let list = |v: &[&str]| {
            v.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        parse(&format!(
            r#"{{"type":"ris_message","data":{{"type":"UPDATE","timestamp":{time}.25,
            "host":"rrc00.ripe.net","peer":"{peer}","peer_asn":"64500","path":[{path}],
            "announcements":[{{"next_hop":"{peer}","prefixes":[{}]}}],"withdrawals":[{}]}}}}"#,
            list(announce),
            list(withdraw)
        ))
        .unwrap()
    }

    fn count(db: &Db, sql: &str) -> i64 {
        db.sql_for_tests().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn target_rows_are_stored_once_and_other_prefixes_dropped() {
        let mut db = Db::open_in_memory().unwrap();
        let batch = [
            update(
                1000,
                "10.0.0.1",
                "64500,4837,131279",
                &["175.45.176.0/24", "8.8.8.0/24"],
                &[],
            ),
            update(1001, "10.0.0.1", "", &[], &["175.45.177.0/24"]),
        ];
        let done = store_live(&mut db, &batch).unwrap();
        assert_eq!(
            (done.updates, done.ignored, done.newest),
            (2, 1, Some(1001))
        );
        // The same batch again (a reconnect that delivers it twice) adds nothing.
        let again = store_live(&mut db, &batch).unwrap();
        assert_eq!((again.updates, again.duplicates), (0, 2));
        assert_eq!(count(&db, "SELECT count(*) FROM bgp_updates"), 2);
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM mrt_files WHERE provisional AND format = 'RIS_LIVE'"
            ),
            1
        );
        let path: String = db
            .sql_for_tests()
            .query_row(
                "SELECT as_path FROM bgp_updates WHERE origins = '131279'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(path, "64500 4837 131279");
    }

    #[test]
    fn nothing_is_stored_behind_the_archive_and_a_load_supersedes_the_period() {
        let mut db = Db::open_in_memory().unwrap();
        store_live(
            &mut db,
            &[
                update(1000, "10.0.0.1", "64500,131279", &["175.45.176.0/24"], &[]),
                update(2000, "10.0.0.1", "64500,131279", &["175.45.177.0/24"], &[]),
            ],
        )
        .unwrap();
        // An update file of rrc00 for [900, 1500] is loaded: it replaces the row at 1000.
        {
            let tx = db.write().unwrap();
            let collector = tx.collector_id("rrc00").unwrap();
            let removed = tx.supersede_provisional(collector, 900, 1500).unwrap();
            assert_eq!(removed.updates, 1);
            let file = crate::store::bgp::NewMrtFile {
                collector_id: collector,
                name: "updates",
                sha256: "f",
                compression: "none",
                kind: "updates",
                format: "BGP4MP",
                dump_time: None,
                first_time: 900,
                file_bytes: 0,
                loaded_at: time::OffsetDateTime::UNIX_EPOCH,
            };
            let id = tx.insert_mrt_file(&file).unwrap();
            tx.set_update_period(id, 900, 1500).unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(count(&db, "SELECT count(*) FROM bgp_updates"), 1);
        let (first, records): (i64, i64) = db
            .sql_for_tests()
            .query_row(
                "SELECT first_time, records FROM mrt_files WHERE provisional",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((first, records), (2000, 1));
        // A late live message for the archived period is not stored.
        let late = store_live(
            &mut db,
            &[update(
                1200,
                "10.0.0.1",
                "64500,131279",
                &["175.45.178.0/24"],
                &[],
            )],
        )
        .unwrap();
        assert_eq!((late.updates, late.behind_archive), (0, 1));
    }
}
