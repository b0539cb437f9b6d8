#!/usr/bin/env bash
# Emporium benchmarks (`make bench`, or `make bench-SCENARIO` for one): each figure is set against
# a ceiling measured side by side in the same run on the same machine. Starts what it needs (nodes,
# nginx, a throwaway PostgreSQL), prints a progress line per step and one table row per figure,
# keeps the raw outputs in bench/results/<time>/ and stops everything on exit.
#
#   bench/run.sh [stock|orders-pg|orders-sqlite|hot|micro|cluster ...]     (none: all)
#
# Knobs (environment): DURATION (closed-loop seconds, 15), WARMUP (2), OPEN_DURATION (10),
# OPEN_WARMUP (seconds at the same rate before each measured open loop, 5), OPEN_SETTLE (0: the
# node's open loop on PostgreSQL follows its closed loops at once, and pgbench's follows it; 1, for
# trials: the server first settles as between series, before the node's open loop and before
# pgbench's, which then gets the same warm-up; the figure is then a freshly vacuumed and
# checkpointed server's, see RESULTS.md, twenty-first run),
# PGBENCH_DURATION (5), CONNS (64), THREADS (wrk threads, 2), SKUS (1000),
# PGBENCH_CLIENTS ("1 4 16 64"), NODE_CONNS (the closed loop's connection counts for the node's
# orders on PostgreSQL, "64 128": its best is its maximum, as pgbench's best client count is the
# ceiling; CONNS everywhere else), CLUSTER_DURATION (seconds per cluster figure, 5),
# CLUSTER_WINDOW (calls outstanding, 256), BENCH_BUILD (/tmp/build-bench-suite),
# PG_SETTINGS (trials: settings of the suite's PostgreSQL beyond its fixed ones, "-c k=v ..."
# without quotes or spaces in values; none by default), PG_PREWARM_WAL_MB (trials: WAL written
# once before the runs; 0, the default: none), PG_PARENT (the directory the server's data goes
# under, /tmp: another file system or disk, e.g. one mounted without online discard; see
# RESULTS.md, nineteenth run). With a large min_wal_size the WAL may take gigabytes there (on a
# tmpfs, that is RAM, and its flushes are not a disk's).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
all=(stock orders-pg orders-sqlite hot micro cluster)
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=("${all[@]}")
for s in "${scenarios[@]}"; do
  [[ " ${all[*]} " == *" $s "* ]] || { echo "unknown scenario '$s' (one of: ${all[*]})" >&2; exit 2; }
