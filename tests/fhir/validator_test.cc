#include "fhir/validator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "fhir/json_parse.h"
#include "fhir/model.h"

namespace phigate::fhir {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

// Realistic instances (shaped after the R4 examples), each valid as written. Bad cases are
// made by changing one thing in a copy.
constexpr std::string_view kPatient = R"({
  "resourceType": "Patient",
  "id": "pat-1",
  "meta": {"versionId": "3", "lastUpdated": "2024-01-02T03:04:05.123Z",
           "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
  "text": {"status": "generated",
           "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Peter Chalmers</div>"},
  "extension": [
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
     "valueCode": "M"},
    {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
     "extension": [
       {"url": "ombCategory",
        "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3",
                        "display": "White"}},
       {"url": "text", "valueString": "White"}]}],
  "identifier": [{"use": "usual",
                  "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                       "code": "MR"}]},
                  "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345",
                  "period": {"start": "2001-05-06"}, "assigner": {"display": "Acme Healthcare"}}],
  "active": true,
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
           {"use": "usual", "given": ["Jim"]}],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work", "rank": 1}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "address": [{"use": "home", "type": "both", "line": ["534 Erewhon St"],
               "city": "PleasantVille", "district": "Rainbow", "state": "Vic",
               "postalCode": "3999", "period": {"start": "1974-12-25"}}],
  "maritalStatus": {"text": "married"},
  "multipleBirthInteger": 1,
  "contact": [{"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                              "code": "N"}]}],
               "name": {"family": "du Marché", "given": ["Bénédicte"]},
               "gender": "female", "period": {"start": "2012"}}],
  "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-AU"}]},
                     "preferred": true}],
  "managingOrganization": {"reference": "Organization/1"}
})";

constexpr std::string_view kObservation = R"({
  "resourceType": "Observation",
  "id": "blood-pressure",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs", "display": "Vital Signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}],
           "text": "Blood pressure systolic & diastolic"},
  "subject": {"reference": "Patient/example"},
  "effectiveDateTime": "2012-09-17",
  "issued": "2012-09-17T15:45:00.000+02:00",
  "performer": [{"reference": "Practitioner/example"}],
  "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                                  "code": "L"}]}],
  "note": [{"text": "Taken sitting"}],
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
     "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                       "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
     "valueQuantity": {"value": 60.5, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                       "code": "mm[Hg]"},
     "referenceRange": [{"low": {"value": 60, "unit": "mmHg"}}]}],
  "referenceRange": [{"low": {"value": 3.1, "unit": "mmol/L"}, "high": {"value": 6.2}}],
  "valueQuantity": {"value": 6.3, "comparator": "<", "unit": "mmol/l"}
})";

constexpr std::string_view kEncounter = R"({
  "resourceType": "Encounter",
  "id": "f201",
  "status": "finished",
  "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
  "type": [{"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]}],
  "priority": {"coding": [{"system": "http://snomed.info/sct", "code": "17621005"}]},
  "subject": {"reference": "Patient/f201", "display": "Roel"},
  "participant": [{"individual": {"reference": "Practitioner/f201"},
                   "period": {"start": "2014-01-10T09:00:00+01:00",
                              "end": "2014-01-10T09:30:00+01:00"}}],
  "period": {"start": "2014-01-10T09:00:00+01:00"},
  "length": {"value": 30, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
  "reasonCode": [{"text": "Routine follow-up"}],
  "hospitalization": {"admitSource": {"text": "Referral"}, "reAdmission": {"text": "no"}},
  "location": [{"location": {"reference": "Location/1"}, "status": "completed"}],
  "serviceProvider": {"reference": "Organization/f201"}
})";

constexpr std::string_view kCondition = R"({
  "resourceType": "Condition",
  "id": "example",
  "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                 "code": "active"}]},
  "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                     "code": "confirmed"}]},
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "encounter-diagnosis"}]}],
  "severity": {"coding": [{"system": "http://snomed.info/sct", "code": "24484000"}]},
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "39065001"}],
           "text": "Burnt Ear"},
  "bodySite": [{"text": "Left external ear"}],
  "subject": {"reference": "Patient/example"},
  "onsetAge": {"value": 52, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
  "abatementString": "in remission",
  "recordedDate": "2012-05-24",
  "note": [{"authorString": "Dr. Adams", "time": "2012-05-24T10:00:00Z", "text": "Mild"}]
})";

constexpr std::string_view kPractitioner = R"({
  "resourceType": "Practitioner",
  "id": "example",
  "identifier": [{"system": "http://www.acme.org/practitioners", "value": "23"}],
  "active": true,
  "name": [{"family": "Careful", "given": ["Adam"], "prefix": ["Dr"]}],
  "telecom": [{"system": "email", "value": "adam.careful@example.org", "use": "work"}],
  "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille"}],
  "gender": "male",
  "birthDate": "1970-02-28",
  "qualification": [{"identifier": [{"system": "http://example.org/UniversityIdentifier",
                                     "value": "12345"}],
                     "code": {"text": "Bachelor of Science"},
                     "period": {"start": "1995"},
                     "issuer": {"display": "Example University"}}]
})";

constexpr std::string_view kOrganization = R"({
  "resourceType": "Organization",
  "id": "hl7",
  "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:2.16.840.1.113883"}],
  "active": true,
  "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov"}]}],
  "name": "Health Level Seven International",
  "alias": ["HL7 International"],
  "telecom": [{"system": "phone", "value": "(+1) 734-677-7777"},
              {"system": "fax", "value": "(+1) 734-677-6622"}],
  "address": [{"line": ["3300 Washtenaw Avenue, Suite 227"], "city": "Ann Arbor",
               "state": "MI", "postalCode": "48104", "country": "USA"}],
  "partOf": {"reference": "Organization/1"},
  "contact": [{"purpose": {"text": "billing"}, "name": {"text": "Accounts"},
               "telecom": [{"system": "email", "value": "billing@example.org"}]}]
})";

