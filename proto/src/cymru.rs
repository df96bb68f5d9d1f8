//! Team Cymru's IP-to-ASN answers, as the collector reads them for addresses
//! no loaded BGP table covers (no I/O here: the collector asks the DNS).
//!
//! A TXT query for `D.C.B.A.origin.asn.cymru.com` answers one record per
//! announced prefix covering the address:
//! `"ASN [ASN...] | PREFIX | CC | REGISTRY | DATE"`. Several ASNs mean the
//! prefix has several origins (MOAS); several records mean nested
//! announcements, of which the most specific is the one routing uses.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The DNS zone of Team Cymru's origin records.
pub const ORIGIN_ZONE: &str = "origin.asn.cymru.com";

/// The name of `addr`'s origin record: `D.C.B.A.origin.asn.cymru.com.` (fully
/// qualified, so that no search domain is tried).
pub fn origin_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{d}.{c}.{b}.{a}.{ORIGIN_ZONE}.")
}

/// One origin record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CymruOrigin {
    /// The origin ASes, as listed (never empty; several for a MOAS prefix).
    pub origins: Vec<u32>,
    /// The announced prefix covering the address, when given and valid.
    pub prefix: Option<Ipv4Net>,
    /// Country code, as given.
    pub country: String,
    /// Regional registry, as given.
    pub registry: String,
    /// Allocation date, as given.
    pub allocated: String,
}

impl CymruOrigin {
    /// The origin AS when the record names exactly one; `None` for a MOAS
    /// prefix, whose addresses no single AS can be said to hold.
    pub fn single_origin(&self) -> Option<u32> {
        match self.origins[..] {
            [asn] => Some(asn),
            _ => None,
        }
    }
}

/// An origin record that cannot be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CymruParseError {
    /// The first field holds no AS number.
    #[error("no origin AS in Team Cymru record '{0}'")]
    NoAsn(String),
    /// The first field holds something that is not a valid origin AS number.
    #[error("'{asn}' is not a valid origin AS number (in Team Cymru record '{record}')")]
    BadAsn {
        /// The offending token.
        asn: String,
        /// The whole record.
        record: String,
    },
}

/// Parses `"ASN [ASN...] | PREFIX | CC | REGISTRY | DATE"`. Only the ASNs are
/// required; an `AS` prefix on each is accepted; AS 0 (RFC 7607: not routed)
/// and anything but digits are refused, so one bad token refuses the record
/// rather than dropping an origin silently.
pub fn parse(record: &str) -> Result<CymruOrigin, CymruParseError> {
    let mut fields = record.split('|').map(str::trim);
    let first = fields.next().unwrap_or_default();
    let origins = first
        .split_whitespace()
        .map(|token| parse_asn(token, record))
        .collect::<Result<Vec<u32>, _>>()?;
    if origins.is_empty() {
        return Err(CymruParseError::NoAsn(record.to_owned()));
    }
    let mut text = || fields.next().unwrap_or_default().to_owned();
    let prefix = text().parse::<Ipv4Net>().ok().map(|p| p.trunc());
    Ok(CymruOrigin {
        origins,
        prefix,
        country: text(),
        registry: text(),
        allocated: text(),
    })
}

fn parse_asn(token: &str, record: &str) -> Result<u32, CymruParseError> {
    let digits = token
        .strip_prefix("AS")
        .or_else(|| token.strip_prefix("as"))
        .unwrap_or(token);
    match digits.parse::<u32>() {
        Ok(asn) if asn != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Ok(asn),
        _ => Err(CymruParseError::BadAsn {
            asn: token.to_owned(),
            record: record.to_owned(),
        }),
    }
}

/// The most specific of an address's origin records (nested announcements
/// give one record each); the first one on a tie; a record without a valid
/// prefix ranks below any with one. Unreadable records are skipped; `None`
/// when none can be read.
pub fn best<'a>(records: impl IntoIterator<Item = &'a str>) -> Option<CymruOrigin> {
    let rank = |o: &CymruOrigin| o.prefix.map_or(-1, |p| i16::from(p.prefix_len()));
    let mut best: Option<CymruOrigin> = None;
    for origin in records.into_iter().filter_map(|r| parse(r).ok()) {
        if best.as_ref().is_none_or(|b| rank(&origin) > rank(b)) {
            best = Some(origin);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_parsed() {
        let o = parse("131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18").unwrap();
        assert_eq!(
            o,
            CymruOrigin {
                origins: vec![131_279],
                prefix: Some("175.45.176.0/24".parse().unwrap()),
                country: "KP".into(),
                registry: "apnic".into(),
                allocated: "2009-12-18".into(),
            }
        );
        assert_eq!(o.single_origin(), Some(131_279));
    }

    #[test]
    fn every_origin_of_a_moas_prefix_is_kept() {
        let o = parse("4837 4134  9808 | 175.45.176.0/22 | KP | apnic |").unwrap();
        assert_eq!(o.origins, [4837, 4134, 9808]);
        assert_eq!(o.single_origin(), None);
        assert_eq!(o.allocated, "");
    }

    #[test]
    fn odd_but_readable_records() {
        // Only the ASN is needed; 4-byte ASNs; an "AS" prefix; no spaces around bars.
        assert_eq!(parse("4200000001").unwrap().origins, [4_200_000_001]);
        assert_eq!(
            parse("AS3356|4.0.0.0/9|US|arin|1992-12-01")
                .unwrap()
                .origins,
            [3356]
        );
        let o = parse("  20485 | not-a-prefix | RU | ripencc | 2000-01-01 ").unwrap();
        assert_eq!(
            (o.origins[0], o.prefix, o.country.as_str()),
            (20485, None, "RU")
        );
    }

    #[test]
    fn unreadable_records_are_refused() {
        assert!(matches!(parse(""), Err(CymruParseError::NoAsn(_))));
        assert!(matches!(
            parse(" | 1.0.0.0/8 | US"),
            Err(CymruParseError::NoAsn(_))
        ));
        for bad in [
            "NA | 1.0.0.0/8",
            "0 | 1.0.0.0/8",
            "4294967296 | x",
            "+5 | x",
            "-5 | x",
            "12ab | x",
            "4837 bad | 1.0.0.0/8",
        ] {
            assert!(
                matches!(parse(bad), Err(CymruParseError::BadAsn { .. })),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn the_most_specific_record_wins_and_the_first_on_a_tie() {
        let records = [
            "garbage",
            "4837 4134 | 175.45.0.0/16 | CN | apnic | 2009-12-18",
            "131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18",
            "9999 | 175.45.176.0/24 | KP | apnic | 2009-12-18",
            "64500 | no prefix | KP | apnic | 2009-12-18",
        ];
        assert_eq!(best(records).unwrap().origins, [131_279]);
        assert_eq!(
            best(["4837 4134 | 1.0.0.0/8 | CN | apnic | x"])
                .unwrap()
                .origins,
            [4837, 4134]
        );
        assert_eq!(best(["garbage", "NA | x"]), None);
    }

    #[test]
    fn the_query_name_is_reversed_and_qualified() {
        assert_eq!(
            origin_name("175.45.176.1".parse().unwrap()),
            "1.176.45.175.origin.asn.cymru.com."
        );
    }
}
