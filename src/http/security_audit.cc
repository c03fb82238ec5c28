#include "http/security_audit.h"

#include "core/log.h"

namespace phigate::http {

namespace {
thread_local std::vector<audit::SecurityDetail>* current_scope = nullptr;
}  // namespace

SecurityEventScope::SecurityEventScope(std::vector<audit::SecurityDetail>* into)
    : previous_(current_scope) {
  current_scope = into;
}

SecurityEventScope::~SecurityEventScope() { current_scope = previous_; }

void AuditingSecurityEventSink::Record(const auth::SecurityEvent& event) {
  audit::SecurityDetail detail{std::string(auth::SecurityEventName(event.type)), event.user_id,
                               event.client_id, event.reason};
  if (current_scope != nullptr) {
    current_scope->push_back(std::move(detail));
    return;
  }
  audit::Event record;
  record.kind = audit::EventKind::kAuthentication;
  record.subtype = detail.name;
  record.action = 'E';
  record.time_ms = clock_.NowMillis();
  record.user_id = event.user_id;
  record.client_id = event.client_id;
  record.address = event.address.empty() ? address_ : event.address;
  record.security.push_back(std::move(detail));
  if (auto recorded = sink_.Record(record); !recorded.ok()) {
    Log(LogLevel::kError, "audit.security_event_not_recorded",
        {{"event", auth::SecurityEventName(event.type)}});
  }
}

}  // namespace phigate::http
