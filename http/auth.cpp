// JWT verification, the JWKS key set and dev signing. See DESIGN.md "HTTP edge": libjwt is not
// used because it lets the token pick the algorithm; here the key pins the algorithm and every
// check fails closed.
#include "http/auth.hpp"

#include "http/json.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>

namespace emporium::auth {

namespace json = boost::json;

// Owning handles for OpenSSL objects.
namespace ossl {
template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const { Free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free>>;
}  // namespace ossl

// Never modified once loaded: verifying threads share it (and OpenSSL keys are safe to share for
// verification), a reread builds a new one.
struct KeySet {
  struct Entry {
    std::string alg;  // fixed by the key type: RSA -> RS256, EC P-256 -> ES256
    ossl::Pkey pkey;
  };
  std::map<std::string, Entry, std::less<>> by_kid;
};

namespace {

// A check result: nullptr is success, otherwise a fixed reason that never contains token bytes.
using Reason = const char*;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kHs256Bytes = 32;
constexpr std::size_t kJwksBytesMax = 1 << 20;
constexpr std::size_t kJwksKeysMax = 256;
constexpr int kRsaBitsMin = 2048;
constexpr int kRsaBitsMax = 8192;  // bounds the cost of one verification
constexpr std::size_t kRsaExponentBytesMax = 8;
constexpr int kP256CoordinateBytes = 32;
constexpr std::size_t kEs256SignatureBytes = 2 * kP256CoordinateBytes;

Verified fail(Reason reason) { return Verified{std::nullopt, reason}; }

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

int b64url_value(char c) {
  const auto pos = kAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

// Unused low bits of the last character must be zero: otherwise several encodings decode to the
// same bytes, and a "tampered" signature could still verify.
bool canonical_tail(std::string_view text) {
  const int last = b64url_value(text.back());
  switch (text.size() % 4) {
    case 2: return (last & 0x0f) == 0;
    case 3: return (last & 0x03) == 0;
    default: return true;
  }
}

std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_len = 0;
  // A non-null key pointer even for length 0: HMAC() treats a null key as "reuse the previous one".
  const char* key_ptr = key.empty() ? "" : key.data();
  const auto* out = HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()),
                         reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                         mac.data(), &mac_len);
  if (out == nullptr || mac_len != kHs256Bytes) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(mac.data()), mac_len);
}

// Decodes a base64url segment into a strict JSON object (no duplicate keys, no comments).
std::optional<json::object> decode_object(std::string_view segment) {
  const auto text = base64url_decode(segment);
  if (!text) return std::nullopt;
  auto value = parse_strict(*text);  // duplicate keys refused: two parsers could read two claims
  if (!value || !value->is_object()) return std::nullopt;
  return std::move(value->as_object());
}

struct Segments {
  std::string_view header, payload, signature;
  std::string_view signing_input() const {
    return {header.data(), header.size() + 1 + payload.size()};
  }
};

std::optional<Segments> split_compact(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  Segments s{token.substr(0, first), token.substr(first + 1, second - first - 1),
             token.substr(second + 1)};
  if (s.header.empty() || s.payload.empty() || s.signature.empty()) return std::nullopt;
  return s;
}

// --- JWKS: public keys from a file ----------------------------------------------------------

// Builds a public key from provider parameters. fromdata takes the numbers as given: the public
// check is what refuses points off the curve and malformed moduli.
ossl::Pkey public_key_from(const char* type, OSSL_PARAM_BLD* bld) {
  ossl::Params params{OSSL_PARAM_BLD_to_param(bld)};
  ossl::PkeyCtx ctx{EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr)};
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  ossl::Pkey pkey{raw};
  ossl::PkeyCtx check{EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr)};
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  return pkey;
}

std::optional<std::string> member_bytes(const json::object& jwk, std::string_view name) {
  const auto* v = jwk.if_contains(name);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return base64url_decode(v->as_string());
}

