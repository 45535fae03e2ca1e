#!/usr/bin/env bash
# scripts/stack.sh — start and stop a private bayeux-fcgi stack in one directory:
# redis-server, WORKERS bayeux-fcgi processes on Unix sockets, nginx and/or lighttpd.
# Everything it starts writes a PID file into that directory and is stopped by PID, never by name.
# Each daemon runs in its own session (setsid; it does not fork from a script, so $! is the daemon):
# a terminal's Ctrl-C reaches only the script, which then stops them in order.
#
# Sourced by scripts/run.sh (`make run`) and tests/integration/run.sh; also a command for the tests
# and for operators:
#   stack.sh worker-start DIR I        (re)start worker I with the settings saved in DIR/stack.env
#   stack.sh worker-stop DIR I [SIG]   send SIG (default TERM) to worker I and wait for it to exit
#   stack.sh worker-pid DIR I          print worker I's PID
#   stack.sh ws-start DIR / ws-stop DIR [SIG] / ws-pid DIR   bayeux-ws (when BX_STACK_WS_PORT is set)
#   stack.sh redis-stop DIR            stop redis-server (TERM, then KILL)
#   stack.sh redis-start DIR           start it again on the same port with the same options
#   stack.sh stop DIR                  stop everything started in DIR
#   stack.sh nginx-site OPTIONS        print the nginx site for a system nginx (see --help there)
#
# Settings (environment, saved to DIR/stack.env by bx_stack_init so later commands see the same):
#   BX_STACK_BIN      worker binary (build/bin/bayeux-fcgi)
#   BX_STACK_CONF     worker configuration file passed as -c
#   BX_STACK_WORKERS  number of workers (2)
#   BX_STACK_WWW      document root served at / (www/)
#   BX_STACK_MAX_BODY client body limit in bytes = maxMessageSize (1048576)
#   BX_STACK_READ_TIMEOUT  seconds a web server waits on a quiet worker (timeout + maxNetworkDelay + 5)
#   BX_STACK_REDIS_PORT    redis-server port
#   BX_STACK_REDIS_AOF     1: AOF everysec under DIR/redis (make run); 0: no persistence (tests)
#   BX_STACK_FAIL_TIMEOUT  seconds nginx skips bayeux-ws or a worker on another host after a failed
#                          connect (5); local worker sockets are never skipped (max_fails=0)
#   BX_STACK_KEEPALIVE     idle FastCGI connections nginx keeps per worker process (1024; 0 = off:
#                          fastcgi_keep_conn off, one connection per request). Parked polls are
#                          answered in bursts (one publish, hundreds of replies): with 32 most of those
#                          connections were closed and the reconnects accepted anew (measured at
#                          800 msg/s: nginx and worker CPU per delivery 6-9 % lower with 1024)
#   BX_STACK_WS_BIN   bayeux-ws binary (build/bin/bayeux-ws)
#   BX_STACK_WS_PORT  loopback port of bayeux-ws; empty: no bayeux-ws (nginx answers upgrades with 502)
# Workers also get every BX_* variable of the caller's environment (config overrides).

BX_STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/lib/common.sh
source "$BX_STACK_ROOT/tests/lib/common.sh"

