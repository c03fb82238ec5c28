#include "auth/token_verifier.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <optional>
#include <utility>

#include "auth/jwt.h"
#include "auth/token_issuer.h"
#include "core/log.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

Status InvalidToken() { return {StatusCode::kUnauthenticated, "invalid token"}; }
Status TokenExpired() { return {StatusCode::kUnauthenticated, "token expired"}; }

crypto::VerifyingKey PublicHalf(const crypto::SigningKey& key) {
  auto verifying = crypto::VerifyingKey::FromCoordinates(key.PublicX(), key.PublicY());
  if (!verifying.ok()) {
    // A loaded signing key always has a valid public point: this is an impossible state,
    // and serving with a verifier that rejects everything would hide it.
    Log(LogLevel::kError, "signing_key_public_half_invalid");
    std::abort();
  }
  return std::move(verifying).value();
}

std::optional<std::string> StringClaim(const boost::json::object& claims, std::string_view name) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  const boost::json::string* s = v->if_string();
  if (s == nullptr || s->empty()) return std::nullopt;
  return std::string(*s);
}

// NumericDate (RFC 7519 §2) as a positive integer; we issue integers only.
std::optional<int64_t> TimeClaim(const boost::json::object& claims, std::string_view name) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  const int64_t* n = v->if_int64();
  if (n == nullptr || *n <= 0) return std::nullopt;
  return *n;
}

// RFC 7519 §4.1.3: aud is a string or an array of strings; ours must be among them.
bool AudienceMatches(const boost::json::value& aud, std::string_view want) {
  if (const boost::json::string* s = aud.if_string()) return *s == want;
  const boost::json::array* a = aud.if_array();
  if (a == nullptr || a->empty()) return false;
  bool found = false;
  for (const boost::json::value& e : *a) {
    const boost::json::string* s = e.if_string();
    if (s == nullptr) return false;  // well-typed or not at all
    if (*s == want) found = true;
  }
  return found;
}

}  // namespace

TokenVerifier::TokenVerifier(const crypto::SigningKey& key, std::string issuer,
                             std::string audience, int64_t clock_skew_s, const Clock& clock,
                             size_t cache_entries)
    : key_(PublicHalf(key)),
      kid_(key.kid()),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      clock_skew_s_(clock_skew_s < 0 ? 0 : clock_skew_s),
      clock_(clock),
      cache_capacity_(cache_entries) {}

size_t TokenVerifier::cached_entries() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_.size();
}

Result<Principal> TokenVerifier::Verify(std::string_view bearer_token) const {
  // Bound the work before hashing or parsing anything.
  if (bearer_token.empty() || bearer_token.size() > kMaxJwtBytes) return InvalidToken();
  const int64_t now = clock_.NowSeconds();
  std::string hash;
  if (cache_capacity_ > 0) {
    hash = crypto::Sha256(bearer_token);
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(hash);
    if (it != cache_.end()) {
      if (Expired(it->second.expires_at_s, now)) {
        cache_.erase(it);
        return TokenExpired();
      }
      return it->second;
    }
  }
  ASSIGN_OR_RETURN(Principal principal, VerifyUncached(bearer_token, now));
  if (cache_capacity_ > 0) Remember(std::move(hash), principal, now);
  return principal;
}

Result<Principal> TokenVerifier::VerifyUncached(std::string_view token, int64_t now) const {
  signature_verifications_.fetch_add(1);
  ASSIGN_OR_RETURN(boost::json::object claims,
                   DecodeAndVerifyJwt(token, key_, kid_, kAccessTokenTyp));

  // RFC 9068 §4, RFC 8725 §3.8-3.9: iss must match exactly; aud must name us.
  std::optional<std::string> iss = StringClaim(claims, "iss");
  if (!iss || *iss != issuer_) return InvalidToken();
  const boost::json::value* aud = claims.if_contains("aud");
  if (aud == nullptr || !AudienceMatches(*aud, audience_)) return InvalidToken();

  std::optional<int64_t> exp = TimeClaim(claims, "exp");
  std::optional<int64_t> iat = TimeClaim(claims, "iat");
  if (!exp || !iat) return InvalidToken();
  // Both are positive, so exp - iat cannot overflow.
  if (*exp <= *iat || *exp - *iat > kMaxTokenLifetimeS) return InvalidToken();
  // RFC 7519 §4.1.4-4.1.6, with a small leeway for clock skew.
  if (Expired(*exp, now)) return TokenExpired();
  if (*iat > now + clock_skew_s_) return InvalidToken();
  if (claims.contains("nbf")) {
    std::optional<int64_t> nbf = TimeClaim(claims, "nbf");
    if (!nbf || *nbf > now + clock_skew_s_) return InvalidToken();
  }

  std::optional<std::string> sub = StringClaim(claims, "sub");
  std::optional<std::string> client_id = StringClaim(claims, "client_id");
  std::optional<std::string> jti = StringClaim(claims, "jti");
  std::optional<std::string> scope = StringClaim(claims, "scope");
  if (!sub || !client_id || !jti || !scope) return InvalidToken();
  Result<ScopeSet> scopes = ScopeSet::Parse(*scope);
  if (!scopes.ok()) return InvalidToken();

  Principal principal;
  principal.client_id = std::move(*client_id);
  principal.subject = std::move(*sub);
  principal.scopes = std::move(scopes).value();
  principal.expires_at_s = *exp;
  principal.jti = std::move(*jti);
  return principal;
}

void TokenVerifier::Remember(std::string hash, const Principal& principal, int64_t now) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= cache_capacity_) {
    std::erase_if(cache_,
                  [&](const auto& entry) { return Expired(entry.second.expires_at_s, now); });
    // If that freed too little, drop arbitrary live entries until an eighth of the
    // capacity is free, so that the O(n) sweep runs at most once per capacity/8
    // insertions. A dropped token is merely verified again on its next use.
    const size_t target = cache_capacity_ - std::max<size_t>(1, cache_capacity_ / 8);
    while (cache_.size() > target) cache_.erase(cache_.begin());
  }
  cache_.insert_or_assign(std::move(hash), principal);
}

}  // namespace phigate::auth
