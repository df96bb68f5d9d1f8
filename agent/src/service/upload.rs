//! The uploader: sends spooled results to the collector and deletes exactly
//! what it acknowledges.
//!
//! Each upload is `POST {url}/v1/results` with an [`UploadBatch`] of the
//! oldest spooled results, sent as the JSON text they were spooled as. The
//! collector answers with an [`UploadAck`]: the `accepted` ids are deleted
//! from the spool, the `refused` ones move to its quarantine, and anything
//! the ack does not mention stays to be sent again, after a wait. Every
//! failure (no connection, a 5xx, a garbled answer, a lost answer) leaves
//! the spool as it was; the collector stores each result id once, so
//! resending is safe. Every path that sends the same results again waits
//! first: a collector that keeps refusing cannot make the agent flood it.
//!
//! A refusal names its result by id, or else by position (`results[3]…` in
//! its field path). A refusal the uploader cannot attribute to a result of
//! the batch quarantines every result of the batch the ack does not account
//! for: resending them would only be refused again.
//!
//! | answer | what the uploader does |
//! |---|---|
//! | 2xx with a valid ack | delete accepted, quarantine refused, store `pause_until` and `targets` |
//! | network error, timeout, 408, 429, 5xx | retry with exponential backoff and jitter from `MIN_BACKOFF` up to `upload.max_backoff`; a `Retry-After` is honoured, within the same bounds |
//! | connection reset during a batch of over [`RESET_SUGGESTS_TOO_LARGE`] bytes | as 413: a collector or proxy that refuses a body before reading it often just closes |
//! | 401, 403 | log that the token is wrong or revoked; wait `max_backoff` |
//! | 413 | halve the batch size and retry; a single result too large is quarantined |
//! | 409 | the batch id was used before for other results: forget it, retry after a short wait under a new one |
//! | 400 naming `results[i]` | quarantine that result; retry the others after a short wait |
//! | 400, 415, other 4xx | log; wait `max_backoff` (the agent and collector disagree on the format) |
//!
//! Before sending, each spooled result is decoded and validated as the
//! collector would: one that no longer reads (disk error, hand edit) is
//! quarantined locally rather than sent.
//!
//! Result kinds newer than the collector ([`GATED_KINDS`]: `multipath`) are
//! sent only to a collector that lists them in its `result_kinds` (every ack
//! says, and so does `GET /v1/health`, which the uploader asks when it holds
//! such results and has not heard from the collector for
//! [`KINDS_RECHECK`]). An older collector would refuse them, and a refusal
//! quarantines them for good; so until the collector says it stores them
//! they stay in the spool, and everything else goes on uploading around them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::{
    DecodeError, Refusal, ResultRecord, SCHEMA_VERSION, UploadAck, UploadBatch, decode,
    decode_slice,
};
use rand::Rng;
use reqwest::{StatusCode, Url};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::probing::targets::{self, MAX_TARGETS};
use crate::service::config::{Config, Token};
use crate::service::spool::{Spool, SpoolError, State, UploadSummary};
use nkpath_proto::text::escape_control;

/// The collector's upload endpoint, relative to its base URL.
pub const RESULTS_PATH: &str = "v1/results";

/// The collector's health endpoint, relative to its base URL.
pub const HEALTH_PATH: &str = "v1/health";

/// Result kinds an older collector refuses (they were added to the wire format
/// after 1.2): sent only to a collector that lists them in `result_kinds`.
pub const GATED_KINDS: [&str; 1] = ["multipath"];

/// How long what the collector said about the kinds it stores is trusted
/// while results of a kind it did not list wait in the spool.
pub const KINDS_RECHECK: Duration = Duration::from_mins(10);

/// The first retry waits about this long; each failure doubles it.
pub const MIN_BACKOFF: Duration = Duration::from_secs(5);

/// A connection reset during a request body this large is taken for a
/// refusal of its size: a server that answers 413 before reading the body
/// and closes often reaches the client as a reset, not as the 413. Below
/// it, a reset is an ordinary network failure (a restarted collector), which
/// must not shrink batches for good.
pub const RESET_SUGGESTS_TOO_LARGE: usize = 1 << 20;

