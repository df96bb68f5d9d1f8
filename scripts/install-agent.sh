#!/usr/bin/env bash
# Installs the nkpath agent as a systemd service.
#
#   sudo scripts/install-agent.sh COLLECTOR_URL TOKEN [BINARY]
#
# COLLECTOR_URL and TOKEN come from the collector's operator. BINARY defaults to
# the nkpath-agent beside it (release tarball) or target/release/nkpath-agent
# (build it with `cargo build --release`).
# It installs the binary to /usr/local/bin, creates the unprivileged user
# `nkpath`, writes /etc/nkpath/agent.toml and /etc/nkpath/token (mode 600),
# installs /etc/systemd/system/nkpath-agent.service (CAP_NET_RAW only) and
# starts it. scripts/uninstall-agent.sh removes all of it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
url="$1"; token="$2"
# Beside this script in the release tarball, else a source checkout's release build.
default_binary="$here/../target/release/nkpath-agent"
[ -x "$here/nkpath-agent" ] && default_binary="$here/nkpath-agent"
binary="${3:-$default_binary}"

[ "$(id -u)" = 0 ] || { echo "install-agent.sh: run as root" >&2; exit 2; }
case "$url" in http://*|https://*) ;; *) echo "install-agent.sh: COLLECTOR_URL must start with https:// (or http://)" >&2; exit 2;; esac
[ -x "$binary" ] || { echo "install-agent.sh: no agent binary at $binary; build it with 'cargo build --release' or pass its path" >&2; exit 2; }
if [ ! -d /run/systemd/system ]; then
  echo "install-agent.sh: systemd is not running on this machine, so the service cannot be installed." >&2
  echo "Run the agent under your own supervisor instead, e.g.:" >&2
  echo "  setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=+net_raw --ambient-caps=+net_raw \\" >&2
  echo "          --bounding-set=-all,+net_raw $binary run --config /etc/nkpath/agent.toml" >&2
  exit 1
fi

install -m 0755 "$binary" /usr/local/bin/nkpath-agent
id nkpath >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/nkpath --shell /usr/sbin/nologin nkpath
install -d -m 0755 /etc/nkpath
umask 077
printf '%s\n' "$token" > /etc/nkpath/token
chown root:nkpath /etc/nkpath/token; chmod 0640 /etc/nkpath/token
umask 022
if [ ! -e /etc/nkpath/agent.toml ]; then
  cat > /etc/nkpath/agent.toml <<CONF
# nkpath agent configuration; every option is documented in the example
# agent.toml of the nkpath source. Check it with: nkpath-agent check-config
agent_id = "$(hostname -s | tr -c 'A-Za-z0-9._\n-' '-')"
user = "nkpath"

[collector]
url = "$url"
token_file = "/etc/nkpath/token"

[spool]
path = "/var/lib/nkpath/spool.db"
CONF
fi
sed "s|@BINARY@|/usr/local/bin/nkpath-agent|" "$here/install/nkpath-agent.service" > /etc/systemd/system/nkpath-agent.service
/usr/local/bin/nkpath-agent check-config --config /etc/nkpath/agent.toml
systemctl daemon-reload
systemctl enable --now nkpath-agent.service
echo "nkpath-agent installed and started; see: systemctl status nkpath-agent; nkpath-agent status --config /etc/nkpath/agent.toml"
