#!/usr/bin/env bash
# Benchmark: offers/s and latency at 1, 8 and 64 connections (wrk, 2 threads) against
# `offerd --role all` and, interleaved in the same run, the Go peer of ../shared/peers/go (built
# with Debian's golang-go; the same pipeline in Go's standard library), with the ratios; offerd
# with real-time workers too when the bench may (root); the raw HTTP bound of our listener
# (GET /health), nginx when installed,
# an overload section (64/256/1024 connections) and a poison scenario (10 % of inputs make the
# prediction service answer 500), the streaming time of member_data.csv, and the cost versus
# history length.
# Prints one table. Timings are machine- and noise-dependent: compare ratios within one run.
# Usage: scripts/bench.sh [seconds-per-run (default 10)]   (MEMROWS=N: stored transactions for the memory part, default 10M)
set -euo pipefail
cd "$(dirname "$0")/.."
PEER_SRC=${PEER_SRC:-../shared/peers/go}
extra=()
[ -d "$PEER_SRC" ] && extra+=(golang-go)
scripts/deps.sh wrk curl "${extra[@]}"
scripts/build.sh offerd >/dev/null
BIN=${BUILD_DIR:-build}/offerd
DUR=${1:-10}
WORK=$(mktemp -d /tmp/offerd-bench.XXXXXX)
PORT=18000
pid=""
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

start() {  # fresh process, empty member-data
  "$BIN" --role all --orchestrator-port $PORT --member-data-port $((PORT+1)) --prediction-port $((PORT+2)) \
         --offer-engine-port $((PORT+3)) --log-file "${LOG:-$WORK/offerd.log}" --throughput-interval-ms 0 "$@" >/dev/null &
  pid=$!
  await_listening offerd
}
start_peer() {  # the Go peer, same ports and roles, fresh process
  "$PEER" --role all --orchestrator-port $PORT --member-data-port $((PORT+1)) --prediction-port $((PORT+2)) \
          --offer-engine-port $((PORT+3)) --log-file "$WORK/peer.log" >/dev/null 2>&1 &
  pid=$!
  await_listening "the Go peer"
}
await_listening() {  # name: the process just started answers on $PORT within 10 s
  for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: $1 did not start" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; pid=""; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }
to_ms() {  # wrk prints 812.00us, 1.20ms, 2.01s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
                         else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
                         else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 } else print v }'
}
HZ=$(getconf CLK_TCK)
PEER=""
if [ -d "$PEER_SRC" ] && command -v go >/dev/null; then
  mkdir -p "$WORK/peer" && cp -r "$PEER_SRC"/. "$WORK/peer/"
  # Standard library only: nothing to download (GOPROXY=off makes sure of it).
  if (cd "$WORK/peer" && GOPROXY=off GOFLAGS=-mod=mod go build -trimpath -o offerpeer . >"$WORK/peer-build.log" 2>&1); then
    PEER="$WORK/peer/offerpeer"
  else
    echo "bench: the Go peer did not build ($(head -c 300 "$WORK/peer-build.log")); its rows are left out" >&2
  fi
fi

"$BIN" generate --rows 20000 --seed 7 --malformed-share 0 -o "$WORK/bench.csv"

printf '%-28s %10s %9s %9s %9s %9s %8s %10s %8s %7s\n' scenario req/s p50_ms p90_ms p99_ms max_ms errors efficiency cpu_us rss_MiB
declare -A RATE P99 CPU
run_wrk() {  # name conns url [script]
  local name=$1 conns=$2 url=$3 script=${4:-}
  local c0; c0=$(cpu_ticks)
  local out threads=2
  [ "$conns" -lt 2 ] && threads=1  # wrk needs a connection per thread
  if [ -n "$script" ]; then out=$(BENCH_CSV="$WORK/bench.csv" wrk -t$threads -c"$conns" -d"${DUR}s" --latency -s "$script" "$url" 2>&1)
  else out=$(wrk -t$threads -c"$conns" -d"${DUR}s" --latency "$url" 2>&1); fi
  local c1; c1=$(cpu_ticks)
  local rps total p50 p90 p99 max errs non2xx sockerr
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")"); p90=$(to_ms "$(awk '$1=="90%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")"); max=$(to_ms "$(awk '/Latency/ && !/Distribution/ {print $4; exit}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out"); sockerr=${sockerr:-0}
  errs=$((non2xx + sockerr))
  local cpu_us; cpu_us=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="$total" 'BEGIN { printf "%.0f", n ? t / hz * 1e6 / n : 0 }')
  RATE[$name]=$rps; P99[$name]=$p99; CPU[$name]=$cpu_us
  local eff="-"
  [ -n "${RAW:-}" ] && [ "$script" != "" ] && eff=$(awk -v r="$rps" -v raw="$RAW" 'BEGIN { printf "%.2f", r * 6 / raw }')
  printf '%-28s %10.0f %9s %9s %9s %9s %8s %10s %8s %7s\n' "$name" "$rps" "$p50" "$p90" "$p99" "$max" "$errs" "$eff" "$cpu_us" "$(rss_mib)"
}

