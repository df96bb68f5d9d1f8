//! Entry AS inference (see the module docs of [`crate::analysis`] for the definition).

use std::net::Ipv4Addr;

use nkpath_proto::ReplyKind;

use super::hopmap::HopClass;

/// One TTL of a trace as the entry inference sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHop {
    /// The probe TTL.
    pub ttl: u8,
    /// The first replying address and its class; `None` for a silent TTL.
    pub reply: Option<(Ipv4Addr, HopClass)>,
    /// What that reply says (time exceeded, unreachable and which code, …).
    pub kind: Option<ReplyKind>,
    /// Whether the reply quoted an MPLS label stack (RFC 4950): the hop is inside a tunnel
    /// whose other hops may be hidden.
    pub mpls: bool,
    /// Whether the trace took this hop from another trace of its survey (a stop set) instead
    /// of probing it with its own flow: a reply for mapping, not an observation of this path.
    pub inherited: bool,
}

/// The entry AS of one trace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The entry AS; `None` is `unknown`.
    pub asn: Option<u32>,
    /// Whether it is inferred rather than observed (see the definition).
    pub inferred: bool,
    /// The hop that shows it: TTL and address.
    pub hop: Option<(u8, Ipv4Addr)>,
    /// The first hop inside the target AS: TTL and address.
    pub target_hop: Option<(u8, Ipv4Addr)>,
    /// Why it is inferred or unknown (empty for an observed entry).
    pub reasons: Vec<String>,
}

/// Infers the entry AS from a trace's hops (sorted by TTL). `agent_asn` is the AS of the
/// agent's source address.
pub fn infer_entry(hops: &[EntryHop], target_asn: u32, agent_asn: Option<u32>) -> Entry {
    let target_at = hops.iter().position(|h| {
        h.reply
            .as_ref()
            .is_some_and(|(_, c)| c.asn() == Some(target_asn))
    });
    let before = &hops[..target_at.unwrap_or(hops.len())];
    let target_hop = target_at.and_then(|i| hops[i].reply.as_ref().map(|(a, _)| (hops[i].ttl, *a)));
    if target_at.is_none()
        && let Some(stopped) = stopped_outside(hops)
    {
        return Entry {
            reasons: vec![stopped],
            ..Entry::default()
        };
    }
    let candidate = before.iter().rposition(|h| {
        h.reply
            .as_ref()
            .and_then(|(_, c)| c.asn())
            .is_some_and(|asn| asn != target_asn)
    });
    let Some(at) = candidate else {
        return Entry {
            target_hop,
            reasons: vec!["no hop maps to a public AS other than the target".into()],
            ..Entry::default()
        };
    };
    let (address, class) = before[at].reply.clone().expect("candidate replied");
    let asn = class.asn().expect("candidate is mapped");
    if target_at.is_none() && Some(asn) == agent_asn {
        return Entry {
            reasons: vec![format!(
                "nothing answered beyond the agent's own AS{asn} and the target AS never answered"
            )],
            ..Entry::default()
        };
    }
    let mut reasons = Vec::new();
    let mut previous_ttl = before[at].ttl;
    for hop in &before[at + 1..] {
        if hop.ttl > previous_ttl.saturating_add(1) {
            reasons.push(format!(
                "TTL {}..{} not probed",
                previous_ttl + 1,
                hop.ttl - 1
            ));
        }
        previous_ttl = hop.ttl;
        match &hop.reply {
            None => reasons.push(format!("TTL {} silent", hop.ttl)),
            Some((addr, class)) => reasons.push(format!("TTL {} {addr} is {class}", hop.ttl)),
        }
    }
    if let Some((ttl, _)) = target_hop
        && ttl > previous_ttl.saturating_add(1)
    {
        reasons.push(format!("TTL {}..{} not probed", previous_ttl + 1, ttl - 1));
    }
    if target_hop.is_none() {
        reasons.push("the target AS never answered".into());
    }
    let through_target = target_at.map_or(hops.len(), |i| i + 1);
    // `before` is a prefix of `hops`: the entry hop is `hops[at]`.
    for hop in &hops[at..through_target] {
        if hop.inherited {
            reasons.push(format!(
                "TTL {} inherited from another trace's flow, not probed by this one",
                hop.ttl
            ));
        }
        if hop.mpls {
            reasons.push(format!(
                "TTL {} answered with an MPLS label stack: hops inside the tunnel are hidden",
                hop.ttl
            ));
        }
    }
    Entry {
        asn: Some(asn),
        inferred: !reasons.is_empty(),
        hop: Some((before[at].ttl, address)),
        target_hop,
        reasons,
    }
}

