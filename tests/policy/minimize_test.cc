#include "policy/minimize.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "policy/element_mask.h"

namespace phigate::policy {
namespace {

constexpr char kSubsetted[] =
    R"({"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue",)"
    R"("code":"SUBSETTED","display":"subsetted"})";

// A stored Patient: the server's canonical layout, the client's bytes (note 1.50).
const std::string kPatient =
    R"({"resourceType":"Patient","id":"p1",)"
    R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z"},)"
    R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
    R"("name":[{"family":"Doe","given":["Jane"]}],)"
    R"("telecom":[{"system":"phone","value":"555-0100"}],)"
    R"("birthDate":"1970-01-01",)"
    R"("_birthDate":{"extension":[{"url":"http://example.org/p","valueDecimal":1.50}]},)"
    R"("gender":"female"})";

std::string Minimize(std::string_view text, const ElementMask& mask) {
  Result<std::string> result = MinimizeResource(text, mask);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? result.value() : std::string();
}

TEST(ElementMaskTest, AllowsListedMandatoryAndChoiceVariants) {
  const ElementMask mask = ElementMask::Only({"value[x]", "status", "status", "code"});
  EXPECT_EQ(mask.elements, (std::vector<std::string>{"code", "status", "value[x]"}));
  EXPECT_TRUE(mask.Allows("resourceType"));
  EXPECT_TRUE(mask.Allows("id"));
  EXPECT_TRUE(mask.Allows("meta"));
  EXPECT_TRUE(mask.Allows("status"));
  EXPECT_TRUE(mask.Allows("_status"));
  EXPECT_TRUE(mask.Allows("valueQuantity"));
  EXPECT_TRUE(mask.Allows("_valueString"));
  EXPECT_FALSE(mask.Allows("value"));     // the base name alone is not a variant
  EXPECT_FALSE(mask.Allows("valueset"));  // a type name starts with a capital
  EXPECT_FALSE(mask.Allows("value[x]x"));
  EXPECT_FALSE(mask.Allows("effectiveDateTime"));
  EXPECT_FALSE(mask.Allows("text"));
  EXPECT_FALSE(mask.Allows(""));
  EXPECT_FALSE(mask.Allows("_"));
  EXPECT_TRUE(ElementMask::Everything().Allows("anything"));
}

TEST(MinimizeTest, HidesElementsDropsNarrativeAndTagsSubsetted) {
  EXPECT_EQ(
      Minimize(kPatient, ElementMask::Only({"name", "birthDate"})),
      R"({"resourceType":"Patient","id":"p1",)"
      R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z","tag":[)" +
          std::string(kSubsetted) +
          R"(]},"name":[{"family":"Doe","given":["Jane"]}],"birthDate":"1970-01-01",)"
          R"("_birthDate":{"extension":[{"url":"http://example.org/p","valueDecimal":1.50}]}})");
}

TEST(MinimizeTest, PrimitiveExtensionIsHiddenWithItsElement) {
  EXPECT_EQ(Minimize(kPatient, ElementMask::Only({"gender"})),
            R"({"resourceType":"Patient","id":"p1",)"
            R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z","tag":[)" +
                std::string(kSubsetted) + R"(]},"gender":"female"})");
}

TEST(MinimizeTest, NarrativeIsDroppedEvenWhenAllowedIfAnythingIsHidden) {
  EXPECT_EQ(Minimize(kPatient, ElementMask::Only({"text", "gender"})),
            Minimize(kPatient, ElementMask::Only({"gender"})));
}

TEST(MinimizeTest, ReminimizingAddsTheTagOnlyOnce) {
  const ElementMask mask = ElementMask::Only({"name", "birthDate"});
  const std::string once = Minimize(kPatient, mask);
  EXPECT_EQ(Minimize(once, mask), once);
  // A narrower mask hides more but keeps the single existing tag.
  const std::string twice = Minimize(once, ElementMask::Only({"name"}));
  EXPECT_EQ(twice, R"({"resourceType":"Patient","id":"p1",)"
                   R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z","tag":[)" +
                       std::string(kSubsetted) +
                       R"(]},"name":[{"family":"Doe","given":["Jane"]}]})");
}

TEST(MinimizeTest, CutsMetaToVersionTimeAndSecurityWithOnlyTheSubsettedTag) {
  // Profile, source, tags and extensions can name what was hidden; the security labels
  // keep their bytes (they decide who may see the resource).
  const std::string patient =
      R"({"resourceType":"Patient","id":"p1","meta":{"id":"m1","versionId":"1",)"
      R"("tag":[ {"system":"http://example.org/t", "code":"vip"} ],)"
      R"("security":[ {"code":"R"} ],"profile":["http://example.org/hiv-registry"],)"
      R"("source":"http://example.org/hiv-unit","lastUpdated":"2026-01-02T03:04:05Z",)"
      R"("extension":[{"url":"http://example.org/x","valueString":"hiv"}],)"
      R"("_versionId":{"id":"v"}},"gender":"male","telecom":[]})";
  EXPECT_EQ(Minimize(patient, ElementMask::Only({"gender"})),
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)"
            R"("security":[ {"code":"R"} ],"lastUpdated":"2026-01-02T03:04:05Z","tag":[)" +
                std::string(kSubsetted) + R"(]},"gender":"male"})");
  // Every element visible: meta beyond the minimum is still hidden, and the result tagged.
  EXPECT_EQ(Minimize(patient, ElementMask::Only({"gender", "telecom"})),
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)"
            R"("security":[ {"code":"R"} ],"lastUpdated":"2026-01-02T03:04:05Z","tag":[)" +
                std::string(kSubsetted) + R"(]},"gender":"male","telecom":[]})");
  // A minimal meta and nothing hidden: the input, byte for byte.
  const std::string plain =
      R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1",)"
      R"("lastUpdated":"2026-01-02T03:04:05Z","security":[]},"gender":"male"})";
  EXPECT_EQ(Minimize(plain, ElementMask::Only({"gender"})), plain);
}

TEST(MinimizeTest, ClientNarrowingKeepsMetaAndOnlyAddsTheTag) {
  const std::string patient =
      R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1","profile":["http://p"],)"
      R"("tag":[{"code":"vip"}],"source":"s"},"gender":"male","telecom":[]})";
  Result<std::string> subset =
      SubsetResource(patient, [](std::string_view key) { return key == "gender"; });
  ASSERT_TRUE(subset.ok()) << subset.status().message();
  EXPECT_EQ(subset.value(),
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1","profile":["http://p"],)"
            R"("tag":[{"code":"vip"},)" +
                std::string(kSubsetted) + R"(],"source":"s"},"gender":"male"})");
}

TEST(MinimizeTest, FillsAnEmptyTagArray) {
  const std::string patient =
      R"({"resourceType":"Patient","id":"p1","meta":{"tag":[ ]},"telecom":[]})";
  EXPECT_EQ(
      Minimize(patient, ElementMask::Only({"gender"})),
      R"({"resourceType":"Patient","id":"p1","meta":{"tag":[)" + std::string(kSubsetted) + "]}}");
}

TEST(MinimizeTest, CreatesMetaAfterIdOrResourceType) {
  EXPECT_EQ(Minimize(R"({"resourceType":"Patient","id":"p1","gender":"male","telecom":[]})",
                     ElementMask::Only({"gender"})),
            R"({"resourceType":"Patient","id":"p1","meta":{"tag":[)" + std::string(kSubsetted) +
                R"(]},"gender":"male"})");
  EXPECT_EQ(Minimize(R"({"resourceType":"Patient","gender":"male","telecom":[]})",
                     ElementMask::Only({"gender"})),
            R"({"resourceType":"Patient","meta":{"tag":[)" + std::string(kSubsetted) +
                R"(]},"gender":"male"})");
}

TEST(MinimizeTest, ReturnsIdenticalBytesWhenNothingIsHidden) {
  const std::string spaced =
      " {\n  \"resourceType\" : \"Observation\",\n  \"valueQuantity\": "
      "{ \"value\": 72.50 } ,\"status\":\"final\" }\n";
  EXPECT_EQ(Minimize(spaced, ElementMask::Everything()), spaced);
  EXPECT_EQ(Minimize(kPatient, ElementMask::Everything()), kPatient);
  EXPECT_EQ(Minimize(spaced, ElementMask::Only({"status", "value[x]"})), spaced);
}

TEST(MinimizeTest, ChoiceElementMatchesItsVariants) {
  const std::string observation =
      R"({"resourceType":"Observation","id":"o1","status":"final",)"
      R"("code":{"text":"weight"},"valueQuantity":{"value":72.50,"unit":"kg"},)"
      R"("effectiveDateTime":"2026-01-01","_effectiveDateTime":{"id":"e"}})";
  EXPECT_EQ(Minimize(observation, ElementMask::Only({"status", "code", "value[x]"})),
            R"({"resourceType":"Observation","id":"o1","meta":{"tag":[)" + std::string(kSubsetted) +
                R"(]},"status":"final","code":{"text":"weight"},)"
                R"("valueQuantity":{"value":72.50,"unit":"kg"}})");
}

TEST(MinimizeTest, RejectsTextThatIsNotAResource) {
  const ElementMask mask = ElementMask::Only({"name"});
  Result<std::string> truncated = MinimizeResource(R"({"name":)", mask);
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(truncated.status().message(), "malformed JSON");
  Result<std::string> array = MinimizeResource("[1]", mask);
  ASSERT_FALSE(array.ok());
  EXPECT_EQ(array.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(array.status().message(), "a resource must be a JSON object");
  Result<std::string> bad_meta =
      MinimizeResource(R"({"resourceType":"Patient","meta":[],"gender":"x"})", mask);
  ASSERT_FALSE(bad_meta.ok());
  EXPECT_EQ(bad_meta.status().message(), "meta is not a JSON object");
  Result<std::string> bad_tag =
      MinimizeResource(R"({"resourceType":"Patient","meta":{"tag":{}},"gender":"x"})", mask);
  ASSERT_FALSE(bad_tag.ok());
  EXPECT_EQ(bad_tag.status().message(), "meta.tag is not a JSON array");
}

TEST(CheckWritableTest, AllowsElementsInTheWriteMask) {
  const ElementMask mask = ElementMask::Only({"name", "birthDate", "gender"});
  EXPECT_TRUE(CheckWritable(
                  R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},)"
                  R"("name":[{"family":"Doe"}],"birthDate":"1970-01-01","_birthDate":{"id":"b"}})",
                  mask)
                  .ok());
  EXPECT_TRUE(CheckWritable(kPatient, ElementMask::Everything()).ok());
}