constexpr std::string_view kMedicationRequest = R"({
  "resourceType": "MedicationRequest",
  "id": "medrx0302",
  "status": "active",
  "intent": "order",
  "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                            "code": "197361"}]},
  "subject": {"reference": "Patient/pat1"},
  "authoredOn": "2015-01-15",
  "requester": {"reference": "Practitioner/f007"},
  "dosageInstruction": [{
    "sequence": 1,
    "text": "one tablet daily",
    "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
    "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
    "doseAndRate": [{"type": {"text": "ordered"},
                     "doseQuantity": {"value": 1, "unit": "TAB",
                                      "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                                      "code": "TAB"}}]}],
  "dispenseRequest": {"numberOfRepeatsAllowed": 3,
                      "quantity": {"value": 30, "unit": "TAB"},
                      "expectedSupplyDuration": {"value": 30, "unit": "days",
                                                 "system": "http://unitsofmeasure.org",
                                                 "code": "d"}},
  "substitution": {"allowedBoolean": true}
})";

constexpr std::string_view kAllergyIntolerance = R"({
  "resourceType": "AllergyIntolerance",
  "id": "example",
  "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                 "code": "active"}]},
  "type": "allergy",
  "category": ["food"],
  "criticality": "high",
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "227493005"}],
           "text": "Cashew nuts"},
  "patient": {"reference": "Patient/example"},
  "onsetDateTime": "2004",
  "recordedDate": "2014-10-09T14:58:00+11:00",
  "reaction": [{"substance": {"text": "cashew nut allergenic extract"},
                "manifestation": [{"text": "Anaphylactic reaction"}],
                "severity": "severe", "onset": "2012-06-12"}]
})";

constexpr std::string_view kProcedure = R"({
  "resourceType": "Procedure",
  "id": "example",
  "status": "completed",
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}],
           "text": "Appendectomy"},
  "subject": {"reference": "Patient/example"},
  "performedPeriod": {"start": "2013-01-28T13:31:00+01:00", "end": "2013-01-28T14:27:00+01:00"},
  "performer": [{"function": {"text": "Surgeon"}, "actor": {"reference": "Practitioner/example"}}],
  "reasonCode": [{"text": "Generalized abdominal pain"}],
  "bodySite": [{"text": "Appendix"}],
  "outcome": {"text": "Uneventful recovery"},
  "followUp": [{"text": "ROS 5 days"}],
  "note": [{"text": "Routine appendectomy."}]
})";

constexpr std::string_view kDiagnosticReport = R"({
  "resourceType": "DiagnosticReport",
  "id": "ultrasound",
  "status": "final",
  "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "394914008"}]}],
  "code": {"coding": [{"system": "http://snomed.info/sct", "code": "45036003"}]},
  "subject": {"reference": "Patient/example"},
  "effectiveDateTime": "2012-12-01T12:00:00+01:00",
  "issued": "2012-12-01T12:00:00+01:00",
  "performer": [{"reference": "Practitioner/example"}],
  "result": [{"reference": "Observation/example"}],
  "conclusion": "Unremarkable study",
  "presentedForm": [{"contentType": "text/plain", "language": "en",
                     "data": "VW5yZW1hcmthYmxl IHN0dWR5", "title": "report"}]
})";

constexpr std::string_view kImmunization = R"({
  "resourceType": "Immunization",
  "id": "example",
  "status": "completed",
  "vaccineCode": {"coding": [{"system": "urn:oid:1.2.36.1.2001.1005.17", "code": "FLUVAX"}]},
  "patient": {"reference": "Patient/example"},
  "occurrenceDateTime": "2013-01-10",
  "recorded": "2013-01-10",
  "primarySource": true,
  "lotNumber": "AAJN11K",
  "expirationDate": "2015-02-15",
  "site": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite", "code": "LA"}]},
  "doseQuantity": {"value": 5, "system": "http://unitsofmeasure.org", "code": "mg"},
  "performer": [{"function": {"text": "Administering Provider"},
                 "actor": {"reference": "Practitioner/example"}}],
  "isSubpotent": true,
  "protocolApplied": [{"series": "Vaccination Series 1", "doseNumberPositiveInt": 1}]
})";

constexpr std::string_view kBundle = R"({
  "resourceType": "Bundle",
  "id": "bundle-transaction",
  "meta": {"lastUpdated": "2014-08-18T01:43:30Z"},
  "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
     "resource": {"resourceType": "Patient", "active": true,
                  "name": [{"family": "Smith", "given": ["Pete"]}], "birthDate": "1951-06-04"},
     "request": {"method": "POST", "url": "Patient"}},
    {"fullUrl": "http://example.org/fhir/Observation/123",
     "resource": {"resourceType": "Observation", "status": "final",
                  "code": {"text": "weight"},
                  "subject": {"reference": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a"},
                  "valueQuantity": {"value": 72.5, "unit": "kg"}},
     "request": {"method": "PUT", "url": "Observation/123", "ifMatch": "W/\"2\""}},
    {"request": {"method": "DELETE", "url": "Patient/234"}}]
})";

constexpr std::string_view kQuestionnaire = R"({
  "resourceType": "Questionnaire",
  "id": "f201",
  "url": "http://example.org/Questionnaire/f201",
  "status": "active",
  "subjectType": ["Patient"],
  "date": "2010",
  "item": [{
    "linkId": "1",
    "text": "Do you have allergies?",
    "type": "boolean"
  }, {
    "linkId": "2",
    "text": "General questions",
    "type": "group",
    "item": [
      {"linkId": "2.1", "text": "What is your gender?", "type": "choice",
       "answerOption": [{"valueCoding": {"system": "http://hl7.org/fhir/administrative-gender",
                                         "code": "female"}},
                        {"valueString": "other"}]},
      {"linkId": "2.2", "text": "What is your date of birth?", "type": "date", "required": true},
      {"linkId": "2.3", "type": "group",
       "enableWhen": [{"question": "1", "operator": "=", "answerBoolean": true}],
       "item": [{"linkId": "2.3.1", "text": "Which allergies?", "type": "string",
                 "repeats": true, "maxLength": 200}]}]
  }]
})";

