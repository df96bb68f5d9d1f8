//! Entry AS inference (see the module docs of [`crate::analysis`] for the definition).

use std::net::Ipv4Addr;

use nkpath_proto::ReplyKind;

use super::hopmap::HopClass;

/// One TTL of a trace as the entry inference sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHop {
    /// The probe TTL.
    pub ttl: u8,
    /// Every address that replied at this TTL, once each, in the order of their first
    /// reply; empty for a silent TTL. Probes of one TTL may be answered by several routers
    /// (load balancing, a route change during the trace): each one counts.
    pub replies: Vec<EntryReply>,
    /// Whether the trace took this hop from another trace of its survey (a stop set) instead
    /// of probing it with its own flow: a reply for mapping, not an observation of this path.
    pub inherited: bool,
}

/// One address that replied at a TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryReply {
    /// The replying address.
    pub address: Ipv4Addr,
    /// Its class.
    pub class: HopClass,
    /// What its first reply says (time exceeded, unreachable and which code, …).
    pub kind: Option<ReplyKind>,
    /// Whether a reply of it quoted an MPLS label stack (RFC 4950): the hop is inside a
    /// tunnel whose other hops may be hidden.
    pub mpls: bool,
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
    /// When addresses of several public ASes (other than the target) replied at the entry
    /// TTL: each AS with the first address that showed it, and the TTL. The entry AS is then
    /// `None` (no single one) and the verdict `ambiguous`.
    pub several: Option<(u8, Vec<(u32, Ipv4Addr)>)>,
    /// Why it is inferred or unknown (empty for an observed entry).
    pub reasons: Vec<String>,
}

