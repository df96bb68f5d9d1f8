//! The path a probe flow takes, derived hop by hop from the live routing tables.
//!
//! This is the ground truth that traceroutes (the agent's, scamper's) are checked
//! against: for every router on the way it asks the kernel the same question the
//! forwarding path asks (`ip route get DST from SRC iif IN ipproto P sport S dport D
//! mark M`), so ECMP hashing, policy routing and nftables marks are all accounted for.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use anyhow::{Context, Result, anyhow, bail};

use crate::Testbed;
use crate::jhash;
use crate::route::{IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, RouteEntry, RouteQuery};

/// The probe flow: protocol and the header fields that per-flow load balancers hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowQuery {
    /// Protocol and flow identifier.
    pub protocol: FlowProtocol,
    /// Source address; defaults to the vantage point's address.
    pub src: Option<Ipv4Addr>,
    marks: BTreeMap<String, u32>,
}

/// The protocol part of a [`FlowQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowProtocol {
    /// UDP with fixed ports (Paris UDP).
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// TCP with fixed ports.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP with a fixed type, code and checksum (Paris ICMP).
    Icmp {
        /// ICMP type (8: echo request).
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// The checksum field as on the wire (big-endian value).
        checksum: u16,
    },
}

impl FlowQuery {
    /// A UDP flow.
    pub fn udp(sport: u16, dport: u16) -> Self {
        Self::new(FlowProtocol::Udp { sport, dport })
    }

    /// A TCP flow.
    pub fn tcp(sport: u16, dport: u16) -> Self {
        Self::new(FlowProtocol::Tcp { sport, dport })
    }

    /// An ICMP echo-request flow whose checksum stays `checksum` (Paris ICMP).
    pub fn icmp_echo(checksum: u16) -> Self {
        Self::new(FlowProtocol::Icmp {
            icmp_type: 8,
            code: 0,
            checksum,
        })
    }

    fn new(protocol: FlowProtocol) -> Self {
        Self {
            protocol,
            src: None,
            marks: BTreeMap::new(),
        }
    }

    /// Uses this source address instead of the vantage point's.
    #[must_use]
    pub fn with_source(mut self, src: Ipv4Addr) -> Self {
        self.src = Some(src);
        self
    }

    /// The firewall mark the flow's packets carry when `node` routes them (as set by
    /// the node's nftables rules). For ICMP through a node with an `icmp_jhash` rule in
    /// the manifest the mark is computed when not given.
    #[must_use]
    pub fn mark_at(mut self, node: &str, mark: u32) -> Self {
        self.marks.insert(node.to_owned(), mark);
        self
    }

    /// The mark given with [`FlowQuery::mark_at`] for this node.
    pub fn mark_given(&self, node: &str) -> Option<u32> {
        self.marks.get(node).copied()
    }

    fn ipproto(&self) -> u8 {
        match self.protocol {
            FlowProtocol::Udp { .. } => IPPROTO_UDP,
            FlowProtocol::Tcp { .. } => IPPROTO_TCP,
            FlowProtocol::Icmp { .. } => IPPROTO_ICMP,
        }
    }

    fn ports(&self) -> (Option<u16>, Option<u16>) {
        match self.protocol {
            FlowProtocol::Udp { sport, dport } | FlowProtocol::Tcp { sport, dport } => {
                (Some(sport), Some(dport))
            }
            FlowProtocol::Icmp { .. } => (None, None),
        }
    }
}

/// One router (or the destination) that answers a probe of the flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHop {
    /// The node.
    pub node: String,
    /// The source address of its answer.
    pub address: Ipv4Addr,
    /// The probe TTL that draws the answer (1 for the first router).
    pub ttl: u8,
}

/// How a flow's path ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEnd {
    /// The destination is local to the last hop's node, which answers with its address.
    Reached,
    /// The last hop's node rejects the flow (ICMP admin-prohibited, nftables): it is in
    /// the hops twice, with time exceeded at its own TTL and with the reject one TTL later.
    Rejected {
        /// The rejecting node.
        node: String,
    },
    /// `node` has a blackhole route: it and everything behind it stay silent, even for
    /// probes whose TTL expires there. `ttl` is the probe TTL that reaches it.
    Blackhole {
        /// The blackholing node.
        node: String,
        /// The TTL at which probes reach it.
        ttl: u8,
    },
    /// `node` drops the flow without an error when forwarding it (nftables): it
    /// answers probes that expire there like any router, and nothing answers from
    /// `silent_from` (one TTL past it) on.
    Dropped {
        /// The dropping node.
        node: String,
        /// The first TTL with no answer.
        silent_from: u8,
    },
    /// `node` has no route (or an unreachable/prohibit route). It may answer with ICMP
    /// unreachable, rate-limited machine-wide by `net.ipv4.route.error_cost`, so it is not
    /// listed as a hop.
    Unreachable {
        /// The node without a route.
        node: String,
        /// The TTL at which probes reach it.
        ttl: u8,
    },
}

