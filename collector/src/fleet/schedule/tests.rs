//! The scheduler with simulated fleets: agents work their booked rounds, send what their
//! paths cost, and ask again after each upload, as the collector's upload handler makes
//! them do.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// The cost an agent is booked at before its results have measured it.
const DEFAULT_COST: u64 = 64;

/// The target /22 as four /24s; the first has two known live hosts.
fn targets() -> Vec<TargetNet> {
    split_into_24s(&["175.45.176.0/22".parse().unwrap()])
        .into_iter()
        .enumerate()
        .map(|(i, net)| TargetNet {
            net,
            live: if i == 0 {
                vec![
                    "175.45.176.7".parse().unwrap(),
                    "175.45.176.9".parse().unwrap(),
                ]
            } else {
                Vec::new()
            },
        })
        .collect()
}

struct SimAgent {
    id: String,
    vantage: Vantage,
    /// Probes it really sends per target (paths from one AS are about as long: a per-AS
    /// length plus a little per agent).
    true_cost: u64,
    measured: Option<u64>,
    booked: Option<u64>,
    idle_until: Option<u64>,
}

/// What a simulation saw, from round `from` on.
#[derive(Debug, Default)]
struct Figures {
    rounds: u64,
    /// (vantage, prefix) pairs present in the fleet.
    pairs: usize,
    /// Rounds in which every pair was traced.
    fully_covered_rounds: u64,
    /// Fewest pairs covered in one round.
    min_pairs_covered: usize,
    /// Most probes into one prefix in one round.
    max_probes: u64,
    /// Mean probes into a prefix per round.
    mean_probes: f64,
    /// Longest run of rounds a pair went untraced.
    longest_gap: u64,
    /// Work items done per agent.
    work_per_agent: BTreeMap<String, u64>,
    /// Duplicate traces: a pair traced twice in one round.
    duplicates: u64,
}

fn fleet(agents: usize, ases: u32, seed: u64) -> Vec<SimAgent> {
    (0..agents)
        .map(|i| {
            let asn = 64_500 + u32::try_from(i).unwrap() % ases;
            let per_as = 24 + mix(u64::from(asn) ^ seed) % 33;
            SimAgent {
                id: format!("agent-{i:05}"),
                vantage: Vantage::As(asn),
                true_cost: per_as + mix(i as u64) % 5,
                measured: None,
                booked: None,
                idle_until: None,
            }
        })
        .collect()
}

