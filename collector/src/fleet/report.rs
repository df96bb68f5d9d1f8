//! `nkpath-collector fleet`: the fleet's settings, its agents (vantage AS, booked and done
//! work) and the probes sent into each target /24 per hour against the cap.

use std::collections::BTreeMap;

use nkpath_proto::timestamp;
use time::OffsetDateTime;

use super::bookkeeping::{self, to_booking, vantage_text};
use super::schedule::Budget;
use crate::Db;
use crate::report::Table;
use crate::store::DbError;
use crate::store::fleet::HourlyWork;

/// The report over the `hours` before `now`.
pub fn build(db: &Db, now: OffsetDateTime, hours: u32) -> Result<Vec<Table>, DbError> {
    let budget = bookkeeping::budget(db)?;
    let since = now - time::Duration::hours(i64::from(hours));
    let notes = vec![
        format!(
            "scheduling {}; round {} s; cap {} probe/s per /24 averaged over a round ({} probes \
             per round, {:.0} per hour)",
            if bookkeeping::enabled(db)? {
                "on"
            } else {
                "off"
            },
            budget.round_secs,
            budget.cap_pps,
            budget.probes_per_round(),
            budget.cap_pps * 3600.0
        ),
        format!(
            "work of the last {hours} h ({} to {}); probes are counted from the uploaded \
             results (trace probes and liveness pings), by the results' start time",
            timestamp::stored(since),
            timestamp::stored(now)
        ),
    ];
    let (mut agents, warnings) = agents_table(db, since, now, budget)?;
    agents.notes.clone_from(&notes);
    agents.notes.extend(warnings);
    let mut hourly = hourly_table(db, since, now, budget.cap_pps)?;
    hourly.notes = notes;
    Ok(vec![agents, hourly])
}

#[derive(Default)]
struct AgentRow {
    vantage: String,
    address: String,
    interval_s: Option<u32>,
    booked: u64,
    next_round: Option<i64>,
    traces: u64,
    probes: u64,
}

/// Agents sharing one upload address from which a warning is given: behind a proxy or a
/// NAT, their vantage points are hidden (the scheduler sees one address).
pub const SHARED_ADDRESS_WARNING: usize = 3;

/// Whether an agent of `interval_s` whose one round sends `cost` probes into a /24 can
/// follow its interval within the cap (`None`), or what the cap makes of it.
pub fn cap_fit(interval_s: u32, cost: u64, budget: Budget) -> Option<String> {
    let per_round = budget.probes_per_round();
    if cost > per_round {
        return Some(format!(
            "never: a round of it sends {cost} probes into a /24, the cap allows {per_round}              per collector round"
        ));
    }
    let allowed = budget.cap_pps * f64::from(interval_s.max(budget.round_secs));
    #[allow(
        clippy::cast_precision_loss,
        reason = "probe counts are far below 2^52"
    )]
    let over = cost as f64 > allowed;
    over.then(|| {
        format!(
            "not at its interval: a round of it sends {cost} probes into a /24, the cap allows              {allowed:.0} in {interval_s} s"
        )
    })
}

/// Warnings under the agents table: agents whose interval the cap cannot follow (`fits`:
/// agent and what [`cap_fit`] said), and many agents behind one address.
fn agents_warnings(fits: &[(String, String)], addresses: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> = fits
        .iter()
        .map(|(agent, fit)| {
            format!("warning: agent {agent} cannot follow its interval within the cap ({fit})")
        })
        .collect();
    let mut by_address: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (agent, address) in addresses.iter().filter(|(_, a)| !a.is_empty()) {
        by_address.entry(address).or_default().push(agent);
    }
    for (address, agents) in by_address {
        if agents.len() >= SHARED_ADDRESS_WARNING {
            out.push(format!(
                "warning: {} agents upload from {address} ({}): a proxy or NAT hides their \
                 vantage points, so the scheduler counts them as one place",
                agents.len(),
                agents.join(", ")
            ));
        }
    }
    out
}

fn agents_table(
    db: &Db,
    since: OffsetDateTime,
    now: OffsetDateTime,
    budget: Budget,
) -> Result<(Table, Vec<String>), DbError> {
    let mut rows: BTreeMap<String, AgentRow> = BTreeMap::new();
    for agent in db.fleet_agents()? {
        let vantage = match (&agent.address, agent.asn) {
            (_, Some(asn)) => format!("AS{asn}"),
            (Some(_), None) => "unknown".to_owned(),
            (None, None) => "not yet seen".to_owned(),
        };
        rows.insert(
            agent.agent,
            AgentRow {
                vantage,
                address: agent.address.unwrap_or_default(),
                ..AgentRow::default()
            },
        );
    }
    let (from_round, now_round) = (
        budget.round_at(since.unix_timestamp()),
        budget.round_at(now.unix_timestamp()),
    );
    for b in db
        .fleet_bookings_from(from_round)?
        .into_iter()
        .map(to_booking)
    {
        let row = rows.entry(b.agent.clone()).or_default();
        if row.vantage.is_empty() {
            row.vantage = vantage_text(&b.vantage);
        }
        if b.round <= now_round {
            row.booked += 1;
        } else {
            let start = budget.round_start(b.round);
            row.next_round = Some(row.next_round.map_or(start, |n| n.min(start)));
        }
    }
    let [from, to] = minutes(since, now);
    for work in db.fleet_work_by_agent(from, to)? {
        let row = rows.entry(work.agent).or_default();
        row.traces = u64::try_from(work.traces).unwrap_or(0);
        row.probes = u64::try_from(work.probes).unwrap_or(0);
    }
    for (agent, secs) in db.fleet_intervals()? {
        rows.entry(agent).or_default().interval_s = Some(secs);
    }
    let mut table = Table::new(
        "Fleet agents: vantage AS, traces booked and done, probes sent",
        &[
            "agent",
            "vantage",
            "address",
            "booked_traces",
            "done_traces",
            "probes",
            "next_booked_round",
            "interval_s",
            "cap",
        ],
    );
    let addresses: BTreeMap<String, String> = rows
        .iter()
        .map(|(agent, r)| (agent.clone(), r.address.clone()))
        .collect();
    let mut unfit = Vec::new();
    for (agent, r) in rows {
        // Probes per traced target (pings and trace probes), as done lately; an agent
        // that only pinged so far: its pings, a lower bound.
        let cost = r
            .probes
            .checked_div(r.traces)
            .or((r.probes > 0).then_some(r.probes));
        let fit = match (r.interval_s, cost) {
            (Some(secs), Some(cost)) => {
                cap_fit(secs, cost, budget).unwrap_or_else(|| "ok".to_owned())
            }
            _ => String::new(),
        };
        if !fit.is_empty() && fit != "ok" {
            unfit.push((agent.clone(), fit.clone()));
        }
        table.push(vec![
            agent,
            r.vantage,
            r.address,
            r.booked.to_string(),
            r.traces.to_string(),
            r.probes.to_string(),
            r.next_round
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .map(timestamp::stored)
                .unwrap_or_default(),
            r.interval_s.map(|s| s.to_string()).unwrap_or_default(),
            fit,
        ]);
    }
    Ok((table, agents_warnings(&unfit, &addresses)))
}

