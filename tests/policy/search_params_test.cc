#include "policy/search_params.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fhir/model.h"

namespace phigate::policy {
namespace {

using Elements = std::vector<std::string>;

Elements Lookup(std::string_view type, std::string_view code) {
  const Elements* elements = SearchParamElements(type, code);
  EXPECT_NE(elements, nullptr) << type << " " << code;
  return elements == nullptr ? Elements{"<none>"} : *elements;
}

TEST(SearchParamElementsTest, PatientTelecomParametersReadTelecom) {
  EXPECT_EQ(Lookup("Patient", "phone"), Elements{"telecom"});
  EXPECT_EQ(Lookup("Patient", "email"), Elements{"telecom"});
  EXPECT_EQ(Lookup("Patient", "telecom"), Elements{"telecom"});
}

TEST(SearchParamElementsTest, PatientNameParametersReadName) {
  EXPECT_EQ(Lookup("Patient", "name"), Elements{"name"});
  EXPECT_EQ(Lookup("Patient", "family"), Elements{"name"});
  EXPECT_EQ(Lookup("Patient", "given"), Elements{"name"});
}

TEST(SearchParamElementsTest, PatientBirthdateReadsBirthDate) {
  EXPECT_EQ(Lookup("Patient", "birthdate"), Elements{"birthDate"});
}

TEST(SearchParamElementsTest, PatientDeceasedTestReadsTheChoiceElement) {
  // "Patient.deceased.exists() and Patient.deceased != false"
  EXPECT_EQ(Lookup("Patient", "deceased"), Elements{"deceased[x]"});
}

TEST(SearchParamElementsTest, ObservationParameters) {
  EXPECT_EQ(Lookup("Observation", "value-quantity"), Elements{"value[x]"});
  EXPECT_EQ(Lookup("Observation", "code"), Elements{"code"});
  EXPECT_EQ(Lookup("Observation", "patient"), Elements{"subject"});
  EXPECT_EQ(Lookup("Observation", "subject"), Elements{"subject"});
  // A composite over the resource itself reads what its components read.
  EXPECT_EQ(Lookup("Observation", "code-value-quantity"), (Elements{"code", "value[x]"}));
}

TEST(SearchParamElementsTest, BundleEntryIndexReducesToEntry) {
  EXPECT_EQ(Lookup("Bundle", "composition"), Elements{"entry"});
}

TEST(SearchParamElementsTest, ResourceLevelParameters) {
  EXPECT_EQ(Lookup("Patient", "_id"), Elements{"id"});
  EXPECT_EQ(Lookup("Observation", "_lastUpdated"), Elements{"meta"});
  EXPECT_EQ(Lookup("Patient", "_tag"), Elements{"meta"});
  EXPECT_EQ(Lookup("Patient", "_profile"), Elements{"meta"});
  EXPECT_EQ(Lookup("Patient", "_security"), Elements{"meta"});
  EXPECT_EQ(Lookup("Patient", "_source"), Elements{"meta"});
  EXPECT_EQ(Lookup("Patient", "_text"), Elements{"text"});
  EXPECT_EQ(Lookup("Patient", "_content"), Elements{});  // every element
  // Bundle is a Resource but not a DomainResource: it has _id but no narrative.
  EXPECT_EQ(Lookup("Bundle", "_id"), Elements{"id"});
  EXPECT_EQ(SearchParamElements("Bundle", "_text"), nullptr);
}

TEST(SearchParamElementsTest, UnknownTypeOrParameterIsNull) {
  EXPECT_EQ(SearchParamElements("Patient", "no-such-param"), nullptr);
  EXPECT_EQ(SearchParamElements("NoSuchType", "name"), nullptr);
  EXPECT_EQ(SearchParamElements("NoSuchType", "_id"), nullptr);
  EXPECT_EQ(SearchParamElements("Patient", "value-quantity"), nullptr);
  EXPECT_EQ(SearchParamElements("patient", "name"), nullptr);  // names are case-sensitive
  EXPECT_EQ(SearchParamElements("", ""), nullptr);
  // The abstract roots are not searchable types themselves.
  EXPECT_EQ(SearchParamElements("Resource", "_id"), nullptr);
  EXPECT_EQ(SearchParamElements("DomainResource", "_text"), nullptr);
  // Left out of the table: a backport from R5, not an R4 parameter.
  EXPECT_EQ(SearchParamElements("DeviceDefinition", "classification"), nullptr);
}

// Every element the generator produced must exist on its type in the R4 model the rest of
// the server uses, named as masks name it (choice elements with [x]); and the table must be
// sorted and free of duplicates.
TEST(SearchParamElementsTest, EveryRowNamesElementsOfItsTypeInTheR4Model) {
  const fhir::Model& model = fhir::Model::R4();
  ASSERT_GT(internal::kSearchElementRowCount, 1000u);
  std::size_t every_element = 0;
  for (std::size_t i = 0; i < internal::kSearchElementRowCount; ++i) {
    const internal::SearchElementRow& row = internal::kSearchElementRows[i];
    SCOPED_TRACE(std::string(row.type) + " " + std::string(row.code));
    if (i > 0) {
      const internal::SearchElementRow& prev = internal::kSearchElementRows[i - 1];
      EXPECT_TRUE(std::pair(prev.type, prev.code) < std::pair(row.type, row.code));
    }
    const fhir::TypeDef* type = model.FindType(row.type);
    ASSERT_NE(type, nullptr);
    EXPECT_EQ(type->kind, fhir::TypeKind::kResource);
    if (row.elements.empty()) {
      ++every_element;
      continue;
    }
    std::string_view list = row.elements;
    while (true) {
      const std::size_t comma = list.find(',');
      std::string_view name = list.substr(0, comma);
      const bool choice = name.size() > 3 && name.substr(name.size() - 3) == "[x]";
      if (choice) name.remove_suffix(3);
      const fhir::ElementDef* element = type->elements.FindElement(name);
      ASSERT_NE(element, nullptr) << name;
      EXPECT_EQ(element->choice, choice) << name;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  // Only _content (by definition) and _query (no expression) read every element.
  EXPECT_EQ(every_element, 2u);
}

// Every concrete type resolves the resource-level parameters through its ancestors.
TEST(SearchParamElementsTest, EveryResourceTypeHasId) {
  for (const std::string& type : fhir::Model::R4().ResourceTypes()) {
    EXPECT_NE(SearchParamElements(type, "_id"), nullptr) << type;
  }
}

// The billing role's Patient mask (docs/policy.md).
ElementMask BillingPatient() {
  return ElementMask::Only({"identifier", "name", "telecom", "gender", "birthDate", "address"});
}

Status Check(std::string_view type, QueryParams params, const ElementMask& mask) {
  return CheckSearchParams(type, params, mask);
}

void ExpectDenied(const Status& status, std::string_view message) {
  EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(status.message(), message);
}

TEST(CheckSearchParamsTest, VisibleElementIsAllowed) {
  EXPECT_TRUE(Check("Patient", {{"name", "x"}}, BillingPatient()).ok());
  EXPECT_TRUE(Check("Patient", {{"phone", "555"}, {"birthdate", "ge2000"}}, BillingPatient()).ok());
}

TEST(CheckSearchParamsTest, HiddenElementIsDeniedWithExactMessage) {
  ExpectDenied(Check("Patient", {{"general-practitioner", "x"}}, BillingPatient()),
               "searching by general-practitioner is not permitted: it reads "
               "Patient.generalPractitioner, which this role may not see");
}

TEST(CheckSearchParamsTest, ModifierIsCutOff) {
  EXPECT_TRUE(Check("Patient", {{"name:exact", "x"}}, BillingPatient()).ok());
  ExpectDenied(Check("Patient", {{"general-practitioner:missing", "true"}}, BillingPatient()),
               "searching by general-practitioner is not permitted: it reads "
               "Patient.generalPractitioner, which this role may not see");
}

TEST(CheckSearchParamsTest, ChainIsCheckedByItsFirstParameter) {
  ExpectDenied(Check("Patient", {{"general-practitioner.name", "x"}}, BillingPatient()),
               "searching by general-practitioner is not permitted: it reads "
               "Patient.generalPractitioner, which this role may not see");
  ExpectDenied(Check("Patient", {{"organization:Organization.name", "x"}}, BillingPatient()),
               "searching by organization is not permitted: it reads "
               "Patient.managingOrganization, which this role may not see");
}

TEST(CheckSearchParamsTest, NarrativeAndContentAreDenied) {
  ExpectDenied(Check("Patient", {{"_text", "x"}}, BillingPatient()),
               "searching by _text is not permitted: it reads Patient.text, which this role "
               "may not see");
  const Status content = Check("Patient", {{"_content", "x"}}, BillingPatient());
  EXPECT_EQ(content.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(content.message().rfind("searching by _content is not permitted: it reads Patient.", 0),
            0u)
      << content.message();
}

TEST(CheckSearchParamsTest, ContentIsAllowedWhenTheMaskHidesNothingOfTheType) {
  std::vector<std::string> all;
  for (const fhir::ElementDef& e :
       fhir::Model::R4().FindResourceType("Patient")->elements.elements()) {
    all.push_back(e.choice ? e.name + "[x]" : e.name);
  }
  EXPECT_TRUE(Check("Patient", {{"_content", "x"}}, ElementMask::Only(all)).ok());
}

TEST(CheckSearchParamsTest, SortIsCheckedLikeTheParameter) {
  EXPECT_TRUE(Check("Patient", {{"_sort", "-birthdate"}}, BillingPatient()).ok());
  EXPECT_TRUE(Check("Patient", {{"_sort", "name,-_lastUpdated,_id"}}, BillingPatient()).ok());
  ExpectDenied(Check("Patient", {{"_sort", "general-practitioner"}}, BillingPatient()),
               "searching by general-practitioner is not permitted: it reads "
               "Patient.generalPractitioner, which this role may not see");
  ExpectDenied(Check("Patient", {{"_sort", "name,-general-practitioner"}}, BillingPatient()),
               "searching by general-practitioner is not permitted: it reads "
               "Patient.generalPractitioner, which this role may not see");
  EXPECT_TRUE(Check("Patient", {{"_sort", ""}}, BillingPatient()).ok());
  EXPECT_TRUE(Check("Patient", {{"_sort", "no-such-param"}}, BillingPatient()).ok());
}

TEST(CheckSearchParamsTest, ResultParametersAreNotChecked) {
  EXPECT_TRUE(Check("Patient",
                    {{"_count", "5"},
                     {"_total", "accurate"},
                     {"_summary", "true"},
                     {"_elements", "name"},
                     {"_include", "Patient:general-practitioner"},
                     {"_revinclude", "Observation:subject"},
                     {"_format", "json"},
                     {"_pretty", "true"}},
                    BillingPatient())
                  .ok());
}

TEST(CheckSearchParamsTest, IdAndLastUpdatedAreAlwaysVisible) {
  EXPECT_TRUE(Check("Patient", {{"_id", "1"}, {"_lastUpdated", "gt2020"}}, BillingPatient()).ok());
}

TEST(CheckSearchParamsTest, UnknownParameterPasses) {
  EXPECT_TRUE(Check("Patient", {{"no-such-param", "x"}}, BillingPatient()).ok());
  EXPECT_TRUE(Check("NoSuchType", {{"name", "x"}}, BillingPatient()).ok());
}

TEST(CheckSearchParamsTest, ChoiceElementIsMatchedByItsXName) {
  const ElementMask with_value = ElementMask::Only({"code", "value[x]", "subject"});
  EXPECT_TRUE(Check("Observation", {{"value-quantity", "5"}, {"code", "x"}}, with_value).ok());
  EXPECT_TRUE(Check("Observation", {{"code-value-quantity", "x$5"}}, with_value).ok());
  ExpectDenied(Check("Observation", {{"value-quantity", "5"}}, ElementMask::Only({"code"})),
               "searching by value-quantity is not permitted: it reads Observation.value[x], "
               "which this role may not see");
}

TEST(CheckSearchParamsTest, FirstDeniedParameterIsReported) {
  ExpectDenied(Check("Patient", {{"name", "x"}, {"link", "y"}, {"general-practitioner", "z"}},
                     BillingPatient()),
               "searching by link is not permitted: it reads Patient.link, which this role may "
               "not see");
}

TEST(CheckSearchParamsTest, EverythingPassesWithAnUnrestrictedMask) {
  EXPECT_TRUE(Check("Patient",
                    {{"general-practitioner", "x"},
                     {"_text", "x"},
                     {"_content", "x"},
                     {"_sort", "general-practitioner"},
                     {"link", "x"}},
                    ElementMask::Everything())
                  .ok());
  EXPECT_TRUE(
      Check("Observation", {{"value-quantity", "5"}, {"_query", "x"}}, ElementMask::Everything())
          .ok());
}

TEST(CheckSearchParamsTest, UncheckableParametersAreDeniedUnderAnElementPolicy) {
  ExpectDenied(Check("Patient", {{"_has:Observation:patient:code", "1234-5"}}, BillingPatient()),
               "searching with _has is not permitted for a role whose element policy hides "
               "elements of Patient");
  ExpectDenied(Check("Patient", {{"_has", "x"}}, BillingPatient()),
               "searching with _has is not permitted for a role whose element policy hides "
               "elements of Patient");
  ExpectDenied(Check("Patient", {{"name", "x"}, {"_filter", "name eq x"}}, BillingPatient()),
               "searching with _filter is not permitted for a role whose element policy hides "
               "elements of Patient");
  ExpectDenied(Check("Patient", {{"_list", "l1"}}, BillingPatient()),
               "searching with _list is not permitted for a role whose element policy hides "
               "elements of Patient");
  ExpectDenied(Check("Patient", {{"_query:x", "q"}}, BillingPatient()),
               "searching with _query is not permitted for a role whose element policy hides "
               "elements of Patient");
  ExpectDenied(Check("Patient", {{"_list.x", "l1"}}, BillingPatient()),
               "searching with _list is not permitted for a role whose element policy hides "
               "elements of Patient");
  // Names that merely start alike are other (here: unknown) parameters.
  EXPECT_TRUE(Check("Patient", {{"_hasx", "x"}, {"_lists", "x"}}, BillingPatient()).ok());
  // Nothing hidden, nothing to protect.
  EXPECT_TRUE(Check("Patient",
                    {{"_has:Observation:patient:code", "x"},
                     {"_filter", "x"},
                     {"_list", "x"},
                     {"_query", "x"}},
                    ElementMask::Everything())
                  .ok());
}

TEST(CheckSearchParamsTest, EmptyParametersPass) {
  EXPECT_TRUE(Check("Patient", {}, BillingPatient()).ok());
}

}  // namespace
}  // namespace phigate::policy
