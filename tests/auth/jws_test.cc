// JWS of other parties (auth/jwt.h ParseJws / VerifyJws / EncodeJws) with keys from a
// JWKS (auth/jwk.h): the published RFC examples, algorithm confusion, and round trips.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "auth/jwk.h"
#include "auth/jwt.h"
#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/public_key.h"

namespace phigate::auth {
namespace {

using crypto::JwsAlg;

// RFC 7515 Appendix A.2 (RS256): the public JWK and the complete compact JWS.
constexpr std::string_view kA2Jwk =
    R"({"kty":"RSA","kid":"a2","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"})";
constexpr std::string_view kA2Token =
    "eyJhbGciOiJSUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ"
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp"
    "5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHl"
    "b1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9Q"
    "OYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

// RFC 7515 Appendix A.3 (ES256, signature r || s).
constexpr std::string_view kA3Jwk =
    R"({"kty":"EC","crv":"P-256","kid":"a3","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})";
constexpr std::string_view kA3Token =
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
    "cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// RFC 8037 Appendix A.2 (public key) and A.4 (the JWS; its payload is plain text).
constexpr std::string_view kEdJwk =
    R"({"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})";
constexpr std::string_view kEdToken =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

const JwkSet& RfcKeys() {
  static const JwkSet keys = [] {
    Result<JwkSet> set = ParseJwks(R"({"keys":[)" + std::string(kA2Jwk) + "," +
                                   std::string(kA3Jwk) + "," + std::string(kEdJwk) + "]}");
    if (!set.ok()) ADD_FAILURE() << set.status().message();
    return set.ok() ? std::move(set).value() : JwkSet();
  }();
  return keys;
}

const crypto::PublicKey& RfcKey(std::string_view kid, JwsAlg alg) {
  std::shared_ptr<const crypto::PublicKey> key = RfcKeys().Find(kid, alg);
  if (!key) {
    ADD_FAILURE() << "no key " << kid;
    std::abort();
  }
  return *key;
}

void ExpectInvalidToken(const Status& status) {
  EXPECT_EQ(status.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(status.message(), "invalid token");
}

// Parse + verify, the way a caller does, with the key chosen by the caller.
Result<boost::json::object> ParseAndVerify(std::string_view token, const crypto::PublicKey& key) {
  ASSIGN_OR_RETURN(JwsParts parts, ParseJws(token));
  return VerifyJws(parts, key);
}

void ExpectRejected(std::string_view token, const crypto::PublicKey& key) {
  Result<boost::json::object> r = ParseAndVerify(token, key);
  ASSERT_FALSE(r.ok()) << token.substr(0, 200);
  ExpectInvalidToken(r.status());
}

// A compact JWS from raw header JSON, payload JSON and signature bytes.
std::string Compact(std::string_view header, std::string_view payload, std::string_view sig) {
  return Base64UrlEncode(header) + "." + Base64UrlEncode(payload) + "." + Base64UrlEncode(sig);
}

std::string FlipLastSignatureChar(std::string_view token) {
  std::string t(token);
  // The last base64url character of a 256- or 64-byte signature carries significant bits
  // in its top bits; swapping 'A'<->'Q' flips one of them.
  t.back() = t.back() == 'Q' ? 'A' : 'Q';
  return t;
}

// --- Published examples -------------------------------------------------------------------

TEST(RfcJwsTest, Rfc7515A2Rs256) {
  Result<JwsParts> parts = ParseJws(kA2Token);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->alg, "RS256");
  EXPECT_EQ(parts->kid, "");
  EXPECT_EQ(parts->typ, "");
  EXPECT_EQ(parts->signature.size(), 256u);
  // No kid in the header: the set's only RS256 key is the one.
  std::shared_ptr<const crypto::PublicKey> key = RfcKeys().Find(parts->kid, JwsAlg::kRS256);
  ASSERT_NE(key, nullptr);
  Result<boost::json::object> claims = VerifyJws(*parts, *key);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->at("iss"), boost::json::value("joe"));
  EXPECT_EQ(claims->at("exp"), boost::json::value(1300819380));
  EXPECT_EQ(claims->at("http://example.com/is_root"), boost::json::value(true));
}

