//! The agents allowed to upload (`agents`): their token hashes, and what their last upload
//! said. Tokens themselves are never stored; the rooms above hash them.

use std::net::IpAddr;

use nkpath_proto::timestamp;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, DbError, WriteTx};

/// Whether an agent's token is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Its token may upload.
    Valid,
    /// Its token was revoked.
    Revoked,
}

/// One row of `agents`, as stored (times are RFC 3339 text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// The agent's name.
    pub name: String,
    /// When it was added.
    pub created_at: String,
    /// When its token was revoked.
    pub revoked_at: Option<String>,
    /// Its last upload.
    pub last_seen_at: Option<String>,
    /// The agent version its last upload gave.
    pub agent_version: Option<String>,
    /// The peer address of its last upload, as stored.
    pub last_address: Option<String>,
}

/// A read-only connection of its own for token checks, so that they never wait behind the
/// write connection ([`Db::open_token_reader`]).
#[derive(Debug)]
pub struct TokenReader {
    conn: Connection,
}

/// Looks agents up by the SHA-256 of their token: the database, or a [`TokenReader`].
pub trait TokenLookup {
    /// The agent whose token hashes to `token_sha256` and is not revoked.
    fn agent_with_token(&self, token_sha256: &str) -> Result<Option<String>, DbError>;
}

fn agent_with_token(conn: &Connection, token_sha256: &str) -> Result<Option<String>, DbError> {
    Ok(conn
        .prepare_cached("SELECT name FROM agents WHERE token_sha256 = ?1 AND revoked_at IS NULL")?
        .query_row([token_sha256], |r| r.get(0))
        .optional()?)
}

impl TokenLookup for Db {
    fn agent_with_token(&self, token_sha256: &str) -> Result<Option<String>, DbError> {
        agent_with_token(&self.conn, token_sha256)
    }
}

impl TokenLookup for TokenReader {
    fn agent_with_token(&self, token_sha256: &str) -> Result<Option<String>, DbError> {
        agent_with_token(&self.conn, token_sha256)
    }
}

impl Db {
    /// A [`TokenReader`] on the same file; `None` for an in-memory database, which no
    /// other connection can see.
    pub fn open_token_reader(&self) -> Result<Option<TokenReader>, DbError> {
        Ok(self.open_reader()?.map(|conn| TokenReader { conn }))
    }

    /// Every agent, by name.
    pub fn agent_rows(&self) -> Result<Vec<AgentRow>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, created_at, revoked_at, last_seen_at, agent_version, last_address
             FROM agents ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AgentRow {
                name: r.get(0)?,
                created_at: r.get(1)?,
                revoked_at: r.get(2)?,
                last_seen_at: r.get(3)?,
                agent_version: r.get(4)?,
                last_address: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl WriteTx<'_> {
    /// Whether agent `name` exists, and whether its token is valid.
    pub fn token_state(&self, name: &str) -> Result<Option<TokenState>, DbError> {
        let revoked_at: Option<Option<String>> = self
            .sql()
            .query_row(
                "SELECT revoked_at FROM agents WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(revoked_at.map(|r| {
            if r.is_some() {
                TokenState::Revoked
            } else {
                TokenState::Valid
            }
        }))
    }

    /// Adds agent `name` with the hash of its token.
    pub fn insert_agent(
        &self,
        name: &str,
        token_sha256: &str,
        at: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.sql().execute(
            "INSERT INTO agents (name, token_sha256, created_at) VALUES (?1, ?2, ?3)",
            params![name, token_sha256, timestamp::stored(at)],
        )?;
        Ok(())
    }

    /// Gives the revoked agent `name` a new token, valid again.
    pub fn reenrol_agent(
        &self,
        name: &str,
        token_sha256: &str,
        at: OffsetDateTime,
    ) -> Result<(), DbError> {
        self.sql().execute(
            "UPDATE agents SET token_sha256 = ?2, created_at = ?3, revoked_at = NULL
             WHERE name = ?1",
            params![name, token_sha256, timestamp::stored(at)],
        )?;
        Ok(())
    }

    /// Revokes the token of agent `name` as of `at`.
    pub fn revoke_token(&self, name: &str, at: OffsetDateTime) -> Result<(), DbError> {
        self.sql().execute(
            "UPDATE agents SET revoked_at = ?2 WHERE name = ?1",
            params![name, timestamp::stored(at)],
        )?;
        Ok(())
    }

    /// Records an upload of `name`: when, with which software version, from which address
    /// (the last one known is kept when `address` is `None`).
    pub fn record_upload(
        &self,
        name: &str,
        at: OffsetDateTime,
        agent_version: &str,
        address: Option<IpAddr>,
    ) -> Result<(), DbError> {
        self.sql()
            .prepare_cached(
                "UPDATE agents SET last_seen_at = ?2, agent_version = ?3,
                                   last_address = coalesce(?4, last_address)
                 WHERE name = ?1",
            )?
            .execute(params![
                name,
                timestamp::stored(at),
                agent_version,
                address.map(|a| a.to_string())
            ])?;
        Ok(())
    }

    /// The address agent `name` last uploaded from, as stored.
    pub fn last_address(&self, name: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .sql()
            .query_row(
                "SELECT last_address FROM agents WHERE name = ?1",
                [name],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }
}
