// Security events of authentication (logins, MFA, lockouts, token issuance, revocation,
// account and client administration), emitted through one interface so that the audit
// issue can record every one of them durably. Until then the default sink writes a
// PHI-free JSON log line per event.
//
// Events carry identifiers only: user ids (never usernames or passwords, which could be
// mistyped secrets), client ids, the peer address, and a fixed reason string.
//
// Thread-safety: sinks must accept Record() from any thread.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace phigate::auth {

enum class SecurityEventType {
  kLoginPasswordFailure,  // wrong username or password (user_id empty if unknown name)
  kLoginPasswordSuccess,  // password accepted; the second factor is still to come
  kMfaFailure,            // wrong, replayed or expired TOTP code
  kLoginSuccess,          // password + TOTP accepted: a session begins
  kAccountLocked,         // too many failures: locked until a backoff expires
  kAddressThrottled,      // too many failures from one network address
  kLoginRefused,          // a disabled, locked or unenrolled account tried to log in
  kTokenIssued,           // an access token was issued (any grant)
  kTokenRefreshed,        // a refresh token was rotated
  kRefreshTokenReuse,     // a rotated refresh token was presented again: family revoked
  kTokenRevoked,          // RFC 7009 revocation
  kSessionExpired,        // idle timeout or absolute lifetime reached
  kClientAuthFailure,     // a client failed to authenticate at a token endpoint
  kEnrollmentCompleted,   // a user set a password and confirmed TOTP
  kUserCreated,
  kUserDisabled,
  kMfaReset,
  kClientCreated,
  kClientBaaChanged,  // a business associate agreement recorded or revoked (reason: status)
};

std::string_view SecurityEventName(SecurityEventType type);

struct SecurityEvent {
  SecurityEventType type = SecurityEventType::kLoginPasswordFailure;
  std::string user_id;
  std::string client_id;
  std::string address;  // the peer's IP address, or "cli"
  std::string reason;   // fixed text chosen by the emitter, never input
};

class SecurityEventSink {
 public:
  virtual ~SecurityEventSink() = default;
  virtual void Record(const SecurityEvent& event) = 0;
};

// Writes each event as a "security_event" log line (core/log.h).
class LogSecurityEventSink : public SecurityEventSink {
 public:
  void Record(const SecurityEvent& event) override;
};

// Keeps events in memory, for tests.
class MemorySecurityEventSink : public SecurityEventSink {
 public:
  void Record(const SecurityEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(event);
  }
  std::vector<SecurityEvent> events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<SecurityEvent> events_;
};

}  // namespace phigate::auth
