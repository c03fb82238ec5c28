#include "crypto/certificate.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "crypto/crypto.h"
#include "crypto/key_file.h"

namespace phigate::crypto {

namespace {

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;

Status Failed(const char* step) {
  return Internal(std::string("generating the TLS certificate failed: ") + step);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Host names are matched by clients, never parsed by us; allowing only LDH characters, dots
// and a wildcard keeps anything odd out of the certificate.
bool IsDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*';
    if (!ok) return false;
  }
  return true;
}

// The names are built as ASN.1 values rather than an OpenSSL config string, so a name can
// never be read as config syntax (commas, "@section").
Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& dns_names,
                          const std::vector<std::string>& ip_addresses) {
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> names(GENERAL_NAMES_new(),
                                                                      GENERAL_NAMES_free);
  if (!names) return Failed("subjectAltName");
  auto push = [&](int type, ASN1_STRING* value) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    if (name == nullptr) {
      ASN1_STRING_free(value);
      return false;
    }
    GENERAL_NAME_set0_value(name, type, value);
    if (sk_GENERAL_NAME_push(names.get(), name) <= 0) {
      GENERAL_NAME_free(name);
      return false;
    }
    return true;
  };
  for (const std::string& dns : dns_names) {
    if (!IsDnsName(dns)) return InvalidArgument("invalid DNS name for the TLS certificate: " + dns);
    ASN1_IA5STRING* value = ASN1_IA5STRING_new();
    if (value == nullptr || ASN1_STRING_set(value, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(value);
      return Failed("subjectAltName");
    }
    if (!push(GEN_DNS, value)) return Failed("subjectAltName");
  }
  for (const std::string& ip : ip_addresses) {
    ASN1_OCTET_STRING* value = a2i_IPADDRESS(ip.c_str());
    if (value == nullptr) {
      return InvalidArgument("invalid IP address for the TLS certificate: " + ip);
    }
    if (!push(GEN_IPADD, value)) return Failed("subjectAltName");
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return Failed("subjectAltName");
  }
  return Status::Ok();
}

Status AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, decltype(&X509_EXTENSION_free)> ext(
      X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value), X509_EXTENSION_free);
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return Failed(value);
  return Status::Ok();
}

Status SetSerialAndValidity(X509* cert, int days) {
  // RFC 5280 §4.1.2.2: a positive integer of at most 20 octets; CA/Browser Forum practice
  // is at least 64 random bits. Clearing the top bit keeps the DER integer positive.
  std::string bytes = RandomBytes(16);
  bytes[0] = static_cast<char>(static_cast<unsigned char>(bytes[0]) & 0x7f);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(
      BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), 16, nullptr), BN_free);
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return Failed("serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert), 0) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, nullptr) == nullptr) {
    return Failed("validity");
  }
  return Status::Ok();
}

Result<std::string> ToPem(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0) return Failed("PEM encoding");
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

Status GenerateSelfSignedCertificate(const std::string& cert_path, const std::string& key_path,
                                     const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses, int days) {
  if (days < 1) return InvalidArgument("certificate validity must be at least one day");
  if (dns_names.empty() && ip_addresses.empty()) {
    return InvalidArgument("a TLS certificate needs at least one DNS name or IP address");
  }
  for (const std::string* path : {&cert_path, &key_path}) {
    if (Exists(*path)) return {StatusCode::kConflict, *path + ": already exists"};
  }

  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  X509Ptr cert(X509_new(), X509_free);
  if (!key || !cert) return Failed("allocation");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return Failed("public key");
  }
  RETURN_IF_ERROR(SetSerialAndValidity(cert.get(), days));

  const std::string common_name = dns_names.empty() ? "phigate" : dns_names.front();
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_issuer_name(cert.get(), name) != 1) {
    return Failed("subject name");
  }

  RETURN_IF_ERROR(AddSubjectAltNames(cert.get(), dns_names, ip_addresses));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return Failed("signature");

  // The key goes through secure memory, which is wiped when freed.
  BioPtr key_bio(BIO_new(BIO_s_secmem()), BIO_free);
  BioPtr cert_bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!key_bio || !cert_bio ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1 ||
      PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
    return Failed("PEM encoding");
  }
  ASSIGN_OR_RETURN(std::string key_pem, ToPem(key_bio.get()));
  ASSIGN_OR_RETURN(std::string cert_pem, ToPem(cert_bio.get()));
  Status written = WriteSecretFile(key_path, key_pem);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  RETURN_IF_ERROR(written);

  // The certificate is public: created through the same durable, never-overwriting path,
  // then opened up to 0644. A failure removes the key too, so a retry starts clean.
  written = WriteSecretFile(cert_path, cert_pem);
  if (written.ok() && ::chmod(cert_path.c_str(), 0644) != 0) {
    ::unlink(cert_path.c_str());
    written = Internal(cert_path + ": cannot chmod");
  }
  if (!written.ok()) ::unlink(key_path.c_str());
  return written;
}

}  // namespace phigate::crypto
