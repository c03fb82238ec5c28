// TokenIssuer: mints the JWTs of phigate's own authorization server, signed ES256:
//   - access tokens (RFC 9068 profile of RFC 7519, header typ "at+jwt") for systems
//     (client credentials grant) and for people (authorization code and refresh grants);
//   - OpenID Connect ID tokens (OIDC Core §2, header typ "JWT").
//
// Access token claims (RFC 9068 §2.2): iss, aud (the FHIR audience), sub, client_id, scope,
// jti (128 random bits), iat, exp, and "roles" (always an array, possibly empty).
//   - system: sub = client_id (RFC 9068 §2.2, RFC 6749 §4.4);
//   - person: sub = user id, plus auth_time, amr (RFC 8176, array), sid (the session, i.e.
//     the refresh family), fhirUser (absolute: <issuer>/fhir/<relative reference>, SMART
//     App Launch 2.x "fhirUser") and patient (SMART launch context) when set.
// ID token claims (OIDC Core §2): iss, sub, aud = the client id, iat, exp, auth_time, amr,
// nonce when the authorization request had one, fhirUser when given (the caller passes it
// only when the fhirUser scope was granted).
//
// Lifetimes are short because a bearer token cannot be recalled: at most
// kMaxTokenLifetimeS for access tokens (a longer or non-positive configured lifetime is
// clamped into 1..kMaxTokenLifetimeS), kIdTokenLifetimeS for ID tokens.
//
// Thread-safety: immutable after construction; every method is safe from any thread. The
// key and clock must outlive the issuer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/scope.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/signing_key.h"

namespace phigate::auth {

inline constexpr int64_t kMaxTokenLifetimeS = 900;
inline constexpr int64_t kIdTokenLifetimeS = 300;
// RFC 9068 §2.1 access tokens are "at+jwt"; ID tokens are plain "JWT" (OIDC Core §2 does
// not type them), so neither can be used in place of the other (RFC 8725 §3.11).
inline constexpr std::string_view kIdTokenTyp = "JWT";

// What a person's access token says about the person and the session.
struct PersonTokenRequest {
  std::string client_id;
  std::string user_id;
  ScopeSet scope;
  std::vector<std::string> roles;
  std::vector<std::string> amr;  // e.g. {"pwd", "otp", "mfa"}
  int64_t auth_time_s = 0;       // when the person authenticated
  std::string fhir_user;         // relative, e.g. "Practitioner/1"; may be empty
  std::string patient;           // launch patient id; may be empty
  std::string session_id;        // "sid": the refresh family; may be empty
  // 0, or the end of the session (s): exp is never later, so a session's last access token
  // does not outlive the automatic logoff (docs/authentication.md, session_max_lifetime_s).
  int64_t not_after_s = 0;
};

struct IdTokenRequest {
  std::string client_id;  // aud
  std::string user_id;    // sub
  std::string nonce;      // may be empty (then no nonce claim)
  int64_t auth_time_s = 0;
  std::vector<std::string> amr;
  std::string fhir_user;  // relative; empty unless the fhirUser scope was granted
};

class TokenIssuer {
 public:
  // `issuer` is the authorization server's URL (iss); `audience` the FHIR base URL (aud of
  // access tokens).
  TokenIssuer(const crypto::SigningKey& key, std::string issuer, std::string audience,
              int64_t system_lifetime_s, int64_t person_lifetime_s, const Clock& clock);

  struct Issued {
    std::string access_token;
    int64_t expires_in = 0;  // seconds (RFC 6749 §5.1)
    std::string scope;       // the granted scope string
    std::string jti;
    int64_t expires_at_s = 0;  // exp
  };

  // A system's token (client credentials). kInvalidArgument if client_id or scope is empty.
  Result<Issued> Issue(std::string_view client_id, const ScopeSet& scope,
                       const std::vector<std::string>& roles = {}) const;
  // A person's token. kInvalidArgument if client_id, user_id or scope is empty, if user_id
  // equals client_id (RFC 9068 §2.2: that would make it look like a system token), or if
  // not_after_s is set and not after now ("the session has ended").
  Result<Issued> IssueForPerson(const PersonTokenRequest& request) const;
  // kInvalidArgument if client_id or user_id is empty.
  Result<std::string> IssueIdToken(const IdTokenRequest& request) const;

  // The absolute fhirUser URL for a relative reference ("Practitioner/1").
  std::string FhirUserUrl(std::string_view relative) const;

  int64_t lifetime_s() const { return system_lifetime_s_; }  // systems
  int64_t system_lifetime_s() const { return system_lifetime_s_; }
  int64_t person_lifetime_s() const { return person_lifetime_s_; }
  const std::string& issuer() const { return issuer_; }
  const std::string& audience() const { return audience_; }

 private:
  const crypto::SigningKey& key_;
  std::string issuer_;
  std::string audience_;
  int64_t system_lifetime_s_;
  int64_t person_lifetime_s_;
  const Clock& clock_;
};

}  // namespace phigate::auth
