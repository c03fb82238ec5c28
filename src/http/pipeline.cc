#include "http/pipeline.h"

#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <exception>
#include <map>

#include "audit/query.h"
#include "auth/jwks.h"
#include "auth/scope.h"
#include "core/ascii.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "fhir/capability.h"
#include "fhir/json_parse.h"
#include "fhir/json_pretty.h"
#include "fhir/operation_outcome.h"
#include "fhir/search_param_defs.h"
#include "http/router.h"
#include "http/security_audit.h"
#include "http/status_mapping.h"
#include "policy/compartment.h"
#include "policy/minimize.h"
#include "policy/search_params.h"

namespace phigate::http {

namespace bhttp = boost::beast::http;

namespace {

constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";
constexpr std::string_view kJson = "application/json; charset=utf-8";
constexpr std::string_view kAuditUnavailable =
    "the audit trail is unavailable: no data was returned; retry later";
// The padding of /readyz's probe record while the trail is failing.
constexpr size_t kReadinessProbeBytes = 8192;
// A user agent is kept (encrypted) in the audit record up to this length.
constexpr size_t kMaxAuditedUserAgent = 256;
const policy::ElementMask kEverything = policy::ElementMask::Everything();

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
    case RouteKind::kFhirType:  // PUT and DELETE on a type are conditional (http.html#cond-update)
      if (method == bhttp::verb::post) return auth::Interaction::kCreate;
      if (method == bhttp::verb::put) return auth::Interaction::kUpdate;
      if (method == bhttp::verb::delete_) return auth::Interaction::kDelete;
      return auth::Interaction::kSearch;
    case RouteKind::kFhirSearch:
      return auth::Interaction::kSearch;
    case RouteKind::kEverything:  // reading the patient's record; each type is checked too
      return auth::Interaction::kRead;
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
  // The authorization outcome, for the access log and the audit record.
  std::string purpose;
  std::string break_glass_grant;
  std::string denial;
  // The audit record (issue 5), filled along the pipeline.
  audit::Event event;
  bool audit = true;     // this request is recorded (all but probes and public documents)
  bool audited = false;  // its record is durable already (a change's, in its transaction)
  const net::ConnectionInfo* conn = nullptr;  // the connection (Bundle entries reuse it)
};

namespace {

char ActionOf(auth::Interaction interaction) {
  switch (interaction) {
    case auth::Interaction::kCreate:
      return 'C';
    case auth::Interaction::kUpdate:
      return 'U';
    case auth::Interaction::kDelete:
      return 'D';
    default:
      return 'R';
  }
}

// The http://hl7.org/fhir/restful-interaction code.
std::string_view SubtypeOf(auth::Interaction interaction) {
  switch (interaction) {
    case auth::Interaction::kRead:
      return "read";
    case auth::Interaction::kVread:
      return "vread";
    case auth::Interaction::kUpdate:
      return "update";
    case auth::Interaction::kDelete:
      return "delete";
    case auth::Interaction::kHistoryInstance:
      return "history-instance";
    case auth::Interaction::kHistoryType:
      return "history-type";
    case auth::Interaction::kCreate:
      return "create";
    case auth::Interaction::kSearch:
      return "search-type";
  }
  return "operation";
}

// The OperationOutcome issue code (or OAuth error code) of an error body, for the record.
std::string ErrorCodeOf(std::string_view body) {
  for (std::string_view key : {std::string_view(R"("code":")"), std::string_view(R"("error":")")}) {
    size_t at = body.find(key);
    if (at == std::string_view::npos) continue;
    std::string_view rest = body.substr(at + key.size());
    size_t end = 0;
    while (end < rest.size() && end < 40 &&
           ((rest[end] >= 'a' && rest[end] <= 'z') || rest[end] == '-' || rest[end] == '_')) {
      ++end;
    }
    if (end < rest.size() && rest[end] == '"') return std::string(rest.substr(0, end));
  }
  return {};
}

// The audit trail is the auditor's (issue 5 §4): the role by name, on top of what the
// policy grants, so that a custom policy cannot open the trail to another role.
bool IsAuditor(const auth::Principal& principal) {
  return std::find(principal.roles.begin(), principal.roles.end(), "auditor") !=
         principal.roles.end();
}

void NoteWho(audit::Event& event, const auth::Principal& principal) {
  if (principal.kind == auth::PrincipalKind::kPerson) event.user_id = principal.subject;
  event.client_id = principal.client_id;
  event.roles = principal.roles;
}

// Adds the patients whose compartments `json` (a resource of `type`) belongs to. A Patient
// concerns itself alone (policy::CompartmentPatients): its stored id is known without
// parsing (`id`, when the caller has it), which keeps the read path's record cheap.
void NotePatients(audit::Event& event, std::string_view type, std::string_view json,
                  std::string_view id = {}) {
  if (type == "Patient" && !id.empty()) {
    if (std::find(event.patients.begin(), event.patients.end(), id) == event.patients.end()) {
      event.patients.emplace_back(id);
    }
    return;
  }
  for (std::string& p : policy::CompartmentPatients(type, json)) {
    if (std::find(event.patients.begin(), event.patients.end(), p) == event.patients.end()) {
      event.patients.push_back(std::move(p));
    }
  }
}

// Notes an entry a search or history serves on the request's record: the patients of its
// stored version (`served.patients`, gathered before the view shaped it) and its Type/id.
void NoteServed(audit::Event& event, audit::Event& served, std::string_view type,
                std::string_view id) {
  for (std::string& p : served.patients) {
    if (std::find(event.patients.begin(), event.patients.end(), p) == event.patients.end()) {
      event.patients.push_back(std::move(p));
    }
  }
  event.returned.push_back(std::string(type) + "/" + std::string(id));
}

int64_t VersionOfEtag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() < 3) return 0;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(etag.data() + 1, etag.data() + etag.size() - 1, v);
  return ec == std::errc() && end == etag.data() + etag.size() - 1 ? v : 0;
}

}  // namespace

// One FHIR request's authorization: who, the policy decision, and the view every resource
// leaving the server goes through.
struct Pipeline::Access {
  std::shared_ptr<const auth::Principal> principal;
  auth::Interaction interaction = auth::Interaction::kRead;
  policy::Decision decision;
  std::string patient;  // the compartment's patient id when decision.patient_compartment
  std::string_view break_glass_reason;
  policy::Narrowing narrowing;
  policy::View view;  // points into decision and narrowing

  // Points the view at this object's decision, patient and narrowing (again after a copy
  // or a move).
  void BindView() {
    view.read_mask = decision.read_mask;
    view.compartment_patient = patient;
    view.hidden_labels = decision.hidden_labels;
    view.narrowing = narrowing.empty() ? nullptr : &narrowing;
  }
};

Pipeline::Pipeline(PipelineDeps deps) : deps_(deps) {
  base_url_ = deps_.config->auth.issuer + "/fhir";
  token_url_ = deps_.config->auth.issuer + "/oauth2/token";
  hsts_ = "max-age=" + std::to_string(deps_.config->tls.hsts_max_age_s) + "; includeSubDomains";
  jwks_json_ = auth::JwksJson(*deps_.signing_key);
  // The statement changes only with the build and the config: built once, dated at start.
  capability_json_ = fhir::CapabilityStatementJson(
      *deps_.model, deps_.config->fhir, deps_.resources->search_index(),
      {base_url_, token_url_, deps_.config->auth.issuer + "/oauth2", deps_.clock->NowMillis()});
  outside_compartment_forbidden_ = deps_.config->policy.outside_compartment == "forbidden";
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
  static Counter& transport_errors =
      GetCounter("phigate_transport_errors_total", "Requests rejected by the transport layer");
  transport_errors.Inc();
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

// One request between its dispatch and its response (HandleAsync keeps it alive while
// the audit record is being made durable).
struct Pipeline::InFlight {
  Context ctx;
  net::Response res;
  std::chrono::steady_clock::time_point started;
  bool keep_alive = false;
  bool head = false;
  std::string method;  // for the access log: "OTHER" for an unknown method (client text)
};

std::shared_ptr<Pipeline::InFlight> Pipeline::Begin(net::Request& request,
                                                    const net::ConnectionInfo& conn) {
  auto f = std::make_shared<InFlight>();
  f->started = std::chrono::steady_clock::now();
  Context& ctx = f->ctx;
  ctx.version = request.version();
  f->keep_alive = request.keep_alive();
  f->head = request.method() == bhttp::verb::head;
  f->method = request.method() == bhttp::verb::unknown ? std::string("OTHER")
                                                       : std::string(request.method_string());

  // 1. Request id first, so every later outcome (errors included) carries it.
  std::string_view incoming_id = request["X-Request-Id"];
  ctx.request_id =
      IsWellFormedRequestId(incoming_id) ? std::string(incoming_id) : crypto::RandomToken(12);

  ctx.conn = &conn;
  ctx.event.time_ms = deps_.clock->NowMillis();
  ctx.event.request_id = ctx.request_id;
  ctx.event.method = f->method;
  ctx.event.address = conn.remote_address;
  ctx.event.user_agent =
      std::string(request[bhttp::field::user_agent].substr(0, kMaxAuditedUserAgent));

  // 2. Dispatch; the one boundary where an escaped exception becomes a 500. Security
  // events of authentication emitted meanwhile join this request's audit record.
  SecurityEventScope security_events(&ctx.event.security);
  try {
    f->res = Dispatch(ctx, request, conn);
  } catch (const std::exception&) {
    Log(LogLevel::kError, "handler_exception", {{"request_id", ctx.request_id}});
    f->res = ErrorResponse(ctx.version, Internal("internal error"));
  }
  return f;
}

void Pipeline::HandleAsync(net::Request&& request, const net::ConnectionInfo& conn,
                           net::Responder respond) {
  // Tells the trail's group commit that a record may be coming (sink.h); ended on every
  // path, an exception included, until RecordAsync takes the request over.
  deps_.audit->RequestStarted();
  struct Producing {
    audit::AuditSink* sink;
    ~Producing() {
      if (sink != nullptr) sink->RequestEnded();
    }
  } producing{deps_.audit};
  std::shared_ptr<InFlight> f = Begin(request, conn);
  const int status = static_cast<int>(f->res.result_int());
  if (!NeedsRecord(f->ctx, status)) {
    respond([this, f] { return Finish(*f); });
    return;
  }
  // 3. Audit (issue 5 §2): nothing leaves before its record is durable; if the trail cannot
  // take it, the answer is a 503 without PHI. The io thread is not held meanwhile: the
  // record joins the trail's next group commit, and the response is finished once it is
  // durable (or has failed).
  CompleteEvent(f->ctx, status, f->res.body());
  producing.sink = nullptr;  // RecordAsync ends it
  deps_.audit->RecordAsync(f->ctx.event, [this, f, respond](Result<int64_t> recorded) {
    const bool ok = recorded.ok();
    respond([this, f, ok] {
      if (!ok) f->res = AuditUnavailable(f->ctx);
      return Finish(*f);
    });
  });
}

net::Response Pipeline::Finish(InFlight& f) {
  Context& ctx = f.ctx;
  net::Response res = std::move(f.res);
  // 4. Headers every response carries (issue 2 §3).
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
  res.keep_alive(f.keep_alive);
  res.prepare_payload();
  // A HEAD response keeps the Content-Length of the GET it mirrors but carries no body.
  if (f.head) res.body().clear();

  // 5. PHI-free access log: the route template, never the concrete path or query.
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - f.started)
                          .count();
  Log(LogLevel::kInfo, "request",
      {{"request_id", ctx.request_id},
       {"method", f.method},
       {"route", ctx.route},
       {"status", static_cast<int>(res.result_int())},
       {"duration_ms", static_cast<double>(micros) / 1000.0},
       {"client_id", ctx.client_id},
       {"purpose", ctx.purpose},
       {"break_glass_grant", ctx.break_glass_grant},
       {"denial", ctx.denial}});
  return res;
}

