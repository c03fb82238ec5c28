// Pipeline: the request pipeline of DESIGN.md, in one function (Pipeline::HandleAsync) with a
// comment per stage: request id -> target checks and routing -> content negotiation ->
// authenticate -> authorize (scopes) -> handle (fhir/) -> respond with security headers
// -> PHI-free access log. Authorization (issue 4) = BAA gate -> policy decision (roles ∩
// scopes ∩ purpose of use) -> break-glass -> compartment and Minimum Necessary through
// policy::ApplyView on every resource that leaves (docs/policy.md) -> audit (issue 5,
// docs/audit.md): one durable record per request before the response leaves; a change's
// record is made inside its transaction; if the trail cannot take it, 503.
//
// Thread-safety: Handle may run concurrently on every io thread; the pipeline holds only
// references to thread-safe services.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "audit/audit_log.h"
#include "audit/sink.h"
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
#include "policy/baa_gate.h"
#include "policy/break_glass.h"
#include "policy/policy.h"
#include "policy/view.h"
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
  const policy::Policy* policy = nullptr;
  const policy::BaaGate* baa = nullptr;
  policy::BreakGlass* break_glass = nullptr;
  audit::AuditSink* audit = nullptr;         // the durable audit trail (issue 5)
  audit::Directory* audit_reader = nullptr;  // the trail's directory, for its readers
  const crypto::Keyring* keyring = nullptr;  // opens the trail's records
};

class Pipeline {
 public:
  explicit Pipeline(PipelineDeps deps);

  // For net::AsyncHandler: the response is handed to `respond` once its audit record is
  // durable, so waiting for the fsync does not hold an io thread.
  void HandleAsync(net::Request&& request, const net::ConnectionInfo& conn, net::Responder respond);
  // Transport-level rejections from net/ (413, 431, 400, 500), with the same headers.
  // `request_id` is the client's X-Request-Id if the header was read; echoed if well formed.
  net::Response TransportError(net::http::status status, std::string_view message,
                               std::string_view request_id);

