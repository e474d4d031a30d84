#!/usr/bin/env bash
# Builds the Debian package build/offerd_<version>_amd64.deb (installs what is missing, builds
# Release like build.sh, then cpack -G DEB) and prints its path.
# Usage: scripts/package.sh [output-dir]   (default: $BUILD_DIR, build/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh dpkg-dev  # dpkg-shlibdeps: the package's Depends from the binary's libraries
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
out=$(realpath -m "${1:-$BUILD_DIR}")
mkdir -p "$out"
# CPack's staging tree lives in the output directory; quiet unless it fails.
if ! log=$(cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$out" 2>&1); then
  echo "$log" >&2
  echo "package: cpack failed" >&2
  exit 1
fi
deb=$(ls -t "$out"/offerd_*_*.deb | head -n 1)
echo "package: $deb"
