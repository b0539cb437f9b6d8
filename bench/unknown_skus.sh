#!/bin/bash
# Lookups of unknown skus (GET /v1/inventory/sku-N, N uniform over 1,000 skus none of which
# exists) against a fresh node, with actors.unknown_sku_ttl_ms at 0 (a database read each) and at
# the default, 1000. Prints wrk's requests/s and latency for each.
#   bench/unknown_skus.sh                       SQLite files in a temporary directory
#   BENCH_ORDERS_DB=postgresql://... BENCH_INVENTORY_DB=postgresql://... bench/unknown_skus.sh
# (two empty PostgreSQL databases; their tables are made at start). Needs build/emporium and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
secret=unknownskusbenchsecret0123456789
port=${BENCH_PORT:-18181}
for ttl in 0 1000; do
  tmp=$(mktemp -d)
  orders=${BENCH_ORDERS_DB:-sqlite:$tmp/orders.db}
  inventory=${BENCH_INVENTORY_DB:-sqlite:$tmp/inventory.db}
  build/emporium serve --set http.listen=127.0.0.1:$port --set database.orders="$orders" \
    --set database.inventory="$inventory" --set actors.unknown_sku_ttl_ms=$ttl \
    --set rate_limit.rate=1000000 --set rate_limit.burst=1000000 \
    --set auth.hs256_secret=$secret >"$tmp/node.log" 2>&1 &
  node=$!
  ready=0
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && ready=1 && break; sleep 0.1; done
  if [ $ready = 0 ]; then echo "the node did not start: $tmp/node.log" >&2; kill $node; exit 1; fi
  export BENCH_TOKEN BENCH_SKUS=1000 BENCH_LUA_DIR="$PWD/bench/wrk"
  BENCH_TOKEN=$(build/emporium token --set auth.hs256_secret=$secret --sub bench --scope inventory:read)
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BENCH_TOKEN" \
    http://127.0.0.1:$port/v1/inventory/sku-0)
  if [ "$code" != 404 ]; then echo "a lookup answered $code, not 404" >&2; kill $node; exit 1; fi
  wrk -t1 -c32 -d3s -s bench/wrk/stock.lua http://127.0.0.1:$port >/dev/null 2>&1  # warm-up
  echo "actors.unknown_sku_ttl_ms = $ttl:"
  wrk -t1 -c32 -d10s -s bench/wrk/stock.lua http://127.0.0.1:$port 2>&1 |
    grep -E "Requests/sec|Latency|Non-2xx" | sed 's/^/  /'
  kill $node; wait $node 2>/dev/null || true
  rm -rf "$tmp"
done
