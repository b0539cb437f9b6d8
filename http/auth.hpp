// Bearer token verification (JWT, RFC 7519/8725) with OpenSSL 3, and dev token signing.
// The algorithm is pinned to the key: HS256 only with the configured secret, RS256/ES256 only with
// the JWKS key named by `kid`; `none` never.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <string_view>
#include <vector>

namespace emporium::auth {

struct Claims {
  std::string sub;
  std::vector<std::string> scopes;
  std::int64_t exp = 0;

  bool has_scope(std::string_view scope) const;  // exact match; `admin` does not imply others here
};

struct VerifierSettings {
  std::string issuer;
  std::string audience;
  std::string hs256_secret;      // empty: HS256 tokens are refused
  std::int64_t leeway_s = 60;
  std::size_t token_bytes_max = 8192;
  std::string jwks_file;         // RS256/ES256 public keys; empty: none. Reread when it changes
};

struct KeySet;  // immutable RS256/ES256 public keys by kid, swapped whole on a reread (auth.cpp)

// Result of a verification: either claims or a short reason (for logs; never echoes the token).
struct Verified {
  std::optional<Claims> claims;
  std::string error;
  explicit operator bool() const { return claims.has_value(); }
};

// Thread-safe: verify() runs on every HTTP thread. The JWKS is loaded at construction (a failure
// is logged and leaves no RS256/ES256 keys until the file changes) and checked for a new mtime,
// size or inode at most once per second of `now_s`; a reread that fails keeps the last good set.
class TokenVerifier {
 public:
  explicit TokenVerifier(VerifierSettings settings);
  ~TokenVerifier();
  Verified verify(std::string_view token, std::int64_t now_s) const;
  // Tokens remembered as verified (at most kCacheMax).
  std::size_t cached_tokens() const;
  static constexpr std::size_t kCacheMax = 4096;

 private:
  struct FileStamp {
    std::int64_t mtime_ns = -1, size = -1, inode = -1, device = -1;  // -1: missing
    bool operator==(const FileStamp&) const = default;
  };
  static FileStamp stamp_of(const std::string& path);
  std::shared_ptr<const KeySet> current_keys(std::int64_t now_s) const;
  void reload_if_changed() const;  // jwks_mutex_ held

  VerifierSettings settings_;
  // Tokens whose signature held, with their claims: a client sends the same token with every
  // request, and the time checks (exp, nbf, iat) are run again on each. An entry counts only with
  // the key set it was verified with. Bounded: cleared when it reaches kCacheMax.
  struct CacheEntry;
  mutable std::mutex cache_mutex_;
  mutable std::unique_ptr<std::unordered_map<std::string, CacheEntry>> cache_;
  mutable std::mutex jwks_mutex_;  // guards the three members below, not the key sets themselves
  mutable std::shared_ptr<const KeySet> jwks_;
  // -2: never read, which differs from any stat result, even "missing".
  mutable FileStamp jwks_stamp_{-2, -2, -2, -2};
  mutable std::int64_t jwks_checked_s_ = INT64_MIN;  // no check yet
};

// Loads a JWKS file as the verifier does: nullopt when usable, else a reason naming no key
// material. Lets `serve` refuse a bad auth.jwks_file before anything starts.
std::optional<std::string> check_jwks_file(const std::string& path);

// Extracts the token from an Authorization header value: exactly "Bearer " + token.
std::optional<std::string_view> bearer_token(std::string_view header_value);

// What `emporium token` signs with. The key fixes the algorithm, as on the verifying side.
struct SigningKey {
  std::string_view alg = "HS256";    // HS256, RS256 or ES256
  std::string_view secret;           // HS256
  std::string_view private_key_pem;  // RS256 (RSA >= 2048 bits) or ES256 (P-256)
  std::string_view kid;              // RS256/ES256, required: the JWKS key that verifies the token
};

struct TokenRequest {
  std::string_view issuer, audience, sub, scope;
  std::int64_t ttl_s = 3600;
  std::int64_t now_s = 0;
};

// Signs an access token with typ "at+jwt"; iat = nbf = now_s. ES256 signatures are raw r||s.
// Throws std::invalid_argument on an unusable key (the message names no key material).
std::string sign_token(const SigningKey& key, const TokenRequest& request);

// Signs an HS256 access token with typ "at+jwt" and the given claims; iat = nbf = now_s.
std::string sign_hs256(std::string_view secret, std::string_view issuer, std::string_view audience,
                       std::string_view sub, std::string_view scope, std::int64_t ttl_s,
                       std::int64_t now_s);

// base64url without padding (RFC 4648 §5); decode refuses padding and characters outside the alphabet.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace emporium::auth
