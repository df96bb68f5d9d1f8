//! Printing a trace the way traceroute users expect to read it.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use nkpath_proto::text::escape_control;
use nkpath_proto::{FlowId, MultipathResult, Reply, ReplyKind, TraceResult, UnreachableCode};

/// Renders a trace as traceroute does: one line per TTL, the address (and name
/// when known) each time it changes, the RTT of every probe, `*` for silence,
/// and `!X`-style marks for unreachables. Origin ASes are the collector's to
/// say (from BGP data); the agent does not look them up.
pub fn render_trace(result: &TraceResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nkpath trace to {} from {}, {}, {} hops max",
        result.target,
        result.source,
        describe_flow(result.flow),
        result.params.max_ttl
    );
    for hop in &result.hops {
        let _ = write!(out, "{:2} ", hop.ttl);
        let mut last: Option<Ipv4Addr> = None;
        for probe in &hop.probes {
            match &probe.reply {
                None => out.push_str(" *"),
                Some(reply) => {
                    if last != Some(reply.address) {
                        let _ = write!(out, " {}", reply.address);
                        if let Some(name) = name_of(result, reply.address) {
                            // A PTR name is whatever the remote DNS says.
                            let _ = write!(out, " ({})", escape_control(name));
                        }
                        last = Some(reply.address);
                    }
                    let _ = write!(out, "  {:.3} ms", f64::from(reply.rtt_us) / 1000.0);
                    if let Some(mark) = mark(reply) {
                        let _ = write!(out, " {mark}");
                    }
                    if !reply.mpls_labels.is_empty() {
                        let labels: Vec<String> = reply
                            .mpls_labels
                            .iter()
                            .map(|l| l.label.to_string())
                            .collect();
                        let _ = write!(out, " <MPLS {}>", labels.join(","));
                    }
                }
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "stop reason: {}", stop_reason_text(result));
    out
}

fn stop_reason_text(result: &TraceResult) -> String {
    stop_word(result.stop_reason)
}

fn stop_word(reason: nkpath_proto::StopReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{reason:?}"))
}

/// Renders a multipath trace: per TTL every interface with how many flows
/// reached it and its lowest RTT, the links to the next TTL, and whether a
/// per-packet balancer or the budget made the picture incomplete.
pub fn render_multipath(result: &MultipathResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "nkpath multipath trace to {} from {}, {}, confidence {} %, {} flows, {} probes",
        result.target,
        result.source,
        result.protocol,
        result.params.confidence,
        result.flows.len(),
        result.probes_sent,
    );
    for hop in &result.hops {
        let note = if hop.per_packet {
            "  [per-packet balancer: not a per-flow diamond]"
        } else if hop.interfaces.len() > 1 {
            "  [per-flow balanced]"
        } else {
            ""
        };
        let _ = writeln!(out, "{:2}{note}", hop.ttl);
        for interface in &hop.interfaces {
            let address = interface.address;
            let _ = write!(
                out,
                "    {:15}  {} flows",
                address.to_string(),
                interface.flows.len()
            );
            if let Some(reply) = &interface.reply {
                let _ = write!(out, "  {:.3} ms", f64::from(reply.rtt_us) / 1000.0);
                if let Some(mark) = mark(reply) {
                    let _ = write!(out, " {mark}");
                }
            }
            let next: Vec<String> = result
                .links
                .iter()
                .filter(|l| l.near_ttl == hop.ttl && l.near == address)
                .map(|l| {
                    if l.far_ttl == hop.ttl + 1 {
                        l.far.to_string()
                    } else {
                        format!("{} (ttl {})", l.far, l.far_ttl)
                    }
                })
                .collect();
            if !next.is_empty() {
                let _ = write!(out, "  -> {}", next.join(", "));
            }
            out.push('\n');
        }
        if !hop.silent_flows.is_empty() {
            let _ = writeln!(out, "    *                {} flows", hop.silent_flows.len());
        }
    }
    let _ = write!(out, "stop reason: {}", stop_word(result.stop_reason));
    if result.budget_hit {
        out.push_str(" (budget hit: some next hops may be missing)");
    }
    out.push('\n');
    out
}

