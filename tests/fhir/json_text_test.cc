#include "fhir/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace phigate::fhir {
namespace {

TEST(JsonTextTest, TopLevelMembersAreRawSlicesInOrder) {
  const std::string text = R"( { "a" : 1.50 , "b\u0063":{"x":"}\"{"},"d":[1, [2]] ,"e":null} )";
  auto members = TopLevelMembers(text);
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].key, "a");
  EXPECT_EQ(members[0].value, "1.50");
  EXPECT_EQ(members[1].key, "bc");  // escaped name decoded
  EXPECT_EQ(members[1].value, R"({"x":"}\"{"})");
  EXPECT_EQ(members[2].key, "d");
  EXPECT_EQ(members[2].value, "[1, [2]]");
  EXPECT_EQ(members[3].value, "null");
}

TEST(JsonTextTest, NotAnObjectYieldsNothing) {
  EXPECT_TRUE(TopLevelMembers("[1,2]").empty());
  EXPECT_TRUE(TopLevelMembers("").empty());
  EXPECT_TRUE(TopLevelMembers("{}").empty());
}

TEST(JsonTextTest, ScanReportsWhetherTheWholeObjectWasUnderstood) {
  std::vector<RawMember> members;
  EXPECT_TRUE(ScanTopLevelMembers(R"( {"a":1, "b":{"c":[1,"]"]}} )", members));
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(members[1].value, R"({"c":[1,"]"]})");
  EXPECT_TRUE(ScanTopLevelMembers("{}", members));
  EXPECT_TRUE(members.empty());
  for (std::string_view bad : {R"({"a":1} x)", R"({"a":1,})", R"({"a":1 "b":2})", R"({"a":})",
                               R"({"a" 1})", R"({"a":1)", "[1]", "", R"({"a":{"b":1})"}) {
    EXPECT_FALSE(ScanTopLevelMembers(bad, members)) << bad;
  }
}

TEST(JsonTextTest, MinifyKeepsStringsIntact) {
  std::string out;
  AppendMinified(out, "{ \"a b\" :\t[ 1 ,\n\"x \\\" y\" ] }");
  EXPECT_EQ(out, R"({"a b":[1,"x \" y"]})");
  EXPECT_EQ(boost::json::parse(out), boost::json::parse("{ \"a b\" :[1, \"x \\\" y\"]}"));
}

}  // namespace
}  // namespace phigate::fhir
