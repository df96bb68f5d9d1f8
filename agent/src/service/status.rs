//! `nkpath-agent status`: what the running (or stopped) agent has been doing,
//! read from its spool.

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::service::config::Config;
use crate::service::disk::DiskShort;
use crate::service::spool::{
    ErrorNote, Quarantined, RoundSummary, Spool, SpoolError, UploadSummary,
};
use nkpath_proto::text::escape_control;
use nkpath_proto::timestamp;

/// Quarantined results listed (with their ids) by `status`.
pub const RECENT_QUARANTINE: usize = 5;

/// Everything `status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The agent's id.
    pub agent_id: String,
    /// The spool file.
    pub spool_path: PathBuf,
    /// Results waiting for upload.
    pub spool_depth: u64,
    /// The configured `spool.max_results`.
    pub spool_max_results: u64,
    /// Whether the spool is full (no new rounds until uploads catch up).
    pub spool_full: bool,
    /// The spool's disk could not take a round when last checked (no new rounds until
    /// space returns).
    pub disk_short: Option<DiskShort>,
    /// Results set aside: refused by the collector, or unreadable in the spool.
    pub quarantined: u64,
    /// The latest of them, newest first.
    pub recent_quarantine: Vec<Quarantined>,
    /// The last finished round.
    pub last_round: Option<RoundSummary>,
    /// The last answered upload.
    pub last_upload: Option<UploadSummary>,
    /// The last error.
    pub last_error: Option<ErrorNote>,
    /// The collector's pause, while it lasts.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_until: Option<OffsetDateTime>,
    /// The collector's target list, if it sent one.
    pub targets_override: Option<Vec<String>>,
}

/// Reads the status from the spool named in `config`, without creating it.
pub fn gather(config: &Config, now: OffsetDateTime) -> Result<StatusReport, SpoolError> {
    let spool = Spool::open_existing(&config.spool.path)?;
    report(config, &spool, now)
}

/// The status of an open spool.
pub fn report(
    config: &Config,
    spool: &Spool,
    now: OffsetDateTime,
) -> Result<StatusReport, SpoolError> {
    let state = spool.state()?;
    let depth = spool.depth()?;
    Ok(StatusReport {
        agent_id: config.agent_id.clone(),
        spool_path: spool.path().to_owned(),
        spool_depth: depth,
        spool_max_results: config.spool.max_results,
        spool_full: state.spool_full || depth >= config.spool.max_results,
        quarantined: spool.quarantine_count()?,
        recent_quarantine: spool.recent_quarantine(RECENT_QUARANTINE)?,
        paused_until: state.paused_at(now),
        last_round: state.last_round,
        last_upload: state.last_upload,
        last_error: state.last_error,
        disk_short: state.disk_short,
        targets_override: state.targets_override,
    })
}

impl StatusReport {
    /// The report as JSON (`status --json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the status serializes")
    }

    /// The report for people: one fact per line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("agent:        {}", self.agent_id));
        line(format!(
            "spool:        {} results waiting (full at {}) in {}",
            self.spool_depth,
            self.spool_max_results,
            self.spool_path.display()
        ));
        if self.spool_full {
            line("spool_full:   yes: no new rounds until uploads bring the spool below spool.max_results".into());
        }
        if let Some(short) = &self.disk_short {
            line(format!("disk:         {short}"));
        }
        // Quarantine rows, errors and targets hold the collector's words
        // or a corrupt row's bytes: escaped, so they cannot drive the terminal.
        line(format!(
            "quarantined:  {} results set aside, never sent again (refused by the collector, or unreadable in the spool){}",
            self.quarantined,
            if self.quarantined > self.recent_quarantine.len() as u64 {
                format!("; the latest {}:", self.recent_quarantine.len())
            } else {
                String::new()
            }
        ));
        for q in &self.recent_quarantine {
            let field = if q.field.is_empty() {
                String::new()
            } else {
                format!(" {}:", escape_control(&q.field))
            };
            line(format!(
                "  {} {} {}:{field} {}",
                timestamp::precise(q.quarantined_at),
                escape_control(&q.kind),
                escape_control(&q.result_id),
                escape_control(&q.reason)
            ));
        }
        line(match &self.last_round {
            Some(r) => format!(
                "last round:   {} to {}: {} traces ({} reached), {} pings",
                timestamp::precise(r.started_at),
                timestamp::precise(r.ended_at),
                r.traces,
                r.reached,
                r.pings
            ),
            None => "last round:   none yet".into(),
        });
        line(match &self.last_upload {
            Some(u) => format!(
                "last upload:  {}: {} accepted, {} refused",
                timestamp::precise(u.at),
                u.accepted,
                u.refused
            ),
            None => "last upload:  none yet".into(),
        });
        line(match &self.last_error {
            Some(e) => format!(
                "last error:   {}: {}",
                timestamp::precise(e.at),
                escape_control(&e.message)
            ),
            None => "last error:   none".into(),
        });
        if let Some(until) = self.paused_until {
            line(format!(
                "paused until: {} (asked by the collector)",
                timestamp::precise(until)
            ));
        }
        if let Some(targets) = &self.targets_override {
            line(format!(
                "targets:      {} (from the collector, clipped to the allowlist)",
                escape_control(&targets.join(", "))
            ));
        }
        out
    }
}

