// Principal: who is calling, as established by a verified access token. The authorization
// issue intersects its roles, scopes and compartment (fhir_user, patient) with policy.
// Thread-safety: a value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "auth/scope.h"

namespace phigate::auth {

enum class PrincipalKind {
  kPerson,  // a user authenticated interactively (built-in login or an OpenID provider)
  kSystem,  // a client acting for itself (client credentials, SMART Backend Services)
};

struct Principal {
  PrincipalKind kind = PrincipalKind::kSystem;
  std::string issuer;     // the token's iss
  bool builtin = false;   // issued by phigate's own authorization server
  std::string subject;    // sub: a user id (person) or the client id (system)
  std::string client_id;  // client_id (RFC 9068 §2.2), or azp for an external provider
  std::vector<std::string> roles;
  ScopeSet scopes;
  std::vector<std::string> amr;  // authentication methods (RFC 8176), people only
  bool mfa = false;              // amr names a second factor the issuer's rules accept
  int64_t auth_time_s = 0;       // when the person authenticated; 0 for systems
  std::string fhir_user;         // SMART fhirUser, e.g. "Practitioner/123"; may be empty
  std::string patient;           // SMART launch patient id for patient/ scopes; may be empty
  std::string purpose_of_use;    // the token's purpose_of_use claim (a v3 PurposeOfUse code)
  std::string session_id;        // built-in: the refresh family ("sid"); may be empty
  std::string jti;
  int64_t expires_at_s = 0;  // exp
};

}  // namespace phigate::auth
