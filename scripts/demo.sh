#!/usr/bin/env bash
# nkpath's main job, end to end, on the emulated Internet:
#
#   sudo scripts/demo.sh            (NKPATH_DEMO_ROUNDS=N for more rounds; default 2)
#
# It installs what it needs, builds in release mode, brings up the emulated
# Internet (scripts/testbed), starts the collector in its namespace, registers
# three agents and runs them as the service runs them — `nkpath-agent run` in
# each vantage point's namespace, as an unprivileged user with CAP_NET_RAW only
# (through setpriv) — for a few rounds, loads the route collector's MRT dumps,
# prints the upstream report, the mismatch report and the outage list, writes the CSV export to
# ./demo-out/, and tears everything down, also when something fails.
#
# No packet leaves the testbed's namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run as root (the emulated Internet is built from network namespaces)" >&2
  exit 2
fi

step() { printf '\n==> %s\n' "$*"; }

ROUNDS="${NKPATH_DEMO_ROUNDS:-2}"
ID=demo
OUT="$repo/demo-out"

step "installing missing Debian packages"
scripts/install-deps

step "building (release)"
build_start=$(date +%s)
cargo build --release --locked -p nkpath-agent -p nkpath-collector
echo "build took $(( $(date +%s) - build_start )) s"
run_start=$(date +%s)

work="$(mktemp -d /tmp/nkpath-demo.XXXXXX)"
collector_pid=""
agent_pids=()
cleanup() {
  local status=$?
  set +e
  for pid in "${agent_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  [ -n "$collector_pid" ] && kill -TERM "$collector_pid" 2>/dev/null
  wait 2>/dev/null
  scripts/testbed down --id "$ID" >/dev/null 2>&1
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

# The service runs a world-readable copy of the binaries, as the unit does.
chmod 755 "$work"
install -d -m 755 "$work/bin"
install -m 755 target/release/nkpath-agent target/release/nkpath-collector "$work/bin/"
agent="$work/bin/nkpath-agent"
collector="$work/bin/nkpath-collector"
db="$work/collector/nkpath.db"
install -d -m 700 "$work/collector"

step "bringing up the emulated Internet"
scripts/testbed down --id "$ID" >/dev/null 2>&1 || true
manifest="$(scripts/testbed up --id "$ID" --icmp-limits exact | tail -n 1)"
json() { python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$manifest" "$1"; }
collector_ip="$(json "m['collector']['address']")"
collector_node="$(json "m['collector']['node']")"
mrt_dir="$(json "m['mrt_dir']")"
vps="$(json "' '.join(sorted(m['vantage_points']))")"
echo "vantage points: $vps; collector at $collector_ip ($collector_node)"

# The demo's agents survey the whole block every minute, which fleet scheduling (on by
# default: 1 probe/s into each /24, shared by the fleet) would spread over hours: it is
# off here, as in a database upgraded from before it existed.
"$collector" --db "$db" fleet --schedule off >/dev/null
step "starting the collector in $collector_node"
port=8080
scripts/testbed exec --id "$ID" "$collector_node" -- \
  "$collector" --db "$db" serve --listen "$collector_ip:$port" >"$work/collector.log" 2>&1 &
collector_pid=$!
for _ in $(seq 100); do
  if scripts/testbed exec --id "$ID" "$collector_node" -- python3 -c \
      "import urllib.request,sys; urllib.request.urlopen('http://$collector_ip:$port/v1/health', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$collector_pid" 2>/dev/null || { cat "$work/collector.log"; echo "the collector did not start" >&2; exit 1; }
  sleep 0.1
done

step "registering three agents and starting them as services ($ROUNDS rounds each)"
for vp in $vps; do
  name="demo-$vp"
  token="$("$collector" --db "$db" agent add "$name" | tail -n 1)"
  dir="$work/agents/$vp"
  install -d -m 755 "$work/agents"
  install -d -m 700 -o nobody -g nogroup "$dir"
  printf '%s\n' "$token" > "$dir/token"
  chown nobody:nogroup "$dir/token"; chmod 600 "$dir/token"
  cat > "$dir/agent.toml" <<CONF
agent_id = "$name"
user = "nobody"
allowlist = ["175.45.176.0/22"]
targets = ["175.45.176.0/22"]
protocol = "icmp"

[collector]
url = "http://$collector_ip:$port"
token_file = "token"

[schedule]
interval = "1m"
jitter = 0.05

[probing]
pps = 200
per_prefix_pps = 50

[liveness]
pings = 1

[dns]
resolver = "$(json "m['dns']['address']")"

[spool]
path = "$dir/spool.db"

[upload]
batch_size = 200
CONF
  chown nobody:nogroup "$dir/agent.toml"
  scripts/testbed exec --id "$ID" "$vp" -- setpriv --reuid=nobody --regid=nogroup --clear-groups \
    --inh-caps=-all,+net_raw --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw -- \
    "$agent" run --config "$dir/agent.toml" --rounds "$ROUNDS" >"$work/agent-$vp.log" 2>&1 &
  agent_pids+=($!)
  echo "started $name in $vp"
done

step "waiting for the agents' rounds and uploads"
failed=0
for i in "${!agent_pids[@]}"; do
  if ! wait "${agent_pids[$i]}"; then failed=1; fi
done
agent_pids=()
for vp in $vps; do
  echo "--- nkpath-agent status ($vp)"
  "$agent" status --config "$work/agents/$vp/agent.toml" || true
done
if [ "$failed" != 0 ]; then
  for vp in $vps; do echo "--- log of $vp"; tail -n 20 "$work/agent-$vp.log"; done
  echo "an agent failed" >&2
  exit 1
fi
kill -TERM "$collector_pid"; wait "$collector_pid" || true; collector_pid=""

step "loading the route collector's MRT RIB dumps"
# The newest dump may still be being written: leave it out.
mapfile -t dumps < <(ls "$mrt_dir"/rib.* | sort | head -n -1)
"$collector" --db "$db" bgp load --collector rc-demo "${dumps[@]}"

step "upstream report"
"$collector" --db "$db" report upstreams

step "mismatch report"
"$collector" --db "$db" report mismatches > "$work/mismatches.txt"
head -n 30 "$work/mismatches.txt"
total_lines=$(wc -l < "$work/mismatches.txt")
if [ "$total_lines" -gt 30 ]; then
  echo "... $total_lines lines in all: the whole report is in $OUT/mismatches.txt"
fi

step "outage list (report reachability: per /24 both planes and RPKI, then the outages)"
"$collector" --db "$db" report reachability --no-dns --outage-settle 0 --format csv > "$work/reachability.csv"
# The agents have stopped and uploaded everything: no settling delay for late uploads.
# The outage list is the second table of the CSV.
sed -n '/^# Outages/,$p' "$work/reachability.csv"

step "CSV export to $OUT"
rm -rf "$OUT"
"$collector" --db "$db" export --out "$OUT"
cp "$work/mismatches.txt" "$OUT/mismatches.txt"
cp "$work/reachability.csv" "$OUT/reachability.csv"

step "HTML report to $OUT/report.html"
"$collector" --db "$db" report html --outage-settle 0 --out "$OUT/report.html"
ls -l "$OUT"

echo
echo "demo finished in $(( $(date +%s) - run_start )) s after the build"
