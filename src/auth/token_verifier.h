// TokenVerifier: bearer access token (RFC 6750) -> Principal, for phigate's own JWT access
// tokens (RFC 9068) signed ES256 by the server's signing key.
//
// Checks (RFC 9068 §4, RFC 7519 §7.2, RFC 8725): the JWS structure, alg and kid and typ
// (see jwt.h), the signature, iss exact, aud exact (a string, or an array containing
// it), exp > now - skew, iat and nbf not after now + skew, exp - iat within the issuer's
// maximum lifetime, and sub, client_id, jti, scope present with the right JSON types and
// the scope parseable. Every failure is kUnauthenticated with a short generic message
// ("invalid token" or "token expired"); the token is never echoed or logged.
//
// Cache: ES256 verification costs ~64 µs, so a verified token's Principal is cached until
// its exp (DESIGN.md "Performance model"). The key is SHA-256 of the token, so the cache
// does not hold usable bearer tokens. A hit is re-checked for expiry every time. The size
// is bounded: when full, expired entries are dropped first, then arbitrary live ones until
// an eighth of the capacity is free (so the sweep cost is amortized). cache_entries == 0
// disables the cache.
//
// Thread-safety: Verify() is safe from any thread. `cache_mu_` guards `cache_`; the
// signature check runs outside the lock. The key and clock must outlive the verifier.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/scope.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/signing_key.h"

namespace phigate::auth {

struct Principal {
  std::string client_id;
  std::string subject;
  ScopeSet scopes;
  int64_t expires_at_s = 0;  // the token's exp
  std::string jti;
};

class TokenVerifier {
 public:
  // Uses only the public half of `key`.
  TokenVerifier(const crypto::SigningKey& key, std::string issuer, std::string audience,
                int64_t clock_skew_s, const Clock& clock, size_t cache_entries);

  Result<Principal> Verify(std::string_view bearer_token) const;

  // How many signature verifications have run (cache misses that got that far). For
  // metrics and for tests that prove the cache is used.
  uint64_t signature_verifications() const { return signature_verifications_.load(); }
  // Current number of cached principals.
  size_t cached_entries() const;

 private:
  Result<Principal> VerifyUncached(std::string_view token, int64_t now) const;
  bool Expired(int64_t exp, int64_t now) const { return exp <= now - clock_skew_s_; }
  void Remember(std::string hash, const Principal& principal, int64_t now) const;

  crypto::VerifyingKey key_;
  std::string kid_;
  std::string issuer_;
  std::string audience_;
  int64_t clock_skew_s_;
  const Clock& clock_;
  size_t cache_capacity_;

  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, Principal> cache_;  // guarded by cache_mu_
  mutable std::atomic<uint64_t> signature_verifications_{0};
};

}  // namespace phigate::auth
