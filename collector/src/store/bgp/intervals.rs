//! A RIB dump's origins as validity intervals.
//!
//! `prefix_origins` holds, per collector and prefix, intervals over the collector's dump
//! times during which the prefix had one route set: a row is valid in every dump taken at or
//! after `valid_from` and before `valid_until`. A dump that repeats the previous one extends
//! the open rows and adds nothing, so two-hourly dumps of a stable table cost little. Dumps
//! may be loaded in any order.

use rusqlite::{Connection, params};

use super::StoredPrefix;
use crate::store::migrations::OPEN_UNTIL;
use crate::store::{DbError, WriteTx};

impl WriteTx<'_> {
    /// Merges a RIB dump of collector `collector_id` taken at `t` (every prefix with its route
    /// set id) into the collector's validity intervals. The dump may fall before, between or
    /// after the dumps already loaded: with `tp` the previous and `tn` the next dump time of
    /// the collector, rows spanning `t` that the dump does not confirm are split around it,
    /// rows starting at `tn` that it confirms are extended back to `t`, and the rest of the
    /// dump becomes new rows valid until `tn`.
    pub fn merge_rib_dump(
        &self,
        collector_id: i64,
        t: i64,
        dump: impl IntoIterator<Item = (StoredPrefix, i64)>,
    ) -> Result<(), DbError> {
        Ok(merge_dump(self.sql(), collector_id, t, dump)?)
    }
}

