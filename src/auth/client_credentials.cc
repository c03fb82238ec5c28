#include "auth/client_credentials.h"

#include <boost/json.hpp>
#include <map>
#include <optional>
#include <utility>

#include "auth/scope.h"
#include "core/ascii.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/url.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"

namespace phigate::auth {

namespace {

constexpr std::string_view kFormUrlEncoded = "application/x-www-form-urlencoded";

TokenEndpointResult Error(int http_status, std::string_view error, std::string_view description) {
  // RFC 6749 §5.2. The description is fixed text: never echo submitted values.
  boost::json::object body;
  body["error"] = error;
  body["error_description"] = description;
  return {http_status, boost::json::serialize(body), false};
}

TokenEndpointResult InvalidRequest(std::string_view description) {
  return Error(400, "invalid_request", description);
}

TokenEndpointResult InvalidClient() {
  TokenEndpointResult r = Error(401, "invalid_client", "client authentication failed");
  r.www_authenticate_basic = true;
  return r;
}

TokenEndpointResult ServerError() {
  return Error(500, "server_error", "the token could not be issued");
}

void LogDenied(std::string_view reason) {
  // No client id here: for an unknown client it is an arbitrary submitted value.
  Log(LogLevel::kInfo, "token_request_denied", {{"reason", reason}});
}

// Media type without parameters (RFC 9110 §8.3.1: case-insensitive).
bool IsFormUrlEncoded(std::string_view content_type) {
  return EqualsIgnoreCase(TrimOws(content_type.substr(0, content_type.find(';'))), kFormUrlEncoded);
}

struct BasicCredentials {
  std::string client_id;
  std::string client_secret;
};

// RFC 7617 §2 credentials, whose two halves RFC 6749 §2.3.1 form-urlencodes first.
std::optional<BasicCredentials> ParseBasic(std::string_view header) {
  header = TrimOws(header);
  constexpr std::string_view kScheme = "Basic";
  // RFC 9110 §11.1: the scheme is case-insensitive; at least one space follows it.
  if (header.size() <= kScheme.size() ||
      !EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme) ||
      header[kScheme.size()] != ' ') {
    return std::nullopt;
  }
  std::optional<std::string> decoded = Base64Decode(TrimOws(header.substr(kScheme.size())));
  if (!decoded) return std::nullopt;
  // The user-id cannot contain ':' (RFC 7617 §2); the secret may.
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  std::optional<std::string> id = PercentDecode(std::string_view(*decoded).substr(0, colon), true);
  std::optional<std::string> secret =
      PercentDecode(std::string_view(*decoded).substr(colon + 1), true);
  if (!id || !secret || id->empty() || secret->empty()) return std::nullopt;
  if (id->size() > kMaxClientIdBytes || secret->size() > kMaxClientSecretBytes) {
    return std::nullopt;
  }
  return BasicCredentials{std::move(*id), std::move(*secret)};
}

// An Argon2id hash of a random secret nobody knows, made once, with the same parameters
// as real client hashes: verifying against it costs what a real check costs.
const std::string& DummyHash() {
  static const std::string hash = [] {
    Result<std::string> h = crypto::HashPassword(crypto::RandomToken(32));
    if (!h.ok()) {
      Log(LogLevel::kError, "dummy_hash_failed");
      return std::string();
    }
    return std::move(h).value();
  }();
  return hash;
}

std::string SuccessBody(const TokenIssuer::Issued& issued) {
  // RFC 6749 §5.1; the "Bearer" token type is RFC 6750 §6.1.1.
  boost::json::object body;
  body["access_token"] = issued.access_token;
  body["token_type"] = "Bearer";
  body["expires_in"] = issued.expires_in;
  body["scope"] = issued.scope;
  return boost::json::serialize(body);
}

}  // namespace

