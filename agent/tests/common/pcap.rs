//! Reading tcpdump's classic pcap files: enough of each packet to count probes,
//! check their destinations and measure their rate.

use std::net::Ipv4Addr;
use std::time::Duration;

/// One captured IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    /// Capture time since the epoch.
    pub at: Duration,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// IPv4 protocol number.
    pub protocol: u8,
    /// IPv4 TTL.
    pub ttl: u8,
    /// For an ICMP echo request, its echo reply, or an ICMP error quoting an echo
    /// request: the request's destination and sequence number, which pair a probe
    /// with its answer.
    pub echo: Option<EchoKey>,
}

/// Which echo request a packet is or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EchoKey {
    /// Where the request went.
    pub target: Ipv4Addr,
    /// Its sequence number.
    pub sequence: u16,
}

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;

/// The [`EchoKey`] of an IPv4 datagram, if it has one (within the snapshot).
fn echo_key(ip: &[u8]) -> Option<EchoKey> {
    let addr = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[9] != 1 {
        return None;
    }
    let icmp = ip.get(ihl..)?;
    let sequence = |icmp: &[u8]| icmp.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]]));
    match *icmp.first()? {
        ICMP_ECHO_REQUEST => Some(EchoKey {
            target: addr(&ip[16..20]),
            sequence: sequence(icmp)?,
        }),
        ICMP_ECHO_REPLY => Some(EchoKey {
            target: addr(&ip[12..16]),
            sequence: sequence(icmp)?,
        }),
        ICMP_TIME_EXCEEDED | ICMP_DEST_UNREACHABLE => {
            let quote = icmp.get(8..)?;
            let quoted_ihl = usize::from(*quote.first()? & 0x0f) * 4;
            let quoted_icmp = quote.get(quoted_ihl..)?;
            (quote.get(9) == Some(&1) && quoted_icmp.first() == Some(&ICMP_ECHO_REQUEST))
                .then_some(())?;
            Some(EchoKey {
                target: addr(quote.get(16..20)?),
                sequence: sequence(quoted_icmp)?,
            })
        }
        _ => None,
    }
}

const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// Parses a classic pcap file (either byte order, micro- or nanosecond stamps) and
/// returns its IPv4 packets; other frames (ARP, IPv6) are skipped.
pub fn parse(bytes: &[u8]) -> Vec<Captured> {
    assert!(
        bytes.len() >= 24,
        "pcap file too short ({} bytes)",
        bytes.len()
    );
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let (big_endian, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        other => panic!("not a classic pcap file (magic {other:02x?})"),
    };
    let u32_at = |i: usize| {
        let word: [u8; 4] = bytes[i..i + 4].try_into().unwrap();
        if big_endian {
            u32::from_be_bytes(word)
        } else {
            u32::from_le_bytes(word)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    let l2 = match linktype {
        LINKTYPE_ETHERNET => 14,
        LINKTYPE_RAW => 0,
        LINKTYPE_LINUX_SLL => 16,
        other => panic!("unsupported link type {other}"),
    };
    let mut out = Vec::new();
    let mut pos = 24;
    while pos + 16 <= bytes.len() {
        let secs = u64::from(u32_at(pos));
        let frac = u64::from(u32_at(pos + 4));
        let incl = u32_at(pos + 8) as usize;
        let data = &bytes[pos + 16..(pos + 16 + incl).min(bytes.len())];
        pos += 16 + incl;
        let ethertype_ok = match linktype {
            LINKTYPE_ETHERNET => data.get(12..14) == Some(&ETHERTYPE_IPV4[..]),
            LINKTYPE_LINUX_SLL => data.get(14..16) == Some(&ETHERTYPE_IPV4[..]),
            _ => true,
        };
        let Some(ip) = data.get(l2..).filter(|ip| ip.len() >= 20) else {
            continue;
        };
        if !ethertype_ok || ip[0] >> 4 != 4 {
            continue;
        }
        let frac = if nanos {
            Duration::from_nanos(frac)
        } else {
            Duration::from_micros(frac)
        };
        out.push(Captured {
            at: Duration::from_secs(secs) + frac,
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            protocol: ip[9],
            ttl: ip[8],
            echo: echo_key(ip),
        });
    }
    out
}

/// The most packets in any window of one second (a window `[t, t + 1 s)` starting
/// at any packet; no other window holds more).
pub fn max_in_any_second(times: &[Duration]) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi].saturating_sub(sorted[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian microsecond pcap of Ethernet frames carrying IPv4 headers.
    fn file(packets: &[(u32, u32, [u8; 4])]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend(0xa1b2_c3d4u32.to_le_bytes());
        f.extend(2u16.to_le_bytes());
        f.extend(4u16.to_le_bytes());
        f.extend([0; 8]);
        f.extend(65535u32.to_le_bytes());
        f.extend(LINKTYPE_ETHERNET.to_le_bytes());
        for &(secs, micros, dst) in packets {
            let mut frame = vec![0u8; 14];
            frame[12..14].copy_from_slice(&ETHERTYPE_IPV4);
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[8] = 3;
            ip[9] = 1;
            ip[12..16].copy_from_slice(&[88, 198, 10, 2]);
            ip[16..20].copy_from_slice(&dst);
            frame.extend(ip);
            f.extend(secs.to_le_bytes());
            f.extend(micros.to_le_bytes());
            f.extend((frame.len() as u32).to_le_bytes());
            f.extend((frame.len() as u32).to_le_bytes());
            f.extend(frame);
        }
        f
    }

    #[test]
    fn parses_ethernet_ipv4() {
        let p = parse(&file(&[
            (10, 5, [175, 45, 176, 1]),
            (11, 0, [175, 45, 179, 9]),
        ]));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].at, Duration::from_secs(10) + Duration::from_micros(5));
        assert_eq!(p[1].dst, Ipv4Addr::new(175, 45, 179, 9));
        assert_eq!((p[0].protocol, p[0].ttl), (1, 3));
    }

    #[test]
    fn windows_are_half_open_seconds() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(max_in_any_second(&ms(&[0, 999, 1000, 1999])), 2);
        assert_eq!(max_in_any_second(&ms(&[0, 10, 20, 1500])), 3);
        assert_eq!(max_in_any_second(&[]), 0);
    }
}
