//! The Multipath Detection Algorithm as a pure state machine: it says which
//! (flow, TTL) probes to send next, is told what each got, and builds the
//! hops and links of the result. No I/O and no clock: the driver
//! ([`super::run`]) sends, paces and times out.
//!
//! TTL by TTL, every node `g` found at TTL h (an interface; the flows silent
//! at h; or, at the first TTL, the source) has its next hops enumerated at
//! h + 1 with flows known to cross `g` at h (node control, Veitch et al.), until
//! n(k) such flows are probed at h + 1 with k − 1 next hops seen
//! ([`Confidence::flows_needed`]). When too few flows are known to cross `g`,
//! new flows are first probed at h to find some that do. MDA-Lite's shortcut
//! where it is safe: when h answered from one interface only and no flow was
//! silent there, every flow crosses it, and new flows go straight to h + 1.
//!
//! A TTL that shows several interfaces is checked for a per-packet balancer by
//! repeating one flow ([`Confidence::per_packet_repeats`]): if one flow draws
//! several interfaces, the TTL is flagged `per_packet`, and its interfaces
//! count as one node for the next TTL (a flow says nothing about which of
//! them it crossed), never as branches of a per-flow diamond.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use nkpath_proto::{MultipathHop, MultipathInterface, MultipathLink, Reply, StopReason};

use super::rule::Confidence;
use crate::probing::trace::ReplyClass;

/// One probe to send: flow `flow` (an index into the flows created so far)
/// with TTL `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Want {
    /// The flow.
    pub flow: u32,
    /// The TTL.
    pub ttl: u8,
}

/// What the machine wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these probes (in any order, each once; a pair may repeat), then
    /// report each one's outcome with [`Mda::record`], then ask again.
    Probe(Vec<Want>),
    /// The trace is complete.
    Done(StopReason),
}

/// A node at one TTL, as the next TTL's enumeration groups flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    /// The vantage point, below the first TTL.
    Source,
    /// An interface that answered.
    Interface(Ipv4Addr),
    /// The flows that got no answer at this TTL.
    Silent,
    /// Every interface of a per-packet balanced TTL.
    PerPacket,
}

/// The settings of one multipath trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdaSettings {
    /// The target.
    pub target: Ipv4Addr,
    /// The stopping rule's confidence.
    pub confidence: Confidence,
    /// The first TTL probed.
    pub first_ttl: u8,
    /// The last TTL probed.
    pub max_ttl: u8,
    /// Consecutive TTLs without any answer that end the trace.
    pub gap_limit: u8,
}

/// Most flows node control creates to find flows across one node at one
/// TTL: a branch taken by one flow in 20 or fewer is not chased forever.
const NODE_CONTROL_MAX: u32 = 128;

/// A reply as recorded, with what it says about the path.
#[derive(Debug, Clone)]
struct Seen {
    reply: Reply,
    class: ReplyClass,
}

/// The state of one multipath trace.
#[derive(Debug)]
pub struct Mda {
    settings: MdaSettings,
    /// Flows created so far (indexes `0..flows`).
    flows: u32,
    /// Per (TTL, flow): every outcome of its probes, `None` for silence.
    seen: BTreeMap<(u8, u32), Vec<Option<Seen>>>,
    /// The TTL whose nodes are being expanded (their next hops sought at +1);
    /// `first_ttl - 1` for the source.
    ttl: u8,
    /// TTLs found per-packet balanced.
    per_packet: BTreeSet<u8>,
    /// TTLs already checked for a per-packet balancer.
    checked: BTreeSet<u8>,
    /// Flows node control created, per (TTL, node).
    node_control: BTreeMap<(u8, Node), u32>,
    /// What each node's enumeration ended with, in order.
    enumerations: Vec<Enumeration>,
    done: Option<StopReason>,
}

/// How the next hops of one node were enumerated: the ledger the stopping
/// rule is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enumeration {
    /// The node's TTL (its next hops are at `ttl + 1`).
    pub ttl: u8,
    /// The node's address; `None` for the source, the silent flows or a
    /// per-packet balanced TTL.
    pub address: Option<Ipv4Addr>,
    /// Distinct flows across the node probed at `ttl + 1`.
    pub flows: u32,
    /// Next hops found.
    pub next_hops: u32,
    /// Node control gave up before enough flows across the node were found.
    pub gave_up: bool,
}

impl Mda {
    /// A trace that has sent nothing yet.
    pub fn new(settings: MdaSettings) -> Self {
        Self {
            ttl: settings.first_ttl.saturating_sub(1),
            settings,
            flows: 0,
            seen: BTreeMap::new(),
            per_packet: BTreeSet::new(),
            checked: BTreeSet::new(),
            node_control: BTreeMap::new(),
            enumerations: Vec::new(),
            done: None,
        }
    }

