#!/usr/bin/env bash
# Builds and runs the tests under a sanitizer in its own build directory.
# Usage: scripts/sanitize.sh address   # ASan + UBSan, every test
#        scripts/sanitize.sh thread    # TSan, the component tests (listeners, clients and the
#                                        orchestrator running on several threads)
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones: hash paths relative to the checkout.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
kind=${1:-address}
dir=build-$kind
scripts/deps.sh
if [ ! -f "$dir/build.ninja" ]; then
  # -O1 -g1: the sanitizers want some optimisation and line tables for their stack traces; full
  # debug info and -O2 would add minutes of compiling to this stage for nothing a report shows.
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DOFFERD_SANITIZE="$kind" >/dev/null
fi
# TSan runs the component tests only: build just them (the e2e binary and the unit tests would
# add minutes of compiling that no test of this run uses).
targets=()
[ "$kind" != thread ] || targets=(component_tests)
ninja -C "$dir" -j "${JOBS:-$(nproc)}" "${targets[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/test/tsan.supp"
cd "$dir"
if [ "$kind" = thread ]; then
  ctest --output-on-failure --timeout 300 -j 2 -L component
else
  # The cluster tests run replicas of the binary against PostgreSQL and HAProxy: the ordinary
  # build runs them (scripts/test.sh); here the [pg] component tests cover the same code.
  ctest --output-on-failure --timeout 300 -j 2 -E '^cluster: '
fi
