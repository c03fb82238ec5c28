#include "fhir/primitive_types.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> (std::function in
// the compiled NFA) when optimizing with sanitizers; std::regex appears only in this test.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>

#include <functional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/model.h"

namespace phigate::fhir {
namespace {

struct Case {
  std::string_view type;                        // R4 primitive type name
  std::function<bool(std::string_view)> check;  // the hand-written checker
  std::vector<std::string_view> valid;
  std::vector<std::string_view> invalid;
};

// Each sample is checked against the hand-written checker and against the R4 pattern (via
// std::regex, acceptable here: short, trusted test input). Where phigate is deliberately
// stricter than the pattern (calendar dates, control characters), the samples are in
// StricterThanThePattern below instead.
std::vector<Case> Cases() {
  return {
      {"id",
       MatchesId,
       {"a", "pat-1", "A.b-9",
        std::string_view("0123456789012345678901234567890123456789012345678901234567890123")},
       {"", "a b", "a_b", "a/b", "é",
        "01234567890123456789012345678901234567890123456789012345678901234"}},
      {"code",
       MatchesCode,
       {"final", "mm[Hg]", "a b", "text/plain", "a\tb"},
       {"final ", " final", "a  b", "a \tb"}},
      {"uri",
       MatchesUri,
       {"http://x.org/a?b=c#d", "urn:uuid:1", "Patient/1", "é"},
       {"http://x .org", "a\tb", "a\nb"}},
      {"oid",
       MatchesOid,
       {"urn:oid:1.2.3", "urn:oid:2.16.840.1.113883", "urn:oid:0.0"},
       {"urn:oid:1", "urn:oid:3.1", "urn:oid:1.02", "urn:oid:1.", "urn:oid:.1", "1.2.3",
        "urn:oid:1.2.3 "}},
      {"uuid",
       MatchesUuid,
       {"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
       {"urn:uuid:61EBE359-BFDC-4613-8BF2-C5E300945F0A", "61ebe359-bfdc-4613-8bf2-c5e300945f0a",
        "urn:uuid:61ebe359bfdc-4613-8bf2-c5e300945f0a",
        "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0",
        "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0ab",
        "urn:uuid:g1ebe359-bfdc-4613-8bf2-c5e300945f0a"}},
      {"date",
       MatchesDate,
       {"2024", "2024-02", "2024-02-29", "0001-01-01", "1974-12-31"},
       {"0000", "24", "2024-2", "2024-13", "2024-00", "2024-01-32", "2024-01-00",
        "2024-01-01T00:00:00Z", "2024/01/01", "20240101", " 2024"}},
      {"dateTime",
       MatchesDateTime,
       {"2024", "2024-02", "2024-02-29", "2015-02-07T13:28:17-05:00",
        "2015-02-07T13:28:17.239+14:00", "2015-02-07T23:59:60Z", "2015-02-07T00:00:00.1+13:59"},
       {"2015-02-07T13:28:17", "2015-02-07T13:28Z", "2015-02-07T24:00:00Z",
        "2015-02-07T13:28:17+14:01", "2015-02-07T13:28:17+15:00", "2015-02-07T13:28:17.Z",
        "2015-02T13:28:17Z", "2015-02-07 13:28:17Z", "2015-02-07T13:28:17z",
        "2015-02-07T13:28:17+0500"}},
      {"instant",
       MatchesInstant,
       {"2015-02-07T13:28:17.239+02:00", "2017-01-01T00:00:00Z"},
       {"2015-02-07", "2015-02-07T13:28:17", "2015", "2015-02-07T13:28Z"}},
      {"time",
       MatchesTime,
       {"00:00:00", "23:59:60", "12:30:00.5"},
       {"24:00:00", "12:60:00", "12:00", "12:00:00Z", "1:00:00", "12:00:00."}},
      {"base64Binary",
       MatchesBase64Binary,
       {"aGVsbG8=", "aGVs bG8=", " aGVs\nbG8= ", "////", "===="},
       {"abc", "aG Vs", "aGVs*G8=", "aGVsbG8=a", "aGVsbG8-"}},
      {"decimal",
       MatchesDecimalText,
       {"0", "-0", "1.5", "-1.50", "1e10", "1.5E-3", "100"},
       {"01", "1.", ".5", "+1", "1e", "1e+", "--1", "0x1", "1,5", ""}},
      {"integer",
       MatchesIntegerText,
       {"0", "-1", "2147483647", "-2147483648", "-0"},
       {"01", "+1", "1.0", "", "-"}},
      {"positiveInt", MatchesPositiveIntText, {"1", "2147483647"}, {"0", "01", "-1", "", "1.0"}},
      {"unsignedInt", MatchesUnsignedIntText, {"0", "1", "2147483647"}, {"00", "-1", "", "+1"}},
      {"string", MatchesString, {"a", " a ", "line\nbreak\r\n", "é", "\tx"}, {"", "\v", "\f"}},
      {"markdown", MatchesString, {"# title\n\n* item", "x"}, {""}},
  };
}

TEST(PrimitiveTypesTest, CheckersAgreeWithThePublishedPatterns) {
  const Model& model = Model::R4();
  for (const Case& c : Cases()) {
    const TypeDef* type = model.FindType(c.type);
    ASSERT_NE(type, nullptr) << c.type;
    ASSERT_FALSE(type->regex.empty()) << c.type;
    const std::regex pattern(type->regex, std::regex::ECMAScript);
    for (std::string_view s : c.valid) {
      EXPECT_TRUE(c.check(s)) << c.type << " should accept '" << s << "'";
      EXPECT_TRUE(std::regex_match(s.begin(), s.end(), pattern))
          << c.type << " pattern rejects '" << s << "'";
    }
    for (std::string_view s : c.invalid) {
      EXPECT_FALSE(c.check(s)) << c.type << " should reject '" << s << "'";
      EXPECT_FALSE(std::regex_match(s.begin(), s.end(), pattern))
          << c.type << " pattern accepts '" << s << "'";
    }
  }
}

// The published patterns cannot express these; the spec text requires them.
TEST(PrimitiveTypesTest, StricterThanThePattern) {
  EXPECT_FALSE(MatchesDate("2023-02-29"));  // not a leap year
  EXPECT_TRUE(MatchesDate("2000-02-29"));   // divisible by 400
  EXPECT_FALSE(MatchesDate("1900-02-29"));  // divisible by 100
  EXPECT_FALSE(MatchesDate("2024-04-31"));
  EXPECT_FALSE(MatchesDateTime("2024-06-31T00:00:00Z"));
  EXPECT_FALSE(MatchesInstant("2024-02-30T00:00:00Z"));
  // Controls other than TAB/LF/CR (datatypes.html#string: SHOULD NOT), and whitespace only.
  EXPECT_FALSE(MatchesString(std::string_view("a\0b", 3)));
  EXPECT_FALSE(MatchesString("a\x1b[31m"));
  EXPECT_FALSE(MatchesString(" \t\r\n"));
  EXPECT_FALSE(MatchesCode("a\x01"));
  EXPECT_FALSE(MatchesUri(""));  // `\S*` matches the empty string; JSON forbids it
  EXPECT_FALSE(MatchesUri("a\x7f"));
  EXPECT_FALSE(MatchesIntegerText("2147483648"));
  EXPECT_FALSE(MatchesIntegerText("-2147483649"));
  EXPECT_FALSE(MatchesIntegerText("99999999999999999999"));
  EXPECT_FALSE(MatchesPositiveIntText("2147483648"));
  EXPECT_FALSE(MatchesUnsignedIntText("4294967296"));
}

TEST(PrimitiveTypesTest, Xhtml) {
  EXPECT_TRUE(MatchesXhtml("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"));
  EXPECT_TRUE(MatchesXhtml("<div>x</div>\n"));
  EXPECT_TRUE(MatchesXhtml("<div\n>x</div>"));
  EXPECT_FALSE(MatchesXhtml("<div>x"));
  EXPECT_FALSE(MatchesXhtml("<divx>x</divx>"));
  EXPECT_FALSE(MatchesXhtml("<p>x</p>"));
  EXPECT_FALSE(MatchesXhtml(" <div>x</div>"));
  EXPECT_FALSE(MatchesXhtml("<div"));
  EXPECT_FALSE(MatchesXhtml("<div</div>"));
}

// Hand-written because std::regex recurses per character: these must stay flat on input
// far longer than any stack could hold frames for.
TEST(PrimitiveTypesTest, LongInputsAreHandledWithoutRecursion) {
  const std::string long_text(8 * 1024 * 1024, 'a');
  EXPECT_TRUE(MatchesString(long_text));
  EXPECT_TRUE(MatchesCode(long_text));
  EXPECT_TRUE(MatchesUri(long_text));
  EXPECT_TRUE(MatchesBase64Binary(long_text));
  EXPECT_FALSE(MatchesId(long_text));
  EXPECT_FALSE(MatchesDateTime(long_text));
  std::string oid = "urn:oid:1";
  for (int i = 0; i < 100000; ++i) oid += ".1";
  EXPECT_TRUE(MatchesOid(oid));
  EXPECT_FALSE(MatchesDecimalText(std::string(100000, '1') + "."));
}

TEST(PrimitiveTypesTest, CodePointCount) {
  EXPECT_EQ(CodePointCount(""), 0u);
  EXPECT_EQ(CodePointCount("abc"), 3u);
  EXPECT_EQ(CodePointCount("\xc3\xa9"), 1u);           // é
  EXPECT_EQ(CodePointCount("\xf0\x9f\x98\x80x"), 2u);  // 😀x
}

TEST(PrimitiveTypesTest, PrimitiveKindFromName) {
  EXPECT_EQ(PrimitiveKindFromName("dateTime"), PrimitiveKind::kDateTime);
  EXPECT_EQ(PrimitiveKindFromName("xhtml"), PrimitiveKind::kXhtml);
  EXPECT_EQ(PrimitiveKindFromName("Datetime"), std::nullopt);
  EXPECT_EQ(PrimitiveKindFromName("HumanName"), std::nullopt);
}

}  // namespace
}  // namespace phigate::fhir
