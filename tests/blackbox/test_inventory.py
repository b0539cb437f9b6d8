#!/usr/bin/python3
"""Inventory API: PUT/GET/list/adjust, admin vs customer views, validation and scopes."""

import time
import unittest

import harness
from harness import request, unique

NODE = None


def setUpModule():
    global NODE
    NODE = harness.start_node()


def tearDownModule():
    harness.stop_node(NODE)


PUBLIC_FIELDS = {"sku", "name", "price_cents", "currency", "available"}


class InventoryTest(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-" + unique("a"), "admin")
        self.reader = NODE.token(unique("reader"), "inventory:read")

    def reserve(self, sku, quantity):
        """Makes a reservation the only way the contract offers: a confirmed order."""
        cust = NODE.token(unique("cust"), "orders:write orders:read")
        r = self.place(NODE, cust, [(sku, quantity)])
        self.assertStatus(r, 201, "placing an order to reserve stock")
        return r.json

    # -- PUT / GET ---------------------------------------------------------------------------

    def test_put_creates_201_then_replaces_200(self):
        sku = unique("inv")
        r = self.put_item(NODE, self.admin, sku, on_hand=7, price_cents=1250, name="Blue mug")
        self.assertStatus(r, 201)
        # The contract names only the status; a user expects the stored item back.
        self.assertIsInstance(r.json, dict, self.describe(r))
        self.assertEqual(r.json["sku"], sku)
        self.assertEqual(r.json["name"], "Blue mug")
        self.assertEqual(r.json["price_cents"], 1250)
        self.assertEqual(r.json["available"], 7)

        r = self.put_item(NODE, self.admin, sku, on_hand=9, price_cents=1300, name="Red mug")
        self.assertStatus(r, 200)
        it = self.item(NODE, self.reader, sku)
        self.assertEqual((it["name"], it["price_cents"], it["available"]), ("Red mug", 1300, 9))
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (9, 0, 9))

    def test_get_fields_customer_and_admin_views(self):
        sku = unique("inv")
        self.assertStatus(self.put_item(NODE, self.admin, sku, on_hand=5, price_cents=999, name="Pen"), 201)
        it = self.item(NODE, self.reader, sku)
        self.assertTrue(PUBLIC_FIELDS <= set(it), "missing fields in %s" % it)
        self.assertNotIn("on_hand", it, "a non-admin must not see on_hand")
        self.assertNotIn("reserved", it, "a non-admin must not see reserved")
        self.assertEqual(it["sku"], sku)
        self.assertEqual(it["name"], "Pen")
        self.assertEqual(it["price_cents"], 999)
        self.assertEqual(it["currency"], "USD", "currency defaults to USD")
        self.assertEqual(it["available"], 5)

        adm = self.item(NODE, self.admin, sku)
        self.assertTrue(PUBLIC_FIELDS <= set(adm), adm)
        self.assertEqual(adm["on_hand"], 5)
        self.assertEqual(adm["reserved"], 0)
        self.assertEqual(adm["available"], 5)

    def test_currency_given_is_kept(self):
        sku = unique("inv")
        self.assertStatus(self.put_item(NODE, self.admin, sku, on_hand=1, currency="EUR"), 201)
        self.assertEqual(self.item(NODE, self.reader, sku)["currency"], "EUR")

    def test_get_unknown_404(self):
        r = request(NODE, "GET", "/v1/inventory/" + unique("nosuch"), token=self.reader)
        self.assertProblem(r, 404)

    def test_unknown_skus_and_orders_keep_no_actor(self):
        # Each lookup of an unknown sku or order id activates an actor that finds nothing stored:
        # an item stops at once, an order after actors.terminal_passivate_ms (5 s), so such
        # lookups cannot pile actors up until they idle out (120 s).
        known = self.create_item(NODE, self.admin, on_hand=1)
        unknown = [unique("ghost") for _ in range(40)]
        r = request(NODE, "GET", "/v1/inventory?" + "&".join("sku=" + s for s in unknown + [known]),
                    token=self.reader)
        self.assertStatus(r, 200)
        self.assertEqual([i["sku"] for i in r.json["data"]], [known])
        reader = NODE.token(unique("cust"), "orders:read")
        ghost_orders = ["ord_" + "%026d" % i for i in range(5)]
        for oid in ghost_orders:
            self.assertProblem(request(NODE, "GET", "/v1/orders/" + oid, token=reader), 404)

        def active():
            r = request(NODE, "GET", "/admin/actors?limit=1000", token=self.admin)
            self.assertStatus(r, 200)
            return {a["id"] for a in r.json["data"]}
        time.sleep(0.5)
        self.assertEqual(active() & set(unknown), set())  # the items at once
        deadline = time.time() + 12
        while time.time() < deadline and active() & set(unknown + ghost_orders):
            time.sleep(0.1)
        self.assertEqual(active() & set(unknown + ghost_orders), set())
        self.assertIn(known, active())  # a found one stays, until it idles out
        # A sku that was unknown is created, and then found, as before.
        self.assertStatus(self.put_item(NODE, self.admin, unknown[0], on_hand=2), 201)
        self.assertEqual(self.admin_stock(NODE, self.admin, unknown[0]), (2, 0, 2))

    def test_list_without_skus_is_empty(self):
        r = request(NODE, "GET", "/v1/inventory", token=self.reader)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"data": []})

    def test_a_name_with_control_characters_400(self):
        sku = unique("inv")
        for name in ("a\u0000b", "tab\there", "del\u007f"):
            with self.subTest(name=repr(name)):
                r = self.put_item(NODE, self.admin, sku, name=name)
                self.assertProblem(r, 400, fields="name")
        self.assertProblem(request(NODE, "GET", "/v1/inventory/" + sku, token=self.reader), 404)
        self.assertStatus(self.put_item(NODE, self.admin, sku, name="Caf\u00e9 cr\u00e8me"), 201)

    def test_admin_actor_list_limit_at_its_edges(self):
        for limit in (1, 1000):
            self.assertStatus(request(NODE, "GET", "/admin/actors?limit=%d" % limit, token=self.admin), 200)
        for limit in ("0", "1001", "-1", "x"):
            with self.subTest(limit=limit):
                r = request(NODE, "GET", "/admin/actors?limit=" + limit, token=self.admin)
                self.assertProblem(r, 400, fields="limit")

    def test_admin_actor_ids_that_no_actor_can_have_404(self):
        for path in ("/admin/actors/order/%C3%28", "/admin/actors/payment/pay_%00",
                     "/admin/actors/inventory/" + "x" * 65, "/admin/actors/order/ord_short"):
            with self.subTest(path=path):
                self.assertProblem(request(NODE, "GET", path, token=self.admin), 404)
                self.assertProblem(request(NODE, "POST", path + "/passivate", token=self.admin), 404)

    def test_passivate_of_a_stored_item_and_of_an_unknown_one(self):
        sku = self.create_item(NODE, self.admin, on_hand=3)
        path = "/admin/actors/inventory/%s/passivate" % sku
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3, 0, 3))  # active now
        r = request(NODE, "POST", path, token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"type": "inventory", "id": sku, "passivated": True})
        deadline = time.time() + 5
        while request(NODE, "GET", "/admin/actors/inventory/" + sku, token=self.admin).json["active"]:
            self.assertLess(time.time(), deadline, "the item did not stop")
            time.sleep(0.05)
        r = request(NODE, "POST", path, token=self.admin)  # stored, active nowhere
        self.assertStatus(r, 200)
        self.assertEqual(r.json["passivated"], False)
        # Never stored: 404, as its GET.
        for path in ("/admin/actors/inventory/%s" % unique("nosuch"), "/admin/actors/order/ord_" + "0" * 26,
                     "/admin/actors/payment/pay_" + "0" * 26):
            with self.subTest(path=path):
                self.assertProblem(request(NODE, "GET", path, token=self.admin), 404)
                self.assertProblem(request(NODE, "POST", path + "/passivate", token=self.admin), 404)

    def test_list_returns_only_known(self):
        a = self.create_item(NODE, self.admin, on_hand=3)
        b = self.create_item(NODE, self.admin, on_hand=4)
        unknown = unique("nosuch")
        r = request(NODE, "GET", "/v1/inventory?sku=%s&sku=%s&sku=%s" % (a, unknown, b), token=self.reader)
        self.assertStatus(r, 200)
        data = r.json["data"]
        self.assertIsInstance(data, list)
        self.assertEqual(sorted(d["sku"] for d in data), sorted([a, b]))
        by = {d["sku"]: d for d in data}
        self.assertEqual(by[a]["available"], 3)
        self.assertEqual(by[b]["available"], 4)
        for d in data:
            self.assertNotIn("on_hand", d)

    def test_list_takes_100_skus_and_refuses_101(self):
        known = self.create_item(NODE, self.admin, on_hand=3)
        skus = [known] + [unique("nosuch") for _ in range(99)]
        query = "&".join("sku=" + s for s in skus)
        r = request(NODE, "GET", "/v1/inventory?" + query, token=self.reader)
        self.assertStatus(r, 200)
        self.assertEqual([i["sku"] for i in r.json["data"]], [known])
        r = request(NODE, "GET", "/v1/inventory?" + query + "&sku=" + unique("more"), token=self.reader)
        self.assertProblem(r, 400, fields=["sku"])
        # The same sku given twice counts once.
        r = request(NODE, "GET", "/v1/inventory?" + query + "&sku=" + known, token=self.reader)
        self.assertStatus(r, 200)

    def test_list_all_unknown_is_empty(self):
        r = request(NODE, "GET", "/v1/inventory?sku=%s" % unique("nosuch"), token=self.reader)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"data": []})

    # -- adjust / reserved rules -------------------------------------------------------------

    def test_adjust_up_and_down(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 5}, token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["sku"], sku)
        self.assertEqual(r.json["available"], 15)
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": -12}, token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["available"], 3)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3, 0, 3))

    def test_adjust_below_reserved_409(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        self.reserve(sku, 3)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 3, 2))
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": -3}, token=self.admin)
        self.assertProblem(r, 409)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 3, 2), "a refused adjust changed stock")
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": -2}, token=self.admin)
        self.assertStatus(r, 200)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3, 3, 0))

    def test_adjust_below_zero_409(self):
        # Nothing reserved: going below 0 is "below reserved" too.
        sku = self.create_item(NODE, self.admin, on_hand=2)
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": -3}, token=self.admin)
        self.assertProblem(r, 409)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (2, 0, 2))

    def test_adjust_unknown_404(self):
        r = request(NODE, "POST", "/v1/inventory/%s/adjust" % unique("nosuch"), {"delta": 1}, token=self.admin)
        self.assertProblem(r, 404)

    def test_put_on_hand_below_reserved_409(self):
        sku = self.create_item(NODE, self.admin, on_hand=5, price_cents=100)
        self.reserve(sku, 4)
        r = self.put_item(NODE, self.admin, sku, on_hand=3, price_cents=100)
        self.assertProblem(r, 409)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (5, 4, 1))
        r = self.put_item(NODE, self.admin, sku, on_hand=4, price_cents=100)
        self.assertStatus(r, 200)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (4, 4, 0))

    # -- validation --------------------------------------------------------------------------

    def test_put_validation_400(self):
        good = {"name": "Thing", "price_cents": 100, "on_hand": 1}
        cases = [
            ("name", {"price_cents": 100, "on_hand": 1}),
            ("name", dict(good, name="")),  # an empty name is no name
            ("name", dict(good, name=5)),
            ("price_cents", {"name": "Thing", "on_hand": 1}),
            ("price_cents", dict(good, price_cents=-1)),
            ("price_cents", dict(good, price_cents=1.5)),
            ("price_cents", dict(good, price_cents="100")),
            ("on_hand", {"name": "Thing", "price_cents": 100}),
            ("on_hand", dict(good, on_hand=-1)),
            ("on_hand", dict(good, on_hand=2.5)),
            ("on_hand", dict(good, on_hand=None)),
            ("currency", dict(good, currency="US")),
            ("currency", dict(good, currency="DOLLARS")),
            ("currency", dict(good, currency=840)),
            # unknown fields are rejected (same rule as POST /v1/orders)
            ("colour", dict(good, colour="red")),
        ]
        for field, body in cases:
            sku = unique("inv")
            with self.subTest(field=field, body=body):
                r = request(NODE, "PUT", "/v1/inventory/" + sku, body, token=self.admin)
                self.assertProblem(r, 400, fields=field)
                r = request(NODE, "GET", "/v1/inventory/" + sku, token=self.admin)
                self.assertStatus(r, 404, "an invalid PUT created the item")
        for raw in (b"", b"{", b"[]", b"not json", b'{"name":"a","price_cents":1,"on_hand":1} x'):
            with self.subTest(raw=raw):
                r = request(NODE, "PUT", "/v1/inventory/" + unique("inv"), raw, token=self.admin)
                self.assertProblem(r, 400)

    def test_adjust_validation_400(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        cases = [
            ("delta", {}),
            ("delta", {"delta": "5"}),
            ("delta", {"delta": 1.5}),
            ("delta", {"delta": None}),
            ("delta", {"delta": 99999999999999999999999999}),
            ("extra", {"delta": 1, "extra": True}),
        ]
        for field, body in cases:
            with self.subTest(body=body):
                r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, body, token=self.admin)
                self.assertProblem(r, 400, fields=field)
        for raw in (b"", b"[1]", b"delta=5"):
            with self.subTest(raw=raw):
                r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, raw, token=self.admin)
                self.assertProblem(r, 400)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10), "an invalid adjust changed stock")

    def test_put_and_adjust_at_their_bounds(self):
        # name 1-200 bytes, price_cents 0-1e12, on_hand 0-1e9: the edges are taken, one past refused
        edge = {"name": "n" * 200, "price_cents": 10 ** 12, "on_hand": 10 ** 9}
        sku = unique("inv")
        self.assertStatus(request(NODE, "PUT", "/v1/inventory/" + sku, edge, token=self.admin), 201)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10 ** 9, 0, 10 ** 9))
        zero = {"name": "n", "price_cents": 0, "on_hand": 0}
        self.assertStatus(request(NODE, "PUT", "/v1/inventory/" + unique("inv"), zero, token=self.admin), 201)
        for field, value in (("name", "n" * 201), ("price_cents", 10 ** 12 + 1), ("on_hand", 10 ** 9 + 1)):
            with self.subTest(field=field):
                r = request(NODE, "PUT", "/v1/inventory/" + sku, dict(edge, **{field: value}), token=self.admin)
                self.assertProblem(r, 400, fields=field)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10 ** 9, 0, 10 ** 9))
        # delta -1e9..1e9
        adjust = "/v1/inventory/%s/adjust" % sku
        for delta in (10 ** 9 + 1, -(10 ** 9) - 1):
            with self.subTest(delta=delta):
                self.assertProblem(request(NODE, "POST", adjust, {"delta": delta}, token=self.admin), 400,
                                   fields="delta")
        self.assertStatus(request(NODE, "POST", adjust, {"delta": -(10 ** 9)}, token=self.admin), 200)
        self.assertStatus(request(NODE, "POST", adjust, {"delta": 10 ** 9}, token=self.admin), 200)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10 ** 9, 0, 10 ** 9))
        # on_hand stays within what a PUT may set: one more unit is refused, and nothing changes
        r = request(NODE, "POST", adjust, {"delta": 1}, token=self.admin)
        self.assertProblem(r, 409)
        self.assertIn("exceed", r.json["detail"])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10 ** 9, 0, 10 ** 9))
        self.assertStatus(request(NODE, "POST", adjust, {"delta": -1}, token=self.admin), 200)
        self.assertStatus(request(NODE, "POST", adjust, {"delta": 1}, token=self.admin), 200)

    # -- scopes ------------------------------------------------------------------------------

    def test_scopes(self):
        sku = self.create_item(NODE, self.admin, on_hand=10)
        writer = NODE.token(unique("cust"), "orders:write orders:read")
        # GET needs inventory:read
        r = request(NODE, "GET", "/v1/inventory/" + sku, token=writer)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        r = request(NODE, "GET", "/v1/inventory?sku=" + sku, token=writer)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        # PUT and adjust need admin
        for tok in (self.reader, writer):
            r = self.put_item(NODE, tok, sku, on_hand=99)
            self.assertAuthChallenge(r, "insufficient_scope", 403)
            r = request(NODE, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 5}, token=tok)
            self.assertAuthChallenge(r, "insufficient_scope", 403)
            r = self.put_item(NODE, tok, unique("inv"), on_hand=1)
            self.assertAuthChallenge(r, "insufficient_scope", 403)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (10, 0, 10))

    def test_missing_or_garbled_token_401(self):
        sku = self.create_item(NODE, self.admin, on_hand=1)
        for tok in (None, "garbage", "a.b.c", self.reader[:-4] + "AAAA"):
            with self.subTest(token=tok):
                r = request(NODE, "GET", "/v1/inventory/" + sku, token=tok)
                self.assertAuthChallenge(r, "invalid_token", 401)
                r = self.put_item(NODE, tok, sku, on_hand=50)
                self.assertAuthChallenge(r, "invalid_token", 401)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (1, 0, 1))


if __name__ == "__main__":
    unittest.main()
