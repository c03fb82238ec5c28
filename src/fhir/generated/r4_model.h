// The embedded FHIR R4 structure model: JSON text generated from HL7's StructureDefinitions
// by tools/gen_fhir_model.mjs (format documented there). Only fhir/model.cc reads it.
// Thread-safety: immutable data.
#pragma once

#include <cstddef>

namespace phigate::fhir {

extern const char kR4ModelJson[];
extern const std::size_t kR4ModelJsonSize;  // bytes, without the terminating NUL

}  // namespace phigate::fhir
