//! The collector's HTTP API (`nkpath-collector serve`).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/results`, `Authorization: Bearer TOKEN`, `Content-Type: application/json`, an [`UploadBatch`] | 200 and an [`UploadAck`], sent only after the batch's transaction committed |
//! | the same without a token, or with an unknown or revoked one | 401 |
//! | a body over the limit (default [`DEFAULT_MAX_BODY`]) | 413 |
//! | an agent over one of its quotas ([`quota`]: results or bytes per hour, uploads at once) | 429 with `Retry-After` |
//! | more bodies in memory than the collector's budget ([`body_budget`]) | 503 with `Retry-After` |
//! | another content type | 415 |
//! | a body that is not a batch, or of an unsupported major version | 400 |
//! | a batch id the agent already used for other result ids | 409 (a resend of the same results is a retry: 200) |
//! | `POST /v1/results` when the collector's disk is full | 507 with `Retry-After`; nothing of the batch is stored |
//! | `GET /v1/health` | 200 `{"status":"ok","version":…,"schema_version":…,"db":"ok","bgp_sync":[…],"result_kinds":["trace","ping","multipath"]}` (`bgp_sync`: per synced collector, as `bgp status` shows it), 503 when the database fails, or is not writable (`"db":"not writable: …"`) |
//!
//! Tokens are checked on a read-only connection of their own ([`Db::open_token_reader`](crate::store::Db::open_token_reader)), never
//! behind the write connection: a flood of wrong tokens costs indexed reads, and does not
//! queue behind (or in front of) the uploads' commits. Revoking a token takes effect at the
//! next request, as before: nothing is cached.
//!
//! Connections are bounded: caps on open connections in total and per source address (an
//! IPv6 /64 counts as one) ([`connections`]), and a header timeout, an idle timeout, a
//! maximum age and HTTP/2 PINGs for each ([`lifetime`]).
//!
//! None of the 4xx answers stores anything. Errors are JSON: `{"error": "…"}`. Within a
//! batch, results are decoded one by one and refused one by one ([`ingest`]), before the
//! database is taken; the batch's results, receipts and fleet bookkeeping are then written
//! in one transaction, one commit per upload.
//!
//! The router is built by [`app`], so tests drive it with `tower::ServiceExt::oneshot`;
//! [`serve`] runs it on a socket, plain or TLS, until a shutdown signal.

pub mod body_budget;
pub mod cli;
pub mod connections;
pub mod ingest;
pub mod lifetime;
pub mod quota;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nkpath_proto::{UploadAck, UploadBatch, decode_slice};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::admission::TimeWindow;
use crate::agents::{self, Authenticated};
use crate::store::agents::TokenReader;
use crate::store::{Db, DbError};
use body_budget::BodyBudget;
use connections::{Caps, Counted, Limiter, LogThrottle, RefusalLog};
use lifetime::Lifetime;
use quota::{OverQuota, QuotaConfig, Quotas};

/// Largest request body accepted by default: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

/// Longest a request may take by default before it is answered 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The settings of `serve` beyond the database (see `serve --help` for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Longest a request may take before it is answered 408.
    pub request_timeout: Duration,
    /// Timeouts of each connection (the header timeout, idle timeout, maximum age, PINGs).
    /// Its grace period is set from `request_timeout` when serving.
    pub lifetime: Lifetime,
    /// Caps on open connections.
    pub caps: Caps,
    /// Which `started_at` times uploads may carry.
    pub window: TimeWindow,
    /// Each agent's quotas.
    pub quotas: QuotaConfig,
    /// Bytes of request bodies in memory at once, all uploads together (at least
    /// `max_body`).
    pub body_memory: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            lifetime: Lifetime::default(),
            caps: Caps::default(),
            window: TimeWindow::default(),
            quotas: QuotaConfig::default(),
            body_memory: body_budget::DEFAULT_BODY_MEMORY,
        }
    }
}

