//! Connection limits of `serve`: how many connections may be open at once, in total and per
//! source address (an IPv4 address, or an IPv6 /64), and the rate-limited log of the
//! connections refused.
//!
//! A slow-loris client opens connections and never finishes a request's headers; with no
//! limit, a thousand of them starve everyone else. Three settings bound them:
//!
//! * the header timeout (hyper's HTTP/1 `header_read_timeout`, and axum-server's
//!   `first_request_timeout`, which also covers the protocol detection before it): a
//!   connection that has not sent a whole request head in time is closed, and so is a
//!   keep-alive connection idle that long;
//! * a cap on open connections, total and per source address: a connection over either is
//!   closed as soon as it is accepted (accepting it drains the listen backlog, so the
//!   addresses under their cap still get in). An IPv6 client counts by its /64 (by
//!   default): one host is routinely given a whole /64, and counting its 2^64 addresses one
//!   by one would be no cap at all;
//! * refusals are logged, at most one line per [`LOG_INTERVAL`] with the count of the
//!   others, so that a flood cannot fill the disk through the log.
//!
//! How long an admitted connection may then live (idle timeout, maximum age, HTTP/2 PINGs)
//! is [`super::lifetime`]'s.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Default header timeout.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on open connections: well under the usual 1024 file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default cap on open connections from one address: an agent needs one.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;
/// Default prefix length by which IPv6 clients are counted.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// At most one log line about refused or failed accepts per this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The caps on open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Open connections in total.
    pub total: usize,
    /// Open connections from one source address (one IPv6 prefix of `ipv6_prefix` bits).
    pub per_ip: usize,
    /// The prefix length by which IPv6 clients are counted together (128: each address).
    pub ipv6_prefix: u8,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            total: DEFAULT_MAX_CONNECTIONS,
            per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

impl Caps {
    /// The source a connection from `ip` is counted under: an IPv4 address (also when
    /// IPv4-mapped), or the IPv6 prefix holding `ip`, as a network.
    pub fn source(&self, ip: IpAddr) -> ipnet::IpNet {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ipnet::Ipv4Net::from(v4).into(),
            IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, self.ipv6_prefix.min(128))
                .map_or_else(|_| ipnet::Ipv6Net::from(v6), |net| net.trunc())
                .into(),
        }
    }
}

/// The open connections, counted.
#[derive(Debug)]
pub struct Limiter {
    caps: Caps,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_source: HashMap<ipnet::IpNet, usize>,
}

/// An admitted connection's place; dropping it (when the connection closes) frees it.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<Limiter>,
    source: ipnet::IpNet,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limiter.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.per_source.remove(&self.source);
            }
        }
    }
}

impl Limiter {
    /// A limiter with these caps and nothing open.
    pub fn new(caps: Caps) -> Arc<Self> {
        Arc::new(Self {
            caps,
            open: Mutex::new(Open::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent under a panic: every change is one statement.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, String> {
        let source = self.caps.source(ip);
        let mut open = self.lock();
        if open.total >= self.caps.total {
            return Err(format!(
                "connection refused: {} connections open, the most this collector takes \
                 (--max-connections)",
                open.total
            ));
        }
        let from_source = open.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= self.caps.per_ip {
            let source = match source {
                ipnet::IpNet::V4(net) => net.addr().to_string(),
                ipnet::IpNet::V6(net) => net.to_string(),
            };
            return Err(format!(
                "connection refused: {from_source} connections open from {source}, the most one \
                 address (IPv6: one --ipv6-prefix) may hold (--max-connections-per-ip)"
            ));
        }
        open.total += 1;
        *open.per_source.entry(source).or_insert(0) += 1;
        Ok(Slot {
            limiter: Arc::clone(self),
            source,
        })
    }

    /// Open connections: in total, and from `ip`'s source (its address or IPv6 prefix).
    pub fn open(&self, ip: IpAddr) -> (usize, usize) {
        let open = self.lock();
        let source = self.caps.source(ip);
        (
            open.total,
            open.per_source.get(&source).copied().unwrap_or(0),
        )
    }
}

/// A stream that holds its connection's [`Slot`] until it is dropped.
#[derive(Debug)]
pub struct Counted<S> {
    stream: S,
    _slot: Slot,
}

impl<S> Counted<S> {
    /// `stream`, holding `slot` for as long as it lives.
    pub fn new(stream: S, slot: Slot) -> Self {
        Self {
            stream,
            _slot: slot,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// At most one log line per interval for one kind of event, so that a flood cannot fill
/// the disk through the log; the events left out are counted in the next line.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new(LOG_INTERVAL)
    }
}

impl LogThrottle {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now (`n` events were left out since the last
    /// one); `None` when this event is to be left out (and counted).
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        drop(last);
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// Logs accept refusals and failures, at most one line per [`LOG_INTERVAL`]; the lines
/// left out are counted in the next one.
#[derive(Debug, Default)]
pub struct RefusalLog(LogThrottle);

impl RefusalLog {
    /// Logs `error` for `peer` unless a line was logged less than [`LOG_INTERVAL`] ago.
    pub fn note(&self, peer: Option<&SocketAddr>, error: &io::Error) {
        let Some(suppressed) = self.0.admit() else {
            return;
        };
        let peer = peer.map(|p| p.ip().to_canonical());
        if suppressed == 0 {
            tracing::warn!(?peer, "{error}");
        } else {
            tracing::warn!(
                ?peer,
                "{error} (and {suppressed} more refused or failed accepts since the last such line)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_total_and_free_on_drop() {
        let limiter = Limiter::new(Caps {
            total: 3,
            per_ip: 2,
            ..Caps::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "::ffff:192.0.2.3".parse().unwrap();
        let a1 = limiter.admit(a).unwrap();
        let _a2 = limiter.admit(a).unwrap();
        let refused = limiter.admit(a).unwrap_err();
        assert!(refused.contains("from 192.0.2.1"), "{refused}");
        let _b1 = limiter.admit(b).unwrap();
        let refused = limiter.admit(c).unwrap_err();
        assert!(refused.contains("3 connections open"), "{refused}");
        drop(a1);
        assert_eq!(limiter.open(a), (2, 1));
        // An IPv4-mapped address counts as its IPv4 address.
        let _c1 = limiter.admit(c).unwrap();
        assert_eq!(limiter.open("192.0.2.3".parse().unwrap()), (3, 1));
    }

    #[test]
    fn ipv6_clients_count_by_their_prefix() {
        let limiter = Limiter::new(Caps {
            total: 10,
            per_ip: 2,
            ..Caps::default()
        });
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let _a = limiter.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = limiter.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        let refused = limiter.admit(ip("2001:db8:1:2::3")).unwrap_err();
        assert!(refused.contains("from 2001:db8:1:2::/64"), "{refused}");
        // The next /64 has its own count.
        let _c = limiter.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(limiter.open(ip("2001:db8:1:2::77")), (3, 2));

        let per_address = Limiter::new(Caps {
            total: 10,
            per_ip: 1,
            ipv6_prefix: 128,
        });
        let _a = per_address.admit(ip("2001:db8::1")).unwrap();
        let _b = per_address.admit(ip("2001:db8::2")).unwrap();
        assert!(per_address.admit(ip("2001:db8::1")).is_err());
    }
}
