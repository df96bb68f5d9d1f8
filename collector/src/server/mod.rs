//! The collector's HTTP API (`nkpath-collector serve`).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/results`, `Authorization: Bearer TOKEN`, `Content-Type: application/json`, an [`UploadBatch`] | 200 and an [`UploadAck`], sent only after the batch's transaction committed |
//! | the same without a token, or with an unknown or revoked one | 401 |
//! | a body over the limit (default [`DEFAULT_MAX_BODY`]) | 413 |
//! | another content type | 415 |
//! | a body that is not a batch, or of an unsupported major version | 400 |
//! | `GET /v1/health` | 200 `{"status":"ok","version":…,"schema_version":…,"db":"ok","result_kinds":["trace","ping","multipath"]}`, 503 when the database fails |
//!
//! Tokens are checked on a read-only connection of their own ([`Db::open_token_reader`](crate::store::Db::open_token_reader)), never
//! behind the write connection: a flood of wrong tokens costs indexed reads, and does not
//! queue behind (or in front of) the uploads' commits. Revoking a token takes effect at the
//! next request, as before: nothing is cached.
//!
//! Connections are bounded ([`connections`]): a header timeout, and caps on open connections
//! in total and per source address.
//!
//! None of the 4xx answers stores anything. Errors are JSON: `{"error": "…"}`. Within a
//! batch, results are decoded one by one and refused one by one ([`ingest`]), before the
//! database is taken; the batch's results, receipts and fleet bookkeeping are then written
//! in one transaction, one commit per upload.
//!
//! The router is built by [`app`], so tests drive it with `tower::ServiceExt::oneshot`;
//! [`serve`] runs it on a socket, plain or TLS, until a shutdown signal.

pub mod cli;
pub mod connections;
pub mod ingest;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
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
use connections::{Caps, LimitAcceptor, Limiter, RefusalLog};

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
    /// Longest a connection may take to send a request head (and stay idle between
    /// requests).
    pub header_timeout: Duration,
    /// Caps on open connections.
    pub caps: Caps,
    /// Which `started_at` times uploads may carry.
    pub window: TimeWindow,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_body: DEFAULT_MAX_BODY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_timeout: connections::DEFAULT_HEADER_TIMEOUT,
            caps: Caps::default(),
            window: TimeWindow::default(),
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
        .map_err(|e| ApiError::Internal(format!("database error: {e}")))
    }

    /// Runs `f` on the database on a blocking thread (SQLite calls block, and a commit with
    /// synchronous=FULL waits for the disk).
    async fn with_db<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(&mut Db) -> Result<T, E> + Send + 'static,
    {
        self.prepare_then_with_db(|| (), |db, ()| f(db)).await
    }

    /// Runs `prepare`, then `f` on the database with what it returned, on one blocking
    /// thread. `prepare` runs before the database is taken: work that needs no stored data
    /// (decoding an upload) does not hold up other uploads' transactions.
    async fn prepare_then_with_db<P, T, E, F>(
        &self,
        prepare: impl FnOnce() -> P + Send + 'static,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: FnOnce(&mut Db, P) -> Result<T, E> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let prepared = prepare();
            // A panic mid-transaction rolled it back when the transaction dropped: the
            // connection is still usable.
            let mut db = state
                .inner
                .db
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&mut db, prepared)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("database task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("database error: {e}")))
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
    /// 415.
    UnsupportedMediaType(String),
    /// 400.
    BadRequest(String),
    /// 500: the database failed; nothing was acknowledged.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.to_owned()),
            Self::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            Self::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            Self::Internal(m) => {
                tracing::error!("{m}");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        let body = Json(serde_json::json!({ "error": message }));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
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
        let Some(token) = bearer_token(parts) else {
            tracing::warn!(?peer, "upload without a bearer token: 401");
            return Err(ApiError::Unauthorized(
                "missing token: send Authorization: Bearer TOKEN (from `nkpath-collector agent add`)",
            ));
        };
        let agent = state.authenticate(token).await?;
        if let Some(agent) = agent {
            return Ok(Self(agent));
        }
        tracing::warn!(?peer, "upload with an unknown or revoked token: 401");
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

/// `POST /v1/results`. The extractors run in order: token (401), content type (415), then
/// the body (413), so an unauthenticated client cannot make the collector read a body.
async fn upload(
    State(state): State<AppState>,
    Agent(agent): Agent,
    _: JsonContentType,
    Peer(peer): Peer,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UploadAck>, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            tracing::warn!(agent = %agent.name, ?peer, "upload over the body limit: 413");
            ApiError::TooLarge(format!(
                "the body is larger than this collector accepts ({} bytes); send smaller batches",
                state.inner.config.max_body
            ))
        } else {
            ApiError::BadRequest(format!("cannot read the body: {e}"))
        }
    })?;
    let batch: UploadBatch<Box<RawValue>> = decode_slice(&body).map_err(|e| {
        tracing::warn!(agent = %agent.name, ?peer, "upload is not a valid batch: {e}");
        ApiError::BadRequest(format!("not an upload batch: {e}"))
    })?;
    if batch.agent_id != agent.name {
        tracing::warn!(
            agent = %agent.name, envelope_agent = %batch.agent_id,
            "the batch names another agent than its token; its results are checked one by one"
        );
    }
    let results = batch.results.len();
    let (batch_id, sent_at) = (batch.batch_id, batch.sent_at);
    let window = state.inner.config.window;
    let (decoding_as, storing_as) = (agent.clone(), agent.clone());
    // Decoded before the database is taken; stored, counted and committed holding it.
    let ack = state
        .prepare_then_with_db(
            move || ingest::prepare(&batch, &decoding_as),
            move |db, prepared| {
                let arrival = ingest::Arrival {
                    agent: &storing_as,
                    received_at,
                    peer,
                    window,
                };
                ingest::ingest(db, &prepared, &arrival)
            },
        )
        .await?;
    let (offset_ms, flagged) = ingest::clock_offset(sent_at, received_at);
    tracing::info!(
        agent = %agent.name, %batch_id, ?peer, results,
        accepted = ack.accepted.len(), refused = ack.refused.len(),
        clock_offset_ms = offset_ms, clock_flagged = flagged, "upload stored"
    );
    for r in &ack.refused {
        tracing::warn!(agent = %agent.name, id = ?r.id, field = %r.field, "result refused: {}", r.reason);
    }
    if flagged {
        tracing::warn!(agent = %agent.name, clock_offset_ms = offset_ms, "the agent's clock is off by more than 60 s");
    }
    Ok(Json(ack))
}

