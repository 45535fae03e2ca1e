#!/usr/bin/env bash
# bench/run.sh — `make bench`: CometD's reference chat workload against three servers side by side,
# on private loopback ports, at the same offered rates:
#   bayeux-fcgi   our stack (redis + WORKERS workers + nginx, scripts/stack.sh)
#   faye          Faye 1.4 + faye-redis (the same architecture: Node front-ends, Redis state)
#   cometd-node   the CometD project's cometd-nodejs-server (one in-memory Node process)
# Prints one table with ratios against Faye, writes bench/results/<date>.json (+ .md, a latency plot),
# and stops everything it started by PID (also on Ctrl-C or failure).
#
# Env: QUICK=1 (short sweep, < 3 min), CLIENTS (1000), ROOMS (100), ROOMS_PER_CLIENT (10),
#      RATES ("100 400 800 1600"), DURATION (10 s per run), TRANSPORTS ("long-polling websocket"; QUICK:
#      long-polling: websocket runs use bayeux-ws and Faye's websocket), SATURATE (1: keep doubling the rate per
#      server and transport until it saturates, up to MAX_RATE 25600), SERVERS ("bayeux-fcgi faye cometd-node"),
#      WORKERS (2), CAPACITY=1 (also: PARKED parked polls on one worker and PARKED idle WebSocket
#      connections on bayeux-ws, worker scaling 1/2/4, Redis commands per publish at 100/1000/4000 clients),
#      PARKED (10000), THREADS (generator threads), BUILD (build), BENCH_DIR (build/bench),
#      ENGINE (generator of every row: c = bench/cgen.c, node = bench.js's worker threads;
#      default c when $BUILD/bench/bx-cgen is built; websocket rows too), SELF_SWEEP (1: also
#      run the generator against the trivial responder at every swept rate, its own latency floor),
#      UPDATE_README=1 (rewrite the README Performance table from this run), SETTLE_PCT (15) and
#      SETTLE_MAX (20 s): before each run, wait until the machine is at most SETTLE_PCT % busy.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
source tests/lib/common.sh
[ -f scripts/stack.sh ] && source scripts/stack.sh
source bench/lib/floorc.sh

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  : "${RATES:=200 1000}" "${DURATION:=3}" "${SATURATE:=0}" "${DRAIN:=4}" "${TRANSPORTS:=long-polling}"
else
  : "${RATES:=100 400 800 1600}" "${DURATION:=10}" "${SATURATE:=1}" "${DRAIN:=10}" "${TRANSPORTS:=long-polling websocket}"
