#!/usr/bin/python3
"""A cluster of three real node processes on one PostgreSQL: membership, routing from any node,
failover after SIGKILL, fencing of a paused owner (SIGSTOP), and a rolling restart under load
(with cancels).

The invariants are read from the databases: every order answered 201 is confirmed, or cancelled and
refunded once its cancel was answered 200; no sku has more units confirmed and held than it has,
and its reserved units are those of its confirmed orders; every confirmed order has exactly one
captured payment; and no order is left unfinished once the sweep has run."""

import collections
import http.client
import os
import random
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import request, unique

SCOPES = "orders:write orders:read inventory:read"


def sql(url, query):
    r = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-F", "|", "-c", query],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql failed: %s" % r.stderr.decode(errors="replace"))
    return [line.split("|") for line in r.stdout.decode().splitlines() if line]


def view(node, token):
    r = request(node, "GET", "/admin/cluster", token=token, timeout=5)
    if r.status != 200:
        return {}
    return {m["name"]: m for m in r.json["members"]}


def all_stopped(pid):
    """Whether every thread of process `pid` is stopped (state T in /proc)."""
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "T":
                    return False
    except FileNotFoundError:  # a thread ended meanwhile: look again
        return False
    return True


def wait_for(predicate, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class Load:
    """Threads placing orders (1-3 lines) and reading stock through the nodes that are up.

    A request refused a connection never reached a server and is tried at the next node; every
    HTTP answer counts. One whose connection ended without an answer (reset, closed) is tried at
    the next node too; a placement carries an Idempotency-Key, so if that answer is a replay (or
    the key is still in progress), the first node had taken the request and its answer was lost:
    a failure (server_errors), as is any other error of the client."""

    def __init__(self, nodes, tokens, skus, threads=6, seed=1, cancel_share=0.0):
        self.nodes = nodes
        self.tokens = tokens
        self.skus = skus
        self.cancel_share = cancel_share  # of the orders answered 201, cancelled at once
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.created = {}  # order id -> customer token, for every 201
        self.cancel_tried = set()
        self.cancelled = {}  # order id -> the status a cancel answered 200 showed
        self.cancel_statuses = collections.Counter()
        self.statuses = collections.Counter()
        self.server_errors = []  # (node port, status, body) of every 5xx answer
        self.threads = [threading.Thread(target=self.run, args=(seed + i,), daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)

    def send(self, rng, method, path, body, token, key=None):
        order = list(self.nodes)
        rng.shuffle(order)
        headers = {"Idempotency-Key": key} if key else None
        cut_off = None  # the node whose connection ended without an answer
        for node in order:
            try:
                r = request(node, method, path, body, token=token, timeout=30, headers=headers)
            except ConnectionRefusedError:
                continue
            except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError):
                cut_off = node
                continue
            if cut_off is not None and key and (r.headers.get("idempotent-replayed") == "true" or r.status == 409):
                with self.lock:
                    self.server_errors.append((cut_off.port, "answer lost", "%s %s: %d at %d" % (
                        method, path, r.status, node.port)))
            return node, r
        return None, None

    def cancel(self, rng, order_id, token):
        with self.lock:
            self.cancel_tried.add(order_id)
        node, r = self.send(rng, "POST", "/v1/orders/%s/cancel" % order_id, None, token)
        if r is None:
            return
        with self.lock:
            self.cancel_statuses[r.status] += 1
            if r.status == 200:
                self.cancelled[order_id] = r.json["status"]
            if r.status >= 500:
                self.server_errors.append((node.port, r.status, r.body[-400:]))

    def run(self, seed):
        try:
            self.run_load(seed)
        except Exception as e:  # a worker that died would quietly send nothing more
            with self.lock:
                self.server_errors.append((None, "client error", repr(e)))

    def run_load(self, seed):
        rng = random.Random(seed)
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            token = rng.choice(self.tokens)
            if rng.random() < 0.3:
                node, r = self.send(rng, "GET", "/v1/inventory/" + rng.choice(self.skus), None, token)
            else:
                lines = rng.sample(self.skus, rng.randint(1, 3))
                body = harness.order_body([(s, rng.randint(1, 2)) for s in lines])
                node, r = self.send(rng, "POST", "/v1/orders", body, token, key="load-%d-%d" % (seed, n))
                if r is not None and r.status == 201:
                    with self.lock:
                        self.created[r.json["id"]] = token
                    if rng.random() < self.cancel_share:
                        self.cancel(rng, r.json["id"], token)
            if r is None:
                time.sleep(0.05)
                continue
            with self.lock:
                self.statuses[r.status] += 1
                if r.status >= 500 or r.status == 402:
                    self.server_errors.append((node.port, r.status, r.body[-400:]))


class ClusterTestCase(harness.NodeTestCase):

    def setUp(self):
        self.cluster = harness.Cluster(3).start()
        self.nodes = self.cluster.nodes
        self.orders_url, self.inventory_url = self.cluster.databases
        self.admin = self.nodes[0].token("ops", "admin")

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            self.cluster.close()

    def put_items(self, count, on_hand):
        skus = []
        for i in range(count):
            sku = unique("sku")
            node = self.nodes[i % len(self.nodes)]
            r = request(node, "PUT", "/v1/inventory/" + sku,
                        {"name": "item %d" % i, "price_cents": 500, "on_hand": on_hand}, token=self.admin)
            self.assertEqual(r.status, 201, r.body)
            skus.append(sku)
        return skus

    def all_up(self, names=("node-1", "node-2", "node-3")):
        for node in self.nodes:
            if not node.alive():
                return False
            v = view(node, self.admin)
            if any(v.get(n, {}).get("status") != "up" for n in names):
                return False
        return True

    def assert_invariants(self, load):
        # No order stays unfinished once the owners have swept (grace 1.5 s, sweep on view change).
        unfinished = "SELECT id, status FROM orders WHERE status IN ('pending','reserved','cancelling','shipping')"

        def settled():
            return sql(self.orders_url, unfinished) == []
        self.assertTrue(wait_for(settled, 40, 0.5), sql(self.orders_url, unfinished))
        status = dict(sql(self.orders_url, "SELECT id, status FROM orders"))
        payment = dict(sql(self.orders_url, "SELECT order_id, status FROM payments"))
        for oid in load.created:
            if oid in load.cancelled:  # a cancel answered 200: cancelled and refunded
                self.assertEqual(load.cancelled[oid], "cancelled", oid)
                self.assertEqual(status.get(oid), "cancelled", "order %s cancelled" % oid)
                self.assertEqual(payment.get(oid), "refunded", "order %s cancelled" % oid)
            elif oid in load.cancel_tried:  # its cancel's answer was not 200: either
                self.assertIn(status.get(oid), ("confirmed", "cancelled"), oid)
            else:
                self.assertEqual(status.get(oid), "confirmed", "order %s answered 201" % oid)
        # One captured payment per confirmed order, none for the others.
        captured = collections.Counter(
            row[0] for row in sql(self.orders_url, "SELECT order_id FROM payments WHERE status = 'captured'"))
        for oid, st in status.items():
            self.assertEqual(captured.get(oid, 0), 1 if st == "confirmed" else 0, (oid, st))
        # Stock: confirmed lines plus held reservations never exceed on_hand, and `reserved`
        # agrees with the active reservations. A reservation made by a node killed before it
        # wrote its order is released by its check once its item is active: every sku is read
        # (which activates it at its owner), and the invariants get 15 s to hold.
        confirmed = collections.Counter()
        for sku, qty in sql(self.orders_url,
                            "SELECT l.sku, sum(l.quantity) FROM order_lines l JOIN orders o "
                            "ON o.id = l.order_id WHERE o.status = 'confirmed' GROUP BY l.sku"):
            confirmed[sku] = int(qty)
        reader = self.nodes[0].token("reader", "inventory:read")

        def stock():
            rows = []
            for sku, on_hand, reserved in sql(self.inventory_url, "SELECT sku, on_hand, reserved FROM items"):
                request(self.nodes[0], "GET", "/v1/inventory/" + sku, token=reader, timeout=5)
                held = sql(self.inventory_url,
                           "SELECT coalesce(sum(quantity), 0) FROM reservations WHERE sku = '%s' "
                           "AND state IN ('held', 'committed')" % sku)[0][0]
                rows.append((sku, int(on_hand), int(reserved), int(held)))
            return rows

        def consistent():
            return all(reserved == held == confirmed[sku] for sku, _, reserved, held in stock())
        wait_for(consistent, 15, 0.5)
        for sku, on_hand, reserved, held in stock():
            self.assertEqual(reserved, held, sku)
            self.assertLessEqual(confirmed[sku], on_hand, sku)
            self.assertEqual(reserved, confirmed[sku], "%s: committed units match confirmed orders" % sku)


class MembershipAndRoutingTest(ClusterTestCase):

    def test_three_nodes_see_each_other_and_serve_any_entity(self):
        self.assertTrue(wait_for(self.all_up, 10), [view(n, self.admin) for n in self.nodes])
        for node in self.nodes:
            v = view(node, self.admin)
            self.assertEqual(set(v), {"node-1", "node-2", "node-3"})
            for m in v.values():
                self.assertTrue(m["cluster_address"].startswith("127.0.0.1:"), m)
                self.assertTrue(m["http_address"].startswith("127.0.0.1:"), m)
        # Enough skus that each node owns some (random names: with 12, one node in about 40 runs
        # owned none, and the listing below could not show all three).
        skus = self.put_items(30, 50)
        customer = self.nodes[1].token(unique("cust"), SCOPES)
        # An order placed through one node is readable through the others.
        r = request(self.nodes[1], "POST", "/v1/orders",
                    harness.order_body([(skus[0], 2), (skus[5], 1), (skus[9], 3)]), token=customer)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["status"], "confirmed")
        oid = r.json["id"]
        for node in self.nodes:
            got = request(node, "GET", "/v1/orders/" + oid, token=customer)
            self.assertEqual(got.status, 200, got.body)
            self.assertEqual(got.json["status"], "confirmed")
        # Stock changes through any node are seen by all.
        for i, sku in enumerate(skus):
            r = request(self.nodes[i % 3], "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 7},
                        token=self.admin)
            self.assertEqual(r.status, 200, r.body)
        expected = {sku: 57 for sku in skus}
        expected[skus[0]] -= 2
        expected[skus[5]] -= 1
        expected[skus[9]] -= 3
        for node in self.nodes:
            for sku in skus:
                got = request(node, "GET", "/v1/inventory/" + sku, token=customer)
                self.assertEqual(got.status, 200, got.body)
                self.assertEqual(got.json["available"], expected[sku], (node.port, sku))
        # Entities are spread: every node holds some of them.
        time.sleep(1.0)  # active counts travel with the next heartbeat
        counts = {name: sum(m["active_actors"].values()) for name, m in view(self.nodes[0], self.admin).items()}
        self.assertTrue(all(c > 0 for c in counts.values()), counts)
        metrics = request(self.nodes[1], "GET", "/metrics").body.decode()
        self.assertIn('emporium_cluster_members{status="up"} 3', metrics)
        self.assertIn('emporium_cluster_members{status="down"} 0', metrics)
        # Operators see the active actors of the whole cluster from any node.
        r = request(self.nodes[2], "GET", "/admin/actors?type=inventory&limit=1000", token=self.admin)
        self.assertEqual(r.status, 200, r.body)
        listed = {a["id"]: a["node"] for a in r.json["data"] if a["id"] in skus}
        self.assertEqual(set(listed), set(skus))
        self.assertEqual(set(listed.values()), {"node-1", "node-2", "node-3"})
        r = request(self.nodes[0], "GET", "/admin/actors?limit=5", token=self.admin)
        self.assertEqual(len(r.json["data"]), 5)
        # One actor, live from whichever node holds it; passivated from any node.
        sku = skus[5]
        for node in self.nodes:
            r = request(node, "GET", "/admin/actors/inventory/" + sku, token=self.admin)
            self.assertEqual(r.status, 200, r.body)
            self.assertTrue(r.json["active"])
            self.assertEqual(r.json["node"], listed[sku])
            self.assertEqual(r.json["state"]["on_hand"], 57)
        r = request(self.nodes[1], "POST", "/admin/actors/inventory/%s/passivate" % sku, token=self.admin)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json["passivated"])
        for node in self.nodes:  # as stored, with its owner named alike by every node
            r = request(node, "GET", "/admin/actors/inventory/" + sku, token=self.admin)
            self.assertFalse(r.json["active"])
            self.assertEqual(r.json["node"], listed[sku])
            self.assertEqual(r.json["state"]["on_hand"], 57)
        self.assertEqual(request(self.nodes[0], "GET", "/admin/actors/inventory/nope-" + sku,
                                 token=self.admin).status, 404)

    def start_failing_member(self, name, http_port=None):
        """Starts one more member on the cluster's databases, named `name` (on `http_port`),
        and waits for it to exit, which it must do with a non-zero code."""
        settings = dict(harness.CLUSTER_EXTRA)
        settings.update({"node.name": name, "cluster.enabled": "true",
                         "cluster.listen": "127.0.0.1:%d" % harness.free_port()})
        node = harness.Node(settings, databases=self.cluster.databases, secret=self.cluster.secret)
        if http_port is not None:
            node.port = http_port
        node.launch()
        self.cluster.nodes.append(node)
        node.expect_running = False
        node.proc.wait(30)
        self.assertNotEqual(node.proc.returncode, 0)
        return node

    def test_a_node_that_cannot_bind_http_leaves_and_exits(self):
        self.assertTrue(wait_for(self.all_up, 10))
        late = self.start_failing_member("node-4", http_port=self.nodes[0].port)  # taken
        self.assertIn("node-4 registered", late.log_text())
        # Shown down (API.md's statuses are up, suspect, down), and as having left.
        self.assertTrue(wait_for(lambda: view(self.nodes[1], self.admin).get("node-4", {}).get("left") is True, 5),
                        view(self.nodes[1], self.admin))
        self.assertEqual(view(self.nodes[1], self.admin)["node-4"]["status"], "down")
        # The others go on serving every entity.
        skus = self.put_items(6, 5)
        for sku in skus:
            self.assertEqual(request(self.nodes[2], "GET", "/v1/inventory/" + sku, token=self.admin).status, 200)

    def test_a_second_node_with_a_name_in_use_does_not_start(self):
        """node.name is unique in the cluster: a node started under the name of a live member (a
        copied configuration) stops at start naming the key, and the member is not disturbed."""
        self.assertTrue(wait_for(self.all_up, 10))
        before = view(self.nodes[1], self.admin)["node-1"]["incarnation"]
        twin = self.start_failing_member("node-1")
        self.assertIn("node.name", twin.log_text())
        self.assertNotIn("node-1 registered", twin.log_text())
        after = view(self.nodes[1], self.admin)["node-1"]
        self.assertEqual((after["incarnation"], after["status"]), (before, "up"))
        self.assertEqual(request(self.nodes[0], "GET", "/readyz").status, 200)


