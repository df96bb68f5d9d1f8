//! What the alerts of `--on-change` keep (tables in [`super::migrations`], v8): the
//! evaluator's watermark, the confirmed upstream set per prefix, every event found, and every
//! run of the command. Kept so that a restart neither repeats nor loses an alert.

use rusqlite::{OptionalExtension as _, params};

use super::{Db, DbError, WriteTx};

/// The evaluator's watermark (`alert_state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertWatermark {
    /// Events before this time are history (the current catch-up started then).
    pub armed_since: i64,
    /// The data time up to which the stored state was evaluated.
    pub horizon: i64,
    /// When the last evaluation ran (UNIX seconds).
    pub evaluated_at: i64,
    /// [`Db::alert_data_mark`] when mismatches were last looked for.
    pub data_mark: String,
}

/// An event as found by the evaluator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlertEvent<'a> {
    /// Identifies the event across evaluations (a second find is ignored).
    pub key: &'a str,
    /// The prefix its runs are grouped by.
    pub prefix: &'a str,
    /// `upstreams`, `mismatch`, `outage-start` or `outage-end`.
    pub kind: &'a str,
    /// When it happened (UNIX seconds).
    pub time: i64,
    /// When it was found (UNIX seconds).
    pub found_at: i64,
    /// The event as the alert document shows it.
    pub json: &'a str,
    /// `pending` (to be sent) or `history` (older than the catch-up start).
    pub status: &'a str,
}

/// An event waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAlertEvent {
    /// `alert_events.id`.
    pub id: i64,
    /// Its prefix.
    pub prefix: String,
    /// When it happened.
    pub time: i64,
    /// The event as JSON text.
    pub json: String,
    /// Runs that already failed with it.
    pub attempts: u32,
}

/// A stored event, for reports and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEventRow {
    /// Its key.
    pub key: String,
    /// Its prefix.
    pub prefix: String,
    /// `upstreams`, `mismatch`, `outage-start` or `outage-end`.
    pub kind: String,
    /// When it happened.
    pub time: i64,
    /// `pending`, `sent`, `failed` or `history`.
    pub status: String,
    /// Runs that included it.
    pub attempts: u32,
}

impl Db {
    /// The evaluator's watermark, if it ever ran.
    pub fn alert_watermark(&self) -> Result<Option<AlertWatermark>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT armed_since, horizon, evaluated_at, data_mark FROM alert_state WHERE id = 1",
                [],
                |r| {
                    Ok(AlertWatermark {
                        armed_since: r.get(0)?,
                        horizon: r.get(1)?,
                        evaluated_at: r.get(2)?,
                        data_mark: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// A mark that changes whenever traces or BGP data are added or removed (counts and
    /// newest ids of results and MRT files, and the provisional rows).
    pub fn alert_data_mark(&self) -> Result<String, DbError> {
        Ok(self.conn.query_row(
            "SELECT (SELECT count(*) FROM results) || ':' || (SELECT coalesce(max(rowid), 0) FROM results)
                 || ':' || (SELECT count(*) FROM mrt_files) || ':' || (SELECT coalesce(max(id), 0) FROM mrt_files)
                 || ':' || (SELECT coalesce(sum(records), 0) FROM mrt_files WHERE provisional)",
            [],
            |r| r.get(0),
        )?)
    }

    /// The confirmed upstream set of every prefix: (prefix, upstreams text, since).
    pub fn alert_upstream_sets(&self) -> Result<Vec<(String, String, i64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT prefix, upstreams, since FROM alert_upstreams ORDER BY prefix")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events waiting for a run, oldest first.
    pub fn pending_alert_events(&self) -> Result<Vec<PendingAlertEvent>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, prefix, time, json, attempts FROM alert_events
             WHERE status = 'pending' ORDER BY time, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PendingAlertEvent {
                id: r.get(0)?,
                prefix: r.get(1)?,
                time: r.get(2)?,
                json: r.get(3)?,
                attempts: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the last run for each prefix started: (prefix, started_at).
    pub fn last_alert_runs(&self) -> Result<Vec<(String, i64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT prefix, max(started_at) FROM alert_runs GROUP BY prefix")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every stored event, in time order.
    pub fn alert_events(&self) -> Result<Vec<AlertEventRow>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT key, prefix, kind, time, status, attempts FROM alert_events ORDER BY time, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AlertEventRow {
                key: r.get(0)?,
                prefix: r.get(1)?,
                kind: r.get(2)?,
                time: r.get(3)?,
                status: r.get(4)?,
                attempts: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl WriteTx<'_> {
    /// Stores the evaluator's watermark.
    pub fn set_alert_watermark(&self, w: &AlertWatermark) -> Result<(), DbError> {
        self.sql().execute(
            "INSERT INTO alert_state (id, armed_since, horizon, evaluated_at, data_mark)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET armed_since = excluded.armed_since,
                 horizon = excluded.horizon, evaluated_at = excluded.evaluated_at,
                 data_mark = excluded.data_mark",
            params![w.armed_since, w.horizon, w.evaluated_at, w.data_mark],
        )?;
        Ok(())
    }

    /// Stores a prefix's confirmed upstream set.
    pub fn set_alert_upstream_set(
        &self,
        prefix: &str,
        upstreams: &str,
        since: i64,
    ) -> Result<(), DbError> {
        self.sql().execute(
            "INSERT INTO alert_upstreams (prefix, upstreams, since) VALUES (?1, ?2, ?3)
             ON CONFLICT (prefix) DO UPDATE SET upstreams = excluded.upstreams,
                 since = excluded.since",
            params![prefix, upstreams, since],
        )?;
        Ok(())
    }

    /// Stores an event unless one with its key is stored; returns whether it was new.
    pub fn insert_alert_event(&self, e: &NewAlertEvent<'_>) -> Result<bool, DbError> {
        let added = self.sql().execute(
            "INSERT INTO alert_events (key, prefix, kind, time, found_at, json, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING",
            params![
                e.key, e.prefix, e.kind, e.time, e.found_at, e.json, e.status
            ],
        )?;
        Ok(added == 1)
    }

    /// Records a run of the command for a prefix; returns its id.
    pub fn insert_alert_run(&self, prefix: &str, started_at: i64) -> Result<i64, DbError> {
        self.sql().execute(
            "INSERT INTO alert_runs (prefix, started_at, outcome) VALUES (?1, ?2, 'running')",
            params![prefix, started_at],
        )?;
        Ok(self.sql().last_insert_rowid())
    }

    /// Records how a run ended and what became of its events: `sent` when it succeeded;
    /// otherwise `pending` again (one attempt more) unless `final_attempt`, then `failed`.
    pub fn finish_alert_run(
        &self,
        run_id: i64,
        outcome: &str,
        succeeded: bool,
        final_attempt: bool,
        event_ids: &[i64],
    ) -> Result<(), DbError> {
        self.sql().execute(
            "UPDATE alert_runs SET outcome = ?2 WHERE id = ?1",
            params![run_id, outcome],
        )?;
        let status = match (succeeded, final_attempt) {
            (true, _) => "sent",
            (false, true) => "failed",
            (false, false) => "pending",
        };
        let mut stmt = self.sql().prepare_cached(
            "UPDATE alert_events SET status = ?2, attempts = attempts + 1, run_id = ?3
             WHERE id = ?1",
        )?;
        for id in event_ids {
            stmt.execute(params![id, status, run_id])?;
        }
        Ok(())
    }
}
