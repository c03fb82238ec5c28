#include "auth/token_issuer.h"

#include <algorithm>
#include <boost/json.hpp>
#include <utility>

#include "auth/jwt.h"
#include "crypto/crypto.h"

namespace phigate::auth {

namespace {

int64_t ClampLifetime(int64_t lifetime_s) {
  return std::clamp<int64_t>(lifetime_s, 1, kMaxTokenLifetimeS);
}

boost::json::array StringArray(const std::vector<std::string>& values) {
  boost::json::array out;
  out.reserve(values.size());
  for (const std::string& v : values) out.emplace_back(v);
  return out;
}

}  // namespace

TokenIssuer::TokenIssuer(const crypto::SigningKey& key, std::string issuer, std::string audience,
                         int64_t system_lifetime_s, int64_t person_lifetime_s, const Clock& clock)
    : key_(key),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      system_lifetime_s_(ClampLifetime(system_lifetime_s)),
      person_lifetime_s_(ClampLifetime(person_lifetime_s)),
      clock_(clock) {}

std::string TokenIssuer::FhirUserUrl(std::string_view relative) const {
  return issuer_ + "/fhir/" + std::string(relative);
}

Result<TokenIssuer::Issued> TokenIssuer::Issue(std::string_view client_id, const ScopeSet& scope,
                                               const std::vector<std::string>& roles) const {
  if (client_id.empty()) return InvalidArgument("client_id is required");
  if (scope.empty()) return InvalidArgument("scope is required");
  const int64_t now = clock_.NowSeconds();
  Issued issued;
  issued.scope = scope.ToString();
  issued.expires_in = system_lifetime_s_;
  issued.expires_at_s = now + system_lifetime_s_;
  // 128 bits of randomness: unique per token (RFC 7519 §4.1.7), so audit records and the
  // revocation list can name a token without storing it.
  issued.jti = crypto::RandomToken(16);

  boost::json::object claims;
  claims["iss"] = issuer_;
  claims["aud"] = audience_;
  claims["sub"] = client_id;
  claims["client_id"] = client_id;
  claims["scope"] = issued.scope;  // RFC 9068 §2.2.3: space-delimited, like RFC 6749 §3.3
  claims["jti"] = issued.jti;
  claims["iat"] = now;
  claims["exp"] = issued.expires_at_s;
  claims["roles"] = StringArray(roles);  // RFC 9068 §7.2.1.1 "roles"
  issued.access_token = EncodeJwt(key_, kAccessTokenTyp, claims);
  return issued;
}

Result<TokenIssuer::Issued> TokenIssuer::IssueForPerson(const PersonTokenRequest& request) const {
  if (request.client_id.empty()) return InvalidArgument("client_id is required");
  if (request.user_id.empty()) return InvalidArgument("user_id is required");
  if (request.scope.empty()) return InvalidArgument("scope is required");
  // RFC 9068 §2.2: a token whose sub is its client_id is a client's own token; a person's
  // must never be mistaken for one.
  if (request.user_id == request.client_id) {
    return InvalidArgument("user_id must differ from client_id");
  }
  const int64_t now = clock_.NowSeconds();
  int64_t exp = now + person_lifetime_s_;
  if (request.not_after_s != 0) {
    if (request.not_after_s <= now) return InvalidArgument("the session has ended");
    exp = std::min(exp, request.not_after_s);
  }
  Issued issued;
  issued.scope = request.scope.ToString();
  issued.expires_in = exp - now;
  issued.expires_at_s = exp;
  issued.jti = crypto::RandomToken(16);

  boost::json::object claims;
  claims["iss"] = issuer_;
  claims["aud"] = audience_;
  claims["sub"] = request.user_id;
  claims["client_id"] = request.client_id;
  claims["scope"] = issued.scope;
  claims["jti"] = issued.jti;
  claims["iat"] = now;
  claims["exp"] = issued.expires_at_s;
  claims["auth_time"] = request.auth_time_s;  // RFC 9068 §2.2.1
  claims["amr"] = StringArray(request.amr);   // RFC 8176
  claims["roles"] = StringArray(request.roles);
  if (!request.session_id.empty()) claims["sid"] = request.session_id;
  if (!request.fhir_user.empty()) claims["fhirUser"] = FhirUserUrl(request.fhir_user);
  if (!request.patient.empty()) claims["patient"] = request.patient;
  issued.access_token = EncodeJwt(key_, kAccessTokenTyp, claims);
  return issued;
}

Result<std::string> TokenIssuer::IssueIdToken(const IdTokenRequest& request) const {
  if (request.client_id.empty()) return InvalidArgument("client_id is required");
  if (request.user_id.empty()) return InvalidArgument("user_id is required");
  const int64_t now = clock_.NowSeconds();
  // OIDC Core §2: iss, sub, aud, exp, iat are required; auth_time because the login always
  // authenticates afresh; nonce echoes the authorization request (§3.1.2.1) so the app can
  // bind the ID token to its own request.
  boost::json::object claims;
  claims["iss"] = issuer_;
  claims["sub"] = request.user_id;
  claims["aud"] = request.client_id;
  claims["iat"] = now;
  claims["exp"] = now + kIdTokenLifetimeS;
  claims["auth_time"] = request.auth_time_s;
  claims["amr"] = StringArray(request.amr);
  if (!request.nonce.empty()) claims["nonce"] = request.nonce;
  if (!request.fhir_user.empty()) claims["fhirUser"] = FhirUserUrl(request.fhir_user);
  return EncodeJwt(key_, kIdTokenTyp, claims);
}

}  // namespace phigate::auth