fi
export CLIENTS=${CLIENTS:-1000} ROOMS=${ROOMS:-100} ROOMS_PER_CLIENT=${ROOMS_PER_CLIENT:-10} DURATION DRAIN
SERVERS=${SERVERS:-bayeux-fcgi faye cometd-node}
WORKERS=${WORKERS:-2}
MAX_RATE=${MAX_RATE:-25600}
CAPACITY=${CAPACITY:-0}
PARKED=${PARKED:-10000}
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BENCH_DIR=${BENCH_DIR:-$ROOT/build/bench}
case $BENCH_DIR in /*) ;; *) BENCH_DIR=$ROOT/$BENCH_DIR ;; esac
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/bench/results}
RUNS=$BENCH_DIR/runs-$STAMP.jsonl

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

for v in CLIENTS ROOMS ROOMS_PER_CLIENT WORKERS MAX_RATE PARKED; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for r in $RATES; do [[ $r =~ ^[1-9][0-9]*$ ]] || die "RATES must be positive integers (got '$r')"; done
for s in $SERVERS; do
  case $s in bayeux-fcgi|faye|cometd-node) ;; *) die "SERVERS: unknown server '$s' (bayeux-fcgi faye cometd-node)" ;; esac
done
for t in $TRANSPORTS; do
  case $t in long-polling|websocket) ;; *) die "TRANSPORTS: unknown transport '$t' (long-polling websocket)" ;; esac
done
[[ $QUICK =~ ^[01]$ ]] || die "QUICK must be 0 or 1 (got '$QUICK')"
CGEN=$BUILD/bench/bx-cgen
ENGINE=${ENGINE:-$([ -x "$CGEN" ] && echo c || echo node)}
case $ENGINE in node) ;; c) [ -x "$CGEN" ] || die "ENGINE=c: $CGEN is not built (make BUILD=$BUILD)" ;;
  *) die "ENGINE must be c or node (got '$ENGINE')" ;; esac
SELF_SWEEP=${SELF_SWEEP:-1}
SETTLE_PCT=${SETTLE_PCT:-15}
SETTLE_MAX=${SETTLE_MAX:-20}
[[ $SELF_SWEEP =~ ^[01]$ ]] || die "SELF_SWEEP must be 0 or 1 (got '$SELF_SWEEP')"
[[ $SETTLE_PCT =~ ^[0-9]+$ && $SETTLE_PCT -le 100 ]] || die "SETTLE_PCT must be 0..100 (got '$SETTLE_PCT')"
[[ $SETTLE_MAX =~ ^[0-9]+$ ]] || die "SETTLE_MAX must be a whole number of seconds (got '$SETTLE_MAX')"
[[ $DURATION =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DURATION must be a number of seconds (got '$DURATION')"
command -v node >/dev/null || die "node missing (make deps)"
mkdir -p "$BENCH_DIR" "$OUT"
# Every client holds two sockets; the capacity run holds PARKED.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
: > "$RUNS"

# ---- servers ---------------------------------------------------------------------------------
# Each start_<server> sets URL_<server>, REDIS_<server> (0 = none) and the pid files to sample.
declare -A URL REDISP DIRS WSOK
STACK_DIR=$BENCH_DIR/stack
FAYE_DIR=$BENCH_DIR/faye
COMETD_DIR=$BENCH_DIR/cometd-node
HELLO_DIR=$BENCH_DIR/hello

stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM
  log "stopping servers"
  freeze_others ""
  if declare -F bx_stack_stop >/dev/null; then bx_stack_stop "$STACK_DIR" 2>/dev/null; bx_stack_stop "$HELLO_DIR" 2>/dev/null; fi
  for f in "$FAYE_DIR"/run/faye-*.pid "$FAYE_DIR"/run/redis.pid "$COMETD_DIR"/run/cometd-node-*.pid "$BENCH_DIR"/brokercost/redis.pid; do
    [ -f "$f" ] && bx_stop_pidfile "$f"
  done
  floorc_responder_stop "$BENCH_DIR/responder"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Copy a peer set-up (read-only where it is shipped) and install its npm deps once.
peer_copy() { # NAME DIR
  local src=$ROOT/../shared/peers/$1 dst=$2
  [ -d "$src" ] || src=/work/shared/peers/$1
  [ -d "$src" ] || { log "peer $1: $src missing"; return 1; }
  mkdir -p "$dst"
  cp "$src"/* "$dst"/ && chmod -R u+w "$dst"
  if [ ! -d "$dst/node_modules" ]; then
    (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error >"$dst/npm.log" 2>&1) ||
      { log "peer $1: npm ci failed (see $dst/npm.log)"; return 1; }
  fi
}

start_faye() {
  peer_copy faye "$FAYE_DIR" || return 1
  local port rport
  port=$(bx_free_port); rport=$(bx_free_port)
  rm -rf "$FAYE_DIR/run"
  (cd "$FAYE_DIR" && RUN_DIR=$FAYE_DIR/run PORT=$port REDIS_PORT=$rport ./run.sh >"$FAYE_DIR/start.log" 2>&1 </dev/null)
  curl -fsS --max-time 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1 ||
    { log "faye did not start:"; tail -5 "$FAYE_DIR/start.log" >&2; return 1; }
  URL[faye]=http://127.0.0.1:$port/bayeux; REDISP[faye]=$rport; WSOK[faye]=1
  DIRS[faye]="$FAYE_DIR/run/faye-$port.pid $FAYE_DIR/run/redis.pid"
}

start_cometd-node() {
  peer_copy cometd-node "$COMETD_DIR" || return 1
  local port
  port=$(bx_free_port)
  rm -rf "$COMETD_DIR/run"
  (cd "$COMETD_DIR" && RUN_DIR=$COMETD_DIR/run PORT=$port ./run.sh >"$COMETD_DIR/start.log" 2>&1 </dev/null) ||
    { log "cometd-node did not start:"; tail -5 "$COMETD_DIR/start.log" >&2; return 1; }
  URL[cometd-node]=http://127.0.0.1:$port/cometd; REDISP[cometd-node]=0
  DIRS[cometd-node]="$COMETD_DIR/run/cometd-node-$port.pid"
}

# stack_up NAME DIR BIN WORKERS [WS_BIN] → redis + WORKERS × BIN (+ WS_BIN for WebSocket upgrades) +
# nginx in DIR (scripts/stack.sh); sets URL[NAME].
stack_up() {
  local name=$1 dir=$2 bin=$3 n=$4 wsbin=${5:-} port rport wsport=""
  declare -F bx_stack_init >/dev/null || { log "scripts/stack.sh missing: cannot start $name"; return 1; }
  [ -x "$bin" ] || { log "$bin not built (make all)"; return 1; }
  port=$(bx_free_port); rport=$(bx_free_port)
  [ -n "$wsbin" ] && [ -x "$wsbin" ] && wsport=$(bx_free_port)
  freeze_others "$name"
  bx_stack_stop "$dir" 2>/dev/null
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "# bench: built-in defaults" > "$dir/bayeux.conf"
  (
    export BX_STACK_BIN=$bin BX_STACK_CONF=$dir/bayeux.conf BX_STACK_WORKERS=$n
    export BX_STACK_REDIS_PORT=$rport BX_STACK_REDIS_AOF=0 BX_STACK_READ_TIMEOUT=35
    export BX_REDIS_HOST=127.0.0.1 BX_REDIS_PORT=$rport BX_LOG_LEVEL=${BX_LOG_LEVEL:-warn}
    export BX_STACK_WS_BIN=$wsbin BX_STACK_WS_PORT=$wsport
    [ -n "$wsport" ] && export BX_ALLOWED_TRANSPORTS=websocket,long-polling,callback-polling
    bx_stack_init "$dir" && bx_stack_redis_start "$dir" && bx_stack_workers_start "$dir" &&
      { [ -z "$wsport" ] || bx_stack_ws_start "$dir"; } && bx_stack_nginx_start "$dir" 127.0.0.1 "$port"
  ) >"$dir.start.log" 2>&1 || { log "$name stack did not start:"; tail -8 "$dir.start.log" >&2; return 1; }
  URL[$name]=http://127.0.0.1:$port/cometd; REDISP[$name]=$rport
  DIRS[$name]="$dir/nginx.pid $dir/redis/redis.pid $(ls "$dir"/worker*.pid | tr '\n' ' ')${wsport:+ $dir/ws.pid}"
  WSOK[$name]=${wsport:+1}
}

start_bayeux-fcgi() { stack_up bayeux-fcgi "$STACK_DIR" "$BUILD/bin/bayeux-fcgi" "${1:-$WORKERS}" "$BUILD/bin/bayeux-ws"; }

# The libfcgi hello-world ceiling: the same nginx site and sockets, bench/fcgi-hello.c as the worker.
start_hello() {
  cc -O2 -o "$BENCH_DIR/fcgi-hello" bench/fcgi-hello.c -lfcgi -lpthread 2>"$BENCH_DIR/fcgi-hello.cc.log" ||
    { log "fcgi-hello did not build:"; cat "$BENCH_DIR/fcgi-hello.cc.log" >&2; return 1; }
  # Without upstream keepalive: libfcgi's one-connection-per-thread accept loop would sit on kept
  # connections (4 threads) while nginx queues more. It is the classic hello-world ceiling.
  BX_STACK_KEEPALIVE=0 stack_up hello "$HELLO_DIR" "$BENCH_DIR/fcgi-hello" 1
}

# The pids to sample for a server: those in its pid files plus their children (nginx workers).
server_pids() { # SERVER
  local f pid out=()
  for f in ${DIRS[$1]}; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    out+=("$pid")
    for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do out+=("$c"); done
  done
  local IFS=,; echo "${out[*]}"
}

# One run: appends a JSON line to $RUNS; a failed run is an error row, never a hang (bench.js has
# timeouts everywhere and a watchdog; `timeout` is the last resort).
# The servers not under test are frozen (SIGSTOP) during a run. A server that fell behind keeps working
# through its backlog long after its run (Faye after 1600 msg/s: 2.4 GB, 70–90 % of the machine for more
# than the 20 s settle() waits, 2026-11-26), and that CPU was charged to whichever server ran next.
# SERVER "" freezes none, "-" all; a restarted stack is thawed first (a stopped process ignores SIGTERM).
freeze_others() { # SERVER
  local x p sig
  for x in ${started[@]+"${started[@]}"}; do
    sig=STOP; { [ -z "$1" ] || [ "$x" = "$1" ]; } && sig=CONT
    for p in $(server_pids "$x" | tr ',' ' '); do kill -"$sig" "$p" 2>/dev/null; done
  done
  return 0
}

# CPU busy % of the whole machine over SEC seconds (/proc/stat: user nice system idle iowait irq softirq steal).
cpu_busy_pct() { # SEC
  local a b c d e f g h t1 i1 t2 i2
  read -r _ a b c d e f g h _ < /proc/stat; t1=$((a + b + c + d + e + f + g + h)); i1=$((d + e))
  sleep "$1"
  read -r _ a b c d e f g h _ < /proc/stat; t2=$((a + b + c + d + e + f + g + h)); i2=$((d + e))
  echo $(( t2 > t1 ? 100 * ((t2 - t1) - (i2 - i1)) / (t2 - t1) : 0 ))
}

# Wait (at most SETTLE_MAX s) until the machine is quiet (≤ SETTLE_PCT % busy over a second): a peer
# that fell behind keeps draining its backlog after its run ends, and that CPU would otherwise be
# charged to the next server's run. Sets BUSY_BEFORE (the last figure) for the run's JSON.
settle() {
  local t0=$SECONDS
  BUSY_BEFORE=$(cpu_busy_pct 1)
  while [ "$BUSY_BEFORE" -gt "$SETTLE_PCT" ]; do
    if [ $((SECONDS - t0)) -ge "$SETTLE_MAX" ]; then
      log "machine still ${BUSY_BEFORE} % busy after ${SETTLE_MAX} s: running anyway"; return
    fi
    BUSY_BEFORE=$(cpu_busy_pct 1)
  done
  [ $((SECONDS - t0)) -gt 1 ] && log "waited $((SECONDS - t0)) s for the machine to settle (${BUSY_BEFORE} % busy)"
  return 0
}

bench_one() { # SERVER RATE [extra bench.js args]
  local s=$1 rate=$2 limit line
  shift 2
  limit=$(( 120 + CLIENTS / 20 + ${DURATION%.*} + ${DRAIN%.*} ))
  if [ -z "${URL[$s]:-}" ]; then
    printf '{"label":"%s","offered":%s,"error":"server not started"}\n' "$s" "$rate" >> "$RUNS"; return
  fi
  local nflags=() engine=$ENGINE
  [[ " $* " == *" websocket "* ]] && nflags=(--experimental-websocket --no-warnings)
  freeze_others "$s"
  settle
  line=$(timeout -k 5 "$limit" node "${nflags[@]}" bench/bench.js --json --engine "$engine" --cgen "$CGEN" --label "$s" --url "${URL[$s]}" --rate "$rate" \
         --redis-port "${REDISP[$s]}" --pids "$(server_pids "$s")" "$@" 2> >(sed 's/^/    /' >&2))
  if [ -z "$line" ]; then
    line=$(printf '{"label":"%s","offered":%s,"error":"generator gave no result (killed after %s s?)"}' "$s" "$rate" "$limit")
  fi
  line=$(printf '%s' "$line" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
    r.busyBeforePct=+process.argv[1];process.stdout.write(JSON.stringify(r))})' "$BUSY_BEFORE")
  echo "$line" >> "$RUNS"
  printf '%s' "$line" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
    process.exit(r.error||r.publishedPerSec<0.9*r.offered||(r.latencyMs&&r.latencyMs.p50>1000)?1:0)})'
}

# ---- run ------------------------------------------------------------------------------------
log "generator engine: $ENGINE (long-polling and websocket rows)"
log "machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); clients $CLIENTS, rooms $ROOMS × $ROOMS_PER_CLIENT, rates $RATES, ${DURATION}s each"
started=()
for s in $SERVERS; do
  if "start_$s"; then started+=("$s"); log "$s at ${URL[$s]}"; else log "$s: not started (its rows will show the error)"; fi
done

# The generator's own ceiling, against a trivial in-memory responder (same workload, top rate).
top=0; for r in $RATES; do [ "$r" -gt "$top" ] && top=$r; done
# Full runs offer it 4× the top sweep rate, to find where the generator (or the responder) tops out.
crate=$top; [ "$QUICK" = 1 ] || crate=$((top * 4))
freeze_others -
log "generator ceiling (trivial responder, $crate msg/s, engine $ENGINE)"
timeout -k 5 120 node bench/bench.js --json --self --engine "$ENGINE" --cgen "$CGEN" --label generator-ceiling --rate "$crate" \
  2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "ceiling run failed"
# The instrument's own latency at each swept rate: the same generator against the trivial responder.
if [ "$SELF_SWEEP" = 1 ]; then
  for r in $RATES; do
    log "generator's own latency (trivial responder, $r msg/s, engine $ENGINE)"
    timeout -k 5 $(( 120 + CLIENTS / 20 + ${DURATION%.*} + ${DRAIN%.*} )) node bench/bench.js --json --self --engine "$ENGINE" \
      --cgen "$CGEN" --label generator-self --rate "$r" 2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "self run at $r failed"
    if [[ " $TRANSPORTS " == *" websocket "* ]]; then
      log "generator's own latency over websocket (trivial responder, $r msg/s, engine $ENGINE)"
      timeout -k 5 $(( 120 + CLIENTS / 20 + ${DURATION%.*} + ${DRAIN%.*} )) node --experimental-websocket --no-warnings \
        bench/bench.js --json --self --engine "$ENGINE" --transport websocket --cgen "$CGEN" --label generator-self \
        --rate "$r" 2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "websocket self run at $r failed"
    fi
  done
fi

# The broker functions' own cost inside Redis (bench/brokercost.c): a private, empty redis-server,
# the reference workload's long-polling cycle without nginx, workers or generator.
if [ -x "$BUILD/bin/brokercost" ]; then
  log "broker cost per function (Redis commandstats)"
  BC_DIR=$BENCH_DIR/brokercost; rm -rf "$BC_DIR"; bcport=$(bx_free_port)
  if bx_start_redis "$BC_DIR" "$bcport"; then
    timeout -k 5 120 "$BUILD/bin/brokercost" --json --port "$bcport" --clients "$CLIENTS" --rooms "$ROOMS" \
      --rooms-per-client "$ROOMS_PER_CLIENT" --rounds "$([ "$QUICK" = 1 ] && echo 10 || echo 30)" \
      2> >(sed 's/^/    /' >&2) >> "$RUNS" || printf '{"label":"broker-cost","error":"brokercost failed"}\n' >> "$RUNS"
  else
    printf '{"label":"broker-cost","error":"its redis-server did not start"}\n' >> "$RUNS"
  fi
  bx_stop_pidfile "$BC_DIR/redis.pid"
fi

# Latency floor: two clients in one room, single-message publishes at a light rate. Floor and
# request rates run first, on fresh servers: a saturated Faye takes minutes to drain its backlog.
for s in "${started[@]}"; do
  log "$s: latency floor"
  CLIENTS=2 ROOMS=1 ROOMS_PER_CLIENT=1 bench_one "$s" 50 --batch 1 --duration 5 --label "floor-$s" || true
done

# The same floor measured by the C probe (bench/floor.c: one epoll loop, single publishes from both
# clients, the cross-client path reported apart; the kind of instrument shared/limits.md's ~0.35 ms was
# measured with), then both instruments against the trivial in-memory responder: their own floor.
FLOOR_BIN=$BUILD/bench/floor
floorc_one() { # LABEL URL
  local line
  if [ ! -x "$FLOOR_BIN" ]; then
    printf '{"label":"%s","instrument":"floor.c","error":"%s not built (make floor)"}\n' "$1" "$FLOOR_BIN" >> "$RUNS"; return
  fi
  line=$(timeout -k 5 90 "$FLOOR_BIN" --json --label "$1" --url "$2" --rate 50 --duration 5 2> >(sed 's/^/    /' >&2))
  [ -n "$line" ] || line=$(printf '{"label":"%s","instrument":"floor.c","error":"probe gave no result (killed after 90 s?)"}' "$1")
  echo "$line" >> "$RUNS"
}
for s in "${started[@]}"; do
  log "$s: latency floor, C probe"
  freeze_others "$s"
  floorc_one "floorc-$s" "${URL[$s]}"
done
freeze_others -
log "latency floor of the instruments: trivial responder"
timeout -k 5 60 node bench/bench.js --json --self --engine "$ENGINE" --cgen "$CGEN" --label floor-responder --clients 2 \
  --rooms 1 --rooms-per-client 1 --rate 50 --batch 1 --duration 5 2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "responder floor run failed"
if rurl=$(floorc_responder_start "$BENCH_DIR/responder"); then
  floorc_one floorc-responder "$rurl"
  floorc_responder_stop "$BENCH_DIR/responder"
else
  printf '{"label":"floorc-responder","instrument":"floor.c","error":"responder did not start"}\n' >> "$RUNS"
fi

# Request rates: the libfcgi hello-world ceiling, then non-blocking publishes (one session per
# connection, a channel nobody subscribes to) against each server.
log "request rates: libfcgi hello world, then publish requests/s per server"
RPS_SEC=$([ "$QUICK" = 1 ] && echo 3 || echo 5)
if start_hello; then
  timeout -k 5 60 node bench/rps.js --json --label rps-hello --mode hello --url "${URL[hello]}" --duration "$RPS_SEC" \
    2> >(sed 's/^/    /' >&2) >> "$RUNS"
  bx_stack_stop "$HELLO_DIR"
else
  printf '{"label":"rps-hello","error":"hello stack did not start"}\n' >> "$RUNS"
fi
for s in "${started[@]}"; do
  freeze_others "$s"
  timeout -k 5 60 node bench/rps.js --json --label "rps-$s" --mode publish --url "${URL[$s]}" --duration "$RPS_SEC" \
    2> >(sed 's/^/    /' >&2) >> "$RUNS"
done

declare -A saturated
for r in $RATES; do
  for s in $SERVERS; do
    log "$s at $r msg/s"
    bench_one "$s" "$r" || saturated[$s]=1
  done
  # The same rate over WebSocket, for the servers that have it (cometd-node is long-polling only).
  if [[ " $TRANSPORTS " == *" websocket "* ]]; then
    for s in $SERVERS; do
      [ -n "${WSOK[$s]:-}" ] || continue
      log "$s over websocket at $r msg/s"
      bench_one "$s" "$r" --transport websocket --label "$s-ws" || saturated[$s-ws]=1
    done
  fi
done
if [ "$SATURATE" = 1 ]; then
  for s in $SERVERS; do
    r=$top
    while [ -z "${saturated[$s]:-}" ] && [ $((r * 2)) -le "$MAX_RATE" ]; do
      r=$((r * 2))
      log "$s at $r msg/s (towards saturation)"
      bench_one "$s" "$r" || saturated[$s]=1
    done
  done
  # Over WebSocket too: the p99 target is judged per transport at half its saturation load.
  if [[ " $TRANSPORTS " == *" websocket "* ]]; then
    for s in $SERVERS; do
      [ -n "${WSOK[$s]:-}" ] || continue
      r=$top
      while [ -z "${saturated[$s-ws]:-}" ] && [ $((r * 2)) -le "$MAX_RATE" ]; do
        r=$((r * 2))
        log "$s over websocket at $r msg/s (towards saturation)"
        bench_one "$s" "$r" --transport websocket --label "$s-ws" || saturated[$s-ws]=1
      done
    done
  fi
fi

if [ "$CAPACITY" = 1 ] && [[ " ${started[*]} " == *" bayeux-fcgi "* ]]; then
  # Worker scaling: the same workload at twice the top sweep rate with 1, 2 and 4 workers.
  for n in 1 2 4; do
    log "worker scaling: $n worker(s) at $((top * 2)) msg/s"
    start_bayeux-fcgi "$n" && bench_one bayeux-fcgi "$((top * 2))" --label "bayeux-fcgi-w$n"
  done
  # Redis commands per publish as subscribers grow (fixed 100 msg/s, WORKERS workers).
  if start_bayeux-fcgi; then
    for n in 100 1000 4000; do
      log "fan-out series: $n clients at 100 msg/s"
      CLIENTS=$n bench_one bayeux-fcgi 100 --label "fanout-$n" || true
    done
  fi
  log "capacity: $PARKED parked long-polls on one worker"
  if start_bayeux-fcgi 1; then
    freeze_others bayeux-fcgi
    ngx=$(cat "$STACK_DIR/nginx.pid")
    timeout -k 5 $((PARKED / 20 + 200)) node bench/capacity.js --json --url "${URL[bayeux-fcgi]}" --clients "$PARKED" \
      --worker-pids "$(cat "$STACK_DIR/worker1.pid")" --pids "$ngx,$(cat /proc/"$ngx"/task/*/children | tr ' ' ',')" \
      2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "capacity run failed"
    if [ -n "${WSOK[bayeux-fcgi]:-}" ]; then
      log "capacity: $PARKED idle WebSocket connections on bayeux-ws"
      timeout -k 5 $((PARKED / 20 + 200)) node --experimental-websocket --no-warnings bench/capacity.js --json \
        --transport websocket --label capacity-ws --url "${URL[bayeux-fcgi]}" --clients "$PARKED" \
        --worker-pids "$(cat "$STACK_DIR/ws.pid")" --pids "$ngx,$(cat /proc/"$ngx"/task/*/children | tr ' ' ',')" \
        2> >(sed 's/^/    /' >&2) >> "$RUNS" || log "websocket capacity run failed"
    fi
  fi
fi

cleanup
node bench/report.js --runs "$RUNS" --out "$OUT" --stamp "$STAMP" \
  --command "make bench$([ "$QUICK" = 1 ] && echo ' QUICK=1')$([ "$CAPACITY" = 1 ] && echo ' CAPACITY=1')" ${UPDATE_README:+--readme README.md}
