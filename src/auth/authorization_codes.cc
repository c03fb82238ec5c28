#include "auth/authorization_codes.h"

#include <algorithm>
#include <utility>

#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

// Below this many entries an Issue does not bother sweeping: the scan would cost more
// than the memory it frees.
constexpr size_t kSweepThreshold = 1024;
constexpr size_t kCodeBytes = 32;  // 256 bits

}  // namespace

void AuthorizationCodes::SweepLocked(int64_t now) {
  std::erase_if(codes_, [now](const auto& kv) { return kv.second.grant.expires_s <= now; });
}

std::string AuthorizationCodes::Issue(AuthorizationGrant grant) {
  std::string code = crypto::RandomToken(kCodeBytes);
  const int64_t now = clock_.NowSeconds();
  grant.expires_s = now + kAuthorizationCodeTtlS;
  std::lock_guard<std::mutex> lock(mu_);
  if (codes_.size() >= kSweepThreshold) SweepLocked(now);
  // Still full of live codes (a flood): the codes closest to expiry go first, so memory
  // stays bounded; their apps simply start the login again.
  while (codes_.size() >= kMaxOutstandingCodes) {
    auto oldest = std::min_element(codes_.begin(), codes_.end(), [](const auto& a, const auto& b) {
      return a.second.grant.expires_s < b.second.grant.expires_s;
    });
    codes_.erase(oldest);
  }
  codes_.insert_or_assign(crypto::Sha256(code), Entry{std::move(grant), false, false, {}, {}, 0});
  return code;
}

AuthorizationCodes::Redeemed AuthorizationCodes::Redeem(const std::string& code,
                                                        const std::string& session_id) {
  Redeemed out;
  const std::string key = crypto::Sha256(code);
  const int64_t now = clock_.NowSeconds();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = codes_.find(key);
  if (it == codes_.end()) {
    out.outcome = Outcome::kUnknown;
    return out;
  }
  Entry& entry = it->second;
  // A used code stays reported as used (not expired) while it is still in the map, so
  // that the token endpoint can revoke what its first redemption created.
  if (entry.used) {
    entry.replayed = true;
    out.outcome = Outcome::kAlreadyUsed;
    out.family_id = entry.family_id;
    out.access_jti = entry.access_jti;
    out.access_expires_at_s = entry.access_expires_at_s;
    return out;
  }
  if (now >= entry.grant.expires_s) {
    codes_.erase(it);
    out.outcome = Outcome::kExpired;
    return out;
  }
  entry.used = true;
  entry.family_id = session_id;
  out.outcome = Outcome::kOk;
  out.grant = entry.grant;
  return out;
}

bool AuthorizationCodes::RecordAccessToken(const std::string& code, const std::string& jti,
                                           int64_t expires_at_s) {
  const std::string key = crypto::Sha256(code);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = codes_.find(key);
  if (it == codes_.end() || !it->second.used) return false;
  it->second.access_jti = jti;
  it->second.access_expires_at_s = expires_at_s;
  return it->second.replayed;
}

}  // namespace phigate::auth
