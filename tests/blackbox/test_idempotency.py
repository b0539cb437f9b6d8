#!/usr/bin/python3
"""Idempotency-Key on POST /v1/orders: replay, mismatch 422, per-customer keys, in-flight 409."""

import json
import threading
import time
import unittest

import harness
from harness import DECLINED, TRANSIENT, request, unique

NODE = None


def setUpModule():
    global NODE
    # The transient card takes 1.5 s + 3 s of backoff (2 retries) before it fails; the
    # placement timeout is longer than that so the first request answers 402, not 202.
    NODE = harness.start_node({"payment.retry_backoff_ms": "1500",
                               "payment.retries_max": "2",
                               "orders.placement_timeout_ms": "20000"})


def tearDownModule():
    harness.stop_node(NODE)


SCOPES = "orders:write orders:read inventory:read"


class IdempotencyTest(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        self.cust_id = unique("cust")
        self.cust = NODE.token(self.cust_id, SCOPES)

    def post(self, tok, body, key):
        return request(NODE, "POST", "/v1/orders", body, token=tok, headers={"Idempotency-Key": key})

    def replayed(self, r):
        return r.headers.get("idempotent-replayed", "").strip().lower() == "true"

    def test_same_key_same_body_replays(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 2)])).encode()
        first = self.post(self.cust, body, key)
        self.assertStatus(first, 201)
        self.assertFalse(self.replayed(first), "the first response is no replay")
        for _ in range(2):
            again = self.post(self.cust, body, key)
            self.assertStatus(again, 201)
            self.assertTrue(self.replayed(again), "missing Idempotent-Replayed: true (%s)" % again.headers)
            self.assertEqual(again.json, first.json)
        orders = self.list_all_orders(NODE, self.cust)
        self.assertEqual([o["id"] for o in orders], [first.json["id"]])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 2, 8), "the replay reserved again")

    def test_key_of_255_characters_works_and_256_is_refused(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        body = json.dumps(harness.order_body([(sku, 1)])).encode()
        key = (unique("k") + "~" * 255)[:255]
        first = self.post(self.cust, body, key)
        self.assertStatus(first, 201)
        again = self.post(self.cust, body, key)
        self.assertStatus(again, 201)
        self.assertTrue(self.replayed(again))
        for bad in (key + "x", "", "with space", "tab\tkey"):
            with self.subTest(key_length=len(bad)):
                r = self.post(self.cust, body, bad)
                self.assertProblem(r, 400)
        self.assertEqual([o["id"] for o in self.list_all_orders(NODE, self.cust)], [first.json["id"]])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 1, 9))

    def test_replay_of_failure(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 1)], card=DECLINED)).encode()
        first = self.post(self.cust, body, key)
        self.assertStatus(first, 402)
        again = self.post(self.cust, body, key)
        self.assertStatus(again, 402)
        self.assertTrue(self.replayed(again))
        self.assertEqual(again.json, first.json)
        # The first response again: an order, not a problem.
        self.assertEqual(first.headers["content-type"], "application/json")
        self.assertEqual(again.headers["content-type"], "application/json")
        self.assertEqual(len(self.list_all_orders(NODE, self.cust)), 1)

    def test_replay_keeps_the_content_type_of_an_order(self):
        key = unique("key")
        body = json.dumps(harness.order_body([(unique("no-such-sku"), 1)])).encode()
        first = self.post(self.cust, body, key)
        self.assertStatus(first, 409)  # rejected: the order, as its body
        again = self.post(self.cust, body, key)
        self.assertStatus(again, 409)
        self.assertTrue(self.replayed(again))
        self.assertEqual(again.json, first.json)
        self.assertEqual(again.json["status"], "rejected")
        self.assertEqual(again.headers["content-type"], "application/json")

    def test_an_invalid_request_records_nothing_under_its_key(self):
        # API.md: "Invalid body: 400, nothing recorded": not even the key, so the corrected
        # request may use it.
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        payment = harness.order_body([(sku, 1)])["payment"]
        for bad in (json.dumps({"items": [], "payment": payment}).encode(), b"{not json",
                    json.dumps({"items": [{"sku": sku, "quantity": 0}], "payment": payment}).encode()):
            first = self.post(self.cust, bad, key)
            self.assertProblem(first, 400)
            again = self.post(self.cust, bad, key)
            self.assertProblem(again, 400)
            self.assertFalse(self.replayed(again))
        fixed = self.post(self.cust, harness.order_body([(sku, 1)]), key)
        self.assertStatus(fixed, 201)
        self.assertFalse(self.replayed(fixed))
        replay = self.post(self.cust, harness.order_body([(sku, 1)]), key)
        self.assertStatus(replay, 201)
        self.assertTrue(self.replayed(replay))
        self.assertEqual(replay.json["id"], fixed.json["id"])
        # A corrected body that differs from the stored one is still refused once the key is used.
        self.assertProblem(self.post(self.cust, harness.order_body([(sku, 2)]), key), 422)
        self.assertEqual(len(self.list_all_orders(NODE, self.cust)), 1)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 1, 9))

    def test_same_key_other_body_422(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        first = self.post(self.cust, harness.order_body([(sku, 1)]), key)
        self.assertStatus(first, 201)
        other = self.post(self.cust, harness.order_body([(sku, 3)]), key)
        self.assertProblem(other, 422)
        self.assertFalse(self.replayed(other))
        self.assertEqual(len(self.list_all_orders(NODE, self.cust)), 1)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 1, 9))

    def test_same_key_other_customer_independent(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 1)])).encode()
        a = self.post(self.cust, body, key)
        self.assertStatus(a, 201)
        bob_id = unique("bob")
        bob = NODE.token(bob_id, SCOPES)
        b = self.post(bob, body, key)
        self.assertStatus(b, 201)
        self.assertFalse(self.replayed(b), "another customer's key must not replay")
        self.assertNotEqual(a.json["id"], b.json["id"])
        self.assertEqual(b.json["customer_id"], bob_id)
        # A different body under the key is 422 against each one's own first request.
        other = json.dumps(harness.order_body([(sku, 2)])).encode()
        self.assertProblem(self.post(bob, other, key), 422)
        self.assertProblem(self.post(self.cust, other, key), 422)
        replay = self.post(bob, body, key)
        self.assertTrue(self.replayed(replay))
        self.assertEqual(replay.json["id"], b.json["id"])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 2, 8))

    def test_in_flight_409_then_replay(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 1)], card=TRANSIENT)).encode()
        result = {}

        def first():
            try:
                result["r"] = self.post(self.cust, body, key)
            except Exception as e:  # reported below
                result["e"] = e

        t = threading.Thread(target=first)
        t0 = time.time()
        t.start()
        time.sleep(0.7)
        self.assertTrue(t.is_alive(), "the transient-card request should still be running")
        second = self.post(self.cust, body, key)
        still_running = t.is_alive()
        t.join(60)
        self.assertNotIn("e", result, result.get("e"))
        self.assertTrue(still_running, "first request finished before the second was answered "
                        "(%.1f s)" % (time.time() - t0))
        self.assertProblem(second, 409)
        self.assertFalse(self.replayed(second))
        r1 = result["r"]
        self.assertStatus(r1, 402)
        self.assertEqual(r1.json["failure_reason"], "payment_unavailable")
        # The 409 was not stored under the key: once done, the key replays the first answer.
        third = self.post(self.cust, body, key)
        self.assertStatus(third, 402)
        self.assertTrue(self.replayed(third))
        self.assertEqual(third.json, r1.json)
        self.assertEqual(len(self.list_all_orders(NODE, self.cust)), 1)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10))

    def test_concurrent_same_key_one_order(self):
        sku = self.create_item(NODE, self.admin, on_hand=100)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 1)])).encode()
        results, errors = [], []
        barrier = threading.Barrier(10)

        def go():
            try:
                barrier.wait(10)
                results.append(self.post(self.cust, body, key))
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=go) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 10)
        statuses = sorted(r.status for r in results)
        self.assertTrue(set(statuses) <= {201, 409}, statuses)
        created = [r for r in results if r.status == 201]
        self.assertTrue(created, statuses)
        self.assertEqual(len({r.json["id"] for r in created}), 1, "one key made several orders")
        self.assertEqual(sum(1 for r in created if not self.replayed(r)), 1,
                         "exactly one 201 is the original")
        self.assertEqual(len(self.list_all_orders(NODE, self.cust)), 1)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (100, 1, 99))


