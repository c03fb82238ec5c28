#include "auth/security_events.h"

#include "core/log.h"

namespace phigate::auth {

std::string_view SecurityEventName(SecurityEventType type) {
  switch (type) {
    case SecurityEventType::kLoginPasswordFailure:
      return "login_password_failure";
    case SecurityEventType::kLoginPasswordSuccess:
      return "login_password_success";
    case SecurityEventType::kMfaFailure:
      return "mfa_failure";
    case SecurityEventType::kLoginSuccess:
      return "login_success";
    case SecurityEventType::kAccountLocked:
      return "account_locked";
    case SecurityEventType::kAddressThrottled:
      return "address_throttled";
    case SecurityEventType::kLoginRefused:
      return "login_refused";
    case SecurityEventType::kTokenIssued:
      return "token_issued";
    case SecurityEventType::kTokenRefreshed:
      return "token_refreshed";
    case SecurityEventType::kRefreshTokenReuse:
      return "refresh_token_reuse";
    case SecurityEventType::kTokenRevoked:
      return "token_revoked";
    case SecurityEventType::kSessionExpired:
      return "session_expired";
    case SecurityEventType::kClientAuthFailure:
      return "client_auth_failure";
    case SecurityEventType::kEnrollmentCompleted:
      return "enrollment_completed";
    case SecurityEventType::kUserCreated:
      return "user_created";
    case SecurityEventType::kUserDisabled:
      return "user_disabled";
    case SecurityEventType::kMfaReset:
      return "mfa_reset";
    case SecurityEventType::kClientCreated:
      return "client_created";
    case SecurityEventType::kClientBaaChanged:
      return "client_baa_changed";
  }
  return "unknown";
}

void LogSecurityEventSink::Record(const SecurityEvent& event) {
  // Ids and fixed reasons only (see the header): nothing here was typed by a person.
  Log(LogLevel::kInfo, "security_event",
      {{"event", SecurityEventName(event.type)},
       {"user_id", event.user_id},
       {"client_id", event.client_id},
       {"address", event.address},
       {"reason", event.reason}});
}

}  // namespace phigate::auth
