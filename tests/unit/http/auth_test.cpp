// Tests for http/auth: every forged-token class from RFC 8725 that the verifier must refuse.
// Tokens are assembled by hand (independent HMAC via OpenSSL) so malformed inputs are possible.
#include "http/auth.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

#include <string>

namespace emporium::auth {
namespace {

namespace json = boost::json;

constexpr std::string_view kSecret = "test-secret-0123456789abcdef";
constexpr std::string_view kIssuer = "https://issuer.example";
constexpr std::string_view kAudience = "emporium";
constexpr std::int64_t kNow = 1'700'000'000;
constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

std::string raw_hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.empty() ? "" : key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

// Encodes arbitrary header/payload text and signs it, so any malformed JSON can be signed.
std::string make_token(std::string_view header, std::string_view payload,
                       std::string_view secret = kSecret) {
  std::string input = base64url_encode(header) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(raw_hmac(secret, input));
}

json::object good_claims() {
  return {{"iss", kIssuer}, {"aud", kAudience}, {"sub", "customer-42"},
          {"scope", "orders:read orders:write"}, {"iat", kNow - 10}, {"nbf", kNow - 10},
          {"exp", kNow + 300}};
}

std::string token_with(const json::object& claims, std::string_view header = kHeader) {
  return make_token(header, json::serialize(claims));
}

VerifierSettings settings() {
  VerifierSettings s;
  s.issuer = kIssuer;
  s.audience = kAudience;
  s.hs256_secret = kSecret;
  return s;
}

Verified verify(std::string_view token, std::int64_t now = kNow) {
  return TokenVerifier(settings()).verify(token, now);
}

void expect_rejected(std::string_view token, std::int64_t now = kNow) {
  const auto result = verify(token, now);
  EXPECT_FALSE(result);
  EXPECT_FALSE(result.error.empty());
  if (!token.empty()) {
    EXPECT_EQ(result.error.find(token), std::string::npos);  // reason never echoes the token
  }
}

// --- round trip -------------------------------------------------------------------------------

TEST(AuthSign, RoundTrip) {
  const auto token = sign_hs256(kSecret, kIssuer, kAudience, "customer-7", "orders:read admin", 600, kNow);
  const auto result = verify(token);
  ASSERT_TRUE(result) << result.error;
  EXPECT_EQ(result.claims->sub, "customer-7");
  EXPECT_EQ(result.claims->exp, kNow + 600);
  EXPECT_EQ(result.claims->scopes, (std::vector<std::string>{"orders:read", "admin"}));
  EXPECT_TRUE(result.error.empty());
}

TEST(AuthSign, HeaderIsHs256AtJwt) {
  const auto token = sign_hs256(kSecret, kIssuer, kAudience, "c", "", 60, kNow);
  const auto header = base64url_decode(token.substr(0, token.find('.')));
  ASSERT_TRUE(header);
  EXPECT_EQ(json::parse(*header), json::parse(R"({"alg":"HS256","typ":"at+jwt"})"));
}

TEST(AuthSign, EmptySecretThrows) {
  EXPECT_THROW(sign_hs256("", kIssuer, kAudience, "c", "", 60, kNow), std::invalid_argument);
}

TEST(AuthVerify, HandBuiltTokenAccepted) {
  const auto result = verify(token_with(good_claims()));
  ASSERT_TRUE(result) << result.error;
  EXPECT_EQ(result.claims->sub, "customer-42");
}

// --- algorithm and key ------------------------------------------------------------------------

TEST(AuthVerify, AlgNoneRejectedInAnyCase) {
  const auto payload = base64url_encode(json::serialize(good_claims()));
  for (const char* alg : {"none", "None", "NONE", "nOnE"}) {
    const auto header = base64url_encode(std::string(R"({"alg":")") + alg + R"("})");
    expect_rejected(header + "." + payload + "." + base64url_encode("x"));
    // Also with a valid-looking HMAC: the algorithm itself must be refused.
    expect_rejected(token_with(good_claims(), std::string(R"({"alg":")") + alg + R"("})"));
  }
}

TEST(AuthVerify, OtherAlgorithmsRejectedEvenWithValidHmac) {
  for (const char* alg : {"RS256", "ES256", "HS384", "HS512", "hs256", "HS256 "}) {
    expect_rejected(token_with(good_claims(), std::string(R"({"alg":")") + alg + R"("})"));
  }
  expect_rejected(token_with(good_claims(), R"({"typ":"JWT"})"));          // alg missing
  expect_rejected(token_with(good_claims(), R"({"alg":["HS256"]})"));      // alg not a string
}

TEST(AuthVerify, EmptySecretRejectsEverything) {
  auto s = settings();
  s.hs256_secret.clear();
  const auto forged = make_token(kHeader, json::serialize(good_claims()), "");
  EXPECT_FALSE(TokenVerifier(s).verify(forged, kNow));
  EXPECT_FALSE(TokenVerifier(s).verify(token_with(good_claims()), kNow));
}

TEST(AuthVerify, WrongKeyRejected) {
  expect_rejected(make_token(kHeader, json::serialize(good_claims()), "other-secret"));
  expect_rejected(make_token(kHeader, json::serialize(good_claims()), ""));
}

TEST(AuthVerify, TamperedPayloadRejected) {
  const auto token = token_with(good_claims());
  auto claims = good_claims();
  claims["sub"] = "customer-1";
  const auto forged_payload = base64url_encode(json::serialize(claims));
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  expect_rejected(token.substr(0, first + 1) + forged_payload + token.substr(second));
}

TEST(AuthVerify, TamperedSignatureRejected) {
  const auto token = token_with(good_claims());
  const auto sig_start = token.rfind('.') + 1;
  for (std::size_t i = sig_start; i < token.size(); ++i) {
    auto forged = token;
    forged[i] = forged[i] == 'A' ? 'B' : 'A';
    expect_rejected(forged);
  }
  expect_rejected(token.substr(0, token.size() - 1));            // truncated signature
  expect_rejected(token + "AA");                                  // lengthened signature
}

TEST(AuthVerify, SignatureTrailingBitsMustBeCanonical) {
  const auto token = token_with(good_claims());
  // 32 bytes -> 43 chars: the last char carries 2 unused bits; setting one must not verify.
  const char last = token.back();
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const auto idx = alphabet.find(last);
  expect_rejected(token.substr(0, token.size() - 1) + alphabet[idx | 1]);
}

// --- structure --------------------------------------------------------------------------------

TEST(AuthVerify, SegmentCountMustBeThree) {
  const auto token = token_with(good_claims());
  const auto first = token.find('.');
  expect_rejected(token.substr(0, token.rfind('.')));  // 2 segments
  expect_rejected(token + ".AAAA");                    // 4 segments
  expect_rejected(token + ".AAAA.AAAA");               // 5 segments
  expect_rejected(token + ".");                        // empty 4th
  expect_rejected("." + token.substr(first + 1));      // empty header
  expect_rejected(token.substr(0, first) + ".." + token.substr(token.rfind('.') + 1));
  expect_rejected(token.substr(0, token.rfind('.') + 1));  // empty signature
  expect_rejected("");
  expect_rejected("..");
}

TEST(AuthVerify, BadBase64urlRejected) {
  const auto token = token_with(good_claims());
  const auto first = token.find('.');
  for (const char* bad : {"+", "/", " ", "\n", "*", "="}) {
    expect_rejected(std::string(bad) + token);
    expect_rejected(token.substr(0, first) + bad + token.substr(first));
    expect_rejected(token + bad);
  }
}

TEST(AuthVerify, PaddedSegmentsRejected) {
  // Header chosen so its encoding needs padding in standard base64.
  const std::string header = R"({"alg": "HS256"})";
  ASSERT_NE(header.size() % 3, 0u);
  const auto payload = json::serialize(good_claims());
  const std::string input = base64url_encode(header) + "=." + base64url_encode(payload);
  expect_rejected(input + "." + base64url_encode(raw_hmac(kSecret, input)));
  expect_rejected(token_with(good_claims()) + "=");
}

TEST(AuthVerify, OversizedTokenRejected) {
  auto claims = good_claims();
  claims["pad"] = std::string(9000, 'x');
  expect_rejected(token_with(claims));

  auto s = settings();
  const auto token = token_with(good_claims());
  s.token_bytes_max = token.size();
  EXPECT_TRUE(TokenVerifier(s).verify(token, kNow));
  s.token_bytes_max = token.size() - 1;
  EXPECT_FALSE(TokenVerifier(s).verify(token, kNow));
}

// --- header -----------------------------------------------------------------------------------

TEST(AuthVerify, DuplicateHeaderKeysRejected) {
  expect_rejected(token_with(good_claims(), R"({"alg":"none","alg":"HS256"})"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256","alg":"HS256"})"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256","\u0061lg":"HS256"})"));
}

TEST(AuthVerify, HeaderMustBeJsonObject) {
  expect_rejected(token_with(good_claims(), R"(["HS256"])"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256")"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256"} x)"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256",})"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256"/*c*/})"));
}

TEST(AuthVerify, CritRejected) {
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256","crit":["exp"],"exp":1})"));
  expect_rejected(token_with(good_claims(), R"({"alg":"HS256","crit":[]})"));
}

TEST(AuthVerify, TypAcceptedValues) {
  for (const char* typ : {"JWT", "jwt", "at+jwt", "AT+JWT"}) {
    const auto result =
        verify(token_with(good_claims(), std::string(R"({"alg":"HS256","typ":")") + typ + "\"}"));
    EXPECT_TRUE(result) << typ << ": " << result.error;
  }
  EXPECT_TRUE(verify(token_with(good_claims(), R"({"alg":"HS256"})")));  // typ optional
}

TEST(AuthVerify, BadTypRejected) {
  for (const char* typ : {R"("JOSE")", R"("")", R"("application/jwt")", R"(1)", R"(null)"}) {
    expect_rejected(token_with(good_claims(), std::string(R"({"alg":"HS256","typ":)") + typ + "}"));
  }
}

TEST(AuthVerify, KeyUrlHeadersIgnored) {
  // jku/x5u/jwk/x5c must never provide the key: a token signed with an embedded key fails...
  const std::string header =
      R"({"alg":"HS256","jku":"https://evil/jwks","x5u":"https://evil/c","jwk":{"kty":"oct","k":"ZXZpbA"},"x5c":["AA"]})";
  expect_rejected(make_token(header, json::serialize(good_claims()), "evil"));
  // ...while their mere presence does not change a correctly signed token.
  EXPECT_TRUE(verify(token_with(good_claims(), header)));
}

// --- time claims ------------------------------------------------------------------------------

// API.md: `exp` in the future. The leeway is for nbf and iat only: a token is never taken past
// its expiry.
TEST(AuthVerify, ExpiryHasNoLeeway) {
  auto claims = good_claims();
  claims["exp"] = kNow + 1;
  EXPECT_TRUE(verify(token_with(claims)));
  for (std::int64_t exp : {kNow, kNow - 1, kNow - 60, kNow - 61}) {
    claims["exp"] = exp;
    expect_rejected(token_with(claims));
  }
  claims["exp"] = double(kNow) + 1.5;  // a NumericDate need not be whole
  EXPECT_TRUE(verify(token_with(claims)));
  claims["exp"] = double(kNow) + 0.5;  // `now` is whole seconds: perhaps past it already
  expect_rejected(token_with(claims));
  claims["exp"] = double(kNow) - 0.5;
  expect_rejected(token_with(claims));
  claims.erase("exp");
  expect_rejected(token_with(claims));
}

TEST(AuthVerify, FutureNbfAndIatRejectedBeyondLeeway) {
  for (const char* name : {"nbf", "iat"}) {
    auto claims = good_claims();
    claims[name] = kNow + 60;
    EXPECT_TRUE(verify(token_with(claims))) << name;
    claims[name] = kNow + 61;
    expect_rejected(token_with(claims));
    claims.erase(name);
    EXPECT_TRUE(verify(token_with(claims))) << name << " optional";
  }
}

TEST(AuthVerify, TimeClaimsMustBeNumericDates) {
  for (const char* name : {"exp", "nbf", "iat"}) {
    auto claims = good_claims();
    claims[name] = std::to_string(kNow);
    expect_rejected(token_with(claims));
    claims[name] = 1.5e16;  // a float beyond 2^53
    expect_rejected(token_with(claims));
    claims[name] = true;
    expect_rejected(token_with(claims));
    claims[name] = nullptr;
    expect_rejected(token_with(claims));
  }
  for (const char* name : {"nbf", "iat"}) {  // RFC 7519: seconds, not necessarily whole
    auto claims = good_claims();
    claims[name] = double(kNow) + 60.5;
    EXPECT_TRUE(verify(token_with(claims))) << name;
    claims[name] = double(kNow) + 61.5;
    expect_rejected(token_with(claims));
  }
  auto claims = good_claims();
  claims["exp"] = std::uint64_t(1) << 63;  // larger than int64
  expect_rejected(token_with(claims));
}

TEST(AuthVerify, HugeExpDoesNotOverflow) {
  auto claims = good_claims();
  claims["exp"] = std::numeric_limits<std::int64_t>::max();
  EXPECT_TRUE(verify(token_with(claims)));
  claims["exp"] = std::numeric_limits<std::int64_t>::min();
  expect_rejected(token_with(claims));
}

// --- identity claims --------------------------------------------------------------------------

TEST(AuthVerify, IssuerMustMatch) {
  auto claims = good_claims();
  claims["iss"] = "https://issuer.example/";
  expect_rejected(token_with(claims));
  claims["iss"] = json::array{kIssuer};
  expect_rejected(token_with(claims));
  claims.erase("iss");
  expect_rejected(token_with(claims));
}

TEST(AuthVerify, AudienceMustMatch) {
  auto claims = good_claims();
  claims["aud"] = "someone-else";
  expect_rejected(token_with(claims));
  claims.erase("aud");
  expect_rejected(token_with(claims));
  claims["aud"] = json::array{"a", kAudience, "b"};
  EXPECT_TRUE(verify(token_with(claims)));
  claims["aud"] = json::array{"a", "b"};
  expect_rejected(token_with(claims));
  claims["aud"] = json::array{};
  expect_rejected(token_with(claims));
  claims["aud"] = json::array{kAudience, 5};
  expect_rejected(token_with(claims));
}

TEST(AuthVerify, SubjectRequired) {
  auto claims = good_claims();
  claims.erase("sub");
  expect_rejected(token_with(claims));
  claims["sub"] = "";
  expect_rejected(token_with(claims));
  claims["sub"] = 42;
  expect_rejected(token_with(claims));
}

TEST(AuthVerify, SubjectIsBoundedAndPrintable) {
  // It names the customer in storage: 255 bytes at most, no control characters.
  auto claims = good_claims();
  claims["sub"] = std::string(255, 'c');
  ASSERT_TRUE(verify(token_with(claims)));
  claims["sub"] = std::string(256, 'c');
  expect_rejected(token_with(claims));
  EXPECT_EQ(verify(token_with(claims)).error, "invalid subject");
  for (std::string bad : {std::string("a\0b", 3), std::string("a\nb"), std::string("a\x7f")}) {
    claims["sub"] = bad;
    expect_rejected(token_with(claims));
  }
  claims["sub"] = "kund\xc3\xa9 #7";  // UTF-8 and spaces are printable
  EXPECT_TRUE(verify(token_with(claims)));
}

TEST(AuthVerify, UnconfiguredVerifierRejects) {
  auto s = settings();
  s.issuer.clear();
  auto claims = good_claims();
  claims["iss"] = "";
  EXPECT_FALSE(TokenVerifier(s).verify(token_with(claims), kNow));
}

TEST(AuthVerify, PayloadMustBeStrictJsonObject) {
  expect_rejected(make_token(kHeader, R"({"sub":"a","sub":"b"})"));
  auto text = json::serialize(good_claims());
  text.insert(1, R"("sub":"admin",)");  // duplicate of a real claim, first occurrence
  expect_rejected(make_token(kHeader, text));
  expect_rejected(make_token(kHeader, "[1,2]"));
  expect_rejected(make_token(kHeader, "not json"));
  expect_rejected(make_token(kHeader, json::serialize(good_claims()) + ","));
}

// --- scopes -----------------------------------------------------------------------------------

TEST(AuthScopes, ExactMatchOnly) {
  auto claims = good_claims();
  claims["scope"] = "orders:readx inventory:read";
  const auto result = verify(token_with(claims));
  ASSERT_TRUE(result) << result.error;
  EXPECT_FALSE(result.claims->has_scope("orders:read"));
  EXPECT_TRUE(result.claims->has_scope("orders:readx"));
  EXPECT_TRUE(result.claims->has_scope("inventory:read"));
  EXPECT_FALSE(result.claims->has_scope("inventory"));
  EXPECT_FALSE(result.claims->has_scope(""));
  EXPECT_FALSE(result.claims->has_scope("admin"));
}

TEST(AuthScopes, MissingScopeMeansNone) {
  auto claims = good_claims();
  claims.erase("scope");
  const auto result = verify(token_with(claims));
  ASSERT_TRUE(result) << result.error;
  EXPECT_TRUE(result.claims->scopes.empty());
}

TEST(AuthScopes, NonStringScopeRejected) {
  auto claims = good_claims();
  claims["scope"] = json::array{"orders:read"};
  expect_rejected(token_with(claims));
}

TEST(AuthScopes, SplitOnSingleSpaces) {
  auto claims = good_claims();
  claims["scope"] = "a  b ";
  const auto result = verify(token_with(claims));
  ASSERT_TRUE(result) << result.error;
  EXPECT_EQ(result.claims->scopes, (std::vector<std::string>{"a", "b"}));
}

// --- bearer_token -----------------------------------------------------------------------------

// RFC 6750 2.1: "Bearer" 1*SP b64token; the scheme's name in any case (RFC 9110 11.1).
TEST(AuthBearer, AcceptsTheSchemeInAnyCaseAndOneOrMoreSpaces) {
  for (const char* good : {"Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER abc.def.ghi",
                           "bEaReR abc.def.ghi", "Bearer  abc.def.ghi", "Bearer    abc.def.ghi"})
    EXPECT_EQ(bearer_token(good), std::optional<std::string_view>("abc.def.ghi")) << '"' << good << '"';
}

TEST(AuthBearer, RejectsOtherForms) {
  for (const char* bad : {"", "Bearer", "Bearer ", "Bearer   ", "Bearer abc ", "Bearer a b",
                          "Bearer\tabc", "Bearer abc\t", "Basic abc", " Bearer abc", "Bearerabc",
                          "Bearer_abc", "Bearez abc", "Bearer\x01" "abc"}) {
    EXPECT_EQ(bearer_token(bad), std::nullopt) << '"' << bad << '"';
  }
}

// --- base64url --------------------------------------------------------------------------------

TEST(AuthBase64url, KnownVectors) {
  // RFC 4648 §10 vectors without padding.
  const std::pair<const char*, const char*> vectors[] = {
      {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"foob", "Zm9vYg"},
      {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64url_encode(plain), encoded);
    EXPECT_EQ(base64url_decode(encoded), std::optional<std::string>(plain));
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_decode("-_8"), std::optional<std::string>("\xfb\xff"));
}

TEST(AuthBase64url, RoundTripAllBytes) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (std::size_t n = 0; n <= bytes.size(); n += 37) {
    EXPECT_EQ(base64url_decode(base64url_encode(bytes.substr(0, n))), bytes.substr(0, n));
  }
}

TEST(AuthBase64url, DecodeIsStrict) {
  for (const char* bad : {"Zg==", "Zg=", "Zm8=", "+/8", "Zm 9v", "Zm9v\n", "Z", "Zm9vY", "Zh", "Zm9"}) {
    EXPECT_EQ(base64url_decode(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace emporium::auth

// --- verified-token cache ---------------------------------------------------------------------

namespace emporium::auth {
namespace {

TEST(AuthCache, ARememberedTokenStillExpires) {
  const TokenVerifier v(settings());
  const auto token = sign_hs256(kSecret, kIssuer, kAudience, "c", "orders:read", 60, kNow);
  ASSERT_TRUE(v.verify(token, kNow));
  ASSERT_EQ(v.cached_tokens(), 1u);
  ASSERT_TRUE(v.verify(token, kNow + 1));  // from the cache
  ASSERT_EQ(v.cached_tokens(), 1u);
  EXPECT_TRUE(v.verify(token, kNow + 59));
  const auto late = v.verify(token, kNow + 60);  // at its exp: the leeway is not for exp
  EXPECT_FALSE(late);
  EXPECT_FALSE(late.error.empty());
}

TEST(AuthCache, OnlyVerifiedTokensAreRememberedAndTheCacheIsBounded) {
  const TokenVerifier v(settings());
  const auto good = sign_hs256(kSecret, kIssuer, kAudience, "c", "", 600, kNow);
  auto forged = good;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(v.verify(forged, kNow));
  EXPECT_FALSE(v.verify(forged, kNow));  // a failure is never cached as a success
  EXPECT_EQ(v.cached_tokens(), 0u);
  std::size_t most = 0;
  for (int i = 0; i < 5000; ++i) {  // past the bound: the cache is cleared, answers stay right
    ASSERT_TRUE(v.verify(sign_hs256(kSecret, kIssuer, kAudience, "c" + std::to_string(i), "", 600, kNow), kNow));
    most = std::max(most, v.cached_tokens());
  }
  EXPECT_EQ(most, TokenVerifier::kCacheMax);
  EXPECT_LT(v.cached_tokens(), 5000u - TokenVerifier::kCacheMax + 1);
  EXPECT_TRUE(v.verify(good, kNow));
  EXPECT_FALSE(v.verify(forged, kNow));
}

}  // namespace
}  // namespace emporium::auth
