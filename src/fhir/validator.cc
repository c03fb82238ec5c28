#include "fhir/validator.h"

#include <array>
#include <boost/json.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace phigate::fhir {

namespace json = boost::json;

namespace {

// Backstop for values that did not come through ParseJson (which bounds nesting far below
// this): the validator recurses a few frames per JSON level.
constexpr int kMaxObjectDepth = 256;

constexpr std::int64_t kMinInt32 = -2147483648LL;
constexpr std::int64_t kMaxInt32 = 2147483647LL;

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }
// Object keys are boost::core::string_view; converting one to json::string for View() above
// would view a temporary, hence Key() and the deleted overload.
std::string_view View(json::string_view) = delete;
std::string_view Key(const json::key_value_pair& kv) {
  const json::string_view key = kv.key();
  return {key.data(), key.size()};
}

// Element names in R4 are short ASCII identifiers; `_` prefixes primitive extensions.
bool LooksLikeElementName(std::string_view key) {
  if (key.empty() || key.size() > 64) return false;
  for (char c : key) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Appends one step to the FHIRPath being built and removes it again on scope exit, so the
// path costs one string for the whole validation.
class PathStep {
 public:
  PathStep(std::string& path, std::string_view name) : path_(path), size_(path.size()) {
    if (!path.empty()) path.push_back('.');
    path.append(name);
  }
  PathStep(std::string& path, std::size_t index) : path_(path), size_(path.size()) {
    path.push_back('[');
    path.append(std::to_string(index));
    path.push_back(']');
  }
  PathStep(const PathStep&) = delete;
  PathStep& operator=(const PathStep&) = delete;
  ~PathStep() { path_.resize(size_); }

 private:
  std::string& path_;
  std::size_t size_;
};

// How a resource is reached, for the rules that depend on it.
enum class ResourceRole { kTopLevel, kContained, kNested };

class Validator {
 public:
  explicit Validator(const Model& model) : model_(model) {}

  Status Run(const json::value& v) { return Resource(v, nullptr, ResourceRole::kTopLevel); }

 private:
  Status Fail(std::string message) const { return InvalidArgument(std::move(message), path_); }

  // A resource: an object whose resourceType names a concrete type (`expected`, unless it
  // is null or abstract like Resource).
  Status Resource(const json::value& v, const TypeDef* expected, ResourceRole role) {
    if (!v.is_object()) {
      return Fail(role == ResourceRole::kTopLevel ? "a resource must be a JSON object"
                                                  : "expected a JSON object");
    }
    const json::object& o = v.get_object();
    const TypeDef* type = nullptr;
    {
      PathStep step(path_, "resourceType");
      const json::value* rt = o.if_contains("resourceType");
      if (rt == nullptr) return Fail("missing resourceType");
      if (rt->is_string()) type = model_.FindResourceType(View(rt->get_string()));
      if (type == nullptr) return Fail("unknown resource type");
      if (expected != nullptr && !expected->is_abstract && expected != type) {
        return Fail("unexpected resource type");
      }
    }
    if (role == ResourceRole::kTopLevel) path_ = type->name;
    if (role == ResourceRole::kContained) RETURN_IF_ERROR(ContainedRules(o));
    return Object(o, type->elements, /*is_resource=*/true);
  }

  // dom-2 and dom-4 (domainresource.html#invs): a contained resource does not contain
  // resources itself, and has no version or update time of its own.
  Status ContainedRules(const json::object& o) {
    if (o.contains("contained")) {
      PathStep step(path_, "contained");
      return Fail("a contained resource must not contain resources");
    }
    const json::value* meta = o.if_contains("meta");
    if (meta != nullptr && meta->is_object()) {
      for (std::string_view name : {"versionId", "lastUpdated"}) {
        if (meta->get_object().contains(name)) {
          PathStep step(path_, "meta");
          PathStep inner(path_, name);
          return Fail("a contained resource must not have meta.versionId or meta.lastUpdated");
        }
      }
    }
    return Status::Ok();
  }

  // One JSON object level: every property known, choices unique, required ones present.
  Status Object(const json::object& o, const ElementSet& set, bool is_resource) {
    if (o.empty()) return Fail("empty object is not allowed");
    if (++depth_ > kMaxObjectDepth) return Fail("JSON nested too deeply");
    // 0: element absent; otherwise 1 + the index of the type its JSON name chose.
    std::array<std::uint8_t, ElementSet::kMaxElements> seen{};
    for (const json::key_value_pair& kv : o) {
      const std::string_view key = Key(kv);
      if (is_resource && key == "resourceType") continue;
      const bool is_extension = key.size() > 1 && key.front() == '_';
      const std::string_view name = is_extension ? key.substr(1) : key;
      const Property* p = set.FindProperty(name);
      if (p == nullptr || (is_extension && !TakesPrimitiveExtension(*p))) {
        // The key is client text: it is named only if it looks like an element name, so
        // that a key made of data (or megabytes, or control characters) is not echoed.
        if (!LooksLikeElementName(key)) return Fail("unknown element");
        PathStep step(path_, key);
        return Fail("unknown element");
      }
      const ElementDef& e = *p->element;
      const auto chosen = static_cast<std::uint8_t>(1 + (p->type - e.types.data()));
      if (seen[e.index] != 0 && seen[e.index] != chosen) {
        PathStep step(path_, key);
        return Fail("only one type is allowed for a choice element");
      }
      seen[e.index] = chosen;
      if (is_extension) {
        RETURN_IF_ERROR(PrimitiveExtension(o, *p, name, kv.value()));
      } else {
        RETURN_IF_ERROR(Value(o, *p, key, kv.value()));
      }
    }
    for (std::uint16_t index : set.required()) {
      if (seen[index] == 0) {
        PathStep step(path_, set.elements()[index].name);
        return Fail("missing required element");
      }
    }
    --depth_;
    return Status::Ok();
  }

  static bool TakesPrimitiveExtension(const Property& p) {
    return p.type->type->kind == TypeKind::kPrimitive && !p.element->system;
  }

  // The value of property `key` (element p.element), a single value or an array.
  Status Value(const json::object& parent, const Property& p, std::string_view key,
               const json::value& v) {
    PathStep step(path_, key);
    const ElementDef& e = *p.element;
    if (v.is_null()) return Fail("null is not allowed");
    if (!e.many) {
      if (v.is_array()) return Fail("element must not be an array");
      return Single(v, e, *p.type);
    }
    if (!v.is_array()) return Fail("element must be an array");
    const json::array& values = v.get_array();
    if (values.empty()) return Fail("empty array is not allowed");
    // A null value is a placeholder for an entry that has only extensions (json.html#primitive).
    const json::array* extensions = nullptr;
    if (TakesPrimitiveExtension(p)) {
      const json::value* ext = parent.if_contains(SiblingKey(key));
      if (ext != nullptr && ext->is_array()) extensions = &ext->get_array();
    }
    for (std::size_t i = 0; i < values.size(); ++i) {
      PathStep item(path_, i);
      if (values[i].is_null()) {
        if (extensions != nullptr && i < extensions->size() && !(*extensions)[i].is_null()) {
          continue;
        }
        return Fail("null is not allowed");
      }
      RETURN_IF_ERROR(Single(values[i], e, *p.type));
    }
    return Status::Ok();
  }

  // `_name`: the id and extensions of primitive `name` (json.html#primitive). Errors inside
  // point at the FHIRPath of the primitive, e.g. Patient.birthDate.extension[0].url.
  Status PrimitiveExtension(const json::object& parent, const Property& p, std::string_view name,
                            const json::value& v) {
    PathStep step(path_, name);
    const json::value* value = parent.if_contains(name);
    if (v.is_null()) return Fail("null is not allowed");
    if (!p.element->many) {
      if (v.is_array()) return Fail("element must not be an array");
      return ElementOnly(v, value != nullptr);
    }
    if (!v.is_array()) return Fail("element must be an array");
    const json::array& extensions = v.get_array();
    if (extensions.empty()) return Fail("empty array is not allowed");
    // A value that is not an array is reported when the value itself is checked.
    const json::array* values =
        value != nullptr && value->is_array() ? &value->get_array() : nullptr;
    if (values != nullptr && values->size() != extensions.size()) {
      return Fail("primitive extensions must align with the values");
    }
    for (std::size_t i = 0; i < extensions.size(); ++i) {
      PathStep item(path_, i);
      const bool has_value = values != nullptr && !(*values)[i].is_null();
      if (extensions[i].is_null()) {
        if (has_value) continue;
        return Fail("null is not allowed");
      }
      RETURN_IF_ERROR(ElementOnly(extensions[i], has_value));
    }
    return Status::Ok();
  }

  // The object side of a primitive: only id and extension; without a value it needs
  // extensions (ele-1: an element has a value or children).
  Status ElementOnly(const json::value& v, bool has_value) {
    if (!v.is_object()) return Fail("expected a JSON object");
    const json::object& o = v.get_object();
    RETURN_IF_ERROR(Object(o, model_.element_type().elements, /*is_resource=*/false));
    if (!has_value && !o.contains("extension")) {
      return Fail("an element must have a value or extensions");
    }
    return Status::Ok();
  }

  // One value of element `e` as type `t`.
  Status Single(const json::value& v, const ElementDef& e, const TypeRef& t) {
    const TypeDef& type = *t.type;
    switch (type.kind) {
      case TypeKind::kPrimitive:
        return Primitive(v, type);
      case TypeKind::kResource:
        return Resource(v, &type,
                        e.name == "contained" ? ResourceRole::kContained : ResourceRole::kNested);
      case TypeKind::kComplex:
        break;
    }
    if (!v.is_object()) return Fail("expected a JSON object");
    const json::object& o = v.get_object();
    RETURN_IF_ERROR(Object(o, e.children != nullptr ? *e.children : type.elements,
                           /*is_resource=*/false));
    if (&type == &model_.extension_type()) return ExtensionRules(o);
    return Status::Ok();
  }

  // ext-1 (extensibility.html#1.17.1): an extension has a value or nested extensions, not
  // both and not neither. Extension.url (min 1) is checked as a required element.
  Status ExtensionRules(const json::object& o) {
    bool has_value = false;
    for (const json::key_value_pair& kv : o) {
      const std::string_view key = Key(kv);
      // The only Extension elements whose names start with "value" are value[x] choices.
      if (key.starts_with("value") || key.starts_with("_value")) has_value = true;
    }
    const bool has_extension = o.contains("extension");
    if (has_value && has_extension) {
      return Fail("an extension must not have both a value and nested extensions");
    }
    if (!has_value && !has_extension) {
      return Fail("an extension must have a value or nested extensions");
    }
    return Status::Ok();
  }

  Status Primitive(const json::value& v, const TypeDef& type) {
    switch (type.json) {
      case JsonKind::kBoolean:
        return v.is_bool() ? Status::Ok() : Fail("expected a JSON boolean");
      case JsonKind::kNumber:
        return Number(v, type);
      case JsonKind::kString:
        break;
    }
    if (!v.is_string()) return Fail("expected a JSON string");
    const std::string_view text = View(v.get_string());
    if (text.empty()) return Fail("empty string is not allowed");
    // Bytes bound code points from above, so counting is needed only for long strings.
    if (type.max_length != 0 && text.size() > type.max_length &&
        CodePointCount(text) > type.max_length) {
      return Fail("string is too long");
    }
    if (!MatchesLexical(type.primitive, text)) return Fail("invalid " + type.name + " value");
    return Status::Ok();
  }

  Status Number(const json::value& v, const TypeDef& type) {
    if (!v.is_number()) return Fail("expected a JSON number");
    if (type.primitive == PrimitiveKind::kDecimal) {
      if (v.is_double() && !std::isfinite(v.get_double())) {
        return Fail("invalid decimal value");
      }
      return Status::Ok();
    }
    // integer, positiveInt, unsignedInt: 32-bit whole numbers written without a fraction
    // or exponent (the parser yields a double for 1.0 and 1e2).
    std::int64_t min = kMinInt32;
    if (type.primitive == PrimitiveKind::kPositiveInt) min = 1;
    if (type.primitive == PrimitiveKind::kUnsignedInt) min = 0;
    if (!v.is_int64() || v.get_int64() < min || v.get_int64() > kMaxInt32) {
      return Fail("invalid " + type.name + " value");
    }
    return Status::Ok();
  }

  static bool MatchesLexical(PrimitiveKind kind, std::string_view text) {
    switch (kind) {
      case PrimitiveKind::kString:
      case PrimitiveKind::kMarkdown:
        return MatchesString(text);
      case PrimitiveKind::kCode:
        return MatchesCode(text);
      case PrimitiveKind::kId:
        return MatchesId(text);
      case PrimitiveKind::kUri:
      case PrimitiveKind::kUrl:
      case PrimitiveKind::kCanonical:
        return MatchesUri(text);
      case PrimitiveKind::kOid:
        return MatchesOid(text);
      case PrimitiveKind::kUuid:
        return MatchesUuid(text);
      case PrimitiveKind::kDate:
        return MatchesDate(text);
      case PrimitiveKind::kDateTime:
        return MatchesDateTime(text);
      case PrimitiveKind::kInstant:
        return MatchesInstant(text);
      case PrimitiveKind::kTime:
        return MatchesTime(text);
      case PrimitiveKind::kBase64Binary:
        return MatchesBase64Binary(text);
      case PrimitiveKind::kXhtml:
        return MatchesXhtml(text);
      case PrimitiveKind::kBoolean:
      case PrimitiveKind::kDecimal:
      case PrimitiveKind::kInteger:
      case PrimitiveKind::kPositiveInt:
      case PrimitiveKind::kUnsignedInt:
        return false;  // JSON literals, never strings
    }
    return false;
  }

  // "_" + key, in a buffer reused across calls.
  std::string_view SiblingKey(std::string_view key) {
    sibling_.assign(1, '_');
    sibling_.append(key);
    return sibling_;
  }

  const Model& model_;
  std::string path_;
  std::string sibling_;
  int depth_ = 0;
};

}  // namespace

Status ValidateResource(const json::value& resource, const Model& model) {
  return Validator(model).Run(resource);
}

}  // namespace phigate::fhir
