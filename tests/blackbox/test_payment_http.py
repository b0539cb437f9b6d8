#!/usr/bin/python3
"""payment.provider = http: the node charges and refunds through a provider service on loopback
(a stand-in written here, speaking the protocol in README.md), with the payment id as the
idempotency key; the provider's answers, failures, slowness and absence map to the documented
outcomes; the card goes to the provider and nowhere else."""

import json
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import VISA, request, unique

SCOPES = "orders:write orders:read inventory:read"
# Card numbers (Luhn-valid) that tell the stand-in what to answer.
DECLINE = "4111111111111111"
NO_FUNDS = "5105105105105100"
FAIL_ONCE = "4012888888881881"      # 503 on the first attempt of each payment, then captured
ALWAYS_503 = "378282246310005"
SLOW = "6011111111111117"          # answers after 2 s, past the node's payment.timeout_ms
GARBLED = "3530111333300000"       # 200 with a body that is no provider answer
AT_LIMIT = "4000056655665556"      # a captured answer of exactly 64 KiB, the most the node reads
PAST_LIMIT = "5200828282828210"    # the same, one byte longer


class Provider:
    """A provider service on 127.0.0.1: records every call."""

    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()
        self.refuse_refunds = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                key = self.headers.get("Idempotency-Key")
                with provider.lock:
                    provider.calls.append((self.path, key, body))
                    attempts = sum(1 for p, k, _ in provider.calls if p == self.path and k == key)
                status, answer = 200, {}
                if self.path == "/psp/charges":
                    number = body.get("card", {}).get("number")
                    outcome = {DECLINE: "declined", NO_FUNDS: "insufficient_funds"}.get(number, "captured")
                    answer = {"status": outcome, "reference": "psp_" + str(key)}
                    if number == FAIL_ONCE and attempts == 1:
                        status, answer = 503, {"error": "busy"}
                    elif number == ALWAYS_503:
                        status, answer = 503, {"error": "down"}
                    elif number == SLOW:
                        time.sleep(2)
                    elif number == GARBLED:
                        answer = {"what": "?"}
                    elif number in (AT_LIMIT, PAST_LIMIT):
                        size = 64 * 1024 + (1 if number == PAST_LIMIT else 0)
                        answer["pad"] = ""
                        answer["pad"] = "x" * (size - len(json.dumps(answer)))
                elif self.path == "/psp/refunds":
                    answer = {"status": "refunded"}
                    if provider.refuse_refunds:
                        status, answer = 503, {"error": "down"}
                else:
                    status, answer = 404, {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the node gave up on a slow answer: its connection is gone

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def calls_for(self, path):
        with self.lock:
            return [(k, b) for p, k, b in self.calls if p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


PROVIDER = None
NODE = None


def setUpModule():
    global PROVIDER, NODE
    PROVIDER = Provider()
    NODE = harness.start_node({"payment.provider": "http",
                               "payment.url": "http://127.0.0.1:%d/psp/" % PROVIDER.port,
                               "payment.timeout_ms": "500",
                               "payment.connections": "8",
                               "payment.retries_max": "2",
                               "payment.retry_backoff_ms": "10"})


def tearDownModule():
    harness.stop_node(NODE)
    if PROVIDER:
        PROVIDER.close()


class HttpProviderTest(harness.NodeTestCase):

    def setUp(self):
        self.admin = NODE.token("admin-ops", "admin")
        self.cust = NODE.token(unique("cust"), SCOPES)
        self.sku = self.create_item(NODE, self.admin, on_hand=50, price_cents=1250)

    def test_a_capture_confirms_with_the_payment_id_as_idempotency_key(self):
        r = self.place(NODE, self.cust, [(self.sku, 2)], card=VISA, cvc="321")
        self.assertStatus(r, 201)
        order = r.json
        self.assertEqual(order["status"], "confirmed")
        self.assertEqual(order["payment"]["status"], "captured")
        self.assertEqual(order["payment"]["last4"], VISA[-4:])
        calls = [(k, b) for k, b in PROVIDER.calls_for("/psp/charges") if k == order["payment"]["id"]]
        self.assertEqual(len(calls), 1)
        key, body = calls[0]
        self.assertEqual(body["payment_id"], key)
        self.assertEqual(body["amount_cents"], 2500)
        self.assertEqual(body["currency"], "USD")
        self.assertEqual(body["card"]["number"], VISA)  # the provider gets the card...
        self.assertEqual(body["card"]["cvc"], "321")
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 2, 48))
        # ...and nothing else keeps it: not the node's log.
        log = NODE.log_text()
        self.assertNotIn(VISA, log)

    def test_declines_answer_402_with_their_reason_and_release_the_stock(self):
        for card, reason in ((DECLINE, "card_declined"), (NO_FUNDS, "insufficient_funds")):
            with self.subTest(reason=reason):
                r = self.place(NODE, self.cust, [(self.sku, 1)], card=card)
                self.assertStatus(r, 402)
                self.assertEqual(r.json["failure_reason"], reason)
                self.assertEqual(r.json["payment"]["status"], "declined")
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 0, 50))

    def test_a_transient_failure_is_retried_with_the_same_key(self):
        r = self.place(NODE, self.cust, [(self.sku, 1)], card=FAIL_ONCE)
        self.assertStatus(r, 201)
        keys = [k for k, _ in PROVIDER.calls_for("/psp/charges") if k == r.json["payment"]["id"]]
        self.assertEqual(len(keys), 2, "one 503, then the same key again")

    def test_an_unavailable_slow_or_garbled_provider_is_payment_unavailable_and_voided(self):
        # Each may have charged the card (a 5xx, no answer in time, an answer not understood): the
        # payment is voided at the provider (a refund by the same key) before the order fails.
        for card in (ALWAYS_503, SLOW, GARBLED):
            with self.subTest(card=card):
                started = time.monotonic()
                r = self.place(NODE, self.cust, [(self.sku, 1)], card=card)
                self.assertStatus(r, 402)
                self.assertEqual(r.json["failure_reason"], "payment_unavailable")
                self.assertEqual(r.json["payment"]["status"], "failed")
                pay = r.json["payment"]["id"]
                keys = [k for k, _ in PROVIDER.calls_for("/psp/charges") if k == pay]
                self.assertEqual(len(keys), 3, "the first attempt and payment.retries_max = 2 more")
                self.assertEqual([b for k, b in PROVIDER.calls_for("/psp/refunds") if k == pay],
                                 [{"payment_id": pay, "amount_cents": 1250}])
                if card == SLOW:  # each attempt gave up at payment.timeout_ms (500 ms), not at 2 s
                    self.assertLess(time.monotonic() - started, 4.5)
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 0, 50))

    def test_an_answer_of_64_kib_is_read_and_one_byte_more_is_not(self):
        ok = self.place(NODE, self.cust, [(self.sku, 1)], card=AT_LIMIT)
        self.assertStatus(ok, 201)
        over = self.place(NODE, self.cust, [(self.sku, 1)], card=PAST_LIMIT)
        self.assertStatus(over, 402)  # an answer not read: the outcome is unknown, so voided
        self.assertEqual(over.json["failure_reason"], "payment_unavailable")
        pay = over.json["payment"]["id"]
        self.assertEqual(len([k for k, _ in PROVIDER.calls_for("/psp/refunds") if k == pay]), 1)
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 1, 49))

    def test_other_orders_are_served_while_the_provider_is_slow(self):
        # More slow calls at once than the node has actor threads (its cores), fewer than its
        # provider callers (payment.connections = 8): no actor thread waits on the provider.
        # (The stock is 50: 6 + 1 units.)
        slow = [threading.Thread(target=lambda: self.place(NODE, self.cust, [(self.sku, 1)], card=SLOW))
                for _ in range(6)]
        before = len([b for _, _, b in PROVIDER.calls if b.get("card", {}).get("number") == SLOW])
        for t in slow:
            t.start()
        # The six are at the provider (each waits there), so the order below meets them.
        deadline = time.monotonic() + 10
        while len([b for _, _, b in list(PROVIDER.calls) if b.get("card", {}).get("number") == SLOW]) < before + 6:
            self.assertLess(time.monotonic(), deadline, "the slow charges did not reach the provider")
            time.sleep(0.02)
        self.assertStatus(request(NODE, "GET", "/v1/inventory/" + self.sku, token=self.cust), 200)
        r = self.place(NODE, self.cust, [(self.sku, 1)])
        self.assertStatus(r, 201)
        # Answered while the slow placements still wait on the provider: blocking actor threads,
        # they would have held the order up until they had ended.
        self.assertTrue(any(t.is_alive() for t in slow), "the order waited for the slow charges")
        for t in slow:
            t.join()

    def test_cancel_refunds_at_the_provider(self):
        r = self.place(NODE, self.cust, [(self.sku, 3)])
        self.assertStatus(r, 201)
        pay = r.json["payment"]["id"]
        c = request(NODE, "POST", "/v1/orders/%s/cancel" % r.json["id"], token=self.cust)
        self.assertStatus(c, 200)
        self.assertEqual(c.json["status"], "cancelled")
        self.assertEqual(c.json["payment"]["status"], "refunded")
        refunds = [b for k, b in PROVIDER.calls_for("/psp/refunds") if k == pay]
        self.assertEqual(refunds, [{"payment_id": pay, "amount_cents": 3750}])
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 0, 50))


    def test_a_refund_the_provider_refuses_leaves_the_order_to_cancel_again(self):
        r = self.place(NODE, self.cust, [(self.sku, 2)])
        self.assertStatus(r, 201)
        path = "/v1/orders/%s/cancel" % r.json["id"]
        PROVIDER.refuse_refunds = True
        try:
            refused = request(NODE, "POST", path, token=self.cust)
        finally:
            PROVIDER.refuse_refunds = False
        self.assertProblem(refused, 409)  # busy: try again
        still = self.get_order(NODE, self.cust, r.json["id"])
        self.assertEqual(still["payment"]["status"], "captured")
        self.assertEqual(still["status"], "confirmed")  # cancelling, shown as confirmed
        again = request(NODE, "POST", path, token=self.cust)
        self.assertStatus(again, 200)
        self.assertEqual(again.json["status"], "cancelled")
        self.assertEqual(again.json["payment"]["status"], "refunded")
        self.assertEqual(self.admin_stock(NODE, self.admin, self.sku), (50, 0, 50))


class NoProviderTest(harness.NodeTestCase):
    """Nothing listens at payment.url: the charge fails at once, as payment_unavailable."""

    def test_nothing_listening_is_payment_unavailable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # a port nothing listens on
        node = harness.start_node({"payment.provider": "http", "payment.url": "http://127.0.0.1:%d" % port,
                                   "payment.retries_max": "1", "payment.retry_backoff_ms": "10"})
        try:
            admin = node.token("admin-ops", "admin")
            cust = node.token(unique("cust"), SCOPES)
            sku = self.create_item(node, admin, on_hand=5)
            r = self.place(node, cust, [(sku, 1)])
            self.assertStatus(r, 402)  # never sent: nothing to void
            self.assertEqual(r.json["failure_reason"], "payment_unavailable")
            self.assertEqual(r.json["payment"]["status"], "failed")
            self.assertEqual(self.admin_stock(node, admin, sku), (5, 0, 5))
        finally:
            harness.stop_node(node)


if __name__ == "__main__":
    unittest.main()
