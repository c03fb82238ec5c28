#include "auth/jwt.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "auth/jwks.h"
#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/signing_key.h"

namespace phigate::auth {
namespace {

crypto::SigningKey NewKey() {
  Result<crypto::SigningKey> k = crypto::SigningKey::Generate();
  if (!k.ok()) ADD_FAILURE() << k.status().message();
  return std::move(k).value();
}

crypto::PublicKey PublicOf(const crypto::SigningKey& key) {
  return std::move(crypto::PublicKey::EcP256(key.PublicX(), key.PublicY())).value();
}

// Builds a compact JWS from raw header and payload JSON text, signed with `key`: the way
// an attacker holding (or not holding) a key would, with no help from EncodeJwt.
std::string SignRaw(const crypto::SigningKey& key, std::string_view header_json,
                    std::string_view payload_json) {
  std::string input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  return input + "." + Base64UrlEncode(key.Sign(input));
}

class JwtTest : public ::testing::Test {
 protected:
  std::string Header(std::string_view alg = "ES256") const {
    return R"({"alg":")" + std::string(alg) + R"(","typ":"at+jwt","kid":")" + key_.kid() + R"("})";
  }

  void ExpectRejected(std::string_view token) const {
    Result<boost::json::object> r = DecodeAndVerifyJwt(token, verifying_, key_.kid(), "at+jwt");
    ASSERT_FALSE(r.ok()) << "accepted: " << token.substr(0, 200);
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), "invalid token");
  }

  Result<boost::json::object> Decode(std::string_view token) const {
    return DecodeAndVerifyJwt(token, verifying_, key_.kid(), "at+jwt");
  }

  crypto::SigningKey key_ = NewKey();
  crypto::PublicKey verifying_ = PublicOf(key_);
  const std::string payload_ = R"({"sub":"c1","n":1})";
};

TEST_F(JwtTest, RoundTrip) {
  boost::json::object claims{{"sub", "c1"}, {"exp", 1234}};
  std::string token = EncodeJwt(key_, "at+jwt", claims);
  Result<boost::json::object> r = Decode(token);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value(), claims);
}

TEST_F(JwtTest, EncodedHeaderIsExactlyAlgTypKid) {
  std::string token = EncodeJwt(key_, "at+jwt", {{"a", 1}});
  std::string header = *Base64UrlDecode(token.substr(0, token.find('.')));
  boost::json::object expected{{"alg", "ES256"}, {"typ", "at+jwt"}, {"kid", key_.kid()}};
  EXPECT_EQ(boost::json::parse(header), boost::json::value(expected));
}

TEST_F(JwtTest, HandBuiltTokenVerifies) {
  Result<boost::json::object> r = Decode(SignRaw(key_, Header(), payload_));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().at("sub").as_string(), "c1");
}

TEST_F(JwtTest, TypMayCarryTheApplicationPrefixInAnyCase) {
  std::string header = R"({"alg":"ES256","typ":"application/AT+JWT","kid":")" + key_.kid() + "\"}";
  EXPECT_TRUE(Decode(SignRaw(key_, header, payload_)).ok());
}

TEST_F(JwtTest, AlgNoneIsRejected) {
  std::string header = R"({"alg":"none","typ":"at+jwt","kid":")" + key_.kid() + "\"}";
  std::string unsigned_token = Base64UrlEncode(header) + "." + Base64UrlEncode(payload_) + ".";
  ExpectRejected(unsigned_token);
  // ... even with a valid ES256 signature attached.
  ExpectRejected(SignRaw(key_, header, payload_));
}

TEST_F(JwtTest, Hs256WithThePublicKeyAsSecretIsRejected) {
  // The classic key-confusion attack (RFC 8725 §2.1).
  std::string input = Base64UrlEncode(Header("HS256")) + "." + Base64UrlEncode(payload_);
  std::string mac = crypto::HmacSha256(key_.PublicJwkJson(), input);
  ExpectRejected(input + "." + Base64UrlEncode(mac));
  ExpectRejected(SignRaw(key_, Header("HS256"), payload_));
}

