// The server's TLS policy in one place: which protocol versions, cipher suites, groups and
// options a phigate listener accepts (DESIGN.md threat model: "PHI in transit: TLS 1.2+
// only (1.3 preferred), AEAD ciphers").
//
// Thread-safety: MakeServerTlsContext is reentrant. The returned context is configured once
// and then only read (by every handshake, on any io thread), which OpenSSL allows.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "core/status.h"

namespace phigate::net {

struct TlsSettings {
  std::string certificate_file;     // PEM chain, leaf first
  std::string private_key_file;     // PEM
  std::string min_version = "1.2";  // "1.2" | "1.3"
};

// TLS 1.2 cipher suites: ECDHE (forward secrecy) with an AEAD only, in the order of
// Mozilla's "intermediate" profile; the server's order wins (SSL_OP_CIPHER_SERVER_PREFERENCE).
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// TLS 1.3 suites: OpenSSL's defaults (all AEAD), pinned so that a system openssl.cnf
// cannot widen them.
inline constexpr const char* kTls13Ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
// Key exchange groups: elliptic curves only. The finite-field groups OpenSSL also offers
// by default cost the server far more per handshake, which a client could pick on purpose.
inline constexpr const char* kGroups = "X25519:P-256:P-384";

// Builds the server context: the version range [min_version, 1.3], the suites above,
// SSL_OP_NO_COMPRESSION (CRIME), SSL_OP_NO_RENEGOTIATION, server cipher preference, no
// session tickets (their key would live for the whole process and undo forward secrecy;
// resumption uses the bounded server-side cache instead), ALPN "http/1.1" when the client
// asks, and the certificate chain and key (checked to match).
// Errors: InvalidArgument naming the option ("tls.min_version") or the file and OpenSSL's
// reason.
Result<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const TlsSettings& settings);

}  // namespace phigate::net
