// Tests for RS256/ES256 verification with keys from a JWKS file: key selection by kid, key
// confusion, signature forms, and rotation of the file while the verifier runs. Keys are generated
// here with OpenSSL and tokens signed with EVP directly, independent of the code under test.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http/auth.hpp"

namespace emporium::auth {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr std::string_view kSecret = "test-secret-0123456789abcdef";
constexpr std::string_view kIssuer = "https://issuer.example";
constexpr std::string_view kAudience = "emporium";
constexpr std::int64_t kNow = 1'700'000'000;

using Pkey = std::shared_ptr<EVP_PKEY>;

Pkey rsa_key(unsigned bits = 2048) {
  return Pkey(EVP_RSA_gen(bits), EVP_PKEY_free);
}
Pkey ec_key(const char* curve = "P-256") {
  return Pkey(EVP_EC_gen(curve), EVP_PKEY_free);
}

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string bn_param(EVP_PKEY* key, const char* name, int width = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(key, name, &bn), 1) << name;
  std::string out(width > 0 ? width : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  BN_free(bn);
  return out;
}

// The public JWK of a key; `extra` members are added or override.
json::object public_jwk(EVP_PKEY* key, std::string_view kid, const json::object& extra = {}) {
  json::object jwk;
  if (EVP_PKEY_is_a(key, "RSA")) {
    jwk = {{"kty", "RSA"},
           {"n", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_N))},
           {"e", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_RSA_E))}};
  } else {
    jwk = {{"kty", "EC"},
           {"crv", "P-256"},
           {"x", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
           {"y", base64url_encode(bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  }
  if (!kid.empty()) jwk["kid"] = kid;
  for (const auto& [k, v] : extra) jwk[k] = v;
  return jwk;
}

std::string jwks_text(const std::vector<json::object>& keys) {
  json::array arr;
  for (const auto& k : keys) arr.push_back(k);
  return json::serialize(json::object{{"keys", arr}});
}

std::string private_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PUBKEY(bio.get(), key);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// EVP signature over `input`: PKCS#1 v1.5 for RSA, DER for EC.
std::string evp_sign(EVP_PKEY* key, std::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx.get(), nullptr, &len, bytes_of(input), input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, bytes_of(input),
                 input.size());
  sig.resize(len);
  return sig;
}

std::string der_to_raw(std::string_view der) {
  const unsigned char* p = bytes_of(der);
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  std::string raw(64, '\0');
  BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(), mac,
       &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

json::object good_claims() {
  return {{"iss", kIssuer},         {"aud", kAudience}, {"sub", "customer-42"},
          {"scope", "orders:read"}, {"iat", kNow - 10}, {"exp", kNow + 300}};
}

std::string signing_input(const json::object& header, const json::object& claims = good_claims()) {
  return base64url_encode(json::serialize(header)) + "." +
         base64url_encode(json::serialize(claims));
}

// A token signed with `key` by the JOSE rules of the header's alg (ES256: raw r||s).
std::string signed_token(EVP_PKEY* key, const json::object& header,
                         const json::object& claims = good_claims()) {
  const auto input = signing_input(header, claims);
  auto sig = evp_sign(key, input);
  if (header.at("alg").as_string() == "ES256") sig = der_to_raw(sig);
  return input + "." + base64url_encode(sig);
}

json::object header_for(std::string_view alg, std::string_view kid) {
  return {{"alg", alg}, {"typ", "JWT"}, {"kid", kid}};
}

std::string with_signature(const std::string& token, std::string_view raw_signature) {
  return token.substr(0, token.rfind('.') + 1) + base64url_encode(raw_signature);
}

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = rsa_key();
    ec_ = ec_key();
    other_rsa_ = rsa_key();
    other_ec_ = ec_key();
  }

  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "emporium-jwks-XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ / "jwks.json";
    write_jwks({public_jwk(rsa_.get(), "rsa-1"), public_jwk(ec_.get(), "ec-1")});
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Replaces the file the way an operator should: a complete new file renamed over the old one.
  void write_jwks(const std::vector<json::object>& keys) { write_file(jwks_text(keys)); }
  void write_file(const std::string& text) {
    const auto tmp = dir_ / "jwks.json.tmp";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
    fs::rename(tmp, path_);
  }

  VerifierSettings settings() const {
    VerifierSettings s;
    s.issuer = kIssuer;
    s.audience = kAudience;
    s.hs256_secret = kSecret;
    s.jwks_file = path_.string();
    return s;
  }

  void expect_rejected(const TokenVerifier& v, const std::string& token, std::int64_t now = kNow) {
    const auto result = v.verify(token, now);
    EXPECT_FALSE(result);
    EXPECT_FALSE(result.error.empty());
    EXPECT_EQ(result.error.find(token), std::string::npos);
  }

  static inline Pkey rsa_, ec_, other_rsa_, other_ec_;
  fs::path dir_, path_;
};

// --- accepted ---------------------------------------------------------------------------------

TEST_F(JwksTest, ValidRs256AndEs256Accepted) {
  const TokenVerifier v(settings());
  for (const auto& token : {signed_token(rsa_.get(), header_for("RS256", "rsa-1")),
                            signed_token(ec_.get(), header_for("ES256", "ec-1"))}) {
    const auto result = v.verify(token, kNow);
    ASSERT_TRUE(result) << result.error;
    EXPECT_EQ(result.claims->sub, "customer-42");
  }
}

TEST_F(JwksTest, SignTokenMintsWhatTheVerifierAccepts) {
  const TokenVerifier v(settings());
  const TokenRequest request{kIssuer, kAudience, "c-9", "admin", 600, kNow};
  const auto rs = sign_token({"RS256", {}, private_pem(rsa_.get()), "rsa-1"}, request);
  const auto es = sign_token({"ES256", {}, private_pem(ec_.get()), "ec-1"}, request);
  EXPECT_TRUE(v.verify(rs, kNow)) << v.verify(rs, kNow).error;
  EXPECT_TRUE(v.verify(es, kNow)) << v.verify(es, kNow).error;
  // ES256 is raw r||s, not DER.
  EXPECT_EQ(base64url_decode(es.substr(es.rfind('.') + 1))->size(), 64u);
  const auto header = json::parse(*base64url_decode(rs.substr(0, rs.find('.'))));
  EXPECT_EQ(header, json::parse(R"({"alg":"RS256","typ":"at+jwt","kid":"rsa-1"})"));
}

TEST_F(JwksTest, SignTokenRefusesUnfitKeys) {
  const TokenRequest request{kIssuer, kAudience, "c", "", 60, kNow};
  const auto rsa_pem = private_pem(rsa_.get());
  const auto ec_pem = private_pem(ec_.get());
  EXPECT_THROW(sign_token({"RS256", {}, rsa_pem, ""}, request), std::invalid_argument);  // no kid
  EXPECT_THROW(sign_token({"HS256", kSecret, {}, "k"}, request),
               std::invalid_argument);  // kid on HS256
  EXPECT_THROW(sign_token({"RS256", {}, ec_pem, "k"}, request), std::invalid_argument);
  EXPECT_THROW(sign_token({"ES256", {}, rsa_pem, "k"}, request), std::invalid_argument);
  EXPECT_THROW(sign_token({"ES256", {}, private_pem(ec_key("P-384").get()), "k"}, request),
               std::invalid_argument);
  EXPECT_THROW(sign_token({"RS256", {}, private_pem(rsa_key(1024).get()), "k"}, request),
               std::invalid_argument);
  EXPECT_THROW(sign_token({"PS256", {}, rsa_pem, "k"}, request), std::invalid_argument);
  try {
    sign_token({"RS256", {}, rsa_pem.substr(0, rsa_pem.size() / 2), "k"}, request);
    ADD_FAILURE() << "a truncated key was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("PRIVATE KEY-----\n"),
              std::string::npos);  // no key in messages
  }
}

