//! Key/value settings (`settings` table): the target network and other small values that
//! rooms above keep as text (they own the key names and the meaning of the values).
//!
//! [`SettingsStore`] reads and writes them the same way on the database and inside a write
//! transaction, so the rooms above parse a setting in one place whichever they hold.

use rusqlite::{Connection, OptionalExtension as _};

use super::{Db, DbError, WriteTx};

fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
}

fn put(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

impl Db {
    /// The value of setting `key`, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(get(&self.conn, key)?)
    }

    /// Sets `key` to `value` (one statement, committed at once).
    pub fn put_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        Ok(put(&self.conn, key, value)?)
    }
}

impl WriteTx<'_> {
    /// The value of setting `key` as this transaction sees it.
    pub fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(get(self.sql(), key)?)
    }

    /// Sets `key` to `value` when the transaction commits.
    pub fn put_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        Ok(put(self.sql(), key, value)?)
    }
}

/// Where settings are read and written: the database ([`Db`], each write committed at once)
/// or a write transaction ([`WriteTx`], written when it commits).
pub trait SettingsStore {
    /// The value of setting `key`, if set.
    fn setting(&self, key: &str) -> Result<Option<String>, DbError>;
    /// Sets `key` to `value`.
    fn put_setting(&self, key: &str, value: &str) -> Result<(), DbError>;
    /// Whether any BGP data (an MRT file) was loaded.
    fn holds_bgp_data(&self) -> Result<bool, DbError>;
}

impl SettingsStore for Db {
    fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        Db::setting(self, key)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        Db::put_setting(self, key, value)
    }

    fn holds_bgp_data(&self) -> Result<bool, DbError> {
        Ok(self.mrt_file_count()? > 0)
    }
}

impl SettingsStore for WriteTx<'_> {
    fn setting(&self, key: &str) -> Result<Option<String>, DbError> {
        WriteTx::setting(self, key)
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<(), DbError> {
        WriteTx::put_setting(self, key, value)
    }

    fn holds_bgp_data(&self) -> Result<bool, DbError> {
        Ok(self.mrt_file_count()? > 0)
    }
}
