//! RIB records (TABLE_DUMP_V2 and legacy TABLE_DUMP): each IPv4 unicast entry adds its
//! origins to its prefix's route set; entries of target-overlapping prefixes also keep their
//! full AS path. Entries of one prefix normally follow each other; a prefix that comes back
//! later is merged with what it had.

use bgpkit_parser::models::{
    Afi, Attributes, RibEntry, TableDumpMessage, TableDumpV2Message, TableDumpV2Type,
};
use ipnet::{IpNet, Ipv4Net};

use super::error::LoadError;
use super::record_loader::{PeerSlot, RecordLoader};
use crate::bgp::aspath::{AsPath, origins_of_attributes};
use crate::bgp::prefix::{overlaps_any, to_parts};
use crate::bgp::routeset::{RouteSet, join_asns};

impl RecordLoader<'_, '_> {
    pub(super) fn on_table_dump_v2(
        &mut self,
        message: TableDumpV2Message,
        offset: u64,
        number: u64,
    ) -> Result<(), LoadError> {
        match message {
            TableDumpV2Message::PeerIndexTable(table) => {
                let size = table
                    .id_peer_map
                    .keys()
                    .max()
                    .map_or(0, |m| usize::from(*m) + 1);
                self.peer_table = vec![None; size];
                for (index, peer) in table.id_peer_map {
                    self.peer_table[usize::from(index)] = Some((peer, None));
                }
            }
            TableDumpV2Message::RibAfi(rib) => {
                let entries = rib.rib_entries.len() as u64;
                match rib.rib_type {
                    TableDumpV2Type::RibIpv4Unicast | TableDumpV2Type::RibIpv4UnicastAddPath => {
                        let IpNet::V4(prefix) = rib.prefix.prefix else {
                            return Err(self.unsupported(
                                offset,
                                number,
                                "IPv4 RIB record with an IPv6 prefix",
                            ));
                        };
                        for entry in &rib.rib_entries {
                            let peer = self.table_peer(entry, offset, number)?;
                            self.rib_entry(
                                prefix,
                                peer,
                                entry.path_id.unwrap_or(0),
                                &entry.attributes,
                            )?;
                        }
                    }
                    TableDumpV2Type::RibIpv6Unicast
                    | TableDumpV2Type::RibIpv6UnicastAddPath
                    | TableDumpV2Type::RibIpv6Multicast
                    | TableDumpV2Type::RibIpv6MulticastAddPath => {
                        self.summary.ipv6_skipped += entries;
                    }
                    _ => self.summary.other_skipped += entries,
                }
            }
            TableDumpV2Message::RibGeneric(rib) => {
                let entries = rib.rib_entries.len() as u64;
                if rib.afi == Afi::Ipv6 {
                    self.summary.ipv6_skipped += entries;
                } else {
                    self.summary.other_skipped += entries;
                }
            }
            TableDumpV2Message::GeoPeerTable(_) => {}
        }
        Ok(())
    }

    fn table_peer(
        &mut self,
        entry: &RibEntry,
        offset: u64,
        number: u64,
    ) -> Result<PeerSlot, LoadError> {
        let index = usize::from(entry.peer_index);
        let Some(Some((peer, slot))) = self.peer_table.get(index) else {
            return Err(self.unsupported(
                offset,
                number,
                &format!("RIB entry names peer index {index}, which no PEER_INDEX_TABLE defines"),
            ));
        };
        if let Some(slot) = slot {
            self.seen_peers.insert(slot.id);
            return Ok(*slot);
        }
        let (address, asn) = (peer.peer_ip, peer.peer_asn.to_u32());
        let slot = self.peer(address, asn)?;
        if let Some(Some((_, cached))) = self.peer_table.get_mut(index) {
            *cached = Some(slot);
        }
        Ok(slot)
    }

    pub(super) fn on_table_dump(&mut self, message: &TableDumpMessage) -> Result<(), LoadError> {
        match message.prefix.prefix {
            IpNet::V4(prefix) => {
                let peer = self.peer(message.peer_ip, message.peer_asn.to_u32())?;
                self.rib_entry(prefix, peer, 0, &message.attributes)
            }
            IpNet::V6(_) => {
                self.summary.ipv6_skipped += 1;
                Ok(())
            }
        }
    }

    /// One RIB entry: its origins join the prefix's route set; overlapping target prefixes
    /// also keep the full path.
    fn rib_entry(
        &mut self,
        prefix: Ipv4Net,
        peer: PeerSlot,
        path_id: u32,
        attributes: &Attributes,
    ) -> Result<(), LoadError> {
        let key = to_parts(prefix);
        if self.current != Some(key) {
            self.flush_prefix()?;
            self.current = Some(key);
        }
        origins_of_attributes(attributes, &mut self.scratch);
        let start = self.current_asns.len() as u32;
        self.current_asns.extend_from_slice(&self.scratch);
        self.current_pairs
            .push((peer.index, start, self.current_asns.len() as u32));
        self.summary.rib_entries += 1;
        self.adjacency.add_attributes(attributes, self.record_time);
        if overlaps_any(prefix.trunc(), &self.target.prefixes) {
            let path = AsPath::from_attributes(attributes).unwrap_or_default();
            self.tx
                .insert_rib_route(
                    self.summary.file_id,
                    peer.id,
                    key,
                    path_id,
                    &path.to_string(),
                )
                .map_err(|e| self.db_err(e))?;
            self.summary.target_routes += 1;
        }
        Ok(())
    }

    /// Turns the accumulated entries of the current prefix into a route set id.
    pub(super) fn flush_prefix(&mut self) -> Result<(), LoadError> {
        let Some(key) = self.current.take() else {
            return Ok(());
        };
        let asns = &self.current_asns;
        let mut set = RouteSet::from_pairs(
            self.current_pairs
                .iter()
                .map(|(p, s, e)| (*p, &asns[*s as usize..*e as usize])),
        );
        self.current_pairs.clear();
        self.current_asns.clear();
        if let Some(previous) = self.dump.get(&key).copied() {
            // The prefix came back after other prefixes (unsorted dump, or TABLE_DUMP entries
            // interleaved): merge with what it had.
            let text = self
                .tx
                .route_set_text(previous)
                .map_err(|e| self.db_err(e))?;
            let old = RouteSet::decode(&text).map_err(|e| LoadError::MalformedStored {
                file: self.file.clone(),
                detail: format!("route set {previous}: {e}"),
            })?;
            set = RouteSet::from_pairs(old.pairs().chain(set.pairs()));
        }
        let id = self.route_set_id(&set)?;
        self.dump.insert(key, id);
        Ok(())
    }

    fn route_set_id(&mut self, set: &RouteSet) -> Result<i64, LoadError> {
        let text = set.encode();
        if let Some(id) = self.route_sets.get(&text) {
            return Ok(*id);
        }
        let id = self
            .tx
            .insert_route_set(&text, &join_asns(&set.origins()))
            .map_err(|e| self.db_err(e))?;
        self.route_sets.insert(text, id);
        Ok(id)
    }
}
