#!/usr/bin/python3
"""Authentication (401 invalid_token), authorization (403 insufficient_scope) and the
unauthenticated operator endpoints."""

import json
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


SCOPE = "orders:read orders:write inventory:read"


class AuthTest(harness.NodeTestCase):

    def setUp(self):
        self.sub = unique("cust")

    def get_orders(self, auth_header):
        headers = {"Authorization": auth_header} if auth_header is not None else None
        return request(NODE, "GET", "/v1/orders", headers=headers)

    def assert401(self, auth_header, what):
        r = self.get_orders(auth_header)
        self.assertAuthChallenge(r, "invalid_token", 401, "(%s)" % what)
        self.assertNotIn("data", r.json or {}, what)

    def test_valid_tokens_accepted(self):
        # Positive controls: without them every 401 below could be a broken server.
        r = self.get_orders("Bearer " + NODE.token(self.sub, SCOPE))
        self.assertStatus(r, 200)
        self.assertEqual(r.json["data"], [])
        r = self.get_orders("Bearer " + NODE.craft_token(self.sub, SCOPE))
        self.assertStatus(r, 200, "a token crafted like `emporium token` does was refused")
        now = int(time.time())
        # inside the 60 s leeway
        r = self.get_orders("Bearer " + NODE.craft_token(self.sub, SCOPE,
                                                          claim_changes={"nbf": now + 20, "iat": now + 20}))
        self.assertStatus(r, 200, "nbf/iat 20 s ahead is within the leeway")

    def test_missing_header(self):
        self.assert401(None, "no Authorization header")

    def test_wrong_schemes(self):
        tok = NODE.token(self.sub, SCOPE)
        for header, what in (("Basic dXNlcjpwYXNz", "Basic"),
                             ("Token " + tok, "Token scheme"),
                             ("Bearer_" + tok, "no space"),
                             ("Bearer", "no token"),
                             ("Bearer ", "empty token"),
                             (tok, "no scheme")):
            with self.subTest(what=what):
                self.assert401(header, what)

    def test_garbled_tokens(self):
        tok = NODE.token(self.sub, SCOPE)
        h, p, s = tok.split(".")
        for bad, what in (("garbage", "garbage"),
                          ("a.b.c", "a.b.c"),
                          (h + "." + p, "two segments"),
                          (h + "." + p + ".", "empty signature"),
                          (tok + "x", "extra char"),
                          ("x" * 5000, "long junk")):
            with self.subTest(what=what):
                self.assert401("Bearer " + bad, what)

    def test_malformed_segments(self):
        tok = NODE.token(self.sub, SCOPE)
        h, p, sig = tok.split(".")
        for bad, what in ((tok + ".x", "four segments"),
                          (tok + ".x.y", "five segments"),
                          (h.replace("e", "+", 1) + "." + p + "." + sig, "'+' in base64url"),
                          (h + "=." + p + "." + sig, "padding"),
                          (h + "." + p + "." + sig[:-2], "short signature")):
            with self.subTest(what=what):
                self.assert401("Bearer " + bad, what)

    def test_boundaries_inside_the_leeway_are_accepted(self):
        # Positive controls for the boundary cases: 60 s of leeway on nbf and iat (not on exp:
        # API.md wants exp in the future), and a NumericDate need not be whole (RFC 7519).
        now = int(time.time())
        for what, changes in (("nbf within the leeway", {"nbf": now + 55}),
                              ("iat within the leeway", {"iat": now + 55}),
                              ("exp not whole", {"exp": now + 600.5}),
                              ("aud array with ours", {"aud": ["other", "emporium"]})):
            with self.subTest(what=what):
                r = self.get_orders("Bearer " + NODE.craft_token(self.sub, SCOPE, claim_changes=changes))
                self.assertStatus(r, 200, what)
        # An HS256 token naming its key (as issuers often do) verifies with the secret all the same.
        for kid in ("hmac-1", ""):
            tok = NODE.craft_token(self.sub, SCOPE, header_changes={"kid": kid})
            self.assertStatus(self.get_orders("Bearer " + tok), 200, "HS256 with kid %r" % kid)

    def test_scheme_spacing_and_two_headers(self):
        tok = NODE.token(self.sub, SCOPE)
        # RFC 6750: "Bearer" 1*SP token, the scheme's name in any case (RFC 9110 11.1).
        for value in ("Bearer  " + tok, "bearer " + tok, "BEARER " + tok):
            self.assertStatus(self.get_orders(value), 200, value[:8])
        self.assert401("Bearer" + tok, "no space")
        self.assert401("Basic " + tok, "another scheme")
        # (A trailing space is optional whitespace around the field value, stripped by HTTP itself.)
        head = ("GET /v1/orders HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
                "Authorization: Bearer %s\r\n\r\n" % (tok, tok)).encode()
        r = harness.raw_request(NODE, head)
        self.assertEqual(r.status, 401)
        self.assertIn("invalid_token", r.headers.get("www-authenticate", ""))

    def test_other_secret(self):
        tok = NODE.token_with_secret(self.sub, SCOPE, "another-secret-" + unique("s"))
        self.assert401("Bearer " + tok, "signed with another secret")

    def test_tampered_payload(self):
        good = NODE.token(self.sub, "orders:read")
        h, p, s = good.split(".")
        claims = harness.jwt_parts(good)[1]
        claims["scope"] = "admin"
        forged = h + "." + harness.b64url(json.dumps(claims, separators=(",", ":")).encode()) + "." + s
        self.assert401("Bearer " + forged, "payload changed after signing")

    def test_crafted_invalid_tokens(self):
        now = int(time.time())
        key = NODE.signing_key()
        cases = [
            ("expired beyond leeway", NODE.craft_token(self.sub, SCOPE, claim_changes={
                "iat": now - 7200, "nbf": now - 7200, "exp": now - 120})),
            ("nbf in the future", NODE.craft_token(self.sub, SCOPE, claim_changes={"nbf": now + 600})),
            ("iat in the future", NODE.craft_token(self.sub, SCOPE, claim_changes={"iat": now + 600})),
            ("alg none", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "none"}, alg="none")),
            ("alg none with signature", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "none"},
                                                         alg="HS256")),
            ("alg HS512", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "HS512"}, alg="HS512")),
            ("alg RS256 with HMAC", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "RS256"},
                                                     alg="HS256")),
            ("wrong iss", NODE.craft_token(self.sub, SCOPE, claim_changes={"iss": "someone-else"})),
            ("wrong aud", NODE.craft_token(self.sub, SCOPE, claim_changes={"aud": "other-service"})),
            ("missing iss", NODE.craft_token(self.sub, SCOPE, drop_claims=("iss",))),
            ("missing aud", NODE.craft_token(self.sub, SCOPE, drop_claims=("aud",))),
            ("missing sub", NODE.craft_token(self.sub, SCOPE, drop_claims=("sub",))),
            ("empty sub", NODE.craft_token(self.sub, SCOPE, claim_changes={"sub": ""})),
            ("missing exp", NODE.craft_token(self.sub, SCOPE, drop_claims=("exp",))),
            ("exp not a number", NODE.craft_token(self.sub, SCOPE, claim_changes={"exp": "tomorrow"})),
            ("wrong key bytes", NODE.craft_token(self.sub, SCOPE, key=key + b"x")),
            ("alg None", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "None"}, alg="none")),
            ("alg NONE", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "NONE"}, alg="none")),
            ("alg nOnE", NODE.craft_token(self.sub, SCOPE, header_changes={"alg": "nOnE"}, alg="none")),
            ("expired 5 s ago (no leeway on exp)", NODE.craft_token(self.sub, SCOPE, claim_changes={
                "iat": now - 7200, "nbf": now - 7200, "exp": now - 5})),
            ("exp now", NODE.craft_token(self.sub, SCOPE, claim_changes={
                "iat": now - 7200, "nbf": now - 7200, "exp": now})),
            ("aud array without ours", NODE.craft_token(self.sub, SCOPE, claim_changes={
                "aud": ["other", "another"]})),
            ("unknown kid on RS256", NODE.craft_token(self.sub, SCOPE, header_changes={"kid": "no-such-key",
                                                                                      "alg": "RS256"},
                                                      alg="HS256")),
            ("typ not a JWT", NODE.craft_token(self.sub, SCOPE, header_changes={"typ": "JOSE+JSON"})),
        ]
        for what, tok in cases:
            with self.subTest(what=what):
                self.assert401("Bearer " + tok, what)

    def test_401_on_all_protected_routes(self):
        for method, path in (("GET", "/v1/orders"), ("POST", "/v1/orders"), ("GET", "/v1/orders/ord_x"),
                             ("POST", "/v1/orders/ord_x/cancel"), ("POST", "/v1/orders/ord_x/ship"),
                             ("GET", "/v1/inventory/sku-1"), ("GET", "/v1/inventory?sku=a"),
                             ("PUT", "/v1/inventory/sku-1"), ("POST", "/v1/inventory/sku-1/adjust"),
                             ("GET", "/admin/cluster"), ("GET", "/admin/actors?type=order")):
            with self.subTest(route=method + " " + path):
                body = {} if method in ("POST", "PUT") else None
                r = request(NODE, method, path, body)
                self.assertAuthChallenge(r, "invalid_token", 401)

    def test_insufficient_scope_403(self):
        inv_only = NODE.token(self.sub, "inventory:read")
        for method, path in (("GET", "/v1/orders"), ("POST", "/v1/orders"),
                             ("GET", "/admin/cluster"), ("GET", "/admin/actors?type=order")):
            with self.subTest(route=method + " " + path):
                body = harness.order_body([("sku-1", 1)]) if method == "POST" else None
                r = request(NODE, method, path, body, token=inv_only)
                self.assertAuthChallenge(r, "insufficient_scope", 403)
        no_scope = NODE.craft_token(self.sub, "")
        r = request(NODE, "GET", "/v1/orders", token=no_scope)
        self.assertAuthChallenge(r, "insufficient_scope", 403)
        # scopes are exact words, not prefixes
        r = request(NODE, "GET", "/v1/orders", token=NODE.craft_token(self.sub, "orders:readx orders"))
        self.assertAuthChallenge(r, "insufficient_scope", 403)

    def test_admin_scope_allows_admin_routes(self):
        admin = NODE.token("admin-ops", "admin")
        r = request(NODE, "GET", "/admin/cluster", token=admin)
        self.assertStatus(r, 200)
        self.assertIsInstance(r.json, dict)
        self.assertIn("self", r.json)
        self.assertIn("members", r.json)

    def test_operator_endpoints_need_no_token(self):
        for path in ("/healthz", "/readyz"):
            with self.subTest(path=path):
                self.assertStatus(request(NODE, "GET", path), 200)
        r = request(NODE, "GET", "/metrics")
        self.assertStatus(r, 200)
        ctype = r.headers.get("content-type", "")
        self.assertTrue(ctype.startswith("text/plain") or ctype.startswith("application/openmetrics-text"),
                        "metrics content type %r" % ctype)
        text = r.body.decode("utf-8")
        self.assertTrue(text.strip(), "empty metrics")
        self.assertRegex(text, r"(?m)^# (TYPE|HELP) \w+")
        self.assertRegex(text, r"(?m)^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+")
        # a bad token on these is ignored, not refused
        r = request(NODE, "GET", "/healthz", headers={"Authorization": "Bearer garbage"})
        self.assertStatus(r, 200)


if __name__ == "__main__":
    unittest.main()