TEST(CheckWritableTest, NamesTheFirstForbiddenElement) {
  const ElementMask mask = ElementMask::Only({"name", "gender"});
  Status status = CheckWritable(
      R"({"resourceType":"Patient","name":[],"telecom":[],"birthDate":"1970-01-01"})", mask);
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "writing Patient.telecom is not permitted for this role");
  EXPECT_EQ(status.expression(), "Patient.telecom");

  status = CheckWritable(R"({"resourceType":"Patient","_birthDate":{"id":"b"}})", mask);
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "writing Patient.birthDate is not permitted for this role");

  status = CheckWritable(kPatient, mask);
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "writing Patient.text is not permitted for this role");
}

TEST(CheckWritableTest, NeverEchoesAKeyThatIsNotAnElementName) {
  Status status = CheckWritable(R"({"resourceType":"Patient","Jane Doe 555-0100":1})",
                                ElementMask::Only({"name"}));
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "writing an element of Patient is not permitted for this role");
  EXPECT_EQ(status.expression(), "");
}

TEST(CheckWritableTest, RequiresAResourceType) {
  Status status = CheckWritable(R"({"name":[]})", ElementMask::Only({"name"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the resource has no valid resourceType");
  status = CheckWritable("{", ElementMask::Only({"name"}));
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "malformed JSON");
}

TEST(SubsetResourceTest, KeepsWhatTheCallerSaysIncludingTheNarrative) {
  Result<std::string> subset = SubsetResource(
      kPatient, [](std::string_view key) { return key == "text" || key == "gender"; });
  ASSERT_TRUE(subset.ok()) << subset.status().message();
  EXPECT_EQ(
      subset.value(),
      R"({"resourceType":"Patient","id":"p1",)"
      R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z","tag":[)" +
          std::string(kSubsetted) +
          R"(]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
          R"("gender":"female"})");
}

TEST(SubsetResourceTest, AlwaysKeepsResourceTypeIdMetaAndIsIdentityWhenNothingGoes) {
  Result<std::string> subset =
      SubsetResource(R"({"resourceType":"Patient","id":"p1","gender":"male"})",
                     [](std::string_view) { return false; });
  ASSERT_TRUE(subset.ok());
  EXPECT_EQ(subset.value(), R"({"resourceType":"Patient","id":"p1","meta":{"tag":[)" +
                                std::string(kSubsetted) + "]}}");
  const std::string spaced = R"( {"resourceType" : "Patient", "id":"p1"} )";
  subset = SubsetResource(spaced, [](std::string_view) { return false; });
  ASSERT_TRUE(subset.ok());
  EXPECT_EQ(subset.value(), spaced);
  subset = SubsetResource("[", [](std::string_view) { return true; });
  ASSERT_FALSE(subset.ok());
  EXPECT_EQ(subset.status().message(), "malformed JSON");
}

const std::string kStoredForUpdate =
    R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"3"},)"
    R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
    R"("name":[{"family":"Doe"}],"telecom":[{"system":"phone","value":"555-0100"}],)"
    R"("gender":"female","birthDate":"1970-01-01","_birthDate":{"id":"b"}})";

