#include "crypto/certificate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include "crypto/signing_key.h"
#include "crypto/temp_dir.h"

namespace phigate::crypto {
namespace {

using ::testing::HasSubstr;

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// The certificate is read back with the openssl tool, not with the code that wrote it.
std::string OpensslText(const std::string& cert_path) {
  std::string command = "openssl x509 -in '" + cert_path + "' -noout -text 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  return out;
}

class CertificateTest : public ::testing::Test {
 protected:
  phigate::testing::TempDir dir_;
  const std::string cert_ = dir_.File("tls.crt");
  const std::string key_ = dir_.File("tls.key");
};

TEST_F(CertificateTest, WritesKeyAndCertificateWithTheRightModes) {
  ASSERT_TRUE(GenerateSelfSignedCertificate(cert_, key_, {"localhost"}, {"127.0.0.1"}, 30).ok());
  EXPECT_EQ(Mode(key_), 0600u);
  EXPECT_EQ(Mode(cert_), 0644u);
  // The key is the PKCS#8 P-256 key the rest of phigate loads.
  Result<SigningKey> key = SigningKey::LoadPem(key_);
  EXPECT_TRUE(key.ok()) << key.status().message();
}

TEST_F(CertificateTest, CertificateHasServerProfile) {
  ASSERT_TRUE(GenerateSelfSignedCertificate(cert_, key_, {"localhost", "phigate.test"},
                                            {"127.0.0.1", "::1"}, 30)
                  .ok());
  std::string text = OpensslText(cert_);
  EXPECT_THAT(text, HasSubstr("Version: 3 (0x2)"));
  EXPECT_THAT(text, HasSubstr("Subject: CN = localhost"));
  EXPECT_THAT(text, HasSubstr("Issuer: CN = localhost"));
  EXPECT_THAT(text, HasSubstr("DNS:localhost"));
  EXPECT_THAT(text, HasSubstr("DNS:phigate.test"));
  EXPECT_THAT(text, HasSubstr("IP Address:127.0.0.1"));
  EXPECT_THAT(text, HasSubstr("IP Address:0:0:0:0:0:0:0:1"));
  EXPECT_THAT(text, HasSubstr("Public Key Algorithm: id-ecPublicKey"));
  EXPECT_THAT(text, HasSubstr("NIST CURVE: P-256"));
  EXPECT_THAT(text, HasSubstr("Signature Algorithm: ecdsa-with-SHA256"));
  EXPECT_THAT(text, HasSubstr("X509v3 Basic Constraints: critical\n                CA:FALSE"));
  EXPECT_THAT(text, HasSubstr("X509v3 Key Usage: critical\n                Digital Signature"));
  EXPECT_THAT(text, HasSubstr("TLS Web Server Authentication"));
}

TEST_F(CertificateTest, IpOnlyCertificateIsNamedPhigate) {
  ASSERT_TRUE(GenerateSelfSignedCertificate(cert_, key_, {}, {"127.0.0.1"}, 1).ok());
  std::string text = OpensslText(cert_);
  EXPECT_THAT(text, HasSubstr("Subject: CN = phigate"));
  EXPECT_THAT(text, HasSubstr("IP Address:127.0.0.1"));
}

TEST_F(CertificateTest, NeverOverwritesExistingFiles) {
  std::ofstream(cert_) << "existing";
  Status status = GenerateSelfSignedCertificate(cert_, key_, {"localhost"}, {}, 30);
  EXPECT_EQ(status.code(), StatusCode::kConflict);
  EXPECT_THAT(status.message(), HasSubstr(cert_));
  struct stat st {};
  EXPECT_NE(::stat(key_.c_str(), &st), 0) << "no key may be left behind";

  std::remove(cert_.c_str());
  std::ofstream(key_) << "existing";
  EXPECT_EQ(GenerateSelfSignedCertificate(cert_, key_, {"localhost"}, {}, 30).code(),
            StatusCode::kConflict);
  EXPECT_NE(::stat(cert_.c_str(), &st), 0);
}

TEST_F(CertificateTest, BadNamesAreRefused) {
  EXPECT_EQ(GenerateSelfSignedCertificate(cert_, key_, {"a,DNS:evil"}, {}, 30).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateSelfSignedCertificate(cert_, key_, {"localhost"}, {"127.0.0.256"}, 30).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateSelfSignedCertificate(cert_, key_, {}, {}, 30).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(GenerateSelfSignedCertificate(cert_, key_, {"localhost"}, {}, 0).code(),
            StatusCode::kInvalidArgument);
  struct stat st {};
  EXPECT_NE(::stat(key_.c_str(), &st), 0);
  EXPECT_NE(::stat(cert_.c_str(), &st), 0);
}

}  // namespace
}  // namespace phigate::crypto