/// How the uploader reaches the collector.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// `{url}/v1/results`.
    pub endpoint: Url,
    /// The bearer token.
    pub token: Token,
    /// This agent's id, in the batch envelope.
    pub agent_id: String,
    /// This agent's version, in the batch envelope.
    pub agent_version: String,
    /// Results per upload to start with.
    pub batch_size: usize,
    /// The first retry's wait.
    pub min_backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// Time limit of one request.
    pub timeout: Duration,
    /// How often to look for new results when the spool is empty.
    pub idle_interval: Duration,
    /// The agent's round interval, sent with every batch: a scheduling collector books
    /// the agent's rounds this far apart.
    pub round_interval: Duration,
}

impl UploaderConfig {
    /// The uploader settings of a configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            endpoint: results_url(&config.collector.url),
            token: config.collector.token.clone(),
            agent_id: config.agent_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            batch_size: config.upload.batch_size,
            min_backoff: MIN_BACKOFF.min(config.upload.max_backoff),
            max_backoff: config.upload.max_backoff,
            timeout: config.upload.timeout,
            idle_interval: config.upload.interval,
            round_interval: config.schedule.interval,
        }
    }
}

/// `{base}/v1/results`, whether or not `base` ends with a slash.
pub fn results_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{RESULTS_PATH}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// `{base}/v1/health`, from the upload endpoint `{base}/v1/results`.
pub fn health_url(results: &Url) -> Url {
    let mut url = results.clone();
    let base = results
        .path()
        .strip_suffix(RESULTS_PATH)
        .unwrap_or(results.path())
        .trim_end_matches('/')
        .to_owned();
    url.set_path(&format!("{base}/{HEALTH_PATH}"));
    url
}

/// Why an upload did not go through. None of these deleted anything.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// No answer: connection refused, DNS, TLS, timeout, connection dropped.
    #[error(
        "cannot reach the collector at {url}: {source}; results stay spooled and will be retried"
    )]
    Network {
        /// The endpoint.
        url: Url,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// 401 or 403.
    #[error(
        "the collector refused the token (HTTP {status}): it is wrong or has been revoked; ask the collector's operator for a new one and put it in collector.token_file"
    )]
    Unauthorized {
        /// The status.
        status: StatusCode,
    },
    /// 413 for a batch of more than one result.
    #[error(
        "the collector found a batch of {size} results too large (HTTP 413); retrying with {next}"
    )]
    TooLarge {
        /// The refused batch size.
        size: usize,
        /// The next batch size.
        next: usize,
    },
    /// 409: the collector holds a batch of this id with other results (the
    /// agent's state was lost between a batch and its retry, or ids collided).
    #[error(
        "the collector already holds batch {batch_id} with other results (HTTP 409); the same results go again under a new batch id"
    )]
    BatchIdTaken {
        /// The batch id refused.
        batch_id: Uuid,
    },
    /// 400, 415 or another 4xx.
    #[error(
        "the collector rejected the upload (HTTP {status}: {body}); the agent may be too old or too new for this collector: check both versions"
    )]
    Rejected {
        /// The status.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
    },
    /// The connection broke while a large batch was on its way: taken for
    /// a refusal of its size (see [`RESET_SUGGESTS_TOO_LARGE`]).
    #[error(
        "the collector closed the connection during a batch of {size} results ({bytes} bytes), as a server does that refuses a body too large without reading it; retrying with {next}: {source}"
    )]
    Reset {
        /// The batch size sent.
        size: usize,
        /// Its body's length.
        bytes: usize,
        /// The next batch size.
        next: usize,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// 408, 429 or 5xx: the collector is busy, slow or failing; it may come back.
    #[error(
        "the collector failed (HTTP {status}: {body}); results stay spooled and will be retried"
    )]
    Server {
        /// The status.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
        /// The collector's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// A 2xx whose body is not an ack of this batch.
    #[error(
        "the collector's answer is not a valid ack: {0}; results stay spooled and will be retried"
    )]
    BadAck(String),
    /// The spool failed.
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// What one call of [`Uploader::upload_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The spool was empty.
    Idle,
    /// A batch went out and was answered.
    Uploaded(Report),
}

/// One answered upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The batch sent.
    pub batch_id: Uuid,
    /// Results sent.
    pub sent: usize,
    /// Results the collector accepted, now deleted from the spool.
    pub accepted: usize,
    /// Results the collector refused, now quarantined.
    pub refused: usize,
    /// Results the ack did not mention: still spooled.
    pub unanswered: usize,
}

