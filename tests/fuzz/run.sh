#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] — build the libFuzzer targets (message core, whole request,
# config parser) with clang (ASan + UBSan) into build/fuzz and run the message target for
# SECONDS (default $FUZZ_SECONDS, else 60; tests/run.sh sets 15), seeded with tests/corpus,
# the request target (fcgi transport + dispatch + scripted broker) as long, seeded with
# tests/fuzz/requests, then the config target for a tenth of it.
# New corpus entries go to build/fuzz/corpus* (never into git); crashes to
# build/fuzz/artifacts/ — keep each one in tests/corpus with an EXPECTED line once
# fixed. Exit status non-zero when the fuzzer found something.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-${FUZZ_SECONDS:-60}}
out=build/fuzz
mkdir -p "$out/corpus" "$out/artifacts"
CC=${FUZZ_CC:-clang}
FLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Ishared)
# shellcheck disable=SC2046
$CC "${FLAGS[@]}" $(pkg-config --cflags jansson) \
  tests/fuzz/fuzz_message.c shared/message.c shared/channel.c shared/error.c shared/log.c \
  -o "$out/fuzz_message" $(pkg-config --libs jansson)
$CC "${FLAGS[@]}" tests/fuzz/fuzz_config.c shared/config.c shared/log.c -o "$out/fuzz_config"
# The request target links the worker's pure HTTP parts and the library as the Makefile builds it
# (its source lists and packages, so new files never break this), instrumented for the fuzzer;
# the target defines bx_store_fcall itself, so the archive's store.o is never pulled in.
lib=$out/lib
SAN_LIB="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
make --no-print-directory -s CC="$CC" BUILD="$lib" OPT=-O1 SAN="$SAN_LIB" \
  "$lib/libbx.a" "$lib/obj/fcgi/transport.o" "$lib/obj/fcgi/query.o" "$lib/obj/fcgi/request.o"
pkgs=$(sed -n 's/^PKGS *:= *//p' Makefile)
# shellcheck disable=SC2046,SC2086
$CC "${FLAGS[@]}" -Ibroker -Ifcgi $(pkg-config --cflags $pkgs) tests/fuzz/fuzz_request.c \
  "$lib/obj/fcgi/transport.o" "$lib/obj/fcgi/query.o" "$lib/obj/fcgi/request.o" "$lib/libbx.a" \
  -o "$out/fuzz_request" $(pkg-config --libs $pkgs) -lfcgi -lpthread -lm
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
opts=(-max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/")
# The message parser faces the network: it gets the time asked for. The config parser
# faces operators: a tenth of it (at least 2 s), seeded with the shipped file.
mkdir -p "$out/corpus-config" "$out/corpus-request"
cfg_secs=$(( secs / 10 > 2 ? secs / 10 : 2 ))
echo "fuzz: $out/fuzz_message for ${secs}s (seeds: tests/corpus)"
"$out/fuzz_message" -max_total_time="$secs" "${opts[@]}" "$out/corpus" tests/corpus
echo "fuzz: $out/fuzz_request for ${secs}s (seeds: tests/fuzz/requests)"
"$out/fuzz_request" -max_total_time="$secs" "${opts[@]}" "$out/corpus-request" tests/fuzz/requests
echo "fuzz: $out/fuzz_config for ${cfg_secs}s (seeds: conf/)"
"$out/fuzz_config" -max_total_time="$cfg_secs" "${opts[@]}" "$out/corpus-config" conf