net::Response Pipeline::Dispatch(Context& ctx, net::Request& request,
                                 const net::ConnectionInfo& conn) {
  auto routed = RouteTarget(request.target(), *deps_.model);
  if (!routed.ok()) return ErrorResponse(ctx.version, routed.status());
  Route& route = routed.value();
  ctx.route = route.name;
  switch (route.kind) {
    // Probes and public documents carry nothing about anyone: not recorded.
    case RouteKind::kHealthz:
    case RouteKind::kReadyz:
    case RouteKind::kJwks:
    case RouteKind::kOpenIdConfiguration:
    case RouteKind::kSmartConfiguration:
    case RouteKind::kMetadata:
      ctx.audit = false;
      break;
    case RouteKind::kToken:
    case RouteKind::kRevoke:
    case RouteKind::kIntrospect:
    case RouteKind::kAuthorize:
    case RouteKind::kLogin:
    case RouteKind::kLoginOtp:
    case RouteKind::kEnroll:
    case RouteKind::kEnrollConfirm:
      ctx.event.kind = audit::EventKind::kAuthentication;
      ctx.event.subtype = std::string_view(route.name).substr(std::string_view("/oauth2/").size());
      break;
    case RouteKind::kMetrics:
    case RouteKind::kAdminBreakGlass:
      ctx.event.kind = audit::EventKind::kAdministration;
      ctx.event.subtype = route.kind == RouteKind::kMetrics ? "metrics" : "break-glass-review";
      ctx.event.action = 'R';
      break;
    default:
      ctx.event.resource_type = route.type;
      ctx.event.resource_id = route.id;
      ctx.event.subtype = "operation";
      break;
  }

  // RFC 9110 §9.3.2: HEAD is GET without the body (Handle drops it), wherever GET is.
  const std::string_view method = request.method() == bhttp::verb::head
                                      ? std::string_view("GET")
                                      : std::string_view(request.method_string());
  // The audit trail is written by the server alone (issue 5 §3): no interaction changes it.
  if (route.type == "AuditEvent" && method != "GET" &&
      (route.kind == RouteKind::kFhirType || route.kind == RouteKind::kFhirInstance)) {
    net::Response res = ErrorResponse(
        ctx.version,
        Status(StatusCode::kMethodNotAllowed,
               "the audit trail cannot be created, changed or deleted through the API"));
    res.set(bhttp::field::allow, "GET");
    return res;
  }
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
      if (deps_.store->Healthy() && AuditReady()) {
        return MakeResponse(ctx.version, bhttp::status::ok, kJson, R"({"status":"ready"})");
      }
      return MakeResponse(ctx.version, bhttp::status::service_unavailable, kJson,
                          R"({"status":"not ready"})");
    case RouteKind::kJwks:
      return MakeResponse(ctx.version, bhttp::status::ok, kJson, jwks_json_);
    case RouteKind::kMetrics:
    case RouteKind::kAdminBreakGlass:
      return HandleAdmin(ctx, request, route);
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
  if (route.kind == RouteKind::kFhirSearch) {
    // POST [type]/_search (http.html#search): the parameters come as a form body, so
    // search values (possibly PHI) stay out of URLs and access logs; any in the URL too.
    if (MediaType(request[bhttp::field::content_type]) != "application/x-www-form-urlencoded") {
      return ErrorResponse(ctx.version,
                           Status(StatusCode::kUnsupportedMediaType,
                                  "the body must be application/x-www-form-urlencoded"));
    }
    auto form = ParseQuery(request.body());
    if (!form) return ErrorResponse(ctx.version, InvalidArgument("malformed form body"));
    for (auto& p : *form) params->push_back(std::move(p));
  }

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
  for (const auto& [name, value] : *params) {
    if (name == "_format" || name == "_pretty") continue;
    // A token sent in the URL is refused below; it is not kept in the trail either.
    ctx.event.query.emplace_back(name, name == "access_token" ? "(redacted)" : value);
  }

  auto principal = Authenticate(ctx, request, has_access_token_param);
  if (!principal.ok()) return ErrorResponse(ctx.version, principal.status());
  NoteWho(ctx.event, *principal.value());

  // Business associate agreements (issue 4 §6): a third-party client without an active
  // BAA receives no PHI, whatever its roles and scopes.
  if (Status baa = deps_.baa->Check(principal.value()->client_id, &ctx.event.baa_counterparty);
      !baa.ok()) {
    return Deny(ctx, baa);
  }
  if (route.kind == RouteKind::kDisclosures) {
    return HandleDisclosures(ctx, request, route, *principal.value(), *params);
  }
  if (route.kind == RouteKind::kFhirSystem && request.method() == bhttp::verb::post) {
    return HandleBundle(ctx, request);
  }

  Access access;
  access.principal = std::move(principal.value());
  auto interaction = InteractionOf(route.kind, request.method());
  if (!interaction) {
    return ErrorResponse(ctx.version, NotSupported("this interaction is not supported yet"));
  }
  access.interaction = *interaction;
  ctx.event.subtype =
      route.kind == RouteKind::kEverything ? "operation" : SubtypeOf(access.interaction);
  ctx.event.action = ActionOf(access.interaction);

  // Policy (issue 4 §1, §4): roles ∩ scopes ∩ purpose of use. The purpose comes from the
  // token's claim, else the X-Purpose-Of-Use header, else the role's default.
  std::string_view purpose = access.principal->purpose_of_use;
  if (purpose.empty()) purpose = TrimOws(request["X-Purpose-Of-Use"]);
  access.decision =
      deps_.policy->Evaluate({access.principal.get(), route.type, access.interaction, purpose});
  ctx.purpose = access.decision.purpose;
  if (!access.decision.allowed) return Deny(ctx, PermissionDenied(access.decision.denial));
  // Only the auditor reads the audit trail (issue 5 §4): not through a compartment,
  // break-glass or a narrowed view.
  if (route.type == "AuditEvent" &&
      (!IsAuditor(*access.principal) || access.decision.patient_compartment ||
       access.decision.break_glass || !access.decision.read_mask->all)) {
    return Deny(ctx, PermissionDenied("reading the audit trail needs the auditor role"));
  }

  // Compartment (issue 4 §2): the launch patient of patient/ scopes, else the Patient the
  // user is linked to (fhirUser).
  if (access.decision.patient_compartment) {
    access.patient = access.principal->patient;
    std::string_view fhir_user = access.principal->fhir_user;
    if (access.patient.empty() && fhir_user.starts_with("Patient/")) {
      access.patient = std::string(fhir_user.substr(8));
    }
    if (access.patient.empty()) {
      return Deny(ctx, PermissionDenied("access is limited to a patient compartment, and no "
                                        "patient is linked to this token"));
    }
  }
  // Break-glass (issue 4 §5): the reason is required before anything is looked at.
  if (access.decision.break_glass) {
    access.break_glass_reason = TrimOws(request["X-Break-Glass-Reason"]);
    if (Status reason = policy::ValidateBreakGlassReason(access.break_glass_reason); !reason.ok()) {
      return Deny(ctx, reason);
    }
    ctx.event.break_glass_reason = std::string(access.break_glass_reason);
  }

  // Client narrowing (_elements, _summary) on top of the policy's view.
  auto narrowing =
      policy::ParseNarrowing(*params, access.interaction == auth::Interaction::kSearch);
  if (!narrowing.ok()) return ErrorResponse(ctx.version, narrowing.status());
  access.narrowing = std::move(narrowing.value());
  access.BindView();

  const bool has_body =
      route.kind != RouteKind::kFhirSearch &&
      (request.method() == bhttp::verb::post || request.method() == bhttp::verb::put);
  if (has_body && !IsFhirJsonMediaType(MediaType(request[bhttp::field::content_type]))) {
    return ErrorResponse(ctx.version, Status(StatusCode::kUnsupportedMediaType,
                                             "the body must be application/fhir+json"));
  }

  Result<fhir::RestResult> result = Interact(ctx, request, route, access, *params);
  if (!result.ok()) {
    if (result.status().code() == StatusCode::kPermissionDenied ||
        (result.status().code() == StatusCode::kUnauthenticated && access.decision.break_glass)) {
      return Deny(ctx, result.status());
    }
    net::Response res = ErrorResponse(ctx.version, result.status());
    // RFC 9110 §15.5.6: a 405 names what the target does allow.
    if (result.status().code() == StatusCode::kMethodNotAllowed) {
      res.set(bhttp::field::allow, route.allow);
    }
    return res;
  }

  fhir::RestResult& r = result.value();
  if (!ctx.audited && !r.etag.empty()) ctx.event.version = VersionOfEtag(r.etag);
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

Result<std::shared_ptr<const auth::Principal>> Pipeline::Authenticate(Context& ctx,
                                                                      net::Request& request,
                                                                      bool token_in_query) {
  // A bearer token in the Authorization header only (RFC 6750 §2.1); a token in the URL
  // would end up in logs and browser history, so it is refused.
  if (token_in_query) {
    return Status(StatusCode::kUnauthenticated,
                  "access tokens are accepted only in the Authorization header");
  }
#ifdef PHIGATE_BENCH_NO_AUTH
  // Benchmark build only (CMake PHIGATE_BENCH_NO_AUTH): the authentication stage is
  // replaced by a fixed all-powerful principal to measure what the stage costs.
  (void)request;
  static const std::shared_ptr<const auth::Principal> principal = [] {
    auth::Principal p;
    p.client_id = "bench-no-auth";
    p.subject = p.client_id;
    p.roles = {"clinician"};
    p.scopes = std::move(auth::ScopeSet::Parse("system/*.cruds")).value();
    return std::make_shared<const auth::Principal>(std::move(p));
  }();
  ctx.client_id = principal->client_id;
  return principal;
#else
  std::string_view authz = request[bhttp::field::authorization];
  if (authz.size() < 7 || !EqualsIgnoreCase(authz.substr(0, 7), "Bearer ")) {
    return Status(StatusCode::kUnauthenticated, "a bearer token is required");
  }
  auto verified = deps_.verifier->VerifyShared(TrimOws(authz.substr(7)));
  if (!verified.ok()) return verified.status();
  ctx.client_id = verified.value()->client_id;
  return std::move(verified.value());
#endif
}

net::Response Pipeline::Deny(Context& ctx, Status status) {
  // Every denial reaches the access log (and, with issue 5, the audit trail) with its
  // fixed, PHI-free text.
  static Counter& denials = GetCounter("phigate_authorization_denials_total",
                                       "FHIR requests denied by authorization (401/403/404)");
  denials.Inc();
  ctx.denial = status.message();
  net::Response res = ErrorResponse(ctx.version, status);
  if (status.code() == StatusCode::kUnauthenticated &&
      status.message() == policy::kRecentAuthenticationRequired) {
    // RFC 9470 §3: step-up with a maximum authentication age.
    res.set(bhttp::field::www_authenticate,
            R"(Bearer realm="phigate", error="insufficient_user_authentication", )"
            R"(error_description="emergency access requires a recent multi-factor )"
            R"(authentication", max_age=)" +
                std::to_string(deps_.config->break_glass.mfa_max_age_s));
  }
  return res;
}