// --- key selection ----------------------------------------------------------------------------

TEST_F(JwksTest, Hs256WithTheRsaPublicKeyAsSecretIsRejected) {
  const TokenVerifier v(settings());
  // The classic key confusion: the attacker knows the public key and uses its bytes as HMAC key.
  for (const std::string& public_bytes :
       {public_pem(rsa_.get()), bn_param(rsa_.get(), OSSL_PKEY_PARAM_RSA_N),
        json::serialize(public_jwk(rsa_.get(), "rsa-1"))}) {
    for (const auto& header :
         {header_for("HS256", "rsa-1"), json::object{{"alg", "HS256"}, {"kid", "ec-1"}}}) {
      const auto input = signing_input(header);
      expect_rejected(v, input + "." + base64url_encode(hmac(public_bytes, input)));
    }
  }
  // Even with the configured secret: a kid names a JWKS key, and that key is not HS256.
  const auto input = signing_input(header_for("HS256", "rsa-1"));
  expect_rejected(v, input + "." + base64url_encode(hmac(kSecret, input)));
}

TEST_F(JwksTest, AlgNoneAndMismatchedAlgRejected) {
  const TokenVerifier v(settings());
  for (const char* alg : {"none", "None", "NONE"}) {
    const auto input = signing_input(header_for(alg, "rsa-1"));
    expect_rejected(v, input + ".");
    expect_rejected(v, input + "." + base64url_encode("x"));
    expect_rejected(v, input + "." + base64url_encode(evp_sign(rsa_.get(), input)));
  }
  // The signature is right for the key, but the token's alg is not the key's.
  expect_rejected(v, signed_token(rsa_.get(), header_for("RS256", "ec-1")));
  expect_rejected(v, signed_token(ec_.get(), header_for("ES256", "rsa-1")));
  for (const char* alg : {"RS384", "RS512", "PS256", "ES384", "rs256"}) {
    const auto input = signing_input(header_for(alg, "rsa-1"));
    expect_rejected(v, input + "." + base64url_encode(evp_sign(rsa_.get(), input)));
  }
}

