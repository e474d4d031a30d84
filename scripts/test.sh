#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test through CTest.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
# promtool validates /metrics and headless Chromium renders the HTML report in the e2e tests.
# promtool comes with Debian's prometheus package; deps.sh installs it without starting (or,
# under systemd, enabling) the Prometheus server the package ships.
# The [pg] tests start PostgreSQL servers of their own (scripts/pg.sh) from Debian's postgresql;
# the cluster tests (scripts/cluster.sh) also HAProxy from Debian's haproxy. dpkg-dev's
# dpkg-shlibdeps gives the .deb its Depends (test/package/deb_test.sh); groff lints the man page.
scripts/deps.sh prometheus chromium fonts-dejavu-core postgresql haproxy dpkg-dev groff-base
# CTest gets each Catch2 test by name: a ';' splits a name into two that match nothing (CMake
# lists), and a leading '-' is read as a flag, so such a test would pass without running.
if bad=$(grep -rnE 'TEST_CASE\("(-|[^"]*;)' test); then
  echo "test.sh: test names CTest cannot run (no ';', no leading '-'):" >&2
  echo "$bad" >&2
  exit 1
fi
scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 300 -j 2 "$@"