    /// Flows created so far: the flows the result lists are `0..flows()`.
    pub fn flows(&self) -> u32 {
        self.flows
    }

    /// What `want` got: the reply and its class, or `None` when none came.
    pub fn record(&mut self, want: Want, outcome: Option<(Reply, ReplyClass)>) {
        let seen = outcome.map(|(reply, class)| Seen { reply, class });
        self.seen
            .entry((want.ttl, want.flow))
            .or_default()
            .push(seen);
    }

    /// The next probes to send, or that the trace is complete.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(reason) = self.done {
                return Step::Done(reason);
            }
            let wants = self.expand(self.ttl);
            if !wants.is_empty() {
                return Step::Probe(wants);
            }
            let closed = self.ttl + 1;
            if let Some(repeats) = self.per_packet_check(closed) {
                return Step::Probe(repeats);
            }
            self.note_enumerations(self.ttl);
            self.ttl = closed;
            self.done = self.finished_at(closed);
        }
    }

    /// The probes that bring every node at `h` closer to its stopping rule.
    fn expand(&mut self, h: u8) -> Vec<Want> {
        let next = h + 1;
        if next > self.settings.max_ttl {
            return Vec::new();
        }
        let mut wants = Vec::new();
        for node in self.nodes_at(h) {
            if self.is_terminal(h, node) {
                continue;
            }
            let through = self.flows_through(h, node);
            let probed: Vec<u32> = through
                .iter()
                .copied()
                .filter(|&f| self.seen.contains_key(&(next, f)))
                .collect();
            let successors = self.successors(next, &probed);
            let needed = self.settings.confidence.flows_needed(successors + 1);
            let missing = needed.saturating_sub(probed.len() as u32);
            if missing == 0 {
                continue;
            }
            let ready: Vec<u32> = through
                .iter()
                .copied()
                .filter(|f| !probed.contains(f))
                .take(missing as usize)
                .collect();
            wants.extend(ready.iter().map(|&flow| Want { flow, ttl: next }));
            let short = missing - ready.len() as u32;
            if short == 0 {
                continue;
            }
            if node == Node::Source || self.uniform(h).is_some() {
                // Every flow crosses this node: new flows go straight on.
                for _ in 0..short {
                    let flow = self.new_flow();
                    wants.push(Want { flow, ttl: next });
                }
            } else {
                // Node control: new flows probed at h, some of which cross `node`.
                let share = through.len().max(1) as u32;
                let at_h = self.flows_probed_at(h).max(1);
                let tries = (short * at_h).div_ceil(share);
                let spent = self.node_control.entry((h, node)).or_default();
                let tries = tries.min(NODE_CONTROL_MAX.saturating_sub(*spent));
                *spent += tries;
                for _ in 0..tries {
                    let flow = self.new_flow();
                    wants.push(Want { flow, ttl: h });
                }
            }
        }
        wants
    }

    /// Every node's enumeration so far, in the order the TTLs closed.
    pub fn enumerations(&self) -> &[Enumeration] {
        &self.enumerations
    }

    /// Notes how the nodes at `h` ended (their next hops at `h + 1` are all found).
    fn note_enumerations(&mut self, h: u8) {
        let next = h + 1;
        if next > self.settings.max_ttl {
            return;
        }
        for node in self.nodes_at(h) {
            if self.is_terminal(h, node) {
                continue;
            }
            let probed: Vec<u32> = self
                .flows_through(h, node)
                .into_iter()
                .filter(|&f| self.seen.contains_key(&(next, f)))
                .collect();
            let next_hops = self.successors(next, &probed) as u32;
            let gave_up = self.node_control.get(&(h, node)) == Some(&NODE_CONTROL_MAX);
            self.enumerations.push(Enumeration {
                ttl: h,
                address: match node {
                    Node::Interface(a) => Some(a),
                    _ => None,
                },
                flows: probed.len() as u32,
                next_hops,
                gave_up,
            });
        }
    }

    /// Repeats of one flow at `ttl` when it showed several interfaces and has
    /// not been checked yet; marks it checked.
    fn per_packet_check(&mut self, ttl: u8) -> Option<Vec<Want>> {
        if self.checked.contains(&ttl) || self.interfaces_at(ttl).len() < 2 {
            return None;
        }
        self.checked.insert(ttl);
        let flow = self
            .seen
            .range((ttl, 0)..=(ttl, u32::MAX))
            .find(|(_, outcomes)| first_reply(outcomes).is_some())
            .map(|(&(_, flow), _)| flow)?;
        let repeats = self.settings.confidence.per_packet_repeats();
        Some((0..repeats).map(|_| Want { flow, ttl }).collect())
    }

    /// Whether the trace ends at `ttl`, which has just been enumerated.
    fn finished_at(&mut self, ttl: u8) -> Option<StopReason> {
        self.update_per_packet(ttl);
        let nodes = self.nodes_at(ttl);
        let answered: Vec<Node> = nodes
            .iter()
            .copied()
            .filter(|&n| n != Node::Silent)
            .collect();
        if !answered.is_empty() && answered.iter().all(|&n| self.is_terminal(ttl, n)) {
            let reached = self.interfaces_at(ttl).iter().any(|&(address, class)| {
                address == self.settings.target && class == ReplyClass::Reached
            });
            return Some(if reached {
                StopReason::Reached
            } else {
                StopReason::Unreachable
            });
        }
        let silent_run = (self.settings.first_ttl..=ttl)
            .rev()
            .take_while(|&t| self.interfaces_at(t).is_empty())
            .count();
        if silent_run >= usize::from(self.settings.gap_limit) {
            return Some(StopReason::GapLimit);
        }
        (ttl >= self.settings.max_ttl).then_some(StopReason::MaxTtl)
    }

    /// Flags `ttl` per-packet when one flow drew replies from several interfaces.
    fn update_per_packet(&mut self, ttl: u8) {
        let mixed = self
            .seen
            .range((ttl, 0)..=(ttl, u32::MAX))
            .any(|(_, outcomes)| {
                let mut addresses = outcomes.iter().flatten().map(|s| s.reply.address);
                addresses
                    .next()
                    .is_some_and(|first| addresses.any(|a| a != first))
            });
        if mixed {
            self.per_packet.insert(ttl);
        }
    }

    fn new_flow(&mut self) -> u32 {
        self.flows += 1;
        self.flows - 1
    }

    /// The node flow `flow` crossed at `ttl`, if known.
    fn node_of(&self, ttl: u8, flow: u32) -> Option<Node> {
        if ttl < self.settings.first_ttl {
            return Some(Node::Source);
        }
        match self.seen.get(&(ttl, flow)) {
            Some(outcomes) => Some(match first_reply(outcomes) {
                None => Node::Silent,
                Some(_) if self.per_packet.contains(&ttl) => Node::PerPacket,
                Some(seen) => Node::Interface(seen.reply.address),
            }),
            None => self.uniform(ttl).map(Node::Interface),
        }
    }

    /// The one interface every flow crosses at `ttl`: only when `ttl` has
    /// been enumerated, answered from one interface and had no silent flow.
    fn uniform(&self, ttl: u8) -> Option<Ipv4Addr> {
        if ttl > self.ttl || ttl < self.settings.first_ttl || self.per_packet.contains(&ttl) {
            return None;
        }
        let mut only = None;
        for outcomes in self.outcomes_at(ttl) {
            let address = first_reply(outcomes)?.reply.address;
            if only.is_some_and(|a| a != address) {
                return None;
            }
            only = Some(address);
        }
        only
    }

    fn outcomes_at(&self, ttl: u8) -> impl Iterator<Item = &Vec<Option<Seen>>> {
        self.seen
            .range((ttl, 0)..=(ttl, u32::MAX))
            .map(|(_, outcomes)| outcomes)
    }

    /// The nodes at `ttl`, in a fixed order.
    fn nodes_at(&self, ttl: u8) -> Vec<Node> {
        if ttl < self.settings.first_ttl {
            return vec![Node::Source];
        }
        let nodes: BTreeSet<Node> = self
            .seen
            .range((ttl, 0)..=(ttl, u32::MAX))
            .filter_map(|(&(_, flow), _)| self.node_of(ttl, flow))
            .collect();
        nodes.into_iter().collect()
    }

    /// The flows known to cross `node` at `ttl`, ascending.
    fn flows_through(&self, ttl: u8, node: Node) -> Vec<u32> {
        if node == Node::Source || self.uniform(ttl).is_some() {
            return (0..self.flows).collect();
        }
        (0..self.flows)
            .filter(|&f| self.node_of(ttl, f) == Some(node))
            .collect()
    }

    fn flows_probed_at(&self, ttl: u8) -> u32 {
        self.seen.range((ttl, 0)..=(ttl, u32::MAX)).count() as u32
    }

    /// Distinct interfaces that answered `flows` at `ttl`.
    fn successors(&self, ttl: u8, flows: &[u32]) -> usize {
        let addresses: BTreeSet<Ipv4Addr> = flows
            .iter()
            .filter_map(|&f| self.seen.get(&(ttl, f)))
            .flat_map(|outcomes| outcomes.iter().flatten().map(|s| s.reply.address))
            .collect();
        addresses.len()
    }

    /// Whether nothing lies beyond `node`: the target, or a router that
    /// answered unreachable.
    fn is_terminal(&self, ttl: u8, node: Node) -> bool {
        let terminal = |class: ReplyClass| class != ReplyClass::Transit;
        match node {
            Node::Interface(address) => self
                .interfaces_at(ttl)
                .iter()
                .any(|&(a, class)| a == address && terminal(class)),
            Node::PerPacket => {
                let interfaces = self.interfaces_at(ttl);
                !interfaces.is_empty() && interfaces.iter().all(|&(_, class)| terminal(class))
            }
            Node::Source | Node::Silent => false,
        }
    }

    /// Every (address, class) that answered at `ttl`, each address once.
    fn interfaces_at(&self, ttl: u8) -> Vec<(Ipv4Addr, ReplyClass)> {
        let mut out: Vec<(Ipv4Addr, ReplyClass)> = Vec::new();
        for seen in self.outcomes_at(ttl).flatten().flatten() {
            if !out.iter().any(|&(a, _)| a == seen.reply.address) {
                out.push((seen.reply.address, seen.class));
            }
        }
        out
    }

    /// The hops of the result, one per TTL probed.
    pub fn hops(&self) -> Vec<MultipathHop> {
        let ttls: BTreeSet<u8> = self.seen.keys().map(|&(ttl, _)| ttl).collect();
        ttls.into_iter().map(|ttl| self.hop(ttl)).collect()
    }

    fn hop(&self, ttl: u8) -> MultipathHop {
        let mut interfaces: Vec<MultipathInterface> = Vec::new();
        let mut silent_flows = Vec::new();
        let mut probes = 0;
        // First replies in order of flow, which is the order flows were sent.
        for (&(_, flow), outcomes) in self.seen.range((ttl, 0)..=(ttl, u32::MAX)) {
            probes += outcomes.len() as u32;
            if outcomes.iter().all(Option::is_none) {
                silent_flows.push(flow);
            }
            for seen in outcomes.iter().flatten() {
                match interfaces
                    .iter_mut()
                    .find(|i| i.address == seen.reply.address)
                {
                    Some(interface) => {
                        if interface.flows.last() != Some(&flow) {
                            interface.flows.push(flow);
                        }
                    }
                    None => interfaces.push(MultipathInterface {
                        address: seen.reply.address,
                        reply: Some(seen.reply.clone()),
                        flows: vec![flow],
                    }),
                }
            }
        }
        MultipathHop {
            ttl,
            interfaces,
            silent_flows,
            probes,
            per_packet: self.per_packet.contains(&ttl),
        }
    }

    /// The links of the result: for each flow, from each interface it reached
    /// to the next one it reached, across TTLs where it was silent. A TTL the
    /// flow did not probe is crossed only where every flow crosses one
    /// interface (the shortcut); otherwise the flow's chain breaks there.
    pub fn links(&self) -> Vec<MultipathLink> {
        let mut links: BTreeMap<(u8, Ipv4Addr, u8, Ipv4Addr), BTreeSet<u32>> = BTreeMap::new();
        let last = self.seen.keys().map(|&(ttl, _)| ttl).max().unwrap_or(0);
        for flow in 0..self.flows {
            let mut near: Vec<(u8, Ipv4Addr)> = Vec::new();
            for ttl in self.settings.first_ttl..=last {
                let here: Vec<Ipv4Addr> = if let Some(outcomes) = self.seen.get(&(ttl, flow)) {
                    let mut addresses: Vec<Ipv4Addr> = Vec::new();
                    for seen in outcomes.iter().flatten() {
                        if !addresses.contains(&seen.reply.address) {
                            addresses.push(seen.reply.address);
                        }
                    }
                    addresses
                } else if let Some(address) = self.uniform(ttl) {
                    vec![address]
                } else {
                    near.clear();
                    continue;
                };
                if here.is_empty() {
                    continue;
                }
                for &(near_ttl, near_address) in &near {
                    for &far in &here {
                        links
                            .entry((near_ttl, near_address, ttl, far))
                            .or_default()
                            .insert(flow);
                    }
                }
                near = here.into_iter().map(|a| (ttl, a)).collect();
            }
        }
        links
            .into_iter()
            .map(|((near_ttl, near, far_ttl, far), flows)| MultipathLink {
                near_ttl,
                near,
                far_ttl,
                far,
                flows: flows.into_iter().collect(),
            })
            .collect()
    }
}

fn first_reply(outcomes: &[Option<Seen>]) -> Option<&Seen> {
    outcomes.iter().flatten().next()
}
