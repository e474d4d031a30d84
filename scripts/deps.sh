#!/usr/bin/env bash
# Installs the Debian 12 packages offerd needs, only those that are missing, one group at a time
# with a line saying what is being installed. Services packaged with them are not started: we
# only want their binaries (Debian's prometheus, installed by test.sh for promtool, would
# otherwise start a Prometheus server on :9090 on every interface; Debian's postgresql its
# cluster on :5432: offerd's tests and scripts/pg.sh run servers of their own).
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail

groups=("build tools|g++ cmake ninja-build ccache"
        "Boost 1.81, OpenSSL, libpq and tcmalloc|libboost1.81-dev libboost-json1.81-dev libboost-log1.81-dev libboost-program-options1.81-dev libboost-url1.81-dev libssl-dev libpq-dev libgoogle-perftools-dev"
        "test framework|catch2"
        "tools the README uses|curl jq openssl")
[ $# -eq 0 ] || groups+=("test tools|$*")

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=""
policy=${DEPS_POLICY_RC_D:-/usr/sbin/policy-rc.d}  # overridable for the test of this script
own_policy=""
cleanup() { if [ -n "$own_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

for group in "${groups[@]}"; do
  name=${group%%|*}
  missing=()
  for p in ${group#*|}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || continue
  if [ -z "$updated" ]; then
    echo "deps: updating the package lists" >&2
    $SUDO apt-get update -qq
    updated=1
  fi
  # invoke-rc.d (and deb-systemd-invoke) ask policy-rc.d; 101 means "do not start".
  if [ -z "$own_policy" ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
  fi
  # A service we install for its binaries stays off across reboots too.
  if [ -d /run/systemd/system ]; then
    for p in "${missing[@]}"; do
      [ "$p" != prometheus ] || $SUDO systemctl mask prometheus.service >/dev/null 2>&1 || true
      [ "$p" != postgresql ] || $SUDO systemctl mask postgresql.service >/dev/null 2>&1 || true
    done
  fi
  echo "deps: installing $name: ${missing[*]} (may take a few minutes)" >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
done