/// Uploads batches; keeps the batch size and the count of failures in a row.
#[derive(Debug)]
pub struct Uploader {
    cfg: UploaderConfig,
    client: reqwest::Client,
    batch_size: usize,
    failures: u32,
    /// The batch id and result ids of the last unanswered batch: a retry of
    /// the same results reuses the id.
    pending: Option<(Uuid, Vec<Uuid>)>,
    /// The result kinds the collector last said it stores, and when; `None`
    /// until it has said.
    collector_kinds: Option<(Vec<String>, std::time::Instant)>,
}

impl Uploader {
    /// An uploader; fails only if TLS cannot be set up.
    pub fn new(cfg: UploaderConfig) -> Result<Self, UploadError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("nkpath-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(30)))
            // The collector closes a connection idle for its header timeout (10 s by
            // default): reusing one it may be closing would fail a request for nothing.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(UploadError::Client)?;
        Ok(Self {
            batch_size: cfg.batch_size.max(1),
            cfg,
            client,
            failures: 0,
            pending: None,
            collector_kinds: None,
        })
    }

    /// The batch size in force (it shrinks after a 413).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Sends one batch of the oldest spooled results and applies the answer.
    pub async fn upload_once(&mut self, spool: &Spool) -> Result<Outcome, UploadError> {
        let result = self.try_upload(spool).await;
        match &result {
            Ok(Outcome::Uploaded(report)) if report.unanswered > 0 => {
                self.failures = self.failures.saturating_add(1);
            }
            Ok(_) => self.failures = 0,
            Err(_) => self.failures = self.failures.saturating_add(1),
        }
        result
    }