Reason rsa_public_key(const json::object& jwk, ossl::Pkey& out) {
  const auto n = member_bytes(jwk, "n");
  const auto e = member_bytes(jwk, "e");
  if (!n || !e || n->empty() || e->empty() || e->size() > kRsaExponentBytesMax)
    return "bad RSA n or e";
  const ossl::Bignum bn_n{BN_bin2bn(bytes_of(*n), static_cast<int>(n->size()), nullptr)};
  const ossl::Bignum bn_e{BN_bin2bn(bytes_of(*e), static_cast<int>(e->size()), nullptr)};
  if (!bn_n || !bn_e) return "bad RSA n or e";
  if (BN_num_bits(bn_n.get()) < kRsaBitsMin) return "RSA key under 2048 bits";
  if (BN_num_bits(bn_n.get()) > kRsaBitsMax) return "RSA key over 8192 bits";
  const ossl::ParamBld bld{OSSL_PARAM_BLD_new()};
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
    return "RSA key refused";
  out = public_key_from("RSA", bld.get());
  return out ? nullptr : "RSA key refused";
}

Reason ec_public_key(const json::object& jwk, ossl::Pkey& out) {
  const auto* crv = jwk.if_contains("crv");
  if (crv == nullptr || !crv->is_string() || crv->as_string() != "P-256")
    return "EC curve is not P-256";
  const auto x = member_bytes(jwk, "x");
  const auto y = member_bytes(jwk, "y");
  // RFC 7518 §6.2.1.2: coordinates have the full field length, so any other length is malformed.
  if (!x || !y || x->size() != kP256CoordinateBytes || y->size() != kP256CoordinateBytes)
    return "bad EC x or y";
  const std::string point = '\x04' + *x + *y;  // uncompressed SEC1 point
  const ossl::ParamBld bld{OSSL_PARAM_BLD_new()};
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    return "EC key refused";
  out = public_key_from("EC", bld.get());
  return out ? nullptr : "EC key refused";
}

// Why a JWKS entry is left out, or nullptr when `out` holds it. The key type fixes the algorithm.
Reason parse_jwk(const json::object& jwk, std::string_view& kid, KeySet::Entry& out) {
  const auto* kid_v = jwk.if_contains("kid");
  if (kid_v == nullptr || !kid_v->is_string() || kid_v->as_string().empty()) return "no kid";
  kid = kid_v->as_string();
  if (const auto* use = jwk.if_contains("use");
      use && !(use->is_string() && use->as_string() == "sig"))
    return "use is not sig";
  const auto* kty = jwk.if_contains("kty");
  const std::string_view type = (kty && kty->is_string()) ? std::string_view(kty->as_string()) : "";
  if (type != "RSA" && type != "EC") return "kty is not RSA or EC";
  out.alg = type == "RSA" ? "RS256" : "ES256";
  if (const auto* alg = jwk.if_contains("alg");
      alg && !(alg->is_string() && alg->as_string() == out.alg))
    return "alg does not match the key type";
  return type == "RSA" ? rsa_public_key(jwk, out.pkey) : ec_public_key(jwk, out.pkey);
}

// A kid for a log line: bounded and free of control characters.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, 64));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out.empty() ? "(no kid)" : out;
}

struct JwksLoad {
  std::shared_ptr<const KeySet> keys;  // null: the file is unusable, see `error`
  std::string error;
  std::vector<std::string> skipped;  // "kid: reason" for each entry left out
};

Reason read_bounded(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open the file";
  out.resize(kJwksBytesMax + 1);
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  if (in.bad()) return "cannot read the file";
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out.size() > kJwksBytesMax ? "file over 1 MiB" : nullptr;
}

