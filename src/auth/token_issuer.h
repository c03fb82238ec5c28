// TokenIssuer: mints JWT access tokens (RFC 9068 profile of RFC 7519) signed ES256.
//
// Claims (RFC 9068 §2.2): iss, aud, sub (= client_id for a client credentials grant,
// §2.2 and RFC 6749 §4.4), client_id, scope, jti (128 random bits), iat, exp.
// Lifetimes are short because a bearer token cannot be recalled: at most
// kMaxTokenLifetimeS; a longer (or non-positive) configured lifetime is clamped.
//
// Thread-safety: immutable after construction; Issue() is safe from any thread. The key
// and clock must outlive the issuer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "auth/scope.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/signing_key.h"

namespace phigate::auth {

inline constexpr int64_t kMaxTokenLifetimeS = 900;

class TokenIssuer {
 public:
  TokenIssuer(const crypto::SigningKey& key, std::string issuer, std::string audience,
              int64_t lifetime_s, const Clock& clock);

  struct Issued {
    std::string access_token;
    int64_t expires_in = 0;  // seconds (RFC 6749 §5.1)
    std::string scope;       // the granted scope string
  };

  // kInvalidArgument if client_id is empty or `scope` is empty.
  Result<Issued> Issue(std::string_view client_id, const ScopeSet& scope) const;

  int64_t lifetime_s() const { return lifetime_s_; }

 private:
  const crypto::SigningKey& key_;
  std::string issuer_;
  std::string audience_;
  int64_t lifetime_s_;
  const Clock& clock_;
};

}  // namespace phigate::auth
