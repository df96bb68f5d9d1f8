//! The decisions of the alerts, pure: which upstream set changes and which mismatches are
//! events, which events may alert (catch-up), and which runs of the command are due
//! (at most one per prefix per interval, later events coalesced into the next run).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;

/// Seconds in a day: a mismatch is new when its key had none in the day before.
pub const MISMATCH_QUIET_S: i64 = 24 * 3600;

/// The settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// An upstream is in a prefix's visible set when at least this share of the peers with a
    /// route for the prefix reach it through that upstream.
    pub min_share: f64,
    /// A new visible set counts once it has held this long (seconds); shorter flaps are no
    /// change.
    pub min_duration_s: i64,
    /// At most one run per prefix in this many seconds.
    pub rate_limit_s: i64,
    /// Events found more than this long after they happened are a backfill (history), and a
    /// gap this long since the last evaluation starts a new catch-up.
    pub max_delay_s: i64,
    /// The outage thresholds (outage starts and ends alert too).
    pub outage: crate::analysis::reachability::Settings,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_share: 0.1,
            min_duration_s: 300,
            rate_limit_s: 60,
            max_delay_s: 3600,
            outage: crate::analysis::reachability::Settings::default(),
        }
    }
}

/// The upstreams of a prefix that at least `min_share` of the peers with a route reach it
/// through (`upstreams`: upstream → peers through it).
pub fn visible_set(
    upstreams: &BTreeMap<u32, usize>,
    peers_with_route: usize,
    min_share: f64,
) -> BTreeSet<u32> {
    if peers_with_route == 0 {
        return BTreeSet::new();
    }
    #[allow(clippy::cast_precision_loss)]
    upstreams
        .iter()
        .filter(|(_, peers)| **peers as f64 >= min_share * peers_with_route as f64 && **peers > 0)
        .map(|(u, _)| *u)
        .collect()
}

/// A confirmed change of a prefix's visible upstream set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetChange {
    /// When the new set took effect (UNIX seconds).
    pub time: i64,
    /// The set before.
    pub before: BTreeSet<u32>,
    /// The set after.
    pub after: BTreeSet<u32>,
}

/// The confirmed changes of one prefix's visible set.
///
/// `samples` is the set as it changes over time (time order; each holds until the next),
/// known up to `horizon`. A set different from the confirmed one is a change once it has
/// held for `min_duration_s` (up to the next sample, or to the horizon for the last one);
/// shorter runs are flaps, no change. `confirmed` is the set confirmed before the first
/// sample (`None`: none yet, the first sample's set is taken as it is, no change). Returns
/// the changes and the set confirmed at the end.
pub fn confirmed_changes(
    confirmed: Option<BTreeSet<u32>>,
    samples: &[(i64, BTreeSet<u32>)],
    horizon: i64,
    min_duration_s: i64,
) -> (Vec<SetChange>, Option<BTreeSet<u32>>) {
    let mut confirmed = confirmed;
    let mut changes = Vec::new();
    let mut i = 0;
    while i < samples.len() {
        let (start, set) = &samples[i];
        // The run of this set: the samples after it with the same set belong to it.
        let mut j = i + 1;
        while j < samples.len() && samples[j].1 == *set {
            j += 1;
        }
        let end = samples.get(j).map_or(horizon, |(t, _)| *t);
        match &confirmed {
            None => confirmed = Some(set.clone()),
            Some(c) if c != set && end - start >= min_duration_s => {
                changes.push(SetChange {
                    time: *start,
                    before: c.clone(),
                    after: set.clone(),
                });
                confirmed = Some(set.clone());
            }
            Some(_) => {}
        }
        i = j;
    }
    (changes, confirmed)
}

/// One trace's say on a (vantage AS, /24, entry AS) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation<K> {
    /// When the trace started (UNIX seconds).
    pub time: i64,
    /// The key.
    pub key: K,
    /// The trace is a mismatch.
    pub mismatch: bool,
}