bx_stack_log() { printf '[stack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bx_stack_init DIR → creates DIR, saves the settings above into DIR/stack.env.
bx_stack_init() {
  local dir=$1
  mkdir -p "$dir/tmp"
  # Web-server workers may run as another user (root starts them as www-data): they must reach the
  # worker sockets inside DIR, nothing else.
  chmod 0711 "$dir"
  : "${BX_STACK_BIN:=$BX_STACK_ROOT/build/bin/bayeux-fcgi}"
  : "${BX_STACK_WORKERS:=2}" "${BX_STACK_WWW:=$BX_STACK_ROOT/www}"
  : "${BX_STACK_MAX_BODY:=1048576}" "${BX_STACK_READ_TIMEOUT:=35}" "${BX_STACK_REDIS_AOF:=0}"
  : "${BX_STACK_FAIL_TIMEOUT:=5}" "${BX_STACK_KEEPALIVE:=1024}"
  : "${BX_STACK_WS_BIN:=$BX_STACK_ROOT/build/bin/bayeux-ws}" "${BX_STACK_WS_PORT:=}"
  : "${BX_STACK_REDIS_PORT:?BX_STACK_REDIS_PORT is required}" "${BX_STACK_CONF:?BX_STACK_CONF is required}"
  local v
  {
    for v in BX_STACK_BIN BX_STACK_CONF BX_STACK_WORKERS BX_STACK_WWW BX_STACK_MAX_BODY \
             BX_STACK_READ_TIMEOUT BX_STACK_REDIS_PORT BX_STACK_REDIS_AOF BX_STACK_FAIL_TIMEOUT BX_STACK_KEEPALIVE \
             BX_STACK_WS_BIN BX_STACK_WS_PORT; do
      printf 'export %s=%q\n' "$v" "${!v}"
    done
    # The workers' configuration overrides, so a restarted worker gets the same ones.
    while IFS='=' read -r v _; do
      [[ $v == BX_STACK_* || $v == BX_ROOT ]] && continue
      printf 'export %s=%q\n' "$v" "${!v}"
    done < <(env | grep -E '^BX_[A-Z0-9_]+=' || true)
  } > "$dir/stack.env"
}

# bx_stack_bin BUILD [NAME] → absolute path of BUILD/bin/NAME (bayeux-fcgi); BUILD may be relative to
# the checkout. Fails (with a message) when it is not built.
bx_stack_bin() {
  local b=$1 name=${2:-bayeux-fcgi}
  [[ $b == /* ]] || b=$BX_STACK_ROOT/$b
  echo "$b/bin/$name"
  [ -x "$b/bin/$name" ] || { echo "stack: $b/bin/$name is not built (make all)" >&2; return 1; }
}

bx_stack_load() { # DIR → the settings saved by bx_stack_init
  [ -f "$1/stack.env" ] || { echo "stack: $1/stack.env missing (not a stack directory)" >&2; return 1; }
  # shellcheck disable=SC1091
  source "$1/stack.env"
}

# The user a root-started web server should drop to; empty when not root (it stays who it is).
# A checkout under a private home (/root is 0700) is not readable by www-data: then the web server
# stays root rather than serve 403s for the demo pages (a private stack on loopback, not a deployment).
bx_stack_web_user() {
  [ "$(id -u)" = 0 ] || return 0
  local u=nobody
  getent passwd www-data >/dev/null && u=www-data
  if ! runuser -u "$u" -- test -r "${BX_STACK_WWW:-$BX_STACK_ROOT/www}/." 2>/dev/null; then
    bx_stack_log "$u cannot read ${BX_STACK_WWW:-$BX_STACK_ROOT/www}; the web server runs as root"
    u=root
  fi
  echo "$u"
}

# Open files for one web-server process: the hard limit, at most 20000 (shared/limits.md).
bx_stack_nofile() {
  local hard
  hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ] || [ "$hard" -gt 20000 ]; then hard=20000; fi
  echo "$hard"
}

# bx_stack_render TEMPLATE OUT NAME=VALUE... → OUT (- = stdout) with each @NAME@ replaced; an
# unfilled one fails.
bx_stack_render() {
  local tpl=$1 out=$2 kv
  shift 2
  local -a envs=()
  for kv in "$@"; do envs+=("T_$kv"); done
  local prog='s/@([A-Z_]+)@/exists $ENV{"T_$1"} ? $ENV{"T_$1"} : die "$ARGV: \@$1\@ not filled\n"/ge'
  if [ "$out" = - ]; then env "${envs[@]}" perl -pe "$prog" "$tpl"; return; fi
  env "${envs[@]}" perl -pe "$prog" "$tpl" > "$out.tmp" && mv "$out.tmp" "$out"
}

# bx_stack_wait_pid_gone PID TENTHS → 0 once PID has exited, 1 if it still runs after TENTHS/10 s.
bx_stack_wait_pid_gone() {
  local pid=$1 n=$2
  while [ "$n" -gt 0 ]; do
    bx_pid_alive "$pid" || return 0
    sleep 0.1; n=$((n - 1))
  done
  ! bx_pid_alive "$pid"
}

# ---- redis ---------------------------------------------------------------------------------

bx_stack_redis_start() { # DIR
  local dir=$1
  bx_stack_load "$dir" || return 1
  local -a aof=()
  [ "$BX_STACK_REDIS_AOF" = 1 ] && aof=(--appendonly yes --appendfsync everysec)
  # redis-server must not hold the caller's stdout: a caller reading it to the end would wait forever.
  mkdir -p "$dir/redis"
  BX_SETSID=1 bx_start_redis "$dir/redis" "$BX_STACK_REDIS_PORT" "${aof[@]}" > "$dir/redis/start.out" 2>&1 ||
    { cat "$dir/redis/start.out" >&2; return 1; }
}

bx_stack_redis_stop() { bx_stop_pidfile "$1/redis/redis.pid"; }

# ---- workers -------------------------------------------------------------------------------

bx_stack_worker_sock() { echo "$1/worker$2.sock"; }

# bx_stack_worker_start DIR I → starts worker I on DIR/workerI.sock, log DIR/workerI.log (appended),
# PID in DIR/workerI.pid; returns once the socket accepts connections.
bx_stack_worker_start() {
  local dir=$1 i=$2 sock pid
  bx_stack_load "$dir" || return 1
  sock=$(bx_stack_worker_sock "$dir" "$i")
  if [ -f "$dir/worker$i.pid" ] && bx_pid_alive "$(cat "$dir/worker$i.pid")"; then
    echo "stack: worker $i already runs (pid $(cat "$dir/worker$i.pid"))" >&2; return 1
  fi
  [ -x "$BX_STACK_BIN" ] || { echo "stack: worker binary $BX_STACK_BIN missing (make all)" >&2; return 1; }
  rm -f "$sock"
  setsid "$BX_STACK_BIN" -c "$BX_STACK_CONF" -l "$sock" >> "$dir/worker$i.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/worker$i.pid"
  for _ in $(seq 1 100); do
    if ! bx_pid_alive "$pid"; then
      echo "stack: worker $i exited at start; last lines of $dir/worker$i.log:" >&2
      tail -n 20 "$dir/worker$i.log" >&2
      rm -f "$dir/worker$i.pid"; return 1
    fi
    if [ -S "$sock" ]; then
      # The web server's workers may run as another user (see bx_stack_web_user).
      chmod 0666 "$sock"
      return 0
    fi
    sleep 0.05
  done
  echo "stack: worker $i did not create $sock within 5 s" >&2
  bx_stop_pidfile "$dir/worker$i.pid"; return 1
}

# bx_stack_worker_stop DIR I [SIGNAL] → sends SIGNAL (TERM) and waits up to 10 s, then KILL.
bx_stack_worker_stop() {
  local dir=$1 i=$2 sig=${3:-TERM} pid
  [ -f "$dir/worker$i.pid" ] || return 0
  pid=$(cat "$dir/worker$i.pid")
  kill -s "$sig" "$pid" 2>/dev/null || true
  if ! bx_stack_wait_pid_gone "$pid" 100; then
    echo "stack: worker $i (pid $pid) still runs 10 s after SIG$sig; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    bx_stack_wait_pid_gone "$pid" 20 || true
  fi
  rm -f "$dir/worker$i.pid"
}

bx_stack_workers_start() { # DIR → workers 1..BX_STACK_WORKERS
  local dir=$1 i
  bx_stack_load "$dir" || return 1
  for i in $(seq 1 "$BX_STACK_WORKERS"); do bx_stack_worker_start "$dir" "$i" || return 1; done
}

# bx_stack_workers_check DIR → restarts every worker that died (logged); for a supervising loop.
bx_stack_workers_check() {
  local dir=$1 i pid
  for i in $(seq 1 "$BX_STACK_WORKERS"); do
    pid=$(cat "$dir/worker$i.pid" 2>/dev/null || true)
    [ -n "$pid" ] && bx_pid_alive "$pid" && continue
    # Reap it (it is our child) so its exit status can be logged.
    local status=unknown
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null; status=$?; fi
    bx_stack_log "worker $i (pid ${pid:-?}) died (exit status $status); restarting it"
    rm -f "$dir/worker$i.pid"
    if bx_stack_worker_start "$dir" "$i"; then
      bx_stack_log "worker $i restarted, pid $(cat "$dir/worker$i.pid")"
    fi
  done
}

# ---- bayeux-ws --------------------------------------------------------------------------------

# bx_stack_ws_start DIR → bayeux-ws on 127.0.0.1:BX_STACK_WS_PORT, log DIR/ws.log, PID DIR/ws.pid;
# returns once it accepts connections. Nothing to do without BX_STACK_WS_PORT.
bx_stack_ws_start() {
  local dir=$1 pid
  bx_stack_load "$dir" || return 1
  [ -n "$BX_STACK_WS_PORT" ] || return 0
  [ -x "$BX_STACK_WS_BIN" ] || { echo "stack: $BX_STACK_WS_BIN missing (make all)" >&2; return 1; }
  setsid "$BX_STACK_WS_BIN" -c "$BX_STACK_CONF" -l "127.0.0.1:$BX_STACK_WS_PORT" >> "$dir/ws.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$dir/ws.pid"
  for _ in $(seq 1 100); do
    bx_pid_alive "$pid" || { echo "stack: bayeux-ws exited at start:" >&2; tail -n 20 "$dir/ws.log" >&2; return 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$BX_STACK_WS_PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "stack: bayeux-ws does not accept on 127.0.0.1:$BX_STACK_WS_PORT" >&2; return 1
}

# bx_stack_ws_stop DIR [SIGNAL] → SIGNAL (TERM: every socket closed with 1001), wait up to 10 s, then KILL.
bx_stack_ws_stop() {
  local dir=$1 sig=${2:-TERM} pid
  [ -f "$dir/ws.pid" ] || return 0
  pid=$(cat "$dir/ws.pid")
  kill -s "$sig" "$pid" 2>/dev/null || true
  bx_stack_wait_pid_gone "$pid" 100 || { kill -9 "$pid" 2>/dev/null; bx_stack_wait_pid_gone "$pid" 20; }
  rm -f "$dir/ws.pid"
}

# nginx upstream line of bayeux-ws (a "down" placeholder without one).
bx_stack_ws_upstream() { # PORT|HOST:PORT|""
  case $1 in
    "") printf '    server 127.0.0.1:9 down; # no bayeux-ws: upgrades get 502, clients use long-polling\n' ;;
    *:*) printf '    server %s max_fails=1 fail_timeout=%ss;\n' "$1" "${BX_STACK_FAIL_TIMEOUT:-5}" ;;
    *) printf '    server 127.0.0.1:%s max_fails=1 fail_timeout=%ss;\n' "$1" "${BX_STACK_FAIL_TIMEOUT:-5}" ;;
  esac
}

# ---- web servers ---------------------------------------------------------------------------

# bx_stack_tls_cert DIR → a self-signed certificate for localhost/127.0.0.1 in DIR/tls/ (cert.pem,
# key.pem), made once and kept.
bx_stack_tls_cert() {
  local d=$1/tls
  [ -f "$d/cert.pem" ] && [ -f "$d/key.pem" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$d/key.pem" -out "$d/cert.pem" >/dev/null 2>&1 || { echo "stack: openssl failed" >&2; return 1; }
  chmod 0600 "$d/key.pem"
}

# nginx upstream line of one worker (the private stack and `nginx-site` share it). A Unix socket gets
# max_fails=0: nginx never marks a local worker down (a refused connect on a Unix socket costs
# microseconds and the request goes to the next worker); with max_fails=1 a rolling restart could
# leave both workers marked down at once: "no live upstreams", 502 (seen in tests/fault). A worker on
# another host keeps max_fails=1: a host that is down can cost a connect timeout per request.
bx_stack_upstream_server() { # SOCKET-PATH|HOST:PORT
  case $1 in
    /*) printf '    server unix:%s max_fails=0;\n' "$1" ;;
    *) printf '    server %s max_fails=1 fail_timeout=%ss;\n' "$1" "${BX_STACK_FAIL_TIMEOUT:-5}" ;;
  esac
}

# nginx upstream lines, one per worker socket.
bx_stack_nginx_upstreams() { # DIR N
  local i
  for i in $(seq 1 "$2"); do bx_stack_upstream_server "$(bx_stack_worker_sock "$1" "$i")"; done
}

# bx_stack_nginx_site OUT LISTEN UPSTREAMS [TLS_PORT CERT KEY] → the site file (shared by the private
# stack and the `nginx-site` command).
bx_stack_nginx_site() {
  local out=$1 listen=$2 upstreams=$3 tls_port=${4:-} cert=${5:-} key=${6:-} tls=""
  local keep_conn=off keepalive="    # keepalive off"
  if [ "${BX_STACK_KEEPALIVE:-1024}" -gt 0 ]; then keep_conn=on; keepalive="    keepalive ${BX_STACK_KEEPALIVE:-1024};"; fi
  if [ -n "$tls_port" ]; then
    tls=$(printf '    listen %s:%s ssl backlog=4096;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3;' \
      "${listen%:*}" "$tls_port" "$cert" "$key")
  fi
  bx_stack_render "$BX_STACK_ROOT/conf/nginx/bayeux-site.conf.in" "$out" \
    "LISTEN=$listen" "TLS_LINES=$tls" "UPSTREAM_SERVERS=$upstreams" "KEEP_CONN=$keep_conn" \
    "KEEPALIVE_LINE=$keepalive" "WS_SERVERS=$(bx_stack_ws_upstream "${BX_STACK_WS_PORT:-}")" \
    "WWW_ROOT=$BX_STACK_WWW" "MAX_BODY=$BX_STACK_MAX_BODY" "READ_TIMEOUT=$BX_STACK_READ_TIMEOUT"
}

# bx_stack_nginx_start DIR BIND PORT [TLS_PORT CERT KEY] → nginx in the foreground of a background
# job, PID in DIR/nginx.pid; returns once it answers on PORT.
bx_stack_nginx_start() {
  local dir=$1 bind=$2 port=$3 user nofile pid
  bx_stack_load "$dir" || return 1
  user=$(bx_stack_web_user); nofile=$(bx_stack_nofile)
  # reuseport: the kernel spreads new connections over the nginx workers; without it one worker took ~80 %
  # of 10,000 websocket clients (two connections each) and ran out of worker_connections
  bx_stack_nginx_site "$dir/bayeux-site.conf" "$bind:$port reuseport" \
    "$(bx_stack_nginx_upstreams "$dir" "$BX_STACK_WORKERS")" "${4:-}" "${5:-}" "${6:-}" || return 1
  bx_stack_render "$BX_STACK_ROOT/conf/nginx/nginx.conf.in" "$dir/nginx.conf" \
    "USER_LINE=${user:+user $user;}" "DIR=$dir" "ERROR_LOG_LEVEL=warn" \
    "RLIMIT_NOFILE=$nofile" "WORKER_CONNECTIONS=$((nofile - 1000))" || return 1
  nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/nginx-t.log" ||
    { cat "$dir/nginx-t.log" >&2; return 1; }
  setsid nginx -c "$dir/nginx.conf" -p "$dir" >/dev/null 2>>"$dir/nginx-error.log" &
  pid=$!
  echo "$pid" > "$dir/nginx.pid"
  bx_stack_wait_http "$bind" "$port" "$pid" nginx "$dir/nginx-error.log"
}

# lighttpd fastcgi.server entries, one per worker socket.
bx_stack_lighttpd_hosts() { # DIR N
  local i sep=""
  for i in $(seq 1 "$2"); do
    printf '%s  "worker%s" => ( "socket" => "%s", "check-local" => "disable" )' "$sep" "$i" \
      "$(bx_stack_worker_sock "$1" "$i")"
    sep=$',\n'
  done
}

# bx_stack_lighttpd_start DIR BIND PORT → lighttpd -D in a background job, PID in DIR/lighttpd.pid.
bx_stack_lighttpd_start() {
  local dir=$1 bind=$2 port=$3 user nofile pid
  bx_stack_load "$dir" || return 1
  command -v lighttpd >/dev/null || { echo "stack: lighttpd is not installed" >&2; return 1; }
  user=$(bx_stack_web_user); nofile=$(bx_stack_nofile)
  bx_stack_render "$BX_STACK_ROOT/conf/lighttpd/lighttpd.conf.in" "$dir/lighttpd.conf" \
    "USER_LINE=$([ -n "$user" ] && [ "$user" != root ] && echo "server.username = \"$user\"")" "BIND=$bind" "PORT=$port" "DIR=$dir" \
    "WWW_ROOT=$BX_STACK_WWW" "RLIMIT_NOFILE=$nofile" "MAX_CONNECTIONS=$(( (nofile - 1000) / 2 ))" \
    "MAX_BODY_KB=$(( (BX_STACK_MAX_BODY + 1023) / 1024 ))" "READ_TIMEOUT=$BX_STACK_READ_TIMEOUT" \
    "FASTCGI_HOSTS=$(bx_stack_lighttpd_hosts "$dir" "$BX_STACK_WORKERS")" || return 1
  # lighttpd writes its error log as the dropped user.
  [ -n "$user" ] && [ "$user" != root ] && touch "$dir/lighttpd-error.log" "$dir/lighttpd-access.log" &&
    chown "$user" "$dir/lighttpd-error.log" "$dir/lighttpd-access.log" "$dir/tmp"
  lighttpd -tt -f "$dir/lighttpd.conf" >"$dir/lighttpd-t.log" 2>&1 ||
    { cat "$dir/lighttpd-t.log" >&2; return 1; }
  setsid lighttpd -D -f "$dir/lighttpd.conf" >/dev/null 2>>"$dir/lighttpd-error.log" &
  pid=$!
  echo "$pid" > "$dir/lighttpd.pid"
  bx_stack_wait_http "$bind" "$port" "$pid" lighttpd "$dir/lighttpd-error.log"
}

# bx_stack_wait_http BIND PORT PID NAME LOG → 0 once something answers HTTP on BIND:PORT.
bx_stack_wait_http() {
  local host=$1 port=$2 pid=$3 name=$4 log=$5
  [ "$host" = 0.0.0.0 ] && host=127.0.0.1
  for _ in $(seq 1 100); do
    bx_pid_alive "$pid" || { echo "stack: $name exited at start:" >&2; tail -n 20 "$log" >&2; return 1; }
    curl -s -o /dev/null --max-time 1 "http://$host:$port/" && return 0
    sleep 0.05
  done
  echo "stack: $name does not answer on $host:$port" >&2; return 1
}

# ---- all -----------------------------------------------------------------------------------

# bx_stack_stop DIR → web servers first (no new requests), then workers (SIGTERM: parked polls are
# answered with reconnect advice), then redis. Only processes with a PID file in DIR.
bx_stack_stop() {
  local dir=$1 f i
  [ -d "$dir" ] || return 0
  bx_stop_pidfile "$dir/nginx.pid"
  bx_stop_pidfile "$dir/lighttpd.pid"
  bx_stack_ws_stop "$dir"
  for f in "$dir"/worker*.pid; do
    [ -f "$f" ] || continue
    i=${f##*/worker}; i=${i%.pid}
    bx_stack_worker_stop "$dir" "$i" TERM
  done
  bx_stack_redis_stop "$dir"
}

# ---- command line --------------------------------------------------------------------------

bx_stack_nginx_site_cmd() {
  local listen=80 sockets=/run/bayeux/worker1.sock,/run/bayeux/worker2.sock www=/var/www/bayeux
  local timeout=20000 max=1048576 delay=10000 ups="" s
  while [ $# -gt 0 ]; do
    case $1 in
      --listen) listen=$2; shift 2 ;;
      --workers) sockets=$2; shift 2 ;;
      --www) www=$2; shift 2 ;;
      --timeout) timeout=$2; shift 2 ;;
      --max-message-size) max=$2; shift 2 ;;
      --ws) BX_STACK_WS_PORT=$2; shift 2 ;;
      *) cat >&2 <<'USAGE'
