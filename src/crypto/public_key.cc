#include "crypto/public_key.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "core/base64.h"

namespace phigate::crypto {

namespace {

constexpr size_t kEcCoordinateBytes = 32;  // P-256 field element, and r and s each
constexpr size_t kEd25519KeyBytes = 32;    // RFC 8032 §5.1.5
constexpr size_t kEd25519SignatureBytes = 64;
// RFC 7518 §3.3 asks for at least 2048 bits; over 8192 only costs the verifier time
// (an unauthenticated caller's token can name such a key of a configured party).
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;
constexpr size_t kMaxRsaExponentBytes = 8;  // below 2^64
constexpr int kGeneratedRsaBits = 2048;

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;
using BnPtr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using SigPtr = std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)>;

// Signing with, or reading the public half of, a well-formed in-memory key cannot fail
// short of memory exhaustion or a broken library; both are impossible states.
[[noreturn]] void Fatal(const char* what) {
  static_cast<void>(std::fprintf(stderr, "phigate: fatal: %s failed\n", what));
  std::abort();
}

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string_view StripLeadingZeros(std::string_view bytes) {
  while (!bytes.empty() && bytes.front() == '\0') bytes.remove_prefix(1);
  return bytes;
}

// EVP_PKEY_fromdata over a parameter list built by `push`; nullptr on any failure.
template <typename Push>
PkeyPtr FromData(const char* type, Push push) {
  ParamBldPtr bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
  if (!bld || !push(bld.get())) return PkeyPtr(nullptr, EVP_PKEY_free);
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()), OSSL_PARAM_free);
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return PkeyPtr(nullptr, EVP_PKEY_free);
  }
  return PkeyPtr(raw, EVP_PKEY_free);
}

bool IsP256(const EVP_PKEY* pkey) {
  char group[64] = {};
  size_t len = 0;
  return EVP_PKEY_is_a(pkey, "EC") &&
         EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &len) == 1 &&
         std::strcmp(group, "prime256v1") == 0;
}

std::optional<JwsAlg> AlgOfKey(const EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    const int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) return std::nullopt;
    return JwsAlg::kRS256;
  }
  if (IsP256(pkey)) return JwsAlg::kES256;
  if (EVP_PKEY_is_a(pkey, "ED25519")) return JwsAlg::kEdDSA;
  return std::nullopt;
}

std::string BnParam(const EVP_PKEY* pkey, const char* name, size_t pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1) Fatal("reading the public key");
  BnPtr bn(raw, BN_free);
  const size_t len = pad_to != 0 ? pad_to : static_cast<size_t>(BN_num_bytes(bn.get()));
  std::string out(len, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(len)) !=
      static_cast<int>(len)) {
    Fatal("encoding the public key");
  }
  return out;
}

// The raw public members of a key, as JWK carries them (after base64url decoding).
struct PublicMembers {
  std::string n, e;  // RSA (RFC 7518 §6.3.1), minimal big-endian
  std::string x, y;  // EC P-256 (RFC 7518 §6.2.1, fixed 32 bytes) or Ed25519 x (RFC 8037 §2)
};

PublicMembers ReadPublicMembers(const EVP_PKEY* pkey, JwsAlg alg) {
  PublicMembers m;
  switch (alg) {
    case JwsAlg::kRS256:
      m.n = BnParam(pkey, OSSL_PKEY_PARAM_RSA_N, 0);
      m.e = BnParam(pkey, OSSL_PKEY_PARAM_RSA_E, 0);
      break;
    case JwsAlg::kES256:
      m.x = BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, kEcCoordinateBytes);
      m.y = BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, kEcCoordinateBytes);
      break;
    case JwsAlg::kEdDSA: {
      m.x.assign(kEd25519KeyBytes, '\0');
      size_t len = m.x.size();
      if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(m.x.data()), &len) !=
              1 ||
          len != kEd25519KeyBytes) {
        Fatal("reading the Ed25519 public key");
      }
      break;
    }
  }
  return m;
}