done
wants() { [[ " ${scenarios[*]} " == *" $1 "* ]]; }

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
OPEN_WARMUP=${OPEN_WARMUP:-5}
OPEN_DURATION=${OPEN_DURATION:-10}
OPEN_SETTLE=${OPEN_SETTLE:-0}
[[ $OPEN_SETTLE =~ ^[01]$ ]] || { echo "OPEN_SETTLE: 0, or 1 (settle before open loops)" >&2; exit 2; }
PGBENCH_DURATION=${PGBENCH_DURATION:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SKUS=${SKUS:-1000}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-"1 4 16 64"}
NODE_CONNS=${NODE_CONNS:-"64 128"}
[[ $NODE_CONNS =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] ||
  { echo "NODE_CONNS: connection counts above 0, separated by spaces" >&2; exit 2; }
# Trials of the PostgreSQL server's settings (see start_pg), off by default: e.g.
# PG_SETTINGS="-c min_wal_size=3GB -c max_wal_size=6GB" PG_PREWARM_WAL_MB=1500.
PG_SETTINGS=${PG_SETTINGS:-}
PG_PREWARM_WAL_MB=${PG_PREWARM_WAL_MB:-0}
PG_PARENT=${PG_PARENT:-/tmp}
[ -d "$PG_PARENT" ] || { echo "PG_PARENT: $PG_PARENT is not a directory" >&2; exit 2; }
[[ $PG_PREWARM_WAL_MB =~ ^[0-9]+$ ]] || { echo "PG_PREWARM_WAL_MB: a number of MB (0: none)" >&2; exit 2; }
BENCH_BUILD=${BENCH_BUILD:-/tmp/build-bench-suite}
HOT_SKU=hot-sku
SECRET=bench-$RANDOM$RANDOM

res="$here/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$res"
work=$(mktemp -d /tmp/emporium-bench.XXXXXX)
table="$res/table.tsv"
: >"$table"
export BENCH_LUA_DIR="$here/wrk"

# --- lifetime of what this script starts -------------------------------------------------------

pids=()
pg_dir=""
pgbin=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_dir" ]; then
    as_pg "$pgbin/pg_ctl -D $pg_dir/data -m fast -w stop" >/dev/null 2>&1 || true
    [ -d "$res" ] && cp "$pg_dir/server.log" "$res/postgres.log" 2>/dev/null || true
    rm -rf "$pg_dir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- progress --------------------------------------------------------------------------------------

step=0
steps=0
wants stock && steps=$((steps + 4))
wants orders-pg && steps=$((steps + 4 + 2 * $(wc -w <<<"$NODE_CONNS") + 2 * $(wc -w <<<"$PGBENCH_CLIENTS")))
wants orders-sqlite && steps=$((steps + 2))
# The hot sku's reference is the spread orders at CONNS: the orders-pg run at CONNS if there is one.
wants hot && steps=$((steps + 1 + $(wants orders-pg && [[ " $NODE_CONNS " == *" $CONNS "* ]] && echo 0 || echo 1)))
wants micro && steps=$((steps + 1))
wants cluster && steps=$((steps + 1))
started=$SECONDS

# progress LABEL SECONDS: one line per step; on a terminal it counts the seconds down in place.
progress() {
  step=$((step + 1))
  local line="[$step/$steps, $((SECONDS - started)) s in] $1"
  if [ -t 2 ]; then
    (for ((i = 0; i < $2; i++)); do printf '\r%s: %d/%d s ' "$line" "$i" "$2" >&2; sleep 1; done) &
    ticker=$!
  else
    echo "$line (${2} s)" >&2
    ticker=""
  fi
}
progress_done() {
  if [ -n "${ticker:-}" ]; then kill "$ticker" 2>/dev/null || true; wait "$ticker" 2>/dev/null || true
    printf '\r\033[K' >&2; fi
}

# cpu_snapshot NAME SECONDS: %CPU per process in the middle of a run, and the machine's busy and
# steal shares over all but its last second (/proc/stat: steal is CPU time the host gave to other
# guests, which slows every figure of that run), kept for RESULTS.md. Only raw reads happen during
# the run; cpu_report NAME, after it, makes the line of cpu.txt (Python start-ups near a run's end
# were load of their own on two busy cores: bench/RESULTS.md, nineteenth run).
cpu_snapshot() {
  (head -1 /proc/stat >"$res/$1.stat0" 2>/dev/null || true
    sleep $(($2 / 2)); top -b -n2 -d1 -w 250 >"$res/$1.top" 2>&1
    # top took about 1 s; 1 s more of margin, so that this ends before the run does.
    rest=$(($2 - $2 / 2 - 2)); [ "$rest" -gt 0 ] && sleep "$rest"
    head -1 /proc/stat >"$res/$1.stat1" 2>/dev/null || true) &
  snapshot=$!
}
cpu_report() {
  wait "$snapshot" 2>/dev/null || true
  echo "$1: $(python3 "$here/report.py" cpu "$res/$1.top"); $(python3 "$here/report.py" steal "$res/$1.stat0" "$res/$1.stat1")" >>"$res/cpu.txt"
}

# kv KEY FILE: the value of KEY=... on the RESULT line of a wrk or open-loop output.
kv() { grep -o "$1=[^ ]*" "$2" | tail -1 | cut -d= -f2; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}' if $2 else '-')"; }
meets() { python3 -c "print('yes' if $1 else 'no')"; }
row() { (IFS=$'\t'; echo "$*") >>"$table"; }

# --- build -----------------------------------------------------------------------------------------

echo "building into $BENCH_BUILD (emporium, emporium-openloop, emporium-micro)" >&2
[ -f "$BENCH_BUILD/build.ninja" ] ||
  cmake -S "$here" -B "$BENCH_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$res/cmake.log" 2>&1 ||
  { cat "$res/cmake.log"; exit 1; }
cmake --build "$BENCH_BUILD" -j "${JOBS:-2}" --target emporium emporium-openloop emporium-micro emporium-cluster-bench \
  >"$res/build.log" 2>&1 || { tail -30 "$res/build.log"; exit 1; }
EMPORIUM="$BENCH_BUILD/emporium/emporium"
OPENLOOP="$BENCH_BUILD/emporium-openloop"
MICRO="$BENCH_BUILD/micro/emporium-micro"
CLUSTER_BENCH="$BENCH_BUILD/cluster/emporium-cluster-bench"

token() { (cd "$work" && "$EMPORIUM" token --sub "$1" --scope "$2" --ttl 7200 --set auth.hs256_secret="$SECRET"); }
CUSTOMER=$(token bench "orders:write orders:read inventory:read")
ADMIN=$(token bench-admin admin)

# --- services --------------------------------------------------------------------------------------

psql_() { psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }

start_pg() {
  pg_dir=$(mktemp -d "$PG_PARENT/emporium-bench-pg.XXXXXX")  # owned by postgres: not under $work (0700)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  pg_port=$(free_port)
  as_pg "$pgbin/initdb -D $pg_dir/data -U postgres -A trust --no-sync" >"$res/initdb.log" 2>&1 ||
    { cat "$res/initdb.log"; exit 1; }
  # Defaults otherwise: synchronous_commit=on, fsync=on. PG_SETTINGS adds settings for trials;
  # the ceiling runs on the same server, so it has them too.
  as_pg "$pgbin/pg_ctl -D $pg_dir/data -l $pg_dir/server.log -w -t 60 start -o \"-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c log_autovacuum_min_duration=0 -c log_checkpoints=on $PG_SETTINGS\"" \
    >/dev/null || { cat "$pg_dir/server.log"; exit 1; }
  pg="postgresql://postgres@127.0.0.1:$pg_port"
  for db in emporium_orders emporium_inventory ceiling; do psql_ -d postgres -c "CREATE DATABASE $db"; done
  psql_ -d ceiling -c "CREATE SCHEMA ceiling_orders; CREATE SCHEMA ceiling_inventory"
  psql_ -d postgres -c "CREATE EXTENSION pg_stat_statements"
  # A fresh server creates each new 16-MB WAL segment as it needs one, writing it full of zeros
  # while commits wait; a server in steady state renames old ones instead. For trials, the suite
  # can write about PG_PREWARM_WAL_MB of WAL once, before anything is measured, for a server
  # whose min_wal_size keeps the segments (bench/RESULTS.md, twelfth run: no clear effect).
  if [ "$PG_PREWARM_WAL_MB" -gt 0 ]; then
    echo "PostgreSQL: writing about $PG_PREWARM_WAL_MB MB of WAL before the runs (PG_PREWARM_WAL_MB)" >&2
    psql_ -d postgres -c "CREATE TABLE wal_fill AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, ${PG_PREWARM_WAL_MB} * 4000) g"
    psql_ -d postgres -c "DROP TABLE wal_fill"
    psql_ -d postgres -c "CHECKPOINT"
  fi
  # The ceiling's tables are the node's own, migrated into two schemas of one database.
  (cd "$work" && "$EMPORIUM" migrate \
    --set "database.orders=$pg/ceiling?options=-csearch_path%3Dceiling_orders" \
    --set "database.inventory=$pg/ceiling?options=-csearch_path%3Dceiling_inventory") >"$res/ceiling-migrate.log" 2>&1
  psql_ -d ceiling -c "INSERT INTO ceiling_inventory.items (sku, name, price_cents, currency, on_hand, reserved, version)
    SELECT 'sku-' || g, 'Bench mug', 1999, 'USD', 1000000000, 0, 1 FROM generate_series(0, $SKUS - 1) g; ANALYZE"
  echo "PostgreSQL 15 on 127.0.0.1:$pg_port ($(psql_ -d postgres -Atc 'SHOW synchronous_commit') synchronous_commit)" >&2
}

# start_node NAME ORDERS_URL INVENTORY_URL: a node on its own port, with the items created.
start_node() {
  local name=$1 port
  port=$(free_port)
  mkdir -p "$work/$name"
  (cd "$work/$name" && exec "$EMPORIUM" serve --set http.listen=127.0.0.1:$port \
    --set "database.orders=$2" --set "database.inventory=$3" --set node.data_dir="$work/$name" \
    --set auth.hs256_secret="$SECRET" --set rate_limit.rate=1e9 --set rate_limit.burst=1e9) \
    >"$res/node-$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { tail -20 "$res/node-$name.log"; exit 1; }
  python3 "$here/seed.py" "127.0.0.1:$port" "$ADMIN" "$CUSTOMER" "$SKUS" "$HOT_SKU" >"$work/$name.item.json"
  eval "port_$name=$port"
  echo "node $name on 127.0.0.1:$port, $SKUS items created" >&2
}

# stop NAME PID: stops one thing this script started (each runs alone: no idle neighbour's CPU).
stop() {
  kill "$2" 2>/dev/null || true
  wait "$2" 2>/dev/null || true
  echo "$1 stopped" >&2
}

# start_nginx BODY_FILE: one worker on loopback answering every path with that fixed JSON body.
start_nginx() {
  nginx_port=$(free_port)
  mkdir -p "$work/nginx"
  local body
  body=$(cat "$1")
  cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { default_type application/json; return 200 '$body'; }
  }
}
EOF
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
  pids+=($!)
  pid_nginx=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "nginx (1 worker) on 127.0.0.1:$nginx_port, body of $(wc -c <"$1") bytes" >&2
}

