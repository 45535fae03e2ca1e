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
