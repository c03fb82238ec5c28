#include "crypto/signing_key.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/key_file.h"

namespace phigate::crypto {

namespace {

constexpr size_t kCoordinateBytes = 32;  // P-256 field element, and r and s each

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using SigPtr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;

// Signing a well-formed in-memory key cannot fail short of memory exhaustion or a broken
// library; both are impossible states.
[[noreturn]] void Fatal(const char* what) {
  static_cast<void>(std::fprintf(stderr, "phigate: fatal: %s failed\n", what));
  std::abort();
}

bool IsP256(const EVP_PKEY* pkey) {
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_is_a(pkey, "EC") &&
         EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &len) == 1 &&
         std::strcmp(group, "prime256v1") == 0;
}

std::string Coordinate(const EVP_PKEY* pkey, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) Fatal("reading the public key");
  BnPtr bn(raw, BN_free);
  std::string out(kCoordinateBytes, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), kCoordinateBytes) !=
      static_cast<int>(kCoordinateBytes)) {
    Fatal("encoding the public key");
  }
  return out;
}

// A PEM passphrase prompt on the terminal would hang a server; encrypted PEM is refused.
int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace

struct SigningKey::Impl {
  explicit Impl(PkeyPtr key) : pkey(std::move(key)) {
    x = Coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_X);
    y = Coordinate(pkey.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
    // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
    kid = Base64UrlEncode(Sha256(R"({"crv":"P-256","kty":"EC","x":")" + Base64UrlEncode(x) +
                                 R"(","y":")" + Base64UrlEncode(y) + R"("})"));
  }
  PkeyPtr pkey;
  std::string x, y, kid;
};

SigningKey::SigningKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SigningKey::~SigningKey() = default;
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;

Result<SigningKey> SigningKey::Generate() {
  PkeyPtr pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  if (!pkey) return Internal("generating a P-256 key failed");
  return SigningKey(std::make_unique<Impl>(std::move(pkey)));
}

Result<SigningKey> SigningKey::LoadPem(const std::string& path) {
  ASSIGN_OR_RETURN(std::string pem, ReadSecretFile(path));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  PkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr,
               EVP_PKEY_free);
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!pkey) return InvalidArgument(path + ": not an unencrypted PEM private key");
  if (!IsP256(pkey.get())) return InvalidArgument(path + ": not a P-256 (ES256) key");
  return SigningKey(std::make_unique<Impl>(std::move(pkey)));
}

Status SigningKey::SavePem(const std::string& path) const {
  // A secure-memory BIO is wiped when freed, so the PEM leaves no copy on the heap.
  BioPtr bio(BIO_new(BIO_s_secmem()), BIO_free);
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return Internal("encoding the private key failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0) return Internal("encoding the private key failed");
  std::string pem(data, static_cast<size_t>(len));
  Status status = WriteSecretFile(path, pem);
  OPENSSL_cleanse(pem.data(), pem.size());
  return status;
}

std::string SigningKey::Sign(std::string_view data) const {
  MdCtxPtr md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char der[128];  // DER ECDSA-Sig-Value for P-256 is at most 72 bytes
  size_t der_len = sizeof der;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) != 1 ||
      EVP_DigestSign(md.get(), der, &der_len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    Fatal("ES256 signing");
  }
  // JWS (RFC 7518 §3.4) wants fixed-width r || s, not DER.
  const unsigned char* p = der;
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)), ECDSA_SIG_free);
  if (!sig) Fatal("decoding the ECDSA signature");
  std::string out(2 * kCoordinateBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), o, kCoordinateBytes) !=
          static_cast<int>(kCoordinateBytes) ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), o + kCoordinateBytes, kCoordinateBytes) !=
          static_cast<int>(kCoordinateBytes)) {
    Fatal("encoding the ECDSA signature");
  }
  return out;
}

const std::string& SigningKey::kid() const { return impl_->kid; }
std::string SigningKey::PublicX() const { return impl_->x; }
std::string SigningKey::PublicY() const { return impl_->y; }

std::string SigningKey::PublicJwkJson() const {
  return R"({"kty":"EC","crv":"P-256","x":")" + Base64UrlEncode(impl_->x) + R"(","y":")" +
         Base64UrlEncode(impl_->y) + R"(","kid":")" + impl_->kid +
         R"(","use":"sig","alg":"ES256"})";
}

}  // namespace phigate::crypto