    /// The gated kinds this collector is not known to store: their results
    /// stay in the spool. Asks the collector's health endpoint when such
    /// results wait and what it said is unknown or older than
    /// [`KINDS_RECHECK`]; a failed question counts as "not stored".
    async fn held_back_kinds(&mut self, spool: &Spool) -> Result<Vec<&'static str>, UploadError> {
        let mut waiting = Vec::new();
        for kind in GATED_KINDS {
            if !self.collector_stores(kind) && spool.depth_of(kind)? > 0 {
                waiting.push(kind);
            }
        }
        let stale = self
            .collector_kinds
            .as_ref()
            .is_none_or(|(_, when)| when.elapsed() >= KINDS_RECHECK);
        if waiting.is_empty() || !stale {
            return Ok(waiting);
        }
        match self.ask_kinds().await {
            Ok(kinds) => {
                self.collector_kinds = Some((kinds, std::time::Instant::now()));
            }
            Err(e) => {
                tracing::warn!("cannot ask the collector which result kinds it stores: {e}");
                // Not asked again before the recheck interval, but nothing is assumed.
                self.collector_kinds = Some((Vec::new(), std::time::Instant::now()));
            }
        }
        waiting.retain(|kind| !self.collector_stores(kind));
        if !waiting.is_empty() {
            tracing::info!(
                kinds = ?waiting,
                "the collector does not store these result kinds yet: they stay in the spool"
            );
        }
        Ok(waiting)
    }

    /// Whether the collector said it stores `kind`.
    fn collector_stores(&self, kind: &str) -> bool {
        self.collector_kinds
            .as_ref()
            .is_some_and(|(kinds, _)| nkpath_proto::accepts_kind(kinds, kind))
    }

    /// `GET /v1/health`: the `result_kinds` of its answer (none from a
    /// collector before wire format 1.4).
    async fn ask_kinds(&self) -> Result<Vec<String>, String> {
        #[derive(serde::Deserialize)]
        struct Health {
            #[serde(default)]
            result_kinds: Vec<String>,
        }
        let response = self
            .client
            .get(health_url(&self.cfg.endpoint))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {}", excerpt(&body)));
        }
        serde_json::from_slice::<Health>(&body)
            .map(|h| h.result_kinds)
            .map_err(|e| format!("not a health answer: {e}"))
    }

    async fn try_upload(&mut self, spool: &Spool) -> Result<Outcome, UploadError> {
        let held_back = self.held_back_kinds(spool).await?;
        let spooled = spool.next_batch_except(self.batch_size, &held_back)?;
        if spooled.is_empty() {
            return Ok(Outcome::Idle);
        }
        let mut ids = Vec::with_capacity(spooled.len());
        let mut results = Vec::with_capacity(spooled.len());
        for s in spooled {
            match readable(&s.json, s.result_id) {
                Ok(()) => {
                    ids.push(s.result_id);
                    results.push(RawValue::from_string(s.json).map_err(|e| {
                        UploadError::BadAck(format!("a checked result is not JSON: {e}"))
                    })?);
                }
                Err((field, reason)) => {
                    // A disk error or a hand edit: sending it would only be
                    // refused, and it must not block the results behind it.
                    tracing::error!(result_id = %s.result_id, field, "spooled result unreadable ({reason}); quarantined");
                    spool.quarantine(
                        s.result_id,
                        &field,
                        &format!("unreadable in the local spool: {reason}"),
                    )?;
                }
            }
        }
        if ids.is_empty() {
            return Ok(Outcome::Uploaded(Report {
                batch_id: Uuid::nil(),
                sent: 0,
                accepted: 0,
                refused: 0,
                unanswered: 0,
            }));
        }
        let batch_id = match &self.pending {
            Some((id, pending_ids)) if *pending_ids == ids => *id,
            _ => Uuid::new_v4(),
        };
        self.pending = Some((batch_id, ids.clone()));
        let batch = UploadBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: self.cfg.agent_id.clone(),
            agent_version: self.cfg.agent_version.clone(),
            batch_id,
            sent_at: OffsetDateTime::now_utc(),
            results,
            round_interval_s: Some(
                u32::try_from(self.cfg.round_interval.as_secs()).unwrap_or(u32::MAX),
            ),
        };
        let body = serde_json::to_vec(&batch)
            .map_err(|e| UploadError::BadAck(format!("cannot serialize the batch: {e}")))?;
        let bytes = body.len();
        let url = &self.cfg.endpoint;
        let response = match self
            .client
            .post(url.clone())
            .bearer_auth(self.cfg.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(source) => return Err(self.broken(source, ids.len(), bytes)),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|source| UploadError::Network {
                url: url.clone(),
                source,
            })?;
        if status == StatusCode::CONFLICT {
            // Resending under this id would be refused forever: the next try takes a new one.
            self.pending = None;
            return Err(UploadError::BatchIdTaken { batch_id });
        }
        if !status.is_success() {
            return Err(self.refusal(spool, status, &body, &ids, retry_after)?);
        }
        let ack: UploadAck = decode_slice(&body).map_err(|e| UploadError::BadAck(e.to_string()))?;
        if ack.batch_id != batch_id {
            return Err(UploadError::BadAck(format!(
                "it answers batch {}, but batch {batch_id} was sent",
                ack.batch_id
            )));
        }
        let report = apply_ack(spool, batch_id, &ids, &ack)?;
        self.pending = None;
        self.collector_kinds = Some((ack.result_kinds, std::time::Instant::now()));
        Ok(Outcome::Uploaded(report))
    }

    /// The error for a request that got no answer; halves the batch when
    /// the connection broke during a large body.
    fn broken(&mut self, source: reqwest::Error, size: usize, bytes: usize) -> UploadError {
        let mid_request = !source.is_connect() && !source.is_timeout();
        if mid_request && size > 1 && bytes >= RESET_SUGGESTS_TOO_LARGE {
            self.batch_size = (size / 2).max(1);
            return UploadError::Reset {
                size,
                bytes,
                next: self.batch_size,
                source,
            };
        }
        UploadError::Network {
            url: self.cfg.endpoint.clone(),
            source,
        }
    }

    /// The error for a non-2xx answer; shrinks the batch on 413.
    fn refusal(
        &mut self,
        spool: &Spool,
        status: StatusCode,
        body: &[u8],
        ids: &[Uuid],
        retry_after: Option<Duration>,
    ) -> Result<UploadError, SpoolError> {
        let body = excerpt(body);
        Ok(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                UploadError::Unauthorized { status }
            }
            StatusCode::PAYLOAD_TOO_LARGE if ids.len() > 1 => {
                let size = ids.len();
                self.batch_size = (size / 2).max(1);
                UploadError::TooLarge {
                    size,
                    next: self.batch_size,
                }
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                // One result alone is too large: it can never be uploaded,
                // and retrying it would block everything behind it.
                spool.quarantine(
                    ids[0],
                    "",
                    &format!("larger than the collector accepts (HTTP 413: {body})"),
                )?;
                UploadError::Rejected { status, body }
            }
            s if is_transient(s) => UploadError::Server {
                status,
                body,
                retry_after,
            },
            StatusCode::BAD_REQUEST => {
                // The collector could not read one result of the batch: set
                // that one aside, so that the others go through next time.
                if let Some(i) = mentioned_position(&body).filter(|i| *i < ids.len()) {
                    tracing::warn!(result_id = %ids[i], "the collector cannot read this result (HTTP 400); quarantined");
                    spool.quarantine(ids[i], &format!("results[{i}]"), &body)?;
                    return Ok(UploadError::Server {
                        status,
                        body,
                        retry_after: None,
                    });
                }
                UploadError::Rejected { status, body }
            }
            _ => UploadError::Rejected { status, body },
        })
    }

    /// How long to wait after `error` before the next attempt (call after
    /// [`Self::upload_once`] failed).
    pub fn backoff(&self, error: &UploadError, rng: &mut impl Rng) -> Duration {
        let max = self.cfg.max_backoff;
        match error {
            UploadError::Unauthorized { .. }
            | UploadError::Rejected { .. }
            | UploadError::Client(_) => max.mul_f64(rng.random_range(0.9..=1.0)),
            UploadError::TooLarge { .. }
            | UploadError::Reset { .. }
            | UploadError::BatchIdTaken { .. } => self.cfg.min_backoff.min(max),
            UploadError::Server {
                retry_after: Some(wait),
                ..
            } => (*wait).clamp(self.cfg.min_backoff.min(max), max),
            _ => self.growing_backoff(rng),
        }
    }

    /// How long to wait before the next [`Self::upload_once`] after `result`:
    /// the idle interval when there was nothing to send, nothing after a
    /// complete upload, a backoff after a failure or after an ack that left
    /// results out (they would go out again at once otherwise).
    pub fn wait_after(
        &self,
        result: &Result<Outcome, UploadError>,
        rng: &mut impl Rng,
    ) -> Duration {
        match result {
            Ok(Outcome::Idle) => self.cfg.idle_interval,
            Ok(Outcome::Uploaded(report)) if report.unanswered > 0 => self.growing_backoff(rng),
            Ok(Outcome::Uploaded(_)) => Duration::ZERO,
            Err(error) => self.backoff(error, rng),
        }
    }

    /// Exponential in the failures in a row, from `min_backoff` to `max_backoff`.
    fn growing_backoff(&self, rng: &mut impl Rng) -> Duration {
        let max = self.cfg.max_backoff;
        let exponent = self.failures.saturating_sub(1).min(30);
        let ceiling = self.cfg.min_backoff.saturating_mul(1 << exponent).min(max);
        // "Equal jitter": half fixed, half random, so that agents that
        // failed together do not retry together.
        ceiling.mul_f64(rng.random_range(0.5..=1.0))
    }
}