class IdempotencyAcrossNodesTest(ClusterTestCase):

    def setUp(self):
        # The transient card takes 0.7 s + 1.4 s of backoff before it fails: the first request
        # runs that long, and the placement timeout is longer.
        self.cluster = harness.Cluster(2, {"payment.retry_backoff_ms": "700",
                                           "payment.retries_max": "2",
                                           "orders.placement_timeout_ms": "20000"}).start()
        self.nodes = self.cluster.nodes
        self.orders_url, self.inventory_url = self.cluster.databases
        self.admin = self.nodes[0].token("ops", "admin")

    def test_the_same_key_on_another_node_while_the_first_runs_409_then_replays(self):
        self.assertTrue(wait_for(lambda: self.all_up(("node-1", "node-2")), 20))
        sku = self.put_items(1, 10)[0]
        cust = self.nodes[0].token(unique("cust"), "orders:write orders:read")
        key = unique("key")
        body = harness.order_body([(sku, 1)], card=harness.TRANSIENT)
        headers = {"Idempotency-Key": key}
        result = {}

        def first():
            try:
                result["r"] = request(self.nodes[0], "POST", "/v1/orders", body, token=cust, headers=headers, timeout=30)
            except Exception as e:  # reported below
                result["e"] = e

        t = threading.Thread(target=first)
        t.start()
        time.sleep(0.5)
        second = request(self.nodes[1], "POST", "/v1/orders", body, token=cust, headers=headers)
        still_running = t.is_alive()
        t.join(60)
        self.assertNotIn("e", result, result.get("e"))
        self.assertTrue(still_running, "the first request finished before the second was answered")
        self.assertProblem(second, 409)
        r1 = result["r"]
        self.assertStatus(r1, 402)
        third = request(self.nodes[1], "POST", "/v1/orders", body, token=cust, headers=headers)
        self.assertStatus(third, 402)
        self.assertEqual(third.headers.get("idempotent-replayed"), "true")
        self.assertEqual(third.json, r1.json)
        self.assertEqual([o["id"] for o in self.list_all_orders(self.nodes[1], cust)], [r1.json["id"]])
        # Another body under the key, on either node: 422.
        other = harness.order_body([(sku, 2)], card=harness.TRANSIENT)
        for node in self.nodes:
            self.assertProblem(request(node, "POST", "/v1/orders", other, token=cust, headers=headers), 422)


