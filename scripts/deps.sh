#!/usr/bin/env bash
# Install whatever is missing (Debian 12, as root). Idempotent: apt-get update
# runs only when a package is actually missing, npm ci only when node_modules is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKGS="build-essential pkg-config clang libclang-rt-14-dev libfcgi-dev libhiredis-dev libjansson-dev libcmocka-dev libjwt-dev
      libevent-dev libwslay-dev libssl-dev zlib1g-dev redis-server redis-sentinel redis-tools nginx lighttpd openssl curl gnuplot-nox wrk chromium nodejs npm python3-redis ${BX_EXTRA_PKGS:-}"
missing=()
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The machine may already have node/npm from another source; do not fight it.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  tmp=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]} (run 'make deps' as root)" >&2; exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts packaged daemons; we run our own private ones.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx lighttpd redis-server >/dev/null 2>&1 || true; fi
fi
# npm packages (official CometD client, test/bench tooling), per folder with a lock file.
for d in tests/e2e tests/ws bench www; do
  if [ -f "$d/package-lock.json" ] && [ ! -d "$d/node_modules" ]; then
    echo "deps: npm ci in $d"
    (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
exit 0
