#!/usr/bin/env bash
# A cluster on loopback: PostgreSQL in its own data directory, the three services (a process
# each), N orchestrator replicas on it and HAProxy in front (deploy/haproxy.cfg). Everything it
# starts is stopped by PID; state lives in $CLUSTER_DIR (default build/cluster).
#
#   scripts/cluster.sh up [--replicas N] [--port P] [--member-data-store journal|postgresql]
#                                                     start (default 3 replicas, HAProxy on 9000,
#                                                     member-data's histories in a journal file)
#   scripts/cluster.sh status                         what runs, and whether each replica is ready
#   scripts/cluster.sh kill-replica K                 SIGKILL replica K (1-based)
#   scripts/cluster.sh stop-replica K                 SIGTERM replica K (it drains)
#   scripts/cluster.sh start-replica K                start replica K again (K = N+1 adds one)
#   scripts/cluster.sh kill-service NAME              SIGKILL member-data, prediction or offer-engine
#   scripts/cluster.sh start-service NAME             start that service again (member-data replays its journal)
#   scripts/cluster.sh kill-postgres                  immediate shutdown of PostgreSQL (SIGQUIT: what a
#                                                     crash leaves; crash recovery on the next start)
#   scripts/cluster.sh start-postgres                 start PostgreSQL again, same data directory and port
#   scripts/cluster.sh down                           stop everything it started
#
# Ports, from P: HAProxy P, PostgreSQL P+1, member-data P+2, prediction P+3, offer-engine P+4,
# replica K P+10+K. `up` writes $CLUSTER_DIR/cluster.json:
#   {"url", "member_data_url", "postgres_url", "replicas": [{"url", "pid", "log"}, ...]}
# Then: build/offerd stream --target "$(jq -r .url build/cluster/cluster.json)"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${CLUSTER_DIR:-$ROOT/build/cluster}
OFFERD=${OFFERD_BIN:-$ROOT/build/offerd}
cmd=${1:-}
[ $# -eq 0 ] || shift

die() { echo "cluster: $*" >&2; exit 1; }
stop_pid() {  # signal pid: sends it and waits until the process is gone
  kill -s "$1" "$2"
  while kill -0 "$2" 2>/dev/null; do sleep 0.05; done
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# shellcheck disable=SC1091
load() { [ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (run: scripts/cluster.sh up)"; . "$DIR/cluster.env"; }

wait_http() {  # url seconds
  local url=$1 limit=$2 i
  for ((i = 0; i < limit * 10; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_replica() {  # K
  local k=$1 port=$((BASE + 10 + $1))
  alive "$DIR/replica-$k.pid" && die "replica $k is running (pid $(cat "$DIR/replica-$k.pid"))"
  "$OFFERD" --role orchestrator --host 127.0.0.1 --orchestrator-port "$port" \
    --member-data-url "http://127.0.0.1:$((BASE + 2))" --prediction-url "http://127.0.0.1:$((BASE + 3))" \
    --offer-engine-url "http://127.0.0.1:$((BASE + 4))" --state-url "$PG_URL" --ready-interval-ms 250 \
    --log-file "$DIR/replica-$k.log" ${OFFERD_REPLICA_ARGS:-} >>"$DIR/replica-$k.out" 2>&1 &
  echo $! >"$DIR/replica-$k.pid"
  wait_http "http://127.0.0.1:$port/ready" 30 || die "replica $k did not become ready (see $DIR/replica-$k.out)"
  [ "$k" -le "$REPLICAS" ] || { REPLICAS=$k; write_env; write_haproxy; reload_haproxy; }
  echo "cluster: replica $k ready on http://127.0.0.1:$port (pid $(cat "$DIR/replica-$k.pid"))" >&2
}

start_service() {  # member-data | prediction | offer-engine
  local name=$1 port extra=()
  case "$name" in
  member-data)
    port=$((BASE + 2))
    if [ "${MD_STORE:-journal}" = postgresql ]; then extra=(--member-data-store "$PG_URL"); else extra=(--member-data-journal "$DIR/member-data.journal"); fi
    ;;
  prediction) port=$((BASE + 3)) ;;
  offer-engine) port=$((BASE + 4)) ;;
  *) die "unknown service $name (member-data, prediction or offer-engine)" ;;
  esac
  alive "$DIR/service-$name.pid" && die "$name is running (pid $(cat "$DIR/service-$name.pid"))"
  "$OFFERD" --role "$name" --host 127.0.0.1 "--$name-port" "$port" "${extra[@]}" \
    --log-file "$DIR/$name.log" >>"$DIR/$name.out" 2>&1 &
  echo $! >"$DIR/service-$name.pid"
  wait_http "http://127.0.0.1:$port/health" 30 || die "$name did not start (see $DIR/$name.out)"
}

write_env() {
  printf 'BASE=%s\nREPLICAS=%s\nPG_URL=%q\nMD_STORE=%s\n' "$BASE" "$REPLICAS" "$PG_URL" "${MD_STORE:-journal}" >"$DIR/cluster.env"
}

write_haproxy() {
  local k
  cp "$ROOT/deploy/haproxy.cfg" "$DIR/haproxy.cfg"
  for ((k = 1; k <= REPLICAS; k++)); do
    echo "    server r$k 127.0.0.1:$((BASE + 10 + k))" >>"$DIR/haproxy.cfg"
  done
}

reload_haproxy() {
  local old=""
  alive "$DIR/haproxy.pid" && old=$(cat "$DIR/haproxy.pid")
  OFFERD_LB_PORT=$BASE haproxy -q -f "$DIR/haproxy.cfg" -D -p "$DIR/haproxy.pid" ${old:+-sf $old} ||
    die "haproxy did not start (config: $DIR/haproxy.cfg)"
}

write_json() {
  local k first=1
  {
    printf '{"url": "http://127.0.0.1:%s", "member_data_url": "http://127.0.0.1:%s", "postgres_url": "%s", "replicas": [' \
      "$BASE" "$((BASE + 2))" "$PG_URL"
    for ((k = 1; k <= REPLICAS; k++)); do
      [ $first -eq 1 ] || printf ', '
      first=0
      printf '{"url": "http://127.0.0.1:%s", "pid": %s, "log": "%s"}' "$((BASE + 10 + k))" \
        "$(cat "$DIR/replica-$k.pid" 2>/dev/null || echo 0)" "$DIR/replica-$k.log"
    done
    printf ']}\n'
  } >"$DIR/cluster.json"
}

case "$cmd" in
up)
  REPLICAS=3 BASE=9000 MD_STORE=journal
  while [ $# -gt 0 ]; do
    case "$1" in
    --replicas) REPLICAS=${2:?--replicas needs a number}; shift 2 ;;
    --port) BASE=${2:?--port needs a number}; shift 2 ;;
    --member-data-store) MD_STORE=${2:?--member-data-store needs journal or postgresql}; shift 2 ;;
    *) die "unknown option $1 (usage: up [--replicas N] [--port P] [--member-data-store journal|postgresql])" ;;
    esac
  done
  [ "$MD_STORE" = journal ] || [ "$MD_STORE" = postgresql ] || die "--member-data-store must be journal or postgresql"
  [[ $REPLICAS =~ ^[0-9]+$ ]] && [ "$REPLICAS" -ge 1 ] && [ "$REPLICAS" -le 20 ] || die "--replicas must be 1..20"
  [[ $BASE =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1024 ] && [ $((BASE + 30)) -lt 32768 ] || die "--port must be 1024..32737 (below the ephemeral range)"
  # A leftover cluster.env (a crashed run) must not override the flags: only its PIDs are checked.
  for p in "$DIR"/*.pid; do alive "$p" && die "a cluster is running in $DIR (scripts/cluster.sh down first)"; done
  scripts/deps.sh postgresql haproxy
  [ -x "$OFFERD" ] || scripts/build.sh offerd
  rm -rf "$DIR" && mkdir -p "$DIR"
  PG_URL=$(scripts/pg.sh start "$DIR/pg" $((BASE + 1)))
  write_env
  for s in member-data prediction offer-engine; do start_service "$s"; done
  for ((k = 1; k <= REPLICAS; k++)); do start_replica "$k"; done
  write_haproxy
  reload_haproxy
  wait_http "http://127.0.0.1:$BASE/ready" 30 || die "HAProxy on $BASE does not reach a ready replica"
  write_json
  echo "cluster: up: HAProxy http://127.0.0.1:$BASE over $REPLICAS replicas; $DIR/cluster.json" >&2
  cat "$DIR/cluster.json"
  ;;
status)
  load
  for p in "$DIR"/*.pid; do
    name=$(basename "$p" .pid)
    state=down
    alive "$p" && state="running (pid $(cat "$p"))"
    if [[ $name == replica-* ]] && alive "$p"; then
      k=${name#replica-}
      curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$((BASE + 10 + k))/ready" && state="$state, ready" || state="$state, not ready"
    fi
    echo "$name: $state"
  done
  ;;
kill-replica | stop-replica)
  load
  k=${1:?replica number}
  alive "$DIR/replica-$k.pid" || die "replica $k is not running"
  sig=KILL
  [ "$cmd" = kill-replica ] || sig=TERM
  stop_pid $sig "$(cat "$DIR/replica-$k.pid")"
  echo "cluster: replica $k stopped (SIG$sig)" >&2
  ;;
kill-service)
  load
  name=${1:?service name}
  alive "$DIR/service-$name.pid" || die "$name is not running"
  stop_pid KILL "$(cat "$DIR/service-$name.pid")"
  echo "cluster: $name killed" >&2
  ;;
start-service)
  load
  start_service "${1:?service name}"
  echo "cluster: $1 started" >&2
  ;;
kill-postgres)
  load
  pidfile="$DIR/pg/offerd-pg.pid"
  alive "$pidfile" || die "PostgreSQL is not running"
  stop_pid QUIT "$(cat "$pidfile")"
  echo "cluster: PostgreSQL stopped at once (SIGQUIT)" >&2
  ;;
start-postgres)
  load
  scripts/pg.sh start "$DIR/pg" $((BASE + 1)) >/dev/null
  echo "cluster: PostgreSQL started" >&2
  ;;
start-replica)
  load
  k=${1:?replica number}
  [ "$k" -ge 1 ] && [ "$k" -le $((REPLICAS + 1)) ] || die "replica must be 1..$((REPLICAS + 1))"
  start_replica "$k"
  write_json
  ;;
down)
  [ -f "$DIR/cluster.env" ] || { echo "cluster: nothing to stop in $DIR" >&2; exit 0; }
  load
  for p in "$DIR"/replica-*.pid "$DIR/haproxy.pid" "$DIR"/service-*.pid; do
    [ -f "$p" ] || continue
    if alive "$p"; then
      pid=$(cat "$p")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$p"
  done
  scripts/pg.sh stop "$DIR/pg" || true
  rm -f "$DIR/cluster.env"
  echo "cluster: down" >&2
  ;;
*)
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
  [ -n "$cmd" ] && [ "$cmd" != help ] && [ "$cmd" != --help ] && exit 2
  exit 0
  ;;
esac