fn minutes(since: OffsetDateTime, now: OffsetDateTime) -> [i64; 2] {
    [
        since.unix_timestamp().div_euclid(60),
        now.unix_timestamp().div_euclid(60) + 1,
    ]
}

fn hourly_table(
    db: &Db,
    since: OffsetDateTime,
    now: OffsetDateTime,
    cap_pps: f64,
) -> Result<Table, DbError> {
    let cap_per_hour = cap_pps * 3600.0;
    let mut table = Table::new(
        "Probes into each target /24 per hour, against the fleet-wide cap",
        &[
            "hour",
            "prefix",
            "agents",
            "traces",
            "probes",
            "cap_per_hour",
            "share_of_cap_pct",
        ],
    );
    let [from, to] = minutes(since, now);
    for work in db.fleet_work_by_hour(from, to)? {
        let HourlyWork {
            hour,
            net,
            traces,
            probes,
            agents,
        } = work;
        let start = OffsetDateTime::from_unix_timestamp(hour * 3600)
            .map(timestamp::stored)
            .unwrap_or_default();
        #[allow(
            clippy::cast_precision_loss,
            reason = "probe counts are far below 2^52"
        )]
        let share = if cap_per_hour > 0.0 {
            format!("{:.1}", probes as f64 * 100.0 / cap_per_hour)
        } else {
            String::new()
        };
        table.push(vec![
            start,
            net,
            agents.to_string(),
            traces.to_string(),
            probes.to_string(),
            format!("{cap_per_hour:.0}"),
            share,
        ]);
    }
    Ok(table)
}

/// `nkpath-collector fleet`: changes the stored settings given, then prints the report.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Turn fleet scheduling on or off (stored). On (the default for a new database), the
    /// collector books each agent's rounds within the cap; off (what an upgraded database
    /// keeps until told otherwise), acks carry no assignment and every agent probes its own
    /// targets.
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    pub schedule: Option<String>,
    /// Round length (stored): set it to the agents' round interval, e.g. 15m.
    #[arg(long, value_name = "DURATION", value_parser = parse_round)]
    pub round: Option<u32>,
    /// Fleet-wide cap (stored): probes per second into each target /24, averaged over a
    /// round, all agents together.
    #[arg(long, value_name = "PPS", value_parser = parse_cap)]
    pub cap: Option<f64>,
    /// Report the work of this many hours before now.
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub hours: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = crate::report::Format::Table)]
    pub format: crate::report::Format,
}

/// Runs `fleet`.
pub fn run(db: &crate::Db, args: &FleetArgs) -> anyhow::Result<()> {
    if let Some(on) = &args.schedule {
        bookkeeping::set_enabled(db, on == "on")?;
    }
    if args.round.is_some() || args.cap.is_some() {
        let mut budget = bookkeeping::budget(db)?;
        budget.round_secs = args.round.unwrap_or(budget.round_secs);
        budget.cap_pps = args.cap.unwrap_or(budget.cap_pps);
        bookkeeping::set_budget(db, budget)?;
    }
    let tables = build(db, OffsetDateTime::now_utc(), args.hours)?;
    print!("{}", crate::report::render(&tables, args.format)?);
    Ok(())
}

fn parse_cap(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1000.0 => Ok(v),
        _ => Err(format!(
            "{text:?} is not a rate in probes per second above 0 and at most 1000 (e.g. 1 or 0.5)"
        )),
    }
}

/// A round length as `90s`, `15m`, `1h` or plain seconds.
pub fn parse_round(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u32 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m or 1h"))?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(|| format!("{text:?} is not a duration like 90s, 15m or 1h"))?;
    if secs < bookkeeping::MIN_ROUND_SECS {
        return Err(format!(
            "a round of {secs} s is shorter than the agents' shortest interval ({} s)",
            bookkeeping::MIN_ROUND_SECS
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_lengths_parse() {
        assert_eq!(parse_round("15m"), Ok(900));
        assert_eq!(parse_round("1h"), Ok(3600));
        assert_eq!(parse_round("90"), Ok(90));
        assert!(parse_round("30s").unwrap_err().contains("shortest"));
        assert!(parse_round("5 min").is_err());
    }
}