 private:
  struct Context;
  struct InFlight;
  // Steps 1-2 (request id, dispatch) and 4-5 (headers, access log) of HandleAsync.
  std::shared_ptr<InFlight> Begin(net::Request& request, const net::ConnectionInfo& conn);
  net::Response Finish(InFlight& f);
  net::Response Dispatch(Context& ctx, net::Request& request, const net::ConnectionInfo& conn);
  struct Access;
  net::Response HandleFhir(Context& ctx, net::Request& request, const Route& route);
  net::Response HandleAdmin(Context& ctx, net::Request& request, const Route& route);
  // Bearer authentication (RFC 6750 §2.1); sets ctx.client_id.
  Result<std::shared_ptr<const auth::Principal>> Authenticate(Context& ctx, net::Request& request,
                                                              bool token_in_query);
  net::Response Deny(Context& ctx, Status status);
  // Whether a response of `status` still needs its record.
  bool NeedsRecord(const Context& ctx, int status) const;
  // Completes ctx's event for a response of `status` (and `body`, for its error code).
  void CompleteEvent(Context& ctx, int status, std::string_view body);
  // CompleteEvent, then records it.
  Status RecordEvent(Context& ctx, int status, std::string_view body);
  // The 503 of a request whose record could not be made durable.
  net::Response AuditUnavailable(Context& ctx);
  // The write guard of a change: its record, inside the write's transaction.
  fhir::WriteGuard AuditGuard(Context& ctx);
  // /readyz: the trail takes records (probing it while it reports a failure).
  bool AuditReady();
  // The same caller's access to another type for `interaction` (the policy's decision for
  // it); its view is bound by the caller once the object is in place (Access::BindView).
  Access AccessTo(const Access& base, std::string_view type, auth::Interaction interaction) const;
  // Whether a stored resource is within the caller's reach (Reachable), as a filter's
  // answer: out of reach is false, not an error.
  Result<bool> Visible(const Access& access, std::string_view type, std::string_view text) const;
  // One search or $everything entry: shaped by `access`'s view; true (and its patients and
  // id noted in the record) if kept, false if out of the caller's reach.
  Result<bool> ServeEntry(Context& ctx, const Access& access, std::string_view type,
                          std::string_view id, std::string* text) const;
  // A search's parameters against what the caller may see (issue 4 §3), including the
  // tails of chains (checked against the target type's view) and the elements _include
  // and _revinclude follow; `access_for` gives another type's access (nullptr: not
  // readable).
  Status CheckSearchReach(std::string_view type, const QueryParams& params,
                          const policy::ElementMask& read_mask,
                          const std::function<const Access*(std::string_view)>& access_for) const;
  // Conditional interactions (issue 6 §3). The condition's matches are decided and the
  // write made under conditional_mu_ (one process; docs/search.md says what that covers).
  Result<std::vector<std::string>> ConditionalMatches(const Access& access, std::string_view type,
                                                      const QueryParams& condition);
  Result<fhir::RestResult> Create(Context& ctx, const Route& route, const Access& access,
                                  std::string_view body);
  Result<fhir::RestResult> ConditionalUpdate(Context& ctx, const Route& route, const Access& access,
                                             const QueryParams& params, std::string_view body,
                                             std::string_view if_match);
  Result<fhir::RestResult> ConditionalDelete(Context& ctx, const Route& route, const Access& access,
                                             const QueryParams& params, std::string_view if_match);
  // POST /fhir with a batch or transaction Bundle (issue 6 §4): each entry is handled
  // (authorized, audited) as a request of its own; a transaction's writes are committed
  // in one database transaction with every entry's record, or not at all.
  net::Response HandleBundle(Context& ctx, net::Request& request);
  // GET /fhir/Patient/{id}/$everything (issue 6 §5).
  Result<fhir::RestResult> Everything(Context& ctx, const Route& route, const Access& access,
                                      const QueryParams& params);
  Result<fhir::RestResult> ReadAuditTrail(Context& ctx, const Route& route, const Access& access,
                                          const QueryParams& params);
  net::Response HandleDisclosures(Context& ctx, net::Request& request, const Route& route,
                                  const auth::Principal& principal, const QueryParams& params);
  // The answer for a resource the caller's compartment does not include.
  Status OutsideCompartment() const;
  // Break-glass for every patient whose record `json` belongs to (issue 4 §5).
  Status BreakGlassFor(Context& ctx, const Access& access, std::string_view type,
                       std::string_view json);
  // Applies the view; maps kOutsideCompartment / kRestricted to their errors.
  Status Shape(const Access& access, std::string_view type, std::string& json) const;
  Result<fhir::RestResult> Interact(Context& ctx, net::Request& request, const Route& route,
                                    const Access& access, const QueryParams& params);
  Result<fhir::RestResult> UpdateOnce(Context& ctx, const Route& route, const Access& access,
                                      std::string_view body, std::string_view if_match);
  Result<fhir::RestResult> DeleteOnce(Context& ctx, const Route& route, const Access& access,
                                      std::string_view if_match);
  Result<fhir::RestResult> HideGone(const Access& access, Result<fhir::RestResult> r) const;
  Status Reachable(const Access& access, std::string_view type, std::string_view json) const;
  Status Inside(const Access& access, std::string_view type, std::string_view json,
                bool creating) const;
  Result<fhir::RestResult> ShapeResult(const Access& access, std::string_view type,
                                       Result<fhir::RestResult> r) const;
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
  bool outside_compartment_forbidden_ = false;
  // Serializes conditional interactions (decide the condition, then write) in this
  // process, so two conditional creates cannot both find no match.
  std::mutex conditional_mu_;
  // conditional_mu_, unless a transaction on this thread holds it already (until its
  // commit): then an empty lock.
  std::unique_lock<std::mutex> LockConditional();
  // Marks conditional_mu_ as held by this thread's transaction while alive.
  class ConditionalLockHeld {
   public:
    explicit ConditionalLockHeld(bool held);
    ~ConditionalLockHeld();
    ConditionalLockHeld(const ConditionalLockHeld&) = delete;
    ConditionalLockHeld& operator=(const ConditionalLockHeld&) = delete;

   private:
    bool set_;
  };
};

}  // namespace phigate::http
