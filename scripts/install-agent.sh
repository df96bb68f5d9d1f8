#!/usr/bin/env bash
# Installs the nkpath agent as a systemd service (for systems without the Debian package).
#
#   echo TOKEN | sudo ./install-agent.sh COLLECTOR_URL [--agent-id NAME] [--binary PATH]
#
# COLLECTOR_URL, NAME and TOKEN come from the collector's operator. The token is read from
# standard input (typed at a prompt when it is a terminal), never from the command line,
# where every user of the machine could read it. NAME defaults to the short host name.
# PATH defaults to the nkpath-agent beside this script (release tarball) or
# target/release/nkpath-agent (a source checkout: `cargo build --release`).
# It installs the binary to /usr/local/bin, creates the unprivileged user `nkpath`,
# writes /etc/nkpath/agent.toml if absent, enrols (`nkpath-agent enroll`: /etc/nkpath/agent.d/
# and its token file, mode 640), installs /etc/systemd/system/nkpath-agent.service
# (CAP_NET_RAW only) and starts it. ./uninstall-agent.sh removes all of it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
url="$1"; shift
agent_id=""
# Beside this script in the release tarball, else a source checkout's release build.
binary="$here/../target/release/nkpath-agent"
[ -x "$here/nkpath-agent" ] && binary="$here/nkpath-agent"
while [ $# -gt 0 ]; do
  case "$1" in
    --agent-id) [ $# -ge 2 ] || usage; agent_id="$2"; shift 2 ;;
    --binary) [ $# -ge 2 ] || usage; binary="$2"; shift 2 ;;
    *)
      echo "install-agent.sh: unexpected argument; the token is read from standard input, never from the command line:" >&2
      echo "  echo TOKEN | sudo ./install-agent.sh COLLECTOR_URL [--agent-id NAME]" >&2
      exit 2 ;;
  esac
done

[ "$(id -u)" = 0 ] || { echo "install-agent.sh: run as root" >&2; exit 2; }
case "$url" in http://*|https://*) ;; *) echo "install-agent.sh: COLLECTOR_URL must start with https:// (or http://)" >&2; exit 2;; esac
[ -x "$binary" ] || { echo "install-agent.sh: no agent binary at $binary; build it with 'cargo build --release' or pass --binary PATH" >&2; exit 2; }
if [ ! -d /run/systemd/system ]; then
  echo "install-agent.sh: systemd is not running on this machine, so the service cannot be installed." >&2
  echo "Run the agent under your own supervisor instead, e.g.:" >&2
  echo "  setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=+net_raw --ambient-caps=+net_raw \\" >&2
  echo "          --bounding-set=-all,+net_raw $binary run --config /etc/nkpath/agent.toml" >&2
  exit 1
fi

# The token: one line from standard input, before anything is changed.
if [ -t 0 ]; then
  read -rsp "Token (from the collector's operator): " token; echo >&2
else
  IFS= read -r token || true
fi
[ -n "$token" ] || { echo "install-agent.sh: no token on standard input; pipe it in: echo TOKEN | sudo ./install-agent.sh $url" >&2; exit 2; }

install -m 0755 "$binary" /usr/local/bin/nkpath-agent
id nkpath >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/nkpath --shell /usr/sbin/nologin nkpath
install -d -m 0755 /etc/nkpath
install -d -m 0750 -o nkpath -g nkpath /var/lib/nkpath
if [ ! -e /etc/nkpath/agent.toml ]; then
  cat > /etc/nkpath/agent.toml <<CONF
# nkpath agent configuration; every option is documented in the example
# agent.toml of the nkpath source. Check it with: nkpath-agent check-config
# The collector, this agent's id and its token are in /etc/nkpath/agent.d/
# (written by: echo TOKEN | sudo nkpath-agent enroll COLLECTOR_URL --agent-id NAME).
user = "nkpath"

[spool]
path = "/var/lib/nkpath/spool.db"
CONF
fi
# printf is a shell builtin: the token reaches enroll through a pipe, on no command line.
printf '%s\n' "$token" | /usr/local/bin/nkpath-agent enroll "$url" ${agent_id:+--agent-id "$agent_id"} --config /etc/nkpath/agent.toml
sed "s|@BINARY@|/usr/local/bin/nkpath-agent|" "$here/install/nkpath-agent.service" > /etc/systemd/system/nkpath-agent.service
/usr/local/bin/nkpath-agent check-config --config /etc/nkpath/agent.toml
systemctl daemon-reload
systemctl enable nkpath-agent.service
systemctl restart nkpath-agent.service
echo "nkpath-agent installed and started; see: systemctl status nkpath-agent; nkpath-agent status --config /etc/nkpath/agent.toml"
