#include "crypto/keyring.h"

#include <openssl/crypto.h>

#include <limits>

#include "crypto/crypto.h"

namespace phigate::crypto {

namespace {

constexpr KeyPurpose kPurposes[] = {KeyPurpose::kData, KeyPurpose::kBlindIndex, KeyPurpose::kTokens,
                                    KeyPurpose::kAudit};

// HKDF info labels (RFC 5869 §3.2: info binds derived keys to their context). Changing one
// makes every stored ciphertext or index of that purpose unreadable.
const char* PurposeName(KeyPurpose purpose) {
  switch (purpose) {
    case KeyPurpose::kData:
      return "data";
    case KeyPurpose::kBlindIndex:
      return "blind-index";
    case KeyPurpose::kTokens:
      return "tokens";
    case KeyPurpose::kAudit:
      return "audit";
  }
  return "invalid";
}

// The wrapped DEK's AAD names its version, so a wrapped key cannot be relabelled as another
// version in the key table.
std::string WrapAad(uint32_t version) { return "phigate-dek-v" + std::to_string(version); }

}  // namespace

Result<std::unique_ptr<Keyring>> Keyring::Open(std::string kek,
                                               const std::vector<WrappedKey>& wrapped) {
  if (kek.size() != kKeyBytes) {
    Wipe(kek);
    return InvalidArgument("key-encryption key must be exactly 32 bytes");
  }
  std::unique_ptr<Keyring> ring(new Keyring(std::move(kek)));
  for (const WrappedKey& key : wrapped) {
    if (key.version == 0 || ring->subkeys_.count(key.version) != 0) {
      return Internal("stored data keys are malformed (zero or duplicate version)");
    }
    Result<std::string> dek = crypto::Open(ring->kek_, key.wrapped, WrapAad(key.version));
    if (!dek.ok()) {
      return InvalidArgument("key-encryption key does not match the stored data keys");
    }
    if (dek->size() != kKeyBytes) {
      Wipe(*dek);
      return Internal("stored data keys are malformed (wrong length)");
    }
    std::vector<std::string>& subkeys = ring->subkeys_[key.version];
    for (KeyPurpose purpose : kPurposes) subkeys.push_back(Derive(*dek, purpose));
    Wipe(*dek);
    if (key.version > ring->current_) ring->current_ = key.version;
  }
  return ring;
}

Keyring::~Keyring() {
  Wipe(kek_);
  for (auto& [version, subkeys] : subkeys_) {
    for (std::string& subkey : subkeys) Wipe(subkey);
  }
}

std::string Keyring::Derive(const std::string& dek, KeyPurpose purpose) {
  return HkdfSha256(dek, "", std::string("phigate/") + PurposeName(purpose), kKeyBytes);
}

Result<WrappedKey> Keyring::AddVersion() {
  uint32_t version = subkeys_.empty() ? 1 : subkeys_.rbegin()->first + 1;
  if (version == 0) return Internal("key versions exhausted");  // wrapped past UINT32_MAX
  std::string dek = RandomBytes(kKeyBytes);
  Result<std::string> sealed = crypto::Seal(kek_, dek, WrapAad(version));
  if (!sealed.ok()) {
    Wipe(dek);
    return sealed.status();
  }
  std::vector<std::string>& subkeys = subkeys_[version];
  for (KeyPurpose purpose : kPurposes) subkeys.push_back(Derive(dek, purpose));
  Wipe(dek);
  current_ = version;
  return WrappedKey{version, std::move(sealed).value()};
}

Result<std::string> Keyring::Subkey(KeyPurpose purpose, uint32_t version) const {
  auto it = subkeys_.find(version);
  if (it == subkeys_.end()) return Internal("unknown key version");
  return it->second.at(static_cast<size_t>(purpose));
}

Result<std::string> Keyring::Seal(KeyPurpose purpose, std::string_view plaintext,
                                  std::string_view aad, uint32_t* version) const {
  if (subkeys_.empty()) return Internal("no data key: the keyring is empty");
  const std::string& key = subkeys_.at(current_).at(static_cast<size_t>(purpose));
  ASSIGN_OR_RETURN(std::string sealed, crypto::Seal(key, plaintext, aad));
  if (version != nullptr) *version = current_;
  return sealed;
}

Result<std::string> Keyring::Open(KeyPurpose purpose, uint32_t version, std::string_view sealed,
                                  std::string_view aad) const {
  auto it = subkeys_.find(version);
  if (it == subkeys_.end()) return Internal("unknown key version");
  return crypto::Open(it->second.at(static_cast<size_t>(purpose)), sealed, aad);
}

}  // namespace phigate::crypto
