//! `manifest.json`: what `scripts/testbed up` built, as the tests see it.
//!
//! The manifest describes configuration only (nodes, namespaces, interfaces, services,
//! BGP sessions and policy knobs). It never holds routing results: tests derive their
//! expectations from the live routing tables (`ip route get`, `birdc show route`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The whole manifest (`STATE/manifest.json`, format `version` 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this file.
    pub version: u32,
    /// Testbed id: node `N` lives in namespace `ID-N`.
    pub id: String,
    /// Everything of this testbed lives under this directory.
    pub state_dir: PathBuf,
    /// Where the route collector writes its MRT files.
    pub mrt_dir: PathBuf,
    /// BGP4MP messages and state changes of the route collector since BIRD started.
    pub updates_mrt: PathBuf,
    /// strftime pattern of the TABLE_DUMP_V2 RIB dumps in `mrt_dir`.
    pub rib_dump_pattern: String,
    /// Seconds between periodic RIB dumps.
    pub rib_dump_period_s: u32,
    /// `exact` or `realistic` (see [`crate::IcmpLimits`]).
    pub icmp_limits: String,
    /// `reference` or `silent-24` (see [`crate::Scenario`]).
    #[serde(default = "reference_scenario")]
    pub scenario: String,
    /// The target AS and how its border treats each part of the block.
    pub target: Target,
    /// usbr's policy route to the target through the side-door AS.
    pub side_door: SideDoor,
    /// Which blocks the /30 links were taken from, in words.
    pub link_addressing: String,
    /// Every AS of the testbed by number.
    pub ases: BTreeMap<u32, AsInfo>,
    /// Every node by name.
    pub nodes: BTreeMap<String, Node>,
    /// The vantage-point hosts where agents run (`devp`, `jpvp`, `usvp`).
    pub vantage_points: BTreeMap<String, VantagePoint>,
    /// The collector service host (`coll`).
    pub collector: Service,
    /// The DNS server (`dns`).
    pub dns: DnsService,
    /// The RouteViews-like route collector (`rc`).
    pub route_collector: RouteCollector,
    /// Every BGP session.
    pub sessions: Vec<Session>,
}

fn reference_scenario() -> String {
    crate::Scenario::Reference.as_str().to_owned()
}

/// The target AS (North Korea in this testbed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// AS number of the target.
    pub asn: u32,
    /// The target's whole block.
    pub prefix: Ipv4Net,
    /// The host that answers for every answering address.
    pub node: String,
    /// Every prefix the target announces (to some upstream).
    pub announced: Vec<Ipv4Net>,
    /// Which prefixes are announced to which upstream node.
    pub announced_to: BTreeMap<String, Vec<Ipv4Net>>,
    /// Parts of the block where every address answers.
    pub answering: Vec<Ipv4Net>,
    /// Parts of the block where nothing answers: blackholed at the border (the
    /// border silent too) or, in the `silent-24` scenario, dropped behind it.
    pub silent: Vec<Ipv4Net>,
    /// Parts of the block the border answers with ICMP admin-prohibited.
    pub admin_prohibited: Vec<Ipv4Net>,
    /// The border–host link, carved out of a silent part.
    pub border_link: Ipv4Net,
}

/// The side door: usbr routes the target block to `via_node`, which BGP never shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideDoor {
    /// The router with the policy rule.
    pub router: String,
    /// Its routing table for the target block.
    pub table: u32,
    /// The next node (the side-door AS's router).
    pub via_node: String,
    /// The next hop address in `table`.
    pub via_address: Ipv4Addr,
}

/// Registry-style facts about an AS (also served as Team-Cymru-style TXT records).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsInfo {
    /// Short name used in DNS names (`to-cu.nkbr.kptc.nkpath.test`).
    pub name: String,
    /// The block the AS announces, if any.
    pub block: Option<Ipv4Net>,
    /// Country code.
    pub cc: String,
    /// Regional registry.
    pub registry: String,
    /// Allocation date (synthetic).
    pub allocated: String,
    /// AS description as whois would print it.
    pub description: String,
}

/// One node (one network namespace).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Namespace name (`ID-NODE`).
    pub netns: String,
    /// The AS the node belongs to.
    pub asn: u32,
    /// Short name of that AS.
    pub as_name: String,
    /// What the node is: `target-border`, `target-host`, `target-upstream`, `transit`,
    /// `vantage-point`, `vp-gateway`, `vp-aggregation`, `vp-border`, `collector`,
    /// `side-door`, `route-collector` or `dns`.
    pub role: String,
    /// Whether the node forwards packets.
    pub router: bool,
    /// `net.ipv4.icmp_errors_use_inbound_ifaddr` as configured (read it live for truth).
    pub icmp_errors_use_inbound_ifaddr: u8,
    /// The node's interfaces (veth ends).
    pub interfaces: Vec<Interface>,
    /// BIRD control socket (`birdc -s`), for BIRD nodes.
    #[serde(default)]
    pub bird_socket: Option<PathBuf>,
    /// BIRD config file, for BIRD nodes.
    #[serde(default)]
    pub bird_config: Option<PathBuf>,
    /// BIRD log file, for BIRD nodes.
    #[serde(default)]
    pub bird_log: Option<PathBuf>,
    /// BGP router id, for BIRD nodes.
    #[serde(default)]
    pub router_id: Option<Ipv4Addr>,
    /// BGP neighbors, for BIRD nodes.
    #[serde(default)]
    pub bgp_neighbors: Vec<BgpNeighbor>,
    /// nftables ruleset loaded in the node, if any.
    #[serde(default)]
    pub nftables: Option<String>,
    /// Destinations that the node rejects with ICMP admin-prohibited when forwarding.
    #[serde(default)]
    pub reject_prefixes: Vec<Ipv4Net>,
    /// Destinations that the node drops without an error when forwarding (after the
    /// TTL check: it still answers probes that expire there).
    #[serde(default)]
    pub drop_prefixes: Vec<Ipv4Net>,
    /// `net.ipv4.fib_multipath_hash_policy` if the node has ECMP routes.
    #[serde(default)]
    pub fib_multipath_hash_policy: Option<u8>,
    /// How the node marks ICMP to balance it, if it does.
    #[serde(default)]
    pub icmp_jhash: Option<IcmpJhash>,
}

