//! The record-by-record loader of one file: turns MRT records into rows of the file's write
//! transaction.
//!
//! [`RecordLoader::on_record`] dispatches each record to the methods of the RIB (`rib.rs`) and
//! BGP4MP (`updates.rs`) records. When the file ends, a RIB dump's origins are merged into the
//! collector's validity intervals and the file's row is completed ([`RecordLoader::finish`]).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bgpkit_parser::models::{Bgp4MpEnum, BgpMessage, LegacyBgp, MrtMessage, MrtRecord, Peer};
use time::OffsetDateTime;

use super::error::LoadError;
use super::summary::{FileKind, FileSummary};
use crate::bgp::adjacency::AdjacencyCollector;
use crate::settings::Target;
use crate::store::bgp::{CompletedFile, IdMarks, NewMrtFile, StoredPrefix};
use crate::store::{DbError, WriteTx};

/// The kind of file a record belongs in, and the MRT format name recorded for the file.
fn classify(message: &MrtMessage) -> (FileKind, &'static str) {
    match message {
        MrtMessage::TableDumpV2Message(_) => (FileKind::Rib, "TABLE_DUMP_V2"),
        MrtMessage::TableDumpMessage(_) | MrtMessage::TableDumpMessageBatch(_) => {
            (FileKind::Rib, "TABLE_DUMP")
        }
        MrtMessage::Bgp4Mp(_) => (FileKind::Updates, "BGP4MP"),
        MrtMessage::LegacyBgp(_) => (FileKind::Updates, "BGP"),
    }
}

/// A peer as the database knows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerSlot {
    /// `peers.id`.
    pub(super) id: i64,
    /// Index of the peer within its collector.
    pub(super) index: u32,
}

/// How long a RIB dump's load holds the write lock before it commits and lets other writers
/// (agents' uploads) in, unless the load says otherwise: well under the shortest sensible
/// `--request-timeout`.
pub(super) const DEFAULT_HOLD_LOCK: Duration = Duration::from_secs(1);
/// How long it leaves the lock free then: longer than the 100 ms SQLite's busy handler waits
/// at most between two tries of a waiting writer, so that one of them lands in it.
const FREE_LOCK: Duration = Duration::from_millis(120);

/// What a load has committed so far: what must go when it fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Committed {
    /// Nothing: the file's transaction holds everything (update files, short RIB dumps).
    #[default]
    Nothing,
    /// Some of this RIB dump's rows (`mrt_files.id`), its row still pending; the load added
    /// route sets and peers above `IdMarks`.
    Parts(i64, IdMarks),
}

/// State of one file's load.
pub(super) struct RecordLoader<'a, 'db> {
    pub(super) tx: &'a WriteTx<'db>,
    pub(super) file: PathBuf,
    pub(super) collector_id: i64,
    pub(super) target: Target,
    pub(super) summary: FileSummary,
    pub(super) kind: Option<FileKind>,
    /// Peers of this collector: (address, ASN) → slot.
    pub(super) peers: HashMap<(IpAddr, u32), PeerSlot>,
    /// The current PEER_INDEX_TABLE: file index → (address, ASN) and resolved slot.
    pub(super) peer_table: Vec<Option<(Peer, Option<PeerSlot>)>>,
    pub(super) seen_peers: HashSet<i64>,
    pub(super) update_prefixes: HashSet<StoredPrefix>,
    pub(super) seq: i64,
    /// A RIB dump of this collector at the same time is already loaded (its file name).
    pub(super) conflict: Option<String>,
    // RIB accumulation: the current prefix's (peer index, origins range) pairs.
    pub(super) current: Option<StoredPrefix>,
    pub(super) current_pairs: Vec<(u32, u32, u32)>,
    pub(super) current_asns: Vec<u32>,
    pub(super) scratch: Vec<u32>,
    /// Prefix → route set id, for this dump.
    pub(super) dump: HashMap<StoredPrefix, i64>,
    /// Canonical route set text → id (existing and new).
    pub(super) route_sets: HashMap<String, i64>,
    /// When the write lock was last taken.
    pub(super) holding_since: Instant,
    /// How long the lock is held before a part commits (see [`DEFAULT_HOLD_LOCK`]).
    pub(super) hold_lock: Duration,
    /// What this load has committed so far.
    pub(super) committed: &'a Cell<Committed>,
    /// The ids before this load added any (see [`Committed::Parts`]).
    pub(super) marks: IdMarks,
    /// MRT timestamp of the record being loaded.
    pub(super) record_time: i64,
    /// Adjacent AS pairs of every IPv4 route's path in the file.
    pub(super) adjacency: AdjacencyCollector,
}

