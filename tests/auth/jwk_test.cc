#include "auth/jwk.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "crypto/public_key.h"

namespace phigate::auth {
namespace {

using crypto::JwsAlg;

// RFC 7515 Appendix A.3 (P-256) and RFC 8037 Appendix A.2 (Ed25519) public keys.
constexpr std::string_view kEcX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr std::string_view kEcY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr std::string_view kEdX = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

std::string EcJwk(std::string_view extra = R"(,"kid":"ec1")") {
  return R"({"kty":"EC","crv":"P-256","x":")" + std::string(kEcX) + R"(","y":")" +
         std::string(kEcY) + '"' + std::string(extra) + "}";
}

std::string EdJwk(std::string_view extra = R"(,"kid":"ed1")") {
  return R"({"kty":"OKP","crv":"Ed25519","x":")" + std::string(kEdX) + '"' + std::string(extra) +
         "}";
}

// An RSA public JWK ({"kty":"RSA","n":..,"e":..,"kid":<kid>,"use":"sig","alg":"RS256"}),
// generated once: 2048-bit key generation is slow under the sanitizers.
const std::string& RsaJwk() {
  static const std::string jwk = [] {
    Result<crypto::PrivateKey> key = crypto::PrivateKey::Generate(JwsAlg::kRS256);
    if (!key.ok()) ADD_FAILURE() << key.status().message();
    return key->PublicJwkJson("rsa1");
  }();
  return jwk;
}

// The RSA JWK with its "kid","use","alg" tail replaced by `tail` (which closes the object).
std::string RsaJwkWithTail(std::string_view tail) {
  const std::string& jwk = RsaJwk();
  return jwk.substr(0, jwk.find(R"(,"kid")")) + std::string(tail);
}

std::string Set(std::initializer_list<std::string> keys) {
  std::string out = R"({"keys":[)";
  bool first = true;
  for (const std::string& k : keys) {
    if (!first) out += ',';
    out += k;
    first = false;
  }
  return out + "]}";
}

JwkSet MustParse(const std::string& json) {
  Result<JwkSet> set = ParseJwks(json);
  EXPECT_TRUE(set.ok()) << set.status().message() << "\n" << json;
  return set.ok() ? std::move(set).value() : JwkSet();
}

