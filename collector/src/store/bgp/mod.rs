//! BGP data as `bgp load` keeps it from MRT files, and the queries the BGP state is built
//! from. The tables are described in [`super::migrations`]:
//!
//! - [`load`]: what one MRT file's transaction writes (collectors, peers, the file's row, RIB
//!   routes, route sets, updates, state changes, AS adjacencies), and the reads it makes on
//!   the way;
//! - [`intervals`]: a RIB dump's prefix origins merged into its collector's validity
//!   intervals (`prefix_origins`);
//! - [`live`]: provisional rows RIS Live delivered, and their replacement by the update
//!   file of the same collector and period;
//! - [`read`]: the rows the BGP state at a time, its changes over a period and the AS
//!   adjacencies are built from.
//!
//! Rows are plain values: a prefix is its network address and length as stored
//! ([`StoredPrefix`]), an AS path or a route set is the text the room above wrote. Parsing
//! them, and deciding what they mean, is the business of the BGP and MRT rooms.

pub mod intervals;
pub mod live;
pub mod load;
pub mod read;

use rusqlite::Connection;

use super::{Db, DbError, WriteTx};

pub use live::{LIVE_FORMAT, ProvisionalRow, ProvisionalSummary, Superseded};
pub use load::{CompletedFile, IdMarks, NewMrtFile, StoredPeer, UpdateRow};
pub use read::{MrtFileRow, PeerRow, RibDump, RibRouteRow, SessionChangeRow, StoredUpdate};

/// A prefix as stored: the network address as a big-endian `u32`, and the prefix length.
pub type StoredPrefix = (u32, u8);

/// BGP4MP state code of Established (RFC 6396 §4.4.1) as `peer_state_changes` stores it:
/// the state change queries pick sessions leaving or reaching it.
pub const ESTABLISHED: u16 = 6;

fn mrt_file_count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM mrt_files", [], |r| r.get(0))
}

impl Db {
    /// How many MRT files are loaded.
    pub fn mrt_file_count(&self) -> Result<u64, DbError> {
        Ok(mrt_file_count(&self.conn)?)
    }
}

impl WriteTx<'_> {
    /// How many MRT files are loaded, as this transaction sees it (the target of a database
    /// may change only while this is 0).
    pub fn mrt_file_count(&self) -> Result<u64, DbError> {
        Ok(mrt_file_count(self.sql())?)
    }
}