constexpr std::string_view kCoverage = R"({
  "resourceType": "Coverage",
  "id": "9876B1",
  "identifier": [{"system": "http://benefitsinc.com/certificate", "value": "12345"}],
  "status": "active",
  "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                       "code": "EHCPOL"}]},
  "policyHolder": {"reference": "http://benefitsinc.com/FHIR/Organization/CBI35"},
  "subscriber": {"reference": "Patient/4"},
  "beneficiary": {"reference": "Patient/4"},
  "dependent": "0",
  "relationship": {"coding": [{"code": "self"}]},
  "period": {"start": "2011-05-23", "end": "2012-05-23"},
  "payor": [{"reference": "Organization/2"}],
  "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                  "code": "group"}]},
             "value": "CB135", "name": "Corporate Baker's Inc. Local #35"}],
  "costToBeneficiary": [{"type": {"text": "copay"},
                         "valueMoney": {"value": 20.00, "currency": "USD"}}]
})";

constexpr std::string_view kParameters = R"({
  "resourceType": "Parameters",
  "parameter": [
    {"name": "start", "valueDate": "2010-01-01"},
    {"name": "patient", "resource": {"resourceType": "Patient", "birthDate": "1970"}},
    {"name": "dose", "part": [{"name": "count", "valueInteger": -3},
                              {"name": "note", "valueMarkdown": "# ok"}]}]
})";

class ValidatorTest : public ::testing::Test {
 protected:
  static json::value Parse(std::string_view text) {
    auto parsed = ParseJson(text, 64);
    EXPECT_TRUE(parsed.ok()) << parsed.status().message();
    return parsed.ok() ? std::move(parsed).value() : json::value();
  }

  static Status Validate(const json::value& v) { return ValidateResource(v, Model::R4()); }
  static Status ValidateText(std::string_view text) { return Validate(Parse(text)); }

  // Validates `base` after `change`; expects the one issue described.
  static void ExpectIssue(std::string_view base, const std::function<void(json::value&)>& change,
                          std::string_view expression, std::string_view message,
                          std::string_view bad_value) {
    json::value v = Parse(base);
    change(v);
    ExpectIssue(v, expression, message, bad_value);
  }
  static void ExpectIssue(const json::value& v, std::string_view expression,
                          std::string_view message, std::string_view bad_value) {
    const Status s = Validate(v);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.expression(), expression);
    EXPECT_EQ(s.message(), message);
    if (!bad_value.empty()) {
      EXPECT_THAT(s.message(), Not(HasSubstr(std::string(bad_value))));
      EXPECT_THAT(s.expression(), Not(HasSubstr(std::string(bad_value))));
    }
  }
};

TEST_F(ValidatorTest, AcceptsValidInstances) {
  for (std::string_view text :
       {kPatient, kObservation, kEncounter, kCondition, kPractitioner, kOrganization,
        kMedicationRequest, kAllergyIntolerance, kProcedure, kDiagnosticReport, kImmunization,
        kBundle, kQuestionnaire, kCoverage, kParameters}) {
    const Status s = ValidateText(text);
    EXPECT_TRUE(s.ok()) << s.message() << " at " << s.expression() << " in " << text.substr(0, 60);
  }
}

TEST_F(ValidatorTest, AcceptsMinimalResource) {
  EXPECT_TRUE(ValidateText(R"({"resourceType": "Patient"})").ok());
}

// --- resource level -------------------------------------------------------------------

TEST_F(ValidatorTest, RejectsUnknownResourceType) {
  ExpectIssue(Parse(R"({"resourceType": "Patientx", "id": "1"})"), "resourceType",
              "unknown resource type", "Patientx");
  ExpectIssue(Parse(R"({"resourceType": 7})"), "resourceType", "unknown resource type", "");
}

TEST_F(ValidatorTest, RejectsAbstractResourceTypes) {
  ExpectIssue(Parse(R"({"resourceType": "Resource"})"), "resourceType", "unknown resource type",
              "");
  ExpectIssue(Parse(R"({"resourceType": "DomainResource"})"), "resourceType",
              "unknown resource type", "");
}

TEST_F(ValidatorTest, RejectsMissingResourceTypeAndNonObjects) {
  ExpectIssue(Parse(R"({"id": "1"})"), "resourceType", "missing resourceType", "");
  ExpectIssue(Parse(R"([{"resourceType": "Patient"}])"), "", "a resource must be a JSON object",
              "");
  ExpectIssue(Parse(R"("Patient")"), "", "a resource must be a JSON object", "");
}

TEST_F(ValidatorTest, RejectsBadResourceId) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/id") = "pat 1/../x"; }, "Patient.id",
      "invalid id value", "pat 1/../x");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/id") = std::string(65, 'a'); }, "Patient.id",
      "invalid id value", std::string(65, 'a'));
  // Resource.id is a FHIRPath System string: no `_id` sibling.
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["_id"] = {{"extension", json::array()}};
      },
      "Patient._id", "unknown element", "");
}

// --- elements -------------------------------------------------------------------------