# --- load ------------------------------------------------------------------------------------------

# closed_loop NAME PORT SCRIPT [VAR=VALUE...]: wrk, after a warm-up; RESULT line in $res/NAME.wrk.
closed_loop() {
  local name=$1 port=$2 script=$3
  shift 3
  local envs=(BENCH_TOKEN="$CUSTOMER" BENCH_SKUS="$SKUS" "$@")
  if [ "$WARMUP" -gt 0 ]; then
    env "${envs[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 10s -s "$here/wrk/$script" \
      "http://127.0.0.1:$port" >"$res/$name.warmup" 2>&1 || true
  fi
  measure_begin "$name" "$port"
  cpu_snapshot "$name" "$DURATION"
  env "${envs[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency \
    -s "$here/wrk/$script" "http://127.0.0.1:$port" >"$res/$name.wrk" 2>&1
  cpu_report "$name"
  grep -q '^RESULT' "$res/$name.wrk" || { cat "$res/$name.wrk"; exit 1; }
  measure_end "$name" "$port" "$(kv requests "$res/$name.wrk")"
}

# What a node did for one measured run: group-commit figures from its /metrics and, on
# PostgreSQL, transactions and statements per request (pg_stat_statements). For RESULTS.md.
measure_begin() {
  curl -sf "http://127.0.0.1:$2/metrics" 2>/dev/null | grep '^emporium_commit' >"$work/$1.metrics" || true
  if [[ $1 == orders-pg* ]]; then
    psql_ -d postgres -Atc "SELECT pg_stat_statements_reset()" >/dev/null
    sleep 1
    psql_ -d postgres -Atc "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 'emporium_%'" \
      >"$work/$1.xact"
  fi
}
measure_end() {
  local name=$1 port=$2 requests=$3
  [ -s "$work/$name.metrics" ] || return 0
  curl -sf "http://127.0.0.1:$port/metrics" | grep '^emporium_commit' >"$work/$name.metrics.after" || return 0
  python3 "$here/report.py" commit-delta "$work/$name.metrics" "$work/$name.metrics.after" \
    "$requests" >"$res/$name.commits"
  echo "$name: $(cat "$res/$name.commits")" >>"$res/commits.txt"
  if [[ $name == orders-pg* ]]; then
    sleep 1
    local before after
    before=$(cat "$work/$name.xact")
    after=$(psql_ -d postgres -Atc "SELECT sum(xact_commit) FROM pg_stat_database WHERE datname LIKE 'emporium_%'")
    echo "$name: PostgreSQL transactions per request: $(ratio "($after - $before)" "$requests")" >>"$res/commits.txt"
    psql_ -d postgres -c "SELECT d.datname AS db, s.calls, round(s.calls::numeric / $requests, 2) AS per_request,
        round(s.total_exec_time::numeric / s.calls, 3) AS mean_ms, left(regexp_replace(s.query, '\s+', ' ', 'g'), 100) AS query
      FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
      WHERE d.datname LIKE 'emporium_%' ORDER BY s.calls DESC LIMIT 20" >"$res/$name.statements"
  fi
}

