#include "crypto/public_key.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/base64.h"
#include "crypto/hex.h"

namespace phigate::crypto {
namespace {

using ::phigate::testing::FromHex;

std::string B64(std::string_view text) {
  std::optional<std::string> bytes = Base64UrlDecode(text);
  if (!bytes) ADD_FAILURE() << "bad base64url in a test vector";
  return bytes.value_or("");
}

std::string FlipBit(std::string s, size_t byte, int bit = 0) {
  s[byte] = static_cast<char>(s[byte] ^ (1 << bit));
  return s;
}

// RFC 7515 Appendix A.2: RS256. The JWK's public members, the signing input and the
// published signature.
constexpr std::string_view kRsaN =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4"
    "d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5re"
    "xMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxX"
    "FvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
constexpr std::string_view kRsaE = "AQAB";
constexpr std::string_view kA2Input =
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr std::string_view kA2Signature =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb"
    "1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QO"
    "YEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

// RFC 7515 Appendix A.3: ES256; the signature is the 64-byte r || s.
constexpr std::string_view kEcX = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr std::string_view kEcY = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr std::string_view kA3Input =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVl"
    "fQ";
constexpr std::string_view kA3Signature =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

// RFC 8037 Appendix A.1 (key), A.4 (signing input and signature).
constexpr std::string_view kEdX = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
constexpr std::string_view kEdSeedHex =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
constexpr std::string_view kEdInput = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
constexpr std::string_view kEdSignature =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

// The RFC 8037 A.1 private key as PKCS#8 (RFC 8410 §7): the fixed DER prefix, then the seed.
std::string Rfc8037Pem() {
  const std::string der = FromHex("302e020100300506032b657004220420") + FromHex(kEdSeedHex);
  return "-----BEGIN PRIVATE KEY-----\n" + Base64Encode(der) + "\n-----END PRIVATE KEY-----\n";
}

// A P-384 key (openssl genpkey): a valid PEM of a curve JWS keys here do not support.
constexpr std::string_view kP384Pem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBUOC32+zZN68KjHWKa\n"
    "eHKK04uz4ttF5C6eWG7oM42jz62y57M9Tx0E7xL09JZROhqhZANiAAShK2mziKCo\n"
    "Zmi1nqGpn5S8uOejpkx7n5ZdmGu76i5TtvCoSiQ7PTRSo5ugknjz+7anYPPtxQIU\n"
    "gXEhPkF8rm7WYIpMbdA238e6j+e/hmDN6XDIsQZVSgE7AIRLRB+zpdA=\n"
    "-----END PRIVATE KEY-----\n";

PublicKey RfcRsaKey() {
  Result<PublicKey> key = PublicKey::Rsa(B64(kRsaN), B64(kRsaE));
  EXPECT_TRUE(key.ok()) << key.status().message();
  return std::move(key).value();
}

PublicKey RfcEcKey() {
  Result<PublicKey> key = PublicKey::EcP256(B64(kEcX), B64(kEcY));
  EXPECT_TRUE(key.ok()) << key.status().message();
  return std::move(key).value();
}

PublicKey RfcEdKey() {
  Result<PublicKey> key = PublicKey::Ed25519(B64(kEdX));
  EXPECT_TRUE(key.ok()) << key.status().message();
  return std::move(key).value();
}

void ExpectInvalid(const Status& status, std::string_view message) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), message);
}

TEST(JwsAlgTest, NamesAreExactAndCaseSensitive) {
  EXPECT_EQ(ParseJwsAlg("RS256"), JwsAlg::kRS256);
  EXPECT_EQ(ParseJwsAlg("ES256"), JwsAlg::kES256);
  EXPECT_EQ(ParseJwsAlg("EdDSA"), JwsAlg::kEdDSA);
  for (std::string_view bad :
       {"none", "HS256", "PS256", "RS384", "ES256K", "es256", "EDDSA", "Ed25519", "", "RS256 "}) {
    EXPECT_FALSE(ParseJwsAlg(bad).has_value()) << bad;
  }
  EXPECT_FALSE(ParseJwsAlg(std::string_view("ES256\0", 6)).has_value());
  for (JwsAlg alg : {JwsAlg::kRS256, JwsAlg::kES256, JwsAlg::kEdDSA}) {
    EXPECT_EQ(ParseJwsAlg(JwsAlgName(alg)), alg);
  }
}

// --- Published examples -------------------------------------------------------------------