TEST_F(ValidatorTest, RejectsUnknownElements) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.as_object()["favouriteColour"] = "blue"; },
      "Patient.favouriteColour", "unknown element", "blue");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/1").as_object()["nickname"] = "Jimbo"; },
      "Patient.name[1].nickname", "unknown element", "Jimbo");
  // A key that is not name-like may be data: the path stops at its object.
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/0").as_object()["ssn 123-45-6789"] = 1; },
      "Patient.name[0]", "unknown element", "123-45-6789");
  ExpectIssue(
      kPatient, [](json::value& r) { r.as_object()[std::string(65, 'x')] = 1; }, "Patient",
      "unknown element", "xxxxx");
  // resourceType is a property of resources only.
  ExpectIssue(
      kPatient,
      [](json::value& r) { r.at_pointer("/maritalStatus").as_object()["resourceType"] = "X"; },
      "Patient.maritalStatus.resourceType", "unknown element", "");
  // `_name` only exists for primitive elements.
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["_name"] = json::array{nullptr, nullptr};
      },
      "Patient._name", "unknown element", "");
}

TEST_F(ValidatorTest, RejectsChoiceElementProblems) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.as_object()["deceasedDateTime"] = "2020-01-01"; },
      "Patient.deceasedDateTime", "only one type is allowed for a choice element", "2020-01-01");
  // Not an allowed type for Patient.deceased[x].
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object().erase("deceasedBoolean");
        r.as_object()["deceasedString"] = "yes";
      },
      "Patient.deceasedString", "unknown element", "yes");
  // The base name alone is not a JSON name.
  ExpectIssue(
      kObservation,
      [](json::value& r) {
        r.as_object()["value"] = {{"value", 1}};
      },
      "Observation.value", "unknown element", "");
  ExpectIssue(
      kObservation, [](json::value& r) { r.as_object()["valueString"] = "high"; },
      "Observation.valueString", "only one type is allowed for a choice element", "high");
  // A value and the extension of another type of the same choice.
  ExpectIssue(
      kCondition,
      [](json::value& r) {
        r.as_object()["_abatementDateTime"] = {
            {"extension", json::array{{{"url", "http://e.org"}, {"valueCode", "x"}}}}};
      },
      "Condition._abatementDateTime", "only one type is allowed for a choice element", "");
}

TEST_F(ValidatorTest, RejectsArrayWhereSingleExpectedAndViceVersa) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/birthDate") = json::array{"1974-12-25"}; },
      "Patient.birthDate", "element must not be an array", "1974-12-25");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name") = r.at_pointer("/name/0"); },
      "Patient.name", "element must be an array", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/0/given") = "Peter"; },
      "Patient.name[0].given", "element must be an array", "Peter");
  ExpectIssue(
      kEncounter,
      [](json::value& r) { r.at_pointer("/class") = json::array{r.at_pointer("/class")}; },
      "Encounter.class", "element must not be an array", "");
}

TEST_F(ValidatorTest, RejectsMissingRequiredElements) {
  ExpectIssue(
      kObservation, [](json::value& r) { r.as_object().erase("status"); }, "Observation.status",
      "missing required element", "");
  ExpectIssue(
      kObservation, [](json::value& r) { r.as_object().erase("code"); }, "Observation.code",
      "missing required element", "");
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/component/1").as_object().erase("code"); },
      "Observation.component[1].code", "missing required element", "");
  // A required choice element is named by its base name.
  ExpectIssue(
      kMedicationRequest, [](json::value& r) { r.as_object().erase("medicationCodeableConcept"); },
      "MedicationRequest.medication", "missing required element", "");
}

TEST_F(ValidatorTest, RejectsEmptyValues) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/0/given/1") = ""; },
      "Patient.name[0].given[1]", "empty string is not allowed", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/maritalStatus") = json::object(); },
      "Patient.maritalStatus", "empty object is not allowed", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/telecom") = json::array(); }, "Patient.telecom",
      "empty array is not allowed", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/gender") = nullptr; }, "Patient.gender",
      "null is not allowed", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/0/given/0") = nullptr; },
      "Patient.name[0].given[0]", "null is not allowed", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/address/0/city") = "   "; },
      "Patient.address[0].city", "invalid string value", "");
}

// --- primitive types ------------------------------------------------------------------

TEST_F(ValidatorTest, RejectsBadDates) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/birthDate") = "1974-13-25"; },
      "Patient.birthDate", "invalid date value", "1974-13-25");
  ExpectIssue(
      kPractitioner, [](json::value& r) { r.at_pointer("/birthDate") = "1970-02-30"; },
      "Practitioner.birthDate", "invalid date value", "1970-02-30");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/birthDate") = "1974-12-25T10:00:00Z"; },
      "Patient.birthDate", "invalid date value", "1974-12-25T10:00:00Z");
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/effectiveDateTime") = "2013-04-02T10:30"; },
      "Observation.effectiveDateTime", "invalid dateTime value", "2013-04-02T10:30");
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/issued") = "2013-04-03"; },
      "Observation.issued", "invalid instant value", "2013-04-03");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/meta/lastUpdated") = "2024-01-02T03:04:05"; },
      "Patient.meta.lastUpdated", "invalid instant value", "2024-01-02T03:04:05");
  ExpectIssue(
      kProcedure,
      [](json::value& r) { r.at_pointer("/performedPeriod/start") = "2013-01-28 13:31:00Z"; },
      "Procedure.performedPeriod.start", "invalid dateTime value", "2013-01-28 13:31:00Z");
}

TEST_F(ValidatorTest, RejectsBadCodesAndUris) {
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/status") = "final "; },
      "Observation.status", "invalid code value", "final ");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/gender") = 5; }, "Patient.gender",
      "expected a JSON string", "");
  ExpectIssue(
      kBundle, [](json::value& r) { r.at_pointer("/entry/1/fullUrl") = "http://a b/c"; },
      "Bundle.entry[1].fullUrl", "invalid uri value", "http://a b/c");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/identifier/0/system") = "urn:oid:1.2\t.3"; },
      "Patient.identifier[0].system", "invalid uri value", "urn:oid:1.2\t.3");
}