# open_loop NAME PORT RATE METHOD PATH BODY: the open-loop generator at a fixed arrival rate.
open_loop() {
  local name=$1 port=$2 rate=$3
  # First the same rate unmeasured, as the closed loop has its warm-up: the latency measured is
  # that of the rate held, not of the aftermath of the closed-loop run just before (whose orders
  # and payments are still passivating, at the rate they finished).
  if [ "$OPEN_WARMUP" -gt 0 ]; then
    # Beside the orders, the disk's own flush time (see fsync_probe.py): every commit waits for
    # one. In the warm-up, at the same rate, not in the measured run: its flushes (up to 200 a
    # second) are load of its own on the disk and the cores (bench/RESULTS.md, nineteenth run).
    local probe=""
    if [[ $name == orders-pg* ]]; then
      python3 "$here/fsync_probe.py" "$OPEN_WARMUP" "$work" >"$res/$name.fsync" 2>&1 &
      probe=$!
      pids+=("$probe")
    fi
    "$OPENLOOP" --host 127.0.0.1 --port "$port" --rate "$rate" --duration-s "$OPEN_WARMUP" \
      --connections "$CONNS" --range "$SKUS" --method "$4" --path "$5" --body "$6" \
      --header "Authorization: Bearer $CUSTOMER" >"$res/$name.open-warmup" 2>&1
    [ -z "$probe" ] || wait "$probe" 2>/dev/null || true
  fi
  cpu_snapshot "$name" "$OPEN_DURATION"
  # Each request's send time and latency (NAME.timeline, ms from NAME.start's epoch seconds), to
  # line slow moments up with the server's log (autovacuum, checkpoints) in postgres.log.
  date +%s.%N >"$res/$name.start"
  OPENLOOP_TIMELINE="$res/$name.timeline" \
  "$OPENLOOP" --host 127.0.0.1 --port "$port" --rate "$rate" --duration-s "$OPEN_DURATION" \
    --connections "$CONNS" --range "$SKUS" --method "$4" --path "$5" --body "$6" \
    --header "Authorization: Bearer $CUSTOMER" >"$res/$name.open" 2>&1
  cpu_report "$name"
  grep -q 'requests=' "$res/$name.open" || { cat "$res/$name.open"; exit 1; }
}

