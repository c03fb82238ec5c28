#include "core/base64.h"

#include <gtest/gtest.h>

namespace phigate {
namespace {

// RFC 4648 §10 test vectors.
TEST(Base64Test, Rfc4648Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Decode("Zm9vYmE=").value(), "fooba");
  EXPECT_EQ(Base64Decode("Zg==").value(), "f");
}

TEST(Base64Test, UrlAlphabetWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
  EXPECT_EQ(Base64UrlDecode("-_8").value(), std::string("\xfb\xff", 2));
}

TEST(Base64Test, RejectsMalformed) {
  EXPECT_FALSE(Base64UrlDecode("a").has_value());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("ab+c").has_value());  // std alphabet char
  EXPECT_FALSE(Base64UrlDecode("Zg==").has_value());  // padding
  EXPECT_FALSE(Base64UrlDecode("Zh").has_value());    // non-canonical trailing bits
  EXPECT_FALSE(Base64Decode("Zm9").has_value());      // missing padding
}

TEST(Base64Test, Hex) { EXPECT_EQ(HexEncode(std::string("\x00\xab\x10", 3)), "00ab10"); }

}  // namespace
}  // namespace phigate
