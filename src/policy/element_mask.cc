#include "policy/element_mask.h"

#include <algorithm>
#include <utility>

namespace phigate::policy {

namespace {

constexpr std::string_view kChoiceSuffix = "[x]";

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// "valueQuantity" is a variant of "value[x]": the base name followed by a type name, and
// FHIR type names in element names start with a capital letter (formats.html#choice).
bool IsChoiceVariant(std::string_view element, std::string_view choice) {
  if (choice.size() <= kChoiceSuffix.size() ||
      choice.substr(choice.size() - kChoiceSuffix.size()) != kChoiceSuffix) {
    return false;
  }
  const std::string_view base = choice.substr(0, choice.size() - kChoiceSuffix.size());
  return element.size() > base.size() && element.substr(0, base.size()) == base &&
         IsUpper(element[base.size()]);
}

// Whether the sorted `names` name `element` or, for a choice variant, its "x[x]" name.
bool Names(const std::vector<std::string>& names, std::string_view element) {
  if (std::binary_search(names.begin(), names.end(), element,
                         [](std::string_view a, std::string_view b) { return a < b; })) {
    return true;
  }
  // Policies list a handful of elements, so a scan for choice names costs less than
  // building candidate keys.
  return std::any_of(names.begin(), names.end(),
                     [element](const std::string& name) { return IsChoiceVariant(element, name); });
}

}  // namespace

ElementMask ElementMask::Only(std::vector<std::string> names) {
  ElementMask mask;
  mask.all = false;
  mask.elements = std::move(names);
  std::sort(mask.elements.begin(), mask.elements.end());
  mask.elements.erase(std::unique(mask.elements.begin(), mask.elements.end()), mask.elements.end());
  return mask;
}

bool ElementMask::Allows(std::string_view element) const {
  if (all) return true;
  // A primitive's extension sibling ("_birthDate", json.html#primitive) is part of its
  // element: it is visible exactly when the element is.
  if (!element.empty() && element.front() == '_') element.remove_prefix(1);
  if (element == "resourceType" || element == "id" || element == "meta") return true;
  return Names(elements, element);
}

bool ElementMask::Lists(std::string_view element) const {
  if (all) return true;
  if (!element.empty() && element.front() == '_') element.remove_prefix(1);
  return Names(elements, element);
}

}  // namespace phigate::policy