TEST_F(JwksTest, TokenWithoutKidIsOnlyHs256) {
  const TokenVerifier v(settings());
  expect_rejected(v, signed_token(rsa_.get(), json::object{{"alg", "RS256"}}));
  expect_rejected(v, signed_token(ec_.get(), json::object{{"alg", "ES256"}}));
  EXPECT_TRUE(v.verify(sign_hs256(kSecret, kIssuer, kAudience, "c", "", 60, kNow), kNow));
  auto s = settings();
  s.hs256_secret.clear();  // and with no secret, not even that
  const auto input = signing_input(json::object{{"alg", "HS256"}});
  expect_rejected(TokenVerifier(s), input + "." + base64url_encode(hmac("", input)));
}

TEST_F(JwksTest, UnknownOrMalformedKidRejected) {
  const TokenVerifier v(settings());
  expect_rejected(v, signed_token(rsa_.get(), header_for("RS256", "rsa-2")));
  expect_rejected(v, signed_token(rsa_.get(), header_for("RS256", "")));
  expect_rejected(v, signed_token(rsa_.get(), header_for("RS256", "RSA-1")));
  expect_rejected(v, signed_token(rsa_.get(), json::object{{"alg", "RS256"}, {"kid", 1}}));
  expect_rejected(
      v, signed_token(rsa_.get(), json::object{{"alg", "RS256"}, {"kid", json::array{"rsa-1"}}}));
  auto no_jwks = settings();
  no_jwks.jwks_file.clear();
  expect_rejected(TokenVerifier(no_jwks), signed_token(rsa_.get(), header_for("RS256", "rsa-1")));
}

