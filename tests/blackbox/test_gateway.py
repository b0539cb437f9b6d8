#!/usr/bin/python3
"""The gateway under pressure: per-principal rate limits with the RateLimit headers and a stricter
class for order placement, load shedding past the in-flight bound, the connection cap, and 100
pipelined requests answered in order."""

import socket
import threading
import time
import unittest

import harness
from harness import request, unique

SCOPES = "orders:write orders:read inventory:read"


class OwnNodeTest(harness.NodeTestCase):
    """A node of the class's own, started with NODE_SETTINGS."""
    NODE_SETTINGS = {}

    @classmethod
    def setUpClass(cls):
        cls.node = harness.start_node(cls.NODE_SETTINGS)

    @classmethod
    def tearDownClass(cls):
        harness.stop_node(cls.node)


class RateLimitTest(OwnNodeTest):
    NODE_SETTINGS = {"rate_limit.rate": "1", "rate_limit.burst": "5",
                     "rate_limit.place_rate": "0.2", "rate_limit.place_burst": "2"}

    def test_burst_then_429_with_headers(self):
        tok = self.node.token(unique("cust"), SCOPES)
        statuses = []
        for _ in range(5):
            r = request(self.node, "GET", "/v1/inventory/none", token=tok)
            statuses.append(r.status)
            self.assertIn("ratelimit-policy", r.headers)
            self.assertIn("ratelimit", r.headers)
        self.assertEqual(statuses, [404] * 5)
        refused = request(self.node, "GET", "/v1/inventory/none", token=tok)
        self.assertProblem(refused, 429)
        self.assertTrue(refused.headers.get("retry-after", "").isdigit(), refused.headers)
        self.assertGreaterEqual(int(refused.headers["retry-after"]), 1)
        self.assertIn('q=5', refused.headers["ratelimit-policy"])
        # another principal is not affected
        other = self.node.token(unique("cust"), SCOPES)
        self.assertStatus(request(self.node, "GET", "/v1/inventory/none", token=other), 404)

    def test_order_placement_is_stricter(self):
        tok = self.node.token(unique("cust"), SCOPES)
        body = harness.order_body([("none-sku", 1)])
        first = [request(self.node, "POST", "/v1/orders", body, token=tok).status for _ in range(2)]
        self.assertEqual(first, [409, 409])
        refused = request(self.node, "POST", "/v1/orders", body, token=tok)
        self.assertProblem(refused, 429)
        self.assertIn('"place"', refused.headers["ratelimit-policy"])
        self.assertGreaterEqual(int(refused.headers["retry-after"]), 4)  # 0.2/s: 5 s apart
        # stock checks still pass for the same principal
        self.assertStatus(request(self.node, "GET", "/v1/inventory/none", token=tok), 404)

    def test_a_refused_placement_names_both_budgets(self):
        tok = self.node.token(unique("cust"), SCOPES)
        body = harness.order_body([("none-sku", 1)])
        for _ in range(2):
            self.assertStatus(request(self.node, "POST", "/v1/orders", body, token=tok), 409)
        refused = request(self.node, "POST", "/v1/orders", body, token=tok)
        self.assertProblem(refused, 429)
        self.assertEqual(refused.headers["ratelimit-policy"], '"default";q=5;w=5, "place";q=2;w=10')
        self.assertRegex(refused.headers["ratelimit"], r'^"default";r=\d+;t=\d+, "place";r=0;t=\d+$')
        # The refusal cost the one budget nothing: of its 5, two placements and this GET took 3
        # (2 left; 3 if a second passed meanwhile, at 1/s), where the refusal would have left 1.
        after = request(self.node, "GET", "/v1/inventory/none", token=tok)
        self.assertStatus(after, 404)
        self.assertRegex(after.headers["ratelimit"], r'^"default";r=[23];t=\d+$')

    def test_health_is_never_limited(self):
        for _ in range(20):
            self.assertStatus(request(self.node, "GET", "/healthz"), 200)


class OneBudgetTest(OwnNodeTest):
    """Without a placement budget of its own, every request of a principal takes from one budget
    (API.md: `rate_limit.rate` per second with `rate_limit.burst`, per principal)."""
    NODE_SETTINGS = {"rate_limit.rate": "0.1", "rate_limit.burst": "3"}

    def test_stock_checks_and_placements_share_the_budget(self):
        tok = self.node.token(unique("cust"), SCOPES)
        body = harness.order_body([("none-sku", 1)])
        for _ in range(2):
            self.assertStatus(request(self.node, "GET", "/v1/inventory/none", token=tok), 404)
        placed = request(self.node, "POST", "/v1/orders", body, token=tok)
        self.assertStatus(placed, 409)  # the third of three
        self.assertEqual(placed.headers["ratelimit-policy"], '"default";q=3;w=30')
        self.assertProblem(request(self.node, "POST", "/v1/orders", body, token=tok), 429)
        self.assertProblem(request(self.node, "GET", "/v1/inventory/none", token=tok), 429)


