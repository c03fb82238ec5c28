// ElementMask: which top-level elements of one resource type a role may see (or write),
// the unit of the Minimum Necessary rule (issue 4 §3). Masks work on top-level elements
// (Patient.name, Encounter.class): FHIR's own `_elements` narrowing works at that level,
// and every default role's policy is expressible with it. A choice element is named by
// its base name with [x] ("value[x]" allows valueQuantity, valueString, ...).
// `resourceType`, `id` and `meta` are always visible, so a minimized resource stays a
// valid, identifiable resource.
//
// Thread-safety: an immutable value after construction.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace phigate::policy {

struct ElementMask {
  bool all = true;                    // no restriction
  std::vector<std::string> elements;  // when !all: allowed element names, sorted, unique

  static ElementMask Everything() { return {}; }
  // `names` as written in the policy (validated by the policy loader).
  static ElementMask Only(std::vector<std::string> names);

  // True for resourceType/id/meta, for any element when `all`, for a listed name, and for
  // a choice-type variant of a listed "x[x]" name (valueQuantity for "value[x]").
  bool Allows(std::string_view element) const;
  // True when the mask is unrestricted or names `element` itself (or, for a variant, its
  // "x[x]" name), without Allows' always-visible resourceType/id/meta: whether a policy
  // granted `meta` as data (CheckWritable), not merely as the identifying member.
  bool Lists(std::string_view element) const;
};

}  // namespace phigate::policy
