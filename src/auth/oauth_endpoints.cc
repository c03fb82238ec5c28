#include "auth/oauth_endpoints.h"

#include <algorithm>
#include <boost/json.hpp>
#include <iterator>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "auth/client_auth.h"
#include "auth/jwt.h"
#include "auth/roles.h"
#include "auth/scope.h"
#include "core/ascii.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/url.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

constexpr std::string_view kFormUrlEncoded = "application/x-www-form-urlencoded";
// Addresses whose client authentication failures are remembered (memory bound).
constexpr size_t kMaxThrottledClientAddresses = 100'000;
constexpr std::string_view kJsonType = "application/json; charset=utf-8";
// The built-in login always asks for a password and a TOTP code (RFC 8176 §2).
std::vector<std::string> BuiltinAmr() { return {"pwd", "otp", "mfa"}; }

// RFC 6749 §5.1 (token responses) and RFC 7662 §2.2 ask for no caching.
void NoStore(EndpointResponse& r) {
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("Pragma", "no-cache");
}

EndpointResponse Json(int status, std::string body) {
  EndpointResponse r;
  r.status = status;
  r.content_type = kJsonType;
  r.body = std::move(body);
  NoStore(r);
  return r;
}

EndpointResponse Error(int status, std::string_view error, std::string_view description) {
  // RFC 6749 §5.2. The description is fixed text: never echo submitted values.
  boost::json::object body;
  body["error"] = error;
  body["error_description"] = description;
  return Json(status, boost::json::serialize(body));
}

EndpointResponse InvalidRequest(std::string_view description) {
  return Error(400, "invalid_request", description);
}

EndpointResponse InvalidGrant(std::string_view description) {
  return Error(400, "invalid_grant", description);
}

EndpointResponse InvalidClient(bool challenge) {
  EndpointResponse r = Error(401, "invalid_client", "client authentication failed");
  // RFC 6749 §5.2: a client that tried the Authorization header gets the challenge back.
  if (challenge) r.headers.emplace_back("WWW-Authenticate", R"(Basic realm="phigate")");
  return r;
}