JwksLoad load_jwks(const std::string& path) {
  JwksLoad load;
  std::string text;
  if (const Reason r = read_bounded(path, text)) return {nullptr, r, {}};
  const auto doc = parse_strict(text);
  const auto* keys = (doc && doc->is_object()) ? doc->as_object().if_contains("keys") : nullptr;
  if (keys == nullptr || !keys->is_array()) return {nullptr, "not a JWKS: no keys array", {}};
  if (keys->as_array().size() > kJwksKeysMax) return {nullptr, "more than 256 keys", {}};
  auto set = std::make_shared<KeySet>();
  for (const auto& item : keys->as_array()) {
    std::string_view kid;
    KeySet::Entry entry;
    const Reason skip =
        item.is_object() ? parse_jwk(item.as_object(), kid, entry) : "not an object";
    if (skip != nullptr) {
      load.skipped.push_back(printable(kid) + ": " + skip);
      continue;
    }
    // Two keys under one kid would make the choice ambiguous: the whole file is refused.
    if (!set->by_kid.emplace(std::string(kid), std::move(entry)).second)
      return {nullptr, "duplicate kid " + printable(kid), {}};
  }
  ERR_clear_error();  // refused keys leave OpenSSL errors queued
  load.keys = std::move(set);
  return load;
}

// --- key selection and signatures ---------------------------------------------------------

// The key decides the algorithm, never the token: a `kid` names a JWKS key, which brings its own
// alg; without a kid only HS256 with the configured secret is possible.
struct Key {
  std::string_view alg;
  std::string_view secret;   // HS256
  EVP_PKEY* pkey = nullptr;  // RS256/ES256, owned by the key set the caller holds
};

Reason select_key(const VerifierSettings& settings, const KeySet* jwks, const json::object& header,
                  Key& out) {
  if (const auto* kid = header.if_contains("kid")) {
    if (!kid->is_string()) return "bad kid";
    if (jwks != nullptr) {
      const auto found = jwks->by_kid.find(std::string_view(kid->as_string()));
      if (found != jwks->by_kid.end()) {  // its alg must then match the key's (check_header)
        out = Key{found->second.alg, {}, found->second.pkey.get()};
        return nullptr;
      }
    }
    // A kid no JWKS key has selects nothing but the one secret, and only for an HS256 token
    // (issuers often name their HMAC key too): API.md asks for a signature that verifies.
    const auto* alg = header.if_contains("alg");
    if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256") return "unknown kid";
  }
  // No secret: HS256 is refused outright.
  if (settings.hs256_secret.empty()) return "no key for token";
  out = Key{"HS256", settings.hs256_secret, nullptr};
  return nullptr;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    return lower(x) == lower(y);
  });
}

// jku/x5u/jwk/x5c are deliberately not read: keys come from configuration, never from the token.
Reason check_header(const json::object& header, const Key& key) {
  const auto* alg = header.if_contains("alg");
  if (alg == nullptr || !alg->is_string()) return "missing alg";
  if (alg->as_string() != key.alg) return "algorithm not allowed";
  if (header.contains("crit")) return "unsupported crit header";
  if (const auto* typ = header.if_contains("typ")) {
    if (!typ->is_string()) return "bad typ";
    const std::string_view t = typ->as_string();
    if (!iequals_ascii(t, "JWT") && !iequals_ascii(t, "at+jwt")) return "bad typ";
  }
  return nullptr;
}

bool digest_verify(EVP_PKEY* pkey, std::string_view signature, std::string_view data) {
  const ossl::MdCtx ctx{EVP_MD_CTX_new()};
  const bool ok = ctx &&
                  EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
                  EVP_DigestVerify(ctx.get(), bytes_of(signature), signature.size(), bytes_of(data),
                                   data.size()) == 1;
  ERR_clear_error();  // a forged token must not leave errors queued on this thread
  return ok;
}

