#!/usr/bin/python3
"""Malformed POST /v1/orders bodies: 400 problem+json, nothing recorded; size limits 413/431."""

import datetime
import json
import socket
import time
import unittest

import harness
from harness import MASTERCARD, VISA, request, unique

NODE = None


def setUpModule():
    global NODE
    NODE = harness.start_node()


def tearDownModule():
    harness.stop_node(NODE)


SCOPES = "orders:write orders:read inventory:read"


def luhn(prefix):
    return prefix + harness.luhn_check_digit(prefix)


def past_month():
    now = datetime.datetime.now(datetime.timezone.utc)
    return (now.month - 1, now.year) if now.month > 1 else (12, now.year - 1)


def cases(sku):
    """(name, body, acceptable error field(s) or None when no field error is required)."""

    def base():
        return harness.order_body([(sku, 1)], card=VISA, cvc="123")

    def with_item(**kw):
        b = base()
        b["items"][0].update(kw)
        for k, v in list(kw.items()):
            if v is _DROP:
                del b["items"][0][k]
        return b

    def with_card(**kw):
        b = base()
        b["payment"]["card"].update(kw)
        for k, v in list(kw.items()):
            if v is _DROP:
                del b["payment"]["card"][k]
        return b

    def without(*path):
        b = base()
        d = b
        for p in path[:-1]:
            d = d[p]
        del d[path[-1]]
        return b

    def with_top(**kw):
        b = base()
        b.update(kw)
        return b

    valid = json.dumps(base())
    pm, py = past_month()
    out = [
        # -- not a JSON object at all --
        ("not json", b"this is not json", None),
        ("empty body", b"", None),
        ("json array", json.dumps([base()]), None),
        ("json string", b'"items"', None),
        ("json null", b"null", None),
        ("single quotes", valid.replace('"', "'"), None),
        ("NaN quantity", valid.replace('"quantity": 1', '"quantity": NaN'), None),
        ("leading zero quantity", valid.replace('"quantity": 1', '"quantity": 01'), None),
        ("duplicate keys", valid[:-1] + ', "items": [{"sku": "%s", "quantity": 2}]}' % sku, None),
        ("trailing garbage", valid + " garbage", None),
        ("trailing second object", valid + "{}", None),
        ("invalid utf-8", valid.encode().replace(sku.encode(), sku.encode() + b"\xff\xfe"), None),
        ("truncated", valid[:-5], None),
        ("deeply nested arrays", b'{"items": ' + b"[" * 20000 + b"]" * 20000 + b"}", None),
        ("deeply nested objects", b'{"items": ' + b'{"a": ' * 6000 + b"1" + b"}" * 6000 + b"}", None),
        # -- items --
        ("items missing", without("items"), "items"),
        ("items null", with_top(items=None), "items"),
        ("items empty", with_top(items=[]), "items"),
        ("items an object", with_top(items={"sku": sku, "quantity": 1}), "items"),
        ("101 items", with_top(items=[{"sku": sku, "quantity": 1}] * 101), "items"),
        ("item not an object", with_top(items=[sku]), "items[0]"),
        ("quantity 0", with_item(quantity=0), "items[0].quantity"),
        ("quantity -1", with_item(quantity=-1), "items[0].quantity"),
        ("quantity 1001", with_item(quantity=1001), "items[0].quantity"),
        ("quantity 1.5", with_item(quantity=1.5), "items[0].quantity"),
        ("quantity string", with_item(quantity="2"), "items[0].quantity"),
        ("quantity null", with_item(quantity=None), "items[0].quantity"),
        ("quantity missing", with_item(quantity=_DROP), "items[0].quantity"),
        ("quantity huge integer", with_item(quantity=10 ** 40), None),
        ("second item quantity 0",
         with_top(items=[{"sku": sku, "quantity": 1}, {"sku": sku, "quantity": 0}]), "items[1].quantity"),
        ("sku empty", with_item(sku=""), "items[0].sku"),
        ("sku 65 chars", with_item(sku="a" * 65), "items[0].sku"),
        ("sku with space", with_item(sku="bad sku"), "items[0].sku"),
        ("sku with slash", with_item(sku="bad/sku"), "items[0].sku"),
        ("sku unicode", with_item(sku="sk\u00fc-1"), "items[0].sku"),
        ("sku number", with_item(sku=12345), "items[0].sku"),
        ("sku null", with_item(sku=None), "items[0].sku"),
        ("sku missing", with_item(sku=_DROP), "items[0].sku"),
        ("unknown item field", with_item(colour="red"), "items[0].colour"),
        # -- payment / card --
        ("payment missing", without("payment"), "payment"),
        ("payment null", with_top(payment=None), "payment"),
        ("card missing", with_top(payment={}), "payment.card"),
        ("card null", with_top(payment={"card": None}), "payment.card"),
        ("number non-Luhn", with_card(number="4242424242424241"), "payment.card.number"),
        ("number 11 digits", with_card(number=luhn("4242424242")), "payment.card.number"),
        ("number 20 digits", with_card(number=luhn("4242424242424242424")), "payment.card.number"),
        ("number letters", with_card(number="4242abcd42424242"), "payment.card.number"),
        ("number integer", with_card(number=4242424242424242), "payment.card.number"),
        ("number null", with_card(number=None), "payment.card.number"),
        ("number missing", with_card(number=_DROP), "payment.card.number"),
        ("expiry last month", with_card(exp_month=pm, exp_year=py), "payment.card"),
        ("expiry past year", with_card(exp_month=12, exp_year=2020), "payment.card"),
        ("exp_month 0", with_card(exp_month=0), "payment.card.exp_month"),
        ("exp_month 13", with_card(exp_month=13), "payment.card.exp_month"),
        ("exp_month string", with_card(exp_month="12"), "payment.card.exp_month"),
        ("exp_year missing", with_card(exp_year=_DROP), "payment.card.exp_year"),
        ("exp_year huge", with_card(exp_year=10 ** 30), None),
        ("cvc 2 digits", with_card(cvc="12"), "payment.card.cvc"),
        ("cvc 5 digits", with_card(cvc="12345"), "payment.card.cvc"),
        ("cvc letters", with_card(cvc="12a"), "payment.card.cvc"),
        ("cvc missing", with_card(cvc=_DROP), "payment.card.cvc"),
        ("unknown card field", with_card(nickname="mine"), "payment.card.nickname"),
        # -- unknown fields are rejected (decision: a typo must not be ignored silently) --
        ("unknown top-level field", with_top(coupon="FREE"), "coupon"),
    ]
    return out


