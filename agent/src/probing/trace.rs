//! The state of one Paris traceroute: which TTL to probe next, what came back,
//! and when to stop.
//!
//! This is pure logic: the engine tells a [`Trace`] what it sent, what matched and
//! what time it is; the trace answers what it wants to send next. TTLs are probed
//! in order because the stop rules (destination reached, unreachable, gap limit)
//! depend on the answers at lower TTLs; many traces run side by side and the
//! engine interleaves them in random order.
//!
//! Silence is ambiguous: a TTL with no answer may lie beyond the end of the path,
//! or at a router that rate-limits its ICMP errors (Linux sends about one per
//! second per destination). So a trace that reaches its gap limit is *parked*,
//! not stopped: the engine resumes it when other traces toward the same /24 show
//! that deeper TTLs do answer (its *horizon*), and stops it with `gap_limit` when
//! nothing deeper shows up in time ([`crate::probing::parking`] decides, /24 by /24). Silent
//! TTLs at or below the horizon do not count toward the gap.
//!
//! With a stop set ([`crate::probing::stop_set`]) a trace may start deeper than the first
//! TTL ([`Trace::start_at`]): once its start TTL is resolved it probes backward,
//! one TTL at a time, until its own reply at some TTL lets it take the hops below
//! from other traces ([`StopCheck`]), then goes on forward from its start TTL.

use std::net::Ipv4Addr;
use std::time::Duration;

use std::collections::BTreeMap;

use nkpath_proto::{Hop, Probe, Reply, StopReason};
use tokio::time::Instant;

/// How one trace probes. Validated by [`TraceSettings::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSettings {
    /// Probes per TTL at most.
    pub attempts: u8,
    /// Send every attempt even after a reply (traceroute style, to show several
    /// RTTs per hop); otherwise the next TTL follows the first reply (scamper style).
    pub all_attempts: bool,
    /// How long to wait for the reply to one probe.
    pub timeout: Duration,
    /// Consecutive TTLs without any reply before giving up.
    pub gap_limit: u8,
    /// The first TTL probed.
    pub first_ttl: u8,
    /// The last TTL probed.
    pub max_ttl: u8,
    /// Most probes one trace may send, whatever else happens.
    pub probe_budget: u16,
    /// Longest one trace may run, from its first probe.
    pub time_budget: Duration,
}

impl TraceSettings {
    /// Survey defaults: one attempt per hop, 2 s, gap limit 5, max TTL 32.
    pub const SURVEY: Self = Self {
        attempts: 1,
        all_attempts: false,
        timeout: Duration::from_secs(2),
        gap_limit: 5,
        first_ttl: 1,
        max_ttl: 32,
        probe_budget: 256,
        time_budget: Duration::from_mins(5),
    };

    /// Defaults of the interactive `trace` command: three attempts per hop, all sent.
    pub const INTERACTIVE: Self = Self {
        attempts: 3,
        all_attempts: true,
        ..Self::SURVEY
    };

    /// Checks the settings; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10).contains(&self.attempts) {
            return Err(format!("--attempts must be 1..=10 (got {})", self.attempts));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_mins(1) {
            return Err(format!(
                "--timeout must be 1 ms..=60 s (got {:?})",
                self.timeout
            ));
        }
        if !(1..=32).contains(&self.gap_limit) {
            return Err(format!(
                "--gap-limit must be 1..=32 (got {})",
                self.gap_limit
            ));
        }
        if !(1..=64).contains(&self.max_ttl) {
            return Err(format!("--max-ttl must be 1..=64 (got {})", self.max_ttl));
        }
        if self.first_ttl == 0 || self.first_ttl > self.max_ttl {
            return Err(format!(
                "--first-ttl must be 1..=max-ttl ({}) (got {})",
                self.max_ttl, self.first_ttl
            ));
        }
        if self.probe_budget == 0 {
            return Err("the probe budget must be at least 1".into());
        }
        Ok(())
    }
}

/// What a reply says about the path, decided by the engine from the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    /// A router on the way: the probe's TTL expired there.
    Transit,
    /// An ICMP unreachable from a hop that is not the target (filtering, no route).
    Unreachable,
    /// The target itself answered (echo reply, port unreachable, SYN-ACK, RST…).
    Reached,
}

/// How many hops away the node that sent `reply` to a probe with TTL `probe_ttl`
/// is, for the horizon of the probe's /24. An ICMP error quotes the probe's TTL as it
/// was when the error was made: a time exceeded quotes 1 (the hop is the probe's
/// TTL), but an unreachable can come from a router the probe passed with TTL to
/// spare: a last-hop router answers "host unreachable" only after its ARP timeout, to
/// whichever probe is queued then, and that may be a probe sent several TTLs later.
/// Such an answer says nothing about deeper hops. Never deeper than `probe_ttl`.
pub fn answering_hop(probe_ttl: u8, reply: &Reply) -> u8 {
    let spare = reply.quoted_ttl.map_or(0, |q| q.saturating_sub(1));
    probe_ttl.saturating_sub(spare).max(1)
}