TEST(RfcJwsTest, Rfc7515A3Es256) {
  Result<boost::json::object> claims = ParseAndVerify(kA3Token, RfcKey("a3", JwsAlg::kES256));
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->at("iss"), boost::json::value("joe"));
}

TEST(RfcJwsTest, Rfc8037A4Ed25519SignatureVerifiesButPayloadIsNotClaims) {
  Result<JwsParts> parts = ParseJws(kEdToken);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->alg, "EdDSA");
  const crypto::PublicKey& key = RfcKey("ed", JwsAlg::kEdDSA);
  EXPECT_TRUE(key.Verify(JwsAlg::kEdDSA, parts->signing_input, parts->signature));
  // "Example of Ed25519 signing" is not a JSON object, so it is not a claims set.
  Result<boost::json::object> claims = VerifyJws(*parts, key);
  ASSERT_FALSE(claims.ok());
  ExpectInvalidToken(claims.status());
}

TEST(RfcJwsTest, FlippedBitFails) {
  ExpectRejected(FlipLastSignatureChar(kA2Token), RfcKey("a2", JwsAlg::kRS256));
  ExpectRejected(FlipLastSignatureChar(kA3Token), RfcKey("a3", JwsAlg::kES256));
  // One changed character in the payload.
  std::string payload_changed(kA3Token);
  const size_t at = payload_changed.find("eyJpc3MiOiJqb2");
  payload_changed[at + 13] = 'f';
  ExpectRejected(payload_changed, RfcKey("a3", JwsAlg::kES256));
}

// --- Algorithm confusion (RFC 8725 §2.1, §3.1) --------------------------------------------

TEST(AlgorithmConfusionTest, RsaKeyWithEs256HeaderFails) {
  // The A.2 token relabelled ES256, with its (valid RSA) signature kept.
  const std::string token = "eyJhbGciOiJFUzI1NiJ9" + std::string(kA2Token.substr(20));
  ExpectRejected(token, RfcKey("a2", JwsAlg::kRS256));
}

TEST(AlgorithmConfusionTest, NoneIsRefused) {
  const std::string payload = R"({"iss":"joe"})";
  // Unsecured JWS (RFC 7515 §A.5) has an empty signature: refused as structure.
  const std::string unsecured =
      Base64UrlEncode(R"({"alg":"none"})") + "." + Base64UrlEncode(payload) + ".";
  Result<JwsParts> parts = ParseJws(unsecured);
  ASSERT_FALSE(parts.ok());
  ExpectInvalidToken(parts.status());
  // With some signature bytes it parses, and no key verifies it.
  const std::string with_sig = Compact(R"({"alg":"none"})", payload, "x");
  ASSERT_TRUE(ParseJws(with_sig).ok());
  ExpectRejected(with_sig, RfcKey("a2", JwsAlg::kRS256));
  ExpectRejected(with_sig, RfcKey("a3", JwsAlg::kES256));
  ExpectRejected(with_sig, RfcKey("ed", JwsAlg::kEdDSA));
  ExpectRejected(Compact(R"({"alg":"None"})", payload, "x"), RfcKey("a3", JwsAlg::kES256));
}

TEST(AlgorithmConfusionTest, Hs256WithThePublicKeyAsSecretFails) {
  // The classic attack: HMAC the signing input with the public JWK text as the secret.
  const std::string input =
      Base64UrlEncode(R"({"alg":"HS256"})") + "." + Base64UrlEncode(R"({"iss":"joe"})");
  for (std::string_view secret : {kA2Jwk, kA3Jwk, kEdJwk}) {
    const std::string token = input + "." + Base64UrlEncode(crypto::HmacSha256(secret, input));
    ExpectRejected(token, RfcKey("a2", JwsAlg::kRS256));
    ExpectRejected(token, RfcKey("a3", JwsAlg::kES256));
    ExpectRejected(token, RfcKey("ed", JwsAlg::kEdDSA));
  }
}

