# tests/lib/common.sh — shared helpers for test suites (source it).
# Every server a test starts is private: free loopback port, own dir, stopped by PID.

# A free TCP port on 127.0.0.1 (bind to 0, read the port back).
bx_free_port() {
  python3 - 2>/dev/null <<'PY' || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# bx_node_test ARGS... — node's test runner as every suite runs it: one file at a time; node exits when a
# file's tests are done even if a socket is left open (--test-force-exit); a file fails after 10 min
# (in Node 20 --test-timeout applies per file).
bx_node_test() {
  node --test --test-concurrency=1 --test-force-exit --test-timeout=600000 --test-reporter=spec "$@"
}

# bx_start_redis DIR PORT [redis-server args...] → starts redis-server (no persistence unless
# the extra args, which come last and so win, turn it on), pid in DIR/redis.pid.
# BX_SETSID=1: in its own session, so a terminal's Ctrl-C reaches only the script that stops it.
bx_start_redis() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  local pre=()
  [ -n "${BX_SETSID:-}" ] && pre=(setsid)
  "${pre[@]}" redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
    --daemonize no --protected-mode yes --logfile "$dir/redis.log" "$@" &
  echo $! > "$dir/redis.pid"
  for _ in $(seq 1 100); do
    # PONG, not just an answer: while it loads its AOF/RDB it answers LOADING.
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "redis-server did not start on port $port" >&2; cat "$dir/redis.log" >&2; return 1
}

# bx_pid_alive PID → 0 while PID runs. A zombie (exited, not yet reaped) counts as gone: kill -0
# succeeds on one, and an orphan's zombie waits for PID 1 to reap it (1-2 s here).
bx_pid_alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0 # no procfs: kill -0 is all there is
  read -r st 2>/dev/null < "/proc/$1/stat" || return 1
  st=${st##*) } # "pid (comm) S ...": comm may hold spaces and parentheses
  case ${st%% *} in Z|X) return 1 ;; esac
  return 0
}

# bx_stop_pidfile FILE → TERM, wait up to 5 s, then KILL.
bx_stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if bx_pid_alive "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do bx_pid_alive "$pid" || break; sleep 0.1; done
    bx_pid_alive "$pid" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

# bx_sanitizer_report LABEL FILE... → 1 (after printing the reports) if a process that logged to
# FILE hit ASan/UBSan or crashed with a sanitizer summary; 0 when the logs are clean.
bx_sanitizer_report() {
  local label=$1
  shift
  grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: .*Sanitizer' "$@" 2>/dev/null || return 0
  echo "$label: sanitizer reports in the logs above"
  grep -hE -A20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$@" | head -60
  return 1
}

# ---- a suite's private stack ------------------------------------------------------------------
# For tests/<suite>/run.sh, after `source scripts/stack.sh` (which sources this file). Call these in
# the script's own shell, not in $(...): they set the globals below and the EXIT trap.
#   bx_test_dir bx_test_redis_port      set by bx_test_stack_new
#   bx_test_nginx_port bx_test_tls_port bx_test_ws_port   set by bx_test_stack_up

# bx_test_bins LABEL [--ws] → exports BX_STACK_BIN (bayeux-fcgi), with --ws also BX_STACK_WS_BIN
# (bayeux-ws), from $BUILD (build/san; absolute or relative to the checkout). Returns 1 with
# "LABEL: every test fails" when one is not built, or when node is missing.
bx_test_bins() {
  local label=$1 build=${BUILD:-build/san}
  BX_STACK_BIN=$(bx_stack_bin "$build") || { echo "$label: every test fails"; return 1; }
  export BX_STACK_BIN
  if [ "${2:-}" = --ws ]; then
    BX_STACK_WS_BIN=$(bx_stack_bin "$build" bayeux-ws) || { echo "$label: every test fails"; return 1; }
    export BX_STACK_WS_BIN
  fi
  command -v node >/dev/null || { echo "$label: node is missing (make deps)"; return 1; }
}

