#!/usr/bin/env bash
# Safety net for CI: no probe may leave the testbed's namespaces.
#
#   scripts/ci-safety.sh arm     before the tests: in the current (root) network
#                                namespace, count and drop every outgoing packet to the
#                                emulated public blocks (scripts/testbed blocks)
#   scripts/ci-safety.sh check   after the tests: print the counter, remove the table,
#                                exit 1 if any packet was caught (2 if not armed)
#
# Traffic between the testbed's namespaces never passes the root namespace's output
# hook, so a non-zero counter means something probed the emulated Internet from the
# root namespace: a bug to fix, and traffic that would have left this machine.
set -euo pipefail

table=nkpath_safety
here="$(cd "$(dirname "$0")" && pwd)"

arm() {
  local blocks
  blocks="$(python3 "$here/testbed" blocks | paste -sd, -)"
  [ -n "$blocks" ] || { echo "ci-safety: no blocks from scripts/testbed" >&2; exit 2; }
  nft delete table inet "$table" 2>/dev/null || true
  nft -f - <<NFT
table inet $table {
  counter leaked {}
  set emulated {
    type ipv4_addr
    flags interval
    elements = { $blocks }
  }
  chain output {
    type filter hook output priority -300; policy accept;
    ip daddr @emulated counter name leaked drop
  }
}
NFT
  echo "ci-safety: armed: dropping and counting output to $blocks"
}

check() {
  local listing packets
  if ! listing="$(nft list counter inet "$table" leaked 2>/dev/null)"; then
    echo "ci-safety: not armed (no table inet $table)" >&2
    exit 2
  fi
  packets="$(sed -n 's/.*packets \([0-9][0-9]*\).*/\1/p' <<<"$listing" | head -n1)"
  nft delete table inet "$table"
  echo "ci-safety: packets from the root namespace to the emulated blocks: ${packets:-?}"
  if [ "${packets:-x}" != 0 ]; then
    echo "ci-safety: FAILED: something probed the emulated Internet from the root namespace" >&2
    exit 1
  fi
}

case "${1:-}" in
  arm) arm ;;
  check) check ;;
  *) echo "usage: $0 arm|check" >&2; exit 2 ;;
esac
