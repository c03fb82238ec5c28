#include "auth/token_verifier.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <optional>
#include <utility>

#include "auth/jwt.h"
#include "auth/token_issuer.h"
#include "core/base64.h"
#include "core/log.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

Status InvalidToken() { return {StatusCode::kUnauthenticated, "invalid token"}; }
Status TokenExpired() { return {StatusCode::kUnauthenticated, "token expired"}; }
Status NeedsMfa() {
  return {StatusCode::kUnauthenticated, std::string(kInsufficientUserAuthentication)};
}

std::shared_ptr<const crypto::PublicKey> PublicHalf(const crypto::SigningKey& key) {
  auto verifying = crypto::PublicKey::EcP256(key.PublicX(), key.PublicY());
  if (!verifying.ok()) {
    // A loaded signing key always has a valid public point: this is an impossible state,
    // and serving with a verifier that rejects everything would hide it.
    Log(LogLevel::kError, "signing_key_public_half_invalid");
    std::abort();
  }
  return std::make_shared<const crypto::PublicKey>(std::move(verifying).value());
}

std::optional<std::string> StringClaim(const boost::json::object& claims, std::string_view name) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  const boost::json::string* s = v->if_string();
  if (s == nullptr || s->empty()) return std::nullopt;
  return std::string(*s);
}

// NumericDate (RFC 7519 §2): a positive number. phigate issues integers only, so its own
// tokens must carry integers; a provider's fractions are truncated.
std::optional<int64_t> TimeClaim(const boost::json::object& claims, std::string_view name,
                                 bool integer_only) {
  const boost::json::value* v = claims.if_contains(name);
  if (v == nullptr) return std::nullopt;
  if (const int64_t* n = v->if_int64()) {
    if (*n > 0) return *n;
    return std::nullopt;
  }
  if (const uint64_t* u = v->if_uint64()) {
    if (*u <= static_cast<uint64_t>(INT64_MAX)) return static_cast<int64_t>(*u);
    return std::nullopt;
  }
  if (const double* d = v->if_double(); d != nullptr && !integer_only) {
    if (*d >= 1 && *d < 9.2e18) return static_cast<int64_t>(*d);
  }
  return std::nullopt;
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

// A claim that is an array of strings, or one space-separated string. nullopt if absent;
// an empty optional vector... distinguishes "absent" from "malformed" via `ok`.
std::vector<std::string> StringList(const boost::json::value& v, bool& ok) {
  std::vector<std::string> out;
  ok = true;
  if (const boost::json::string* s = v.if_string()) {
    std::string_view rest = *s;
    while (!rest.empty()) {
      const size_t sp = rest.find(' ');
      if (sp != 0) out.emplace_back(rest.substr(0, sp));
      if (sp == std::string_view::npos) break;
      rest.remove_prefix(sp + 1);
    }
    return out;
  }
  const boost::json::array* a = v.if_array();
  if (a == nullptr) {
    ok = false;
    return out;
  }
  for (const boost::json::value& e : *a) {
    const boost::json::string* s = e.if_string();
    if (s == nullptr) {
      ok = false;
      return {};
    }
    out.emplace_back(*s);
  }
  return out;
}

// A claim by dotted path ("realm_access.roles"), for providers that nest roles.
const boost::json::value* ClaimAt(const boost::json::object& claims, std::string_view path) {
  const boost::json::object* obj = &claims;
  while (true) {
    const size_t dot = path.find('.');
    const boost::json::value* v = obj->if_contains(path.substr(0, dot));
    if (v == nullptr || dot == std::string_view::npos) return v;
    obj = v->if_object();
    if (obj == nullptr) return nullptr;
    path.remove_prefix(dot + 1);
  }
}

bool HasSecondFactor(const std::vector<std::string>& amr,
                     const std::vector<std::string>& accepted) {
  return std::any_of(amr.begin(), amr.end(), [&](const std::string& m) {
    return std::find(accepted.begin(), accepted.end(), m) != accepted.end();
  });
}

const std::vector<std::string>& BuiltinSecondFactors() {
  static const std::vector<std::string> kValues = {"otp", "mfa"};
  return kValues;
}

}  // namespace

TokenVerifier::TokenVerifier(const crypto::SigningKey& key, std::string issuer,
                             std::string audience, int64_t clock_skew_s, const Clock& clock,
                             size_t cache_entries, const SessionGuard* guard)
    : own_key_(PublicHalf(key)),
      own_kid_(key.kid()),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      fhir_base_(issuer_ + "/fhir/"),
      clock_skew_s_(std::clamp<int64_t>(clock_skew_s, 0, 60)),
      clock_(clock),
      cache_capacity_(cache_entries),
      guard_(guard) {}