/// What a trace does below the TTL where its own reply met the stop set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Below {
    /// Hops to take from other traces, marked inherited.
    pub inherited: Vec<Hop>,
    /// TTLs the trace must still probe itself (no single interface known there:
    /// a load balancer, or too little seen).
    pub to_probe: Vec<u8>,
}

/// Whether a trace probing backward may stop, asked by [`Trace::want_with`]:
/// its own probe with `ttl` got a time exceeded from `address`.
pub trait StopCheck {
    /// What to do below `ttl` when the trace may stop probing backward one TTL
    /// at a time there; `None` to probe the TTL below and ask again.
    fn inherit_below(&self, ttl: u8, address: Ipv4Addr) -> Option<Below>;
}

/// No stop set: a trace probes every TTL itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStopSet;

impl StopCheck for NoStopSet {
    fn inherit_below(&self, _ttl: u8, _address: Ipv4Addr) -> Option<Below> {
        None
    }
}

/// A trace probing below its start TTL.
#[derive(Debug)]
struct Backward {
    /// The start TTL and its `sent_at_ttl`, to go on forward from.
    resume: (u8, u8),
    /// Still probing one TTL down at a time until the stop set answers.
    searching: bool,
    /// TTLs left to probe once it has, popped from the back.
    to_probe: Vec<u8>,
}

/// What the trace wants the engine to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Send a probe with this TTL (then call [`Trace::sent`]).
    Send {
        /// TTL of the probe.
        ttl: u8,
    },
    /// Nothing to send until a reply comes or this deadline passes.
    Wait(Instant),
    /// The gap limit is reached; the engine decides whether to resume
    /// ([`Trace::resume`], [`Trace::force_step`]) or stop ([`Trace::give_up`]).
    Parked,
    /// The trace has stopped.
    Done,
}

/// What happened to a reply handed to [`Trace::reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Recorded as the answer to its probe.
    Recorded,
    /// A second answer to a probe already answered: ignored.
    Duplicate,
    /// The probe had already timed out: ignored.
    Late,
    /// No probe of this trace has that identity.
    Unknown,
}

#[derive(Debug)]
struct SentProbe {
    ttl: u8,
    attempt: u8,
    sent_at: Instant,
    reply: Option<(Reply, ReplyClass)>,
    timed_out: bool,
}

impl SentProbe {
    fn resolved(&self) -> bool {
        self.reply.is_some() || self.timed_out
    }
}

/// One Paris traceroute in progress. Probe identities are 1, 2, 3… in sending order.
#[derive(Debug)]
pub struct Trace {
    target: Ipv4Addr,
    settings: TraceSettings,
    probes: Vec<SentProbe>,
    ttl: u8,
    sent_at_ttl: u8,
    last_answered_ttl: u8,
    /// When the trace parked at its gap limit, while it is parked.
    parked_since: Option<Instant>,
    forced_steps: u8,
    first_sent: Option<Instant>,
    stop: Option<StopReason>,
    /// Whether the backward probing below the start TTL is decided (always,
    /// for a trace that starts at the first TTL).
    backward_decided: bool,
    /// While probing below the start TTL.
    backward: Option<Backward>,
    /// Hops taken from other traces, below the TTL where backward probing stopped.
    inherited: Vec<Hop>,
}

impl Trace {
    /// A trace toward `target` that has sent nothing yet.
    pub fn new(target: Ipv4Addr, settings: TraceSettings) -> Self {
        Self {
            target,
            settings,
            probes: Vec::new(),
            ttl: settings.first_ttl,
            sent_at_ttl: 0,
            last_answered_ttl: 0,
            parked_since: None,
            forced_steps: 0,
            first_sent: None,
            stop: None,
            backward_decided: true,
            backward: None,
            inherited: Vec::new(),
        }
    }

    /// Starts the trace at `ttl` instead of the first TTL (a TTL its survey
    /// found shared by its /24's paths); TTLs below are probed backward as far
    /// as the stop set requires. Only before the first probe; clamped to the
    /// settings' range.
    pub fn start_at(&mut self, ttl: u8) {
        if self.first_sent.is_some() {
            return;
        }
        let ttl = ttl.clamp(self.settings.first_ttl, self.settings.max_ttl);
        self.ttl = ttl;
        // The TTLs below were answered by the traces that settled them: silence
        // at the start TTL counts toward the gap from there, as it would have.
        self.last_answered_ttl = ttl - 1;
        self.backward_decided = ttl == self.settings.first_ttl;
    }

