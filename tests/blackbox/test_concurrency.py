#!/usr/bin/python3
"""Concurrent orders never oversell and never leak reservations (sqlite or postgres backend,
whichever EMPORIUM_TEST_BACKEND says)."""

import threading
import unittest

import harness
from harness import request, unique

NODE = None


def setUpModule():
    global NODE
    # Several connections per PostgreSQL database (the default is one): entities spread over
    # them, and the invariants must hold all the same. SQLite ignores it.
    NODE = harness.start_node({"database.connections": "3"})


def tearDownModule():
    harness.stop_node(NODE)


SCOPES = "orders:write orders:read inventory:read"


def hammer(threads, per_thread, work):
    """Runs work(thread_index, i) threads x per_thread times, threads released together.
    Returns (results, errors)."""
    results, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(ti):
        try:
            barrier.wait(30)
        except threading.BrokenBarrierError as e:
            with lock:
                errors.append(e)
            return
        for i in range(per_thread):
            try:
                r = work(ti, i)
                with lock:
                    results.append(r)
            except Exception as e:
                with lock:
                    errors.append(e)

    ts = [threading.Thread(target=run, args=(ti,)) for ti in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    return results, errors


class ConcurrencyTest(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        # a handful of customers, so the race is across principals as well as within one
        self.customers = [NODE.token(unique("cust"), SCOPES) for _ in range(5)]

    def test_200_orders_for_50_units(self):
        sku = self.create_item(NODE, self.admin, on_hand=50, price_cents=700)
        body = harness.order_body([(sku, 1)])

        def work(ti, i):
            return request(NODE, "POST", "/v1/orders", body, token=self.customers[ti % 5])

        results, errors = hammer(50, 4, work)
        self.assertEqual(errors, [], "requests failed at transport level")
        self.assertEqual(len(results), 200)
        statuses = [r.status for r in results]
        self.assertEqual(statuses.count(201), 50, "201s: %d, statuses seen %s"
                         % (statuses.count(201), sorted(set(statuses))))
        self.assertEqual(statuses.count(409), 150)
        for r in results:
            if r.status == 201:
                self.assertEqual(r.json["status"], "confirmed")
            else:
                self.assertEqual(r.json["status"], "rejected")
                self.assertEqual(r.json["failure_reason"], "insufficient_stock")
        self.assertEqual(len({r.json["id"] for r in results}), 200, "order ids are not unique")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (50, 50, 0))
        self.assertEqual(self.item(NODE, self.customers[0], sku)["available"], 0)
        # the orders the customers can list agree
        confirmed = sum(1 for tok in self.customers for o in self.list_all_orders(NODE, tok)
                        if o["status"] == "confirmed")
        self.assertEqual(confirmed, 50)

    def test_multi_item_orders_all_or_nothing(self):
        scarce = self.create_item(NODE, self.admin, on_hand=30)
        plenty = self.create_item(NODE, self.admin, on_hand=1000)
        body = harness.order_body([(plenty, 2), (scarce, 1)])

        def work(ti, i):
            return request(NODE, "POST", "/v1/orders", body, token=self.customers[ti % 5])

        results, errors = hammer(40, 3, work)
        self.assertEqual(errors, [])
        statuses = [r.status for r in results]
        self.assertEqual(statuses.count(201), 30, sorted(set(statuses)))
        self.assertEqual(statuses.count(409), 90)
        self.assertEqual(self.admin_stock(NODE, self.admin, scarce), (30, 30, 0))
        # rejected orders must not keep their `plenty` part reserved
        self.assertEqual(self.admin_stock(NODE, self.admin, plenty), (1000, 60, 940))

    def test_concurrent_adjusts_and_cancels(self):
        sku = self.create_item(NODE, self.admin, on_hand=100)
        cust = self.customers[0]
        placed = []
        for _ in range(20):
            r = self.place(NODE, cust, [(sku, 2)])
            self.assertStatus(r, 201)
            placed.append(r.json["id"])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (100, 40, 60))

        def work(ti, i):
            if ti < 20:
                return request(NODE, "POST", "/v1/orders/%s/cancel" % placed[ti], token=cust)
            return request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 1}, token=self.admin)

        results, errors = hammer(60, 1, work)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(set(r.status for r in results)), [200])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (140, 0, 140))


if __name__ == "__main__":
    unittest.main()
