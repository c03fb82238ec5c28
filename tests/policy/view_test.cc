#include "policy/view.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/element_mask.h"

namespace phigate::policy {
namespace {

constexpr char kSubsetted[] =
    R"({"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue",)"
    R"("code":"SUBSETTED","display":"subsetted"})";
const std::string kTag = std::string(R"("tag":[)") + kSubsetted + "]";

const std::string kNarrative =
    R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"})";

// A stored Patient with summary (identifier, active, name, telecom, gender, birthDate) and
// non-summary (extension, maritalStatus, contact) elements and no mandatory ones.
const std::string kPatient =
    R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},)" + kNarrative +
    R"(,"extension":[{"url":"http://example.org/x","valueString":"y"}],)"
    R"("identifier":[{"value":"MRN1"}],"active":true,"name":[{"family":"Doe"}],)"
    R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
    R"("birthDate":"1970-01-01","_birthDate":{"id":"b"},"maritalStatus":{"text":"M"},)"
    R"("contact":[{"name":{"family":"Roe"}}]})";

// A stored Observation without meta; status and code are mandatory (min 1).
const std::string kObservation =
    R"({"resourceType":"Observation","id":"o1",)" + kNarrative +
    R"(,"status":"final","category":[{"text":"vital-signs"}],"code":{"text":"weight"},)"
    R"("subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-01",)"
    R"("valueQuantity":{"value":72.50,"unit":"kg"},"interpretation":[{"text":"normal"}]})";

std::string Labelled(std::string_view system, std::string_view code) {
  return R"({"resourceType":"Observation","id":"o2","meta":{"security":[{"system":")" +
         std::string(system) + R"(","code":")" + std::string(code) +
         R"("}]},"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/7"}})";
}
constexpr char kConfidentiality[] = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

struct Outcome {
  Visibility visibility = Visibility::kVisible;
  std::string json;
};

Outcome Apply(std::string_view type, std::string json, const View& view) {
  Result<Visibility> result = ApplyView(type, json, view);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return {result.ok() ? result.value() : Visibility::kVisible, json};
}

const ElementMask kAll = ElementMask::Everything();

Narrowing Summary(SummaryMode mode) {
  Narrowing narrowing;
  narrowing.summary = mode;
  return narrowing;
}

Narrowing Elements(std::vector<std::string> elements) {
  Narrowing narrowing;
  narrowing.has_elements = true;
  narrowing.elements = std::move(elements);
  return narrowing;
}

// --- the fast path ---

TEST(ApplyViewTest, UnrestrictedViewLeavesTheTextByteIdentical) {
  const std::string spaced =
      " {\"resourceType\" : \"Observation\", \"valueQuantity\":{\"value\":72.50}}\n";
  const Narrowing none;
  const std::vector<std::string> no_labels;
  EXPECT_EQ(Apply("Observation", spaced, {&kAll, "", nullptr, nullptr}).json, spaced);
  EXPECT_EQ(Apply("Observation", spaced, {&kAll, "", &no_labels, &none}).json, spaced);
  const Narrowing summary_false = Summary(SummaryMode::kFalse);
  EXPECT_EQ(Apply("Observation", spaced, {&kAll, "", nullptr, &summary_false}).json, spaced);
}

// Proof that nothing is parsed: text that is not JSON at all passes untouched, also with
// hidden labels configured, as long as it cannot carry a confidentiality label.
TEST(ApplyViewTest, FastPathDoesNotParse) {
  const std::vector<std::string> labels = {"R", "V"};
  const Outcome outcome = Apply("Patient", "not json", {&kAll, "", &labels, nullptr});
  EXPECT_EQ(outcome.visibility, Visibility::kVisible);
  EXPECT_EQ(outcome.json, "not json");
}

// --- step 1: compartment ---

