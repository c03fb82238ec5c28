#include <gtest/gtest.h>

#include <set>

#include "core/base64.h"
#include "crypto/crypto.h"

namespace phigate::crypto {
namespace {

TEST(RandomTest, BytesHaveRequestedLength) {
  EXPECT_EQ(RandomBytes(0).size(), 0u);
  EXPECT_EQ(RandomBytes(1).size(), 1u);
  EXPECT_EQ(RandomBytes(4096).size(), 4096u);
}

TEST(RandomTest, OutputsDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) seen.insert(RandomBytes(16));
  EXPECT_EQ(seen.size(), 100u);
}

TEST(RandomTest, TokenIsUnpaddedBase64UrlOfRequestedBytes) {
  std::string token = RandomToken(32);
  EXPECT_EQ(token.size(), 43u);
  std::optional<std::string> decoded = Base64UrlDecode(token);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->size(), 32u);
}

}  // namespace
}  // namespace phigate::crypto