TEST(CheckWritableUpdateTest, UnchangedForbiddenElementsAreFine) {
  const ElementMask write = ElementMask::Only({"name"});
  // telecom, gender, birthDate and text come back unchanged (other layout, key order and
  // whitespace); name changes; meta and id are the handler's business.
  const std::string update =
      R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"9","tag":[{"code":"x"}]},)"
      R"("_birthDate":{"id":"b"},"birthDate":"1970-01-01",)"
      R"("name":[{"family":"Smith"}],"telecom":[{"value":"555-0100", "system":"phone"}],)"
      R"("gender":"female",)"
      R"("text":{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>","status":"generated"}})";
  EXPECT_TRUE(CheckWritableUpdate(update, kStoredForUpdate, write).ok());
  EXPECT_TRUE(CheckWritableUpdate(kStoredForUpdate, kStoredForUpdate, ElementMask::Only({})).ok());
  EXPECT_TRUE(CheckWritableUpdate("{", "[", ElementMask::Everything()).ok());  // no look
}

TEST(CheckWritableUpdateTest, ChangedAddedOrRemovedForbiddenElementIsDenied) {
  const ElementMask write = ElementMask::Only({"name", "text"});
  struct Case {
    std::string update;
    std::string message;
  };
  const std::string head =
      R"({"resourceType":"Patient","id":"p1",)"
      R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
      R"("name":[{"family":"Doe"}],)";
  const Case cases[] = {
      // changed
      {head + R"("telecom":[{"system":"phone","value":"555-0199"}],"gender":"female",)"
              R"("birthDate":"1970-01-01","_birthDate":{"id":"b"}})",
       "writing Patient.telecom is not permitted for this role"},
      // removed
      {head + R"("telecom":[{"system":"phone","value":"555-0100"}],)"
              R"("birthDate":"1970-01-01","_birthDate":{"id":"b"}})",
       "writing Patient.gender is not permitted for this role"},
      // added
      {head + R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
              R"("birthDate":"1970-01-01","_birthDate":{"id":"b"},"active":true})",
       "writing Patient.active is not permitted for this role"},
      // only the primitive extension sibling changed
      {head + R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
              R"("birthDate":"1970-01-01","_birthDate":{"id":"c"}})",
       "writing Patient.birthDate is not permitted for this role"},
  };
  for (const Case& c : cases) {
    const Status status = CheckWritableUpdate(c.update, kStoredForUpdate, write);
    EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << c.message;
    EXPECT_EQ(status.message(), c.message);
  }
  // The narrative counts as the element text.
  const Status status = CheckWritableUpdate(
      R"({"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}],)"
      R"("telecom":[{"system":"phone","value":"555-0100"}],"gender":"female",)"
      R"("birthDate":"1970-01-01","_birthDate":{"id":"b"}})",
      kStoredForUpdate, ElementMask::Only({"name", "telecom", "gender", "birthDate"}));
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), "writing Patient.text is not permitted for this role");
  EXPECT_EQ(status.expression(), "Patient.text");
}

