#!/usr/bin/python3
"""Edge limits and start-up: slow clients are cut off with 408 within the request deadline while
others are served, framing that Beast lets through is refused, the `migrate` command applies the
migrations once, and a bad configuration stops the node with a message naming the key."""

import os
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import request

NODE = None
DEADLINE_MS = 700


def setUpModule():
    global NODE
    NODE = harness.start_node({"http.header_timeout_ms": str(DEADLINE_MS),
                               "http.body_timeout_ms": str(DEADLINE_MS)})


def tearDownModule():
    harness.stop_node(NODE)


def read_all(sock, timeout):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


class SlowClientTest(harness.NodeTestCase):

    def slow(self, first_bytes):
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        start = time.time()
        s.sendall(first_bytes)
        # Others are served while this client stalls.
        self.assertStatus(request(NODE, "GET", "/healthz"), 200)
        data = read_all(s, 10)
        took = time.time() - start
        s.close()
        return data, took

    def test_slow_headers_get_408_within_the_deadline(self):
        data, took = self.slow(b"GET /v1/inventory/x HTTP/1.1\r\nHost: a\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:200])
        self.assertIn(b"application/problem+json", data)
        self.assertLess(took, DEADLINE_MS / 1000 + 2.0)
        self.assertGreaterEqual(took, DEADLINE_MS / 1000 * 0.8)

    def test_slow_body_gets_408_within_the_deadline(self):
        head = (b"POST /v1/orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{\"items\":")
        data, took = self.slow(head)
        self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:200])
        self.assertLess(took, DEADLINE_MS / 1000 + 2.0)

    def test_idle_keep_alive_connection_is_not_cut_at_the_request_deadline(self):
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        time.sleep(DEADLINE_MS / 1000 * 1.5)  # idle, before any byte: the idle timeout applies
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        s.settimeout(5)
        data = s.recv(65536)
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:200])


