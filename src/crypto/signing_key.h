// The ES256 (ECDSA P-256 with SHA-256) key phigate signs its tokens with (RFC 7515/7518);
// its public half is verified through crypto::PublicKey::EcP256(PublicX(), PublicY()).
//
// Signatures are in JOSE form: the 64-byte r || s concatenation, not DER.
// Thread-safety: a key is immutable after construction; Sign/Verify are safe from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::crypto {

class SigningKey {
 public:
  ~SigningKey();
  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;

  static Result<SigningKey> Generate();
  // Loads a PKCS#8 PEM P-256 private key (after CheckSecretFile).
  static Result<SigningKey> LoadPem(const std::string& path);
  // Writes PKCS#8 PEM with mode 0600 (never overwrites).
  Status SavePem(const std::string& path) const;

  // 64-byte r||s signature of SHA-256(data).
  std::string Sign(std::string_view data) const;
  // RFC 7638 JWK thumbprint (base64url), used as `kid`.
  const std::string& kid() const;
  // Public JWK as a JSON object text: {"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,
  // "use":"sig","alg":"ES256"}.
  std::string PublicJwkJson() const;
  // x and y coordinates (32 raw bytes each) of the public key.
  std::string PublicX() const;
  std::string PublicY() const;

 private:
  struct Impl;
  explicit SigningKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phigate::crypto