Status Pipeline::OutsideCompartment() const {
  if (outside_compartment_forbidden_) {
    return PermissionDenied("the resource is outside the patient compartment of this token");
  }
  return NotFound("resource not found");
}

Status Pipeline::Shape(const Access& access, std::string_view type, std::string& json) const {
  ASSIGN_OR_RETURN(policy::Visibility visibility, policy::ApplyView(type, json, access.view));
  switch (visibility) {
    case policy::Visibility::kVisible:
      return Status::Ok();
    case policy::Visibility::kOutsideCompartment:
      return OutsideCompartment();
    case policy::Visibility::kRestricted:
      return PermissionDenied(
          "the resource carries a confidentiality label this role may not see without "
          "emergency access (break-glass)");
  }
  return Internal("internal error");
}

Status Pipeline::BreakGlassFor(Context& ctx, const Access& access, std::string_view type,
                               std::string_view json) {
  if (!access.decision.break_glass) return Status::Ok();
  std::vector<std::string> patients = policy::CompartmentPatients(type, json);
  if (patients.empty()) {
    return PermissionDenied("emergency access (break-glass) applies to a patient's record");
  }
  for (const std::string& patient : patients) {
    ASSIGN_OR_RETURN(
        policy::BreakGlassUse use,
        deps_.break_glass->Authorize(*access.principal, patient, access.break_glass_reason));
    if (ctx.break_glass_grant.find(use.grant_id) != std::string::npos) continue;
    if (!ctx.break_glass_grant.empty()) ctx.break_glass_grant += ',';
    ctx.break_glass_grant += use.grant_id;
  }
  return Status::Ok();
}

namespace {

// Writes checked against a stored version retry this often when another write wins the
// race (only without If-Match: with it, the client chose the version). Every lost race is
// another request's successful write, so retries cannot livelock; the bound covers as
// many concurrent writers of one resource.
constexpr int kWriteAttempts = 32;

// Whether an If-Match value names the version of `etag` (W/"3"; a strong "3" too).
bool SameVersion(std::string_view if_match, std::string_view etag) {
  if (if_match.starts_with("W/")) if_match.remove_prefix(2);
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  return if_match == etag;
}

}  // namespace

Result<fhir::RestResult> Pipeline::HideGone(const Access& access,
                                            Result<fhir::RestResult> r) const {
  // A compartment-restricted caller does not learn that a resource outside it was deleted.
  if (!access.patient.empty() && !r.ok() && r.status().code() == StatusCode::kGone) {
    return OutsideCompartment();
  }
  return r;
}

Status Pipeline::Reachable(const Access& access, std::string_view type,
                           std::string_view json) const {
  // A stored version is within reach when the compartment and the labels allow it.
  Access probe;
  probe.view.read_mask = &kEverything;
  probe.view.compartment_patient = access.view.compartment_patient;
  probe.view.hidden_labels = access.view.hidden_labels;
  std::string copy(json);
  return Shape(probe, type, copy);
}

Status Pipeline::Inside(const Access& access, std::string_view type, std::string_view json,
                        bool creating) const {
  // A written resource must belong to the caller's patient alone (issue 4 §2): every
  // patient it refers to at the compartment paths is that patient, and a Patient cannot be
  // created (the server assigns the id, so no new Patient is the token's patient).
  if (access.patient.empty()) return Status::Ok();
  const Status outside =
      PermissionDenied("the resource would be outside the patient compartment of this token");
  if (creating && type == "Patient") return outside;
  std::vector<std::string> patients = policy::CompartmentPatients(type, json);
  if (patients.empty()) return outside;
  for (const std::string& p : patients) {
    if (p != access.patient) return outside;
  }
  return Status::Ok();
}

Result<fhir::RestResult> Pipeline::ShapeResult(const Access& access, std::string_view type,
                                               Result<fhir::RestResult> r) const {
  if (r.ok() && !r.value().body.empty()) {
    Status shaped = Shape(access, type, r.value().body);
    // The write happened; what the caller may not see is simply not returned.
    if (!shaped.ok()) r.value().body.clear();
  }
  return r;
}

Pipeline::Access Pipeline::AccessTo(const Access& base, std::string_view type,
                                    auth::Interaction interaction) const {
  Access a;
  a.principal = base.principal;
  a.interaction = interaction;
  a.decision =
      deps_.policy->Evaluate({base.principal.get(), type, interaction, base.decision.purpose});
  a.patient = base.patient;
  a.narrowing = base.narrowing;
  return a;  // the caller binds the view where the object comes to rest
}

Result<bool> Pipeline::Visible(const Access& access, std::string_view type,
                               std::string_view text) const {
  Status s = Reachable(access, type, text);
  if (s.ok()) return true;
  if (s.code() == StatusCode::kNotFound || s.code() == StatusCode::kPermissionDenied) {
    return false;
  }
  return s;
}

Result<bool> Pipeline::ServeEntry(Context& ctx, const Access& access, std::string_view type,
                                  std::string_view id, std::string* text) const {
  // The patients of the stored version (the view may hide the references), kept only if
  // the entry is: what is left out is not the request's (no false disclosures).
  audit::Event entry;
  NotePatients(entry, type, *text, id);
  Status shaped = Shape(access, type, *text);
  if (shaped.ok()) {
    NoteServed(ctx.event, entry, type, id);
    return true;
  }
  if (shaped.code() == StatusCode::kNotFound || shaped.code() == StatusCode::kPermissionDenied) {
    return false;
  }
  return shaped;
}

Status Pipeline::CheckSearchReach(
    std::string_view type, const QueryParams& params, const policy::ElementMask& read_mask,
    const std::function<const Access*(std::string_view)>& access_for) const {
  RETURN_IF_ERROR(policy::CheckSearchParams(type, params, read_mask));
  for (const auto& [name, value] : params) {
    if (name == "_include" || name == "_revinclude") {
      // Source:param[:Target]; malformed values are the search layer's to refuse.
      const size_t c1 = value.find(':');
      if (c1 == std::string::npos) continue;
      const size_t c2 = value.find(':', c1 + 1);
      const std::string source = value.substr(0, c1);
      const std::string code =
          value.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
      if (!deps_.model->IsResourceType(source)) continue;
      const Access* a = name == "_include" ? access_for(type) : access_for(source);
      // A source type the caller may not read contributes nothing (left out below).
      if (a == nullptr) continue;
      RETURN_IF_ERROR(policy::CheckSearchParams(source, {{code, ""}}, *a->decision.read_mask));
      continue;
    }
    const size_t dot = name.find('.');
    if (dot == std::string::npos || name.starts_with('_')) continue;
    // A chain (subject:Patient.name): its tail searches the target type, which the caller
    // must be allowed to read, by an element it may see.
    const std::string head = name.substr(0, dot);
    const size_t colon = head.find(':');
    const fhir::SearchParamDef* def = fhir::FindSearchParam(type, head.substr(0, colon));
    if (def == nullptr) continue;
    std::string target = colon == std::string::npos ? "" : head.substr(colon + 1);
    if (target.empty() && def->targets.find(' ') == std::string_view::npos) {
      target = std::string(def->targets);
    }
    if (!deps_.model->IsResourceType(target)) continue;
    const Access* a = access_for(target);
    if (a == nullptr) {
      return PermissionDenied("this role may not search " + target + " through a chain");
    }
    RETURN_IF_ERROR(
        policy::CheckSearchParams(target, {{name.substr(dot + 1), value}}, *a->decision.read_mask));
  }
  return Status::Ok();
}

namespace {

// Set while a transaction holds conditional_mu_ on this thread: its entries' conditional
// handling must not lock it again.
thread_local bool t_conditional_held = false;

}  // namespace

Pipeline::ConditionalLockHeld::ConditionalLockHeld(bool held) : set_(held) {
  if (set_) t_conditional_held = true;
}
Pipeline::ConditionalLockHeld::~ConditionalLockHeld() {
  if (set_) t_conditional_held = false;
}

std::unique_lock<std::mutex> Pipeline::LockConditional() {
  if (t_conditional_held) return {};
  return std::unique_lock<std::mutex>(conditional_mu_);
}