TEST_F(JwtTest, AlgIsComparedExactly) {
  ExpectRejected(SignRaw(key_, Header("es256"), payload_));
  ExpectRejected(SignRaw(key_, Header("ES384"), payload_));
  ExpectRejected(SignRaw(key_, Header("RS256"), payload_));
  ExpectRejected(SignRaw(key_, R"({"typ":"at+jwt","kid":")" + key_.kid() + "\"}", payload_));
  ExpectRejected(
      SignRaw(key_, R"({"alg":["ES256"],"typ":"at+jwt","kid":")" + key_.kid() + "\"}", payload_));
}

TEST_F(JwtTest, MissingOrWrongKidIsRejected) {
  ExpectRejected(SignRaw(key_, R"({"alg":"ES256","typ":"at+jwt"})", payload_));
  ExpectRejected(SignRaw(key_, R"({"alg":"ES256","typ":"at+jwt","kid":"other"})", payload_));
  ExpectRejected(SignRaw(key_, R"({"alg":"ES256","typ":"at+jwt","kid":7})", payload_));
}

TEST_F(JwtTest, MissingOrWrongTypIsRejected) {
  // An ID token or other JWT signed by the same key must not pass as an access token.
  std::string kid = key_.kid();
  ExpectRejected(SignRaw(key_, R"({"alg":"ES256","kid":")" + kid + "\"}", payload_));
  ExpectRejected(SignRaw(key_, R"({"alg":"ES256","typ":"JWT","kid":")" + kid + "\"}", payload_));
}

TEST_F(JwtTest, CritHeaderIsRejected) {
  std::string header =
      R"({"alg":"ES256","typ":"at+jwt","crit":["exp"],"kid":")" + key_.kid() + "\"}";
  ExpectRejected(SignRaw(key_, header, payload_));
}

TEST_F(JwtTest, KeyUrlsAndEmbeddedKeysInTheHeaderAreIgnored) {
  // A token signed by another key that names that key via jku/x5u/jwk is still judged
  // against our key alone.
  crypto::SigningKey attacker = NewKey();
  std::string header =
      R"({"alg":"ES256","typ":"at+jwt","kid":")" + key_.kid() +
      R"(","jku":"https://attacker.example/jwks","x5u":"https://attacker.example/c",)"
      R"("jwk":)" +
      attacker.PublicJwkJson() + "}";
  ExpectRejected(SignRaw(attacker, header, payload_));
  // And with our own signature they change nothing.
  EXPECT_TRUE(Decode(SignRaw(key_, header, payload_)).ok());
}

TEST_F(JwtTest, SignatureByAnotherKeyIsRejected) {
  crypto::SigningKey other = NewKey();
  ExpectRejected(SignRaw(other, Header(), payload_));
}

TEST_F(JwtTest, TamperedPayloadIsRejected) {
  std::string token = SignRaw(key_, Header(), payload_);
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  std::string forged =
      token.substr(0, dot1 + 1) + Base64UrlEncode(R"({"sub":"c2","n":1})") + token.substr(dot2);
  ExpectRejected(forged);
}

TEST_F(JwtTest, TamperedSignatureIsRejected) {
  std::string token = SignRaw(key_, Header(), payload_);
  std::string sig = *Base64UrlDecode(token.substr(token.rfind('.') + 1));
  sig[10] = static_cast<char>(sig[10] ^ 0x01);
  ExpectRejected(token.substr(0, token.rfind('.') + 1) + Base64UrlEncode(sig));
  // Truncated and over-long signatures.
  ExpectRejected(token.substr(0, token.rfind('.') + 1) + Base64UrlEncode(sig.substr(0, 63)));
  ExpectRejected(token.substr(0, token.rfind('.') + 1) + Base64UrlEncode(sig + "x"));
}

