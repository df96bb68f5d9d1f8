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

/// Dump rows merged in one part of [`WriteTx::merge_rib_dump`]: small enough that a part
/// takes a fraction of a second on a full table.
const PART_ROWS: usize = 20_000;

impl WriteTx<'_> {
    /// Merges a RIB dump of collector `collector_id` taken at `t` (every prefix with its route
    /// set id) into the collector's validity intervals. The dump may fall before, between or
    /// after the dumps already loaded: with `tp` the previous and `tn` the next dump time of
    /// the collector, rows spanning `t` that the dump does not confirm are split around it,
    /// rows starting at `tn` that it confirms are extended back to `t`, and the rest of the
    /// dump becomes new rows valid until `tn`.
    ///
    /// The merge runs in parts, by ranges of prefixes; `between_parts` is called after each
    /// (a load commits there when it has held the write lock long enough). After any part
    /// the rows are right at every dump time but `t`: they only gained a boundary at `t`. So
    /// a reader that looks up only completed dumps sees nothing of a merge under way, and a
    /// merge cut off is completed by merging the same dump again.
    pub fn merge_rib_dump(
        &self,
        collector_id: i64,
        t: i64,
        dump: impl IntoIterator<Item = (StoredPrefix, i64)>,
        between_parts: &mut dyn FnMut(&Self) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let tx = self.sql();
        let (tp, tn) = neighbour_dumps(tx, collector_id, t)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS new_dump (
                 net INTEGER NOT NULL, len INTEGER NOT NULL, route_set_id INTEGER NOT NULL,
                 PRIMARY KEY (net, len)) WITHOUT ROWID;
             DELETE FROM temp.new_dump;",
        )?;
        let mut rows: Vec<(StoredPrefix, i64)> = dump.into_iter().collect();
        rows.sort_unstable();
        for part in rows.chunks(PART_ROWS) {
            let mut insert = self.sql().prepare_cached(
                "INSERT INTO temp.new_dump (net, len, route_set_id) VALUES (?1, ?2, ?3)",
            )?;
            for ((net, len), id) in part {
                insert.execute(params![net, len, id])?;
            }
            between_parts(self)?;
        }
        // Part i covers the nets from its first row's up to the next part's first row's;
        // the first part starts at 0 and the last one ends past every IPv4 address.
        let mut bounds: Vec<i64> = rows
            .chunks(PART_ROWS)
            .skip(1)
            .map(|part| i64::from(part[0].0.0))
            .collect();
        bounds.dedup();
        let lows = std::iter::once(0).chain(bounds.iter().copied());
        let highs = bounds.iter().copied().chain(std::iter::once(1 << 32));
        for (low, high) in lows.zip(highs) {
            merge_part(self.sql(), collector_id, (tp, t, tn), (low, high))?;
            between_parts(self)?;
        }
        self.sql().execute_batch("DELETE FROM temp.new_dump;")?;
        Ok(())
    }
}

/// The collector's dump times just before and after `t` (`i64::MIN` and [`OPEN_UNTIL`] when
/// there is none). A dump whose load is under way counts: its boundary may be in the rows.
fn neighbour_dumps(tx: &Connection, c: i64, t: i64) -> rusqlite::Result<(i64, i64)> {
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
    Ok((tp.unwrap_or(i64::MIN), tn.unwrap_or(OPEN_UNTIL)))
}