# bx_test_stack_new LABEL PREFIX [KEEP_VAR] → a new temp dir /tmp/PREFIX.XXXXXX in bx_test_dir, a
# free loopback port for its redis-server in bx_test_redis_port (write the worker conf with it to
# bx_test_dir/bayeux.conf), and the traps: on EXIT everything started in the dir is stopped by PID
# (bx_test_stack_down), however the script ends (a failed test, a failed start; INT/TERM → exit 130);
# then the dir is removed, unless the exit status is non-zero or $KEEP_VAR is 1 ("LABEL: logs kept").
bx_test_stack_new() {
  bx_test_label=$1 bx_test_keep_var=${3:-} bx_test_stop_hooks=()
  bx_test_dir=$(mktemp -d "/tmp/$2.XXXXXX") || { echo "$1: mktemp failed" >&2; exit 1; }
  bx_test_redis_port=$(bx_free_port)
  trap 'bx_test_stack_exit $?' EXIT
  trap 'exit 130' INT TERM
}

# bx_test_stack_on_stop CMD [ARGS...] → run CMD at bx_test_stack_down, before the dir's stack is
# stopped (what the suite started besides it; the last added runs first).
bx_test_stack_on_stop() { bx_test_stop_hooks+=("$(printf '%q ' "$@")"); }

# bx_test_stack_down → the stop commands, then bx_stack_stop of the dir. Safe to call again.
bx_test_stack_down() {
  local i
  for ((i = ${#bx_test_stop_hooks[@]} - 1; i >= 0; i--)); do eval "${bx_test_stop_hooks[i]}"; done
  bx_stack_stop "$bx_test_dir"
}

# bx_test_stack_exit STATUS → the EXIT trap of bx_test_stack_new (the exit status is left as it is).
bx_test_stack_exit() {
  bx_test_stack_down
  if [ "$1" != 0 ] || { [ -n "$bx_test_keep_var" ] && [ "${!bx_test_keep_var:-0}" = 1 ]; }; then
    echo "$bx_test_label: logs kept in $bx_test_dir"
  else
    rm -rf "$bx_test_dir"
  fi
}

# bx_test_stack_up DIR [--workers N] [--ws] [--tls] → in DIR (bx_test_dir): redis-server on
# bx_test_redis_port, N workers (2) of BX_STACK_BIN (required) with the conf DIR/bayeux.conf,
# with --ws bayeux-ws (BX_STACK_WS_BIN) on a free port, nginx on a free port, with --tls also an
# HTTPS listener (self-signed certificate in DIR/tls). Exports BX_STACK_DIR, _CONF, _REDIS_PORT,
# _WORKERS, _WS_PORT for the node tests; the other BX_STACK_* settings come from the caller's
# environment (bx_stack_init saves them for stack.sh commands). Returns 1 with a message when a
# piece did not start; what did start is stopped by the EXIT trap.
bx_test_stack_up() {
  local dir=$1 workers=2 ws=0 tls=0
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --workers) workers=$2; shift 2 ;;
      --ws) ws=1; shift ;;
      --tls) tls=1; shift ;;
      *) echo "bx_test_stack_up: unknown option $1" >&2; return 2 ;;
    esac
  done
  : "${BX_STACK_BIN:?bx_test_stack_up: set BX_STACK_BIN to the worker binary under test}"
  export BX_STACK_DIR=$dir BX_STACK_CONF=$dir/bayeux.conf BX_STACK_REDIS_PORT=$bx_test_redis_port \
         BX_STACK_WORKERS=$workers BX_STACK_WWW=${BX_STACK_WWW:-$BX_STACK_ROOT/www} \
         BX_STACK_REDIS_AOF=${BX_STACK_REDIS_AOF:-0}
  bx_test_ws_port="" bx_test_tls_port=""
  [ "$ws" = 1 ] && bx_test_ws_port=$(bx_free_port)
  export BX_STACK_WS_PORT=$bx_test_ws_port # empty: no bayeux-ws, even if the caller's shell names one
  bx_test_nginx_port=$(bx_free_port)
  local -a tls_args=()
  if [ "$tls" = 1 ]; then
    bx_test_tls_port=$(bx_free_port)
    tls_args=("$bx_test_tls_port" "$dir/tls/cert.pem" "$dir/tls/key.pem")
  fi
  if bx_stack_init "$dir" && { [ "$tls" = 0 ] || bx_stack_tls_cert "$dir"; } &&
     bx_stack_redis_start "$dir" && bx_stack_workers_start "$dir" &&
     { [ "$ws" = 0 ] || bx_stack_ws_start "$dir"; } &&
     bx_stack_nginx_start "$dir" 127.0.0.1 "$bx_test_nginx_port" "${tls_args[@]}"; then
    return 0
  fi
  echo "${bx_test_label:-test}: the stack did not start (see above)" >&2
  return 1
}
