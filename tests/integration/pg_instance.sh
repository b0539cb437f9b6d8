#!/usr/bin/env bash
# A private PostgreSQL 15 for tests that stop and start their server:
#   pg_instance.sh init DIR | start DIR PORT | stop DIR
# initdb into DIR, run as the postgres user when root, loopback only.
set -euo pipefail
pgbin=/usr/lib/postgresql/15/bin
cmd=$1 dir=$2
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}
case $cmd in
  init)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$pgbin/initdb -D $dir/data -U postgres -A trust --no-sync" >"$dir/initdb.log" 2>&1 ;;
  start)
    as_pg "$pgbin/pg_ctl -D $dir/data -l $dir/server.log -w -t 60 start -o \"-p $3 -k $dir -c listen_addresses=127.0.0.1\"" >/dev/null ;;
  stop)
    as_pg "$pgbin/pg_ctl -D $dir/data -m fast -w stop" >/dev/null 2>&1 || true ;;
esac
