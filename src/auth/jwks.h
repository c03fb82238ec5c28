// The JSON Web Key Set (RFC 7517 §5) that publishes the public half of the token signing
// key, so resource servers can verify phigate's access tokens (RFC 9068 §4).
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "crypto/signing_key.h"

namespace phigate::auth {

// {"keys":[<public JWK>]}: never any private member.
std::string JwksJson(const crypto::SigningKey& key);

}  // namespace phigate::auth
