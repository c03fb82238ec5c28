// A minimal HTTPS GET client for fetching an OpenID provider's discovery document and
// JWKS (DESIGN.md auth/: "JWT, JWKS, OIDC discovery"). Deliberately small: GET only,
// HTTP/1.1 with Connection: close, no redirects, no proxies, no cookies, no compression.
//
// TLS: 1.2 or 1.3, the peer's chain verified against `ca_file` (PEM bundle) or, when empty,
// the system's default store, and the host name checked against the certificate
// (SSL_set1_host; an IP-address host is checked as an IP SAN). SNI is sent for host names.
// Only the subjectAltName counts: the subject CN is never used (RFC 9525 §6.3), and
// partial-label wildcards are refused.
// An invalid certificate is an error, never a warning.
//
// Limits: one deadline (`timeout_ms`) for resolve + connect + handshake + request + whole
// response; the body is capped at `max_body_bytes`; only status 200 is success.
// Errors are kUnavailable with a short message naming the URL's host and the stage
// ("connect", "tls", "status 404", "too large", "timeout"), never a body.
//
// Thread-safety: HttpsGet is safe from any thread; each call has its own io_context and
// blocks the calling thread until done or the deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace phigate::net {

struct HttpsGetOptions {
  std::string ca_file;  // empty: OpenSSL's default verify paths
  int64_t timeout_ms = 5000;
  size_t max_body_bytes = size_t{256} * 1024;
};

// `url` must be https://host[:port]/path[?query]; host may be [v6]. kInvalidArgument for
// any other URL.
Result<std::string> HttpsGet(const std::string& url, const HttpsGetOptions& options);

}  // namespace phigate::net
