//! How long a connection of `serve` may live once admitted ([`super::connections`] admits
//! it): each connection is driven here, with
//!
//! * a first-request timeout (the header timeout): a connection that has not sent a whole
//!   request in that time is dropped, protocol detection and TLS included;
//! * an idle timeout: a connection with no request in flight for that long is closed
//!   gracefully (HTTP/2: GOAWAY; HTTP/1: closed between requests). Without it an HTTP/2
//!   client that sent one request and then fell silent held its connection (and its slot
//!   under the caps) for good: hyper's HTTP/2 server has no idle timeout of its own, and a
//!   client answers PINGs without sending anything else;
//! * a maximum age: a connection older than that is closed gracefully after the requests
//!   in flight, however busy it is, so no slot is held forever;
//! * PING-based liveness on HTTP/2 (hyper's keep-alive): a peer that stops acknowledging
//!   PINGs (gone, or its network down) is dropped even with a request in flight.
//!
//! A graceful close that takes longer than the grace period (a request stuck in flight)
//! is cut. Shutdown of the whole server closes every connection the same graceful way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::{Service, ServiceExt as _};

/// Default idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default maximum connection age.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_mins(10);
/// Default interval between HTTP/2 PINGs.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// Default time a PING may go unacknowledged before the connection is dropped.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a connection may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Longest a connection may take to send its first request (and HTTP/1 each request
    /// head).
    pub header_timeout: Duration,
    /// Longest a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Age after which a connection is closed once its requests in flight are answered.
    pub max_age: Duration,
    /// Interval between HTTP/2 PINGs.
    pub ping_interval: Duration,
    /// Longest a PING may go unacknowledged.
    pub ping_timeout: Duration,
    /// Longest a graceful close may take before the connection is dropped.
    pub grace: Duration,
}

impl Default for Lifetime {
    fn default() -> Self {
        Self {
            header_timeout: super::connections::DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_age: DEFAULT_MAX_AGE,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            grace: super::DEFAULT_REQUEST_TIMEOUT + Duration::from_secs(2),
        }
    }
}

impl Lifetime {
    /// The HTTP/1 and HTTP/2 (auto-detected) connection builder with these settings.
    pub fn http_builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Some(self.header_timeout));
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(self.ping_interval))
            .keep_alive_timeout(self.ping_timeout);
        builder
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed it, or the protocol did (an error, a PING unanswered, a header
    /// timeout).
    Closed,
    /// No whole request within the header timeout: dropped.
    NoRequest,
    /// Idle too long: closed gracefully.
    Idle,
    /// Older than the maximum age: closed gracefully after its requests in flight.
    MaxAge,
    /// The server shuts down: closed gracefully.
    Shutdown,
}

/// Serves `service` on `io` (a connection from `peer`) until it ends: see the module
/// documentation. `stop` turning `true` closes it gracefully.
pub async fn serve_connection<I, S, B>(
    io: I,
    peer: SocketAddr,
    service: S,
    builder: &Builder<TokioExecutor>,
    lifetime: Lifetime,
    mut stop: watch::Receiver<bool>,
) -> Ended
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<hyper::body::Incoming>, Response = axum::response::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let opened = Instant::now();
    let activity = Arc::new(Activity::new(opened));
    let tracked = Tracked {
        inner: service,
        peer,
        activity: Arc::clone(&activity),
    };
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(tracked));
    tokio::pin!(conn);
    let age_limit = opened + lifetime.max_age;
    let ended = loop {
        let idle_limit = activity.idle_limit(&lifetime);
        // Armed before the state is read again below, so no change is missed.
        let changed = activity.changed.notified();
        tokio::select! {
            _ = &mut conn => return Ended::Closed,
            _ = stop.wait_for(|stopping| *stopping) => break Ended::Shutdown,
            () = tokio::time::sleep_until(age_limit) => break Ended::MaxAge,
            () = sleep_until_some(idle_limit) => {
                // A request may have started as the timer fired.
                if activity.idle_limit(&lifetime) != idle_limit {
                    continue;
                }
                if !activity.served_any() {
                    // Nothing to close gracefully: drop it, as hyper does a slow head.
                    return Ended::NoRequest;
                }
                break Ended::Idle;
            }
            () = changed => {}
        }
    };
    tracing::debug!(%peer, ?ended, "closing the connection");
    conn.as_mut().graceful_shutdown();
    if tokio::time::timeout(lifetime.grace, conn).await.is_err() {
        tracing::debug!(%peer, "the connection did not close within the grace period: dropped");
    }
    ended
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether a connection has requests in flight, and since when it has had none.
#[derive(Debug)]
struct Activity {
    state: Mutex<Busy>,
    /// Woken when a request starts or ends (one waiter: the connection's driver).
    changed: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Busy {
    in_flight: usize,
    /// When the last request ended (or the connection opened).
    quiet_since: Instant,
    /// Requests received so far.
    received: u64,
}

impl Activity {
    fn new(opened: Instant) -> Self {
        Self {
            state: Mutex::new(Busy {
                in_flight: 0,
                quiet_since: opened,
                received: 0,
            }),
            changed: Notify::new(),
        }
    }

    fn busy(&self) -> Busy {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn served_any(&self) -> bool {
        self.busy().received > 0
    }

    /// When the connection counts as idle if nothing changes; `None` while a request is in
    /// flight.
    fn idle_limit(&self, lifetime: &Lifetime) -> Option<Instant> {
        let busy = self.busy();
        if busy.in_flight > 0 {
            return None;
        }
        let limit = if busy.received == 0 {
            lifetime.header_timeout
        } else {
            lifetime.idle_timeout
        };
        Some(busy.quiet_since + limit)
    }

    /// A request started; it ends when the returned guard drops.
    fn start(self: &Arc<Self>) -> InFlight {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.in_flight += 1;
            state.received += 1;
        }
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }
}

/// A request in flight; dropping it (answered, or its stream reset) ends it.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.in_flight = state.in_flight.saturating_sub(1);
            state.quiet_since = Instant::now();
        }
        self.0.changed.notify_one();
    }
}

/// The router of one connection: counts its requests in flight and gives handlers the
/// peer address (as axum's `ConnectInfo`).
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is awaited per request below, on the clone that serves it.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let in_flight = self.activity.start();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let inner = self.inner.clone();
        Box::pin(async move {
            let response = inner.oneshot(request).await;
            drop(in_flight);
            response
        })
    }
}
