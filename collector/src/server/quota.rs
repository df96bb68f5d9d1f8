//! Per-agent upload quotas: results per hour, bytes per hour and uploads at once, so that
//! one token can neither fill the disk nor hold the collector's memory.
//!
//! The hourly quotas are token buckets: each holds an hour's allowance when full and refills
//! continuously, so an agent may spend its hour at once (a backlog after an outage) and then
//! uploads at the refill rate. Over a quota the upload is answered 429 with `Retry-After`,
//! the time until the bucket holds what the upload needs; nothing of it is stored, and the
//! agent sends it again then, as it does after any 429.
//!
//! ## Defaults: from the agent's own rate cap
//!
//! An agent sends at most `pps` packets a second (its `probing.pps`, declared in every trace
//! as `params.pps`, at most 1,000 by the wire format); every result costs at least one
//! packet, and one packet brings back at most one reply, which takes well under
//! [`BYTES_PER_PACKET`] of JSON. So an agent produces at most `P = pps × 3600` results and
//! `P × BYTES_PER_PACKET` bytes an hour. The defaults are twice that:
//!
//! * results per hour = `2 × pps × 3600`
//! * bytes per hour = `2 × pps × 3600 × BYTES_PER_PACKET`
//!
//! The first half keeps up with what the agent can measure; the second drains a day of
//! backlog (24 hours of production, a spool filled while the collector was away) within a
//! day, while the agent keeps probing. Real traces cost tens of packets each, so in practice
//! a day drains in about an hour. Until an agent's first trace tells its rate cap, the
//! agent's default rate cap ([`DEFAULT_AGENT_PPS`]) is assumed. `serve` settings override
//! either quota for every agent.
//!
//! The quotas live in memory: a restart gives every agent a full hour again, which costs at
//! most one extra hour's allowance per restart.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The JSON one probe packet can add to a result, at most: a reply's address, times,
/// TTLs, a host name of up to 255 characters (escaped), MPLS labels and its keys. The
/// golden trace of the wire format takes about 250 bytes per packet.
pub const BYTES_PER_PACKET: u64 = 1024;

/// The rate cap an agent runs with unless configured otherwise (`probing.pps`), assumed until
/// its first trace declares its own.
pub const DEFAULT_AGENT_PPS: u32 = 100;

/// The highest rate cap the wire format allows (`params.pps`).
pub const MAX_AGENT_PPS: u32 = 1000;

/// Uploads of one agent being read or stored at once, by default. An agent uploads one batch
/// at a time; the second leaves room for a retry while a timed-out attempt is still being
/// stored.
pub const DEFAULT_CONCURRENT_UPLOADS: usize = 2;

/// The quotas of every agent: fixed by settings, or following each agent's rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaConfig {
    /// Results per hour; `None`: from the agent's rate cap.
    pub results_per_hour: Option<u64>,
    /// Bytes of request bodies per hour; `None`: from the agent's rate cap.
    pub bytes_per_hour: Option<u64>,
    /// Uploads of one agent in progress at once.
    pub concurrent_uploads: usize,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self {
            results_per_hour: None,
            bytes_per_hour: None,
            concurrent_uploads: DEFAULT_CONCURRENT_UPLOADS,
        }
    }
}

impl QuotaConfig {
    /// Results per hour for an agent capped at `pps` packets a second.
    pub fn results_per_hour(&self, pps: u32) -> u64 {
        self.results_per_hour
            .unwrap_or_else(|| default_results_per_hour(pps))
    }

    /// Bytes per hour for an agent capped at `pps` packets a second.
    pub fn bytes_per_hour(&self, pps: u32) -> u64 {
        self.bytes_per_hour
            .unwrap_or_else(|| default_results_per_hour(pps).saturating_mul(BYTES_PER_PACKET))
    }
}

/// `2 × pps × 3600`: an hour of the most an agent can produce, and as much again to drain a
/// day of backlog within a day (see the module documentation).
pub fn default_results_per_hour(pps: u32) -> u64 {
    2 * u64::from(pps.clamp(1, MAX_AGENT_PPS)) * 3600
}

/// Why an upload is refused: which quota, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverQuota {
    /// What was exceeded, for the answer and the log.
    pub what: String,
    /// When the upload would fit.
    pub retry_after: Duration,
}