TEST_F(JwksTest, WrongKeyRejected) {
  const TokenVerifier v(settings());
  expect_rejected(v, signed_token(other_rsa_.get(), header_for("RS256", "rsa-1")));
  expect_rejected(v, signed_token(other_ec_.get(), header_for("ES256", "ec-1")));
}

TEST_F(JwksTest, EmbeddedKeyHeadersIgnored) {
  const TokenVerifier v(settings());
  const json::object attacker_jwk = public_jwk(other_rsa_.get(), "rsa-1");
  for (const bool with_kid : {true, false}) {
    json::object header{{"alg", "RS256"},
                        {"jwk", attacker_jwk},
                        {"jku", "https://evil.example/jwks"},
                        {"x5u", "https://evil.example/cert"},
                        {"x5c", json::array{"AAAA"}}};
    if (with_kid) header["kid"] = "rsa-1";
    expect_rejected(v, signed_token(other_rsa_.get(), header));
  }
  // Ignored, not refused: the same headers on a token signed by the configured key change nothing.
  auto header = header_for("RS256", "rsa-1");
  header["jwk"] = attacker_jwk;
  header["jku"] = "https://evil.example/jwks";
  EXPECT_TRUE(v.verify(signed_token(rsa_.get(), header), kNow));
}

// --- signature forms --------------------------------------------------------------------------

TEST_F(JwksTest, TamperedSignatureOrPayloadRejected) {
  const TokenVerifier v(settings());
  for (const auto& [key, alg, kid] :
       {std::tuple{rsa_.get(), "RS256", "rsa-1"}, std::tuple{ec_.get(), "ES256", "ec-1"}}) {
    const auto token = signed_token(key, header_for(alg, kid));
    auto sig = *base64url_decode(token.substr(token.rfind('.') + 1));
    for (std::size_t i : {std::size_t{0}, sig.size() / 2, sig.size() - 1}) {
      auto forged = sig;
      forged[i] = static_cast<char>(forged[i] ^ 0x01);
      expect_rejected(v, with_signature(token, forged));
    }
    auto claims = good_claims();
    claims["sub"] = "customer-1";
    const auto first = token.find('.');
    const auto last = token.rfind('.');
    expect_rejected(v, token.substr(0, first + 1) + base64url_encode(json::serialize(claims)) +
                           token.substr(last));
  }
}

TEST_F(JwksTest, Es256SignatureMustBeRaw64Bytes) {
  const TokenVerifier v(settings());
  const auto header = header_for("ES256", "ec-1");
  const auto input = signing_input(header);
  const auto der = evp_sign(ec_.get(), input);
  const auto raw = der_to_raw(der);
  EXPECT_TRUE(v.verify(input + "." + base64url_encode(raw), kNow));
  expect_rejected(v, input + "." + base64url_encode(der));  // a valid signature, in the wrong form
  expect_rejected(v, input + "." + base64url_encode(raw.substr(0, 63)));
  expect_rejected(v, input + "." + base64url_encode(raw + '\0'));
  expect_rejected(v, input + "." + base64url_encode('\0' + raw));
  expect_rejected(v, input + "." + base64url_encode(std::string(64, '\0')));  // r = s = 0
}

TEST_F(JwksTest, Rs256SignatureMustHaveModulusLength) {
  const TokenVerifier v(settings());
  const auto input = signing_input(header_for("RS256", "rsa-1"));
  const auto sig = evp_sign(rsa_.get(), input);
  expect_rejected(v, input + "." + base64url_encode('\0' + sig));
  expect_rejected(v, input + "." + base64url_encode(sig.substr(1)));
}

// --- loading the file -------------------------------------------------------------------------

