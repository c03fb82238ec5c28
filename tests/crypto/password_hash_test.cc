#include "crypto/password_hash.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace phigate::crypto {
namespace {

using ::testing::StartsWith;

TEST(PasswordHashTest, VerifiesTheRightSecretOnly) {
  Result<std::string> hash = HashPassword("correct horse battery staple");
  ASSERT_TRUE(hash.ok()) << hash.status().message();
  EXPECT_THAT(*hash, StartsWith("$argon2id$v=19$m=19456,t=2,p=1$"));
  EXPECT_TRUE(VerifyPassword(*hash, "correct horse battery staple"));
  EXPECT_FALSE(VerifyPassword(*hash, "correct horse battery stapler"));
  EXPECT_FALSE(VerifyPassword(*hash, ""));
}

TEST(PasswordHashTest, SaltMakesEveryHashDifferent) {
  Result<std::string> a = HashPassword("secret"), b = HashPassword("secret");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
}

TEST(PasswordHashTest, MalformedHashIsRefused) {
  EXPECT_FALSE(VerifyPassword("", "secret"));
  EXPECT_FALSE(VerifyPassword("$argon2id$v=19$m=19456,t=2,p=1$garbage", "secret"));
  EXPECT_FALSE(VerifyPassword("plaintext-secret", "plaintext-secret"));
  Result<std::string> hash = HashPassword("secret");
  ASSERT_TRUE(hash.ok());
  std::string argon2i = *hash;
  argon2i.replace(0, 9, "$argon2i");  // same bytes labelled as another variant
  EXPECT_FALSE(VerifyPassword(argon2i, "secret"));
  EXPECT_FALSE(VerifyPassword(*hash + std::string(1, '\0'), "secret"));
}

}  // namespace
}  // namespace phigate::crypto