class SheddingTest(OwnNodeTest):
    NODE_SETTINGS = {"http.max_in_flight": "1", "http.max_connections": "4",
                     "payment.retry_backoff_ms": "1500", "payment.retries_max": "1"}

    def test_past_the_in_flight_bound_503_with_retry_after(self):
        admin = self.node.token("admin-ops", "admin")
        tok = self.node.token(unique("cust"), SCOPES)
        sku = self.create_item(self.node, admin, on_hand=5)
        slow = {}
        t = threading.Thread(target=lambda: slow.setdefault(
            "r", self.place(self.node, tok, [(sku, 1)], card=harness.TRANSIENT)))
        t.start()
        time.sleep(0.5)  # the slow placement holds the only slot (retry backoff 1.5 s)
        r = request(self.node, "GET", "/v1/inventory/" + sku, token=tok)
        self.assertProblem(r, 503)
        self.assertEqual(r.headers.get("retry-after"), "1")
        t.join(30)
        self.assertEqual(slow["r"].status, 402)
        self.assertStatus(request(self.node, "GET", "/v1/inventory/" + sku, token=tok), 200)

    def test_connection_cap(self):
        # Up to the cap (4) every connection is served, and stays open (keep-alive).
        held = [harness.connect(self.node) for _ in range(4)]
        try:
            for conn in held:
                self.assertStatus(request(self.node, "GET", "/healthz", conn=conn), 200)
            # Past the cap, a new connection is answered 503 with Retry-After and closed.
            extra = socket.create_connection((self.node.host, self.node.port), timeout=5)
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            extra.shutdown(socket.SHUT_WR)  # no more to send: the refusing server closes at once
            data = harness.read_until_closed(extra)
            extra.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 503"), data[:100])
            self.assertIn(b"\r\nRetry-After: ", data)
            # The connections within the cap still serve.
            for conn in held:
                self.assertStatus(request(self.node, "GET", "/healthz", conn=conn), 200)
            # One closed makes room for a new one.
            held.pop().close()
            time.sleep(0.3)
            self.assertStatus(request(self.node, "GET", "/healthz"), 200)
        finally:
            for conn in held:
                conn.close()


class HandlingDeadlineTest(OwnNodeTest):
    NODE_SETTINGS = {"http.request_timeout_ms": "400", "payment.retry_backoff_ms": "2000",
                     "payment.retries_max": "1"}

    def test_a_request_past_its_deadline_gets_503_and_the_connection_serves_on(self):
        admin = self.node.token("admin-ops", "admin")
        tok = self.node.token(unique("cust"), SCOPES)
        sku = self.create_item(self.node, admin, on_hand=5)
        conn = harness.connect(self.node)
        start = time.time()
        r = request(self.node, "POST", "/v1/orders", harness.order_body([(sku, 1)], card=harness.TRANSIENT),
                    token=tok, conn=conn)
        took = time.time() - start
        self.assertProblem(r, 503)
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertLess(took, 1.9, "answered at the handling deadline, not when the charge ended")
        # The same connection answers the next request; the late answer was dropped.
        self.assertStatus(request(self.node, "GET", "/v1/inventory/" + sku, token=tok, conn=conn), 200)
        conn.close()


class IdleConnectionTest(OwnNodeTest):
    NODE_SETTINGS = {"http.idle_timeout_ms": "300"}

    def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(self):
        s = socket.create_connection((self.node.host, self.node.port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        start = time.time()
        s.settimeout(5)
        self.assertEqual(s.recv(65536), b"", "the idle connection was not closed")
        took = time.time() - start
        s.close()
        self.assertGreaterEqual(took, 0.2)
        self.assertLess(took, 2.5)


class PipeliningTest(OwnNodeTest):
    NODE_SETTINGS = {}

    def test_hundred_pipelined_requests_answered_in_order(self):
        admin = self.node.token("admin-ops", "admin")
        skus = [self.create_item(self.node, admin, on_hand=i + 1) for i in range(5)]
        tok = self.node.token(unique("cust"), SCOPES)
        wanted = [skus[i % 5] for i in range(100)]
        payload = b"".join(("GET /v1/inventory/%s HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n\r\n"
                            % (sku, tok)).encode() for sku in wanted)
        s = socket.create_connection((self.node.host, self.node.port), timeout=30)
        s.sendall(payload)
        data = b""
        deadline = time.time() + 30
        while data.count(b"HTTP/1.1 ") < 100 or not data.endswith(b"}"):
            self.assertLess(time.time(), deadline, "only %d answers" % data.count(b"HTTP/1.1 "))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        bodies = [part.split(b"\r\n\r\n", 1)[1] for part in data.split(b"HTTP/1.1 ")[1:]]
        self.assertEqual(len(bodies), 100)
        got = [harness._parse_json(b)["sku"] for b in bodies]
        self.assertEqual(got, wanted)


if __name__ == "__main__":
    unittest.main()
