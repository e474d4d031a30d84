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
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "$@"
