#include "fhir/search_param_defs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fhir/model.h"

namespace phigate::fhir {
namespace {

using ::testing::ElementsAreArray;
using ::testing::IsSupersetOf;

// The row count the generator prints in src/fhir/generated/search_param_defs.cc's header
// ("1708 rows"): every 4.0.1 parameter once per base. A change upstream shows up here.
constexpr std::size_t kExpectedRows = 1708;

// Splits an expression on the " | " the generator joins parts with. A " | " inside a part
// would be split here too, and its second half fail the root check below.
std::vector<std::string_view> Parts(std::string_view expression) {
  std::vector<std::string_view> parts;
  while (!expression.empty()) {
    const std::size_t bar = expression.find(" | ");
    parts.push_back(expression.substr(0, bar));
    if (bar == std::string_view::npos) break;
    expression.remove_prefix(bar + 3);
  }
  return parts;
}

std::vector<std::string_view> Codes(std::span<const SearchParamDef* const> params) {
  std::vector<std::string_view> codes;
  for (const SearchParamDef* p : params) codes.push_back(p->code);
  return codes;
}

TEST(SearchParamDefsTest, TableHasTheGeneratedRowCount) {
  EXPECT_EQ(AllSearchParamDefs().size(), kExpectedRows);
  EXPECT_EQ(internal::kSearchParamDefCount, kExpectedRows);
  EXPECT_EQ(AllSearchParamDefs().data(), internal::kSearchParamDefs);
}

TEST(SearchParamDefsTest, TableIsSortedByBaseThenCodeWithoutDuplicates) {
  const std::span<const SearchParamDef> rows = AllSearchParamDefs();
  for (std::size_t i = 1; i < rows.size(); ++i) {
    EXPECT_LT(std::tie(rows[i - 1].base, rows[i - 1].code), std::tie(rows[i].base, rows[i].code))
        << rows[i].base << " " << rows[i].code;
  }
}

TEST(SearchParamDefsTest, EveryBaseIsAResourceTypeOfTheModel) {
  const Model& model = Model::R4();
  for (const SearchParamDef& row : AllSearchParamDefs()) {
    const TypeDef* type = model.FindType(row.base);
    ASSERT_NE(type, nullptr) << row.base;
    EXPECT_EQ(type->kind, TypeKind::kResource) << row.base;
  }
}

// Each row keeps only its own base's parts of a shared expression; the one parameter whose
// parts name no type (InsurancePlan-name, "name | alias") is the exception the generated
// header lists.
TEST(SearchParamDefsTest, EveryExpressionPartIsRootedAtItsBase) {
  std::size_t unrooted_rows = 0;
  for (const SearchParamDef& row : AllSearchParamDefs()) {
    if (row.expression.empty()) continue;
    if (row.id == "InsurancePlan-name") {
      EXPECT_EQ(row.expression, "name | alias");
      ++unrooted_rows;
      continue;
    }
    for (std::string_view part : Parts(row.expression)) {
      std::string_view rest = part;
      while (rest.starts_with('(')) rest.remove_prefix(1);
      ASSERT_TRUE(rest.starts_with(row.base)) << row.base << " " << row.code << ": " << part;
      rest.remove_prefix(row.base.size());
      // "Observation" must not pass as the root of "ObservationDefinition.x".
      EXPECT_TRUE(rest.empty() || rest[0] == '.' || rest[0] == ')' || rest[0] == ' ')
          << row.base << " " << row.code << ": " << part;
    }
  }
  EXPECT_EQ(unrooted_rows, 1u);
}

TEST(SearchParamDefsTest, OnlyContentTextAndQueryHaveNoExpression) {
  std::vector<std::string> empty;
  for (const SearchParamDef& row : AllSearchParamDefs()) {
    if (row.expression.empty())
      empty.push_back(std::string(row.base) + " " + std::string(row.code));
  }
  EXPECT_THAT(empty,
              ElementsAreArray({"DomainResource _text", "Resource _content", "Resource _query"}));
}

// Targets come from SearchParameter.target, which every reference parameter but one sets
// (RequestGroup-instantiates-canonical publishes none: any type).
TEST(SearchParamDefsTest, OnlyReferenceParametersHaveTargets) {
  std::size_t references = 0;
  std::vector<std::string> untargeted;
  for (const SearchParamDef& row : AllSearchParamDefs()) {
    if (row.type == SearchParamType::kReference) {
      ++references;
      if (row.targets.empty())
        untargeted.push_back(std::string(row.base) + " " + std::string(row.code));
    } else {
      EXPECT_EQ(row.targets, "") << row.base << " " << row.code;
    }
  }
  EXPECT_EQ(references, 517u);  // "reference 517" in the generated header
  EXPECT_THAT(untargeted, ElementsAreArray({"RequestGroup instantiates-canonical"}));
}

TEST(SearchParamDefsTest, FindsPatientBirthdate) {
  const SearchParamDef* p = FindSearchParam("Patient", "birthdate");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->base, "Patient");
  EXPECT_EQ(p->code, "birthdate");
  EXPECT_EQ(p->id, "individual-birthdate");
  EXPECT_EQ(p->type, SearchParamType::kDate);
  EXPECT_EQ(p->expression, "Patient.birthDate");
  EXPECT_EQ(p->targets, "");
}

// individual-birthdate is "Patient.birthDate | Person.birthDate | RelatedPerson.birthDate":
// each base gets its own part only.
TEST(SearchParamDefsTest, SharedDefinitionIsSplitPerBase) {
  const SearchParamDef* person = FindSearchParam("Person", "birthdate");
  ASSERT_NE(person, nullptr);
  EXPECT_EQ(person->id, "individual-birthdate");
  EXPECT_EQ(person->expression, "Person.birthDate");
  const SearchParamDef* family = FindSearchParam("Practitioner", "family");
  ASSERT_NE(family, nullptr);
  EXPECT_EQ(family->id, "individual-family");
  EXPECT_EQ(family->expression, "Practitioner.name.family");
  EXPECT_EQ(family->type, SearchParamType::kString);
}

TEST(SearchParamDefsTest, FindsObservationPatientWithItsTargets) {
  const SearchParamDef* p = FindSearchParam("Observation", "patient");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->id, "clinical-patient");
  EXPECT_EQ(p->type, SearchParamType::kReference);
  EXPECT_EQ(p->expression, "Observation.subject.where(resolve() is Patient)");
  EXPECT_EQ(p->targets, "Patient");