wrk_row() {  # wrk_row LABEL FILE CEILING RATIO TARGET MET NOTE
  row "$1" "$(kv ok_throughput "$2")" "$(kv p50_ms "$2")" "$(kv p99_ms "$2")" "$(kv p999_ms "$2")" \
    "$(kv errors "$2")" "$3" "$4" "$5" "$6" "$7"
}
open_row() {  # open_row LABEL FILE RATE TARGET MET
  local stalls=${2%.open}.stalls
  python3 "$here/report.py" stalls "${2%.open}.timeline" 30 >"$stalls"
  row "$1" "$(kv throughput "$2")" "$(kv p50_ms "$2")" "$(kv p99_ms "$2")" "$(kv p999_ms "$2")" \
    "$(kv errors "$2")" "-" "-" "$4" "$5" \
    "open loop at $3/s (half of max), $CONNS conns; stalls with an answer of $(kv floor_ms "$stalls") ms or more: $(kv stalls "$stalls") ($(kv stretches "$stalls") 100-ms stretches of sending), slowest answer $(kv slowest_ms "$stalls") ms"
}

card='"payment":{"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}'
order_body() {  # order_body LINES: the open-loop template; {r} is a random sku number
  local items='{"sku":"sku-{r}","quantity":1}'
  [ "$1" = 3 ] && items="$items,$items,$items"
  echo "{\"items\":[$items],$card}"
}

# pgbench_best LINES: the pgbench ceiling at each client count; sets best_tps/best_clients.
pgbench_best() {
  local lines=$1 c tps failed lat
  best_tps=0
  best_clients=0
  for c in $PGBENCH_CLIENTS; do
    progress "orders-pg: pgbench ceiling, $lines line(s), $c clients" "$PGBENCH_DURATION"
    mkdir -p "$work/pgb-$lines-$c"
    cpu_snapshot "pgbench-$lines-$c" "$PGBENCH_DURATION"
    (cd "$work/pgb-$lines-$c" && pgbench -n -M prepared -h 127.0.0.1 -p "$pg_port" -U postgres \
      -c "$c" -j "$((c < 2 ? 1 : 2))" -T "$PGBENCH_DURATION" -D skus="$SKUS" --log \
      -f "$here/pgbench/order$lines.sql" ceiling) >"$res/pgbench-$lines-$c.out" 2>&1
    cpu_report "pgbench-$lines-$c"
    progress_done
    tps=$(grep -oP 'tps = \K[0-9.]+(?= \(without)' "$res/pgbench-$lines-$c.out")
    failed=$(grep -oP 'number of failed transactions: \K[0-9]+' "$res/pgbench-$lines-$c.out" || echo 0)
    lat=$(python3 "$here/report.py" pgbench-latency "$work/pgb-$lines-$c"/pgbench_log.*)
    echo "tps=$tps failed=$failed $lat" >>"$res/pgbench-$lines-$c.out"
    row "pgbench $lines line(s), $c clients" "$(printf '%.1f' "$tps")" "$(kv p50_ms "$res/pgbench-$lines-$c.out")" \
      "$(kv p99_ms "$res/pgbench-$lines-$c.out")" "$(kv p999_ms "$res/pgbench-$lines-$c.out")" \
      "$failed" "-" "-" "-" "-" "ceiling candidate (one SQL transaction per order)"
    if python3 -c "import sys; sys.exit(0 if $tps > $best_tps else 1)"; then
      best_tps=$tps
      best_clients=$c
    fi
    rm -rf "$work/pgb-$lines-$c"
  done
}

# --- scenarios -------------------------------------------------------------------------------------

scenario_stock() {
  start_nginx "$work/sqlite.item.json"
  progress "stock: nginx ceiling, closed loop, $CONNS conns" "$DURATION"
  closed_loop stock-nginx "$nginx_port" stock.lua
  progress_done
  progress "stock: node, closed loop, $CONNS conns" "$((WARMUP + DURATION))"
  closed_loop stock-node "$port_sqlite" stock.lua
  progress_done
  local nginx node r half
  nginx=$(kv ok_throughput "$res/stock-nginx.wrk")
  node=$(kv ok_throughput "$res/stock-node.wrk")
  r=$(ratio "$node" "$nginx")
  wrk_row "stock nginx ceiling" "$res/stock-nginx.wrk" "-" "-" "-" "-" "fixed body, 1 worker"
  wrk_row "stock node (SQLite)" "$res/stock-node.wrk" "nginx" "$r" ">= 0.60" "$(meets "$r >= 0.6")" \
    "GET /v1/inventory/sku-N over $SKUS skus"
  half=$(python3 -c "print(max(1, int($node / 2)))")
  progress "stock: node, open loop at $half/s" "$((OPEN_WARMUP + OPEN_DURATION))"
  open_loop stock-node-open "$port_sqlite" "$half" GET '/v1/inventory/sku-{r}' ''
  progress_done
  open_row "stock node open loop" "$res/stock-node-open.open" "$half" "-" "-"
  # The same arrival rate on nginx: what the generator and the shared cores add by themselves.
  progress "stock: nginx, open loop at $half/s (generator reference)" "$((OPEN_WARMUP + OPEN_DURATION))"
  open_loop stock-nginx-open "$nginx_port" "$half" GET '/v1/inventory/sku-{r}' ''
  progress_done
  open_row "stock nginx open loop" "$res/stock-nginx-open.open" "$half" "-" "-"
  stop nginx "$pid_nginx"
}