impl Entry {
    /// `AS4837`, `AS4837 (inferred)`, `AS4837 or AS20485 (several at TTL 5)` or `unknown`.
    pub fn label(&self) -> String {
        match (self.asn, self.inferred, &self.several) {
            (Some(a), false, _) => format!("AS{a}"),
            (Some(a), true, _) => format!("AS{a} (inferred)"),
            (None, _, Some((ttl, ases))) => format!(
                "{} (several at TTL {ttl})",
                ases.iter()
                    .map(|(a, _)| format!("AS{a}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            (None, _, None) => "unknown".into(),
        }
    }
}

/// The public AS of a reply, when it maps to exactly one.
fn public_asn(reply: &EntryReply) -> Option<u32> {
    reply.class.asn()
}

/// Infers the entry AS from a trace's hops (sorted by TTL), considering every reply of each
/// TTL. `agent_asn` is the AS of the agent's source address.
pub fn infer_entry(hops: &[EntryHop], target_asn: u32, agent_asn: Option<u32>) -> Entry {
    let in_target = |r: &EntryReply| public_asn(r) == Some(target_asn);
    let outside = |r: &EntryReply| public_asn(r).is_some_and(|asn| asn != target_asn);
    let target_at = hops.iter().position(|h| h.replies.iter().any(in_target));
    let before = &hops[..target_at.unwrap_or(hops.len())];
    let target_hop = target_at.and_then(|i| {
        let hop = &hops[i];
        hop.replies
            .iter()
            .find(|r| in_target(r))
            .map(|r| (hop.ttl, r.address))
    });
    if target_at.is_none()
        && let Some(stopped) = stopped_outside(hops)
    {
        return Entry {
            reasons: vec![stopped],
            ..Entry::default()
        };
    }
    let Some(at) = before.iter().rposition(|h| h.replies.iter().any(outside)) else {
        return Entry {
            target_hop,
            reasons: vec!["no hop maps to a public AS other than the target".into()],
            ..Entry::default()
        };
    };
    let entry_hop = &before[at];
    // Each public AS of the entry TTL once, with the first address that showed it.
    let mut ases: Vec<(u32, Ipv4Addr)> = Vec::new();
    for reply in entry_hop.replies.iter().filter(|r| outside(r)) {
        let asn = public_asn(reply).expect("filtered on a public AS");
        if !ases.iter().any(|(a, _)| *a == asn) {
            ases.push((asn, reply.address));
        }
    }
    let (asn, address) = ases[0];
    let several = ases.len() > 1;
    if !several && target_at.is_none() && Some(asn) == agent_asn {
        return Entry {
            reasons: vec![format!(
                "nothing answered beyond the agent's own AS{asn} and the target AS never answered"
            )],
            ..Entry::default()
        };
    }
    let mut reasons = Vec::new();
    if several {
        let list: Vec<String> = ases.iter().map(|(a, x)| format!("AS{a} ({x})")).collect();
        reasons.push(format!(
            "TTL {} replied from several ASes: {}; no single entry AS",
            entry_hop.ttl,
            list.join(", ")
        ));
    }
    for reply in entry_hop.replies.iter().filter(|r| !outside(r)) {
        reasons.push(format!(
            "TTL {} also replied from {} ({})",
            entry_hop.ttl, reply.address, reply.class
        ));
    }
    let mut previous_ttl = entry_hop.ttl;
    for hop in &before[at + 1..] {
        if hop.ttl > previous_ttl.saturating_add(1) {
            reasons.push(format!(
                "TTL {}..{} not probed",
                previous_ttl + 1,
                hop.ttl - 1
            ));
        }
        previous_ttl = hop.ttl;
        if hop.replies.is_empty() {
            reasons.push(format!("TTL {} silent", hop.ttl));
        }
        for reply in &hop.replies {
            reasons.push(format!(
                "TTL {} {} is {}",
                hop.ttl, reply.address, reply.class
            ));
        }
    }
    if let Some((ttl, _)) = target_hop
        && ttl > previous_ttl.saturating_add(1)
    {
        reasons.push(format!("TTL {}..{} not probed", previous_ttl + 1, ttl - 1));
    }
    match target_at {
        None => reasons.push("the target AS never answered".into()),
        Some(i) => {
            // Another router at the target TTL, outside the target AS: some probes of that
            // TTL had not entered yet, so where they enter was not seen.
            let hop = &hops[i];
            for reply in hop.replies.iter().filter(|r| outside(r)) {
                reasons.push(format!(
                    "TTL {} also replied from {} ({}) outside the target AS",
                    hop.ttl, reply.address, reply.class
                ));
            }
        }
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
        if hop.replies.iter().any(|r| r.mpls) {
            reasons.push(format!(
                "TTL {} answered with an MPLS label stack: hops inside the tunnel are hidden",
                hop.ttl
            ));
        }
    }
    if several {
        return Entry {
            inferred: true,
            target_hop,
            several: Some((entry_hop.ttl, ases)),
            reasons,
            ..Entry::default()
        };
    }
    Entry {
        asn: Some(asn),
        inferred: !reasons.is_empty(),
        hop: Some((entry_hop.ttl, address)),
        target_hop,
        several: None,
        reasons,
    }
}

/// When the trace's last replying TTL was answered only by ICMP unreachables sent by
/// routers (not the destination) outside the target AS, the probes never entered it: the
/// reason, naming the first such router's AS.
fn stopped_outside(hops: &[EntryHop]) -> Option<String> {
    let last = hops.iter().rev().find(|h| !h.replies.is_empty())?;
    let mut codes = last
        .replies
        .iter()
        .map(|r| r.kind.and_then(ReplyKind::unreachable));
    if !codes.all(|c| c.is_some_and(|c| !c.is_from_destination())) {
        return None;
    }
    let first = &last.replies[0];
    let code = first.kind?.unreachable()?;
    let what = if code.is_filtered() {
        "filtered-in"
    } else {
        "unreachable-in"
    };
    let who = first
        .class
        .asn()
        .map_or_else(|| first.class.to_string(), |a| format!("AS{a}"));
    let others = last.replies.len() - 1;
    Some(format!(
        "{what} {who} ({} at TTL {} answered ICMP unreachable code {code}{}; the probes never \
         entered the target AS)",
        first.address,
        last.ttl,
        if others == 0 {
            String::new()
        } else {
            format!(", as did {others} more address(es) at that TTL")
        }
    ))
}

#[cfg(test)]
mod tests {
    use nkpath_proto::UnreachableCode;

    use super::*;

    const NK: u32 = 131_279;

    fn reply(address: Ipv4Addr, class: HopClass) -> EntryReply {
        EntryReply {
            address,
            class,
            kind: Some(ReplyKind::TimeExceeded { code: 0 }),
            mpls: false,
        }
    }

    fn hop(ttl: u8, class: Option<HopClass>) -> EntryHop {
        EntryHop {
            ttl,
            replies: class
                .map(|c| reply(Ipv4Addr::new(192, 0, 2, ttl), c))
                .into_iter()
                .collect(),
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
        hops[2].replies[0].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.asn, None, "{e:?}");
        assert!(
            e.reasons[0].starts_with("filtered-in AS4837"),
            "{:?}",
            e.reasons
        );

        // Host unreachable from a router: not filtering, but it did not enter either.
        hops[2].replies[0].kind = Some(ReplyKind::Unreachable(UnreachableCode::Host));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.asn, None);
        assert!(
            e.reasons[0].starts_with("unreachable-in AS4837"),
            "{:?}",
            e.reasons
        );

        // Port unreachable is the destination's own answer (UDP traces): no such rule.
        hops[2].replies[0].kind = Some(ReplyKind::Unreachable(UnreachableCode::Port));
        assert_eq!(infer_entry(&hops, NK, Some(24940)).asn, Some(4837));

        // `!X` from inside the target AS: the trace did enter.
        let mut hops = as_hops(&[Some(24940), Some(4837), Some(NK)]);
        hops[2].replies[0].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
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
        hops[1].replies[0].mpls = true;
        // Before the entry hop: the tunnel is inside the upstream, the entry is still seen.
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), false), "{:?}", e.reasons);
        hops[2].replies[0].mpls = true;
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
        assert!(e.reasons[0].contains("MPLS"), "{:?}", e.reasons);
        hops[2].replies[0].mpls = false;
        hops[3].replies[0].mpls = true;
        assert!(infer_entry(&hops, NK, Some(24940)).inferred);
    }

    fn two_replies(ttl: u8, first: HopClass, second: HopClass) -> EntryHop {
        EntryHop {
            ttl,
            replies: vec![
                reply(Ipv4Addr::new(192, 0, 2, ttl), first),
                reply(Ipv4Addr::new(198, 51, 100, ttl), second),
            ],
            inherited: false,
        }
    }

    /// Issue 19: every reply of a TTL counts, not only the first.
    #[test]
    fn several_ases_at_the_entry_ttl_leave_no_single_entry() {
        let mut hops = as_hops(&[Some(24940), None, Some(NK)]);
        hops[1] = two_replies(2, HopClass::As(4837), HopClass::As(20485));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.hop), (None, None), "{e:?}");
        assert_eq!(
            e.several,
            Some((
                2,
                vec![
                    (4837, Ipv4Addr::new(192, 0, 2, 2)),
                    (20485, Ipv4Addr::new(198, 51, 100, 2))
                ]
            ))
        );
        assert_eq!(e.target_hop.map(|h| h.0), Some(3));
        assert!(e.reasons[0].contains("several ASes"), "{:?}", e.reasons);
        assert_eq!(e.label(), "AS4837 or AS20485 (several at TTL 2)");

        // Two routers of one AS at the entry TTL: that AS, observed.
        hops[1] = two_replies(2, HopClass::As(4837), HopClass::As(4837));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred, e.several), (Some(4837), false, None));
    }

    #[test]
    fn a_second_reply_at_the_entry_ttl_that_maps_to_no_as_makes_it_inferred() {
        let mut hops = as_hops(&[Some(24940), None, Some(NK)]);
        hops[1] = two_replies(2, HopClass::As(4837), HopClass::Unmapped);
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
        assert!(
            e.reasons[0].contains("also replied from 198.51.100.2 (unmapped)"),
            "{:?}",
            e.reasons
        );
        // Silent and non-public hops between entry and target: each reply named.
        let mut hops = as_hops(&[Some(4837), None, Some(NK)]);
        hops[1] = two_replies(2, HopClass::Private, HopClass::Ixp("X-IX".into()));
        let e = infer_entry(&hops, NK, None);
        assert_eq!((e.asn, e.inferred), (Some(4837), true));
        assert_eq!(e.reasons.len(), 2, "{:?}", e.reasons);
    }

    #[test]
    fn the_target_ttl_is_the_first_with_any_reply_from_the_target_as() {
        // TTL 3: one probe already inside the target AS, another still in China Unicom.
        let mut hops = as_hops(&[Some(24940), Some(4837), None, Some(NK)]);
        hops[2] = two_replies(3, HopClass::As(4837), HopClass::As(NK));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.target_hop, Some((3, Ipv4Addr::new(198, 51, 100, 3))));
        assert_eq!((e.asn, e.inferred), (Some(4837), true), "{:?}", e.reasons);
        assert_eq!(e.hop.map(|h| h.0), Some(2));
        assert!(
            e.reasons[0].contains("outside the target AS"),
            "{:?}",
            e.reasons
        );
    }

    #[test]
    fn an_unreachable_among_other_replies_of_the_last_ttl_does_not_stop_the_trace() {
        let mut hops = as_hops(&[Some(24940), Some(1299), None]);
        hops[2] = two_replies(3, HopClass::As(4837), HopClass::As(4837));
        hops[2].replies[0].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!((e.asn, e.inferred), (Some(4837), true), "{e:?}");
        // Every reply of the last TTL refused: the probes never entered.
        hops[2].replies[1].kind = Some(ReplyKind::Unreachable(UnreachableCode::AdminProhibited));
        let e = infer_entry(&hops, NK, Some(24940));
        assert_eq!(e.asn, None);
        assert!(
            e.reasons[0].starts_with("filtered-in AS4837") && e.reasons[0].contains("1 more"),
            "{:?}",
            e.reasons
        );
    }
}
