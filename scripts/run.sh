#!/usr/bin/env bash
# The main job: build if needed, start `offerd --role all`, stream member_data.csv through the
# orchestrator, print the summary, stop the services.
# Usage: scripts/run.sh [CSV] [extra `offerd stream` flags...]   (logs go to offerd.log)
# RUN_SKIP_BUILD=1 uses the binary in $BUILD_DIR as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${RUN_SKIP_BUILD:-}" ] || scripts/build.sh offerd
BUILD_DIR=${BUILD_DIR:-build}
CSV=${1:-member_data.csv}
shift || true
LOG=${OFFERD_LOG_FILE:-offerd.log}
PORT=${OFFERD_ORCHESTRATOR_PORT:-8000}

# The target is the URL our own offerd prints once it listens, never whatever answers on the
# port: if another server holds it, our offerd exits with "cannot listen" and nothing is streamed.
started=$(mktemp)
"$BUILD_DIR/offerd" --role all --log-file "$LOG" >"$started" &
server=$!
stop_server() {
  if kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    wait "$server" || true
  fi
  rm -f "$started"
}
trap stop_server EXIT
url=""
for _ in $(seq 1 200); do
  url=$(sed -n 's/^offerd: orchestrator listening on //p' "$started")
  [ -z "$url" ] || break
  if ! kill -0 "$server" 2>/dev/null; then
    wait "$server" || true
    echo "run: offerd did not start (its error is above; is port $PORT or 8001-8003 already used by another server?); nothing was streamed" >&2
    exit 1
  fi
  sleep 0.05
done
if [ -z "$url" ]; then
  echo "run: offerd did not report listening within 10 s; nothing was streamed" >&2
  exit 1
fi
cat "$started"
status=0
"$BUILD_DIR/offerd" stream --csv "$CSV" --target "$url" "$@" || status=$?
stop_server
trap - EXIT
echo "run: logs in $LOG"
exit $status
