//! What becomes of the traces of one /24 that are parked at their gap limit.
//!
//! Pure logic: the engine describes a /24 (its horizon, whether pilots make sense,
//! how many of its traces still run) and its parked traces; [`Exploration::decide`]
//! gives each parked trace its [`Fate`], and the engine applies it.
//!
//! Silence past the gap limit is ambiguous (see [`crate::probing::trace`]): the end of the
//! path, or routers that rate-limit their ICMP errors. Two things can tell them
//! apart, and a parked trace waits for neither longer than a bounded time:
//!
//! * Other traces of the /24 get answers deeper than the horizon: the trace resumes.
//!   It waits for that at most [`patience`] (a few timeouts) after it parked, never
//!   for the whole survey: traces that have not started yet may be minutes away.
//! * When no trace of the /24 has found the end of its path, up to
//!   [`PILOTS_PER_PREFIX`] parked traces (the deepest first) are pushed one TTL at a
//!   time, up to one more gap limit. If the pilots find no answer, the /24 is silent
//!   past its horizon: every parked trace stops with `gap_limit` at once, and so does
//!   every trace that parks later at the same horizon, without pilots of its own. A
//!   /24 behind a silent border thus costs its traces' probes up to the gap limit plus
//!   a few pilots' probes, and about one gap limit of timeouts.

use std::time::Duration;

use tokio::time::Instant;

/// Parked traces of a /24 pushed one TTL further at a time when nothing is known
/// yet about how deep its paths go.
pub const PILOTS_PER_PREFIX: usize = 3;

/// How many probe timeouts a parked trace waits at most for other traces of its
/// /24 to show that deeper TTLs answer.
pub const PATIENCE_IN_TIMEOUTS: u32 = 3;

/// How long a parked trace waits at most for other traces' progress.
pub fn patience(timeout: Duration) -> Duration {
    timeout * PATIENCE_IN_TIMEOUTS
}

/// A parked trace as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedTrace {
    /// The engine's index of the trace.
    pub id: usize,
    /// The TTL it parked at.
    pub ttl: u8,
    /// Whether it is within its gap limit when silence counts only above the horizon.
    pub may_resume: bool,
    /// Whether it may still be pushed one TTL further as a pilot.
    pub can_force: bool,
    /// When it parked.
    pub parked_since: Instant,
}

/// What the engine knows about the /24 besides its parked traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixFacts {
    /// The deepest hop from which any trace of the /24 got an answer.
    pub horizon: u8,
    /// Whether pilots make sense: several traces of this /24 in the run (a lone
    /// trace keeps the plain gap limit) and none has found the end of its path.
    pub may_pilot: bool,
    /// Traces of the /24 waiting to start or probing, pilots not counted.
    pub others_live: usize,
    /// Pilots of the current exploration that are probing now.
    pub pilots_probing: usize,
}

/// What becomes of one parked trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Deeper TTLs answer for its /24: probe on ([`crate::probing::trace::Trace::resume`]).
    Resume,
    /// Push it one TTL further ([`crate::probing::trace::Trace::force_step`]).
    Pilot,
    /// Stay parked, until this deadline at most (none while pilots explore: they
    /// end within one gap limit of timeouts).
    Wait(Option<Instant>),
    /// Stop with `gap_limit` ([`crate::probing::trace::Trace::give_up`]).
    GiveUp,
}

/// The pilots of one /24 at its current horizon, kept from one engine turn to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exploration {
    horizon: u8,
    pilots: Vec<usize>,
    /// The pilots went as far as they may and found nothing past the horizon.
    silent_past_horizon: bool,
}

impl Exploration {
    /// Starts over when the horizon moved: what the pilots found was about a
    /// shallower one.
    pub fn follow(&mut self, horizon: u8) {
        if horizon != self.horizon {
            *self = Self {
                horizon,
                ..Self::default()
            };
        }
    }

    /// The traces recruited as pilots at the current horizon.
    pub fn pilots(&self) -> &[usize] {
        &self.pilots
    }

    /// Whether the pilots found the /24 silent past its current horizon.
    pub fn is_silent_past_horizon(&self) -> bool {
        self.silent_past_horizon
    }

