//! The agent's raw sockets, opened once while privileged and never again.
//!
//! [`RawSockets::open`] runs in a plain `fn main`, before the tokio runtime
//! exists and before privileges are dropped. Afterwards the sockets are moved into
//! the runtime ([`RawSockets::into_async`]). Nothing reopens a socket: if one
//! fails, the agent exits and its supervisor restarts it.
//!
//! Every packet toward a target leaves through [`GuardedSender::send`], the one
//! place that checks the allowlist and the compiled-in rate ceiling, so no bug
//! upstream of it can probe a foreign network or flood one.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::probing::network::{Network, Received, SocketError, arrival_from_wall};
use crate::probing::pacing::{MAX_PPS, TokenBucket};
use crate::probing::targets::Allowlist;

/// `IPPROTO_RAW`: a raw socket that sends whole IPv4 datagrams (implies `IP_HDRINCL`).
const IPPROTO_RAW: i32 = 255;

/// Receive buffer asked for on the listening sockets: a survey's replies arrive in bursts.
const RECV_BUFFER_BYTES: usize = 4 << 20;

/// The raw sockets, opened but not yet registered with a runtime.
#[derive(Debug)]
pub struct RawSockets {
    send: Socket,
    icmp: Socket,
    tcp: Socket,
}

impl RawSockets {
    /// Opens every raw socket the agent will ever use. Needs CAP_NET_RAW.
    pub fn open() -> Result<Self, SocketError> {
        let open = |what, proto: Protocol| {
            let sock = Socket::new(Domain::IPV4, Type::RAW, Some(proto))
                .map_err(|source| SocketError::Open { what, source })?;
            sock.set_nonblocking(true)
                .map_err(|source| SocketError::Open { what, source })?;
            Ok::<_, SocketError>(sock)
        };
        let send = open("sending", Protocol::from(IPPROTO_RAW))?;
        let icmp = open("ICMP", Protocol::ICMPV4)?;
        let tcp = open("TCP", Protocol::TCP)?;
        for (what, sock) in [("ICMP", &icmp), ("TCP", &tcp)] {
            // Best effort: a smaller buffer only means drops under heavy load, which show as silent hops.
            let _ = sock.set_recv_buffer_size(RECV_BUFFER_BYTES);
            // The kernel stamps each datagram on arrival: RTTs then do not depend on
            // when the receiving task gets to run.
            setsockopt(sock, sockopt::ReceiveTimestampns, &true).map_err(|e| {
                SocketError::Open {
                    what,
                    source: io::Error::from(e),
                }
            })?;
        }
        Ok(Self { send, icmp, tcp })
    }

    /// Registers the sockets with the current tokio runtime.
    pub fn into_async(self, allowlist: Allowlist) -> Result<AsyncSockets, SocketError> {
        // `AsyncFd::new` is deprecated because a borrowed fd could be closed while
        // registered; ours are owned `Socket`s moved into the `AsyncFd`, which is
        // exactly the sound case, and the replacement (`register`) is `unsafe`.
        #[allow(deprecated)]
        let reg = |sock, op| AsyncFd::new(sock).map_err(|source| SocketError::Io { op, source });
        Ok(AsyncSockets {
            sender: GuardedSender {
                socket: reg(self.send, "registering the sending socket")?,
                allowlist,
                ceiling: Mutex::new(TokenBucket::new(MAX_PPS, MAX_PPS / 10, Instant::now())),
                sent: AtomicU64::new(0),
            },
            icmp: Listener(reg(self.icmp, "registering the ICMP socket")?),
            tcp: Listener(reg(self.tcp, "registering the TCP socket")?),
        })
    }
}

/// The sockets, ready for async use.
#[derive(Debug)]
pub struct AsyncSockets {
    /// Sends probes.
    pub sender: GuardedSender,
    /// Receives ICMP (errors quoting probes, echo replies).
    pub icmp: Listener,
    /// Receives TCP (SYN-ACK and RST from targets).
    pub tcp: Listener,
}

/// A raw receiving socket.
#[derive(Debug)]
pub struct Listener(AsyncFd<Socket>);

