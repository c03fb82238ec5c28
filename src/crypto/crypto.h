// crypto: the verbs phigate needs (random, hash, MAC, KDF, AEAD) and nothing else.
//
// This layer is the only code that includes OpenSSL's EVP headers; callers see strings of
// raw bytes. Keys are std::string of raw bytes (32 for AES-256 and HMAC keys).
// Thread-safety: all functions are safe to call from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace phigate::crypto {

inline constexpr size_t kKeyBytes = 32;    // AES-256, HMAC-SHA256 keys
inline constexpr size_t kNonceBytes = 12;  // AES-GCM 96-bit nonce
inline constexpr size_t kTagBytes = 16;    // AES-GCM tag

// Cryptographically secure random bytes (OpenSSL RAND_bytes). A CSPRNG failure is an
// impossible state: the process aborts rather than continue with weak randomness.
std::string RandomBytes(size_t n);
// `bytes` random bytes, base64url without padding: ids, secrets, request ids.
std::string RandomToken(size_t bytes);

std::string Sha256(std::string_view data);                            // 32 raw bytes
std::string HmacSha256(std::string_view key, std::string_view data);  // 32 raw bytes
// HMAC-SHA256 under one key set up once, for many MACs under the same key (the audit
// trail's lookup tags, on every request). Mac(data) == HmacSha256(key, data). The padded
// key blocks are cleansed with the object.
// Thread-safety: Mac may be called concurrently (each thread hashes with its own context).
class HmacSha256Key {
 public:
  explicit HmacSha256Key(std::string_view key);
  ~HmacSha256Key();
  HmacSha256Key(const HmacSha256Key&) = delete;
  HmacSha256Key& operator=(const HmacSha256Key&) = delete;
  std::string Mac(std::string_view data) const;  // 32 raw bytes

 private:
  static constexpr size_t kBlock = 64;  // SHA-256's block size
  char ipad_[kBlock];                   // the key block XOR 0x36 (RFC 2104)
  char opad_[kBlock];                   // the key block XOR 0x5c
};

// HMAC-SHA-1 (20 raw bytes): only for TOTP (RFC 6238), whose authenticator apps use it.
std::string HmacSha1(std::string_view key, std::string_view data);
// RFC 5869 HKDF-SHA256. `length` must be at most 255 * 32 (a programming error otherwise:
// the process aborts). An empty salt means HashLen zero bytes (RFC 5869 §2.2).
std::string HkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info,
                       size_t length);
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Overwrites `secret`'s bytes with zeros in a way the compiler cannot drop as a dead store
// (OPENSSL_cleanse), for key material and plaintext about to be freed.
void Wipe(std::string& secret);

// AES-256-GCM with a fresh random 96-bit nonce. Output: nonce || ciphertext || tag.
// The AAD is authenticated, not encrypted: bind each ciphertext to its identity.
Result<std::string> Seal(std::string_view key, std::string_view plaintext, std::string_view aad);
// AES-256-GCM under one key whose schedule is set up once rather than per message (the
// audit trail's writer seals every record under the same subkey). Seal's output is
// crypto::Seal's (a fresh random nonce || ciphertext || tag): crypto::Open opens it.
// Thread-safety: one cipher context: not for concurrent use.
class AesGcmKey {
 public:
  // kInvalidArgument "AES-256-GCM key must be 32 bytes".
  static Result<std::unique_ptr<AesGcmKey>> Create(std::string_view key);
  ~AesGcmKey();
  AesGcmKey(const AesGcmKey&) = delete;
  AesGcmKey& operator=(const AesGcmKey&) = delete;
  Result<std::string> Seal(std::string_view plaintext, std::string_view aad);

 private:
  explicit AesGcmKey(void* ctx) : ctx_(ctx) {}
  void* ctx_;  // EVP_CIPHER_CTX, keyed (OpenSSL types stay out of headers)
};

// Fails with kInternal "decryption failed" (nothing more, never key material) on a wrong
// key, AAD, or any flipped bit. Keys that are not 32 bytes are kInvalidArgument.
Result<std::string> Open(std::string_view key, std::string_view sealed, std::string_view aad);

// Explicit-nonce forms for known-answer tests. Output/input: ciphertext || tag.
Result<std::string> SealWithNonce(std::string_view key, std::string_view nonce,
                                  std::string_view plaintext, std::string_view aad);
Result<std::string> OpenWithNonce(std::string_view key, std::string_view nonce,
                                  std::string_view ciphertext_and_tag, std::string_view aad);

}  // namespace phigate::crypto