TEST_F(ValidatorTest, RejectsBadNumbersAndBooleans) {
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/valueQuantity/value") = "6.3"; },
      "Observation.valueQuantity.value", "expected a JSON number", "6.3");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/multipleBirthInteger") = 1.5; },
      "Patient.multipleBirthInteger", "invalid integer value", "1.5");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/multipleBirthInteger") = 2147483648LL; },
      "Patient.multipleBirthInteger", "invalid integer value", "2147483648");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/active") = "true"; }, "Patient.active",
      "expected a JSON boolean", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/telecom/0/rank") = 0; },
      "Patient.telecom[0].rank", "invalid positiveInt value", "");
  ExpectIssue(
      kMedicationRequest,
      [](json::value& r) { r.at_pointer("/dispenseRequest/numberOfRepeatsAllowed") = -1; },
      "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed", "invalid unsignedInt value",
      "-1");
  // Written as 1e2 the parser produces a double: not an integer's lexical form.
  EXPECT_EQ(
      ValidateText(R"({"resourceType": "Patient", "multipleBirthInteger": 1e2})").expression(),
      "Patient.multipleBirthInteger");
  EXPECT_TRUE(
      ValidateText(R"({"resourceType": "Patient", "multipleBirthInteger": -2147483648})").ok());
  EXPECT_TRUE(
      ValidateText(R"({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                           "valueQuantity": {"value": -1.5e3}})")
          .ok());
}

TEST_F(ValidatorTest, RejectsBadXhtmlAndBase64) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/text/div") = "<p>Peter</p>"; },
      "Patient.text.div", "invalid xhtml value", "Peter");
  ExpectIssue(
      kDiagnosticReport, [](json::value& r) { r.at_pointer("/presentedForm/0/data") = "abc"; },
      "DiagnosticReport.presentedForm[0].data", "invalid base64Binary value", "abc");
}

TEST_F(ValidatorTest, RejectsControlCharactersAndOverlongStrings) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/name/0/family") = "Chal\x01mers"; },
      "Patient.name[0].family", "invalid string value", "Chal");
  const std::string limit(1048576, 'a');
  json::value ok = Parse(kPatient);
  ok.at_pointer("/name/0/family") = limit;
  EXPECT_TRUE(Validate(ok).ok());
  ExpectIssue(
      kPatient, [&](json::value& r) { r.at_pointer("/name/0/family") = limit + "a"; },
      "Patient.name[0].family", "string is too long", "aaaa");
  // The limit counts characters, not bytes: 1048576 two-byte characters are fine.
  std::string wide;
  for (int i = 0; i < 1048576; ++i) wide += "\xc3\xa9";
  ok.at_pointer("/name/0/family") = wide;
  EXPECT_TRUE(Validate(ok).ok());
}

TEST_F(ValidatorTest, ChecksOtherPrimitiveTypesThroughExtensions) {
  auto with_value = [](std::string_view property, json::value value) {
    return [property = std::string(property), value](json::value& r) {
      json::object ext{{"url", "http://example.org/x"}};
      ext[property] = value;
      r.at_pointer("/extension").as_array().push_back(ext);
    };
  };
  ExpectIssue(kPatient, with_value("valueUuid", "urn:uuid:61EBE359-BFDC-4613-8BF2-C5E300945F0A"),
              "Patient.extension[2].valueUuid", "invalid uuid value", "61EBE359");
  ExpectIssue(kPatient, with_value("valueOid", "urn:oid:1.02"), "Patient.extension[2].valueOid",
              "invalid oid value", "1.02");
  ExpectIssue(kPatient, with_value("valueTime", "24:00:00"), "Patient.extension[2].valueTime",
              "invalid time value", "24:00:00");
  ExpectIssue(kPatient, with_value("valueUnsignedInt", 1.0),
              "Patient.extension[2].valueUnsignedInt", "invalid unsignedInt value", "");
  ExpectIssue(kPatient, with_value("valueDecimal", "1.0"), "Patient.extension[2].valueDecimal",
              "expected a JSON number", "");
  ExpectIssue(kPatient, with_value("valueCanonical", ""), "Patient.extension[2].valueCanonical",
              "empty string is not allowed", "");
  json::value ok = Parse(kPatient);
  with_value("valueUuid", "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")(ok);
  with_value("valueOid", "urn:oid:2.16.840.1")(ok);
  with_value("valueTime", "23:59:60.5")(ok);
  with_value("valueInstant", "2015-02-07T13:28:17.239+14:00")(ok);
  with_value("valueBase64Binary", "aGVs bG8=")(ok);
  with_value("valueMeta", {{"tag", json::array{{{"code", "x"}}}}})(ok);
  const Status s = Validate(ok);
  EXPECT_TRUE(s.ok()) << s.message() << " at " << s.expression();
}

// --- extensions -----------------------------------------------------------------------

TEST_F(ValidatorTest, RejectsExtensionWithoutUrl) {
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/extension/0").as_object().erase("url"); },
      "Patient.extension[0].url", "missing required element", "");
  ExpectIssue(
      kPatient,
      [](json::value& r) { r.at_pointer("/extension/1/extension/1").as_object().erase("url"); },
      "Patient.extension[1].extension[1].url", "missing required element", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/extension/0/url") = "has space"; },
      "Patient.extension[0].url", "invalid uri value", "has space");
}

TEST_F(ValidatorTest, RejectsExtensionWithBothOrNeitherValueAndExtensions) {
  ExpectIssue(
      kPatient,
      [](json::value& r) { r.at_pointer("/extension/1").as_object()["valueString"] = "White"; },
      "Patient.extension[1]", "an extension must not have both a value and nested extensions",
      "White");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/extension/0").as_object().erase("valueCode"); },
      "Patient.extension[0]", "an extension must have a value or nested extensions", "");
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["modifierExtension"] = json::array{{{"url", "u"}}};
      },
      "Patient.modifierExtension[0]", "an extension must have a value or nested extensions", "");
}