namespace {

// Entries of one batch or transaction Bundle at most (a transaction of 1,000 entries must
// work, issue 6 §4; the body limit bounds the bytes).
constexpr size_t kMaxBundleEntries = 10'000;

// What one Bundle entry answered.
struct EntryResult {
  int status = 0;
  std::string location;
  std::string etag;
  std::string last_modified;
  std::string body;
};

// "Type/id" of a Location "<base>/Type/id/_history/v", or of a resource body.
std::string LocalReferenceOf(const EntryResult& r, std::string_view base_url) {
  std::string_view loc = r.location;
  if (loc.starts_with(base_url) && loc.size() > base_url.size() + 1) {
    loc.remove_prefix(base_url.size() + 1);
    if (const size_t h = loc.find("/_history/"); h != std::string_view::npos) {
      loc = loc.substr(0, h);
    }
    return std::string(loc);
  }
  // A conditional create that found its match answers 200 with that resource, no Location.
  Result<boost::json::value> body = fhir::ParseJson(r.body, 512);
  const boost::json::object* obj = body.ok() ? body.value().if_object() : nullptr;
  const boost::json::value* type = obj != nullptr ? obj->if_contains("resourceType") : nullptr;
  const boost::json::value* id = obj != nullptr ? obj->if_contains("id") : nullptr;
  if (type == nullptr || id == nullptr || !type->is_string() || !id->is_string()) return {};
  return std::string(type->get_string()) + "/" + std::string(id->get_string());
}

// The ids of a searchset Bundle's entries of search mode "match" (not its includes).
std::vector<std::string> MatchIdsOf(std::string_view searchset, int max_depth) {
  std::vector<std::string> ids;
  Result<boost::json::value> parsed = fhir::ParseJson(searchset, max_depth);
  const boost::json::object* bundle = parsed.ok() ? parsed.value().if_object() : nullptr;
  const boost::json::value* entries = bundle != nullptr ? bundle->if_contains("entry") : nullptr;
  if (entries == nullptr || !entries->is_array()) return ids;
  for (const boost::json::value& e : entries->get_array()) {
    boost::system::error_code ec;
    const boost::json::value* mode = e.find_pointer("/search/mode", ec);
    const boost::json::value* id = e.find_pointer("/resource/id", ec);
    if (mode != nullptr && id != nullptr && mode->is_string() && mode->get_string() == "match" &&
        id->is_string()) {
      ids.emplace_back(id->get_string());
    }
  }
  return ids;
}

// Rewrites every Reference.reference equal to a key of `ids` (a urn:uuid fullUrl) to the
// "Type/id" it stands for (http.html#trules).
void RewriteReferences(boost::json::value& v, const std::map<std::string, std::string>& ids) {
  if (boost::json::object* obj = v.if_object()) {
    for (auto& [key, member] : *obj) {
      if (key == "reference" && member.is_string()) {
        const auto it = ids.find(std::string(member.get_string()));
        if (it != ids.end()) member = it->second;
      } else {
        RewriteReferences(member, ids);
      }
    }
  } else if (boost::json::array* arr = v.if_array()) {
    for (boost::json::value& item : *arr) RewriteReferences(item, ids);
  }
}

}  // namespace