TEST(PublicKeyTest, Rfc7515A2Rs256Verifies) {
  PublicKey key = RfcRsaKey();
  EXPECT_EQ(key.alg(), JwsAlg::kRS256);
  EXPECT_TRUE(key.Verify(JwsAlg::kRS256, kA2Input, B64(kA2Signature)));
}

TEST(PublicKeyTest, Rfc7515A3Es256Verifies) {
  PublicKey key = RfcEcKey();
  EXPECT_EQ(key.alg(), JwsAlg::kES256);
  EXPECT_TRUE(key.Verify(JwsAlg::kES256, kA3Input, B64(kA3Signature)));
}

TEST(PublicKeyTest, Rfc8037A4Ed25519Verifies) {
  PublicKey key = RfcEdKey();
  EXPECT_EQ(key.alg(), JwsAlg::kEdDSA);
  EXPECT_TRUE(key.Verify(JwsAlg::kEdDSA, kEdInput, B64(kEdSignature)));
}

TEST(PublicKeyTest, FlippedBitsFail) {
  struct Case {
    PublicKey key;
    JwsAlg alg;
    std::string_view input;
    std::string signature;
  };
  Case cases[] = {{RfcRsaKey(), JwsAlg::kRS256, kA2Input, B64(kA2Signature)},
                  {RfcEcKey(), JwsAlg::kES256, kA3Input, B64(kA3Signature)},
                  {RfcEdKey(), JwsAlg::kEdDSA, kEdInput, B64(kEdSignature)}};
  for (const Case& c : cases) {
    const std::string name(JwsAlgName(c.alg));
    ASSERT_TRUE(c.key.Verify(c.alg, c.input, c.signature)) << name;
    EXPECT_FALSE(c.key.Verify(c.alg, c.input, FlipBit(c.signature, 0))) << name;
    EXPECT_FALSE(c.key.Verify(c.alg, c.input, FlipBit(c.signature, c.signature.size() - 1, 7)))
        << name;
    EXPECT_FALSE(c.key.Verify(c.alg, FlipBit(std::string(c.input), 5, 1), c.signature)) << name;
    // A signature one byte short or long is refused before any arithmetic.
    EXPECT_FALSE(c.key.Verify(c.alg, c.input, c.signature.substr(1))) << name;
    EXPECT_FALSE(c.key.Verify(c.alg, c.input, c.signature + '\0')) << name;
    EXPECT_FALSE(c.key.Verify(c.alg, c.input, "")) << name;
  }
}

// RFC 8725 §3.1: the algorithm a token names never changes how a key is used.
TEST(PublicKeyTest, AlgorithmMustMatchTheKey) {
  PublicKey rsa = RfcRsaKey();
  EXPECT_FALSE(rsa.Verify(JwsAlg::kES256, kA2Input, B64(kA2Signature)));
  EXPECT_FALSE(rsa.Verify(JwsAlg::kEdDSA, kA2Input, B64(kA2Signature)));
  PublicKey ec = RfcEcKey();
  EXPECT_FALSE(ec.Verify(JwsAlg::kRS256, kA3Input, B64(kA3Signature)));
  EXPECT_FALSE(ec.Verify(JwsAlg::kEdDSA, kA3Input, B64(kA3Signature)));
  PublicKey ed = RfcEdKey();
  EXPECT_FALSE(ed.Verify(JwsAlg::kES256, kEdInput, B64(kEdSignature)));
  EXPECT_FALSE(ed.Verify(JwsAlg::kRS256, kEdInput, B64(kEdSignature)));
}

TEST(PublicKeyTest, Es256ZeroRAndSAreRefused) {
  PublicKey ec = RfcEcKey();
  const std::string sig = B64(kA3Signature);
  EXPECT_FALSE(ec.Verify(JwsAlg::kES256, kA3Input, std::string(32, '\0') + sig.substr(32)));
  EXPECT_FALSE(ec.Verify(JwsAlg::kES256, kA3Input, sig.substr(0, 32) + std::string(32, '\0')));
  EXPECT_FALSE(ec.Verify(JwsAlg::kES256, kA3Input, std::string(64, '\0')));
}

// --- Key construction checks --------------------------------------------------------------

