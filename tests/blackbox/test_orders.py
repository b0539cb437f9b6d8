#!/usr/bin/python3
"""Orders API: placement outcomes (201/409/402/202), reading, listing, cancel and ship."""

import time
import unittest
import urllib.parse

import harness
from harness import (DECLINED, MASTERCARD, NO_FUNDS, TRANSIENT, VISA, ALL_TEST_CARDS,
                     request, unique)

NODE = None


def setUpModule():
    global NODE
    # Short backoff so the transient card's retries finish quickly.
    NODE = harness.start_node({"payment.retry_backoff_ms": "10"})


def tearDownModule():
    harness.stop_node(NODE)


CUSTOMER_SCOPES = "orders:write orders:read inventory:read"


class OrdersBase(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        self.cust_id = unique("cust")
        self.cust = NODE.token(self.cust_id, CUSTOMER_SCOPES)

    def assertNoCardData(self, r):
        for number in ALL_TEST_CARDS:
            self.assertNotIn(number.encode(), r.body, "full card number in a response")
        # as a JSON key: a random id may hold the letters "cvc" by chance
        self.assertNotIn(b"\"cvc\"", r.body.lower(), "cvc in a response")


class PlacementTest(OrdersBase):

    def test_place_confirmed_201(self):
        sku = self.create_item(NODE, self.admin, on_hand=10, price_cents=1999)
        r = self.place(NODE, self.cust, [(sku, 2)], card=VISA, cvc="321")
        self.assertStatus(r, 201)
        self.assertNoCardData(r)
        o = r.json
        self.assertOrderShape(o, customer=self.cust_id)
        self.assertEqual(o["status"], "confirmed")
        self.assertIsNone(o["failure_reason"])
        self.assertEqual(o["items"], [{"sku": sku, "quantity": 2, "unit_price_cents": 1999,
                                       "line_total_cents": 3998}])
        self.assertEqual(o["total_cents"], 3998)
        self.assertEqual(o["currency"], "USD")
        p = o["payment"]
        self.assertIsInstance(p, dict)
        # A confirmed order's payment has gone through: captured (API.md example), or at
        # least authorized.
        self.assertIn(p["status"], ("captured", "authorized"))
        self.assertEqual(p["brand"], "visa")
        self.assertEqual(p["last4"], "4242")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 2, 8))
        self.assertEqual(self.item(NODE, self.cust, sku)["available"], 8)

    def test_place_mastercard_multi_item(self):
        a = self.create_item(NODE, self.admin, on_hand=10, price_cents=500)
        b = self.create_item(NODE, self.admin, on_hand=10, price_cents=250)
        r = self.place(NODE, self.cust, [(a, 1), (b, 4)], card=MASTERCARD)
        self.assertStatus(r, 201)
        self.assertNoCardData(r)
        o = r.json
        self.assertOrderShape(o, customer=self.cust_id)
        lines = {it["sku"]: it for it in o["items"]}
        self.assertEqual(set(lines), {a, b})
        self.assertEqual(lines[a]["line_total_cents"], 500)
        self.assertEqual(lines[b]["line_total_cents"], 1000)
        self.assertEqual(o["total_cents"], 1500)
        self.assertEqual(o["payment"]["brand"], "mastercard")
        self.assertEqual(o["payment"]["last4"], "4444")

    def test_charset_in_content_type_accepted(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        r = request(NODE, "POST", "/v1/orders", harness.order_body([(sku, 1)]), token=self.cust,
                    content_type="application/json; charset=utf-8")
        self.assertStatus(r, 201)

    def test_items_in_two_currencies_are_rejected_and_nothing_is_charged(self):
        usd = self.create_item(NODE, self.admin, on_hand=5, price_cents=100)
        jpy = unique("sku")
        self.assertStatus(self.put_item(NODE, self.admin, jpy, on_hand=5, price_cents=10000, currency="JPY"), 201)
        r = self.place(NODE, self.cust, [(usd, 1), (jpy, 2)])
        self.assertStatus(r, 409)
        o = r.json
        self.assertEqual(o["status"], "rejected")
        self.assertEqual(o["failure_reason"], "currency_mismatch")
        self.assertIsNone(o.get("payment"))
        for sku in (usd, jpy):
            self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 0, 5))
        # Each alone, or two of one currency, go through.
        self.assertStatus(self.place(NODE, self.cust, [(jpy, 1)]), 201)
        other = unique("sku")
        self.assertStatus(self.put_item(NODE, self.admin, other, on_hand=5, price_cents=5, currency="JPY"), 201)
        r = self.place(NODE, self.cust, [(jpy, 1), (other, 1)])
        self.assertStatus(r, 201)
        self.assertEqual((r.json["currency"], r.json["total_cents"]), ("JPY", 10005))

    def test_a_body_without_content_type_is_taken_as_json(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        r = request(NODE, "POST", "/v1/orders", harness.order_body([(sku, 1)]), token=self.cust,
                    content_type=None)
        self.assertStatus(r, 201)

    def test_repeated_skus_summed(self):
        sku = self.create_item(NODE, self.admin, on_hand=10, price_cents=300)
        r = self.place(NODE, self.cust, [(sku, 1), (sku, 2)])
        self.assertStatus(r, 201)
        o = r.json
        self.assertOrderShape(o)
        # Summed: one line for the sku with the total quantity.
        self.assertEqual(o["items"], [{"sku": sku, "quantity": 3, "unit_price_cents": 300,
                                       "line_total_cents": 900}])
        self.assertEqual(o["total_cents"], 900)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 3, 7))

    def test_repeated_skus_summed_exceeding_stock_rejected(self):
        sku = self.create_item(NODE, self.admin, on_hand=3)
        r = self.place(NODE, self.cust, [(sku, 2), (sku, 2)])
        self.assertStatus(r, 409)
        self.assertEqual(r.json["failure_reason"], "insufficient_stock")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3, 0, 3))

    def test_insufficient_stock_409(self):
        a = self.create_item(NODE, self.admin, on_hand=2)
        b = self.create_item(NODE, self.admin, on_hand=10)
        r = self.place(NODE, self.cust, [(b, 5), (a, 3)])
        self.assertStatus(r, 409)
        o = r.json
        self.assertOrderShape(o, customer=self.cust_id)
        self.assertEqual(o["status"], "rejected")
        self.assertEqual(o["failure_reason"], "insufficient_stock")
        # no payment attempted
        self.assertIsNone(o.get("payment"), "a rejected order must not carry a payment: %s" % o)
        # all or nothing: the sku that had stock is not held either
        self.assertEqual(self.admin_stock(NODE, self.admin, a), (2, 0, 2))
        self.assertEqual(self.admin_stock(NODE, self.admin, b), (10, 0, 10))
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "rejected")

    def test_unknown_sku_409(self):
        known = self.create_item(NODE, self.admin, on_hand=10)
        r = self.place(NODE, self.cust, [(known, 1), (unique("nosuch"), 1)])
        self.assertStatus(r, 409)
        o = r.json
        self.assertOrderShape(o)
        self.assertEqual(o["status"], "rejected")
        self.assertEqual(o["failure_reason"], "unknown_sku")
        self.assertIsNone(o.get("payment"))
        self.assertEqual(self.admin_stock(NODE, self.admin, known), (10, 0, 10))

    def check_payment_failure(self, card, reason, payment_status):
        sku = self.create_item(NODE, self.admin, on_hand=6)
        r = self.place(NODE, self.cust, [(sku, 4)], card=card)
        self.assertStatus(r, 402)
        self.assertNoCardData(r)
        o = r.json
        self.assertOrderShape(o, customer=self.cust_id)
        self.assertEqual(o["status"], "payment_failed")
        self.assertEqual(o["failure_reason"], reason)
        self.assertIsInstance(o["payment"], dict)
        self.assertEqual(o["payment"]["status"], payment_status)
        self.assertEqual(o["payment"]["last4"], card[-4:])
        # reservations released
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (6, 0, 6))
        self.assertEqual(self.item(NODE, self.cust, sku)["available"], 6)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "payment_failed")

    def test_card_declined_402(self):
        self.check_payment_failure(DECLINED, "card_declined", "declined")

    def test_insufficient_funds_402(self):
        self.check_payment_failure(NO_FUNDS, "insufficient_funds", "declined")

    def test_transient_payment_unavailable_402(self):
        # A provider that never answered is no decline: payment.status `failed`.
        self.check_payment_failure(TRANSIENT, "payment_unavailable", "failed")


