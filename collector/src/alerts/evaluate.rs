//! The evaluator: reads the stored BGP state and traces, finds the events the
//! [`rules`](super::rules) make of them, and stores them with the watermark, in one
//! transaction. It depends on nothing but the store, so any input (a `bgp load`, the archive
//! sync, RIS Live) triggers it the same way.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use nkpath_proto::timestamp;
use serde_json::json;
use time::OffsetDateTime;

use super::AlertError;
use super::rules::{
    self, Observation, Rules, SetChange, alerts, armed_since, change_key, confirmed_changes,
    new_mismatches, visible_set,
};
use crate::analysis::reachability::OutageKind;
use crate::analysis::{AnalysisOptions, Analyzer, Mapper, VerdictKind};
use crate::bgp::prefix::covering;
use crate::bgp::timeline::walk_target_routes;
use crate::store::Db;
use crate::store::alerts::{AlertWatermark, NewAlertEvent};

/// What one evaluation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// New events that will alert.
    pub pending: usize,
    /// New events older than the catch-up start or found too late (stored, never sent).
    pub history: usize,
    /// Since when events alert.
    pub armed_since: i64,
    /// The data time evaluated up to.
    pub horizon: i64,
}

/// One sample of a prefix's announced upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    time: i64,
    visible: BTreeSet<u32>,
    upstreams: BTreeMap<u32, usize>,
    peers_with_route: usize,
}

/// An event ready to be stored.
struct Found {
    key: String,
    prefix: String,
    kind: &'static str,
    time: i64,
    json: serde_json::Value,
}

/// Evaluates the stored state up to `horizon` (the data time up to which it is known) at
/// wall-clock time `now`, and stores what it found (see the module docs).
pub fn evaluate(
    db: &mut Db,
    rules: &Rules,
    horizon: i64,
    now: i64,
) -> Result<Evaluation, AlertError> {
    let previous = db.alert_watermark()?;
    let armed = armed_since(
        previous.as_ref().map(|w| (w.armed_since, w.evaluated_at)),
        now,
        rules,
    );
    let horizon = previous
        .as_ref()
        .map_or(horizon, |w| w.horizon.max(horizon));
    // Runs still unconfirmed at the last horizon began at most the minimum duration before it.
    let from = previous.as_ref().map_or(horizon, |w| w.horizon) - rules.min_duration_s;
    let (mut found, sets) = upstream_events(db, rules, from, horizon)?;
    // Verdicts change only with new traces or BGP data (or a new catch-up start): analysing
    // the traces again (a BGP state with hop mapping per trace time) waits until then.
    let data_mark = db.alert_data_mark()?;
    let unchanged = previous
        .as_ref()
        .is_some_and(|w| w.armed_since == armed && w.data_mark == data_mark);
    if !unchanged {
        found.extend(mismatch_events(
            db,
            armed.max(now - rules.max_delay_s),
            now,
        )?);
    }
    // Outages are judged anew with new data, and once a minute without: time passing alone
    // moves the settled horizon, but not by much in the 5 s between evaluations.
    let minute_passed = previous
        .as_ref()
        .is_none_or(|w| w.evaluated_at / 60 != now / 60);
    if !unchanged || minute_passed {
        found.extend(outage_events(db, rules, now)?);
    }

    let mut result = Evaluation {
        armed_since: armed,
        horizon,
        ..Evaluation::default()
    };
    let tx = db.write()?;
    for f in &found {
        let alert = alerts(f.time, now, armed, rules);
        let json = f.json.to_string();
        let added = tx.insert_alert_event(&NewAlertEvent {
            key: &f.key,
            prefix: &f.prefix,
            kind: f.kind,
            time: f.time,
            found_at: now,
            json: &json,
            status: if alert { "pending" } else { "history" },
        })?;
        if added && alert {
            result.pending += 1;
        } else if added {
            result.history += 1;
        }
    }
    for (prefix, (set, since)) in &sets {
        tx.set_alert_upstream_set(prefix, &rules::join(set), *since)?;
    }
    tx.set_alert_watermark(&AlertWatermark {
        armed_since: armed,
        horizon,
        evaluated_at: now,
        data_mark,
    })?;
    tx.commit()?;
    Ok(result)
}

