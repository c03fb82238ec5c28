// Keyring: envelope encryption. Versioned data-encryption keys (DEKs), each stored only
// wrapped (AES-256-GCM) by the key-encryption key (KEK); purpose-separated subkeys derived
// from a DEK with HKDF, so that the data, blind-index, token and audit keys never coincide.
//
// Rotation adds a version and makes it current; ciphertexts under old versions still open.
// Thread-safety: const methods are safe from any thread; AddVersion must not race with
// them (call at start-up or under an external lock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace phigate::crypto {

struct WrappedKey {
  uint32_t version = 0;
  std::string wrapped;  // nonce || ciphertext || tag of the 32-byte DEK under the KEK
};

enum class KeyPurpose { kData, kBlindIndex, kTokens, kAudit };

class Keyring {
 public:
  // Unwraps every DEK; fails with kInvalidArgument "key-encryption key does not match the
  // stored data keys" if any does not open under `kek` (wrong KEK file).
  static Result<std::unique_ptr<Keyring>> Open(std::string kek,
                                               const std::vector<WrappedKey>& wrapped);
  // Key material is wiped from memory on destruction; copies would defeat that.
  ~Keyring();
  Keyring(const Keyring&) = delete;
  Keyring& operator=(const Keyring&) = delete;

  // Generates a new DEK (version = highest + 1), makes it current, returns it wrapped so
  // the caller can persist it.
  Result<WrappedKey> AddVersion();

  uint32_t current_version() const { return current_; }
  bool empty() const { return subkeys_.empty(); }

  // Seals under the current version's subkey for `purpose`; *version receives it.
  Result<std::string> Seal(KeyPurpose purpose, std::string_view plaintext, std::string_view aad,
                           uint32_t* version) const;
  Result<std::string> Open(KeyPurpose purpose, uint32_t version, std::string_view sealed,
                           std::string_view aad) const;
  // Open and Subkey fail with kInternal "unknown key version" for a version not in the ring.
  // The raw subkey (e.g. HMAC key for blind indexes) of a version.
  Result<std::string> Subkey(KeyPurpose purpose, uint32_t version) const;

 private:
  explicit Keyring(std::string kek) : kek_(std::move(kek)) {}
  static std::string Derive(const std::string& dek, KeyPurpose purpose);

  std::string kek_;
  uint32_t current_ = 0;
  // version -> purpose subkeys (index = KeyPurpose).
  std::map<uint32_t, std::vector<std::string>> subkeys_;
};

}  // namespace phigate::crypto