/// When the trace's last reply is an ICMP unreachable sent by a router (not the destination)
/// outside the target AS, the probes never entered it: the reason, naming that router's AS.
fn stopped_outside(hops: &[EntryHop]) -> Option<String> {
    let last = hops.iter().rev().find(|h| h.reply.is_some())?;
    let (address, class) = last.reply.as_ref()?;
    let code = last.kind?.unreachable()?;
    if code.is_from_destination() {
        return None;
    }
    let what = if code.is_filtered() {
        "filtered-in"
    } else {
        "unreachable-in"
    };
    let who = class
        .asn()
        .map_or_else(|| class.to_string(), |a| format!("AS{a}"));
    Some(format!(
        "{what} {who} ({address} at TTL {} answered ICMP unreachable code {code}; the \
         probes never entered the target AS)",
        last.ttl
    ))
}

#[cfg(test)]
mod tests {
    use nkpath_proto::UnreachableCode;

    use super::*;

    const NK: u32 = 131_279;

    fn hop(ttl: u8, class: Option<HopClass>) -> EntryHop {
        EntryHop {
            ttl,
            reply: class.map(|c| (Ipv4Addr::new(192, 0, 2, ttl), c)),
            kind: Some(ReplyKind::TimeExceeded { code: 0 }),
            mpls: false,
            inherited: false,
        }
    }

    fn as_hops(asns: &[Option<u32>]) -> Vec<EntryHop> {
        asns.iter()
            .enumerate()
            .map(|(i, a)| hop(i as u8 + 1, a.map(HopClass::As)))
            .collect()
    }

    #[test]
    fn observed_entry_is_the_last_public_hop_before_the_target() {
        let e = infer_entry(
            &as_hops(&[Some(24940), Some(1299), Some(20485), Some(NK), Some(NK)]),
            NK,
            Some(24940),
        );
        assert_eq!(e.asn, Some(20485));
        assert!(!e.inferred, "{:?}", e.reasons);
        assert_eq!(e.hop.unwrap().0, 3);
        assert_eq!(e.target_hop.unwrap().0, 4);
    }

