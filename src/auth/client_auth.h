// Client authentication at the token, revocation and introspection endpoints
// (RFC 6749 §2.3), one of:
//   - client_secret_basic (§2.3.1): HTTP Basic whose two halves are form-urlencoded first;
//     the secret is checked with Argon2id, against a dummy hash for an unknown (or
//     secretless) client so that response time does not reveal which client ids exist.
//     Secrets in the body (client_secret_post) are not supported.
//   - private_key_jwt (RFC 7523 §2.2, §3; SMART Backend Services): form parameters
//     client_assertion_type = urn:ietf:params:oauth:client-assertion-type:jwt-bearer and
//     client_assertion, a JWS signed with a key of the client's registered JWKS (found by
//     kid and alg). Claims: iss = sub = the client id; aud the token endpoint URL or the
//     issuer URL (a string, or an array containing one); exp required, not past and at
//     most client_assertion_max_lifetime_s ahead; nbf/iat, if present, not in the future;
//     jti required and single use (Store::RecordAssertionJti, kept until exp + skew). All
//     time comparisons allow AuthConfig::clock_skew_s.
//   - none (public clients, RFC 6749 §2.1): only client_id in the form, no credentials. The
//     caller decides where that is acceptable (authorization_code and refresh_token).
// The client record's auth_method must be the method used. A disabled client never
// authenticates. A client_id form parameter, if sent with Basic or an assertion, must name
// the same client.
//
// Errors (messages are fixed text, never a submitted value):
//   kInvalidArgument  -> RFC 6749 §5.2 invalid_request (more than one method, a malformed
//                        request, client_id mismatch);
//   kUnauthenticated  -> invalid_client (no method, unknown or disabled client, wrong
//                        secret, bad assertion, replayed jti);
//   kUnavailable / kInternal from the store.
//
// client_secret_basic checks take a slot of SecretCheckSlots::Process() for their Argon2id
// run; when none is free the check is not run and kUnavailable ("busy", reason
// "secret_check_busy") is returned at once, so a flood of Basic headers cannot occupy
// every io thread with hashing.
//
// Thread-safety: safe from any thread if `store` is.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "auth/endpoint.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "core/url.h"
#include "storage/store.h"

namespace phigate::auth {

inline constexpr std::string_view kJwtBearerAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
inline constexpr std::string_view kAuthMethodSecretBasic = "client_secret_basic";
inline constexpr std::string_view kAuthMethodPrivateKeyJwt = "private_key_jwt";
inline constexpr std::string_view kAuthMethodNone = "none";

// Bounds on untrusted credentials.
inline constexpr size_t kMaxClientIdBytes = 256;
inline constexpr size_t kMaxClientSecretBytes = 1024;
inline constexpr size_t kMaxAssertionJtiBytes = 256;

// What happened, for logs and security events (never a secret).
struct ClientAuthDetail {
  std::string method;            // the method attempted, or "" when none could be determined
  std::string client_id;         // set only when it names a registered client
  std::string reason;            // fixed text on failure, e.g. "wrong_secret", "replayed_jti"
  bool basic_attempted = false;  // an Authorization header was sent (RFC 6749 §5.2 challenge)
};

// A non-blocking bound on concurrent Argon2id verifications.
class SecretCheckSlots {
 public:
  explicit SecretCheckSlots(int capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  // Takes a slot if one is free; never waits.
  bool TryAcquire();
  void Release();
  int capacity() const { return capacity_; }
  // The process-wide slots: max(2, std::thread::hardware_concurrency()).
  static SecretCheckSlots& Process();

 private:
  const int capacity_;
  std::atomic<int> used_{0};
};

// `form` holds the request's parameters, each at most once (the caller refuses
// duplicates). `token_endpoint_url` is the expected assertion audience; config.issuer is
// accepted too.
Result<storage::ClientRecord> AuthenticateClient(storage::Store& store,
                                                 const EndpointRequest& request,
                                                 const QueryParams& form,
                                                 std::string_view token_endpoint_url,
                                                 const AuthConfig& config, const Clock& clock,
                                                 ClientAuthDetail* detail = nullptr);

}  // namespace phigate::auth
