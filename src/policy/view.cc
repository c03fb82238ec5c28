#include "policy/view.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cassert>
#include <utility>

#include "fhir/json_parse.h"
#include "fhir/model.h"
#include "policy/compartment.h"
#include "policy/minimize.h"

namespace phigate::policy {

namespace {

// Backstop only, as in minimize.cc: stored resources were parsed under the server's
// configured (smaller) depth limit when they were written.
constexpr int kMaxResourceDepth = 256;
// Element names are FHIR identifiers (elementdefinition.html#path: at most 64 characters).
constexpr std::size_t kMaxElementNameLength = 64;

constexpr std::string_view kConfidentialitySystem =
    "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
// Stored resources keep the client's bytes, escapes included: a system written as
// "v3\u002dConfidentiality" is the same system. So the cheap test that lets a resource
// skip parsing must also send any text containing a \u escape to the full check.
constexpr std::string_view kConfidentialityMarker = "v3-Confidentiality";
constexpr std::string_view kUnicodeEscape = "\\u";

bool MayCarryConfidentialityLabel(std::string_view text) {
  return text.find(kConfidentialityMarker) != std::string_view::npos ||
         text.find(kUnicodeEscape) != std::string_view::npos;
}

std::string_view AsView(const boost::json::string& s) { return {s.data(), s.size()}; }

// meta.security holds a v3-Confidentiality code listed in `hidden`. Elements of unexpected
// JSON kinds are ignored: stored resources were validated against the R4 model on write.
bool HasHiddenLabel(const boost::json::object& resource, const std::vector<std::string>& hidden) {
  const boost::json::value* meta = resource.if_contains("meta");
  if (meta == nullptr || !meta->is_object()) return false;
  const boost::json::value* security = meta->as_object().if_contains("security");
  if (security == nullptr || !security->is_array()) return false;
  for (const boost::json::value& coding : security->as_array()) {
    const boost::json::object* object = coding.if_object();
    if (object == nullptr) continue;
    const boost::json::value* system = object->if_contains("system");
    const boost::json::value* code = object->if_contains("code");
    if (system == nullptr || !system->is_string() || code == nullptr || !code->is_string()) {
      continue;
    }
    if (AsView(system->get_string()) != kConfidentialitySystem) continue;
    if (std::find(hidden.begin(), hidden.end(), AsView(code->get_string())) != hidden.end()) {
      return true;
    }
  }
  return false;
}

bool IsAsciiLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// A top-level element name as FHIR spells them: a letter, then letters and digits
// ("birthDate", "valueQuantity"), or a choice element with its "[x]" ("value[x]").
bool IsElementName(std::string_view name) {
  constexpr std::string_view kChoice = "[x]";
  if (name.size() > kChoice.size() && name.substr(name.size() - kChoice.size()) == kChoice) {
    name.remove_suffix(kChoice.size());
  }
  if (name.empty() || name.size() > kMaxElementNameLength || !IsAsciiLetter(name.front())) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsAsciiLetter(c) || IsAsciiDigit(c); });
}

Result<SummaryMode> ParseSummary(std::string_view value, bool allow_count) {
  if (value == "true") return SummaryMode::kTrue;
  if (value == "text") return SummaryMode::kText;
  if (value == "data") return SummaryMode::kData;
  if (value == "false") return SummaryMode::kFalse;
  if (value == "count") {
    if (!allow_count)
      return InvalidArgument("_summary=count is only supported for search", "_summary");
    return SummaryMode::kCount;
  }
  return InvalidArgument("_summary must be one of true, text, data, count or false", "_summary");
}

Result<std::vector<std::string>> ParseElements(std::string_view value) {
  std::vector<std::string> elements;
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view name = value.substr(0, comma);
    if (!IsElementName(name)) {
      return InvalidArgument("_elements must be a comma-separated list of element names",
                             "_elements");
    }
    elements.emplace_back(name);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return elements;
}

// `_elements` names a choice element by its base name ("value", as in the definition's
// element list, search.html#elements); the mask spells that "value[x]" so that it covers
// every variant. Names the R4 definition of `type` does not know are kept as written.
std::vector<std::string> ElementsForMask(const fhir::TypeDef* def,
                                         const std::vector<std::string>& names) {
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    const fhir::ElementDef* element = def == nullptr ? nullptr : def->elements.FindElement(name);
    out.push_back(element != nullptr && element->choice ? name + "[x]" : name);
  }
  return out;
}

// The element a top-level member belongs to in the R4 definition of the type (a choice
// variant "valueQuantity" and a sibling "_birthDate" included), or nullptr if unknown.
const fhir::ElementDef* ElementOf(const fhir::TypeDef* def, std::string_view key) {
  if (def == nullptr) return nullptr;
  if (!key.empty() && key.front() == '_') key.remove_prefix(1);
  const fhir::Property* property = def->elements.FindProperty(key);
  return property == nullptr ? nullptr : property->element;
}