// A JSON string literal; kid is the caller's text and may hold anything.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      char buf[8];
      static_cast<void>(std::snprintf(buf, sizeof buf, "\\u%04x", u));
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// Digest for EVP_DigestSign/Verify: SHA-256 for RS256 and ES256; none for Ed25519, which
// hashes internally and is one-shot only (RFC 8032 §5.1.6, EVP_DigestSign(3)).
const EVP_MD* DigestFor(JwsAlg alg) { return alg == JwsAlg::kEdDSA ? nullptr : EVP_sha256(); }

// JOSE r || s (RFC 7518 §3.4) to the DER ECDSA-Sig-Value OpenSSL verifies; empty if the
// signature cannot be valid.
std::string JoseToDer(std::string_view signature) {
  if (signature.size() != 2 * kEcCoordinateBytes) return {};
  const unsigned char* s = Bytes(signature);
  BnPtr r(BN_bin2bn(s, kEcCoordinateBytes, nullptr), BN_free);
  BnPtr sv(BN_bin2bn(s + kEcCoordinateBytes, kEcCoordinateBytes, nullptr), BN_free);
  // r = 0 or s = 0 is never valid (FIPS 186-5 §6.4.2); refuse before any arithmetic.
  if (!r || !sv || BN_is_zero(r.get()) || BN_is_zero(sv.get())) return {};
  SigPtr sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  if (!sig || ECDSA_SIG_set0(sig.get(), r.get(), sv.get()) != 1) return {};
  static_cast<void>(r.release());  // now owned by sig
  static_cast<void>(sv.release());
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return {};
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return out;
}

std::string DerToJose(const unsigned char* der, size_t der_len) {
  const unsigned char* p = der;
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)), ECDSA_SIG_free);
  if (!sig) Fatal("decoding the ECDSA signature");
  std::string out(2 * kEcCoordinateBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), o, kEcCoordinateBytes) !=
          static_cast<int>(kEcCoordinateBytes) ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), o + kEcCoordinateBytes, kEcCoordinateBytes) !=
          static_cast<int>(kEcCoordinateBytes)) {
    Fatal("encoding the ECDSA signature");
  }
  return out;
}

// The verifying half of a private key, through the same checks as a party's public key.
Result<PublicKey> PublicOf(const EVP_PKEY* pkey, JwsAlg alg) {
  const PublicMembers m = ReadPublicMembers(pkey, alg);
  switch (alg) {
    case JwsAlg::kRS256:
      return PublicKey::Rsa(m.n, m.e);
    case JwsAlg::kES256:
      return PublicKey::EcP256(m.x, m.y);
    case JwsAlg::kEdDSA:
      return PublicKey::Ed25519(m.x);
  }
  Fatal("deriving the public key of an unknown JWS algorithm");
}

// A PEM passphrase prompt on the terminal would hang a tool; encrypted PEM is refused.
int NoPassphrase(char*, int, int, void*) { return -1; }

}  // namespace

std::optional<JwsAlg> ParseJwsAlg(std::string_view name) {
  if (name == "RS256") return JwsAlg::kRS256;
  if (name == "ES256") return JwsAlg::kES256;
  if (name == "EdDSA") return JwsAlg::kEdDSA;
  return std::nullopt;
}

std::string_view JwsAlgName(JwsAlg alg) {
  switch (alg) {
    case JwsAlg::kRS256:
      return "RS256";
    case JwsAlg::kES256:
      return "ES256";
    case JwsAlg::kEdDSA:
      return "EdDSA";
  }
  Fatal("naming an unknown JWS algorithm");
}

// ---------------------------------------------------------------------------------------
// PublicKey

struct PublicKey::Impl {
  Impl(JwsAlg a, PkeyPtr key) : alg(a), pkey(std::move(key)) {}
  JwsAlg alg;
  PkeyPtr pkey;
};

PublicKey::PublicKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PublicKey::~PublicKey() = default;
PublicKey::PublicKey(PublicKey&&) noexcept = default;
PublicKey& PublicKey::operator=(PublicKey&&) noexcept = default;

