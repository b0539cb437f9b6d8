#!/usr/bin/env python3
"""Creates the benchmark's items on a running node (PUT /v1/inventory/{sku}, admin token):
sku-0 .. sku-(N-1) and one hot sku, each with plenty of stock, over a few keep-alive connections.
Prints the body a customer's stock check of sku-(N/2) gets, for the nginx ceiling's fixed body.

usage: seed.py HOST:PORT ADMIN_TOKEN CUSTOMER_TOKEN SKUS HOT_SKU
"""
import http.client
import json
import sys
import threading

CONNECTIONS = 8
ON_HAND = 1_000_000_000  # never runs out during a run: no order is rejected for stock


def put_items(address, token, skus, failures):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for sku in skus:
        body = json.dumps({"name": "Bench mug", "price_cents": 1999, "on_hand": ON_HAND})
        conn.request("PUT", f"/v1/inventory/{sku}", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status not in (200, 201):
            failures.append(f"{sku}: {resp.status}")
    conn.close()


def main():
    address, admin, customer, count, hot = sys.argv[1:6]
    skus = [f"sku-{i}" for i in range(int(count))] + [hot]
    failures = []
    threads = [
        threading.Thread(target=put_items, args=(address, admin, skus[i::CONNECTIONS], failures))
        for i in range(CONNECTIONS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit("seed failed: " + ", ".join(failures[:5]))
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", f"/v1/inventory/sku-{int(count) // 2}",
                 headers={"Authorization": f"Bearer {customer}"})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"stock check after seeding: {resp.status} {body!r}")
    sys.stdout.write(body.decode())


if __name__ == "__main__":
    main()
