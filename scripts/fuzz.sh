#!/bin/sh
# scripts/fuzz.sh TARGET [SECONDS]: runs the libFuzzer program of
# tests/fuzz/TARGET.c (built with clang, ASan and UBSan in build-fuzz/)
# for SECONDS (default 300) from its committed corpus, then keeps in
# tests/fuzz/corpus/TARGET, which `make check` replays, the fewest inputs
# that cover what it reached. A crash leaves crash-* in build-fuzz/ and
# stops: fix it, and add the input to the corpus under a name that says
# what it found.
set -e
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
secs=${2:-300}
top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build-fuzz
corpus=$top/tests/fuzz/corpus/$target
command -v clang >/dev/null || apt-get install -y -q clang >/dev/null
CC=clang cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTERN_SANITIZE=ON -DTERN_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target "$target"
mkdir -p "$corpus" "$build/found-$target"
cd "$build"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	"./$target" -max_total_time="$secs" -max_len=4096 -timeout=10 \
	-rss_limit_mb=2048 "found-$target" "$corpus"
# The committed corpus stays small: the fewest inputs that reach every
# edge reached so far (libFuzzer names them by their SHA-1), beside the
# named ones (seeds, and inputs that found a bug).
rm -rf "min-$target"
mkdir "min-$target"
"./$target" -merge=1 -use_counters=0 "min-$target" "$corpus" "found-$target" 2>/dev/null
find "$corpus" -type f -regextype posix-extended -regex '.*/[0-9a-f]{40}' -delete
cp "min-$target"/* "$corpus"/
echo "corpus: $(ls "$corpus" | wc -l) inputs in $corpus"
