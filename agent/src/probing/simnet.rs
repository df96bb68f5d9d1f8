//! A simulated network behind [`Network`], for the engine's unit tests.
//!
//! A deterministic model of paths from one vantage point: per destination
//! prefix, one or more equal-cost branches (the branch a probe takes depends
//! only on its flow id, as per-flow ECMP does), each a list of hops that
//! answer with ICMP time exceeded or stay silent; routers may answer only N
//! probes per virtual second (ICMP rate limiting); past the last hop the
//! destination answers ICMP echo requests, or nothing does (a silent /24).
//! Replies are real IPv4 datagrams, built as Linux builds them (the time
//! exceeded quotes the whole probe with the TTL as received), so the engine's
//! parser and matcher run as on the wire. Each hop adds [`HOP_DELAY`] each way.
//!
//! Run on tokio's paused clock (`#[tokio::test(start_paused = true)]`): timers
//! fire in virtual time as soon as every task waits, so a survey of minutes
//! runs in milliseconds, and its times are exact.

use std::collections::HashMap;
use std::io;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use ipnet::Ipv4Net;
use pnet_packet::util::checksum;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::probing::network::SocketError;
use crate::probing::network::{Network, Received};
use crate::probing::targets::Allowlist;

/// One-way delay of each hop.
pub const HOP_DELAY: Duration = Duration::from_millis(1);

const PROTOCOL_ICMP: u8 = 1;
const ICMP_ECHO_REQUEST: u8 = 8;
const IPV4_HEADER_LEN: usize = 20;

/// One hop of a modelled path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// A router that answers expiring probes from `address`, at most
    /// `per_second` of them per virtual second when limited.
    Router {
        /// The address its answers come from.
        address: Ipv4Addr,
        /// Its ICMP rate limit.
        per_second: Option<u32>,
    },
    /// A hop that never answers.
    Silent,
}

impl Node {
    /// A router that answers every expiring probe.
    pub fn router(address: Ipv4Addr) -> Self {
        Self::Router {
            address,
            per_second: None,
        }
    }

    /// A router that answers at most `per_second` probes per virtual second.
    pub fn limited(address: Ipv4Addr, per_second: u32) -> Self {
        Self::Router {
            address,
            per_second: Some(per_second),
        }
    }
}

/// What lies past the last hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The destination answers ICMP echo requests (other protocols: nothing).
    Answers,
    /// Nothing answers, however high the TTL.
    Silent,
}

/// The paths toward one prefix.
#[derive(Debug, Clone)]
pub struct Route {
    /// The destinations.
    pub prefix: Ipv4Net,
    /// Equal-cost branches; a probe takes the one its flow id hashes to.
    pub branches: Vec<Vec<Node>>,
    /// Past the last hop.
    pub end: End,
}

/// A probe the simulated network carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentProbe {
    /// When it was sent (virtual time).
    pub at: Instant,
    /// Its destination.
    pub dst: Ipv4Addr,
    /// Its TTL.
    pub ttl: u8,
    /// The ECMP branch it took.
    pub branch: usize,
    /// Who answered it, if anyone.
    pub answered_by: Option<Ipv4Addr>,
}

#[derive(Debug, Default)]
struct State {
    log: Vec<SentProbe>,
    /// Per rate-limited router: the virtual second and the answers given in it.
    budget: HashMap<Ipv4Addr, (u64, u32)>,
}

/// The simulated network. Create it inside the (paused) runtime.
#[derive(Debug)]
pub struct SimNet {
    source: Ipv4Addr,
    allowlist: Allowlist,
    routes: Vec<Route>,
    epoch: Instant,
    state: Mutex<State>,
    /// Prefixes whose routes pick a branch per packet, not per flow.
    per_packet: Vec<Ipv4Net>,
    inbox_tx: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    inbox_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<(Instant, Vec<u8>)>>,
}

impl SimNet {
    /// A network seen from `source`, where probes may go to `allowlist` and
    /// follow `routes` (the first whose prefix holds the destination; none: silent).
    pub fn new(source: Ipv4Addr, allowlist: Allowlist, routes: Vec<Route>) -> Self {
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        Self {
            source,
            allowlist,
            routes,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            per_packet: Vec::new(),
            inbox_tx,
            inbox_rx: tokio::sync::Mutex::new(inbox_rx),
        }
    }

    /// Makes the routes toward `prefix` pick a branch per packet (a per-packet
    /// load balancer), not per flow.
    pub fn per_packet(mut self, prefix: Ipv4Net) -> Self {
        self.per_packet.push(prefix);
        self
    }

    /// Every probe carried so far, in sending order.
    pub fn log(&self) -> Vec<SentProbe> {
        self.state.lock().unwrap().log.clone()
    }