net::Response Pipeline::HandleBundle(Context& ctx, net::Request& request) {
  // http.html#transaction: POST [base] with a batch or transaction Bundle.
  if (!IsFhirJsonMediaType(MediaType(request[bhttp::field::content_type]))) {
    return ErrorResponse(ctx.version, Status(StatusCode::kUnsupportedMediaType,
                                             "the body must be application/fhir+json"));
  }
  Result<boost::json::value> parsed =
      fhir::ParseJson(request.body(), deps_.config->limits.json_depth);
  if (!parsed.ok()) return ErrorResponse(ctx.version, parsed.status());
  const boost::json::object* bundle = parsed.value().if_object();
  const auto str = [](const boost::json::object* o, std::string_view k) -> std::string_view {
    const boost::json::value* v = o != nullptr ? o->if_contains(k) : nullptr;
    return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
  };
  if (bundle == nullptr || str(bundle, "resourceType") != "Bundle") {
    return ErrorResponse(ctx.version, InvalidArgument("the body must be a Bundle"));
  }
  const std::string_view kind = str(bundle, "type");
  if (kind != "batch" && kind != "transaction") {
    return ErrorResponse(
        ctx.version,
        InvalidArgument("the Bundle type must be batch or transaction", "Bundle.type"));
  }
  const bool transaction = kind == "transaction";
  ctx.event.subtype = std::string(kind);
  ctx.event.action = 'E';
  ctx.event.resource_type = "Bundle";
  const boost::json::value* entries_value = bundle->if_contains("entry");
  boost::json::array no_entries;
  const boost::json::array& entries = entries_value != nullptr && entries_value->is_array()
                                          ? entries_value->get_array()
                                          : no_entries;
  if (entries_value != nullptr && !entries_value->is_array()) {
    return ErrorResponse(ctx.version, InvalidArgument("Bundle.entry must be an array"));
  }
  if (entries.size() > kMaxBundleEntries) {
    return ErrorResponse(ctx.version, InvalidArgument("too many Bundle entries"));
  }

  // Each entry as a request of its own.
  struct Entry {
    std::string method;
    std::string url;
    std::string full_url;
    boost::json::value resource;  // null without one
    std::string if_match;
    std::string if_none_exist;
    std::unique_ptr<Context> ctx;
    EntryResult result;
    bool done = false;
  };
  std::vector<Entry> items(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const boost::json::object* e = entries[i].if_object();
    const boost::json::value* req = e != nullptr ? e->if_contains("request") : nullptr;
    const boost::json::object* r = req != nullptr ? req->if_object() : nullptr;
    const std::string expr = "Bundle.entry[" + std::to_string(i) + "]";
    if (r == nullptr) {
      return ErrorResponse(ctx.version,
                           InvalidArgument("a Bundle entry needs a request", expr + ".request"));
    }
    Entry& it = items[i];
    it.method = std::string(str(r, "method"));
    it.url = std::string(str(r, "url"));
    it.full_url = std::string(str(e, "fullUrl"));
    it.if_match = std::string(str(r, "ifMatch"));
    it.if_none_exist = std::string(str(r, "ifNoneExist"));
    if (it.method != "GET" && it.method != "POST" && it.method != "PUT" && it.method != "DELETE") {
      return ErrorResponse(ctx.version,
                           NotSupported("Bundle entries support GET, POST, PUT and DELETE"));
    }
    // The url is relative to the base: [type], [type]/[id], [type]?query...
    // (Not "?query" either: that is the base itself, a nested Bundle.)
    if (it.url.empty() || it.url.front() == '/' || it.url.front() == '?' ||
        it.url.find("://") != std::string::npos || it.url.front() == '$' ||
        it.url.starts_with("_history")) {
      return ErrorResponse(ctx.version, InvalidArgument("a Bundle entry url must be relative "
                                                        "to the base: Type, Type/id or Type?query",
                                                        expr + ".request.url"));
    }
    if (const boost::json::value* res = e->if_contains("resource")) it.resource = *res;
    if ((it.method == "POST" || it.method == "PUT") && !it.resource.is_object()) {
      return ErrorResponse(
          ctx.version, InvalidArgument("a POST or PUT entry needs a resource", expr + ".resource"));
    }
  }

  // Dispatches `it` as entry i (its request id is <bundle request id>.<i + 1>).
  const auto run_entry = [&](Entry& it, size_t i) {
    net::Request sub;
    sub.version(request.version());
    sub.method_string(it.method);
    sub.target("/fhir/" + it.url);
    for (const auto field : {bhttp::field::authorization, bhttp::field::user_agent}) {
      if (request.count(field) != 0) sub.set(field, request[field]);
    }
    for (const char* name : {"X-Purpose-Of-Use", "X-Break-Glass-Reason", "Prefer"}) {
      if (request.count(name) != 0) sub.set(name, request[name]);
    }
    if (!it.if_match.empty()) sub.set(bhttp::field::if_match, it.if_match);
    if (!it.if_none_exist.empty()) sub.set("If-None-Exist", it.if_none_exist);
    if (it.resource.is_object()) {
      sub.set(bhttp::field::content_type, "application/fhir+json");
      sub.body() = boost::json::serialize(it.resource);
    }
    sub.prepare_payload();
    it.ctx = std::make_unique<Context>();
    Context& c = *it.ctx;
    c.version = ctx.version;
    c.conn = ctx.conn;
    c.request_id = ctx.request_id + "." + std::to_string(i + 1);
    c.event.time_ms = deps_.clock->NowMillis();
    c.event.request_id = c.request_id;
    c.event.method = it.method;
    c.event.address = ctx.event.address;
    c.event.user_agent = ctx.event.user_agent;
    net::Response res = Dispatch(c, sub, *ctx.conn);
    it.result.status = static_cast<int>(res.result_int());
    it.result.location = std::string(res[bhttp::field::location]);
    it.result.etag = std::string(res[bhttp::field::etag]);
    it.result.last_modified = std::string(res[bhttp::field::last_modified]);
    it.result.body = std::move(res.body());
    it.done = true;
  };
  const auto run = [&](size_t i) { run_entry(items[i], i); };
  // Records an entry's event unless its change already did (in its transaction).
  const auto record = [&](Entry& it) -> Status {
    if (it.ctx == nullptr || !NeedsRecord(*it.ctx, it.result.status)) return Status::Ok();
    return RecordEvent(*it.ctx, it.result.status, it.result.body);
  };

  if (!transaction) {
    // Batch: every entry on its own, in order (http.html#brules).
    for (size_t i = 0; i < items.size(); ++i) {
      run(i);
      if (!record(items[i]).ok()) return AuditUnavailable(ctx);
    }
  } else {
    // Transaction (http.html#trules): ids for the POST entries first, so references to
    // their urn:uuid fullUrls can be rewritten; then DELETE, POST, PUT, GET, all writes in
    // one database transaction.
    const auto conditional = [](const Entry& it) {
      return !it.if_none_exist.empty() || ((it.method == "PUT" || it.method == "DELETE") &&
                                           it.url.find('?') != std::string::npos);
    };
    // The "Type/id" each fullUrl stands for. A POST's and a PUT's target is known now (a
    // POST's id is assigned here).
    std::map<std::string, std::string> ids;
    std::vector<std::string> assigned(items.size());  // the id an entry takes if it creates
    for (size_t i = 0; i < items.size(); ++i) {
      Entry& it = items[i];
      if (it.method != "POST" && (it.method != "PUT" || !conditional(it))) continue;
      assigned[i] = fhir::ResourceService::NewResourceId();
    }
    for (size_t i = 0; i < items.size(); ++i) {
      Entry& it = items[i];
      if (it.full_url.empty() || conditional(it)) continue;
      if (it.method == "POST") {
        ids[it.full_url] = it.url.substr(0, it.url.find_first_of("/?")) + "/" + assigned[i];
      } else if (it.method == "PUT") {
        ids[it.full_url] = it.url;
      }
    }
    // Conditions are decided and the writes committed under one lock, as for a single
    // conditional request (the entries' own handling does not lock again).
    std::unique_lock<std::mutex> conditional_lock;
    const bool has_conditions = std::any_of(items.begin(), items.end(), conditional);
    if (has_conditions) conditional_lock = LockConditional();
    ConditionalLockHeld held(has_conditions);
    // A conditional entry (POST with ifNoneExist, PUT Type?query) stands for what its
    // condition finds, so every reference to its fullUrl is rewritten before anything is
    // prepared, whatever the order of the entries: the condition is searched now, as the
    // caller (unrecorded; nothing of it is returned), under the lock its entry will decide
    // it under. No match: the id the entry will create; one: that resource; several, or a
    // search the caller may not make: undecided, and the entry fails by itself.
    std::map<std::string, std::string> decided;
    for (size_t i = 0; i < items.size(); ++i) {
      Entry& it = items[i];
      if (it.full_url.empty() || !conditional(it) || it.method == "DELETE") continue;
      const std::string type = it.url.substr(0, it.url.find_first_of("/?"));
      Entry probe;
      probe.method = "GET";
      probe.url = it.method == "POST" ? type + "?" + it.if_none_exist : it.url;
      run_entry(probe, i);
      if (probe.result.status != 200) continue;
      // (The searchset nests the resources, whose depth limits.json_depth bounds.)
      const std::vector<std::string> matches =
          MatchIdsOf(probe.result.body, deps_.config->limits.json_depth + 8);
      if (matches.size() == 1) {
        decided[it.full_url] = type + "/" + matches[0];
      } else if (matches.empty()) {
        // A conditional PUT with an id in its body creates that id (http.html#cond-update).
        const boost::json::value* body_id =
            it.resource.is_object() ? it.resource.get_object().if_contains("id") : nullptr;
        decided[it.full_url] = type + "/" +
                               (it.method == "PUT" && body_id != nullptr && body_id->is_string()
                                    ? std::string(body_id->get_string())
                                    : assigned[i]);
      }
    }
    ids.insert(decided.begin(), decided.end());
    fhir::PendingWrites pending;
    std::vector<size_t> write_owner;  // the Bundle entry of each pending write
    Status failed = Status::Ok();
    size_t failed_at = 0;
    const auto write_phase = [&](std::string_view method, bool conditional_post) {
      for (size_t i = 0; i < items.size() && failed.ok(); ++i) {
        Entry& it = items[i];
        if (it.method != method || it.done) continue;
        if (method == "POST" && conditional_post != !it.if_none_exist.empty()) continue;
        if (it.resource.is_object()) RewriteReferences(it.resource, ids);
        fhir::ResourceService::TransactionScope scope(&pending);
        pending.assign_id = assigned[i];
        run(i);
        pending.assign_id.clear();
        write_owner.resize(pending.writes.size(), i);
        if (it.result.status >= 300) {
          failed = Status(StatusCode::kInvalidArgument, "");  // the entry's own answer
          failed_at = i;
          continue;
        }
        if (!conditional(it) || it.method == "DELETE" || it.full_url.empty()) continue;
        // What the entry decided must be what its references were rewritten to: only a
        // write outside the lock (a plain create or update by another request) between
        // the two searches can make them differ; the client may retry.
        std::string ref = LocalReferenceOf(it.result, base_url_);
        if (ref.empty() && it.ctx != nullptr && !it.ctx->event.resource_id.empty()) {
          // A match answered without a body (Prefer: return=minimal).
          ref = it.url.substr(0, it.url.find_first_of("/?")) + "/" + it.ctx->event.resource_id;
        }
        const auto before = decided.find(it.full_url);
        if (before == decided.end() || before->second != ref) {
          failed = Status(StatusCode::kConflict,
                          "entry " + std::to_string(i) +
                              ": its condition changed while the transaction ran; retry it");
          failed_at = i;
          it.result.status = 409;
          it.result.body.clear();
        }
      }
    };
    write_phase("DELETE", false);
    write_phase("POST", true);
    write_phase("POST", false);
    write_phase("PUT", false);
    // GET entries run after the commit, so they see its writes; but a transaction is all or
    // nothing, so a GET that would fail must fail it before anything is committed. A plain
    // read of what the transaction deletes fails (409: it would be 410); a GET of a
    // resource the transaction writes or deletes is not tried early (before the commit it
    // would see the old state: a new version's vread, a new resource); every other GET is
    // tried now, unrecorded (nothing of this run is returned), and run again, recorded,
    // after the commit.
    for (size_t i = 0; i < items.size() && failed.ok(); ++i) {
      Entry& it = items[i];
      if (it.method != "GET") continue;
      const std::string_view path = std::string_view(it.url).substr(0, it.url.find('?'));
      const size_t slash = path.find('/');
      const std::string_view type = path.substr(0, slash);
      const std::string_view rest =
          slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
      const std::string_view id = rest.substr(0, rest.find('/'));
      const storage::VersionRecord* written = nullptr;
      for (const storage::Store::VersionWrite& w : pending.writes) {
        if (!id.empty() && w.record.type == type && w.record.id == id) written = &w.record;
      }
      if (written != nullptr && written->deleted && rest.find('/') == std::string_view::npos) {
        failed = Status(StatusCode::kConflict,
                        "entry " + std::to_string(i) + " reads a resource the transaction deletes");
        failed_at = i;
        it.result.status = 409;
        break;
      }
      if (written != nullptr) continue;
      run(i);
      if (it.result.status >= 300) {
        failed = Status(StatusCode::kInvalidArgument, "");  // the entry's own answer
        failed_at = i;
      } else {
        it.ctx.reset();
        it.result = EntryResult();
        it.done = false;
      }
    }
    if (!failed.ok()) {
      // Nothing is committed; each prepared entry's record says so.
      Entry& bad = items[failed_at];
      for (Entry& it : items) {
        if (!it.done) continue;
        if (&it != &bad) {
          it.result.status = bad.result.status >= 300 ? bad.result.status : 500;
          it.result.body.clear();
        }
        if (!record(it).ok()) return AuditUnavailable(ctx);
      }
      if (!failed.message().empty()) return ErrorResponse(ctx.version, failed);
      // The failing entry's own answer, for the whole transaction.
      net::Response res = MakeResponse(ctx.version, static_cast<bhttp::status>(bad.result.status),
                                       kFhirJson, std::move(bad.result.body));
      return res;
    }
    Status committed = deps_.resources->CommitPending(pending);
    if (!committed.ok() && committed.message().starts_with("entry ")) {
      // The store numbers its writes; the client knows its Bundle entries.
      size_t n = 0;
      const std::string& m = committed.message();
      const auto [p, ec] = std::from_chars(m.data() + 6, m.data() + m.size(), n);
      if (ec == std::errc() && n < write_owner.size()) {
        committed = Status(committed.code(),
                           "entry " + std::to_string(write_owner[n]) +
                               std::string(m.substr(static_cast<size_t>(p - m.data()))),
                           committed.expression());
      }
    }
    if (!committed.ok()) {
      const int status = MapStatus(committed.code()).http_status;
      for (Entry& it : items) {
        if (!it.done) continue;
        it.result.status = status;
        it.result.body.clear();
        if (!record(it).ok()) return AuditUnavailable(ctx);
      }
      if (committed.code() == StatusCode::kUnavailable && !deps_.audit->Healthy()) {
        return AuditUnavailable(ctx);
      }
      return ErrorResponse(ctx.version, committed);
    }
    // Entries that wrote nothing (a conditional create that found its match, a delete of
    // what was gone) have no record yet.
    for (Entry& it : items) {
      if (it.done && !record(it).ok()) return AuditUnavailable(ctx);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].method != "GET") continue;
      run(i);
      if (!record(items[i]).ok()) return AuditUnavailable(ctx);
    }
  }

  // The response Bundle, entries in the request's order.
  std::string out = R"({"resourceType":"Bundle","type":")";
  out += transaction ? "transaction-response" : "batch-response";
  out += '"';
  bool first = true;
  for (Entry& it : items) {
    out += first ? ",\"entry\":[" : ",";
    first = false;
    out += "{";
    const bool ok = it.result.status < 300;
    if (ok && !it.result.body.empty()) {
      out += "\"resource\":";
      out += it.result.body;
      out += ',';
    }
    out += "\"response\":{\"status\":";
    AppendJsonEscaped(
        out, std::to_string(it.result.status) + " " +
                 std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(it.result.status))));
    // (The Last-Modified header's HTTP date is not a FHIR instant: not repeated here.)
    for (const auto& [name, value] :
         {std::pair<const char*, const std::string*>{"location", &it.result.location},
          {"etag", &it.result.etag}}) {
      if (value->empty()) continue;
      out += ",\"";
      out += name;
      out += "\":";
      AppendJsonEscaped(out, *value);
    }
    if (!ok && !it.result.body.empty()) {
      out += ",\"outcome\":";
      out += it.result.body;
    }
    out += "}}";
  }
  if (!first) out += ']';
  out += '}';
  return MakeResponse(ctx.version, bhttp::status::ok, kFhirJson, std::move(out));
}

Result<fhir::RestResult> Pipeline::Everything(Context& ctx, const Route& route,
                                              const Access& access, const QueryParams& params) {
  if (access.decision.break_glass) {
    return PermissionDenied(
        "emergency access (break-glass) applies to one resource: read it by its id");
  }
  // The patient must be within the caller's reach, as for a read.
  Result<fhir::RestResult> patient = HideGone(access, deps_.resources->Read("Patient", route.id));
  if (!patient.ok()) return patient.status();
  RETURN_IF_ERROR(Reachable(access, "Patient", patient.value().body));
  // Every member type the caller may search, each shaped by its own view (issue 6 §5:
  // filtered exactly as a search would be).
  std::map<std::string, Access, std::less<>> per_type;
  std::vector<std::pair<std::string, std::vector<std::string>>> members;
  members.emplace_back("Patient", std::vector<std::string>());
  per_type.emplace("Patient", access);
  for (const auto& [type, codes] : policy::PatientCompartmentMembers()) {
    Access a = AccessTo(access, type, auth::Interaction::kSearch);
    if (!a.decision.allowed || a.decision.break_glass) continue;
    members.emplace_back(type, codes);
    per_type.emplace(type, std::move(a));
  }
  for (auto& [type, a] : per_type) a.BindView();  // into the map's own nodes
  fhir::EntryFilter filter = [&](std::string_view type, std::string_view id,
                                 std::string* text) -> Result<bool> {
    const auto it = per_type.find(type);
    if (it == per_type.end()) return false;
    return ServeEntry(ctx, it->second, type, id, text);
  };
  return deps_.resources->Everything(route.id, params, base_url_, members, &filter);
}

