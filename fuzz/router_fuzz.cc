// Fuzz target for the request-target parser (http/router.h), the first code that sees a
// client's path and query.
//
// Beyond "no crash", it checks the router's security promises on every accepted target:
// the type, id and version handed to the layers below are plain segments (no '/', '\\',
// NUL, dot segments or empty ids), a resource type is one the model knows, and the query
// is the raw text after the first '?'.
// Thread-safety: libFuzzer calls this from one thread.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fhir/model.h"
#include "fuzz_check.h"
#include "http/router.h"

namespace {

using phigate::http::RouteKind;

bool IsPlainSegment(std::string_view s) {
  return !s.empty() && s != "." && s != ".." &&
         s.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  const phigate::fhir::Model& model = phigate::fhir::Model::R4();
  const auto route = phigate::http::RouteTarget(target, model);
  if (!route.ok()) {
    const auto code = route.status().code();
    FUZZ_CHECK(code == phigate::StatusCode::kInvalidArgument ||
               code == phigate::StatusCode::kNotFound);
    return 0;
  }
  FUZZ_CHECK(!target.empty() && target.front() == '/');
  FUZZ_CHECK(route->name != nullptr && route->name[0] == '/');
  FUZZ_CHECK(route->allow != nullptr && route->allow[0] != '\0');

  const size_t q = target.find('?');
  FUZZ_CHECK(route->query == (q == std::string_view::npos ? "" : target.substr(q + 1)));

  if (!route->type.empty()) FUZZ_CHECK(model.IsResourceType(route->type));
  switch (route->kind) {
    case RouteKind::kEverything:
    case RouteKind::kDisclosures:
      FUZZ_CHECK(route->type == "Patient");
      FUZZ_CHECK(IsPlainSegment(route->id) && route->vid.empty());
      break;
    case RouteKind::kFhirSearch:
    case RouteKind::kFhirType:
    case RouteKind::kFhirTypeHistory:
      FUZZ_CHECK(model.IsResourceType(route->type));
      FUZZ_CHECK(route->id.empty() && route->vid.empty());
      break;
    case RouteKind::kFhirInstance:
    case RouteKind::kFhirInstanceHistory:
      FUZZ_CHECK(model.IsResourceType(route->type));
      FUZZ_CHECK(IsPlainSegment(route->id) && route->vid.empty());
      break;
    case RouteKind::kFhirVersion:
      FUZZ_CHECK(model.IsResourceType(route->type));
      FUZZ_CHECK(IsPlainSegment(route->id) && IsPlainSegment(route->vid));
      break;
    default:
      FUZZ_CHECK(route->id.empty() && route->vid.empty());
      break;
  }
  return 0;
}
