// Transport-free request and response of the authorization server's HTTP endpoints
// (/oauth2/*, enrollment, discovery). The http layer fills an EndpointRequest from the
// Beast request and copies an EndpointResponse back; auth/ never sees Beast.
// Thread-safety: value types.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phigate::auth {

struct EndpointRequest {
  std::string_view method;  // "GET", "POST"
  std::string_view query;   // raw, undecoded, without '?'
  std::string_view content_type;
  std::string_view authorization;  // the Authorization header value
  std::string_view cookie;         // the Cookie header value
  std::string_view origin;         // the Origin header value (CSRF defence in depth)
  std::string_view body;
  std::string_view remote_address;
  std::string_view user_agent;
};

struct EndpointResponse {
  int status = 200;
  std::string content_type;  // e.g. "application/json; charset=utf-8", "text/html; ..."
  std::string body;
  // Extra headers (Location, Set-Cookie, WWW-Authenticate, Content-Security-Policy,
  // Pragma, Retry-After). A Content-Security-Policy here replaces the pipeline's default.
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace phigate::auth