/// What the handlers share: the database and the limits.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<Db>,
    /// The token checks' own read-only connection (`None` for an in-memory database).
    reader: Option<Mutex<TokenReader>>,
    config: Config,
    /// Since when writes fail for want of space: set by an upload that found the disk full,
    /// cleared by the next one stored.
    full_since: Mutex<Option<OffsetDateTime>>,
    /// Requests refused 401: at most a line per [`connections::LOG_INTERVAL`], however many.
    unauthorized_log: LogThrottle,
    quotas: Quotas,
    body_budget: BodyBudget,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `db` with the default limits.
    ///
    /// # Panics
    ///
    /// When the read-only connection cannot be opened; [`AppState::with_config`] returns
    /// that error instead.
    pub fn new(db: Db) -> Self {
        Self::with_limits(db, DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT)
    }

    /// State over `db` with these limits, the others at their defaults.
    ///
    /// # Panics
    ///
    /// When the read-only connection cannot be opened; [`AppState::with_config`] returns
    /// that error instead.
    pub fn with_limits(db: Db, max_body: usize, request_timeout: Duration) -> Self {
        let config = Config {
            max_body,
            request_timeout,
            ..Config::default()
        };
        Self::with_config(db, config).expect("a second connection to the database")
    }

    /// State over `db` with these settings; opens the token checks' read-only connection.
    pub fn with_config(db: Db, config: Config) -> Result<Self, DbError> {
        let reader = db.open_token_reader()?.map(Mutex::new);
        Ok(Self {
            inner: Arc::new(Inner {
                db: Mutex::new(db),
                reader,
                config,
                full_since: Mutex::new(None),
                unauthorized_log: LogThrottle::default(),
                quotas: Quotas::new(config.quotas),
                body_budget: BodyBudget::new(config.body_memory, config.max_body),
            }),
        })
    }

    /// The longest a request may take.
    pub fn request_timeout(&self) -> Duration {
        self.inner.config.request_timeout
    }

    /// The agent whose valid token is `token`, if any, read without waiting for the write
    /// connection.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>, ApiError> {
        let token = token.to_owned();
        if self.inner.reader.is_none() {
            return self
                .with_db(move |db| agents::authenticate(db, &token))
                .await;
        }
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let reader = state.inner.reader.as_ref().expect("checked above");
            let reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
            agents::authenticate(&*reader, &token)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("token check failed: {e}")))?
        .map_err(ApiError::from)
    }

    /// Notes whether an upload's writes went through, for `/v1/health`.
    fn note_write(&self, outcome: &Result<UploadAck, ApiError>) {
        let mut full_since = self
            .inner
            .full_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(_) => *full_since = None,
            Err(ApiError::StorageFull(_)) => {
                full_since.get_or_insert_with(OffsetDateTime::now_utc);
            }
            Err(_) => {}
        }
    }

    /// Since when the database has not been writable for want of space, if it is not.
    fn full_since(&self) -> Option<OffsetDateTime> {
        *self
            .inner
            .full_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the database on a blocking thread (SQLite calls block, and a commit with
    /// synchronous=FULL waits for the disk).
    async fn with_db<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, E> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            // A panic mid-transaction rolled it back when the transaction dropped: the
            // connection is still usable.
            let mut db = state
                .inner
                .db
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut db)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("database task failed: {e}")))?
        .map_err(Into::into)
    }
}