TEST(PublicKeyTest, RsaModulusSizeLimits) {
  const std::string n = B64(kRsaN);
  ASSERT_EQ(n.size(), 256u);
  // 1024 bits (odd): too small for RFC 7518 §3.3.
  std::string small = n.substr(0, 128);
  small.back() = static_cast<char>(small.back() | 1);
  ExpectInvalid(PublicKey::Rsa(small, B64(kRsaE)).status(),
                "RSA key: modulus must be 2048 to 8192 bits");
  // 2047 bits.
  std::string just_under = n;
  just_under[0] = '\x7f';
  ExpectInvalid(PublicKey::Rsa(just_under, B64(kRsaE)).status(),
                "RSA key: modulus must be 2048 to 8192 bits");
  // 8200 bits.
  const std::string huge(1025, '\xff');
  ExpectInvalid(PublicKey::Rsa(huge, B64(kRsaE)).status(),
                "RSA key: modulus must be 2048 to 8192 bits");
  // Leading zero octets do not count towards the size.
  EXPECT_TRUE(PublicKey::Rsa(std::string(3, '\0') + n, B64(kRsaE)).ok());
  ExpectInvalid(PublicKey::Rsa(std::string(200, '\0') + small, B64(kRsaE)).status(),
                "RSA key: modulus must be 2048 to 8192 bits");
}

TEST(PublicKeyTest, RsaExponentAndModulusChecks) {
  const std::string n = B64(kRsaN);
  const char* const kMessage = "RSA key: invalid modulus or exponent";
  ExpectInvalid(PublicKey::Rsa(n, std::string("\x01\x00\x00", 3)).status(), kMessage);  // even
  ExpectInvalid(PublicKey::Rsa(n, std::string("\x01", 1)).status(), kMessage);          // 1
  ExpectInvalid(PublicKey::Rsa(n, std::string("\x00\x01", 2)).status(), kMessage);      // 1
  ExpectInvalid(PublicKey::Rsa(n, std::string(1, '\0')).status(), kMessage);            // 0
  ExpectInvalid(PublicKey::Rsa(n, "").status(), kMessage);
  ExpectInvalid(PublicKey::Rsa("", B64(kRsaE)).status(), kMessage);
  // 2^64 + 1: over the 64-bit bound.
  ExpectInvalid(PublicKey::Rsa(n, FromHex("010000000000000001")).status(), kMessage);
  // 2^64 - 1 is within it; e = 3 is a legal (if unusual) exponent.
  EXPECT_TRUE(PublicKey::Rsa(n, FromHex("ffffffffffffffff")).ok());
  EXPECT_TRUE(PublicKey::Rsa(n, std::string("\x03", 1)).ok());
  // An even modulus.
  std::string even = n;
  even.back() = static_cast<char>(even.back() & ~1);
  ExpectInvalid(PublicKey::Rsa(even, B64(kRsaE)).status(), kMessage);
}

TEST(PublicKeyTest, EcPointMustBeOnTheCurve) {
  const char* const kOffCurve = "P-256 key: not a point on the curve";
  ExpectInvalid(PublicKey::EcP256(B64(kEcX), FlipBit(B64(kEcY), 31)).status(), kOffCurve);
  ExpectInvalid(PublicKey::EcP256(std::string(32, '\0'), std::string(32, '\0')).status(),
                kOffCurve);
  const char* const kSize = "P-256 key: coordinates must be 32 bytes each";
  ExpectInvalid(PublicKey::EcP256(B64(kEcX).substr(1), B64(kEcY)).status(), kSize);
  ExpectInvalid(PublicKey::EcP256(B64(kEcX), B64(kEcY) + '\0').status(), kSize);
  ExpectInvalid(PublicKey::EcP256("", "").status(), kSize);
}

TEST(PublicKeyTest, Ed25519KeyMustBe32Bytes) {
  ExpectInvalid(PublicKey::Ed25519(B64(kEdX).substr(1)).status(), "Ed25519 key: must be 32 bytes");
  ExpectInvalid(PublicKey::Ed25519(B64(kEdX) + 'x').status(), "Ed25519 key: must be 32 bytes");
  ExpectInvalid(PublicKey::Ed25519("").status(), "Ed25519 key: must be 32 bytes");
}

// --- Private keys -------------------------------------------------------------------------

class PrivateKeyTest : public ::testing::TestWithParam<JwsAlg> {
 protected:
  static PrivateKey Generate(JwsAlg alg) {
    Result<PrivateKey> key = PrivateKey::Generate(alg);
    EXPECT_TRUE(key.ok()) << key.status().message();
    return std::move(key).value();
  }
};

