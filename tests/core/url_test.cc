#include "core/url.h"

#include <gtest/gtest.h>

namespace phigate {
namespace {

TEST(UrlTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b+c", true).value(), "a b c");
  EXPECT_EQ(PercentDecode("a%20b+c", false).value(), "a b+c");
  EXPECT_EQ(PercentDecode("%2e%2E", false).value(), "..");
}

TEST(UrlTest, RejectsBadEscapesAndNul) {
  EXPECT_FALSE(PercentDecode("%", false).has_value());
  EXPECT_FALSE(PercentDecode("%4", false).has_value());
  EXPECT_FALSE(PercentDecode("%zz", false).has_value());
  EXPECT_FALSE(PercentDecode("a%00b", false).has_value());
}

TEST(UrlTest, ParseQueryKeepsOrderAndDecodes) {
  auto q = ParseQuery("a=1&b=x%20y&&c&a=2");
  ASSERT_TRUE(q.has_value());
  QueryParams expected{{"a", "1"}, {"b", "x y"}, {"c", ""}, {"a", "2"}};
  EXPECT_EQ(*q, expected);
  EXPECT_FALSE(ParseQuery("a=%ZZ").has_value());
}

TEST(UrlTest, PercentEncodeRoundTrip) {
  std::string s = "a b/c?d=é";
  EXPECT_EQ(PercentEncode("a b"), "a%20b");
  EXPECT_EQ(PercentDecode(PercentEncode(s), false).value(), s);
}

}  // namespace
}  // namespace phigate