/// Merges the dump rows of `temp.new_dump` whose nets lie in `[low, high)` (see
/// [`WriteTx::merge_rib_dump`]; `times`: previous dump, this dump, next dump).
fn merge_part(
    tx: &Connection,
    c: i64,
    (tp, t, tn): (i64, i64, i64),
    (low, high): (i64, i64),
) -> rusqlite::Result<()> {
    const UNCONFIRMED: &str = "NOT EXISTS (SELECT 1 FROM temp.new_dump n
        WHERE n.net = p.net AND n.len = p.len AND n.route_set_id = p.route_set_id)";
    const IN_PART: &str = "p.net >= ?4 AND p.net < ?5";
    // Rows spanning t that the dump does not confirm: keep their part from tn on ...
    tx.prepare_cached(&format!(
        "INSERT INTO prefix_origins (collector_id, net, len, valid_from, valid_until, route_set_id)
         SELECT collector_id, net, len, ?2, valid_until, route_set_id FROM prefix_origins p
         WHERE collector_id = ?1 AND {IN_PART} AND valid_from <= ?3 AND valid_until > ?2
             AND {UNCONFIRMED}"
    ))?
    .execute(params![c, tn, tp, low, high])?;
    // ... and end them at t.
    tx.prepare_cached(&format!(
        "UPDATE prefix_origins AS p SET valid_until = ?2
         WHERE collector_id = ?1 AND {IN_PART} AND valid_from <= ?3 AND valid_until > ?2
             AND {UNCONFIRMED}"
    ))?
    .execute(params![c, t, tp, low, high])?;
    // Rows starting at tn that the dump confirms now start at t.
    tx.prepare_cached(&format!(
        "UPDATE prefix_origins AS p SET valid_from = ?2
         WHERE collector_id = ?1 AND {IN_PART} AND valid_from = ?3
             AND EXISTS (SELECT 1 FROM temp.new_dump n
                 WHERE n.net = p.net AND n.len = p.len AND n.route_set_id = p.route_set_id)"
    ))?
    .execute(params![c, t, tn, low, high])?;
    // Everything else in the dump is new from t until tn.
    tx.prepare_cached(
        "INSERT INTO prefix_origins (collector_id, net, len, valid_from, valid_until, route_set_id)
         SELECT ?1, n.net, n.len, ?2, ?3, n.route_set_id FROM temp.new_dump n
         WHERE n.net >= ?4 AND n.net < ?5
             AND NOT EXISTS (SELECT 1 FROM prefix_origins p WHERE p.collector_id = ?1
                 AND p.net = n.net AND p.len = n.len AND p.valid_from <= ?2 AND p.valid_until > ?2)",
    )?
    .execute(params![c, t, tn, low, high])?;
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
                .merge_rib_dump(1, *time, rows.iter().copied(), &mut |_| Ok(()))
                .unwrap();
        }
        interval_rows(tx)
    }

    /// Every validity interval, in key order.
    fn interval_rows(conn: &rusqlite::Connection) -> Vec<(u32, u8, i64, i64, i64)> {
        let mut stmt = conn
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

    /// Rows of a collector's dump at `t` (prefix, route set), read as reports read them.
    fn at(db: &Db, t: i64) -> Vec<((u32, u8), i64)> {
        let mut rows = Vec::new();
        db.for_each_dump_prefix(1, t, |p, id| rows.push((p, id)))
            .unwrap();
        rows.sort_unstable();
        rows
    }

    #[test]
    fn a_merge_cut_off_between_parts_changes_no_completed_dump_and_merging_again_completes_it() {
        // Two full parts and a bit: the old dump has every prefix with set 1, the new one
        // moves every other prefix to set 2 and drops every third.
        let n = 2 * PART_ROWS as u32 + 7;
        let old: Vec<((u32, u8), i64)> = (0..n).map(|i| ((i << 8, 24), 1)).collect();
        let new: Vec<((u32, u8), i64)> = (0..n)
            .filter(|i| i % 3 != 0)
            .map(|i| ((i << 8, 24), if i % 2 == 0 { 2 } else { 1 }))
            .collect();
        let setup = |db: &mut Db| {
            let write = db.write().unwrap();
            write
                .sql()
                .execute_batch(
                    "INSERT INTO collectors (id, name) VALUES (1, 'rc');
                     INSERT INTO route_sets (id, by_peer, origins) VALUES
                         (1, '1@0', '1'), (2, '2@0', '2');
                     INSERT INTO mrt_files VALUES (1, 1, 1, 1, 1, 'none', 'rib',
                         'TABLE_DUMP_V2', 100, 100, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         '', 0, 0, NULL, NULL);
                     INSERT INTO mrt_files VALUES (2, 1, 2, 2, 2, 'none', 'rib',
                         'TABLE_DUMP_V2', 200, 200, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         '', 0, 0, NULL, NULL);",
                )
                .unwrap();
            write
                .merge_rib_dump(1, 100, old.iter().copied(), &mut |_| Ok(()))
                .unwrap();
            write.commit().unwrap();
        };
        let mut whole = Db::open_in_memory().unwrap();
        setup(&mut whole);
        let write = whole.write().unwrap();
        write
            .merge_rib_dump(1, 200, new.iter().copied(), &mut |_| Ok(()))
            .unwrap();
        write.commit().unwrap();
        assert_eq!(at(&whole, 100), old);
        assert_eq!(at(&whole, 200), new);

        let mut cut = Db::open_in_memory().unwrap();
        setup(&mut cut);
        {
            // Each part commits; the load dies in the fourth merge part (after the fill).
            let write = cut.write().unwrap();
            let mut parts = 0;
            let result = write.merge_rib_dump(1, 200, new.iter().copied(), &mut |tx| {
                parts += 1;
                if parts == 4 {
                    return Err(DbError::Sqlite(rusqlite::Error::InvalidQuery));
                }
                tx.commit_and_pause(std::time::Duration::ZERO)
            });
            assert!(result.is_err());
        }
        assert_eq!(at(&cut, 100), old, "the completed dump changed");
        let write = cut.write().unwrap();
        write
            .merge_rib_dump(1, 200, new.iter().copied(), &mut |_| Ok(()))
            .unwrap();
        write.commit().unwrap();
        assert_eq!(
            interval_rows(cut.sql_for_tests()),
            interval_rows(whole.sql_for_tests())
        );
    }
}
