# tests/lib/common.sh — shared helpers for test suites (source it).
# Every server a test starts is private: free loopback port, own dir, stopped by PID.

# A free TCP port on 127.0.0.1 (bind to 0, read the port back).
bx_free_port() {
  python3 - 2>/dev/null <<'PY' || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
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

# bx_stop_pidfile FILE → TERM, wait up to 5 s, then KILL.
bx_stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
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