start
run_wrk "raw GET /health c64" 64 "http://127.0.0.1:$PORT/health"
RAW=${RATE["raw GET /health c64"]}
stop
# offerd and the peer interleaved per connection count, so drift on a noisy machine hits both.
RT=""
[ "$(id -u)" -eq 0 ] && RT=1
for c in 1 8 64; do
  LOG="$WORK/offers-c$c.log" start
  run_wrk "offers c$c" "$c" "http://127.0.0.1:$PORT/member/offer" scripts/offers.lua
  stop
  if [ -n "$PEER" ]; then
    start_peer
    run_wrk "go peer c$c" "$c" "http://127.0.0.1:$PORT/member/offer" scripts/offers.lua
    stop
  fi
  if [ -n "$RT" ]; then  # the opt-in: real-time workers (the headline is the default above)
    LOG="$WORK/offers-rt-c$c.log" start --realtime-priority 1
    run_wrk "offers c$c realtime" "$c" "http://127.0.0.1:$PORT/member/offer" scripts/offers.lua
    stop
  fi
done
if [ -n "$PEER" ]; then
  for c in 1 8 64; do
    awk -v c="$c" -v r1="${RATE["offers c$c"]}" -v r2="${RATE["go peer c$c"]}" -v p1="${P99["offers c$c"]}" -v p2="${P99["go peer c$c"]}" \
        -v u1="${CPU["offers c$c"]}" -v u2="${CPU["go peer c$c"]}" 'BEGIN {
      printf "  offerd / go peer at c%s: %.2fx offers/s, p99 %.2fx lower, %.2fx less CPU per offer\n", c, (r2 > 0 ? r1 / r2 : 0), (p1 > 0 ? p2 / p1 : 0), (u1 > 0 ? u2 / u1 : 0) }'
  done
fi
# Where the 64-connection tail comes from: server-side p99 (offer events' latency_us.total) over
# all requests and without the member that sends the most rows (requests for one member are
# sequenced, so that member's requests queue behind each other).
awk '/"event":"offer"/ { if (match($0, /"memberId":"[^"]*"/)) m = substr($0, RSTART + 12, RLENGTH - 13);
                         if (match($0, /"total":[0-9]+/)) print m, substr($0, RSTART + 8, RLENGTH - 8) }' "$WORK/offers-c64.log" > "$WORK/c64.tsv"
hot=$(awk '{ n[$1]++ } END { for (k in n) if (n[k] > best) { best = n[k]; id = k }; print id }' "$WORK/c64.tsv")
p99() { sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", v[i] / 1000 }'; }
printf '  c64 server-side p99: %s ms over all requests, %s ms without the hottest member %s (%s of %s requests)\n' \
  "$(awk '{ print $2 }' "$WORK/c64.tsv" | p99)" "$(awk -v h="$hot" '$1 != h { print $2 }' "$WORK/c64.tsv" | p99)" "$hot" \
  "$(awk -v h="$hot" '$1 == h' "$WORK/c64.tsv" | wc -l)" "$(wc -l < "$WORK/c64.tsv")"
if command -v nginx >/dev/null; then
  mkdir -p "$WORK/nginx"
  cat > "$WORK/nginx/nginx.conf" <<NGINX
worker_processes 2; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$((PORT+10)); location / { return 200 'ok'; } } }
NGINX
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
  out=$(wrk -t2 -c64 -d"${DUR}s" "http://127.0.0.1:$((PORT+10))/" 2>&1)
  printf '%-28s %10.0f\n' "nginx static 200 c64" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -s stop
fi