TEST_F(JwtTest, WrongNumberOfPartsIsRejected) {
  std::string token = SignRaw(key_, Header(), payload_);
  ExpectRejected(token.substr(0, token.rfind('.')));  // 2 parts
  ExpectRejected(token + ".AAAA");                    // 4 parts
  ExpectRejected(token + ".");                        // 4 parts, last empty
  ExpectRejected(token.substr(0, token.find('.')));   // 1 part
  ExpectRejected("..");
  ExpectRejected("");
}

TEST_F(JwtTest, NonBase64UrlCharactersAreRejected) {
  std::string token = SignRaw(key_, Header(), payload_);
  ExpectRejected(token + "=");  // padding
  ExpectRejected(" " + token);  // whitespace
  ExpectRejected(token + "\n");
  std::string plus = token;
  plus[plus.find('.') + 2] = '+';  // standard alphabet, not url
  ExpectRejected(plus);
  std::string slash = token;
  slash[3] = '/';
  ExpectRejected(slash);
  std::string nul = token;
  nul[5] = '\0';
  ExpectRejected(nul);
}

TEST_F(JwtTest, HeaderAndPayloadMustBeJsonObjects) {
  ExpectRejected(SignRaw(key_, "not json", payload_));
  ExpectRejected(SignRaw(key_, "[" + Header() + "]", payload_));
  ExpectRejected(SignRaw(key_, Header(), "[1,2]"));
  ExpectRejected(SignRaw(key_, Header(), "\"sub\""));
  ExpectRejected(SignRaw(key_, Header(), "{\"sub\":"));
  ExpectRejected(SignRaw(key_, Header(), "{\"sub\":\"\xff\"}"));  // invalid UTF-8
}

TEST_F(JwtTest, OversizedTokenIsRejectedBeforeParsing) {
  // A validly signed token just over the cap: the cap alone rejects it.
  std::string big_payload = R"({"pad":")" + std::string(6200, 'a') + "\"}";
  std::string token = SignRaw(key_, Header(), big_payload);
  ASSERT_GT(token.size(), kMaxJwtBytes);
  ExpectRejected(token);
  ExpectRejected(std::string(kMaxJwtBytes + 1, 'A'));
}

TEST_F(JwtTest, TokenAtTheSizeCapIsAccepted) {
  // Unpadded base64url of n bytes has (4n + 2) / 3 characters; the signature has 86.
  auto encoded = [](size_t n) { return (4 * n + 2) / 3; };
  const std::string prefix = R"({"pad":")";
  const size_t fixed = Base64UrlEncode(Header()).size() + 2 + encoded(64);
  size_t pad = 0;
  while (fixed + encoded(prefix.size() + pad + 1 + 2) <= kMaxJwtBytes) ++pad;
  std::string token = SignRaw(key_, Header(), prefix + std::string(pad, 'a') + "\"}");
  ASSERT_LE(token.size(), kMaxJwtBytes);
  ASSERT_GE(token.size(), kMaxJwtBytes - 2);
  EXPECT_TRUE(Decode(token).ok());
}

TEST(JwksTest, PublishesOnlyThePublicKey) {
  crypto::SigningKey key = NewKey();
  boost::json::value jwks = boost::json::parse(JwksJson(key));
  const boost::json::array& keys = jwks.at("keys").as_array();
  ASSERT_EQ(keys.size(), 1u);
  const boost::json::object& jwk = keys[0].as_object();
  EXPECT_EQ(jwk.at("kty").as_string(), "EC");
  EXPECT_EQ(jwk.at("crv").as_string(), "P-256");
  EXPECT_EQ(jwk.at("kid").as_string(), key.kid());
  EXPECT_EQ(jwk.at("alg").as_string(), "ES256");
  EXPECT_EQ(*Base64UrlDecode(jwk.at("x").as_string()), key.PublicX());
  EXPECT_EQ(*Base64UrlDecode(jwk.at("y").as_string()), key.PublicY());
  EXPECT_FALSE(jwk.contains("d"));
  EXPECT_EQ(jwks.as_object().size(), 1u);
}

}  // namespace
}  // namespace phigate::auth
