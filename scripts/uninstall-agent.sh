#!/usr/bin/env bash
# Removes everything scripts/install-agent.sh installed: the service, the
# binary, the configuration and token, the spool and the `nkpath` user.
#
#   sudo scripts/uninstall-agent.sh
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "uninstall-agent.sh: run as root" >&2; exit 2; }
if [ -d /run/systemd/system ]; then
  systemctl disable --now nkpath-agent.service 2>/dev/null || true
fi
rm -f /etc/systemd/system/nkpath-agent.service
[ -d /run/systemd/system ] && systemctl daemon-reload || true
rm -f /usr/local/bin/nkpath-agent
rm -rf /etc/nkpath /var/lib/nkpath
id nkpath >/dev/null 2>&1 && userdel nkpath || true
echo "nkpath-agent removed"
