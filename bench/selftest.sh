#!/usr/bin/env bash
# bench/selftest.sh — does the generator count what it claims? Runs bench.js --self against the
# trivial responder twice: clean (lost, duplicated, out of order must all be 0) and with injected
# faults (BENCH_FAULTS: each must be counted, and lost must match the drops within sampling noise).
# Not a performance test: small load, no timing asserted. Exit 0 = every check passed.
# Both engines are checked (ENGINES, default "node c"; c = bench/cgen.c, built here into $BUILD if missing).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ENGINES=${ENGINES:-node c}
BUILD=${BUILD:-build}
export CGEN=$PWD/$BUILD/bench/bx-cgen
case $BUILD in /*) CGEN=$BUILD/bench/bx-cgen ;; esac
run() { node bench/bench.js --self --json --engine "$engine" --clients 50 --rooms 10 --rooms-per-client 2 --rate 200 --duration 3 --drain 3 2>/dev/null; }
check() { # JSON EXPR-ON-r MESSAGE
  printf '%s' "$1" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s);
    const ok=eval(process.argv[1]);console.log((ok?"ok   ":"FAIL ")+process.argv[2]+": lost "+r.lost+", dup "+r.duplicated+
    ", ooo "+r.outOfOrder+" of "+r.expected+(r.error?" ERROR "+r.error:""));process.exit(ok?0:1)})' "$2" "$3"
}
fail=0
for engine in $ENGINES; do
  if [ "$engine" = c ] && ! make -s --no-print-directory BUILD="$BUILD" "$BUILD/bench/bx-cgen" >/dev/null; then
    echo "FAIL $engine engine: $CGEN does not build"; fail=1; continue
  fi
  clean=$(run)
  check "$clean" '!r.error && r.expected > 1000 && r.lost === 0 && r.unexpected === 0 && r.duplicated === 0 && r.outOfOrder === 0 && r.foreign === 0' \
    "$engine engine, clean responder: nothing counted" || fail=1
  faulty=$(BENCH_FAULTS=drop=0.02,dup=0.02,swap=0.02 run)
  check "$faulty" '!r.error && r.lost > 0.01*r.expected && r.lost < 0.03*r.expected && r.duplicated > 0 && r.outOfOrder > 0' \
    "$engine engine, responder dropping, duplicating and swapping 2 % each: all three counted" || fail=1
done
exit $fail