// JOSE carries ES256 as fixed-width r||s (RFC 7518 §3.4), OpenSSL verifies DER. Only the raw form
// is accepted: a DER signature in a token is malformed, not an alternative encoding.
std::optional<std::string> jose_to_der(std::string_view raw) {
  if (raw.size() != kEs256SignatureBytes) return std::nullopt;
  const ossl::EcdsaSig sig{ECDSA_SIG_new()};
  ossl::Bignum r{BN_bin2bn(bytes_of(raw), kP256CoordinateBytes, nullptr)};
  ossl::Bignum s{BN_bin2bn(bytes_of(raw) + kP256CoordinateBytes, kP256CoordinateBytes, nullptr)};
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  (void)r.release();  // owned by sig now
  (void)s.release();
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

bool signature_valid(const Key& key, const Segments& seg) {
  const auto given = base64url_decode(seg.signature);
  if (!given) return false;
  if (key.alg == "HS256") {
    if (given->size() != kHs256Bytes) return false;
    const auto expected = hmac_sha256(key.secret, seg.signing_input());
    return expected && CRYPTO_memcmp(expected->data(), given->data(), kHs256Bytes) == 0;
  }
  if (key.pkey == nullptr) return false;
  if (key.alg == "RS256") {
    // RFC 8017 §8.2.2: exactly the modulus length; OpenSSL alone would also take shorter forms.
    return given->size() == static_cast<std::size_t>(EVP_PKEY_get_size(key.pkey)) &&
           digest_verify(key.pkey, *given, seg.signing_input());
  }
  if (key.alg == "ES256") {
    const auto der = jose_to_der(*given);
    return der && digest_verify(key.pkey, *der, seg.signing_input());
  }
  return false;
}

// Saturating add so that huge exp/leeway values cannot wrap around into "valid".
std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (!__builtin_add_overflow(a, b, &out)) return out;
  return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}

bool string_claim_equals(const json::object& payload, std::string_view name, std::string_view want) {
  const auto* v = payload.if_contains(name);
  return v != nullptr && v->is_string() && v->as_string() == want;
}

bool audience_matches(const json::value* aud, std::string_view audience) {
  if (aud == nullptr) return false;
  if (aud->is_string()) return aud->as_string() == audience;
  if (!aud->is_array()) return false;
  bool found = false;
  for (const auto& item : aud->as_array()) {
    if (!item.is_string()) return false;  // a malformed list is refused, not skimmed
    found = found || item.as_string() == audience;
  }
  return found;
}

// A NumericDate (RFC 7519: seconds since the epoch, not necessarily whole), as whole seconds
// rounded down; none for anything else (strings, booleans, doubles past 2^53, where they are no
// longer exact). `now` is whole seconds, rounded down too: an exp is never taken past it.
std::optional<std::int64_t> as_seconds(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (!v.is_double()) return std::nullopt;
  const double d = v.get_double();
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (!std::isfinite(d) || std::fabs(d) > kExact) return std::nullopt;
  return static_cast<std::int64_t>(std::floor(d));
}

// Optional "not in the future" claims (nbf, iat).
Reason check_not_future(const json::object& payload, std::string_view name, std::int64_t limit) {
  const auto* v = payload.if_contains(name);
  if (v == nullptr) return nullptr;
  const auto t = as_seconds(*v);
  if (!t) return "bad time claim";
  return *t > limit ? "token not yet valid" : nullptr;
}

std::optional<std::vector<std::string>> parse_scopes(const json::object& payload) {
  std::vector<std::string> scopes;
  const auto* v = payload.if_contains("scope");
  if (v == nullptr) return scopes;
  if (!v->is_string()) return std::nullopt;
  const std::string_view text = v->as_string();
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(' ', start), text.size());
    if (end > start) scopes.emplace_back(text.substr(start, end - start));  // skip empty pieces
    start = end + 1;
  }
  return scopes;
}

Reason check_identity(const json::object& payload, const VerifierSettings& s) {
  if (!string_claim_equals(payload, "iss", s.issuer)) return "bad issuer";
  if (!audience_matches(payload.if_contains("aud"), s.audience)) return "bad audience";
  const auto* sub = payload.if_contains("sub");
  if (sub == nullptr || !sub->is_string() || sub->as_string().empty()) return "missing subject";
  // It names the customer in storage and in the rate limiter: bounded, and printable.
  const auto& subject = sub->as_string();
  if (subject.size() > 255 || has_control_characters(subject)) return "invalid subject";
  return nullptr;
}