/// The mismatches that are new: no mismatch of the same key in the [`MISMATCH_QUIET_S`]
/// before. Only those at or after `from` are returned (the earlier ones only serve as the
/// day before). The returned indexes point into `observations`.
pub fn new_mismatches<K: Ord>(observations: &[Observation<K>], from: i64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..observations.len()).collect();
    order.sort_by_key(|i| observations[*i].time);
    let mut last: BTreeMap<&K, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for i in order {
        let o = &observations[i];
        if !o.mismatch {
            continue;
        }
        let new = last
            .get(&o.key)
            .is_none_or(|t| o.time - t >= MISMATCH_QUIET_S);
        if new && o.time >= from {
            out.push(i);
        }
        last.insert(&o.key, o.time);
    }
    out
}

/// Whether an event may alert: it happened at or after the catch-up start and is found
/// within the maximum delay; otherwise it is history.
pub fn alerts(event_time: i64, found_at: i64, armed_since: i64, rules: &Rules) -> bool {
    event_time >= armed_since && found_at - event_time <= rules.max_delay_s
}

/// Since when events may alert, on an evaluation at `now`: from the stored value while
/// evaluations go on without a gap longer than the maximum delay; otherwise (the first
/// evaluation, or after an outage) a catch-up starts now.
pub fn armed_since(stored: Option<(i64, i64)>, now: i64, rules: &Rules) -> i64 {
    match stored {
        Some((armed, evaluated_at)) if now - evaluated_at <= rules.max_delay_s => armed,
        _ => now,
    }
}

/// An event waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its id in the store.
    pub id: i64,
    /// The prefix its runs are grouped by.
    pub prefix: String,
    /// When it happened.
    pub time: i64,
}

/// A run of the command that is due: one prefix, every event of it waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The prefix.
    pub prefix: String,
    /// The events, oldest first (ids).
    pub events: Vec<i64>,
}

/// The runs due at `now`: per prefix with waiting events whose last run started at least
/// the rate limit ago (or never), one run with all of them. Events of a prefix that ran
/// less than the rate limit ago wait for the next run: coalesced, never dropped.
pub fn due_runs(
    pending: &[Pending],
    last_run: &BTreeMap<String, i64>,
    now: i64,
    rules: &Rules,
) -> Vec<Run> {
    let mut by_prefix: BTreeMap<&str, Vec<&Pending>> = BTreeMap::new();
    for p in pending {
        by_prefix.entry(&p.prefix).or_default().push(p);
    }
    by_prefix
        .into_iter()
        .filter(|(prefix, _)| {
            last_run
                .get(*prefix)
                .is_none_or(|t| now - t >= rules.rate_limit_s)
        })
        .map(|(prefix, mut events)| {
            events.sort_by_key(|e| (e.time, e.id));
            Run {
                prefix: prefix.to_owned(),
                events: events.iter().map(|e| e.id).collect(),
            }
        })
        .collect()
}

/// The key of an upstream set change (stable across evaluations).
pub fn change_key(prefix: Ipv4Net, change: &SetChange) -> String {
    format!("upstreams:{prefix}:{}:{}", change.time, join(&change.after))
}

