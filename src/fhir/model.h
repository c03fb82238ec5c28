// Model: the FHIR R4 type system as data. It is built once from the structure model that
// tools/gen_fhir_model.mjs derives from HL7's StructureDefinition snapshots and embeds in
// fhir/generated/r4_model.cc, so REST handling, validation and (later) search and element
// masks follow the published definitions instead of hand-written per-type code.
//
// Shape: every type (primitive, complex datatype, resource) is a TypeDef; a complex type or
// resource owns an ElementSet, the elements of one JSON object level. Inline structures
// (BackboneElements such as Patient.contact) own their own ElementSet; elements defined by
// contentReference (Questionnaire.item.item) share the set of the element they name.
//
// Thread-safety: Model::R4() builds the model on first use (thread-safe static
// initialization); the model is immutable afterwards and may be read from any thread.
// Pointers and references handed out stay valid for the life of the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/primitive_types.h"

namespace phigate::fhir {

class ElementSet;
class ModelBuilder;
struct TypeDef;

// Hash for std::unordered_map<std::string, ...> lookups by std::string_view without
// building a std::string per lookup (the validator looks up every JSON property name).
struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, TransparentStringHash, std::equal_to<>>;

enum class TypeKind : std::uint8_t { kPrimitive, kComplex, kResource };

// How a primitive value is written in JSON (json.html#primitive).
enum class JsonKind : std::uint8_t { kString, kNumber, kBoolean };

// One allowed type of an element.
struct TypeRef {
  const TypeDef* type = nullptr;
  // Reference and canonical: the resource types they may point to; empty means any.
  std::vector<std::string> targets;
};

// One element of a type (ElementDefinition in the snapshot), e.g. Patient.birthDate.
struct ElementDef {
  std::string name;  // JSON name; for a choice element its base name ("value" for value[x])
  std::string path;  // definition path, e.g. "Observation.component.value[x]"
  std::uint32_t min = 0;
  bool many = false;    // max "*": always a JSON array; otherwise never an array
  bool choice = false;  // value[x]: one of `types`, named valueQuantity, valueString, ...
  // Typed with a FHIRPath System type (Element.id, Extension.url, Resource.id): such
  // elements are XML attributes and cannot carry a `_name` primitive extension.
  bool system = false;
  bool summary = false;        // isSummary: part of _summary=true
  bool modifier = false;       // isModifier
  std::vector<TypeRef> types;  // exactly one unless `choice`
  // The elements of the value's object for inline structures (BackboneElement, Element)
  // and contentReference; nullptr means the elements of the type itself.
  const ElementSet* children = nullptr;
  std::string content_reference;             // "Questionnaire.item" for Questionnaire.item.item
  std::uint16_t index = 0;                   // position in the owning ElementSet
  std::unique_ptr<ElementSet> own_children;  // storage behind `children` for inline types
};

// What a JSON property name denotes: an element and, for choice elements, the type chosen
// by the name's suffix ("valueQuantity" -> value[x] as Quantity).
struct Property {
  const ElementDef* element = nullptr;
  const TypeRef* type = nullptr;
};

// The elements of one JSON object level, in definition order.
class ElementSet {
 public:
  // Upper bound on elements per set, checked when the model is built, so validators can
  // keep per-object bookkeeping in a fixed array on the stack.
  static constexpr std::size_t kMaxElements = 256;

  const std::vector<ElementDef>& elements() const { return elements_; }
  // By element name ("value" for value[x]); nullptr if unknown.
  const ElementDef* FindElement(std::string_view name) const;
  // By JSON property name ("valueQuantity", "birthDate"; no leading '_'); nullptr if unknown.
  const Property* FindProperty(std::string_view json_name) const;
  // Indexes of elements with min >= 1.
  const std::vector<std::uint16_t>& required() const { return required_; }

 private:
  friend class ModelBuilder;
  std::vector<ElementDef> elements_;
  StringMap<std::uint16_t> by_name_;
  StringMap<Property> properties_;
  std::vector<std::uint16_t> required_;
};

struct TypeDef {
  std::string name;
  TypeKind kind = TypeKind::kComplex;
  bool is_abstract = false;             // Resource, DomainResource, Element, BackboneElement
  const TypeDef* base = nullptr;        // e.g. DomainResource for Patient
  const TypeDef* constrains = nullptr;  // a constraint profile's type: Quantity for SimpleQuantity
  // Suffix in JSON names of choice elements: "Quantity" (also for SimpleQuantity),
  // "String", "DateTime" (json.html#choice).
  std::string choice_suffix;

  // Primitive types only.
  PrimitiveKind primitive = PrimitiveKind::kString;
  JsonKind json = JsonKind::kString;
  std::string regex;             // as published in the definitions; for reference only
  std::uint32_t max_length = 0;  // in characters; 0 means no limit

  // Complex types and resources only.
  ElementSet elements;
};

class Model {
 public:
  // The FHIR R4 (4.0.1) model. Aborts the process if the embedded model is malformed,
  // which is a build defect, not a runtime condition.
  static const Model& R4();

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  ~Model();

  std::string_view fhir_version() const { return fhir_version_; }

  // Concrete resource types only (not Resource or DomainResource).
  bool IsResourceType(std::string_view name) const;
  // The concrete resource types, sorted.
  const std::vector<std::string>& ResourceTypes() const { return resource_types_; }
  // Any type by name: primitives, datatypes, resources (abstract ones included).
  const TypeDef* FindType(std::string_view name) const;
  // A concrete resource type, or nullptr.
  const TypeDef* FindResourceType(std::string_view name) const;
  // Top-level elements of `type` flagged isSummary, by element name (choice elements by
  // their base name, e.g. "deceased"), in definition order; empty for an unknown type.
  std::vector<std::string> SummaryElements(std::string_view type) const;

  // Types the validator treats specially.
  const TypeDef& element_type() const { return *element_; }  // shape of `_name` objects
  const TypeDef& extension_type() const { return *extension_; }

 private:
  friend class ModelBuilder;
  Model() = default;

  std::string fhir_version_;
  StringMap<std::unique_ptr<TypeDef>> types_;
  std::vector<std::string> resource_types_;
  const TypeDef* element_ = nullptr;
  const TypeDef* extension_ = nullptr;
};

}  // namespace phigate::fhir
