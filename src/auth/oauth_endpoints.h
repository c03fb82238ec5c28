// The client-facing OAuth 2.0 endpoints of the built-in authorization server, transport
// free (endpoint.h): the token endpoint (RFC 6749 §3.2), revocation (RFC 7009),
// introspection (RFC 7662) and the discovery documents (RFC 8414 / OpenID Connect
// Discovery 1.0 §3, SMART App Launch 2.x "Conformance").
//
// Requests (token, revoke, introspect): POST, Content-Type
// application/x-www-form-urlencoded, body at most kMaxTokenRequestBodyBytes; a parameter
// given twice is invalid_request, an empty value counts as absent and unknown parameters
// are ignored (RFC 6749 §3.2). Clients authenticate as client_auth.h describes. Every
// response carries Cache-Control: no-store and Pragma: no-cache (RFC 6749 §5.1). Errors
// are {"error","error_description"} with fixed text (RFC 6749 §5.2): nothing submitted is
// echoed. invalid_client is 401, with WWW-Authenticate: Basic realm="phigate" unless the
// client tried private_key_jwt (the challenge names the scheme it could have used).
// Cheap syntax checks run before the (deliberately slow) secret check.
//
// Token endpoint grants:
//   - authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6): confidential or public client
//     (public: client_id only, auth method "none"); the code is redeemed once; a second
//     redemption revokes the session the first one created and is invalid_grant.
//     client_id and redirect_uri must equal the authorization request's; code_verifier is
//     required (43-128 unreserved characters) and BASE64URL(SHA256(verifier)) must equal
//     the code_challenge. The user must still be usable (exists, enabled, not reset since
//     the login). Every redemption starts a session with a random id, the access tokens'
//     "sid". With offline_access or online_access in the scope the session is stored as a
//     refresh family with a refresh token (256 bits, stored as hex SHA-256); without, the
//     session lives in memory only: its one access token can still be revoked by jti, and
//     a replayed code still ends it (SessionGuard::RevokeFamily). Both refresh scopes get
//     the same session rules: idle timeout and absolute lifetime (automatic logoff,
//     docs/authentication.md); no access token of a session expires after the session's
//     absolute end. openid in the scope adds an ID token.
//   - refresh_token (RFC 6749 §6): same client authentication; the token rotates on every
//     use (RFC 9700 §4.14.2); a reused token revokes the whole family (and, through the
//     SessionGuard, its access tokens); an expired session is invalid_grant. The family's
//     client must be the authenticated client; the user must still be usable. A scope
//     parameter may narrow the access token; the refresh token keeps the family's scope.
//     Roles and fhirUser are read from the user record at every refresh, so a change of
//     roles takes effect at the next refresh; the patient context is the user's own
//     Patient (when fhirUser is a Patient and the scope has patient/ scopes), since the
//     family record does not keep the launch patient.
//   - client_credentials (RFC 6749 §4.4): client_secret_basic or private_key_jwt; public
//     clients are unauthorized_client. Only system/ scopes: a client registered with
//     redirect URIs may use this grant only if its registered scope has system/ scopes,
//     and the default (no scope parameter) is the registered system/ scopes. Requested
//     patient/ or user/ scopes are invalid_scope. The token carries the client's roles.
//   - anything else (password, implicit, device code, ...): unsupported_grant_type.
//
// Revoke (RFC 7009): client authentication required (public clients by client_id); 200
// with an empty body whether or not the token was known; a refresh token ends its
// session; an access token is revoked by jti and ends its session too (sid). A token
// issued to another client is refused (400 unauthorized_client, RFC 7009 §2.1).
// Introspect (RFC 7662): confidential clients only (a public client is invalid_client);
// {"active":false} for anything not active.
//
// Client authentication costs an Argon2id run for any Basic header, so it is bounded two
// ways: an address with more than AuthConfig::address_max_failures failed client
// authentications within address_window_s gets 429 {"error":"invalid_client",
// "error_description":"too many failed attempts"} with Retry-After (RFC 6749 §5.2 has no
// better code; RFC 6585 §4 for 429), each attempt counted before it runs and given back
// on success; and at most SecretCheckSlots::Process().capacity() secret checks run at once
// in the process: beyond that 503 temporarily_unavailable with Retry-After: 1, at once,
// without waiting (client_auth.h).
//
// Security events: kTokenIssued, kTokenRefreshed, kRefreshTokenReuse, kSessionExpired,
// kTokenRevoked, kClientAuthFailure (client id only when it names a registered client).
//
// Thread-safety: every method is safe from any thread if the collaborators are (they are
// documented to be). All references must outlive this object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/authorization_codes.h"
#include "auth/endpoint.h"
#include "auth/security_events.h"
#include "auth/session_guard.h"
#include "auth/token_issuer.h"
#include "auth/token_verifier.h"
#include "core/clock.h"
#include "core/config.h"
#include "storage/store.h"

