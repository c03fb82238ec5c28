// The OAuth 2.0 token endpoint for the client credentials grant (RFC 6749 §4.4),
// transport-free: the HTTP layer passes the Authorization and Content-Type header values
// and the body, and writes back the status, JSON body and (on 401) a Basic challenge.
//
// Rules:
//   - Content-Type application/x-www-form-urlencoded (RFC 6749 §4.4.2), else 400
//     invalid_request; a parameter given twice is invalid_request, an empty value counts
//     as absent and unknown parameters are ignored (§3.2).
//   - grant_type=client_credentials only, else 400 unsupported_grant_type (§5.2).
//   - Client authentication by HTTP Basic only (client_secret_basic, §2.3.1): id and
//     secret are form-urlencoded inside the Basic credentials and are decoded. Secrets in
//     the body (client_secret_post) are refused: 401 invalid_client without Basic, and
//     400 invalid_request with it (§2.3: one method per request).
//   - Unknown client, disabled client or wrong secret: 401 invalid_client with
//     WWW-Authenticate: Basic (§5.2). Argon2id runs against a dummy hash for an unknown
//     client so that response time does not reveal which client ids exist.
//   - scope (§3.3) is optional: when present, its permissions must be covered by the
//     client's registered scope (else 400 invalid_scope) and are what is granted; when
//     absent, the registered scope is granted. The response always carries "scope".
//   - Success: 200 {"access_token","token_type":"Bearer","expires_in","scope"} (§5.1).
// Error bodies are {"error","error_description"} with fixed text: nothing submitted is
// echoed. Cheap syntax checks run before the (deliberately slow) secret check.
//
// Thread-safety: safe from any thread if `store` is (see storage/store.h).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "auth/token_issuer.h"
#include "storage/store.h"

namespace phigate::auth {

// Bounds on untrusted input at the token endpoint.
inline constexpr size_t kMaxTokenRequestBodyBytes = 8 * 1024;
inline constexpr size_t kMaxClientIdBytes = 256;
inline constexpr size_t kMaxClientSecretBytes = 1024;

struct TokenEndpointResult {
  int http_status = 500;
  std::string json_body;
  // The caller must add `WWW-Authenticate: Basic realm="..."` (RFC 6749 §5.2).
  bool www_authenticate_basic = false;
};

TokenEndpointResult HandleTokenRequest(storage::Store& store, const TokenIssuer& issuer,
                                       std::string_view authorization_header,
                                       std::string_view content_type, std::string_view body);

}  // namespace phigate::auth
