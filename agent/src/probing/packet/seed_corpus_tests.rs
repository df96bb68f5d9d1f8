//! The fuzz seed corpus as a test suite: real replies captured by
//! `agent/fuzz/capture/capture-seeds.sh` from Linux routers and hosts
//! answering traceroute, scamper and nkpath's own probes, plus crafted
//! MPLS replies (`crafted-*`, no Linux router sends RFC 4950 extensions).
//!
//! Seeds are named `<source>-<kind>-<n>.bin`, the kind as classified by
//! the capture's independent Python extractor, so every seed cross-checks
//! two implementations. Files of other names (added by `cargo fuzz` runs)
//! only have to parse without panicking.

use std::collections::BTreeSet;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::test_util::*;
use super::{
    Flow, ProbeIdentity, QuotedTransport, Reply, TcpFlags, UNREACHABLE_ADMIN_PROHIBITED,
    UNREACHABLE_PORT, probe_identity,
};

const SOURCES: [&str; 4] = ["traceroute-", "scamper-", "nkpath-", "crafted-"];

/// The flows `agent/fuzz/examples/emit_probes.rs` sends: (flow number, the
/// high byte of every identity; flow; target).
const CAPTURE_FLOWS: [(u16, Flow, Ipv4Addr); 5] = [
    (1, ICMP_FLOW, TARGET),
    (2, UDP_FLOW, TARGET),
    (3, TCP_OPEN_FLOW, TARGET),
    (4, TCP_CLOSED_FLOW, TARGET),
    (5, UDP_FLOW, PROHIBITED),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/reply_parser")
}

/// (file name, bytes) of every seed, sorted by name.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let entries =
        fs::read_dir(&dir).unwrap_or_else(|error| panic!("seed corpus {}: {error}", dir.display()));
    let mut seeds: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&path).unwrap(),
            )
        })
        .collect();
    seeds.sort();
    seeds
}

/// The kind name the Python extractor gives a reply.
fn kind_name(reply: &Reply) -> String {
    let quoted = |reply: &Reply| match reply.quote().map(|quote| quote.transport) {
        Some(QuotedTransport::Icmp { .. }) => "icmp",
        Some(QuotedTransport::Udp { .. }) => "udp",
        Some(QuotedTransport::Tcp { .. }) => "tcp",
        None => unreachable!(),
    };
    match reply {
        Reply::TimeExceeded { .. } => format!("time-exceeded-{}", quoted(reply)),
        Reply::DestUnreachable { icmp_code, .. } => {
            let code = match *icmp_code {
                UNREACHABLE_PORT => "port".to_owned(),
                UNREACHABLE_ADMIN_PROHIBITED => "admin-prohibited".to_owned(),
                other => format!("code{other}"),
            };
            format!("unreachable-{code}-{}", quoted(reply))
        }
        Reply::EchoReply { .. } => "echo-reply".to_owned(),
        Reply::Tcp { flags, .. } if flags.contains(TcpFlags::SYN) => "tcp-syn-ack".to_owned(),
        Reply::Tcp { .. } => "tcp-rst".to_owned(),
    }
}

#[test]
fn every_seed_parses_to_its_named_kind() {
    let mut kinds = BTreeSet::new();
    let mut with_labels = 0;
    for (name, bytes) in seeds() {
        let result = Reply::parse(&bytes);
        if !SOURCES.iter().any(|source| name.starts_with(source)) {
            continue; // added by a fuzzing run: not panicking was the test
        }
        let reply = result.unwrap_or_else(|error| panic!("{name}: {error}"));
        let kind = kind_name(&reply);
        assert!(
            name.contains(&format!("-{kind}-")) || name.starts_with("crafted-"),
            "{name} parsed as {kind}"
        );
        if let Reply::TimeExceeded {
            mpls,
            extension_error,
            ..
        } = &reply
        {
            assert_eq!(*extension_error, None, "{name}");
            with_labels += usize::from(!mpls.is_empty());
        }
        kinds.insert(kind);
    }
    for expected in [
        "time-exceeded-icmp",
        "time-exceeded-udp",
        "time-exceeded-tcp",
        "unreachable-port-udp",
        "unreachable-admin-prohibited-udp",
        "echo-reply",
        "tcp-syn-ack",
        "tcp-rst",
    ] {
        assert!(
            kinds.contains(expected),
            "no {expected} seed in {}",
            corpus_dir().display()
        );
    }
    assert_eq!(
        with_labels, 2,
        "the crafted RFC 4884 and compatibility MPLS seeds"
    );
}

/// Every reply to an nkpath probe names its probe: the identity recovered
/// is the one sent (flow number << 8 | TTL), and a time exceeded came from
/// TTL 1 while the target (or the filter in front of it) answered TTL ≥ 2.
#[test]
fn nkpath_seeds_give_back_the_identity_of_their_probe() {
    let mut answered = BTreeSet::new();
    for (name, bytes) in seeds()
        .into_iter()
        .filter(|(name, _)| name.starts_with("nkpath-"))
    {
        let reply = Reply::parse(&bytes).unwrap();
        let matches: Vec<(u16, ProbeIdentity)> = CAPTURE_FLOWS
            .iter()
            .filter_map(|(number, flow, target)| {
                Some((*number, probe_identity(&reply, flow, *target)?))
            })
            .collect();
        let [(number, identity)] = matches[..] else {
            panic!("{name} matches {matches:?}")
        };
        assert_eq!(identity.0 >> 8, number, "{name}");
        let ttl = identity.0 & 0xff;
        match reply {
            Reply::TimeExceeded { from, .. } => assert_eq!((ttl, from), (1, ROUTER), "{name}"),
            _ => assert!((2..=3).contains(&ttl), "{name}: TTL {ttl}"),
        }
        answered.insert((number, kind_name(&reply)));
    }
    for expected in [
        (1, "time-exceeded-icmp"),
        (1, "echo-reply"),
        (2, "time-exceeded-udp"),
        (2, "unreachable-port-udp"),
        (3, "time-exceeded-tcp"),
        (3, "tcp-syn-ack"),
        (4, "time-exceeded-tcp"),
        (4, "tcp-rst"),
        (5, "unreachable-admin-prohibited-udp"),
    ] {
        assert!(
            answered.contains(&(expected.0, expected.1.to_owned())),
            "no nkpath seed for {expected:?}"
        );
    }
}

/// Other tools' probes are not ours: the matcher must not claim them.
#[test]
fn other_tools_seeds_match_no_nkpath_flow() {
    for (name, bytes) in seeds()
        .into_iter()
        .filter(|(name, _)| name.starts_with("traceroute-") || name.starts_with("scamper-"))
    {
        let reply = Reply::parse(&bytes).unwrap();
        for (_, flow, target) in &CAPTURE_FLOWS {
            assert_eq!(
                probe_identity(&reply, flow, *target),
                None,
                "{name} matched {flow:?}"
            );
        }
    }
}
