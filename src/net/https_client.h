// A minimal HTTPS client: GET for fetching an OpenID provider's discovery document and
// JWKS (DESIGN.md auth/: "JWT, JWKS, OIDC discovery"), POST for the break-glass alert
// webhook (issue 4 §5). Deliberately small: HTTP/1.1 with Connection: close, no redirects,
// no proxies, no cookies, no compression.
//
// TLS: 1.2 or 1.3, the peer's chain verified against `ca_file` (PEM bundle) or, when empty,
// the system's default store, and the host name checked against the certificate
// (SSL_set1_host; an IP-address host is checked as an IP SAN). SNI is sent for host names.
// Only the subjectAltName counts: the subject CN is never used (RFC 9525 §6.3), and
// partial-label wildcards are refused.
// An invalid certificate is an error, never a warning.
//
// Limits: one deadline (`timeout_ms`) for resolve + connect + handshake + request + whole
// response; the response body is capped at `max_body_bytes`. Success is status 200 for
// GET, any 2xx for POST (a webhook receiver may answer 200, 202 or 204).
// Errors are kUnavailable with a short message naming the URL's host and the stage
// ("connect", "tls", "status 404", "too large", "timeout"), never a body.
//
// Thread-safety: HttpsGet and HttpsPost are safe from any thread; each call has its own io_context
// and blocks the calling thread until done or the deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

// The same limits and verification apply to a POST.
using HttpsPostOptions = HttpsGetOptions;

// POSTs `body` with the given Content-Type to `url` (same URL rules as HttpsGet) and
// returns the response body of a 2xx answer.
Result<std::string> HttpsPost(const std::string& url, std::string_view content_type,
                              std::string_view body, const HttpsPostOptions& options);

}  // namespace phigate::net
