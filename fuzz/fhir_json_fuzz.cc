// Fuzz target for the request-body path of the FHIR layer: ParseJson (fhir/json_parse.h)
// at the server's default depth limit, then, for what it accepts, ValidateResource
// (fhir/validator.h) against the R4 model and the text-level helpers of fhir/json_text.h.
//
// Invariants checked on every accepted object (a failure is a bug, never bad input):
//   - TopLevelMembers finds exactly the object's members, in order, with the same names;
//   - rebuilding the object from those members, each value passed through AppendMinified,
//     parses to the same value as the original (this is how stored resources are written:
//     id and meta replaced, every other member copied as text);
//   - AppendMinified of the whole text parses to the same value too.
// Errors must be kInvalidArgument with a message: ParseJson and the validator have no
// other way to fail.
// Thread-safety: libFuzzer calls this from one thread.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/json_parse.h"
#include "fhir/json_text.h"
#include "fhir/model.h"
#include "fhir/validator.h"
#include "fuzz_check.h"

namespace {

namespace json = boost::json;
using phigate::StatusCode;

// The server's default limits.json_depth (core/config.h).
constexpr int kJsonDepth = 64;

bool ReparsesTo(const std::string& text, const json::value& expected) {
  const auto reparsed = phigate::fhir::ParseJson(text, kJsonDepth);
  return reparsed.ok() && *reparsed == expected;
}

// validator.h: the expression names elements (and array indices) only, never client data.
bool IsSafeExpression(std::string_view expression) {
  for (char c : expression) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

void CheckTextHelpers(std::string_view text, const json::value& value) {
  const json::object& object = value.get_object();
  const std::vector<phigate::fhir::RawMember> members = phigate::fhir::TopLevelMembers(text);
  FUZZ_CHECK(members.size() == object.size());
  std::string rebuilt = "{";
  size_t i = 0;
  for (const json::key_value_pair& kv : object) {
    const phigate::fhir::RawMember& m = members[i];
    FUZZ_CHECK(m.key == std::string_view(kv.key().data(), kv.key().size()));
    if (i++ > 0) rebuilt += ',';
    rebuilt += json::serialize(json::string_view(m.key));
    rebuilt += ':';
    phigate::fhir::AppendMinified(rebuilt, m.value);
  }
  rebuilt += '}';
  FUZZ_CHECK(ReparsesTo(rebuilt, value));

  std::string minified;
  phigate::fhir::AppendMinified(minified, text);
  FUZZ_CHECK(ReparsesTo(minified, value));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = phigate::fhir::ParseJson(text, kJsonDepth);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(!parsed.status().message().empty());
    return 0;
  }
  const phigate::Status valid =
      phigate::fhir::ValidateResource(*parsed, phigate::fhir::Model::R4());
  FUZZ_CHECK(valid.ok() ||
             (valid.code() == StatusCode::kInvalidArgument && !valid.message().empty()));
  FUZZ_CHECK(IsSafeExpression(valid.expression()));
  if (parsed->is_object()) CheckTextHelpers(text, *parsed);
  return 0;
}
