//! The agents allowed to upload, and their tokens.
//!
//! `agent add NAME` draws a token of [`TOKEN_BYTES`] random bytes, prints it once (URL-safe
//! base64, no padding) and stores only its SHA-256: a stolen database gives no way to upload.
//! An upload presents the token as `Authorization: Bearer TOKEN`; [`authenticate`] finds the
//! agent whose hash matches and that is not revoked. The agent's name is the agent id its
//! results must carry.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::store::agents::{TokenLookup, TokenState};
use crate::store::{Db, DbError};

/// Random bytes in a token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// Why an agent command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The name breaks the agent id rule.
    #[error(
        "invalid agent name {name:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-' (the agent's agent_id)"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// `agent add` of a name that already has a valid token.
    #[error("agent {name:?} already exists; `agent revoke {name}` first to issue it a new token")]
    Exists {
        /// The name given.
        name: String,
    },
    /// `agent revoke` of a name never added.
    #[error("no agent named {name:?}; `agent list` shows the agents")]
    Unknown {
        /// The name given.
        name: String,
    },
    /// A database error.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A secret token, as printed once to the operator. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A new random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The token text, to print or send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// SHA-256 of a token as stored: lowercase hex.
pub fn token_hash(token: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(token.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `name` is a valid agent name: the agent id rule of the wire format, 1..=64
/// characters of `[A-Za-z0-9._-]`.
pub fn is_valid_name(name: &str) -> bool {
    nkpath_proto::limits::AGENT_ID_LEN.contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_name(name: &str) -> Result<(), AgentError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(AgentError::InvalidName { name: name.into() })
    }
}

/// What `agent add` did.
#[derive(Debug)]
pub struct Added {
    /// The new token: show it once, it is not stored.
    pub token: Token,
    /// The name had been revoked and is now enrolled again with this new token.
    pub reenrolled: bool,
}

/// One row of `agent list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's name (its agent id).
    pub name: String,
    /// When it was added (RFC 3339).
    pub created_at: String,
    /// When its token was revoked.
    pub revoked_at: Option<String>,
    /// Its last upload.
    pub last_seen_at: Option<String>,
    /// The agent version its last upload gave.
    pub agent_version: Option<String>,
    /// The peer address of its last upload.
    pub last_address: Option<IpAddr>,
}

/// An agent that presented a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Its name, which its results must carry as `agent_id`.
    pub name: String,
}

impl Db {
    /// Adds an agent and returns its new token. A revoked agent may be added again (it gets
    /// a new token); an agent with a valid token may not.
    pub fn add_agent(&mut self, name: &str) -> Result<Added, AgentError> {
        check_name(name)?;
        let token = Token::generate();
        let hash = token_hash(token.expose());
        let now = OffsetDateTime::now_utc();
        let tx = self.write()?;
        let reenrolled = match tx.token_state(name)? {
            None => {
                tx.insert_agent(name, &hash, now)?;
                false
            }
            Some(TokenState::Valid) => return Err(AgentError::Exists { name: name.into() }),
            Some(TokenState::Revoked) => {
                tx.reenrol_agent(name, &hash, now)?;
                true
            }
        };
        tx.commit()?;
        Ok(Added { token, reenrolled })
    }

    /// Revokes an agent's token: its uploads get 401 from then on. Its results stay.
    /// Returns `false` if it was already revoked.
    pub fn revoke_agent(&mut self, name: &str) -> Result<bool, AgentError> {
        let now = OffsetDateTime::now_utc();
        let tx = self.write()?;
        let revoked = match tx.token_state(name)? {
            None => return Err(AgentError::Unknown { name: name.into() }),
            Some(TokenState::Revoked) => false,
            Some(TokenState::Valid) => {
                tx.revoke_token(name, now)?;
                true
            }
        };
        tx.commit()?;
        Ok(revoked)
    }

    /// Every agent, by name.
    pub fn agents(&self) -> Result<Vec<AgentInfo>, AgentError> {
        Ok(self
            .agent_rows()?
            .into_iter()
            .map(|row| AgentInfo {
                name: row.name,
                created_at: row.created_at,
                revoked_at: row.revoked_at,
                last_seen_at: row.last_seen_at,
                agent_version: row.agent_version,
                last_address: row.last_address.and_then(|a| a.parse().ok()),
            })
            .collect())
    }
}

/// The agent whose valid (not revoked) token is `token`, if any, looked up in `agents` (the
/// database, or a [`crate::store::agents::TokenReader`]).
pub fn authenticate(
    agents: &impl TokenLookup,
    token: &str,
) -> Result<Option<Authenticated>, DbError> {
    Ok(agents
        .agent_with_token(&token_hash(token))?
        .map(|name| Authenticated { name }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_base64_of_32_bytes() {
        let a = Token::generate();
        let b = Token::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_eq!(format!("{a:?}"), "Token(..)");
    }

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_follow_the_agent_id_rule() {
        for good in ["a", "vp-fra1", "A.b_c-9", &"x".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", "a b", "é", "a/b", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn add_revoke_and_authenticate() {
        let mut db = Db::open_in_memory().unwrap();
        let added = db.add_agent("vp-1").unwrap();
        assert!(!added.reenrolled);
        let who = authenticate(&db, added.token.expose()).unwrap();
        assert_eq!(who.unwrap().name, "vp-1");
        assert!(authenticate(&db, "nope").unwrap().is_none());
        assert!(matches!(
            db.add_agent("vp-1"),
            Err(AgentError::Exists { .. })
        ));
        assert!(matches!(
            db.add_agent("bad name"),
            Err(AgentError::InvalidName { .. })
        ));
        assert!(db.revoke_agent("vp-1").unwrap());
        assert!(!db.revoke_agent("vp-1").unwrap());
        assert!(matches!(
            db.revoke_agent("vp-2"),
            Err(AgentError::Unknown { .. })
        ));
        assert!(authenticate(&db, added.token.expose()).unwrap().is_none());
        // Enrolled again: only the new token works.
        let again = db.add_agent("vp-1").unwrap();
        assert!(again.reenrolled);
        assert!(authenticate(&db, added.token.expose()).unwrap().is_none());
        assert!(authenticate(&db, again.token.expose()).unwrap().is_some());
        let list = db.agents().unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].revoked_at.is_none() && list[0].last_seen_at.is_none());
    }
}
