//! "Parsing never panics and never trusts lengths": every truncation and
//! thousands of mutations of real replies go through the whole parse and
//! match path. Mutated datagrams are also resealed (checksums recomputed),
//! so that the damage reaches the quote and extension parsers instead of
//! stopping at the ICMP checksum. The fuzz target in `agent/fuzz` explores
//! further; this is the part that runs on every `cargo test`.

use super::extension::ORIGINAL_DATAGRAM_MIN_LEN;
use super::test_util::*;
use super::{Flow, Reply, probe_identity};

const FLOWS: [Flow; 4] = [ICMP_FLOW, UDP_FLOW, TCP_OPEN_FLOW, TCP_CLOSED_FLOW];

/// The real fixtures plus replies with MPLS extensions in both layouts.
fn inputs() -> Vec<Vec<u8>> {
    let mut inputs: Vec<Vec<u8>> = ALL_FIXTURES
        .iter()
        .map(|(_, fixture)| hex(fixture))
        .collect();
    let mut quote = hex(TIME_EXCEEDED_UDP)[28..].to_vec();
    quote.resize(ORIGINAL_DATAGRAM_MIN_LEN, 0);
    let labels = hex("2000 2f0a  000c 0101  03e9 9001  0000 1bfe");
    inputs.push(icmp_error(ROUTER, 11, 0, 32, &quote, &labels));
    inputs.push(icmp_error(ROUTER, 11, 0, 0, &quote, &labels));
    inputs
}

/// Parses, matches against every flow and formats: the whole path the
/// engine takes, which must not panic whatever the bytes.
fn exercise(datagram: &[u8]) -> bool {
    match Reply::parse(datagram) {
        Ok(reply) => {
            for flow in &FLOWS {
                for target in [TARGET, PROHIBITED] {
                    let _ = probe_identity(&reply, flow, target);
                }
            }
            !format!("{reply:?}").is_empty()
        }
        Err(error) => !error.to_string().is_empty(),
    }
}

#[test]
fn every_truncation_is_an_error() {
    for input in inputs() {
        assert!(Reply::parse(&input).is_ok());
        for len in 0..input.len() {
            // The outer total length always exceeds a strict prefix.
            assert!(
                Reply::parse(&input[..len]).is_err(),
                "prefix of {len} bytes parsed"
            );
            // And with the length fields fixed up, deeper parsers see it.
            if len >= 24 {
                let mut resealed = input[..len].to_vec();
                reseal_icmp(&mut resealed);
                exercise(&resealed);
            }
        }
    }
}

#[test]
fn single_byte_mutations_never_panic() {
    for input in inputs() {
        for position in 0..input.len() {
            let original = input[position];
            for value in [
                original ^ 0x01,
                original ^ 0x80,
                !original,
                0x00,
                0xff,
                0x04,
                0x45,
                0x4f,
            ] {
                let mut mutated = input.clone();
                mutated[position] = value;
                exercise(&mutated);
                if mutated[9] == 1 {
                    reseal_icmp(&mut mutated);
                    exercise(&mutated);
                }
            }
        }
    }
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic() {
    let inputs = inputs();
    let mut rng = Rng(0x6e6b_7061_7468);
    let mut parsed = 0;
    for _ in 0..30_000 {
        let mut datagram = inputs[rng.below(inputs.len())].clone();
        for _ in 0..=rng.below(4) {
            let position = rng.below(datagram.len());
            datagram[position] = rng.next() as u8;
        }
        match rng.below(4) {
            0 => datagram.truncate(20 + rng.below(datagram.len() - 19)),
            1 => datagram.extend((0..rng.below(200)).map(|_| rng.next() as u8)),
            _ => {}
        }
        if rng.below(4) != 0 && datagram.len() >= 24 {
            reseal_icmp(&mut datagram);
        }
        exercise(&datagram);
        parsed += usize::from(Reply::parse(&datagram).is_ok());
    }
    // The mutations must not all die at the first check, or this test
    // would prove nothing about the deeper parsers.
    assert!(parsed > 3_000, "only {parsed} mutated datagrams parsed");
}
