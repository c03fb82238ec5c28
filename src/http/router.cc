#include "http/router.h"

#include <vector>

#include "core/url.h"

namespace phigate::http {

namespace {

Status BadTarget() { return InvalidArgument("invalid request target"); }
Status UnknownPath() { return NotFound("unknown path"); }

Route Make(RouteKind kind, const char* name, const char* allow) {
  Route r;
  r.kind = kind;
  r.name = name;
  r.allow = allow;
  return r;
}

}  // namespace

Result<Route> RouteTarget(std::string_view target, const fhir::Model& model) {
  // RFC 9112 §3.2.1 origin-form only: absolute-form and authority-form are not served.
  if (target.empty() || target.front() != '/' || target.size() > 8192) return BadTarget();
  std::string_view path = target;
  std::string query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    query = std::string(target.substr(q + 1));
  }
  if (size_t h = query.find('#'); h != std::string::npos) return BadTarget();
  // An encoded NUL anywhere (path or query) is refused outright.
  for (size_t i = 0; i + 2 < target.size(); ++i) {
    if (target[i] == '%' && target[i + 1] == '0' && target[i + 2] == '0') return BadTarget();
  }

  std::vector<std::string> segments;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string_view raw =
        path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    auto seg = PercentDecode(raw, false);
    if (!seg) return BadTarget();
    // Dot segments, raw or encoded, never reach routing (path traversal).
    if (*seg == "." || *seg == "..") return BadTarget();
    if (seg->find('/') != std::string::npos || seg->find('\\') != std::string::npos) {
      return BadTarget();
    }
    segments.push_back(std::move(*seg));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (!segments.empty() && segments.back().empty() && segments.size() > 1) {
    segments.pop_back();  // tolerate one trailing slash
  }
  for (const auto& s : segments) {
    if (s.empty()) return UnknownPath();
  }

  Route route;
  const size_t n = segments.size();
  if (n == 1 && segments[0] == "healthz") {
    route = Make(RouteKind::kHealthz, "/healthz", "GET");
  } else if (n == 1 && segments[0] == "readyz") {
    route = Make(RouteKind::kReadyz, "/readyz", "GET");
  } else if (n == 1 && segments[0] == "metrics") {
    route = Make(RouteKind::kMetrics, "/metrics", "GET");
  } else if (n == 2 && segments[0] == "admin" && segments[1] == "break-glass") {
    route = Make(RouteKind::kAdminBreakGlass, "/admin/break-glass", "GET");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "token") {
    route = Make(RouteKind::kToken, "/oauth2/token", "POST");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "jwks") {
    route = Make(RouteKind::kJwks, "/oauth2/jwks", "GET");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "authorize") {
    route = Make(RouteKind::kAuthorize, "/oauth2/authorize", "GET");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "login") {
    route = Make(RouteKind::kLogin, "/oauth2/login", "POST");
  } else if (n == 3 && segments[0] == "oauth2" && segments[1] == "login" && segments[2] == "otp") {
    route = Make(RouteKind::kLoginOtp, "/oauth2/login/otp", "POST");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "revoke") {
    route = Make(RouteKind::kRevoke, "/oauth2/revoke", "POST");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "introspect") {
    route = Make(RouteKind::kIntrospect, "/oauth2/introspect", "POST");
  } else if (n == 2 && segments[0] == "oauth2" && segments[1] == "enroll") {
    route = Make(RouteKind::kEnroll, "/oauth2/enroll", "GET, POST");
  } else if (n == 3 && segments[0] == "oauth2" && segments[1] == "enroll" &&
             segments[2] == "confirm") {
    route = Make(RouteKind::kEnrollConfirm, "/oauth2/enroll/confirm", "POST");
  } else if (n == 2 && segments[0] == ".well-known" && segments[1] == "openid-configuration") {
    route = Make(RouteKind::kOpenIdConfiguration, "/.well-known/openid-configuration", "GET");
  } else if (n == 3 && segments[0] == "fhir" && segments[1] == ".well-known" &&
             segments[2] == "smart-configuration") {
    route = Make(RouteKind::kSmartConfiguration, "/fhir/.well-known/smart-configuration", "GET");
  } else if (n >= 1 && segments[0] == "fhir") {
    if (n == 1) {
      route = Make(RouteKind::kFhirSystem, "/fhir", "POST");
    } else if (n == 2 && segments[1] == "metadata") {
      route = Make(RouteKind::kMetadata, "/fhir/metadata", "GET");
    } else if (n == 2 && segments[1] == "_history") {
      route = Make(RouteKind::kFhirSystemHistory, "/fhir/_history", "GET");
    } else if (n == 4 && segments[1] == "Patient" && segments[3] == "$disclosures") {
      route = Make(RouteKind::kDisclosures, "/fhir/Patient/{id}/$disclosures", "GET");
      route.type = segments[1];
      route.id = segments[2];
    } else if (n == 4 && segments[1] == "Patient" && segments[3] == "$everything") {
      route = Make(RouteKind::kEverything, "/fhir/Patient/{id}/$everything", "GET");
      route.type = segments[1];
      route.id = segments[2];
    } else if (n == 3 && segments[2] == "_search") {
      if (!model.IsResourceType(segments[1])) return NotFound("unknown resource type");
      route = Make(RouteKind::kFhirSearch, "/fhir/{type}/_search", "POST");
      route.type = segments[1];
    } else if (segments.back().front() == '$') {
      route = Make(RouteKind::kFhirOperation, "/fhir/{operation}", "GET, POST");
      if (n >= 2 && segments[1].front() != '$') {
        if (!model.IsResourceType(segments[1])) return NotFound("unknown resource type");
        route.type = segments[1];
      }
    } else {
      if (!model.IsResourceType(segments[1])) return NotFound("unknown resource type");
      if (n == 2) {
        route = Make(RouteKind::kFhirType, "/fhir/{type}", "GET, POST, PUT, DELETE");
      } else if (n == 3 && segments[2] == "_history") {
        route = Make(RouteKind::kFhirTypeHistory, "/fhir/{type}/_history", "GET");
      } else if (n == 3) {
        route = Make(RouteKind::kFhirInstance, "/fhir/{type}/{id}", "GET, PUT, DELETE");
        route.id = segments[2];
      } else if (n == 4 && segments[3] == "_history") {
        route = Make(RouteKind::kFhirInstanceHistory, "/fhir/{type}/{id}/_history", "GET");
        route.id = segments[2];
      } else if (n == 5 && segments[3] == "_history") {
        route = Make(RouteKind::kFhirVersion, "/fhir/{type}/{id}/_history/{vid}", "GET");
        route.id = segments[2];
        route.vid = segments[4];
      } else {
        return UnknownPath();
      }
      route.type = segments[1];
    }
  } else {
    return UnknownPath();
  }
  route.query = std::move(query);
  return route;
}

}  // namespace phigate::http