/// The confirmed changes of every prefix's visible upstream set in `[from, horizon]`, and
/// each prefix's confirmed set at the end (with the time it took effect).
#[allow(clippy::type_complexity)]
fn upstream_events(
    db: &Db,
    rules: &Rules,
    from: i64,
    horizon: i64,
) -> Result<(Vec<Found>, BTreeMap<String, (BTreeSet<u32>, i64)>), AlertError> {
    let target_asn = db.target()?.asn;
    let stored: BTreeMap<String, (BTreeSet<u32>, i64)> = db
        .alert_upstream_sets()?
        .into_iter()
        .map(|(p, ups, since)| {
            let set = ups
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
            (p, (set, since))
        })
        .collect();
    let mut samples: BTreeMap<Ipv4Net, Vec<Sample>> = BTreeMap::new();
    if from <= horizon {
        walk_target_routes(db, from, horizon, |t, view, _| {
            if !view.has_data() {
                return;
            }
            let mut prefixes: BTreeSet<Ipv4Net> = view.prefixes();
            prefixes.extend(samples.keys().copied());
            for prefix in prefixes {
                let announced = view.announced_upstreams(prefix, target_asn);
                let (upstreams, peers) = if announced.originated_by_target() {
                    (announced.upstreams.clone(), announced.peers_with_route)
                } else {
                    (BTreeMap::new(), 0)
                };
                let sample = Sample {
                    time: t,
                    visible: visible_set(&upstreams, peers, rules.min_share),
                    upstreams,
                    peers_with_route: peers,
                };
                let list = samples.entry(prefix).or_default();
                if list.last().is_some_and(|s| s.time == t) {
                    list.pop();
                }
                if list.last().is_none_or(|s| s.visible != sample.visible) {
                    list.push(sample);
                }
            }
        })?;
    }
    let mut found = Vec::new();
    let mut sets = stored.clone();
    for (prefix, list) in &samples {
        let key = prefix.to_string();
        let confirmed = stored.get(&key).map(|(s, _)| s.clone());
        let plain: Vec<(i64, BTreeSet<u32>)> =
            list.iter().map(|s| (s.time, s.visible.clone())).collect();
        let (changes, end) = confirmed_changes(confirmed, &plain, horizon, rules.min_duration_s);
        for change in &changes {
            let at = list
                .iter()
                .find(|s| s.time == change.time)
                .expect("a change starts at a sample");
            found.push(Found {
                key: change_key(*prefix, change),
                prefix: key.clone(),
                kind: "upstreams",
                time: change.time,
                json: upstream_json(*prefix, change, at, rules),
            });
        }
        if let Some(end) = end {
            let since = changes.last().map_or_else(
                || sets.get(&key).map_or(from, |(_, since)| *since),
                |c| c.time,
            );
            sets.insert(key, (end, since));
        }
    }
    Ok((found, sets))
}

fn upstream_json(
    prefix: Ipv4Net,
    change: &SetChange,
    at: &Sample,
    rules: &Rules,
) -> serde_json::Value {
    let appeared: Vec<u32> = change.after.difference(&change.before).copied().collect();
    let disappeared: Vec<u32> = change.before.difference(&change.after).copied().collect();
    let peers: serde_json::Map<String, serde_json::Value> = at
        .upstreams
        .iter()
        .map(|(u, n)| (format!("AS{u}"), json!(n)))
        .collect();
    json!({
        "kind": "upstreams",
        "prefix": prefix.to_string(),
        "time": timestamp::display_unix(change.time),
        "before": change.before,
        "after": change.after,
        "appeared": appeared,
        "disappeared": disappeared,
        "peers_with_route": at.peers_with_route,
        "peers_via_upstream": peers,
        "min_share": rules.min_share,
        "min_duration_s": rules.min_duration_s,
    })
}