Result<PublicKey> PublicKey::Rsa(std::string_view modulus, std::string_view exponent) {
  // RFC 7518 §6.3.1.1 asks for the minimal encoding; leading zero octets are tolerated
  // here since they change neither the value nor the checks below.
  const std::string_view n = StripLeadingZeros(modulus);
  const std::string_view e = StripLeadingZeros(exponent);
  if (n.empty() || e.empty() || e.size() > kMaxRsaExponentBytes) {
    return InvalidArgument("RSA key: invalid modulus or exponent");
  }
  BnPtr bn_n(BN_bin2bn(Bytes(n), static_cast<int>(n.size()), nullptr), BN_free);
  BnPtr bn_e(BN_bin2bn(Bytes(e), static_cast<int>(e.size()), nullptr), BN_free);
  if (!bn_n || !bn_e) return Internal("building the RSA key failed");
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    return InvalidArgument("RSA key: modulus must be 2048 to 8192 bits");
  }
  // These are the checks that matter for verification (a modulus that is even, or an
  // exponent of 1 or even, makes "signatures" trivial or meaningless). OpenSSL's
  // EVP_PKEY_public_check is not used: it applies SP 800-56B key-establishment rules
  // (e > 2^16 and a primality test of n) that refuse valid signature keys and cost time.
  if (!BN_is_odd(bn_n.get()) || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()) ||
      BN_cmp(bn_e.get(), bn_n.get()) >= 0) {
    return InvalidArgument("RSA key: invalid modulus or exponent");
  }
  PkeyPtr pkey = FromData("RSA", [&](OSSL_PARAM_BLD* bld) {
    return OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
           OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1;
  });
  if (!pkey) return InvalidArgument("RSA key: invalid modulus or exponent");
  return PublicKey(std::make_unique<Impl>(JwsAlg::kRS256, std::move(pkey)));
}

Result<PublicKey> PublicKey::EcP256(std::string_view x, std::string_view y) {
  if (x.size() != kEcCoordinateBytes || y.size() != kEcCoordinateBytes) {
    return InvalidArgument("P-256 key: coordinates must be 32 bytes each");
  }
  // SEC 1 §2.3.3 uncompressed point encoding.
  const std::string point = "\x04" + std::string(x) + std::string(y);
  PkeyPtr pkey = FromData("EC", [&](OSSL_PARAM_BLD* bld) {
    return OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
           OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                            point.size()) == 1;
  });
  if (!pkey) return InvalidArgument("P-256 key: not a point on the curve");
  // Invalid-curve attacks feed points off the curve; the full public-key check refuses them.
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr), EVP_PKEY_CTX_free);
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return InvalidArgument("P-256 key: not a point on the curve");
  }
  return PublicKey(std::make_unique<Impl>(JwsAlg::kES256, std::move(pkey)));
}

Result<PublicKey> PublicKey::Ed25519(std::string_view x) {
  if (x.size() != kEd25519KeyBytes) return InvalidArgument("Ed25519 key: must be 32 bytes");
  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(x), x.size()),
               EVP_PKEY_free);
  if (!pkey) return InvalidArgument("Ed25519 key: invalid");
  return PublicKey(std::make_unique<Impl>(JwsAlg::kEdDSA, std::move(pkey)));
}

JwsAlg PublicKey::alg() const { return impl_->alg; }

bool PublicKey::Verify(JwsAlg alg, std::string_view data, std::string_view signature) const {
  // The token's alg is checked against the key, never used to reinterpret it
  // (RFC 8725 §3.1).
  if (alg != impl_->alg) return false;
  std::string der;
  std::string_view sig = signature;
  switch (alg) {
    case JwsAlg::kRS256:
      // RFC 8017 §8.2.2 step 1: the signature is exactly k octets.
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(impl_->pkey.get()))) {
        return false;
      }
      break;
    case JwsAlg::kES256:
      der = JoseToDer(signature);
      if (der.empty()) return false;
      sig = der;
      break;
    case JwsAlg::kEdDSA:
      if (signature.size() != kEd25519SignatureBytes) return false;
      break;
  }
  MdCtxPtr md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return md &&
         EVP_DigestVerifyInit(md.get(), nullptr, DigestFor(alg), nullptr, impl_->pkey.get()) == 1 &&
         EVP_DigestVerify(md.get(), Bytes(sig), sig.size(), Bytes(data), data.size()) == 1;
}

// ---------------------------------------------------------------------------------------
// PrivateKey

