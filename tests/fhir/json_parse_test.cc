#include "fhir/json_parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>

namespace phigate::fhir {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Nested(int depth, std::string_view open, std::string_view close) {
  std::string out;
  for (int i = 0; i < depth; ++i) out += open;
  for (int i = 0; i < depth; ++i) out += close;
  return out;
}

void ExpectError(std::string_view text, std::string_view message, int max_depth = 64) {
  const auto parsed = ParseJson(text, max_depth);
  ASSERT_FALSE(parsed.ok()) << text;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), message) << text;
  EXPECT_EQ(parsed.status().expression(), "");
}

TEST(ParseJsonTest, ParsesDocuments) {
  const auto parsed = ParseJson(R"( {"resourceType": "Patient", "name": [{"given": ["A", null]}],
                                     "n": -1.5e3, "i": 7, "u": 18446744073709551615, "b": true} )",
                                64);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  const json::object& o = parsed->as_object();
  EXPECT_EQ(o.at("resourceType"), "Patient");
  EXPECT_TRUE(parsed->at_pointer("/name/0/given/1").is_null());
  EXPECT_EQ(o.at("n").as_double(), -1500.0);
  EXPECT_EQ(o.at("i").as_int64(), 7);
  EXPECT_EQ(o.at("u").as_uint64(), 18446744073709551615ULL);
  EXPECT_TRUE(o.at("b").as_bool());
  // Order is preserved: the validator reports the first problem in document order.
  EXPECT_EQ(o.begin()->key(), "resourceType");
  EXPECT_TRUE(ParseJson("[]", 64).ok());
  EXPECT_TRUE(ParseJson("\"x\"", 64).ok());
  EXPECT_TRUE(ParseJson("{\"a\":\"\\u00e9\\ud83d\\ude00\"}", 64).ok());
}

TEST(ParseJsonTest, RejectsMalformedInput) {
  for (std::string_view text :
       {"",     " ",          "{",         "}",          "{\"a\":}",   "{\"a\" 1}",
        "[1,]", "{\"a\":1,}", "{} {}",     "{} x",       "{/* c */}",  "// c\n{}",
        "'a'",  "{a:1}",      "[01]",      "[1.]",       "[NaN]",      "[Infinity]",
        "nul",  "[\"\x01\"]", "[\"\\x\"]", "[\"\xff\"]", "[\"\xc3\"]", "[\"\\ud800\"]"}) {
    ExpectError(text, "malformed JSON");
  }
}

TEST(ParseJsonTest, ErrorsNeverEchoTheInput) {
  const auto parsed = ParseJson(R"({"ssn": "123-45-6789", "name": Jane})", 64);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), Not(HasSubstr("123-45-6789")));
  EXPECT_THAT(parsed.status().message(), Not(HasSubstr("Jane")));
  EXPECT_EQ(parsed.status().message(), "malformed JSON");
}

TEST(ParseJsonTest, EnforcesMaximumDepth) {
  EXPECT_TRUE(ParseJson(Nested(64, "[", "]"), 64).ok());
  ExpectError(Nested(65, "[", "]"), "JSON nested too deeply");
  EXPECT_TRUE(ParseJson(Nested(64, "{\"a\":", "}").replace(64 * 5, 0, "1"), 64).ok());
  ExpectError(Nested(65, "{\"a\":", "}").replace(65 * 5, 0, "1"), "JSON nested too deeply");
  // Deep input stays an error, never a crash.
  ExpectError(Nested(100000, "[", "]"), "JSON nested too deeply");
  ExpectError(Nested(2, "[", "]"), "JSON nested too deeply", 1);
  EXPECT_TRUE(ParseJson("[]", 1).ok());
}

TEST(ParseJsonTest, RejectsDuplicateProperties) {
  ExpectError(R"({"a": 1, "a": 2})", "duplicate JSON property");
  ExpectError(R"({"resourceType": "Patient", "id": "1", "resourceType": "Observation"})",
              "duplicate JSON property");
  ExpectError(R"({"x": [{"b": 1, "c": 2, "b": 3}]})", "duplicate JSON property");
  // Equal after unescaping.
  ExpectError(R"({"a": 1, "\u0061": 2})", "duplicate JSON property");
  // The message does not name the key.
  const auto parsed = ParseJson(R"({"secretKey": 1, "secretKey": 2})", 64);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), Not(HasSubstr("secretKey")));

  // Long keys with escapes reach the parser's handler in several parts.
  std::string long_key;
  for (int i = 0; i < 5000; ++i) long_key += "\\u0061";
  ExpectError("{\"" + long_key + "\": 1, \"" + long_key + "\": 2}", "duplicate JSON property");
  const auto distinct = ParseJson("{\"" + long_key + "\": 1, \"" + long_key + "b\": 2}", 64);
  ASSERT_TRUE(distinct.ok());
  EXPECT_TRUE(distinct->as_object().contains(std::string(5000, 'a') + "b"));

  // The same name in different objects, or nested, is fine.
  EXPECT_TRUE(ParseJson(R"([{"a": 1}, {"a": 1}])", 64).ok());
  EXPECT_TRUE(ParseJson(R"({"a": {"a": {"a": 1}}, "b": {"a": 2}})", 64).ok());
}

TEST(ParseJsonTest, DuplicateCheckScalesToManyKeys) {
  std::string text = "{";
  for (int i = 0; i < 20000; ++i)
    text += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  std::string ok = text;
  ok.back() = '}';
  const auto parsed = ParseJson(ok, 64);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->as_object().size(), 20000u);
  ExpectError(text + "\"k19999\":0}", "duplicate JSON property");
}

TEST(ParseJsonTest, RejectsNumbersBeyondDoubleRange) {
  // Boost.JSON would yield an infinity, which cannot be written back as JSON.
  ExpectError("[1e400]", "JSON number out of range");
  ExpectError(R"({"valueDecimal": -1e400})", "JSON number out of range");
  // Underflow to zero and integers beyond 64 bits (as doubles) are representable.
  EXPECT_TRUE(ParseJson("[1e-400]", 64).ok());
  const auto big = ParseJson("[123456789012345678901234567890]", 64);
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(big->as_array()[0].is_double());
}

}  // namespace
}  // namespace phigate::fhir

namespace phigate::fhir {
namespace {

// Regression (found by the fhir_json fuzz target): Boost.JSON 1.81 converted the same
// number text to different doubles depending on the bytes that followed it.
TEST(JsonParseRegressionTest, NumbersAreCorrectlyRoundedWhateverFollows) {
  auto a = ParseJson(R"({"v":-922.35074429474192E3,"y":-92E5			})", 64);
  auto b = ParseJson(R"({"v":-922.35074429474192E3,"y":-92E5})", 64);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->at("v").as_double(), -922350.74429474192);
  EXPECT_EQ(a->at("v").as_double(), b->at("v").as_double());
  auto max = ParseJson(R"({"v":1.7976931348623157e308})", 64);
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(max->at("v").as_double(), 1.7976931348623157e308);
  EXPECT_EQ(ParseJson(R"({"v":1e400})", 64).status().message(), "JSON number out of range");
}

}  // namespace
}  // namespace phigate::fhir
