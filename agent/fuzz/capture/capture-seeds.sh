#!/usr/bin/env bash
# Regenerates the real-capture seeds of agent/fuzz/corpus/reply_parser/.
#
# Builds a three-namespace chain of its own, pkt-a -- pkt-r -- pkt-b, runs
# traceroute (UDP, ICMP, TCP), scamper (Paris UDP, ICMP, TCP; ping) and
# nkpath's own probes from pkt-a toward pkt-b, captures the replies in
# pkt-a with tcpdump and writes each reply's IPv4 datagram to a seed file.
# Every probe is sent from inside pkt-a to addresses inside pkt-b; nothing
# is sent from the root namespace. The namespaces are deleted on exit,
# failure included.
#
#   10.77.1.2  pkt-a  a-r ===== r-a  pkt-r  r-b ===== b-r  pkt-b  10.77.2.2
#                                    10.77.1.1 / 10.77.2.1         10.77.2.3 (rejected by pkt-r:
#                                                                   ICMP admin-prohibited)
#
# Needs root, iproute2, nftables, tcpdump, traceroute, scamper, python3,
# and cargo (to print nkpath's probes; set PROBES_FILE to a file of
# `emit_probes` output to skip that). Set PCAP_DIR to keep the captures.
#
# Usage: agent/fuzz/capture/capture-seeds.sh [OUTPUT_DIR]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FUZZ=$(dirname "$HERE")
OUT=${1:-$FUZZ/corpus/reply_parser}
NAMESPACES=(pkt-a pkt-r pkt-b)
A=10.77.1.2
TARGET=10.77.2.2
PROHIBITED=10.77.2.3

for tool in ip nft tcpdump traceroute scamper python3; do
    command -v "$tool" >/dev/null || { echo "capture-seeds: $tool is not installed" >&2; exit 1; }
done
for ns in "${NAMESPACES[@]}"; do
    if ip netns list | grep -qw "^$ns"; then
        echo "capture-seeds: namespace $ns already exists; delete it or wait for its owner" >&2
        exit 1
    fi
done

WORK=$(mktemp -d)
BACKGROUND=()
MAIN_PID=$BASHPID
cleanup() {
    local pid ns
    # Background subshells inherit the trap: only the script itself cleans up.
    [[ $BASHPID == "$MAIN_PID" ]] || return 0
    for pid in "${BACKGROUND[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# nkpath's probes are computed before the testbed exists (a cold build can
# take minutes); emit_probes only prints them.
if [[ -n ${PROBES_FILE:-} ]]; then
    cp "$PROBES_FILE" "$WORK/probes.txt"
else
    cargo run --quiet --manifest-path "$FUZZ/Cargo.toml" --example emit_probes >"$WORK/probes.txt"
fi

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in "${NAMESPACES[@]}"; do
    ip netns add "$ns"
    in_ns "$ns" ip link set lo up
    # Routers and hosts answer every probe: no ICMP rate limiting here.
    in_ns "$ns" sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=10000 net.ipv4.icmp_msgs_burst=10000
done
ip link add a-r netns pkt-a type veth peer name r-a netns pkt-r
ip link add r-b netns pkt-r type veth peer name b-r netns pkt-b
in_ns pkt-a ip addr add "$A/24" dev a-r
in_ns pkt-r ip addr add 10.77.1.1/24 dev r-a
in_ns pkt-r ip addr add 10.77.2.1/24 dev r-b
in_ns pkt-b ip addr add "$TARGET/24" dev b-r
in_ns pkt-b ip addr add "$PROHIBITED/24" dev b-r
for link in pkt-a:a-r pkt-r:r-a pkt-r:r-b pkt-b:b-r; do in_ns "${link%%:*}" ip link set "${link#*:}" up; done
in_ns pkt-a ip route add default via 10.77.1.1
in_ns pkt-b ip route add default via 10.77.2.1
in_ns pkt-r sysctl -qw net.ipv4.ip_forward=1
in_ns pkt-r nft -f - <<NFT
table ip pkt_filter {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr $PROHIBITED reject with icmp type admin-prohibited
    }
}
NFT
# An open TCP port, so TCP probes get a SYN-ACK (port 81 stays closed: RST).
ip netns exec pkt-b python3 -m http.server 80 --bind "$TARGET" >/dev/null 2>&1 &
BACKGROUND+=($!)
if ! in_ns pkt-a scamper -c "ping -c 1" -i "$TARGET" | grep -q ", 1 packets received"; then
    echo "capture-seeds: pkt-a cannot reach $TARGET; the testbed is broken" >&2
    exit 1
fi

# capture LABEL COMMAND...: runs COMMAND in pkt-a while tcpdump records the
# replies arriving there, then extracts them as LABEL-*.bin seeds.
capture() {
    local label=$1 pcap="$WORK/$1.pcap" tcpdump_pid
    shift
    # Not through in_ns: $! must be tcpdump itself, not a subshell.
    ip netns exec pkt-a tcpdump -Z root -U -s 0 -i a-r -w "$pcap" "ip dst $A and (icmp or tcp)" 2>"$WORK/tcpdump.log" &
    tcpdump_pid=$!
    for _ in $(seq 50); do grep -q listening "$WORK/tcpdump.log" && break; sleep 0.1; done
    in_ns pkt-a "$@" >/dev/null 2>&1 || true   # a tool's own verdict does not matter here
    sleep 1
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || true
    if [[ ! -s $pcap ]]; then
        echo "capture-seeds: tcpdump failed for $label:" >&2
        cat "$WORK/tcpdump.log" >&2
        exit 1
    fi
    python3 "$HERE/extract_replies.py" --label "$label" --out "$OUT" "$pcap"
    if [[ -n ${PCAP_DIR:-} ]]; then cp "$pcap" "$PCAP_DIR/"; fi
}

mkdir -p "$OUT"
# Replace earlier seeds; files of other names (from fuzzing runs) stay.
rm -f "$OUT"/traceroute-* "$OUT"/scamper-* "$OUT"/nkpath-* "$OUT"/crafted-*

capture traceroute-udp traceroute -n -q 2 -w 1 "$TARGET"
capture traceroute-icmp traceroute -n -I -q 2 -w 1 "$TARGET"
capture traceroute-tcp-open traceroute -n -T -p 80 -q 2 -w 1 "$TARGET"
capture traceroute-tcp-closed traceroute -n -T -p 81 -q 2 -w 1 "$TARGET"
capture traceroute-prohibited traceroute -n -q 2 -w 1 "$PROHIBITED"
capture scamper-udp-paris scamper -c "trace -P udp-paris -q 2 -w 1" -i "$TARGET"
capture scamper-icmp-paris scamper -c "trace -P icmp-paris -q 2 -w 1" -i "$TARGET"
capture scamper-tcp scamper -c "trace -P tcp -d 80 -q 2 -w 1" -i "$TARGET"
capture scamper-ping scamper -c "ping -c 2 -i 0.2" -i "$TARGET"
capture nkpath python3 "$HERE/send_probes.py" <"$WORK/probes.txt"
python3 "$HERE/craft_mpls_seeds.py" "$OUT"

echo "seeds written to $OUT"