impl<'a, 'db> RecordLoader<'a, 'db> {
    pub(super) fn new(
        tx: &'a WriteTx<'db>,
        file: &Path,
        collector_id: i64,
        target: Target,
        summary: FileSummary,
        (committed, marks): (&'a Cell<Committed>, IdMarks),
    ) -> Result<Self, DbError> {
        let mut peers = HashMap::new();
        for peer in tx.collector_peers(collector_id)? {
            let slot = PeerSlot {
                id: peer.id,
                index: peer.index,
            };
            peers.insert((peer.address, peer.asn), slot);
        }
        let route_sets: HashMap<String, i64> = tx.route_sets()?.into_iter().collect();
        Ok(Self {
            tx,
            file: file.to_path_buf(),
            collector_id,
            target,
            summary,
            kind: None,
            peers,
            peer_table: Vec::new(),
            seen_peers: HashSet::new(),
            update_prefixes: HashSet::new(),
            seq: 0,
            conflict: None,
            current: None,
            current_pairs: Vec::new(),
            current_asns: Vec::new(),
            scratch: Vec::new(),
            dump: HashMap::new(),
            route_sets,
            holding_since: Instant::now(),
            hold_lock: DEFAULT_HOLD_LOCK,
            committed,
            marks,
            record_time: 0,
            adjacency: AdjacencyCollector::default(),
        })
    }

    pub(super) fn db_err(&self, source: DbError) -> LoadError {
        LoadError::Db {
            file: self.file.clone(),
            source,
        }
    }

    pub(super) fn on_record(
        &mut self,
        record: MrtRecord,
        offset: u64,
        number: u64,
    ) -> Result<(), LoadError> {
        let time = i64::from(record.common_header.timestamp);
        self.record_time = time;
        let (kind, format) = classify(&record.message);
        self.begin(kind, format, time, offset, number)?;
        if self.conflict.is_some() {
            // Read on only to hash the stream (see `begin`), writing nothing: the lock is
            // let go all the same, as a full table takes as long to read as to load.
            if self.holding_since.elapsed() >= self.hold_lock {
                self.tx
                    .commit_and_pause(FREE_LOCK)
                    .map_err(|e| self.db_err(e))?;
                self.holding_since = Instant::now();
            }
            return Ok(());
        }
        match record.message {
            MrtMessage::TableDumpV2Message(message) => {
                self.on_table_dump_v2(message, offset, number)?;
            }
            MrtMessage::TableDumpMessage(message) => self.on_table_dump(&message)?,
            MrtMessage::TableDumpMessageBatch(messages) => {
                for message in &messages {
                    self.on_table_dump(message)?;
                }
            }
            MrtMessage::Bgp4Mp(Bgp4MpEnum::StateChange(change)) => {
                let peer = self.peer(change.peer_ip, change.peer_asn.to_u32())?;
                self.on_state_change(time, peer, change.old_state as u16, change.new_state as u16)?;
            }
            MrtMessage::LegacyBgp(LegacyBgp::StateChange(change)) => {
                let peer = self.peer(change.peer_ip, change.peer_asn.to_u32())?;
                self.on_state_change(time, peer, change.old_state as u16, change.new_state as u16)?;
            }
            MrtMessage::Bgp4Mp(Bgp4MpEnum::Message(message)) => {
                if let BgpMessage::Update(update) = message.bgp_message {
                    let peer = self.peer(message.peer_ip, message.peer_asn.to_u32())?;
                    self.on_update(time, peer, update, offset, number)?;
                }
            }
            MrtMessage::LegacyBgp(LegacyBgp::Message(message)) => {
                if let BgpMessage::Update(update) = message.bgp_message {
                    let peer = self.peer(message.peer_ip, message.peer_asn.to_u32())?;
                    self.on_update(time, peer, update, offset, number)?;
                }
            }
        }
        if self.kind == Some(FileKind::Rib) {
            self.pace().map_err(|e| self.db_err(e))?;
        }
        Ok(())
    }

    /// A RIB dump loads in parts: once the lock was held `hold_lock`, what was written
    /// commits, invisible to readers while the file's row is pending (see
    /// [`crate::store::bgp::read`]), and other writers get the lock for a moment. Update
    /// files are a few minutes of updates: they load in one transaction, as their rows are
    /// read without looking at their file.
    fn pace(&mut self) -> Result<(), DbError> {
        pace(
            self.tx,
            self.hold_lock,
            &mut self.holding_since,
            self.committed,
            Committed::Parts(self.summary.file_id, self.marks),
        )
    }

    /// Decides the file's kind from its first record, records the file, and refuses a file that
    /// mixes RIB and update records. A RIB dump's time is the timestamp of its first record
    /// (the PEER_INDEX_TABLE of a TABLE_DUMP_V2 dump).
    pub(super) fn begin(
        &mut self,
        kind: FileKind,
        format: &'static str,
        time: i64,
        offset: u64,
        number: u64,
    ) -> Result<(), LoadError> {
        if self.kind.is_none() {
            self.kind = Some(kind);
            self.summary.kind = kind.as_str();
            self.summary.format = format;
            self.summary.first_time = time;
            self.summary.last_time = time;
            if kind == FileKind::Rib {
                self.summary.dump_time = Some(time);
                let other = self
                    .tx
                    .rib_dump_file_at(self.collector_id, time)
                    .map_err(|e| self.db_err(e))?;
                if let Some(other) = other {
                    // Either the same data in another file (another compression: skipped
                    // once the stream's hash proves it) or a clash (an error then).
                    self.conflict = Some(other);
                    return Ok(());
                }
            }
            let file = NewMrtFile {
                collector_id: self.collector_id,
                name: &self.summary.name,
                sha256: &self.summary.sha256,
                compression: self.summary.compression,
                kind: kind.as_str(),
                format,
                dump_time: self.summary.dump_time,
                first_time: time,
                file_bytes: self.summary.file_bytes,
                loaded_at: OffsetDateTime::now_utc(),
            };
            self.summary.file_id = self.tx.insert_mrt_file(&file).map_err(|e| self.db_err(e))?;
        } else if self.kind != Some(kind) {
            return Err(LoadError::Unsupported {
                file: self.file.clone(),
                offset,
                record: number,
                detail: format!(
                    "a {} record in a {} file: RIB dump and update records cannot be mixed in one file",
                    kind.as_str(),
                    self.summary.kind
                ),
            });
        }
        self.summary.first_time = self.summary.first_time.min(time);
        self.summary.last_time = self.summary.last_time.max(time);
        Ok(())
    }

    pub(super) fn peer(&mut self, address: IpAddr, asn: u32) -> Result<PeerSlot, LoadError> {
        if let Some(slot) = self.peers.get(&(address, asn)) {
            self.seen_peers.insert(slot.id);
            return Ok(*slot);
        }
        let (id, index) = self
            .tx
            .ensure_peer(self.collector_id, address, asn)
            .map_err(|e| self.db_err(e))?;
        let slot = PeerSlot { id, index };
        self.peers.insert((address, asn), slot);
        self.seen_peers.insert(slot.id);
        Ok(slot)
    }

    pub(super) fn unsupported(&self, offset: u64, number: u64, detail: &str) -> LoadError {
        LoadError::Unsupported {
            file: self.file.clone(),
            offset,
            record: number,
            detail: detail.to_string(),
        }
    }

    /// Merges a RIB dump into the collector's validity intervals and completes the file's row.
    pub(super) fn finish(
        mut self,
        mrt_bytes: u64,
        records: u64,
        mrt_sha256: String,
    ) -> Result<FileSummary, LoadError> {
        self.flush_prefix()?;
        self.summary.mrt_bytes = mrt_bytes;
        self.summary.records = records;
        self.summary.mrt_sha256 = mrt_sha256;
        self.summary.peers = self.seen_peers.len() as u64;
        self.summary.prefixes = match self.kind {
            Some(FileKind::Rib) => self.dump.len() as u64,
            _ => self.update_prefixes.len() as u64,
        };
        if let Some(dump_time) = self.summary.dump_time {
            let dump = self.dump.iter().map(|(prefix, id)| (*prefix, *id));
            let parts = Committed::Parts(self.summary.file_id, self.marks);
            let committed = self.committed;
            let mut holding_since = self.holding_since;
            let hold = self.hold_lock;
            self.tx
                .merge_rib_dump(self.collector_id, dump_time, dump, &mut |tx| {
                    pace(tx, hold, &mut holding_since, committed, parts)
                })
                .map_err(|e| self.db_err(e))?;
        }
        // In the last part, with the file's completion: the adjacencies are read without
        // looking at their files.
        self.tx
            .merge_as_adjacencies(self.adjacency.sorted_pairs())
            .map_err(|e| self.db_err(e))?;
        self.summary.as_adjacencies = self.adjacency.len() as u64;
        let s = &self.summary;
        let completed = CompletedFile {
            file_id: s.file_id,
            mrt_sha256: &s.mrt_sha256,
            first_time: s.first_time,
            last_time: s.last_time,
            mrt_bytes: s.mrt_bytes,
            records: s.records,
            peers: s.peers,
            prefixes: s.prefixes,
            rib_entries: s.rib_entries,
            announcements: s.announcements,
            withdrawals: s.withdrawals,
            state_changes: s.state_changes,
            ipv6_skipped: s.ipv6_skipped,
            other_skipped: s.other_skipped,
            malformed_nlri: s.malformed_nlri,
            truncated: s.truncated_at.is_some(),
        };
        self.tx
            .complete_mrt_file(&completed)
            .map_err(|e| self.db_err(e))?;
        Ok(self.summary)
    }
}

/// See [`RecordLoader::pace`].
fn pace(
    tx: &WriteTx<'_>,
    hold: Duration,
    holding_since: &mut Instant,
    committed: &Cell<Committed>,
    parts: Committed,
) -> Result<(), DbError> {
    if holding_since.elapsed() < hold {
        return Ok(());
    }
    tx.commit_and_pause(FREE_LOCK)?;
    *holding_since = Instant::now();
    committed.set(parts);
    Ok(())
}