Result<fhir::RestResult> Pipeline::Interact(Context& ctx, net::Request& request, const Route& route,
                                            const Access& access, const QueryParams& params) {
  if (route.type == "AuditEvent") return ReadAuditTrail(ctx, route, access, params);
  if (route.kind == RouteKind::kEverything) return Everything(ctx, route, access, params);
  const policy::Decision& d = access.decision;
  const std::string_view body = request.body();
  const std::string_view if_match = request[bhttp::field::if_match];
  const bool compartment = !access.patient.empty();
  const bool restricted_view = compartment || access.view.hidden_labels != nullptr;
  // Older versions are reachable only while the resource is: a label or a move out of the
  // compartment on the current version covers its history too.
  auto current_reachable = [&](std::string_view type, std::string_view id) -> Status {
    if (!restricted_view) return Status::Ok();
    Result<fhir::RestResult> current = deps_.resources->Read(type, id);
    if (current.ok()) return Reachable(access, type, current.value().body);
    if (current.status().code() == StatusCode::kGone) return Status::Ok();  // checked per version
    return current.status();
  };
  // Serves a stored version: the view first (so nothing outside the caller's reach opens a
  // break-glass grant), then break-glass for the patients of the unshaped version.
  auto serve = [&](Result<fhir::RestResult> r) -> Result<fhir::RestResult> {
    r = HideGone(access, std::move(r));
    if (!r.ok()) return r;
    NotePatients(ctx.event, route.type, r.value().body, route.id);
    // Copied only under break-glass: the read path pays nothing for it.
    const std::string original = d.break_glass ? r.value().body : std::string();
    RETURN_IF_ERROR(Shape(access, route.type, r.value().body));
    if (d.break_glass) RETURN_IF_ERROR(BreakGlassFor(ctx, access, route.type, original));
    return r;
  };

  switch (access.interaction) {
    case auth::Interaction::kSearch: {
      if (d.break_glass) {
        return PermissionDenied(
            "emergency access (break-glass) applies to one patient's record: name the "
            "resource");
      }
      // Other types a search reaches (_include targets, _revinclude sources, chain
      // targets) are authorized and shaped by their own decision, as a read of them.
      std::map<std::string, Access, std::less<>> others;
      const auto access_for = [&](std::string_view type) -> const Access* {
        if (type == route.type) return &access;
        auto it = others.find(type);
        if (it == others.end()) {
          it = others.emplace(std::string(type), AccessTo(access, type, auth::Interaction::kRead))
                   .first;
          it->second.BindView();  // into the map's own node
        }
        const Access& e = it->second;
        return e.decision.allowed && !e.decision.break_glass ? &e : nullptr;
      };
      // A search must not reveal what a read hides (issue 4 §3): its own parameters, the
      // tails of chains, and the elements _include and _revinclude follow.
      RETURN_IF_ERROR(CheckSearchReach(route.type, params, *d.read_mask, access_for));
      // Each match is shaped by the caller's view like a read; one outside the
      // compartment or behind a label is left out, as if it did not match. The patients
      // of what is left out are not the request's (no false disclosures).
      fhir::EntryFilter filter = [&](std::string_view type, std::string_view id,
                                     std::string* text) -> Result<bool> {
        const Access* a = access_for(type);
        if (a == nullptr) return false;
        return ServeEntry(ctx, *a, type, id, text);
      };
      fhir::ResourceService::VisibleFilter visible = [&](std::string_view type, std::string_view,
                                                         std::string_view text) -> Result<bool> {
        const Access* a = access_for(type);  // a chain's target is of another type
        if (a == nullptr) return false;
        return Visible(*a, type, text);
      };
      const bool lenient = request["Prefer"].find("handling=lenient") != std::string_view::npos;
      return deps_.resources->Search(route.type, params, base_url_, lenient, &filter, &visible);
    }
    case auth::Interaction::kRead:
      return serve(deps_.resources->Read(route.type, route.id));
    case auth::Interaction::kVread: {
      Result<fhir::RestResult> r = deps_.resources->Vread(route.type, route.id, route.vid);
      if (r.ok()) RETURN_IF_ERROR(current_reachable(route.type, route.id));
      return serve(std::move(r));
    }
    case auth::Interaction::kHistoryInstance:
    case auth::Interaction::kHistoryType: {
      const bool instance = access.interaction == auth::Interaction::kHistoryInstance;
      if (d.break_glass && !instance) {
        return PermissionDenied(
            "emergency access (break-glass) applies to one patient's record: name the "
            "resource");
      }
      if (instance) RETURN_IF_ERROR(current_reachable(route.type, route.id));
      int kept = 0;
      Status first_drop = Status::Ok();
      // Type history: whether each resource's current version is reachable, once per id.
      std::map<std::string, bool, std::less<>> current_ok;
      fhir::EntryFilter filter = [&](std::string_view type, std::string_view id,
                                     std::string* text) -> Result<bool> {
        if (text == nullptr) {  // a deletion: its content cannot be checked
          if (compartment) return false;
          ++kept;
          ctx.event.returned.push_back(std::string(type) + "/" + std::string(id));
          return true;
        }
        if (!instance && restricted_view) {
          auto it = current_ok.find(id);
          if (it == current_ok.end()) {
            Status s = current_reachable(type, id);
            if (!s.ok() && s.code() != StatusCode::kNotFound &&
                s.code() != StatusCode::kPermissionDenied) {
              return s;
            }
            it = current_ok.emplace(std::string(id), s.ok()).first;
          }
          if (!it->second) return false;
        }
        const std::string original = d.break_glass ? *text : std::string();
        // The patients of the stored version (the view may hide the references).
        audit::Event entry;
        NotePatients(entry, type, *text, id);
        Status shaped = Shape(access, type, *text);
        if (shaped.ok() && d.break_glass) {
          // Each version's patients need their own grant (an older version may belong to
          // someone else); a version whose grant cannot be had is left out.
          shaped = BreakGlassFor(ctx, access, type, original);
          if (!shaped.ok() && shaped.code() != StatusCode::kPermissionDenied &&
              shaped.code() != StatusCode::kUnauthenticated) {
            return shaped;
          }
          if (!shaped.ok()) shaped = PermissionDenied("break-glass");
        }
        if (shaped.ok()) {
          ++kept;
          NoteServed(ctx.event, entry, type, id);
          return true;
        }
        if (shaped.code() != StatusCode::kNotFound &&
            shaped.code() != StatusCode::kPermissionDenied) {
          return shaped;
        }
        if (first_drop.ok()) first_drop = shaped;
        return false;
      };
      Result<fhir::RestResult> r = deps_.resources->History(
          route.type, instance ? std::string_view(route.id) : std::string_view(), params, base_url_,
          &filter);
      if (r.ok() && instance && kept == 0) {
        // Nothing of it is visible: answer as for a resource out of reach.
        if (compartment) return OutsideCompartment();
        if (!first_drop.ok()) {
          return first_drop.message() == "break-glass"
                     ? PermissionDenied(
                           "emergency access (break-glass) could not be granted "
                           "for this record's patients")
                     : first_drop;
        }
      }
      return r;
    }
    case auth::Interaction::kCreate: {
      // Conditional create (http.html#ccreate): the condition is decided and the create
      // made under one lock, so two such creates cannot both find nothing.
      std::unique_lock<std::mutex> lock;
      const std::string_view if_none_exist = request["If-None-Exist"];
      if (!if_none_exist.empty()) {
        std::optional<QueryParams> condition = ParseQuery(if_none_exist);
        if (!condition) return InvalidArgument("malformed If-None-Exist condition");
        for (const auto& [name, value] : *condition) ctx.event.query.emplace_back(name, value);
        lock = LockConditional();
        ASSIGN_OR_RETURN(std::vector<std::string> ids,
                         ConditionalMatches(access, route.type, *condition));
        if (ids.size() > 1) {
          return Status(StatusCode::kPreconditionFailed,
                        "the If-None-Exist condition matches more than one resource");
        }
        if (ids.size() == 1) {
          // One match: nothing is created; the answer is the existing resource (200).
          ctx.event.resource_id = ids[0];
          return serve(deps_.resources->Read(route.type, ids[0]));
        }
      }
      return Create(ctx, route, access, body);
    }
    case auth::Interaction::kUpdate: {
      if (route.id.empty()) return ConditionalUpdate(ctx, route, access, params, body, if_match);
      // The checks hold for the stored version they read, so that version is the one
      // replaced (a concurrent write in between, which could add a label or change hidden
      // elements, must not be overwritten unchecked). Without If-Match the client asked
      // for last-writer-wins: a lost race is checked again against the newer version.
      for (int attempt = 1;; ++attempt) {
        Result<fhir::RestResult> r = UpdateOnce(ctx, route, access, body, if_match);
        if (r.ok() || !if_match.empty() || attempt == kWriteAttempts ||
            r.status().code() != StatusCode::kPreconditionFailed) {
          return r;
        }
      }
    }
    case auth::Interaction::kDelete: {
      if (route.id.empty()) return ConditionalDelete(ctx, route, access, params, if_match);
      for (int attempt = 1;; ++attempt) {
        Result<fhir::RestResult> r = DeleteOnce(ctx, route, access, if_match);
        if (r.ok() || !if_match.empty() || attempt == kWriteAttempts ||
            r.status().code() != StatusCode::kPreconditionFailed) {
          return r;
        }
      }
    }
  }
  return Internal("internal error");
}

Result<fhir::RestResult> Pipeline::Create(Context& ctx, const Route& route, const Access& access,
                                          std::string_view body) {
  const policy::Decision& d = access.decision;
  if (!d.write_mask->all) RETURN_IF_ERROR(policy::CheckWritable(body, *d.write_mask));
  RETURN_IF_ERROR(Inside(access, route.type, body, true));
  RETURN_IF_ERROR(BreakGlassFor(ctx, access, route.type, body));
  NotePatients(ctx.event, route.type, body);
  return ShapeResult(access, route.type,
                     deps_.resources->Create(route.type, body, base_url_, AuditGuard(ctx)));
}

