//! What the collector keeps so that it need not ask or load again: Team Cymru answers
//! (`cymru_cache`, schema v4) and the IXP table (in `settings`, key [`IXP_TABLE_KEY`]).
//!
//! Both are kept as the rooms above hand them over: origins, prefix and lookup time of one
//! address; the IXP table as one JSON text. Their meaning (when an answer is stale, what the
//! JSON holds) belongs to the rooms that read them.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nkpath_proto::timestamp;
use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Db, DbError};

/// The setting that holds the IXP table (JSON).
pub const IXP_TABLE_KEY: &str = "ixp_prefixes";

/// A Team Cymru answer as stored: "nothing known" is `origins` empty and `prefix` `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCymruAnswer {
    /// The origin ASes, as the answer listed them.
    pub origins: Vec<u32>,
    /// The prefix they originate.
    pub prefix: Option<Ipv4Net>,
    /// When the DNS gave the answer.
    pub looked_up_at: OffsetDateTime,
}

/// The stored answer for `addr`, fresh or not. A row this code cannot read is treated as
/// absent: the address is looked up again and the row replaced. For the store's other files
/// (fleet accounting maps vantage addresses with it); other rooms use
/// [`Db::cymru_answer`].
pub(crate) fn cymru_answer(
    conn: &Connection,
    addr: Ipv4Addr,
) -> rusqlite::Result<Option<StoredCymruAnswer>> {
    let row: Option<(Option<String>, Option<String>, String)> = conn
        .query_row(
            "SELECT origins, prefix, looked_up_at FROM cymru_cache WHERE address = ?1",
            [addr.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(origins, prefix, at)| {
        let origins = origins
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
            .ok()?;
        let prefix = match prefix {
            Some(text) => Some(text.parse::<Ipv4Net>().ok()?),
            None => None,
        };
        Some(StoredCymruAnswer {
            origins,
            prefix,
            looked_up_at: timestamp::parse(&at)?,
        })
    }))
}

impl Db {
    /// The stored Team Cymru answer for `addr`, fresh or not.
    pub fn cymru_answer(&self, addr: Ipv4Addr) -> Result<Option<StoredCymruAnswer>, DbError> {
        Ok(cymru_answer(&self.conn, addr)?)
    }

    /// Stores (or replaces) the Team Cymru answer for `addr` (one statement, committed at
    /// once). A prefix without origins is not kept: the answer is "nothing known".
    pub fn put_cymru_answer(
        &self,
        addr: Ipv4Addr,
        answer: &StoredCymruAnswer,
    ) -> Result<(), DbError> {
        let origins = (!answer.origins.is_empty()).then(|| {
            let list: Vec<String> = answer.origins.iter().map(u32::to_string).collect();
            list.join(" ")
        });
        let prefix = answer
            .prefix
            .filter(|_| origins.is_some())
            .map(|p| p.to_string());
        self.conn.execute(
            "INSERT OR REPLACE INTO cymru_cache (address, origins, prefix, looked_up_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                addr.to_string(),
                origins,
                prefix,
                timestamp::stored(answer.looked_up_at)
            ],
        )?;
        Ok(())
    }

    /// The stored IXP table (JSON), when one was loaded.
    pub fn ixp_table_json(&self) -> Result<Option<String>, DbError> {
        self.setting(IXP_TABLE_KEY)
    }

    /// Stores the IXP table (JSON), replacing the previous one.
    pub fn put_ixp_table_json(&self, json: &str) -> Result<(), DbError> {
        self.put_setting(IXP_TABLE_KEY, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn answers_round_trip_and_a_prefix_without_origins_is_not_kept() {
        let db = Db::open_in_memory().unwrap();
        let addr = Ipv4Addr::new(62, 115, 1, 9);
        assert_eq!(db.cymru_answer(addr).unwrap(), None);
        let answer = StoredCymruAnswer {
            origins: vec![1299, 3356],
            prefix: Some("62.115.0.0/16".parse().unwrap()),
            looked_up_at: datetime!(2024-05-01 12:00:00.25 UTC),
        };
        db.put_cymru_answer(addr, &answer).unwrap();
        assert_eq!(db.cymru_answer(addr).unwrap(), Some(answer.clone()));
        let nothing = StoredCymruAnswer {
            origins: Vec::new(),
            ..answer
        };
        db.put_cymru_answer(addr, &nothing).unwrap();
        let stored = db.cymru_answer(addr).unwrap().unwrap();
        assert_eq!((stored.origins.len(), stored.prefix), (0, None));
    }

    #[test]
    fn the_ixp_table_is_one_setting() {
        let db = Db::open_in_memory().unwrap();
        assert_eq!(db.ixp_table_json().unwrap(), None);
        db.put_ixp_table_json("[]").unwrap();
        db.put_ixp_table_json("[1]").unwrap();
        assert_eq!(db.ixp_table_json().unwrap().as_deref(), Some("[1]"));
        assert_eq!(db.setting(IXP_TABLE_KEY).unwrap().as_deref(), Some("[1]"));
    }
}
