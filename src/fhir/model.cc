#include "fhir/model.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <utility>

#include "fhir/generated/r4_model.h"

namespace phigate::fhir {

namespace json = boost::json;

namespace {

// The embedded model is part of the binary: if it does not load, the build is broken, and
// serving without a type system would be worse than not starting.
[[noreturn]] void ModelDefect(const std::string& what) {
  std::fprintf(stderr, "phigate: the embedded FHIR model is invalid: %s\n", what.c_str());
  std::abort();
}

std::string_view Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) ModelDefect("missing string '" + std::string(key) + "'");
  return v->get_string();
}

bool Flag(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_bool() && v->get_bool();
}

const json::array& Array(const json::object& o, std::string_view key) {
  static const json::array kEmpty;
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return kEmpty;
  if (!v->is_array()) ModelDefect("'" + std::string(key) + "' is not an array");
  return v->get_array();
}

}  // namespace

// Builds a Model from the generator's JSON in passes, because types refer to each other
// in any order and contentReference can point forward:
//   1. create every TypeDef (names, kinds, primitive facts);
//   2. build element trees, resolving type codes to TypeDefs;
//   3. resolve contentReference targets and the base/constrains links;
//   4. index JSON property names (needs the types of step 3).
class ModelBuilder {
 public:
  static std::unique_ptr<Model> Build(std::string_view text) {
    json::parse_options options;
    options.max_depth = 128;  // element trees nest a few levels per BackboneElement
    json::error_code ec;
    json::value doc =
        json::parse(json::string_view(text.data(), text.size()), ec, json::storage_ptr(), options);
    if (ec || !doc.is_object()) ModelDefect("not a JSON object");
    ModelBuilder builder;
    builder.Run(doc.get_object());
    return std::move(builder.model_);
  }

 private:
  struct PendingReference {
    ElementDef* element;
    std::string target;  // "Questionnaire.item"
  };

  void Run(const json::object& doc) {
    model_->fhir_version_ = std::string(Str(doc, "fhirVersion"));
    const json::array& types = Array(doc, "types");
    for (const json::value& t : types) CreateType(t.as_object());
    for (const json::value& t : types) {
      const json::object& o = t.as_object();
      TypeDef& type = *model_->types_.find(Str(o, "name"))->second;
      if (type.kind != TypeKind::kPrimitive) {
        BuildElements(type.name, Array(o, "elements"), type.elements);
      }
      if (const json::value* base = o.if_contains("base")) type.base = &Lookup(base->as_string());
      if (const json::value* c = o.if_contains("constrains"))
        type.constrains = &Lookup(c->as_string());
    }
    for (const PendingReference& ref : pending_) ResolveContentReference(ref);
    for (auto& [name, type] : model_->types_) {
      const TypeDef& named = type->constrains != nullptr ? *type->constrains : *type;
      type->choice_suffix = named.name;
      type->choice_suffix[0] = static_cast<char>(std::toupper(type->choice_suffix[0]));
    }
    for (ElementSet* set : sets_) IndexProperties(*set);

    for (const auto& [name, type] : model_->types_) {
      if (type->kind == TypeKind::kResource && !type->is_abstract) {
        model_->resource_types_.push_back(name);
      }
    }
    std::sort(model_->resource_types_.begin(), model_->resource_types_.end());
    model_->element_ = &Lookup("Element");
    model_->extension_ = &Lookup("Extension");
  }

  void CreateType(const json::object& o) {
    auto type = std::make_unique<TypeDef>();
    type->name = std::string(Str(o, "name"));
    const std::string_view kind = Str(o, "kind");
    type->is_abstract = Flag(o, "abstract");
    if (kind == "primitive") {
      type->kind = TypeKind::kPrimitive;
      const auto primitive = PrimitiveKindFromName(type->name);
      if (!primitive) ModelDefect("no checker for primitive type " + type->name);
      type->primitive = *primitive;
      const std::string_view json_kind = Str(o, "json");
      type->json = json_kind == "boolean"  ? JsonKind::kBoolean
                   : json_kind == "number" ? JsonKind::kNumber
                                           : JsonKind::kString;
      if (const json::value* regex = o.if_contains("regex")) {
        type->regex = std::string(regex->as_string());
      }
      if (const json::value* max = o.if_contains("maxLength")) {
        type->max_length = static_cast<std::uint32_t>(max->to_number<std::uint32_t>());
      }
    } else if (kind == "complex") {
      type->kind = TypeKind::kComplex;
    } else if (kind == "resource") {
      type->kind = TypeKind::kResource;
    } else {
      ModelDefect("unknown kind for " + type->name);
    }
    const std::string name = type->name;
    if (!model_->types_.emplace(name, std::move(type)).second) {
      ModelDefect("duplicate type " + name);
    }
  }

  const TypeDef& Lookup(std::string_view name) const {
    const TypeDef* type = model_->FindType(name);
    if (type == nullptr) ModelDefect("unknown type " + std::string(name));
    return *type;
  }

