//! `ip route get`, as a typed query and answer.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// IANA protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// `ip route get DST [from SRC] [iif IFACE] [mark M] [ipproto P] [sport S] [dport D]`.
///
/// Without `iif` the kernel answers for a packet the node itself sends (output route);
/// with `iif` for a packet arriving on that interface (forwarding decision, including
/// policy rules and the multipath hash of the given ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteQuery {
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source address of the packet.
    pub from: Option<Ipv4Addr>,
    /// Interface the packet arrives on (forwarding lookup).
    pub iif: Option<String>,
    /// IP protocol number (see [`IPPROTO_UDP`] and friends).
    pub ipproto: Option<u8>,
    /// Transport source port.
    pub sport: Option<u16>,
    /// Transport destination port.
    pub dport: Option<u16>,
    /// Firewall mark (as set by nftables before routing).
    pub mark: Option<u32>,
}

impl RouteQuery {
    /// A query for `dst` and nothing else.
    pub fn to(dst: Ipv4Addr) -> Self {
        Self {
            dst,
            from: None,
            iif: None,
            ipproto: None,
            sport: None,
            dport: None,
            mark: None,
        }
    }

    /// Sets the source address.
    #[must_use]
    pub fn from(mut self, src: Ipv4Addr) -> Self {
        self.from = Some(src);
        self
    }

    /// Sets the inbound interface (makes it a forwarding lookup).
    #[must_use]
    pub fn iif(mut self, iface: impl Into<String>) -> Self {
        self.iif = Some(iface.into());
        self
    }

    /// Sets protocol and ports.
    #[must_use]
    pub fn l4(mut self, ipproto: u8, sport: Option<u16>, dport: Option<u16>) -> Self {
        self.ipproto = Some(ipproto);
        self.sport = sport;
        self.dport = dport;
        self
    }

    /// Sets the firewall mark.
    #[must_use]
    pub fn mark(mut self, mark: Option<u32>) -> Self {
        self.mark = mark;
        self
    }

    /// The arguments after `ip -j route get`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![self.dst.to_string()];
        if let Some(from) = self.from {
            args.extend(["from".into(), from.to_string()]);
        }
        if let Some(iif) = &self.iif {
            args.extend(["iif".into(), iif.clone()]);
        }
        if let Some(mark) = self.mark {
            args.extend(["mark".into(), mark.to_string()]);
        }
        if let Some(p) = self.ipproto {
            args.extend(["ipproto".into(), p.to_string()]);
        }
        if let Some(s) = self.sport {
            args.extend(["sport".into(), s.to_string()]);
        }
        if let Some(d) = self.dport {
            args.extend(["dport".into(), d.to_string()]);
        }
        args
    }
}

/// The kernel's answer to a [`RouteQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteGet {
    /// The queried destination.
    pub dst: Ipv4Addr,
    /// Route type: `unicast` (forwarded or sent), `local` (delivered here), ...
    #[serde(rename = "type", default = "unicast")]
    pub route_type: String,
    /// Next hop, if the route has a gateway.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Outgoing device (`lo` for local delivery).
    #[serde(default)]
    pub dev: Option<String>,
    /// Preferred source address (output lookups).
    #[serde(default)]
    pub prefsrc: Option<Ipv4Addr>,
    /// Routing table, when it is not main.
    #[serde(default)]
    pub table: Option<String>,
}

fn unicast() -> String {
    "unicast".to_owned()
}

impl RouteGet {
    /// Parses the JSON of `ip -j route get`.
    pub fn parse(json: &str) -> Result<Self> {
        let mut routes: Vec<RouteGet> = serde_json::from_str(json)
            .with_context(|| format!("bad `ip -j route get` output: {json}"))?;
        if routes.len() != 1 {
            bail!("`ip -j route get` returned {} routes: {json}", routes.len());
        }
        Ok(routes.remove(0))
    }

    /// Whether the destination is delivered locally in the node.
    pub fn is_local(&self) -> bool {
        self.route_type == "local"
    }
}

/// One entry of `ip -j route show match DST table all`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteEntry {
    /// `default` or a prefix (a host route has no length).
    pub dst: String,
    /// Route type (`unicast`, `blackhole`, `unreachable`, `prohibit`, `local`, ...).
    #[serde(rename = "type", default = "unicast")]
    pub route_type: String,
    /// Routing table, when it is not main.
    #[serde(default)]
    pub table: Option<String>,
}

impl RouteEntry {
    /// The prefix length this entry covers (`default` is 0, a host route 32).
    pub fn prefix_len(&self) -> u8 {
        if self.dst == "default" {
            return 0;
        }
        self.dst
            .split_once('/')
            .and_then(|(_, len)| len.parse().ok())
            .unwrap_or(32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forwarding_answer() {
        let json = r#"[{"dst":"175.45.176.1","from":"88.198.10.2","gateway":"88.198.11.1","dev":"to-c","flags":[],"cache":[],"iif":"to-a"}]"#;
        let r = RouteGet::parse(json).unwrap();
        assert_eq!(r.route_type, "unicast");
        assert_eq!(r.gateway, Some(Ipv4Addr::new(88, 198, 11, 1)));
        assert_eq!(r.dev.as_deref(), Some("to-c"));
        assert!(!r.is_local());
    }

    #[test]
    fn parses_local_answer() {
        let json = r#"[{"type":"local","dst":"175.45.176.1","from":"88.198.10.2","dev":"lo","flags":[],"cache":["local"],"iif":"to-c"}]"#;
        assert!(RouteGet::parse(json).unwrap().is_local());
    }

    #[test]
    fn rejects_garbage() {
        assert!(RouteGet::parse("[]").is_err());
        assert!(RouteGet::parse("RTNETLINK answers").is_err());
    }

    #[test]
    fn query_args_in_ip_order() {
        let q = RouteQuery::to(Ipv4Addr::new(175, 45, 176, 1))
            .from(Ipv4Addr::new(88, 198, 10, 2))
            .iif("to-devp")
            .l4(IPPROTO_UDP, Some(40000), Some(33435))
            .mark(Some(2));
        assert_eq!(
            q.args().join(" "),
            "175.45.176.1 from 88.198.10.2 iif to-devp mark 2 ipproto 17 sport 40000 dport 33435"
        );
    }

    #[test]
    fn entry_prefix_len() {
        let e: Vec<RouteEntry> = serde_json::from_str(
            r#"[{"dst":"default","flags":[]},{"type":"blackhole","dst":"175.45.178.128/25","flags":[]},{"dst":"1.2.3.4","flags":[]}]"#,
        )
        .unwrap();
        assert_eq!(
            e.iter().map(RouteEntry::prefix_len).collect::<Vec<_>>(),
            [0, 25, 32]
        );
        assert_eq!(e[1].route_type, "blackhole");
    }
}