/// Deletes what the ack accepts and quarantines what it refuses, among the
/// results sent; stores the collector's instructions.
fn apply_ack(
    spool: &Spool,
    batch_id: Uuid,
    ids: &[Uuid],
    ack: &UploadAck,
) -> Result<Report, SpoolError> {
    let sent: HashSet<Uuid> = ids.iter().copied().collect();
    let accepted: Vec<Uuid> = ack
        .accepted
        .iter()
        .copied()
        .filter(|id| sent.contains(id))
        .collect();
    if accepted.len() < ack.accepted.len() {
        tracing::warn!(%batch_id, "the collector acknowledged ids that were not in the batch; ignored");
    }
    spool.ack(&accepted)?;
    let mut answered: HashSet<Uuid> = accepted.iter().copied().collect();
    let mut refused = 0;
    let mut unattributed: Option<&Refusal> = None;
    for refusal in &ack.refused {
        let Some(id) = attribute(refusal, ids, &sent) else {
            tracing::warn!(
                %batch_id, field = %escape_control(&refusal.field),
                reason = %escape_control(&refusal.reason),
                "the collector refused a result it did not name"
            );
            unattributed.get_or_insert(refusal);
            continue;
        };
        if !answered.insert(id) {
            continue;
        }
        tracing::warn!(
            result_id = %id, field = %escape_control(&refusal.field),
            reason = %escape_control(&refusal.reason),
            "the collector refused a result; quarantined"
        );
        spool.quarantine(id, &refusal.field, &refusal.reason)?;
        refused += 1;
    }
    if let Some(refusal) = unattributed {
        // Which result it meant is unknown, but it is among those the ack
        // does not account for; sent again, they would be refused again.
        let reason = format!(
            "refused by the collector without naming the result, with others of its batch {batch_id}: {}",
            refusal.reason
        );
        for id in ids.iter().filter(|id| !answered.contains(id)) {
            tracing::warn!(result_id = %id, %batch_id, "result not accounted for by an ack with an unnamed refusal; quarantined");
            spool.quarantine(*id, &refusal.field, &reason)?;
            refused += 1;
        }
        answered.extend(ids.iter().copied());
    } else if ack.refused_unlisted > 0 {
        // The collector refused more results than its ack lists: the ones it names
        // neither accepted nor refused are those.
        let reason = format!(
            "refused by the collector, one of {} refusals of batch {batch_id} it did not list \
             (its log has the reasons)",
            ack.refused_unlisted
        );
        let unlisted: Vec<Uuid> = ids
            .iter()
            .copied()
            .filter(|id| !answered.contains(id))
            .collect();
        tracing::warn!(%batch_id, results = unlisted.len(), "{reason}; quarantined");
        for id in unlisted {
            spool.quarantine(id, "", &reason)?;
            refused += 1;
        }
        answered.extend(ids.iter().copied());
    }
    let unanswered = ids.len() - answered.len();
    if unanswered > 0 {
        tracing::warn!(%batch_id, unanswered, "the ack does not mention every result; those stay spooled and go again after a wait");
    }
    spool.set_pause_until(ack.pause_until)?;
    if let Some(until) = ack.pause_until {
        tracing::info!(%until, "the collector asks the agent to pause");
    }
    if let Some(targets) = &ack.targets {
        tracing::info!(?targets, "the collector sent a new target list");
        spool.set_targets_override(Some(targets))?;
    }
    spool.set_last_upload(&UploadSummary {
        at: OffsetDateTime::now_utc(),
        accepted: accepted.len() as u64,
        refused: refused as u64,
    })?;
    tracing::info!(%batch_id, sent = ids.len(), accepted = accepted.len(), refused, "upload acknowledged");
    Ok(Report {
        batch_id,
        sent: ids.len(),
        accepted: accepted.len(),
        refused,
        unanswered,
    })
}

