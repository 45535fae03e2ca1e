#!/usr/bin/env bash
# bench/selftest.sh — do the instruments count what they claim? Runs the load generator (bench.js --self,
# both engines) and the C latency-floor probe (bench/floor.c) against the trivial responder: clean (lost,
# duplicated, out of order must all be 0) and with injected faults (BENCH_FAULTS: each must be counted,
# and lost must match the drops within sampling noise). Also: the probe rejects bad arguments with exit 2.
# Not a performance test: small load, no timing asserted. Exit 0 = every check passed.
# Both engines are checked (ENGINES, default "node c"; c = bench/cgen.c, built here into $BUILD if missing),
# over long-polling and over WebSocket (the responder's websocket mode pushes deliveries as frames of their
# own); the probe too ($BUILD/bench/floor, built here if missing).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tests/lib/common.sh
source bench/lib/floorc.sh
ENGINES=${ENGINES:-node c}
BUILD=${BUILD:-build}
export CGEN=$PWD/$BUILD/bench/bx-cgen
case $BUILD in /*) CGEN=$BUILD/bench/bx-cgen ;; esac
FLOOR=$BUILD/bench/floor
TMP=$(mktemp -d /tmp/bx-selftest.XXXXXX)
trap 'floorc_responder_stop "$TMP"; rm -rf "$TMP"' EXIT

run() { node --experimental-websocket --no-warnings bench/bench.js --self --json --engine "$engine" --clients 50 --rooms 10 \
  --rooms-per-client 2 --rate 200 --duration 3 --drain 3 2>/dev/null; }
# The probe's floor workload (2 clients, 1 room, single-message publishes, both publishing) at a rate
# high enough for the fault counts to be well above sampling noise.
probe() { # [RATE]
  local url
  url=$(floorc_responder_start "$TMP") || { echo '{"error":"responder did not start"}'; return; }
  "$FLOOR" --json --url "$url" --rate "${1:-500}" --duration 3 --drain 3 2>/dev/null || echo '{"error":"probe exited non-zero"}'
  floorc_responder_stop "$TMP"
}
check() { # JSON EXPR-ON-r MESSAGE
  printf '%s' "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let r;try{r=JSON.parse(s)}catch(e){r={error:"no JSON: "+s}}
    const ok=eval(process.argv[1]);console.log((ok?"ok   ":"FAIL ")+process.argv[2]+": lost "+r.lost+", dup "+r.duplicated+
    ", ooo "+r.outOfOrder+" of "+r.expected+(r.error?" ERROR "+r.error:""));process.exit(ok?0:1)})' "$2" "$3"
}
CLEAN='!r.error && r.expected > 1000 && r.lost === 0 && r.unexpected === 0 && r.duplicated === 0 && r.outOfOrder === 0 && r.foreign === 0'
FAULTY='!r.error && r.lost > 0.01*r.expected && r.lost < 0.03*r.expected && r.duplicated > 0 && r.outOfOrder > 0'
fail=0
for engine in $ENGINES; do
  if [ "$engine" = c ] && ! make -s --no-print-directory BUILD="$BUILD" "$BUILD/bench/bx-cgen" >/dev/null; then
    echo "FAIL $engine engine: $CGEN does not build"; fail=1; continue
  fi
  clean=$(run)
  check "$clean" "$CLEAN" "$engine engine, clean responder: nothing counted" || fail=1
  strict=$(BENCH_STRICT_HTTP=1 run)
  check "$strict" "$CLEAN && r.rehandshakes === 0" "$engine engine, responder with chunked bodies and a required session cookie: nothing counted" || fail=1
  faulty=$(BENCH_FAULTS=drop=0.02,dup=0.02,swap=0.02 run)
  check "$faulty" "$FAULTY" \
    "$engine engine, responder dropping, duplicating and swapping 2 % each: all three counted" || fail=1
  clean=$(TRANSPORT=websocket run)
  check "$clean" "$CLEAN && r.transport === 'websocket'" "$engine engine over websocket, clean responder: nothing counted" || fail=1
  faulty=$(TRANSPORT=websocket BENCH_FAULTS=drop=0.02,dup=0.02,swap=0.02 run)
  check "$faulty" "$FAULTY && r.transport === 'websocket'" \
    "$engine engine over websocket, responder dropping, duplicating and swapping 2 % each: all three counted" || fail=1
done

# bx-cgen: a transport it does not speak is a usage error; a dead server over websocket is an error row.
if [[ " $ENGINES " == *" c "* ]] && [ -x "$CGEN" ]; then
  out=$("$CGEN" --url http://127.0.0.1:1/cometd --transport ws 2>&1 >/dev/null); rc=$?
  if [ "$rc" = 2 ] && [[ $out == *"must be long-polling or websocket"* ]]; then echo "ok   bx-cgen --transport ws: exit 2, '$out'"
  else echo "FAIL bx-cgen --transport ws: exit $rc, '$out' (wanted exit 2)"; fail=1; fi
  port=$(bx_free_port)
  dead=$(timeout 30 "$CGEN" --json --transport websocket --clients 5 --url "http://127.0.0.1:$port/cometd" 2>/dev/null)
  check "$dead" "r.transport === 'websocket' && /ECONNREFUSED/.test(r.error || '')" "bx-cgen over websocket, nothing listening: an error in the result" || fail=1
fi

if make -s --no-print-directory BUILD="$BUILD" floor >"$TMP/make.log" 2>&1; then
  clean=$(probe)
  check "$clean" "$CLEAN && r.instrument === 'floor.c' && r.latencyMs.p50 > 0" "floor.c, clean responder: nothing counted" || fail=1
  strict=$(BENCH_STRICT_HTTP=1 probe 250)   # 7-byte chunks cost the responder: a lower rate
  check "$strict" "$CLEAN && r.rehandshakes === 0" "floor.c, responder with chunked bodies and a required session cookie: nothing counted" || fail=1
  faulty=$(BENCH_FAULTS=drop=0.02,dup=0.02,swap=0.02 probe)
  check "$faulty" "$FAULTY" "floor.c, responder dropping, duplicating and swapping 2 % each: all three counted" || fail=1
  # Bad arguments: exit 2 and a message naming the problem (no server needed).
  bad() { # EXPECTED-WORDS ARGS...
    local want=$1 out rc
    shift
    out=$("$FLOOR" "$@" 2>&1 >/dev/null); rc=$?
    if [ "$rc" = 2 ] && [[ $out == *"$want"* ]]; then echo "ok   floor.c $*: exit 2, '$out'"
    else echo "FAIL floor.c $*: exit $rc, '$out' (wanted exit 2 and '$want')"; fail=1; fi
  }
  bad "--url is required"
  bad "unknown argument '--nope'" --url http://127.0.0.1:1/cometd --nope
  bad "--url must be http://" --url https://127.0.0.1/cometd
  bad "--rate must be within 1..100000" --url http://127.0.0.1:1/cometd --rate 0
  bad "--rate must be a number" --url http://127.0.0.1:1/cometd --rate 5x
  bad "--duration needs a value" --url http://127.0.0.1:1/cometd --duration
  bad "--publishers must be within 1..2" --url http://127.0.0.1:1/cometd --publishers 3
  # A dead server is an error in the JSON, not a hang.
  port=$(bx_free_port)
  dead=$(timeout 30 "$FLOOR" --json --url "http://127.0.0.1:$port/cometd" 2>/dev/null)
  check "$dead" "/ECONNREFUSED/.test(r.error || '')" "floor.c, nothing listening: an error in the result" || fail=1
else
  echo "FAIL floor.c does not build:"; cat "$TMP/make.log"; fail=1
fi
exit $fail