    /// Whether the trace has sent no probe yet.
    pub fn unstarted(&self) -> bool {
        self.first_sent.is_none()
    }

    /// The target address.
    pub fn target(&self) -> Ipv4Addr {
        self.target
    }

    /// The settings in force.
    pub fn settings(&self) -> &TraceSettings {
        &self.settings
    }

    /// Why the trace stopped, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Probes sent so far.
    pub fn probes_sent(&self) -> usize {
        self.probes.len()
    }

    /// When the first probe left, if one did.
    pub fn first_sent(&self) -> Option<Instant> {
        self.first_sent
    }

    /// The identity the next probe will carry.
    pub fn next_identity(&self) -> u16 {
        (self.probes.len() + 1) as u16
    }

    /// The TTL of the probe with this identity.
    pub fn ttl_of(&self, identity: u16) -> Option<u8> {
        self.probe(identity).map(|p| p.ttl)
    }

    /// When the probe with this identity left.
    pub fn sent_at(&self, identity: u16) -> Option<Instant> {
        self.probe(identity).map(|p| p.sent_at)
    }

    fn probe(&self, identity: u16) -> Option<&SentProbe> {
        usize::from(identity)
            .checked_sub(1)
            .and_then(|i| self.probes.get(i))
    }

    /// The attempt number of the probe with this identity.
    pub fn attempt_of(&self, identity: u16) -> Option<u8> {
        self.probe(identity).map(|p| p.attempt)
    }

    fn at_current_ttl(&self) -> impl Iterator<Item = &SentProbe> {
        // Not only the trailing probes: after backward probing, the start TTL's
        // probes lie before those of the TTLs below it.
        let ttl = self.ttl;
        self.probes.iter().rev().filter(move |p| p.ttl == ttl)
    }

    /// Decides what to do next at time `now`, advancing TTLs and stopping as the
    /// rules say. Call it after every event.
    pub fn want(&mut self, now: Instant) -> Want {
        self.want_with(now, &NoStopSet)
    }

    /// Like [`Self::want`], with a stop set that may end backward probing.
    pub fn want_with(&mut self, now: Instant, stops: &impl StopCheck) -> Want {
        loop {
            if self.stop.is_some() {
                return Want::Done;
            }
            if self.parked_since.is_some() {
                return Want::Parked;
            }
            if let Some(first) = self.first_sent
                && now.saturating_duration_since(first) >= self.settings.time_budget
            {
                self.stop = Some(StopReason::TimeBudget);
                continue;
            }
            let answered = self.at_current_ttl().any(|p| p.reply.is_some());
            // The earliest deadline of the probes still waiting at this TTL
            // (called for every active trace on every turn: no allocation).
            let earliest_deadline = self
                .at_current_ttl()
                .filter(|p| !p.resolved())
                .map(|p| p.sent_at + self.settings.timeout)
                .min();
            let more_attempts = self.sent_at_ttl < self.settings.attempts;
            let may_send = more_attempts
                && (self.settings.all_attempts || (earliest_deadline.is_none() && !answered));
            if may_send {
                if self.probes.len() >= usize::from(self.settings.probe_budget) {
                    self.stop = Some(StopReason::ProbeBudget);
                    continue;
                }
                return Want::Send { ttl: self.ttl };
            }
            if let Some(deadline) = earliest_deadline {
                let budget_end = self.first_sent.map(|f| f + self.settings.time_budget);
                return Want::Wait(budget_end.map_or(deadline, |end| deadline.min(end)));
            }
            if self.backward.is_some() {
                self.finish_backward_hop(stops);
            } else if !self.backward_decided {
                self.decide_backward(stops);
            } else {
                self.finish_hop(now);
            }
        }
    }

    /// The start TTL is resolved: ask the stop set, then probe below as it says
    /// (or one TTL down at a time when it knows nothing yet). The start TTL's
    /// forward rules apply once backward probing is over.
    fn decide_backward(&mut self, stops: &impl StopCheck) {
        self.backward_decided = true;
        self.backward = Some(Backward {
            resume: (self.ttl, self.sent_at_ttl),
            searching: true,
            to_probe: Vec::new(),
        });
        self.finish_backward_hop(stops);
    }

