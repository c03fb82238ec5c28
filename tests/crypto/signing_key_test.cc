#include "crypto/signing_key.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/public_key.h"
#include "crypto/temp_dir.h"

namespace phigate::crypto {
namespace {

// The public half as the token verifier uses it: ES256 over PublicKey::EcP256.
struct Es256 {
  PublicKey key;
  bool Verify(std::string_view data, std::string_view sig) const {
    return key.Verify(JwsAlg::kES256, data, sig);
  }
};

using ::testing::HasSubstr;

// RFC 7515 Appendix A.3: the published ES256 example key and signature.
constexpr char kRfcX[] = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
constexpr char kRfcY[] = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
constexpr char kRfcSigningInput[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlf"
    "Q";
constexpr char kRfcSignature[] =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
// The same key (d = "jpsQnnGQ...") as PKCS#8 PEM, and its RFC 7638 thumbprint, both
// produced with a different library (pyca/cryptography + hashlib).
constexpr char kRfcKeyPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjpsQnnGQmL+YBIff\n"
    "H1136cspYG6+0iY7X1fCE9+E9LKhRANCAAR/zc4ncPbEXUGDy+5v20t7WAczNXvp\n"
    "7xO6z248e9FURcfxRM0bvZt+hyzf7bnuufSzaV1uqQskrYpGIyiFiOWt\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kRfcThumbprint[] = "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U";

std::string B64(std::string_view text) { return Base64UrlDecode(text).value_or(""); }

// RFC 7638 §3, computed here independently of SigningKey.
std::string Thumbprint(const std::string& x, const std::string& y) {
  return Base64UrlEncode(Sha256("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" + Base64UrlEncode(x) +
                                "\",\"y\":\"" + Base64UrlEncode(y) + "\"}"));
}

class SigningKeyTest : public ::testing::Test {
 protected:
  SigningKeyTest() : key_(std::move(SigningKey::Generate()).value()) {}

  Es256 Verifier(const SigningKey& key) {
    return Es256{std::move(PublicKey::EcP256(key.PublicX(), key.PublicY())).value()};
  }

  std::string Plant(const std::string& name, const std::string& contents, mode_t mode) {
    std::string path = dir_.File(name);
    std::ofstream(path, std::ios::binary) << contents;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  phigate::testing::TempDir dir_;
  SigningKey key_;
};

TEST_F(SigningKeyTest, SignVerifyRoundTrip) {
  std::string sig = key_.Sign("header.payload");
  EXPECT_EQ(sig.size(), 64u);
  EXPECT_TRUE(Verifier(key_).Verify("header.payload", sig));
}

TEST_F(SigningKeyTest, TamperedDataOrSignatureFails) {
  Es256 verifier = Verifier(key_);
  std::string sig = key_.Sign("header.payload");
  EXPECT_FALSE(verifier.Verify("header.payloaD", sig));
  for (size_t i : {0, 31, 32, 63}) {
    std::string bad = sig;
    bad[i] ^= 0x01;
    EXPECT_FALSE(verifier.Verify("header.payload", bad)) << i;
  }
}

TEST_F(SigningKeyTest, OtherKeysSignatureFails) {
  SigningKey other = std::move(SigningKey::Generate()).value();
  EXPECT_FALSE(Verifier(key_).Verify("data", other.Sign("data")));
}

TEST_F(SigningKeyTest, MalformedSignaturesFail) {
  Es256 verifier = Verifier(key_);
  std::string sig = key_.Sign("data");
  EXPECT_FALSE(verifier.Verify("data", ""));
  EXPECT_FALSE(verifier.Verify("data", sig.substr(0, 63)));
  EXPECT_FALSE(verifier.Verify("data", sig + '\0'));
  EXPECT_FALSE(verifier.Verify("data", std::string(64, '\0')));
  EXPECT_FALSE(verifier.Verify("data", std::string(32, '\0') + sig.substr(32)));
  EXPECT_FALSE(verifier.Verify("data", sig.substr(0, 32) + std::string(32, '\0')));
  EXPECT_FALSE(verifier.Verify("data", std::string(64, '\xff')));
}

TEST_F(SigningKeyTest, KidIsTheRfc7638Thumbprint) {
  EXPECT_EQ(key_.kid(), Thumbprint(key_.PublicX(), key_.PublicY()));
  EXPECT_EQ(key_.PublicX().size(), 32u);
  EXPECT_EQ(key_.PublicY().size(), 32u);
}

TEST_F(SigningKeyTest, KidIsStableAcrossSaveAndLoad) {
  std::string path = dir_.File("signing.pem");
  ASSERT_TRUE(key_.SavePem(path).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Result<SigningKey> loaded = SigningKey::LoadPem(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->kid(), key_.kid());
  EXPECT_EQ(loaded->PublicX(), key_.PublicX());
  EXPECT_TRUE(Verifier(key_).Verify("data", loaded->Sign("data")));
  EXPECT_EQ(key_.SavePem(path).code(), StatusCode::kConflict);
}

TEST_F(SigningKeyTest, PublicJwkNamesKeyAndAlgorithm) {
  EXPECT_EQ(key_.PublicJwkJson(), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" +
                                      Base64UrlEncode(key_.PublicX()) + "\",\"y\":\"" +
                                      Base64UrlEncode(key_.PublicY()) + "\",\"kid\":\"" +
                                      key_.kid() + "\",\"use\":\"sig\",\"alg\":\"ES256\"}");
}

TEST_F(SigningKeyTest, Rfc7515ExampleSignatureVerifies) {
  Result<PublicKey> verifier = PublicKey::EcP256(B64(kRfcX), B64(kRfcY));
  ASSERT_TRUE(verifier.ok()) << verifier.status().message();
  EXPECT_TRUE(verifier->Verify(JwsAlg::kES256, kRfcSigningInput, B64(kRfcSignature)));
  EXPECT_FALSE(
      verifier->Verify(JwsAlg::kES256, std::string(kRfcSigningInput) + "x", B64(kRfcSignature)));
}

TEST_F(SigningKeyTest, Rfc7515ExampleKeyLoadsWithKnownThumbprint) {
  Result<SigningKey> key = SigningKey::LoadPem(Plant("rfc.pem", kRfcKeyPem, 0600));
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->kid(), kRfcThumbprint);
  EXPECT_EQ(key->PublicX(), B64(kRfcX));
  EXPECT_EQ(key->PublicY(), B64(kRfcY));
}

TEST_F(SigningKeyTest, LoadPemRefusesGroupReadableFile) {
  std::string path = Plant("rfc.pem", kRfcKeyPem, 0644);
  Result<SigningKey> key = SigningKey::LoadPem(path);
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kPermissionDenied);
  EXPECT_THAT(key.status().message(), HasSubstr(path));
}

TEST_F(SigningKeyTest, LoadPemRefusesGarbage) {
  Result<SigningKey> key = SigningKey::LoadPem(Plant("junk.pem", "not a key", 0600));
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SigningKeyTest, PointOffTheCurveIsRefused) {
  std::string y = key_.PublicY();
  y.back() ^= 0x01;
  EXPECT_FALSE(PublicKey::EcP256(key_.PublicX(), y).ok());
  EXPECT_FALSE(PublicKey::EcP256(key_.PublicX(), y.substr(1)).ok());
  EXPECT_FALSE(PublicKey::EcP256(std::string(32, '\0'), std::string(32, '\0')).ok());
}

}  // namespace
}  // namespace phigate::crypto