class FailoverTest(ClusterTestCase):

    def test_sigkill_under_load_keeps_every_acknowledged_order(self):
        self.assertTrue(wait_for(self.all_up, 10))
        skus = self.put_items(30, 40)  # scarce: some orders are rejected for stock
        tokens = [self.nodes[0].token(unique("cust"), SCOPES) for _ in range(4)]
        victim = self.nodes[1]
        survivors = [self.nodes[0], self.nodes[2]]
        load = Load(self.nodes, tokens, skus).start()
        time.sleep(3)
        victim.kill9()
        killed_at = time.time()
        # Failover: every sku (a third of them were owned by the victim) is served again.
        reader = survivors[0].token("reader", "inventory:read")

        def all_served():
            return all(request(survivors[0], "GET", "/v1/inventory/" + s, token=reader, timeout=5).status == 200
                       for s in skus)
        self.assertTrue(wait_for(all_served, 20, 0.02))
        failover_s = time.time() - killed_at
        print("\nfailover: every entity served again %.0f ms after SIGKILL" % (failover_s * 1000))
        self.assertLess(failover_s, 5.0)
        time.sleep(3)
        load.stop()
        print("load: %s, %d orders acknowledged" % (dict(load.statuses), len(load.created)))
        self.assertGreater(len(load.created), 20)
        # The victim comes back as a new incarnation and rejoins.
        victim.start()
        self.assertTrue(wait_for(self.all_up, 15), [view(n, self.admin) for n in self.nodes])
        self.assertGreaterEqual(view(self.nodes[0], self.admin)["node-2"]["incarnation"], 2)
        self.assert_invariants(load)