    fn finish_backward_hop(&mut self, stops: &impl StopCheck) {
        let below = self.stop_here(stops);
        let first_ttl = self.settings.first_ttl;
        let ttl = self.ttl;
        let Some(back) = self.backward.as_mut() else {
            return;
        };
        if back.searching {
            if let Some(below) = below {
                back.searching = false;
                back.to_probe = below.to_probe;
                // Highest TTL first, as the search went.
                back.to_probe.sort_unstable();
                self.inherited = below.inherited;
            } else if ttl > first_ttl {
                self.ttl -= 1;
                self.sent_at_ttl = 0;
                return;
            }
        }
        let back = self.backward.as_mut().expect("checked above");
        if !back.searching
            && let Some(next) = back.to_probe.pop()
        {
            self.ttl = next;
            self.sent_at_ttl = 0;
        } else if let Some(Backward {
            resume: (ttl, sent),
            ..
        }) = self.backward.take()
        {
            self.ttl = ttl;
            self.sent_at_ttl = sent;
        }
    }

    /// What the stop set says below the current TTL, if this trace's own time
    /// exceeded there is in it (only while searching).
    fn stop_here(&self, stops: &impl StopCheck) -> Option<Below> {
        if !self.backward.as_ref().is_some_and(|b| b.searching) {
            return None;
        }
        let transit = self.at_current_ttl().find_map(|p| match &p.reply {
            Some((reply, ReplyClass::Transit)) => Some(reply.address),
            _ => None,
        })?;
        stops.inherit_below(self.ttl, transit)
    }

    /// Records that the probe asked for by [`Want::Send`] left at `now` with
    /// identity [`Self::next_identity`].
    pub fn sent(&mut self, ttl: u8, now: Instant) {
        debug_assert_eq!(ttl, self.ttl);
        self.first_sent.get_or_insert(now);
        self.sent_at_ttl += 1;
        self.probes.push(SentProbe {
            ttl,
            attempt: self.sent_at_ttl,
            sent_at: now,
            reply: None,
            timed_out: false,
        });
    }

    /// Hands the trace a reply matched to the probe `identity`.
    pub fn reply(&mut self, identity: u16, reply: Reply, class: ReplyClass) -> Disposition {
        let Some(probe) = usize::from(identity)
            .checked_sub(1)
            .and_then(|i| self.probes.get_mut(i))
        else {
            return Disposition::Unknown;
        };
        if probe.reply.is_some() {
            Disposition::Duplicate
        } else if probe.timed_out {
            Disposition::Late
        } else {
            probe.reply = Some((reply, class));
            Disposition::Recorded
        }
    }

    /// Marks the probes whose wait has ended by `now` as unanswered and
    /// returns how many it marked.
    pub fn expire(&mut self, now: Instant) -> usize {
        self.expire_noting(now, &mut Vec::new())
    }

    /// Like [`Self::expire`], and appends the TTL of each probe it marked to `silent`.
    pub fn expire_noting(&mut self, now: Instant, silent: &mut Vec<u8>) -> usize {
        let timeout = self.settings.timeout;
        let mut expired = 0;
        for probe in self.probes.iter_mut().filter(|p| !p.resolved()) {
            if probe.sent_at + timeout <= now {
                probe.timed_out = true;
                silent.push(probe.ttl);
                expired += 1;
            }
        }
        expired
    }

    /// Stops the trace from outside (shutdown).
    pub fn cancel(&mut self) {
        self.stop.get_or_insert(StopReason::Cancelled);
    }

    /// Every probe of the current TTL is resolved (by `now`): apply the stop rules.
    fn finish_hop(&mut self, now: Instant) {
        let classes: Vec<ReplyClass> = self
            .at_current_ttl()
            .filter_map(|p| p.reply.as_ref().map(|(_, c)| *c))
            .collect();
        if classes.contains(&ReplyClass::Reached) {
            self.stop = Some(StopReason::Reached);
        } else if classes.contains(&ReplyClass::Unreachable) {
            self.stop = Some(StopReason::Unreachable);
        } else {
            if !classes.is_empty() {
                self.last_answered_ttl = self.ttl;
            }
            if self.gap(0) >= self.settings.gap_limit {
                self.parked_since = Some(now);
            } else {
                self.next_ttl();
            }
        }
    }

    /// Consecutive silent TTLs that count: those above both the last answered
    /// TTL and the horizon.
    fn gap(&self, horizon: u8) -> u8 {
        self.ttl.saturating_sub(self.last_answered_ttl.max(horizon))
    }

    fn next_ttl(&mut self) {
        if self.ttl >= self.settings.max_ttl {
            self.stop = Some(StopReason::MaxTtl);
        } else {
            self.ttl += 1;
            self.sent_at_ttl = 0;
        }
    }

    /// Whether the trace is parked at its gap limit.
    pub fn is_parked(&self) -> bool {
        self.parked_since.is_some() && self.stop.is_none()
    }

    /// Since when the trace has been parked, while it is.
    pub fn parked_since(&self) -> Option<Instant> {
        self.parked_since.filter(|_| self.stop.is_none())
    }

