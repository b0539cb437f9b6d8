// JWT verification and dev signing. See DESIGN.md "HTTP edge": libjwt is not used because it lets
// the token pick the algorithm; here the key pins the algorithm and every check fails closed.
#include "http/auth.hpp"

#include "http/json.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace emporium::auth {

namespace json = boost::json;

namespace {

// A check result: nullptr is success, otherwise a fixed reason that never contains token bytes.
using Reason = const char*;

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kHs256Bytes = 32;

Verified fail(Reason reason) { return Verified{std::nullopt, reason}; }

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

// The key decides the algorithm, never the token. A JWKS (RS256/ES256) would add keys chosen by
// `kid` here, each with its own alg; the token's alg must then equal that key's alg.
struct Key {
  std::string_view alg;
  std::string_view secret;
};

std::optional<Key> select_key(const VerifierSettings& settings, const json::object& /*header*/) {
  if (settings.hs256_secret.empty()) return std::nullopt;  // no key: HS256 refused outright
  return Key{"HS256", settings.hs256_secret};
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

bool signature_valid(const Key& key, const Segments& seg) {
  if (key.alg != "HS256") return false;  // only algorithm with an implementation so far
  const auto given = base64url_decode(seg.signature);
  if (!given || given->size() != kHs256Bytes) return false;
  const auto expected = hmac_sha256(key.secret, seg.signing_input());
  return expected && CRYPTO_memcmp(expected->data(), given->data(), kHs256Bytes) == 0;
}

// Saturating add so that huge exp/leeway values cannot wrap around into "valid".
std::int64_t sat_add(std::int64_t a, std::int64_t b) {
  std::int64_t out = 0;
  if (!__builtin_add_overflow(a, b, &out)) return out;
  return b > 0 ? std::numeric_limits<std::int64_t>::max() : std::numeric_limits<std::int64_t>::min();
}

// NumericDate as an exact integer. Doubles pass only when integral and within 2^53, where they
// are still exact; strings, booleans and fractions are refused.
std::optional<std::int64_t> as_integer(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (!v.is_double()) return std::nullopt;
  const double d = v.get_double();
  constexpr double kExact = 9007199254740992.0;  // 2^53
  if (!std::isfinite(d) || std::fabs(d) > kExact || std::trunc(d) != d) return std::nullopt;
  return static_cast<std::int64_t>(d);
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

// Optional "not in the future" claims (nbf, iat).
Reason check_not_future(const json::object& payload, std::string_view name, std::int64_t limit) {
  const auto* v = payload.if_contains(name);
  if (v == nullptr) return nullptr;
  const auto t = as_integer(*v);
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
  return nullptr;
}

Verified check_claims(const json::object& payload, const VerifierSettings& s, std::int64_t now) {
  if (const Reason r = check_identity(payload, s)) return fail(r);
  const std::int64_t leeway = std::max<std::int64_t>(0, s.leeway_s);
  const auto* exp_v = payload.if_contains("exp");
  const auto exp = exp_v ? as_integer(*exp_v) : std::nullopt;
  if (!exp) return fail("missing or bad exp");
  if (sat_add(*exp, leeway) < now) return fail("token expired");  // exp == now - leeway passes
  const auto future_limit = sat_add(now, leeway);
  if (const Reason r = check_not_future(payload, "nbf", future_limit)) return fail(r);
  if (const Reason r = check_not_future(payload, "iat", future_limit)) return fail(r);
  auto scopes = parse_scopes(payload);
  if (!scopes) return fail("bad scope");
  const auto& sub = payload.at("sub").as_string();
  return Verified{Claims{std::string(sub.data(), sub.size()), std::move(*scopes), *exp}, {}};
}

}  // namespace

bool Claims::has_scope(std::string_view scope) const {
  return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
}

TokenVerifier::TokenVerifier(VerifierSettings settings) : settings_(std::move(settings)) {}

Verified TokenVerifier::verify(std::string_view token, std::int64_t now_s) const {
  // Unconfigured issuer/audience would make "equal" trivially true for empty claims: fail closed.
  if (settings_.issuer.empty() || settings_.audience.empty()) return fail("verifier not configured");
  if (token.size() > settings_.token_bytes_max) return fail("token too large");
  const auto seg = split_compact(token);
  if (!seg) return fail("malformed token");
  const auto header = decode_object(seg->header);
  if (!header) return fail("malformed header");
  const auto key = select_key(settings_, *header);
  if (!key) return fail("no key for token");
  if (const Reason r = check_header(*header, *key)) return fail(r);
  if (!signature_valid(*key, *seg)) return fail("bad signature");
  // The payload is parsed only once the signature holds, so forged input never reaches it.
  const auto payload = decode_object(seg->payload);
  if (!payload) return fail("malformed payload");
  return check_claims(*payload, settings_, now_s);
}

std::optional<std::string_view> bearer_token(std::string_view header_value) {
  constexpr std::string_view kPrefix = "Bearer ";
  if (header_value.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  const auto token = header_value.substr(kPrefix.size());
  // Visible ASCII only: a space, tab or control character means a malformed header.
  const bool visible = std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (token.empty() || !visible) return std::nullopt;
  return token;
}

std::string sign_hs256(std::string_view secret, std::string_view issuer, std::string_view audience,
                       std::string_view sub, std::string_view scope, std::int64_t ttl_s,
                       std::int64_t now_s) {
  // Same policy as the verifier: an empty secret would mint tokens anyone can forge.
  if (secret.empty()) throw std::invalid_argument("sign_hs256: empty secret");
  const json::object payload{{"iss", issuer}, {"aud", audience}, {"sub", sub},   {"scope", scope},
                             {"iat", now_s},  {"nbf", now_s},    {"exp", sat_add(now_s, ttl_s)}};
  std::string token = base64url_encode(R"({"alg":"HS256","typ":"at+jwt"})");
  token += '.';
  token += base64url_encode(json::serialize(payload));
  const auto mac = hmac_sha256(secret, token);
  if (!mac) throw std::runtime_error("sign_hs256: HMAC failed");
  token += '.';
  token += base64url_encode(*mac);
  return token;
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
