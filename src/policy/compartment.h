// Patient compartment membership (issue 4 §2): does a resource belong to a given patient?
// Follows HL7's R4 Patient CompartmentDefinition
// (https://hl7.org/fhir/R4/compartmentdefinition-patient.html, compartments.html): a
// resource of a member type belongs to the compartment of patient P when one of the
// definition's search parameters for that type refers to P. The parameters' FHIRPath
// expressions are reduced at build time to plain element paths by
// tools/gen_patient_compartment.mjs (src/policy/generated/patient_compartment.cc), so the
// request path follows fixed paths through the JSON and never evaluates FHIRPath.
//
// What counts as a reference to P (references.html#literal), decided here because the
// `patient/` scopes and the `patient` role are only as strict as this check:
//   - "Patient/<id>" and the version-specific "Patient/<id>/_history/<vid>" (a versioned
//     reference still names the same patient);
//   - an absolute URL "<base>/Patient/<id>" (or with "/_history/<vid>"), where <base> is
//     any absolute URL ("scheme://..."). This layer does not know the server's own base
//     URL; a server that must distinguish foreign servers' patients checks that before.
//   - the id always matches exactly: never a prefix ("Patient/70" is not patient 7), never
//     case-insensitively, and an empty patient id matches nothing. FHIR ids never contain
//     '/' (datatypes.html#id): the id is what follows the last '/', so an id with a '/'
//     matches nothing either.
// Not recognised (so such a resource is outside the compartment, the safe direction):
// logical references (Reference.identifier only), contained references ("#p1"), relative
// references with a leading path ("fhir/Patient/7"), and anything in `contained`.
//
// Limits: only expression parts that reduce to plain dotted paths are enforced; the
// generator lists any other part in the generated file's header comment (for the 4.0.1
// definitions there are none). The `.where(resolve() is Patient)` filters are dropped,
// which is exact because only references to Patient are ever accepted.
//
// Thread-safety: pure functions over immutable tables (built once, on first use, under the
// C++ guarantee for function-local statics); callable from any thread.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phigate::policy {

// True if `resource` (of type `resource_type`) is in the Patient compartment of the
// patient with id `patient_id`: a Patient whose id is `patient_id`, or a resource of a
// member type with a reference to that patient at one of the type's paths (arrays are
// followed at every step). Untrusted input is handled: elements of unexpected JSON kinds
// are ignored, never asserted on.
bool InPatientCompartment(std::string_view resource_type, const boost::json::object& resource,
                          std::string_view patient_id);

// The ids of the patients in whose compartment `resource` (of `resource_type`) is: exactly
// the ids P for which InPatientCompartment(resource_type, resource, P) holds, i.e. a
// Patient's own id, then every patient referenced at the type's paths (for a Patient, the
// patients it links to), deduplicated, in order of appearance. Empty for a type outside the
// compartment. Used to key per-patient decisions (break-glass grants) on a stored resource.
std::vector<std::string> ReferencedPatients(std::string_view resource_type,
                                            const boost::json::object& resource);

// True if resources of `resource_type` can belong to a patient compartment at all (the
// definition lists at least one parameter for it). Practitioner, Organization, ... -> false.
bool HasPatientCompartment(std::string_view resource_type);

// The element paths (relative to the type, dotted, e.g. "participant.actor") that
// link `type` to its patient; nullptr for a type outside the compartment. For Patient
// these are the links to other Patients (`link.other`); the id itself is checked too.
// Valid for the life of the process.
const std::vector<std::string>* PatientCompartmentPaths(std::string_view type);

// The member types of the Patient compartment, sorted by type, each with the search
// parameter codes that link it to a patient (Patient: "link"), for $everything. Valid for
// the life of the process.
const std::vector<std::pair<std::string, std::vector<std::string>>>& PatientCompartmentMembers();

// Whether `reference` (a Reference.reference value) names the patient `patient_id`, per the
// rules above. Exposed for callers that check a single reference (e.g. a search parameter
// value `patient=Patient/7`).
bool IsReferenceToPatient(std::string_view reference, std::string_view patient_id);

namespace internal {

// The generated table (src/policy/generated/patient_compartment.cc). `params` and `paths`
// are comma-separated lists; a member type whose expressions could not be reduced has an
// empty `paths`.
struct PatientCompartmentRow {
  std::string_view type;
  std::string_view params;
  std::string_view paths;
};
extern const PatientCompartmentRow kPatientCompartmentRows[];
extern const std::size_t kPatientCompartmentRowCount;

}  // namespace internal
}  // namespace phigate::policy
