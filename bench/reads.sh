#!/bin/bash
# Reads of stored entities against a fresh node, wrk's requests/s and latency with 8 connections:
#   list:  a customer's order list, GET /v1/orders?limit=100, with 150 three-line orders stored;
#   order: GET /v1/orders/ID over 300 three-line orders with actors.terminal_passivate_ms at 0, so
#          that most reads find their order stopped and load it from the database;
#   item:  GET /v1/inventory/SKU over 5,000 items with actors.idle_passivate_ms at 0, so that most
#          reads find their item stopped and load it (60 of them hold a committed reservation).
# The activations of the entity read are counted from /metrics.
#   bench/reads.sh list|order|item             SQLite files in a temporary directory
#   BENCH_ORDERS_DB=postgresql://... BENCH_INVENTORY_DB=postgresql://... bench/reads.sh ...
# (two empty PostgreSQL databases: their tables are made at start, and rows already there would
# change the figures). BENCH_BIN: the node's binary (build/emporium). Needs wrk, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk curl python3; do
  command -v $tool >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
[ $# -eq 1 ] || { echo "usage: $0 list|order|item" >&2; exit 2; }
if { [ -n "${BENCH_ORDERS_DB:-}" ] && [ -z "${BENCH_INVENTORY_DB:-}" ]; } ||
   { [ -z "${BENCH_ORDERS_DB:-}" ] && [ -n "${BENCH_INVENTORY_DB:-}" ]; }; then
  echo "BENCH_ORDERS_DB and BENCH_INVENTORY_DB: both, or neither (SQLite)" >&2
  exit 2
fi
items_n=3 type=order
case "${1:-}" in
  list) orders_n=150 passivate=() script=list.lua what="GET /v1/orders?limit=100" ;;
  order) orders_n=300 passivate=(--set actors.terminal_passivate_ms=0) script=get_orders.lua
         what="GET /v1/orders/ID, most reads loading their order" ;;
  item) orders_n=20 items_n=5000 passivate=(--set actors.idle_passivate_ms=0) script=stock.lua
        type=inventory what="GET /v1/inventory/SKU, most reads loading their item" ;;
  *) echo "usage: $0 list|order|item" >&2; exit 2 ;;
esac
secret=orderreadsbenchsecret0123456789
port=${BENCH_PORT:-18182}
bin=${BENCH_BIN:-build/emporium}
tmp=$(mktemp -d)
orders=${BENCH_ORDERS_DB:-sqlite:$tmp/orders.db}
inventory=${BENCH_INVENTORY_DB:-sqlite:$tmp/inventory.db}
"$bin" serve --set http.listen=127.0.0.1:$port --set database.orders="$orders" \
  --set database.inventory="$inventory" --set rate_limit.rate=1000000 \
  --set rate_limit.burst=1000000 "${passivate[@]}" \
  --set auth.hs256_secret=$secret >"$tmp/node.log" 2>&1 &
node=$!
trap 'kill $node 2>/dev/null || true; wait $node 2>/dev/null || true; rm -rf "$tmp"' EXIT
ready=0
for _ in $(seq 100); do
  kill -0 $node 2>/dev/null || break  # exited (its port taken, say): not some other server's answer
  curl -sf http://127.0.0.1:$port/readyz >/dev/null && ready=1 && break
  sleep 0.1
done
if [ $ready = 0 ]; then echo "the node did not start:" >&2; tail -20 "$tmp/node.log" >&2; exit 1; fi
admin=$("$bin" token --set auth.hs256_secret=$secret --sub ops --scope admin)
export BENCH_TOKEN BENCH_LUA_DIR="$PWD/bench/wrk" BENCH_IDS_FILE="$tmp/ids" BENCH_SKUS=$items_n
BENCH_TOKEN=$("$bin" token --set auth.hs256_secret=$secret --sub bench --scope "orders:read orders:write inventory:read")
python3 - "$port" "$admin" "$BENCH_TOKEN" "$BENCH_IDS_FILE" "$orders_n" "$items_n" <<'PY'
import http.client, json, sys
port, admin, customer, ids_file, n, items = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def call(method, path, body, token):
    conn.request(method, path, json.dumps(body), {"Authorization": "Bearer " + token,
                                                  "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()
for i in range(items):
    status, body = call("PUT", "/v1/inventory/sku-%d" % i,
                        {"name": "item %d" % i, "price_cents": 100 + i, "on_hand": 100000}, admin)
    assert status == 201, (status, body)  # a new item: the databases were empty
card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123"}
ids = []
for k in range(n):  # three lines each, over the first items
    skus = ["sku-%d" % ((3 * k + i) % items) for i in range(3)]
    status, body = call("POST", "/v1/orders", {"items": [{"sku": s, "quantity": 1} for s in skus],
                                               "payment": {"card": card}}, customer)
    assert status == 201, (status, body)
    ids.append(json.loads(body)["id"])
status, body = call("GET", "/v1/orders?limit=100", None, customer)
page = json.loads(body)
assert status == 200 and len(page["data"]) == min(n, 100), body[:300]
assert all(len(o["items"]) == 3 and o["payment"]["status"] == "captured" for o in page["data"]), body[:300]
with open(ids_file, "w") as f:
    f.write("\n".join(ids) + "\n")
PY
wrk -t1 -c8 -d3s -s "bench/wrk/$script" http://127.0.0.1:$port >"$tmp/warm.out" 2>&1 ||
  { echo "wrk failed:" >&2; cat "$tmp/warm.out" >&2; exit 1; }
backend=SQLite
[ -n "${BENCH_ORDERS_DB:-}" ] && backend=PostgreSQL  # (both or neither: checked above)
activations() {
  local n
  n=$(curl -sf -H "Authorization: Bearer $admin" http://127.0.0.1:$port/metrics |
    awk -v t="$type" '$1 == "emporium_activations_total{type=\"" t "\"}" {print $2}') || true
  [[ $n =~ ^[0-9]+$ ]] || { echo "no emporium_activations_total{type=\"$type\"} in /metrics" >&2; exit 1; }
  echo "$n"
}
before=$(activations)
echo "$what ($bin, $backend):"
wrk -t1 -c8 -d10s -s "bench/wrk/$script" http://127.0.0.1:$port >"$tmp/wrk.out" 2>&1 ||
  { echo "wrk failed:" >&2; cat "$tmp/wrk.out" >&2; exit 1; }
grep -E "Requests/sec|Latency|Non-2xx|Socket errors" "$tmp/wrk.out" | sed 's/^/  /'
if grep -qE "Non-2xx|Socket errors" "$tmp/wrk.out"; then
  echo "errors or answers other than 2xx: not a measure of reads" >&2
  tail -20 "$tmp/node.log" >&2
  exit 1
fi
requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.out")
after=$(activations)
echo "  $type activations: $((after - before)) for $requests requests"
