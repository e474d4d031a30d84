#!/usr/bin/env bash
# The main job: build if needed, start `offerd --role all`, stream member_data.csv through the
# orchestrator, print the summary, stop the services.
# Usage: scripts/run.sh [CSV] [extra `offerd stream` flags...]   (logs go to offerd.log)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh offerd
BUILD_DIR=${BUILD_DIR:-build}
CSV=${1:-member_data.csv}
shift || true
LOG=${OFFERD_LOG_FILE:-offerd.log}
PORT=${OFFERD_ORCHESTRATOR_PORT:-8000}

"$BUILD_DIR/offerd" --role all --log-file "$LOG" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null; then break; fi
  if ! kill -0 $server 2>/dev/null; then echo "run: offerd failed to start" >&2; exit 1; fi
  sleep 0.05
done
status=0
"$BUILD_DIR/offerd" stream --csv "$CSV" --target "http://127.0.0.1:$PORT" "$@" || status=$?
kill -TERM $server
wait $server || true
trap - EXIT
echo "run: logs in $LOG"
exit $status