TEST_P(PrivateKeyTest, SignAndVerifyRoundTrip) {
  const PrivateKey key = Generate(GetParam());
  EXPECT_EQ(key.alg(), GetParam());
  const PublicKey pub = key.Public();
  EXPECT_EQ(pub.alg(), GetParam());
  const std::string signature = key.Sign("header.payload");
  const size_t expected_size = GetParam() == JwsAlg::kRS256 ? 256u : 64u;
  EXPECT_EQ(signature.size(), expected_size);
  EXPECT_TRUE(pub.Verify(GetParam(), "header.payload", signature));
  EXPECT_FALSE(pub.Verify(GetParam(), "header.payloaD", signature));
  EXPECT_FALSE(pub.Verify(GetParam(), "header.payload", FlipBit(signature, 10)));
  EXPECT_TRUE(pub.Verify(GetParam(), "", key.Sign("")));
  // Another key of the same type does not verify it.
  EXPECT_FALSE(Generate(GetParam()).Public().Verify(GetParam(), "header.payload", signature));
}

TEST_P(PrivateKeyTest, PemRoundTrip) {
  const PrivateKey key = Generate(GetParam());
  const std::string pem = key.ToPem();
  EXPECT_TRUE(pem.starts_with("-----BEGIN PRIVATE KEY-----\n")) << "not PKCS#8";
  Result<PrivateKey> loaded = PrivateKey::FromPem(pem);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->alg(), GetParam());
  EXPECT_EQ(loaded->PublicJwkJson("k"), key.PublicJwkJson("k"));
  EXPECT_TRUE(key.Public().Verify(GetParam(), "data", loaded->Sign("data")));
  EXPECT_EQ(loaded->ToPem(), pem);
}

TEST_P(PrivateKeyTest, PublicJwkHasOnlyPublicMembers) {
  const PrivateKey key = Generate(GetParam());
  const std::string jwk = key.PublicJwkJson("key-1");
  const std::string alg(JwsAlgName(GetParam()));
  EXPECT_TRUE(jwk.ends_with(R"(,"kid":"key-1","use":"sig","alg":")" + alg + R"("})")) << jwk;
  for (const char* member : {"\"d\"", "\"p\"", "\"q\"", "\"dp\"", "\"dq\"", "\"qi\"", "\"k\""}) {
    EXPECT_EQ(jwk.find(member), std::string::npos) << member << " in " << jwk;
  }
  switch (GetParam()) {
    case JwsAlg::kRS256:
      EXPECT_TRUE(jwk.starts_with(R"({"kty":"RSA","n":")")) << jwk;
      EXPECT_NE(jwk.find(R"(","e":"AQAB",)"), std::string::npos) << jwk;
      break;
    case JwsAlg::kES256:
      EXPECT_TRUE(jwk.starts_with(R"({"kty":"EC","crv":"P-256","x":")")) << jwk;
      break;
    case JwsAlg::kEdDSA:
      EXPECT_TRUE(jwk.starts_with(R"({"kty":"OKP","crv":"Ed25519","x":")")) << jwk;
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, PrivateKeyTest,
                         ::testing::Values(JwsAlg::kRS256, JwsAlg::kES256, JwsAlg::kEdDSA),
                         [](const ::testing::TestParamInfo<JwsAlg>& param_info) {
                           return std::string(JwsAlgName(param_info.param));
                         });

// Ed25519 is deterministic (RFC 8032 §5.1.6), so the RFC 8037 key loaded from PEM must
// reproduce the published signature and public JWK exactly.
TEST(PrivateKeyKnownAnswerTest, Rfc8037Ed25519SignatureAndJwk) {
  Result<PrivateKey> key = PrivateKey::FromPem(Rfc8037Pem());
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->alg(), JwsAlg::kEdDSA);
  EXPECT_EQ(Base64UrlEncode(key->Sign(kEdInput)), kEdSignature);
  EXPECT_EQ(key->PublicJwkJson("rfc8037"), R"({"kty":"OKP","crv":"Ed25519","x":")" +
                                               std::string(kEdX) +
                                               R"(","kid":"rfc8037","use":"sig","alg":"EdDSA"})");
}

TEST(PrivateKeyKnownAnswerTest, KidIsJsonEscaped) {
  Result<PrivateKey> key = PrivateKey::FromPem(Rfc8037Pem());
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_NE(key->PublicJwkJson("a\"b\\c\n").find(R"("kid":"a\"b\\c\u000a")"), std::string::npos);
}

TEST(PrivateKeyFromPemTest, RefusesWhatIsNotASupportedPrivateKey) {
  ExpectInvalid(PrivateKey::FromPem("").status(), "not an unencrypted PEM private key");
  ExpectInvalid(
      PrivateKey::FromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
          .status(),
      "not an unencrypted PEM private key");
  ExpectInvalid(PrivateKey::FromPem(kP384Pem).status(),
                "not an RSA (2048-8192 bits), P-256 or Ed25519 key");
}

}  // namespace
}  // namespace phigate::crypto
