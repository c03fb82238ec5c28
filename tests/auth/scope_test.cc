#include "auth/scope.h"

#include <gtest/gtest.h>

#include <string>

namespace phigate::auth {
namespace {

ScopeSet MustParse(std::string_view s) {
  Result<ScopeSet> r = ScopeSet::Parse(s);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : ScopeSet();
}

void ExpectInvalid(std::string_view s) {
  Result<ScopeSet> r = ScopeSet::Parse(s);
  ASSERT_FALSE(r.ok()) << "accepted: " << s;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

constexpr Interaction kAll[] = {
    Interaction::kRead,   Interaction::kVread,           Interaction::kUpdate,
    Interaction::kDelete, Interaction::kHistoryInstance, Interaction::kHistoryType,
    Interaction::kCreate, Interaction::kSearch,
};

// The interactions `s` allows on Patient, as a string of flags in kAll order.
std::string AllowedOnPatient(const ScopeSet& s) {
  std::string out;
  for (Interaction i : kAll) out += s.Allows("Patient", i) ? '1' : '0';
  return out;
}

TEST(ScopeSetTest, V2LettersMapToInteractions) {
  //                                   read vread upd del hinst htype create search
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.c")), "00000010");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.r")), "11001000");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.u")), "00100000");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.d")), "00010000");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.s")), "00000101");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.rs")), "11001101");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.cruds")), "11111111");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.cud")), "00110010");
}

TEST(ScopeSetTest, V1NamesMapToV2Equivalents) {
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.read")), "11001101");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.write")), "00110010");
  EXPECT_EQ(AllowedOnPatient(MustParse("system/Patient.*")), "11111111");
}

TEST(ScopeSetTest, WildcardTypeAppliesToEveryType) {
  ScopeSet s = MustParse("system/*.rs");
  EXPECT_TRUE(s.Allows("Observation", Interaction::kRead));
  EXPECT_TRUE(s.Allows("Patient", Interaction::kSearch));
  EXPECT_FALSE(s.Allows("Patient", Interaction::kCreate));
}

TEST(ScopeSetTest, TypeScopeDoesNotLeakToOtherTypes) {
  ScopeSet s = MustParse("system/Patient.cruds");
  EXPECT_FALSE(s.Allows("Observation", Interaction::kRead));
  EXPECT_FALSE(s.Allows("patient", Interaction::kRead));
  EXPECT_FALSE(s.Allows("*", Interaction::kRead));
}

TEST(ScopeSetTest, UnionOfScopes) {
  ScopeSet s = MustParse("system/Patient.r system/Observation.c system/*.s");
  EXPECT_TRUE(s.Allows("Patient", Interaction::kRead));
  EXPECT_TRUE(s.Allows("Patient", Interaction::kSearch));
  EXPECT_FALSE(s.Allows("Patient", Interaction::kCreate));
  EXPECT_TRUE(s.Allows("Observation", Interaction::kCreate));
  EXPECT_TRUE(s.Allows("Encounter", Interaction::kHistoryType));
  EXPECT_FALSE(s.Allows("Encounter", Interaction::kRead));
}

TEST(ScopeSetTest, LettersMustBeASubsetInCanonicalOrder) {
  // Decision: one permission set has one spelling (cruds order, no repeats).
  ExpectInvalid("system/Patient.sc");
  ExpectInvalid("system/Patient.sr");
  ExpectInvalid("system/Patient.rr");
  ExpectInvalid("system/Patient.crudss");
  ExpectInvalid("system/Patient.x");
  ExpectInvalid("system/Patient.R");
  ExpectInvalid("system/Patient.");
  ExpectInvalid("system/Patient.Read");
  ExpectInvalid("system/Patient.rs?category=laboratory");
}

TEST(ScopeSetTest, MalformedScopesAreRejected) {
  ExpectInvalid("");
  ExpectInvalid("system/Patient");
  ExpectInvalid("system/.rs");
  ExpectInvalid("system/patient.rs");  // type names start upper case
  ExpectInvalid("system/Pat1ent.rs");  // letters only
  ExpectInvalid("system/Pa_tient.rs");
  ExpectInvalid("system/**.rs");
  ExpectInvalid("system/" + std::string(65, 'A') + ".rs");    // too long a type name
  ExpectInvalid("system/Patient.rs  system/Observation.rs");  // two spaces
  ExpectInvalid(" system/Patient.rs");
  ExpectInvalid("system/Patient.rs ");
  ExpectInvalid("system/Patient.rs\tsystem/Observation.rs");
  ExpectInvalid("openid \"x\"");
  ExpectInvalid("openid a\\b");
  ExpectInvalid(std::string("system/Patient.rs \x01", 19));
  ExpectInvalid("system/Patient.rs \xc3\xa9");
}

TEST(ScopeSetTest, LongestValidTypeNameIsAccepted) {
  ScopeSet s = MustParse("system/A" + std::string(63, 'b') + ".r");
  EXPECT_TRUE(s.Allows("A" + std::string(63, 'b'), Interaction::kRead));
}

TEST(ScopeSetTest, SizeLimits) {
  std::string many;
  for (size_t i = 0; i <= kMaxScopeTokens; ++i) {
    if (i > 0) many += ' ';
    many += "t" + std::to_string(i);
  }
  ExpectInvalid(many);
  ExpectInvalid(std::string(kMaxScopeChars + 1, 'a'));
}