TEST(AlgorithmConfusionTest, KeyOfAnotherAlgorithmFails) {
  // A valid ES256 token given an Ed25519 or RSA key.
  ExpectRejected(kA3Token, RfcKey("a2", JwsAlg::kRS256));
  ExpectRejected(kA3Token, RfcKey("ed", JwsAlg::kEdDSA));
  ExpectRejected(kA2Token, RfcKey("a3", JwsAlg::kES256));
  // Case variants of the algorithm name are other names.
  const std::string es256_lower = "eyJhbGciOiJlczI1NiJ9" + std::string(kA3Token.substr(20));
  ASSERT_EQ(*Base64UrlDecode("eyJhbGciOiJlczI1NiJ9"), R"({"alg":"es256"})");
  ExpectRejected(es256_lower, RfcKey("a3", JwsAlg::kES256));
}

// --- Round trips with generated keys ------------------------------------------------------

class JwsRoundTripTest : public ::testing::TestWithParam<JwsAlg> {};

TEST_P(JwsRoundTripTest, EncodeParseVerify) {
  Result<crypto::PrivateKey> key = crypto::PrivateKey::Generate(GetParam());
  ASSERT_TRUE(key.ok()) << key.status().message();
  const boost::json::object claims{{"iss", "client-1"}, {"sub", "client-1"}, {"exp", 1700000000}};
  const std::string token = EncodeJws(*key, "k1", "JWT", claims);

  Result<JwsParts> parts = ParseJws(token);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->alg, crypto::JwsAlgName(GetParam()));
  EXPECT_EQ(parts->kid, "k1");
  EXPECT_EQ(parts->typ, "JWT");

  // Through a JWKS built from the key's own public JWK, as a registered client's would be.
  Result<JwkSet> set = ParseJwks(R"({"keys":[)" + key->PublicJwkJson("k1") + "]}");
  ASSERT_TRUE(set.ok()) << set.status().message();
  std::shared_ptr<const crypto::PublicKey> pub = set->Find(parts->kid, GetParam());
  ASSERT_NE(pub, nullptr);
  Result<boost::json::object> verified = VerifyJws(*parts, *pub);
  ASSERT_TRUE(verified.ok());
  EXPECT_EQ(*verified, claims);

  ExpectRejected(FlipLastSignatureChar(token), *pub);
  // Another key of the same algorithm does not verify it.
  Result<crypto::PrivateKey> other = crypto::PrivateKey::Generate(GetParam());
  ASSERT_TRUE(other.ok());
  ExpectRejected(token, other->Public());
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, JwsRoundTripTest,
                         ::testing::Values(JwsAlg::kRS256, JwsAlg::kES256, JwsAlg::kEdDSA),
                         [](const ::testing::TestParamInfo<JwsAlg>& param_info) {
                           return std::string(crypto::JwsAlgName(param_info.param));
                         });

TEST(EncodeJwsTest, HeaderOmitsEmptyKidAndTyp) {
  Result<crypto::PrivateKey> key = crypto::PrivateKey::Generate(JwsAlg::kEdDSA);
  ASSERT_TRUE(key.ok());
  const std::string bare = EncodeJws(*key, "", "", boost::json::object{{"a", 1}});
  EXPECT_EQ(*Base64UrlDecode(bare.substr(0, bare.find('.'))), R"({"alg":"EdDSA"})");
  const std::string full = EncodeJws(*key, "kid-9", "at+jwt", boost::json::object{{"a", 1}});
  EXPECT_EQ(*Base64UrlDecode(full.substr(0, full.find('.'))),
            R"({"alg":"EdDSA","typ":"at+jwt","kid":"kid-9"})");
}

// --- Structure ----------------------------------------------------------------------------

