//! The store: the collector's SQLite database, and the only room of the collector that speaks
//! SQL. One file, WAL mode, schema versioned with `PRAGMA user_version` and upgraded in place
//! (see [`migrations`]).
//!
//! Every other room reads and writes through typed methods: [`Db`] for reads and single
//! statements, [`WriteTx`] for work that must land together (an upload, an import, an MRT
//! file). One file per kind of data:
//!
//! - [`results`]: agents' and imported results, their receipts;
//! - [`agents`]: upload tokens;
//! - [`settings`]: the target network and other key/value settings;
//! - [`bgp`]: what `bgp load` kept from MRT files, and the BGP state read back;
//! - [`fleet`]: fleet scheduling's bookings and counted work;
//! - [`fleet_intervals`]: the agents' round intervals the scheduler follows;
//! - [`caches`]: Team Cymru answers and the IXP table;
//! - [`sync`]: what `bgp sync` fetched from the public archives, and the gaps it found;
//! - [`alerts`]: what `--on-change` found, sent, and how far it evaluated;
//! - [`rpki`]: loaded RPKI exports (validated ROA payloads) by generation time.

pub mod agents;
pub mod alerts;
pub mod bgp;
pub mod caches;
pub mod fleet;
pub mod fleet_intervals;
pub mod migrations;
pub mod results;
pub mod rpki;
pub mod settings;
pub mod sync;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

pub use migrations::CURRENT_VERSION;

/// The default database file, in the working directory.
pub const DEFAULT_PATH: &str = "nkpath.db";

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The file could not be opened as a database.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The file was written by a newer nkpath-collector.
    #[error(
        "database {path} has schema version {found}, newer than this nkpath-collector knows \
         (up to {supported}); use a newer nkpath-collector, or another --db"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// SQLite reports the file damaged, or it is not a database at all.
    #[error(
        "database {path} is damaged or not an SQLite database ({source}); restore it from a backup or use another --db"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Upgrading the schema failed; the file is unchanged.
    #[error("cannot upgrade database {path} from schema version {from}: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version being upgraded from.
        from: u32,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl DbError {
    /// Whether SQLite failed for want of space: the disk (or the database's size limit) is
    /// full. The transaction was rolled back; the same write may succeed once space is freed.
    pub fn is_storage_full(&self) -> bool {
        let source = match self {
            Self::Sqlite(source)
            | Self::Open { source, .. }
            | Self::Corrupt { source, .. }
            | Self::Migration { source, .. } => source,
            Self::TooNew { .. } => return false,
        };
        source.sqlite_error_code() == Some(ErrorCode::DiskFull)
    }
}

/// An open collector database.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// [`CURRENT_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&path, flags).map_err(|source| DbError::Open {
            path: path.clone(),
            source,
        })?;
        Self::initialize(conn, path)
    }

    /// A private in-memory database with the current schema (tests, dry runs).
    pub fn open_in_memory() -> Result<Self, DbError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| DbError::Open {
            path: path.clone(),
            source,
        })?;
        Self::initialize(conn, path)
    }

    fn initialize(mut conn: Connection, path: PathBuf) -> Result<Self, DbError> {
        let classify = |source: rusqlite::Error| match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => DbError::Corrupt {
                path: path.clone(),
                source,
            },
            _ => DbError::Open {
                path: path.clone(),
                source,
            },
        };
        // Pragmas first, outside any transaction (journal_mode cannot change inside one).
        // WAL lets readers (reports) run while a loader writes; synchronous=FULL makes a
        // committed transaction survive power loss, not only a crash of this process, because
        // the collector acknowledges stored results to agents.
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(classify)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if mode != "wal" && mode != "memory" {
            tracing::warn!(path = %path.display(), mode, "database is not in WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(classify)?;
        migrations::migrate(&mut conn, &path)?;
        Ok(Self { conn, path })
    }

    /// A second, read-only connection to the same file, for readers that must not wait for
    /// the writer (WAL lets them read the last commit while a write is under way); `None`
    /// for an in-memory database, which no other connection can see.
    fn open_reader(&self) -> Result<Option<Connection>, DbError> {
        if self.path.as_os_str() == ":memory:" {
            return Ok(None);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|source| DbError::Open {
                path: self.path.clone(),
                source,
            })?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(Some(conn))
    }

    /// The file this database lives in (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for tests that check tables directly (feature `test-sql`, which only
    /// the integration tests enable; unit tests have `cfg(test)`).
    #[cfg(any(test, feature = "test-sql"))]
    pub fn sql_for_tests(&self) -> &Connection {
        &self.conn
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, DbError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// A write transaction (SQLite `BEGIN IMMEDIATE`: it holds the write lock from the start, so
/// it never fails half-way on a lock). What is written through it lands at [`commit`] or, when
/// it is dropped uncommitted (an error, a panic), not at all.
///
/// [`commit`]: WriteTx::commit
#[derive(Debug)]
pub struct WriteTx<'db> {
    tx: Transaction<'db>,
}

impl Db {
    /// Starts a write transaction.
    pub fn write(&mut self) -> Result<WriteTx<'_>, DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        Ok(WriteTx { tx })
    }
}

impl WriteTx<'_> {
    /// Makes everything written through this transaction durable.
    pub fn commit(self) -> Result<(), DbError> {
        self.tx.commit()?;
        Ok(())
    }

    /// Commits what was written so far, leaves the write lock free for `pause` (other
    /// connections' writes, such as agents' uploads, take it then), and takes it again: a
    /// long load lets the rest of the collector write between its parts. SQLite's busy
    /// handler retries a waiting writer at most every 100 ms, so a pause shorter than that
    /// may go unused.
    pub fn commit_and_pause(&self, pause: std::time::Duration) -> Result<(), DbError> {
        self.sql().execute_batch("COMMIT")?;
        std::thread::sleep(pause);
        self.sql().execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Runs `work` in a savepoint of this transaction: when it fails, what it wrote is rolled
    /// back and the rest of the transaction goes on as if it had not run.
    pub fn in_savepoint<T>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.sql().execute_batch("SAVEPOINT nested")?;
        match work(self) {
            Ok(value) => {
                self.sql().execute_batch("RELEASE nested")?;
                Ok(value)
            }
            Err(e) => {
                self.sql()
                    .execute_batch("ROLLBACK TO nested; RELEASE nested")?;
                Err(e)
            }
        }
    }

    /// The transaction's connection, for the store's own files.
    fn sql(&self) -> &Connection {
        &self.tx
    }
}