class FencingTest(ClusterTestCase):

    def test_paused_owner_cannot_overwrite_the_new_owner(self):
        self.assertTrue(wait_for(self.all_up, 10))
        skus = self.put_items(24, 100)
        paused = self.nodes[2]
        # The skus node-3 holds active.
        r = request(paused, "GET", "/admin/actors?type=inventory&limit=1000", token=self.admin)
        self.assertEqual(r.status, 200, r.body)
        owned = [a["id"] for a in r.json["data"] if a["id"] in skus]
        self.assertTrue(owned, "node-3 owns none of the skus")
        os.kill(paused.proc.pid, signal.SIGSTOP)
        try:
            # The stop takes effect once each of its threads is scheduled again: on a busy machine
            # a thread could still take a request sent right after the signal.
            self.assertTrue(wait_for(lambda: all_stopped(paused.proc.pid), 10, 0.01))
            # Writes sent to the paused node wait in its socket buffers meanwhile.
            late = {}

            def late_adjust(sku):
                try:
                    late[sku] = request(paused, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 5},
                                        token=self.admin, timeout=60).status
                except OSError as e:
                    late[sku] = repr(e)
            threads = [threading.Thread(target=late_adjust, args=(s,), daemon=True) for s in owned]
            for t in threads:
                t.start()
            # Past the failure timeout the others declare it down and take its entities over.
            other = self.nodes[0]

            def moved():
                v = view(other, self.admin)
                return v.get("node-3", {}).get("status") in ("down", "suspect")
            self.assertTrue(wait_for(moved, 10))
            time.sleep(0.5)
            for sku in owned:
                r = request(other, "POST", "/v1/inventory/%s/adjust" % sku, {"delta": 1000}, token=self.admin)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.json["available"], 1100)
            # Suspect is enough to move its entities; the pause lasts until the membership table
            # says down too (past the failure timeout), so that the paused node finds itself
            # declared down when it resumes.
            self.assertTrue(wait_for(lambda: view(other, self.admin).get("node-3", {}).get("status") == "down", 10),
                            view(other, self.admin))
        finally:
            os.kill(paused.proc.pid, signal.SIGCONT)
        for t in threads:
            t.join(60)
        # It rejoins as a new incarnation.
        self.assertTrue(wait_for(self.all_up, 15), [view(n, self.admin) for n in self.nodes])
        self.assertGreaterEqual(view(self.nodes[0], self.admin)["node-3"]["incarnation"], 2)
        self.assertIn("stops serving entities", paused.log_text())
        # No write of the new owner was lost: a late write either failed or applied on top.
        for sku in owned:
            on_hand = int(sql(self.inventory_url, "SELECT on_hand FROM items WHERE sku = '%s'" % sku)[0][0])
            expected = 1100 + (5 if late[sku] == 200 else 0)
            self.assertEqual(on_hand, expected, (sku, late[sku]))
        print("\nfencing: late writes answered %s" % dict(collections.Counter(map(str, late.values()))))