/// New data-plane mismatches among the traces started in `[from, until]` (the day before
/// `from` is read too, to tell which are new).
fn mismatch_events(db: &Db, from: i64, until: i64) -> Result<Vec<Found>, AlertError> {
    let t = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let options = AnalysisOptions {
        since: Some(t(from - rules::MISMATCH_QUIET_S)),
        until: Some(t(until)),
        ..AnalysisOptions::default()
    };
    let traces = crate::results::stored_traces(db, options.since, options.until)?;
    let multipaths = crate::results::stored_multipath(db, options.since, options.until)?;
    let mut started = traces
        .iter()
        .map(|t| t.started_at)
        .chain(multipaths.iter().map(|m| m.started_at));
    if !started.any(|t| t.unix_timestamp() >= from) {
        return Ok(Vec::new());
    }
    // Hops are mapped with the stored BGP data and IXP table only: an alert never waits on
    // DNS lookups.
    let mapper = Mapper::new(crate::sources::ixp::stored_table(db)?, None);
    let analyses = Analyzer::new(db, mapper, options)?.analyze_all_with(traces, multipaths)?;
    // The vantage is the agent's AS; an agent whose address no data maps is a vantage of
    // its own (as in fleet scheduling).
    type Key = (String, Ipv4Net, u32);
    let mut observations: Vec<Observation<Key>> = Vec::new();
    let mut which = Vec::new();
    for (i, a) in analyses.iter().enumerate() {
        let Some(entry) = a.entry.asn else {
            continue;
        };
        let vantage = a.agent_asn.map_or_else(
            || format!("agent:{}", a.trace.agent_id),
            |asn| format!("AS{asn}"),
        );
        observations.push(Observation {
            time: a.trace.started_at.unix_timestamp(),
            key: (vantage, covering(a.trace.target, 24), entry),
            mismatch: a.verdict.kind == VerdictKind::Mismatch,
        });
        which.push(i);
    }
    Ok(new_mismatches(&observations, from)
        .into_iter()
        .map(|i| {
            let o = &observations[i];
            let a = &analyses[which[i]];
            let (vantage, net, entry) = &o.key;
            Found {
                key: format!("mismatch:{vantage}:{net}:AS{entry}:{}", o.time),
                prefix: net.to_string(),
                kind: "mismatch",
                time: o.time,
                json: json!({
                    "kind": "mismatch",
                    "time": timestamp::display_unix(o.time),
                    "vantage": vantage,
                    "vantage_as": a.agent_asn,
                    "target_24": net.to_string(),
                    "entry_as": entry,
                    "announced_prefix": a.announced_prefix().map(|p| p.prefix.to_string()),
                    "announced_upstreams": a.announced_prefix().map(|p| p.upstreams.clone()),
                    "reason": a.verdict.reason,
                    "agent": a.trace.agent_id,
                    "target": a.trace.target.to_string(),
                    "result_id": a.trace.result_id.to_string(),
                }),
            }
        })
        .collect())
}

/// Starts and ends of outages (see [`crate::analysis::reachability`]) up to `now` minus the
/// settling delay. The period read reaches back beyond the maximum delay, so an outage
/// cut by its beginning is history, never sent; a start is keyed by its time, an end by
/// its own, so a later evaluation finds each once.
fn outage_events(db: &Db, rules: &Rules, now: i64) -> Result<Vec<Found>, AlertError> {
    let s = &rules.outage;
    let from = now - rules.max_delay_s - s.settle_s - s.window_s;
    let t = |x: i64| OffsetDateTime::from_unix_timestamp(x).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let options = AnalysisOptions {
        since: Some(t(from)),
        until: Some(t(now)),
        ..AnalysisOptions::default()
    };
    let traces = crate::results::stored_traces(db, options.since, options.until)?;
    let pings = crate::results::stored_pings(db, options.since, options.until)?;
    let mapper = Mapper::new(crate::sources::ixp::stored_table(db)?, None);
    let analyses = Analyzer::new(db, mapper, options)?.analyze_all(traces)?;
    let report = crate::report::reachability::build(
        db,
        &analyses,
        &pings,
        t(from),
        t(now),
        crate::report::bins::BinSize::Seconds(3_600),
        s,
        crate::rpki::DEFAULT_MAX_RPKI_AGE_S,
        now,
    )
    .map_err(|e| AlertError::Report(e.to_string()))?;
    let mut found = Vec::new();
    for o in &report.outages {
        if o.kind == OutageKind::UnreachableWhileAnnounced {
            continue;
        }
        let mut events = vec![("outage-start", o.start)];
        events.extend(o.end.map(|e| ("outage-end", e)));
        for (kind, time) in events {
            found.push(Found {
                key: format!("{kind}:{}:{}:{time}", o.kind.name(), o.target),
                prefix: o.target.to_string(),
                kind,
                time,
                json: json!({
                    "kind": kind,
                    "outage": o.kind.name(),
                    "target_24": o.target.to_string(),
                    "time": timestamp::display_unix(time),
                    "start": timestamp::display_unix(o.start),
                    "end": o.end.map(timestamp::display_unix),
                    "agents": o.agents,
                    "vantage_ases": o.vantage_ases,
                    "peers_with_route": o.peers_with_route,
                    "full_feed_peers": o.full_feed_peers,
                    "evidence": o.evidence,
                }),
            });
        }
    }
    Ok(found)
}