TEST(ApplyViewTest, CompartmentBySubjectPerformerAndPatientId) {
  const std::string by_subject = kObservation;  // subject Patient/p1
  EXPECT_EQ(Apply("Observation", by_subject, {&kAll, "p1"}).visibility, Visibility::kVisible);
  EXPECT_EQ(Apply("Observation", by_subject, {&kAll, "p1"}).json, by_subject);
  EXPECT_EQ(Apply("Observation", by_subject, {&kAll, "p2"}).visibility,
            Visibility::kOutsideCompartment);

  const std::string by_performer =
      R"({"resourceType":"Observation","status":"final","code":{"text":"x"},)"
      R"("performer":[{"reference":"Practitioner/d1"},{"reference":"Patient/p2"}]})";
  EXPECT_EQ(Apply("Observation", by_performer, {&kAll, "p2"}).visibility, Visibility::kVisible);
  EXPECT_EQ(Apply("Observation", by_performer, {&kAll, "d1"}).visibility,
            Visibility::kOutsideCompartment);

  const std::string by_patient =
      R"({"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/p3"}})";
  EXPECT_EQ(Apply("AllergyIntolerance", by_patient, {&kAll, "p3"}).visibility,
            Visibility::kVisible);

  EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "p1"}).visibility, Visibility::kVisible);
  EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "p10"}).visibility, Visibility::kOutsideCompartment);
  // A type outside the compartment is never in a patient's.
  EXPECT_EQ(Apply("Practitioner", R"({"resourceType":"Practitioner","id":"p1"})", {&kAll, "p1"})
                .visibility,
            Visibility::kOutsideCompartment);
}

TEST(ApplyViewTest, RejectsTextThatIsNotAnObjectWhenItMustLook) {
  std::string json = "{";
  Result<Visibility> result = ApplyView("Observation", json, {&kAll, "p1"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "malformed JSON");
  json = "[1]";
  result = ApplyView("Observation", json, {&kAll, "p1"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "a resource must be a JSON object");
}

// --- step 2: confidentiality labels ---

TEST(ApplyViewTest, HiddenConfidentialityLabelRestricts) {
  const std::vector<std::string> labels = {"R", "V"};
  const View view{&kAll, "", &labels, nullptr};
  EXPECT_EQ(Apply("Observation", Labelled(kConfidentiality, "R"), view).visibility,
            Visibility::kRestricted);
  EXPECT_EQ(Apply("Observation", Labelled(kConfidentiality, "V"), view).visibility,
            Visibility::kRestricted);
  // The compartment is checked first: outside it, the label is not even revealed.
  const View in_compartment{&kAll, "8", &labels, nullptr};
  EXPECT_EQ(Apply("Observation", Labelled(kConfidentiality, "R"), in_compartment).visibility,
            Visibility::kOutsideCompartment);
}

TEST(ApplyViewTest, LabelOfAnotherSystemOrCodeIsNotHidden) {
  const std::vector<std::string> labels = {"R"};
  const View view{&kAll, "", &labels, nullptr};
  const std::string other_system = Labelled("http://example.org/v3-Confidentiality", "R");
  Outcome outcome = Apply("Observation", other_system, view);
  EXPECT_EQ(outcome.visibility, Visibility::kVisible);
  EXPECT_EQ(outcome.json, other_system);
  const std::string normal = Labelled(kConfidentiality, "N");
  outcome = Apply("Observation", normal, view);
  EXPECT_EQ(outcome.visibility, Visibility::kVisible);
  EXPECT_EQ(outcome.json, normal);
  // No hidden labels configured: nothing is restricted.
  EXPECT_EQ(Apply("Observation", Labelled(kConfidentiality, "R"), {&kAll, "", nullptr, nullptr})
                .visibility,
            Visibility::kVisible);
}

// Stored resources keep the client's escapes; the fast test must not let an escaped system
// name slip past.
TEST(ApplyViewTest, EscapedSystemIsStillTheConfidentialitySystem) {
  const std::vector<std::string> labels = {"R"};
  const std::string escaped =
      Labelled(R"(http://terminology.hl7.org/CodeSystem/v3\u002dConfidentiality)", "R");
  EXPECT_EQ(Apply("Observation", escaped, {&kAll, "", &labels, nullptr}).visibility,
            Visibility::kRestricted);
}

// --- step 3 and 4: minimum necessary, then client narrowing ---

TEST(ApplyViewTest, MaskThenElementsMarksSubsettedOnce) {
  const ElementMask billing = ElementMask::Only({"name", "birthDate", "gender", "identifier"});
  // telecom is asked for but hidden by the mask: the mask wins.
  const Narrowing elements = Elements({"name", "telecom", "birthDate"});
  const Outcome outcome = Apply("Patient", kPatient, {&billing, "", nullptr, &elements});
  EXPECT_EQ(outcome.visibility, Visibility::kVisible);
  EXPECT_EQ(outcome.json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag +
                R"(},"name":[{"family":"Doe"}],"birthDate":"1970-01-01","_birthDate":{"id":"b"}})");
}

TEST(ApplyViewTest, MaskAloneDropsNarrative) {
  const ElementMask billing = ElementMask::Only({"name", "gender"});
  EXPECT_EQ(Apply("Patient", kPatient, {&billing, "", nullptr, nullptr}).json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag +
                R"(},"name":[{"family":"Doe"}],"gender":"female"})");
}

TEST(ApplyViewTest, ElementsNamesAChoiceByItsBaseName) {
  const Narrowing elements = Elements({"value", "status"});
  EXPECT_EQ(Apply("Observation", kObservation, {&kAll, "", nullptr, &elements}).json,
            R"({"resourceType":"Observation","id":"o1","meta":{)" + kTag +
                R"(},"status":"final","valueQuantity":{"value":72.50,"unit":"kg"}})");
}

TEST(ApplyViewTest, SummaryTrueOnPatient) {
  const Narrowing narrowing = Summary(SummaryMode::kTrue);
  EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag +
                R"(},"identifier":[{"value":"MRN1"}],"active":true,"name":[{"family":"Doe"}],)"
                R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
                R"("birthDate":"1970-01-01","_birthDate":{"id":"b"}})");
}

TEST(ApplyViewTest, SummaryTextOnPatient) {
  const Narrowing narrowing = Summary(SummaryMode::kText);
  EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag + "}," +
                kNarrative + "}");
}

