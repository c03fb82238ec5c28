#include "policy/compartment.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/model.h"

namespace phigate::policy {
namespace {

boost::json::object Parse(std::string_view text) {
  boost::json::value value = boost::json::parse(text);
  EXPECT_TRUE(value.is_object());
  return value.is_object() ? value.as_object() : boost::json::object();
}

bool In(std::string_view type, std::string_view json, std::string_view patient) {
  return InPatientCompartment(type, Parse(json), patient);
}

TEST(PatientCompartmentTest, ObservationBySubjectMatchesExactIdOnly) {
  const std::string obs = R"({"resourceType":"Observation","id":"o1","status":"final",)"
                          R"("code":{"text":"x"},"subject":{"reference":"Patient/7"}})";
  EXPECT_TRUE(In("Observation", obs, "7"));
  EXPECT_FALSE(In("Observation", obs, "70"));
  EXPECT_FALSE(In("Observation", obs, "8"));
  EXPECT_FALSE(In("Observation", obs, ""));
  // The reverse prefix case: subject Patient/70 is not patient 7 (nor patient 0).
  const std::string obs70 =
      R"({"resourceType":"Observation","subject":{"reference":"Patient/70"}})";
  EXPECT_FALSE(In("Observation", obs70, "7"));
  EXPECT_FALSE(In("Observation", obs70, "0"));
  EXPECT_TRUE(In("Observation", obs70, "70"));
}

TEST(PatientCompartmentTest, ObservationByPerformerArray) {
  const std::string obs =
      R"({"resourceType":"Observation","subject":{"reference":"Group/g1"},)"
      R"("performer":[{"reference":"Practitioner/d1"},{"reference":"Patient/7"}]})";
  EXPECT_TRUE(In("Observation", obs, "7"));
  EXPECT_FALSE(In("Observation", obs, "d1"));  // a Practitioner id is not a patient
  EXPECT_FALSE(In("Observation", obs, "g1"));
}

TEST(PatientCompartmentTest, SubjectThatIsNotAPatientIsOutside) {
  EXPECT_FALSE(In("Observation", R"({"subject":{"reference":"Group/7"}})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":{"reference":"Device/7"}})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":{"reference":"XPatient/7"}})", "7"));
}

TEST(PatientCompartmentTest, EncounterBySubject) {
  const std::vector<std::string>* paths = PatientCompartmentPaths("Encounter");
  ASSERT_NE(paths, nullptr);
  EXPECT_EQ(*paths, std::vector<std::string>({"subject"}));
  EXPECT_TRUE(In("Encounter", R"({"subject":{"reference":"Patient/7"}})", "7"));
  // participant.individual is not a Patient compartment parameter of Encounter in R4.
  EXPECT_FALSE(
      In("Encounter", R"({"participant":[{"individual":{"reference":"Patient/7"}}]})", "7"));
}

TEST(PatientCompartmentTest, ConditionBySubjectAndAsserter) {
  const std::vector<std::string>* paths = PatientCompartmentPaths("Condition");
  ASSERT_NE(paths, nullptr);
  EXPECT_EQ(*paths, std::vector<std::string>({"subject", "asserter"}));
  EXPECT_TRUE(In("Condition", R"({"subject":{"reference":"Patient/7"}})", "7"));
  const std::string asserted =
      R"({"subject":{"reference":"Patient/8"},"asserter":{"reference":"Patient/7"}})";
  EXPECT_TRUE(In("Condition", asserted, "7"));
  EXPECT_TRUE(In("Condition", asserted, "8"));
  EXPECT_FALSE(In("Condition", asserted, "9"));
}

TEST(PatientCompartmentTest, AllergyIntoleranceByPatientRecorderAsserter) {
  const std::vector<std::string>* paths = PatientCompartmentPaths("AllergyIntolerance");
  ASSERT_NE(paths, nullptr);
  EXPECT_EQ(*paths, std::vector<std::string>({"patient", "recorder", "asserter"}));
  EXPECT_TRUE(In("AllergyIntolerance", R"({"patient":{"reference":"Patient/1"}})", "1"));
  EXPECT_TRUE(In("AllergyIntolerance", R"({"recorder":{"reference":"Patient/2"}})", "2"));
  EXPECT_TRUE(In("AllergyIntolerance", R"({"asserter":{"reference":"Patient/3"}})", "3"));
  EXPECT_FALSE(In("AllergyIntolerance", R"({"asserter":{"reference":"Patient/3"}})", "1"));
}

TEST(PatientCompartmentTest, TypesOutsideTheCompartment) {
  for (std::string_view type : {"Organization", "Practitioner", "Medication", "Location",
                                "StructureDefinition", "NoSuchType", ""}) {
    EXPECT_FALSE(HasPatientCompartment(type)) << type;
    EXPECT_EQ(PatientCompartmentPaths(type), nullptr) << type;
  }
  // Even a reference that looks like the patient does not bring them in.
  EXPECT_FALSE(In("Organization", R"({"id":"7","partOf":{"reference":"Patient/7"}})", "7"));
  EXPECT_FALSE(In("Practitioner", R"({"id":"7"})", "7"));
}