impl Listener {
    /// Waits for the next datagram (the whole IPv4 packet) and returns its
    /// length and the kernel's arrival time.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<Received, SocketError> {
        let mut control = nix::cmsg_space!(TimeSpec);
        loop {
            let mut guard = self.0.readable().await.map_err(|source| SocketError::Io {
                op: "waiting to read",
                source,
            })?;
            match guard.try_io(|fd| read_stamped(fd.get_ref(), buf, &mut control)) {
                Ok(result) => {
                    return result.map_err(|source| SocketError::Io { op: "recv", source });
                }
                Err(_would_block) => {}
            }
        }
    }
}

/// One `recvmsg` with the `SO_TIMESTAMPNS` control message; without one (never
/// on Linux once the option is set) the datagram is dated by its reading.
fn read_stamped(sock: &Socket, buf: &mut [u8], control: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(control), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let now = Instant::now();
    let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(ts) => Some(wall_time(ts)),
            _ => None,
        })
    });
    let at = stamp.map_or(now, |stamp| {
        arrival_from_wall(stamp, SystemTime::now(), now)
    });
    Ok(Received { len: msg.bytes, at })
}

fn wall_time(ts: TimeSpec) -> SystemTime {
    let since_epoch = Duration::new(
        u64::try_from(ts.tv_sec()).unwrap_or(0),
        u32::try_from(ts.tv_nsec()).unwrap_or(0),
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

/// The only way out for packets to targets: checks the allowlist and the
/// compiled-in ceiling of [`MAX_PPS`] on every send.
#[derive(Debug)]
pub struct GuardedSender {
    socket: AsyncFd<Socket>,
    allowlist: Allowlist,
    ceiling: Mutex<TokenBucket>,
    sent: AtomicU64,
}

impl GuardedSender {
    /// The allowlist in force.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends one IPv4 datagram (header included) to `dst`; returns the instant just
    /// before the send call (see [`Network::send`]).
    pub async fn send(&self, dst: Ipv4Addr, datagram: &[u8]) -> Result<Instant, SocketError> {
        if !self.allowlist.allows(dst) {
            return Err(SocketError::NotAllowed(dst));
        }
        self.wait_for_ceiling().await;
        let addr = SockAddr::from(SocketAddrV4::new(dst, 0));
        loop {
            let mut guard = self
                .socket
                .writable()
                .await
                .map_err(|source| SocketError::Io {
                    op: "waiting to send",
                    source,
                })?;
            let at = Instant::now();
            match guard.try_io(|fd| fd.get_ref().send_to(datagram, &addr)) {
                Ok(Ok(_)) => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(at);
                }
                Ok(Err(source)) => {
                    return Err(SocketError::Io {
                        op: "sendto",
                        source,
                    });
                }
                Err(_would_block) => {}
            }
        }
    }

    /// The pacer upstream keeps the configured (lower) rate; this is the backstop.
    async fn wait_for_ceiling(&self) {
        let mut bucket = self.ceiling.lock().await;
        loop {
            let now = Instant::now();
            if bucket.ready(now) {
                bucket.take();
                return;
            }
            let at = bucket.next_token_at(now);
            tokio::time::sleep_until(at).await;
        }
    }
}

impl Network for AsyncSockets {
    fn allowlist(&self) -> &Allowlist {
        self.sender.allowlist()
    }

    fn source_for(&self, dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
        source_address_for(dst)
    }

    fn send(
        &self,
        dst: Ipv4Addr,
        datagram: &[u8],
    ) -> impl Future<Output = Result<Instant, SocketError>> + Send {
        self.sender.send(dst, datagram)
    }

    fn sent(&self) -> u64 {
        self.sender.sent()
    }

    fn channels(&self) -> usize {
        2
    }

    fn recv(
        &self,
        channel: usize,
        buf: &mut [u8],
    ) -> impl Future<Output = Result<Received, SocketError>> + Send {
        // Channel 0: ICMP (errors quoting probes, echo replies); 1: TCP.
        let listener = if channel == 0 { &self.icmp } else { &self.tcp };
        listener.recv(buf)
    }
}

/// The source address the kernel would use toward `dst`, found by connecting a
/// UDP socket (which sends nothing).
pub fn source_address_for(dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    sock.connect((dst, 9))?;
    match sock.local_addr()? {
        std::net::SocketAddr::V4(v4) => Ok(*v4.ip()),
        std::net::SocketAddr::V6(_) => Err(io::Error::other("IPv6 source for an IPv4 target")),
    }
}
