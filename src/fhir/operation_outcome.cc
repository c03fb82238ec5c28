#include "fhir/operation_outcome.h"

#include "core/log.h"

namespace phigate::fhir {

std::string OperationOutcomeJson(std::string_view severity, std::string_view code,
                                 std::string_view text, std::string_view expression) {
  std::string out = R"({"resourceType":"OperationOutcome","issue":[{"severity":)";
  AppendJsonEscaped(out, severity);
  out += R"(,"code":)";
  AppendJsonEscaped(out, code);
  if (!text.empty()) {
    out += R"(,"diagnostics":)";
    AppendJsonEscaped(out, text);
  }
  if (!expression.empty()) {
    out += R"(,"expression":[)";
    AppendJsonEscaped(out, expression);
    out += ']';
  }
  out += "}]}";
  return out;
}

}  // namespace phigate::fhir