/// The router: `POST /v1/results` and `GET /v1/health`, with the body limit, the request
/// timeout and request tracing.
pub fn app(state: AppState) -> Router {
    let max_body = state.inner.config.max_body;
    let timeout = state.inner.config.request_timeout;
    Router::new()
        .route("/v1/results", post(upload))
        .route("/v1/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub enum ApiError {
    /// 401: no token, or an unknown or revoked one.
    Unauthorized(&'static str),
    /// 413.
    TooLarge(String),
    /// 429: the agent is over one of its quotas.
    OverQuota(OverQuota),
    /// 503: the collector cannot take the upload now (its body memory is spent).
    Busy {
        /// Why.
        message: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// 415.
    UnsupportedMediaType(String),
    /// 400.
    BadRequest(String),
    /// 409: a batch id reused for other results.
    Conflict(String),
    /// 507 with `Retry-After`: the disk is full; nothing was stored or acknowledged.
    StorageFull(String),
    /// 500: the database failed; nothing was acknowledged.
    Internal(String),
}

/// How long an agent is asked to wait after a 507.
const FULL_RETRY_AFTER_S: u64 = 60;

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_storage_full() {
            Self::StorageFull(format!(
                "the collector's disk is full ({e}): nothing of this request was stored; \
                 retry later, it is accepted once space is freed"
            ))
        } else {
            Self::Internal(format!("database error: {e}"))
        }
    }
}

impl From<ingest::IngestError> for ApiError {
    fn from(e: ingest::IngestError) -> Self {
        match e {
            ingest::IngestError::Db(e) => e.into(),
            e @ ingest::IngestError::Settings(_) => Self::Internal(format!("database error: {e}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, message) = match self {
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_owned()),
            Self::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            Self::OverQuota(over) => {
                retry_after = Some(over.retry_after);
                let message = format!(
                    "{}: send again in {} s (the serve settings --quota-* raise it)",
                    over.what,
                    over.retry_after.as_secs()
                );
                (StatusCode::TOO_MANY_REQUESTS, message)
            }
            Self::Busy {
                message,
                retry_after: after,
            } => {
                retry_after = Some(after);
                (StatusCode::SERVICE_UNAVAILABLE, message)
            }
            Self::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Conflict(m) => (StatusCode::CONFLICT, m),
            Self::StorageFull(m) => {
                tracing::error!("{m}");
                let body = Json(serde_json::json!({ "error": m }));
                return (
                    StatusCode::INSUFFICIENT_STORAGE,
                    [(header::RETRY_AFTER, FULL_RETRY_AFTER_S.to_string())],
                    body,
                )
                    .into_response();
            }
            Self::Internal(m) => {
                tracing::error!("{m}");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        let body = Json(serde_json::json!({ "error": message }));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else if let Some(after) = retry_after {
            let seconds = after.as_secs().max(1).to_string();
            (status, [(header::RETRY_AFTER, seconds)], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// The agent a request's bearer token belongs to; 401 otherwise.
struct Agent(Authenticated);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = peer_addr(parts);
        let log_401 = |what: &str| match state.inner.unauthorized_log.admit() {
            Some(0) => tracing::warn!(?peer, "upload {what}: 401"),
            Some(more) => tracing::warn!(
                ?peer,
                "upload {what}: 401 (and {more} more 401s since the last such line)"
            ),
            None => {}
        };
        let Some(token) = bearer_token(parts) else {
            log_401("without a bearer token");
            return Err(ApiError::Unauthorized(
                "missing token: send Authorization: Bearer TOKEN (from `nkpath-collector agent add`)",
            ));
        };
        let agent = state.authenticate(token).await?;
        if let Some(agent) = agent {
            return Ok(Self(agent));
        }
        log_401("with an unknown or revoked token");
        Err(ApiError::Unauthorized("unknown or revoked token"))
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn peer_addr(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The peer address, when the server was started with connect info (not in `oneshot` tests).
struct Peer(Option<IpAddr>);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(peer_addr(parts)))
    }
}

/// Requires `Content-Type: application/json` (parameters such as charset allowed); 415
/// otherwise.
struct JsonContentType;

impl FromRequestParts<AppState> for JsonContentType {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let essence = value
            .as_deref()
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if essence.is_some_and(|e| e.eq_ignore_ascii_case("application/json")) {
            Ok(Self)
        } else {
            Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type is {}, not application/json",
                value.as_deref().unwrap_or("missing")
            )))
        }
    }
}

/// `POST /v1/results`. The extractors run in order: token (401), content type (415); then,
/// before a byte of the body is read, its declared size (413), the agent's quotas of uploads
/// at once and bytes per hour (429) and the collector's body memory (503), so that neither an
/// unauthenticated client nor a flood of large uploads can make the collector hold bodies it
/// has no room for. The results quota is checked once the body is decoded (429).
async fn upload(
    State(state): State<AppState>,
    Agent(agent): Agent,
    _: JsonContentType,
    Peer(peer): Peer,
    request: Request,
) -> Result<Json<UploadAck>, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let max_body = state.inner.config.max_body;
    let too_large = || {
        tracing::warn!(agent = %agent.name, ?peer, "upload over the body limit: 413");
        ApiError::TooLarge(format!(
            "the body is larger than this collector accepts ({max_body} bytes); send smaller batches"
        ))
    };
    // A body that does not say its size is counted at the largest size accepted.
    let size = match declared_length(&request) {
        Some(n) if n > max_body as u64 => return Err(too_large()),
        Some(n) => usize::try_from(n).unwrap_or(max_body),
        None => max_body,
    };
    let _slot = state
        .inner
        .quotas
        .begin(&agent.name, size as u64, Instant::now())
        .map_err(|over| over_quota(&agent, peer, over))?;
    let _memory = state.inner.body_budget.try_reserve(size).ok_or_else(|| {
        tracing::warn!(agent = %agent.name, ?peer, bytes = size, "upload refused: the bodies in memory fill the budget: 503");
        ApiError::Busy {
            message: format!(
                "the collector is reading as many bodies as it has memory for ({} bytes, serve --body-memory); send again later",
                state.inner.body_budget.bytes()
            ),
            retry_after: body_budget::RETRY_AFTER,
        }
    })?;
    let body = Bytes::from_request(request, &state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::BadRequest(format!("cannot read the body: {e}"))
        }
    })?;
    let batch: UploadBatch<Box<RawValue>> = decode_slice(&body).map_err(|e| {
        tracing::warn!(agent = %agent.name, ?peer, "upload is not a valid batch: {e}");
        ApiError::BadRequest(format!("not an upload batch: {e}"))
    })?;
    // The results hold their own copies of their text.
    drop(body);
    if batch.agent_id != agent.name {
        tracing::warn!(
            agent = %agent.name, envelope_agent = %batch.agent_id,
            "the batch names another agent than its token; its results are checked one by one"
        );
    }
    let results = batch.results.len();
    let (batch_id, sent_at) = (batch.batch_id, batch.sent_at);
    let window = state.inner.config.window;
    // Decoded before the database is taken, so that decoding does not hold up other
    // uploads' transactions; stored, counted and committed holding it.
    let decoding_as = agent.clone();
    let prepared = tokio::task::spawn_blocking(move || ingest::prepare(&batch, &decoding_as))
        .await
        .map_err(|e| ApiError::Internal(format!("decoding task failed: {e}")))?;
    state
        .inner
        .quotas
        .take_results(
            &agent.name,
            results as u64,
            prepared.declared_pps(),
            Instant::now(),
        )
        .map_err(|over| over_quota(&agent, peer, over))?;
    let storing_as = agent.clone();
    let stored = state
        .with_db(move |db| {
            let arrival = ingest::Arrival {
                agent: &storing_as,
                received_at,
                peer,
                window,
            };
            ingest::ingest(db, &prepared, &arrival)
        })
        .await
        .and_then(|outcome| {
            outcome.map_err(|conflict| {
                tracing::warn!(agent = %agent.name, %batch_id, ?peer, "upload refused: {conflict}");
                ApiError::Conflict(conflict.to_string())
            })
        });
    state.note_write(&stored);
    let ack = stored?;
    let (offset_ms, flagged) = ingest::clock_offset(sent_at, received_at);
    tracing::info!(
        agent = %agent.name, %batch_id, ?peer, results,
        accepted = ack.accepted.len(),
        refused = ack.refused.len() as u64 + ack.refused_unlisted,
        clock_offset_ms = offset_ms, clock_flagged = flagged, "upload stored"
    );
    log_refusals(&agent.name, &ack);
    if flagged {
        tracing::warn!(agent = %agent.name, clock_offset_ms = offset_ms, "the agent's clock is off by more than 60 s");
    }
    Ok(Json(ack))
}