TokenEndpointResult HandleTokenRequest(storage::Store& store, const TokenIssuer& issuer,
                                       std::string_view authorization_header,
                                       std::string_view content_type, std::string_view body) {
  // 1. Syntax, cheapest first, before any Argon2id work.
  if (body.size() > kMaxTokenRequestBodyBytes) {
    LogDenied("body_too_large");
    return InvalidRequest("the request body is too large");
  }
  if (!IsFormUrlEncoded(content_type)) {
    LogDenied("content_type");
    return InvalidRequest("the content type must be application/x-www-form-urlencoded");
  }
  std::optional<QueryParams> parsed = ParseQuery(body);
  if (!parsed) {
    LogDenied("malformed_body");
    return InvalidRequest("the request body is not valid form encoding");
  }
  std::map<std::string, std::string, std::less<>> params;
  for (auto& [name, value] : *parsed) {
    // RFC 6749 §3.2: parameters MUST NOT be included more than once.
    if (params.contains(name)) {
      LogDenied("duplicate_parameter");
      return InvalidRequest("a request parameter is repeated");
    }
    params.emplace(std::move(name), std::move(value));
  }
  // RFC 6749 §3.2: a parameter sent without a value is treated as omitted.
  auto param = [&params](std::string_view name) -> std::optional<std::string_view> {
    auto it = params.find(name);
    if (it == params.end() || it->second.empty()) return std::nullopt;
    return std::string_view(it->second);
  };

  std::optional<std::string_view> grant_type = param("grant_type");
  if (!grant_type) {
    LogDenied("missing_grant_type");
    return InvalidRequest("grant_type is required");
  }
  if (*grant_type != "client_credentials") {
    LogDenied("unsupported_grant_type");
    return Error(400, "unsupported_grant_type", "only client_credentials is supported");
  }

  std::optional<ScopeSet> requested;
  if (std::optional<std::string_view> scope = param("scope")) {
    Result<ScopeSet> s = ScopeSet::Parse(*scope);
    if (!s.ok()) {
      LogDenied("malformed_scope");
      // The parser's message names positions and rules, never the submitted text.
      return Error(400, "invalid_scope", s.status().message());
    }
    requested = std::move(s).value();
  }

  // 2. Client authentication: client_secret_basic only (RFC 6749 §2.3.1).
  const bool has_authorization = !TrimOws(authorization_header).empty();
  if (param("client_secret") || params.contains("client_assertion")) {
    LogDenied("body_credentials");
    if (has_authorization) {
      return InvalidRequest("use exactly one client authentication method");  // §2.3
    }
    return InvalidClient();
  }
  std::optional<BasicCredentials> credentials = ParseBasic(authorization_header);
  if (!credentials) {
    LogDenied("no_basic_credentials");
    return InvalidClient();
  }
  if (std::optional<std::string_view> body_id = param("client_id");
      body_id && *body_id != credentials->client_id) {
    LogDenied("client_id_mismatch");
    return InvalidRequest("client_id does not match the authenticated client");
  }

  Result<std::optional<storage::ClientRecord>> found = store.GetClient(credentials->client_id);
  if (!found.ok()) {
    Log(LogLevel::kError, "token_client_lookup_failed");
    return ServerError();
  }
  const std::optional<storage::ClientRecord>& client = found.value();
  if (!client) {
    // Same Argon2id cost as a real check, so timing does not reveal the id is unknown.
    (void)crypto::VerifyPassword(DummyHash(), credentials->client_secret);
    LogDenied("unknown_client");
    return InvalidClient();
  }
  // The hash is checked even for a disabled client, for the same timing reason.
  const bool secret_ok = crypto::VerifyPassword(client->secret_hash, credentials->client_secret);
  if (!secret_ok || client->disabled) {
    Log(LogLevel::kInfo, "token_request_denied",
        {{"reason", secret_ok ? "client_disabled" : "wrong_secret"},
         {"client_id", client->client_id}});
    return InvalidClient();
  }

  // 3. Scope: granted = requested if covered, else the registered scope (RFC 6749 §3.3).
  Result<ScopeSet> registered = ScopeSet::Parse(client->scope);
  if (!registered.ok()) {
    Log(LogLevel::kError, "client_registered_scope_invalid", {{"client_id", client->client_id}});
    return ServerError();
  }
  if (requested && !registered->Covers(*requested)) {
    Log(LogLevel::kInfo, "token_request_denied",
        {{"reason", "scope_not_registered"}, {"client_id", client->client_id}});
    return Error(400, "invalid_scope", "the requested scope exceeds the client's registered scope");
  }
  const ScopeSet& granted = requested ? *requested : registered.value();

  Result<TokenIssuer::Issued> issued = issuer.Issue(client->client_id, granted);
  if (!issued.ok()) {
    Log(LogLevel::kError, "token_issue_failed", {{"client_id", client->client_id}});
    return ServerError();
  }
  Log(LogLevel::kInfo, "token_issued", {{"client_id", client->client_id}});
  return {200, SuccessBody(issued.value()), false};
}

}  // namespace phigate::auth
