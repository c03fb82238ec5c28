#include "crypto/password_hash.h"

#include <argon2.h>
#include <openssl/crypto.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "core/log.h"
#include "crypto/crypto.h"

namespace phigate::crypto {

namespace {

// OWASP Password Storage Cheat Sheet, Argon2id first option: 19 MiB, 2 passes, 1 lane.
constexpr uint32_t kMemoryKiB = 19456;
constexpr uint32_t kPasses = 2;
constexpr uint32_t kLanes = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

bool FitsArgon2(std::string_view secret) {
  return secret.size() <= std::numeric_limits<uint32_t>::max();
}

// The hash BurnPasswordVerification checks against, made on first use.
const std::string& DummyHash() {
  static const std::string hash = [] {
    Result<std::string> h = HashPassword(RandomToken(32));
    if (!h.ok()) {
      Log(LogLevel::kError, "dummy_hash_failed");
      return std::string();
    }
    return std::move(h).value();
  }();
  return hash;
}

}  // namespace

Result<std::string> HashPassword(std::string_view secret) {
  if (!FitsArgon2(secret)) return InvalidArgument("secret too long");
  std::string salt = RandomBytes(kSaltBytes);
  // argon2_encodedlen counts the terminating NUL.
  std::string encoded(
      argon2_encodedlen(kPasses, kMemoryKiB, kLanes, kSaltBytes, kHashBytes, Argon2_id), '\0');
  int rc =
      argon2id_hash_encoded(kPasses, kMemoryKiB, kLanes, secret.data(), secret.size(), salt.data(),
                            salt.size(), kHashBytes, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Internal("password hashing failed");
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool VerifyPassword(std::string_view phc_hash, std::string_view secret) {
  if (!FitsArgon2(secret) || phc_hash.find('\0') != std::string_view::npos) return false;
  // libargon2 compares in constant time and rejects anything that is not argon2id.
  const std::string encoded(phc_hash);
  return argon2id_verify(encoded.c_str(), secret.data(), secret.size()) == ARGON2_OK;
}

void BurnPasswordVerification(std::string_view secret) {
  // The result is meaningless; only the work matters.
  (void)VerifyPassword(DummyHash(), secret);
}

}  // namespace phigate::crypto
