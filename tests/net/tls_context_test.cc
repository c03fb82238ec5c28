#include "net/tls_context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "net/test_tls_files.h"

namespace phigate::net {
namespace {

using test_support::TestTlsFiles;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TlsSettings ValidSettings() {
  return {TestTlsFiles().certificate, TestTlsFiles().private_key, "1.2"};
}

std::vector<std::string> CipherNames(SSL_CTX* ctx) {
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx), &SSL_free);
  std::vector<std::string> names;
  STACK_OF(SSL_CIPHER)* ciphers = SSL_get_ciphers(ssl.get());
  names.reserve(static_cast<size_t>(sk_SSL_CIPHER_num(ciphers)));
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    names.emplace_back(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i)));
  }
  return names;
}

TEST(TlsContextTest, AppliesTheHardenedPolicy) {
  auto context = MakeServerTlsContext(ValidSettings());
  ASSERT_TRUE(context.ok()) << context.status().message();
  SSL_CTX* ctx = (*context)->native_handle();

  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
  const uint64_t options = SSL_CTX_get_options(ctx);
  for (uint64_t required :
       {SSL_OP_NO_COMPRESSION, SSL_OP_NO_RENEGOTIATION, SSL_OP_CIPHER_SERVER_PREFERENCE,
        SSL_OP_NO_TICKET, SSL_OP_NO_SSLv3, SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1}) {
    EXPECT_EQ(options & required, required) << std::hex << required;
  }
}

TEST(TlsContextTest, OffersOnlyEcdheAeadSuites) {
  auto context = MakeServerTlsContext(ValidSettings());
  ASSERT_TRUE(context.ok()) << context.status().message();
  const std::vector<std::string> names = CipherNames((*context)->native_handle());
  // 3 TLS 1.3 suites + 6 TLS 1.2 suites.
  ASSERT_EQ(names.size(), 9u);
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    if (name.rfind("TLS_", 0) == 0) continue;  // TLS 1.3: AEAD by construction
    EXPECT_THAT(name, StartsWith("ECDHE-"));
    EXPECT_TRUE(name.find("-GCM-") != std::string::npos ||
                name.find("CHACHA20-POLY1305") != std::string::npos);
  }
}

TEST(TlsContextTest, MinimumVersionCanBeRaisedTo13) {
  TlsSettings settings = ValidSettings();
  settings.min_version = "1.3";
  auto context = MakeServerTlsContext(settings);
  ASSERT_TRUE(context.ok()) << context.status().message();
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*context)->native_handle()), TLS1_3_VERSION);
}

TEST(TlsContextTest, RejectsAnUnknownMinimumVersion) {
  for (const char* version : {"1.0", "1.1", "", "TLSv1.2", "1.4"}) {
    SCOPED_TRACE(version);
    TlsSettings settings = ValidSettings();
    settings.min_version = version;
    auto context = MakeServerTlsContext(settings);
    ASSERT_FALSE(context.ok());
    EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(context.status().message(), HasSubstr("tls.min_version"));
  }
}

TEST(TlsContextTest, NamesAMissingCertificateFile) {
  TlsSettings settings = ValidSettings();
  settings.certificate_file = (TestTlsFiles().dir / "absent-cert.pem").string();
  auto context = MakeServerTlsContext(settings);
  ASSERT_FALSE(context.ok());
  EXPECT_EQ(context.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(context.status().message(),
              AllOf(HasSubstr("tls.certificate_file"), HasSubstr(settings.certificate_file)));
}

TEST(TlsContextTest, NamesAMissingPrivateKeyFile) {
  TlsSettings settings = ValidSettings();
  settings.private_key_file = (TestTlsFiles().dir / "absent-key.pem").string();
  auto context = MakeServerTlsContext(settings);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(context.status().message(),
              AllOf(HasSubstr("tls.private_key_file"), HasSubstr(settings.private_key_file)));
}

TEST(TlsContextTest, RefusesAKeyThatDoesNotMatchTheCertificate) {
  TlsSettings settings = ValidSettings();
  settings.private_key_file = TestTlsFiles().other_key;
  auto context = MakeServerTlsContext(settings);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(context.status().message(),
              AllOf(HasSubstr("tls.private_key_file"), HasSubstr("mismatch")));
}

TEST(TlsContextTest, RefusesAKeyFileGivenAsCertificate) {
  TlsSettings settings = ValidSettings();
  settings.certificate_file = TestTlsFiles().private_key;
  auto context = MakeServerTlsContext(settings);
  ASSERT_FALSE(context.ok());
  EXPECT_THAT(context.status().message(), HasSubstr("tls.certificate_file"));
}

TEST(TlsContextTest, RequiresBothFiles) {
  TlsSettings settings = ValidSettings();
  settings.certificate_file.clear();
  EXPECT_THAT(MakeServerTlsContext(settings).status().message(),
              HasSubstr("tls.certificate_file: not set"));
  settings = ValidSettings();
  settings.private_key_file.clear();
  EXPECT_THAT(MakeServerTlsContext(settings).status().message(),
              HasSubstr("tls.private_key_file: not set"));
}

}  // namespace
}  // namespace phigate::net
