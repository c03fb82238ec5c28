#include "policy/compartment.h"

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

// Follows `path` (dotted, starting at `pos`) from `value`, descending into arrays at every
// step, and reports whether any Reference at its end names the patient. Paths are at most a
// few segments long (generated), so the recursion depth is bounded by the path, not by the
// input.
bool PathReachesPatient(const boost::json::value& value, std::string_view path,
                        std::string_view patient_id) {
  if (const boost::json::array* array = value.if_array()) {
    for (const boost::json::value& item : *array) {
      if (PathReachesPatient(item, path, patient_id)) return true;
    }
    return false;
  }
  const boost::json::object* object = value.if_object();
  if (object == nullptr) return false;
  if (path.empty()) {  // the Reference itself
    const boost::json::value* reference = object->if_contains("reference");
    if (reference == nullptr || !reference->is_string()) return false;
    const boost::json::string& text = reference->get_string();
    return IsReferenceToPatient(std::string_view(text.data(), text.size()), patient_id);
  }
  const std::size_t dot = path.find('.');
  const std::string_view name = path.substr(0, dot);
  const std::string_view rest =
      dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  const boost::json::value* child = object->if_contains(name);
  return child != nullptr && PathReachesPatient(*child, rest, patient_id);
}

}  // namespace

bool IsReferenceToPatient(std::string_view reference, std::string_view patient_id) {
  if (patient_id.empty()) return false;
  constexpr std::string_view kPatient = "Patient/";
  // Strip a version suffix (references.html#literal: "Patient/7/_history/2").
  constexpr std::string_view kHistory = "/_history/";
  if (const std::size_t history = reference.find(kHistory); history != std::string_view::npos) {
    const std::string_view version = reference.substr(history + kHistory.size());
    if (version.empty() || version.find('/') != std::string_view::npos) return false;
    reference = reference.substr(0, history);
  }
  // The reference must end in "Patient/<id>" exactly ...
  if (reference.size() < kPatient.size() + patient_id.size()) return false;
  const std::string_view tail = reference.substr(reference.size() - patient_id.size());
  if (tail != patient_id) return false;
  const std::string_view head = reference.substr(0, reference.size() - patient_id.size());
  if (head.size() < kPatient.size() || head.substr(head.size() - kPatient.size()) != kPatient) {
    return false;
  }
  // ... and be either relative ("Patient/<id>") or an absolute URL whose base is
  // "<scheme>://..." followed by "/Patient/<id>".
  const std::string_view base = head.substr(0, head.size() - kPatient.size());
  if (base.empty()) return true;
  if (base.back() != '/') return false;
  const std::size_t scheme_end = base.find("://");
  return scheme_end != std::string_view::npos && scheme_end > 0 &&
         base.size() > scheme_end + 3 + 1;  // a host before the final '/'
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
  if (resource_type == "Patient") {
    const boost::json::value* id = resource.if_contains("id");
    if (id != nullptr && id->is_string() &&
        std::string_view(id->get_string().data(), id->get_string().size()) == patient_id) {
      return true;
    }
  }
  for (const std::string& path : *paths) {
    const std::size_t dot = path.find('.');
    const std::string_view first = std::string_view(path).substr(0, dot);
    const std::string_view rest =
        dot == std::string::npos ? std::string_view() : std::string_view(path).substr(dot + 1);
    const boost::json::value* child = resource.if_contains(first);
    if (child != nullptr && PathReachesPatient(*child, rest, patient_id)) return true;
  }
  return false;
}

}  // namespace phigate::policy