fn simulate(agents: &mut [SimAgent], budget: Budget, rounds: u64, from: u64) -> Figures {
    let targets = targets();
    let mut calendar = Calendar::new(budget, 7, targets.clone());
    let vantages: BTreeSet<&Vantage> = agents.iter().map(|a| &a.vantage).collect();
    calendar.set_vantages(vantages.len() as u64);
    let mut work: BTreeMap<String, Vec<Booking>> = BTreeMap::new();
    let pairs: BTreeSet<(Vantage, Ipv4Net)> = agents
        .iter()
        .flat_map(|a| targets.iter().map(|t| (a.vantage.clone(), t.net)))
        .collect();
    let mut last_traced: BTreeMap<(Vantage, Ipv4Net), u64> = BTreeMap::new();
    let mut f = Figures {
        pairs: pairs.len(),
        min_pairs_covered: usize::MAX,
        ..Figures::default()
    };
    let mut total_probes = 0u64;
    // Everyone uploads its first (unscheduled) round in round 0 and asks.
    let mut asking: Vec<usize> = (0..agents.len()).collect();
    for round in 0..rounds {
        if round > 0 {
            let mut spent: BTreeMap<Ipv4Net, u64> = BTreeMap::new();
            let mut covered: BTreeSet<(Vantage, Ipv4Net)> = BTreeSet::new();
            asking.clear();
            for (i, a) in agents.iter_mut().enumerate() {
                if a.booked == Some(round) {
                    for b in work.remove(&a.id).unwrap_or_default() {
                        *spent.entry(b.net).or_default() += a.true_cost;
                        if !covered.insert((a.vantage.clone(), b.net)) && round >= from {
                            f.duplicates += 1;
                        }
                        if round >= from {
                            *f.work_per_agent.entry(a.id.clone()).or_default() += 1;
                        }
                    }
                    a.measured = Some(a.true_cost);
                    a.booked = None;
                    asking.push(i);
                } else if a.booked.is_none() && a.idle_until.is_none_or(|u| u <= round) {
                    asking.push(i);
                }
            }
            for pair in &covered {
                last_traced.insert(pair.clone(), round);
            }
            // The overspend of this round weighs on the next one's budget.
            for t in &targets {
                let actual = spent.get(&t.net).copied().unwrap_or(0);
                calendar.set_overspend(t.net, actual.saturating_sub(budget.probes_per_round()));
            }
            if round >= from {
                f.rounds += 1;
                f.min_pairs_covered = f.min_pairs_covered.min(covered.len());
                if covered.len() == pairs.len() {
                    f.fully_covered_rounds += 1;
                }
                for t in &targets {
                    let p = spent.get(&t.net).copied().unwrap_or(0);
                    f.max_probes = f.max_probes.max(p);
                    total_probes += p;
                }
                for pair in &pairs {
                    let gap = round - last_traced.get(pair).copied().unwrap_or(0);
                    f.longest_gap = f.longest_gap.max(gap);
                }
            }
            calendar.forget_before(round + 1);
        }
        // Uploads arrive in an order that changes every round.
        asking.sort_by_key(|&i| mix(round ^ mix(i as u64)));
        for &i in &asking {
            let a = &mut agents[i];
            let request = Request {
                agent: &a.id,
                vantage: &a.vantage,
                cost: a.measured.unwrap_or(DEFAULT_COST),
                now_round: round,
                not_before: 0,
            };
            match calendar.next_slot(&request) {
                Slot::Work { round, bookings } => {
                    a.booked = Some(round);
                    work.insert(a.id.clone(), bookings);
                }
                Slot::Idle { until } => a.idle_until = Some(until),
            }
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    {
        f.mean_probes = total_probes as f64 / (f.rounds as f64 * targets.len() as f64);
    }
    f
}

fn print(what: &str, agents: usize, budget: Budget, f: &Figures) {
    println!(
        "{what}: {agents} agents, {} (AS, /24) pairs, round {} s, cap {} probe/s per /24 \
         ({} probes per round): {}/{} rounds fully covered, fewest pairs in a round {}, \
         longest gap {} rounds, probes per /24 per round mean {:.0} max {} ({:.2} probe/s), \
         duplicate traces {}",
        f.pairs,
        budget.round_secs,
        budget.cap_pps,
        budget.probes_per_round(),
        f.fully_covered_rounds,
        f.rounds,
        f.min_pairs_covered,
        f.longest_gap,
        f.mean_probes,
        f.max_probes,
        f.max_probes as f64 / f64::from(budget.round_secs),
        f.duplicates,
    );
}

/// An hour's round: the cap (3600 probes per /24) fits one trace from each of 50 ASes.
const ROOMY: Budget = Budget {
    round_secs: 3600,
    cap_pps: 1.0,
};

fn roomy(agents: usize) -> Figures {
    let mut fleet = fleet(agents, 50, 1);
    let f = simulate(&mut fleet, ROOMY, 30, 2);
    print("roomy", agents, ROOMY, &f);
    assert_eq!(
        f.fully_covered_rounds, f.rounds,
        "every (AS, /24) pair is traced every round"
    );
    assert_eq!(f.duplicates, 0, "no pair is traced twice in a round");
    assert!(f.max_probes <= ROOMY.probes_per_round(), "{f:?}");
    f
}

#[test]
fn ten_agents_cover_their_ten_ases_every_round_under_the_cap() {
    let f = roomy(10);
    assert_eq!(f.pairs, 10 * 4);
}

#[test]
fn a_hundred_agents_cover_fifty_ases_every_round_under_the_cap() {
    let f = roomy(100);
    assert_eq!(f.pairs, 50 * 4);
}

#[test]
fn five_thousand_agents_send_what_a_hundred_do() {
    let hundred = roomy(100);
    let many = roomy(5000);
    assert_eq!(many.pairs, 50 * 4);
    // Same ASes, same paths: the fleet's probes into each /24 do not grow with its size
    // (agents of one AS differ by a few probes per trace).
    let ratio = many.mean_probes / hundred.mean_probes;
    assert!((0.95..=1.05).contains(&ratio), "{ratio}");
}

/// A quarter-hour round: the cap (900 probes per /24) fits about 20 of the 50 ASes.
const TIGHT: Budget = Budget {
    round_secs: 900,
    cap_pps: 1.0,
};

#[test]
fn a_tight_budget_is_never_exceeded_and_every_pair_still_gets_its_turn() {
    for agents in [10, 100, 5000] {
        let mut fleet = fleet(agents, 50, 2);
        let f = simulate(&mut fleet, TIGHT, 40, 5);
        print("tight", agents, TIGHT, &f);
        assert!(f.max_probes <= TIGHT.probes_per_round(), "{f:?}");
        assert_eq!(f.duplicates, 0);
        // 50 ASes of at most 64 probes (the cost booked before it is measured) fit in 4
        // rounds of 900 probes: every pair is traced at least once every 4 rounds.
        assert!(f.longest_gap <= 4, "longest gap {}", f.longest_gap);
        assert!(
            f.min_pairs_covered * 4 >= f.pairs,
            "{}",
            f.min_pairs_covered
        );
        if agents == 10 {
            assert_eq!(f.fully_covered_rounds, f.rounds, "10 ASes fit");
        }
    }
}

#[test]
fn agents_of_one_as_take_turns() {
    // 10 ASes of 10 agents each: 1 agent per AS works a round, each in turn.
    let mut fleet = fleet(100, 10, 3);
    let f = simulate(&mut fleet, ROOMY, 42, 2);
    print("turns", 100, ROOMY, &f);
    let counts: BTreeSet<u64> = f.work_per_agent.values().copied().collect();
    assert_eq!(f.work_per_agent.len(), 100, "every agent worked");
    // 40 rounds, 10 agents per AS, 4 /24s per turn: 4 turns each, 16 traces.
    assert_eq!(counts, BTreeSet::from([16]), "{:?}", f.work_per_agent);
}

#[test]
fn overspend_is_taken_off_the_next_round() {
    let budget = Budget {
        round_secs: 100,
        cap_pps: 1.0,
    };
    let targets = targets();
    let net = targets[0].net;
    let mut c = Calendar::new(budget, 0, targets);
    c.set_overspend(net, 60);
    let v = Vantage::As(1);
    let slot = c.next_slot(&Request {
        agent: "a",
        vantage: &v,
        cost: 50,
        now_round: 10,
        not_before: 0,
    });
    let Slot::Work { round, bookings } = slot else {
        panic!("{slot:?}")
    };
    // Round 11 has 100 - 60 = 40 probes left for the overspent /24: not enough for 50.
    assert_eq!(round, 11);
    assert!(bookings.iter().all(|b| b.net != net), "{bookings:?}");
    assert_eq!(bookings.len(), 3);
}

#[test]
fn an_agent_costing_more_than_a_round_is_paused() {
    let budget = Budget {
        round_secs: 60,
        cap_pps: 0.5,
    };
    let mut c = Calendar::new(budget, 0, targets());
    let v = Vantage::Unknown("a".into());
    let slot = c.next_slot(&Request {
        agent: "a",
        vantage: &v,
        cost: 31,
        now_round: 3,
        not_before: 0,
    });
    assert_eq!(
        slot,
        Slot::Idle {
            until: 3 + IDLE_ROUNDS
        }
    );
}

#[test]
fn live_addresses_are_preferred_and_others_rotate() {
    let t = targets();
    for round in 0..10 {
        let a = t[0].address(round, 7);
        assert!(t[0].live.contains(&a), "{a}");
        let b = t[1].address(round, 7);
        assert!(t[1].net.contains(&b) && b != t[1].net.network() && b != t[1].net.broadcast());
    }
    assert_ne!(t[1].address(0, 7), t[1].address(1, 7));
    let host: Ipv4Net = "175.45.176.9/32".parse().unwrap();
    let only = TargetNet {
        net: host,
        live: vec![],
    };
    assert_eq!(only.address(5, 1), host.network());
}

#[test]
fn prefixes_split_into_24s() {
    let got = split_into_24s(&[
        "175.45.176.0/23".parse().unwrap(),
        "175.45.178.0/28".parse().unwrap(),
        "175.45.176.0/24".parse().unwrap(),
    ]);
    let want: Vec<Ipv4Net> = ["175.45.176.0/24", "175.45.177.0/24", "175.45.178.0/28"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        slash24("175.45.177.200".parse().unwrap()),
        "175.45.177.0/24".parse::<Ipv4Net>().unwrap()
    );
}

#[test]
fn an_agent_is_booked_its_own_interval_apart() {
    let budget = Budget {
        round_secs: 60,
        cap_pps: 5.0,
    };
    let mut c = Calendar::new(budget, 7, targets());
    let v = Vantage::As(64_500);
    // An agent whose interval is three rounds asks right after each booked round.
    let mut booked = Vec::new();
    let mut last: Option<u64> = None;
    let mut now = 10;
    for _ in 0..4 {
        let slot = c.next_slot(&Request {
            agent: "slow",
            vantage: &v,
            cost: 40,
            now_round: now,
            not_before: last.map_or(0, |l| l + 3),
        });
        let Slot::Work { round, .. } = slot else {
            panic!("no work for an agent that fits: {slot:?}");
        };
        booked.push(round);
        last = Some(round);
        now = round;
    }
    assert_eq!(booked, vec![11, 14, 17, 20]);
}
