//! What the probing engine needs from the network, as a trait: send a probe,
//! receive a reply with its arrival time; and [`SocketError`], what goes wrong
//! doing so.
//!
//! The agent's raw sockets (`sockets::AsyncSockets`) are the one real
//! implementation; the unit tests drive the engine over a simulated network
//! (`probing::simnet`, test-only) on tokio's paused clock, so parking, pilots, the per-/24
//! horizon and pacing are tested without root and in virtual time. The engine is
//! generic over the trait (static dispatch: no allocation or indirect call per
//! packet).

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::probing::targets::Allowlist;

/// Errors of the network: opening the raw sockets, sending and receiving.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Opening a raw socket failed, usually for lack of CAP_NET_RAW.
    #[error(
        "cannot open the raw {what} socket: {source}\n\
         hint: the agent needs CAP_NET_RAW; run it as root (it drops to an unprivileged user \
         at once) or grant the capability, e.g. with `setpriv --inh-caps +net_raw --ambient-caps +net_raw` \
         or the systemd unit's AmbientCapabilities=CAP_NET_RAW"
    )]
    Open {
        /// Which socket.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The destination is outside the allowlist: a bug or a bad instruction, never sent.
    #[error("refusing to send to {0}: outside the allowlist")]
    NotAllowed(Ipv4Addr),
    /// A socket operation failed after opening.
    #[error("{op} on the raw socket failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// A datagram received into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its length (the whole IPv4 datagram).
    pub len: usize,
    /// When it arrived: the kernel's receive timestamp where there is one, so that
    /// a busy or slow receiver never inflates the RTT.
    pub at: Instant,
}

/// Sending probes and receiving replies. Implementations are shared between the
/// engine's loop and its receiving tasks.
pub trait Network: Send + Sync + 'static {
    /// The allowlist every send is checked against.
    fn allowlist(&self) -> &Allowlist;

    /// The source address probes toward `dst` carry.
    fn source_for(&self, dst: Ipv4Addr) -> io::Result<Ipv4Addr>;

    /// Sends one IPv4 datagram (header included) to `dst` and returns when it was handed
    /// to the kernel: the instant just before the send call, after any wait for the rate
    /// ceiling or socket buffer. RTTs count from it, so a stall after the call can never
    /// shorten one (a reply's kernel timestamp never precedes its probe's).
    fn send(
        &self,
        dst: Ipv4Addr,
        datagram: &[u8],
    ) -> impl Future<Output = Result<Instant, SocketError>> + Send;

    /// Packets sent so far.
    fn sent(&self) -> u64;

    /// How many receive channels there are (the engine runs one receiving task
    /// per channel, `0..channels()`).
    fn channels(&self) -> usize;

    /// Waits for the next datagram on `channel`.
    fn recv(
        &self,
        channel: usize,
        buf: &mut [u8],
    ) -> impl Future<Output = Result<Received, SocketError>> + Send;
}

/// Longest age of a kernel timestamp still believed: older means the wall clock
/// stepped between the packet's arrival and now, and then the time of reading
/// is the better guess.
const MAX_KERNEL_STAMP_AGE: Duration = Duration::from_secs(10);

/// Converts a kernel receive timestamp (wall clock, `SO_TIMESTAMPNS`) to the
/// monotonic clock the engine times probes with: the packet arrived as long ago
/// as the wall clock says. Falls back to `now` when the stamp is in the future
/// or implausibly old (a wall-clock step).
pub fn arrival_from_wall(stamp: SystemTime, wall_now: SystemTime, now: Instant) -> Instant {
    match wall_now.duration_since(stamp) {
        Ok(age) if age <= MAX_KERNEL_STAMP_AGE => now.checked_sub(age).unwrap_or(now),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_stamp_dates_the_arrival_back_by_its_age() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_hours(500_000);
        let stamp = wall - Duration::from_millis(40);
        assert_eq!(
            arrival_from_wall(stamp, wall, now),
            now - Duration::from_millis(40)
        );
    }

    #[test]
    fn a_stamp_from_the_future_or_long_ago_falls_back_to_now() {
        let now = Instant::now();
        let wall = SystemTime::UNIX_EPOCH + Duration::from_hours(500_000);
        let future = wall + Duration::from_millis(5);
        assert_eq!(arrival_from_wall(future, wall, now), now);
        let stepped = wall - Duration::from_hours(1);
        assert_eq!(arrival_from_wall(stepped, wall, now), now);
    }
}
