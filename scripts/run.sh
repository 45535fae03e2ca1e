#!/usr/bin/env bash
# scripts/run.sh — `make run`: the whole stack in the foreground, state under run/.
#   redis-server on 127.0.0.1:REDIS_PORT (AOF everysec, data in run/redis/),
#   WORKERS bayeux-fcgi workers on Unix sockets run/workerN.sock (restarted when one dies),
#   nginx on PORT (all interfaces; BIND=127.0.0.1 for loopback only) serving www/ at / and Bayeux at
#   /cometd, and with HTTPS_PORT the same site over TLS (self-signed certificate kept in run/tls/).
# Ctrl-C or SIGTERM stops everything it started (by PID) and nothing else.
#   bayeux-ws on 127.0.0.1:WS_PORT (8090; WS_PORT=0: none), WebSocket upgrades of /cometd proxied to it
#   by nginx, "websocket" first in allowedTransports unless the conf or BX_ALLOWED_TRANSPORTS say otherwise.
#   lighttpd on LIGHTTPD_PORT (optional, none by default): the same site behind lighttpd (no WebSocket).
# Env: PORT (8080), REDIS_PORT (6380), WORKERS (2), BX_LOG_LEVEL, HTTPS_PORT, LIGHTTPD_PORT, BIND (0.0.0.0),
#      BUILD (build), BX_CONF (conf/bayeux.conf); any BX_<KEY> overrides a bayeux.conf key.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/stack.sh

PORT=${PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6380}
WORKERS=${WORKERS:-2}
HTTPS_PORT=${HTTPS_PORT:-}
LIGHTTPD_PORT=${LIGHTTPD_PORT:-}
BIND=${BIND:-0.0.0.0}
BUILD=${BUILD:-build}
RUN=$PWD/run

log() { bx_stack_log "$*"; }
die() { log "$*"; exit 1; }

[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive number (got '$WORKERS')"
mkdir -p "$RUN"

# Refuse to start over another `make run` that still runs from this checkout.
for f in "$RUN"/*.pid "$RUN"/redis/redis.pid; do
  [ -f "$f" ] || continue
  if bx_pid_alive "$(cat "$f")"; then
    die "$f: pid $(cat "$f") still runs (another make run?); stop it first"
  fi
  rm -f "$f"
done

# The worker reads bayeux.conf; make run's own choices come in as BX_* overrides.
conf=${BX_CONF:-$PWD/conf/bayeux.conf}
if [ ! -f "$conf" ]; then
  log "$conf not found; the workers run on built-in defaults"
  conf=$RUN/bayeux.conf
  echo "# empty: built-in defaults (conf/bayeux.conf documents every key)" > "$conf"
fi
export BX_REDIS_HOST=127.0.0.1 BX_REDIS_PORT=$REDIS_PORT
[ -n "${BX_LOG_LEVEL:-}" ] && export BX_LOG_LEVEL

# Web-server timeouts and body limit follow the workers' configuration (env override, then file).
conf_value() { # KEY ENVNAME DEFAULT
  local v=${!2:-}
  [ -n "$v" ] || v=$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([0-9-]*\\).*/\\1/p" "$conf" | tail -n 1)
  echo "${v:-$3}"
}
timeout_ms=$(conf_value timeout BX_TIMEOUT 20000)
max_body=$(conf_value maxMessageSize BX_MAX_MESSAGE_SIZE 1048576)
[ "$max_body" -gt 0 ] 2>/dev/null || max_body=1048576

case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
BX_STACK_BIN=$(bx_stack_bin "$BUILD") || die "build it first (make all)"
export BX_STACK_BIN BX_STACK_CONF=$conf BX_STACK_WORKERS=$WORKERS
export BX_STACK_WWW=$PWD/www BX_STACK_MAX_BODY=$max_body BX_STACK_REDIS_PORT=$REDIS_PORT BX_STACK_REDIS_AOF=1
# The CometD client waits timeout + maxNetworkDelay (10 s) for a held /meta/connect.
export BX_STACK_READ_TIMEOUT=$(( (timeout_ms + 10000) / 1000 + 5 ))
WS_PORT=${WS_PORT:-8090}
export BX_STACK_WS_BIN=$BUILD/bin/bayeux-ws BX_STACK_WS_PORT=""
if [ "$WS_PORT" != 0 ] && [ -x "$BX_STACK_WS_BIN" ]; then
  BX_STACK_WS_PORT=$WS_PORT
  if [ -z "${BX_ALLOWED_TRANSPORTS:-}" ] && ! grep -qE '^[[:space:]]*allowedTransports[[:space:]]*=' "$conf"; then
    export BX_ALLOWED_TRANSPORTS=websocket,long-polling,callback-polling
  fi
