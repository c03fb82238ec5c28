#include "auth/token_issuer.h"

#include <algorithm>
#include <boost/json.hpp>
#include <utility>

#include "auth/jwt.h"
#include "crypto/crypto.h"

namespace phigate::auth {

TokenIssuer::TokenIssuer(const crypto::SigningKey& key, std::string issuer, std::string audience,
                         int64_t lifetime_s, const Clock& clock)
    : key_(key),
      issuer_(std::move(issuer)),
      audience_(std::move(audience)),
      lifetime_s_(std::clamp<int64_t>(lifetime_s, 1, kMaxTokenLifetimeS)),
      clock_(clock) {}

Result<TokenIssuer::Issued> TokenIssuer::Issue(std::string_view client_id,
                                               const ScopeSet& scope) const {
  if (client_id.empty()) return InvalidArgument("client_id is required");
  if (scope.empty()) return InvalidArgument("scope is required");
  const int64_t now = clock_.NowSeconds();
  Issued issued;
  issued.scope = scope.ToString();
  issued.expires_in = lifetime_s_;

  boost::json::object claims;
  claims["iss"] = issuer_;
  claims["aud"] = audience_;
  claims["sub"] = client_id;
  claims["client_id"] = client_id;
  claims["scope"] = issued.scope;  // RFC 9068 §2.2.3: space-delimited, like RFC 6749 §3.3
  // 128 bits of randomness: unique per token (RFC 7519 §4.1.7), so audit records can name
  // a token without storing it.
  claims["jti"] = crypto::RandomToken(16);
  claims["iat"] = now;
  claims["exp"] = now + lifetime_s_;
  issued.access_token = EncodeJwt(key_, kAccessTokenTyp, claims);
  return issued;
}

}  // namespace phigate::auth
