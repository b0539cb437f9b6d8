#!/usr/bin/python3
"""The database goes away and comes back: requests that need it get 503 with Retry-After and leave
nothing half-done, /readyz says 503, and the node serves again by itself once the database is back.
Runs a private PostgreSQL (tests/integration/pg_instance.sh) that it stops and starts. And a
database that answers but refuses a write (a SQLite file with a trigger) gets 503 too, not a 400:
the request was not at fault."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

import harness
from harness import request, unique

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "pg_instance.sh")
SCOPES = "orders:write orders:read inventory:read"


def pg(test, cmd):
    subprocess.run([SCRIPT, cmd, test.dir, str(test.port)], check=True)


def start_private_pg(test):
    """Starts a PostgreSQL of the test's own (stopped and removed at clean-up, also when the set-up
    fails later) with the databases `orders` and `inventory`; returns their URLs. The test gets
    `dir` and `port`; `pg(test, cmd)` starts and stops it."""
    test.dir = tempfile.mkdtemp(prefix="emporium-outage-")
    test.port = harness.free_port()
    test.addCleanup(shutil.rmtree, test.dir, True)
    subprocess.run([SCRIPT, "init", test.dir], check=True)
    pg(test, "start")
    test.addCleanup(pg, test, "stop")
    admin_url = "postgresql://postgres@127.0.0.1:%d/postgres" % test.port
    for db in ("orders", "inventory"):
        subprocess.run(["psql", admin_url, "-q", "-c", "CREATE DATABASE " + db], check=True)
    return tuple("postgresql://postgres@127.0.0.1:%d/%s" % (test.port, db) for db in ("orders", "inventory"))


def start_node_on_private_pg(test):
    """A node on a private PostgreSQL (start_private_pg) that tries to connect again every 200 ms.
    Built as a SQLite node, then pointed at the private server (the shared one stays up)."""
    orders_url, inventory_url = start_private_pg(test)
    saved, harness.BACKEND = harness.BACKEND, "sqlite"
    try:
        node = harness.Node({"database.reconnect_interval_ms": "200"})
    finally:
        harness.BACKEND = saved
    node.orders_url, node.inventory_url = orders_url, inventory_url
    node.start()
    return node


class OutageTest(harness.NodeTestCase):

    def setUp(self):
        self.node = start_node_on_private_pg(self)

    def tearDown(self):
        harness.stop_node(self.node)
        super().tearDown()


    def test_outage_answers_503_and_the_node_recovers(self):
        node = self.node
        admin = node.token("admin-ops", "admin")
        cust_id = unique("cust")
        cust = node.token(cust_id, SCOPES)
        sku = self.create_item(node, admin, on_hand=10)
        first = self.place(node, cust, [(sku, 1)])
        self.assertStatus(first, 201)

        pg(self, "stop")
        during = self.place(node, cust, [(sku, 1)])
        self.assertProblem(during, 503)
        self.assertIn("retry-after", during.headers, "503 without Retry-After")
        self.assertTrue(during.headers["retry-after"].isdigit(), during.headers["retry-after"])
        self.assertStatus(request(node, "GET", "/readyz"), 503)
        listed = request(node, "GET", "/v1/orders", token=cust)
        self.assertProblem(listed, 503)

        pg(self, "start")
        deadline = time.time() + 20
        while request(node, "GET", "/readyz").status != 200:
            self.assertLess(time.time(), deadline, "the node did not become ready again")
            time.sleep(0.2)
        after = self.place(node, cust, [(sku, 1)])
        self.assertStatus(after, 201)

        # Nothing half-done: the order refused during the outage was never recorded.
        orders = request(node, "GET", "/v1/orders?limit=100", token=cust).json["data"]
        self.assertEqual(sorted(o["id"] for o in orders), sorted([first.json["id"], after.json["id"]]))
        self.assertTrue(all(o["status"] == "confirmed" for o in orders), orders)
        on_hand, reserved, available = self.admin_stock(node, admin, sku)
        self.assertEqual((on_hand, reserved, available), (10, 2, 8))


class ReadConnectionTest(harness.NodeTestCase):
    """The read connections alone go away (their backends ended by the server, as an operator's
    pg_terminate_backend or a proxy's idle cut would): the reads they serve (a customer's order
    list) answer 200 or 503 with Retry-After, never a 500; placing orders goes on through the
    write connections, which stay as they were; and the node connects again by itself, /readyz
    included. Each connection is named in pg_stat_activity (`application_name`)."""

    def setUp(self):
        self.node = start_node_on_private_pg(self)
        self.admin_url = "postgresql://postgres@127.0.0.1:%d/postgres" % self.port

    def tearDown(self):
        harness.stop_node(self.node)
        super().tearDown()

    def sql(self, query):
        out = subprocess.run(["psql", self.admin_url, "-Atc", query], check=True, capture_output=True, text=True)
        return out.stdout.split()

    def backends(self):
        """(application_name, database, pid) of the node's connections."""
        rows = self.sql("SELECT application_name || ',' || datname || ',' || pid FROM pg_stat_activity "
                        "WHERE application_name LIKE 'emporium-%' ORDER BY 1")
        return [tuple(row.split(",")) for row in rows]

    def test_the_read_connections_alone_go_away_and_the_node_connects_again(self):
        node = self.node
        admin = node.token("admin-ops", "admin")
        cust = node.token(unique("cust"), SCOPES)
        sku = self.create_item(node, admin, on_hand=10)
        first = self.place(node, cust, [(sku, 1)])
        self.assertStatus(first, 201)
        self.assertStatus(request(node, "GET", "/v1/orders", token=cust), 200)
        before = self.backends()
        names = sorted((name, db) for name, db, _ in before)
        self.assertEqual(names, [("emporium-inventory-read", "inventory"), ("emporium-inventory-write", "inventory"),
                                 ("emporium-orders-read", "orders"), ("emporium-orders-write", "orders")])
        writers = [b for b in before if b[0].endswith("-write")]

        ended = self.sql("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name LIKE 'emporium-%-read') AS t")
        self.assertEqual(ended, ["2"])
        during = self.place(node, cust, [(sku, 1)])
        self.assertStatus(during, 201)
        listed = request(node, "GET", "/v1/orders", token=cust)
        self.assertIn(listed.status, (200, 503), listed.body)
        if listed.status == 503:
            self.assertProblem(listed, 503)
            self.assertIn("retry-after", listed.headers, "503 without Retry-After")

        deadline = time.time() + 20
        while request(node, "GET", "/readyz").status != 200:
            self.assertLess(time.time(), deadline, "the node did not become ready again")
            time.sleep(0.2)
        while True:
            listed = request(node, "GET", "/v1/orders", token=cust)
            self.assertIn(listed.status, (200, 503), listed.body)
            if listed.status == 200:
                break
            self.assertLess(time.time(), deadline, "the order list did not come back")
            time.sleep(0.2)
        self.assertEqual(sorted(o["id"] for o in listed.json["data"]), sorted([first.json["id"], during.json["id"]]))
        after = self.backends()
        self.assertEqual([b for b in after if b[0].endswith("-write")], writers, "a write connection was remade")
        readers = [b for b in after if b[0].endswith("-read")]
        self.assertEqual(len(readers), 2, after)
        self.assertFalse(set(readers) & set(before), "the read connections were not remade")


