#include "auth/client_registry.h"

#include <algorithm>
#include <utility>

#include "auth/client_auth.h"
#include "auth/jwk.h"
#include "auth/roles.h"
#include "auth/scope.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"

namespace phigate::auth {

namespace {

bool IsPrintableAscii(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u <= 0x7E;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// RFC 8252 §7.3: loopback redirects may use any port; the host is an IP literal or
// "localhost" (docs/authentication.md allows both).
bool IsLoopbackAuthority(std::string_view authority) {
  for (std::string_view host : {"127.0.0.1", "[::1]", "localhost"}) {
    if (!authority.starts_with(host)) continue;
    std::string_view rest = authority.substr(host.size());
    if (rest.empty()) return true;
    if (rest.front() != ':') continue;
    rest.remove_prefix(1);
    return !rest.empty() && rest.size() <= 5 && std::all_of(rest.begin(), rest.end(), IsDigit);
  }
  return false;
}

}  // namespace

Status ValidateRedirectUri(std::string_view uri) {
  if (uri.empty() || uri.size() > kMaxRegisteredRedirectUriBytes) {
    return InvalidArgument("a redirect URI must be 1 to 2048 characters");
  }
  // Space-free too: the store keeps the URIs space-separated.
  if (!std::all_of(uri.begin(), uri.end(),
                   [](char c) { return IsPrintableAscii(c) && c != ' '; })) {
    return InvalidArgument("a redirect URI must be printable ASCII without spaces");
  }
  // RFC 6749 §3.1.2: "MUST NOT include a fragment component".
  if (uri.find('#') != std::string_view::npos) {
    return InvalidArgument("a redirect URI must not have a fragment");
  }
  bool https = false;
  std::string_view rest;
  if (uri.starts_with("https://")) {
    https = true;
    rest = uri.substr(8);
  } else if (uri.starts_with("http://")) {
    rest = uri.substr(7);
  } else {
    return InvalidArgument("a redirect URI must be an absolute https:// (or loopback http://) URI");
  }
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
  if (authority.empty()) return InvalidArgument("a redirect URI must name a host");
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument("a redirect URI must not carry user information");
  }
  if (!https && !IsLoopbackAuthority(authority)) {
    return InvalidArgument(
        "an http:// redirect URI must be a loopback address (127.0.0.1, [::1] or localhost)");
  }
  return Status::Ok();
}

Result<NewClient> CreateClient(storage::Store& store, const ClientRegistration& registration,
                               const Clock& clock) {
  const std::string& name = registration.name;
  if (name.empty() || name.size() > kMaxClientNameChars) {
    return InvalidArgument("the client name must be 1 to 200 characters");
  }
  if (!std::all_of(name.begin(), name.end(), IsPrintableAscii)) {
    return InvalidArgument("the client name must be printable ASCII characters");
  }
  if (registration.is_public && !registration.jwks.empty()) {
    return InvalidArgument("a public client has no keys: use either --public or --jwks-file");
  }
  if (registration.is_public && registration.redirect_uris.empty()) {
    return InvalidArgument("a public client needs at least one redirect URI");
  }
  if (registration.redirect_uris.size() > kMaxRedirectUris) {
    return InvalidArgument("at most 16 redirect URIs");
  }
  std::string redirect_uris;
  for (const std::string& uri : registration.redirect_uris) {
    RETURN_IF_ERROR(ValidateRedirectUri(uri));
    if (std::count(registration.redirect_uris.begin(), registration.redirect_uris.end(), uri) > 1) {
      return InvalidArgument("a redirect URI is repeated");
    }
    if (!redirect_uris.empty()) redirect_uris += ' ';
    redirect_uris += uri;
  }
  const bool is_app = !registration.redirect_uris.empty();

  ASSIGN_OR_RETURN(ScopeSet scopes, ScopeSet::Parse(registration.scope));
  if (is_app) {
    if (!scopes.GrantsAnyInteraction()) {
      return InvalidArgument(
          "the scope must include at least one patient/, user/ or system/ scope");
    }
    if (registration.is_public && scopes.HasContext(ScopeContext::kSystem)) {
      return InvalidArgument("a public client cannot have system/ scopes (no client credentials)");
    }
  } else {
    if (!scopes.HasContext(ScopeContext::kSystem)) {
      return InvalidArgument("the scope must include at least one system/ scope");
    }
    if (scopes.HasContext(ScopeContext::kPatient) || scopes.HasContext(ScopeContext::kUser)) {
      return InvalidArgument(
          "patient/ and user/ scopes need a redirect URI (authorization code flow)");
    }
    // Other tokens (openid, offline_access, ...) are kept as today: they grant nothing.
  }

  std::string roles;
  if (!registration.roles.empty()) {
    ASSIGN_OR_RETURN(std::vector<std::string> parsed, ParseRoles(registration.roles));
    roles = JoinRoles(parsed);
  }

  NewClient created;
  created.client_id = crypto::RandomToken(16);
  storage::ClientRecord record;
  record.client_id = created.client_id;
  record.name = name;
  record.scope = scopes.ToString();
  record.created_ms = clock.NowMillis();
  record.disabled = false;
  record.roles = std::move(roles);
  record.redirect_uris = std::move(redirect_uris);
  record.third_party = registration.third_party;
  if (!registration.jwks.empty()) {
    ASSIGN_OR_RETURN(JwkSet keys, ParseJwks(registration.jwks));
    if (keys.size() == 0) {
      return InvalidArgument("the JWKS has no usable RS256, ES256 or EdDSA signing key");
    }
    record.auth_method = std::string(kAuthMethodPrivateKeyJwt);
    record.jwks = registration.jwks;
  } else if (registration.is_public) {
    record.auth_method = std::string(kAuthMethodNone);
  } else {
    record.auth_method = std::string(kAuthMethodSecretBasic);
    created.client_secret = crypto::RandomToken(32);
    ASSIGN_OR_RETURN(record.secret_hash, crypto::HashPassword(created.client_secret));
  }
  created.auth_method = record.auth_method;
  RETURN_IF_ERROR(store.PutClient(record));
  Log(LogLevel::kInfo, "client_created",
      {{"client_id", created.client_id}, {"auth_method", created.auth_method}});
  return created;
}

Result<NewClient> CreateClient(storage::Store& store, std::string_view name, std::string_view scope,
                               const Clock& clock) {
  ClientRegistration registration;
  registration.name = std::string(name);
  registration.scope = std::string(scope);
  return CreateClient(store, registration, clock);
}

}  // namespace phigate::auth