/// Refusals logged one by one per upload; the others are summed up in one more line.
const LOGGED_REFUSALS: usize = 5;

/// Logs the first refusals of an upload, and one line for the rest: a batch of 10,000
/// invalid results must not write 10,000 lines.
fn log_refusals(agent: &str, ack: &UploadAck) {
    for r in ack.refused.iter().take(LOGGED_REFUSALS) {
        tracing::warn!(%agent, id = ?r.id, field = %r.field, "result refused: {}", r.reason);
    }
    let more = (ack.refused.len().saturating_sub(LOGGED_REFUSALS)) as u64 + ack.refused_unlisted;
    if more > 0 {
        tracing::warn!(
            %agent, batch_id = %ack.batch_id,
            "{more} more results of this batch refused (not logged one by one)"
        );
    }
}

/// The `Content-Length` of a request, when it has a valid one.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn over_quota(agent: &Authenticated, peer: Option<IpAddr>, over: OverQuota) -> ApiError {
    tracing::warn!(
        agent = %agent.name, ?peer, retry_after_s = over.retry_after.as_secs(),
        "upload over quota: 429: {}", over.what
    );
    ApiError::OverQuota(over)
}

/// `GET /v1/health`.
async fn health(State(state): State<AppState>) -> Response {
    let checked = state
        .with_db(|db| {
            let version = db.schema_version()?;
            let now = OffsetDateTime::now_utc().unix_timestamp();
            Ok::<_, DbError>((version, crate::sync::collector_status(db, now)?))
        })
        .await;
    let (status, db, schema, bgp_sync) = match checked {
        Ok((v, sync)) => match state.full_since() {
            None => (StatusCode::OK, "ok".to_owned(), Some(v), sync),
            Some(since) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not writable: the disk is full (uploads refused with 507 since {}); \
                     free space on the database's file system",
                    nkpath_proto::timestamp::display(since)
                ),
                Some(v),
                sync,
            ),
        },
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{e:?}"),
            None,
            Vec::new(),
        ),
    };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ok" } else { "error" },
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": schema,
        "db": db,
        "bgp_sync": bgp_sync,
        "result_kinds": ingest::result_kinds(),
    });
    (status, Json(body)).into_response()
}