    /// The fate of every parked trace of the /24, in the order given. Call
    /// [`Self::follow`] with `facts.horizon` first.
    pub fn decide(
        &mut self,
        facts: &PrefixFacts,
        parked: &[ParkedTrace],
        patience: Duration,
        now: Instant,
    ) -> Vec<Fate> {
        debug_assert_eq!(facts.horizon, self.horizon, "call follow() first");
        let mut fates: Vec<Option<Fate>> = parked
            .iter()
            .map(|p| p.may_resume.then_some(Fate::Resume))
            .collect();
        let pushed = if facts.may_pilot && !self.silent_past_horizon {
            self.push_pilots(parked, &mut fates)
        } else {
            0
        };
        if facts.may_pilot && !self.pilots.is_empty() && pushed == 0 && facts.pilots_probing == 0 {
            self.silent_past_horizon = true;
        }
        let exploring = pushed > 0 || facts.pilots_probing > 0;
        parked
            .iter()
            .zip(fates)
            .map(|(p, fate)| {
                fate.unwrap_or_else(|| self.fate_of_waiting(p, facts, exploring, patience, now))
            })
            .collect()
    }

    /// Pushes the pilots that may go further and recruits new ones (the deepest
    /// parked traces first) up to [`PILOTS_PER_PREFIX`]. Returns how many it pushed.
    fn push_pilots(&mut self, parked: &[ParkedTrace], fates: &mut [Option<Fate>]) -> usize {
        let mut pushed = 0;
        for (p, fate) in parked.iter().zip(fates.iter_mut()) {
            if fate.is_none() && p.can_force && self.pilots.contains(&p.id) {
                *fate = Some(Fate::Pilot);
                pushed += 1;
            }
        }
        let mut recruits: Vec<usize> = (0..parked.len())
            .filter(|&k| {
                fates[k].is_none() && parked[k].can_force && !self.pilots.contains(&parked[k].id)
            })
            .collect();
        recruits.sort_by_key(|&k| std::cmp::Reverse(parked[k].ttl));
        let room = PILOTS_PER_PREFIX.saturating_sub(self.pilots.len());
        for k in recruits.into_iter().take(room) {
            self.pilots.push(parked[k].id);
            fates[k] = Some(Fate::Pilot);
            pushed += 1;
        }
        pushed
    }

