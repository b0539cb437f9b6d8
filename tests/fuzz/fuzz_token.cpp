// Fuzzes bearer token extraction and verification. Besides the raw input, the input is also used
// as the claims (or the header) of a token the harness signs with the verifier's secret, so the
// claim checks behind the signature are reached too: a forged MAC would stop every input there.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http/auth.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace emporium::auth;

namespace {

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef0123";
constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"at+jwt"})";
constexpr std::string_view kClaims =
    R"({"iss":"https://issuer.test","aud":"emporium","sub":"customer-1","exp":1700003600,"scope":"orders:write"})";

const TokenVerifier& verifier() {
  static const TokenVerifier v{[] {
    VerifierSettings s;
    s.issuer = "https://issuer.test";
    s.audience = "emporium";
    s.hs256_secret = std::string(kSecret);
    return s;
  }()};
  return v;
}

std::string sign(std::string_view header, std::string_view claims) {
  std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

void check(const Verified& v) {
  FUZZ_CHECK(v.claims.has_value() == v.error.empty());
  if (!v) {
    FUZZ_CHECK(!v.error.empty() && v.error.size() < 64);  // a fixed reason, never token bytes
    return;
  }
  FUZZ_CHECK(!v.claims->sub.empty());
  FUZZ_CHECK(v.claims->exp > kNow);  // not expired (no leeway on exp)
  for (const auto& scope : v.claims->scopes)
    FUZZ_CHECK(!scope.empty() && scope.find(' ') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // The input as an Authorization header value, then as a bare token.
  if (const auto token = bearer_token(input)) {
    // "Bearer" in any case, one or more spaces, then the token: the input's tail.
    FUZZ_CHECK(!token->empty() && input.size() >= token->size() + 7 &&
               input.substr(input.size() - token->size()) == *token &&
               input.substr(6, input.size() - 6 - token->size()).find_first_not_of(' ') == std::string_view::npos);
    for (char c : *token) FUZZ_CHECK(c > 0x20 && c < 0x7f);
    check(verifier().verify(*token, kNow));
  }
  const auto raw = verifier().verify(input, kNow);
  check(raw);

  // The input as claims, then as the protected header, of a correctly signed token.
  check(verifier().verify(sign(kHeader, input), kNow));
  check(verifier().verify(sign(input, kClaims), kNow));

  // base64url round-trips and its decoder never accepts two spellings of the same bytes.
  const auto encoded = base64url_encode(input);
  const auto decoded = base64url_decode(encoded);
  FUZZ_CHECK(decoded && *decoded == input);
  if (const auto bytes = base64url_decode(input)) FUZZ_CHECK(base64url_encode(*bytes) == input);
  return 0;
}