echo
echo "overload: offers (200) per second, 503 share, server-side p99 of the 200s and of the 503s, by connections:"
printf '%-8s %10s %10s %9s %12s %12s %8s %7s\n' conns offers/s 503/s 503_share p99_200_ms p99_503_ms limit rss_MiB
for c in 64 256 1024; do
  LOG="$WORK/over-c$c.log" start
  out=$(BENCH_CSV="$WORK/bench.csv" wrk -t2 -c"$c" -d"${DUR}s" -s scripts/offers-status.lua "http://127.0.0.1:$PORT/member/offer" 2>&1)
  scrape=$(curl -s "http://127.0.0.1:$PORT/metrics"); rss=$(rss_mib)
  limit=$(awk '/^offerd_admission_limit / {print $2}' <<<"$scrape")
  # p99 of the rejections, server-side: the upper bound of the bucket of the per-route histogram
  # that holds the 99th percentile of the offer route's 5xx answers.
  p99r=$(awk '/^offerd_http_server_request_duration_seconds_bucket\{/ && /route="\/member\/offer"/ && /status_class="5xx"/ {
                match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; les[n] = le; cum[n] = $2 }
              END { if (!n || cum[n] == 0) { print "-"; exit } for (i = 1; i <= n; i++) if (cum[i] >= 0.99 * cum[n]) {
                      if (les[i] == "+Inf") print "inf"; else printf "%.1f", les[i] * 1000; exit } }' <<<"$scrape")
  stop
  ok=$(awk '$1 == "status" && $2 == 200 {print $3}' <<<"$out"); ok=${ok:-0}
  shed=$(awk '$1 == "status" && $2 == 503 {print $3}' <<<"$out"); shed=${shed:-0}
  p99=$(awk '/"event":"offer"/ && /"status":200/ { if (match($0, /"total":[0-9]+/)) print substr($0, RSTART + 8, RLENGTH - 8) }' "$WORK/over-c$c.log" |
        sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.1f", v[i] / 1000 }')
  RATE["over c$c"]=$(awk -v n="$ok" -v d="$DUR" 'BEGIN { printf "%.0f", n / d }')
  printf '%-8s %10s %10.0f %9.2f %12s %12s %8s %7s\n' "$c" "${RATE["over c$c"]}" "$(awk -v n="$shed" -v d="$DUR" 'BEGIN { print n / d }')" \
    "$(awk -v a="$ok" -v b="$shed" 'BEGIN { print a + b ? b / (a + b) : 0 }')" "$p99" "$p99r" "$limit" "$rss"
done
awk -v a="${RATE["over c1024"]}" -v b="${RATE["over c64"]}" 'BEGIN { printf "  goodput(1024) / goodput(64) = %.2f\n", b ? a / b : 0 }'

echo
# Poison: the prediction stand-in answers 500 to 10 % of feature vectors (the same ones every
# time, like a model bug for some inputs). Those requests are answered 502; the healthy ones must
# not be failed by a circuit the poison opened.
echo "poison: 10 % of the feature vectors make the prediction service answer 500 (--prediction-fault-share 0.1), 64 connections:"
LOG="$WORK/poison.log" start --prediction-fault-share 0.1
out=$(BENCH_CSV="$WORK/bench.csv" wrk -t2 -c64 -d"${DUR}s" -s scripts/offers-status.lua "http://127.0.0.1:$PORT/member/offer" 2>&1)
scrape=$(curl -s "http://127.0.0.1:$PORT/metrics")
stop
opened=$(awk '/^offerd_circuit_transitions_total\{/ && /service="prediction"/ && /to="open"/ { n += $2 } END { print n + 0 }' <<<"$scrape")
awk -v opened="$opened" '$1 == "status" { n[$2] = $3; total += $3 }
  END { healthy = total - n[502]
        printf "  answers %d: 200 %d, 502 (poisoned) %d (%.1f %%), 503 %d; healthy requests answered 200: %.2f %%; prediction circuit opened %d times\n",
               total, n[200], n[502], total ? 100 * n[502] / total : 0, n[503], healthy ? 100 * n[200] / healthy : 0, opened }' <<<"$out"

echo
start
t0=$(date +%s.%N)
"$BIN" stream --csv member_data.csv --target "http://127.0.0.1:$PORT" --quiet 2>/dev/null | tail -1
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "stream member_data.csv (default settings): %.3f s wall\n", b - a }'
stop