def make_ca(directory, name):
    """A CA and one certificate it signed (EC P-256), as PEM files under `directory`."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", name + "-ca.key", "-out", name + "-ca.pem", "-days", "2", "-subj", "/CN=" + name + "-ca")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
    run("x509", "-req", "-in", name + ".csr", "-CA", name + "-ca.pem", "-CAkey", name + "-ca.key",
        "-CAcreateserial", "-out", name + ".pem", "-days", "2")
    return {"cluster.tls_certificate": os.path.join(directory, name + ".pem"),
            "cluster.tls_key": os.path.join(directory, name + ".key"),
            "cluster.tls_ca_file": os.path.join(directory, name + "-ca.pem")}


class TlsTest(ClusterTestCase):

    def setUp(self):
        import tempfile
        self.pki = tempfile.mkdtemp(prefix="emporium-pki-")
        self.tls = make_ca(self.pki, "member")
        self.cluster = harness.Cluster(2, extra=self.tls).start()
        self.nodes = self.cluster.nodes
        self.orders_url, self.inventory_url = self.cluster.databases
        self.admin = self.nodes[0].token("ops", "admin")

    def tearDown(self):
        super().tearDown()
        import shutil
        shutil.rmtree(self.pki, ignore_errors=True)

    def test_nodes_talk_over_tls_and_refuse_a_stranger(self):
        names = ("node-1", "node-2")
        self.assertTrue(wait_for(lambda: self.all_up(names), 10), [view(n, self.admin) for n in self.nodes])
        self.assertIn("(TLS)", self.nodes[0].log_text())
        skus = self.put_items(8, 20)  # spread over both nodes, so calls cross between them
        customer = self.nodes[0].token(unique("cust"), SCOPES)
        r = request(self.nodes[1], "POST", "/v1/orders", harness.order_body([(s, 1) for s in skus[:4]]),
                    token=customer)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["status"], "confirmed")
        for node in self.nodes:
            self.assertEqual(request(node, "GET", "/v1/orders/" + r.json["id"], token=customer).status, 200)
        # A node whose certificate comes from another CA registers in the table but no member
        # accepts its connection: it is suspect and owns nothing.
        stranger_tls = make_ca(self.pki, "stranger")
        settings = dict(harness.CLUSTER_EXTRA)
        settings.update(stranger_tls)
        settings.update({"node.name": "node-x", "cluster.enabled": "true",
                         "cluster.listen": "127.0.0.1:%d" % harness.free_port()})
        stranger = harness.Node(settings, databases=self.cluster.databases, secret=self.cluster.secret)
        self.cluster.nodes.append(stranger)
        stranger.launch()

        def refused():
            v = view(self.nodes[0], self.admin)
            return v.get("node-x", {}).get("status") == "suspect"
        self.assertTrue(wait_for(refused, 15), view(self.nodes[0], self.admin))
        self.assertNotIn("connected to node-x", self.nodes[0].log_text())
        # The members keep serving every sku between themselves.
        for sku in skus:
            self.assertEqual(request(self.nodes[0], "GET", "/v1/inventory/" + sku, token=customer).status, 200)


class RollingRestartTest(ClusterTestCase):

    def test_rolling_restart_fails_no_accepted_request(self):
        self.assertTrue(wait_for(self.all_up, 10))
        skus = self.put_items(30, 100000)
        tokens = [self.nodes[0].token(unique("cust"), SCOPES) for _ in range(4)]
        # A third of the orders placed are cancelled at once, through any node: across the view
        # changes, a cancel may reach a new owner while the old one still finishes the order.
        load = Load(self.nodes, tokens, skus, threads=4, cancel_share=0.3).start()
        time.sleep(2)
        for node in self.nodes:
            self.assertEqual(node.stop(), 0)  # SIGTERM: leave, drain, flush
            time.sleep(0.5)
            node.start()
            self.assertTrue(wait_for(self.all_up, 15), [view(n, self.admin) for n in self.nodes if n.alive()])
            time.sleep(1)
        time.sleep(1)
        load.stop()
        print("\nrolling restart: %s, %d orders acknowledged; cancels %s" %
              (dict(load.statuses), len(load.created), dict(load.cancel_statuses)))
        self.assertEqual(load.server_errors, [])
        self.assertGreater(len(load.created), 50)
        self.assertGreater(len(load.cancelled), 10)
        self.assert_invariants(load)


if __name__ == "__main__":
    unittest.main()
