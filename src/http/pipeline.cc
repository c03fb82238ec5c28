#include "http/pipeline.h"

#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>

#include "auth/jwks.h"
#include "auth/scope.h"
#include "auth/scope_check.h"
#include "core/ascii.h"
#include "core/log.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "fhir/capability.h"
#include "fhir/json_pretty.h"
#include "fhir/operation_outcome.h"
#include "http/router.h"
#include "http/status_mapping.h"

namespace phigate::http {

namespace bhttp = boost::beast::http;

namespace {

constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";
constexpr std::string_view kJson = "application/json; charset=utf-8";

bool IsWellFormedRequestId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// The media type of a Content-Type or Accept element, without parameters, lower-cased.
std::string MediaType(std::string_view value) {
  return ToLowerAscii(TrimOws(value.substr(0, value.find(';'))));
}

bool IsFhirJsonMediaType(std::string_view type) {
  return type == "application/fhir+json" || type == "application/json" ||
         type == "application/json+fhir";
}

// http.html#mime-type: Accept may list several types; any JSON or wildcard is acceptable.
bool AcceptsFhirJson(std::string_view accept) {
  if (TrimOws(accept).empty()) return true;
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string type = MediaType(accept.substr(0, comma));
    if (IsFhirJsonMediaType(type) || type == "*/*" || type == "application/*") return true;
    if (comma == std::string_view::npos) break;
    accept.remove_prefix(comma + 1);
  }
  return false;
}

// _format (http.html#mime-type): json spellings pass, anything else is not acceptable.
bool FormatIsJson(std::string_view format) {
  std::string t = MediaType(format);
  return t == "json" || IsFhirJsonMediaType(t);
}

std::optional<auth::Interaction> InteractionOf(RouteKind kind, bhttp::verb method) {
  switch (kind) {
    case RouteKind::kFhirType:
      return method == bhttp::verb::post ? auth::Interaction::kCreate : auth::Interaction::kSearch;
    case RouteKind::kFhirInstance:
      if (method == bhttp::verb::put) return auth::Interaction::kUpdate;
      if (method == bhttp::verb::delete_) return auth::Interaction::kDelete;
      return auth::Interaction::kRead;
    case RouteKind::kFhirVersion:
      return auth::Interaction::kVread;
    case RouteKind::kFhirInstanceHistory:
      return auth::Interaction::kHistoryInstance;
    case RouteKind::kFhirTypeHistory:
      return auth::Interaction::kHistoryType;
    default:
      return std::nullopt;
  }
}

bool MethodAllowed(std::string_view allow, std::string_view method) {
  while (!allow.empty()) {
    size_t comma = allow.find(',');
    if (TrimOws(allow.substr(0, comma)) == method) return true;
    if (comma == std::string_view::npos) break;
    allow.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

struct Pipeline::Context {
  std::string request_id;
  const char* route = "unrouted";
  std::string client_id;
  bool pretty = false;
  unsigned version = 11;
};

Pipeline::Pipeline(PipelineDeps deps) : deps_(deps) {
  base_url_ = deps_.config->auth.issuer + "/fhir";
  token_url_ = deps_.config->auth.issuer + "/oauth2/token";
  hsts_ = "max-age=" + std::to_string(deps_.config->tls.hsts_max_age_s) + "; includeSubDomains";
  jwks_json_ = auth::JwksJson(*deps_.signing_key);
  // The statement changes only with the build and the config: built once, dated at start.
  capability_json_ = fhir::CapabilityStatementJson(
      *deps_.model, deps_.config->fhir,
      {base_url_, token_url_, deps_.config->auth.issuer + "/oauth2", deps_.clock->NowMillis()});
  openid_configuration_json_ = deps_.oauth->OpenIdConfigurationJson();
  smart_configuration_json_ = deps_.oauth->SmartConfigurationJson();
}

namespace {

net::Response MakeResponse(unsigned version, bhttp::status status, std::string_view content_type,
                           std::string body) {
  net::Response res{status, version};
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  return res;
}

net::Response ErrorResponse(unsigned version, const Status& status) {
  HttpError e = MapStatus(status.code());
  net::Response res = MakeResponse(
      version, static_cast<bhttp::status>(e.http_status), kFhirJson,
      fhir::OperationOutcomeJson(e.severity, e.issue_code, status.message(), status.expression()));
  if (status.code() == StatusCode::kUnauthenticated) {
    if (status.message() == auth::kInsufficientUserAuthentication) {
      // RFC 9470 §3: the token is valid but the person did not use a second factor.
      res.set(bhttp::field::www_authenticate,
              R"(Bearer realm="phigate", error="insufficient_user_authentication", )"
              R"(error_description="multi-factor authentication is required")");
    } else {
      // RFC 6750 §3.1.
      res.set(bhttp::field::www_authenticate, R"(Bearer realm="phigate", error="invalid_token")");
    }
  }
  return res;
}

}  // namespace

net::Response Pipeline::TransportError(bhttp::status status, std::string_view message,
                                       std::string_view request_id) {
  StatusCode code = StatusCode::kInvalidArgument;
  if (status == bhttp::status::payload_too_large) code = StatusCode::kPayloadTooLarge;
  if (status == bhttp::status::request_header_fields_too_large) code = StatusCode::kPayloadTooLarge;
  if (status == bhttp::status::request_timeout) code = StatusCode::kUnavailable;
  if (static_cast<int>(status) >= 500) code = StatusCode::kInternal;
  net::Response res =
      MakeResponse(11, status, kFhirJson,
                   fhir::OperationOutcomeJson("error", MapStatus(code).issue_code, message, ""));
  res.set(bhttp::field::strict_transport_security, hsts_);
  res.set("X-Content-Type-Options", "nosniff");
  res.set(bhttp::field::cache_control, "no-store");
  const std::string id =
      IsWellFormedRequestId(request_id) ? std::string(request_id) : crypto::RandomToken(12);
  res.set("X-Request-Id", id);
  res.keep_alive(false);
  res.prepare_payload();
  Log(LogLevel::kInfo, "request",
      {{"request_id", id}, {"route", "transport"}, {"status", static_cast<int>(status)}});
  return res;
}

net::Response Pipeline::Handle(net::Request&& request, const net::ConnectionInfo& conn) {
  const auto started = std::chrono::steady_clock::now();
  Context ctx;
  ctx.version = request.version();

  // 1. Request id first, so every later outcome (errors included) carries it.
  std::string_view incoming_id = request["X-Request-Id"];
  ctx.request_id =
      IsWellFormedRequestId(incoming_id) ? std::string(incoming_id) : crypto::RandomToken(12);

  // 2. Dispatch; the one boundary where an escaped exception becomes a 500.
  net::Response res;
  try {
    res = Dispatch(ctx, request, conn);
  } catch (const std::exception&) {
    Log(LogLevel::kError, "handler_exception", {{"request_id", ctx.request_id}});
    res = ErrorResponse(ctx.version, Internal("internal error"));
  }

  // 3. Headers every response carries (issue 2 §3).
  res.set(bhttp::field::strict_transport_security, hsts_);
  res.set("X-Content-Type-Options", "nosniff");
  res.set(bhttp::field::cache_control, "no-store");
  res.set("X-Request-Id", ctx.request_id);
  res.set("X-Frame-Options", "DENY");
  // HTML pages of the authorization server bring their own (stricter per page) policy.
  if (res.find("Content-Security-Policy") == res.end()) {
    res.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  }
  if (ctx.pretty && !res.body().empty()) res.body() = fhir::PrettyPrintJson(res.body());
  res.keep_alive(request.keep_alive());
  res.prepare_payload();
  // A HEAD response keeps the Content-Length of the GET it mirrors but carries no body.
  if (request.method() == bhttp::verb::head) res.body().clear();

  // 4. PHI-free access log: the route template, never the concrete path or query.
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  Log(LogLevel::kInfo, "request",
      {{"request_id", ctx.request_id},
       // An unknown method's name is client text (it could be anything): not logged.
       {"method", request.method() == bhttp::verb::unknown
                      ? std::string_view("OTHER")
                      : std::string_view(request.method_string())},
       {"route", ctx.route},
       {"status", static_cast<int>(res.result_int())},
       {"duration_ms", static_cast<double>(micros) / 1000.0},
       {"client_id", ctx.client_id}});
  return res;
}

net::Response Pipeline::Dispatch(Context& ctx, net::Request& request,
                                 const net::ConnectionInfo& conn) {
  auto routed = RouteTarget(request.target(), *deps_.model);
  if (!routed.ok()) return ErrorResponse(ctx.version, routed.status());
  Route& route = routed.value();
  ctx.route = route.name;

  // RFC 9110 §9.3.2: HEAD is GET without the body (Handle drops it), wherever GET is.
  const std::string_view method = request.method() == bhttp::verb::head
                                      ? std::string_view("GET")
                                      : std::string_view(request.method_string());
  if (!MethodAllowed(route.allow, method)) {
    net::Response res = ErrorResponse(
        ctx.version, Status(StatusCode::kMethodNotAllowed, "method not allowed on this resource"));
    res.set(bhttp::field::allow, route.allow);
    return res;
  }

  switch (route.kind) {
    case RouteKind::kHealthz:
      return MakeResponse(ctx.version, bhttp::status::ok, kJson, R"({"status":"ok"})");
    case RouteKind::kReadyz:
      if (deps_.store->Healthy()) {
        return MakeResponse(ctx.version, bhttp::status::ok, kJson, R"({"status":"ready"})");
      }
      return MakeResponse(ctx.version, bhttp::status::service_unavailable, kJson,
                          R"({"status":"not ready"})");
    case RouteKind::kJwks:
      return MakeResponse(ctx.version, bhttp::status::ok, kJson, jwks_json_);
    case RouteKind::kOpenIdConfiguration:
      return MakeResponse(ctx.version, bhttp::status::ok, kJson, openid_configuration_json_);
    case RouteKind::kSmartConfiguration:
      return MakeResponse(ctx.version, bhttp::status::ok, kJson, smart_configuration_json_);
    case RouteKind::kToken:
    case RouteKind::kRevoke:
    case RouteKind::kIntrospect:
    case RouteKind::kAuthorize:
    case RouteKind::kLogin:
    case RouteKind::kLoginOtp:
    case RouteKind::kEnroll:
    case RouteKind::kEnrollConfirm:
      return HandleAuthEndpoint(ctx, request, route, conn);
    default:
      return HandleFhir(ctx, request, route);
  }
}

net::Response Pipeline::HandleAuthEndpoint(Context& ctx, net::Request& request, const Route& route,
                                           const net::ConnectionInfo& conn) {
  auth::EndpointRequest in;
  in.method = request.method() == bhttp::verb::head ? std::string_view("GET")
                                                    : std::string_view(request.method_string());
  in.query = route.query;
  in.content_type = request[bhttp::field::content_type];
  in.authorization = request[bhttp::field::authorization];
  in.cookie = request[bhttp::field::cookie];
  in.origin = request[bhttp::field::origin];
  in.body = request.body();
  in.remote_address = conn.remote_address;
  in.user_agent = request[bhttp::field::user_agent];

  auth::EndpointResponse out;
  switch (route.kind) {
    case RouteKind::kToken:
      out = deps_.oauth->Token(in);
      break;
    case RouteKind::kRevoke:
      out = deps_.oauth->Revoke(in);
      break;
    case RouteKind::kIntrospect:
      out = deps_.oauth->Introspect(in);
      break;
    case RouteKind::kAuthorize:
      out = deps_.login->Authorize(in);
      break;
    case RouteKind::kLogin:
      out = deps_.login->Login(in);
      break;
    case RouteKind::kLoginOtp:
      out = deps_.login->LoginOtp(in);
      break;
    case RouteKind::kEnroll:
      out = in.method == "GET" ? deps_.login->EnrollPage(in) : deps_.login->Enroll(in);
      break;
    case RouteKind::kEnrollConfirm:
      out = deps_.login->EnrollConfirm(in);
      break;
    default:
      return ErrorResponse(ctx.version, Internal("internal error"));
  }
  net::Response res = MakeResponse(ctx.version, static_cast<bhttp::status>(out.status),
                                   out.content_type, std::move(out.body));
  // insert, not set: a response may carry several Set-Cookie fields.
  for (auto& [name, value] : out.headers) res.insert(name, value);
  return res;
}

net::Response Pipeline::HandleFhir(Context& ctx, net::Request& request, const Route& route) {
  auto params = ParseQuery(route.query);
  if (!params) return ErrorResponse(ctx.version, InvalidArgument("malformed query string"));

  // Content negotiation (http.html#mime-type) before any work.
  bool has_access_token_param = false;
  for (const auto& [name, value] : *params) {
    if (name == "_format" && !FormatIsJson(value)) {
      return ErrorResponse(ctx.version,
                           Status(StatusCode::kNotAcceptable, "only JSON is supported (_format)"));
    }
    if (name == "_pretty") ctx.pretty = value == "true";
    if (name == "access_token") has_access_token_param = true;
  }
  if (!AcceptsFhirJson(request[bhttp::field::accept])) {
    return ErrorResponse(
        ctx.version, Status(StatusCode::kNotAcceptable, "only application/fhir+json is supported"));
  }

  if (route.kind == RouteKind::kMetadata) {
    return MakeResponse(ctx.version, bhttp::status::ok, kFhirJson, capability_json_);
  }

  // Authenticate: a bearer token in the Authorization header only (RFC 6750 §2.1); a
  // token in the URL would end up in logs and browser history, so it is refused.
  if (has_access_token_param) {
    return ErrorResponse(ctx.version,
                         Status(StatusCode::kUnauthenticated,
                                "access tokens are accepted only in the Authorization header"));
  }
#ifdef PHIGATE_BENCH_NO_AUTH
  // Benchmark build only (CMake PHIGATE_BENCH_NO_AUTH): the authentication stage is
  // replaced by a fixed all-powerful principal to measure what the stage costs.
  static const std::shared_ptr<const auth::Principal> principal = [] {
    auth::Principal p;
    p.client_id = "bench-no-auth";
    p.subject = p.client_id;
    p.scopes = std::move(auth::ScopeSet::Parse("system/*.cruds")).value();
    return std::make_shared<const auth::Principal>(std::move(p));
  }();
#else
  std::string_view authz = request[bhttp::field::authorization];
  if (authz.size() < 7 || !EqualsIgnoreCase(authz.substr(0, 7), "Bearer ")) {
    return ErrorResponse(ctx.version,
                         Status(StatusCode::kUnauthenticated, "a bearer token is required"));
  }
  auto verified = deps_.verifier->VerifyShared(TrimOws(authz.substr(7)));
  if (!verified.ok()) return ErrorResponse(ctx.version, verified.status());
  const std::shared_ptr<const auth::Principal>& principal = verified.value();
#endif
  ctx.client_id = principal->client_id;

  // Authorize: the token's scopes must grant the interaction on the type.
  auto interaction = InteractionOf(route.kind, request.method());
  if (!interaction) {
    return ErrorResponse(ctx.version, NotSupported("this interaction is not supported yet"));
  }
  if (Status allowed = auth::CheckScopes(*principal, route.type, route.id, *interaction);
      !allowed.ok()) {
    return ErrorResponse(ctx.version, allowed);
  }

  // Handle.
  Result<fhir::RestResult> result = NotSupported("not supported");
  const bool has_body =
      request.method() == bhttp::verb::post || request.method() == bhttp::verb::put;
  if (has_body && !IsFhirJsonMediaType(MediaType(request[bhttp::field::content_type]))) {
    return ErrorResponse(ctx.version, Status(StatusCode::kUnsupportedMediaType,
                                             "the body must be application/fhir+json"));
  }
  const std::string_view body = request.body();
  std::string_view if_match = request[bhttp::field::if_match];
  switch (route.kind) {
    case RouteKind::kFhirType:
      if (request.method() == bhttp::verb::post) {
        result = deps_.resources->Create(route.type, body, base_url_);
      } else {
        result = NotSupported("search is not supported yet");
      }
      break;
    case RouteKind::kFhirInstance:
      if (request.method() == bhttp::verb::put) {
        result = deps_.resources->Update(route.type, route.id, body, if_match, base_url_);
      } else if (request.method() == bhttp::verb::delete_) {
        result = deps_.resources->Delete(route.type, route.id, if_match);
      } else {
        result = deps_.resources->Read(route.type, route.id);
      }
      break;
    case RouteKind::kFhirVersion:
      result = deps_.resources->Vread(route.type, route.id, route.vid);
      break;
    case RouteKind::kFhirInstanceHistory:
      result = deps_.resources->History(route.type, route.id, *params, base_url_);
      break;
    case RouteKind::kFhirTypeHistory:
      result = deps_.resources->History(route.type, "", *params, base_url_);
      break;
    default:
      break;
  }
  if (!result.ok()) {
    net::Response res = ErrorResponse(ctx.version, result.status());
    // RFC 9110 §15.5.6: a 405 names what the target does allow.
    if (result.status().code() == StatusCode::kMethodNotAllowed) {
      res.set(bhttp::field::allow, route.allow);
    }
    return res;
  }

  fhir::RestResult& r = result.value();
  const std::string_view content_type = r.body.empty() ? std::string_view{} : kFhirJson;
  net::Response res = MakeResponse(ctx.version, static_cast<bhttp::status>(r.status), content_type,
                                   std::move(r.body));
  if (!r.etag.empty()) res.set(bhttp::field::etag, r.etag);
  if (!r.last_modified.empty()) res.set(bhttp::field::last_modified, r.last_modified);
  if (!r.location.empty() && (r.status == 201)) res.set(bhttp::field::location, r.location);
  // Prefer (http.html#ops): return=minimal drops the body of a write.
  std::string_view prefer = request["Prefer"];
  if (has_body && prefer.find("return=minimal") != std::string_view::npos) {
    res.body().clear();
    res.erase(bhttp::field::content_type);
  } else if (has_body && prefer.find("return=OperationOutcome") != std::string_view::npos) {
    res.body() = fhir::OperationOutcomeJson("information", "informational", "ok", "");
  }
  return res;
}

}  // namespace phigate::http