// The documented order: hidden elements are merged back first, so a role that cannot see
// telecom (and so omitted it) is not charged with removing it.
TEST(CheckWritableUpdateTest, AfterPreserveHiddenOmittedHiddenElementsAreNoChange) {
  const ElementMask read = ElementMask::Only({"name", "gender", "birthDate"});
  const ElementMask write = ElementMask::Only({"name"});
  const std::string update =
      R"({"resourceType":"Patient","id":"p1","name":[{"family":"Smith"}],"gender":"female",)"
      R"("birthDate":"1970-01-01","_birthDate":{"id":"b"}})";
  EXPECT_EQ(CheckWritableUpdate(update, kStoredForUpdate, write).message(),
            "writing Patient.text is not permitted for this role");
  Result<std::string> merged = PreserveHidden(update, kStoredForUpdate, read);
  ASSERT_TRUE(merged.ok());
  EXPECT_TRUE(CheckWritableUpdate(merged.value(), kStoredForUpdate, write).ok());
}

TEST(CheckWritableUpdateTest, RejectsMalformedInput) {
  const ElementMask write = ElementMask::Only({"name"});
  Status status = CheckWritableUpdate("{", kStoredForUpdate, write);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "malformed JSON");
  status = CheckWritableUpdate(kStoredForUpdate, "[]", write);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "a resource must be a JSON object");
  status = CheckWritableUpdate(R"({"name":[]})", kStoredForUpdate, write);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the resource has no valid resourceType");
}

