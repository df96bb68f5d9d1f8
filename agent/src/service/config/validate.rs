//! From the raw values to a [`Config`] of checked types: every value is checked, every
//! problem recorded (with its key and line) instead of stopping at the first.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;
use nkpath_proto::{Protocol, limits};

use super::error::{Problem, line_of_key};
use super::raw::{
    RawCollector, RawConfig, RawDns, RawJitter, RawLiveness, RawProbing, RawSchedule, RawSpool,
    RawUpload,
};
use super::{
    Collector, Config, DEFAULT_SPOOL_PATH, Dns, Jitter, Liveness, MAX_IN_FLIGHT, MIN_INTERVAL,
    MdaRound, Probing, Schedule, SpoolSettings, Token, UploadSettings, quoted,
};
use crate::probing::engine::{DEFAULT_TCP_PORT, DEFAULT_UDP_PORT};
use crate::probing::pacing::{MAX_PPS, Rates};
use crate::probing::targets::{self, Allowlist, DEFAULT_TARGET, MAX_TARGETS};

/// Checks raw values one by one, recording a [`Problem`] for each bad one.
pub(super) struct Validator<'t> {
    pub(super) text: &'t str,
    pub(super) problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, key: &str, value: Option<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            line: line_of_key(self.text, key),
            key: key.to_owned(),
            value,
            message: message.into(),
        });
    }

    /// Keeps `result`'s value, or records its error against `key`.
    fn take<T>(&mut self, key: &str, shown: String, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.problem(key, Some(shown), e)).ok()
    }

    fn int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: i64,
        min: i64,
        max: i64,
        unit: &str,
    ) -> Option<T> {
        let ok = (min..=max).contains(&value);
        let result = T::try_from(value).ok().filter(|_| ok);
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        self.take(
            key,
            value.to_string(),
            result.ok_or(format!("must be {min}..={max}{unit}")),
        )
    }

    fn duration(
        &mut self,
        key: &str,
        text: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let result = humantime::parse_duration(text)
            .map_err(|e| format!("{e}; write a duration like \"30s\", \"15m\" or \"1h 30m\""))
            .and_then(|d| {
                if (min..=max).contains(&d) {
                    Ok(d)
                } else {
                    Err(format!(
                        "must be {}..={}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ))
                }
            });
        self.take(key, quoted(text), result)
    }

    fn prefixes(&mut self, key: &str, items: &[String]) -> Vec<Ipv4Net> {
        if items.is_empty() {
            self.problem(
                key,
                Some("[]".into()),
                format!("must list at least one prefix, e.g. [\"{DEFAULT_TARGET}\"]"),
            );
        }
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let key = format!("{key}[{i}]");
                self.take(
                    &key,
                    quoted(item),
                    targets::parse_prefix(item).map_err(|e| e.to_string()),
                )
            })
            .collect()
    }

    pub(super) fn config(&mut self, path: &Path, raw: RawConfig) -> Option<Config> {
        let agent_id = self.agent_id(&raw.agent_id);
        let collector = self.collector(path, raw.collector);
        let allow_nets = self.prefixes("allowlist", &raw.allowlist);
        let allowlist = Allowlist::new(allow_nets);
        let targets = self.targets(&raw.targets, &allowlist);
        let port = match (raw.protocol, raw.port) {
            (_, Some(0)) => {
                self.problem("port", Some("0".into()), "must be 1..=65535");
                None
            }
            (_, Some(port)) => Some(port),
            (Protocol::Tcp, None) => Some(DEFAULT_TCP_PORT),
            (_, None) => Some(DEFAULT_UDP_PORT),
        };
        let schedule = self.schedule(&raw.schedule);
        let probing = self.probing(&raw.probing);
        let liveness = self.liveness(&raw.liveness);
        let dns = self.dns(&raw.dns);
        let spool = self.spool(raw.spool);
        let upload = self.upload(&raw.upload);
        if raw.user.is_empty() {
            self.problem(
                "user",
                Some("\"\"".into()),
                "name the unprivileged account to run as, e.g. \"nobody\"",
            );
        }
        Some(Config {
            source: path.to_owned(),
            agent_id: agent_id?,
            collector: collector?,
            allowlist,
            targets,
            protocol: raw.protocol,
            port: port?,
            schedule: schedule?,
            probing: probing?,
            liveness: liveness?,
            dns: dns?,
            spool: spool?,
            upload: upload?,
            user: raw.user,
        })
    }

    fn agent_id(&mut self, id: &str) -> Option<String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let result = if !limits::AGENT_ID_LEN.contains(&id.chars().count()) {
            Err("must be 1 to 64 characters long".to_owned())
        } else if let Some(c) = id.chars().find(|&c| !allowed(c)) {
            Err(format!("contains {c:?}: use only A-Z a-z 0-9 . _ -"))
        } else {
            Ok(id.to_owned())
        };
        self.take("agent_id", quoted(id), result)
    }

    fn collector(&mut self, path: &Path, raw: RawCollector) -> Option<Collector> {
        let url = reqwest::Url::parse(&raw.url)
            .map_err(|e| format!("not a URL ({e}); write e.g. \"https://collector.example.org\""))
            .and_then(|url| match url.scheme() {
                "http" | "https" => Ok(url),
                other => Err(format!("scheme {other:?} is not supported: use https:// (or http:// on a trusted network)")),
            })
            .and_then(|url| {
                if url.host_str().is_none_or(str::is_empty) {
                    Err("has no host".to_owned())
                } else if url.query().is_some() || url.fragment().is_some() {
                    Err("must not have a query or fragment: give the collector's base URL".to_owned())
                } else {
                    Ok(url)
                }
            });
        let url = self.take("collector.url", quoted(&raw.url), url);
        let token = match (raw.token, raw.token_file) {
            (Some(_), Some(_)) => {
                self.problem(
                    "collector.token_file",
                    None,
                    "give either collector.token or collector.token_file, not both",
                );
                None
            }
            (None, None) => {
                self.problem(
                    "collector",
                    None,
                    "needs a token: set collector.token_file (a file readable only by root) or collector.token",
                );
                None
            }
            (Some(token), None) => self.token("collector.token", &token),
            (None, Some(file)) => {
                // A relative token file is next to the configuration file.
                let file = path
                    .parent()
                    .map_or_else(|| file.clone(), |dir| dir.join(&file));
                match std::fs::read_to_string(&file) {
                    Ok(text) => self.token("collector.token_file", text.trim()),
                    Err(e) => {
                        self.problem(
                            "collector.token_file",
                            Some(quoted(&file.display().to_string())),
                            format!("cannot read it: {e}"),
                        );
                        None
                    }
                }
            }
        };
        Some(Collector {
            url: url?,
            token: token?,
        })
    }

    fn token(&mut self, key: &str, token: &str) -> Option<Token> {
        // Never echo the token itself.
        if token.is_empty() {
            self.problem(key, None, "the token is empty");
            None
        } else if !token.chars().all(|c| c.is_ascii_graphic()) {
            self.problem(
                key,
                None,
                "the token may only hold printable ASCII without spaces",
            );
            None
        } else {
            Some(Token::new(token))
        }
    }

    fn targets(&mut self, items: &[String], allowlist: &Allowlist) -> Vec<Ipv4Net> {
        let nets = self.prefixes("targets", items);
        let mut total: u64 = 0;
        for (i, net) in nets.iter().enumerate() {
            total += 1u64 << (32 - net.prefix_len());
            if !allowlist.prefixes().is_empty() && !allowlist.allows_net(net) {
                self.problem(
                    &format!("targets[{i}]"),
                    Some(quoted(&net.to_string())),
                    format!("is outside the allowlist ({allowlist}); add it to allowlist if you really mean to probe it"),
                );
            }
        }
        if total > MAX_TARGETS as u64 {
            self.problem(
                "targets",
                None,
                format!("{total} addresses in all; at most {MAX_TARGETS} (a /16)"),
            );
        }
        nets
    }

    fn schedule(&mut self, raw: &RawSchedule) -> Option<Schedule> {
        let interval = self.duration(
            "schedule.interval",
            &raw.interval,
            MIN_INTERVAL,
            Duration::from_hours(24 * 7),
        )?;
        let jitter = match &raw.jitter {
            RawJitter::Fraction(f) => {
                let ok = f.is_finite() && (0.0..=0.5).contains(f);
                self.take(
                    "schedule.jitter",
                    f.to_string(),
                    if ok {
                        Ok(Jitter::Fraction(*f))
                    } else {
                        Err("a fraction of the interval must be 0.0..=0.5".into())
                    },
                )
            }
            RawJitter::Duration(text) => self
                .duration("schedule.jitter", text, Duration::ZERO, interval / 2)
                .map(Jitter::Max),
        }?;
        Some(Schedule { interval, jitter })
    }

    fn probing(&mut self, raw: &RawProbing) -> Option<Probing> {
        let max = i64::from(MAX_PPS);
        let pps = self.int::<u32>("probing.pps", raw.pps, 1, max, "packets per second");
        let per_prefix_pps = self.int::<u32>(
            "probing.per_prefix_pps",
            raw.per_prefix_pps,
            1,
            max,
            "packets per second",
        );
        let attempts = self.int::<u8>("probing.attempts", raw.attempts, 1, 10, "");
        let timeout = self.duration(
            "probing.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        let gap_limit = self.int::<u8>("probing.gap_limit", raw.gap_limit, 1, 32, "");
        let max_ttl = self.int::<u8>("probing.max_ttl", raw.max_ttl, 1, 64, "");
        let max_in_flight = self.int::<usize>(
            "probing.max_in_flight",
            raw.max_in_flight,
            1,
            MAX_IN_FLIGHT as i64,
            "",
        );
        let mda_confidence = match raw.mda_confidence {
            95 => Some(crate::probing::mda::Confidence::P95),
            99 => Some(crate::probing::mda::Confidence::P99),
            other => {
                self.problem(
                    "probing.mda_confidence",
                    None,
                    format!("{other} is not a confidence: use 95 or 99 (percent)"),
                );
                None
            }
        };
        let mda_max_probes = self.int::<u32>(
            "probing.mda_max_probes",
            raw.mda_max_probes,
            1,
            i64::from(crate::probing::mda::run::MAX_PROBES_CEILING),
            "probes per multipath trace",
        );
        let mda_max_seconds = self.int::<u64>(
            "probing.mda_max_seconds",
            raw.mda_max_seconds,
            1,
            86_400,
            "",
        );
        let rates = Rates::new(pps?, per_prefix_pps?)
            .map_err(|e| self.problem("probing", None, e.to_string()))
            .ok()?;
        Some(Probing {
            rates,
            attempts: attempts?,
            timeout: timeout?,
            gap_limit: gap_limit?,
            max_ttl: max_ttl?,
            max_in_flight: max_in_flight?,
            stop_set: raw.stop_set,
            mda: raw.mda.then_some(MdaRound {
                confidence: mda_confidence?,
                max_probes: mda_max_probes?,
                max_time: Duration::from_secs(mda_max_seconds?),
            }),
        })
    }

    fn liveness(&mut self, raw: &RawLiveness) -> Option<Liveness> {
        let pings = self.int::<u32>("liveness.pings", raw.pings, 1, 10, "");
        let timeout = self.duration(
            "liveness.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        Some(Liveness {
            enabled: raw.enabled,
            pings: pings?,
            timeout: timeout?,
        })
    }

    fn dns(&mut self, raw: &RawDns) -> Option<Dns> {
        let resolver = match &raw.resolver {
            None => Some(None),
            Some(text) => {
                let parsed = text
                    .parse::<SocketAddr>()
                    .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map(Some)
                    .map_err(|_| {
                        "not an address: write e.g. \"9.9.9.9\" or \"192.0.2.53:53\"".to_owned()
                    });
                self.take("dns.resolver", quoted(text), parsed)
            }
        };
        let timeout = self.duration(
            "dns.timeout",
            &raw.timeout,
            Duration::from_millis(1),
            Duration::from_mins(1),
        );
        Some(Dns {
            resolver: resolver?,
            timeout: timeout?,
        })
    }

    fn spool(&mut self, raw: RawSpool) -> Option<SpoolSettings> {
        if raw.path.as_os_str().is_empty() || raw.path.is_relative() {
            self.problem(
                "spool.path",
                Some(quoted(&raw.path.display().to_string())),
                format!("must be an absolute path, e.g. \"{DEFAULT_SPOOL_PATH}\""),
            );
        }
        let max_results = self.int::<u64>("spool.max_results", raw.max_results, 1, i64::MAX, "")?;
        Some(SpoolSettings {
            path: raw.path,
            max_results,
        })
    }

    fn upload(&mut self, raw: &RawUpload) -> Option<UploadSettings> {
        let (lo, hi) = (
            *limits::BATCH_RESULTS.start() as i64,
            *limits::BATCH_RESULTS.end() as i64,
        );
        let batch_size = self.int::<usize>("upload.batch_size", raw.batch_size, lo, hi, "results");
        let max_backoff = self.duration(
            "upload.max_backoff",
            &raw.max_backoff,
            Duration::from_secs(1),
            Duration::from_hours(24),
        );
        let timeout = self.duration(
            "upload.timeout",
            &raw.timeout,
            Duration::from_secs(1),
            Duration::from_mins(30),
        );
        let interval = self.duration(
            "upload.interval",
            &raw.interval,
            Duration::from_secs(1),
            Duration::from_hours(24),
        );
        Some(UploadSettings {
            batch_size: batch_size?,
            max_backoff: max_backoff?,
            timeout: timeout?,
            interval: interval?,
        })
    }
}
