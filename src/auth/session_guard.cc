#include "auth/session_guard.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "auth/token_issuer.h"
#include "core/log.h"

namespace phigate::auth {

namespace {

// A revoked jti is kept this long past the token's exp: verifiers accept a token until
// exp + clock skew, so forgetting it at exp would reopen that window. Comfortably above
// any sensible configured skew.
constexpr int64_t kRevokedJtiMarginS = 600;
// How long a revoked session is remembered: no access token of it can outlive this.
constexpr int64_t kRevokedFamilyHorizonMs = (kMaxTokenLifetimeS + kRevokedJtiMarginS) * 1000;

Status Refused(std::string message) { return {StatusCode::kUnauthenticated, std::move(message)}; }

}  // namespace

SessionGuard::SessionGuard(storage::Store& store, const Clock& clock, int64_t user_cache_ms)
    : store_(store), clock_(clock), user_cache_ms_(user_cache_ms) {}

Status SessionGuard::Load() {
  const int64_t now_ms = clock_.NowMillis();
  ASSIGN_OR_RETURN(std::vector<std::string> jtis, store_.RevokedAccessTokens(now_ms));
  // A session revoked earlier than this cannot have a live access token any more: every
  // token of it was issued before the revocation and lives at most kMaxTokenLifetimeS.
  const int64_t families_since_ms = now_ms - kRevokedFamilyHorizonMs;
  ASSIGN_OR_RETURN(std::vector<std::string> families,
                   store_.RevokedFamiliesSince(families_since_ms));
  // The store keeps only unexpired jtis but does not say when each expires; every token we
  // issue expires within kMaxTokenLifetimeS from now, so that bound is safe.
  const int64_t jti_until_s = now_ms / 1000 + kMaxTokenLifetimeS;
  std::unique_lock lock(mu_);
  for (std::string& jti : jtis) {
    int64_t& exp = revoked_jtis_[std::move(jti)];
    exp = std::max(exp, jti_until_s);
  }
  // The store does not say when each was revoked: counting from now is the safe side.
  for (const std::string& family : families) AddFamilyLocked(family, now_ms);
  return Status::Ok();
}

Status SessionGuard::RevokeAccessToken(const std::string& jti, int64_t expires_at_s) {
  if (jti.empty()) return InvalidArgument("jti is required");
  const int64_t now_s = clock_.NowSeconds();
  {
    // In memory first, so the revocation holds in this process even if persisting fails.
    std::unique_lock lock(mu_);
    // Opportunistic sweep: revocations are rare (RFC 7009 requests of authenticated
    // clients), so a linear pass here keeps the set to the live tokens.
    std::erase_if(revoked_jtis_,
                  [now_s](const auto& entry) { return entry.second + kRevokedJtiMarginS < now_s; });
    int64_t& exp = revoked_jtis_[jti];
    exp = std::max(exp, expires_at_s);
  }
  return store_.RevokeAccessToken(jti, expires_at_s * 1000);
}

Status SessionGuard::RevokeFamily(const std::string& family_id) {
  if (family_id.empty()) return InvalidArgument("family id is required");
  const int64_t now_ms = clock_.NowMillis();
  {
    std::unique_lock lock(mu_);
    PruneFamiliesLocked(now_ms);
    AddFamilyLocked(family_id, now_ms);
  }
  Status persisted = store_.RevokeRefreshFamily(family_id);
  // A session without refresh tokens has no stored family (see oauth_endpoints.h); the
  // in-memory entry is all it needs, as its only access token lives in this process's
  // lifetime bound anyway.
  if (persisted.code() == StatusCode::kNotFound) return Status::Ok();
  return persisted;
}

void SessionGuard::AddFamilyLocked(const std::string& family_id, int64_t revoked_ms) {
  int64_t& at = revoked_families_[family_id];
  at = std::max(at, revoked_ms);
  family_revocations_.emplace_back(revoked_ms, family_id);
}

void SessionGuard::PruneFamiliesLocked(int64_t now_ms) {
  // Oldest first, so each entry is looked at once: amortized O(1) per revocation.
  while (!family_revocations_.empty() &&
         family_revocations_.front().first + kRevokedFamilyHorizonMs < now_ms) {
    auto it = revoked_families_.find(family_revocations_.front().second);
    // A later revocation of the same family keeps it.
    if (it != revoked_families_.end() && it->second == family_revocations_.front().first) {
      revoked_families_.erase(it);
    }
    family_revocations_.pop_front();
  }
}

size_t SessionGuard::revoked_family_count() const {
  std::shared_lock lock(mu_);
  return revoked_families_.size();
}

void SessionGuard::InvalidateUser(const std::string& user_id) {
  std::unique_lock lock(mu_);
  users_.erase(user_id);
}

Result<SessionGuard::UserState> SessionGuard::LookupUser(const std::string& user_id) const {
  const int64_t now_ms = clock_.NowMillis();
  {
    std::shared_lock lock(mu_);
    auto it = users_.find(user_id);
    if (it != users_.end() && now_ms - it->second.fetched_ms < user_cache_ms_ &&
        now_ms >= it->second.fetched_ms) {
      return it->second;
    }
  }
  // Outside the lock: a store read may wait on the database.
  Result<std::optional<storage::UserRecord>> user = store_.GetUser(user_id);
  if (!user.ok()) return user.status();
  UserState state;
  state.fetched_ms = now_ms;
  if (user->has_value()) {
    state.usable = !(*user)->disabled;
    state.sessions_valid_after_ms = (*user)->sessions_valid_after_ms;
  }
  std::unique_lock lock(mu_);
  users_[user_id] = state;
  return state;
}

Status SessionGuard::Check(const Principal& principal) const {
  if (!principal.builtin) return Status::Ok();
  {
    std::shared_lock lock(mu_);
    if (!principal.jti.empty() && revoked_jtis_.contains(principal.jti)) {
      return Refused("token revoked");
    }
    if (!principal.session_id.empty() && revoked_families_.contains(principal.session_id)) {
      return Refused("session ended");
    }
  }
  if (principal.kind != PrincipalKind::kPerson) return Status::Ok();
  Result<UserState> state = LookupUser(principal.subject);
  if (!state.ok()) {
    // Fail closed: without the user's state we cannot tell whether the token still holds.
    Log(LogLevel::kError, "session_guard_user_lookup_failed");
    return state.status();
  }
  if (!state->usable || state->sessions_valid_after_ms > principal.auth_time_s * 1000) {
    return Refused("invalid token");
  }
  return Status::Ok();
}

}  // namespace phigate::auth