# Before each series of runs, the server pays the debts of the series before (it vacuums their
# rows and writes their dirty pages), or autovacuum and the checkpointer would do it on the same
# two cores while the next series is measured. The node's databases only once they hold its
# orders, as a shop's would be: analysed while empty, they make PostgreSQL plan the node's first
# statements for empty tables (see StatementCache in runtime/store.hpp).
settle_pg() {
  local db
  for db in ceiling "$@"; do psql_ -d "$db" -c "VACUUM (ANALYZE)"; done
  psql_ -d postgres -c "CHECKPOINT"
}

# The pgbench ceilings first, while the node is idle, then the node's runs against them.
scenario_orders_pg() {
  settle_pg
  pgbench_best 1
  best_tps_1=$best_tps best_clients_1=$best_clients
  settle_pg
  pgbench_best 3
  best_tps_3=$best_tps best_clients_3=$best_clients
  settle_pg
  orders_pg 1
  settle_pg emporium_orders emporium_inventory
  orders_pg 3
}

# orders_pg LINES: closed loops at each of NODE_CONNS, the best of them the node's maximum (as the
# best of PGBENCH_CLIENTS is pgbench's); then an open loop at half of it, against the pgbench
# ceiling. The maximum's wrk output is also kept as orders-pg-LINES.wrk.
orders_pg() {
  local lines=$1 node=-1 conns=0 r half p99 c tps
  eval "best_tps=\$best_tps_$lines best_clients=\$best_clients_$lines"
  for c in $NODE_CONNS; do
    progress "orders-pg: node, $lines line(s), closed loop, $c conns" "$((WARMUP + DURATION))"
    CONNS=$c closed_loop "orders-pg-$lines-c$c" "$port_pg" order.lua BENCH_LINES="$lines"
    progress_done
    tps=$(kv ok_throughput "$res/orders-pg-$lines-c$c.wrk")
    wrk_row "orders PG $lines line(s), $c conns" "$res/orders-pg-$lines-c$c.wrk" "-" "-" "-" "-" \
      "candidate for the node's maximum"
    # The hot sku's reference: the spread orders at the connections the hot sku's run has.
    [ "$c" = "$CONNS" ] && eval "spread_pg_$lines=$tps"
    if python3 -c "import sys; sys.exit(0 if $tps > $node else 1)"; then
      node=$tps
      conns=$c
    fi
  done
  cp "$res/orders-pg-$lines-c$conns.wrk" "$res/orders-pg-$lines.wrk"
  half=$(python3 -c "print(max(1, int($node / 2)))")
  # OPEN_SETTLE=1: the closed loops' debts (their dead rows, which autovacuum would clean up during
  # the open loop, and their dirty pages) are paid first, as before each series. Not the default:
  # in ten seconds right after, the server has no checkpoint or autovacuum of its own to do, which
  # a shop at a steady rate has (bench/RESULTS.md, twenty-first run).
  [ "$OPEN_SETTLE" = 0 ] || settle_pg emporium_orders emporium_inventory
  progress "orders-pg: node, $lines line(s), open loop at $half/s" "$((OPEN_WARMUP + OPEN_DURATION))"
  open_loop "orders-pg-$lines-open" "$port_pg" "$half" POST /v1/orders "$(order_body "$lines")"
  progress_done
  r=$(ratio "$node" "$best_tps")
  wrk_row "orders PG $lines line(s)" "$res/orders-pg-$lines.wrk" "pgbench c=$best_clients" "$r" \
    ">= 1.50" "$(meets "$r >= 1.5")" \
    "POST /v1/orders, success card, synchronous_commit=on; the best of $(wc -w <<<"$NODE_CONNS") closed loops, at $conns conns"
  p99=$(kv p99_ms "$res/orders-pg-$lines-open.open")
  open_row "orders PG $lines line(s) open loop" "$res/orders-pg-$lines-open.open" "$half" \
    "p99 < 20 ms" "$(meets "$p99 < 20")"
  local probe="$res/orders-pg-$lines-open.fsync"
  if grep -q 'probes=' "$probe" 2>/dev/null; then
    row "disk flush in its warm-up ($lines line(s))" "-" "$(kv p50_ms "$probe")" "$(kv p99_ms "$probe")" \
      "$(kv p999_ms "$probe")" "-" "-" "-" "-" "-" \
      "8 KiB + fdatasync every 5 ms: $(kv stalls_20ms "$probe") of $(kv probes "$probe") took >= 20 ms, longest $(kv max_ms "$probe") ms"
  fi
  pgbench_open "$lines" "$half"
}

