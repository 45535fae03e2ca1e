#!/usr/bin/env bash
# tests/e2e/run.sh — the official CometD clients (Node) and the www/ demos (headless Chromium)
# against a private stack: redis-server + BX_E2E_WORKERS workers + nginx on free loopback ports in
# a temp dir (+ bayeux-ws for the websocket transport), stopped by PID on exit (also on failure). Exit status non-zero if any test failed or
# a worker log shows a sanitizer report.
#   bash tests/e2e/run.sh                          # everything (tests/run.sh calls it this way)
#   bash tests/e2e/run.sh --test-name-pattern=ack  # extra arguments go to `node --test`
#   BX_E2E_FILES="interop.test.mjs" bash tests/e2e/run.sh
#   BX_E2E_URL=http://127.0.0.1:18092/cometd bash tests/e2e/run.sh   # against a server already running
#                                                  # (no stack: the worker-restart test then fails)
# Binaries from $BUILD (default build). Screenshots in build/e2e-screenshots/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
export BUILD=${BUILD:-build}
E2E=$ROOT/tests/e2e

if [ ! -d "$E2E/node_modules/cometd" ]; then
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error) || { echo "e2e: npm ci failed (make deps)" >&2; exit 1; }
fi
bash www/build.sh || { echo "e2e: www/build.sh failed" >&2; exit 1; }

workers=${BX_E2E_WORKERS:-2}
tmp=""
if [ -z "${BX_E2E_URL:-}" ]; then
  # shellcheck source=../../scripts/stack.sh
  source scripts/stack.sh || { echo "e2e: scripts/stack.sh missing" >&2; exit 1; }
  tmp=$(mktemp -d /tmp/bx-e2e.XXXXXX)
  sanitizer_reports() {
    grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$tmp"/worker*.log "$tmp"/ws.log 2>/dev/null
  }
  cleanup() {
    local rc=$?
    bx_stack_stop "$tmp"
    local bad
    bad=$(sanitizer_reports)
    if [ -n "$bad" ]; then
      echo "e2e: sanitizer reports in worker logs:" >&2
      for f in $bad; do grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60 >&2; done
      rc=1
    fi
    if [ "$rc" != 0 ] && [ -d "$tmp" ]; then
      mkdir -p "$ROOT/build/e2e-logs" && cp "$tmp"/*.log "$ROOT/build/e2e-logs/" 2>/dev/null
      echo "e2e: logs kept in build/e2e-logs/" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
  }
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  redis_port=$(bx_free_port); http_port=$(bx_free_port)
  # Every extension on (timestamp is off by default in bayeux.conf); CometD's other defaults.
  cat > "$tmp/bayeux.conf" <<CONF
redisPort = $redis_port
logLevel = info
ackExtension = 1
timesyncExtension = 1
timestampExtension = 1
CONF
  # bayeux-ws (WebSocket front-end) behind the same nginx: websocket is offered first, as make run does.
  ws_port=$(bx_free_port)
  echo "allowedTransports = websocket,long-polling,callback-polling" >> "$tmp/bayeux.conf"
  export BX_STACK_BIN=$ROOT/$BUILD/bin/bayeux-fcgi BX_STACK_CONF=$tmp/bayeux.conf BX_STACK_REDIS_PORT=$redis_port \
         BX_STACK_WORKERS=$workers BX_STACK_WWW=$ROOT/www \
         BX_STACK_WS_BIN=$ROOT/$BUILD/bin/bayeux-ws BX_STACK_WS_PORT=$ws_port \
         BX_STACK_FAIL_TIMEOUT=1  # nginx rests a failed worker 1 s, not 5: the restart test stays within maxInterval
  if ! { bx_stack_init "$tmp" && bx_stack_redis_start "$tmp" && bx_stack_workers_start "$tmp" &&
         bx_stack_ws_start "$tmp" && bx_stack_nginx_start "$tmp" 127.0.0.1 "$http_port"; }; then
    echo "e2e: the private stack did not start (see above)" >&2
    exit 1
  fi
  export BX_E2E_URL=http://127.0.0.1:$http_port/cometd BX_E2E_WWW_URL=http://127.0.0.1:$http_port/
  export BX_E2E_STACK_DIR=$tmp BX_E2E_WORKERS=$workers BX_E2E_WS=1
  export BX_E2E_TRANSPORTS=${BX_E2E_TRANSPORTS:-long-polling,callback-polling,websocket}
  echo "e2e: stack in $tmp: nginx 127.0.0.1:$http_port, redis $redis_port, $workers workers, bayeux-ws $ws_port ($BUILD)"
fi
export BX_E2E_MAX_INTERVAL=${BX_E2E_MAX_INTERVAL:-10000}
export BX_E2E_SHOTS=${BX_E2E_SHOTS:-$ROOT/build/e2e-screenshots}

cd "$E2E"
# --test-force-exit: a client still retrying in the background (its server was killed) must not keep a
# finished test file alive.
# shellcheck disable=SC2086
node --test --test-concurrency=1 --test-force-exit --test-reporter=spec "$@" ${BX_E2E_FILES:-*.test.mjs}
