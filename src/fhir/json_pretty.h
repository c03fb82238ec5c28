// Pretty-printing of compact JSON text for `_pretty=true` (http.html#general).
// Works on the text so a stored resource is not parsed again. Thread-safety: pure.
#pragma once

#include <string>
#include <string_view>

namespace phigate::fhir {

// `compact` must be valid JSON (as produced by the server); indents by two spaces.
std::string PrettyPrintJson(std::string_view compact);

}  // namespace phigate::fhir
