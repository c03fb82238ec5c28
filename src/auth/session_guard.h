// SessionGuard: whether an access token phigate issued is still good after its signature
// and claims verified. RFC 7009 revocation and automatic logoff must take effect at once,
// although verified tokens are cached (token_verifier.h), so every cached hit of a
// built-in token goes through Check(), which costs a few hash lookups:
//   - a revoked access token (by jti) -> "token revoked";
//   - a revoked session (the token's sid = refresh family) -> "session ended";
//   - for people: the user is unknown or disabled, or sessions_valid_after_ms is after the
//     token's auth_time (MFA reset, re-enrollment) -> "invalid token".
// Revocations made through this object (revoke endpoint, refresh reuse, logout) are in
// memory before the call returns, and persisted in the store so a restart keeps them.
// A revoked session is remembered for kMaxTokenLifetimeS + a margin after its revocation
// (the horizon Load() uses too): every access token of it was issued before then, so
// after that the token's own exp refuses it. Older entries are pruned as new ones arrive.
// User state changed by another process (`phigate users disable`) is read from the store
// through a cache of at most `user_cache_ms` age (default 1 s), so it takes effect within
// that time.
//
// Thread-safety: all methods are safe from any thread (a shared_mutex; the store lookup
// for a stale user entry happens outside the lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "auth/principal.h"
#include "core/clock.h"
#include "core/status.h"
#include "storage/store.h"

namespace phigate::auth {

class SessionGuard {
 public:
  SessionGuard(storage::Store& store, const Clock& clock, int64_t user_cache_ms = 1000);

  // Loads unexpired revoked jtis and revoked families from the store (at start-up).
  Status Load();

  Status RevokeAccessToken(const std::string& jti, int64_t expires_at_s);
  Status RevokeFamily(const std::string& family_id);
  // Forgets the cached state of a user (after a change made in this process).
  void InvalidateUser(const std::string& user_id);

  // kUnauthenticated as described above; ok otherwise. Non-builtin principals: ok.
  Status Check(const Principal& principal) const;

  // Revoked sessions held in memory (for tests and metrics).
  size_t revoked_family_count() const;

 private:
  struct UserState {
    bool usable = false;  // exists, not disabled
    int64_t sessions_valid_after_ms = 0;
    int64_t fetched_ms = 0;
  };
  Result<UserState> LookupUser(const std::string& user_id) const;
  // Drops revoked sessions older than the horizon; holds mu_.
  void PruneFamiliesLocked(int64_t now_ms);
  void AddFamilyLocked(const std::string& family_id, int64_t revoked_ms);

  storage::Store& store_;
  const Clock& clock_;
  int64_t user_cache_ms_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, int64_t> revoked_jtis_;  // jti -> exp (s); guarded by mu_
  // family id -> when it was revoked (ms); guarded by mu_.
  std::unordered_map<std::string, int64_t> revoked_families_;
  // (revoked ms, family id) in the order of revocation, for pruning; guarded by mu_.
  std::deque<std::pair<int64_t, std::string>> family_revocations_;
  mutable std::unordered_map<std::string, UserState> users_;  // guarded by mu_
};

}  // namespace phigate::auth