/// The result a refusal is about: its id when that is in the batch, else
/// its position in the field path (`results[3].target`).
fn attribute(refusal: &Refusal, ids: &[Uuid], sent: &HashSet<Uuid>) -> Option<Uuid> {
    if let Some(id) = refusal.id {
        return sent.contains(&id).then_some(id);
    }
    let rest = refusal.field.strip_prefix("results[")?;
    let index: usize = rest[..rest.find(']')?].parse().ok()?;
    ids.get(index).copied()
}

/// The `i` of the first `results[i]` in a collector's message.
fn mentioned_position(text: &str) -> Option<usize> {
    let start = text.find("results[")? + "results[".len();
    let rest = &text[start..];
    rest[..rest.find(']')?].parse().ok()
}

/// Whether a status means "try again soon": the collector timed out, is
/// overloaded or failed, none of which says anything about the results.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // An HTTP date ends in "GMT", which RFC 2822 parsers read as +0000.
    let numeric = value.strip_suffix("GMT").map(|v| format!("{v}+0000"));
    let at = OffsetDateTime::parse(
        numeric.as_deref().unwrap_or(value),
        &time::format_description::well_known::Rfc2822,
    )
    .ok()?;
    Some(Duration::try_from(at - OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO))
}

/// Whether a spooled result still reads as the result it was spooled as;
/// the field at fault and why otherwise.
fn readable(json: &str, row_id: Uuid) -> Result<(), (String, String)> {
    let record: ResultRecord =
        decode(json).map_err(|e: DecodeError| (e.field().to_owned(), e.to_string()))?;
    if record.result_id() != row_id {
        return Err((
            "result_id".to_owned(),
            format!(
                "the result's id {} is not its spool row's {row_id}",
                record.result_id()
            ),
        ));
    }
    Ok(())
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    // The collector's words end up on terminals (`status`, logs).
    let text = escape_control(text.trim());
    if text.is_empty() {
        return "empty body".to_owned();
    }
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// Uploads until `shutdown` is cancelled: drains the spool batch after
/// batch, then polls it every `idle_interval`; after a failure waits as
/// [`Uploader::backoff`] says and records the error for `status`.
///
/// Cancelling mid-request drops the request: its results stay spooled and
/// go out again at the next start.
pub async fn upload_loop(
    spool: Arc<Spool>,
    cfg: UploaderConfig,
    shutdown: CancellationToken,
) -> Result<(), UploadError> {
    let mut uploader = Uploader::new(cfg)?;
    while !shutdown.is_cancelled() {
        let result = tokio::select! {
            () = shutdown.cancelled() => break,
            result = uploader.upload_once(&spool) => result,
        };
        let wait = uploader.wait_after(&result, &mut rand::rng());
        match &result {
            Ok(_) => {}
            Err(error) => {
                match error {
                    UploadError::Unauthorized { .. }
                    | UploadError::Rejected { .. }
                    | UploadError::Spool(_) => {
                        tracing::error!(retry_in = %humantime::format_duration(wait), "{error}");
                    }
                    _ => tracing::warn!(retry_in = %humantime::format_duration(wait), "{error}"),
                }
                if let Err(e) = spool.set_last_error(&format!("upload: {error}")) {
                    tracing::error!("cannot record the error in the spool: {e}");
                }
            }
        }
        if !wait.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
    Ok(())
}

/// The prefixes to probe: the collector's list when it sent one that is still
/// in force ([`State::assignment_at`]), clipped to the local allowlist (parts
/// outside are dropped with a warning) and to [`MAX_TARGETS`] addresses; the
/// configured targets otherwise, or when nothing of the collector's list is left.
pub fn effective_targets(config: &Config, state: &State) -> Vec<Ipv4Net> {
    let now = OffsetDateTime::now_utc();
    let Some(list) = state.assignment_at(now, config.schedule.interval) else {
        if state.targets_override.is_some() {
            tracing::info!(
                "the collector's target list has expired (no new one for {} rounds): probing the configured targets",
                crate::service::spool::ASSIGNMENT_ROUNDS
            );
        }
        return config.targets.clone();
    };
    let allow = config.allowlist.prefixes();
    let mut clipped = Vec::new();
    for text in list {
        let net = match targets::parse_prefix(text) {
            Ok(net) => net,
            Err(e) => {
                tracing::warn!("collector target {text:?} ignored: {e}");
                continue;
            }
        };
        let inside: Vec<Ipv4Net> = allow.iter().filter_map(|a| intersect(net, *a)).collect();
        if inside.is_empty() {
            tracing::warn!(%net, allowlist = %config.allowlist, "collector target outside the allowlist; dropped");
        } else if inside != [net] {
            tracing::warn!(%net, kept = ?inside, allowlist = %config.allowlist, "collector target partly outside the allowlist; clipped");
        }
        clipped.extend(inside);
    }
    // Keep the collector's prefixes in its order while the addresses they
    // cover (overlaps counted once) stay within the cap.
    let mut kept: Vec<Ipv4Net> = Vec::new();
    for net in clipped {
        let mut candidate = kept.clone();
        candidate.push(net);
        let candidate = Ipv4Net::aggregate(&candidate);
        if addresses(&candidate) <= MAX_TARGETS as u64 {
            kept = candidate;
        } else {
            tracing::warn!(%net, "collector targets exceed {MAX_TARGETS} addresses; dropped");
        }
    }
    let nets = kept;
    if nets.is_empty() {
        tracing::warn!(
            "nothing of the collector's target list is inside the allowlist; probing the configured targets"
        );
        return config.targets.clone();
    }
    nets
}

fn addresses(nets: &[Ipv4Net]) -> u64 {
    nets.iter().map(|n| 1u64 << (32 - n.prefix_len())).sum()
}

/// The common part of two prefixes: the smaller one if one holds the other.
fn intersect(a: Ipv4Net, b: Ipv4Net) -> Option<Ipv4Net> {
    if b.contains(&a) {
        Some(a)
    } else if a.contains(&b) {
        Some(b)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow: &str, targets: &str) -> Config {
        let text = format!(
            "agent_id = \"t1\"\nallowlist = {allow}\ntargets = {targets}\n[collector]\nurl = \"http://127.0.0.1:1/base/\"\ntoken = \"t\"\n"
        );
        crate::service::config::parse(std::path::Path::new("t.toml"), &text).unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn with_override(list: &[&str]) -> State {
        State {
            targets_override: Some(list.iter().map(|s| (*s).to_owned()).collect()),
            targets_received_at: Some(OffsetDateTime::now_utc()),
            ..State::default()
        }
    }

    #[test]
    fn collector_targets_expire_when_no_new_ones_come() {
        // Rounds every 15 minutes: an assignment holds 3 rounds after it arrived, or after
        // the pause it came with.
        let c = config("[\"175.45.176.0/22\"]", "[\"175.45.176.0/24\"]");
        let now = OffsetDateTime::now_utc();
        let mut state = with_override(&["175.45.177.9/32"]);
        let assigned = nets(&["175.45.177.9/32"]);
        assert_eq!(effective_targets(&c, &state), assigned);
        state.targets_received_at = Some(now - time::Duration::minutes(46));
        assert_eq!(effective_targets(&c, &state), c.targets);
        state.pause_until = Some(now - time::Duration::minutes(40));
        assert_eq!(effective_targets(&c, &state), assigned);
        // Of unknown age (a spool written before assignments expired): not trusted.
        state.targets_received_at = None;
        assert_eq!(effective_targets(&c, &state), c.targets);
    }

    #[test]
    fn endpoint_is_under_the_base_url() {
        let c = config("[\"175.45.176.0/22\"]", "[\"175.45.176.0/24\"]");
        assert_eq!(
            UploaderConfig::from_config(&c).endpoint.as_str(),
            "http://127.0.0.1:1/base/v1/results"
        );
        let bare: Url = "https://c.example.org".parse().unwrap();
        assert_eq!(
            results_url(&bare).as_str(),
            "https://c.example.org/v1/results"
        );
    }

    #[test]
    fn collector_targets_are_clipped_to_the_allowlist() {
        let c = config("[\"175.45.176.0/22\"]", "[\"175.45.176.0/24\"]");
        assert_eq!(
            effective_targets(&c, &State::default()),
            nets(&["175.45.176.0/24"])
        );
        assert_eq!(
            effective_targets(&c, &with_override(&["175.45.177.0/24", "175.45.178.0/25"])),
            nets(&["175.45.177.0/24", "175.45.178.0/25"])
        );
        // Wider than the allowlist: only the allowed part.
        assert_eq!(
            effective_targets(&c, &with_override(&["175.45.176.0/20", "8.8.8.0/24"])),
            nets(&["175.45.176.0/22"])
        );
        // Nothing allowed, or garbage: the configured targets.
        assert_eq!(
            effective_targets(&c, &with_override(&["8.8.8.0/24", "nonsense"])),
            nets(&["175.45.176.0/24"])
        );
    }

    #[test]
    fn collector_targets_obey_the_address_cap() {
        let c = config("[\"10.0.0.0/8\"]", "[\"10.0.0.0/24\"]");
        let got = effective_targets(&c, &with_override(&["10.0.0.0/16", "10.1.0.0/16"]));
        assert_eq!(got, nets(&["10.0.0.0/16"]));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_mins(2)));
        let soon = OffsetDateTime::now_utc() + time::Duration::minutes(10);
        let date = soon
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .unwrap();
        headers.insert(reqwest::header::RETRY_AFTER, date.parse().unwrap());
        let wait = retry_after(&headers).expect("an HTTP date");
        assert!(
            wait > Duration::from_secs(500) && wait <= Duration::from_mins(10),
            "{wait:?}"
        );
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date past");
        headers.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let c = config("[\"175.45.176.0/22\"]", "[\"175.45.176.0/24\"]");
        let mut cfg = UploaderConfig::from_config(&c);
        cfg.min_backoff = Duration::from_secs(1);
        cfg.max_backoff = Duration::from_mins(1);
        let mut up = Uploader::new(cfg).unwrap();
        let server = UploadError::Server {
            status: StatusCode::BAD_GATEWAY,
            body: String::new(),
            retry_after: None,
        };
        let mut rng = rand::rng();
        for failures in 1..=10 {
            up.failures = failures;
            let d = up.backoff(&server, &mut rng);
            let ceiling = Duration::from_secs(1 << (failures - 1)).min(Duration::from_mins(1));
            assert!(d >= ceiling / 2 && d <= ceiling, "{failures}: {d:?}");
        }
        let unauthorized = UploadError::Unauthorized {
            status: StatusCode::UNAUTHORIZED,
        };
        up.failures = 1;
        assert!(up.backoff(&unauthorized, &mut rng) >= Duration::from_secs(54));
    }
}
