// Authorization codes (RFC 6749 §4.1.2) of the built-in server, held in memory only: they
// live 60 seconds and `serve` is one process per data dir (serve.lock), so a restart
// simply voids outstanding codes (the app starts its login again).
//
// A code is 256 random bits, returned once; the map is keyed by its SHA-256 so a memory
// dump shows no usable code. Redeem is single use (RFC 6749 §4.1.2: "MUST NOT be used more
// than once"): a second redemption reports kAlreadyUsed with the session (refresh family)
// its first redemption created and the access token issued for it, so the token endpoint
// revokes those tokens (RFC 6749 §4.1.2: "SHOULD revoke"). The session id is stored by the
// redemption itself, under the same lock, so no replay can fall between the two; the
// access token is known only after it is signed, so RecordAccessToken reports whether a
// replay already came in meanwhile (the caller then revokes it itself).
//
// Thread-safety: all methods are safe from any thread (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"

namespace phigate::auth {

inline constexpr int64_t kAuthorizationCodeTtlS = 60;
inline constexpr size_t kMaxOutstandingCodes = 100'000;

struct AuthorizationGrant {
  std::string client_id;
  std::string redirect_uri;    // exactly as in the authorization request
  std::string scope;           // granted scope (a ScopeSet::ToString())
  std::string code_challenge;  // PKCE S256 challenge (RFC 7636 §4.2)
  std::string nonce;           // OpenID Connect nonce, may be empty
  std::string user_id;
  std::vector<std::string> roles;
  std::string fhir_user;         // may be empty
  std::string patient;           // launch patient id (patient/ scopes), may be empty
  std::vector<std::string> amr;  // {"pwd", "otp", "mfa"}
  int64_t auth_time_s = 0;
  int64_t expires_s = 0;  // set by Issue
};

class AuthorizationCodes {
 public:
  explicit AuthorizationCodes(const Clock& clock) : clock_(clock) {}

  // Stores the grant for kAuthorizationCodeTtlS and returns the code (base64url). Drops
  // expired codes when the map is large; if still full, the oldest-expiring are dropped.
  std::string Issue(AuthorizationGrant grant);

  enum class Outcome { kOk, kUnknown, kExpired, kAlreadyUsed };
  struct Redeemed {
    Outcome outcome = Outcome::kUnknown;
    AuthorizationGrant grant;  // kOk only
    std::string family_id;     // kAlreadyUsed: the session the first redemption created
    // kAlreadyUsed: the access token the first redemption issued ("" if not yet known).
    std::string access_jti;
    int64_t access_expires_at_s = 0;
  };
  // On kOk the code is marked used and `session_id` (the session this redemption creates;
  // may be empty) recorded with it, atomically.
  Redeemed Redeem(const std::string& code, const std::string& session_id = {});
  // Records the access token issued for a redeemed code (for kAlreadyUsed above). Returns
  // true if the code has been presented again since it was redeemed: the caller must then
  // revoke that token itself.
  bool RecordAccessToken(const std::string& code, const std::string& jti, int64_t expires_at_s);

 private:
  struct Entry {
    AuthorizationGrant grant;
    bool used = false;
    bool replayed = false;  // presented again after the redemption
    std::string family_id;
    std::string access_jti;
    int64_t access_expires_at_s = 0;
  };
  void SweepLocked(int64_t now);

  const Clock& clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> codes_;  // SHA-256(code) -> entry; guarded by mu_
};

}  // namespace phigate::auth