TEST_F(ValidatorTest, ValidatesPrimitiveExtensions) {
  // _birthDate: extension content is validated, and errors name the primitive's FHIRPath.
  ExpectIssue(
      kPatient,
      [](json::value& r) { r.at_pointer("/_birthDate/extension/0").as_object().erase("url"); },
      "Patient.birthDate.extension[0].url", "missing required element", "");
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.at_pointer("/_birthDate/extension/0/valueDateTime") = "1974-12-25T14";
      },
      "Patient.birthDate.extension[0].valueDateTime", "invalid dateTime value", "1974-12-25T14");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/_birthDate") = json::array(); },
      "Patient.birthDate", "element must not be an array", "");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/_birthDate") = "1974"; }, "Patient.birthDate",
      "expected a JSON object", "1974");
  ExpectIssue(
      kPatient, [](json::value& r) { r.at_pointer("/_birthDate").as_object()["value"] = "x"; },
      "Patient.birthDate.value", "unknown element", "");
  // Without a value, the extension object must carry extensions.
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object().erase("birthDate");
        r.at_pointer("/_birthDate") = {{"id", "b1"}};
      },
      "Patient.birthDate", "an element must have a value or extensions", "");
  // Only the extension, no value: valid (e.g. a data-absent-reason).
  json::value only_ext = Parse(kPatient);
  only_ext.as_object().erase("birthDate");
  EXPECT_TRUE(Validate(only_ext).ok());
}

TEST_F(ValidatorTest, ValidatesRepeatingPrimitiveExtensions) {
  const json::value ext = {
      {"extension", json::array{{{"url", "http://e.org/x"}, {"valueCode", "y"}}}}};
  json::value aligned = Parse(kPatient);
  aligned.at_pointer("/name/0/given") = json::array{"Peter", nullptr};
  aligned.at_pointer("/name/0").as_object()["_given"] = json::array{nullptr, ext};
  EXPECT_TRUE(Validate(aligned).ok()) << Validate(aligned).expression();

  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.at_pointer("/name/0/given") = json::array{"Peter", nullptr};
      },
      "Patient.name[0].given[1]", "null is not allowed", "");
  ExpectIssue(
      kPatient,
      [&](json::value& r) { r.at_pointer("/name/0").as_object()["_given"] = json::array{ext}; },
      "Patient.name[0].given", "primitive extensions must align with the values", "");
  ExpectIssue(
      kPatient,
      [&](json::value& r) {
        r.at_pointer("/name/0/given") = json::array{"Peter", nullptr};
        r.at_pointer("/name/0").as_object()["_given"] = json::array{nullptr, nullptr};
      },
      "Patient.name[0].given[1]", "null is not allowed", "");
  ExpectIssue(
      kPatient, [&](json::value& r) { r.at_pointer("/name/0").as_object()["_given"] = ext; },
      "Patient.name[0].given", "element must be an array", "");
}

// --- nested resources -----------------------------------------------------------------

TEST_F(ValidatorTest, ValidatesContainedResources) {
  json::value ok = Parse(kPatient);
  ok.as_object()["contained"] =
      json::array{{{"resourceType", "Organization"}, {"id", "org1"}, {"name", "Acme"}}};
  EXPECT_TRUE(Validate(ok).ok());

  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["contained"] =
            json::array{{{"resourceType", "Organization"}, {"id", "org1"}, {"name", ""}}};
      },
      "Patient.contained[0].name", "empty string is not allowed", "");
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["contained"] = json::array{{{"resourceType", "Organisation"}}};
      },
      "Patient.contained[0].resourceType", "unknown resource type", "Organisation");
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["contained"] =
            json::array{{{"resourceType", "Organization"},
                         {"contained", json::array{{{"resourceType", "Organization"}}}}}};
      },
      "Patient.contained[0].contained", "a contained resource must not contain resources", "");
  ExpectIssue(
      kPatient,
      [](json::value& r) {
        r.as_object()["contained"] =
            json::array{{{"resourceType", "Organization"}, {"meta", {{"versionId", "2"}}}}};
      },
      "Patient.contained[0].meta.versionId",
      "a contained resource must not have meta.versionId or meta.lastUpdated", "");
}

// --- one bad instance per resource type -------------------------------------------------

TEST_F(ValidatorTest, Observation) {
  ExpectIssue(
      kObservation,
      [](json::value& r) { r.at_pointer("/referenceRange/0/low").as_object()["comparator"] = "<"; },
      "Observation.referenceRange[0].low.comparator", "unknown element", "");  // SimpleQuantity
  ExpectIssue(
      kObservation, [](json::value& r) { r.at_pointer("/component/0/valueQuantity/value") = true; },
      "Observation.component[0].valueQuantity.value", "expected a JSON number", "");
  ExpectIssue(
      kObservation, [](json::value& r) { r.as_object()["valueFoo"] = "x"; }, "Observation.valueFoo",
      "unknown element", "");
}

TEST_F(ValidatorTest, Encounter) {
  ExpectIssue(
      kEncounter, [](json::value& r) { r.as_object().erase("class"); }, "Encounter.class",
      "missing required element", "");
  ExpectIssue(
      kEncounter,
      [](json::value& r) { r.at_pointer("/participant/0/period/end") = "2014-01-10T25:00:00Z"; },
      "Encounter.participant[0].period.end", "invalid dateTime value", "25:00");
}