    #[test]
    fn silent_or_unmapped_hops_before_the_target_make_it_inferred() {
        let e = infer_entry(
            &as_hops(&[Some(24940), Some(4837), None, Some(NK)]),
            NK,
            Some(24940),
        );
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
        assert!(e.reasons[0].contains("silent"), "{:?}", e.reasons);

        let mut hops = as_hops(&[Some(24940), Some(4837)]);
        hops.push(hop(3, Some(HopClass::Ixp("X-IX".into()))));
        hops.push(hop(4, Some(HopClass::As(NK))));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), true));

        // An IXP hop *before* the entry hop does not matter.
        let mut hops = vec![hop(1, Some(HopClass::Private))];
        hops.push(hop(2, Some(HopClass::Ixp("X-IX".into()))));
        hops.push(hop(3, Some(HopClass::As(4837))));
        hops.push(hop(4, Some(HopClass::As(NK))));
        let e = infer_entry(&hops, NK, Some(64500));
        assert_eq!((e.asn, e.inferred), (Some(4837), false));

        // A TTL that was never probed is a gap too.
        let hops = vec![
            hop(1, Some(HopClass::As(4837))),
            hop(3, Some(HopClass::As(NK))),
        ];
        let e = infer_entry(&hops, NK, None);
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
    }

    #[test]
    fn target_never_answering_makes_it_inferred() {
        let e = infer_entry(
            &as_hops(&[Some(24940), Some(1299), Some(20485), None, None]),
            NK,
            Some(24940),
        );
        assert_eq!((e.asn, e.inferred), (Some(20485), true));
        assert!(e.target_hop.is_none());
    }

    #[test]
    fn unknown_when_nothing_beyond_the_agents_as() {
        let e = infer_entry(&as_hops(&[Some(24940), Some(24940), None]), NK, Some(24940));
        assert_eq!(e.asn, None);
        let e = infer_entry(&as_hops(&[None, None]), NK, Some(24940));
        assert_eq!(e.asn, None);
        // Only private hops, then the target: no public hop at all.
        let hops = vec![
            hop(1, Some(HopClass::Private)),
            hop(2, Some(HopClass::As(NK))),
        ];
        assert_eq!(infer_entry(&hops, NK, Some(64500)).asn, None);
        // An agent inside the upstream whose next hop is the target: that upstream is the
        // entry.
        let e = infer_entry(&as_hops(&[Some(4837), Some(NK)]), NK, Some(4837));
        assert_eq!((e.asn, e.inferred), (Some(4837), false));
    }

    #[test]
    fn multi_origin_hops_are_not_forced_into_an_as() {
        let hops = vec![
            hop(1, Some(HopClass::As(4837))),
            hop(2, Some(HopClass::MultiOrigin(vec![4837, 20485]))),
            hop(3, Some(HopClass::As(NK))),
        ];
        let e = infer_entry(&hops, NK, None);
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
    }

    #[test]
    fn admin_prohibited_outside_the_target_means_the_trace_never_entered() {
        // As a real 2019 traceroute ends: `!X` from the upstream, the target never answers.
        let mut hops = as_hops(&[Some(24940), Some(1299), Some(4837)]);
        hops[2].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.asn, None, "{e:?}");
        assert!(
            e.reasons[0].starts_with("filtered-in AS4837"),
            "{:?}",
            e.reasons
        );

        // Host unreachable from a router: not filtering, but it did not enter either.
        hops[2].kind = Some(ReplyKind::Unreachable(UnreachableCode::Host));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.asn, None);
        assert!(
            e.reasons[0].starts_with("unreachable-in AS4837"),
            "{:?}",
            e.reasons
        );

        // Port unreachable is the destination's own answer (UDP traces): no such rule.
        hops[2].kind = Some(ReplyKind::Unreachable(UnreachableCode::Port));
        assert_eq!(infer_entry(&hops, NK, Some(24940)).asn, Some(4837));

        // `!X` from inside the target AS: the trace did enter.
        let mut hops = as_hops(&[Some(24940), Some(4837), Some(NK)]);
        hops[2].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), false));
    }

    /// Issue 9: a hop taken from another trace's flow (a stop set) is a reply for mapping,
    /// but an entry seen through one is inferred, not observed.
    #[test]
    fn inherited_hops_from_entry_to_target_make_it_inferred() {
        let hops = as_hops(&[Some(64_500), Some(4837), Some(4837), Some(NK), Some(NK)]);
        let observed = infer_entry(&hops, NK, Some(64_500));
        assert_eq!((observed.asn, observed.inferred), (Some(4837), false));
        for ttl in [3u8, 4] {
            let mut with = hops.clone();
            with[usize::from(ttl) - 1].inherited = true;
            let e = infer_entry(&with, NK, Some(64_500));
            assert_eq!((e.asn, e.inferred), (Some(4837), true), "TTL {ttl}");
            assert!(e.reasons[0].contains("inherited"), "{:?}", e.reasons);
        }
        // Inherited hops before the entry hop, or past the target hop, change nothing.
        let mut with = hops.clone();
        with[0].inherited = true;
        with[1].inherited = true;
        with[4].inherited = true;
        let e = infer_entry(&with, NK, Some(64_500));
        assert_eq!((e.asn, e.inferred), (Some(4837), false), "{:?}", e.reasons);
    }

    #[test]
    fn mpls_label_stacks_between_entry_and_target_make_it_inferred() {
        let mut hops = as_hops(&[Some(24940), Some(4837), Some(4837), Some(NK)]);
        hops[1].mpls = true;
        // Before the entry hop: the tunnel is inside the upstream, the entry is still seen.
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), false), "{:?}", e.reasons);
        hops[2].mpls = true;
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
        assert!(e.reasons[0].contains("MPLS"), "{:?}", e.reasons);
        hops[2].mpls = false;
        hops[3].mpls = true;
        assert!(infer_entry(&hops, NK, Some(24940)).inferred);
    }
}
