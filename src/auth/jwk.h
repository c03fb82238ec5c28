// JSON Web Keys (RFC 7517) of other parties: an OpenID provider's JWKS (its jwks_uri) and
// the keys a private_key_jwt client registers (RFC 7523, SMART Backend Services).
//
// Accepted members: kty RSA (n, e), EC with crv P-256 (x, y), OKP with crv Ed25519 (x)
// (RFC 8037); kid; use (only "sig" or absent); alg (if present it must be the key's own
// algorithm, else the key is skipped); key_ops (if present it must contain "verify").
// Keys with private members (d, p, q, ...) are refused outright: a JWKS carrying private
// key material is a configuration error, not something to use. Keys of other types
// (oct, RSA-OAEP encryption keys, other curves) are skipped, not errors, as providers
// publish encryption keys in the same set.
//
// Thread-safety: pure functions; a JwkSet is immutable.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "crypto/public_key.h"

namespace phigate::auth {

inline constexpr size_t kMaxJwksBytes = 256 * 1024;
inline constexpr size_t kMaxJwksKeys = 64;

struct Jwk {
  std::string kid;  // may be empty
  std::shared_ptr<const crypto::PublicKey> key;
};

class JwkSet {
 public:
  JwkSet() = default;
  explicit JwkSet(std::vector<Jwk> keys) : keys_(std::move(keys)) {}

  // The key for a JWS header: with a non-empty kid, the key with exactly that kid; with no
  // kid, the only key of the set whose alg() is `alg` if there is exactly one. The key's
  // algorithm must be `alg`. nullptr if none.
  std::shared_ptr<const crypto::PublicKey> Find(std::string_view kid, crypto::JwsAlg alg) const;

  size_t size() const { return keys_.size(); }
  const std::vector<Jwk>& keys() const { return keys_; }

 private:
  std::vector<Jwk> keys_;
};

// Parses {"keys":[...]}. kInvalidArgument (naming the key index, never key material) for
// malformed JSON, over kMaxJwksBytes or kMaxJwksKeys, a usable key with bad members, a
// private key, or duplicate kids among usable keys. An empty usable set is allowed.
Result<JwkSet> ParseJwks(std::string_view json);

}  // namespace phigate::auth