class FramingTest(harness.NodeTestCase):
    """Each smuggling or framing shape: 400 problem+json, then the connection is closed."""

    def refused_and_closed(self, raw, what, status=400):
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        s.sendall(raw)
        s.settimeout(5)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break  # the server closed the connection
                data += chunk
        except ConnectionResetError:
            pass  # closed too, with the rest of what was sent unread
        except socket.timeout:
            self.fail("%s: the connection was not closed within 5 s (got %r)" % (what, data[:120]))
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 %d" % status), "%s: %r" % (what, data[:120]))
        self.assertIn(b"application/problem+json", data, what)
        self.assertEqual(data.count(b"HTTP/1.1 "), 1, "%s: a second response means it kept reading" % what)

    def test_smuggling_and_framing_shapes(self):
        base = b"POST /v1/orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        chunked = b"2\r\n{}\r\n0\r\n\r\n"
        follow = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"  # must never be answered
        cases = {
            "duplicate Content-Length": base + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}" + follow,
            "differing Content-Length": base + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}" + follow,
            "malformed Content-Length": base + b"Content-Length: 2x\r\n\r\n{}" + follow,
            "negative Content-Length": base + b"Content-Length: -2\r\n\r\n{}" + follow,
            "Transfer-Encoding and Content-Length": base + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n" + chunked + follow,
            "Transfer-Encoding not chunked": base + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked + follow,
            "Transfer-Encoding identity": base + b"Transfer-Encoding: identity\r\n\r\n{}" + follow,
            "two Transfer-Encoding": base + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + follow,
            "chunked HTTP/1.0": b"POST /v1/orders HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + follow,
            "Content-Length in trailer": base + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nContent-Length: 5\r\n\r\n" + follow,
            "Transfer-Encoding in trailer": base + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n" + follow,
            "Host in trailer": base + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nHost: b\r\n\r\n" + follow,
            "obs-fold": b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n" + follow,
            "space before colon": b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length : 0\r\n\r\n" + follow,
            "Content-Length list": base + b"Content-Length: 2, 2\r\n\r\n{}" + follow,
            "Authorization only in a trailer": b"GET /v1/orders HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nAuthorization: Bearer x.y.z\r\n\r\n" + follow,
            "bad chunk size": base + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" + follow,
            "no Host in HTTP/1.1": b"GET /healthz HTTP/1.1\r\n\r\n" + follow,
            # Refused on its header, before a 100 (Continue) or its body is asked for: the answer
            # is the first thing sent back.
            "no Host, expecting a 100": b"POST /v1/orders HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
            "Transfer-Encoding Chunked": base + b"Transfer-Encoding: Chunked\r\n\r\n" + chunked + follow,
            # Refused at once, not at the header deadline (it would be a 408 then).
            "lines ended by LF alone": b"GET /healthz HTTP/1.1\nHost: a\n\n",
            "a bare LF among CRLF lines": b"GET /healthz HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n" + follow,
        }
        for what, raw in cases.items():
            with self.subTest(case=what):
                self.refused_and_closed(raw, what)
        self.refused_and_closed(b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n", "HTTP/2.0 in a request line", 505)

    def test_accepted_shapes(self):
        """Framing HTTP/1.1 allows, answered: the absolute form of the target, HTTP/1.0 without a Host, and a 100 (Continue) for a client that waits for it. (A
        Transfer-Encoding must be exactly `chunked`, DESIGN.md: `Chunked` is refused above.)"""
        for what, raw in (
                ("absolute form", b"GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                ("absolute form, scheme in capitals", b"GET HTTP://127.0.0.1/healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
                ("HTTP/1.0 without a Host", b"GET /healthz HTTP/1.0\r\n\r\n")):
            with self.subTest(case=what):
                r = harness.raw_request(NODE, raw)
                self.assertStatus(r, 200, what)
        # An absolute form with userinfo or without a host is a malformed target (RFC 9110 4.2).
        for what, target in (("userinfo", b"http://user:pw@a/healthz"), ("no host", b"http:///healthz")):
            with self.subTest(case=what):
                r = harness.raw_request(NODE, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                self.assertStatus(r, 400, what)
                self.assertIn("application/problem+json", r.headers.get("content-type", ""))
        tok = NODE.token("cust-continue", "orders:write")
        body = b"{}"
        head = ("POST /v1/orders HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n"
                "Connection: close\r\n\r\n" % (tok, len(body))).encode()
        s = socket.create_connection((NODE.host, NODE.port), timeout=10)
        try:
            s.sendall(head)
            first = b""
            while b"\r\n\r\n" not in first:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "closed before a 100 (Continue)")
                first += chunk
            self.assertTrue(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first[:100])
            s.sendall(body)
            rest = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):] + read_all(s, 10)
            self.assertTrue(rest.startswith(b"HTTP/1.1 400"), rest[:200])  # the empty order, refused
        finally:
            s.close()


