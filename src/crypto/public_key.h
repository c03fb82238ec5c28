// Public and private keys for JWS algorithms other than phigate's own ES256 token key:
// RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 §3.3), ES256 (RFC 7518 §3.4) and EdDSA
// with Ed25519 (RFC 8037 §3.1). Used to verify tokens of external OpenID providers and
// private_key_jwt client assertions (RFC 7523), and (PrivateKey) by tests and benchmarks
// that must sign like those parties do.
//
// A key is bound to one algorithm family by its type: an RSA key verifies only RS256, a
// P-256 key only ES256, an Ed25519 key only EdDSA. The algorithm a token names is checked
// against the key, never used to choose how to interpret the key (RFC 8725 §3.1): so an
// HS256 token "signed" with a public key, or alg "none", can never verify.
//
// Thread-safety: immutable after construction; Verify/Sign are safe from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::crypto {

enum class JwsAlg { kRS256, kES256, kEdDSA };

// "RS256" | "ES256" | "EdDSA" (exact, case-sensitive); nullopt for anything else,
// including "none", "HS256" and "PS256".
std::optional<JwsAlg> ParseJwsAlg(std::string_view name);
std::string_view JwsAlgName(JwsAlg alg);

class PublicKey {
 public:
  ~PublicKey();
  PublicKey(PublicKey&&) noexcept;
  PublicKey& operator=(PublicKey&&) noexcept;

  // RSA from the raw big-endian modulus and exponent (JWK "n", "e" after base64url
  // decoding). kInvalidArgument if the modulus is under 2048 bits or over 8192, the
  // exponent is even, 1, or over 2^64, or the numbers are otherwise invalid.
  static Result<PublicKey> Rsa(std::string_view modulus, std::string_view exponent);
  // P-256 from 32-byte x and y; kInvalidArgument if the point is not on the curve.
  static Result<PublicKey> EcP256(std::string_view x, std::string_view y);
  // Ed25519 from the 32-byte public key.
  static Result<PublicKey> Ed25519(std::string_view x);

  // The one algorithm this key verifies.
  JwsAlg alg() const;
  // True only if `alg` == this->alg() and `signature` is a valid JWS signature of `data`
  // (ES256: the 64-byte r||s form; RS256: exactly modulus-length bytes; EdDSA: 64 bytes).
  bool Verify(JwsAlg alg, std::string_view data, std::string_view signature) const;

 private:
  struct Impl;
  explicit PublicKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class PrivateKey {
 public:
  ~PrivateKey();
  PrivateKey(PrivateKey&&) noexcept;
  PrivateKey& operator=(PrivateKey&&) noexcept;

  // RS256: a fresh 2048-bit RSA key; ES256: P-256; EdDSA: Ed25519.
  static Result<PrivateKey> Generate(JwsAlg alg);
  // PKCS#8 PEM (RSA, P-256 or Ed25519). Not permission-checked: for tests and tools.
  static Result<PrivateKey> FromPem(std::string_view pem);
  std::string ToPem() const;

  JwsAlg alg() const;
  // The JWS signature of `data` in JOSE form (see PublicKey::Verify).
  std::string Sign(std::string_view data) const;
  // {"kty":..., <public members>, "kid":<kid>, "use":"sig", "alg":<alg>}: public only.
  std::string PublicJwkJson(std::string_view kid) const;
  PublicKey Public() const;

 private:
  struct Impl;
  explicit PrivateKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phigate::crypto