class ValidThenInvalidTest(harness.NodeTestCase):
    """A key's request that was valid when first sent replays its answer even if the same request
    would be refused now (a limit lowered since, as a card expires): the key is looked up, not the
    request judged again. An invalid request under an unused key records nothing."""

    def setUp(self):
        self.node = harness.Node()
        self.addCleanup(harness.stop_node, self.node)
        self.node.start()

    def test_a_replay_is_not_refused_by_a_limit_lowered_since(self):
        node = self.node
        admin = node.token("admin-ops", "admin")
        cust = node.token(unique("cust"), SCOPES)
        sku = self.create_item(node, admin, on_hand=10)
        key = unique("key")
        body = json.dumps(harness.order_body([(sku, 5)])).encode()
        first = request(node, "POST", "/v1/orders", body, token=cust, headers={"Idempotency-Key": key})
        self.assertStatus(first, 201)
        node.extra["orders.quantity_max"] = "2"
        node.restart()
        again = request(node, "POST", "/v1/orders", body, token=cust, headers={"Idempotency-Key": key})
        self.assertStatus(again, 201)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        self.assertEqual(again.json["id"], first.json["id"])
        # Another body under the key: 422 as before; under a fresh key: 400, nothing recorded.
        other = json.dumps(harness.order_body([(sku, 4)])).encode()
        self.assertProblem(request(node, "POST", "/v1/orders", other, token=cust,
                                   headers={"Idempotency-Key": key}), 422)
        fresh = unique("key")
        self.assertProblem(request(node, "POST", "/v1/orders", body, token=cust,
                                   headers={"Idempotency-Key": fresh}), 400)
        fixed = json.dumps(harness.order_body([(sku, 2)])).encode()
        placed = request(node, "POST", "/v1/orders", fixed, token=cust, headers={"Idempotency-Key": fresh})
        self.assertStatus(placed, 201)
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 7, 3))


if __name__ == "__main__":
    unittest.main()