/// `GET /v1/health`.
async fn health(State(state): State<AppState>) -> Response {
    let checked = state
        .with_db(|db| Ok::<_, DbError>(db.schema_version()))
        .await;
    let (status, db, schema) = match checked {
        Ok(Ok(v)) => (StatusCode::OK, "ok".to_owned(), Some(v)),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e:?}"), None),
    };
    let body = serde_json::json!({
        "status": if status == StatusCode::OK { "ok" } else { "error" },
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": schema,
        "db": db,
        "result_kinds": ingest::result_kinds(),
    });
    (status, Json(body)).into_response()
}

/// TLS settings for [`serve`].
pub type TlsConfig = axum_server::tls_rustls::RustlsConfig;

/// Serves [`app`] on `listener` (TLS when `tls` is given) until `shutdown` completes, then
/// stops accepting, lets requests in flight finish for up to the request timeout plus a
/// little, and returns.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Option<TlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = state.request_timeout() + Duration::from_secs(2);
    let config = state.inner.config;
    let limiter = Limiter::new(config.caps);
    let refusals = Arc::new(RefusalLog::default());
    let handle = axum_server::Handle::new();
    let signal = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            grace_s = grace.as_secs(),
            "shutting down: finishing requests in flight"
        );
        signal.graceful_shutdown(Some(grace));
    });
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let counted = LimitAcceptor::new(axum_server::accept::DefaultAcceptor::new(), limiter);
    let mut server = axum_server::from_tcp(listener)?
        .handle(handle)
        // Until the first request head is read (hyper's own timeout starts only after it
        // has told HTTP/1 from HTTP/2)...
        .first_request_timeout(config.header_timeout)
        .accept_error_handler(move |peer, error| refusals.note(peer, error));
    // ...and for every request head after it on a kept-alive connection.
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(config.header_timeout));
    match tls {
        Some(tls) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                .handshake_timeout(config.header_timeout)
                .acceptor(counted);
            server.acceptor(acceptor).serve(service).await
        }
        None => server.acceptor(counted).serve(service).await,
    }
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