void ExpectRefused(const std::string& json, std::string_view message) {
  Result<JwkSet> set = ParseJwks(json);
  ASSERT_FALSE(set.ok()) << json;
  EXPECT_EQ(set.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(set.status().message(), message);
}

TEST(ParseJwksTest, ValidMixedSet) {
  const JwkSet set = MustParse(Set({RsaJwk(), EcJwk(), EdJwk()}));
  ASSERT_EQ(set.size(), 3u);
  EXPECT_EQ(set.keys()[0].kid, "rsa1");
  EXPECT_EQ(set.keys()[0].key->alg(), JwsAlg::kRS256);
  EXPECT_EQ(set.keys()[1].kid, "ec1");
  EXPECT_EQ(set.keys()[1].key->alg(), JwsAlg::kES256);
  EXPECT_EQ(set.keys()[2].kid, "ed1");
  EXPECT_EQ(set.keys()[2].key->alg(), JwsAlg::kEdDSA);
}

TEST(ParseJwksTest, OptionalMembersThatPermitVerification) {
  const JwkSet set = MustParse(Set({
      EcJwk(R"(,"kid":"a","use":"sig","alg":"ES256","key_ops":["verify"])"),
      EcJwk(R"(,"kid":"b","key_ops":["sign","verify"],"x5t":"ignored","ext":true)"),
      EdJwk(R"(,"alg":"EdDSA")"),  // no kid
  }));
  ASSERT_EQ(set.size(), 3u);
  EXPECT_EQ(set.keys()[2].kid, "");
}

TEST(ParseJwksTest, EmptySetIsAllowed) { EXPECT_EQ(MustParse(R"({"keys":[]})").size(), 0u); }

TEST(ParseJwksTest, KeysNotForSignaturesAreSkipped) {
  const JwkSet set = MustParse(Set({
      RsaJwkWithTail(R"(,"kid":"enc","use":"enc"})"),                      // encryption key
      RsaJwkWithTail(R"(,"kid":"oaep","alg":"RSA-OAEP"})"),                // encryption alg
      RsaJwkWithTail(R"(,"kid":"ps","alg":"PS256"})"),                     // another sig alg
      EcJwk(R"(,"kid":"es384","alg":"ES384")"),                            // alg not P-256's
      EcJwk(R"(,"kid":"ops","key_ops":["encrypt"])"),                      // key_ops
      R"({"kty":"EC","crv":"P-384","x":"AAAA","y":"AAAA","kid":"p384"})",  // other curve
      R"({"kty":"OKP","crv":"X25519","x":"AAAA","kid":"x"})",              // key agreement
      R"({"kty":"OKP","crv":"Ed448","x":"AAAA","kid":"ed448"})",           // other curve
      R"({"kty":"foo","kid":"foo"})",                                      // unknown type
      EcJwk(),                                                             // the one usable key
  }));
  ASSERT_EQ(set.size(), 1u);
  EXPECT_EQ(set.keys()[0].kid, "ec1");
}

TEST(ParseJwksTest, SkippedKeysKidIsNotADuplicate) {
  // A skipped key's kid does not count as a duplicate.
  const JwkSet set =
      MustParse(Set({RsaJwkWithTail(R"(,"kid":"k","use":"enc"})"), EcJwk(R"(,"kid":"k")")}));
  EXPECT_EQ(set.size(), 1u);
}

TEST(ParseJwksTest, PrivateMembersAreRefused) {
  for (std::string_view member : {"d", "p", "q", "dp", "dq", "qi", "oth"}) {
    ExpectRefused(Set({EdJwk(), RsaJwkWithTail(R"(,")" + std::string(member) + R"(":"AQAB"})")}),
                  "JWKS key 1: private key members are not accepted");
  }
  ExpectRefused(Set({EcJwk(R"(,"d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI")")}),
                "JWKS key 0: private key members are not accepted");
  // Even on a key that would be skipped: a symmetric key, or an encryption key.
  ExpectRefused(Set({R"({"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T"})"}),
                "JWKS key 0: private key members are not accepted");
  ExpectRefused(Set({RsaJwkWithTail(R"(,"use":"enc","d":"AQAB"})")}),
                "JWKS key 0: private key members are not accepted");
}

TEST(ParseJwksTest, DuplicateKidIsRefused) {
  ExpectRefused(Set({EcJwk(R"(,"kid":"same")"), EdJwk(R"(,"kid":"same")")}),
                R"(JWKS key 1: duplicate "kid")");
  // Keys without a kid are not duplicates of each other.
  EXPECT_EQ(MustParse(Set({EcJwk(""), EdJwk("")})).size(), 2u);
}

TEST(ParseJwksTest, BadBase64IsRefused) {
  const std::string x(kEcX);
  ExpectRefused(
      Set({R"({"kty":"EC","crv":"P-256","x":")" + x + R"(=","y":")" + std::string(kEcY) + R"("})"}),
      R"(JWKS key 0: "x" is not base64url)");
  ExpectRefused(
      Set({EdJwk(),
           R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS+7TyWQHOg7hcvPapiMlrwIaaPcHURo"})"}),
      R"(JWKS key 1: "x" is not base64url)");
  ExpectRefused(Set({RsaJwkWithTail(R"(,"e":"AQ AB"})")}), R"(JWKS key 0: "e" is not base64url)");
  ExpectRefused(Set({R"({"kty":"RSA","n":"","e":"AQAB"})"}), R"(JWKS key 0: "n" is not base64url)");
}

TEST(ParseJwksTest, BadMembersOfAUsableKeyAreRefused) {
  ExpectRefused(Set({R"({"kty":"RSA","e":"AQAB"})"}), R"(JWKS key 0: missing "n")");
  ExpectRefused(Set({R"({"kty":"EC","x":"AAAA","y":"AAAA"})"}), R"(JWKS key 0: missing "crv")");
  ExpectRefused(Set({R"({"crv":"P-256"})"}), R"(JWKS key 0: missing "kty")");
  ExpectRefused(Set({R"({"kty":1})"}), R"(JWKS key 0: "kty" must be a string)");
  ExpectRefused(Set({EcJwk(R"(,"kid":7)")}), R"(JWKS key 0: "kid" must be a string)");
  ExpectRefused(Set({EcJwk(R"(,"key_ops":"verify")")}),
                R"(JWKS key 0: "key_ops" must be an array)");
  ExpectRefused(Set({R"("a string")"}), "JWKS key 0: not a JSON object");
  // Off-curve point (y of another key); a 1024-bit RSA modulus.
  ExpectRefused(Set({R"({"kty":"EC","crv":"P-256","x":")" + std::string(kEcX) + R"(","y":")" +
                     std::string(kEdX) + R"("})"}),
                "JWKS key 0: P-256 key: not a point on the curve");
  ExpectRefused(Set({R"({"kty":"RSA","n":")" + std::string(171, 'w') + R"(","e":"AQAB"})"}),
                "JWKS key 0: RSA key: modulus must be 2048 to 8192 bits");
  ExpectRefused(Set({R"({"kty":"OKP","crv":"Ed25519","x":"AAAA"})"}),
                "JWKS key 0: Ed25519 key: must be 32 bytes");
}