TEST_F(ValidatorTest, Condition) {
  ExpectIssue(
      kCondition, [](json::value& r) { r.as_object().erase("subject"); }, "Condition.subject",
      "missing required element", "");
  ExpectIssue(
      kCondition, [](json::value& r) { r.at_pointer("/onsetAge/value") = "52"; },
      "Condition.onsetAge.value", "expected a JSON number", "52");
  // R4 dropped boolean from Condition.abatement[x] (STU3 had it).
  ExpectIssue(
      kCondition, [](json::value& r) { r.as_object()["abatementBoolean"] = true; },
      "Condition.abatementBoolean", "unknown element", "");
  ExpectIssue(
      kCondition, [](json::value& r) { r.at_pointer("/note/0/time") = "yesterday"; },
      "Condition.note[0].time", "invalid dateTime value", "yesterday");
}

TEST_F(ValidatorTest, Practitioner) {
  ExpectIssue(
      kPractitioner,
      [](json::value& r) { r.at_pointer("/qualification/0").as_object().erase("code"); },
      "Practitioner.qualification[0].code", "missing required element", "");
  ExpectIssue(
      kPractitioner, [](json::value& r) { r.at_pointer("/name/0/prefix") = "Dr"; },
      "Practitioner.name[0].prefix", "element must be an array", "");
}

TEST_F(ValidatorTest, Organization) {
  ExpectIssue(
      kOrganization,
      [](json::value& r) { r.at_pointer("/telecom/0/system") = json::array{"phone"}; },
      "Organization.telecom[0].system", "element must not be an array", "");
  ExpectIssue(
      kOrganization,
      [](json::value& r) { r.at_pointer("/contact/0/telecom/0").as_object()["rank"] = -2; },
      "Organization.contact[0].telecom[0].rank", "invalid positiveInt value", "-2");
}

TEST_F(ValidatorTest, MedicationRequest) {
  ExpectIssue(
      kMedicationRequest,
      [](json::value& r) {
        r.at_pointer("/dosageInstruction/0/doseAndRate/0/doseQuantity").as_object()["comparator"] =
            ">";
      },
      "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.comparator",
      "unknown element", "");
  ExpectIssue(
      kMedicationRequest,
      [](json::value& r) { r.at_pointer("/dosageInstruction/0/timing/repeat/frequency") = 0; },
      "MedicationRequest.dosageInstruction[0].timing.repeat.frequency", "invalid positiveInt value",
      "");
  ExpectIssue(
      kMedicationRequest,
      [](json::value& r) {
        r.as_object()["medicationReference"] = {{"reference", "Medication/1"}};
      },
      "MedicationRequest.medicationReference", "only one type is allowed for a choice element",
      "Medication/1");
}

TEST_F(ValidatorTest, AllergyIntolerance) {
  ExpectIssue(
      kAllergyIntolerance, [](json::value& r) { r.at_pointer("/category") = "food"; },
      "AllergyIntolerance.category", "element must be an array", "food");
  ExpectIssue(
      kAllergyIntolerance,
      [](json::value& r) { r.at_pointer("/reaction/0").as_object().erase("manifestation"); },
      "AllergyIntolerance.reaction[0].manifestation", "missing required element", "");
  ExpectIssue(
      kAllergyIntolerance, [](json::value& r) { r.as_object().erase("patient"); },
      "AllergyIntolerance.patient", "missing required element", "");
}

TEST_F(ValidatorTest, Procedure) {
  ExpectIssue(
      kProcedure, [](json::value& r) { r.at_pointer("/performer/0").as_object().erase("actor"); },
      "Procedure.performer[0].actor", "missing required element", "");
  ExpectIssue(
      kProcedure, [](json::value& r) { r.as_object()["performedDateTime"] = "2013-01-28"; },
      "Procedure.performedDateTime", "only one type is allowed for a choice element", "");
}

TEST_F(ValidatorTest, DiagnosticReport) {
  ExpectIssue(
      kDiagnosticReport,
      [](json::value& r) {
        r.at_pointer("/result") = {{"reference", "Observation/x"}};
      },
      "DiagnosticReport.result", "element must be an array", "Observation/x");
  ExpectIssue(
      kDiagnosticReport,
      [](json::value& r) { r.at_pointer("/presentedForm/0/contentType") = "text/plain "; },
      "DiagnosticReport.presentedForm[0].contentType", "invalid code value", "text/plain");
}

TEST_F(ValidatorTest, Immunization) {
  ExpectIssue(
      kImmunization, [](json::value& r) { r.as_object().erase("occurrenceDateTime"); },
      "Immunization.occurrence", "missing required element", "");
  ExpectIssue(
      kImmunization,
      [](json::value& r) { r.at_pointer("/protocolApplied/0/doseNumberPositiveInt") = 0; },
      "Immunization.protocolApplied[0].doseNumberPositiveInt", "invalid positiveInt value", "");
  ExpectIssue(
      kImmunization,
      [](json::value& r) { r.at_pointer("/expirationDate") = "2015-02-15T00:00:00Z"; },
      "Immunization.expirationDate", "invalid date value", "2015-02-15T");
}

TEST_F(ValidatorTest, Bundle) {
  ExpectIssue(
      kBundle, [](json::value& r) { r.at_pointer("/entry/1/resource").as_object()["foo"] = 1; },
      "Bundle.entry[1].resource.foo", "unknown element", "");
  ExpectIssue(
      kBundle, [](json::value& r) { r.at_pointer("/entry/0/resource/birthDate") = "04/06/1951"; },
      "Bundle.entry[0].resource.birthDate", "invalid date value", "04/06/1951");
  ExpectIssue(
      kBundle, [](json::value& r) { r.at_pointer("/entry/2/request").as_object().erase("method"); },
      "Bundle.entry[2].request.method", "missing required element", "");
  ExpectIssue(
      kBundle,
      [](json::value& r) { r.at_pointer("/entry/0/resource").as_object().erase("resourceType"); },
      "Bundle.entry[0].resource.resourceType", "missing resourceType", "");
  ExpectIssue(
      kBundle, [](json::value& r) { r.as_object().erase("type"); }, "Bundle.type",
      "missing required element", "");
  // Bundle.entry.response.outcome is typed OperationOutcome.
  ExpectIssue(
      kBundle,
      [](json::value& r) {
        r.at_pointer("/entry/2").as_object()["response"] = {
            {"status", "200"}, {"outcome", {{"resourceType", "Patient"}}}};
      },
      "Bundle.entry[2].response.outcome.resourceType", "unexpected resource type", "");
}