TEST(ParseJwsTest, RefusesMalformedStructure) {
  const std::string h = Base64UrlEncode(R"({"alg":"ES256"})");
  const std::string p = Base64UrlEncode(R"({"iss":"joe"})");
  const std::string s = Base64UrlEncode(std::string(64, 'x'));
  ASSERT_TRUE(ParseJws(h + "." + p + "." + s).ok());
  const std::string bad[] = {
      "",
      h,
      h + "." + p,
      h + "." + p + "." + s + "." + s,  // five-part JWE shape
      h + "." + p + "." + s + ".",
      "." + p + "." + s,            // empty header
      h + ".." + s,                 // empty payload
      h + "." + p + ".",            // empty signature
      h + "." + p + "." + s + "=",  // padding
      h + "=." + p + "." + s,
      h + "." + p + "+." + s,           // not the url alphabet
      h + "." + p + "." + s.substr(1),  // not canonical base64url
      " " + h + "." + p + "." + s,      // whitespace
      h + "." + p + "." + s + "\n",
      Base64UrlEncode("[1]") + "." + p + "." + s,                // header not an object
      Base64UrlEncode(R"({"alg":"ES256")") + "." + p + "." + s,  // header not JSON
      Base64UrlEncode(R"({"typ":"JWT"})") + "." + p + "." + s,   // no alg
      Base64UrlEncode(R"({"alg":256})") + "." + p + "." + s,     // alg not a string
      Base64UrlEncode(R"({"alg":"ES256","kid":1})") + "." + p + "." + s,
      Base64UrlEncode(R"({"alg":"ES256","typ":null})") + "." + p + "." + s,
      Base64UrlEncode(R"({"alg":"ES256","crit":["exp"],"exp":1})") + "." + p + "." + s,
      h + "." + p + "." + s + std::string(kMaxJwtBytes, 'A'),  // over the size cap
  };
  for (const std::string& token : bad) {
    Result<JwsParts> parts = ParseJws(token);
    ASSERT_FALSE(parts.ok()) << token.substr(0, 200);
    ExpectInvalidToken(parts.status());
  }
}

TEST(ParseJwsTest, KeyHeadersAreIgnoredNotTrusted) {
  // jku / jwk / x5u / x5c parse, but the caller's key set alone decides (RFC 8725 §3.10).
  const std::string header =
      R"({"alg":"ES256","kid":"a3","jku":"https://evil.example/jwks","jwk":{"kty":"oct"},)"
      R"("x5u":"https://evil.example/c","x5c":["AAAA"]})";
  Result<JwsParts> parts = ParseJws(Compact(header, R"({"iss":"joe"})", std::string(64, 'x')));
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->kid, "a3");
  Result<boost::json::object> r = VerifyJws(*parts, RfcKey("a3", JwsAlg::kES256));
  ASSERT_FALSE(r.ok());
  ExpectInvalidToken(r.status());
}

TEST(ParseJwsTest, SigningInputIsTheTokenUpToTheSecondDot) {
  Result<JwsParts> parts = ParseJws(kA3Token);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->signing_input, kA3Token.substr(0, kA3Token.rfind('.')));
  EXPECT_EQ(parts->payload_b64, parts->signing_input.substr(parts->signing_input.find('.') + 1));
  EXPECT_EQ(parts->signature.size(), 64u);
}

TEST(JwsTypMatchesTest, MediaTypeRules) {
  EXPECT_TRUE(JwsTypMatches("at+jwt", "at+jwt"));
  EXPECT_TRUE(JwsTypMatches("AT+JWT", "at+jwt"));
  EXPECT_TRUE(JwsTypMatches("application/at+jwt", "at+jwt"));
  EXPECT_TRUE(JwsTypMatches("Application/AT+JWT", "at+jwt"));
  EXPECT_TRUE(JwsTypMatches("JWT", "jwt"));
  EXPECT_FALSE(JwsTypMatches("jwt", "at+jwt"));
  EXPECT_FALSE(JwsTypMatches("", "at+jwt"));
  EXPECT_FALSE(JwsTypMatches("application/", "at+jwt"));
  EXPECT_FALSE(JwsTypMatches("text/at+jwt", "at+jwt"));
  EXPECT_FALSE(JwsTypMatches("at+jwt ", "at+jwt"));
}

}  // namespace
}  // namespace phigate::auth
