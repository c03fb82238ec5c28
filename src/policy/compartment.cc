#include "policy/compartment.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <functional>
#include <map>

namespace phigate::policy {
namespace {

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

// type -> paths, built once from the generated rows. std::less<> allows lookup by
// string_view without building a std::string on the request path.
using PathTable = std::map<std::string, std::vector<std::string>, std::less<>>;

const PathTable& Table() {
  static const PathTable* const table = [] {
    auto* t = new PathTable();
    for (std::size_t i = 0; i < internal::kPatientCompartmentRowCount; ++i) {
      const internal::PatientCompartmentRow& row = internal::kPatientCompartmentRows[i];
      (*t)[std::string(row.type)] = SplitComma(row.paths);
    }
    return t;
  }();
  return *table;
}

// The id of the patient that `reference` (a Reference.reference value) names, per the
// rules in the header, or empty if it names no patient. FHIR ids never contain '/'
// (datatypes.html#id), so the id is everything after the last '/'.
std::string_view PatientIdOf(std::string_view reference) {
  constexpr std::string_view kPatient = "Patient/";
  // Strip a version suffix (references.html#literal: "Patient/7/_history/2").
  constexpr std::string_view kHistory = "/_history/";
  if (const std::size_t history = reference.find(kHistory); history != std::string_view::npos) {
    const std::string_view version = reference.substr(history + kHistory.size());
    if (version.empty() || version.find('/') != std::string_view::npos) return {};
    reference = reference.substr(0, history);
  }
  // The reference must end in "Patient/<id>" exactly ...
  const std::size_t slash = reference.rfind('/');
  if (slash == std::string_view::npos) return {};
  const std::string_view id = reference.substr(slash + 1);
  const std::string_view head = reference.substr(0, slash + 1);
  if (id.empty() || head.size() < kPatient.size() ||
      head.substr(head.size() - kPatient.size()) != kPatient) {
    return {};
  }
  // ... and be either relative ("Patient/<id>") or an absolute URL whose base is
  // "<scheme>://..." followed by "/Patient/<id>".
  const std::string_view base = head.substr(0, head.size() - kPatient.size());
  if (base.empty()) return id;
  if (base.back() != '/') return {};
  const std::size_t scheme_end = base.find("://");
  const bool absolute = scheme_end != std::string_view::npos && scheme_end > 0 &&
                        base.size() > scheme_end + 3 + 1;  // a host before the final '/'
  return absolute ? id : std::string_view();
}

// Follows `path` (dotted) from `value`, descending into arrays at every step, and calls
// `visit` with the text of every Reference.reference at its end until `visit` returns true;
// returns whether it did. Paths are at most a few segments long (generated), so the
// recursion depth is bounded by the path, not by the input.
template <typename Visit>
bool VisitReferencesAt(const boost::json::value& value, std::string_view path, const Visit& visit) {
  if (const boost::json::array* array = value.if_array()) {
    for (const boost::json::value& item : *array) {
      if (VisitReferencesAt(item, path, visit)) return true;
    }
    return false;
  }
  const boost::json::object* object = value.if_object();
  if (object == nullptr) return false;
  if (path.empty()) {  // the Reference itself
    const boost::json::value* reference = object->if_contains("reference");
    if (reference == nullptr || !reference->is_string()) return false;
    const boost::json::string& text = reference->get_string();
    return visit(std::string_view(text.data(), text.size()));
  }
  const std::size_t dot = path.find('.');
  const std::string_view name = path.substr(0, dot);
  const std::string_view rest =
      dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  const boost::json::value* child = object->if_contains(name);
  return child != nullptr && VisitReferencesAt(*child, rest, visit);
}

// VisitReferencesAt over every compartment path of `paths`, starting at the resource.
template <typename Visit>
bool VisitCompartmentReferences(const std::vector<std::string>& paths,
                                const boost::json::object& resource, const Visit& visit) {
  for (const std::string& path : paths) {
    const std::size_t dot = path.find('.');
    const std::string_view first = std::string_view(path).substr(0, dot);
    const std::string_view rest =
        dot == std::string::npos ? std::string_view() : std::string_view(path).substr(dot + 1);
    const boost::json::value* child = resource.if_contains(first);
    if (child != nullptr && VisitReferencesAt(*child, rest, visit)) return true;
  }
  return false;
}

// The Patient's own id, or empty if it has none (or not a string).
std::string_view OwnId(const boost::json::object& resource) {
  const boost::json::value* id = resource.if_contains("id");
  if (id == nullptr || !id->is_string()) return {};
  return std::string_view(id->get_string().data(), id->get_string().size());
}

}  // namespace

bool IsReferenceToPatient(std::string_view reference, std::string_view patient_id) {
  return !patient_id.empty() && PatientIdOf(reference) == patient_id;
}

const std::vector<std::pair<std::string, std::vector<std::string>>>& PatientCompartmentMembers() {
  static const auto* members = [] {
    auto* out = new std::vector<std::pair<std::string, std::vector<std::string>>>();
    for (size_t i = 0; i < internal::kPatientCompartmentRowCount; ++i) {
      const internal::PatientCompartmentRow& row = internal::kPatientCompartmentRows[i];
      std::vector<std::string> params;
      std::string_view rest = row.params;
      while (!rest.empty()) {
        const size_t comma = rest.find(',');
        params.emplace_back(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
      out->emplace_back(std::string(row.type), std::move(params));
    }
    return out;
  }();
  return *members;
}

bool HasPatientCompartment(std::string_view resource_type) {
  return PatientCompartmentPaths(resource_type) != nullptr;
}

const std::vector<std::string>* PatientCompartmentPaths(std::string_view type) {
  const PathTable& table = Table();
  const auto it = table.find(type);
  return it == table.end() ? nullptr : &it->second;
}

bool InPatientCompartment(std::string_view resource_type, const boost::json::object& resource,
                          std::string_view patient_id) {
  if (patient_id.empty()) return false;
  const std::vector<std::string>* paths = PatientCompartmentPaths(resource_type);
  if (paths == nullptr) return false;
  if (resource_type == "Patient" && OwnId(resource) == patient_id) return true;
  return VisitCompartmentReferences(*paths, resource, [patient_id](std::string_view reference) {
    return IsReferenceToPatient(reference, patient_id);
  });
}

std::vector<std::string> ReferencedPatients(std::string_view resource_type,
                                            const boost::json::object& resource) {
  std::vector<std::string> ids;
  const std::vector<std::string>* paths = PatientCompartmentPaths(resource_type);
  if (paths == nullptr) return ids;
  // A resource links to a handful of patients at most, so a linear scan dedups cheaply.
  const auto add = [&ids](std::string_view id) {
    if (!id.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.emplace_back(id);
  };
  if (resource_type == "Patient") add(OwnId(resource));
  VisitCompartmentReferences(*paths, resource, [&add](std::string_view reference) {
    add(PatientIdOf(reference));
    return false;  // collect them all
  });
  return ids;
}

}  // namespace phigate::policy
