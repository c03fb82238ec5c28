#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "crypto/crypto.h"

namespace phigate::crypto {

namespace {

// Failures here mean a broken OpenSSL installation or a programming error (e.g. an HKDF
// length beyond 255 * 32), never bad input, so they are fatal rather than a Status.
[[noreturn]] void Fatal(const char* what) {
  static_cast<void>(std::fprintf(stderr, "phigate: fatal: %s failed\n", what));
  std::abort();
}

// Algorithms are fetched once: an implicit fetch per call takes a global lock in OpenSSL 3
// ("Performance" in the OpenSSL 3 migration guide). The objects live until exit.
EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) Fatal("fetching HMAC");
  return mac;
}

EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) Fatal("fetching HKDF");
  return kdf;
}

// An empty string_view may hold a null pointer, which OpenSSL reads as "no key given"
// rather than as an empty key; an empty key or IKM is legal in HMAC and HKDF.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

OSSL_PARAM OctetParam(const char* name, std::string_view bytes) {
  // OSSL_PARAM is a read/write struct; these parameters are only read by the callee.
  return OSSL_PARAM_construct_octet_string(name, const_cast<unsigned char*>(Bytes(bytes)),
                                           bytes.size());
}

// RFC 2104 HMAC with the named digest; `size` is the digest's output length.
std::string Hmac(const char* digest_name, size_t size, std::string_view key,
                 std::string_view data) {
  std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx(EVP_MAC_CTX_new(HmacAlgorithm()),
                                                                EVP_MAC_CTX_free);
  // OSSL_PARAM is a read/write struct; the digest name is only read by the callee.
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end()};
  std::string out(size, '\0');
  size_t len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), Bytes(key), key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), Bytes(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) !=
          1 ||
      len != out.size()) {
    Fatal("HMAC");
  }
  return out;
}

// SHA-256 of the concatenation of `parts` into `out` (32 bytes). Fetched once (see
// HmacAlgorithm), and one context per thread: hashing runs on every request (the verified-
// token cache key, the audit trail's tags and chain), where an implicit fetch and a context
// allocation per call cost more than the hashing.
void Sha256Parts(std::initializer_list<std::string_view> parts, unsigned char* out) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) Fatal("fetching SHA-256");
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           &EVP_MD_CTX_free);
  if (ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1) Fatal("SHA-256");
  for (std::string_view part : parts) {
    if (EVP_DigestUpdate(ctx.get(), part.data(), part.size()) != 1) Fatal("SHA-256");
  }
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), out, &len) != 1 || len != 32) Fatal("SHA-256");
}

}  // namespace

std::string Sha256(std::string_view data) {
  std::string out(32, '\0');
  Sha256Parts({data}, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  return Hmac("SHA256", 32, key, data);
}

// RFC 2104 directly on SHA-256: H((K ^ opad) || H((K ^ ipad) || data)), with the two padded
// key blocks computed once. EVP_MAC_CTX_dup per MAC (the obvious way to reuse a keyed
// EVP_MAC) duplicates three digest contexts and cost about four times the hashing.
HmacSha256Key::HmacSha256Key(std::string_view key) {
  // RFC 2104 §2: a key longer than the block is hashed first; then zero-padded to 64 bytes.
  unsigned char block[kBlock] = {};
  if (key.size() > kBlock) {
    Sha256Parts({key}, block);
  } else if (!key.empty()) {
    std::memcpy(block, key.data(), key.size());
  }
  for (size_t i = 0; i < kBlock; ++i) {
    ipad_[i] = static_cast<char>(block[i] ^ 0x36);
    opad_[i] = static_cast<char>(block[i] ^ 0x5c);
  }
  OPENSSL_cleanse(block, sizeof(block));
}

HmacSha256Key::~HmacSha256Key() {
  OPENSSL_cleanse(ipad_, sizeof(ipad_));
  OPENSSL_cleanse(opad_, sizeof(opad_));
}

std::string HmacSha256Key::Mac(std::string_view data) const {
  unsigned char inner[32];
  Sha256Parts({std::string_view(ipad_, kBlock), data}, inner);
  std::string out(32, '\0');
  Sha256Parts({std::string_view(opad_, kBlock),
               std::string_view(reinterpret_cast<const char*>(inner), sizeof(inner))},
              reinterpret_cast<unsigned char*>(out.data()));
  OPENSSL_cleanse(inner, sizeof(inner));
  return out;
}

void Wipe(std::string& secret) { OPENSSL_cleanse(secret.data(), secret.size()); }

std::string HmacSha1(std::string_view key, std::string_view data) {
  return Hmac("SHA1", 20, key, data);
}

std::string HkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info,
                       size_t length) {
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(HkdfAlgorithm()),
                                                                EVP_KDF_CTX_free);
  char digest[] = "SHA256";
  // An empty salt or info is simply left out: RFC 5869 §2.2 treats a missing salt as
  // HashLen zero bytes, which is what OpenSSL does.
  OSSL_PARAM params[5];
  OSSL_PARAM* p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OctetParam(OSSL_KDF_PARAM_KEY, ikm);
  if (!salt.empty()) *p++ = OctetParam(OSSL_KDF_PARAM_SALT, salt);
  if (!info.empty()) *p++ = OctetParam(OSSL_KDF_PARAM_INFO, info);
  *p = OSSL_PARAM_construct_end();
  std::string out(length, '\0');
  if (!ctx || EVP_KDF_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), length,
                             params) != 1) {
    Fatal("HKDF-SHA256");
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Lengths are public (a MAC or hash has a fixed size); only the contents are secret.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace phigate::crypto
