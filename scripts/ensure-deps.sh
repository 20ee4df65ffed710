#!/usr/bin/env bash
# Makes sure the real servers zedis runs and tests against are installed: redis-server,
# redis-tools and ZooKeeper (Debian/Ubuntu packages). Installs them with apt-get when run as
# root; otherwise prints the exact command and fails.
# Usage: scripts/ensure-deps.sh [extra-package ...]
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
for extra in "$@"; do
  case "$extra" in
    redis-sentinel) command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel) ;;
    *) dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && apt-get install -y ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing missing packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages start system services on some machines; zedis starts its own servers.
  exit 0
fi
echo "zedis needs: ${missing[*]}" >&2
echo "run as root: $cmd" >&2
exit 1
