#!/usr/bin/env bash
# A/B on a running PostgreSQL (AB_PG, default postgresql://postgres@127.0.0.1:54329; a server of
# your own: initdb, loopback only). For each variant in turn, ROUNDS times: fresh databases, an
# optional SQL file applied to each after `emporium migrate`, a node, 1,000 skus seeded, a 5-s
# warm-up and a 10-s closed loop (wrk), then an open loop at RATE (5 s warm-up, 12 s measured),
# with the CPU PostgreSQL and the node took during it and the HOT share of each table's updates.
# Needs emporium-openloop from a bench build (/tmp/build-bench-suite, made by `make bench-*`).
# usage: bench/ab.sh ROUNDS RATE LINES "BIN|ORDERS_SQL:INVENTORY_SQL" ...   (none: no SQL file)
#   e.g. bench/ab.sh 3 2000 1 "/tmp/old/emporium|none:none" "build/emporium|none:none"
set -u
rounds=$1 rate=$2 lines=$3; shift 3
variants=("$@")
here=$(cd "$(dirname "$0")" && pwd)
OPENLOOP=/tmp/build-bench-suite/emporium-openloop
PG=${AB_PG:-postgresql://postgres@127.0.0.1:54329}
PGPORT=${PG##*:}
SECRET=ab-secret-$RANDOM
card='"payment":{"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"123"}}'
items='{"sku":"sku-{r}","quantity":1}'; [ "$lines" = 3 ] && items="$items,$items,$items"
body="{\"items\":[$items],$card}"
pgcpu() { local t=0; for p in $(pgrep -u postgres); do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
for r in $(seq "$rounds"); do
  for v in "${variants[@]}"; do
    b=${v%%|*}; v=${v#*|}; vo=${v%%:*}; vi=${v##*:}
    b=$(readlink -f "$b")
    w=$(mktemp -d /tmp/ab.XXXX)
    psql -q -h 127.0.0.1 -p $PGPORT -U postgres -c "DROP DATABASE IF EXISTS ab_o" -c "DROP DATABASE IF EXISTS ab_i" -c "CREATE DATABASE ab_o" -c "CREATE DATABASE ab_i" postgres >/dev/null
    (cd "$w" && "$b" migrate --set database.orders=$PG/ab_o --set database.inventory=$PG/ab_i --set node.data_dir="$w") >/dev/null 2>&1
    [ "$vo" != none ] && psql -q -h 127.0.0.1 -p $PGPORT -U postgres -f "$vo" ab_o >/dev/null
    [ "$vi" != none ] && psql -q -h 127.0.0.1 -p $PGPORT -U postgres -f "$vi" ab_i >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    tok() { (cd "$w" && "$b" token --sub "$1" --scope "$2" --ttl 7200 --set auth.hs256_secret="$SECRET"); }
    CUSTOMER=$(tok bench "orders:write orders:read inventory:read"); ADMIN=$(tok bench-admin admin)
    (cd "$w" && exec "$b" serve --set http.listen=127.0.0.1:$port --set database.orders=$PG/ab_o \
       --set database.inventory=$PG/ab_i --set node.data_dir="$w" --set auth.hs256_secret="$SECRET" \
       --set rate_limit.rate=1e9 --set rate_limit.burst=1e9) > "$w/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do curl -sf http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.1; done
    python3 $here/seed.py 127.0.0.1:$port "$ADMIN" "$CUSTOMER" 1000 hot-sku > /dev/null
    export BENCH_TOKEN=$CUSTOMER BENCH_SKUS=1000 BENCH_LINES=$lines BENCH_LUA_DIR=$here/wrk
    wrk -t2 -c64 -d5s -s $here/wrk/order.lua http://127.0.0.1:$port > /dev/null 2>&1
    closed=$(wrk -t2 -c64 -d10s -s $here/wrk/order.lua http://127.0.0.1:$port 2>&1 | grep -o "ok_throughput=[0-9.]*")
    $OPENLOOP --host 127.0.0.1 --port $port --rate $rate --duration-s 5 --connections 64 --range 1000 \
      --method POST --path /v1/orders --body "$body" --header "Authorization: Bearer $CUSTOMER" > /dev/null 2>&1
    s0=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5, $9}' /proc/stat); g0=$(pgcpu); n0=$(awk '{print $14+$15}' /proc/$pid/stat)
    open=$($OPENLOOP --host 127.0.0.1 --port $port --rate $rate --duration-s 12 --connections 64 --range 1000 \
      --method POST --path /v1/orders --body "$body" --header "Authorization: Bearer $CUSTOMER" 2>&1 | tr '\n' ' ')
    s1=$(awk '/^cpu /{print $2+$3+$4+$6+$7+$8, $5, $9}' /proc/stat); g1=$(pgcpu); n1=$(awk '{print $14+$15}' /proc/$pid/stat)
    busy=$(python3 -c "a='$s0'.split();b='$s1'.split();d=[int(y)-int(x) for x,y in zip(a,b)];print('%.0f%% busy, steal %.1f%%'%(100*d[0]/(d[0]+d[1]+d[2]),100*d[2]/(d[0]+d[1]+d[2])))")
    p50=$(grep -o 'p50_ms=[0-9.]*' <<<"$open"); p99=$(grep -o 'p99_ms=[0-9.]*' <<<"$open"); err=$(grep -o 'errors=[0-9]*' <<<"$open" | head -1)
    echo "$(date +%H:%M:%S) $(basename $b) $(basename $vo)/$(basename $vi) lines=$lines closed=$closed/s open@$rate: $p50 $p99 $err pg=$((g1-g0))cs node=$((n1-n0))cs ($busy)"
    psql -At -h 127.0.0.1 -p $PGPORT -U postgres -c "select relname,n_tup_upd,n_tup_hot_upd from pg_stat_user_tables where n_tup_upd>0" ab_o | tr "\n" " "; psql -At -h 127.0.0.1 -p $PGPORT -U postgres -c "select relname,n_tup_upd,n_tup_hot_upd from pg_stat_user_tables where n_tup_upd>0" ab_i | tr "\n" " "; echo
    kill $pid; wait $pid 2>/dev/null
    rm -rf "$w"
  done
done
