// Pipeline: the request pipeline of DESIGN.md, in one function (Pipeline::Handle) with a
// comment per stage: request id -> target checks and routing -> content negotiation ->
// authenticate -> authorize (scopes) -> handle (fhir/) -> respond with security headers
// -> PHI-free access log. Later issues insert minimize and audit stages here.
//
// Thread-safety: Handle may run concurrently on every io thread; the pipeline holds only
// references to thread-safe services.
#pragma once

#include <string>

#include "auth/endpoint.h"
#include "auth/login_endpoints.h"
#include "auth/oauth_endpoints.h"
#include "auth/token_verifier.h"
#include "core/clock.h"
#include "core/config.h"
#include "crypto/signing_key.h"
#include "fhir/model.h"
#include "fhir/resource_service.h"
#include "http/router.h"
#include "net/https_server.h"
#include "storage/store.h"

namespace phigate::http {

struct PipelineDeps {
  const Config* config = nullptr;
  storage::Store* store = nullptr;
  const fhir::Model* model = nullptr;
  fhir::ResourceService* resources = nullptr;
  const auth::TokenVerifier* verifier = nullptr;
  auth::OAuthEndpoints* oauth = nullptr;  // token, revoke, introspect, discovery
  auth::LoginEndpoints* login = nullptr;  // authorize, login, enrollment pages
  const crypto::SigningKey* signing_key = nullptr;
  const Clock* clock = nullptr;
};

class Pipeline {
 public:
  explicit Pipeline(PipelineDeps deps);

  net::Response Handle(net::Request&& request, const net::ConnectionInfo& conn);
  // Transport-level rejections from net/ (413, 431, 400, 500), with the same headers.
  // `request_id` is the client's X-Request-Id if the header was read; echoed if well formed.
  net::Response TransportError(net::http::status status, std::string_view message,
                               std::string_view request_id);

 private:
  struct Context;
  net::Response Dispatch(Context& ctx, net::Request& request, const net::ConnectionInfo& conn);
  net::Response HandleFhir(Context& ctx, net::Request& request, const Route& route);
  net::Response HandleAuthEndpoint(Context& ctx, net::Request& request, const Route& route,
                                   const net::ConnectionInfo& conn);

  PipelineDeps deps_;
  std::string base_url_;
  std::string token_url_;
  std::string hsts_;
  std::string jwks_json_;
  std::string capability_json_;
  std::string openid_configuration_json_;
  std::string smart_configuration_json_;
};

}  // namespace phigate::http