echo
for F in always never; do  # member-data POST throughput with its journal, per fsync policy
  rm -f "$WORK/journal"; start --member-data-journal "$WORK/journal" --member-data-journal-fsync $F
  line=$("$BIN" stream --csv "$WORK/bench.csv" --target "http://127.0.0.1:$((PORT+1))" --path /member_data --concurrency 64 --quiet 2>/dev/null | tail -1)
  m=$(curl -s "http://127.0.0.1:$((PORT+1))/metrics" | awk '/^offerd_member_data_journal_(records|syncs)_total / {printf "%s ", $2}'); stop
  awk -v f="$F" -v l="$line" -v m="$m" 'BEGIN { n = split(l, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }; split(m, c, " ")
       printf "member-data POST, journal fsync %-6s c64: %6.0f writes/s p50 %s ms p99 %s ms (%d records, %d fdatasyncs)\n", f, v["rows_per_s"], v["p50_ms"], v["p99_ms"], c[1], c[2] }'
done

echo
echo "cost versus history length (each measured request sees exactly H earlier transactions):"
printf '%-8s %8s %10s %9s %9s\n' H members offers/s p50_ms p99_ms
for H in 1 10 100 1000; do
  M=$(( 200000 / H )); [ $M -gt 2000 ] && M=2000
  awk -v m="$M" -v h="$H" 'BEGIN { print "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUSD";
       for (j = 0; j < h; j++) for (i = 0; i < m; i++) printf "H%d,2024-01-01 00:00:%02d,buy,100,10.5\n", i, j % 60 }' > "$WORK/seed.csv"
  awk -v m="$M" 'BEGIN { print "memberId,lastTransactionUtcTs,lastTransactionType,lastTransactionPointsBought,lastTransactionRevenueUSD";
       for (i = 0; i < m; i++) printf "H%d,2024-02-01 00:00:00,gift,200,20\n", i }' > "$WORK/probe.csv"
  start
  "$BIN" stream --csv "$WORK/seed.csv" --target "http://127.0.0.1:$((PORT+1))" --path /member_data --concurrency 64 --quiet >/dev/null 2>&1
  line=$("$BIN" stream --csv "$WORK/probe.csv" --target "http://127.0.0.1:$PORT" --concurrency 8 --quiet 2>/dev/null | tail -1)
  stop
  awk -v h="$H" -v m="$M" -v l="$line" 'BEGIN { n = split(l, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
       printf "%-8s %8s %10.0f %9s %9s\n", h, m, v["rows_per_s"], v["p50_ms"], v["p99_ms"] }'
done
echo
MEMROWS=${MEMROWS:-10000000}
echo "member-data memory: RSS growth from an empty process to $MEMROWS stored transactions ($((MEMROWS / 10)) members):"
# Rows in the normalized form the orchestrator persists (RFC 3339 UTC, upper-case type); text
# posted in another form is kept beside the record to echo it, and costs more (README).
normalize='BEGIN { FS = OFS = "," } NR > 1 { sub(/ /, "T", $2); if ($2 !~ /Z$/) $2 = $2 "Z"; $3 = toupper($3) } 1'
half=$((MEMROWS / 2))
"$BIN" generate --rows "$half" --members $((MEMROWS / 20)) --malformed-share 0 --seed 3 | awk "$normalize" > "$WORK/mem1.csv"
"$BIN" generate --rows "$half" --members $((MEMROWS / 10)) --malformed-share 0 --seed 4 | awk "$normalize" > "$WORK/mem2.csv"
start
r0=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
"$BIN" stream --csv "$WORK/mem1.csv" --target "http://127.0.0.1:$((PORT+1))" --path /member_data --concurrency 64 --quiet >/dev/null 2>&1
r1=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
"$BIN" stream --csv "$WORK/mem2.csv" --target "http://127.0.0.1:$((PORT+1))" --path /member_data --concurrency 64 --quiet >/dev/null 2>&1
r2=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
stored=$(curl -s "http://127.0.0.1:$((PORT+1))/metrics" | awk '/^offerd_member_data_transactions / {print $2}')
stop
rm -f "$WORK/mem1.csv" "$WORK/mem2.csv"
awk -v a="$r0" -v b="$r1" -v c="$r2" -v n="$MEMROWS" -v s="$stored" 'BEGIN {
  printf "  %.1f bytes per stored transaction over all %.0f (RSS %d -> %d KiB); second half alone: %.1f\n", (c - a) * 1024 / n, s, a, c, (c - b) * 1024 / (n / 2) }'
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d), wrk -t2 -d${DUR}s"