struct PrivateKey::Impl {
  Impl(JwsAlg a, PkeyPtr key) : alg(a), pkey(std::move(key)) {}
  JwsAlg alg;
  PkeyPtr pkey;
};

PrivateKey::PrivateKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PrivateKey::~PrivateKey() = default;
PrivateKey::PrivateKey(PrivateKey&&) noexcept = default;
PrivateKey& PrivateKey::operator=(PrivateKey&&) noexcept = default;

Result<PrivateKey> PrivateKey::Generate(JwsAlg alg) {
  EVP_PKEY* raw = nullptr;
  switch (alg) {
    case JwsAlg::kRS256:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(kGeneratedRsaBits));
      break;
    case JwsAlg::kES256:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case JwsAlg::kEdDSA:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (raw == nullptr) return Internal("generating a key failed");
  return PrivateKey(std::make_unique<Impl>(alg, PkeyPtr(raw, EVP_PKEY_free)));
}

Result<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  PkeyPtr pkey(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr,
               EVP_PKEY_free);
  if (!pkey) return InvalidArgument("not an unencrypted PEM private key");
  const std::optional<JwsAlg> alg = AlgOfKey(pkey.get());
  if (!alg) return InvalidArgument("not an RSA (2048-8192 bits), P-256 or Ed25519 key");
  // Its public half must pass the checks a verifier applies (e.g. an odd RSA exponent
  // other than 1), so that Public() cannot fail later.
  Result<PublicKey> public_key = PublicOf(pkey.get(), *alg);
  if (!public_key.ok()) return public_key.status();
  return PrivateKey(std::make_unique<Impl>(*alg, std::move(pkey)));
}

std::string PrivateKey::ToPem() const {
  // A secure-memory BIO is wiped when freed; the returned copy is the caller's to handle.
  BioPtr bio(BIO_new(BIO_s_secmem()), BIO_free);
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl_->pkey.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    Fatal("encoding the private key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0) Fatal("encoding the private key");
  return std::string(data, static_cast<size_t>(len));
}

JwsAlg PrivateKey::alg() const { return impl_->alg; }

std::string PrivateKey::Sign(std::string_view data) const {
  MdCtxPtr md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!md ||
      EVP_DigestSignInit(md.get(), nullptr, DigestFor(impl_->alg), nullptr, impl_->pkey.get()) !=
          1 ||
      EVP_DigestSign(md.get(), nullptr, &len, Bytes(data), data.size()) != 1) {
    Fatal("JWS signing");
  }
  std::string out(len, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DigestSign(md.get(), o, &len, Bytes(data), data.size()) != 1) Fatal("JWS signing");
  out.resize(len);
  // JWS (RFC 7518 §3.4) wants fixed-width r || s, not DER.
  if (impl_->alg == JwsAlg::kES256) return DerToJose(o, len);
  return out;
}

std::string PrivateKey::PublicJwkJson(std::string_view kid) const {
  const PublicMembers m = ReadPublicMembers(impl_->pkey.get(), impl_->alg);
  std::string out;
  switch (impl_->alg) {
    case JwsAlg::kRS256:
      out = R"({"kty":"RSA","n":")" + Base64UrlEncode(m.n) + R"(","e":")" + Base64UrlEncode(m.e) +
            '"';
      break;
    case JwsAlg::kES256:
      out = R"({"kty":"EC","crv":"P-256","x":")" + Base64UrlEncode(m.x) + R"(","y":")" +
            Base64UrlEncode(m.y) + '"';
      break;
    case JwsAlg::kEdDSA:
      out = R"({"kty":"OKP","crv":"Ed25519","x":")" + Base64UrlEncode(m.x) + '"';
      break;
  }
  out += R"(,"kid":)" + JsonString(kid) + R"(,"use":"sig","alg":")" +
         std::string(JwsAlgName(impl_->alg)) + R"("})";
  return out;
}

PublicKey PrivateKey::Public() const {
  Result<PublicKey> key = PublicOf(impl_->pkey.get(), impl_->alg);
  // Generate and FromPem only make keys whose public half passes these checks.
  if (!key.ok()) Fatal("deriving the public key");
  return std::move(key).value();
}

}  // namespace phigate::crypto
