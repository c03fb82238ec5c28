// OidcKeySource: an external OpenID provider's signing keys, found through OpenID Connect
// Discovery 1.0 (<issuer>/.well-known/openid-configuration) and its jwks_uri, fetched
// over verified HTTPS by an injected fetch function (net::HttpsGet in production, a fake
// in tests).
//
// Rules:
//   - the discovery document must be a JSON object whose "issuer" equals the configured
//     issuer exactly (OIDC Discovery §4.3) and whose "jwks_uri" is an https:// URL;
//   - keys are cached; a lookup of an unknown kid refetches the JWKS, but at most once per
//     jwks_min_refresh_s (so forged kids cannot make phigate hammer the provider);
//     cached keys older than jwks_max_age_s are refetched on the next lookup;
//   - if a fetch fails, the keys already cached stay in use (a signature checked with a key
//     the provider published is still valid) and the failure is logged; a kid that no
//     successful fetch has produced is never accepted: an unreachable provider means
//     "invalid token", never "accepted";
//   - a token's own jku/x5u/jwk headers are never looked at (jwt.h).
//
// Thread-safety: Find() and Refresh() are safe from any thread. One fetch at a time
// (fetch_mu_, taken with try_lock); no lookup waits for another thread's fetch: a known key is
// served from the cache, an unknown kid gets no key that time (keys_ is swapped under mu_).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "auth/jwk.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "crypto/public_key.h"

namespace phigate::auth {

// GET `url` and return the body (200 only); errors are kUnavailable.
using FetchFunction = std::function<Result<std::string>(const std::string& url)>;

class OidcKeySource {
 public:
  OidcKeySource(OidcIssuerConfig config, FetchFunction fetch, const Clock& clock);

  // The key for a token header; nullptr if none is known (after at most one permitted
  // refetch). The key's algorithm is `alg`.
  std::shared_ptr<const crypto::PublicKey> Find(std::string_view kid, crypto::JwsAlg alg);

  // Fetches discovery (if the jwks_uri is not known yet) and the JWKS now. Used at
  // start-up; errors are returned and logged, and the next Find() may try again.
  Status Refresh();

  const OidcIssuerConfig& config() const { return config_; }
  // Completed fetches (discovery + JWKS requests), for tests and metrics.
  uint64_t fetches() const;

 private:
  Status RefreshLocked(int64_t now_s);  // holds fetch_mu_

  OidcIssuerConfig config_;
  FetchFunction fetch_;
  const Clock& clock_;

  std::mutex fetch_mu_;  // one fetch at a time
  mutable std::mutex mu_;
  std::shared_ptr<const JwkSet> keys_;  // guarded by mu_
  std::string jwks_uri_;                // guarded by mu_
  bool attempted_ = false;              // guarded by mu_; a fetch was tried at all
  int64_t last_attempt_s_ = 0;          // guarded by mu_
  int64_t last_success_s_ = 0;          // guarded by mu_
  uint64_t fetches_ = 0;                // guarded by mu_
};

}  // namespace phigate::auth