TEST(PatientCompartmentTest, PatientByIdAndByLink) {
  EXPECT_TRUE(HasPatientCompartment("Patient"));
  EXPECT_TRUE(In("Patient", R"({"resourceType":"Patient","id":"7"})", "7"));
  EXPECT_FALSE(In("Patient", R"({"resourceType":"Patient","id":"70"})", "7"));
  EXPECT_FALSE(In("Patient", R"({"resourceType":"Patient","id":7})", "7"));  // not a string
  EXPECT_FALSE(In("Patient", R"({"resourceType":"Patient"})", "7"));
  EXPECT_TRUE(In("Patient",
                 R"({"id":"8","link":[{"other":{"reference":"RelatedPerson/r"},"type":"seealso"},)"
                 R"({"other":{"reference":"Patient/7"},"type":"replaces"}]})",
                 "7"));
}

TEST(PatientCompartmentTest, ArraysAtEveryStep) {
  // CarePlan.activity[].detail.performer[]
  const std::string plan =
      R"({"subject":{"reference":"Patient/1"},"activity":[{"detail":{"performer":[]}},)"
      R"({"detail":{"performer":[{"reference":"Practitioner/p"},{"reference":"Patient/2"}]}}]})";
  EXPECT_TRUE(In("CarePlan", plan, "1"));
  EXPECT_TRUE(In("CarePlan", plan, "2"));
  EXPECT_FALSE(In("CarePlan", plan, "p"));
  // AuditEvent.agent[].who and AuditEvent.entity[].what
  const std::string audit =
      R"({"agent":[{"who":{"reference":"Practitioner/p"}},{"who":{"reference":"Patient/a"}}],)"
      R"("entity":[{"what":{"reference":"Patient/b"}}]})";
  EXPECT_TRUE(In("AuditEvent", audit, "a"));
  EXPECT_TRUE(In("AuditEvent", audit, "b"));
  EXPECT_FALSE(In("AuditEvent", audit, "p"));
}