namespace phigate::auth {

// Bounds on untrusted input at these endpoints.
inline constexpr size_t kMaxTokenRequestBodyBytes = size_t{8} * 1024;
inline constexpr size_t kMaxCodeBytes = 256;
inline constexpr size_t kMaxRefreshTokenBytes = 256;
inline constexpr size_t kMaxRedirectUriBytes = 2048;

// RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~].
bool IsValidCodeVerifier(std::string_view verifier);
// BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2, S256).
std::string S256Challenge(std::string_view verifier);
// Hex SHA-256: how refresh tokens are stored (storage/store.h).
std::string RefreshTokenHash(std::string_view token);

class OAuthEndpoints {
 public:
  // `issuer` is the authorization server's URL; the endpoints are <issuer>/oauth2/...
  OAuthEndpoints(storage::Store& store, const TokenIssuer& issuer, AuthorizationCodes& codes,
                 SessionGuard& guard, const TokenVerifier& verifier, const Clock& clock,
                 const AuthConfig& config, std::string issuer_url, SecurityEventSink& events);

  EndpointResponse Token(const EndpointRequest& request);
  EndpointResponse Revoke(const EndpointRequest& request);
  EndpointResponse Introspect(const EndpointRequest& request);

  // /.well-known/openid-configuration (RFC 8414 §2, OIDC Discovery §3).
  std::string OpenIdConfigurationJson() const;
  // /fhir/.well-known/smart-configuration (SMART App Launch 2.x).
  std::string SmartConfigurationJson() const;

  const std::string& token_endpoint_url() const { return token_endpoint_; }

 private:
  struct Form;
  EndpointResponse AuthorizationCodeGrant(const EndpointRequest& request, const Form& form);
  EndpointResponse RefreshTokenGrant(const EndpointRequest& request, const Form& form);
  EndpointResponse ClientCredentialsGrant(const EndpointRequest& request, const Form& form);
  // Authenticates, emitting kClientAuthFailure and building the error response on failure.
  bool Authenticate(const EndpointRequest& request, const Form& form, storage::ClientRecord& client,
                    EndpointResponse& error);
  // True if the user exists, is not disabled and was not reset (sessions_valid_after_ms)
  // after `auth_time_ms`; fills `user` when given.
  Result<bool> UserUsable(const std::string& user_id, int64_t auth_time_ms,
                          storage::UserRecord* user);
  void Emit(SecurityEventType type, const EndpointRequest& request, std::string_view client_id,
            std::string_view user_id, std::string_view reason);
  // The per-address failure window of client authentication (see above): counts an
  // attempt before it runs; the seconds to wait if the address is throttled (nothing
  // counted), else nullopt and `at_ms` the time to give back on success.
  std::optional<int64_t> ReserveClientAttempt(std::string_view address, int64_t& at_ms);
  void ReleaseClientAttempt(std::string_view address, int64_t at_ms);

  storage::Store& store_;
  const TokenIssuer& issuer_;
  AuthorizationCodes& codes_;
  SessionGuard& guard_;
  const TokenVerifier& verifier_;
  const Clock& clock_;
  AuthConfig config_;  // a copy whose issuer is issuer_url (client assertion audience)
  std::string issuer_url_;
  std::string token_endpoint_;
  SecurityEventSink& events_;

  std::mutex throttle_mu_;
  // address -> times (ms) of its recent client authentication failures (and attempts in
  // progress), oldest first; guarded by throttle_mu_.
  std::unordered_map<std::string, std::deque<int64_t>> client_failures_;
};

}  // namespace phigate::auth