class CommandLineTest(unittest.TestCase):

    def run_emporium(self, *args, env_extra=None):
        env = dict(os.environ)
        env.update(env_extra or {})
        return subprocess.run([harness.emporium_bin()] + list(args), capture_output=True, text=True,
                              timeout=60, env=env, cwd=tempfile.gettempdir())

    def test_migrate_applies_each_migration_once(self):
        d = tempfile.mkdtemp(prefix="emporium-migrate-")
        sets = ["--set", "database.orders=sqlite:%s/o.db" % d, "--set", "database.inventory=sqlite:%s/i.db" % d]
        first = self.run_emporium("migrate", *sets)
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertIn("orders: 8 migrations applied", first.stdout)
        self.assertIn("inventory: 4 migrations applied", first.stdout)
        again = self.run_emporium("migrate", *sets)
        self.assertIn("orders: 0 migrations applied", again.stdout)

    def test_bad_configuration_names_the_key(self):
        cases = [
            (["--set", "http.threads=abc"], None, "http.threads"),
            (["--set", "nosuch.key=1"], None, "nosuch.key"),
            (["--set", "cluster.enabled=true"], None, "cluster.enabled"),
            (["--set", "http.listen=127.0.0.1:99999"], None, "http.listen"),
            ([], {"EMPORIUM_RATE_LIMIT_RATE": "fast"}, "rate_limit.rate"),
            (["--set", "payment.provider=http", "--set", "payment.url=https://psp.example/v1"], None,
             "payment.url"),
            (["--set", "payment.provider=http", "--set", "payment.url=http://"], None, "payment.url"),
            (["--set", "payment.timeout_ms=50"], None, "payment.timeout_ms"),
            (["--set", "database.inventory=sqlite:"], None, "database.inventory"),
            (["--set", "database.orders=postgresql://"], None, "database.orders"),
            (["--set", "auth.issuer="], None, "auth.issuer"),
            (["--set", "actors.scheduler_threads=100000"], None, "actors.scheduler_threads"),
            ([], {"EMPORIUM_HTTP_LISTN": "127.0.0.1:0"}, "http.listn"),
        ]
        for args, env, key in cases:
            with self.subTest(key=key):
                r = self.run_emporium("serve", *args, env_extra=env)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(key, r.stderr)

    def test_start_up_failures_name_what_failed(self):
        d = tempfile.mkdtemp(prefix="emporium-cli-")
        dbs = ["--set", "database.orders=sqlite:%s/o.db" % d, "--set", "database.inventory=sqlite:%s/i.db" % d]
        # The HTTP port taken: the key, and no source path of a library.
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        try:
            r = self.run_emporium("serve", "--set", "http.listen=127.0.0.1:%d" % taken.getsockname()[1],
                                  "--set", "node.data_dir=" + d, *dbs)
        finally:
            taken.close()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("http.listen", r.stderr)
        self.assertNotIn("/usr/include", r.stderr)
        # node.data_dir a file: the dev secret cannot be kept there.
        blocker = os.path.join(d, "file")
        open(blocker, "w").close()
        r = self.run_emporium("serve", "--set", "http.listen=127.0.0.1:0", "--set", "node.data_dir=" + blocker, *dbs)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("node.data_dir", r.stderr)
        # migrate: an empty SQLite path is a configuration error (it read freed memory), and a
        # database that cannot be reached is named.
        r = self.run_emporium("migrate", "--set", "database.orders=sqlite:", "--set",
                              "database.inventory=sqlite:%s/i.db" % d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("database.orders", r.stderr)
        r = self.run_emporium("migrate", "--set", "database.orders=sqlite:%s/o.db" % d, "--set",
                              "database.inventory=postgresql://postgres@127.0.0.1:1/none")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("database.inventory", r.stderr)

    def test_an_empty_config_path_is_refused(self):
        r = self.run_emporium("serve", "--config", "")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--config", r.stderr)

    def test_the_dev_secret_is_its_owners_alone(self):
        d = tempfile.mkdtemp(prefix="emporium-secret-")
        r = self.run_emporium("token", "--sub", "a", "--scope", "orders:read", "--set", "node.data_dir=" + d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.stat(os.path.join(d, "dev-secret")).st_mode & 0o777, 0o600)
        self.assertFalse(os.path.exists(os.path.join(d, "dev-secret.tmp")))
        # A subject no node takes is refused, not signed.
        for sub in ("", "a\tb", "x" * 256):
            r = self.run_emporium("token", "--sub", sub, "--scope", "orders:read", "--set", "node.data_dir=" + d)
            self.assertNotEqual(r.returncode, 0, repr(sub))
            self.assertIn("--sub", r.stderr)

    def test_token_command_signs_a_token_the_node_accepts(self):
        tok = NODE.token("cli-user", "inventory:read")
        self.assertEqual(tok.count("."), 2)
        r = request(NODE, "GET", "/v1/inventory/none", token=tok)
        self.assertEqual(r.status, 404)


if __name__ == "__main__":
    unittest.main()
