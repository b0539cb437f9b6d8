#!/usr/bin/python3
"""RS256/ES256 access tokens verified with the public keys of `auth.jwks_file`: tokens minted by an
independent implementation (Debian's python3-jwcrypto) are accepted, tokens of keys outside the
file are refused, `emporium token --alg/--key/--kid` signs what jwcrypto verifies, and the file
is rotated while the node runs."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from jwcrypto import jwk, jws, jwt  # python3-jwcrypto (Makefile DEPS); run with /usr/bin/python3

import harness
from harness import request, unique

NODE = None
KEYS_DIR = None
RSA = None  # in the node's JWKS from the start
EC = None
ISS = AUD = None

# The node checks the file at most once per second: a change is seen by the first request after it.
REREAD_WAIT_S = 1.5


def new_rsa(kid):
    return jwk.JWK.generate(kty="RSA", size=2048, kid=kid)


def new_ec(kid):
    return jwk.JWK.generate(kty="EC", crv="P-256", kid=kid)


def write_jwks(path, keys):
    """Replaces the file atomically (a complete new file renamed over the old one)."""
    text = json.dumps({"keys": [json.loads(k.export_public()) for k in keys]})
    write_file(path, text)


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def mint(key, alg, sub, scope="inventory:read", kid=None, header_extra=None):
    now = int(time.time())
    header = {"alg": alg, "typ": "at+jwt", "kid": key.key_id if kid is None else kid}
    header.update(header_extra or {})
    claims = {"iss": ISS, "aud": AUD, "sub": sub, "scope": scope, "iat": now, "nbf": now, "exp": now + 600}
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    return token.serialize()


def start_with_jwks(path):
    return harness.start_node({"auth.jwks_file": path})


def setUpModule():
    global NODE, KEYS_DIR, RSA, EC, ISS, AUD
    KEYS_DIR = tempfile.mkdtemp(prefix="emporium-jwks-")
    RSA, EC = new_rsa("rsa-1"), new_ec("ec-1")
    path = os.path.join(KEYS_DIR, "jwks.json")
    write_jwks(path, [RSA, EC])
    NODE = start_with_jwks(path)
    _, claims, _ = harness.jwt_parts(NODE.token("probe", "inventory:read"))
    ISS, AUD = claims["iss"], claims["aud"]


def tearDownModule():
    harness.stop_node(NODE)
    shutil.rmtree(KEYS_DIR, ignore_errors=True)


class JwksTest(harness.NodeTestCase):

    def get_item(self, token, node=None, sku=None):
        return request(node or NODE, "GET", "/v1/inventory/" + (sku or unique("nosku")), token=token)

    def assertAccepted(self, token, msg="", node=None):
        r = self.get_item(token, node)
        self.assertStatus(r, 404, "an unknown sku with a valid token is 404, not 401 %s" % msg)

    def assertRejected(self, token, msg="", node=None):
        r = self.get_item(token, node)
        self.assertAuthChallenge(r, 'error="invalid_token"', 401, msg)

    def test_jwcrypto_tokens_accepted(self):
        admin = NODE.token("admin-" + unique(), "admin")
        sku = self.create_item(NODE, admin)
        for key, alg in ((RSA, "RS256"), (EC, "ES256")):
            with self.subTest(alg=alg):
                r = self.get_item(mint(key, alg, unique("cust")), sku=sku)
                self.assertStatus(r, 200, "%s token from jwcrypto" % alg)
                self.assertEqual(r.json["sku"], sku)
                self.assertAccepted(mint(key, alg, unique("cust")), alg)

    def test_keys_outside_the_jwks_rejected(self):
        stranger_rsa, stranger_ec = new_rsa("rsa-1"), new_ec("ec-1")  # same kids, other keys
        self.assertRejected(mint(stranger_rsa, "RS256", unique("cust")), "RS256 by a key not in the JWKS")
        self.assertRejected(mint(stranger_ec, "ES256", unique("cust")), "ES256 by a key not in the JWKS")
        self.assertRejected(mint(RSA, "RS256", unique("cust"), kid="rsa-unknown"), "unknown kid")
        self.assertRejected(mint(RSA, "RS256", unique("cust"), kid="ec-1"), "RS256 under an EC key's kid")
        no_kid = jwt.JWT(header={"alg": "RS256"}, claims={"iss": ISS, "aud": AUD, "sub": "c",
                                                          "exp": int(time.time()) + 600})
        no_kid.make_signed_token(RSA)
        self.assertRejected(no_kid.serialize(), "RS256 without a kid")

    def test_key_confusion_and_embedded_keys_rejected(self):
        now = int(time.time())
        claims = {"iss": ISS, "aud": AUD, "sub": unique("cust"), "scope": "inventory:read", "exp": now + 600}
        public_pem = RSA.export_to_pem(private_key=False)
        for secret in (public_pem, RSA.export_public().encode()):
            tok = harness.sign_jwt(secret, {"alg": "HS256", "kid": "rsa-1"}, claims)
            self.assertRejected(tok, "HS256 with the RSA public key as secret")
        attacker = new_rsa("rsa-1")
        embedded = json.loads(attacker.export_public())
        for extra in ({"jwk": embedded}, {"jku": "https://evil.example/jwks.json"},
                      {"x5u": "https://evil.example/cert.pem"}):
            with self.subTest(header=list(extra)):
                self.assertRejected(mint(attacker, "RS256", unique("cust"), header_extra=extra),
                                    "token signed by the key its own header supplies")

    def test_emporium_token_signs_rs256_and_es256(self):
        for key, alg in ((RSA, "RS256"), (EC, "ES256")):
            with self.subTest(alg=alg):
                pem = os.path.join(KEYS_DIR, "%s.pem" % key.key_id)
                with open(pem, "wb") as f:
                    f.write(key.export_to_pem(private_key=True, password=None))
                os.chmod(pem, 0o600)
                out = subprocess.run([NODE.bin, "token", "--sub", unique("cust"), "--scope", "inventory:read",
                                      "--alg", alg, "--key", pem, "--kid", key.key_id],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=KEYS_DIR)
                self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
                token = out.stdout.decode().strip()
                # jwcrypto checks the signature, so ES256 must be JOSE r||s, not DER.
                verified = jws.JWS()
                verified.deserialize(token)
                verified.verify(key)
                header = json.loads(verified.objects["protected"])
                self.assertEqual((header["alg"], header["kid"]), (alg, key.key_id))
                self.assertAccepted(token, "`emporium token --alg %s`" % alg)
                self.assertNotIn(b"PRIVATE", out.stdout + out.stderr)

    def test_emporium_token_refuses_missing_or_unfit_key(self):
        pem = os.path.join(KEYS_DIR, "ec-for-rsa.pem")
        with open(pem, "wb") as f:
            f.write(EC.export_to_pem(private_key=True, password=None))
        for args in (["--alg", "RS256"], ["--alg", "RS256", "--key", pem, "--kid", "k"],
                     ["--alg", "ES256", "--key", pem]):
            with self.subTest(args=args):
                out = subprocess.run([NODE.bin, "token", "--sub", "c", "--scope", "s"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=KEYS_DIR)
                self.assertNotEqual(out.returncode, 0, args)
                self.assertEqual(out.stdout, b"")
                self.assertNotIn(b"PRIVATE", out.stderr)

    def test_emporium_token_key_file_limit(self):
        # The key file is read up to 64 KiB: a PEM key padded to exactly that signs, one byte more
        # is refused before it is parsed.
        key = EC.export_to_pem(private_key=True, password=None)
        for size, ok in ((64 * 1024, True), (64 * 1024 + 1, False)):
            with self.subTest(size=size):
                pem = os.path.join(KEYS_DIR, "padded-%d.pem" % size)
                with open(pem, "wb") as f:
                    f.write(key + b"\n" * (size - len(key)))
                os.chmod(pem, 0o600)
                self.assertEqual(os.path.getsize(pem), size)
                out = subprocess.run([NODE.bin, "token", "--sub", unique("cust"), "--scope", "inventory:read",
                                      "--alg", "ES256", "--key", pem, "--kid", EC.key_id],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=KEYS_DIR)
                if ok:
                    self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
                    self.assertAccepted(out.stdout.decode().strip(), "a key file of exactly 64 KiB")
                else:
                    self.assertNotEqual(out.returncode, 0)
                    self.assertEqual(out.stdout, b"")
                    self.assertIn(b"over 64 KiB", out.stderr)
                self.assertNotIn(b"PRIVATE", out.stdout + out.stderr)

    def test_unloadable_jwks_stops_the_start(self):
        node = harness.Node({"auth.jwks_file": os.path.join(KEYS_DIR, "missing.json")})
        try:
            with self.assertRaises(RuntimeError):
                node.start()
            self.assertIn("auth.jwks_file", node.log_text())
        finally:
            node.close()

    def test_rotation_while_running(self):
        path = os.path.join(KEYS_DIR, "rotating.json")
        old_rsa, old_ec = new_rsa("old-rsa"), new_ec("old-ec")
        write_jwks(path, [old_rsa, old_ec])
        node = start_with_jwks(path)
        try:
            self.assertAccepted(mint(old_rsa, "RS256", unique("cust")), "before rotation", node)
            self.assertAccepted(mint(old_ec, "ES256", unique("cust")), "before rotation", node)

            new_rsa_key, new_ec_key = new_rsa("new-rsa"), new_ec("new-ec")
            write_jwks(path, [new_rsa_key, new_ec_key])
            time.sleep(REREAD_WAIT_S)
            self.assertAccepted(mint(new_rsa_key, "RS256", unique("cust")), "new RSA key after rotation", node)
            self.assertAccepted(mint(new_ec_key, "ES256", unique("cust")), "new EC key after rotation", node)
            self.assertRejected(mint(old_rsa, "RS256", unique("cust")), "removed RSA key", node)
            self.assertRejected(mint(old_ec, "ES256", unique("cust")), "removed EC key", node)

            # A broken file keeps the last good key set.
            write_file(path, '{"keys": [')
            time.sleep(REREAD_WAIT_S)
            self.assertAccepted(mint(new_rsa_key, "RS256", unique("cust")), "after a broken rewrite", node)
            self.assertRejected(mint(old_rsa, "RS256", unique("cust")), "old key after a broken rewrite", node)

            log = node.log_text()
            for key in (old_rsa, new_rsa_key):
                self.assertNotIn(json.loads(key.export_public())["n"], log, "key material in the log")
        finally:
            harness.stop_node(node)


if __name__ == "__main__":
    unittest.main()
