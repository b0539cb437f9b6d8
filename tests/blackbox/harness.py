#!/usr/bin/python3
"""Black-box test harness for the Emporium HTTP service.

Everything here talks to a real `emporium` process through its public surface only
(command line, HTTP, files in its data dir), as described by shared/API.md.

Environment:
  EMPORIUM_BIN            path to the `emporium` executable (required)
  EMPORIUM_TEST_BACKEND   `sqlite` (default) or `postgres`
  EMPORIUM_TEST_PG        for postgres: admin libpq URI, e.g.
                          postgresql://postgres@127.0.0.1:54329/postgres
  EMPORIUM_TEST_KEEP      if set to 1: keep the nodes' temp dirs (and databases) for inspection
"""

import atexit
import base64
import collections
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

BACKEND = (os.environ.get("EMPORIUM_TEST_BACKEND") or "sqlite").strip().lower()
KEEP = os.environ.get("EMPORIUM_TEST_KEEP", "") not in ("", "0")

READY_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0

# Test cards of the simulated payment provider (API.md "Simulated payment provider cards").
VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
DECLINED = "4000000000000002"
NO_FUNDS = "4000000000009995"
TRANSIENT = "4000000000000119"
ALL_TEST_CARDS = (VISA, MASTERCARD, DECLINED, NO_FUNDS, TRANSIENT)

ORDER_STATUSES = {"pending", "reserved", "confirmed", "shipped", "rejected", "payment_failed", "cancelled"}
FINAL_STATUSES = {"confirmed", "shipped", "rejected", "payment_failed", "cancelled"}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")

# Every node gets a rate limit far above anything a test sends: these suites test orders, not
# rate limiting, and many of them send hundreds of requests for one principal in a second.
DEFAULT_EXTRA = {
    "rate_limit.rate": "1000000.0",
    "rate_limit.burst": "1000000.0",
}


def emporium_bin():
    path = os.environ.get("EMPORIUM_BIN")
    if not path:
        raise RuntimeError("EMPORIUM_BIN is not set: point it at the built `emporium` executable")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError("EMPORIUM_BIN=%r is not an executable file" % path)
    return os.path.abspath(path)


def unique(prefix="t"):
    """A fresh identifier, e.g. for skus and customer ids: [A-Za-z0-9._-] only."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------------

Response = collections.namedtuple("Response", "status headers body json")
_DEFAULT = object()


def _addr(target):
    if isinstance(target, Node):
        return target.host, target.port
    if isinstance(target, int):
        return "127.0.0.1", target
    return target


def _parse_json(body):
    if not body:
        return None
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None


def _lower_headers(pairs):
    out = {}
    for k, v in pairs:
        k = k.lower()
        out[k] = v if k not in out else out[k] + ", " + v
    return out


def connect(target, timeout=HTTP_TIMEOUT_S):
    host, port = _addr(target)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def request(target, method, path, body=None, token=None, headers=None, conn=None,
            content_type=_DEFAULT, timeout=HTTP_TIMEOUT_S):
    """One HTTP request. Returns Response(status, headers lower-cased dict, body bytes, json|None).

    body: None, bytes/str (sent as is) or any other value (sent as JSON).
    content_type: defaults to application/json when there is a body; None sends no Content-Type.
    A new connection is opened (and closed) per request unless `conn` is given.
    """
    hdrs = {}
    if body is not None and not isinstance(body, (bytes, bytearray, str)):
        body = json.dumps(body).encode("utf-8")
    elif isinstance(body, str):
        body = body.encode("utf-8")
    if content_type is _DEFAULT:
        content_type = "application/json" if body is not None else None
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    if headers:
        hdrs.update(headers)
    own = conn is None
    c = conn if conn is not None else connect(target, timeout)
    try:
        c.request(method, path, body=body, headers=hdrs)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, _lower_headers(r.getheaders()), data, _parse_json(data))
    finally:
        if own:
            c.close()


def raw_request(target, head, body=b"", early_response_wait_s=0.5, timeout=HTTP_TIMEOUT_S):
    """Sends a hand-made request (head: bytes up to and including the blank line) on a raw
    socket. If the server answers right after the head (e.g. 413 on Content-Length alone), the
    body is not sent. Returns a Response parsed from whatever the server sent back."""
    host, port = _addr(target)
    s = socket.create_connection((host, port), timeout=timeout)
    received = b""
    try:
        try:
            s.sendall(head)
            if body:
                s.settimeout(early_response_wait_s)
                try:
                    received = s.recv(65536)
                except socket.timeout:
                    received = b""
                s.settimeout(timeout)
                if not received:
                    s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(timeout)
        deadline = time.time() + timeout
        while time.time() < deadline:
            parsed = _parse_raw_response(received)
            if parsed is not None:
                return parsed
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                chunk = b""
            if not chunk:
                break
            received += chunk
        parsed = _parse_raw_response(received, eof=True)
        if parsed is None:
            raise AssertionError("no complete HTTP response received; got %r" % received[:300])
        return parsed
    finally:
        s.close()


def read_until_closed(sock):
    """Everything the server sends on `sock` until it closes the connection (a reset raises)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def _parse_raw_response(data, eof=False):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("iso-8859-1")
    lines = head.split("\r\n")
    m = re.match(r"HTTP/\d\.\d (\d{3})", lines[0])
    if not m:
        raise AssertionError("bad status line %r" % lines[0])
    pairs = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        pairs.append((k.strip(), v.strip()))
    headers = _lower_headers(pairs)
    rest = data[end + 4:]
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(rest) < n:
            return None if not eof else Response(int(m.group(1)), headers, rest, _parse_json(rest))
        rest = rest[:n]
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        decoded, ok = _dechunk(rest)
        if not ok and not eof:
            return None
        rest = decoded
    elif not eof:
        return None
    return Response(int(m.group(1)), headers, rest, _parse_json(rest))