  const SearchParamDef* subject = FindSearchParam("Observation", "subject");
  ASSERT_NE(subject, nullptr);
  EXPECT_EQ(subject->expression, "Observation.subject");
  EXPECT_EQ(subject->targets, "Group Device Patient Location");
}

TEST(SearchParamDefsTest, KeepsParenthesizedPartsVerbatim) {
  const SearchParamDef* p = FindSearchParam("Observation", "value-quantity");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->id, "Observation-value-quantity");
  EXPECT_EQ(p->type, SearchParamType::kQuantity);
  EXPECT_EQ(p->expression,
            "(Observation.value.ofType(Quantity)) | (Observation.value.ofType(SampledData))");

  const SearchParamDef* composite = FindSearchParam("Observation", "code-value-quantity");
  ASSERT_NE(composite, nullptr);
  EXPECT_EQ(composite->type, SearchParamType::kComposite);
  EXPECT_EQ(composite->expression, "Observation");
}

TEST(SearchParamDefsTest, FallsBackToResourceParameters) {
  const SearchParamDef* p = FindSearchParam("Patient", "_id");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->base, "Resource");
  EXPECT_EQ(p->id, "Resource-id");
  EXPECT_EQ(p->type, SearchParamType::kToken);
  EXPECT_EQ(p->expression, "Resource.id");

  const SearchParamDef* bundle_id = FindSearchParam("Bundle", "_id");
  EXPECT_EQ(bundle_id, p);
  const SearchParamDef* last_updated = FindSearchParam("Observation", "_lastUpdated");
  ASSERT_NE(last_updated, nullptr);
  EXPECT_EQ(last_updated->base, "Resource");
  EXPECT_EQ(last_updated->type, SearchParamType::kDate);
  EXPECT_EQ(last_updated->expression, "Resource.meta.lastUpdated");
}

TEST(SearchParamDefsTest, FallsBackToDomainResourceExceptForResourceOnlyTypes) {
  const SearchParamDef* p = FindSearchParam("Patient", "_text");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->base, "DomainResource");
  EXPECT_EQ(p->id, "DomainResource-text");
  EXPECT_EQ(p->type, SearchParamType::kString);
  EXPECT_EQ(p->expression, "");
  // Bundle, Binary and Parameters derive from Resource directly (they have no narrative).
  EXPECT_EQ(FindSearchParam("Bundle", "_text"), nullptr);
  EXPECT_EQ(FindSearchParam("Binary", "_text"), nullptr);
  EXPECT_EQ(FindSearchParam("Parameters", "_text"), nullptr);
}