_DROP = object()


class MalformedOrderTest(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        self.cust_id = unique("cust")
        self.cust = NODE.token(self.cust_id, SCOPES)
        self.sku = self.create_item(NODE, self.admin, on_hand=50, price_cents=100)

    def assertNothingRecorded(self, msg):
        r = request(NODE, "GET", "/v1/orders", token=self.cust)
        self.assertStatus(r, 200, msg)
        self.assertEqual(r.json["data"], [], "an order was recorded for a rejected body: " + msg)
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 0, 50), "stock changed: " + msg)

    def test_malformed_bodies_400(self):
        all_cases = cases(self.sku)
        self.assertGreaterEqual(len(all_cases), 30)
        names = [c[0] for c in all_cases]
        self.assertEqual(len(names), len(set(names)))
        for name, body, fields in all_cases:
            with self.subTest(case=name):
                r = request(NODE, "POST", "/v1/orders", body, token=self.cust)
                self.assertProblem(r, 400, fields=fields, msg="(case %r)" % name)
                self.assertNotIn(b"<html", r.body.lower())
                self.assertNothingRecorded(name)

    def test_wrong_or_missing_content_type(self):
        body = json.dumps(harness.order_body([(self.sku, 1)]))
        for ctype in ("text/plain", "application/x-www-form-urlencoded"):
            with self.subTest(content_type=ctype):
                r = request(NODE, "POST", "/v1/orders", body, token=self.cust, content_type=ctype)
                self.assertProblem(r, 415)
                self.assertNothingRecorded("content type %r" % ctype)
        # None: the body is taken as JSON, and checked as any (a valid one: test_orders).
        r = request(NODE, "POST", "/v1/orders", body[:-1], token=self.cust, content_type=None)
        self.assertProblem(r, 400)
        self.assertNothingRecorded("no content type, a body cut short")

    def test_body_over_limit_413(self):
        pad = b"a" * 70000  # default http.body_limit_bytes is 65536
        body = b'{"items": [{"sku": "' + self.sku.encode() + b'", "quantity": 1}], "pad": "' + pad + b'"}'
        head = ("POST /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (NODE.port, self.cust, len(body))).encode()
        r = harness.raw_request(NODE, head, body)
        self.assertProblem(r, 413)
        self.assertNothingRecorded("413")

    def test_headers_over_limit_431(self):
        for name, extra in (("one big header", "X-Pad: %s\r\n" % ("a" * 10000)),
                            ("many headers", "".join("X-Pad-%d: %s\r\n" % (i, "b" * 100) for i in range(120)))):
            with self.subTest(case=name):
                head = ("GET /v1/orders HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                        "%sConnection: close\r\n\r\n" % (NODE.port, self.cust, extra)).encode()
                r = harness.raw_request(NODE, head)
                self.assertProblem(r, 431)

    def test_unknown_route_and_method_are_problems(self):
        r = request(NODE, "GET", "/v1/nothing-here", token=self.cust)
        self.assertProblem(r, 404)
        # A method an endpoint does not take: 405 with the ones it does (RFC 9110), never HTML.
        admin = NODE.token("admin-ops", "admin")
        for method, path, tok, allow in (
                ("DELETE", "/v1/orders", self.cust, "GET, HEAD, POST"),
                ("PUT", "/v1/orders/ord_" + "0" * 26, self.cust, "GET, HEAD"),
                ("GET", "/v1/orders/ord_%s/cancel" % ("0" * 26), self.cust, "POST"),
                ("DELETE", "/v1/inventory/sku-1", self.cust, "GET, HEAD, PUT"),
                ("POST", "/healthz", None, "GET, HEAD"),
                ("PUT", "/readyz", None, "GET, HEAD"),
                ("POST", "/metrics", None, "GET, HEAD"),
                ("POST", "/admin/cluster", admin, "GET, HEAD"),
                ("DELETE", "/admin/actors", admin, "GET, HEAD"),
                ("DELETE", "/admin/actors/inventory/sku-1", admin, "GET, HEAD"),
                ("GET", "/admin/actors/order/ord_%s/passivate" % ("0" * 26), admin, "POST")):
            with self.subTest(method=method, path=path):
                r = request(NODE, method, path, token=tok)
                self.assertProblem(r, 405)
                self.assertEqual(r.headers.get("allow"), allow)
        # Method names are case-sensitive (RFC 9110 9.1).
        self.assertProblem(request(NODE, "get", "/healthz"), 405)
        # Unknown paths are counted under one route label, never under their text.
        metrics = request(NODE, "GET", "/metrics").body.decode()
        self.assertIn('route="GET /v1/other"', metrics)
        self.assertNotIn("nothing-here", metrics)

    def test_head_answers_as_get_without_a_body(self):
        admin = NODE.token("admin-ops", "admin")
        sku = self.create_item(NODE, admin, on_hand=3)
        for path, tok in (("/v1/inventory/" + sku, self.cust), ("/v1/orders", self.cust),
                          ("/healthz", None), ("/metrics", None), ("/admin/cluster", admin)):
            with self.subTest(path=path):
                got = request(NODE, "GET", path, token=tok)
                self.assertStatus(got, 200)
                head = request(NODE, "HEAD", path, token=tok)
                self.assertStatus(head, 200)
                self.assertEqual(head.body, b"")
                self.assertEqual(head.headers.get("content-type"), got.headers.get("content-type"))
        head = request(NODE, "HEAD", "/v1/inventory/no-such-" + sku, token=self.cust)
        self.assertEqual((head.status, head.body), (404, b""))
        self.assertEqual(request(NODE, "HEAD", "/v1/orders").status, 401)
        # On the wire (http.client reads no body after a HEAD whatever comes): a HEAD then a GET
        # on one connection; the HEAD's answer ends at its fields, with the GET's length.
        path = "/v1/inventory/" + sku
        get_body = request(NODE, "GET", path, token=self.cust).body
        one = ("HEAD %s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n" % (path, self.cust)).encode()
        two = ("GET %s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
               % (path, self.cust)).encode()
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        try:
            s.sendall(one + two)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head_fields, rest = data.split(b"\r\n\r\n", 1)
        self.assertTrue(head_fields.startswith(b"HTTP/1.1 200"), data[:200])
        self.assertIn(b"\r\nContent-Length: %d" % len(get_body), head_fields)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200"), "the HEAD's answer had a body: %r" % rest[:80])
        self.assertTrue(rest.endswith(get_body), rest[-200:])


class BoundaryAcceptedTest(harness.NodeTestCase):
    """The edges of the valid ranges are accepted (so the 400s above are about the values)."""

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        self.cust = NODE.token(unique("cust"), SCOPES)

    def test_quantity_1000_and_100_items(self):
        sku = self.create_item(NODE, self.admin, on_hand=2000, price_cents=1)
        r = self.place(NODE, self.cust, [(sku, 1000)])
        self.assertStatus(r, 201)
        r = self.place(NODE, self.cust, [(sku, 1)] * 100)
        self.assertStatus(r, 201)
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (2000, 1100, 900))

    def test_a_sku_given_twice_is_summed_up_to_the_quantity_limit(self):
        sku = self.create_item(NODE, self.admin, on_hand=3000, price_cents=1)
        r = self.place(NODE, self.cust, [(sku, 500), (sku, 501)])
        self.assertProblem(r, 400, fields=["items[1].quantity"])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3000, 0, 3000))
        r = self.place(NODE, self.cust, [(sku, 500), (sku, 500)])
        self.assertStatus(r, 201)
        self.assertEqual([(l["sku"], l["quantity"]) for l in r.json["items"]], [(sku, 1000)])
        self.assertEqual(self.admin_stock(NODE, self.admin, sku), (3000, 1000, 2000))

    def test_sku_charset_and_64_chars(self):
        sku = "A.b_c-9." + unique("Z")
        self.assertStatus(self.put_item(NODE, self.admin, sku, on_hand=5), 201)
        self.assertStatus(self.place(NODE, self.cust, [(sku, 1)]), 201)
        sku64 = (unique("u") + "x" * 64)[:64]
        self.assertEqual(len(sku64), 64)
        r = self.place(NODE, self.cust, [(sku64, 1)])
        self.assertStatus(r, 409)  # well-formed but unknown
        self.assertEqual(r.json["failure_reason"], "unknown_sku")

    def test_card_edges(self):
        sku = self.create_item(NODE, self.admin, on_hand=50)
        now = datetime.datetime.now(datetime.timezone.utc)
        # expiring this month is not past
        r = self.place(NODE, self.cust, [(sku, 1)], exp_month=now.month, exp_year=now.year)
        self.assertStatus(r, 201)
        r = self.place(NODE, self.cust, [(sku, 1)], card=MASTERCARD, cvc="1234")
        self.assertStatus(r, 201)
        # exp_month 1-12, exp_year up to 2100: the edges are taken, one past refused
        self.assertStatus(self.place(NODE, self.cust, [(sku, 1)], exp_month=1, exp_year=2100), 201)
        self.assertStatus(self.place(NODE, self.cust, [(sku, 1)], exp_month=12, exp_year=2100), 201)
        r = self.place(NODE, self.cust, [(sku, 1)], exp_month=12, exp_year=2101)
        self.assertProblem(r, 400, fields=["payment.card.exp_year"])
        # 12 and 19 digit Luhn-valid numbers are well-formed; what the simulated provider
        # makes of them is not in the contract (201 or 402).
        for number in (luhn("42424242424"), luhn("424242424242424242")):
            with self.subTest(number_len=len(number)):
                r = self.place(NODE, self.cust, [(sku, 1)], card=number)
                self.assertStatus(r, (201, 402))

    def test_body_just_under_limit_accepted(self):
        sku = self.create_item(NODE, self.admin, on_hand=5)
        body = json.dumps(harness.order_body([(sku, 1)])).encode()
        body += b" " * (60000 - len(body))  # trailing JSON whitespace
        r = request(NODE, "POST", "/v1/orders", body, token=self.cust)
        self.assertStatus(r, 201)