    /// Where a probe goes and who answers it, logged; the reply, if any, with
    /// its arrival time.
    fn carry(&self, probe: &[u8]) -> Option<(Instant, Vec<u8>)> {
        let now = Instant::now();
        let dst = Ipv4Addr::new(probe[16], probe[17], probe[18], probe[19]);
        let ttl = probe[8];
        let route = self.routes.iter().find(|r| r.prefix.contains(&dst));
        let mut state = self.state.lock().unwrap();
        let per_packet = self.per_packet.iter().any(|p| p.contains(&dst));
        let key = if per_packet {
            flow_key(probe) ^ ((state.log.len() as u64) << 40)
        } else {
            flow_key(probe)
        };
        let branch = route.map_or(0, |r| (mix(key) % r.branches.len() as u64) as usize);
        let answer = route.and_then(|route| {
            let hops = &route.branches[branch];
            let hop = usize::from(ttl);
            if hop <= hops.len() {
                match hops[hop - 1] {
                    Node::Router {
                        address,
                        per_second,
                    } => self
                        .may_answer(&mut state, address, per_second, now)
                        .then(|| (address, time_exceeded(address, self.source, probe))),
                    Node::Silent => None,
                }
            } else {
                match route.end {
                    End::Answers if probe[9] == PROTOCOL_ICMP => {
                        Some((dst, echo_reply(dst, self.source, probe)))
                    }
                    _ => None,
                }
            }
        });
        state.log.push(SentProbe {
            at: now,
            dst,
            ttl,
            branch,
            answered_by: answer.as_ref().map(|(from, _)| *from),
        });
        let path_len = route.map_or(0, |r| r.branches[branch].len() + 1);
        answer.map(|(_, reply)| {
            let hops = u32::from(ttl).min(path_len as u32);
            (now + HOP_DELAY * 2 * hops, reply)
        })
    }

    fn may_answer(
        &self,
        state: &mut State,
        router: Ipv4Addr,
        per_second: Option<u32>,
        now: Instant,
    ) -> bool {
        let Some(limit) = per_second else {
            return true;
        };
        let second = now.duration_since(self.epoch).as_secs();
        let (window, used) = state.budget.entry(router).or_insert((second, 0));
        if *window != second {
            *window = second;
            *used = 0;
        }
        if *used < limit {
            *used += 1;
            true
        } else {
            false
        }
    }
}

impl Network for SimNet {
    fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    fn source_for(&self, _dst: Ipv4Addr) -> io::Result<Ipv4Addr> {
        Ok(self.source)
    }

    async fn send(&self, dst: Ipv4Addr, datagram: &[u8]) -> Result<Instant, SocketError> {
        if !self.allowlist.allows(dst) {
            return Err(SocketError::NotAllowed(dst));
        }
        if let Some((at, reply)) = self.carry(datagram) {
            let inbox = self.inbox_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let _ = inbox.send((at, reply));
            });
        }
        Ok(Instant::now())
    }

    fn sent(&self) -> u64 {
        self.state.lock().unwrap().log.len() as u64
    }

    fn channels(&self) -> usize {
        1
    }

    async fn recv(&self, _channel: usize, buf: &mut [u8]) -> Result<Received, SocketError> {
        let next = self.inbox_rx.lock().await.recv().await;
        let Some((at, reply)) = next else {
            return Err(SocketError::Io {
                op: "recv",
                source: io::Error::other("the simulated network is gone"),
            });
        };
        buf[..reply.len()].copy_from_slice(&reply);
        Ok(Received {
            len: reply.len(),
            at,
        })
    }
}

/// What per-flow ECMP hashes besides the addresses: the ICMP checksum and
/// identifier (what Paris traceroute keeps constant), or the ports.
fn flow_key(probe: &[u8]) -> u64 {
    let transport = &probe[IPV4_HEADER_LEN..];
    let fields = if probe[9] == PROTOCOL_ICMP {
        &transport[2..6]
    } else {
        &transport[0..4]
    };
    fields
        .iter()
        .fold(u64::from(probe[9]), |k, &b| (k << 8) | u64::from(b))
}

/// splitmix64's finaliser: neighbouring flow keys land on unrelated branches.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An IPv4 datagram from `src` to `dst` carrying the ICMP message `icmp`
/// (checksums filled in).
fn icmp_datagram(src: Ipv4Addr, dst: Ipv4Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let icmp_sum = checksum(&icmp, 1);
    icmp[2..4].copy_from_slice(&icmp_sum.to_be_bytes());
    let total = u16::try_from(IPV4_HEADER_LEN + icmp.len()).unwrap_or(u16::MAX);
    let mut out = vec![0x45, 0];
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 64, PROTOCOL_ICMP, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    let header_sum = checksum(&out, 5);
    out[10..12].copy_from_slice(&header_sum.to_be_bytes());
    out.extend_from_slice(&icmp);
    out
}

/// A router's time exceeded, quoting the whole probe with the TTL as received (1).
fn time_exceeded(router: Ipv4Addr, to: Ipv4Addr, probe: &[u8]) -> Vec<u8> {
    let mut quote = probe.to_vec();
    quote[8] = 1;
    let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quote);
    icmp_datagram(router, to, icmp)
}

/// The destination's echo reply: the request's identifier, sequence and payload.
fn echo_reply(from: Ipv4Addr, to: Ipv4Addr, probe: &[u8]) -> Vec<u8> {
    let mut icmp = probe[IPV4_HEADER_LEN..].to_vec();
    debug_assert_eq!(icmp[0], ICMP_ECHO_REQUEST);
    icmp[0] = 0;
    icmp_datagram(from, to, icmp)
}