/// ASNs as text: `4837 20485`.
pub fn join(set: &BTreeSet<u32>) -> String {
    set.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn visible_upstreams_need_the_share_of_peers() {
        let ups = BTreeMap::from([(4837, 9), (20485, 1)]);
        assert_eq!(visible_set(&ups, 10, 0.1), set(&[4837, 20485]));
        assert_eq!(visible_set(&ups, 10, 0.2), set(&[4837]));
        assert_eq!(visible_set(&ups, 0, 0.1), set(&[]));
        assert_eq!(visible_set(&BTreeMap::from([(1, 0)]), 4, 0.0), set(&[]));
    }

    #[test]
    fn a_set_that_holds_long_enough_is_a_change_a_flap_is_not() {
        let samples = vec![
            (0, set(&[1])),
            (100, set(&[1, 2])), // a flap: 50 s
            (150, set(&[1])),
            (1000, set(&[2])), // holds 600 s to the horizon
        ];
        let (changes, end) = confirmed_changes(Some(set(&[1])), &samples, 1600, 300);
        assert_eq!(
            changes,
            vec![SetChange {
                time: 1000,
                before: set(&[1]),
                after: set(&[2])
            }]
        );
        assert_eq!(end, Some(set(&[2])));
        // Known only up to 1200: not yet long enough, nothing confirmed.
        let (changes, end) = confirmed_changes(Some(set(&[1])), &samples, 1200, 300);
        assert!(changes.is_empty());
        assert_eq!(end, Some(set(&[1])));
        // Duration 0: every set change counts, the flap too.
        let (changes, _) = confirmed_changes(Some(set(&[1])), &samples, 1000, 0);
        assert_eq!(changes.len(), 3);
    }

    #[test]
    fn the_first_set_is_taken_as_it_is_and_equal_samples_make_one_run() {
        let samples = vec![
            (0, set(&[1])),
            (10, set(&[2])),
            (200, set(&[2])),
            (400, set(&[1])),
        ];
        let (changes, end) = confirmed_changes(None, &samples, 400, 300);
        // [2] held from 10 to 400 (two samples, one run): a change; [1] at 400 not yet.
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].time, &changes[0].before), (10, &set(&[1])));
        assert_eq!(end, Some(set(&[2])));
        assert_eq!(confirmed_changes(None, &[], 10, 0), (vec![], None));
    }

    #[test]
    fn a_mismatch_is_new_after_a_quiet_day_per_key() {
        let o = |time, key: &'static str, mismatch| Observation {
            time,
            key,
            mismatch,
        };
        let obs = vec![
            o(100, "a", true),
            o(200, "a", true),                    // same key within a day
            o(300, "b", true),                    // another key
            o(400, "a", false),                   // a match is no event
            o(200 + MISMATCH_QUIET_S, "a", true), // a day after the last one
            o(50, "c", true),                     // before `from`
        ];
        assert_eq!(new_mismatches(&obs, 60), vec![0, 2, 4]);
    }

    #[test]
    fn catch_up_and_backfill_are_history() {
        let rules = Rules::default();
        // First evaluation, or after a gap longer than the maximum delay: armed now.
        assert_eq!(armed_since(None, 5000, &rules), 5000);
        assert_eq!(armed_since(Some((10, 1000)), 1000 + 3601, &rules), 4601);
        assert_eq!(armed_since(Some((10, 1000)), 1000 + 3600, &rules), 10);
        assert!(alerts(100, 200, 100, &rules));
        assert!(!alerts(99, 200, 100, &rules), "before the catch-up start");
        assert!(
            !alerts(100, 100 + 3601, 0, &rules),
            "found too late: a backfill"
        );
    }

    #[test]
    fn one_run_per_prefix_per_minute_later_events_coalesced() {
        let rules = Rules::default();
        let p = |id, prefix: &str, time| Pending {
            id,
            prefix: prefix.into(),
            time,
        };
        let pending = vec![p(3, "a", 30), p(1, "a", 10), p(2, "b", 20)];
        // "a" ran 30 s ago: it waits; "b" never ran.
        let last = BTreeMap::from([("a".to_owned(), 970)]);
        assert_eq!(
            due_runs(&pending, &last, 1000, &rules),
            vec![Run {
                prefix: "b".into(),
                events: vec![2]
            }]
        );
        // A minute after its last run, both of a's events go in one run, oldest first.
        assert_eq!(
            due_runs(&pending, &last, 1030, &rules),
            vec![
                Run {
                    prefix: "a".into(),
                    events: vec![1, 3]
                },
                Run {
                    prefix: "b".into(),
                    events: vec![2]
                }
            ]
        );
    }
}
