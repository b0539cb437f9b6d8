#!/usr/bin/env bash
# `make run`: one node on SQLite files under ./data, with the URL and ready-to-use tokens printed.
set -euo pipefail
bin=${1:-build/emporium}
listen=${EMPORIUM_HTTP_LISTEN:-127.0.0.1:8080}
mkdir -p data
customer=$("$bin" token --sub alice --scope "orders:write orders:read inventory:read" --ttl 86400)
admin=$("$bin" token --sub admin --scope admin --ttl 86400)
cat <<MSG

Emporium node on http://$listen  (SQLite files under ./data; Ctrl-C stops it)

  customer token (alice):  export CUSTOMER=$customer
  admin token:             export ADMIN=$admin

  curl -H "Authorization: Bearer \$ADMIN" http://$listen/v1/inventory/sku-1

MSG
exec "$bin" serve --set "http.listen=$listen"