// Billing sees demographics but not extensions, telecom or the narrative.
const ElementMask kBillingRead =
    ElementMask::Only({"name", "birthDate", "gender", "address", "identifier"});

const std::string kStored =
    R"({"resourceType":"Patient","id":"p1",)"
    R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z"},)"
    R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
    R"("extension":[{"url":"http://example.org/weight","valueDecimal":72.50}],)"
    R"("name":[{"family":"Doe"}],"telecom":[{"system":"phone","value":"555-0100"}],)"
    R"("gender":"female","birthDate":"1970-01-01"})";

TEST(PreserveHiddenTest, KeepsHiddenElementsAndTakesVisibleOnesFromTheClient) {
  // The client echoes its minimized read (SUBSETTED tag), renames, omits birthDate and
  // tries to replace telecom, which it cannot see.
  const std::string update =
      R"({"resourceType":"Patient","id":"p1",)"
      R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z",)"
      R"("tag":[{"system":"http://example.org/t","code":"vip"},)" +
      std::string(kSubsetted) +
      R"(]},"name":[{"family":"Smith", "given":["Jane"]}],"gender":"female",)"
      R"("telecom":[{"system":"email","value":"x@example.org"}]})";
  Result<std::string> merged = PreserveHidden(update, kStored, kBillingRead);
  ASSERT_TRUE(merged.ok()) << merged.status().message();
  EXPECT_EQ(
      merged.value(),
      R"({"resourceType":"Patient","id":"p1",)"
      R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z",)"
      R"("tag":[{"system":"http://example.org/t","code":"vip"}]},)"
      R"("name":[{"family":"Smith", "given":["Jane"]}],"gender":"female",)"
      R"("text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane</div>"},)"
      R"("extension":[{"url":"http://example.org/weight","valueDecimal":72.50}],)"
      R"("telecom":[{"system":"phone","value":"555-0100"}]})");
}

TEST(PreserveHiddenTest, DropsMetaThatHeldOnlyTheSubsettedTag) {
  const std::string update = R"({"resourceType":"Patient","id":"p1","meta":{"tag":[)" +
                             std::string(kSubsetted) + R"(]},"gender":"male"})";
  Result<std::string> merged =
      PreserveHidden(update, R"({"resourceType":"Patient","id":"p1","telecom":[]})", kBillingRead);
  ASSERT_TRUE(merged.ok()) << merged.status().message();
  EXPECT_EQ(merged.value(), R"({"resourceType":"Patient","id":"p1","gender":"male","telecom":[]})");
}

TEST(PreserveHiddenTest, UnrestrictedMaskTakesTheClientResourceAsSent) {
  const std::string update = R"( {"resourceType":"Patient", "gender":"male"} )";
  Result<std::string> merged = PreserveHidden(update, kStored, ElementMask::Everything());
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(merged.value(), update);
}

TEST(PreserveHiddenTest, RejectsMalformedInput) {
  Result<std::string> merged = PreserveHidden("{", kStored, kBillingRead);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(merged.status().message(), "malformed JSON");
  merged = PreserveHidden(kStored, "[]", kBillingRead);
  ASSERT_FALSE(merged.ok());
  EXPECT_EQ(merged.status().message(), "a resource must be a JSON object");
}

