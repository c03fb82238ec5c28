// SecurityAudit: routes the authentication layer's security events (auth/security_events.h)
// into the audit trail (issue 5 §1). During a request, Pipeline::HandleAsync opens a
// SecurityEventScope on its thread, and every event emitted while serving it joins that
// request's one audit record (which is durable before the response leaves, or the request
// fails closed). An event emitted outside any request (a command, a background task) is
// recorded at once as its own authentication record; if that fails it is logged, since
// the emitter has no way to fail.
// Thread-safety: Record may be called from any thread; a scope belongs to its thread.
#pragma once

#include <vector>

#include "audit/event.h"
#include "audit/sink.h"
#include "auth/security_events.h"
#include "core/clock.h"

namespace phigate::http {

class AuditingSecurityEventSink : public auth::SecurityEventSink {
 public:
  // `address`: what a record made outside a request names as the peer ("cli").
  AuditingSecurityEventSink(audit::AuditSink& sink, const Clock& clock, std::string address)
      : sink_(sink), clock_(clock), address_(std::move(address)) {}
  void Record(const auth::SecurityEvent& event) override;

 private:
  audit::AuditSink& sink_;
  const Clock& clock_;
  const std::string address_;
};

// While alive, security events emitted on this thread are appended to `*into`.
class SecurityEventScope {
 public:
  explicit SecurityEventScope(std::vector<audit::SecurityDetail>* into);
  ~SecurityEventScope();
  SecurityEventScope(const SecurityEventScope&) = delete;
  SecurityEventScope& operator=(const SecurityEventScope&) = delete;

 private:
  std::vector<audit::SecurityDetail>* previous_;
};

}  // namespace phigate::http
