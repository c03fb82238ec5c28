// TokenVerifier: bearer access token (RFC 6750) -> Principal, for phigate's own JWT access
// tokens (RFC 9068, ES256, signed by the server's key) and for the access tokens of
// configured external OpenID providers ([[auth.oidc]], keys from OidcKeySource).
//
// Checks (RFC 8725, RFC 9068 §4, RFC 7519 §7.2, RFC 9700 §4):
//   - the JWS structure (jwt.h: size cap, three parts, no crit; jku/x5u/jwk/x5c ignored);
//   - the issuer: the unverified "iss" selects which configured issuer's keys and rules
//     apply (exact match; an unknown issuer is refused before any key lookup);
//   - the algorithm: phigate's own tokens are ES256 with the server's kid only; a
//     provider's tokens use an algorithm from its allow-list, and the key is the provider's
//     key for (kid, alg) whose type must match the algorithm (public_key.h) — so "none",
//     HS256 with a public key as secret, or a key published for another algorithm never
//     verify;
//   - typ "at+jwt" (always for our own tokens; per provider when require_at_jwt) — an ID
//     token ("JWT") or a refresh token in JWT form is refused; tokens carrying a "nonce"
//     or "at_hash" claim (ID token markers) are refused whatever their typ;
//   - the signature, then the claims: aud contains the expected audience; exp present and
//     not past (skew allowed); iat present and not in the future beyond the skew; nbf not
//     in the future beyond the skew; our own tokens: exp - iat <= kMaxTokenLifetimeS;
//     sub, jti and client_id (or, for providers, azp) present; scope a parseable SMART
//     scope string when present;
//   - people (sub != client_id, RFC 9068 §2.2) must have used a second factor: amr must
//     contain one of the configured values (ours: "otp"/"mfa"); else
//     kInsufficientUserAuthentication;
//   - for phigate's own tokens, the SessionGuard (revocation, disabled users), on every
//     request including cache hits.
// Every failure is kUnauthenticated with a short generic message; the token is never
// echoed or logged.
//
// Cache: signature verification costs tens of µs, so a verified token's Principal is
// cached until its exp (DESIGN.md "Performance model"), keyed by SHA-256 of the token (the
// cache does not hold usable bearer tokens). A hit re-checks expiry and the SessionGuard.
// Bounded: when full, expired entries are dropped first, then arbitrary live ones until an
// eighth of the capacity is free. cache_entries == 0 disables the cache.
//
// Thread-safety: Verify() is safe from any thread. `cache_mu_` guards `cache_`; signature
// checks and key fetches run outside the lock. AddProvider() only before the first Verify.
// The key, clock and guard must outlive the verifier.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/oidc_keys.h"
#include "auth/principal.h"
#include "auth/scope.h"
#include "auth/session_guard.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/public_key.h"
#include "crypto/signing_key.h"

namespace phigate::auth {

// The Status message of a person's token without a second factor; the HTTP layer answers
// 401 with error="insufficient_user_authentication" (RFC 9470 §3).
inline constexpr std::string_view kInsufficientUserAuthentication =
    "multi-factor authentication is required";

class TokenVerifier {
 public:
  // phigate's own tokens: issuer, audience and key of the built-in server. `guard` may be
  // null (then no revocation checks: tests of the verifier alone).
  TokenVerifier(const crypto::SigningKey& key, std::string issuer, std::string audience,
                int64_t clock_skew_s, const Clock& clock, size_t cache_entries,
                const SessionGuard* guard = nullptr);
  ~TokenVerifier();

  // Trusts an external provider's tokens as configured in `source->config()`.
  void AddProvider(std::unique_ptr<OidcKeySource> source);

  Result<Principal> Verify(std::string_view bearer_token) const;
  // The same, without copying the cached Principal (the request path uses this).
  Result<std::shared_ptr<const Principal>> VerifyShared(std::string_view bearer_token) const;

  // How many signature verifications have run (cache misses that got that far). For
  // metrics and for tests that prove the cache is used.
  uint64_t signature_verifications() const { return signature_verifications_.load(); }
  // Current number of cached principals.
  size_t cached_entries() const;

 private:
  Result<Principal> VerifyUncached(std::string_view token, int64_t now) const;
  bool Expired(int64_t exp, int64_t now) const { return exp <= now - clock_skew_s_; }
  void Remember(std::string hash, std::shared_ptr<const Principal> principal, int64_t now) const;

  std::shared_ptr<const crypto::PublicKey> own_key_;
  std::string own_kid_;
  std::string issuer_;
  std::string audience_;
  std::string fhir_base_;  // issuer + "/fhir/": fhirUser URLs are made relative to it
  int64_t clock_skew_s_;
  const Clock& clock_;
  size_t cache_capacity_;
  const SessionGuard* guard_;
  std::vector<std::unique_ptr<OidcKeySource>> providers_;

  mutable std::mutex cache_mu_;
  // guarded by cache_mu_
  mutable std::unordered_map<std::string, std::shared_ptr<const Principal>> cache_;
  mutable std::atomic<uint64_t> signature_verifications_{0};
};

}  // namespace phigate::auth