def order_of_size(node, token, sku, size):
    """POST /v1/orders of one line of `sku`, its body padded with JSON whitespace to `size` bytes."""
    body = json.dumps(harness.order_body([(sku, 1)])).encode()
    body += b" " * (size - len(body))
    head = ("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (token, size)).encode()
    return harness.raw_request(node, head, body)


def header_block_of_size(node, token, size):
    """GET /v1/orders whose header block, from the request line to the empty line that ends it, is
    `size` bytes."""
    base = "GET /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\nX-Pad: " % token
    head = (base + "a" * (size - len(base) - 4) + "\r\n\r\n").encode()
    assert len(head) == size
    return harness.raw_request(node, head)


class SizeLimitEdgeTest(harness.NodeTestCase):
    """http.body_limit_bytes and http.header_limit_bytes hold exactly: a request at the limit is
    served, one byte more is refused (413 / 431, nothing recorded); on the default node and on one
    with the limits set lower."""

    def check_edges(self, node, body_limit, header_limit):
        admin = node.token("admin-ops", "admin")
        cust = node.token(unique("cust"), SCOPES)
        sku = self.create_item(node, admin, on_hand=5)
        self.assertStatus(order_of_size(node, cust, sku, body_limit), 201)
        r = order_of_size(node, cust, sku, body_limit + 1)
        self.assertProblem(r, 413)
        self.assertIn(str(body_limit), r.json["detail"])
        self.assertEqual(self.admin_stock(node, admin, sku), (5, 1, 4))  # the first order only
        self.assertEqual(len(request(node, "GET", "/v1/orders", token=cust).json["data"]), 1)
        self.assertStatus(header_block_of_size(node, cust, header_limit), 200)
        r = header_block_of_size(node, cust, header_limit + 1)
        self.assertProblem(r, 431)
        self.assertIn(str(header_limit), r.json["detail"])

    def test_a_refused_body_is_drained_so_the_answer_is_not_lost_to_a_reset(self):
        # The client sends the head of a body past the limit with the first 60 kB of it, then (after
        # the 413) more: the server reads and drops it, and ends with an orderly close, not a reset
        # that would destroy the answer.
        head = ("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
                % NODE.token(unique("cust"), SCOPES)).encode()
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        try:
            s.sendall(head + b" " * 60000)
            time.sleep(0.2)  # the answer is written, and the connection would be closed, meanwhile
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(65536)
                self.assertTrue(chunk, answer)
                answer += chunk
            self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:100])
            s.sendall(b" " * 100000)  # a reset would show here or at the next read
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(harness.read_until_closed(s), b"")
        finally:
            s.close()

    def test_the_lingering_after_a_refusal_ends_after_about_a_second(self):
        # The server shuts its side at once (the client reads the end of the answer), and drops what
        # the client still sends for about a second (kLingerMs); after that the connection is
        # gone, and what the client sends then is refused with a reset.
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
            answer = harness.read_until_closed(s)
            self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:100])
            s.sendall(b"x" * 1000)  # within the second: read and dropped
            time.sleep(0.1)
            s.sendall(b"x" * 1000)
            time.sleep(2)  # past it
            with self.assertRaises((BrokenPipeError, ConnectionResetError)):
                for _ in range(3):
                    s.sendall(b"x" * 1000)
                    time.sleep(0.1)
        finally:
            s.close()

    def test_the_default_limits_at_their_edges(self):
        self.check_edges(NODE, 65536, 8192)

    def test_configured_limits_at_their_edges(self):
        node = harness.start_node({"http.body_limit_bytes": "512", "http.header_limit_bytes": "1024"})
        self.addCleanup(harness.stop_node, node)
        self.check_edges(node, 512, 1024)


if __name__ == "__main__":
    unittest.main()
