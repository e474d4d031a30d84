#!/usr/bin/env bash
# Configures (Release by default) and builds offerd and its tests into build/ (or $BUILD_DIR).
# Usage: scripts/build.sh [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones: hash paths relative to the checkout.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
"scripts/deps.sh"
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-} >/dev/null
fi
# Two cores: two jobs; Beast translation units need about 1 GiB each.
# In CI (CI=true, or OFFERD_FATAL_WARNINGS=1) a compiler or linker warning fails the build. The
# output is checked rather than compiling with -Werror: ccache replays a cached compile's
# warnings, and a flag of its own would change every command line and miss the whole cache.
fatal=${OFFERD_FATAL_WARNINGS:-}
if [ -z "$fatal" ] && [ "${CI:-}" = true ]; then fatal=1; fi
if [ "$fatal" != 1 ]; then
  exec ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "$@"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "$@" 2>&1 | tee "$log"
if grep -q "warning:" "$log"; then
  echo "build: $(grep -c "warning:" "$log") compiler or linker warning(s) above; warnings are errors in CI" >&2
  exit 1
fi
