//! Origin ASes of addresses no loaded BGP table covers: the [`OriginLookup`] trait the hop
//! mapper asks, and how Team Cymru's origin TXT answers are read.
//!
//! A TXT query for `D.C.B.A.origin.asn.cymru.com` answers one record per announced prefix
//! covering the address, `"ASN [ASN...] | PREFIX | CC | REGISTRY | DATE"`. Records are parsed
//! by [`nkpath_proto::cymru`]; [`best_answer`] keeps the most specific prefix's origins. The
//! lookup itself (DNS, the database cache) is an adapter outside the core
//! (`sources::cymru`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nkpath_proto::cymru;

/// The origin ASes of an address, by some lookup outside the loaded BGP data.
pub trait OriginLookup {
    /// The origin ASes of `addr` (empty when unknown).
    fn origins(&mut self, addr: Ipv4Addr) -> Vec<u32>;
}

/// What Team Cymru says of one address: the origins of the most specific prefix it knows,
/// or nothing (`origins` empty, `prefix` `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CymruAnswer {
    /// The origin ASes, as listed.
    pub origins: Vec<u32>,
    /// The prefix they originate.
    pub prefix: Option<Ipv4Net>,
}

/// The origins of the most specific prefix among the TXT answers.
pub fn best_origins<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<u32> {
    best_answer(texts).origins
}

/// The most specific prefix among the TXT answers, with its origins (unreadable answers are
/// ignored; none left: nothing known).
pub fn best_answer<'a>(texts: impl IntoIterator<Item = &'a str>) -> CymruAnswer {
    cymru::best(texts).map_or_else(CymruAnswer::default, |o| CymruAnswer {
        origins: o.origins,
        prefix: o.prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_most_specific_answer() {
        let got = best_origins([
            "131279 | 175.45.176.0/22 | KP | apnic | 2009-12-18",
            "131279 | 175.45.176.0/24 | KP | apnic | 2009-12-18",
            "4837 4134 | 175.45.0.0/16 | CN | apnic | 2009-12-18",
        ]);
        assert_eq!(got, vec![131_279]);
        let answer = best_answer(["4837 | 175.45.0.0/16 | CN | apnic | x", "bad | x"]);
        assert_eq!(answer.prefix, Some("175.45.0.0/16".parse().unwrap()));
        assert_eq!(best_answer(["garbage"]), CymruAnswer::default());
        assert_eq!(best_origins(["garbage"]), Vec::<u32>::new());
        assert_eq!(
            best_origins(["4837 4134 | 1.0.0.0/8 | CN | apnic | x"]),
            vec![4837, 4134]
        );
    }
}
