#!/bin/sh
# scripts/fuzz.sh TARGET [SECONDS]: runs the libFuzzer program of
# tests/fuzz/TARGET.c (built with clang, ASan and UBSan in build-fuzz/)
# for SECONDS (default 300) from its committed corpus, then merges what it
# found that covers new code into tests/fuzz/corpus/TARGET, which
# `make check` replays. A crash leaves crash-* in build-fuzz/ and stops.
set -e
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
secs=${2:-300}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build-fuzz
corpus=$top/tests/fuzz/corpus/$target
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTERN_SANITIZE=ON -DTERN_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "$target"
mkdir -p "$corpus" "$build/found-$target"
cd "$build"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	"./$target" -max_total_time="$secs" -max_len=4096 -timeout=10 \
	-rss_limit_mb=2048 "found-$target" "$corpus"
"./$target" -merge=1 "$corpus" "found-$target" 2>/dev/null
echo "corpus: $(ls "$corpus" | wc -l) inputs in $corpus"