/// Why `nkpath-agent status` cannot report.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] crate::service::config::ConfigError),
    /// The spool cannot be read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// `nkpath-agent status --config FILE [--json]`: loads the configuration,
/// reads the spool and returns the text to print.
pub fn run(config_path: &Path, json: bool) -> Result<String, StatusError> {
    let config = crate::service::config::load(config_path)?;
    let report = gather(&config, OffsetDateTime::now_utc())?;
    Ok(if json {
        report.to_json() + "\n"
    } else {
        report.render_text()
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use nkpath_proto::{PingResult, ResultRecord, SCHEMA_VERSION};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn shows_depth_quarantine_pause_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let spool_path = dir.path().join("spool.db");
        let text = format!(
            "agent_id = \"t1\"\n[collector]\nurl = \"https://c.example.org\"\ntoken = \"t\"\n[spool]\npath = {:?}\nmax_results = 2\n",
            spool_path.display().to_string()
        );
        let config = crate::service::config::parse(Path::new("t.toml"), &text).unwrap();
        assert!(matches!(
            gather(&config, OffsetDateTime::now_utc()),
            Err(SpoolError::Missing { .. })
        ));

        let spool = Spool::open(&spool_path).unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            spool
                .put(&ResultRecord::Ping(PingResult {
                    schema_version: SCHEMA_VERSION,
                    result_id: *id,
                    agent_id: "t1".into(),
                    agent_version: "0.1.0".into(),
                    round_id: Uuid::nil(),
                    source: Ipv4Addr::new(192, 0, 2, 1),
                    target: Ipv4Addr::new(175, 45, 176, 1),
                    started_at: OffsetDateTime::UNIX_EPOCH,
                    sent: 1,
                    received: 0,
                    rtts_us: vec![],
                }))
                .unwrap();
        }
        spool
            .quarantine(ids[0], "target", "outside the target AS")
            .unwrap();
        spool
            .set_last_error("upload: the collector refused the token \u{1b}[31m")
            .unwrap();
        let now = OffsetDateTime::now_utc();
        spool
            .set_pause_until(Some(now + time::Duration::hours(1)))
            .unwrap();

        let report = gather(&config, now).unwrap();
        assert_eq!(report.spool_depth, 2);
        assert!(report.spool_full);
        assert_eq!(report.quarantined, 1);
        let text = report.render_text();
        assert!(text.contains("2 results waiting (full at 2)"), "{text}");
        assert!(text.contains("spool_full:   yes"), "{text}");
        assert!(text.contains("target: outside the target AS"), "{text}");
        assert!(text.contains("refused the token"), "{text}");
        assert!(!text.contains('\u{1b}'), "escaped: {text}");
        assert!(text.contains(r"token \u{1b}[31m"), "{text}");
        assert!(text.contains("paused until:"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["spool_depth"], 2);
        assert_eq!(json["spool_full"], true);
        assert_eq!(json["recent_quarantine"][0]["field"], "target");

        // A pause in the past is not shown.
        let later = gather(&config, now + time::Duration::hours(2)).unwrap();
        assert_eq!(later.paused_until, None);
        assert!(!later.render_text().contains("paused until"));
    }
}
