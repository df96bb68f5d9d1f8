//! BIRD's `show route all`, parsed.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// One route of `birdc show route all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirdRoute {
    /// The network.
    pub prefix: Ipv4Net,
    /// Route kind (`unicast`, `blackhole`, ...).
    pub kind: String,
    /// The protocol that brought it (`bgp_cu`, `own_block`, ...).
    pub protocol: String,
    /// Whether it is the best (exported) route for the prefix.
    pub primary: bool,
    /// `BGP.as_path`, empty for non-BGP routes.
    pub as_path: Vec<u32>,
    /// `BGP.local_pref`.
    pub local_pref: Option<u32>,
    /// Next hop (`via X on IFACE`).
    pub via: Option<Ipv4Addr>,
    /// Outgoing interface of the next hop.
    pub iface: Option<String>,
}

impl BirdRoute {
    /// The AS the route enters the origin through (second to last in the path), if any.
    pub fn upstream_of_origin(&self) -> Option<u32> {
        let n = self.as_path.len();
        (n >= 2).then(|| self.as_path[n - 2])
    }
}

/// Parses the output of `show route all` (the banner line is ignored).
pub fn parse_show_route_all(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix: Option<Ipv4Net> = None;
    for line in text.lines() {
        if line.starts_with('\t') {
            if let Some(route) = routes.last_mut() {
                parse_attribute(route, line.trim());
            }
            continue;
        }
        let Some((head, rest)) = line.split_once('[') else {
            continue;
        };
        let mut words = head.split_whitespace();
        let kind = if line.starts_with(char::is_whitespace) {
            words.next()
        } else {
            prefix = words.next().and_then(|p| p.parse().ok());
            words.next()
        };
        let (Some(kind), Some(prefix)) = (kind, prefix) else {
            continue;
        };
        let protocol = rest.split_whitespace().next().unwrap_or_default();
        let after = rest.split_once(']').map_or("", |(_, a)| a);
        routes.push(BirdRoute {
            prefix,
            kind: kind.to_owned(),
            protocol: protocol.trim_end_matches(']').to_owned(),
            primary: after.trim_start().starts_with('*'),
            as_path: Vec::new(),
            local_pref: None,
            via: None,
            iface: None,
        });
    }
    routes
}

fn parse_attribute(route: &mut BirdRoute, attr: &str) {
    if let Some(path) = attr.strip_prefix("BGP.as_path:") {
        route.as_path = path
            .split_whitespace()
            .filter_map(|asn| asn.parse().ok())
            .collect();
    } else if let Some(lp) = attr.strip_prefix("BGP.local_pref:") {
        route.local_pref = lp.trim().parse().ok();
    } else if let Some(via) = attr.strip_prefix("via ") {
        let mut words = via.split_whitespace();
        route.via = words.next().and_then(|a| a.parse().ok());
        if words.next() == Some("on") {
            route.iface = words.next().map(str::to_owned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "BIRD 2.0.12 ready.
Table master4:
175.45.176.0/22      unicast [bgp_arelion 15:04:49.350] * (100) [AS131279i]
\tvia 62.115.1.9 on to-arelion
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 1299 20485 131279
\tBGP.next_hop: 62.115.1.9
\tBGP.local_pref: 50
                     unicast [bgp_lumen 15:04:49.351] (100) [AS131279i]
\tvia 4.68.1.21 on to-lumen
\tBGP.as_path: 3356 4837 131279
88.198.0.0/16        blackhole [own_block 15:04:49.100] * (200)
\tType: static univ
";

    #[test]
    fn parses_routes_and_attributes() {
        let routes = parse_show_route_all(SAMPLE);
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0].prefix.to_string(), "175.45.176.0/22");
        assert_eq!(routes[0].protocol, "bgp_arelion");
        assert!(routes[0].primary);
        assert_eq!(routes[0].as_path, [1299, 20485, 131_279]);
        assert_eq!(routes[0].upstream_of_origin(), Some(20485));
        assert_eq!(routes[0].local_pref, Some(50));
        assert_eq!(routes[0].via, Some(Ipv4Addr::new(62, 115, 1, 9)));
        assert_eq!(routes[0].iface.as_deref(), Some("to-arelion"));
        assert_eq!(routes[1].prefix, routes[0].prefix);
        assert!(!routes[1].primary);
        assert_eq!(routes[1].as_path, [3356, 4837, 131_279]);
        assert_eq!(routes[2].kind, "blackhole");
        assert_eq!(routes[2].protocol, "own_block");
        assert!(routes[2].as_path.is_empty());
    }
}
