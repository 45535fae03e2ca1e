#!/usr/bin/env bash
# tests/systemd/boot.sh — boots conf/systemd/'s units for real: a systemd-nspawn container of this
# machine's own /usr with systemd as its PID 1, where the units are installed as docs/operations.md
# says (socket-activated bayeux-fcgi@1/@2, bayeux-ws, Debian's redis-server with our drop-in, nginx
# with the site `stack.sh nginx-site` renders), then checked: socket activation, a handshake through
# nginx, the official CometD client over long-polling and websocket, a rolling restart and a SIGKILL
# under load (0 lost, no client error), reload, the redis drop-in, the sandbox user.
#
# NOT part of `make test`: it needs root, Linux with systemd-nspawn (apt-get install systemd-container)
# and the Debian packages the tests use (nginx, redis-server, node). The host is left alone: the
# container has its own network namespace (loopback only), tmpfs root, and /etc and /var as overlays
# whose writes vanish with it; the host's systemd (if any) is not involved (--register=no).
#   BUILD=build (default)    binaries to install (an optimized build: make all)
#   BX_SYSTEMD_KEEP=1        keep the temp dir (container journal dump) even when everything passed
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
BUILD=${BUILD:-build}
bin=$ROOT/$BUILD/bin
[[ $BUILD == /* ]] && bin=$BUILD/bin
die() { echo "systemd: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (systemd-nspawn)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing: apt-get install systemd-container"
[ -x /usr/lib/systemd/systemd ] || die "no /usr/lib/systemd/systemd to boot"
for b in bayeux-fcgi bayeux-ws bayeuxctl; do [ -x "$bin/$b" ] || die "$bin/$b missing (make BUILD=$BUILD all)"; done
for c in nginx redis-server node curl redis-cli; do command -v "$c" >/dev/null || die "$c missing (make deps)"; done
[ -d tests/e2e/node_modules/cometd ] || die "tests/e2e/node_modules missing (make deps)"

tmp=$(mktemp -d /tmp/bx-systemd.XXXXXX)
chmod 0755 "$tmp"
name=bxsd$$
failed=0
npid=""
leader=""
C() { nsenter -t "$leader" -a "$@"; } # a command inside the container (all its namespaces)
ok() { echo "systemd: ok   $*"; }
bad() { echo "systemd: FAIL $*"; failed=1; }

finish() {
  if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
    C journalctl --no-pager -o short-precise > "$tmp/journal.txt" 2>&1
    C cat /var/log/nginx/error.log > "$tmp/nginx-error.log" 2>&1
    C systemctl poweroff >/dev/null 2>&1
  fi
  if [ -n "$npid" ]; then
    for _ in $(seq 1 150); do kill -0 "$npid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$npid" 2>/dev/null; then
      # the container's PID 1 first: killing it ends every process of its PID namespace
      echo "systemd: container did not power off in 30 s; killing it"
      [ -n "$leader" ] && kill -9 "$leader" 2>/dev/null
      sleep 1
      kill -9 "$npid" 2>/dev/null
    fi
    wait "$npid" 2>/dev/null
  fi
  # what nspawn leaves behind on a host whose /run is not a tmpfs
  rmdir "/run/systemd/nspawn/propagate/$name" /run/systemd/nspawn/propagate /run/systemd/nspawn \
        /run/systemd/nspawn-root 2>/dev/null
  if [ "$failed" != 0 ] || [ "${BX_SYSTEMD_KEEP:-0}" = 1 ]; then echo "systemd: logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap finish EXIT
trap 'exit 130' INT TERM

# The configuration an operator writes: conf/bayeux.conf plus websocket and the defaults' Redis.
mkdir -p "$tmp/etc-bayeux"
{ cat conf/bayeux.conf; printf '\n# tests/systemd\nallowedTransports = websocket,long-polling,callback-polling\n'; } \
  > "$tmp/etc-bayeux/bayeux.conf"

# The binaries stand where the units expect them (/usr/local/bin: read-only /usr in the container,
# hence a bind instead of `install`); the checkout and $tmp at their own paths.
systemd-nspawn -D / --volatile=yes --overlay=/etc::/etc --overlay=/var::/var \
  --bind-ro="$bin:/usr/local/bin" --bind-ro="$ROOT:$ROOT" --bind-ro="$tmp:$tmp" \
  --private-network --register=no --keep-unit --link-journal=no -M "$name" --console=pipe \
  -b -- systemd.unit=basic.target > "$tmp/nspawn.log" 2>&1 < /dev/null &
npid=$!
for _ in $(seq 1 100); do
  leader=$(ps -o pid= --ppid "$npid" 2>/dev/null | tr -d ' ' | head -n 1)
  [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" = systemd ] && break
  leader=""; sleep 0.1
done
[ -n "$leader" ] || { cat "$tmp/nspawn.log"; bad "systemd did not start in the container"; exit 1; }
# systemctl needs PID 1's private socket, which comes a moment after the exec
for _ in $(seq 1 100); do C test -S /run/systemd/private 2>/dev/null && break; sleep 0.1; done
state=$(C timeout 60 systemctl is-system-running --wait 2>&1)
[ "$state" = running ] && ok "container booted (systemd PID 1, host pid $leader)" ||
  { bad "container state: $state"; C systemctl --failed --no-pager; }

# ---- install, as docs/operations.md says
C sh -ec "cd '$ROOT'
  install -D -m 644 '$tmp/etc-bayeux/bayeux.conf' /etc/bayeux/bayeux.conf
  install -m 644 conf/systemd/bayeux-fcgi@.socket conf/systemd/bayeux-fcgi@.service conf/systemd/bayeux-ws.service /etc/systemd/system/
  install -D -m 644 conf/systemd/redis-server.service.d/bayeux.conf /etc/systemd/system/redis-server.service.d/bayeux.conf
  install -m 640 -o redis conf/redis/bayeux.conf /etc/redis/bayeux.conf
  echo 'include /etc/redis/bayeux.conf' >> /etc/redis/redis.conf
  bash scripts/stack.sh nginx-site --listen 80 --workers /run/bayeux/worker1.sock,/run/bayeux/worker2.sock \
       --ws 127.0.0.1:8090 --www /var/www/html > /etc/nginx/sites-available/bayeux
  ln -sf /etc/nginx/sites-available/bayeux /etc/nginx/sites-enabled/bayeux
  rm -f /etc/nginx/sites-enabled/default
  systemctl daemon-reload
  systemctl restart redis-server
  systemctl enable --now bayeux-fcgi@1.socket bayeux-fcgi@2.socket bayeux-ws.service
  systemctl restart nginx" > "$tmp/install.log" 2>&1 && ok "installed and started" ||
  { cat "$tmp/install.log"; bad "install"; exit 1; }

# ---- socket activation
for i in 1 2; do
  perm=$(C stat -c '%A %U:%G' "/run/bayeux/worker$i.sock" 2>&1)
  [ "$perm" = "srw-rw---- root:www-data" ] && ok "worker$i.sock held by systemd ($perm)" || bad "worker$i.sock: $perm"
  st=$(C systemctl is-active "bayeux-fcgi@$i.service")
  [ "$st" = inactive ] && ok "bayeux-fcgi@$i.service not started before a request" || bad "bayeux-fcgi@$i.service is $st before any request"
done
hs='[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]'
# nginx picks the worker by the BAYEUX_BROWSER cookie: browsers until both workers were started.
for n in $(seq 1 40); do
  r=$(C curl -s -m 10 -H 'Content-Type: application/json' -b "BAYEUX_BROWSER=b$n" -d "$hs" http://127.0.0.1/cometd/handshake)
  [[ $r == *'"successful":true'* ]] || { bad "handshake through nginx: $r"; break; }
  [ "$(C systemctl is-active bayeux-fcgi@1.service bayeux-fcgi@2.service | sort -u)" = active ] && break
done
[[ $r == *'"successful":true'* ]] && ok "handshake through nginx: ${r:0:90}..."
for i in 1 2; do
  pid=$(C systemctl show -p MainPID --value "bayeux-fcgi@$i.service")
  user=$(C ps -o user= -p "$pid" 2>/dev/null)
  [ "$pid" != 0 ] && [ -n "$user" ] && [ "$user" != root ] && ok "bayeux-fcgi@$i started by its socket: pid $pid, user $user (DynamicUser)" ||
    bad "bayeux-fcgi@$i: pid $pid user '$user'"
  C journalctl -u "bayeux-fcgi@$i" --no-pager -o cat | grep -q 'listening on :fd0' &&
    ok "bayeux-fcgi@$i logs to the journal: accepts on fd 0" || bad "bayeux-fcgi@$i: no 'listening on :fd0' in the journal"
done

# ---- the official client, both transports (websocket: nginx → bayeux-ws)
C env BX_E2E_URL=http://127.0.0.1/cometd node "$ROOT/tests/systemd/client.mjs" roundtrip && ok "long-polling + websocket round trip" || bad "round trip"

# ---- under load: rolling restart, then SIGKILL of a worker (Restart=always), then reload
C env BX_E2E_URL=http://127.0.0.1/cometd node "$ROOT/tests/systemd/client.mjs" load 16 > "$tmp/load.log" 2>&1 &
lpid=$!
for _ in $(seq 1 100); do grep -q 'load running' "$tmp/load.log" && break; sleep 0.1; done
sleep 2
for i in 1 2; do
  old=$(C systemctl show -p MainPID --value "bayeux-fcgi@$i.service")
  C systemctl restart "bayeux-fcgi@$i.service"
  new=$(C systemctl show -p MainPID --value "bayeux-fcgi@$i.service")
  [ "$old" != "$new" ] && ok "systemctl restart bayeux-fcgi@$i under load (pid $old → $new)" || bad "restart bayeux-fcgi@$i: pid $old → $new"
  sleep 3
done
old=$(C systemctl show -p MainPID --value bayeux-fcgi@1.service)
C systemctl kill -s KILL bayeux-fcgi@1.service
new=$old
for _ in $(seq 1 50); do
  sleep 0.1
  new=$(C systemctl show -p MainPID --value bayeux-fcgi@1.service)
  [ "$new" != "$old" ] && [ "$new" != 0 ] && break
done
[ "$new" != "$old" ] && [ "$new" != 0 ] && ok "SIGKILLed bayeux-fcgi@1 is back (Restart=always; pid $old → $new)" || bad "after SIGKILL: pid $old → $new"
wait "$lpid"; rc=$?
cat "$tmp/load.log"
[ "$rc" = 0 ] && ok "no client error, nothing lost through the restarts and the kill" || bad "client under load"
old=$(C systemctl show -p MainPID --value bayeux-fcgi@2.service)
C systemctl reload bayeux-fcgi@2.service
sleep 0.5
[ "$(C systemctl show -p MainPID --value bayeux-fcgi@2.service)" = "$old" ] && [ "$(C systemctl is-active bayeux-fcgi@2.service)" = active ] &&
  ok "systemctl reload (SIGHUP) keeps bayeux-fcgi@2 running" || bad "reload"

# ---- Redis with the drop-in, bayeux-ws, bayeuxctl
v=$(C systemctl show redis-server -p Restart -p LimitNOFILE -p TimeoutStartUSec | sort | tr '\n' ' ')
[ "$v" = "LimitNOFILE=65535 Restart=always TimeoutStartUSec=5min " ] && ok "redis-server drop-in: $v" || bad "redis-server drop-in: $v"
[ "$(C redis-cli config get appendonly | tail -n 1)" = yes ] && ok "redis: appendonly yes (conf/redis/bayeux.conf included)" || bad "redis: appendonly"
[ "$(C systemctl is-active bayeux-ws.service)" = active ] && ok "bayeux-ws.service active" || bad "bayeux-ws.service"
C /usr/local/bin/bayeuxctl stats > "$tmp/stats.txt" 2>&1 && ok "bayeuxctl stats: $(tr '\n' ' ' < "$tmp/stats.txt" | cut -c1-100)" || bad "bayeuxctl stats: $(cat "$tmp/stats.txt")"
for u in bayeux-fcgi@1.service bayeux-ws.service; do
  echo "systemd: info $(C systemd-analyze security "$u" --no-pager 2>/dev/null | tail -n 1)"
done

[ "$failed" = 0 ] && echo "systemd: all checks passed" || echo "systemd: some checks FAILED"
exit "$failed"
