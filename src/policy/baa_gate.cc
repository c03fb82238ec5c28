#include "policy/baa_gate.h"

#include <utility>

#include "core/log.h"

namespace phigate::policy {
namespace {

// The cache holds one entry per client id seen. Ids come from verified tokens, so the set
// is the registered clients plus an external provider's apps; the cap only keeps a
// misbehaving provider from growing it without bound (dropping everything is safe: the next
// request of each client re-reads it).
constexpr size_t kMaxCachedClients = 10000;

Status Refused(std::string_view why) {
  // 45 CFR 164.502(e)(1), 164.504(e): PHI goes to a business associate only under a
  // contract. The text names what is missing, never the counterparty.
  std::string message = "a business associate agreement is required: ";
  message.append(why);
  return {StatusCode::kPermissionDenied, std::move(message)};
}

}  // namespace

BaaGate::BaaGate(storage::Store& store, const Clock& clock, int64_t cache_ms)
    : store_(store), clock_(clock), cache_ms_(cache_ms) {}

Status BaaGate::Check(std::string_view client_id, std::string* counterparty) const {
  const int64_t now_ms = clock_.NowMillis();
  {
    // The hot path (every FHIR request): a fresh first-party entry answers without a copy
    // or an allocation.
    std::lock_guard lock(mu_);
    auto it = cache_.find(client_id);
    // A third-party entry is never reused: its BAA may have been revoked by another
    // process a moment ago. `now >= fetched` treats a clock stepped backwards as stale.
    if (it != cache_.end() && !it->second.third_party && now_ms >= it->second.fetched_ms &&
        now_ms - it->second.fetched_ms < cache_ms_) {
      return Status::Ok();
    }
  }
  // Outside the lock: a store read may wait on the database.
  const std::string key(client_id);
  Entry entry;
  {
    Result<std::optional<storage::ClientRecord>> client = store_.GetClient(key);
    if (!client.ok()) {
      // Fail closed: without the record we cannot tell whether PHI may go to this client.
      Log(LogLevel::kError, "baa_gate.client_lookup_failed",
          {{"client_id", client_id}, {"code", static_cast<int>(client.status().code())}});
      return Unavailable("storage unavailable");
    }
    entry.fetched_ms = now_ms;
    if (client->has_value()) {
      const storage::ClientRecord& record = **client;
      entry.registered = true;
      entry.third_party = record.third_party;
      entry.baa.counterparty = record.baa_counterparty;
      entry.baa.signed_ms = record.baa_signed_ms;
      entry.baa.expires_ms = record.baa_expires_ms;
      entry.baa.status = record.baa_status;
    }
    std::lock_guard lock(mu_);
    if (cache_.size() >= kMaxCachedClients && !cache_.contains(key)) cache_.clear();
    cache_[key] = entry;
  }

  // Unregistered (an external provider's app) and first-party clients belong to the
  // covered entity itself: no agreement is needed.
  if (!entry.registered || !entry.third_party) return Status::Ok();
  const storage::BaaRecord& baa = entry.baa;
  if (baa.status == "revoked") return Refused("its agreement was revoked");
  if (baa.status != "active") return Refused("this third-party client has none");
  // Evaluated on every request against the clock, so expiry needs no restart.
  if (now_ms < baa.signed_ms) return Refused("its agreement is not yet in effect");
  if (now_ms >= baa.expires_ms) return Refused("its agreement has expired");
  if (counterparty != nullptr) *counterparty = baa.counterparty;
  return Status::Ok();
}

}  // namespace phigate::policy