/// A token bucket of one hourly allowance.
#[derive(Debug, Clone)]
struct Bucket {
    level: f64,
    per_hour: u64,
    at: Instant,
}

impl Bucket {
    fn full(per_hour: u64, now: Instant) -> Self {
        Self {
            level: per_hour as f64,
            per_hour,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let per_hour = self.per_hour as f64;
        self.level = (self.level + elapsed * per_hour / 3600.0).min(per_hour);
        self.at = now;
    }

    /// A new hourly allowance (the agent's rate cap changed): a raise is available at once,
    /// a cut takes effect on what is left.
    fn set_per_hour(&mut self, per_hour: u64) {
        if per_hour > self.per_hour {
            self.level += (per_hour - self.per_hour) as f64;
        }
        self.per_hour = per_hour;
        self.level = self.level.min(per_hour as f64);
    }

    /// How long until `amount` fits, or `None` when it fits now. An upload larger than a whole
    /// hour's allowance fits once the bucket is full (it then owes the difference).
    fn wait_for(&self, amount: u64) -> Option<Duration> {
        let need = amount.min(self.per_hour) as f64;
        if self.level >= need {
            return None;
        }
        let per_second = (self.per_hour as f64 / 3600.0).max(f64::MIN_POSITIVE);
        Some(Duration::from_secs_f64(
            ((need - self.level) / per_second).ceil().max(1.0),
        ))
    }

    fn take(&mut self, amount: u64) {
        self.level -= amount as f64;
    }
}

#[derive(Debug)]
struct AgentQuota {
    pps: u32,
    results: Bucket,
    bytes: Bucket,
    in_flight: usize,
}

/// The quotas of every agent that has uploaded since the collector started.
#[derive(Debug)]
pub struct Quotas {
    config: QuotaConfig,
    agents: Mutex<HashMap<String, AgentQuota>>,
}

impl Quotas {
    /// No agent has used anything yet.
    pub fn new(config: QuotaConfig) -> Self {
        Self {
            config,
            agents: Mutex::new(HashMap::new()),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> QuotaConfig {
        self.config
    }

    fn with_agent<T>(&self, agent: &str, now: Instant, f: impl FnOnce(&mut AgentQuota) -> T) -> T {
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        let config = self.config;
        let quota = agents.entry(agent.to_owned()).or_insert_with(|| {
            let pps = DEFAULT_AGENT_PPS;
            AgentQuota {
                pps,
                results: Bucket::full(config.results_per_hour(pps), now),
                bytes: Bucket::full(config.bytes_per_hour(pps), now),
                in_flight: 0,
            }
        });
        quota.results.refill(now);
        quota.bytes.refill(now);
        f(quota)
    }

    /// Starts an upload of `bytes` bytes of body by `agent`: refused when the agent already
    /// has its quota of uploads in progress or its bytes of the hour are spent; otherwise the
    /// bytes are counted and the returned guard holds its slot until dropped.
    pub fn begin(
        &self,
        agent: &str,
        bytes: u64,
        now: Instant,
    ) -> Result<UploadSlot<'_>, OverQuota> {
        let limit = self.config.concurrent_uploads;
        self.with_agent(agent, now, |quota| {
            if quota.in_flight >= limit {
                return Err(OverQuota {
                    what: format!("{limit} uploads of this agent are already in progress"),
                    retry_after: Duration::from_secs(1),
                });
            }
            if let Some(retry_after) = quota.bytes.wait_for(bytes) {
                return Err(OverQuota {
                    what: format!(
                        "the agent's quota of {} bytes of uploads per hour is spent",
                        quota.bytes.per_hour
                    ),
                    retry_after,
                });
            }
            quota.bytes.take(bytes);
            quota.in_flight += 1;
            Ok(())
        })?;
        Ok(UploadSlot {
            quotas: self,
            agent: agent.to_owned(),
        })
    }

    /// Counts `results` results of one upload by `agent`, whose traces declare a rate cap of
    /// `pps` (the highest of the batch, `None` when it holds no trace), or refuses them when
    /// the agent's results of the hour are spent.
    pub fn take_results(
        &self,
        agent: &str,
        results: u64,
        pps: Option<u32>,
        now: Instant,
    ) -> Result<(), OverQuota> {
        let config = self.config;
        self.with_agent(agent, now, |quota| {
            if let Some(pps) = pps.map(|p| p.clamp(1, MAX_AGENT_PPS))
                && pps != quota.pps
            {
                quota.pps = pps;
                quota.results.set_per_hour(config.results_per_hour(pps));
                quota.bytes.set_per_hour(config.bytes_per_hour(pps));
            }
            if let Some(retry_after) = quota.results.wait_for(results) {
                return Err(OverQuota {
                    what: format!(
                        "the agent's quota of {} results per hour is spent",
                        quota.results.per_hour
                    ),
                    retry_after,
                });
            }
            quota.results.take(results);
            Ok(())
        })
    }

    fn end(&self, agent: &str) {
        let mut agents = self.agents.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(quota) = agents.get_mut(agent) {
            quota.in_flight = quota.in_flight.saturating_sub(1);
        }
    }
}

/// One upload in progress; its agent's slot is given back when this is dropped.
#[derive(Debug)]
pub struct UploadSlot<'a> {
    quotas: &'a Quotas,
    agent: String,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.quotas.end(&self.agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(results: u64, bytes: u64, concurrent: usize) -> Quotas {
        Quotas::new(QuotaConfig {
            results_per_hour: Some(results),
            bytes_per_hour: Some(bytes),
            concurrent_uploads: concurrent,
        })
    }

    #[test]
    fn defaults_follow_the_rate_cap() {
        let config = QuotaConfig::default();
        assert_eq!(config.results_per_hour(100), 720_000);
        assert_eq!(config.bytes_per_hour(100), 720_000 * 1024);
        // The wire format's cap bounds what an agent can claim.
        assert_eq!(config.results_per_hour(50_000), 7_200_000);
    }

    #[test]
    fn an_hour_is_spent_then_refills_at_its_rate() {
        let quotas = fixed(3600, u64::MAX, 2);
        let t0 = Instant::now();
        assert!(quotas.take_results("a", 3000, None, t0).is_ok());
        let over = quotas.take_results("a", 1000, None, t0).unwrap_err();
        // 400 short at one result a second.
        assert_eq!(over.retry_after, Duration::from_secs(400));
        assert!(over.what.contains("3600 results per hour"), "{}", over.what);
        assert!(
            quotas
                .take_results("a", 1000, None, t0 + Duration::from_secs(400))
                .is_ok()
        );
        // Another agent has its own.
        assert!(quotas.take_results("b", 3600, None, t0).is_ok());
    }

    #[test]
    fn uploads_at_once_are_capped_and_given_back() {
        let quotas = fixed(u64::MAX, u64::MAX, 2);
        let now = Instant::now();
        let first = quotas.begin("a", 10, now).unwrap();
        let _second = quotas.begin("a", 10, now).unwrap();
        assert!(quotas.begin("a", 10, now).is_err());
        drop(first);
        assert!(quotas.begin("a", 10, now).is_ok());
    }

    #[test]
    fn bytes_are_counted_when_an_upload_begins() {
        let quotas = fixed(u64::MAX, 3600, 8);
        let now = Instant::now();
        drop(quotas.begin("a", 3000, now).unwrap());
        let over = quotas.begin("a", 1000, now).unwrap_err();
        assert_eq!(over.retry_after, Duration::from_secs(400));
        // Larger than an hour's allowance: fits once the bucket is full again.
        let later = now + Duration::from_hours(1);
        assert!(quotas.begin("a", 10_000, later).is_ok());
    }

    #[test]
    fn a_declared_rate_cap_sets_the_default_quota() {
        let quotas = Quotas::new(QuotaConfig::default());
        let now = Instant::now();
        // At the assumed 100 packets/s: 720,000 an hour.
        assert!(quotas.take_results("a", 700_000, None, now).is_ok());
        assert!(quotas.take_results("a", 30_000, None, now).is_err());
        // Declaring 200 packets/s doubles the hour's allowance, the raise at once.
        assert!(quotas.take_results("a", 700_000, Some(200), now).is_ok());
        assert!(quotas.take_results("a", 50_000, Some(200), now).is_err());
    }
}
