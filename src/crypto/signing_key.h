// ES256 (ECDSA P-256 with SHA-256) keys for JWS (RFC 7515/7518) token signatures.
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

class VerifyingKey {
 public:
  ~VerifyingKey();
  VerifyingKey(VerifyingKey&&) noexcept;
  VerifyingKey& operator=(VerifyingKey&&) noexcept;

  // From raw 32-byte P-256 coordinates; fails if the point is not on the curve.
  static Result<VerifyingKey> FromCoordinates(std::string_view x, std::string_view y);
  // True only for a valid 64-byte r||s ES256 signature of `data`.
  bool Verify(std::string_view data, std::string_view signature) const;

 private:
  struct Impl;
  explicit VerifyingKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phigate::crypto
