#!/usr/bin/env bash
# tests/e2e/run.sh — the official CometD clients (Node) and the www/ demos (headless Chromium)
# against a private stack: redis-server + BX_E2E_WORKERS workers + nginx on free loopback ports in
# a temp dir (+ bayeux-ws for the websocket transport), stopped by PID on exit (also on failure). Exit status non-zero if any test failed or
# a worker log shows a sanitizer report.
#   bash tests/e2e/run.sh                          # everything (tests/run.sh calls it this way)
#   bash tests/e2e/run.sh --test-name-pattern=ack  # extra arguments go to `node --test`
#   BX_E2E_FILES="interop.test.mjs" bash tests/e2e/run.sh
#   BX_E2E_LOG_LEVEL=debug BX_E2E_KEEP_LOGS=1 bash tests/e2e/run.sh  # server logs to build/e2e-logs/ even on success
#   BX_E2E_URL=http://127.0.0.1:18092/cometd bash tests/e2e/run.sh   # against a server already running
#                                                  # (no stack: the worker-restart test then fails)
# Binaries from $BUILD (default build). Screenshots in build/e2e-screenshots/.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
# shellcheck source=../lib/common.sh
source tests/lib/common.sh
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
  bx_test_stack_new e2e bx-e2e
  tmp=$bx_test_dir redis_port=$bx_test_redis_port
  sanitizer_reports() {
    grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$tmp"/worker*.log "$tmp"/ws.log 2>/dev/null
  }
  # e2e's own EXIT trap (instead of bx_test_stack_new's): the sanitizer check comes after the stop, a
  # failure makes the exit status 1, and the logs of a failed run go to build/e2e-logs.
  cleanup() {
    local rc=$?
    bx_test_stack_down
    local bad
    bad=$(sanitizer_reports)
    if [ -n "$bad" ]; then
      echo "e2e: sanitizer reports in worker logs:" >&2
      for f in $bad; do grep -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60 >&2; done
      rc=1
    fi
    if { [ "$rc" != 0 ] || [ -n "${BX_E2E_KEEP_LOGS:-}" ]; } && [ -d "$tmp" ]; then
      mkdir -p "$ROOT/build/e2e-logs" && cp "$tmp"/*.log "$ROOT/build/e2e-logs/" 2>/dev/null
      echo "e2e: logs kept in build/e2e-logs/" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
  }
  trap cleanup EXIT
  # Every extension on (timestamp is off by default in bayeux.conf); CometD's other defaults.
  cat > "$tmp/bayeux.conf" <<CONF
redisPort = $redis_port
logLevel = ${BX_E2E_LOG_LEVEL:-info}
ackExtension = 1
timesyncExtension = 1
timestampExtension = 1
CONF
  # bayeux-ws (WebSocket front-end) behind the same nginx: websocket is offered first, as make run does.
  echo "allowedTransports = websocket,long-polling,callback-polling" >> "$tmp/bayeux.conf"
  export BX_STACK_BIN=$ROOT/$BUILD/bin/bayeux-fcgi BX_STACK_WS_BIN=$ROOT/$BUILD/bin/bayeux-ws \
         BX_STACK_FAIL_TIMEOUT=1  # nginx rests a failed worker 1 s, not 5: the restart test stays within maxInterval
  bx_test_stack_up "$tmp" --workers "$workers" --ws || exit 1
  http_port=$bx_test_nginx_port ws_port=$bx_test_ws_port
  export BX_E2E_URL=http://127.0.0.1:$http_port/cometd BX_E2E_WWW_URL=http://127.0.0.1:$http_port/
  export BX_E2E_STACK_DIR=$tmp BX_E2E_WORKERS=$workers BX_E2E_WS=1
  export BX_E2E_TRANSPORTS=${BX_E2E_TRANSPORTS:-long-polling,callback-polling,websocket}
  echo "e2e: stack in $tmp: nginx 127.0.0.1:$http_port, redis $redis_port, $workers workers, bayeux-ws $ws_port ($BUILD)"
fi
export BX_E2E_MAX_INTERVAL=${BX_E2E_MAX_INTERVAL:-10000}
export BX_E2E_SHOTS=${BX_E2E_SHOTS:-$ROOT/build/e2e-screenshots}

cd "$E2E"
# bx_node_test exits with --test-force-exit: a client still retrying in the background (its server was
# killed) must not keep a finished test file alive.
# shellcheck disable=SC2086
bx_node_test "$@" ${BX_E2E_FILES:-*.test.mjs}
