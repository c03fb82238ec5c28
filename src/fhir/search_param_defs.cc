#include "fhir/search_param_defs.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "fhir/model.h"

namespace phigate::fhir {
namespace {

// The generated table is a build artifact: a defect in it is a build defect, not a runtime
// condition, so it stops the process (STYLE.md "impossible states crash loudly").
[[noreturn]] void TableDefect(const SearchParamDef& row, const char* what) {
  std::fprintf(stderr, "phigate: the generated search parameter table is invalid: %.*s %.*s: %s\n",
               static_cast<int>(row.base.size()), row.base.data(),
               static_cast<int>(row.code.size()), row.code.data(), what);
  std::abort();
}

bool RowLess(const SearchParamDef& a, const SearchParamDef& b) {
  return std::tie(a.base, a.code) < std::tie(b.base, b.code);
}

// The resource type (concrete or abstract) named `name`, or nullptr.
const TypeDef* FindResourceOrAbstract(std::string_view name) {
  const TypeDef* t = Model::R4().FindType(name);
  return t != nullptr && t->kind == TypeKind::kResource ? t : nullptr;
}

// Checks once what the lookups rely on: rows sorted by (base, code) without duplicates (the
// binary search) and every base a resource type of the model (the inheritance walk).
bool CheckTable() {
  const std::span<const SearchParamDef> rows(internal::kSearchParamDefs,
                                             internal::kSearchParamDefCount);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0 && !RowLess(rows[i - 1], rows[i])) TableDefect(rows[i], "out of order or repeated");
    if (FindResourceOrAbstract(rows[i].base) == nullptr) TableDefect(rows[i], "unknown base");
  }
  return true;
}

std::span<const SearchParamDef> Table() {
  [[maybe_unused]] static const bool checked = CheckTable();
  return {internal::kSearchParamDefs, internal::kSearchParamDefCount};
}

// The rows of base `base`, sorted by code.
std::span<const SearchParamDef> RowsOf(std::span<const SearchParamDef> table,
                                       std::string_view base) {
  const auto rows = std::ranges::equal_range(table, base, {}, &SearchParamDef::base);
  return {rows.begin(), rows.end()};
}

const SearchParamDef* FindRow(std::span<const SearchParamDef> table, std::string_view base,
                              std::string_view code) {
  const auto it = std::lower_bound(table.begin(), table.end(), std::tie(base, code),
                                   [](const SearchParamDef& row, const auto& key) {
                                     return std::tie(row.base, row.code) < key;
                                   });
  if (it == table.end() || it->base != base || it->code != code) return nullptr;
  return &*it;
}

// Per resource type, every parameter that applies to it in SearchParamsOf's order; built
// once so that SearchParamsOf is a hash lookup without allocation.
using ParamsByType = StringMap<std::vector<const SearchParamDef*>>;

// Adds `type`, then the types it inherits from (DomainResource, Resource).
void AddType(const TypeDef& type, std::span<const SearchParamDef> table, ParamsByType& out) {
  if (out.contains(type.name)) return;
  std::vector<const SearchParamDef*> params;
  // The type's own parameters win over an inherited one of the same code, as in
  // FindSearchParam.
  for (const TypeDef* t = &type; t != nullptr && t->kind == TypeKind::kResource; t = t->base) {
    for (const SearchParamDef& row : RowsOf(table, t->name)) {
      const bool shadowed = std::any_of(params.begin(), params.end(),
                                        [&](const auto* p) { return p->code == row.code; });
      if (!shadowed) params.push_back(&row);
    }
  }
  out.emplace(type.name, std::move(params));
  if (type.base != nullptr && type.base->kind == TypeKind::kResource) {
    AddType(*type.base, table, out);
  }
}

const ParamsByType& ParamsOfTypes() {
  static const ParamsByType* const by_type = [] {
    auto* out = new ParamsByType();
    const std::span<const SearchParamDef> table = Table();
    const Model& model = Model::R4();
    for (const std::string& name : model.ResourceTypes()) {
      AddType(*model.FindResourceType(name), table, *out);
    }
    return out;
  }();
  return *by_type;
}

}  // namespace

std::string_view SearchParamTypeName(SearchParamType type) {
  switch (type) {
    case SearchParamType::kNumber:
      return "number";
    case SearchParamType::kDate:
      return "date";
    case SearchParamType::kString:
      return "string";
    case SearchParamType::kToken:
      return "token";
    case SearchParamType::kReference:
      return "reference";
    case SearchParamType::kComposite:
      return "composite";
    case SearchParamType::kQuantity:
      return "quantity";
    case SearchParamType::kUri:
      return "uri";
    case SearchParamType::kSpecial:
      return "special";
  }
  return "";
}

const SearchParamDef* FindSearchParam(std::string_view type, std::string_view code) {
  const std::span<const SearchParamDef> table = Table();
  // The model's base chain gives the fallback search.html#all prescribes: Patient inherits
  // DomainResource's _text and Resource's _id; Bundle, Binary and Parameters derive from
  // Resource directly, so they have no _text.
  for (const TypeDef* t = FindResourceOrAbstract(type);
       t != nullptr && t->kind == TypeKind::kResource; t = t->base) {
    if (const SearchParamDef* row = FindRow(table, t->name, code)) return row;
  }
  return nullptr;
}

std::span<const SearchParamDef* const> SearchParamsOf(std::string_view type) {
  const ParamsByType& by_type = ParamsOfTypes();
  const auto it = by_type.find(type);
  if (it == by_type.end()) return {};
  return it->second;
}

std::span<const SearchParamDef> AllSearchParamDefs() { return Table(); }

}  // namespace phigate::fhir
