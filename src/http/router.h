// Router: maps a request target to a route, rejecting unsafe targets before anything
// else looks at them. Pure string work, no Beast, so it is cheap to test and fuzz.
// Thread-safety: pure functions over an immutable model.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"
#include "fhir/model.h"

namespace phigate::http {

enum class RouteKind {
  kHealthz,              // GET /healthz
  kReadyz,               // GET /readyz
  kMetrics,              // GET /metrics (Prometheus text; admin or auditor token)
  kAdminBreakGlass,      // GET /admin/break-glass (auditor token)
  kToken,                // POST /oauth2/token
  kJwks,                 // GET /oauth2/jwks
  kAuthorize,            // GET /oauth2/authorize (login page)
  kLogin,                // POST /oauth2/login (password step)
  kLoginOtp,             // POST /oauth2/login/otp (TOTP step)
  kRevoke,               // POST /oauth2/revoke (RFC 7009)
  kIntrospect,           // POST /oauth2/introspect (RFC 7662)
  kEnroll,               // GET, POST /oauth2/enroll
  kEnrollConfirm,        // POST /oauth2/enroll/confirm
  kOpenIdConfiguration,  // GET /.well-known/openid-configuration
  kSmartConfiguration,   // GET /fhir/.well-known/smart-configuration
  kMetadata,             // GET /fhir/metadata
  kFhirSystem,           // /fhir (batch/transaction: not yet supported)
  kFhirSystemHistory,    // /fhir/_history (not yet supported)
  kFhirType,             // /fhir/{type}
  kFhirInstance,         // /fhir/{type}/{id}
  kFhirTypeHistory,      // /fhir/{type}/_history
  kFhirInstanceHistory,  // /fhir/{type}/{id}/_history
  kFhirVersion,          // /fhir/{type}/{id}/_history/{vid}
  kFhirSearch,           // POST /fhir/{type}/_search (form body)
  kEverything,           // GET /fhir/Patient/{id}/$everything
  kFhirOperation,        // /fhir/.../$op (not yet supported)
  kDisclosures,          // GET /fhir/Patient/{id}/$disclosures (accounting of disclosures)
};

struct Route {
  RouteKind kind = RouteKind::kHealthz;
  std::string type;
  std::string id;
  std::string vid;
  std::string query;       // raw query string (after '?'), undecoded
  const char* name = "";   // route template for logs, e.g. "/fhir/{type}/{id}"
  const char* allow = "";  // methods the route supports, for 405 Allow
};

// Errors: kInvalidArgument for `..`, encoded NUL, bad escapes or a non-origin-form
// target; kNotFound for unknown paths and unknown resource types.
Result<Route> RouteTarget(std::string_view target, const fhir::Model& model);

}  // namespace phigate::http