    /// A parked trace that neither resumes nor pilots: stops once the pilots found
    /// silence, waits for pilots still exploring, and otherwise waits for other
    /// traces of the /24 only while some run and only for `patience`.
    fn fate_of_waiting(
        &self,
        p: &ParkedTrace,
        facts: &PrefixFacts,
        exploring: bool,
        patience: Duration,
        now: Instant,
    ) -> Fate {
        if self.silent_past_horizon {
            return Fate::GiveUp;
        }
        if exploring {
            return Fate::Wait(None);
        }
        let deadline = p.parked_since + patience;
        if facts.others_live == 0 || now >= deadline {
            Fate::GiveUp
        } else {
            Fate::Wait(Some(deadline))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use nkpath_proto::{Reply, StopReason};

    use super::*;
    use crate::probing::trace::{ReplyClass, Trace, TraceSettings, Want};

    const TIMEOUT: Duration = Duration::from_secs(2);

    fn parked(id: usize, ttl: u8, at: Instant) -> ParkedTrace {
        ParkedTrace {
            id,
            ttl,
            may_resume: false,
            can_force: true,
            parked_since: at,
        }
    }

    fn facts(
        horizon: u8,
        may_pilot: bool,
        others_live: usize,
        pilots_probing: usize,
    ) -> PrefixFacts {
        PrefixFacts {
            horizon,
            may_pilot,
            others_live,
            pilots_probing,
        }
    }

    #[test]
    fn a_trace_within_the_gap_of_the_horizon_resumes() {
        let now = Instant::now();
        let mut e = Exploration::default();
        e.follow(9);
        let p = ParkedTrace {
            may_resume: true,
            ..parked(0, 12, now)
        };
        let fates = e.decide(&facts(9, true, 5, 0), &[p], patience(TIMEOUT), now);
        assert_eq!(fates, [Fate::Resume]);
        assert!(e.pilots().is_empty(), "a resumed trace is not a pilot");
    }

    #[test]
    fn the_deepest_parked_traces_pilot_at_once_and_the_others_wait_for_them() {
        let now = Instant::now();
        let mut e = Exploration::default();
        e.follow(7);
        // Other traces of the /24 still run: pilots start anyway, without waiting.
        let traces: Vec<ParkedTrace> = [12, 13, 12, 14, 12]
            .iter()
            .enumerate()
            .map(|(id, &ttl)| parked(id, ttl, now))
            .collect();
        let fates = e.decide(&facts(7, true, 200, 0), &traces, patience(TIMEOUT), now);
        assert_eq!(
            fates,
            [
                Fate::Pilot,
                Fate::Pilot,
                Fate::Wait(None),
                Fate::Pilot,
                Fate::Wait(None)
            ]
        );
        assert_eq!(e.pilots(), [3, 1, 0]);
        // Later turns: the pilots probe; the waiting traces wait past their patience,
        // because the pilots' verdict comes within one gap limit of timeouts.
        let later = now + patience(TIMEOUT) * 2;
        let fates = e.decide(
            &facts(7, true, 200, 3),
            &[traces[2], traces[4]],
            patience(TIMEOUT),
            later,
        );
        assert_eq!(fates, [Fate::Wait(None), Fate::Wait(None)]);
    }

    #[test]
    fn when_the_pilots_find_nothing_every_parked_trace_stops_at_once() {
        let now = Instant::now();
        let mut e = Exploration::default();
        e.follow(7);
        let pilot = parked(0, 12, now);
        let fates = e.decide(&facts(7, true, 0, 0), &[pilot], patience(TIMEOUT), now);
        assert_eq!(fates, [Fate::Pilot]);
        // The pilot went one more gap limit and parked again, exhausted; two other
        // traces parked meanwhile, and many traces still run.
        let exhausted = ParkedTrace {
            can_force: false,
            ..parked(0, 17, now)
        };
        let others = [parked(1, 12, now), parked(2, 12, now)];
        let all = [exhausted, others[0], others[1]];
        let fates = e.decide(&facts(7, true, 200, 0), &all, patience(TIMEOUT), now);
        // Two recruits: the exploration is not over until they are exhausted too.
        assert_eq!(fates, [Fate::Wait(None), Fate::Pilot, Fate::Pilot]);
        let all = [
            exhausted,
            ParkedTrace {
                can_force: false,
                ..parked(1, 17, now)
            },
            ParkedTrace {
                can_force: false,
                ..parked(2, 17, now)
            },
            parked(3, 12, now),
        ];
        let fates = e.decide(&facts(7, true, 200, 0), &all, patience(TIMEOUT), now);
        assert_eq!(fates, [Fate::GiveUp; 4]);
        assert!(e.is_silent_past_horizon());
        // A trace that parks later at the same horizon stops without pilots or waiting.
        let fates = e.decide(
            &facts(7, true, 100, 0),
            &[parked(4, 12, now)],
            patience(TIMEOUT),
            now,
        );
        assert_eq!(fates, [Fate::GiveUp]);
    }

    #[test]
    fn a_deeper_answer_starts_a_new_exploration() {
        let now = Instant::now();
        let mut e = Exploration::default();
        e.follow(7);
        e.decide(
            &facts(7, true, 0, 0),
            &[parked(0, 12, now)],
            patience(TIMEOUT),
            now,
        );
        let exhausted = ParkedTrace {
            can_force: false,
            ..parked(0, 17, now)
        };
        e.decide(&facts(7, true, 0, 0), &[exhausted], patience(TIMEOUT), now);
        assert!(e.is_silent_past_horizon());
        e.follow(8);
        assert!(!e.is_silent_past_horizon());
        assert!(e.pilots().is_empty());
        let fates = e.decide(
            &facts(8, true, 10, 0),
            &[parked(5, 13, now)],
            patience(TIMEOUT),
            now,
        );
        assert_eq!(fates, [Fate::Pilot]);
    }

    #[test]
    fn without_pilots_a_trace_waits_for_others_only_while_they_run_and_only_so_long() {
        let now = Instant::now();
        let mut e = Exploration::default();
        e.follow(9);
        let p = parked(0, 14, now);
        // A /24 whose paths end (a trace reached its target): no pilots.
        let fates = e.decide(&facts(9, false, 30, 0), &[p], patience(TIMEOUT), now);
        assert_eq!(fates, [Fate::Wait(Some(now + patience(TIMEOUT)))]);
        assert!(e.pilots().is_empty());
        let fates = e.decide(
            &facts(9, false, 30, 0),
            &[p],
            patience(TIMEOUT),
            now + patience(TIMEOUT),
        );
        assert_eq!(fates, [Fate::GiveUp], "patience is over");
        let fates = e.decide(&facts(9, false, 0, 0), &[p], patience(TIMEOUT), now);
        assert_eq!(fates, [Fate::GiveUp], "nothing runs that could show more");
        assert!(!e.is_silent_past_horizon());
    }

    /// How a simulated survey of one /24 went.
    struct Outcome {
        stop_reasons: Vec<StopReason>,
        probes: usize,
        last_probe: Instant,
        end: Instant,
    }

    /// A /24 behind a silent border, as the engine runs it: `n` traces start one
    /// after another, hops 1..=`border` answer, nothing deeper does; one probe may
    /// leave per 10 ms of a simulated clock.
    fn survey_of_a_silent_slash24(n: usize, border: u8) -> Outcome {
        let settings = TraceSettings::SURVEY;
        let start = Instant::now();
        let mut now = start;
        let mut traces: Vec<Trace> = (0..n)
            .map(|k| Trace::new(Ipv4Addr::new(175, 45, 179, k as u8), settings))
            .collect();
        // One probe per 10 ms: traces start as the rate lets them, not all at once.
        let step = Duration::from_millis(10);
        let mut started = 0;
        let mut pending: HashMap<usize, (u16, u8)> = HashMap::new();
        let mut exploration = Exploration::default();
        let mut horizon = 0;
        let mut end = start;
        let mut last_probe = start;
        for _ in 0..1_000_000 {
            if started < n {
                started += 1;
            }
            // Replies to what was sent one step ago (the hops answer at once).
            for (k, (id, ttl)) in pending.drain() {
                if ttl <= border {
                    let reply = Reply {
                        address: Ipv4Addr::new(10, 0, 0, ttl),
                        rtt_us: 1,
                        reply_ttl: 60,
                        icmp_type: Some(11),
                        icmp_code: Some(0),
                        tcp_flags: None,
                        quoted_ttl: Some(1),
                        mpls_labels: Vec::new(),
                    };
                    traces[k].reply(id, reply, ReplyClass::Transit);
                    horizon = horizon.max(ttl);
                }
            }
            let mut live = 0;
            let mut parked = Vec::new();
            let mut sent = false;
            for (k, trace) in traces.iter_mut().enumerate().take(started) {
                trace.expire(now);
                match trace.want(now) {
                    Want::Send { ttl } if !sent => {
                        pending.insert(k, (trace.next_identity(), ttl));
                        trace.sent(ttl, now);
                        last_probe = now;
                        sent = true;
                        live += 1;
                    }
                    Want::Send { .. } | Want::Wait(_) => live += 1,
                    Want::Parked => parked.push(k),
                    Want::Done => {}
                }
            }
            live += n - started;
            exploration.follow(horizon);
            let pilots_probing = exploration
                .pilots()
                .iter()
                .filter(|&&k| !traces[k].is_parked() && traces[k].stop_reason().is_none())
                .count();
            let views: Vec<ParkedTrace> = parked
                .iter()
                .map(|&k| ParkedTrace {
                    id: k,
                    ttl: traces[k].ttl(),
                    may_resume: traces[k].may_resume(horizon),
                    can_force: traces[k].can_force(),
                    parked_since: traces[k].parked_since().unwrap(),
                })
                .collect();
            let f = facts(horizon, true, live - pilots_probing, pilots_probing);
            let fates = exploration.decide(&f, &views, patience(settings.timeout), now);
            for (&k, fate) in parked.iter().zip(fates) {
                match fate {
                    Fate::Resume => assert!(traces[k].resume(horizon)),
                    Fate::Pilot => traces[k].force_step(),
                    Fate::Wait(_) => {}
                    Fate::GiveUp => {
                        traces[k].give_up();
                        end = now;
                    }
                }
            }
            if traces.iter().all(|t| t.stop_reason().is_some()) {
                return Outcome {
                    stop_reasons: traces.iter().map(|t| t.stop_reason().unwrap()).collect(),
                    probes: traces.iter().map(Trace::probes_sent).sum(),
                    last_probe,
                    end,
                };
            }
            now += step;
        }
        panic!("the survey of the /24 never ended");
    }

    #[test]
    fn a_silent_slash24_ends_on_the_gap_limit_one_timeout_after_its_last_probe() {
        let (n, border) = (256, 7);
        let gap = TraceSettings::SURVEY.gap_limit;
        let outcome = survey_of_a_silent_slash24(n, border);
        assert!(
            outcome
                .stop_reasons
                .iter()
                .all(|r| *r == StopReason::GapLimit),
            "{:?}",
            outcome.stop_reasons
        );
        // Every trace probes to the gap limit past the border; the pilots one more
        // gap limit each, and no other trace goes further.
        let per_trace = usize::from(border + gap);
        let pilots = PILOTS_PER_PREFIX * usize::from(gap);
        assert_eq!(outcome.probes, n * per_trace + pilots);
        // The last trace stops once its last probe timed out (plus the simulation's
        // step), not after waiting for others or for its time budget.
        let tail = outcome.end - outcome.last_probe;
        assert!(
            tail <= TraceSettings::SURVEY.timeout + Duration::from_millis(10),
            "the last trace ended {tail:?} after the last probe"
        );
    }
}