def _dechunk(data):
    out = b""
    while True:
        i = data.find(b"\r\n")
        if i < 0:
            return out, False
        size = int(data[:i].split(b";")[0] or b"0", 16)
        if size == 0:
            return out, True
        if len(data) < i + 2 + size + 2:
            return out, False
        out += data[i + 2:i + 2 + size]
        data = data[i + 2 + size + 2:]


# --------------------------------------------------------------------------------------------
# JWT helpers (to craft tokens the `emporium token` command would never print)
# --------------------------------------------------------------------------------------------

def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token):
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), s


def sign_jwt(key, header, claims, alg=None):
    """Builds a compact JWS. alg: 'HS256' (default: header's alg), 'HS512', or 'none' (empty
    signature)."""
    alg = alg or header.get("alg", "HS256")
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    if alg == "HS256":
        sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    elif alg == "HS512":
        sig = hmac.new(key, signing_input.encode(), hashlib.sha512).digest()
    elif alg == "none":
        sig = b""
    else:
        raise ValueError(alg)
    return signing_input + "." + b64url(sig)


# --------------------------------------------------------------------------------------------
# Postgres databases
# --------------------------------------------------------------------------------------------

def _pg_admin():
    uri = os.environ.get("EMPORIUM_TEST_PG")
    if not uri:
        raise RuntimeError("EMPORIUM_TEST_BACKEND=postgres needs EMPORIUM_TEST_PG (admin libpq URI)")
    return uri


