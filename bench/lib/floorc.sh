# bench/lib/floorc.sh — sourced by bench/run.sh and bench/selftest.sh (needs tests/lib/common.sh):
# start/stop the trivial in-memory responder (bench/lib/responder.js) for the C latency-floor probe
# (bench/floor.c); BENCH_FAULTS in the environment is passed on to the responder.

# floorc_responder_start DIR → the responder in the background, its pid in DIR/responder.pid;
# prints its Bayeux URL. Fails when it did not say "ready PORT" within 5 s.
floorc_responder_start() {
  local dir=$1 port=""
  mkdir -p "$dir"
  node bench/lib/responder.js 0 >"$dir/responder.out" 2>&1 &
  echo $! > "$dir/responder.pid"
  for _ in $(seq 1 50); do
    port=$(sed -n 's/^ready \([0-9][0-9]*\)$/\1/p' "$dir/responder.out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    bx_stop_pidfile "$dir/responder.pid"
    cat "$dir/responder.out" >&2
    return 1
  fi
  echo "http://127.0.0.1:$port/cometd"
}

floorc_responder_stop() { bx_stop_pidfile "$1/responder.pid"; }