TEST(ScopeSetTest, UserAndPatientScopesParseWithTheirContext) {
  ScopeSet s = MustParse("patient/Observation.rs user/*.cruds system/Patient.r");
  EXPECT_TRUE(s.HasContext(ScopeContext::kPatient));
  EXPECT_TRUE(s.HasContext(ScopeContext::kUser));
  EXPECT_TRUE(s.HasContext(ScopeContext::kSystem));
  EXPECT_TRUE(s.AllowsIn(ScopeContext::kPatient, "Observation", Interaction::kSearch));
  EXPECT_FALSE(s.AllowsIn(ScopeContext::kPatient, "Observation", Interaction::kCreate));
  EXPECT_FALSE(s.AllowsIn(ScopeContext::kPatient, "Patient", Interaction::kRead));
  EXPECT_TRUE(s.AllowsIn(ScopeContext::kUser, "Encounter", Interaction::kDelete));
  EXPECT_TRUE(s.AllowsIn(ScopeContext::kSystem, "Patient", Interaction::kRead));
  EXPECT_FALSE(s.AllowsIn(ScopeContext::kSystem, "Patient", Interaction::kSearch));
  // Any context counts for Allows.
  EXPECT_TRUE(s.Allows("Encounter", Interaction::kCreate));
  ScopeSet v1 = MustParse("patient/*.read user/Observation.write");
  EXPECT_TRUE(v1.AllowsIn(ScopeContext::kPatient, "Condition", Interaction::kRead));
  EXPECT_TRUE(v1.AllowsIn(ScopeContext::kUser, "Observation", Interaction::kUpdate));
  EXPECT_FALSE(v1.HasContext(ScopeContext::kSystem));
}

TEST(ScopeSetTest, CoversNeverCrossesContexts) {
  ScopeSet user = MustParse("user/*.cruds openid");
  EXPECT_TRUE(user.Covers(MustParse("user/Patient.rs openid")));
  EXPECT_FALSE(user.Covers(MustParse("patient/Patient.rs")));
  EXPECT_FALSE(user.Covers(MustParse("system/Patient.rs")));
  EXPECT_FALSE(MustParse("system/*.cruds").Covers(MustParse("user/Patient.r")));
  EXPECT_TRUE(user.Contains("openid"));
  EXPECT_FALSE(user.Contains("user/*.cruds"));
  EXPECT_FALSE(user.Contains("fhirUser"));
}

TEST(ScopeSetTest, ErrorMessagesDoNotEchoTheInput) {
  Result<ScopeSet> r = ScopeSet::Parse("openid system/Secretish.zz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "scope 2 is malformed: invalid permissions");
}

TEST(ScopeSetTest, NonFhirScopesAreKeptButGrantNothing) {
  ScopeSet s = MustParse("openid fhirUser launch launch/patient offline_access");
  for (Interaction i : kAll) EXPECT_FALSE(s.Allows("Patient", i));
  EXPECT_FALSE(s.GrantsAnyInteraction());
  EXPECT_EQ(s.ToString(), "openid fhirUser launch launch/patient offline_access");
}

TEST(ScopeSetTest, ToStringKeepsOrderAndSpellingAndDropsDuplicates) {
  ScopeSet s = MustParse("system/Patient.read openid system/Patient.read system/*.cruds");
  EXPECT_EQ(s.ToString(), "system/Patient.read openid system/*.cruds");
}

TEST(ScopeSetTest, DefaultSetAllowsNothing) {
  ScopeSet s;
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.Allows("Patient", Interaction::kRead));
  EXPECT_EQ(s.ToString(), "");
}

TEST(ScopeSetTest, CoversSubsets) {
  ScopeSet registered = MustParse("system/Patient.cruds system/Observation.rs");
  EXPECT_TRUE(registered.Covers(MustParse("system/Patient.r")));
  EXPECT_TRUE(registered.Covers(MustParse("system/Patient.read system/Observation.s")));
  EXPECT_TRUE(registered.Covers(MustParse("system/Patient.*")));
  EXPECT_TRUE(registered.Covers(registered));
  EXPECT_TRUE(registered.Covers(ScopeSet()));
  EXPECT_FALSE(registered.Covers(MustParse("system/Observation.c")));
  EXPECT_FALSE(registered.Covers(MustParse("system/Observation.write")));
  EXPECT_FALSE(registered.Covers(MustParse("system/Encounter.r")));
  EXPECT_FALSE(registered.Covers(MustParse("system/*.r")));
}

TEST(ScopeSetTest, CoversUsesTheUnionOfGrants) {
  ScopeSet registered = MustParse("system/Patient.r system/*.s");
  EXPECT_TRUE(registered.Covers(MustParse("system/Patient.rs")));
  EXPECT_TRUE(registered.Covers(MustParse("system/*.s")));
  EXPECT_FALSE(registered.Covers(MustParse("system/*.rs")));
}

TEST(ScopeSetTest, WildcardCoversEveryType) {
  ScopeSet registered = MustParse("system/*.rs");
  EXPECT_TRUE(registered.Covers(MustParse("system/Encounter.r system/Patient.rs")));
  EXPECT_TRUE(registered.Covers(MustParse("system/*.read")));
  EXPECT_FALSE(registered.Covers(MustParse("system/Patient.u")));
}

TEST(ScopeSetTest, NonFhirScopesAreCoveredOnlyIfRegistered) {
  ScopeSet registered = MustParse("system/*.rs offline_access");
  EXPECT_TRUE(registered.Covers(MustParse("offline_access system/Patient.r")));
  EXPECT_FALSE(registered.Covers(MustParse("openid system/Patient.r")));
}

}  // namespace
}  // namespace phigate::auth