TEST_F(ValidatorTest, Questionnaire) {
  // Questionnaire.item.item is defined by contentReference to Questionnaire.item.
  ExpectIssue(
      kQuestionnaire,
      [](json::value& r) { r.at_pointer("/item/1/item/2/item/0").as_object().erase("linkId"); },
      "Questionnaire.item[1].item[2].item[0].linkId", "missing required element", "");
  ExpectIssue(
      kQuestionnaire,
      [](json::value& r) { r.at_pointer("/item/1/item/2/item/0/maxLength") = "200"; },
      "Questionnaire.item[1].item[2].item[0].maxLength", "expected a JSON number", "200");
  ExpectIssue(
      kQuestionnaire,
      [](json::value& r) {
        r.at_pointer("/item/1/item/0/answerOption/1").as_object()["valueText"] = "x";
      },
      "Questionnaire.item[1].item[0].answerOption[1].valueText", "unknown element", "");
  ExpectIssue(
      kQuestionnaire,
      [](json::value& r) { r.at_pointer("/item/1/item/2/enableWhen/0/answerBoolean") = "true"; },
      "Questionnaire.item[1].item[2].enableWhen[0].answerBoolean", "expected a JSON boolean", "");
}

TEST_F(ValidatorTest, Coverage) {
  ExpectIssue(
      kCoverage, [](json::value& r) { r.as_object().erase("payor"); }, "Coverage.payor",
      "missing required element", "");
  ExpectIssue(
      kCoverage, [](json::value& r) { r.at_pointer("/class/0").as_object().erase("value"); },
      "Coverage.class[0].value", "missing required element", "");
  ExpectIssue(
      kCoverage,
      [](json::value& r) { r.at_pointer("/costToBeneficiary/0/valueMoney/value") = "20.00"; },
      "Coverage.costToBeneficiary[0].valueMoney.value", "expected a JSON number", "20.00");
}

TEST_F(ValidatorTest, Parameters) {
  ExpectIssue(
      kParameters,
      [](json::value& r) { r.at_pointer("/parameter/1/resource/birthDate") = "1970-1"; },
      "Parameters.parameter[1].resource.birthDate", "invalid date value", "1970-1");
  ExpectIssue(
      kParameters, [](json::value& r) { r.at_pointer("/parameter/2/part/0/valueInteger") = "3"; },
      "Parameters.parameter[2].part[0].valueInteger", "expected a JSON number", "");
}

TEST_F(ValidatorTest, FirstIssueWinsInDocumentOrder) {
  ExpectIssue(Parse(R"({"resourceType": "Patient", "gender": 1, "birthDate": "x"})"),
              "Patient.gender", "expected a JSON string", "");
}

// A value built in memory (not through ParseJson) can nest without limit; the validator
// must fail cleanly rather than exhaust the stack.
TEST_F(ValidatorTest, RejectsPathologicalNestingBuiltInMemory) {
  json::value v = Parse(kQuestionnaire);
  json::object* item = &v.at_pointer("/item/0").as_object();
  for (int i = 0; i < 2000; ++i) {
    (*item)["item"] = json::array{{{"linkId", "n"}, {"type", "group"}}};
    item = &(*item)["item"].as_array()[0].as_object();
  }
  const Status s = Validate(v);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "JSON nested too deeply");
}

// Until a fuzz target exists: deterministic byte-level mutations of the valid instances
// must only ever produce Ok or a clean kInvalidArgument, never a crash (ASan/UBSan builds).
TEST_F(ValidatorTest, MutatedInstancesFailCleanly) {
  constexpr std::string_view kInteresting = "{}[]\",:0-.eE_\\ nulltrue";
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  auto next = [&state] {  // xorshift64: reproducible across runs and platforms
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int parsed = 0;
  int valid = 0;
  for (std::string_view base :
       {kPatient, kObservation, kEncounter, kCondition, kPractitioner, kOrganization,
        kMedicationRequest, kAllergyIntolerance, kProcedure, kDiagnosticReport, kImmunization,
        kBundle, kQuestionnaire, kCoverage, kParameters}) {
    for (int round = 0; round < 300; ++round) {
      std::string text(base);
      for (int edits = 1 + static_cast<int>(next() % 3); edits > 0; --edits) {
        const std::size_t at = next() % text.size();
        switch (next() % 3) {
          case 0:
            text[at] = kInteresting[next() % kInteresting.size()];
            break;
          case 1:
            text.erase(at, 1 + next() % 8);
            break;
          default:
            text.insert(at, text.substr(next() % text.size(), 1 + next() % 16));
            break;
        }
        if (text.empty()) text = "{";
      }
      const auto json = ParseJson(text, 64);
      if (!json.ok()) {
        EXPECT_EQ(json.status().code(), StatusCode::kInvalidArgument);
        continue;
      }
      ++parsed;
      const Status s = ValidateResource(*json, Model::R4());
      if (s.ok()) {
        ++valid;
      } else {
        EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
        EXPECT_FALSE(s.message().empty());
      }
    }
  }
  // The mutations reach the validator and sometimes keep the instance valid.
  EXPECT_GT(parsed, 300);
  EXPECT_GT(valid, 10);
}

}  // namespace
}  // namespace phigate::fhir