TEST(ApplyElementsParamTest, KeepsListedAndMandatoryElements) {
  Result<std::string> narrowed = ApplyElementsParam(kPatient, {"birthDate"});
  ASSERT_TRUE(narrowed.ok());
  EXPECT_EQ(
      narrowed.value(),
      R"({"resourceType":"Patient","id":"p1",)"
      R"("meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05.678Z","tag":[)" +
          std::string(kSubsetted) +
          R"(]},"birthDate":"1970-01-01",)"
          R"("_birthDate":{"extension":[{"url":"http://example.org/p","valueDecimal":1.50}]}})");
}

TEST(ApplyElementsParamTest, ListingEveryElementChangesNothing) {
  Result<std::string> narrowed =
      ApplyElementsParam(kPatient, {"text", "name", "telecom", "birthDate", "gender"});
  ASSERT_TRUE(narrowed.ok());
  EXPECT_EQ(narrowed.value(), kPatient);
}

}  // namespace
}  // namespace phigate::policy

// The read path minimizes by a text scan (no parse); the parsing path is the reference.
// Both must give the same bytes for every input the server can hold, and the scan must
// never let a hidden element through (escaped names, duplicates and odd meta shapes go to
// the parsing path).
namespace phigate::policy {
namespace {

TEST(MinimizeScanTest, SameBytesAsTheParsingPathAndNothingHiddenLeaks) {
  const std::vector<std::string> inputs = {
      R"({"resourceType":"Patient","id":"p","gender":"male","birthDate":"1970-01-01"})",
      R"({"resourceType":"Patient","gender":"male","text":{"status":"generated","div":"<div>x</div>"}})",
      R"({"gender":"male","maritalStatus":{"text":"M"}})",
      R"( { "resourceType" : "Patient" , "id" : "p" , "meta" : { "versionId" : "2" } , )"
      R"("gender" : "male" , "photo" : [ { "data" : "AAAA" } ] } )",
      R"({"resourceType":"Patient","meta":{"tag":[]},"gender":"male","photo":[]})",
      R"({"resourceType":"Patient","meta":{"tag":[ ]},"gender":"male","photo":[]})",
      R"({"resourceType":"Patient","meta":{"tag":[{"code":"a"}],"security":[{"code":"R"}]},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"security":[{"code":"R"}]},"photo":[],"gender":"x"})",
      // A tag list that already holds SUBSETTED (a minimized resource minimized again).
      R"({"resourceType":"Patient","meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED"}]},"photo":[]})",
      // Escaped member names: decoded, they are hidden elements and the narrative.
      R"({"resourceType":"Patient","te\u0078t":{"status":"generated","div":"<div>x</div>"},"gender":"male"})",
      R"({"resourceType":"Patient","generalPr\u0061ctitioner":[{"reference":"Practitioner/1"}],"gender":"m"})",
      R"({"resourceType":"Patient","gender":"male","_gender":{"extension":[]},"_birthDate":{"id":"x"}})",
      R"({"resourceType":"Patient","gender":"male","contact":[{"name":{"text":"}\"]{"}}]})",
      R"({"resourceType":"Patient","id":"p","extension":[{"url":"u","valueString":"a\\\"b"}],"gender":"f"})",
      // meta variants: everything but versionId, lastUpdated and security goes.
      R"({"resourceType":"Patient","id":"p","meta":{"source":"http://hiv-unit","versionId":"1"},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"profile":["http://hiv-registry"],"lastUpdated":"2026-01-01T00:00:00Z"},"gender":"m","photo":[]})",
      R"({"resourceType":"Patient","meta":{"extension":[{"url":"u","valueString":"}"}],"security":[{"code":"V"}]},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"tag":[{"code":"hiv"}, {"code":"SUBSETTED"}]},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"security" : [ {"code":"R"} ] , "tag":[{"code":"x"}],"id":"m"},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"versionId":"1","_versionId":{"extension":[]},"lastUpdated":"2026-01-01T00:00:00Z","security":[],"tag":[],"profile":[],"source":"s"},"photo":[]})",
      R"({"resourceType":"Patient","meta":{},"photo":[]})",
      // Shapes the scan leaves to the parsing path: escaped or repeated meta names, a tag
      // or meta of another kind.
      R"({"resourceType":"Patient","meta":{"versionI\u0064":"1","sourc\u0065":"s"},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"source":"a","source":"b"},"photo":[]})",
      R"({"resourceType":"Patient","meta":{"tag":{}},"photo":[]})",
      R"({"resourceType":"Patient","meta":[],"photo":[]})",
  };
  const std::vector<ElementMask> masks = {
      ElementMask::Only({"gender"}),
      ElementMask::Only({"gender", "birthDate", "text"}),
      ElementMask::Only({"name", "telecom"}),
  };
  for (const std::string& input : inputs) {
    for (const ElementMask& mask : masks) {
      Result<std::string> fast = MinimizeResource(input, mask);
      Result<std::string> slow = internal::MinimizeResourceByParse(input, mask);
      ASSERT_EQ(fast.ok(), slow.ok()) << input;
      if (!fast.ok()) continue;
      EXPECT_EQ(fast.value(), slow.value()) << input;
      // Nothing the mask hides is left at the top level, whatever its spelling, nor the
      // narrative once anything was removed.
      const bool removed = fast.value() != input;
      auto parsed = boost::json::parse(fast.value());
      for (const auto& member : parsed.as_object()) {
        const std::string_view key = member.key();
        EXPECT_TRUE(mask.Allows(key)) << key << " in " << fast.value();
        EXPECT_FALSE(removed && key == "text") << fast.value();
      }
      // Once anything was removed, meta holds only versionId, lastUpdated, security and
      // a tag list of exactly SUBSETTED.
      if (removed) {
        const boost::json::object& meta = parsed.as_object().at("meta").as_object();
        for (const auto& member : meta) {
          const std::string_view key = member.key();
          EXPECT_TRUE(key == "versionId" || key == "lastUpdated" || key == "security" ||
                      key == "tag")
              << key << " in " << fast.value();
        }
        EXPECT_EQ(boost::json::serialize(meta.at("tag")), "[" + std::string(kSubsetted) + "]");
      }
    }
  }
  // Duplicate member names are refused (by the parsing path the scan defers to).
  EXPECT_FALSE(
      MinimizeResource(R"({"resourceType":"Patient","gender":"a","gender":"b","photo":[]})",
                       ElementMask::Only({"gender"}))
          .ok());
}

}  // namespace
}  // namespace phigate::policy

