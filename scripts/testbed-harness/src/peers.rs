//! Output of the peer tools the agent is compared against: scamper's JSON traces and
//! classic `traceroute -n` text.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// A scamper trace (`scamper -O json -c 'trace ...'`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScamperTrace {
    /// Probe method (`udp-paris`, `icmp-echo-paris`, `tcp`, ...).
    pub method: String,
    /// Source address of the probes.
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// UDP/TCP source port.
    #[serde(default)]
    pub sport: Option<u16>,
    /// UDP/TCP destination port.
    #[serde(default)]
    pub dport: Option<u16>,
    /// ICMP checksum kept constant by ICMP-Paris.
    #[serde(default)]
    pub icmp_sum: Option<u16>,
    /// Why the trace stopped: `COMPLETED`, `UNREACH`, `GAPLIMIT`, `LOOP`, ...
    pub stop_reason: String,
    /// Detail of the stop reason (the ICMP code for `UNREACH`).
    #[serde(default)]
    pub stop_data: u32,
    /// Every reply received.
    #[serde(default)]
    pub hops: Vec<ScamperHop>,
}

/// One reply in a scamper trace.
#[derive(Debug, Clone, Deserialize)]
pub struct ScamperHop {
    /// Who answered.
    pub addr: Ipv4Addr,
    /// TTL of the probe that drew the reply.
    pub probe_ttl: u8,
    /// ICMP type of the reply (11 time exceeded, 3 unreachable, 0 echo reply).
    #[serde(default)]
    pub icmp_type: Option<u8>,
    /// ICMP code of the reply.
    #[serde(default)]
    pub icmp_code: Option<u8>,
}

impl ScamperTrace {
    /// Parses scamper's JSON output (one object per line; the `trace` object is used).
    pub fn parse(output: &str) -> Result<Self> {
        for line in output.lines() {
            let value: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if value.get("type").and_then(|t| t.as_str()) == Some("trace") {
                return serde_json::from_value(value)
                    .with_context(|| format!("unexpected scamper trace JSON: {line}"));
            }
        }
        bail!("no trace in scamper output: {output}")
    }

    /// The distinct addresses that answered probes with this TTL.
    pub fn addresses_at(&self, ttl: u8) -> BTreeSet<Ipv4Addr> {
        self.hops
            .iter()
            .filter(|h| h.probe_ttl == ttl)
            .map(|h| h.addr)
            .collect()
    }

    /// The highest probe TTL that drew a reply.
    pub fn max_ttl(&self) -> u8 {
        self.hops.iter().map(|h| h.probe_ttl).max().unwrap_or(0)
    }

    /// Every address that answered, in TTL order, without repeats.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = Vec::new();
        for ttl in 1..=self.max_ttl() {
            for a in self.addresses_at(ttl) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Whether the destination itself answered.
    pub fn reached(&self) -> bool {
        self.stop_reason == "COMPLETED" && self.hops.iter().any(|h| h.addr == self.dst)
    }
}

/// One line of classic `traceroute -n` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracerouteHop {
    /// The probe TTL.
    pub ttl: u8,
    /// Every address that answered, in order, with repeats (one per answered probe).
    pub replies: Vec<Ipv4Addr>,
    /// Annotations such as `!X` (admin prohibited), `!H`, `!N`.
    pub flags: Vec<String>,
    /// Probes without an answer (`*`).
    pub timeouts: usize,
}

impl TracerouteHop {
    /// The distinct addresses that answered.
    pub fn addresses(&self) -> BTreeSet<Ipv4Addr> {
        self.replies.iter().copied().collect()
    }
}

/// Parses `traceroute -n` output (the header line is skipped).
pub fn parse_traceroute(text: &str) -> Vec<TracerouteHop> {
    let mut hops = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        let Some(Ok(ttl)) = words.next().map(str::parse::<u8>) else {
            continue;
        };
        let mut hop = TracerouteHop {
            ttl,
            replies: Vec::new(),
            flags: Vec::new(),
            timeouts: 0,
        };
        let mut current: Option<Ipv4Addr> = None;
        while let Some(word) = words.next() {
            if word == "*" {
                hop.timeouts += 1;
            } else if let Ok(addr) = word.parse::<Ipv4Addr>() {
                current = Some(addr);
            } else if word.starts_with('!') {
                hop.flags.push(word.to_owned());
            } else if word.parse::<f64>().is_ok() && words.peek() == Some(&"ms") {
                // One answered probe: an RTT belongs to the last address printed.
                words.next();
                if let Some(addr) = current {
                    hop.replies.push(addr);
                }
            }
        }
        hops.push(hop);
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scamper_json() {
        let out = r#"{"type":"cycle-start", "list_name":"default", "id":0}
{"type":"trace","version":"0.1", "method":"udp-paris", "src":"88.198.10.2", "dst":"175.45.179.1", "sport":40000, "dport":33500, "stop_reason":"UNREACH", "stop_data":13, "hops":[{"addr":"88.198.10.1", "probe_ttl":1, "icmp_type":11, "icmp_code":0},{"addr":"188.43.1.2", "probe_ttl":2, "icmp_type":3, "icmp_code":13}]}
{"type":"cycle-stop"}"#;
        let t = ScamperTrace::parse(out).unwrap();
        assert_eq!(t.sport, Some(40000));
        assert_eq!(t.stop_reason, "UNREACH");
        assert_eq!(t.stop_data, 13);
        assert_eq!(t.max_ttl(), 2);
        assert_eq!(t.hops[1].icmp_code, Some(13));
        assert!(!t.reached());
        assert!(ScamperTrace::parse("garbage").is_err());
    }

    #[test]
    fn parses_traceroute_text() {
        let text = "traceroute to 175.45.176.1 (175.45.176.1), 30 hops max, 60 byte packets
 1  88.198.10.1  0.227 ms  0.191 ms
 2  88.198.11.1  0.095 ms 88.198.11.5  0.080 ms  0.066 ms *
 3  * * *
 4  196.49.1.2  0.010 ms !X
";
        let hops = parse_traceroute(text);
        assert_eq!(hops.len(), 4);
        assert_eq!(hops[1].replies.len(), 3);
        assert_eq!(hops[1].addresses().len(), 2);
        assert_eq!(hops[1].timeouts, 1);
        assert_eq!(hops[2].timeouts, 3);
        assert!(hops[2].replies.is_empty());
        assert_eq!(hops[3].flags, ["!X"]);
    }
}
