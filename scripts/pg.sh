#!/usr/bin/env bash
# A PostgreSQL server of our own in a data directory, on 127.0.0.1 only (tests, cluster.sh).
# Usage:
#   scripts/pg.sh start DIR PORT   initdb into DIR when it holds no cluster yet, start postgres in
#                                  the background (PID in DIR/offerd-pg.pid, log in DIR/postgres.log),
#                                  wait until it accepts connections, create the role and database
#                                  `offerd` (trust on 127.0.0.1 only), print its URL
#   scripts/pg.sh stop DIR         fast shutdown (SIGINT) of the server started there, by its PID; waits
#   scripts/pg.sh url DIR          print the URL of the server started there
# The URL: postgresql://offerd@127.0.0.1:PORT/offerd
# Installs Debian's postgresql (through scripts/deps.sh; its own cluster service is never started)
# when no server binaries are found. As root, the server runs as the `postgres` user (PostgreSQL
# refuses root). fsync and synchronous_commit keep their defaults (on).
# Exit status: 0 ok, 2 usage, 3 PostgreSQL is not installed and could not be installed,
# 4 the server did not start (the end of its log is on stderr), 1 anything else.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() { local code=$1; shift; echo "pg: $*" >&2; exit "$code"; }
usage() { die 2 "usage: pg.sh start DIR PORT | stop DIR | url DIR"; }

find_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && echo "$d"
}

# Runs a command as the server's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

url_of() { echo "postgresql://offerd@127.0.0.1:$1/offerd"; }

# True while PID is a live process (a zombie left to a PID 1 that does not reap counts as gone).
alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo X)
  [ "$state" != Z ] && [ "$state" != X ]
}

# initdb into the empty directory DIR (BIN: the server binaries), with our pg_hba.conf.
init_cluster() {
  local bin=$1 dir=$2
  shift 2
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
  chmod 700 "$dir"
  # As root the server runs as postgres, which must be able to reach DIR through its parents.
  if [ "$(id -u)" -eq 0 ] && ! as_owner test -x "$dir"; then
    die 4 "the postgres user cannot reach $dir: make its parent directories searchable (chmod o+x), e.g. $(dirname "$dir")"
  fi
  # --no-sync, then one syncfs: as durable as initdb's own file-by-file fsyncs, seconds faster.
  as_owner "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --locale=C --no-sync "$@" >"$dir.initdb.log" 2>&1 ||
    { tail -n 20 "$dir.initdb.log" >&2; rm -f "$dir.initdb.log"; die 4 "initdb failed"; }
  rm -f "$dir.initdb.log"
  # Sockets only in DIR (mode 0700); over TCP only the role offerd, from 127.0.0.1.
  cat >"$dir/pg_hba.conf" <<'EOF'
# Written by offerd's scripts/pg.sh.
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       all                      trust
host    all       offerd    127.0.0.1/32   trust
EOF
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/pg_hba.conf"
  sync -f "$dir"
}

# Starts postgres on DIR in the background, listening on LISTEN (empty: the socket in DIR only);
# sets server_pid. setsid takes it out of the caller's process group; setsid and setpriv exec,
# so $! is the postmaster itself.
start_server() {
  local bin=$1 dir=$2 port=$3 listen=$4 owner=()
  [ "$(id -u)" -ne 0 ] || owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  : >>"$dir/postgres.log"
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir/postgres.log"
  setsid "${owner[@]}" "$bin/postgres" -D "$dir" -p "$port" -k "$dir" -c listen_addresses="$listen" \
    -c max_connections=200 -c shared_buffers=128MB \
    </dev/null >>"$dir/postgres.log" 2>&1 &
  server_pid=$!
}

wait_ready() {
  local bin=$1 dir=$2 port=$3 pid=$4 i
  for i in $(seq 1 600); do
    alive "$pid" || { tail -n 20 "$dir/postgres.log" >&2; die 4 "postgres exited during start-up (port $port)"; }
    if "$bin/pg_isready" -q -h "$dir" -p "$port" -d postgres -U postgres; then return 0; fi
    sleep 0.05
  done
  tail -n 20 "$dir/postgres.log" >&2
  die 4 "postgres did not become ready in 30 s"
}

