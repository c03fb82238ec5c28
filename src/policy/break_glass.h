// BreakGlass: emergency access (HIPAA 164.312(a)(2)(ii); issue 4 §5). A role whose policy
// allows it (`break_glass = true`) may act under purpose of use ETREAT with an
// X-Break-Glass-Reason header; the policy then widens that role's restrictions
// (policy.h, Decision) for the patient concerned, within a time box per user and patient.
//
// Authorize(principal, patient, reason), called for every ETREAT request on a patient's
// record after the reason has been validated:
//   - an unexpired grant of (principal.subject, patient) -> ok, opened = false;
//   - otherwise a new grant is opened, which requires a person (kPermissionDenied
//     "break-glass is only for people" for system clients) who authenticated with a
//     second factor (principal.mfa) no more than `mfa_max_age_ms` ago (principal.auth_time_s);
//     else kUnauthenticated with message kRecentAuthenticationRequired (HTTP 401,
//     RFC 9470 insufficient_user_authentication with max_age);
//   - a grant that has ended cannot be reopened by the authentication that opened it
//     (grant.auth_time_ms): kPermissionDenied "the break-glass time box for this patient
//     has ended; authenticate again to open a new one". So "after the time box -> denied"
//     holds even within mfa_max_age of that authentication.
//   - opening stores the grant (storage::BreakGlassGrant, the reason sealed under the
//     keyring's data subkey with AAD "break-glass/<grant_id>") and then alerts, exactly once
//     per grant: a log line at level alert (event "break_glass.opened": grant id, user id,
//     client id, expiry; never the patient id or the reason), the counter
//     phigate_break_glass_alerts_total, and, when configured, an HTTPS POST of a PHI-free
//     JSON document {"event":"break_glass.opened","grant_id","user_id","client_id",
//     "opened","expires"} to the webhook URL, sent by a background thread (a request never
//     waits for it; failures are logged at level error, never retried into the request).
// Concurrent first requests of one (user, patient) open one grant: check-and-open is
// serialized by a mutex.
//
// ListJson: the grants opened at or after `since_ms` for GET /admin/break-glass (auditor):
// {"grants":[{"grant_id","user_id","client_id","patient":"Patient/<id>","reason",
// "opened","expires","active"}]} newest first, times as FHIR instants; the reason is
// unsealed here (the auditor reviews it).
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "auth/principal.h"
#include "core/clock.h"
#include "core/status.h"
#include "crypto/keyring.h"
#include "storage/store.h"

namespace phigate::policy {

// The Status message for a break-glass request without a recent second factor.
inline constexpr std::string_view kRecentAuthenticationRequired =
    "emergency access requires a recent multi-factor authentication";

// X-Break-Glass-Reason: 10 to 500 characters (Unicode code points) of valid UTF-8 with no
// control characters. kPermissionDenied "emergency access requires an
// X-Break-Glass-Reason header of 10 to 500 characters" otherwise (never echoes the value).
Status ValidateBreakGlassReason(std::string_view reason);

struct BreakGlassOptions {
  int64_t time_box_ms = 3'600'000;
  int64_t mfa_max_age_ms = 300'000;
  std::string webhook_url;  // empty: no webhook
  std::string webhook_ca_file;
  int64_t webhook_timeout_ms = 5000;
};

struct BreakGlassUse {
  std::string grant_id;
  bool opened = false;  // this request opened the grant (and alerted)
  int64_t expires_ms = 0;
};

class BreakGlass {
 public:
  // Sends one webhook body; the default posts it with net::HttpsPost. Tests inject one.
  using WebhookSender = std::function<Status(const std::string& url, const std::string& body)>;

  BreakGlass(storage::Store& store, const crypto::Keyring& keyring, const Clock& clock,
             BreakGlassOptions options, WebhookSender sender = nullptr);
  ~BreakGlass();  // drains nothing: pending webhooks are dropped (logged) on shutdown
  BreakGlass(const BreakGlass&) = delete;
  BreakGlass& operator=(const BreakGlass&) = delete;

  Result<BreakGlassUse> Authorize(const auth::Principal& principal, std::string_view patient_id,
                                  std::string_view reason);

  Result<std::string> ListJson(int64_t since_ms, int limit) const;

  // Webhook posts attempted so far (sent or failed), for tests.
  uint64_t webhooks_attempted() const;
  // Blocks until the webhook queue is empty (tests).
  void FlushWebhooksForTest();

 private:
  void WebhookLoop();

  storage::Store& store_;
  const crypto::Keyring& keyring_;
  const Clock& clock_;
  BreakGlassOptions options_;
  WebhookSender sender_;
  std::mutex open_mu_;  // serializes check-and-open

  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::condition_variable idle_cv_;
  std::deque<std::string> queue_;  // guarded by queue_mu_
  bool busy_ = false;              // guarded by queue_mu_
  bool stopping_ = false;          // guarded by queue_mu_
  uint64_t attempted_ = 0;         // guarded by queue_mu_
  std::thread worker_;
};

}  // namespace phigate::policy
