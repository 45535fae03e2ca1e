#!/usr/bin/env bash
# Run every test suite against the binaries in $BUILD (default build/san).
# Suites: unit (cmocka, no servers), broker (cmocka + private redis-server),
# then each tests/<suite>/run.sh (integration, e2e, fault, ...), which start and
# stop their own servers. Exit status is non-zero if any suite failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BUILD=${BUILD:-build/san}
export BX_ROOT=$PWD
# ASan: leaks on; UBSan: abort with a stack on the first report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# make test runs each fuzz target briefly; make fuzz (FUZZ_SECONDS=60) runs them longer.
export FUZZ_SECONDS=${FUZZ_SECONDS:-15}
source tests/lib/common.sh

failed=()
start=$(date +%s)
# Each suite's output is also kept, so the summary can repeat the lines that name a failure: CI shows
# only the tail of the log.
suite_logs=$(mktemp -d /tmp/bx-suites.XXXXXX)

echo "== unit =="
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  "$t" || failed+=("unit:$(basename "$t")")
done

echo "== broker =="
if ls "$BUILD"/tests/broker_* >/dev/null 2>&1; then
  tmp=$(mktemp -d /tmp/bx-broker.XXXXXX)
  port=$(bx_free_port)
  trap 'bx_stop_pidfile "$tmp/redis.pid"; rm -rf "$tmp" "$suite_logs"' EXIT
  if bx_start_redis "$tmp" "$port"; then
    for t in "$BUILD"/tests/broker_*; do
      [ -x "$t" ] || continue
      BX_TEST_REDIS_PORT=$port "$t" || failed+=("broker:$(basename "$t")")
    done
  else
    failed+=("broker:redis-start")
  fi
  bx_stop_pidfile "$tmp/redis.pid"
fi

for suite in tests/*/run.sh; do
  name=$(basename "$(dirname "$suite")")
  echo "== $name =="
  bash "$suite" 2>&1 | tee "$suite_logs/$name.log"
  [ "${PIPESTATUS[0]}" = 0 ] || failed+=("$name")
done

echo
echo "== summary: $(( $(date +%s) - start )) s =="
if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do
    log=$suite_logs/${f%%:*}.log
    [ -f "$log" ] || continue
    echo "-- ${f}: lines naming the failure (whole output above) --"
    grep -a -E '✖|^not ok|FAIL|[Ee]rror|ERROR|sanitizer|runtime error|expected|actual|timed? ?out' "$log" \
      | grep -v -E '^ℹ ' | head -60
  done
  rm -rf "$suite_logs"
  echo "FAILED: ${failed[*]}"
  exit 1
fi
rm -rf "$suite_logs"
echo "all suites passed"
