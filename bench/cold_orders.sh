#!/bin/bash
# Reads of finished orders that are not in memory (GET /v1/orders/ID over 300 three-line orders,
# with actors.terminal_passivate_ms at 0, so that each read activates its order and loads it from
# the database) against a fresh node: wrk's requests/s and latency, with 8 connections.
#   bench/cold_orders.sh                       SQLite files in a temporary directory
#   BENCH_ORDERS_DB=postgresql://... BENCH_INVENTORY_DB=postgresql://... bench/cold_orders.sh
# (two empty PostgreSQL databases; their tables are made at start). BENCH_BIN: the node's binary
# (build/emporium). Needs wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
secret=coldordersbenchsecret0123456789
port=${BENCH_PORT:-18183}
bin=${BENCH_BIN:-build/emporium}
tmp=$(mktemp -d)
orders=${BENCH_ORDERS_DB:-sqlite:$tmp/orders.db}
inventory=${BENCH_INVENTORY_DB:-sqlite:$tmp/inventory.db}
"$bin" serve --set http.listen=127.0.0.1:$port --set database.orders="$orders" \
  --set database.inventory="$inventory" --set rate_limit.rate=1000000 \
  --set rate_limit.burst=1000000 --set actors.terminal_passivate_ms=0 \
  --set auth.hs256_secret=$secret >"$tmp/node.log" 2>&1 &
node=$!
trap 'kill $node 2>/dev/null; wait $node 2>/dev/null; rm -rf "$tmp"' EXIT
ready=0
for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && ready=1 && break; sleep 0.1; done
if [ $ready = 0 ]; then echo "the node did not start: $tmp/node.log" >&2; exit 1; fi
admin=$("$bin" token --set auth.hs256_secret=$secret --sub ops --scope admin)
export BENCH_TOKEN BENCH_LUA_DIR="$PWD/bench/wrk" BENCH_IDS_FILE="$tmp/ids"
BENCH_TOKEN=$("$bin" token --set auth.hs256_secret=$secret --sub bench --scope "orders:read orders:write")
python3 - "$port" "$admin" "$BENCH_TOKEN" "$BENCH_IDS_FILE" <<'PY'
import http.client, json, sys
port, admin, customer, ids_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def call(method, path, body, token):
    conn.request(method, path, json.dumps(body), {"Authorization": "Bearer " + token,
                                                  "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()
for i in range(3):
    status, body = call("PUT", "/v1/inventory/cold-%d" % i,
                        {"name": "item %d" % i, "price_cents": 100 + i, "on_hand": 100000}, admin)
    assert status in (200, 201), (status, body)
card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
ids = []
for _ in range(300):
    status, body = call("POST", "/v1/orders", {"items": [{"sku": "cold-%d" % i, "quantity": 1}
                                                         for i in range(3)],
                                               "payment": {"card": card}}, customer)
    assert status == 201, (status, body)
    ids.append(json.loads(body)["id"])
status, body = call("GET", "/v1/orders/" + ids[0], None, customer)
order = json.loads(body)
assert status == 200 and len(order["items"]) == 3 and order["payment"]["status"] == "captured", body[:300]
with open(ids_file, "w") as f:
    f.write("\n".join(ids) + "\n")
PY
wrk -t1 -c8 -d3s -s bench/wrk/get_orders.lua http://127.0.0.1:$port >/dev/null 2>&1  # warm-up
backend=SQLite
[ -n "${BENCH_ORDERS_DB:-}" ] && backend=PostgreSQL
echo "GET /v1/orders/ID, each order loaded ($bin, $backend):"
wrk -t1 -c8 -d10s -s bench/wrk/get_orders.lua http://127.0.0.1:$port 2>&1 |
  grep -E "Requests/sec|Latency|Non-2xx" | sed 's/^/  /'