/// TLS settings for [`serve`].
pub type TlsConfig = axum_server::tls_rustls::RustlsConfig;

/// Serves [`app`] on `listener` (TLS when `tls` is given) until `shutdown` completes, then
/// stops accepting, lets requests in flight finish for up to the request timeout plus a
/// little, and returns.
///
/// Each accepted connection is admitted under the caps ([`connections`]), handed to TLS
/// when configured, and driven by [`lifetime::serve_connection`] on a task of its own.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let config = state.inner.config;
    let lifetime = Lifetime {
        grace: state.request_timeout() + Duration::from_secs(2),
        ..config.lifetime
    };
    let limiter = Limiter::new(config.caps);
    let refusals = RefusalLog::default();
    let builder = Arc::new(lifetime.http_builder());
    let tls = tls.map(|tls| {
        axum_server::tls_rustls::RustlsAcceptor::new(tls).handshake_timeout(lifetime.header_timeout)
    });
    let router = app(state);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, typically: back off instead of spinning.
                    refusals.note(None, &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match limiter.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Dropping the stream closes the connection at once.
                refusals.note(Some(&peer), &std::io::Error::other(why));
                continue;
            }
        };
        let stream = Counted::new(stream, slot);
        let (router, builder, stopping) = (router.clone(), Arc::clone(&builder), stopping.clone());
        match &tls {
            None => {
                connections.spawn(async move {
                    lifetime::serve_connection(stream, peer, router, &builder, lifetime, stopping)
                        .await;
                });
            }
            Some(tls) => {
                let tls = tls.clone();
                connections.spawn(async move {
                    use axum_server::accept::Accept as _;
                    // Bounded by the acceptor's handshake timeout.
                    let Ok((stream, _)) = tls.accept(stream, ()).await else {
                        return;
                    };
                    lifetime::serve_connection(stream, peer, router, &builder, lifetime, stopping)
                        .await;
                });
            }
        }
    }
    drop(listener);
    tracing::info!(
        grace_s = lifetime.grace.as_secs(),
        "shutting down: finishing requests in flight"
    );
    stop.send_replace(true);
    let drained = tokio::time::timeout(lifetime.grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the grace period: closed"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    /// A wrong-token flood must not queue behind uploads: tokens are checked while the
    /// write connection is held in a long transaction by another thread. The holder lets go
    /// when the checks are done (or after a minute, and then the test fails): an ordering,
    /// not a timing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_are_checked_while_the_write_connection_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut db = Db::open(&path).unwrap();
        let token = db.add_agent("vp-1").unwrap().token.expose().to_owned();
        let revoked = db.add_agent("vp-2").unwrap().token.expose().to_owned();
        let state = AppState::new(db);
        // Revoked from another process's connection (as `agent revoke` does) after start.
        Db::open(&path).unwrap().revoke_agent("vp-2").unwrap();

        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let state = state.clone();
            std::thread::spawn(move || {
                let mut db = state.inner.db.lock().unwrap();
                let tx = db.write().unwrap();
                tx.put_setting("busy", "1").unwrap();
                held_tx.send(()).unwrap();
                let done_while_held = done_rx.recv_timeout(Duration::from_mins(1)).is_ok();
                drop(tx);
                done_while_held
            })
        };
        held_rx.recv().unwrap();

        let good = state.authenticate(&token).await.unwrap();
        let wrong = state.authenticate("not-a-token").await.unwrap();
        let old = state.authenticate(&revoked).await.unwrap();
        let response = app(state.clone())
            .oneshot(
                Request::post("/v1/results")
                    .header(header::AUTHORIZATION, "Bearer not-a-token")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        done_tx.send(()).ok();

        assert!(
            holder.join().unwrap(),
            "the token checks waited for the write connection"
        );
        assert_eq!(good.map(|a| a.name).as_deref(), Some("vp-1"));
        assert!(wrong.is_none());
        assert!(old.is_none(), "a revocation is seen at once");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}
