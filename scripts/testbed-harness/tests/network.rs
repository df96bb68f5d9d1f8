//! Acceptance tests of the emulated Internet: BGP outcome, MRT files, the data plane as
//! real traceroute tools see it, DNS, and the border. All read-only, on the testbed
//! shared by this binary (the silent-24 scenario on a private one).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::thread;

use ipnet::Ipv4Net;
use nkpath_testbed::{
    BirdRoute, ExpectedTrace, FlowQuery, Options, PathEnd, ScamperTrace, Scenario, Testbed,
    parse_traceroute, require_tools,
};

const NK: &str = "175.45.176.0/22";
const NK_176: &str = "175.45.176.0/24";
const NK_177: &str = "175.45.177.0/24";
const NK_178: &str = "175.45.178.0/24";
const NK_179: &str = "175.45.179.0/24";
const CU: u32 = 4837;
const TTK: u32 = 20485;
const KP: u32 = 131_279;
const INTELSAT: u32 = 22351;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// The nodes whose interface addresses these are.
fn nodes_of(tb: &Testbed, addrs: impl IntoIterator<Item = Ipv4Addr>) -> BTreeSet<String> {
    addrs
        .into_iter()
        .filter_map(|a| tb.manifest().node_of_address(a).map(str::to_owned))
        .collect()
}

/// The best route of `node` for `prefix`.
fn best(tb: &Testbed, node: &str, prefix: &str) -> BirdRoute {
    let routes = tb.bird_routes(node).unwrap();
    routes
        .iter()
        .find(|r| r.primary && r.prefix == net(prefix))
        .cloned()
        .unwrap_or_else(|| panic!("{node} has no route for {prefix}: {routes:#?}"))
}

fn bird_nodes(tb: &Testbed) -> Vec<String> {
    tb.manifest()
        .nodes
        .iter()
        .filter(|(_, n)| n.bird_socket.is_some())
        .map(|(name, _)| name.clone())
        .collect()
}

/// The AS path as seen from the node itself: its own AS, then the BGP path.
fn path_from(tb: &Testbed, node: &str, route: &BirdRoute) -> Vec<u32> {
    let mut path = vec![tb.manifest().nodes[node].asn];
    path.extend(&route.as_path);
    path
}

fn ends_with(path: &[u32], tail: &[u32]) -> bool {
    path.ends_with(tail)
}

#[test]
fn bgp_converged_with_intended_upstream_per_vantage_point() {
    let Some(tb) = Testbed::shared() else { return };
    // The VP ASes' border routers: devp's AS reaches NK through TTK, the others via CU.
    for (node, upstream) in [("debr", TTK), ("jpbr", CU), ("usbr", CU)] {
        for prefix in [NK, NK_178, NK_179] {
            let route = best(tb, node, prefix);
            assert_eq!(
                route.upstream_of_origin(),
                Some(upstream),
                "{node} {prefix}: {:?}",
                route.as_path
            );
            assert_eq!(route.as_path.last(), Some(&KP));
        }
    }
    assert_eq!(best(tb, "debr", NK).as_path, [1299, TTK, KP]);
    assert_eq!(best(tb, "jpbr", NK).as_path, [3356, CU, KP]);

    // The /24s behind one upstream only, at every BIRD node that has them.
    for node in bird_nodes(tb) {
        if node == "nkbr" || node == "sat" {
            continue; // the origin; the side door (has no NK routes, see side_door test)
        }
        let routes = tb.bird_routes(&node).unwrap();
        for (prefix, upstream) in [(NK_176, CU), (NK_177, TTK)] {
            let relevant: Vec<&BirdRoute> = routes
                .iter()
                .filter(|r| r.prefix == net(prefix) && (r.primary || node == "rc"))
                .collect();
            assert!(!relevant.is_empty(), "{node} has no route for {prefix}");
            for r in relevant {
                let path = path_from(tb, &node, r);
                assert!(
                    ends_with(&path, &[upstream, KP]),
                    "{node} {prefix} via {}: path {path:?} does not end {upstream} {KP}",
                    r.protocol
                );
            }
        }
    }
}

/// `bgpdump -m` lines as (prefix, AS path).
fn bgpdump(path: &std::path::Path) -> Vec<(Ipv4Net, Vec<u32>, String)> {
    let out = std::process::Command::new("bgpdump")
        .arg("-m")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bgpdump {}: {:?}",
        path.display(),
        out
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        // TABLE_DUMP2|ts|B|peer|peer_as|prefix|path|... and BGP4MP|ts|A|peer|peer_as|prefix|path|...
        if f.len() > 6 && (f[2] == "B" || f[2] == "A") {
            let path = f[6]
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
            lines.push((f[5].parse().unwrap(), path, f[3].to_owned()));
        }
    }
    lines
}