class SlowPlacementTest(OrdersBase):
    """A node whose placement timeout is far shorter than the transient card's retries."""

    node = None

    @classmethod
    def setUpClass(cls):
        cls.node = harness.start_node({"orders.placement_timeout_ms": "100",
                                       "payment.retry_backoff_ms": "1500",
                                       "payment.retries_max": "2"})

    @classmethod
    def tearDownClass(cls):
        harness.stop_node(cls.node)

    def test_202_then_final(self):
        n = self.node
        admin = n.token("admin-ops", "admin")
        cust_id = unique("cust")
        cust = n.token(cust_id, CUSTOMER_SCOPES)
        sku = self.create_item(n, admin, on_hand=5)
        t0 = time.time()
        r = self.place(n, cust, [(sku, 2)], card=TRANSIENT)
        elapsed = time.time() - t0
        self.assertStatus(r, 202)
        self.assertLess(elapsed, 4.0, "202 came only after the retries would have finished")
        o = r.json
        self.assertOrderShape(o, customer=cust_id)
        self.assertIn(o["status"], ("pending", "reserved"), "a 202 order is not finished: %s" % o)
        # Its charge is under way: no payment status yet among the API's, so none is shown.
        self.assertIsNone(o["payment"], o)
        final = self.wait_order(n, cust, o["id"], timeout=60)
        self.assertEqual(final["status"], "payment_failed")
        self.assertEqual(final["failure_reason"], "payment_unavailable")
        self.assertEqual(self.admin_stock(n, admin, sku), (5, 0, 5))


