// ValidateResource: structural validation of a FHIR R4 resource in JSON form against the
// model (json.html, datatypes.html, element.html, extensibility.html), before anything
// is stored.
//
// Checked: a known concrete resourceType; every property is an element of its type (no
// unknown elements); choice elements (value[x]) use one allowed type name, at most one per
// element; cardinality (max 1 never an array, max * always an array, min >= 1 present when
// the parent is); no null values, empty strings, empty objects or empty arrays; each
// primitive's JSON type and lexical form; `_name` primitive extensions (an object, or for
// repeating elements an array aligned with the values, nulls allowed where the other array
// has an entry); extensions (url, exactly one of value[x] and nested extensions); contained
// resources, Bundle.entry.resource and Parameters.parameter.resource recursively (a
// contained resource must not contain resources or carry meta.versionId/lastUpdated).
// Not checked: terminology bindings, FHIRPath invariants beyond those named, profiles,
// reference resolution.
//
// The returned Status is Ok or kInvalidArgument for the first problem found, with a
// fixed, client-safe message that never repeats the submitted value, and the FHIRPath of
// the element in expression(), e.g. "Patient.name[0].given[1]" or
// "Observation.valueQuantity.value" (choice elements by their JSON name). An unknown
// property is named in the path only if it looks like an element name (ASCII letters,
// digits, '_', up to 64); otherwise the path stops at the object that holds it.
// Cost: linear in the size of the document; recursion depth follows its JSON nesting,
// which ParseJson bounds; nothing is allocated on success paths except the path text.
// Thread-safety: a pure function; the model is read-only.
#pragma once

#include <boost/json/value.hpp>

#include "core/status.h"
#include "fhir/model.h"

namespace phigate::fhir {

Status ValidateResource(const boost::json::value& resource, const Model& model);

}  // namespace phigate::fhir
