// Bearer token verification (JWT, RFC 7519/8725) with OpenSSL 3, and dev token signing.
// The algorithm is pinned to the key: HS256 only with the configured secret; `none` never.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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
};

// Result of a verification: either claims or a short reason (for logs; never echoes the token).
struct Verified {
  std::optional<Claims> claims;
  std::string error;
  explicit operator bool() const { return claims.has_value(); }
};

class TokenVerifier {
 public:
  explicit TokenVerifier(VerifierSettings settings);
  Verified verify(std::string_view token, std::int64_t now_s) const;

 private:
  VerifierSettings settings_;
};

// Extracts the token from an Authorization header value: exactly "Bearer " + token.
std::optional<std::string_view> bearer_token(std::string_view header_value);

// Signs an HS256 access token with typ "at+jwt" and the given claims; iat = nbf = now_s.
std::string sign_hs256(std::string_view secret, std::string_view issuer, std::string_view audience,
                       std::string_view sub, std::string_view scope, std::int64_t ttl_s,
                       std::int64_t now_s);

// base64url without padding (RFC 4648 §5); decode refuses padding and characters outside the alphabet.
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace emporium::auth
