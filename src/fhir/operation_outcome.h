// OperationOutcome (operationoutcome.html): the body of every FHIR error response.
// Text is client-safe by construction: callers pass Status messages, which never hold PHI
// or submitted values. Thread-safety: pure function.
#pragma once

#include <string>
#include <string_view>

namespace phigate::fhir {

// `code` is from the IssueType value set (invalid, not-found, forbidden, ...).
std::string OperationOutcomeJson(std::string_view severity, std::string_view code,
                                 std::string_view text, std::string_view expression);

}  // namespace phigate::fhir
