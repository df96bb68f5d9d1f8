//! BGP4MP records: every IPv4 unicast announcement (its origins, and its full AS path when
//! the prefix overlaps a target) and withdrawal becomes a row of `bgp_updates`, every state
//! change a row of `peer_state_changes`, numbered in file order.

use bgpkit_parser::error::BgpValidationWarning;
use bgpkit_parser::models::{Afi, BgpUpdateMessage, NetworkPrefix, Safi};
use ipnet::{IpNet, Ipv4Net};

use super::error::LoadError;
use super::record_loader::{PeerSlot, RecordLoader};
use crate::bgp::aspath::{AsPath, origins_of_attributes};
use crate::bgp::prefix::{overlaps_any, to_parts};
use crate::bgp::routeset::join_asns;
use crate::store::bgp::UpdateRow;

/// Whether a BGP4MP/TABLE_DUMP NLRI list is IPv4 unicast, IPv6, or something else.
enum Family {
    Ipv4Unicast,
    Ipv6,
    Other,
}

fn family(afi: Afi, safi: Safi) -> Family {
    match (afi, safi) {
        (Afi::Ipv4, Safi::Unicast) => Family::Ipv4Unicast,
        (Afi::Ipv6, _) => Family::Ipv6,
        _ => Family::Other,
    }
}

impl RecordLoader<'_, '_> {
    pub(super) fn on_state_change(
        &mut self,
        time: i64,
        peer: PeerSlot,
        old: u16,
        new: u16,
    ) -> Result<(), LoadError> {
        self.seq += 1;
        self.summary.state_changes += 1;
        self.tx
            .insert_state_change(self.summary.file_id, self.seq, time, peer.id, old, new)
            .map_err(|e| self.db_err(e))?;
        Ok(())
    }

    pub(super) fn on_update(
        &mut self,
        time: i64,
        peer: PeerSlot,
        update: BgpUpdateMessage,
        offset: u64,
        number: u64,
    ) -> Result<(), LoadError> {
        for warning in update.attributes.validation_warnings() {
            if let BgpValidationWarning::MalformedNlri {
                nlri_type, reason, ..
            } = warning
            {
                self.summary.malformed_nlri += 1;
                tracing::warn!(
                    file = %self.file.display(),
                    offset,
                    record = number,
                    "malformed {nlri_type} NLRI skipped: {reason}"
                );
            }
        }
        let mut withdrawn: Vec<NetworkPrefix> = update.withdrawn_prefixes;
        if let Some(nlri) = update.attributes.get_unreachable_nlri() {
            match family(nlri.afi, nlri.safi) {
                Family::Ipv4Unicast => withdrawn.extend(nlri.prefixes.iter().copied()),
                Family::Ipv6 => self.summary.ipv6_skipped += nlri.prefixes.len() as u64,
                Family::Other => self.summary.other_skipped += nlri.prefixes.len() as u64,
            }
        }
        for prefix in withdrawn {
            match prefix.prefix {
                IpNet::V4(p) => {
                    self.update_event(time, peer, p, prefix.path_id.unwrap_or(0), None)?;
                }
                IpNet::V6(_) => self.summary.ipv6_skipped += 1,
            }
        }
        let mut announced: Vec<NetworkPrefix> = update.announced_prefixes;
        if let Some(nlri) = update.attributes.get_reachable_nlri() {
            match family(nlri.afi, nlri.safi) {
                Family::Ipv4Unicast => announced.extend(nlri.prefixes.iter().copied()),
                Family::Ipv6 => self.summary.ipv6_skipped += nlri.prefixes.len() as u64,
                Family::Other => self.summary.other_skipped += nlri.prefixes.len() as u64,
            }
        }
        if announced.is_empty() {
            return Ok(());
        }
        if announced.iter().any(|p| p.prefix.addr().is_ipv4()) {
            self.adjacency.add_attributes(&update.attributes, time);
        }
        let mut origins = Vec::new();
        origins_of_attributes(&update.attributes, &mut origins);
        let origins = join_asns(&origins);
        let mut path: Option<String> = None;
        for prefix in announced {
            match prefix.prefix {
                IpNet::V4(p) => {
                    let full = overlaps_any(p.trunc(), &self.target.prefixes).then(|| {
                        path.get_or_insert_with(|| {
                            AsPath::from_attributes(&update.attributes)
                                .unwrap_or_default()
                                .to_string()
                        })
                        .clone()
                    });
                    let announcement = Announcement {
                        origins: &origins,
                        as_path: full.as_deref(),
                    };
                    self.update_event(
                        time,
                        peer,
                        p,
                        prefix.path_id.unwrap_or(0),
                        Some(announcement),
                    )?;
                }
                IpNet::V6(_) => self.summary.ipv6_skipped += 1,
            }
        }
        Ok(())
    }

    fn update_event(
        &mut self,
        time: i64,
        peer: PeerSlot,
        prefix: Ipv4Net,
        path_id: u32,
        announcement: Option<Announcement<'_>>,
    ) -> Result<(), LoadError> {
        let key = to_parts(prefix);
        let is_target = overlaps_any(prefix.trunc(), &self.target.prefixes);
        self.seq += 1;
        self.update_prefixes.insert(key);
        match announcement {
            Some(a) => {
                self.summary.announcements += 1;
                if a.as_path.is_some() {
                    self.summary.target_routes += 1;
                }
            }
            None => self.summary.withdrawals += 1,
        }
        let row = UpdateRow {
            file_id: self.summary.file_id,
            seq: self.seq,
            time,
            peer_id: peer.id,
            prefix: key,
            path_id,
            origins: announcement.map(|a| a.origins),
            is_target,
            as_path: announcement.and_then(|a| a.as_path),
        };
        self.tx.insert_update(&row).map_err(|e| self.db_err(e))?;
        Ok(())
    }
}

#[derive(Clone, Copy)]
struct Announcement<'s> {
    origins: &'s str,
    as_path: Option<&'s str>,
}