/// See [`WriteTx::merge_rib_dump`].
fn merge_dump(
    tx: &Connection,
    collector_id: i64,
    t: i64,
    dump: impl IntoIterator<Item = (StoredPrefix, i64)>,
) -> rusqlite::Result<()> {
    let c = collector_id;
    let tp: Option<i64> = tx.query_row(
        "SELECT max(dump_time) FROM mrt_files WHERE collector_id = ?1 AND dump_time < ?2",
        params![c, t],
        |r| r.get(0),
    )?;
    let tn: Option<i64> = tx.query_row(
        "SELECT min(dump_time) FROM mrt_files WHERE collector_id = ?1 AND dump_time > ?2",
        params![c, t],
        |r| r.get(0),
    )?;
    let tp = tp.unwrap_or(i64::MIN);
    let tn = tn.unwrap_or(OPEN_UNTIL);
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS new_dump (
             net INTEGER NOT NULL, len INTEGER NOT NULL, route_set_id INTEGER NOT NULL,
             PRIMARY KEY (net, len)) WITHOUT ROWID;
         DELETE FROM temp.new_dump;",
    )?;
    {
        let mut rows: Vec<(StoredPrefix, i64)> = dump.into_iter().collect();
        rows.sort_unstable();
        let mut insert =
            tx.prepare("INSERT INTO temp.new_dump (net, len, route_set_id) VALUES (?1, ?2, ?3)")?;
        for ((net, len), id) in rows {
            insert.execute(params![net, len, id])?;
        }
    }
    const UNCONFIRMED: &str = "NOT EXISTS (SELECT 1 FROM temp.new_dump n
        WHERE n.net = p.net AND n.len = p.len AND n.route_set_id = p.route_set_id)";
    // Rows spanning t that the dump does not confirm: keep their part from tn on ...
    tx.execute(
        &format!(
            "INSERT INTO prefix_origins (collector_id, net, len, valid_from, valid_until, route_set_id)
             SELECT collector_id, net, len, ?2, valid_until, route_set_id FROM prefix_origins p
             WHERE collector_id = ?1 AND valid_from <= ?3 AND valid_until > ?2 AND {UNCONFIRMED}"
        ),
        params![c, tn, tp],
    )?;
    // ... and end them at t.
    tx.execute(
        &format!(
            "UPDATE prefix_origins AS p SET valid_until = ?2
             WHERE collector_id = ?1 AND valid_from <= ?3 AND valid_until > ?2 AND {UNCONFIRMED}"
        ),
        params![c, t, tp],
    )?;
    // Rows starting at tn that the dump confirms now start at t.
    tx.execute(
        "UPDATE prefix_origins AS p SET valid_from = ?2
         WHERE collector_id = ?1 AND valid_from = ?3 AND EXISTS (SELECT 1 FROM temp.new_dump n
             WHERE n.net = p.net AND n.len = p.len AND n.route_set_id = p.route_set_id)",
        params![c, t, tn],
    )?;
    // Everything else in the dump is new from t until tn.
    tx.execute(
        "INSERT INTO prefix_origins (collector_id, net, len, valid_from, valid_until, route_set_id)
         SELECT ?1, n.net, n.len, ?2, ?3, n.route_set_id FROM temp.new_dump n
         WHERE NOT EXISTS (SELECT 1 FROM prefix_origins p WHERE p.collector_id = ?1
             AND p.net = n.net AND p.len = n.len AND p.valid_from <= ?2 AND p.valid_until > ?2)",
        params![c, t, tn],
    )?;
    tx.execute_batch("DELETE FROM temp.new_dump;")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    const A: (u32, u8) = (0x0a00_0000, 8);
    const B: (u32, u8) = (0x0b00_0000, 8);
    const C: (u32, u8) = (0x0c00_0000, 8);

    /// A dump's content: prefix → route set id.
    type Dump<'a> = &'a [((u32, u8), i64)];

    /// Loads dumps (time, content) in the given order; returns all rows.
    fn load(order: &[(i64, Dump<'_>)]) -> Vec<(u32, u8, i64, i64, i64)> {
        let mut db = Db::open_in_memory().unwrap();
        let write = db.write().unwrap();
        let tx = write.sql();
        tx.execute_batch(
            "INSERT INTO collectors (id, name) VALUES (1, 'rc');
             INSERT INTO route_sets (id, by_peer, origins) VALUES
                 (1, '1@0', '1'), (2, '2@0', '2'), (3, '3@0', '3'), (9, '9@0', '9');",
        )
        .unwrap();
        for (i, (time, rows)) in order.iter().enumerate() {
            tx.execute(
                "INSERT INTO mrt_files VALUES (?1, 1, ?1, ?1, ?1, 'none', 'rib', 'TABLE_DUMP_V2',
                     ?2, ?2, ?2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0, 0, NULL, NULL)",
                params![i as i64 + 1, time],
            )
            .unwrap();
            write
                .merge_rib_dump(1, *time, rows.iter().copied())
                .unwrap();
        }
        let mut stmt = tx
            .prepare(
                "SELECT net, len, valid_from, valid_until, route_set_id FROM prefix_origins
                 ORDER BY net, len, valid_from",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn intervals_do_not_depend_on_load_order() {
        let d100: Dump<'_> = &[(A, 1), (B, 2)];
        let d200: Dump<'_> = &[(A, 1), (B, 9), (C, 3)];
        let d300: Dump<'_> = &[(A, 1), (C, 3)];
        let expected = vec![
            (A.0, A.1, 100, OPEN_UNTIL, 1),
            (B.0, B.1, 100, 200, 2),
            (B.0, B.1, 200, 300, 9),
            (C.0, C.1, 200, OPEN_UNTIL, 3),
        ];
        let orders = [
            [(100, d100), (200, d200), (300, d300)],
            [(100, d100), (300, d300), (200, d200)],
            [(300, d300), (200, d200), (100, d100)],
            [(200, d200), (100, d100), (300, d300)],
        ];
        for order in orders {
            assert_eq!(load(&order), expected, "order {:?}", order.map(|o| o.0));
        }
    }

    #[test]
    fn a_gap_splits_a_row_around_the_new_dump() {
        let with_b: Dump<'_> = &[(A, 1), (B, 2)];
        let without_b: Dump<'_> = &[(A, 1)];
        // B is in the dumps at 100 and 300; the dump at 200, loaded last, lacks it.
        let rows = load(&[(100, with_b), (300, with_b), (200, without_b)]);
        assert_eq!(
            rows,
            vec![
                (A.0, A.1, 100, OPEN_UNTIL, 1),
                (B.0, B.1, 100, 200, 2),
                (B.0, B.1, 300, OPEN_UNTIL, 2),
            ]
        );
        assert_eq!(
            rows,
            load(&[(100, with_b), (200, without_b), (300, with_b)])
        );
    }
}