class RefusedWriteTest(harness.NodeTestCase):
    """The database is there, but refuses a write (as a locked or full database, or an operator's
    trigger would). Refused at the order's first write: 503 with Retry-After, nothing recorded, no
    stock held, and the same request succeeds once the database takes writes again. A reservation
    refused beside it (the inventory database): 503 too, and the order is compensated at once,
    never charged. Refused after the card was charged: 202 with the order as stored, which the
    recovery finishes."""

    def setUp(self):
        saved, harness.BACKEND = harness.BACKEND, "sqlite"
        try:
            self.node = harness.Node()
        finally:
            harness.BACKEND = saved
        self.addCleanup(harness.stop_node, self.node)  # also when the start fails
        self.node.start()

    def orders_db(self, sql, url=None):
        url = url or self.node.orders_url
        db = sqlite3.connect(url[len("sqlite:"):], timeout=10)
        try:
            db.execute(sql)
            db.commit()
        finally:
            db.close()

    def refuse(self, when, url=None):
        """The orders database (or the one at `url`) refuses the writes `when` says (a trigger's
        `BEFORE ...` clause)."""
        self.orders_db("CREATE TRIGGER refuse BEFORE %s BEGIN SELECT RAISE(ABORT, 'refused'); END" % when, url)

    def allow(self, url=None):
        self.orders_db("DROP TRIGGER refuse", url)

    def tokens_and_item(self):
        admin = self.node.token("admin-ops", "admin")
        cust = self.node.token(unique("cust"), SCOPES)
        return admin, cust, self.create_item(self.node, admin, on_hand=10)

    def wait_until(self, done, state):
        deadline = time.time() + 20
        while not done():
            self.assertLess(time.time(), deadline, state())
            time.sleep(0.2)

    def test_a_refused_write_answers_503_and_records_nothing(self):
        node = self.node
        admin, cust, sku = self.tokens_and_item()
        self.refuse("INSERT ON orders")
        key = unique("key")
        refused = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertProblem(refused, 503)
        self.assertTrue(refused.headers.get("retry-after", "").isdigit(), refused.headers)
        self.assertNotIn("refused", refused.body.decode(), "the database's message reached the client")
        self.assertEqual(request(node, "GET", "/v1/orders", token=cust).json["data"], [])
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 0, 10))

        self.allow()
        placed = self.place(node, cust, [(sku, 2)], idem_key=key)  # a 503 is not kept for the key
        self.assertStatus(placed, 201)
        self.assertEqual(placed.json["status"], "confirmed")
        self.assertNotIn("idempotent-replayed", placed.headers)
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 2, 8))

    def test_a_reservation_refused_answers_503_and_the_order_is_compensated(self):
        node = self.node
        admin, cust, sku = self.tokens_and_item()
        # The item sets the units aside at once and writes the reservation meanwhile; the order is
        # recorded beside it, and waits for that write before the charge. It is refused.
        inventory = node.inventory_url
        self.refuse("INSERT ON reservations", inventory)
        key = unique("key")
        refused = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertProblem(refused, 503)
        self.assertTrue(refused.headers.get("retry-after", "").isdigit(), refused.headers)
        self.assertNotIn("refused", refused.body.decode(), "the database's message reached the client")
        # Compensated at once (no restart, no sweep): never charged, stock released.
        orders = request(node, "GET", "/v1/orders", token=cust).json["data"]
        self.assertEqual([(o["status"], o["failure_reason"], o["payment"]["status"]) for o in orders],
                         [("payment_failed", "payment_unavailable", "failed")])
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 0, 10))
        self.allow(inventory)
        placed = self.place(node, cust, [(sku, 2)], idem_key=key)  # a 503 is not kept for the key
        self.assertStatus(placed, 201)
        self.assertNotIn("idempotent-replayed", placed.headers)
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 2, 8))

    def test_a_refused_confirmation_answers_202_and_the_recovery_confirms_the_order(self):
        node = self.node
        admin, cust, sku = self.tokens_and_item()
        self.refuse("UPDATE ON orders WHEN NEW.status = 'confirmed'")
        key = unique("key")
        accepted = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertStatus(accepted, 202)
        self.assertEqual(accepted.json["status"], "reserved")
        self.assertEqual(accepted.json["payment"]["status"], "captured")
        # A retry with the key answers the same, and places (and charges) nothing again.
        again = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertStatus(again, 202)
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        self.assertEqual(again.json["id"], accepted.json["id"])

        self.allow()
        node.restart()  # a node sweeps for unfinished orders when it starts (then every orders.recovery_interval_ms)
        oid = accepted.json["id"]
        self.wait_until(lambda: self.get_order(node, cust, oid)["status"] == "confirmed",
                        lambda: self.get_order(node, cust, oid))
        self.assertEqual(self.get_order(node, cust, oid)["payment"]["status"], "captured")
        self.assertEqual([o["id"] for o in request(node, "GET", "/v1/orders", token=cust).json["data"]], [oid])
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 2, 8))



    def test_a_503_whose_order_cannot_be_read_keeps_the_key_for_that_order(self):
        """A placement that fails where even the order as stored cannot be read (its table is gone)
        answers 503, and keeps its key's claim: the order it names may still exist, so the key is
        not free for another order. A retry meanwhile is 409 (the first still counts as running); once
        the claim is stale (the placement timeout and 5 s), a retry places under the claimed id."""
        harness.stop_node(self.node)
        saved, harness.BACKEND = harness.BACKEND, "sqlite"
        try:
            node = self.node = harness.Node({"orders.placement_timeout_ms": "1000"})
        finally:
            harness.BACKEND = saved
        self.addCleanup(harness.stop_node, node)
        node.start()
        admin, cust, sku = self.tokens_and_item()
        key = unique("key")
        self.orders_db("ALTER TABLE orders RENAME TO orders_away")
        failed = self.place(node, cust, [(sku, 2)], idem_key=key)
        failed_at = time.time()
        self.assertProblem(failed, 503)
        self.assertTrue(failed.headers.get("retry-after", "").isdigit(), failed.headers)
        self.assertNotIn("orders", failed.body.decode(), "the database's message reached the client")
        # The claim is kept: the same key is still taken (409), not placed anew (which would be
        # another 503 while the table is away).
        again = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertProblem(again, 409)
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 0, 10))

        self.orders_db("ALTER TABLE orders_away RENAME TO orders")
        time.sleep(max(0.0, failed_at + 1.0 + 5.0 + 0.5 - time.time()))
        placed = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertStatus(placed, 201)
        self.assertEqual(placed.json["status"], "confirmed")
        self.assertEqual(self.admin_stock(node, admin, sku), (10, 2, 8))
        replay = self.place(node, cust, [(sku, 2)], idem_key=key)
        self.assertStatus(replay, 201)
        self.assertEqual(replay.headers.get("idempotent-replayed"), "true")
        self.assertEqual(replay.json["id"], placed.json["id"])
        orders = request(node, "GET", "/v1/orders", token=cust).json["data"]
        self.assertEqual([o["id"] for o in orders], [placed.json["id"]])


