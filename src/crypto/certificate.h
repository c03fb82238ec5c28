// Self-signed TLS certificate for the embedded default (development) deployment.
// Thread-safety: stateless.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace phigate::crypto {

// Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate (SHA-256) with
// subjectAltName DNS:<each dns name>, IP:<each ip>, basicConstraints CA:FALSE, keyUsage
// digitalSignature, extendedKeyUsage serverAuth, valid `days` days from now. The key is
// written PKCS#8 PEM with mode 0600, the certificate PEM with 0644. Never overwrites.
Status GenerateSelfSignedCertificate(const std::string& cert_path, const std::string& key_path,
                                     const std::vector<std::string>& dns_names,
                                     const std::vector<std::string>& ip_addresses, int days);

}  // namespace phigate::crypto