fn describe_flow(flow: FlowId) -> String {
    match flow {
        FlowId::Icmp { checksum, .. } => format!("icmp echo (flow: checksum {checksum:#06x})"),
        FlowId::Udp { src_port, dst_port } => format!("udp (flow: ports {src_port} -> {dst_port})"),
        FlowId::Tcp { src_port, dst_port } => {
            format!("tcp syn (flow: ports {src_port} -> {dst_port})")
        }
    }
}

fn name_of(result: &TraceResult, addr: Ipv4Addr) -> Option<&str> {
    result
        .annotations
        .iter()
        .find(|a| a.address == addr && a.name.is_some())
        .and_then(|a| a.name.as_deref())
}

/// traceroute's marks: `!N` network, `!H` host, `!P` protocol unreachable,
/// `!X` administratively prohibited, `!<code>` otherwise; TCP answers by flags.
fn mark(reply: &Reply) -> Option<String> {
    match reply.kind()? {
        ReplyKind::Tcp(flags) if flags.is_rst() => Some("[RST]".into()),
        ReplyKind::Tcp(flags) if flags.is_syn_ack() => Some("[SYN-ACK]".into()),
        ReplyKind::Tcp(flags) => Some(format!("[flags {:#04x}]", flags.0)),
        ReplyKind::Unreachable(code) => Some(match code {
            UnreachableCode::Net => "!N".into(),
            UnreachableCode::Host => "!H".into(),
            UnreachableCode::Protocol => "!P".into(),
            // Port unreachable: the normal end of a UDP trace.
            UnreachableCode::Port => return None,
            code if code.is_filtered() => "!X".into(),
            code => format!("!<{code}>"),
        }),
        ReplyKind::TimeExceeded { .. } | ReplyKind::EchoReply | ReplyKind::OtherIcmp { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_follow_traceroute() {
        let addr = Ipv4Addr::LOCALHOST;
        let mark_of = |kind| mark(&Reply::new(addr, 1, 64, kind));
        let unreachable = |code: u8| mark_of(ReplyKind::Unreachable(code.into()));
        assert_eq!(unreachable(0).as_deref(), Some("!N"));
        assert_eq!(unreachable(1).as_deref(), Some("!H"));
        assert_eq!(unreachable(2).as_deref(), Some("!P"));
        assert_eq!(unreachable(3), None);
        for filtered in [9, 10, 13] {
            assert_eq!(unreachable(filtered).as_deref(), Some("!X"));
        }
        assert_eq!(unreachable(4).as_deref(), Some("!<4>"));
        let tcp = |flags| mark_of(ReplyKind::Tcp(nkpath_proto::TcpFlags(flags)));
        assert_eq!(tcp(0x14).as_deref(), Some("[RST]"));
        assert_eq!(tcp(0x12).as_deref(), Some("[SYN-ACK]"));
        assert_eq!(tcp(0x01).as_deref(), Some("[flags 0x01]"));
        assert_eq!(mark_of(ReplyKind::TimeExceeded { code: 0 }), None);
        assert_eq!(mark_of(ReplyKind::EchoReply), None);
    }

    #[test]
    fn remote_names_cannot_drive_the_terminal() {
        let mut trace: TraceResult = nkpath_proto::decode(include_str!(
            "../../../proto/tests/golden/trace_result.json"
        ))
        .unwrap();
        let annotation = trace
            .annotations
            .iter_mut()
            .find(|a| a.name.is_some())
            .expect("the golden trace has a named hop");
        annotation.name = Some("evil\u{1b}[2J\u{1b}]0;owned\u{7}.example\r\n".into());
        let text = render_trace(&trace);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains('\u{7}') && !text.contains('\r'), "{text}");
        assert!(
            text.contains(r"(evil\u{1b}[2J\u{1b}]0;owned\u{7}.example\r\n)"),
            "{text}"
        );
        assert_eq!(escape_control("plain.example"), "plain.example");
    }
}