class ClusterOutageTest(harness.NodeTestCase):
    """Two cluster nodes on a private PostgreSQL that stops past the failure timeout: their
    heartbeats fail, they stop serving entities (503, /readyz 503), and once the database is back
    they register again as new incarnations and serve as before."""

    def setUp(self):
        databases = start_private_pg(self)
        secret = os.urandom(32).hex()
        self.nodes = []
        for i in (1, 2):
            settings = dict(harness.CLUSTER_EXTRA)
            settings.update({"node.name": "node-%d" % i, "cluster.enabled": "true",
                             "cluster.listen": "127.0.0.1:%d" % harness.free_port(),
                             "database.reconnect_interval_ms": "200"})
            self.nodes.append(harness.Node(settings, databases=databases, secret=secret))
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()

    def tearDown(self):
        for node in self.nodes:
            harness.stop_node(node)
        super().tearDown()


    def test_nodes_stop_serving_without_the_database_and_rejoin_after(self):
        a, b = self.nodes
        admin = a.token("admin-ops", "admin")
        skus = [self.create_item(a, admin, on_hand=10) for _ in range(6)]
        pg(self, "stop")
        time.sleep(3.5)  # past the failure timeout (2 s in the tests)
        for node in self.nodes:
            self.assertEqual(request(node, "GET", "/readyz").status, 503)
            self.assertIn("stops serving entities", node.log_text())
            r = request(node, "GET", "/v1/inventory/" + skus[0], token=admin)
            self.assertProblem(r, 503)
        pg(self, "start")

        # Whichever node beats first marks the other down; that one registers again. Both end up.
        def converged():
            if not all(request(n, "GET", "/readyz").status == 200 for n in self.nodes):
                return False
            for n in self.nodes:
                members = request(n, "GET", "/admin/cluster", token=admin).json["members"]
                if sorted(m["status"] for m in members) != ["up", "up"]:
                    return False
            return True
        deadline = time.time() + 20
        while time.time() < deadline and not converged():
            time.sleep(0.2)
        self.assertTrue(converged(), request(a, "GET", "/admin/cluster", token=admin).body)
        for node in self.nodes:
            for sku in skus:
                r = request(node, "GET", "/v1/inventory/" + sku, token=admin)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json["on_hand"], 10)


if __name__ == "__main__":
    unittest.main()