    /// The TTL the trace is at (the last probed, when parked).
    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    /// Resumes a parked trace if, counting silence only above `horizon` (the
    /// deepest TTL that answered for this target's /24), it is within its gap
    /// limit. Returns whether it resumed.
    pub fn resume(&mut self, horizon: u8) -> bool {
        if !self.may_resume(horizon) {
            return false;
        }
        self.parked_since = None;
        self.next_ttl();
        true
    }

    /// Whether [`Self::resume`] with this horizon would resume the trace.
    pub fn may_resume(&self, horizon: u8) -> bool {
        self.is_parked() && self.gap(horizon) < self.settings.gap_limit
    }

    /// Whether [`Self::force_step`] may still push this trace: a pilot goes at
    /// most one more gap limit past where it parked first.
    pub fn can_force(&self) -> bool {
        self.is_parked() && self.forced_steps < self.settings.gap_limit
    }

    /// Probes one more TTL past the gap limit: the engine's pilot when nothing
    /// is known yet about how deep the path to this /24 goes.
    pub fn force_step(&mut self) {
        if self.can_force() {
            self.forced_steps += 1;
            self.parked_since = None;
            self.next_ttl();
        }
    }

    /// Stops a parked trace: nothing deeper is known to answer.
    pub fn give_up(&mut self) {
        if self.is_parked() {
            self.stop = Some(StopReason::GapLimit);
        }
    }

