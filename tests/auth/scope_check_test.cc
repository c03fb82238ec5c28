#include "auth/scope_check.h"

#include <gtest/gtest.h>

namespace phigate::auth {
namespace {

Principal With(std::string_view scope, std::string_view patient = "") {
  Principal p;
  p.kind = PrincipalKind::kPerson;
  p.scopes = std::move(ScopeSet::Parse(scope)).value();
  p.patient = std::string(patient);
  return p;
}

void ExpectDenied(const Status& s, std::string_view message) {
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), message);
}

constexpr std::string_view kScopeDenied =
    "the access token's scope does not permit this interaction";
constexpr std::string_view kPatientOnly =
    "patient/ scopes reach only the patient's own Patient resource until patient compartments "
    "are supported";

TEST(CheckScopesTest, SystemAndUserScopesGrantWhatTheySay) {
  EXPECT_TRUE(CheckScopes(With("system/Patient.rs"), "Patient", "1", Interaction::kRead).ok());
  ExpectDenied(CheckScopes(With("system/Patient.rs"), "Patient", "1", Interaction::kUpdate),
               kScopeDenied);
  EXPECT_TRUE(CheckScopes(With("user/*.cruds"), "Observation", "", Interaction::kCreate).ok());
  ExpectDenied(CheckScopes(With("user/Observation.r"), "Condition", "1", Interaction::kRead),
               kScopeDenied);
  ExpectDenied(CheckScopes(With("openid fhirUser"), "Patient", "1", Interaction::kRead),
               kScopeDenied);
}

// Regression: a patient/ scope used to act as access to every patient's records.
TEST(CheckScopesTest, PatientScopesReachOnlyTheOwnPatientResource) {
  const Principal p = With("patient/*.rs", "7");
  EXPECT_TRUE(CheckScopes(p, "Patient", "7", Interaction::kRead).ok());
  EXPECT_TRUE(CheckScopes(p, "Patient", "7", Interaction::kVread).ok());
  EXPECT_TRUE(CheckScopes(p, "Patient", "7", Interaction::kHistoryInstance).ok());
  ExpectDenied(CheckScopes(p, "Patient", "8", Interaction::kRead), kPatientOnly);
  ExpectDenied(CheckScopes(p, "Observation", "1", Interaction::kRead), kPatientOnly);
  ExpectDenied(CheckScopes(p, "Patient", "", Interaction::kSearch), kPatientOnly);
  ExpectDenied(CheckScopes(With("patient/*.rs"), "Patient", "7", Interaction::kRead),
               kPatientOnly);  // no patient context at all
  // A patient/ scope that does not even grant the interaction is a plain scope denial.
  ExpectDenied(CheckScopes(p, "Patient", "7", Interaction::kDelete), kScopeDenied);
  // user/ scopes next to patient/ ones keep their own reach.
  EXPECT_TRUE(CheckScopes(With("patient/*.rs user/Observation.rs", "7"), "Observation", "1",
                          Interaction::kRead)
                  .ok());
}

}  // namespace
}  // namespace phigate::auth