# pgbench_open LINES RATE: the pgbench ceiling's transaction at the node's open-loop rate, for the
# latency one commit per order has at that rate on this machine. pgbench -R times each transaction
# from its scheduled start, so a stall delays the ones queued behind it (no coordinated omission).
pgbench_open() {
  local lines=$1 rate=$2 dir="$work/pgb-open-$1" out="$res/pgbench-open-$1.out" tps warmup=0
  mkdir -p "$dir"
  # at_rate SECONDS [ARGS...]: the transaction at the rate for that long.
  at_rate() {
    (cd "$dir" && pgbench -n -M prepared -h 127.0.0.1 -p "$pg_port" -U postgres -c "$best_clients" \
      -j "$((best_clients < 2 ? 1 : 2))" -R "$rate" -T "$1" -D skus="$SKUS" "${@:2}" \
      -f "$here/pgbench/order$lines.sql" ceiling)
  }
  # As the node's: settled, then the same rate unmeasured first, so that the burst of full-page
  # writes after the checkpoint falls in the warm-up, not in the measured run.
  if [ "$OPEN_SETTLE" = 1 ]; then
    settle_pg emporium_orders emporium_inventory
    warmup=$OPEN_WARMUP
  fi
  progress "orders-pg: pgbench, $lines line(s), open loop at $rate/s" "$((warmup + OPEN_DURATION))"
  [ "$warmup" = 0 ] || at_rate "$warmup" >"$res/pgbench-open-$lines.warmup" 2>&1
  at_rate "$OPEN_DURATION" --log >"$out" 2>&1
  progress_done
  tps=$(grep -oP 'tps = \K[0-9.]+(?= \(without)' "$out" || echo 0)
  echo "tps=$tps $(python3 "$here/report.py" pgbench-latency "$dir"/pgbench_log.*)" >>"$out"
  row "pgbench $lines line(s) open loop" "$(printf '%.1f' "$tps")" "$(kv p50_ms "$out")" "$(kv p99_ms "$out")" \
    "$(kv p999_ms "$out")" "$(grep -oP 'number of failed transactions: \K[0-9]+' "$out" || echo 0)" \
    "-" "-" "-" "-" "the same rate, one SQL transaction per order, $best_clients clients"
  rm -rf "$dir"
}

scenario_orders_sqlite() {
  local lines
  for lines in 1 3; do
    progress "orders-sqlite: node, $lines line(s), closed loop, $CONNS conns" "$((WARMUP + DURATION))"
    closed_loop "orders-sqlite-$lines" "$port_sqlite" order.lua BENCH_LINES="$lines"
    progress_done
    wrk_row "orders SQLite $lines line(s)" "$res/orders-sqlite-$lines.wrk" "-" "-" "-" "-" \
      "absolute (WAL, synchronous=FULL)"
  done
}

scenario_hot() {
  if [ -z "${spread_pg_1:-}" ]; then
    progress "hot: node, spread 1 line (reference), closed loop, $CONNS conns" "$((WARMUP + DURATION))"
    closed_loop orders-pg-1-hotref "$port_pg" order.lua BENCH_LINES=1
    progress_done
    spread_pg_1=$(kv ok_throughput "$res/orders-pg-1-hotref.wrk")
    wrk_row "orders PG 1 line(s), $CONNS conns, hot sku's reference" "$res/orders-pg-1-hotref.wrk" \
      "-" "-" "-" "-" "reference for hot sku"
  fi
  progress "hot: node, every order on $HOT_SKU, closed loop" "$((WARMUP + DURATION))"
  closed_loop orders-pg-hot "$port_pg" order.lua BENCH_HOT_SKU="$HOT_SKU"
  progress_done
  local hot r
  hot=$(kv ok_throughput "$res/orders-pg-hot.wrk")
  r=$(ratio "$hot" "$spread_pg_1")
  wrk_row "hot sku PG 1 line" "$res/orders-pg-hot.wrk" "spread PG 1 line" "$r" ">= 0.50" \
    "$(meets "$r >= 0.5")" "all orders on one sku"
}

scenario_micro() {
  progress "micro: actor runtime (Google Benchmark)" 60
  (cd "$work" && "$MICRO" --benchmark_out="$res/micro.json" --benchmark_out_format=json) \
    >"$res/micro.out" 2>&1 || { progress_done; tail -20 "$res/micro.out"; exit 1; }
  progress_done
  python3 "$here/report.py" micro "$res/micro.json" "$table"
}