Verified check_claims(const json::object& payload, const VerifierSettings& s, std::int64_t now) {
  if (const Reason r = check_identity(payload, s)) return fail(r);
  // API.md: `exp` in the future (no leeway: a token is never taken past its expiry), `nbf` and
  // `iat` not in the future, with the leeway for an issuer whose clock is ahead.
  const auto* exp_v = payload.if_contains("exp");
  const auto exp = exp_v ? as_seconds(*exp_v) : std::nullopt;
  if (!exp) return fail("missing or bad exp");
  if (*exp <= now) return fail("token expired");
  const auto future_limit = sat_add(now, std::max<std::int64_t>(0, s.leeway_s));
  if (const Reason r = check_not_future(payload, "nbf", future_limit)) return fail(r);
  if (const Reason r = check_not_future(payload, "iat", future_limit)) return fail(r);
  auto scopes = parse_scopes(payload);
  if (!scopes) return fail("bad scope");
  const auto& sub = payload.at("sub").as_string();
  return Verified{Claims{std::string(sub.data(), sub.size()), std::move(*scopes), *exp}, {}};
}

// --- signing (dev tokens) -------------------------------------------------------------------

// The same policy as the verifier, so that `emporium token` never prints a token it would refuse.
void check_signing_key(const SigningKey& key) {
  if (key.alg == "HS256") {
    // An empty secret would mint tokens anyone can forge.
    if (key.secret.empty()) throw std::invalid_argument("sign_token: empty HS256 secret");
    if (!key.kid.empty())
      throw std::invalid_argument("sign_token: a kid selects a JWKS key, HS256 takes none");
    return;
  }
  if (key.alg != "RS256" && key.alg != "ES256")
    throw std::invalid_argument("sign_token: alg must be HS256, RS256 or ES256");
  if (key.kid.empty())
    throw std::invalid_argument("sign_token: RS256/ES256 need a kid naming the JWKS key");
}

std::string hs256_sign(std::string_view secret, std::string_view input) {
  auto mac = hmac_sha256(secret, input);
  if (!mac) throw std::runtime_error("sign_token: HMAC failed");
  return std::move(*mac);
}

bool key_fits(EVP_PKEY* pkey, std::string_view alg) {
  if (alg == "RS256")
    return EVP_PKEY_is_a(pkey, "RSA") == 1 && EVP_PKEY_get_bits(pkey) >= kRsaBitsMin;
  std::array<char, 64> group{};
  std::size_t len = 0;
  return alg == "ES256" && EVP_PKEY_is_a(pkey, "EC") == 1 &&
         EVP_PKEY_get_group_name(pkey, group.data(), group.size(), &len) == 1 &&
         std::string_view(group.data(), len) == "prime256v1";
}

ossl::Pkey private_key(std::string_view pem, std::string_view alg) {
  const ossl::Bio bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  // No passphrase prompt: an encrypted key fails instead of waiting on a terminal.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  ossl::Pkey pkey;
  if (bio) pkey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  ERR_clear_error();
  if (!pkey) throw std::invalid_argument("sign_token: not an unencrypted PEM private key");
  if (!key_fits(pkey.get(), alg))
    throw std::invalid_argument(std::string("sign_token: the key does not fit ") +
                                std::string(alg) +
                                " (RS256: RSA of 2048 bits or more, ES256: EC P-256)");
  return pkey;
}

