#!/usr/bin/python3
"""No card number or cvc in any response, log line, metric, actor view or database file."""

import hashlib
import json
import os
import re
import subprocess
import unittest

import harness
from harness import ALL_TEST_CARDS, DECLINED, MASTERCARD, NO_FUNDS, TRANSIENT, VISA, request, unique

NODE = None


def setUpModule():
    global NODE
    NODE = harness.start_node({"payment.retry_backoff_ms": "10"})


def tearDownModule():
    harness.stop_node(NODE)


SCOPES = "orders:write orders:read inventory:read"

# Distinct, unusual cvcs per card, so that finding one is meaningful.
CVCS = {VISA: "987", MASTERCARD: "9876", DECLINED: "8642", NO_FUNDS: "7531", TRANSIENT: "864"}
EXPECTED = {VISA: 201, MASTERCARD: 201, DECLINED: 402, NO_FUNDS: 402, TRANSIENT: 402}


# SHA-256 digests (hex) of the request bodies sent with an Idempotency-Key: a plain digest of a
# body that holds a card number and cvc is card data too (it can be brute-forced).
BODY_DIGESTS = []


def leaks(blob):
    """Card data found in bytes: full card numbers anywhere; a cvc value next to the word cvc
    (within 64 bytes either side) or as a quoted string; a plain digest of a body with a card. A
    bare 3-4 digit run is not reported on its own: it occurs by chance in timestamps, ids and
    page numbers."""
    found = []
    for digest in BODY_DIGESTS:
        if digest.encode() in blob:
            found.append("digest of a request body with a card (%s...)" % digest[:12])
    for number in ALL_TEST_CARDS:
        if number.encode() in blob:
            found.append("card number %s" % number)
    for cvc in CVCS.values():
        v = re.escape(cvc.encode())
        near = rb"(?is)cvc.{0,64}(?<![0-9])" + v + rb"(?![0-9])|(?<![0-9])" + v + rb"(?![0-9]).{0,64}cvc"
        if re.search(near, blob):
            found.append("cvc %s next to 'cvc'" % cvc)
        if re.search(rb'["\']' + v + rb'["\']', blob):
            found.append("quoted cvc %s" % cvc)
    return found


class PciTest(harness.NodeTestCase):

    def setUp(self):
        self.responses = []

    def call(self, *args, **kw):
        r = request(NODE, *args, **kw)
        self.responses.append(("%s %s" % (args[0], args[1]), r))
        return r

    def scan_files(self, root):
        problems = []
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as f:
                        blob = f.read()
                except OSError:
                    continue
                for leak in leaks(blob):
                    problems.append("%s: %s" % (path, leak))
        return problems

    def scan_postgres(self):
        problems = []
        for url in (NODE.orders_url, NODE.inventory_url):
            r = subprocess.run(["pg_dump", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            self.assertEqual(r.returncode, 0, "pg_dump failed: %s" % r.stderr.decode(errors="replace"))
            self.assertIn(b"CREATE TABLE", r.stdout, "pg_dump of %s shows no tables" % url)
            problems += ["pg_dump %s: %s" % (url, leak) for leak in leaks(r.stdout)]
        return problems

    def test_no_card_data_anywhere(self):
        admin = NODE.token("admin-ops", "admin")
        cust_id = unique("cust")
        cust = NODE.token(cust_id, SCOPES)
        sku = self.create_item(NODE, admin, on_hand=100)
        order_ids, payment_ids = [], []
        for card, cvc in CVCS.items():
            with self.subTest(card=card):
                body = json.dumps(harness.order_body([(sku, 1)], card=card, cvc=cvc)).encode()
                BODY_DIGESTS.append(hashlib.sha256(body).hexdigest())
                key = unique("key")
                r = self.call("POST", "/v1/orders", body, token=cust, headers={"Idempotency-Key": key})
                self.assertStatus(r, EXPECTED[card])
                self.assertEqual(r.json["payment"]["last4"], card[-4:])
                order_ids.append(r.json["id"])
                payment_ids.append(r.json["payment"]["id"])
                # a replay goes through the stored response
                r2 = self.call("POST", "/v1/orders", body, token=cust, headers={"Idempotency-Key": key})
                self.assertStatus(r2, EXPECTED[card])
        # refunds touch the payment again
        for oid in order_ids[:2]:
            self.assertStatus(self.call("POST", "/v1/orders/%s/cancel" % oid, token=cust), 200)
        # a rejected body carrying a real card number must not echo it (nor log it)
        bad = harness.order_body([(sku, 1)], card=VISA, cvc="987", exp_year=2020)
        self.assertStatus(self.call("POST", "/v1/orders", bad, token=cust), 400)
        bad = harness.order_body([(sku, 0)], card=MASTERCARD, cvc="9876")
        self.assertStatus(self.call("POST", "/v1/orders", bad, token=cust), 400)

        # Each view scanned must have answered: a 404 or a 503 would scan nothing.
        for oid in order_ids:
            self.assertStatus(self.call("GET", "/v1/orders/" + oid, token=cust), 200)
            self.assertStatus(self.call("GET", "/admin/actors/order/" + oid, token=admin), 200)
        self.assertTrue(payment_ids)
        for pid in payment_ids:
            self.assertStatus(self.call("GET", "/admin/actors/payment/" + pid, token=admin), 200)
        self.assertStatus(self.call("GET", "/v1/orders?limit=100", token=cust), 200)
        self.assertStatus(self.call("GET", "/admin/actors?type=payment&limit=100", token=admin), 200)
        self.assertStatus(self.call("GET", "/admin/actors?type=order&limit=100", token=admin), 200)
        self.assertStatus(self.call("GET", "/admin/cluster", token=admin), 200)
        self.assertStatus(self.call("GET", "/admin", token=admin), 200)
        self.assertStatus(self.call("GET", "/metrics"), 200)

        problems = []
        for what, r in self.responses:
            for leak in leaks(r.body):
                problems.append("response to %s: %s" % (what, leak))
            if b"\"cvc\"" in r.body.lower() and r.status != 400:  # a key, not letters in an id
                problems.append("response to %s mentions cvc" % what)
            for k, v in r.headers.items():
                for leak in leaks(v.encode("utf-8", errors="replace")):
                    problems.append("header %s of %s: %s" % (k, what, leak))

        # files while running (SQLite -wal/-shm included), then after a clean stop
        problems += self.scan_files(NODE.tmpdir)
        if harness.BACKEND == "postgres":
            problems += self.scan_postgres()
        NODE.stop()
        problems += ["after stop: " + p for p in self.scan_files(NODE.tmpdir)]
        files = [f for _, _, fs in os.walk(NODE.tmpdir) for f in fs]
        self.assertIn("node.log", files)
        if harness.BACKEND == "sqlite":
            self.assertTrue(any(f.startswith("orders.db") for f in files), "no orders database in %s" % files)
        self.assertEqual(problems, [])
        NODE.start()  # leave the node as the module found it


if __name__ == "__main__":
    unittest.main()