/// The expected answers of a traceroute of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTrace {
    /// The source address of the flow.
    pub src: Ipv4Addr,
    /// Every answering hop, by increasing TTL.
    pub hops: Vec<ExpectedHop>,
    /// Why the path ends.
    pub end: PathEnd,
}

const MAX_HOPS: u8 = 64;

impl Testbed {
    /// The forward path a packet of this flow takes from a vantage point, walking `ip
    /// route get ... iif ...` router by router (next node = peer of the outgoing
    /// interface from the manifest), and for each router the address the router answers
    /// an expired probe from: its inbound interface, or for routers with
    /// `icmp_errors_use_inbound_ifaddr=0` (read live) the interface of its route back to
    /// the source. Ends at the node where the destination is local (hop address = DST) or
    /// at a blackhole/unreachable route; a node that rejects the destination appears a
    /// second time, one TTL later; a node that drops it is the last hop. See [`Testbed::expected_trace`] for the end reason.
    pub fn expected_path(
        &self,
        from: &str,
        dst: Ipv4Addr,
        flow: &FlowQuery,
    ) -> Result<Vec<ExpectedHop>> {
        Ok(self.expected_trace(from, dst, flow)?.hops)
    }

    /// [`Testbed::expected_path`] with the reason the path ends.
    pub fn expected_trace(
        &self,
        from: &str,
        dst: Ipv4Addr,
        flow: &FlowQuery,
    ) -> Result<ExpectedTrace> {
        let manifest = self.manifest();
        let src = match flow.src {
            Some(src) => src,
            None => manifest
                .vp_address(from)
                .or_else(|| manifest.addresses_of(from).first().copied())
                .ok_or_else(|| anyhow!("unknown node {from}"))?,
        };
        let (sport, dport) = flow.ports();
        let mut inbound_ifaddr = HashMap::new();
        let mut hops = Vec::new();

        // The source host's own output route.
        let first = self
            .route_get(
                from,
                &RouteQuery::to(dst)
                    .from(src)
                    .l4(flow.ipproto(), sport, dport)
                    .mark(self.mark_for(from, src, dst, flow)),
            )
            .with_context(|| format!("output route of {from} to {dst}"))?;
        if first.is_local() {
            return Ok(ExpectedTrace {
                src,
                hops,
                end: PathEnd::Reached,
            });
        }
        let (mut node, mut iif) = self.next_node(from, first.dev.as_deref())?;

        for ttl in 1..=MAX_HOPS {
            let query = RouteQuery::to(dst)
                .from(src)
                .iif(iif.clone())
                .l4(flow.ipproto(), sport, dport)
                .mark(self.mark_for(&node, src, dst, flow));
            let route = match self.route_get(&node, &query) {
                Ok(route) => route,
                Err(err) => {
                    let end = self.dead_end(&node, dst, ttl).with_context(|| {
                        format!(
                            "{node}: `ip route get {}` failed: {err:#}",
                            query.args().join(" ")
                        )
                    })?;
                    return Ok(ExpectedTrace { src, hops, end });
                }
            };
            if route.is_local() {
                hops.push(ExpectedHop {
                    node,
                    address: dst,
                    ttl,
                });
                return Ok(ExpectedTrace {
                    src,
                    hops,
                    end: PathEnd::Reached,
                });
            }
            let address = self.answer_address(&node, &iif, src, &mut inbound_ifaddr)?;
            hops.push(ExpectedHop {
                node: node.clone(),
                address,
                ttl,
            });
            let filters = |prefixes: fn(&crate::Node) -> &[ipnet::Ipv4Net]| {
                self.manifest()
                    .node(&node)
                    .is_some_and(|n| prefixes(n).iter().any(|p| p.contains(&dst)))
            };
            if filters(|n| &n.drop_prefixes) {
                return Ok(ExpectedTrace {
                    src,
                    hops,
                    end: PathEnd::Dropped {
                        node,
                        silent_from: ttl + 1,
                    },
                });
            }
            let rejects = filters(|n| &n.reject_prefixes);
            if rejects {
                hops.push(ExpectedHop {
                    node: node.clone(),
                    address,
                    ttl: ttl + 1,
                });
                return Ok(ExpectedTrace {
                    src,
                    hops,
                    end: PathEnd::Rejected { node },
                });
            }
            (node, iif) = self.next_node(&node, route.dev.as_deref())?;
        }
        bail!("no end after {MAX_HOPS} hops from {from} to {dst} (routing loop?)")
    }