EndpointResponse ServerError(const Status& status) {
  if (status.code() == StatusCode::kUnavailable) {
    EndpointResponse r =
        Error(503, "temporarily_unavailable", "the server is busy; try again later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  return Error(500, "server_error", "the request could not be completed");
}

void LogDenied(std::string_view reason, std::string_view client_id = {}) {
  if (client_id.empty()) {
    Log(LogLevel::kInfo, "token_request_denied", {{"reason", reason}});
  } else {
    Log(LogLevel::kInfo, "token_request_denied", {{"reason", reason}, {"client_id", client_id}});
  }
}

// Media type without parameters (RFC 9110 §8.3.1: case-insensitive).
bool IsFormUrlEncoded(std::string_view content_type) {
  return EqualsIgnoreCase(TrimOws(content_type.substr(0, content_type.find(';'))), kFormUrlEncoded);
}

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::vector<std::string> SplitSpaces(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(' ', start), s.size());
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> SplitRoles(const std::string& roles) {
  if (roles.empty()) return {};
  Result<std::vector<std::string>> parsed = ParseRoles(roles);
  if (!parsed.ok()) {
    // Registration validates roles; a bad stored value grants no role rather than failing.
    Log(LogLevel::kError, "stored_roles_invalid");
    return {};
  }
  return std::move(parsed).value();
}

// The system/ part of a registered scope: what client credentials may grant by default.
Result<ScopeSet> SystemPart(const ScopeSet& registered) {
  std::string joined;
  for (const std::string& token : SplitSpaces(registered.ToString())) {
    if (!token.starts_with("system/")) continue;
    if (!joined.empty()) joined += ' ';
    joined += token;
  }
  return ScopeSet::Parse(joined);
}

// The launch patient of a refreshed token: the user's own Patient record, if the scope
// asks for patient context (the family record keeps no other patient).
std::string PatientOf(const storage::UserRecord& user, const ScopeSet& scope) {
  constexpr std::string_view kPatientPrefix = "Patient/";
  if (!scope.HasContext(ScopeContext::kPatient)) return {};
  if (!user.fhir_user.starts_with(kPatientPrefix)) return {};
  return user.fhir_user.substr(kPatientPrefix.size());
}

std::string TokenBody(const TokenIssuer::Issued& issued, const std::string& refresh_token,
                      const std::string& id_token, const std::string& patient) {
  // RFC 6749 §5.1; the "Bearer" token type is RFC 6750 §6.1.1; id_token is OIDC Core
  // §3.1.3.3; patient is the SMART launch context.
  boost::json::object body;
  body["access_token"] = issued.access_token;
  body["token_type"] = "Bearer";
  body["expires_in"] = issued.expires_in;
  body["scope"] = issued.scope;
  if (!refresh_token.empty()) body["refresh_token"] = refresh_token;
  if (!id_token.empty()) body["id_token"] = id_token;
  if (!patient.empty()) body["patient"] = patient;
  return boost::json::serialize(body);
}

// The "iat" of a token whose signature was already verified.
std::optional<int64_t> VerifiedIat(std::string_view jwt) {
  const size_t dot1 = jwt.find('.');
  const size_t dot2 = jwt.rfind('.');
  if (dot1 == std::string_view::npos || dot2 <= dot1) return std::nullopt;
  std::optional<std::string> payload = Base64UrlDecode(jwt.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return std::nullopt;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*payload, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const boost::json::value* iat = v.as_object().if_contains("iat");
  if (iat == nullptr || !iat->is_int64()) return std::nullopt;
  return iat->as_int64();
}

boost::json::array Strings(std::initializer_list<std::string_view> values) {
  boost::json::array out;
  for (std::string_view v : values) out.emplace_back(v);
  return out;
}

}  // namespace

bool IsValidCodeVerifier(std::string_view verifier) {
  return verifier.size() >= 43 && verifier.size() <= 128 &&
         std::all_of(verifier.begin(), verifier.end(), IsUnreserved);
}

std::string S256Challenge(std::string_view verifier) {
  return Base64UrlEncode(crypto::Sha256(verifier));
}

std::string RefreshTokenHash(std::string_view token) { return HexEncode(crypto::Sha256(token)); }

// The request's parameters, each at most once (RFC 6749 §3.2).
struct OAuthEndpoints::Form {
  QueryParams params;
  std::optional<std::string_view> Get(std::string_view name) const {
    for (const auto& [key, value] : params) {
      if (key == name) {
        if (value.empty()) return std::nullopt;  // §3.2: an empty value counts as absent
        return std::string_view(value);
      }
    }
    return std::nullopt;
  }
};

namespace {

// Checks method, size and media type, and parses the form; on failure fills `error`.
template <typename FormT>
bool ParseForm(const EndpointRequest& request, FormT& form, EndpointResponse& error) {
  if (!request.method.empty() && request.method != "POST") {
    error = Error(405, "invalid_request", "use POST");
    error.headers.emplace_back("Allow", "POST");
    return false;
  }
  if (request.body.size() > kMaxTokenRequestBodyBytes) {
    LogDenied("body_too_large");
    error = InvalidRequest("the request body is too large");
    return false;
  }
  if (!IsFormUrlEncoded(request.content_type)) {
    LogDenied("content_type");
    error = InvalidRequest("the content type must be application/x-www-form-urlencoded");
    return false;
  }
  std::optional<QueryParams> parsed = ParseQuery(request.body);
  if (!parsed) {
    LogDenied("malformed_body");
    error = InvalidRequest("the request body is not valid form encoding");
    return false;
  }
  // A hash set: this runs before authentication, so its cost must stay linear.
  std::unordered_set<std::string_view> seen;
  seen.reserve(parsed->size());
  for (const auto& [name, value] : *parsed) {
    if (!seen.insert(name).second) {
      LogDenied("duplicate_parameter");
      error = InvalidRequest("a request parameter is repeated");
      return false;
    }
  }
  form.params = std::move(*parsed);
  return true;
}

// For a revocation on a path that refuses the request anyway: a failure is logged as
// `failure_event` and does not change the answer.
void LogIfFailed(const Status& status, std::string_view failure_event) {
  if (!status.ok()) Log(LogLevel::kError, failure_event);
}

}  // namespace

OAuthEndpoints::OAuthEndpoints(storage::Store& store, const TokenIssuer& issuer,
                               AuthorizationCodes& codes, SessionGuard& guard,
                               const TokenVerifier& verifier, const Clock& clock,
                               const AuthConfig& config, std::string issuer_url,
                               SecurityEventSink& events)
    : store_(store),
      issuer_(issuer),
      codes_(codes),
      guard_(guard),
      verifier_(verifier),
      clock_(clock),
      config_(config),
      issuer_url_(std::move(issuer_url)),
      token_endpoint_(issuer_url_ + "/oauth2/token"),
      events_(events) {
  config_.issuer = issuer_url_;
}

void OAuthEndpoints::Emit(SecurityEventType type, const EndpointRequest& request,
                          std::string_view client_id, std::string_view user_id,
                          std::string_view reason) {
  SecurityEvent event;
  event.type = type;
  event.client_id = client_id;
  event.user_id = user_id;
  event.address = request.remote_address;
  event.reason = reason;
  events_.Record(event);
}

std::optional<int64_t> OAuthEndpoints::ReserveClientAttempt(std::string_view address,
                                                            int64_t& at_ms) {
  const int64_t now = clock_.NowMillis();
  const int64_t window_ms = config_.address_window_s * 1000;
  const size_t max_failures = static_cast<size_t>(std::max(1, config_.address_max_failures));
  const std::string key(address);
  std::lock_guard<std::mutex> lock(throttle_mu_);
  // Checked and counted in one step, before the slow check: counting afterwards would let
  // parallel requests all pass the check.
  auto it = client_failures_.find(key);
  if (it != client_failures_.end()) {
    std::deque<int64_t>& times = it->second;
    while (!times.empty() && times.front() <= now - window_ms) times.pop_front();
    if (times.size() >= max_failures) {
      const int64_t wait_ms = times.front() + window_ms - now;
      return std::max<int64_t>(1, (wait_ms + 999) / 1000);
    }
  } else if (client_failures_.size() >= kMaxThrottledClientAddresses) {
    std::erase_if(client_failures_, [&](const auto& kv) {
      return kv.second.empty() || kv.second.back() <= now - window_ms;
    });
    // Still full of recent failures: forget an arbitrary address rather than grow.
    if (client_failures_.size() >= kMaxThrottledClientAddresses) {
      client_failures_.erase(client_failures_.begin());
    }
  }
  client_failures_[key].push_back(now);
  at_ms = now;
  return std::nullopt;
}

void OAuthEndpoints::ReleaseClientAttempt(std::string_view address, int64_t at_ms) {
  std::lock_guard<std::mutex> lock(throttle_mu_);
  auto it = client_failures_.find(std::string(address));
  if (it == client_failures_.end()) return;
  std::deque<int64_t>& times = it->second;
  for (auto t = times.rbegin(); t != times.rend(); ++t) {
    if (*t == at_ms) {
      times.erase(std::next(t).base());
      break;
    }
  }
  if (times.empty()) client_failures_.erase(it);
}

bool OAuthEndpoints::Authenticate(const EndpointRequest& request, const Form& form,
                                  storage::ClientRecord& client, EndpointResponse& error) {
  int64_t reserved_at_ms = 0;
  if (std::optional<int64_t> wait = ReserveClientAttempt(request.remote_address, reserved_at_ms)) {
    Emit(SecurityEventType::kAddressThrottled, request, {}, {}, "too_many_client_auth_failures");
    error = Error(429, "invalid_client", "too many failed attempts");
    error.headers.emplace_back("Retry-After", std::to_string(*wait));
    return false;
  }
  ClientAuthDetail detail;
  Result<storage::ClientRecord> r =
      AuthenticateClient(store_, request, form.params, token_endpoint_, config_, clock_, &detail);
  if (r.ok()) {
    ReleaseClientAttempt(request.remote_address, reserved_at_ms);
    client = std::move(r).value();
    return true;
  }
  switch (r.status().code()) {
    case StatusCode::kInvalidArgument:
      // A malformed request, refused before any secret check: not a guess.
      ReleaseClientAttempt(request.remote_address, reserved_at_ms);
      LogDenied(detail.reason, detail.client_id);
      error = InvalidRequest(r.status().message());
      return false;
    case StatusCode::kUnauthenticated:
      // The reservation stays: a failed authentication.
      Emit(SecurityEventType::kClientAuthFailure, request, detail.client_id, {}, detail.reason);
      error = InvalidClient(detail.method != kAuthMethodPrivateKeyJwt);
      return false;
    default:
      ReleaseClientAttempt(request.remote_address, reserved_at_ms);
      Log(r.status().code() == StatusCode::kUnavailable ? LogLevel::kWarn : LogLevel::kError,
          "client_authentication_error", {{"reason", detail.reason}});
      error = ServerError(r.status());
      return false;
  }
}

Result<bool> OAuthEndpoints::UserUsable(const std::string& user_id, int64_t auth_time_ms,
                                        storage::UserRecord* user) {
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> found, store_.GetUser(user_id));
  if (!found || found->disabled || found->sessions_valid_after_ms > auth_time_ms) return false;
  if (user != nullptr) *user = std::move(*found);
  return true;
}

EndpointResponse OAuthEndpoints::Token(const EndpointRequest& request) {
  Form form;
  EndpointResponse error;
  if (!ParseForm(request, form, error)) return error;
  std::optional<std::string_view> grant_type = form.Get("grant_type");
  if (!grant_type) {
    LogDenied("missing_grant_type");
    return InvalidRequest("grant_type is required");
  }
  if (*grant_type == "authorization_code") return AuthorizationCodeGrant(request, form);
  if (*grant_type == "refresh_token") return RefreshTokenGrant(request, form);
  if (*grant_type == "client_credentials") return ClientCredentialsGrant(request, form);
  // No password grant, no implicit, no device code (docs/authentication.md).
  LogDenied("unsupported_grant_type");
  return Error(400, "unsupported_grant_type",
               "supported: authorization_code, refresh_token, client_credentials");
}

EndpointResponse OAuthEndpoints::AuthorizationCodeGrant(const EndpointRequest& request,
                                                        const Form& form) {
  // 1. Syntax, before any Argon2id work.
  std::optional<std::string_view> code = form.Get("code");
  if (!code) return InvalidRequest("code is required");
  std::optional<std::string_view> verifier = form.Get("code_verifier");
  // RFC 7636 §4.5: PKCE is mandatory here (docs/authentication.md), for every client.
  if (!verifier) return InvalidRequest("code_verifier is required");
  if (!IsValidCodeVerifier(*verifier)) {
    return InvalidRequest("code_verifier must be 43 to 128 unreserved characters");
  }
  const std::string_view redirect_uri = form.Get("redirect_uri").value_or("");
  if (code->size() > kMaxCodeBytes || redirect_uri.size() > kMaxRedirectUriBytes) {
    return InvalidGrant("the authorization code is invalid or expired");
  }

  // 2. The client.
  storage::ClientRecord client;
  EndpointResponse error;
  if (!Authenticate(request, form, client, error)) return error;
  if (client.redirect_uris.empty()) {
    LogDenied("code_grant_not_registered", client.client_id);
    return Error(400, "unauthorized_client", "the client may not use the authorization code grant");
  }

  // 3. The code: single use, whatever happens next (RFC 6749 §4.1.2). The session this
  // redemption creates is named now and recorded by Redeem itself, so that a replay at
  // any later moment finds it.
  const std::string code_text(*code);
  const std::string session_id = crypto::RandomToken(16);
  AuthorizationCodes::Redeemed redeemed = codes_.Redeem(code_text, session_id);
  switch (redeemed.outcome) {
    case AuthorizationCodes::Outcome::kOk:
      break;
    case AuthorizationCodes::Outcome::kAlreadyUsed:
      // RFC 6749 §4.1.2: a code used twice may have been stolen; the tokens its first
      // redemption produced are revoked: the session (in memory, and in the store if it
      // has refresh tokens) and its access token by jti, which the store keeps, so that
      // a session without refresh tokens stays ended after a restart too.
      if (!redeemed.family_id.empty()) {
        LogIfFailed(guard_.RevokeFamily(redeemed.family_id), "code_reuse_revoke_failed");
      }
      if (!redeemed.access_jti.empty()) {
        LogIfFailed(guard_.RevokeAccessToken(redeemed.access_jti, redeemed.access_expires_at_s),
                    "code_reuse_revoke_failed");
      }
      Emit(SecurityEventType::kTokenRevoked, request, client.client_id, {},
           "authorization_code_reused");
      return InvalidGrant("the authorization code is invalid or expired");
    case AuthorizationCodes::Outcome::kUnknown:
    case AuthorizationCodes::Outcome::kExpired:
      LogDenied("code_unknown_or_expired", client.client_id);
      return InvalidGrant("the authorization code is invalid or expired");
  }
  const AuthorizationGrant& grant = redeemed.grant;
  // RFC 6749 §4.1.3: the code was issued to this client, for this redirect_uri.
  if (grant.client_id != client.client_id) {
    LogDenied("code_client_mismatch", client.client_id);
    return InvalidGrant("the authorization code is invalid or expired");
  }
  if (redirect_uri != grant.redirect_uri) {
    LogDenied("redirect_uri_mismatch", client.client_id);
    return InvalidGrant("redirect_uri does not match the authorization request");
  }
  // RFC 7636 §4.6, compared in constant time.
  if (!crypto::ConstantTimeEquals(S256Challenge(*verifier), grant.code_challenge)) {
    LogDenied("pkce_mismatch", client.client_id);
    return InvalidGrant("code_verifier does not match the code_challenge");
  }
  Result<bool> usable = UserUsable(grant.user_id, grant.auth_time_s * 1000, nullptr);
  if (!usable.ok()) return ServerError(usable.status());
  if (!usable.value()) {
    LogDenied("user_unusable", client.client_id);
    return InvalidGrant("the authorization code is invalid or expired");
  }
  Result<ScopeSet> scope = ScopeSet::Parse(grant.scope);
  if (!scope.ok() || scope->empty()) {
    Log(LogLevel::kError, "granted_scope_invalid", {{"client_id", client.client_id}});
    return ServerError(Internal("granted scope invalid"));
  }

  // 4. The session (see oauth_endpoints.h on when it is stored).
  std::string refresh_token;
  if (scope->Contains("offline_access") || scope->Contains("online_access")) {
    storage::RefreshFamily family;
    family.family_id = session_id;
    family.user_id = grant.user_id;
    family.client_id = client.client_id;
    family.scope = scope->ToString();
    family.auth_time_ms = grant.auth_time_s * 1000;
    family.expires_ms = family.auth_time_ms + config_.session_max_lifetime_s * 1000;
    family.last_used_ms = clock_.NowMillis();
    refresh_token = crypto::RandomToken(32);
    if (Status s = store_.CreateRefreshFamily(family, RefreshTokenHash(refresh_token)); !s.ok()) {
      Log(LogLevel::kError, "refresh_family_create_failed", {{"client_id", client.client_id}});
      return ServerError(s);
    }
  }

  PersonTokenRequest person;
  person.client_id = client.client_id;
  person.user_id = grant.user_id;
  person.scope = scope.value();
  person.roles = grant.roles;
  person.amr = grant.amr;
  person.auth_time_s = grant.auth_time_s;
  person.fhir_user = grant.fhir_user;
  person.patient = grant.patient;
  person.session_id = session_id;
  person.not_after_s = grant.auth_time_s + config_.session_max_lifetime_s;
  Result<TokenIssuer::Issued> issued = issuer_.IssueForPerson(person);
  if (!issued.ok()) {
    Log(LogLevel::kError, "token_issue_failed", {{"client_id", client.client_id}});
    return ServerError(issued.status());
  }
  // A replay that came in while this token was being made found no jti to revoke: do it
  // here, and give nothing out.
  if (codes_.RecordAccessToken(code_text, issued->jti, issued->expires_at_s)) {
    LogIfFailed(guard_.RevokeAccessToken(issued->jti, issued->expires_at_s),
                "code_reuse_revoke_failed");
    LogIfFailed(guard_.RevokeFamily(session_id), "code_reuse_revoke_failed");
    LogDenied("code_reused_during_redemption", client.client_id);
    return InvalidGrant("the authorization code is invalid or expired");
  }
  std::string id_token;
  if (scope->Contains("openid")) {
    IdTokenRequest id;
    id.client_id = client.client_id;
    id.user_id = grant.user_id;
    id.nonce = grant.nonce;
    id.auth_time_s = grant.auth_time_s;
    id.amr = grant.amr;
    // SMART App Launch 2.x: fhirUser in the ID token only with the fhirUser scope.
    if (scope->Contains("fhirUser")) id.fhir_user = grant.fhir_user;
    Result<std::string> signed_id = issuer_.IssueIdToken(id);
    if (!signed_id.ok()) return ServerError(signed_id.status());
    id_token = std::move(signed_id).value();
  }
  Emit(SecurityEventType::kTokenIssued, request, client.client_id, grant.user_id,
       "authorization_code");
  return Json(200, TokenBody(issued.value(), refresh_token, id_token, grant.patient));
}

EndpointResponse OAuthEndpoints::RefreshTokenGrant(const EndpointRequest& request,
                                                   const Form& form) {
  std::optional<std::string_view> token = form.Get("refresh_token");
  if (!token) return InvalidRequest("refresh_token is required");
  std::optional<ScopeSet> requested;
  if (std::optional<std::string_view> s = form.Get("scope")) {
    Result<ScopeSet> parsed = ScopeSet::Parse(*s);
    // The parser's message names positions and rules, never the submitted text.
    if (!parsed.ok()) return Error(400, "invalid_scope", parsed.status().message());
    requested = std::move(parsed).value();
  }

  storage::ClientRecord client;
  EndpointResponse error;
  if (!Authenticate(request, form, client, error)) return error;
  if (token->size() > kMaxRefreshTokenBytes) {
    return InvalidGrant("the refresh token is invalid or expired");
  }

  // Checks that must not consume the token: a refresh token presented by another client
  // (RFC 6749 §6: "bound to the client") and a scope beyond the original (§6) leave the
  // rightful client's token usable.
  const std::string old_hash = RefreshTokenHash(*token);
  Result<std::optional<storage::RefreshFamily>> current = store_.FindRefreshToken(old_hash);
  if (!current.ok()) return ServerError(current.status());
  if (current->has_value()) {
    if ((*current)->client_id != client.client_id) {
      LogDenied("refresh_client_mismatch", client.client_id);
      return InvalidGrant("the refresh token is invalid or expired");
    }
    if (requested) {
      Result<ScopeSet> original = ScopeSet::Parse((*current)->scope);
      if (!original.ok() || !original->Covers(*requested)) {
        LogDenied("refresh_scope_exceeds", client.client_id);
        return Error(400, "invalid_scope", "the requested scope exceeds the original grant");
      }
    }
  }

  const std::string new_token = crypto::RandomToken(32);
  Result<storage::RotateResult> rotated =
      store_.RotateRefreshToken(old_hash, RefreshTokenHash(new_token), clock_.NowMillis(),
                                config_.session_idle_timeout_s * 1000);
  if (!rotated.ok()) return ServerError(rotated.status());
  const storage::RefreshFamily& family = rotated->family;
  switch (rotated->outcome) {
    case storage::RotateOutcome::kRotated:
      break;
    case storage::RotateOutcome::kReused:
      // RFC 9700 §4.14.2: the old token was stolen or replayed; end the session and
      // every access token of it, now.
      LogIfFailed(guard_.RevokeFamily(family.family_id), "refresh_reuse_revoke_failed");
      Emit(SecurityEventType::kRefreshTokenReuse, request, client.client_id, family.user_id,
           "rotated_token_presented");
      return InvalidGrant("the refresh token is invalid or expired");
    case storage::RotateOutcome::kExpired:
      // Automatic logoff: the store revoked the family; the guard ends its access tokens.
      LogIfFailed(guard_.RevokeFamily(family.family_id), "session_expiry_revoke_failed");
      Emit(SecurityEventType::kSessionExpired, request, client.client_id, family.user_id,
           "idle_or_lifetime");
      return InvalidGrant("the refresh token is invalid or expired");
    case storage::RotateOutcome::kRevoked:
    case storage::RotateOutcome::kUnknown:
      LogDenied("refresh_unknown_or_revoked", client.client_id);
      return InvalidGrant("the refresh token is invalid or expired");
  }

  auto end_session = [&](std::string_view reason) {
    LogIfFailed(guard_.RevokeFamily(family.family_id), "session_revoke_failed");
    LogDenied(reason, client.client_id);
    return InvalidGrant("the refresh token is invalid or expired");
  };
  // Only a race with the pre-check above gets here with another client's family.
  if (family.client_id != client.client_id) return end_session("refresh_client_mismatch");
  storage::UserRecord user;
  Result<bool> usable = UserUsable(family.user_id, family.auth_time_ms, &user);
  if (!usable.ok()) return ServerError(usable.status());
  if (!usable.value()) return end_session("user_unusable");
  Result<ScopeSet> original = ScopeSet::Parse(family.scope);
  if (!original.ok() || original->empty()) return end_session("family_scope_invalid");
  if (requested && !original->Covers(*requested)) return end_session("refresh_scope_exceeds");
  const ScopeSet& granted = requested ? *requested : original.value();
  if (granted.empty()) return end_session("refresh_scope_empty");
  // The store rotated only a live family; within its last second no token is left to give.
  const int64_t session_end_s = family.expires_ms / 1000;
  if (session_end_s <= clock_.NowSeconds()) return end_session("session_ended");

  PersonTokenRequest person;
  person.client_id = client.client_id;
  person.user_id = family.user_id;
  person.scope = granted;
  person.roles = SplitRoles(user.roles);
  person.amr = BuiltinAmr();
  person.auth_time_s = family.auth_time_ms / 1000;
  person.fhir_user = user.fhir_user;
  person.patient = PatientOf(user, granted);
  person.session_id = family.family_id;
  person.not_after_s = session_end_s;
  Result<TokenIssuer::Issued> issued = issuer_.IssueForPerson(person);
  if (!issued.ok()) {
    Log(LogLevel::kError, "token_issue_failed", {{"client_id", client.client_id}});
    return ServerError(issued.status());
  }
  Emit(SecurityEventType::kTokenRefreshed, request, client.client_id, family.user_id,
       "refresh_token");
  return Json(200, TokenBody(issued.value(), new_token, {}, person.patient));
}

EndpointResponse OAuthEndpoints::ClientCredentialsGrant(const EndpointRequest& request,
                                                        const Form& form) {
  std::optional<ScopeSet> requested;
  if (std::optional<std::string_view> s = form.Get("scope")) {
    Result<ScopeSet> parsed = ScopeSet::Parse(*s);
    if (!parsed.ok()) {
      LogDenied("malformed_scope");
      return Error(400, "invalid_scope", parsed.status().message());
    }
    // This grant has no user and no patient (RFC 6749 §4.4; SMART Backend Services).
    if (parsed->HasContext(ScopeContext::kPatient) || parsed->HasContext(ScopeContext::kUser)) {
      LogDenied("scope_context");
      return Error(400, "invalid_scope", "client credentials grant only system/ scopes");
    }
    requested = std::move(parsed).value();
  }

  storage::ClientRecord client;
  EndpointResponse error;
  if (!Authenticate(request, form, client, error)) return error;
  if (client.auth_method == kAuthMethodNone) {
    LogDenied("public_client_credentials", client.client_id);
    return Error(400, "unauthorized_client", "a public client may not use client credentials");
  }
  Result<ScopeSet> registered = ScopeSet::Parse(client.scope);
  if (!registered.ok()) {
    Log(LogLevel::kError, "client_registered_scope_invalid", {{"client_id", client.client_id}});
    return ServerError(Internal("registered scope invalid"));
  }
  if (!registered->HasContext(ScopeContext::kSystem)) {
    LogDenied("no_system_scope", client.client_id);
    return Error(400, "unauthorized_client",
                 "the client is not registered for the client credentials grant");
  }
  // RFC 6749 §3.3: granted = requested if covered, else the registered (system/) scope.
  ScopeSet granted;
  if (requested) {
    if (!registered->Covers(*requested)) {
      LogDenied("scope_not_registered", client.client_id);
      return Error(400, "invalid_scope",
                   "the requested scope exceeds the client's registered scope");
    }
    granted = std::move(*requested);
  } else {
    Result<ScopeSet> system = SystemPart(registered.value());
    if (!system.ok()) return ServerError(Internal("registered scope invalid"));
    granted = std::move(system).value();
  }

  Result<TokenIssuer::Issued> issued =
      issuer_.Issue(client.client_id, granted, SplitRoles(client.roles));
  if (!issued.ok()) {
    Log(LogLevel::kError, "token_issue_failed", {{"client_id", client.client_id}});
    return ServerError(issued.status());
  }
  Emit(SecurityEventType::kTokenIssued, request, client.client_id, {}, "client_credentials");
  return Json(200, TokenBody(issued.value(), {}, {}, {}));
}

EndpointResponse OAuthEndpoints::Revoke(const EndpointRequest& request) {
  Form form;
  EndpointResponse error;
  if (!ParseForm(request, form, error)) return error;
  std::optional<std::string_view> token = form.Get("token");
  if (!token) return InvalidRequest("token is required");
  storage::ClientRecord client;
  if (!Authenticate(request, form, client, error)) return error;

  EndpointResponse ok;
  ok.status = 200;
  NoStore(ok);
  auto not_yours = [&] {
    // RFC 7009 §2.1: the token must have been issued to the requesting client.
    LogDenied("revoke_other_client", client.client_id);
    return Error(400, "unauthorized_client", "the token was not issued to this client");
  };

  // token_type_hint (§2.1) only orders a search; both kinds are always tried. Refresh
  // tokens are opaque base64url, access tokens JWS with dots, so the shape decides.
  if (token->find('.') == std::string_view::npos) {
    if (token->size() > kMaxRefreshTokenBytes) return ok;
    Result<std::optional<storage::RefreshFamily>> family =
        store_.FindRefreshToken(RefreshTokenHash(*token));
    if (!family.ok()) return ServerError(family.status());
    if (!family->has_value()) return ok;  // §2.2: unknown tokens are not an error
    if ((*family)->client_id != client.client_id) return not_yours();
    if (Status s = guard_.RevokeFamily((*family)->family_id); !s.ok()) return ServerError(s);
    Emit(SecurityEventType::kTokenRevoked, request, client.client_id, (*family)->user_id,
         "refresh_token");
    return ok;
  }
  if (token->size() > kMaxJwtBytes) return ok;
  Result<Principal> principal = verifier_.Verify(*token);
  // Invalid, expired or already revoked: nothing (more) to do (§2.2).
  if (!principal.ok() || !principal->builtin) return ok;
  if (principal->client_id != client.client_id) return not_yours();
  if (Status s = guard_.RevokeAccessToken(principal->jti, principal->expires_at_s); !s.ok()) {
    return ServerError(s);
  }
  // An access token stands for its session: revoking it logs the session out.
  if (!principal->session_id.empty()) {
    if (Status s = guard_.RevokeFamily(principal->session_id); !s.ok()) return ServerError(s);
  }
  Emit(SecurityEventType::kTokenRevoked, request, client.client_id,
       principal->kind == PrincipalKind::kPerson ? principal->subject : std::string(),
       "access_token");
  return ok;
}

EndpointResponse OAuthEndpoints::Introspect(const EndpointRequest& request) {
  Form form;
  EndpointResponse error;
  if (!ParseForm(request, form, error)) return error;
  std::optional<std::string_view> token = form.Get("token");
  if (!token) return InvalidRequest("token is required");
  storage::ClientRecord client;
  if (!Authenticate(request, form, client, error)) return error;
  // RFC 7662 §4: introspection tells whether a token works, so only clients that prove a
  // secret or a key may ask; a public client's id is no proof.
  if (client.auth_method == kAuthMethodNone) {
    Emit(SecurityEventType::kClientAuthFailure, request, client.client_id, {},
         "public_client_introspection");
    return InvalidClient(false);
  }

  const std::string inactive = R"({"active":false})";
  if (token->find('.') == std::string_view::npos) {
    if (token->size() > kMaxRefreshTokenBytes) return Json(200, inactive);
    Result<std::optional<storage::RefreshFamily>> found =
        store_.FindRefreshToken(RefreshTokenHash(*token));
    if (!found.ok()) return ServerError(found.status());
    if (!found->has_value()) return Json(200, inactive);
    const storage::RefreshFamily& family = **found;
    const int64_t now_ms = clock_.NowMillis();
    if (family.revoked || now_ms >= family.expires_ms ||
        now_ms >= family.last_used_ms + config_.session_idle_timeout_s * 1000) {
      return Json(200, inactive);
    }
    Result<bool> usable = UserUsable(family.user_id, family.auth_time_ms, nullptr);
    if (!usable.ok()) return ServerError(usable.status());
    if (!usable.value()) return Json(200, inactive);
    boost::json::object body;
    body["active"] = true;
    body["scope"] = family.scope;
    body["client_id"] = family.client_id;
    body["sub"] = family.user_id;
    body["exp"] = family.expires_ms / 1000;
    body["token_type"] = "refresh_token";
    body["iss"] = issuer_url_;
    return Json(200, boost::json::serialize(body));
  }
  if (token->size() > kMaxJwtBytes) return Json(200, inactive);
  // The verifier applies the SessionGuard: revoked tokens and ended sessions are inactive.
  Result<Principal> principal = verifier_.Verify(*token);
  if (!principal.ok() || !principal->builtin) return Json(200, inactive);
  boost::json::object body;
  body["active"] = true;
  body["scope"] = principal->scopes.ToString();
  body["client_id"] = principal->client_id;
  body["sub"] = principal->subject;
  body["exp"] = principal->expires_at_s;
  if (std::optional<int64_t> iat = VerifiedIat(*token)) body["iat"] = *iat;
  body["token_type"] = "Bearer";
  body["iss"] = principal->issuer;
  body["aud"] = issuer_.audience();
  return Json(200, boost::json::serialize(body));
}

std::string OAuthEndpoints::OpenIdConfigurationJson() const {
  boost::json::object doc;
  doc["issuer"] = issuer_url_;
  doc["authorization_endpoint"] = issuer_url_ + "/oauth2/authorize";
  doc["token_endpoint"] = token_endpoint_;
  doc["jwks_uri"] = issuer_url_ + "/oauth2/jwks";
  doc["revocation_endpoint"] = issuer_url_ + "/oauth2/revoke";
  doc["introspection_endpoint"] = issuer_url_ + "/oauth2/introspect";
  doc["response_types_supported"] = Strings({"code"});
  doc["response_modes_supported"] = Strings({"query"});
  doc["grant_types_supported"] =
      Strings({"authorization_code", "refresh_token", "client_credentials"});
  doc["code_challenge_methods_supported"] = Strings({"S256"});
  doc["token_endpoint_auth_methods_supported"] =
      Strings({"client_secret_basic", "private_key_jwt", "none"});
  doc["token_endpoint_auth_signing_alg_values_supported"] = Strings({"RS256", "ES256", "EdDSA"});
  doc["revocation_endpoint_auth_methods_supported"] =
      Strings({"client_secret_basic", "private_key_jwt", "none"});
  doc["introspection_endpoint_auth_methods_supported"] =
      Strings({"client_secret_basic", "private_key_jwt"});
  doc["id_token_signing_alg_values_supported"] = Strings({"ES256"});
  doc["subject_types_supported"] = Strings({"public"});
  doc["scopes_supported"] = Strings({"openid", "fhirUser", "offline_access", "online_access",
                                     "launch/patient", "patient/*.rs", "patient/*.cruds",
                                     "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds"});
  doc["claims_supported"] =
      Strings({"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "fhirUser"});
  // RFC 9207: the authorization response carries iss.
  doc["authorization_response_iss_parameter_supported"] = true;
  return boost::json::serialize(doc);
}

std::string OAuthEndpoints::SmartConfigurationJson() const {
  boost::json::object doc;
  doc["issuer"] = issuer_url_;
  doc["jwks_uri"] = issuer_url_ + "/oauth2/jwks";
  doc["authorization_endpoint"] = issuer_url_ + "/oauth2/authorize";
  doc["token_endpoint"] = token_endpoint_;
  doc["introspection_endpoint"] = issuer_url_ + "/oauth2/introspect";
  doc["revocation_endpoint"] = issuer_url_ + "/oauth2/revoke";
  doc["grant_types_supported"] =
      Strings({"authorization_code", "refresh_token", "client_credentials"});
  doc["token_endpoint_auth_methods_supported"] =
      Strings({"client_secret_basic", "private_key_jwt", "none"});
  doc["token_endpoint_auth_signing_alg_values_supported"] = Strings({"RS256", "ES256", "EdDSA"});
  doc["scopes_supported"] = Strings({"openid", "fhirUser", "offline_access", "online_access",
                                     "launch/patient", "patient/*.rs", "patient/*.cruds",
                                     "user/*.rs", "user/*.cruds", "system/*.rs", "system/*.cruds"});
  doc["response_types_supported"] = Strings({"code"});
  doc["code_challenge_methods_supported"] = Strings({"S256"});
  // Only what works: no EHR launch, no POST to the authorization endpoint.
  doc["capabilities"] =
      Strings({"launch-standalone", "client-public", "client-confidential-symmetric",
               "client-confidential-asymmetric", "context-standalone-patient", "permission-offline",
               "permission-online", "permission-patient", "permission-user", "permission-v1",
               "permission-v2", "sso-openid-connect"});
  return boost::json::serialize(doc);
}

}  // namespace phigate::auth