fi

stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  log "stopping"
  bx_stack_stop "$RUN"
  log "stopped"
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

tls=()
if [ -n "$HTTPS_PORT" ]; then
  [ -f "$RUN/tls/cert.pem" ] || log "making a self-signed certificate in run/tls/"
  bx_stack_tls_cert "$RUN" || die "no TLS certificate"
  tls=("$HTTPS_PORT" "$RUN/tls/cert.pem" "$RUN/tls/key.pem")
fi

bx_stack_init "$RUN"
bx_stack_redis_start "$RUN" || die "redis-server did not start (see run/redis/redis.log)"
bx_stack_workers_start "$RUN" || die "a worker did not start (see run/worker*.log)"
bx_stack_ws_start "$RUN" || die "bayeux-ws did not start (see run/ws.log)"
bx_stack_nginx_start "$RUN" "$BIND" "$PORT" "${tls[@]}" || die "nginx did not start (see run/nginx-error.log)"
if [ -n "$LIGHTTPD_PORT" ]; then
  bx_stack_lighttpd_start "$RUN" "$BIND" "$LIGHTTPD_PORT" || die "lighttpd did not start (see run/lighttpd-error.log)"
fi

host=$BIND; [ "$BIND" = 0.0.0.0 ] && host=localhost
echo
# (sed drops the empty lines of the optional parts)
sed '/^$/d' <<EOF
bayeux-fcgi is running (Ctrl-C stops it all):
  demo pages        http://$host:$PORT/
  Bayeux endpoint   http://$host:$PORT/cometd
$( [ -n "$HTTPS_PORT" ] && printf '  over TLS          https://%s:%s/  (self-signed: run/tls/cert.pem)\n' "$host" "$HTTPS_PORT" )
  redis-server      127.0.0.1:$REDIS_PORT, pid $(cat "$RUN/redis/redis.pid"), data and log in run/redis/
  workers           $WORKERS × $BX_STACK_BIN, sockets run/worker*.sock, logs run/worker*.log
                    (pids $(cat "$RUN"/worker*.pid | tr '\n' ' '))
$( [ -n "$BX_STACK_WS_PORT" ] && printf '  bayeux-ws         127.0.0.1:%s, pid %s, log run/ws.log (ws://%s:%s/cometd)\n' "$BX_STACK_WS_PORT" "$(cat "$RUN/ws.pid")" "$host" "$PORT" )
  nginx             pid $(cat "$RUN/nginx.pid"), config run/nginx.conf, logs run/nginx-*.log
$( [ -n "$LIGHTTPD_PORT" ] && printf '  lighttpd          http://%s:%s/ (same site, no WebSocket), pid %s, config run/lighttpd.conf\n' "$host" "$LIGHTTPD_PORT" "$(cat "$RUN/lighttpd.pid")" )
  configuration     $conf (+ BX_* environment overrides)
EOF
echo

# Supervise: restart a worker that died; stop everything if redis or nginx dies.
while :; do
  sleep 1 & wait $! 2>/dev/null
  bx_stack_workers_check "$RUN"
  wspid=$(cat "$RUN/ws.pid" 2>/dev/null || true)
  if [ -n "$BX_STACK_WS_PORT" ] && { [ -z "$wspid" ] || ! bx_pid_alive "$wspid"; }; then
    log "bayeux-ws died; restarting it"
    rm -f "$RUN/ws.pid"
    bx_stack_ws_start "$RUN" || log "bayeux-ws did not restart (see run/ws.log): clients use long-polling"
  fi
  for f in "$RUN/nginx.pid" "$RUN/redis/redis.pid" ${LIGHTTPD_PORT:+"$RUN/lighttpd.pid"}; do
    if [ ! -f "$f" ] || ! bx_pid_alive "$(cat "$f")"; then
      log "$(basename "$f" .pid) exited; stopping the stack"
      exit 1
    fi
  done
done