    /// The mark of the flow's packets at `node`: given, or computed from the node's ICMP
    /// jhash rule.
    fn mark_for(&self, node: &str, src: Ipv4Addr, dst: Ipv4Addr, flow: &FlowQuery) -> Option<u32> {
        if let Some(mark) = flow.mark_given(node) {
            return Some(mark);
        }
        let FlowProtocol::Icmp {
            icmp_type,
            code,
            checksum,
        } = flow.protocol
        else {
            return None;
        };
        let cfg = self.manifest().node(node)?.icmp_jhash.as_ref()?;
        Some(jhash::icmp_mark(cfg, src, dst, icmp_type, code, checksum))
    }

    /// The node and interface at the other end of `node`'s interface `dev`.
    fn next_node(&self, node: &str, dev: Option<&str>) -> Result<(String, String)> {
        let dev = dev.ok_or_else(|| anyhow!("{node}: route without an outgoing device"))?;
        let iface = self
            .manifest()
            .node(node)
            .and_then(|n| n.interface(dev))
            .ok_or_else(|| anyhow!("{node}: interface {dev} is not in the manifest"))?;
        Ok((iface.peer_node.clone(), iface.peer_interface.clone()))
    }

    /// The source address of the ICMP errors `node` sends about a packet that came in on
    /// `iif` from `src`.
    fn answer_address(
        &self,
        node: &str,
        iif: &str,
        src: Ipv4Addr,
        cache: &mut HashMap<String, bool>,
    ) -> Result<Ipv4Addr> {
        let inbound = if let Some(v) = cache.get(node) {
            *v
        } else {
            let sysctl = "/proc/sys/net/ipv4/icmp_errors_use_inbound_ifaddr";
            let v = self.exec(node, &["cat", sysctl])?.trim() == "1";
            cache.insert(node.to_owned(), v);
            v
        };
        let n = self
            .manifest()
            .node(node)
            .ok_or_else(|| anyhow!("unknown node {node}"))?;
        if inbound {
            return n
                .interface(iif)
                .map(|i| i.address)
                .ok_or_else(|| anyhow!("{node}: no interface {iif}"));
        }
        // The kernel picks the source of the route back to the probe's source.
        let back = self.route_get(node, &RouteQuery::to(src))?;
        if let Some(prefsrc) = back.prefsrc {
            return Ok(prefsrc);
        }
        let dev = back.dev.as_deref().unwrap_or_default();
        n.interface(dev)
            .map(|i| i.address)
            .ok_or_else(|| anyhow!("{node}: route back to {src} leaves via unknown {dev}"))
    }

    /// Why `node` has no forwarding route for `dst`.
    fn dead_end(&self, node: &str, dst: Ipv4Addr, ttl: u8) -> Result<PathEnd> {
        let out = self.exec(
            node,
            &[
                "ip",
                "-j",
                "route",
                "show",
                "match",
                &dst.to_string(),
                "table",
                "all",
            ],
        )?;
        let entries: Vec<RouteEntry> = serde_json::from_str(out.trim())
            .with_context(|| format!("bad `ip -j route show match` output: {out}"))?;
        let best = entries
            .iter()
            .filter(|e| e.route_type != "local" && e.route_type != "broadcast")
            .max_by_key(|e| e.prefix_len());
        let node = node.to_owned();
        match best.map(|e| e.route_type.as_str()) {
            Some("blackhole") => Ok(PathEnd::Blackhole { node, ttl }),
            Some("unreachable" | "prohibit") | None => Ok(PathEnd::Unreachable { node, ttl }),
            Some(other) => bail!("route lookup failed although a {other} route matches"),
        }
    }
}