  void BuildElements(const std::string& parent_path, const json::array& in, ElementSet& set) {
    if (in.size() > ElementSet::kMaxElements) ModelDefect(parent_path + " has too many elements");
    sets_.push_back(&set);
    // Reserve first: ElementDef addresses must not move once children point at them.
    set.elements_.reserve(in.size());
    for (const json::value& v : in) {
      const json::object& o = v.as_object();
      ElementDef& e = set.elements_.emplace_back();
      e.index = static_cast<std::uint16_t>(set.elements_.size() - 1);
      e.name = std::string(Str(o, "name"));
      e.choice = Flag(o, "choice");
      e.path = parent_path + "." + e.name + (e.choice ? "[x]" : "");
      if (const json::value* min = o.if_contains("min")) {
        e.min = static_cast<std::uint32_t>(min->to_number<std::uint32_t>());
      }
      if (const json::value* max = o.if_contains("max")) e.many = max->as_string() == "*";
      e.system = Flag(o, "system");
      e.summary = Flag(o, "summary");
      e.modifier = Flag(o, "modifier");
      for (const json::value& code : Array(o, "types")) e.types.push_back(ParseTypeRef(code));
      if (e.types.size() >= 255) ModelDefect(e.path + " has too many types");
      if (!e.choice && e.types.size() > 1) ModelDefect(e.path + " has several types");
      if (o.contains("children")) {
        e.own_children = std::make_unique<ElementSet>();
        BuildElements(e.path, Array(o, "children"), *e.own_children);
        e.children = e.own_children.get();
      }
      if (const json::value* ref = o.if_contains("contentRef")) {
        e.content_reference = std::string(ref->as_string());
        pending_.push_back({&e, e.content_reference});
      } else if (e.types.empty()) {
        ModelDefect(e.path + " has no type");
      }
      if (!set.by_name_.emplace(e.name, e.index).second) {
        ModelDefect("duplicate element " + e.path);
      }
      if (e.min > 0) set.required_.push_back(e.index);
    }
  }

  // "Reference(Patient|Group)" -> Reference with targets Patient, Group.
  TypeRef ParseTypeRef(const json::value& v) const {
    const std::string_view code = v.as_string();
    TypeRef ref;
    const std::size_t open = code.find('(');
    ref.type = &Lookup(code.substr(0, open));
    if (open != std::string_view::npos) {
      std::string_view rest = code.substr(open + 1);
      if (rest.empty() || rest.back() != ')') ModelDefect("bad type code " + std::string(code));
      rest.remove_suffix(1);
      while (!rest.empty()) {
        const std::size_t bar = rest.find('|');
        ref.targets.emplace_back(rest.substr(0, bar));
        rest = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
      }
    }
    return ref;
  }

  // "Questionnaire.item": walk from the type through inline children.
  void ResolveContentReference(const PendingReference& ref) {
    std::string_view path = ref.target;
    const std::size_t dot = path.find('.');
    if (dot == std::string_view::npos) ModelDefect("bad contentReference " + ref.target);
    const ElementSet* set = &Lookup(path.substr(0, dot)).elements;
    const ElementDef* target = nullptr;
    path.remove_prefix(dot + 1);
    while (true) {
      const std::size_t next = path.find('.');
      target = set->FindElement(path.substr(0, next));
      if (target == nullptr || target->own_children == nullptr) {
        ModelDefect("unresolved contentReference " + ref.target);
      }
      if (next == std::string_view::npos) break;
      set = target->own_children.get();
      path.remove_prefix(next + 1);
    }
    ref.element->types = target->types;
    ref.element->children = target->own_children.get();
  }

  void IndexProperties(ElementSet& set) {
    for (const ElementDef& e : set.elements_) {
      if (!e.choice) {
        Add(set, e.name, Property{&e, &e.types.front()});
        continue;
      }
      for (const TypeRef& t : e.types) Add(set, e.name + t.type->choice_suffix, Property{&e, &t});
    }
  }

  static void Add(ElementSet& set, const std::string& json_name, Property property) {
    if (!set.properties_.emplace(json_name, property).second) {
      ModelDefect("JSON name " + json_name + " is ambiguous in " + property.element->path);
    }
  }

  std::unique_ptr<Model> model_{new Model()};
  std::vector<ElementSet*> sets_;
  std::vector<PendingReference> pending_;
};

const ElementDef* ElementSet::FindElement(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &elements_[it->second];
}

const Property* ElementSet::FindProperty(std::string_view json_name) const {
  const auto it = properties_.find(json_name);
  return it == properties_.end() ? nullptr : &it->second;
}

Model::~Model() = default;

const Model& Model::R4() {
  // Built on first use and never destroyed: request threads may still read it while
  // static destructors run at exit.
  static const Model* const kModel = [] {
    try {
      return ModelBuilder::Build(std::string_view(kR4ModelJson, kR4ModelJsonSize)).release();
    } catch (const std::exception& e) {  // a malformed model throws from json accessors
      ModelDefect(e.what());
    }
  }();
  return *kModel;
}

bool Model::IsResourceType(std::string_view name) const {
  return FindResourceType(name) != nullptr;
}

const TypeDef* Model::FindType(std::string_view name) const {
  const auto it = types_.find(name);
  return it == types_.end() ? nullptr : it->second.get();
}

const TypeDef* Model::FindResourceType(std::string_view name) const {
  const TypeDef* type = FindType(name);
  if (type == nullptr || type->kind != TypeKind::kResource || type->is_abstract) return nullptr;
  return type;
}

std::vector<std::string> Model::SummaryElements(std::string_view type) const {
  std::vector<std::string> out;
  const TypeDef* def = FindType(type);
  if (def == nullptr) return out;
  for (const ElementDef& e : def->elements.elements()) {
    if (e.summary) out.push_back(e.name);
  }
  return out;
}

}  // namespace phigate::fhir