class ReadTest(OrdersBase):

    def test_get_own_other_admin(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        r = self.place(NODE, self.cust, [(sku, 1)])
        self.assertStatus(r, 201)
        oid = r.json["id"]
        got = self.get_order(NODE, self.cust, oid)
        self.assertOrderShape(got, customer=self.cust_id)
        for k in ("id", "customer_id", "status", "items", "total_cents", "currency", "created_at"):
            self.assertEqual(got[k], r.json[k], k)
        other = NODE.token(unique("other"), CUSTOMER_SCOPES)
        r2 = request(NODE, "GET", "/v1/orders/" + oid, token=other)
        self.assertProblem(r2, 404)
        self.assertNotIn(sku.encode(), r2.body, "the 404 leaks the order")
        adm = self.get_order(NODE, self.admin, oid)
        self.assertEqual(adm["id"], oid)
        self.assertEqual(adm["customer_id"], self.cust_id)

    def test_get_unknown_404(self):
        r = request(NODE, "GET", "/v1/orders/ord_doesnotexist" + unique("x"), token=self.cust)
        self.assertProblem(r, 404)
        r = request(NODE, "GET", "/v1/orders/ord_doesnotexist" + unique("x"), token=self.admin)
        self.assertProblem(r, 404)

    def test_read_scope_required(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        r = self.place(NODE, self.cust, [(sku, 1)])
        self.assertStatus(r, 201)
        writer_only = NODE.token(self.cust_id, "orders:write")
        r = request(NODE, "GET", "/v1/orders/" + r.json["id"], token=writer_only)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        r = request(NODE, "GET", "/v1/orders", token=writer_only)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        reader_only = NODE.token(self.cust_id, "orders:read inventory:read")
        r = self.place(NODE, reader_only, [(sku, 1)])
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 1, 4))

    def test_list_paging_newest_first(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        ids = []
        for _ in range(3):
            r = self.place(NODE, self.cust, [(sku, 1)])
            self.assertStatus(r, 201)
            ids.append(r.json["id"])
            # Newest first must hold even for orders placed within the same second; the pause
            # only keeps millisecond timestamps apart.
            time.sleep(0.02)
        # another customer's order must not show up
        other = NODE.token(unique("other"), CUSTOMER_SCOPES)
        self.assertStatus(self.place(NODE, other, [(sku, 1)]), 201)

        r = request(NODE, "GET", "/v1/orders?limit=2", token=self.cust)
        self.assertStatus(r, 200)
        self.assertEqual([o["id"] for o in r.json["data"]], [ids[2], ids[1]])
        cur = r.json["next_cursor"]
        self.assertIsInstance(cur, str)
        self.assertTrue(cur)
        r = request(NODE, "GET", "/v1/orders?limit=2&cursor=" + urllib.parse.quote(cur, safe=""),
                    token=self.cust)
        self.assertStatus(r, 200)
        self.assertEqual([o["id"] for o in r.json["data"]], [ids[0]])
        self.assertIn("next_cursor", r.json)
        self.assertIsNone(r.json["next_cursor"])
        for o in r.json["data"]:
            self.assertOrderShape(o, customer=self.cust_id)

        r = request(NODE, "GET", "/v1/orders", token=self.cust)  # default limit 20
        self.assertStatus(r, 200)
        self.assertEqual([o["id"] for o in r.json["data"]], list(reversed(ids)))
        self.assertIsNone(r.json["next_cursor"])

    def test_list_empty(self):
        r = request(NODE, "GET", "/v1/orders", token=self.cust)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"data": [], "next_cursor": None})

    def test_list_bad_limit_and_cursor_400(self):
        for q in ("limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5",
                  # A cursor the node never issued is bad input, not an empty page.
                  "cursor=not-a-cursor%21%21"):
            with self.subTest(query=q):
                r = request(NODE, "GET", "/v1/orders?" + q, token=self.cust)
                self.assertProblem(r, 400)
        for q in ("limit=1", "limit=100"):
            with self.subTest(query=q):
                self.assertStatus(request(NODE, "GET", "/v1/orders?" + q, token=self.cust), 200)


