#include <openssl/evp.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "crypto/crypto.h"

namespace phigate::crypto {

namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

// Fetched once: an implicit fetch per call takes a global lock in OpenSSL 3.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) {
    static_cast<void>(std::fputs("phigate: fatal: AES-256-GCM is not available\n", stderr));
    std::abort();
  }
  return cipher;
}

const unsigned char* In(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Every decryption failure reads the same, so errors reveal nothing about which check
// failed (no padding-oracle style distinctions) and never carry key material.
Status DecryptionFailed() { return Internal("decryption failed"); }
Status EncryptionFailed() { return Internal("encryption failed"); }

Status CheckKeyAndNonce(std::string_view key, std::string_view nonce) {
  if (key.size() != kKeyBytes) return InvalidArgument("AES-256-GCM key must be 32 bytes");
  if (nonce.size() != kNonceBytes) return InvalidArgument("AES-GCM nonce must be 12 bytes");
  return Status::Ok();
}

bool FitsInInt(std::string_view s) { return s.size() <= static_cast<size_t>(INT_MAX); }

}  // namespace

Result<std::string> SealWithNonce(std::string_view key, std::string_view nonce,
                                  std::string_view plaintext, std::string_view aad) {
  RETURN_IF_ERROR(CheckKeyAndNonce(key, nonce));
  if (!FitsInInt(plaintext) || !FitsInInt(aad)) return InvalidArgument("input too large");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), In(key), In(nonce), nullptr) != 1) {
    return EncryptionFailed();
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, In(aad), static_cast<int>(aad.size())) != 1) {
    return EncryptionFailed();
  }
  std::string out(plaintext.size() + kTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int written = 0;
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), o, &written, In(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    return EncryptionFailed();
  }
  if (EVP_EncryptFinal_ex(ctx.get(), o + written, &len) != 1 ||
      static_cast<size_t>(written) + static_cast<size_t>(len) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          o + plaintext.size()) != 1) {
    return EncryptionFailed();
  }
  return out;
}

Result<std::string> OpenWithNonce(std::string_view key, std::string_view nonce,
                                  std::string_view ciphertext_and_tag, std::string_view aad) {
  RETURN_IF_ERROR(CheckKeyAndNonce(key, nonce));
  if (ciphertext_and_tag.size() < kTagBytes) return DecryptionFailed();
  if (!FitsInInt(ciphertext_and_tag) || !FitsInInt(aad)) return DecryptionFailed();
  std::string_view ciphertext = ciphertext_and_tag.substr(0, ciphertext_and_tag.size() - kTagBytes);
  std::string tag(ciphertext_and_tag.substr(ciphertext.size()));

  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  if (!ctx || EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), In(key), In(nonce), nullptr) != 1) {
    return DecryptionFailed();
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, In(aad), static_cast<int>(aad.size())) != 1) {
    return DecryptionFailed();
  }
  std::string out(ciphertext.size(), '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int written = 0;
  if (!ciphertext.empty() && EVP_DecryptUpdate(ctx.get(), o, &written, In(ciphertext),
                                               static_cast<int>(ciphertext.size())) != 1) {
    return DecryptionFailed();
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), o + written, &len) != 1) {
    // Unauthenticated plaintext must not linger in memory or reach the caller.
    OPENSSL_cleanse(out.data(), out.size());
    return DecryptionFailed();
  }
  return out;
}

Result<std::string> Seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  // A random 96-bit nonce per message: with one key per version and rotation, the number of
  // messages per key stays far below the 2^32 bound of NIST SP 800-38D §8.3.
  std::string nonce = RandomBytes(kNonceBytes);
  ASSIGN_OR_RETURN(std::string body, SealWithNonce(key, nonce, plaintext, aad));
  return nonce + body;
}

Result<std::unique_ptr<AesGcmKey>> AesGcmKey::Create(std::string_view key) {
  if (key.size() != kKeyBytes) return InvalidArgument("AES-256-GCM key must be 32 bytes");
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  // The key alone: each Seal then sets only its nonce, reusing the key schedule.
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), In(key), nullptr, nullptr) != 1) {
    return EncryptionFailed();
  }
  return std::unique_ptr<AesGcmKey>(new AesGcmKey(ctx.release()));
}

AesGcmKey::~AesGcmKey() { EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_)); }

Result<std::string> AesGcmKey::Seal(std::string_view plaintext, std::string_view aad) {
  if (!FitsInInt(plaintext) || !FitsInInt(aad)) return InvalidArgument("input too large");
  auto* ctx = static_cast<EVP_CIPHER_CTX*>(ctx_);
  std::string out = RandomBytes(kNonceBytes);
  if (EVP_EncryptInit_ex2(ctx, nullptr, nullptr, In(out), nullptr) != 1) {
    return EncryptionFailed();
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, In(aad), static_cast<int>(aad.size())) != 1) {
    return EncryptionFailed();
  }
  out.resize(kNonceBytes + plaintext.size() + kTagBytes);
  auto* o = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  int written = 0;
  if (!plaintext.empty() &&
      EVP_EncryptUpdate(ctx, o, &written, In(plaintext), static_cast<int>(plaintext.size())) != 1) {
    return EncryptionFailed();
  }
  if (EVP_EncryptFinal_ex(ctx, o + written, &len) != 1 ||
      static_cast<size_t>(written) + static_cast<size_t>(len) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          o + plaintext.size()) != 1) {
    return EncryptionFailed();
  }
  return out;
}

Result<std::string> Open(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != kKeyBytes) return InvalidArgument("AES-256-GCM key must be 32 bytes");
  if (sealed.size() < kNonceBytes + kTagBytes) return DecryptionFailed();
  return OpenWithNonce(key, sealed.substr(0, kNonceBytes), sealed.substr(kNonceBytes), aad);
}

}  // namespace phigate::crypto
