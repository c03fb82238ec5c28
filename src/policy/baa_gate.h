// BaaGate: HIPAA business associate agreements (issue 4 §6, 45 CFR 164.502(e), 164.504(e)).
// A client registered as a third party (`phigate clients add --third-party`, or given a
// BAA with `phigate clients baa`) receives no PHI unless its BAA is active now:
// status "active" and signed_ms <= now < expires_ms (storage::ClientRecord). First-party
// clients and tokens whose client is not registered here (an external OpenID provider's
// apps, which belong to the covered entity's own identity system) pass.
//
// Freshness: a client's record is cached for `cache_ms` (default 1 s, like SessionGuard's
// user cache) to keep the store off the hot path for first-party clients. A client known
// to be third-party is re-read from the store on every request, so `clients baa --revoke`
// (another process) takes effect on the very next request; expiry is evaluated against
// the clock on every request, so it takes effect without a restart.
//
// Errors: kPermissionDenied with fixed texts naming the missing permission (never the
// counterparty): "a business associate agreement is required: this third-party client
// has none" / "... its agreement was revoked" / "... its agreement has expired" / "... its
// agreement is not yet in effect"; kUnavailable if the store fails (fail closed).
// Thread-safety: Check may be called from any thread (a mutex guards the cache).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.h"
#include "core/status.h"
#include "fhir/model.h"
#include "storage/store.h"

namespace phigate::policy {

class BaaGate {
 public:
  BaaGate(storage::Store& store, const Clock& clock, int64_t cache_ms = 1000);

  Status Check(std::string_view client_id) const { return Check(client_id, nullptr); }
  // The same; for a third-party client that passes, `*counterparty` (may be null) receives
  // its BAA counterparty (for the audit record), else it is left unchanged.
  Status Check(std::string_view client_id, std::string* counterparty) const;

 private:
  struct Entry {
    bool registered = false;
    bool third_party = false;
    storage::BaaRecord baa;
    int64_t fetched_ms = 0;
  };
  storage::Store& store_;
  const Clock& clock_;
  int64_t cache_ms_;
  mutable std::mutex mu_;
  mutable fhir::StringMap<Entry> cache_;  // guarded by mu_
};

}  // namespace phigate::policy