    /// The hops as the wire format carries them: one entry per TTL probed or
    /// inherited, in TTL order; each probe of this trace with its send time
    /// relative to the first probe.
    pub fn hops(&self) -> Vec<Hop> {
        let Some(start) = self.first_sent else {
            return Vec::new();
        };
        let mut hops: BTreeMap<u8, Hop> = BTreeMap::new();
        for probe in &self.probes {
            let hop = hops.entry(probe.ttl).or_insert_with(|| Hop {
                ttl: probe.ttl,
                probes: Vec::new(),
                inherited: None,
            });
            hop.probes.push(Probe {
                attempt: probe.attempt,
                sent_at_us: probe.sent_at.saturating_duration_since(start).as_micros() as u64,
                reply: probe.reply.as_ref().map(|(r, _)| r.clone()),
            });
        }
        for hop in &self.inherited {
            // A TTL this trace probed itself is never replaced by another's.
            hops.entry(hop.ttl).or_insert_with(|| hop.clone());
        }
        hops.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(addr: [u8; 4], icmp_type: u8) -> Reply {
        Reply {
            address: Ipv4Addr::from(addr),
            rtt_us: 1000,
            reply_ttl: 60,
            icmp_type: Some(icmp_type),
            icmp_code: Some(0),
            tcp_flags: None,
            quoted_ttl: Some(1),
            mpls_labels: Vec::new(),
        }
    }

    const TARGET: Ipv4Addr = Ipv4Addr::new(175, 45, 176, 1);

    /// Runs a trace against a scripted path: `path[ttl-1]` is the answer at that TTL.
    fn run(settings: TraceSettings, path: &[Option<ReplyClass>]) -> Trace {
        let mut trace = Trace::new(TARGET, settings);
        let mut now = Instant::now();
        for _ in 0..10_000 {
            match trace.want(now) {
                Want::Done => return trace,
                Want::Parked => trace.give_up(),
                Want::Send { ttl } => {
                    let id = trace.next_identity();
                    trace.sent(ttl, now);
                    if let Some(Some(class)) = path.get(usize::from(ttl) - 1) {
                        let r = reply([10, 0, 0, ttl], 11);
                        assert_eq!(trace.reply(id, r, *class), Disposition::Recorded);
                    }
                }
                Want::Wait(deadline) => {
                    now = deadline;
                    trace.expire(now);
                }
            }
        }
        panic!("trace never finished");
    }

    use ReplyClass::{Reached, Transit, Unreachable};

    #[test]
    fn the_answering_hop_comes_from_the_quoted_ttl() {
        let mut r = reply([10, 0, 0, 6], 11);
        assert_eq!(answering_hop(6, &r), 6, "time exceeded quotes TTL 1");
        r.quoted_ttl = Some(0);
        assert_eq!(answering_hop(6, &r), 6, "never deeper than the probe's TTL");
        // Host unreachable from the router at hop 6 after its ARP timeout, to a
        // probe sent with TTL 10 (it arrived there with 5 and was decremented).
        r.icmp_type = Some(3);
        r.quoted_ttl = Some(4);
        assert_eq!(answering_hop(10, &r), 7);
        // An echo reply quotes nothing.
        r.icmp_type = Some(0);
        r.quoted_ttl = None;
        assert_eq!(answering_hop(9, &r), 9);
    }

    #[test]
    fn stops_when_reached() {
        let trace = run(
            TraceSettings::SURVEY,
            &[Some(Transit), Some(Transit), Some(Reached)],
        );
        assert_eq!(trace.stop_reason(), Some(StopReason::Reached));
        let hops = trace.hops();
        assert_eq!(hops.iter().map(|h| h.ttl).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(hops.iter().all(|h| h.probes.len() == 1));
    }

    #[test]
    fn stops_on_unreachable_from_a_hop() {
        let trace = run(TraceSettings::SURVEY, &[Some(Transit), Some(Unreachable)]);
        assert_eq!(trace.stop_reason(), Some(StopReason::Unreachable));
        assert_eq!(trace.hops().len(), 2);
    }

    #[test]
    fn gap_limit_counts_consecutive_silent_ttls() {
        let mut path = vec![Some(Transit), None, None, Some(Transit)];
        path.extend([None; 10]);
        let trace = run(TraceSettings::SURVEY, &path);
        assert_eq!(trace.stop_reason(), Some(StopReason::GapLimit));
        // TTL 4 answered, then 5 silent TTLs: 5..=9.
        assert_eq!(trace.hops().last().unwrap().ttl, 9);
    }

    #[test]
    fn max_ttl_ends_a_path_that_keeps_answering() {
        let settings = TraceSettings {
            max_ttl: 6,
            ..TraceSettings::SURVEY
        };
        let trace = run(settings, &[Some(Transit); 10]);
        assert_eq!(trace.stop_reason(), Some(StopReason::MaxTtl));
        assert_eq!(trace.hops().len(), 6);
    }

    #[test]
    fn retries_silent_hops_up_to_the_attempts() {
        let settings = TraceSettings {
            attempts: 3,
            gap_limit: 2,
            ..TraceSettings::SURVEY
        };
        let trace = run(settings, &[Some(Transit), None, None]);
        let hops = trace.hops();
        assert_eq!(hops[0].probes.len(), 1, "an answered hop is not retried");
        assert_eq!(hops[1].probes.len(), 3);
        assert_eq!(
            hops[1].probes.iter().map(|p| p.attempt).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(trace.stop_reason(), Some(StopReason::GapLimit));
    }

    #[test]
    fn all_attempts_sends_every_attempt() {
        let trace = run(TraceSettings::INTERACTIVE, &[Some(Transit), Some(Reached)]);
        let hops = trace.hops();
        assert!(hops.iter().all(|h| h.probes.len() == 3));
        assert_eq!(trace.stop_reason(), Some(StopReason::Reached));
    }

    #[test]
    fn probe_budget_bounds_every_trace() {
        let settings = TraceSettings {
            probe_budget: 4,
            ..TraceSettings::SURVEY
        };
        let trace = run(settings, &[Some(Transit); 32]);
        assert_eq!(trace.stop_reason(), Some(StopReason::ProbeBudget));
        assert_eq!(trace.probes_sent(), 4);
    }

    #[test]
    fn time_budget_bounds_every_trace() {
        let settings = TraceSettings {
            time_budget: Duration::from_secs(5),
            gap_limit: 32,
            ..TraceSettings::SURVEY
        };
        let trace = run(settings, &[None; 32]);
        assert_eq!(trace.stop_reason(), Some(StopReason::TimeBudget));
        assert!(trace.probes_sent() <= 3);
    }

    #[test]
    fn late_duplicate_and_unknown_replies_are_not_recorded() {
        let mut trace = Trace::new(TARGET, TraceSettings::SURVEY);
        let now = Instant::now();
        assert_eq!(trace.want(now), Want::Send { ttl: 1 });
        trace.sent(1, now);
        assert_eq!(
            trace.reply(7, reply([1, 1, 1, 1], 11), Transit),
            Disposition::Unknown
        );
        assert_eq!(
            trace.reply(0, reply([1, 1, 1, 1], 11), Transit),
            Disposition::Unknown
        );
        let later = now + Duration::from_secs(3);
        trace.expire(later);
        assert_eq!(
            trace.reply(1, reply([1, 1, 1, 1], 11), Transit),
            Disposition::Late
        );
        assert_eq!(trace.want(later), Want::Send { ttl: 2 });
        trace.sent(2, later);
        assert_eq!(
            trace.reply(2, reply([1, 1, 1, 2], 11), Transit),
            Disposition::Recorded
        );
        assert_eq!(
            trace.reply(2, reply([1, 1, 1, 2], 11), Transit),
            Disposition::Duplicate
        );
        let hops = trace.hops();
        assert!(hops[0].probes[0].reply.is_none());
        assert_eq!(hops[1].probes[0].sent_at_us, 3_000_000);
    }

    #[test]
    fn waits_for_the_probe_in_flight() {
        let mut trace = Trace::new(TARGET, TraceSettings::SURVEY);
        let now = Instant::now();
        trace.want(now);
        trace.sent(1, now);
        assert_eq!(trace.want(now), Want::Wait(now + Duration::from_secs(2)));
    }

    #[test]
    fn a_parked_trace_resumes_below_the_horizon() {
        let settings = TraceSettings {
            gap_limit: 3,
            ..TraceSettings::SURVEY
        };
        let mut trace = Trace::new(TARGET, settings);
        let mut now = Instant::now();
        // TTL 1 answers, TTLs 2..=4 are silent: parked at 4.
        loop {
            match trace.want(now) {
                Want::Send { ttl } => {
                    let id = trace.next_identity();
                    trace.sent(ttl, now);
                    if ttl == 1 {
                        trace.reply(id, reply([10, 0, 0, 1], 11), Transit);
                    }
                }
                Want::Wait(at) => {
                    now = at;
                    trace.expire(now);
                }
                Want::Parked => break,
                Want::Done => panic!("stopped instead of parking"),
            }
        }
        assert!(trace.is_parked());
        assert_eq!(trace.ttl(), 4);
        // Other traces saw answers up to TTL 2 only: still within the gap, stays parked.
        assert!(!trace.resume(1));
        assert!(trace.is_parked());
        // Answers were seen at TTL 6: the silence at 2..=4 was rate limiting.
        assert!(trace.resume(6));
        assert_eq!(trace.want(now), Want::Send { ttl: 5 });
    }

    #[test]
    fn force_step_probes_past_the_gap_and_give_up_stops() {
        let settings = TraceSettings {
            gap_limit: 2,
            max_ttl: 4,
            ..TraceSettings::SURVEY
        };
        let mut trace = Trace::new(TARGET, settings);
        let mut now = Instant::now();
        let mut forced = 0;
        loop {
            match trace.want(now) {
                Want::Send { ttl } => trace.sent(ttl, now),
                Want::Wait(at) => {
                    now = at;
                    trace.expire(now);
                }
                Want::Parked if trace.can_force() => {
                    forced += 1;
                    trace.force_step();
                }
                Want::Parked => trace.give_up(),
                Want::Done => break,
            }
        }
        assert_eq!(
            forced, 2,
            "parked at TTL 2, pushed to 3 and 4, no further than one more gap limit"
        );
        assert_eq!(trace.ttl(), 4);
        assert_eq!(trace.stop_reason(), Some(StopReason::GapLimit));

        let settings = TraceSettings {
            gap_limit: 2,
            max_ttl: 3,
            ..TraceSettings::SURVEY
        };
        let mut trace = Trace::new(TARGET, settings);
        loop {
            match trace.want(now) {
                Want::Send { ttl } => trace.sent(ttl, now),
                Want::Wait(at) => {
                    now = at;
                    trace.expire(now);
                }
                Want::Parked => trace.force_step(),
                Want::Done => break,
            }
        }
        assert_eq!(trace.stop_reason(), Some(StopReason::MaxTtl));

        let mut trace = Trace::new(TARGET, settings);
        while trace.want(now) != Want::Parked {
            match trace.want(now) {
                Want::Send { ttl } => trace.sent(ttl, now),
                Want::Wait(at) => {
                    now = at;
                    trace.expire(now);
                }
                _ => unreachable!(),
            }
        }
        trace.give_up();
        assert_eq!(trace.stop_reason(), Some(StopReason::GapLimit));
        assert_eq!(trace.want(now), Want::Done);
    }

    /// A stop set that knows the interface `10.0.0.<ttl>` at the TTLs in `known`.
    struct Known(Vec<u8>);

    impl StopCheck for Known {
        fn inherit_below(&self, ttl: u8, address: Ipv4Addr) -> Option<Below> {
            if !(self.0.contains(&ttl) && address == Ipv4Addr::new(10, 0, 0, ttl)) {
                return None;
            }
            // Every known TTL below is inherited, the others probed.
            let (known, unknown): (Vec<u8>, Vec<u8>) = (1..ttl).partition(|t| self.0.contains(t));
            Some(Below {
                to_probe: unknown,
                inherited: known
                    .into_iter()
                    .map(|t| Hop {
                        ttl: t,
                        probes: Vec::new(),
                        inherited: Some(nkpath_proto::InheritedFrom {
                            target: Ipv4Addr::new(175, 45, 176, 200),
                            flow: nkpath_proto::FlowId::Icmp {
                                icmp_type: 8,
                                icmp_code: 0,
                                checksum: 1,
                            },
                        }),
                    })
                    .collect(),
            })
        }
    }

    /// Runs a trace started at `start` against a path of transit hops `10.0.0.<ttl>`
    /// up to `reach` (the target answers there); returns it and the TTLs in
    /// sending order.
    fn run_from(start: u8, reach: u8, silent: &[u8], stops: &Known) -> (Trace, Vec<u8>) {
        let mut trace = Trace::new(TARGET, TraceSettings::SURVEY);
        trace.start_at(start);
        let mut now = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..1000 {
            match trace.want_with(now, stops) {
                Want::Done => return (trace, sent),
                Want::Parked => trace.give_up(),
                Want::Send { ttl } => {
                    let id = trace.next_identity();
                    trace.sent(ttl, now);
                    sent.push(ttl);
                    if silent.contains(&ttl) {
                        continue;
                    }
                    let (r, class) = if ttl >= reach {
                        (reply(TARGET.octets(), 0), Reached)
                    } else {
                        (reply([10, 0, 0, ttl], 11), Transit)
                    };
                    trace.reply(id, r, class);
                }
                Want::Wait(at) => {
                    now = at;
                    trace.expire(now);
                }
            }
        }
        panic!("trace never finished");
    }

    #[test]
    fn a_trace_started_deeper_probes_backward_until_the_stop_set() {
        // Its own reply at the start TTL is known, and every TTL below.
        let (trace, sent) = run_from(4, 6, &[], &Known(vec![1, 2, 3, 4]));
        assert_eq!(sent, [4, 5, 6]);
        assert_eq!(trace.stop_reason(), Some(StopReason::Reached));
        let hops = trace.hops();
        assert_eq!(
            hops.iter().map(|h| h.ttl).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6]
        );
        let inherited: Vec<u8> = hops
            .iter()
            .filter(|h| h.inherited.is_some())
            .map(|h| h.ttl)
            .collect();
        assert_eq!(inherited, [1, 2, 3]);

        // TTL 2 has no single interface (a load balancer): probed, the rest inherited.
        let (trace, sent) = run_from(4, 6, &[], &Known(vec![1, 3, 4]));
        assert_eq!(sent, [4, 2, 5, 6]);
        let inherited: Vec<u8> = trace
            .hops()
            .iter()
            .filter(|h| h.inherited.is_some())
            .map(|h| h.ttl)
            .collect();
        assert_eq!(inherited, [1, 3]);

        // Only TTLs 1 and 2 are known: back from 4 to 2, then on from 5.
        let (trace, sent) = run_from(4, 6, &[], &Known(vec![1, 2]));
        assert_eq!(sent, [4, 3, 2, 5, 6]);
        let hops = trace.hops();
        assert_eq!(hops.len(), 6);
        assert!(hops[0].inherited.is_some() && hops[1..].iter().all(|h| h.inherited.is_none()));

        // Nothing known (or a silent TTL in the way): back to the first TTL.
        let (trace, sent) = run_from(4, 6, &[3], &Known(vec![3]));
        assert_eq!(sent, [4, 3, 2, 1, 5, 6]);
        assert!(trace.hops().iter().all(|h| h.inherited.is_none()));

        // The target answers at the start TTL: the trace still finds the hops below.
        let (trace, sent) = run_from(4, 4, &[], &Known(vec![1, 2]));
        assert_eq!(sent, [4, 3, 2]);
        assert_eq!(trace.stop_reason(), Some(StopReason::Reached));
    }

    #[test]
    fn a_silent_start_counts_toward_the_gap_from_the_start_ttl() {
        let (trace, sent) = run_from(4, 64, &[4, 5, 6, 7, 8, 9, 10], &Known(vec![]));
        // Backward to TTL 1 (nothing known), then forward until 5 silent TTLs.
        assert_eq!(sent, [4, 3, 2, 1, 5, 6, 7, 8]);
        assert_eq!(trace.stop_reason(), Some(StopReason::GapLimit));
    }

    #[test]
    fn validates_settings() {
        assert!(TraceSettings::SURVEY.validate().is_ok());
        assert!(
            TraceSettings {
                attempts: 0,
                ..TraceSettings::SURVEY
            }
            .validate()
            .is_err()
        );
        assert!(
            TraceSettings {
                max_ttl: 65,
                ..TraceSettings::SURVEY
            }
            .validate()
            .is_err()
        );
        assert!(
            TraceSettings {
                first_ttl: 40,
                ..TraceSettings::SURVEY
            }
            .validate()
            .is_err()
        );
        assert!(
            TraceSettings {
                gap_limit: 0,
                ..TraceSettings::SURVEY
            }
            .validate()
            .is_err()
        );
    }
}