TEST(ParseJwksTest, MalformedDocumentsAreRefused) {
  ExpectRefused("", "JWKS is not valid JSON");
  ExpectRefused(R"({"keys":[)", "JWKS is not valid JSON");
  ExpectRefused(R"({"keys":[]} trailing)", "JWKS is not valid JSON");
  ExpectRefused("[]", R"(JWKS must be a JSON object with a "keys" array)");
  ExpectRefused("{}", R"(JWKS must be a JSON object with a "keys" array)");
  ExpectRefused(R"({"keys":{}})", R"(JWKS must be a JSON object with a "keys" array)");
}

TEST(ParseJwksTest, TooManyKeysIsRefused) {
  std::string at_limit = R"({"keys":[)";
  for (size_t i = 0; i < kMaxJwksKeys; ++i) {
    at_limit += (i == 0 ? "" : ",");
    at_limit += R"({"kty":"foo"})";
  }
  EXPECT_EQ(MustParse(at_limit + "]}").size(), 0u);
  ExpectRefused(at_limit + R"(,{"kty":"foo"}]})", "JWKS has more than 64 keys");
}

TEST(ParseJwksTest, OversizedInputIsRefused) {
  std::string big = R"({"keys":[],"pad":")" + std::string(kMaxJwksBytes, 'a') + R"("})";
  ExpectRefused(big, "JWKS is larger than 262144 bytes");
}

// --- Find ---------------------------------------------------------------------------------

TEST(JwkSetFindTest, ByKid) {
  const JwkSet set = MustParse(Set({RsaJwk(), EcJwk(), EdJwk()}));
  EXPECT_EQ(set.Find("rsa1", JwsAlg::kRS256), set.keys()[0].key);
  EXPECT_EQ(set.Find("ec1", JwsAlg::kES256), set.keys()[1].key);
  EXPECT_EQ(set.Find("ed1", JwsAlg::kEdDSA), set.keys()[2].key);
  // The kid's key must be of the token's algorithm.
  EXPECT_EQ(set.Find("rsa1", JwsAlg::kES256), nullptr);
  EXPECT_EQ(set.Find("ec1", JwsAlg::kRS256), nullptr);
  EXPECT_EQ(set.Find("unknown", JwsAlg::kES256), nullptr);
  EXPECT_EQ(set.Find("EC1", JwsAlg::kES256), nullptr);  // exact match
}

TEST(JwkSetFindTest, ByAlgorithmWithoutKid) {
  const JwkSet set = MustParse(Set({RsaJwk(), EcJwk(), EdJwk("")}));
  EXPECT_EQ(set.Find("", JwsAlg::kES256), set.keys()[1].key);
  EXPECT_EQ(set.Find("", JwsAlg::kRS256), set.keys()[0].key);
  EXPECT_EQ(set.Find("", JwsAlg::kEdDSA), set.keys()[2].key);
}

TEST(JwkSetFindTest, NoKidIsAmbiguousWithTwoKeysOfTheAlgorithm) {
  const JwkSet set = MustParse(Set({EcJwk(R"(,"kid":"a")"), EcJwk(R"(,"kid":"b")"), EdJwk()}));
  EXPECT_EQ(set.Find("", JwsAlg::kES256), nullptr);
  EXPECT_EQ(set.Find("b", JwsAlg::kES256), set.keys()[1].key);
  EXPECT_EQ(set.Find("", JwsAlg::kRS256), nullptr);
  EXPECT_EQ(JwkSet().Find("", JwsAlg::kES256), nullptr);
}

}  // namespace
}  // namespace phigate::auth
