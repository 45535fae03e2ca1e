#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS — build the libFuzzer target for the message core with
# clang (ASan + UBSan) into build/fuzz and run it for SECONDS (default 60), seeded
# with tests/corpus. New corpus entries go to build/fuzz/corpus (never into git);
# crashes to build/fuzz/artifacts/ — keep each one in tests/corpus with an
# EXPECTED line once fixed. Exit status non-zero when the fuzzer found something.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus" "$out/artifacts"
CC=${FUZZ_CC:-clang}
# shellcheck disable=SC2046
$CC -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -Ishared $(pkg-config --cflags jansson) \
  tests/fuzz/fuzz_message.c shared/message.c shared/channel.c shared/error.c shared/log.c \
  -o "$out/fuzz_message" $(pkg-config --libs jansson)
echo "fuzz: running $out/fuzz_message for ${secs}s (seeds: tests/corpus)"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$out/fuzz_message" -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$out/corpus" tests/corpus