TEST(SearchParamDefsTest, UnknownCodeOrTypeIsNotFound) {
  EXPECT_EQ(FindSearchParam("Patient", "no-such-code"), nullptr);
  EXPECT_EQ(FindSearchParam("Patient", ""), nullptr);
  // Another type's parameter is not the Patient's.
  EXPECT_EQ(FindSearchParam("Patient", "value-quantity"), nullptr);
  // Lookups are exact: no case folding, no modifier stripping.
  EXPECT_EQ(FindSearchParam("Patient", "Birthdate"), nullptr);
  EXPECT_EQ(FindSearchParam("Patient", "birthdate:missing"), nullptr);
  EXPECT_EQ(FindSearchParam("NoSuchType", "_id"), nullptr);
  EXPECT_EQ(FindSearchParam("patient", "birthdate"), nullptr);
  // A datatype is not a resource type, even where a resource shares the code.
  EXPECT_EQ(FindSearchParam("HumanName", "_id"), nullptr);
}

TEST(SearchParamDefsTest, AbstractTypesFindTheirOwnRows) {
  const SearchParamDef* text = FindSearchParam("DomainResource", "_text");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(text->base, "DomainResource");
  const SearchParamDef* id = FindSearchParam("DomainResource", "_id");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->base, "Resource");
  EXPECT_EQ(FindSearchParam("Resource", "_text"), nullptr);
}

TEST(SearchParamDefsTest, PatientParametersAreOwnThenInheritedEachOnce) {
  const std::vector<std::string_view> codes = Codes(SearchParamsOf("Patient"));
  EXPECT_THAT(codes,
              ElementsAreArray<std::string_view>(
                  {// Patient's own, sorted.
                   "active", "address", "address-city", "address-country", "address-postalcode",
                   "address-state", "address-use", "birthdate", "death-date", "deceased", "email",
                   "family", "gender", "general-practitioner", "given", "identifier", "language",
                   "link", "name", "organization", "phone", "phonetic", "telecom",
                   // DomainResource's, then Resource's.
                   "_text", "_content", "_id", "_lastUpdated", "_profile", "_query", "_security",
                   "_source", "_tag"}));
  EXPECT_THAT(codes, IsSupersetOf<std::string_view>({"_id", "name", "family"}));
  const std::set<std::string_view> unique(codes.begin(), codes.end());
  EXPECT_EQ(unique.size(), codes.size());
  // Each entry is the row FindSearchParam finds.
  for (const SearchParamDef* p : SearchParamsOf("Patient")) {
    EXPECT_EQ(FindSearchParam("Patient", p->code), p) << p->code;
  }
}

TEST(SearchParamDefsTest, BundleHasNoDomainResourceParameters) {
  EXPECT_THAT(Codes(SearchParamsOf("Bundle")),
              ElementsAreArray<std::string_view>(
                  {"composition", "identifier", "message", "timestamp", "type", "_content", "_id",
                   "_lastUpdated", "_profile", "_query", "_security", "_source", "_tag"}));
}

TEST(SearchParamDefsTest, EveryResourceTypeListsEachCodeOnceAsFindSearchParamDoes) {
  for (const std::string& type : Model::R4().ResourceTypes()) {
    const std::span<const SearchParamDef* const> params = SearchParamsOf(type);
    ASSERT_FALSE(params.empty()) << type;  // at least the Resource parameters
    std::set<std::string_view> codes;
    for (const SearchParamDef* p : params) {
      EXPECT_TRUE(codes.insert(p->code).second) << type << " " << p->code;
      EXPECT_EQ(FindSearchParam(type, p->code), p) << type << " " << p->code;
    }
    // Every row of the type itself is listed.
    for (const SearchParamDef& row : AllSearchParamDefs()) {
      if (row.base == type) {
        EXPECT_TRUE(codes.contains(row.code)) << type << " " << row.code;
      }
    }
  }
}

TEST(SearchParamDefsTest, UnknownTypeHasNoParameters) {
  EXPECT_TRUE(SearchParamsOf("NoSuchType").empty());
  EXPECT_TRUE(SearchParamsOf("").empty());
  EXPECT_TRUE(SearchParamsOf("HumanName").empty());
}

TEST(SearchParamDefsTest, TypeNames) {
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kNumber), "number");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kDate), "date");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kString), "string");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kToken), "token");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kReference), "reference");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kComposite), "composite");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kQuantity), "quantity");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kUri), "uri");
  EXPECT_EQ(SearchParamTypeName(SearchParamType::kSpecial), "special");
}

}  // namespace
}  // namespace phigate::fhir
