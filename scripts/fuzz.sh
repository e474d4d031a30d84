#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan; clang 14 cannot build coroutines under UBSan) and runs each for SECONDS (default 60),
# starting from test/fuzz/corpus and replaying test/fuzz/regressions (inputs that once crashed).
# A crash leaves its input in build-fuzz/ and fails the script.
# Usage: scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones: hash paths relative to the checkout.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
seconds=${1:-60}
scripts/deps.sh clang libclang-rt-14-dev
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOFFERD_FUZZ=ON -DOFFERD_BUILD_TESTS=OFF >/dev/null
fi
ninja -C build-fuzz fuzz_transaction fuzz_csv fuzz_http fuzz_url
export ASAN_OPTIONS=detect_leaks=1
for t in transaction csv http url; do
  if ls test/fuzz/regressions/$t-* >/dev/null 2>&1; then
    build-fuzz/fuzz_$t test/fuzz/regressions/$t-*
  fi
  mkdir -p build-fuzz/corpus-$t
  echo "fuzz: $t for ${seconds}s"
  (cd build-fuzz && ./fuzz_$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       corpus-$t ../test/fuzz/corpus/$t 2>&1 | tail -n 12)
done