TEST_F(JwksTest, UnfitKeysInTheFileAreIgnored) {
  const auto small_rsa = rsa_key(1024);
  const auto p384 = ec_key("P-384");
  auto off_curve = public_jwk(other_ec_.get(), "off-curve");
  auto y = *base64url_decode(off_curve["y"].as_string());
  y[31] = static_cast<char>(y[31] ^ 1);
  off_curve["y"] = base64url_encode(y);
  json::object p384_jwk{
      {"kty", "EC"},
      {"crv", "P-384"},
      {"kid", "p384"},
      {"x", base64url_encode(bn_param(p384.get(), OSSL_PKEY_PARAM_EC_PUB_X, 48))},
      {"y", base64url_encode(bn_param(p384.get(), OSSL_PKEY_PARAM_EC_PUB_Y, 48))}};
  write_jwks({public_jwk(small_rsa.get(), "small"),
              public_jwk(other_rsa_.get(), "enc", {{"use", "enc"}}),
              public_jwk(other_rsa_.get(), "es-alg", {{"alg", "ES256"}}),
              public_jwk(other_rsa_.get(), "ps-alg", {{"alg", "PS256"}}),
              public_jwk(other_ec_.get(), "", {}), off_curve, p384_jwk,
              public_jwk(rsa_.get(), "rsa-1", {{"alg", "RS256"}, {"use", "sig"}})});
  const TokenVerifier v(settings());
  EXPECT_TRUE(v.verify(signed_token(rsa_.get(), header_for("RS256", "rsa-1")), kNow));
  expect_rejected(v, signed_token(small_rsa.get(), header_for("RS256", "small")));
  for (const char* kid : {"enc", "es-alg", "ps-alg"})
    expect_rejected(v, signed_token(other_rsa_.get(), header_for("RS256", kid)));
  expect_rejected(v, signed_token(other_ec_.get(), header_for("ES256", "off-curve")));
  expect_rejected(v, signed_token(p384.get(), header_for("ES256", "p384")));  // not P-256
  expect_rejected(v, signed_token(other_ec_.get(), header_for("ES256", "")));  // the key without a kid
}

TEST_F(JwksTest, CheckJwksFileNamesTheProblem) {
  EXPECT_EQ(check_jwks_file(path_.string()), std::nullopt);
  EXPECT_TRUE(check_jwks_file((dir_ / "missing.json").string()));
  write_file("{\"keys\": [");
  EXPECT_TRUE(check_jwks_file(path_.string()));
  write_file(R"({"keys": {}})");
  EXPECT_TRUE(check_jwks_file(path_.string()));
  write_jwks({public_jwk(rsa_.get(), "same"), public_jwk(ec_.get(), "same")});
  const auto error = check_jwks_file(path_.string());
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("duplicate kid"), std::string::npos);
  write_file(std::string(2 << 20, ' '));
  EXPECT_TRUE(check_jwks_file(path_.string()));
}

// At its edges: a set of 256 keys loads (the last one verifies), 257 keys do not; a file of 1 MiB
// loads, one byte more does not.
TEST_F(JwksTest, KeyCountAndFileSizeLimitsHoldAtTheirEdges) {
  std::vector<json::object> keys;
  for (int i = 0; i < 255; ++i) keys.push_back(public_jwk(ec_.get(), "ec-" + std::to_string(i)));
  keys.push_back(public_jwk(rsa_.get(), "rsa-last"));
  write_jwks(keys);
  EXPECT_EQ(check_jwks_file(path_.string()), std::nullopt);
  const TokenVerifier v(settings());
  EXPECT_TRUE(v.verify(signed_token(rsa_.get(), header_for("RS256", "rsa-last")), kNow));
  keys.push_back(public_jwk(ec_.get(), "ec-one-more"));
  write_jwks(keys);
  const auto error = check_jwks_file(path_.string());
  ASSERT_TRUE(error);
  EXPECT_NE(error->find("256"), std::string::npos) << *error;

  const auto one = jwks_text({public_jwk(rsa_.get(), "rsa-1")});  // JSON may end in whitespace
  write_file(one + std::string((1 << 20) - one.size(), ' '));
  EXPECT_EQ(check_jwks_file(path_.string()), std::nullopt);
  write_file(one + std::string((1 << 20) - one.size() + 1, ' '));
  EXPECT_TRUE(check_jwks_file(path_.string()));
}