// JOSE wants fixed-width r||s where OpenSSL produces DER (RFC 7518 §3.4).
std::string der_to_jose(std::string_view der) {
  const unsigned char* p = bytes_of(der);
  const ossl::EcdsaSig sig{d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()))};
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  if (sig) ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(kEs256SignatureBytes, '\0');
  auto* dst = reinterpret_cast<unsigned char*>(out.data());
  if (!sig || BN_bn2binpad(r, dst, kP256CoordinateBytes) != kP256CoordinateBytes ||
      BN_bn2binpad(s, dst + kP256CoordinateBytes, kP256CoordinateBytes) != kP256CoordinateBytes)
    throw std::runtime_error("sign_token: unexpected ECDSA signature");
  return out;
}

std::string pkey_sign(std::string_view pem, std::string_view alg, std::string_view input) {
  const auto pkey = private_key(pem, alg);
  const ossl::MdCtx ctx{EVP_MD_CTX_new()};
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(input), input.size()) != 1)
    throw std::runtime_error("sign_token: signing failed");
  std::string signature(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &len,
                     bytes_of(input), input.size()) != 1)
    throw std::runtime_error("sign_token: signing failed");
  signature.resize(len);
  return alg == "ES256" ? der_to_jose(signature) : signature;
}

}  // namespace

bool Claims::has_scope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

struct TokenVerifier::CacheEntry {
  json::object payload;
  std::shared_ptr<const KeySet> keys;  // null for HS256 (the secret never changes)
  bool jwks = false;
};

TokenVerifier::TokenVerifier(VerifierSettings settings) : settings_(std::move(settings)) {
  if (settings_.jwks_file.empty()) return;
  const std::lock_guard lock(jwks_mutex_);
  reload_if_changed();  // the stamp starts as "never read", so this always loads
}

TokenVerifier::~TokenVerifier() = default;

TokenVerifier::FileStamp TokenVerifier::stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileStamp{};
  return {std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
          std::int64_t{st.st_size}, static_cast<std::int64_t>(st.st_ino),
          static_cast<std::int64_t>(st.st_dev)};
}

std::shared_ptr<const KeySet> TokenVerifier::current_keys(std::int64_t now_s) const {
  if (settings_.jwks_file.empty()) return nullptr;
  const std::lock_guard lock(jwks_mutex_);
  // One stat per second bounds the cost on a busy node. Rereading under the lock is rare and short
  // (a bounded file), and keeps two threads from loading the same change.
  if (now_s != jwks_checked_s_) {
    jwks_checked_s_ = now_s;
    reload_if_changed();
  }
  return jwks_;
}

void TokenVerifier::reload_if_changed() const {
  const auto stamp = stamp_of(settings_.jwks_file);
  if (stamp == jwks_stamp_) return;
  jwks_stamp_ = stamp;  // a broken file is reported once, not every second
  const auto& path = settings_.jwks_file;
  auto load = load_jwks(path);
  for (const auto& skipped : load.skipped)
    spdlog::warn("auth: JWKS {}: ignoring key {}", path, skipped);
  if (!load.keys) {
    spdlog::warn("auth: JWKS {} not loaded ({}); keeping the previous keys ({})", path, load.error,
                 jwks_ ? jwks_->by_kid.size() : 0);
    return;
  }
  jwks_ = std::move(load.keys);
  if (jwks_->by_kid.empty())
    spdlog::warn("auth: JWKS {} has no usable key: RS256/ES256 tokens are refused", path);
  else
    spdlog::info("auth: JWKS {}: keys loaded: {}", path, jwks_->by_kid.size());
}

