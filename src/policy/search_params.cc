#include "policy/search_params.h"

#include <algorithm>
#include <cstddef>
#include <tuple>

#include "fhir/model.h"

namespace phigate::policy {
namespace {

struct Entry {
  std::string_view type;  // into the generated table's literals
  std::string_view code;
  std::vector<std::string> elements;
};

bool EntryLess(const Entry& a, const Entry& b) {
  return std::tie(a.type, a.code) < std::tie(b.type, b.code);
}

std::vector<std::string> SplitComma(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    out.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

// The generated rows with their element lists split, sorted by (type, code), built once so
// that a lookup is a binary search over string_views: no allocation on the request path.
const std::vector<Entry>& Table() {
  static const std::vector<Entry>* const table = [] {
    auto* t = new std::vector<Entry>();
    t->reserve(internal::kSearchElementRowCount);
    for (std::size_t i = 0; i < internal::kSearchElementRowCount; ++i) {
      const internal::SearchElementRow& row = internal::kSearchElementRows[i];
      t->push_back({row.type, row.code, SplitComma(row.elements)});
    }
    // The generator sorts too; sorting again keeps the lookup correct if it ever did not.
    std::sort(t->begin(), t->end(), EntryLess);
    return t;
  }();
  return *table;
}

const std::vector<std::string>* FindRow(std::string_view type, std::string_view code) {
  const std::vector<Entry>& table = Table();
  const auto it = std::lower_bound(
      table.begin(), table.end(), std::tie(type, code),
      [](const Entry& e, const auto& key) { return std::tie(e.type, e.code) < key; });
  if (it == table.end() || it->type != type || it->code != code) return nullptr;
  return &it->elements;
}

// Cuts a parameter name at its modifier (`name:exact`) or chain (`subject.name`): the part
// before either names the parameter of the searched type (search.html#modifiers,
// search.html#chaining).
std::string_view ParameterCode(std::string_view name) {
  return name.substr(0, name.find_first_of(":."));
}

Status Denied(std::string_view code, std::string_view type, std::string_view element) {
  return {StatusCode::kPermissionDenied,
          "searching by " + std::string(code) + " is not permitted: it reads " + std::string(type) +
              "." + std::string(element) + ", which this role may not see"};
}

// Parameters that search by other resources' content or by an expression the table cannot
// map to elements: `_has` (reverse chaining, search.html#has) selects by what refers to
// the resource and so discloses its links; `_filter` (search_filter.html) can name any
// path; `_list` and `_query` (search.html#list, #query) run server-side selections. None
// can be checked against an element mask, so a role with hidden elements may not use them.
bool IsUncheckableParam(std::string_view code) {
  return code == "_has" || code == "_filter" || code == "_list" || code == "_query";
}

// The first top-level element of `type` (definition order) that `mask` hides, or "".
// Choice elements are checked by their [x] name, as masks list them.
std::string FirstHiddenElement(const fhir::TypeDef& type, const ElementMask& mask) {
  for (const fhir::ElementDef& element : type.elements.elements()) {
    std::string name = element.name;
    if (element.choice) name += "[x]";
    if (!mask.Allows(name)) return name;
  }
  return {};
}

// Checks one parameter code (modifier already removed) of a search of `type`.
Status CheckCode(std::string_view type, std::string_view code, const ElementMask& mask) {
  const std::vector<std::string>* elements = SearchParamElements(type, code);
  if (elements == nullptr) return Status::Ok();  // not a parameter of the type
  if (elements->empty()) {
    // Reads every element: refused as soon as the mask hides any element of the type.
    const fhir::TypeDef* def = fhir::Model::R4().FindResourceType(type);
    if (def == nullptr) return Status::Ok();  // unreachable: the lookup found the type
    const std::string hidden = FirstHiddenElement(*def, mask);
    if (!hidden.empty()) return Denied(code, def->name, hidden);
    return Status::Ok();
  }
  for (const std::string& element : *elements) {
    if (!mask.Allows(element)) return Denied(code, type, element);
  }
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>* SearchParamElements(std::string_view type, std::string_view code) {
  // Only concrete resource types are searched; their parameters are the type's own and
  // those of its ancestors (DomainResource: _text; Resource: _id, _lastUpdated, ...).
  const fhir::TypeDef* def = fhir::Model::R4().FindResourceType(type);
  for (; def != nullptr; def = def->base) {
    if (const std::vector<std::string>* elements = FindRow(def->name, code)) return elements;
  }
  return nullptr;
}

Status CheckSearchParams(std::string_view type, const QueryParams& params,
                         const ElementMask& read_mask) {
  if (read_mask.all) return Status::Ok();  // nothing hidden, nothing to reveal
  for (const auto& [name, value] : params) {
    const std::string_view code = ParameterCode(name);
    if (IsUncheckableParam(code)) {
      return {StatusCode::kPermissionDenied,
              "searching with " + std::string(code) +
                  " is not permitted for a role whose element policy hides elements of " +
                  std::string(type)};
    }
    if (code == "_sort") {
      // `_sort=a,-b` (search.html#_sort): ordering by a parameter discloses the order of
      // its values, so each key is checked like the parameter itself. _id and
      // _lastUpdated read id and meta, which every mask allows.
      std::string_view keys = value;
      while (!keys.empty()) {
        const std::size_t comma = keys.find(',');
        std::string_view key = keys.substr(0, comma);
        keys = comma == std::string_view::npos ? std::string_view() : keys.substr(comma + 1);
        if (!key.empty() && key.front() == '-') key.remove_prefix(1);
        RETURN_IF_ERROR(CheckCode(type, ParameterCode(key), read_mask));
      }
      continue;
    }
    // The result parameters (_count, _total, _summary, _elements, _include, _revinclude,
    // _format, _pretty, ...) have no row in the table, so they pass here like unknown
    // names: they select no data, and included resources are authorized one by one.
    RETURN_IF_ERROR(CheckCode(type, code, read_mask));
  }
  return Status::Ok();
}

}  // namespace phigate::policy