// --- rotation ---------------------------------------------------------------------------------

TEST_F(JwksTest, RotationTakesEffectWithinASecond) {
  const TokenVerifier v(settings());
  const auto old_token = signed_token(rsa_.get(), header_for("RS256", "rsa-1"));
  const auto new_token = signed_token(other_rsa_.get(), header_for("RS256", "rsa-2"));
  EXPECT_TRUE(v.verify(old_token, kNow));
  write_jwks({public_jwk(other_rsa_.get(), "rsa-2")});
  EXPECT_TRUE(v.verify(old_token, kNow));  // checked at most once per second
  EXPECT_TRUE(v.verify(new_token, kNow + 1)) << v.verify(new_token, kNow + 1).error;
  expect_rejected(v, old_token, kNow + 1);
}

TEST_F(JwksTest, SameKidWithANewKeyReplacesTheOld) {
  const TokenVerifier v(settings());
  const auto old_token = signed_token(rsa_.get(), header_for("RS256", "rsa-1"));
  EXPECT_TRUE(v.verify(old_token, kNow));
  write_jwks({public_jwk(other_rsa_.get(), "rsa-1")});  // same kid, same file size
  expect_rejected(v, old_token, kNow + 1);
  EXPECT_TRUE(v.verify(signed_token(other_rsa_.get(), header_for("RS256", "rsa-1")), kNow + 1));
}

TEST_F(JwksTest, BrokenRereadKeepsTheLastGoodSet) {
  const TokenVerifier v(settings());
  const auto token = signed_token(ec_.get(), header_for("ES256", "ec-1"));
  std::int64_t now = kNow;
  EXPECT_TRUE(v.verify(token, now));
  for (const std::string broken :
       {"", "{\"keys\": [", "[]", "{\"keys\":[{\"kid\":\"a\"}],\"keys\":[]}"}) {
    write_file(broken);
    EXPECT_TRUE(v.verify(token, ++now)) << "after rewriting the file as: " << broken;
  }
  fs::remove(path_);
  EXPECT_TRUE(v.verify(token, ++now)) << "after removing the file";
  write_jwks({public_jwk(other_ec_.get(), "ec-2")});  // a good file again is picked up
  expect_rejected(v, token, ++now);
  EXPECT_TRUE(v.verify(signed_token(other_ec_.get(), header_for("ES256", "ec-2")), now));
}

TEST_F(JwksTest, FileMissingAtStartIsPickedUpWhenItAppears) {
  fs::remove(path_);
  const TokenVerifier v(settings());
  const auto token = signed_token(rsa_.get(), header_for("RS256", "rsa-1"));
  expect_rejected(v, token, kNow);
  EXPECT_TRUE(v.verify(sign_hs256(kSecret, kIssuer, kAudience, "c", "", 60, kNow),
                       kNow));  // HS256 unaffected
  write_jwks({public_jwk(rsa_.get(), "rsa-1")});
  EXPECT_TRUE(v.verify(token, kNow + 1));
}

TEST_F(JwksTest, ConcurrentVerifyDuringRotation) {
  const TokenVerifier v(settings());
  // ec-1 stays in every version of the file, so its token must hold throughout.
  const auto stable = signed_token(ec_.get(), header_for("ES256", "ec-1"));
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> now{kNow};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      while (!stop)
        if (!v.verify(stable, now.load())) ++failures;
    });
  for (int i = 0; i < 50; ++i) {
    const auto& rsa = (i % 2 == 0) ? other_rsa_ : rsa_;
    write_jwks({public_jwk(rsa.get(), "rsa-" + std::to_string(i)), public_jwk(ec_.get(), "ec-1")});
    ++now;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(v.verify(signed_token(rsa_.get(), header_for("RS256", "rsa-49")), now.load()));
}

}  // namespace
}  // namespace emporium::auth