Result<std::vector<std::string>> Pipeline::ConditionalMatches(const Access& access,
                                                              std::string_view type,
                                                              const QueryParams& condition) {
  // Deciding a condition searches: it needs the search permission, by parameters the
  // caller may see (issue 4 §3), and counts only matches within the caller's reach, so
  // the answer reveals nothing a search would hide.
  policy::Decision search = deps_.policy->Evaluate(
      {access.principal.get(), type, auth::Interaction::kSearch, access.decision.purpose});
  if (!search.allowed) {
    return PermissionDenied("a conditional interaction needs the search permission on " +
                            std::string(type));
  }
  RETURN_IF_ERROR(policy::CheckSearchParams(type, condition, *search.read_mask));
  fhir::ResourceService::VisibleFilter visible = [&](std::string_view t, std::string_view,
                                                     std::string_view text) -> Result<bool> {
    return Visible(access, t, text);
  };
  return deps_.resources->MatchIds(type, condition, 2, &visible);
}

namespace {

// The body with `"id": id` as its first member, for a conditional update whose body names
// no id (http.html#cond-update: the server uses the matched resource's id).
std::string WithId(std::string_view body, std::string_view id) {
  const size_t open = body.find_first_not_of(" \t\r\n");
  if (open == std::string_view::npos || body[open] != '{') return std::string(body);
  const size_t next = body.find_first_not_of(" \t\r\n", open + 1);
  std::string out(body.substr(0, open + 1));
  out += "\"id\":";
  AppendJsonEscaped(out, id);
  if (next != std::string_view::npos && body[next] != '}') out += ',';
  out += body.substr(open + 1);
  return out;
}

// Deep enough for any body the update will accept (limits.json_depth is at most 512).
constexpr int kMaxBodyIdDepth = 512;

// The "id" member of a JSON object body; "" if absent; nullopt if the body is not an object
// with a string id (the update itself reports malformed bodies).
std::optional<std::string> BodyId(std::string_view body) {
  Result<boost::json::value> v = fhir::ParseJson(body, kMaxBodyIdDepth);
  if (!v.ok() || !v.value().is_object()) return std::nullopt;
  const boost::json::value* id = v.value().get_object().if_contains("id");
  if (id == nullptr) return std::string();
  if (!id->is_string()) return std::nullopt;
  return std::string(id->get_string());
}

}  // namespace

Result<fhir::RestResult> Pipeline::ConditionalUpdate(Context& ctx, const Route& route,
                                                     const Access& access,
                                                     const QueryParams& params,
                                                     std::string_view body,
                                                     std::string_view if_match) {
  std::unique_lock<std::mutex> lock = LockConditional();
  ASSIGN_OR_RETURN(std::vector<std::string> ids, ConditionalMatches(access, route.type, params));
  if (ids.size() > 1) {
    return Status(StatusCode::kPreconditionFailed, "the condition matches more than one resource");
  }
  const std::optional<std::string> body_id = BodyId(body);
  Route target = route;
  std::string with_id;
  if (ids.size() == 1) {
    // One match: that resource is updated; a body id must name it.
    if (body_id && !body_id->empty() && *body_id != ids[0]) {
      return InvalidArgument("the resource id does not match the resource the condition found",
                             route.type + ".id");
    }
    target.id = ids[0];
    if (body_id && body_id->empty()) {
      with_id = WithId(body, ids[0]);
      body = with_id;
    }
  } else if (body_id && !body_id->empty()) {
    // No match, an id given: an update as create of that id (http.html#cond-update); an
    // existing (or deleted) resource of that id is not the condition's to overwrite (409,
    // as R5 spells out).
    Result<fhir::RestResult> existing = deps_.resources->Read(route.type, *body_id);
    if (existing.ok() || existing.status().code() == StatusCode::kGone) {
      return Status(StatusCode::kConflict,
                    "the condition matches nothing, and the resource id in the body exists");
    }
    target.id = *body_id;
  } else {
    // No match, no id: a create.
    policy::Decision create = deps_.policy->Evaluate(
        {access.principal.get(), route.type, auth::Interaction::kCreate, access.decision.purpose});
    if (!create.allowed) return PermissionDenied(create.denial);
    Access creating = access;
    creating.decision = std::move(create);
    creating.BindView();
    return Create(ctx, route, creating, body);
  }
  ctx.event.resource_id = target.id;
  for (int attempt = 1;; ++attempt) {
    Result<fhir::RestResult> r = UpdateOnce(ctx, target, access, body, if_match);
    if (r.ok() || !if_match.empty() || attempt == kWriteAttempts ||
        r.status().code() != StatusCode::kPreconditionFailed) {
      return r;
    }
  }
}

Result<fhir::RestResult> Pipeline::ConditionalDelete(Context& ctx, const Route& route,
                                                     const Access& access,
                                                     const QueryParams& params,
                                                     std::string_view if_match) {
  std::unique_lock<std::mutex> lock = LockConditional();
  ASSIGN_OR_RETURN(std::vector<std::string> ids, ConditionalMatches(access, route.type, params));
  if (ids.size() > 1) {
    return Status(StatusCode::kPreconditionFailed, "the condition matches more than one resource");
  }
  if (ids.empty()) {
    fhir::RestResult none;  // nothing matches: nothing to delete (http.html#cdelete)
    none.status = 204;
    return none;
  }
  Route target = route;
  target.id = ids[0];
  ctx.event.resource_id = target.id;
  for (int attempt = 1;; ++attempt) {
    Result<fhir::RestResult> r = DeleteOnce(ctx, target, access, if_match);
    if (r.ok() || !if_match.empty() || attempt == kWriteAttempts ||
        r.status().code() != StatusCode::kPreconditionFailed) {
      return r;
    }
  }
}

Result<fhir::RestResult> Pipeline::UpdateOnce(Context& ctx, const Route& route,
                                              const Access& access, std::string_view body,
                                              std::string_view if_match) {
  const policy::Decision& d = access.decision;
  const bool compartment = !access.patient.empty();
  Result<fhir::RestResult> stored = deps_.resources->Read(route.type, route.id);
  std::string merged;
  std::string expected(if_match);
  if (stored.ok()) {
    const std::string& old = stored.value().body;
    RETURN_IF_ERROR(Reachable(access, route.type, old));
    RETURN_IF_ERROR(BreakGlassFor(ctx, access, route.type, old));
    if (!d.read_mask->all) {
      // Hidden elements are kept from the stored version (issue 4 §3).
      ASSIGN_OR_RETURN(merged, policy::PreserveHidden(body, old, *d.read_mask));
    } else {
      merged = std::string(body);
    }
    if (!d.write_mask->all && !d.write_mask->Lists("meta")) {
      // Labels, tags and profiles are not the writer's to change.
      ASSIGN_OR_RETURN(merged, policy::KeepStoredMeta(merged, old));
    }
    if (!d.write_mask->all) {
      RETURN_IF_ERROR(policy::CheckWritableUpdate(merged, old, *d.write_mask));
    }
    // The version checked above is the one replaced: a concurrent write in between
    // (which could add a label or change hidden elements) makes this one fail (412).
    if (expected.empty() || SameVersion(expected, stored.value().etag)) {
      expected = stored.value().etag;
    }
  } else if (stored.status().code() == StatusCode::kNotFound ||
             stored.status().code() == StatusCode::kGone) {
    // Existence outside the compartment is not revealed, and no resource is created
    // there by update.
    if (compartment) return OutsideCompartment();
    // Update as create (or recreating a deleted resource) is a create: it needs the
    // create permission.
    policy::Decision create = deps_.policy->Evaluate(
        {access.principal.get(), route.type, auth::Interaction::kCreate, d.purpose});
    if (!create.allowed) return PermissionDenied(create.denial);
    if (!create.write_mask->all) {
      RETURN_IF_ERROR(policy::CheckWritable(body, *create.write_mask));
    }
    merged = std::string(body);
  } else {
    return stored.status();
  }
  RETURN_IF_ERROR(Inside(access, route.type, merged, false));
  RETURN_IF_ERROR(BreakGlassFor(ctx, access, route.type, merged));
  if (stored.ok()) NotePatients(ctx.event, route.type, stored.value().body);
  NotePatients(ctx.event, route.type, merged);
  return ShapeResult(
      access, route.type,
      deps_.resources->Update(route.type, route.id, merged, expected, base_url_, AuditGuard(ctx)));
}

Result<fhir::RestResult> Pipeline::DeleteOnce(Context& ctx, const Route& route,
                                              const Access& access, std::string_view if_match) {
  Result<fhir::RestResult> stored = HideGone(access, deps_.resources->Read(route.type, route.id));
  std::string expected(if_match);
  if (stored.ok()) {
    RETURN_IF_ERROR(Reachable(access, route.type, stored.value().body));
    RETURN_IF_ERROR(BreakGlassFor(ctx, access, route.type, stored.value().body));
    if (expected.empty() || SameVersion(expected, stored.value().etag)) {
      expected = stored.value().etag;
    }
    NotePatients(ctx.event, route.type, stored.value().body);
  } else if (stored.status().code() != StatusCode::kGone) {
    return stored.status();
  }
  return deps_.resources->Delete(route.type, route.id, expected, AuditGuard(ctx));
}