/// One interface of a node and the interface at the other end of its veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`to-PEER`).
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// Prefix length of the link (30).
    pub prefix_len: u8,
    /// The node at the other end.
    pub peer_node: String,
    /// The interface at the other end.
    pub peer_interface: String,
    /// The PTR name the DNS server gives this address.
    pub dns_name: String,
}

/// A BGP neighbor of a BIRD node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BgpNeighbor {
    /// The neighbor node.
    pub node: String,
    /// BIRD protocol name of the session (`bgp_NODE`).
    pub protocol: String,
    /// The neighbor's AS.
    pub asn: u32,
    /// What the neighbor is for this node: `customer`, `peer`, `provider`, `collector`
    /// (the neighbor is the route collector) or `collected` (the neighbor feeds this
    /// node, which is the route collector).
    pub relation: String,
    /// Local preference given to routes from this neighbor.
    #[serde(default)]
    pub local_pref: Option<u32>,
}

/// nftables ICMP load balancing: `meta mark set jhash FIELDS mod MODULUS seed SEED offset
/// OFFSET`, then `ip rule fwmark M table M`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IcmpJhash {
    /// The jhash seed (fixed so that marks can be predicted).
    pub seed: u32,
    /// Number of marks.
    pub modulus: u32,
    /// First mark.
    pub offset: u32,
    /// Hashed fields, in order.
    pub fields: Vec<String>,
    /// Which next node each mark's table leads to.
    pub tables: BTreeMap<String, String>,
}

/// A vantage-point host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VantagePoint {
    /// The node.
    pub node: String,
    /// Its (only) address, the source of its probes.
    pub address: Ipv4Addr,
    /// Its AS.
    pub asn: u32,
}

/// A service host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Service {
    /// The node.
    pub node: String,
    /// Its address.
    pub address: Ipv4Addr,
}

/// The DNS server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsService {
    /// The node.
    pub node: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// UDP/TCP port.
    pub port: u16,
    /// Suffix of every PTR name.
    pub ptr_suffix: String,
    /// Zone of the Team-Cymru-style origin TXT records.
    pub cymru_zone: String,
}

/// The route collector.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteCollector {
    /// The node.
    pub node: String,
    /// Its AS.
    pub asn: u32,
    /// The nodes that feed it.
    pub peers: Vec<String>,
    /// Its BIRD control socket.
    pub bird_socket: PathBuf,
}

/// A BGP session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// First node (the provider for `p2c`, the collector for `rc`).
    pub a: String,
    /// Second node.
    pub b: String,
    /// `p2c`, `p2p` or `rc`.
    pub relation: String,
}

impl Manifest {
    /// The node with this name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// The node that owns this interface address.
    pub fn node_of_address(&self, ip: Ipv4Addr) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, node)| node.interfaces.iter().any(|i| i.address == ip))
            .map(|(name, _)| name.as_str())
    }

    /// The interface (and its node) that has this address.
    pub fn interface_of_address(&self, ip: Ipv4Addr) -> Option<(&str, &Interface)> {
        self.nodes.iter().find_map(|(name, node)| {
            node.interfaces
                .iter()
                .find(|i| i.address == ip)
                .map(|i| (name.as_str(), i))
        })
    }

    /// Every interface address of a node.
    pub fn addresses_of(&self, node: &str) -> Vec<Ipv4Addr> {
        self.nodes
            .get(node)
            .map(|n| n.interfaces.iter().map(|i| i.address).collect())
            .unwrap_or_default()
    }

    /// The address of a vantage point (`devp`, `jpvp`, `usvp`).
    pub fn vp_address(&self, node: &str) -> Option<Ipv4Addr> {
        self.vantage_points.get(node).map(|vp| vp.address)
    }

    /// The AS whose announced block covers `ip` most specifically, as IP-to-AS mapping
    /// with BGP data would say (link addresses map to the owner of the block they were
    /// taken from, not necessarily to the AS of the router holding them).
    pub fn origin_as_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        let target = self.target.announced.iter().map(|p| (*p, self.target.asn));
        let blocks = self
            .ases
            .iter()
            .filter_map(|(asn, a)| a.block.map(|b| (b, *asn)));
        for (net, asn) in target.chain(blocks) {
            if net.contains(&ip) && best.is_none_or(|(len, _)| net.prefix_len() > len) {
                best = Some((net.prefix_len(), asn));
            }
        }
        best.map(|(_, asn)| asn)
    }
}

impl Node {
    /// The interface with this name.
    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The interface that leads to `peer`.
    pub fn interface_towards(&self, peer: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.peer_node == peer)
    }
}
