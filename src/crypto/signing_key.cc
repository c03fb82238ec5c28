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

struct VerifyingKey::Impl {
  PkeyPtr pkey{nullptr, EVP_PKEY_free};
};

VerifyingKey::VerifyingKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VerifyingKey::~VerifyingKey() = default;
VerifyingKey::VerifyingKey(VerifyingKey&&) noexcept = default;
VerifyingKey& VerifyingKey::operator=(VerifyingKey&&) noexcept = default;

Result<VerifyingKey> VerifyingKey::FromCoordinates(std::string_view x, std::string_view y) {
  if (x.size() != kCoordinateBytes || y.size() != kCoordinateBytes) {
    return InvalidArgument("P-256 coordinates must be 32 bytes each");
  }
  // SEC 1 §2.3.3 uncompressed point encoding.
  std::string point = "\x04" + std::string(x) + std::string(y);
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(),
                                                                      OSSL_PARAM_BLD_free);
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return Internal("building the public key failed");
  }
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld.get()),
                                                                 OSSL_PARAM_free);
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return InvalidArgument("not a point on P-256");
  }
  auto impl = std::make_unique<Impl>();
  impl->pkey.reset(raw);
  // Invalid-curve attacks feed points off the curve; the full public-key check refuses them.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr), EVP_PKEY_CTX_free);
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return InvalidArgument("not a point on P-256");
  }
  return VerifyingKey(std::move(impl));
}

bool VerifyingKey::Verify(std::string_view data, std::string_view signature) const {
  if (signature.size() != 2 * kCoordinateBytes) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(signature.data());
  BnPtr r(BN_bin2bn(s, kCoordinateBytes, nullptr), BN_free);
  BnPtr sv(BN_bin2bn(s + kCoordinateBytes, kCoordinateBytes, nullptr), BN_free);
  // r = 0 or s = 0 is never valid (FIPS 186-5 §6.4.2); refuse before any arithmetic.
  if (!r || !sv || BN_is_zero(r.get()) || BN_is_zero(sv.get())) return false;
  SigPtr sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), sv.get()) != 1) return false;
  static_cast<void>(r.release());  // now owned by sig
  static_cast<void>(sv.release());
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> der_owner(
      der, [](unsigned char* ptr) { OPENSSL_free(ptr); });
  MdCtxPtr md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return md &&
         EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, impl_->pkey.get()) == 1 &&
         EVP_DigestVerify(md.get(), der, static_cast<size_t>(der_len),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

}  // namespace phigate::crypto