TEST(ApplyViewTest, SummaryDataOnPatient) {
  const Narrowing narrowing = Summary(SummaryMode::kData);
  EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag +
                R"(},"extension":[{"url":"http://example.org/x","valueString":"y"}],)"
                R"("identifier":[{"value":"MRN1"}],"active":true,"name":[{"family":"Doe"}],)"
                R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
                R"("birthDate":"1970-01-01","_birthDate":{"id":"b"},"maritalStatus":{"text":"M"},)"
                R"("contact":[{"name":{"family":"Roe"}}]})");
}

TEST(ApplyViewTest, SummaryFalseAndCountChangeNothing) {
  for (const SummaryMode mode : {SummaryMode::kFalse, SummaryMode::kCount}) {
    const Narrowing narrowing = Summary(mode);
    EXPECT_EQ(Apply("Patient", kPatient, {&kAll, "", nullptr, &narrowing}).json, kPatient);
  }
}

TEST(ApplyViewTest, SummaryTrueOnObservation) {
  const Narrowing narrowing = Summary(SummaryMode::kTrue);
  EXPECT_EQ(Apply("Observation", kObservation, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Observation","id":"o1","meta":{)" + kTag +
                R"(},"status":"final","code":{"text":"weight"},)"
                R"("subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-01-01",)"
                R"("valueQuantity":{"value":72.50,"unit":"kg"}})");
}

TEST(ApplyViewTest, SummaryTextOnObservationKeepsMandatoryElements) {
  const Narrowing narrowing = Summary(SummaryMode::kText);
  EXPECT_EQ(Apply("Observation", kObservation, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Observation","id":"o1","meta":{)" + kTag + "}," + kNarrative +
                R"(,"status":"final","code":{"text":"weight"}})");
}

TEST(ApplyViewTest, SummaryDataOnObservation) {
  const Narrowing narrowing = Summary(SummaryMode::kData);
  EXPECT_EQ(Apply("Observation", kObservation, {&kAll, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Observation","id":"o1","meta":{)" + kTag +
                R"(},"status":"final","category":[{"text":"vital-signs"}],)"
                R"("code":{"text":"weight"},"subject":{"reference":"Patient/p1"},)"
                R"("effectiveDateTime":"2026-01-01","valueQuantity":{"value":72.50,"unit":"kg"},)"
                R"("interpretation":[{"text":"normal"}]})");
}

// Nothing removed by the narrowing (data on a resource without narrative): no tag.
TEST(ApplyViewTest, NarrowingThatRemovesNothingLeavesTheText) {
  const std::string plain = R"({"resourceType":"Patient","id":"p1","gender":"male"})";
  const Narrowing narrowing = Summary(SummaryMode::kData);
  EXPECT_EQ(Apply("Patient", plain, {&kAll, "", nullptr, &narrowing}).json, plain);
}

TEST(ApplyViewTest, MaskAndSummaryTagOnce) {
  const ElementMask mask = ElementMask::Only({"name", "gender", "maritalStatus"});
  const Narrowing narrowing = Summary(SummaryMode::kTrue);
  EXPECT_EQ(Apply("Patient", kPatient, {&mask, "", nullptr, &narrowing}).json,
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)" + kTag +
                R"(},"name":[{"family":"Doe"}],"gender":"female"})");
}

TEST(ApplyViewTest, EveryStepTogether) {
  const ElementMask mask = ElementMask::Only({"status", "code", "value[x]"});
  const std::vector<std::string> labels = {"R"};
  const Narrowing narrowing = Summary(SummaryMode::kTrue);
  const Outcome outcome = Apply("Observation", kObservation, {&mask, "p1", &labels, &narrowing});
  EXPECT_EQ(outcome.visibility, Visibility::kVisible);
  EXPECT_EQ(outcome.json, R"({"resourceType":"Observation","id":"o1","meta":{)" + kTag +
                              R"(},"status":"final","code":{"text":"weight"},)"
                              R"("valueQuantity":{"value":72.50,"unit":"kg"}})");
}

// --- ParseNarrowing ---

Status NarrowingError(const QueryParams& params, bool allow_count = true) {
  Result<Narrowing> result = ParseNarrowing(params, allow_count);
  return result.ok() ? Status::Ok() : result.status();
}

TEST(ParseNarrowingTest, ReadsSummaryAndElements) {
  Result<Narrowing> none = ParseNarrowing({{"name", "x"}, {"_count", "5"}}, true);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  const std::pair<std::string, SummaryMode> modes[] = {{"true", SummaryMode::kTrue},
                                                       {"text", SummaryMode::kText},
                                                       {"data", SummaryMode::kData},
                                                       {"count", SummaryMode::kCount},
                                                       {"false", SummaryMode::kFalse}};
  for (const auto& [value, mode] : modes) {
    Result<Narrowing> parsed = ParseNarrowing({{"_summary", value}}, true);
    ASSERT_TRUE(parsed.ok()) << value;
    EXPECT_EQ(parsed->summary, mode) << value;
    EXPECT_FALSE(parsed->has_elements);
  }

  Result<Narrowing> elements = ParseNarrowing({{"_elements", "name,value[x],birthDate"}}, false);
  ASSERT_TRUE(elements.ok());
  EXPECT_TRUE(elements->has_elements);
  EXPECT_EQ(elements->elements, (std::vector<std::string>{"name", "value[x]", "birthDate"}));
  EXPECT_EQ(elements->summary, SummaryMode::kNone);
  // Well-formed but unknown: accepted, matches nothing.
  EXPECT_TRUE(ParseNarrowing({{"_elements", "noSuchElement"}}, false).ok());
}

TEST(ParseNarrowingTest, Errors) {
  struct Case {
    QueryParams params;
    bool allow_count;
    std::string message;
    std::string expression;
  };
  const Case cases[] = {
      {{{"_summary", "maybe"}},
       true,
       "_summary must be one of true, text, data, count or false",
       "_summary"},
      {{{"_summary", "TRUE"}},
       true,
       "_summary must be one of true, text, data, count or false",
       "_summary"},
      {{{"_summary", "count"}}, false, "_summary=count is only supported for search", "_summary"},
      {{{"_summary", "true"}, {"_summary", "true"}},
       true,
       "_summary may be given only once",
       "_summary"},
      {{{"_elements", "name"}, {"_elements", "gender"}},
       true,
       "_elements may be given only once",
       "_elements"},
      {{{"_summary", "true"}, {"_elements", "name"}},
       true,
       "_summary and _elements cannot be combined",
       "_summary"},
  };
  for (const Case& c : cases) {
    const Status status = NarrowingError(c.params, c.allow_count);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(status.message(), c.message);
    EXPECT_EQ(status.expression(), c.expression);
  }
  const std::vector<std::string> malformed = {
      "",      "name,", ",name",   "name,,gender", "name.family", "Patient.name",
      "1name", "na me", "name[y]", "[x]",          "<script>",    std::string(65, 'a')};
  for (const std::string& bad : malformed) {
    const Status status = NarrowingError({{"_elements", bad}});
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(status.message(), "_elements must be a comma-separated list of element names");
    EXPECT_EQ(status.expression(), "_elements");
  }
}

// --- CompartmentPatients ---

TEST(CompartmentPatientsTest, FindsThePatients) {
  EXPECT_EQ(CompartmentPatients("Patient", kPatient), std::vector<std::string>{"p1"});
  EXPECT_EQ(CompartmentPatients("Observation", kObservation), std::vector<std::string>{"p1"});
  EXPECT_EQ(CompartmentPatients(
                "Encounter",
                R"({"resourceType":"Encounter","status":"planned","class":{"code":"AMB"},)"
                R"("subject":{"reference":"https://h.example/fhir/Patient/e7/_history/3"}})"),
            std::vector<std::string>{"e7"});
  // A Patient concerns itself only, not the patients it links to.
  EXPECT_EQ(CompartmentPatients("Patient", R"({"resourceType":"Patient","id":"p2",)"
                                           R"("link":[{"other":{"reference":"Patient/p3"},)"
                                           R"("type":"seealso"}]})"),
            std::vector<std::string>{"p2"});
}

TEST(CompartmentPatientsTest, DeduplicatesInOrderOfAppearance) {
  EXPECT_EQ(
      CompartmentPatients(
          "Observation", R"({"resourceType":"Observation","subject":{"reference":"Patient/b"},)"
                         R"("performer":[{"reference":"Patient/a"},{"reference":"Practitioner/d"},)"
                         R"({"reference":"Patient/b"},{"reference":"Patient/c/_history/1"}]})"),
      (std::vector<std::string>{"b", "a", "c"}));
}

TEST(CompartmentPatientsTest, EmptyOutsideTheCompartmentAndForGarbage) {
  EXPECT_TRUE(
      CompartmentPatients("Practitioner", R"({"resourceType":"Practitioner","id":"p1"})").empty());
  EXPECT_TRUE(CompartmentPatients("Observation", "{not json").empty());
  EXPECT_TRUE(CompartmentPatients("Observation", "[]").empty());
  EXPECT_TRUE(CompartmentPatients("Observation", R"({"subject":{"reference":"#p1"}})").empty());
}

}  // namespace
}  // namespace phigate::policy