# The role and database offerd, once per data directory (DIR/offerd-pg.ready says it is done).
create_offerd() {
  local bin=$1 dir=$2 port=$3
  [ ! -f "$dir/offerd-pg.ready" ] || return 0
  local psql=("$bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
  "${psql[@]}" -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'offerd') THEN CREATE ROLE offerd LOGIN; END IF;
    END \$\$;" >/dev/null
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'offerd'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE offerd OWNER offerd" >/dev/null
  fi
  touch "$dir/offerd-pg.ready"
}

# SIGINT (fast shutdown: sessions ended, a shutdown checkpoint) and wait; SIGQUIT after 30 s.
stop_pid() {
  local pid=$1 i
  alive "$pid" || return 0
  kill -INT "$pid" 2>/dev/null || true
  for i in $(seq 1 1500); do alive "$pid" || return 0; sleep 0.02; done
  echo "pg: postgres (pid $pid) did not stop in 30 s; SIGQUIT" >&2
  kill -QUIT "$pid" 2>/dev/null || true
  for i in $(seq 1 250); do alive "$pid" || return 0; sleep 0.02; done
}

cmd_start() {
  [ $# -eq 2 ] || usage
  local dir=$1 port=$2 bin
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1024 ] && [ "$port" -lt 32768 ] || die 2 "PORT must be 1024..32767, got '$port'"
  bin=$(find_bin || true)
  if [ -z "$bin" ]; then
    echo "pg: installing the PostgreSQL server (Debian's postgresql)" >&2
    "$here/deps.sh" postgresql >&2 || true
    bin=$(find_bin || true)
    [ -n "$bin" ] || die 3 "the PostgreSQL server is not installed and could not be installed (apt-get install postgresql)"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die 3 "no 'postgres' user to run the server as (is Debian's postgresql installed?)"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/offerd-pg.pid" ] && alive "$(cat "$dir/offerd-pg.pid")"; then
    die 1 "a server started by pg.sh already runs in $dir (pid $(cat "$dir/offerd-pg.pid"))"
  fi
  cd /  # the server's owner may not be allowed into the caller's directory
  if [ ! -f "$dir/PG_VERSION" ]; then
    [ -z "$(ls -A "$dir")" ] || die 1 "$dir is neither empty nor a PostgreSQL data directory"
    local tpl=${OFFERD_PG_TEMPLATE:-}
    if [ -n "$tpl" ]; then
      # For tests: a cluster made once (role and database included) and copied, since initdb
      # costs seconds. Small WAL segments keep the copy small; no sync for throw-away data.
      mkdir -p "$(dirname "$tpl")"
      (
        flock 9
        if [ ! -f "$tpl/offerd-pg.ready" ] || [ "$(cat "$tpl/PG_VERSION")" != "$(basename "$(dirname "$bin")")" ]; then
          rm -rf "$tpl"
          mkdir -p "$tpl"
          init_cluster "$bin" "$tpl" --wal-segsize=1
          start_server "$bin" "$tpl" "$port" ""
          wait_ready "$bin" "$tpl" "$port" "$server_pid"
          create_offerd "$bin" "$tpl" "$port"
          stop_pid "$server_pid"
          rm -f "$tpl/postgres.log"
        fi
      ) 9>"$tpl.lock"
      cp -a "$tpl/." "$dir/"
    else
      init_cluster "$bin" "$dir"
    fi
  fi
  [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$dir"
  chmod 700 "$dir"
  echo "$port" >"$dir/offerd-pg.port"
  start_server "$bin" "$dir" "$port" 127.0.0.1
  echo "$server_pid" >"$dir/offerd-pg.pid"
  wait_ready "$bin" "$dir" "$port" "$server_pid"
  create_offerd "$bin" "$dir" "$port"
  url_of "$port"
}

cmd_stop() {
  [ $# -eq 1 ] || usage
  local dir=$1
  [ -f "$dir/offerd-pg.pid" ] || die 1 "no server started by pg.sh in $dir"
  stop_pid "$(cat "$dir/offerd-pg.pid")"
  rm -f "$dir/offerd-pg.pid"
}

cmd_url() {
  [ $# -eq 1 ] || usage
  [ -f "$1/offerd-pg.port" ] || die 1 "no server started by pg.sh in $1"
  url_of "$(cat "$1/offerd-pg.port")"
}

[ $# -ge 1 ] || usage
what=$1; shift
case "$what" in
  start) cmd_start "$@" ;;
  stop) cmd_stop "$@" ;;
  url) cmd_url "$@" ;;
  *) usage ;;
esac