TokenVerifier::~TokenVerifier() = default;

void TokenVerifier::AddProvider(std::unique_ptr<OidcKeySource> source) {
  providers_.push_back(std::move(source));
}

size_t TokenVerifier::cached_entries() const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  return cache_.size();
}

Result<Principal> TokenVerifier::Verify(std::string_view bearer_token) const {
  ASSIGN_OR_RETURN(std::shared_ptr<const Principal> principal, VerifyShared(bearer_token));
  return *principal;
}

Result<std::shared_ptr<const Principal>> TokenVerifier::VerifyShared(
    std::string_view bearer_token) const {
  // Bound the work before hashing or parsing anything.
  if (bearer_token.empty() || bearer_token.size() > kMaxJwtBytes) return InvalidToken();
  const int64_t now = clock_.NowSeconds();
  std::string hash;
  if (cache_capacity_ > 0) {
    hash = crypto::Sha256(bearer_token);
    std::shared_ptr<const Principal> cached;
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(hash);
      if (it != cache_.end()) {
        if (Expired(it->second->expires_at_s, now)) {
          cache_.erase(it);
          return TokenExpired();
        }
        cached = it->second;
      }
    }
    if (cached != nullptr) {
      // Revocation and disabled users take effect on cached tokens too.
      if (cached->builtin && guard_ != nullptr) RETURN_IF_ERROR(guard_->Check(*cached));
      return cached;
    }
  }
  ASSIGN_OR_RETURN(Principal verified, VerifyUncached(bearer_token, now));
  auto principal = std::make_shared<const Principal>(std::move(verified));
  if (principal->builtin && guard_ != nullptr) RETURN_IF_ERROR(guard_->Check(*principal));
  if (cache_capacity_ > 0) Remember(std::move(hash), principal, now);
  return principal;
}