# Cross-node entity calls: raw CAF request/response against calls routed through the cluster
# links, unbatched (cluster.batch_max = 1) and batched (256), two nodes on loopback.
CLUSTER_DURATION=${CLUSTER_DURATION:-5}
CLUSTER_WINDOW=${CLUSTER_WINDOW:-256}
scenario_cluster() {
  progress "cluster: cross-node calls (raw CAF, routed unbatched, routed batched)" $((4 * CLUSTER_DURATION + 3))
  (cd "$work" && "$CLUSTER_BENCH" "$CLUSTER_DURATION" "$CLUSTER_WINDOW" 256) >"$res/cluster.out" 2>&1 ||
    { progress_done; tail -20 "$res/cluster.out"; exit 1; }
  progress_done
  local raw1 raw unb bat
  raw1=$(grep "name=raw_caf_sequential " "$res/cluster.out" | grep -o "per_second=[0-9]*" | cut -d= -f2)
  raw=$(grep "name=raw_caf " "$res/cluster.out" | grep -o "per_second=[0-9]*" | cut -d= -f2)
  unb=$(grep "name=routed_unbatched " "$res/cluster.out" | grep -o "per_second=[0-9]*" | cut -d= -f2)
  bat=$(grep "name=routed_batched " "$res/cluster.out" | grep -o "per_second=[0-9]*" | cut -d= -f2)
  row "cluster raw CAF req/resp, 1 outstanding" "$raw1" "-" "-" "-" "0" "-" "-" "-" "-" "remote_actor proxy, no router"
  row "cluster raw CAF req/resp, $CLUSTER_WINDOW outstanding" "$raw" "-" "-" "-" "0" "-" "-" "-" "-" "remote_actor proxy, no router"
  row "cluster routed, unbatched" "$unb" "-" "-" "-" "0" "raw $CLUSTER_WINDOW" "$(ratio "$unb" "$raw")" "-" "-" "batch_max=1"
  local r1 r
  r1=$(ratio "$bat" "$raw1")
  r=$(ratio "$bat" "$raw")
  row "cluster routed, batched" "$bat" "-" "-" "-" "0" "raw 1 outstanding" "$r1" ">= 5" "$(meets "$r1 >= 5")" \
    "batch_max=256; vs raw $CLUSTER_WINDOW outstanding: $r; vs unbatched: $(ratio "$bat" "$unb")"
}

# --- main ------------------------------------------------------------------------------------------

{
  echo "date: $(date -u +%FT%TZ)"
  echo "nproc: $(nproc); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  echo "ram: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "scenarios: ${scenarios[*]}"
  echo "DURATION=$DURATION WARMUP=$WARMUP OPEN_WARMUP=$OPEN_WARMUP OPEN_DURATION=$OPEN_DURATION PGBENCH_DURATION=$PGBENCH_DURATION CONNS=$CONNS THREADS=$THREADS SKUS=$SKUS PGBENCH_CLIENTS=\"$PGBENCH_CLIENTS\" NODE_CONNS=\"$NODE_CONNS\" PG_SETTINGS=\"$PG_SETTINGS\" PG_PREWARM_WAL_MB=$PG_PREWARM_WAL_MB PG_PARENT=$PG_PARENT OPEN_SETTLE=$OPEN_SETTLE"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
} >"$res/machine.txt"
cat "$res/machine.txt" >&2

# One node at a time, so that no idle neighbour shares the two cores.
if wants stock || wants orders-sqlite; then
  start_node sqlite "sqlite:$work/sqlite/orders.db" "sqlite:$work/sqlite/inventory.db"
  if wants stock; then scenario_stock; fi
  if wants orders-sqlite; then scenario_orders_sqlite; fi
  stop "node sqlite" "$pid_sqlite"
fi
if wants orders-pg || wants hot; then
  start_pg
  start_node pg "$pg/emporium_orders" "$pg/emporium_inventory"
  if wants orders-pg; then scenario_orders_pg; fi
  if wants hot; then scenario_hot; fi
  stop "node pg" "$pid_pg"
fi
if wants micro; then scenario_micro; fi
if wants cluster; then scenario_cluster; fi

echo >&2
echo "Emporium benchmarks, $(date -u +%FT%TZ), $(nproc) cores; wrk -t$THREADS -c$CONNS -d${DURATION}s (orders on PostgreSQL: -c at each of $NODE_CONNS); results in $res"
python3 "$here/report.py" table "$table" | tee "$res/table.txt"
if [ -s "$res/commits.txt" ]; then
  echo
  echo "What the node did per request (group commit from /metrics; PostgreSQL transactions):"
  sed 's/^/  /' "$res/commits.txt"
fi
if [ -s "$res/cpu.txt" ]; then
  echo
  echo "%CPU per process in the middle of each run (top); the machine over the run (/proc/stat):"
  sed 's/^/  /' "$res/cpu.txt"
fi