def _pg_url_for(dbname):
    parts = urllib.parse.urlsplit(_pg_admin())
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _psql(sql, check=True):
    r = subprocess.run(["psql", _pg_admin(), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError("psql %r failed: %s" % (sql, r.stderr.decode(errors="replace")))
    return r.returncode == 0


def pg_create_database():
    name = "emporium_bb_" + uuid.uuid4().hex[:16]
    _psql("CREATE DATABASE %s" % name)
    return name, _pg_url_for(name)


def pg_drop_database(name):
    if not _psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name, check=False):
        _psql("DROP DATABASE IF EXISTS %s" % name, check=False)


# --------------------------------------------------------------------------------------------
# Node
# --------------------------------------------------------------------------------------------

class Node:
    """One `emporium serve` process with its own temp dir, databases, port and HS256 secret."""

    live = []
    _lock = threading.Lock()

    def __init__(self, extra=None, databases=None, secret=None):
        """databases: (orders_url, inventory_url) shared with other nodes (a cluster); the caller
        owns them. secret: the HS256 secret (nodes of one cluster share it)."""
        self.bin = emporium_bin()
        self.tmpdir = tempfile.mkdtemp(prefix="emporium-bb-")
        self.secret = secret or os.urandom(32).hex()
        self.extra = dict(DEFAULT_EXTRA)
        self.extra.update(extra or {})
        self.host = "127.0.0.1"
        self.port = free_port()
        self.log_path = os.path.join(self.tmpdir, "node.log")
        self.proc = None
        self.expect_running = False
        self._dbs = []
        self._tokens = {}
        self._key = None
        if databases is not None:
            self.orders_url, self.inventory_url = databases
        elif BACKEND == "sqlite":
            self.orders_url = "sqlite:%s" % os.path.join(self.tmpdir, "orders.db")
            self.inventory_url = "sqlite:%s" % os.path.join(self.tmpdir, "inventory.db")
        elif BACKEND == "postgres":
            n1, self.orders_url = pg_create_database()
            self._dbs.append(n1)
            n2, self.inventory_url = pg_create_database()
            self._dbs.append(n2)
        else:
            raise RuntimeError("EMPORIUM_TEST_BACKEND must be sqlite or postgres, not %r" % BACKEND)
        with Node._lock:
            Node.live.append(self)

    # -- process control ---------------------------------------------------------------------

    @property
    def base_url(self):
        return "http://%s:%d" % (self.host, self.port)

    def command(self):
        cmd = [self.bin, "serve",
               "--set", "http.listen=%s:%d" % (self.host, self.port),
               "--set", "database.orders=%s" % self.orders_url,
               "--set", "database.inventory=%s" % self.inventory_url,
               "--set", "node.data_dir=%s" % self.tmpdir,
               "--set", "auth.hs256_secret=%s" % self.secret]
        for k, v in self.extra.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        return cmd

    def start(self):
        self.launch()
        self.wait_ready()
        return self

    def launch(self):
        """Starts the process without waiting for it to be ready."""
        assert self.proc is None or self.proc.poll() is not None, "node already running"
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.tmpdir)
        finally:
            log.close()
        self.expect_running = True
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.time() + timeout
        for path in ("/healthz", "/readyz"):
            last = None
            while True:
                if self.proc.poll() is not None:
                    self.expect_running = False
                    raise RuntimeError("emporium exited with %s before it was ready; log tail:\n%s"
                                       % (self.proc.returncode, self.log_tail()))
                try:
                    r = request(self, "GET", path, timeout=2)
                    last = r.status
                    if r.status == 200:
                        break
                except OSError as e:
                    last = repr(e)
                if time.time() > deadline:
                    raise RuntimeError("emporium not ready within %.0f s (%s last: %s); log tail:\n%s"
                                       % (timeout, path, last, self.log_tail()))
                time.sleep(0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if self.expect_running and not self.alive():
            self.expect_running = False
            raise AssertionError("emporium exited unexpectedly with %s; log tail:\n%s"
                                 % (self.proc.returncode, self.log_tail()))

    def stop(self):
        """SIGTERM, wait 10 s, then SIGKILL. Returns the exit code (None if never started)."""
        self.expect_running = False
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                sys.stderr.write("warning: emporium did not stop within 10 s of SIGTERM; killing\n")
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self):
        self.expect_running = False
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self):
        """Stops (if running) and starts again on the same data, port and secret."""
        if self.alive():
            self.stop()
        return self.start()

    def close(self):
        """Stops the node and removes its temp dir and databases (best effort)."""
        died = self.expect_running and not self.alive()
        rc = self.proc.returncode if (died and self.proc) else None
        running = self.expect_running and not died
        stopped = self.stop()
        # A node that was serving must leave cleanly on SIGTERM (leave, drain, flush): a crash or
        # a hang there fails its test too.
        unclean = running and stopped != 0
        tail = self.log_tail() if unclean else ""
        with Node._lock:
            if self in Node.live:
                Node.live.remove(self)
        if KEEP:
            sys.stderr.write("kept emporium node dir %s (dbs %s)\n" % (self.tmpdir, self._dbs))
        else:
            for name in self._dbs:
                try:
                    pg_drop_database(name)
                except Exception:  # best effort
                    pass
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if died:
            raise AssertionError("emporium had exited unexpectedly with %s" % rc)
        if unclean:
            raise AssertionError("emporium exited with %s on SIGTERM; log tail:\n%s" % (stopped, tail))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- tokens ------------------------------------------------------------------------------

    def _auth_sets(self, secret):
        sets = ["--set", "auth.hs256_secret=%s" % secret]
        for k, v in self.extra.items():
            if k.startswith("auth.") and k != "auth.hs256_secret":
                sets += ["--set", "%s=%s" % (k, v)]
        return sets

    def token(self, sub, scope, ttl=3600):
        """A token printed by `emporium token` with this node's secret (cached for long ttls)."""
        key = (sub, scope, ttl)
        if ttl >= 600 and key in self._tokens:
            return self._tokens[key]
        tok = self.token_with_secret(sub, scope, self.secret, ttl)
        if ttl >= 600:
            self._tokens[key] = tok
        return tok

    def token_with_secret(self, sub, scope, secret, ttl=3600):
        cmd = [self.bin, "token", "--sub", sub, "--scope", scope, "--ttl", str(ttl)] + self._auth_sets(secret)
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmpdir, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("`emporium token` failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
        tok = r.stdout.decode().strip()
        if tok.count(".") != 2:
            raise RuntimeError("`emporium token` printed no JWT: %r" % tok[:200])
        return tok

    def signing_key(self):
        """The HMAC key bytes the node uses: found by reproducing a signature of `emporium token`
        (the secret string's bytes, or failing that its hex decoding)."""
        if self._key is None:
            tok = self.token("key-probe", "orders:read")
            h, p, s = tok.split(".")
            want = b64url_decode(s)
            for cand in (self.secret.encode(), bytes.fromhex(self.secret)):
                if hmac.compare_digest(hmac.new(cand, (h + "." + p).encode(), hashlib.sha256).digest(), want):
                    self._key = cand
                    break
            else:
                raise AssertionError("cannot reproduce the HS256 signature of `emporium token` "
                                     "from auth.hs256_secret")
        return self._key

    def craft_token(self, sub, scope, header_changes=None, claim_changes=None, drop_claims=(),
                    alg=None, key=None):
        """A token built in Python, starting from the header and claims `emporium token` uses,
        with claims changed/removed. Times are set fresh (iat=nbf=now, exp=now+3600) unless
        overridden."""
        header, claims, _ = jwt_parts(self.token("template", "orders:read"))
        had_nbf = "nbf" in claims
        now = int(time.time())
        claims.update({"sub": sub, "scope": scope, "iat": now, "nbf": now, "exp": now + 3600})
        if not had_nbf:
            claims.pop("nbf")
        claims.update(claim_changes or {})
        for c in drop_claims:
            claims.pop(c, None)
        header.update(header_changes or {})
        return sign_jwt(self.signing_key() if key is None else key, header, claims, alg=alg)


class Cluster:
    """N nodes on one pair of PostgreSQL databases, each with its own HTTP and cluster port."""

    def __init__(self, size=3, extra=None):
        self.secret = os.urandom(32).hex()
        self._dbs = []
        n1, orders = pg_create_database()
        self._dbs.append(n1)
        n2, inventory = pg_create_database()
        self._dbs.append(n2)
        self.databases = (orders, inventory)
        self.nodes = []
        for i in range(size):
            settings = dict(CLUSTER_EXTRA)
            settings.update(extra or {})
            settings["node.name"] = "node-%d" % (i + 1)
            settings["cluster.enabled"] = "true"
            settings["cluster.listen"] = "127.0.0.1:%d" % free_port()
            self.nodes.append(Node(settings, databases=self.databases, secret=self.secret))

    def start(self):
        # Started together: each waits until it has joined.
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()
        return self

    def close(self):
        for node in self.nodes:
            try:
                node.close()
            except Exception:
                pass
        if not KEEP:
            for name in self._dbs:
                pg_drop_database(name)


# Fast membership for tests: a member silent 2 s is down.
CLUSTER_EXTRA = {
    "cluster.heartbeat_interval_ms": "250",
    "cluster.failure_timeout_ms": "2000",
    "cluster.sweep_grace_ms": "5000",
    # A reservation whose order's node died before writing the order is released 1 s after it was
    # made (when its item is active: see assert_invariants in test_cluster).
    "orders.reservation_check_ms": "1000",
}


def start_node(extra=None):
    """Creates and starts a node; cleans up if the start fails."""
    node = Node(extra)
    try:
        node.start()
    except BaseException:
        try:
            node.close()
        except Exception:
            pass
        raise
    return node


def stop_node(node):
    if node is not None:
        node.close()


@atexit.register
def _kill_leftovers():
    for node in list(Node.live):
        try:
            node.close()
        except Exception:
            pass


def live_log_tails(lines=30):
    out = []
    for node in list(Node.live):
        out.append("---- emporium log %s (port %d), last %d lines ----\n%s"
                   % (node.log_path, node.port, lines, node.log_tail(lines)))
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# API helpers
# --------------------------------------------------------------------------------------------

def future_year(years=5):
    return datetime.datetime.now(datetime.timezone.utc).year + years


def order_body(items, card=VISA, exp_month=12, exp_year=None, cvc="123"):
    """items: list of (sku, quantity) pairs or ready dicts."""
    its = [it if isinstance(it, dict) else {"sku": it[0], "quantity": it[1]} for it in items]
    return {"items": its,
            "payment": {"card": {"number": card, "exp_month": exp_month,
                                 "exp_year": future_year() if exp_year is None else exp_year,
                                 "cvc": cvc}}}


def luhn_check_digit(prefix):
    total = 0
    for i, ch in enumerate(reversed(prefix)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number):
    return luhn_check_digit(number[:-1]) == number[-1]


class NodeTestCase(unittest.TestCase):
    """Base class: assertion helpers, and after every test a check that no node died."""

    maxDiff = 4000

    def tearDown(self):
        for node in list(Node.live):
            node.assert_alive()

    # -- generic -----------------------------------------------------------------------------

    def describe(self, r):
        return "HTTP %s %s" % (r.status, r.body[:600].decode("utf-8", errors="replace"))

    def assertStatus(self, r, expected, msg=""):
        ok = r.status in expected if isinstance(expected, (tuple, list, set)) else r.status == expected
        if not ok:
            self.fail("expected status %s, got %s %s" % (expected, self.describe(r), msg))

    def assertProblem(self, r, status, fields=None, errors_required=None, msg=""):
        """An RFC 9457 problem. `fields`: a field path (or iterable of acceptable paths) one of
        the `errors` entries must name (exactly, or as a prefix followed by '.' or '[')."""
        self.assertStatus(r, status, msg)
        ctype = r.headers.get("content-type", "")
        self.assertTrue(ctype.lower().startswith("application/problem+json"),
                        "Content-Type %r is not application/problem+json (%s) %s" % (ctype, self.describe(r), msg))
        j = r.json
        self.assertIsInstance(j, dict, "problem body is not a JSON object: %s %s" % (self.describe(r), msg))
        for k in ("type", "title", "status", "detail"):
            self.assertIn(k, j, "problem lacks %r: %s %s" % (k, self.describe(r), msg))
        self.assertEqual(j["status"], r.status, "problem status differs from HTTP status %s" % msg)
        if fields is not None or errors_required:
            errs = j.get("errors")
            self.assertIsInstance(errs, list, "problem lacks an `errors` array: %s %s" % (self.describe(r), msg))
            self.assertTrue(errs, "empty `errors` array %s" % msg)
            for e in errs:
                self.assertIsInstance(e, dict, msg)
                self.assertIn("field", e, msg)
                self.assertIn("message", e, msg)
                self.assertIsInstance(e["message"], str, msg)
            if fields is not None:
                want = [fields] if isinstance(fields, str) else list(fields)
                got = [str(e.get("field")) for e in errs]

                def matches(g):
                    return any(g == w or g.startswith(w + ".") or g.startswith(w + "[") for w in want)
                self.assertTrue(any(matches(g) for g in got),
                                "no error names field %s; errors: %s %s" % (want, errs, msg))
        elif "errors" in j:
            self.assertIsInstance(j["errors"], list, msg)
        return j

    def assertAuthChallenge(self, r, error, status, msg=""):
        self.assertProblem(r, status, msg=msg)
        www = r.headers.get("www-authenticate", "")
        self.assertIn("Bearer", www, "WWW-Authenticate %r %s" % (www, msg))
        self.assertIn(error, www, "WWW-Authenticate %r lacks %s %s" % (www, error, msg))

    # -- inventory ---------------------------------------------------------------------------

    def put_item(self, node, admin, sku, on_hand=100, price_cents=1999, name=None, currency=None):
        body = {"name": name or ("Item " + sku), "price_cents": price_cents, "on_hand": on_hand}
        if currency is not None:
            body["currency"] = currency
        return request(node, "PUT", "/v1/inventory/" + sku, body, token=admin)

    def create_item(self, node, admin, on_hand=100, price_cents=1999, prefix="sku"):
        sku = unique(prefix)
        r = self.put_item(node, admin, sku, on_hand=on_hand, price_cents=price_cents)
        self.assertStatus(r, 201, "creating item " + sku)
        return sku

    def item(self, node, tok, sku):
        r = request(node, "GET", "/v1/inventory/" + sku, token=tok)
        self.assertStatus(r, 200, "GET inventory " + sku)
        self.assertIsInstance(r.json, dict)
        return r.json

    def admin_stock(self, node, admin, sku):
        """(on_hand, reserved, available) from the admin view, checking the invariant."""
        it = self.item(node, admin, sku)
        for k in ("on_hand", "reserved", "available"):
            self.assertIn(k, it, "admin item view lacks %r: %s" % (k, it))
        self.assertEqual(it["available"], it["on_hand"] - it["reserved"], "available != on_hand - reserved: %s" % it)
        self.assertGreaterEqual(it["available"], 0, it)
        self.assertGreaterEqual(it["reserved"], 0, it)
        return it["on_hand"], it["reserved"], it["available"]

    # -- orders ------------------------------------------------------------------------------

    def place(self, node, tok, items, card=VISA, cvc="123", idem_key=None, **kw):
        headers = {"Idempotency-Key": idem_key} if idem_key else None
        return request(node, "POST", "/v1/orders", order_body(items, card=card, cvc=cvc, **kw),
                       token=tok, headers=headers)

    def get_order(self, node, tok, oid):
        r = request(node, "GET", "/v1/orders/" + oid, token=tok)
        self.assertStatus(r, 200, "GET order " + oid)
        return r.json

    def list_all_orders(self, node, tok, limit=100):
        out, cursor, pages = [], None, 0
        while True:
            path = "/v1/orders?limit=%d" % limit
            if cursor is not None:
                path += "&cursor=" + urllib.parse.quote(cursor, safe="")
            r = request(node, "GET", path, token=tok)
            self.assertStatus(r, 200, "listing orders")
            self.assertIsInstance(r.json.get("data"), list, r.json)
            out.extend(r.json["data"])
            cursor = r.json.get("next_cursor")
            pages += 1
            if cursor is None:
                return out
            self.assertLess(pages, 1000, "cursor paging does not end")

    def wait_order(self, node, tok, oid, statuses=FINAL_STATUSES, timeout=60):
        deadline = time.time() + timeout
        while True:
            o = self.get_order(node, tok, oid)
            if o["status"] in statuses:
                return o
            if time.time() > deadline:
                self.fail("order %s still %s after %d s" % (oid, o["status"], timeout))
            time.sleep(0.2)

    def assertOrderShape(self, o, customer=None):
        self.assertIsInstance(o, dict)
        for k in ("id", "customer_id", "status", "items", "total_cents", "currency", "payment",
                  "failure_reason", "created_at", "updated_at"):
            self.assertIn(k, o, "order lacks %r: %s" % (k, o))
        self.assertTrue(str(o["id"]).startswith("ord_"), o["id"])
        self.assertIn(o["status"], ORDER_STATUSES, o)
        if customer is not None:
            self.assertEqual(o["customer_id"], customer)
        self.assertRegex(o["created_at"], RFC3339_UTC)
        self.assertRegex(o["updated_at"], RFC3339_UTC)
        total = 0
        for it in o["items"]:
            for k in ("sku", "quantity", "unit_price_cents", "line_total_cents"):
                self.assertIn(k, it, "order item lacks %r: %s" % (k, it))
            self.assertEqual(it["line_total_cents"], it["quantity"] * it["unit_price_cents"], it)
            total += it["line_total_cents"]
        self.assertEqual(o["total_cents"], total, "total is not the sum of line totals: %s" % o)
        if o["payment"] is not None:
            self.assertTrue(str(o["payment"].get("id", "")).startswith("pay_"), o["payment"])