Result<Principal> TokenVerifier::VerifyUncached(std::string_view token, int64_t now) const {
  ASSIGN_OR_RETURN(JwsParts parts, ParseJws(token));
  // The unverified payload only selects the issuer whose keys and rules apply (RFC 8725
  // §3.8); nothing else is read from it before the signature verifies.
  std::optional<boost::json::object> claims = DecodeJsonObject(parts.payload_b64);
  if (!claims) return InvalidToken();
  std::optional<std::string> iss = StringClaim(*claims, "iss");
  if (!iss) return InvalidToken();

  OidcKeySource* provider = nullptr;
  const bool builtin = *iss == issuer_;
  if (!builtin) {
    for (const auto& p : providers_) {
      if (p->config().issuer == *iss) provider = p.get();
    }
    if (provider == nullptr) return InvalidToken();
  }
  const OidcIssuerConfig* config = provider == nullptr ? nullptr : &provider->config();

  // typ (RFC 9068 §4, RFC 8725 §3.11): an ID token is typ "JWT", a refresh token is not
  // a JWT at all (ours) or has its own type.
  if ((builtin || config->require_at_jwt) && !JwsTypMatches(parts.typ, kAccessTokenTyp)) {
    return InvalidToken();
  }
  // The algorithm comes from the allow-list, and the key must be of that algorithm.
  std::optional<crypto::JwsAlg> alg = crypto::ParseJwsAlg(parts.alg);
  if (!alg) return InvalidToken();
  std::shared_ptr<const crypto::PublicKey> key;
  if (builtin) {
    if (*alg != crypto::JwsAlg::kES256 || parts.kid != own_kid_) return InvalidToken();
    key = own_key_;
  } else {
    const auto& allowed = config->algorithms;
    if (std::find(allowed.begin(), allowed.end(), parts.alg) == allowed.end()) {
      return InvalidToken();
    }
    // OidcKeySource is internally synchronized; Find may refetch (rate-limited).
    key = provider->Find(parts.kid, *alg);
    if (key == nullptr) return InvalidToken();
  }
  signature_verifications_.fetch_add(1);
  if (!key->Verify(*alg, parts.signing_input, parts.signature)) return InvalidToken();

  // Claims (RFC 9068 §4, RFC 7519 §4.1).
  if (claims->contains("nonce") || claims->contains("at_hash")) return InvalidToken();
  const boost::json::value* aud = claims->if_contains("aud");
  if (aud == nullptr || !AudienceMatches(*aud, builtin ? audience_ : config->audience)) {
    return InvalidToken();
  }
  std::optional<int64_t> exp = TimeClaim(*claims, "exp", builtin);
  std::optional<int64_t> iat = TimeClaim(*claims, "iat", builtin);
  if (!exp || !iat) return InvalidToken();
  if (*exp <= *iat) return InvalidToken();
  if (builtin && *exp - *iat > kMaxTokenLifetimeS) return InvalidToken();
  if (Expired(*exp, now)) return TokenExpired();
  if (*iat > now + clock_skew_s_) return InvalidToken();
  if (claims->contains("nbf")) {
    std::optional<int64_t> nbf = TimeClaim(*claims, "nbf", builtin);
    if (!nbf || *nbf > now + clock_skew_s_) return InvalidToken();
  }

  Principal principal;
  principal.builtin = builtin;
  principal.issuer = std::move(*iss);
  std::optional<std::string> sub = StringClaim(*claims, "sub");
  std::optional<std::string> client_id = StringClaim(*claims, "client_id");
  if (!client_id && !builtin) client_id = StringClaim(*claims, "azp");
  std::optional<std::string> jti = StringClaim(*claims, "jti");
  if (!sub || !client_id || !jti) return InvalidToken();
  principal.subject = std::move(*sub);
  principal.client_id = std::move(*client_id);
  principal.jti = std::move(*jti);
  principal.expires_at_s = *exp;

  if (const boost::json::value* scope = claims->if_contains("scope")) {
    const boost::json::string* s = scope->if_string();
    if (s == nullptr || (builtin && s->empty())) return InvalidToken();
    if (!s->empty()) {
      Result<ScopeSet> scopes = ScopeSet::Parse(*s);
      if (!scopes.ok()) return InvalidToken();
      principal.scopes = std::move(scopes).value();
    }
  } else if (builtin) {
    return InvalidToken();
  }

  const boost::json::value* roles =
      ClaimAt(*claims, builtin ? std::string_view("roles") : std::string_view(config->roles_claim));
  if (roles != nullptr) {
    bool ok = false;
    principal.roles = StringList(*roles, ok);
    if (!ok) return InvalidToken();
  }

  principal.kind =
      principal.subject == principal.client_id ? PrincipalKind::kSystem : PrincipalKind::kPerson;
  if (principal.kind == PrincipalKind::kPerson) {
    if (const boost::json::value* amr = claims->if_contains("amr")) {
      bool ok = false;
      principal.amr = StringList(*amr, ok);
      if (!ok || !amr->is_array()) return InvalidToken();
    }
    const bool require_mfa = builtin || config->require_mfa;
    principal.mfa =
        HasSecondFactor(principal.amr, builtin ? BuiltinSecondFactors() : config->mfa_amr);
    if (require_mfa && !principal.mfa) return NeedsMfa();
    if (claims->contains("auth_time")) {
      std::optional<int64_t> auth_time = TimeClaim(*claims, "auth_time", builtin);
      if (!auth_time) return InvalidToken();
      principal.auth_time_s = *auth_time;
    } else if (builtin) {
      return InvalidToken();
    }
    if (std::optional<std::string> fhir_user = StringClaim(*claims, "fhirUser")) {
      std::string_view v = *fhir_user;
      if (v.starts_with(fhir_base_)) v.remove_prefix(fhir_base_.size());
      principal.fhir_user = std::string(v);
    }
  }
  if (std::optional<std::string> patient = StringClaim(*claims, "patient")) {
    principal.patient = std::move(*patient);
  }
  // Purpose of use asserted by the issuer (issue 4 §4); the policy checks the code.
  if (std::optional<std::string> purpose = StringClaim(*claims, "purpose_of_use")) {
    principal.purpose_of_use = std::move(*purpose);
  }
  if (builtin) {
    if (std::optional<std::string> sid = StringClaim(*claims, "sid")) {
      principal.session_id = std::move(*sid);
    }
  }
  return principal;
}

void TokenVerifier::Remember(std::string hash, std::shared_ptr<const Principal> principal,
                             int64_t now) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= cache_capacity_) {
    std::erase_if(cache_,
                  [&](const auto& entry) { return Expired(entry.second->expires_at_s, now); });
    // If that freed too little, drop arbitrary live entries until an eighth of the
    // capacity is free, so that the O(n) sweep runs at most once per capacity/8
    // insertions. A dropped token is merely verified again on its next use.
    const size_t target = cache_capacity_ - std::max<size_t>(1, cache_capacity_ / 8);
    while (cache_.size() > target) cache_.erase(cache_.begin());
  }
  cache_.insert_or_assign(std::move(hash), std::move(principal));
}

}  // namespace phigate::auth
