// Registration of OAuth 2.0 clients (RFC 6749 §2) of the built-in authorization server:
//   - confidential clients with a secret (client_secret_basic): the server generates both
//     halves of the credential, a client_id of 128 random bits and a client_secret of 256
//     random bits (so secrets are never weak or reused), and stores only the secret's
//     Argon2id hash. The secret is returned once, to be shown once;
//   - confidential clients with keys (private_key_jwt, RFC 7523; SMART Backend Services):
//     the client's public JWKS is registered; no secret exists;
//   - public apps (auth method "none", RFC 6749 §2.1): no secret, PKCE only, and only the
//     authorization code and refresh grants; they need a redirect URI.
// Redirect URIs (RFC 6749 §3.1.2, RFC 8252 §7.3, RFC 9700 §4.1.3): absolute, no fragment,
// https://, or http:// to a loopback host (127.0.0.1, [::1] or localhost) with any port;
// no userinfo, no whitespace or control characters; matched exactly at authorization.
// Scope: a client with redirect URIs may register patient/, user/ and system/ scopes plus
// openid, fhirUser, offline_access, online_access (a public app: no system/ scopes, as it
// cannot use client credentials); a client without redirect URIs must register at least
// one system/ scope and no patient/ or user/ scope (it can only use client credentials).
//
// Thread-safety: safe from any thread if `store` is.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "storage/store.h"

namespace phigate::auth {

inline constexpr size_t kMaxClientNameChars = 200;
inline constexpr size_t kMaxRedirectUris = 16;
inline constexpr size_t kMaxRegisteredRedirectUriBytes = 2048;

struct ClientRegistration {
  std::string name;   // 1..kMaxClientNameChars printable ASCII characters (0x20-0x7E)
  std::string scope;  // parsed by ScopeSet::Parse; stored in ScopeSet::ToString() form
  std::string roles;  // "" or "r1,r2" (auth/roles.h)
  std::string jwks;   // non-empty: private_key_jwt with these public keys
  std::vector<std::string> redirect_uris;
  bool is_public = false;    // auth method "none"; requires redirect_uris; excludes jwks
  bool third_party = false;  // a business associate: no PHI without an active BAA
};

struct NewClient {
  std::string client_id;
  std::string client_secret;  // empty unless auth_method is client_secret_basic
  std::string auth_method;    // "client_secret_basic" | "private_key_jwt" | "none"
};

// The name is ASCII only, so that a name shown to an administrator cannot hide
// bidirectional overrides, control characters or look-alike letters. Errors:
// kInvalidArgument for bad input (the message names the rule, never key material);
// storage errors as the store reports them.
Result<NewClient> CreateClient(storage::Store& store, const ClientRegistration& registration,
                               const Clock& clock);
// A secret client for the client credentials grant (system/ scopes), no roles.
Result<NewClient> CreateClient(storage::Store& store, std::string_view name, std::string_view scope,
                               const Clock& clock);

// The redirect URI rules above; kInvalidArgument naming the rule.
Status ValidateRedirectUri(std::string_view uri);

}  // namespace phigate::auth
