#!/usr/bin/env bash
# Cluster benchmark, side by side in one run on this machine: the embedded single process; one
# replica on PostgreSQL (synchronous_commit=on), first with the three services in its process
# (as embedded: the member log's cost alone), then as cluster.sh runs it (each service a
# process of its own, member-data on its fsync'd journal); three replicas behind HAProxy. offers/s,
# p50/p99 at 8 and 64 connections (wrk), CPU per offer (every process of the set-up, PostgreSQL's
# included) and appends per commit (offerd_state_appends_total{outcome="appended"} / offerd_state_commits_total).
# Timings are machine- and noise-dependent: compare ratios within one run.
# Usage: scripts/bench-cluster.sh [seconds-per-run (default 10)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh wrk curl postgresql haproxy
scripts/build.sh offerd >/dev/null
BIN=$PWD/${BUILD_DIR:-build}/offerd
DUR=${1:-10}
WORK=$(mktemp -d /tmp/offerd-bench-cluster.XXXXXX)
chmod 755 "$WORK"  # as root PostgreSQL runs as postgres, which must reach its data directory in here
BASE=${BENCH_PORT:-23000}
pid=""
cleanup() {
  [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
  CLUSTER_DIR=$WORK/cluster scripts/cluster.sh down >/dev/null 2>&1 || true
  for d in "$WORK"/pg-*; do [ -d "$d" ] && { scripts/pg.sh stop "$d" >/dev/null 2>&1 || true; }; done
  rm -rf "$WORK"
}
trap cleanup EXIT
to_ms() {
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
                         else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
                         else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 } else print v }'
}
HZ=$(getconf CLK_TCK)
# CPU ticks of the given processes and all their descendants.
ticks() {
  local all="" p
  for p in "$@"; do all="$all $p $(pgrep -P "$p" | tr '\n' ' ')"; done
  for p in $all; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
metric_sum() {  # name ports...
  local name=$1 p total=0 v
  shift
  for p in "$@"; do
    v=$(curl -s "http://127.0.0.1:$p/metrics" | awk -v n="$name" '$1 == n {print $2}')
    total=$(awk -v a="$total" -v b="${v:-0}" 'BEGIN {print a + b}')
  done
  echo "$total"
}

"$BIN" generate --rows 20000 --seed 7 --malformed-share 0 -o "$WORK/bench.csv"
printf '%-42s %9s %8s %8s %8s %8s %8s %8s %8s %9s\n' setup req/s p50_ms p99_ms errors cpu_us orch_us pg_us hap_us appends/commit
# CPU µs per offer of a group of processes (and their children) from ticks before/after; "-" for none.
per_offer() {  # ticks0 ticks1 offers
  [ "$1" = - ] && { echo -; return; }
  awk -v t=$(($2 - $1)) -v hz="$HZ" -v n="$3" 'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }'
}
group_ticks() {  # pids... (none: -)
  if [ $# -eq 0 ]; then echo -; else ticks "$@"; fi
}
# ORCH_PIDS, PG_PIDS, HAP_PIDS (space-separated) split cpu_us into the orchestrator processes
# (for the one-process rows: the process with every role), PostgreSQL and HAProxy.
run() {  # name conns url pids...
  local name=$1 conns=$2 url=$3
  shift 3
  local c0 c1 out rps total p50 p99 non2xx sockerr o0 o1 g0 g1 h0 h1
  # shellcheck disable=SC2086
  { o0=$(group_ticks ${ORCH_PIDS:-}); g0=$(group_ticks ${PG_PIDS:-}); h0=$(group_ticks ${HAP_PIDS:-}); }
  c0=$(ticks "$@")
  out=$(BENCH_CSV="$WORK/bench.csv" wrk -t2 -c"$conns" -d"${DUR}s" --latency -s scripts/offers.lua "$url/member/offer" 2>&1)
  c1=$(ticks "$@")
  # shellcheck disable=SC2086
  { o1=$(group_ticks ${ORCH_PIDS:-}); g1=$(group_ticks ${PG_PIDS:-}); h1=$(group_ticks ${HAP_PIDS:-}); }
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")
  local cpu; cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$total" 'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
  local apc="-"
  if [ -n "${REPLICA_PORTS:-}" ]; then
    # shellcheck disable=SC2086
    apc=$(awk -v w="$(metric_sum 'offerd_state_appends_total{outcome="appended"}' $REPLICA_PORTS)" -v c="$(metric_sum offerd_state_commits_total $REPLICA_PORTS)" \
      'BEGIN { printf "%.1f", c ? w / c : 0 }')
  fi
  printf '%-42s %9.0f %8s %8s %8s %8s %8s %8s %8s %9s\n' "$name" "$rps" "$p50" "$p99" "$((${non2xx:-0} + ${sockerr:-0}))" "$cpu" \
    "$(per_offer "$o0" "$o1" "$total")" "$(per_offer "$g0" "$g1" "$total")" "$(per_offer "$h0" "$h1" "$total")" "$apc"
}

# 1. embedded: every role in one process, memory only.
for c in 8 64; do
  "$BIN" --role all --orchestrator-port "$BASE" --member-data-port $((BASE + 1)) --prediction-port $((BASE + 2)) \
    --offer-engine-port $((BASE + 3)) --log-file "$WORK/embedded.log" --throughput-interval-ms 0 >/dev/null &
  pid=$!
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$BASE/health" && break; sleep 0.05; done
  ORCH_PIDS=$pid run "embedded, one process c$c" "$c" "http://127.0.0.1:$BASE" "$pid"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done

# 2. one replica on PostgreSQL with the services in its process, as the embedded row: the
# difference between the two is the cost of the PostgreSQL member log alone (a fresh server).
for c in 8 64; do
  PGURL=$(scripts/pg.sh start "$WORK/pg-$c" $((BASE + 50)) | tail -n 1)
  "$BIN" --role all --orchestrator-port "$BASE" --member-data-port $((BASE + 1)) --prediction-port $((BASE + 2)) \
    --offer-engine-port $((BASE + 3)) --state-url "$PGURL" --log-file "$WORK/pg-$c.log" --throughput-interval-ms 0 >/dev/null &
  pid=$!
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$BASE/ready" && break; sleep 0.05; done
  pgpid=$(cat "$WORK/pg-$c/offerd-pg.pid")
  REPLICA_PORTS=$BASE ORCH_PIDS=$pid PG_PIDS=$pgpid run "1 replica on PostgreSQL, in-process c$c" "$c" "http://127.0.0.1:$BASE" "$pid" "$pgpid"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  scripts/pg.sh stop "$WORK/pg-$c" >/dev/null
done

# 3. and 4.: replicas on PostgreSQL (a fresh cluster per row: empty log, empty member-data).
for replicas in 1 3; do
  for c in 8 64; do
    CLUSTER_DIR=$WORK/cluster scripts/cluster.sh up --replicas "$replicas" --port $((BASE + 100)) >/dev/null 2>"$WORK/cluster.err" ||
      { cat "$WORK/cluster.err" >&2; exit 1; }
    pids=$(cat "$WORK"/cluster/*.pid "$WORK/cluster/pg/offerd-pg.pid" 2>/dev/null | tr '\n' ' ')
    export ORCH_PIDS PG_PIDS HAP_PIDS
    ORCH_PIDS=$(cat "$WORK"/cluster/replica-*.pid | tr '\n' ' ')
    PG_PIDS=$(cat "$WORK/cluster/pg/offerd-pg.pid")
    HAP_PIDS=$(cat "$WORK/cluster/haproxy.pid" 2>/dev/null || true)
    ports=""
    for ((k = 1; k <= replicas; k++)); do ports="$ports $((BASE + 110 + k))"; done
    if [ "$replicas" -eq 1 ]; then
      # shellcheck disable=SC2086
      REPLICA_PORTS=$ports run "1 replica on PostgreSQL, apart c$c" "$c" "http://127.0.0.1:$((BASE + 111))" $pids
    else
      # shellcheck disable=SC2086
      REPLICA_PORTS=$ports run "3 replicas behind HAProxy c$c" "$c" "http://127.0.0.1:$((BASE + 100))" $pids
    fi
    CLUSTER_DIR=$WORK/cluster scripts/cluster.sh down >/dev/null 2>&1
  done
done
echo "(cpu_us: CPU time of every process of the set-up per offer, wrk excluded; 2 cores shared by all of them and wrk."
echo " orch_us: of the orchestrator processes (one-process rows: the process with every role); pg_us: PostgreSQL's;"
echo " hap_us: HAProxy's (the 1-replica rows go to the replica directly)"