#[test]
fn route_collector_mrt_files_show_both_upstreams() {
    if !require_tools(&["bgpdump"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let dumps = tb.rib_dumps().unwrap();
    let rib = dumps.first().expect("no RIB dump after up");
    // BIRD keeps appending to updates.mrt: parse a copy cut at a record boundary.
    let updates = tb.mrt_snapshot(&tb.updates_mrt()).unwrap();
    for (file, lines) in [
        (rib.clone(), bgpdump(rib)),
        (updates.clone(), bgpdump(&updates)),
    ] {
        let name = file.display();
        assert!(!lines.is_empty(), "{name}: no routes");
        let with = |prefix: &str, tail: &[u32]| {
            lines
                .iter()
                .any(|(p, path, _)| *p == net(prefix) && path.ends_with(tail))
        };
        assert!(
            with(NK, &[CU, KP]),
            "{name}: no /22 path ending 4837 131279"
        );
        assert!(
            with(NK, &[TTK, KP]),
            "{name}: no /22 path ending 20485 131279"
        );
        for (prefix, tail) in [(NK_176, [CU, KP]), (NK_177, [TTK, KP])] {
            let paths: Vec<&Vec<u32>> = lines
                .iter()
                .filter(|(p, _, _)| *p == net(prefix))
                .map(|(_, path, _)| path)
                .collect();
            assert!(!paths.is_empty(), "{name}: {prefix} missing");
            assert!(
                paths.iter().all(|p| p.ends_with(&tail)),
                "{name}: {prefix} not only behind {}: {paths:?}",
                tail[0]
            );
        }
    }
    // The RIB dump has every prefix from each of rc's four peers.
    let rib_lines = bgpdump(rib);
    let peers: BTreeSet<&str> = rib_lines.iter().map(|(_, _, peer)| peer.as_str()).collect();
    assert_eq!(
        peers.len(),
        tb.manifest().route_collector.peers.len(),
        "{peers:?}"
    );
}

fn scamper(tb: &Testbed, node: &str, dst: &str, options: &str) -> ScamperTrace {
    tb.scamper_trace(node, ip(dst), options)
        .unwrap_or_else(|e| panic!("scamper in {node} to {dst}: {e:#}"))
}

#[test]
fn scamper_icmp_paris_passes_the_intended_upstream() {
    if !require_tools(&["scamper"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let cu = tb.manifest().addresses_of("cu");
    let ttk = tb.manifest().addresses_of("ttk");
    let cases = [
        // 176/24 is announced to CU only: everybody enters through CU.
        ("devp", "175.45.176.1", "cu"),
        ("jpvp", "175.45.176.1", "cu"),
        // 178/24 is announced to both: devp's AS prefers TTK, jpvp's CU.
        ("devp", "175.45.178.1", "ttk"),
        ("jpvp", "175.45.178.1", "cu"),
    ];
    for (vp, dst, upstream) in cases {
        let trace = scamper(tb, vp, dst, "-P icmp-paris -q 1 -w 1");
        assert!(trace.reached(), "{vp} -> {dst} not reached: {trace:?}");
        let seen: BTreeSet<Ipv4Addr> = trace.addresses().into_iter().collect();
        let (want, other) = if upstream == "cu" {
            (&cu, &ttk)
        } else {
            (&ttk, &cu)
        };
        assert!(
            want.iter().any(|a| seen.contains(a)),
            "{vp} -> {dst}: no {upstream} address in {seen:?}"
        );
        assert!(
            !other.iter().any(|a| seen.contains(a)),
            "{vp} -> {dst}: the other upstream shows up in {seen:?}"
        );
    }
}

/// Runs `traceroute` until the hop shows more than one address (each run draws new
/// random source ports / sequence numbers, so a fair balancer shows both branches with
/// probability 1 - 2^-9 per run).
fn classic_addresses_at(tb: &Testbed, vp: &str, args: &[&str], ttl: u8) -> BTreeSet<Ipv4Addr> {
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let mut argv = vec!["traceroute"];
        argv.extend_from_slice(args);
        let out = tb.exec(vp, &argv).unwrap();
        let hops = parse_traceroute(&out);
        let hop = hops
            .iter()
            .find(|h| h.ttl == ttl)
            .unwrap_or_else(|| panic!("no hop {ttl}: {out}"));
        seen = hop.addresses();
        if seen.len() > 1 {
            break;
        }
    }
    seen
}

#[test]
fn ecmp_fools_classic_traceroute_but_not_paris() {
    if !require_tools(&["scamper", "traceroute"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let dst = "175.45.176.1";
    // devp -> degw (1) -> deagg1|deagg2 (2): UDP balanced on ports (hash policy 1).
    let classic = classic_addresses_at(tb, "devp", &["-q", "10", "-n", "-w", "1", dst], 2);
    assert_eq!(
        nodes_of(tb, classic.iter().copied()),
        BTreeSet::from(["deagg1".to_owned(), "deagg2".to_owned()]),
        "classic UDP traceroute from devp should see both branches: {classic:?}"
    );
    // jpvp -> jpgw: ICMP balanced by nftables jhash marks.
    let classic = classic_addresses_at(tb, "jpvp", &["-I", "-q", "10", "-n", "-w", "1", dst], 2);
    assert_eq!(
        nodes_of(tb, classic.iter().copied()),
        BTreeSet::from(["jpagg1".to_owned(), "jpagg2".to_owned()]),
        "classic ICMP traceroute from jpvp should see both branches: {classic:?}"
    );
    // Paris traces keep the flow identifier: one address per hop, every probe.
    for (vp, method) in [("devp", "udp-paris"), ("jpvp", "icmp-paris")] {
        for _ in 0..3 {
            let trace = scamper(tb, vp, dst, &format!("-P {method} -q 3 -Q -w 1"));
            assert!(trace.reached(), "{vp} {method}: {trace:?}");
            for ttl in 1..=trace.max_ttl() {
                let at = trace.addresses_at(ttl);
                assert_eq!(at.len(), 1, "{vp} {method} hop {ttl}: {at:?}");
                assert_eq!(
                    trace.hops.iter().filter(|h| h.probe_ttl == ttl).count(),
                    3,
                    "{vp} {method} hop {ttl}: every probe answered"
                );
            }
        }
    }
}

#[test]
fn side_door_carries_traffic_that_bgp_never_shows() {
    if !require_tools(&["scamper", "bgpdump"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let sat = tb.manifest().addresses_of("sat");
    let trace = scamper(tb, "usvp", "175.45.176.1", "-P udp-paris -q 1 -w 1");
    assert!(trace.reached(), "{trace:?}");
    assert!(
        trace.addresses().iter().any(|a| sat.contains(a)),
        "usvp's trace does not pass sat: {:?}",
        trace.addresses()
    );
    // BGP at usbr says lumen -> cu.
    assert_eq!(best(tb, "usbr", NK).as_path, [3356, CU, KP]);
    // No AS path towards NK contains the side door's AS, at rc or in its MRT dump...
    let nk = net(NK);
    let rc_routes = tb.bird_routes("rc").unwrap();
    for r in rc_routes.iter().filter(|r| nk.contains(&r.prefix)) {
        assert!(!r.as_path.contains(&INTELSAT), "rc: {r:?}");
    }
    let rib = tb.rib_dumps().unwrap().remove(0);
    let lines = bgpdump(&rib);
    assert!(lines.iter().any(|(p, _, _)| nk.contains(p)));
    for (prefix, path, _) in lines.iter().filter(|(p, _, _)| nk.contains(p)) {
        assert!(!path.contains(&INTELSAT), "MRT: {prefix} {path:?}");
    }
    // ...although 22351 is visible in BGP for its own block (the check can fail).
    assert!(
        rc_routes
            .iter()
            .any(|r| r.prefix == net("196.49.0.0/16") && r.as_path.last() == Some(&INTELSAT))
    );
    // And sat itself learns no NK route by BGP (its static route does the work).
    assert!(
        !tb.bird_routes("sat")
            .unwrap()
            .iter()
            .any(|r| nk.contains(&r.prefix)),
        "sat learned NK routes"
    );
}

#[test]
fn dns_answers_ptr_and_cymru_txt() {
    let Some(tb) = Testbed::shared() else { return };
    let dns = tb.manifest().dns.address.to_string();
    let at = format!("@{dns}");
    for vp in ["devp", "jpvp", "usvp"] {
        for (node, iface) in [
            ("nkbr", "to-cu"),
            ("ttk", "to-arelion"),
            ("degw", "to-devp"),
        ] {
            let i = tb.manifest().nodes[node].interface(iface).unwrap();
            let addr = i.address.to_string();
            let out = tb
                .exec(vp, &["dig", &at, "-x", &addr, "+short", "+time=2"])
                .unwrap();
            assert_eq!(
                out.trim(),
                format!("{}.", i.dns_name),
                "{vp}: PTR of {addr}"
            );
        }
        let txt = tb
            .exec(
                vp,
                &[
                    "dig",
                    &at,
                    "TXT",
                    "1.176.45.175.origin.asn.cymru.com",
                    "+short",
                    "+time=2",
                ],
            )
            .unwrap();
        assert_eq!(
            txt.trim(),
            "\"131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18\""
        );
    }
    // TTK's Arelion-facing address maps to Arelion, as IP-to-AS data would have it.
    let ttk = tb.manifest().nodes["ttk"]
        .interface("to-arelion")
        .unwrap()
        .address;
    let name = ttk
        .octets()
        .iter()
        .rev()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let txt = tb
        .exec(
            "devp",
            &[
                "dig",
                &at,
                "TXT",
                &format!("{name}.origin.asn.cymru.com"),
                "+short",
            ],
        )
        .unwrap();
    assert!(txt.starts_with("\"1299 | 62.115.0.0/16 |"), "{txt}");
    assert_eq!(tb.manifest().origin_as_of(ttk), Some(1299));
    assert_eq!(tb.manifest().origin_as_of(ip("175.45.177.9")), Some(KP));
}

#[test]
fn border_rejects_179_and_blackholes_178_upper_half() {
    if !require_tools(&["scamper", "traceroute"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let nkbr = tb.manifest().addresses_of("nkbr");
    for vp in ["devp", "jpvp", "usvp"] {
        let trace = scamper(tb, vp, "175.45.179.1", "-P udp-paris -q 1 -w 1");
        assert_eq!(trace.stop_reason, "UNREACH", "{vp}: {trace:?}");
        assert_eq!(trace.stop_data, 13, "{vp}: not admin-prohibited");
        let last = trace.hops.iter().max_by_key(|h| h.probe_ttl).unwrap();
        assert!(nkbr.contains(&last.addr), "{vp}: rejected by {}", last.addr);
        assert_eq!((last.icmp_type, last.icmp_code), (Some(3), Some(13)));

        let out = tb
            .exec(
                vp,
                &["traceroute", "-n", "-q", "1", "-w", "1", "175.45.179.1"],
            )
            .unwrap();
        let hops = parse_traceroute(&out);
        let last = hops.last().unwrap();
        assert_eq!(last.flags, ["!X"], "{vp}: {out}");
        assert!(last.addresses().iter().all(|a| nkbr.contains(a)), "{out}");

        // 175.45.178.128/25 is blackholed at nkbr: the upstream answers, then silence.
        let trace = scamper(tb, vp, "175.45.178.200", "-P udp-paris -q 1 -w 1 -g 3");
        assert!(!trace.reached(), "{vp}: {trace:?}");
        let last = trace.hops.iter().max_by_key(|h| h.probe_ttl).unwrap();
        let upstream = tb.manifest().node_of_address(last.addr).unwrap();
        assert!(
            ["cu", "ttk", "sat"].contains(&upstream),
            "{vp}: last answer from {upstream}"
        );
        for h in &trace.hops {
            let node = tb.manifest().node_of_address(h.addr);
            assert!(!matches!(node, Some("nkbr" | "nkhost")), "{vp}: {h:?}");
        }
    }
}

/// Compares a scamper trace with the path derived from the routing tables.
fn assert_agrees(what: &str, expected: &ExpectedTrace, trace: &ScamperTrace) {
    for hop in &expected.hops {
        let seen = trace.addresses_at(hop.ttl);
        assert_eq!(
            seen,
            BTreeSet::from([hop.address]),
            "{what}: hop {} should be {} ({}), scamper saw {seen:?}\nexpected {:?}\nscamper {:?}",
            hop.ttl,
            hop.address,
            hop.node,
            expected.hops,
            trace.addresses()
        );
    }
    let last_ttl = expected.hops.last().map_or(0, |h| h.ttl);
    assert!(
        trace.hops.iter().all(|h| h.probe_ttl <= last_ttl),
        "{what}: scamper saw answers past the expected end: {:?}",
        trace.hops
    );
    match &expected.end {
        PathEnd::Reached => assert!(trace.reached(), "{what}: {trace:?}"),
        PathEnd::Rejected { .. } => {
            assert_eq!(
                (trace.stop_reason.as_str(), trace.stop_data),
                ("UNREACH", 13),
                "{what}"
            );
        }
        PathEnd::Blackhole { .. } | PathEnd::Dropped { .. } => {
            assert!(!trace.reached(), "{what}");
        }
        PathEnd::Unreachable { node, .. } => panic!("{what}: unexpected dead end at {node}"),
    }
}

#[test]
fn expected_path_agrees_with_scamper_paris_hop_by_hop() {
    if !require_tools(&["scamper"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    let dsts = [
        "175.45.176.1",
        "175.45.177.1",
        "175.45.178.1",
        "175.45.179.1",
        "175.45.178.200",
    ];
    let mut cases = Vec::new();
    for vp in ["devp", "jpvp", "usvp"] {
        for dst in dsts {
            // Silent destinations cost a few seconds of timeouts per trace: fewer flows.
            let silent = dst == "175.45.178.200";
            let flows = if silent { 1 } else { 3 };
            for (i, sport) in [40000u16, 40001, 51234].into_iter().enumerate().take(flows) {
                let dport = 33435 + i as u16 * 7;
                cases.push((
                    vp,
                    dst,
                    "udp-paris",
                    FlowQuery::udp(sport, dport),
                    format!("-s {sport} -d {dport}"),
                ));
                cases.push((
                    vp,
                    dst,
                    "tcp",
                    FlowQuery::tcp(sport, 80 + i as u16),
                    format!("-s {sport} -d {}", 80 + i),
                ));
            }
            // ICMP-Paris: scamper's -d fixes the checksum, which jpgw's jhash covers.
            for csum in [0x1234u16, 0x4321, 0xbeef, 0x0101]
                .into_iter()
                .take(flows + 1)
            {
                cases.push((
                    vp,
                    dst,
                    "icmp-paris",
                    FlowQuery::icmp_echo(csum),
                    format!("-d {csum}"),
                ));
            }
        }
    }
    // Scamper traces run a few at a time: each one waits for its slowest hop.
    let checked = thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(6))
            .map(|chunk| {
                s.spawn(move || {
                    for (vp, dst, method, flow, opts) in chunk {
                        let what = format!("{vp} -> {dst} {method} {opts}");
                        let expected = tb
                            .expected_trace(vp, ip(dst), flow)
                            .unwrap_or_else(|e| panic!("{what}: {e:#}"));
                        let trace =
                            scamper(tb, vp, dst, &format!("-P {method} -q 1 -w 1 -g 3 {opts}"));
                        assert_agrees(&what, &expected, &trace);
                    }
                    chunk.len()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(checked, cases.len());
}

/// The silent-24 scenario, as scamper sees it from every vantage point: the border
/// answers from its address inside the block, a probe to 175.45.179.0/24 gets nothing
/// past the border, and the path walker says both (`PathEnd::Dropped`).
#[test]
fn silent_24_border_answers_from_inside_the_block_and_drops_179() {
    if !require_tools(&["scamper"]) {
        return;
    }
    let Some(tb) = Testbed::private(Options {
        scenario: Scenario::Silent24,
        ..Options::default()
    }) else {
        return;
    };
    assert!(tb.manifest().target.silent.contains(&net(NK_179)));
    assert!(tb.manifest().target.admin_prohibited.is_empty());
    let inside = ip("175.45.178.253");
    for vp in ["devp", "jpvp", "usvp"] {
        for dst in ["175.45.176.1", "175.45.179.1"] {
            let what = format!("silent-24: {vp} -> {dst}");
            let flow = FlowQuery::icmp_echo(0x1234);
            let expected = tb
                .expected_trace(vp, ip(dst), &flow)
                .unwrap_or_else(|e| panic!("{what}: {e:#}"));
            let trace = scamper(&tb, vp, dst, "-P icmp-paris -q 1 -w 1 -g 3 -d 4660");
            assert_agrees(&what, &expected, &trace);
            let border = expected
                .hops
                .iter()
                .find(|h| h.node == "nkbr")
                .unwrap_or_else(|| panic!("{what}: no border hop in {expected:?}"));
            assert_eq!(border.address, inside, "{what}");
            if dst == "175.45.179.1" {
                assert_eq!(
                    expected.end,
                    PathEnd::Dropped {
                        node: "nkbr".into(),
                        silent_from: border.ttl + 1
                    },
                    "{what}"
                );
                assert!(!trace.reached(), "{what}");
            }
        }
    }
}

#[test]
fn expected_path_sees_ecmp_marks_and_third_party_addresses() {
    let Some(tb) = Testbed::shared() else { return };
    // Different flows from devp take both aggregation routers.
    let mut aggs = BTreeSet::new();
    for sport in 40000..40032u16 {
        let hops = tb
            .expected_path("devp", ip("175.45.176.1"), &FlowQuery::udp(sport, 33435))
            .unwrap();
        aggs.insert(hops[1].node.clone());
    }
    assert_eq!(
        aggs,
        BTreeSet::from(["deagg1".to_owned(), "deagg2".to_owned()])
    );
    // An explicit mark overrides the computed one at jpgw.
    for (mark, agg) in [(1, "jpagg1"), (2, "jpagg2")] {
        let flow = FlowQuery::icmp_echo(7).mark_at("jpgw", mark);
        let hops = tb.expected_path("jpvp", ip("175.45.176.1"), &flow).unwrap();
        assert_eq!(hops[1].node, agg);
    }
    // TTK answers jpvp from its Arelion-facing address (icmp_errors_use_inbound_ifaddr=0,
    // return path via Arelion), although the probe came in from Lumen.
    let hops = tb
        .expected_path("jpvp", ip("175.45.177.1"), &FlowQuery::udp(40000, 33435))
        .unwrap();
    let ttk = hops.iter().find(|h| h.node == "ttk").unwrap();
    let ttk_node = &tb.manifest().nodes["ttk"];
    assert_eq!(
        ttk.address,
        ttk_node.interface_towards("arelion").unwrap().address
    );
    let before = &hops[hops.iter().position(|h| h.node == "ttk").unwrap() - 1];
    assert_eq!(before.node, "lumen");
    assert_eq!(hops.last().unwrap().address, ip("175.45.177.1"));
}

#[test]
fn manifest_describes_every_link_from_both_ends() {
    let Some(tb) = Testbed::shared() else { return };
    let m = tb.manifest();
    assert_eq!(m.nodes.len(), 22);
    for (name, node) in &m.nodes {
        assert_eq!(node.netns, format!("{}-{name}", m.id));
        for i in &node.interfaces {
            let peer = &m.nodes[&i.peer_node];
            let back = peer.interface(&i.peer_interface).unwrap();
            assert_eq!(back.peer_node, *name);
            assert_eq!(back.peer_interface, i.name);
            let link = Ipv4Net::new(i.address, i.prefix_len).unwrap().trunc();
            assert!(link.contains(&back.address), "{name}/{}", i.name);
        }
    }
    // The kernel agrees: every interface exists with its address.
    for (name, node) in &m.nodes {
        let out = tb.exec(name, &["ip", "-br", "-4", "addr"]).unwrap();
        for i in &node.interfaces {
            assert!(
                out.lines().any(|l| l.starts_with(&i.name)
                    && l.contains(&format!("{}/{}", i.address, i.prefix_len))
                    && l.contains("UP")),
                "{name}: {} missing in\n{out}",
                i.name
            );
        }
    }
    assert_eq!(m.vp_address("devp"), Some(ip("88.198.10.2")));
    assert_eq!(m.node_of_address(m.collector.address), Some("coll"));
    assert_eq!(m.node_of_address(m.dns.address), Some("dns"));
    let exact = tb
        .exec("cu", &["sysctl", "-n", "net.ipv4.icmp_ratelimit"])
        .unwrap();
    assert_eq!(exact.trim(), "0", "shared testbed has exact ICMP limits");
}

#[test]
fn exact_icmp_limits_answer_every_probe() {
    if !require_tools(&["traceroute"]) {
        return;
    }
    let Some(tb) = Testbed::shared() else { return };
    // 10 probes at once to one router (arelion, hop 4 from devp) and to the target:
    // with the kernel's default limits only a burst of 6 would be answered.
    for ttl in ["4", "7"] {
        let args = [
            "traceroute",
            "-n",
            "-q",
            "10",
            "-N",
            "10",
            "-f",
            ttl,
            "-m",
            ttl,
            "-w",
            "1",
            "175.45.176.1",
        ];
        let out = tb.exec("devp", &args).unwrap();
        let hop = &parse_traceroute(&out)[0];
        assert_eq!(hop.replies.len(), 10, "{out}");
    }
}