Verified TokenVerifier::verify(std::string_view token, std::int64_t now_s) const {
  // Unconfigured issuer/audience would make "equal" trivially true for empty claims: fail closed.
  if (settings_.issuer.empty() || settings_.audience.empty()) return fail("verifier not configured");
  if (token.size() > settings_.token_bytes_max) return fail("token too large");
  {
    std::optional<CacheEntry> hit;
    {
      const std::lock_guard lock(cache_mutex_);
      if (cache_) {
        auto it = cache_->find(std::string(token));
        if (it != cache_->end()) hit = it->second;
      }
    }
    // Signed by a JWKS key: valid only while that key set is still the current one.
    if (hit && (!hit->jwks || current_keys(now_s) == hit->keys))
      return check_claims(hit->payload, settings_, now_s);
  }
  const auto seg = split_compact(token);
  if (!seg) return fail("malformed token");
  const auto header = decode_object(seg->header);
  if (!header) return fail("malformed header");
  const auto jwks = current_keys(now_s);  // held until the signature is checked
  Key key;
  if (const Reason r = select_key(settings_, jwks.get(), *header, key)) return fail(r);
  if (const Reason r = check_header(*header, key)) return fail(r);
  if (!signature_valid(key, *seg)) return fail("bad signature");
  // The payload is parsed only once the signature holds, so forged input never reaches it.
  const auto payload = decode_object(seg->payload);
  if (!payload) return fail("malformed payload");
  auto verified = check_claims(*payload, settings_, now_s);
  if (verified) {
    const std::lock_guard lock(cache_mutex_);
    if (!cache_ || cache_->size() >= kCacheMax)
      cache_ = std::make_unique<std::unordered_map<std::string, CacheEntry>>();
    cache_->emplace(std::string(token), CacheEntry{*payload, jwks, key.alg != "HS256"});
  }
  return verified;
}

std::size_t TokenVerifier::cached_tokens() const {
  const std::lock_guard lock(cache_mutex_);
  return cache_ ? cache_->size() : 0;
}

std::optional<std::string_view> bearer_token(std::string_view header_value) {
  // RFC 6750 2.1 and RFC 9110 11.1: "Bearer" (the scheme's name in any case), one or more spaces,
  // the token.
  constexpr std::string_view kScheme = "bearer";
  if (header_value.size() <= kScheme.size() || header_value[kScheme.size()] != ' ') return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if ((header_value[i] | 0x20) != kScheme[i]) return std::nullopt;
  auto token = header_value.substr(kScheme.size());
  token.remove_prefix(std::min(token.find_first_not_of(' '), token.size()));
  // Visible ASCII only: a space, tab or control character means a malformed header.
  const bool visible = std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (token.empty() || !visible) return std::nullopt;
  return token;
}

std::optional<std::string> check_jwks_file(const std::string& path) {
  auto load = load_jwks(path);
  if (!load.keys) return std::move(load.error);
  return std::nullopt;
}

std::string sign_token(const SigningKey& key, const TokenRequest& request) {
  check_signing_key(key);
  json::object header{{"alg", key.alg}, {"typ", "at+jwt"}};
  if (!key.kid.empty()) header["kid"] = key.kid;
  const json::object payload{{"iss", request.issuer},
                             {"aud", request.audience},
                             {"sub", request.sub},
                             {"scope", request.scope},
                             {"iat", request.now_s},
                             {"nbf", request.now_s},
                             {"exp", sat_add(request.now_s, request.ttl_s)}};
  std::string token = base64url_encode(json::serialize(header));
  token += '.';
  token += base64url_encode(json::serialize(payload));
  const std::string signature = key.alg == "HS256" ? hs256_sign(key.secret, token)
                                                   : pkey_sign(key.private_key_pem, key.alg, token);
  token += '.';
  token += base64url_encode(signature);
  return token;
}

std::string sign_hs256(std::string_view secret, std::string_view issuer, std::string_view audience,
                       std::string_view sub, std::string_view scope, std::int64_t ttl_s,
                       std::int64_t now_s) {
  return sign_token(SigningKey{"HS256", secret, {}, {}},
                    TokenRequest{issuer, audience, sub, scope, ttl_s, now_s});
}

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const unsigned char byte : bytes) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  // One leftover character carries only 6 bits: never a whole byte, so never valid.
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = b64url_value(c);  // '=', '+', '/', whitespace all land here
    if (v < 0) return std::nullopt;
    acc = ((acc << 6) | static_cast<std::uint32_t>(v)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (!text.empty() && !canonical_tail(text)) return std::nullopt;
  return out;
}

}  // namespace emporium::auth