class LifecycleTest(OrdersBase):

    def confirmed(self, on_hand=10, qty=3):
        sku = self.create_item(NODE, self.admin, on_hand=on_hand)
        r = self.place(NODE, self.cust, [(sku, qty)])
        self.assertStatus(r, 201)
        self.assertEqual(r.json["status"], "confirmed")
        return sku, r.json

    def test_cancel_confirmed_refunds_and_restores(self):
        sku, o = self.confirmed(on_hand=10, qty=3)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 3, 7))
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.cust)
        self.assertStatus(r, 200)
        c = r.json
        self.assertOrderShape(c, customer=self.cust_id)
        self.assertEqual(c["status"], "cancelled")
        self.assertEqual(c["payment"]["status"], "refunded")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10))
        stored = self.get_order(NODE, self.cust, o["id"])
        self.assertEqual(stored["status"], "cancelled")
        # again: unchanged, 200
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.cust)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, stored)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"]), stored)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10))

    def test_admin_can_cancel_any(self):
        sku, o = self.confirmed(on_hand=4, qty=2)
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "cancelled")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (4, 0, 4))

    def test_ship_confirmed(self):
        sku, o = self.confirmed(on_hand=10, qty=3)
        r = request(NODE, "POST", "/v1/orders/%s/ship" % o["id"], token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["status"], "shipped")
        self.assertEqual(r.json["id"], o["id"])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (7, 0, 7))
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "shipped")
        # shipped is final for ship and cancel
        r = request(NODE, "POST", "/v1/orders/%s/ship" % o["id"], token=self.admin)
        self.assertProblem(r, 409)
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.cust)
        self.assertProblem(r, 409)
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.admin)
        self.assertProblem(r, 409)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "shipped")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (7, 0, 7))

    def test_ship_not_confirmed_409(self):
        sku, o = self.confirmed(on_hand=10, qty=1)
        self.assertStatus(request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=self.cust), 200)
        r = request(NODE, "POST", "/v1/orders/%s/ship" % o["id"], token=self.admin)
        self.assertProblem(r, 409)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "cancelled")
        # rejected and payment_failed orders cannot ship either
        r = self.place(NODE, self.cust, [(sku, 1000)])
        self.assertStatus(r, 409)
        self.assertProblem(request(NODE, "POST", "/v1/orders/%s/ship" % r.json["id"], token=self.admin), 409)
        r = self.place(NODE, self.cust, [(sku, 1)], card=DECLINED)
        self.assertStatus(r, 402)
        self.assertProblem(request(NODE, "POST", "/v1/orders/%s/ship" % r.json["id"], token=self.admin), 409)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10))

    def test_cancel_failed_order_409(self):
        # The contract allows cancelling reserved/confirmed (and cancelled, a no-op); an order
        # that failed holds nothing to release: we expect 409 like any other impossible move.
        sku = self.create_item(NODE, self.admin, on_hand=1)
        r = self.place(NODE, self.cust, [(sku, 5)])
        self.assertStatus(r, 409)
        self.assertProblem(request(NODE, "POST", "/v1/orders/%s/cancel" % r.json["id"], token=self.cust), 409)
        self.assertEqual(self.get_order(NODE, self.cust, r.json["id"])["status"], "rejected")

    def test_customer_cannot_ship(self):
        sku, o = self.confirmed(on_hand=5, qty=1)
        r = request(NODE, "POST", "/v1/orders/%s/ship" % o["id"], token=self.cust)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "confirmed")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 1, 4))

    def test_cancel_other_customers_order_404(self):
        sku, o = self.confirmed(on_hand=5, qty=2)
        other = NODE.token(unique("other"), CUSTOMER_SCOPES)
        r = request(NODE, "POST", "/v1/orders/%s/cancel" % o["id"], token=other)
        self.assertProblem(r, 404)
        self.assertEqual(self.get_order(NODE, self.cust, o["id"])["status"], "confirmed")
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 2, 3))

    def test_cancel_and_ship_unknown_404(self):
        bogus = "ord_" + unique("nope").replace("-", "")
        self.assertProblem(request(NODE, "POST", "/v1/orders/%s/cancel" % bogus, token=self.cust), 404)
        self.assertProblem(request(NODE, "POST", "/v1/orders/%s/ship" % bogus, token=self.admin), 404)


if __name__ == "__main__":
    unittest.main()