// Whether `mode` removes anything from a resource. count returns no resources at all (the
// search handler sends none), so it has nothing to shape.
bool SummaryNarrows(SummaryMode mode) {
  return mode == SummaryMode::kTrue || mode == SummaryMode::kText || mode == SummaryMode::kData;
}

// _summary (search.html#summary) over a resource of the R4 type `def` (nullptr: unknown,
// then only resourceType, id and meta survive true and text). Only for SummaryNarrows modes.
Result<std::string> ApplySummary(const std::string& text, const fhir::TypeDef* def,
                                 SummaryMode mode) {
  if (mode == SummaryMode::kTrue) {
    // The elements marked isSummary, plus the mandatory ones (a summary must still be a
    // valid resource).
    return SubsetResource(text, [def](std::string_view key) {
      const fhir::ElementDef* element = ElementOf(def, key);
      return element != nullptr && (element->summary || element->min >= 1);
    });
  }
  if (mode == SummaryMode::kText) {
    // "text, id, meta, and only top-level mandatory elements".
    return SubsetResource(text, [def](std::string_view key) {
      if (key == "text" || key == "_text") return true;
      const fhir::ElementDef* element = ElementOf(def, key);
      return element != nullptr && element->min >= 1;
    });
  }
  // data: everything but the narrative.
  return SubsetResource(text, [](std::string_view key) { return key != "text" && key != "_text"; });
}

}  // namespace

Result<Narrowing> ParseNarrowing(const QueryParams& params, bool allow_count) {
  Narrowing narrowing;
  bool has_summary = false;
  for (const auto& [name, value] : params) {
    if (name == "_summary") {
      if (has_summary) return InvalidArgument("_summary may be given only once", "_summary");
      has_summary = true;
      ASSIGN_OR_RETURN(narrowing.summary, ParseSummary(value, allow_count));
    } else if (name == "_elements") {
      if (narrowing.has_elements) {
        return InvalidArgument("_elements may be given only once", "_elements");
      }
      narrowing.has_elements = true;
      ASSIGN_OR_RETURN(narrowing.elements, ParseElements(value));
    }
  }
  if (has_summary && narrowing.has_elements) {
    return InvalidArgument("_summary and _elements cannot be combined", "_summary");
  }
  return narrowing;
}

Result<Visibility> ApplyView(std::string_view type, std::string& json, const View& view) {
  assert(view.read_mask != nullptr);
  if (view.read_mask == nullptr) return Internal("a view needs a read mask");  // fail closed

  // Steps 1 and 2 share one parse, taken only when one of them applies.
  const bool check_compartment = !view.compartment_patient.empty();
  const bool check_labels = view.hidden_labels != nullptr && !view.hidden_labels->empty() &&
                            MayCarryConfidentialityLabel(json);
  if (check_compartment || check_labels) {
    ASSIGN_OR_RETURN(boost::json::value parsed, fhir::ParseJson(json, kMaxResourceDepth));
    const boost::json::object* resource = parsed.if_object();
    if (resource == nullptr) return InvalidArgument("a resource must be a JSON object");
    if (check_compartment && !InPatientCompartment(type, *resource, view.compartment_patient)) {
      return Visibility::kOutsideCompartment;
    }
    if (check_labels && HasHiddenLabel(*resource, *view.hidden_labels)) {
      return Visibility::kRestricted;
    }
  }

  if (!view.read_mask->all) {
    ASSIGN_OR_RETURN(json, MinimizeResource(json, *view.read_mask));
  }

  if (view.narrowing == nullptr || view.narrowing->empty()) return Visibility::kVisible;
  const fhir::TypeDef* def = fhir::Model::R4().FindResourceType(type);
  if (view.narrowing->has_elements) {
    ASSIGN_OR_RETURN(json,
                     ApplyElementsParam(json, ElementsForMask(def, view.narrowing->elements)));
  }
  if (SummaryNarrows(view.narrowing->summary)) {
    ASSIGN_OR_RETURN(json, ApplySummary(json, def, view.narrowing->summary));
  }
  return Visibility::kVisible;
}

std::vector<std::string> CompartmentPatients(std::string_view type, std::string_view json) {
  if (!HasPatientCompartment(type)) return {};
  Result<boost::json::value> parsed = fhir::ParseJson(json, kMaxResourceDepth);
  if (!parsed.ok() || !parsed->is_object()) return {};
  if (type == "Patient") {
    // A Patient record concerns that patient alone: a break-glass grant must not extend to
    // the patients it links to (link.other).
    const boost::json::value* id = parsed->as_object().if_contains("id");
    if (id == nullptr || !id->is_string() || id->get_string().empty()) return {};
    return {std::string(id->get_string())};
  }
  return ReferencedPatients(type, parsed->as_object());
}

}  // namespace phigate::policy
