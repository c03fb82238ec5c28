#include "auth/jwks.h"

namespace phigate::auth {

std::string JwksJson(const crypto::SigningKey& key) {
  // PublicJwkJson() is already a JSON object of public members only.
  return "{\"keys\":[" + key.PublicJwkJson() + "]}";
}

}  // namespace phigate::auth