usage: stack.sh nginx-site [--listen ADDR:PORT|PORT] [--workers SOCK|HOST:PORT,...] [--www DIR]
                           [--timeout MS] [--max-message-size BYTES] [--ws HOST:PORT of bayeux-ws]
Prints an nginx site (upstream + server) for the given workers, e.g.
  bash scripts/stack.sh nginx-site --listen 80 --workers /run/bayeux/w1.sock,/run/bayeux/w2.sock \
       > /etc/nginx/sites-available/bayeux
USAGE
         return 2 ;;
    esac
  done
  for s in ${sockets//,/ }; do ups+=$(bx_stack_upstream_server "${s#unix:}")$'\n'; done
  BX_STACK_WWW=$www BX_STACK_MAX_BODY=$max BX_STACK_READ_TIMEOUT=$(( (timeout + delay) / 1000 + 5 )) \
    bx_stack_nginx_site - "$listen" "${ups%$'\n'}"
}

bx_stack_main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    worker-start) bx_stack_worker_start "$1" "$2" ;;
    worker-stop) bx_stack_worker_stop "$1" "$2" "${3:-TERM}" ;;
    worker-pid) cat "$1/worker$2.pid" ;;
    ws-start) bx_stack_ws_start "$1" ;;
    ws-stop) bx_stack_ws_stop "$1" "${2:-TERM}" ;;
    ws-pid) cat "$1/ws.pid" ;;
    redis-start) bx_stack_redis_start "$1" ;;
    redis-stop) bx_stack_redis_stop "$1" ;;
    stop) bx_stack_stop "$1" ;;
    nginx-site) bx_stack_nginx_site_cmd "$@" ;;
    *) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; return 2 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  bx_stack_main "$@"
fi