// Writing meta under an element policy: only versionId/lastUpdated pass unlisted, and an
// update keeps the stored meta (issue 4 §3).
namespace phigate::policy {
namespace {

TEST(ElementMaskTest, ListsOnlyWhatThePolicyNames) {
  const ElementMask mask = ElementMask::Only({"value[x]", "status"});
  EXPECT_FALSE(mask.Lists("meta"));
  EXPECT_FALSE(mask.Lists("id"));
  EXPECT_FALSE(mask.Lists("resourceType"));
  EXPECT_TRUE(mask.Lists("status"));
  EXPECT_TRUE(mask.Lists("_status"));
  EXPECT_TRUE(mask.Lists("valueQuantity"));
  EXPECT_FALSE(mask.Lists("value"));
  EXPECT_FALSE(mask.Lists("code"));
  EXPECT_TRUE(ElementMask::Only({"meta"}).Lists("meta"));
  EXPECT_TRUE(ElementMask::Everything().Lists("meta"));
  // Only one leading underscore marks an extension sibling.
  EXPECT_FALSE(mask.Lists("__status"));
  EXPECT_FALSE(mask.Allows("__status"));
}

TEST(CheckWritableMetaTest, VersionAndTimeAreNoWrite) {
  const ElementMask mask = ElementMask::Only({"gender"});
  EXPECT_TRUE(CheckWritable(R"({"resourceType":"Patient","meta":{"versionId":"1",)"
                            R"("lastUpdated":"2026-01-01T00:00:00Z"},"gender":"male"})",
                            mask)
                  .ok());
  EXPECT_TRUE(CheckWritable(R"({"resourceType":"Patient","meta":{},"gender":"male"})", mask).ok());
}

TEST(CheckWritableMetaTest, AnythingElseInMetaIsAWriteOfMeta) {
  const ElementMask mask = ElementMask::Only({"gender"});
  for (const std::string meta :
       {R"({"profile":["http://example.org/hiv-registry"]})", R"({"versionId":"1","tag":[]})",
        R"({"security":[{"code":"R"}]})", R"({"source":"s"})",
        R"({"extension":[{"url":"u","valueString":"x"}]})", R"({"_versionId":{"id":"x"}})",
        R"({"id":"m"})", R"([])", R"("x")"}) {
    const Status status =
        CheckWritable(R"({"resourceType":"Patient","meta":)" + meta + R"(,"gender":"male"})", mask);
    EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << meta;
    EXPECT_EQ(status.message(), "writing Patient.meta is not permitted for this role") << meta;
    EXPECT_EQ(status.expression(), "Patient.meta") << meta;
  }
  // The first forbidden member in document order is the one reported.
  const Status status =
      CheckWritable(R"({"resourceType":"Patient","telecom":[],"meta":{"source":"s"}})", mask);
  EXPECT_EQ(status.message(), "writing Patient.telecom is not permitted for this role");
}

TEST(CheckWritableMetaTest, AllowedWhenListedOrUnrestricted) {
  const std::string patient =
      R"({"resourceType":"Patient","meta":{"profile":["http://p"],"tag":[{"code":"t"}]},)"
      R"("gender":"male"})";
  EXPECT_TRUE(CheckWritable(patient, ElementMask::Only({"gender", "meta"})).ok());
  EXPECT_TRUE(CheckWritable(patient, ElementMask::Everything()).ok());
}

std::string KeepMeta(std::string_view new_json, std::string_view stored_json) {
  Result<std::string> result = KeepStoredMeta(new_json, stored_json);
  EXPECT_TRUE(result.ok()) << result.status().message();
  return result.ok() ? result.value() : std::string();
}

TEST(KeepStoredMetaTest, ReplacesTheClientsMetaWithTheStoredOne) {
  EXPECT_EQ(KeepMeta(R"({"resourceType":"Patient","id":"p1","meta":{"profile":["http://x"]},)"
                     R"("gender" : "male","telecom":[ ]})",
                     R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"3", )"
                     R"("security":[{"code":"R"}]},"gender":"female"})"),
            R"({"resourceType":"Patient","id":"p1","meta":{"versionId":"3", )"
            R"("security":[{"code":"R"}]},"gender":"male","telecom":[ ]})");
}

TEST(KeepStoredMetaTest, RemovesMetaWhenTheStoredHasNone) {
  EXPECT_EQ(KeepMeta(R"({"resourceType":"Patient","id":"p1","meta":{"tag":[{"code":"t"}]},)"
                     R"("gender":"male"})",
                     R"({"resourceType":"Patient","id":"p1","gender":"female"})"),
            R"({"resourceType":"Patient","id":"p1","gender":"male"})");
}

TEST(KeepStoredMetaTest, AddsTheStoredMetaInTheCanonicalPlace) {
  const std::string stored =
      R"({"resourceType":"Patient","id":"p1","meta":{"security":[{"code":"V"}]},"gender":"f"})";
  EXPECT_EQ(KeepMeta(R"({"gender":"male","resourceType":"Patient","id":"p1"})", stored),
            R"({"gender":"male","resourceType":"Patient","id":"p1",)"
            R"("meta":{"security":[{"code":"V"}]}})");
  EXPECT_EQ(KeepMeta(R"({"resourceType":"Patient","gender":"male"})", stored),
            R"({"resourceType":"Patient","meta":{"security":[{"code":"V"}]},"gender":"male"})");
  EXPECT_EQ(KeepMeta(R"({"gender":"male"})", stored),
            R"({"meta":{"security":[{"code":"V"}]},"gender":"male"})");
}

TEST(KeepStoredMetaTest, IdenticalBytesWhenNeitherHasMeta) {
  const std::string spaced = R"( { "resourceType" : "Patient" , "gender":"male" } )";
  EXPECT_EQ(KeepMeta(spaced, R"({"resourceType":"Patient"})"), spaced);
}

TEST(KeepStoredMetaTest, RejectsTextThatIsNotAResource) {
  Result<std::string> result = KeepStoredMeta("{", R"({"resourceType":"Patient"})");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "malformed JSON");
  result = KeepStoredMeta(R"({"resourceType":"Patient"})", "[1]");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().message(), "a resource must be a JSON object");
}

}  // namespace
}  // namespace phigate::policy