net::Response Pipeline::HandleAdmin(Context& ctx, net::Request& request, const Route& route) {
  auto params = ParseQuery(route.query);
  if (!params) return ErrorResponse(ctx.version, InvalidArgument("malformed query string"));
  bool token_in_query = false;
  for (const auto& [name, value] : *params) token_in_query |= name == "access_token";
  auto principal = Authenticate(ctx, request, token_in_query);
  if (!principal.ok()) return ErrorResponse(ctx.version, principal.status());
  NoteWho(ctx.event, *principal.value());
  const std::vector<std::string>& roles = principal.value()->roles;
  auto has_role = [&](std::string_view role) {
    return std::find(roles.begin(), roles.end(), role) != roles.end();
  };
  if (Status baa = deps_.baa->Check(principal.value()->client_id, &ctx.event.baa_counterparty);
      !baa.ok()) {
    return Deny(ctx, baa);
  }

  if (route.kind == RouteKind::kMetrics) {
    // Operational counters only (no PHI, no labels from requests): admin or auditor.
    if (!has_role("admin") && !has_role("auditor")) {
      return Deny(ctx, PermissionDenied("reading metrics needs the admin or auditor role"));
    }
    // The trail's own counters (the writer thread keeps them): group commit shows as
    // records per fsync.
    const audit::AuditLogStats s = deps_.audit->stats();
    std::string text = RenderMetrics();
    auto counter = [&text](std::string_view name, std::string_view help, uint64_t value) {
      text += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " +
              std::string(name) + " counter\n" + std::string(name) + " " + std::to_string(value) +
              "\n";
    };
    counter("phigate_audit_records_total", "Audit records made durable", s.records);
    counter("phigate_audit_fsyncs_total", "Durable audit batches (one fsync each)", s.syncs);
    counter("phigate_audit_failed_batches_total", "Audit batches that failed", s.failed_batches);
    counter("phigate_audit_checkpoints_total", "Signed audit checkpoints written", s.checkpoints);
    return MakeResponse(ctx.version, bhttp::status::ok, "text/plain; version=0.0.4",
                        std::move(text));
  }

  // GET /admin/break-glass: the grants, for review by the auditor (issue 4 §5). The list
  // holds patient ids and reasons, so it is authorized like a search of the audit trail:
  // role, scopes and purpose of use.
  std::string_view purpose = principal.value()->purpose_of_use;
  if (purpose.empty()) purpose = TrimOws(request["X-Purpose-Of-Use"]);
  policy::Decision review = deps_.policy->Evaluate(
      {principal.value().get(), "AuditEvent", auth::Interaction::kSearch, purpose});
  ctx.purpose = review.purpose;
  if (!review.allowed || review.patient_compartment || review.break_glass ||
      !review.read_mask->all) {
    return Deny(ctx, PermissionDenied("reviewing break-glass grants needs a role and scopes "
                                      "that grant search on AuditEvent"));
  }
  int64_t since_ms = 0;
  int limit = 100;
  for (const auto& [name, value] : *params) {
    if (name == "since") {
      auto t = ParseDateUtc(value);
      if (!t) return ErrorResponse(ctx.version, InvalidArgument("since must be a date", "since"));
      since_ms = *t;
    } else if (name == "_count") {
      int n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 1000) {
        return ErrorResponse(ctx.version,
                             InvalidArgument("_count must be between 1 and 1000", "_count"));
      }
      limit = n;
    } else if (name != "_pretty") {
      return ErrorResponse(ctx.version, InvalidArgument("unknown parameter"));
    } else {
      ctx.pretty = value == "true";
    }
  }
  auto listed = deps_.break_glass->ListJson(since_ms, limit);
  if (!listed.ok()) return ErrorResponse(ctx.version, listed.status());
  return MakeResponse(ctx.version, bhttp::status::ok, kJson, std::move(listed.value()));
}

bool Pipeline::NeedsRecord(const Context& ctx, int status) const {
  // A change was recorded inside its transaction with the status it answers; a different
  // final status (the commit failed after the record) gets a record of its own.
  return ctx.audit && !(ctx.audited && status == ctx.event.status);
}

void Pipeline::CompleteEvent(Context& ctx, int status, std::string_view body) {
  audit::Event& e = ctx.event;
  e.status = status;
  e.route = ctx.route;
  e.purpose = ctx.purpose;
  e.break_glass_grant = ctx.break_glass_grant;
  e.denial = ctx.denial;
  e.outcome_code = status >= 400 ? ErrorCodeOf(body) : std::string();
  // An authentication endpoint knows its caller only through its security events.
  if (e.user_id.empty() && e.client_id.empty()) {
    for (const audit::SecurityDetail& s : e.security) {
      if (!s.user_id.empty()) e.user_id = s.user_id;
      if (!s.client_id.empty()) e.client_id = s.client_id;
    }
  }
}

Status Pipeline::RecordEvent(Context& ctx, int status, std::string_view body) {
  CompleteEvent(ctx, status, body);
  Result<int64_t> recorded = deps_.audit->Record(ctx.event);
  if (!recorded.ok()) return Unavailable(std::string(kAuditUnavailable));
  return Status::Ok();
}

net::Response Pipeline::AuditUnavailable(Context& ctx) {
  static Counter& failures =
      GetCounter("phigate_audit_failures_total",
                 "Requests failed closed because their audit record could not be made durable");
  failures.Inc();
  Log(LogLevel::kError, "audit_unavailable",
      {{"request_id", ctx.request_id}, {"route", ctx.route}});
  net::Response unavailable =
      ErrorResponse(ctx.version, Unavailable(std::string(kAuditUnavailable)));
  unavailable.set(bhttp::field::retry_after, "5");
  return unavailable;
}

fhir::WriteGuard Pipeline::AuditGuard(Context& ctx) {
  return [this, &ctx](std::string_view id, int64_t version, int status) -> Status {
    ctx.event.resource_id = std::string(id);
    ctx.event.version = version;
    // A new Patient's id exists only now: it is the patient touched.
    if (ctx.event.resource_type == "Patient" &&
        std::find(ctx.event.patients.begin(), ctx.event.patients.end(), id) ==
            ctx.event.patients.end()) {
      ctx.event.patients.emplace_back(id);
    }
    RETURN_IF_ERROR(RecordEvent(ctx, status, {}));
    ctx.audited = true;
    return Status::Ok();
  };
}

bool Pipeline::AuditReady() {
  if (deps_.audit->Healthy()) return true;
  // At most one probe record per second, however often /readyz is asked.
  static std::atomic<int64_t> last_probe_ms{0};
  const int64_t now_ms = deps_.clock->NowMillis();
  int64_t last = last_probe_ms.load();
  if (now_ms - last < 1000 || !last_probe_ms.compare_exchange_strong(last, now_ms)) return false;
  // After a failure nothing else may write to the trail (probes are not recorded), so
  // readiness tries a record itself: the trail recovers as soon as the disk does.
  audit::Event probe;
  probe.kind = audit::EventKind::kSystem;
  probe.subtype = "readiness-probe";
  probe.time_ms = now_ms;
  probe.address = "local";
  // As large as a large request's record: a small one can fit in the last free bytes of a
  // full disk while real records still fail.
  probe.detail = std::string(kReadinessProbeBytes, '.');
  return deps_.audit->Record(probe).ok();
}

Result<fhir::RestResult> Pipeline::ReadAuditTrail(Context& ctx, const Route& route,
                                                  const Access& access, const QueryParams& params) {
  (void)access;  // authorized by the caller: the auditor's unrestricted view
  fhir::RestResult result;
  switch (access.interaction) {
    case auth::Interaction::kSearch: {
      ASSIGN_OR_RETURN(audit::SearchQuery query,
                       audit::ParseSearch(params, static_cast<int>(deps_.config->audit.max_page)));
      ASSIGN_OR_RETURN(result.body, audit::SearchBundle(*deps_.audit_reader, *deps_.keyring, query,
                                                        base_url_, &ctx.event.returned));
      return result;
    }
    case auth::Interaction::kRead: {
      int64_t seq = 0;
      const std::string& id = route.id;
      auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), seq);
      if (ec != std::errc() || end != id.data() + id.size() || seq < 1) {
        return NotFound("resource not found");
      }
      ASSIGN_OR_RETURN(result.body, audit::ReadEvent(*deps_.audit_reader, *deps_.keyring, seq));
      return result;
    }
    default:
      return NotSupported(
          "the audit trail is read by search and read; its records have no history");
  }
}

net::Response Pipeline::HandleDisclosures(Context& ctx, net::Request& request, const Route& route,
                                          const auth::Principal& principal,
                                          const QueryParams& params) {
  // The record reads audit records about one patient: it is a read of the trail, not a
  // disclosure of the patient's record.
  ctx.event.subtype = "operation";
  ctx.event.action = 'E';
  ctx.event.resource_type = "AuditEvent";
  ctx.event.resource_id.clear();
  ctx.event.patients = {route.id};
  // HIPAA §164.528: the auditor, or the patient for their own record.
  std::string_view purpose = principal.purpose_of_use;
  if (purpose.empty()) purpose = TrimOws(request["X-Purpose-Of-Use"]);
  policy::Decision review =
      deps_.policy->Evaluate({&principal, "AuditEvent", auth::Interaction::kSearch, purpose});
  bool allowed = IsAuditor(principal) && review.allowed && !review.patient_compartment &&
                 !review.break_glass && review.read_mask->all;
  bool auditor = allowed;
  if (!allowed) {
    policy::Decision own =
        deps_.policy->Evaluate({&principal, "Patient", auth::Interaction::kRead, purpose});
    std::string patient = principal.patient;
    if (patient.empty() && principal.fhir_user.starts_with("Patient/")) {
      patient = principal.fhir_user.substr(8);
    }
    allowed = own.allowed && own.patient_compartment && !patient.empty() && patient == route.id;
    if (allowed) {
      review = own;
      auditor = false;
    }
  }
  ctx.purpose = review.purpose;
  if (!allowed) {
    return Deny(ctx, PermissionDenied("the accounting of disclosures is available to the "
                                      "auditor, and to a patient for their own record"));
  }
  const int64_t now_ms = deps_.clock->NowMillis();
  const int64_t retention_ms = deps_.config->audit.retention_days * 86'400'000;
  // §164.528(a)(1): up to six years before the request.
  const int64_t earliest = now_ms - std::max<int64_t>(retention_ms, 6 * 365 * 86'400'000LL);
  int64_t start_ms = earliest;
  int64_t end_ms = now_ms + 1;
  for (const auto& [name, value] : params) {
    if (name == "start" || name == "end") {
      std::optional<int64_t> t = ParseDateUtc(value);
      if (!t) return ErrorResponse(ctx.version, InvalidArgument(name + " must be a date", name));
      // A day given as `end` includes that day.
      const int64_t day_ms = name == "end" && value.size() == 10 ? 86'400'000 : 0;
      (name == "start" ? start_ms : end_ms) = *t + day_ms;
    } else if (name != "_format" && name != "_pretty") {
      return ErrorResponse(ctx.version, InvalidArgument("unknown parameter"));
    }
  }
  start_ms = std::max(start_ms, earliest);
  // The patient gets the accounting (date, recipient, counterparty, what, purpose), not
  // the records, which can name other patients and workforce details.
  auto bundle = audit::DisclosuresBundle(*deps_.audit_reader, *deps_.keyring, route.id, start_ms,
                                         end_ms, base_url_, &ctx.event.returned, auditor);
  if (!bundle.ok()) return ErrorResponse(ctx.version, bundle.status());
  return MakeResponse(ctx.version, bhttp::status::ok, kFhirJson, std::move(bundle.value()));
}

}  // namespace phigate::http