TEST(PatientCompartmentTest, MalformedElementsAreIgnored) {
  EXPECT_FALSE(In("Observation", R"({"subject":"Patient/7"})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":{"reference":7}})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":[[{"reference":"Patient/8"}],null,1]})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":{"identifier":{"value":"7"}}})", "7"));
  EXPECT_FALSE(In("Observation", R"({"subject":{"reference":"#7"}})", "7"));
  EXPECT_FALSE(In("CarePlan", R"({"activity":{"detail":"x"}})", "7"));
}

TEST(PatientCompartmentTest, AbsoluteReferences) {
  EXPECT_TRUE(In("Observation",
                 R"({"subject":{"reference":"https://fhir.example.org/r4/Patient/7"}})", "7"));
  EXPECT_TRUE(IsReferenceToPatient("http://h/Patient/7", "7"));
  EXPECT_FALSE(IsReferenceToPatient("https://fhir.example.org/r4/Patient/70", "7"));
  EXPECT_FALSE(IsReferenceToPatient("https://fhir.example.org/r4/XPatient/7", "7"));
  EXPECT_FALSE(IsReferenceToPatient("https:///Patient/7", "7"));    // no host
  EXPECT_FALSE(IsReferenceToPatient("fhir/Patient/7", "7"));        // relative with a prefix
  EXPECT_FALSE(IsReferenceToPatient("urn:uuid:Patient/7", "7"));    // not scheme://
  EXPECT_FALSE(IsReferenceToPatient("https://h/Patient/7/", "7"));  // trailing slash
}

// Decision: a version-specific reference names the same patient (references.html#literal).
TEST(PatientCompartmentTest, VersionedReferenceCountsAsThePatient) {
  EXPECT_TRUE(In("Observation", R"({"subject":{"reference":"Patient/7/_history/2"}})", "7"));
  EXPECT_TRUE(IsReferenceToPatient("https://h/fhir/Patient/7/_history/2", "7"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/70/_history/2", "7"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/7/_history/", "7"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/7/_history/2/x", "7"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/7/x", "7"));
}

TEST(PatientCompartmentTest, IdsAreCaseSensitiveAndExact) {
  EXPECT_FALSE(IsReferenceToPatient("Patient/abc", "ABC"));
  EXPECT_FALSE(IsReferenceToPatient("patient/abc", "abc"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/", ""));
  EXPECT_FALSE(IsReferenceToPatient("Patient/7", ""));
  EXPECT_FALSE(IsReferenceToPatient("", "7"));
  EXPECT_TRUE(IsReferenceToPatient("Patient/a.b-C", "a.b-C"));
}

// An id is the last path segment (FHIR ids have no '/'), so no id with a '/' can match.
TEST(PatientCompartmentTest, IdWithASlashMatchesNothing) {
  EXPECT_FALSE(IsReferenceToPatient("Patient/x/Patient/7", "x/Patient/7"));
  EXPECT_FALSE(IsReferenceToPatient("Patient/x/Patient/7", "7"));  // relative with a prefix
}

std::vector<std::string> Referenced(std::string_view type, std::string_view json) {
  return ReferencedPatients(type, Parse(json));
}

TEST(ReferencedPatientsTest, PatientOwnIdThenLinkedPatients) {
  EXPECT_EQ(Referenced("Patient", R"({"resourceType":"Patient","id":"7"})"),
            std::vector<std::string>{"7"});
  EXPECT_EQ(Referenced("Patient", R"({"resourceType":"Patient","id":"7","link":[)"
                                  R"({"other":{"reference":"Patient/8"},"type":"seealso"},)"
                                  R"({"other":{"reference":"RelatedPerson/r"},"type":"seealso"},)"
                                  R"({"other":{"reference":"Patient/7"},"type":"seealso"}]})"),
            (std::vector<std::string>{"7", "8"}));
  EXPECT_TRUE(Referenced("Patient", R"({"resourceType":"Patient","id":7})").empty());
}

TEST(ReferencedPatientsTest, EveryPathInOrderDeduplicated) {
  EXPECT_EQ(
      Referenced("AllergyIntolerance",
                 R"({"asserter":{"reference":"Patient/3"},"patient":{"reference":"Patient/1"},)"
                 R"("recorder":{"reference":"https://h/fhir/Patient/1/_history/4"}})"),
      (std::vector<std::string>{"1", "3"}));  // path order: patient, recorder, asserter
  EXPECT_EQ(
      Referenced("CarePlan",
                 R"({"subject":{"reference":"Patient/1"},"activity":[{"detail":{"performer":[)"
                 R"({"reference":"Patient/2"},{"reference":"Patient/1"}]}}]})"),
      (std::vector<std::string>{"1", "2"}));
}

TEST(ReferencedPatientsTest, OnlyWhatInPatientCompartmentAccepts) {
  const std::string_view json =
      R"({"subject":{"reference":"Patient/"},"performer":[{"reference":"fhir/Patient/1"},)"
      R"({"reference":"urn:uuid:Patient/2"},{"reference":"#p3"},{"reference":"Patient/4/x"},)"
      R"({"identifier":{"value":"5"}},{"reference":"Group/6"},{"reference":"Patient/7/_history/"}]})";
  EXPECT_TRUE(Referenced("Observation", json).empty());
  EXPECT_TRUE(Referenced("Organization", R"({"partOf":{"reference":"Patient/7"}})").empty());
}

// Every member type of the generated table is a resource type of the R4 model, has at least
// one path, and every path walks real elements of that type to an element typed Reference.
// Catches a generator that mangles an expression (or an upstream rename) at test time.
TEST(PatientCompartmentTest, TableMatchesTheR4Model) {
  const fhir::Model& model = fhir::Model::R4();
  ASSERT_GE(internal::kPatientCompartmentRowCount, 60u);
  std::string_view previous;
  for (std::size_t i = 0; i < internal::kPatientCompartmentRowCount; ++i) {
    const internal::PatientCompartmentRow& row = internal::kPatientCompartmentRows[i];
    EXPECT_LT(previous, row.type) << "rows sorted and unique";
    previous = row.type;
    EXPECT_FALSE(row.params.empty()) << row.type;
    ASSERT_TRUE(model.IsResourceType(row.type)) << row.type;
    EXPECT_TRUE(HasPatientCompartment(row.type)) << row.type;
    const std::vector<std::string>* paths = PatientCompartmentPaths(row.type);
    ASSERT_NE(paths, nullptr) << row.type;
    // The 4.0.1 definitions reduce fully (the generated header lists no unsupported part).
    EXPECT_FALSE(paths->empty()) << row.type;
    for (const std::string& path : *paths) {
      const fhir::ElementSet* elements = &model.FindResourceType(row.type)->elements;
      const fhir::ElementDef* element = nullptr;
      std::string_view rest = path;
      while (true) {
        const std::size_t dot = rest.find('.');
        element = elements->FindElement(rest.substr(0, dot));
        ASSERT_NE(element, nullptr) << row.type << "." << path;
        ASSERT_FALSE(element->types.empty() && element->children == nullptr)
            << row.type << "." << path;
        if (dot == std::string_view::npos) break;
        rest.remove_prefix(dot + 1);
        elements =
            element->children != nullptr ? element->children : &element->types[0].type->elements;
      }
      ASSERT_EQ(element->types.size(), 1u) << row.type << "." << path;
      EXPECT_EQ(element->types[0].type->name, "Reference") << row.type << "." << path;
    }
  }
  EXPECT_EQ(*PatientCompartmentPaths("Appointment"),
            std::vector<std::string>({"participant.actor"}));
  EXPECT_EQ(*PatientCompartmentPaths("Patient"), std::vector<std::string>({"link.other"}));
}

}  // namespace
}  // namespace phigate::policy
