#!/usr/bin/env bash
# `make test`: starts a throwaway PostgreSQL 15 (initdb into a temp dir, run as the postgres user,
# loopback only), runs the whole suite with ctest, and stops the server even when tests fail.
set -euo pipefail
build=${1:-build}
pgbin=/usr/lib/postgresql/15/bin
dir=$(mktemp -d /tmp/emporium-pg.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$dir"
stop() {
  as_pg "$pgbin/pg_ctl -D $dir/data -m immediate -w stop" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
as_pg "$pgbin/initdb -D $dir/data -U postgres -A trust --no-sync" >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log"; exit 1; }
as_pg "$pgbin/pg_ctl -D $dir/data -l $dir/server.log -w -t 60 start -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200\"" >/dev/null ||
  { cat "$dir/server.log"; exit 1; }
export EMPORIUM_TEST_PG="postgresql://postgres@127.0.0.1:$port/postgres"
echo "throwaway PostgreSQL on 127.0.0.1:$port"
ctest --test-dir "$build" --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}"
