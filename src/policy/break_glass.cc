// BreakGlass (issue 4 §5, HIPAA 164.312(a)(2)(ii)): grants are opened under open_mu_ so
// that the "latest grant -> open a new one" sequence is atomic within this process; the
// store keeps every grant (append-only) for the auditor's review. Alerts leave the request
// path at once: the log line and the counter are cheap, the webhook body goes to a queue
// that one background thread drains.
#include "policy/break_glass.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <exception>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "auth/password_policy.h"
#include "core/base64.h"
#include "core/log.h"
#include "core/metrics.h"
#include "crypto/crypto.h"
#include "net/https_client.h"

namespace phigate::policy {
namespace {

constexpr size_t kMinReasonCodePoints = 10;
constexpr size_t kMaxReasonCodePoints = 500;
// A UTF-8 code point takes at most 4 bytes: longer input is refused before decoding.
constexpr size_t kMaxReasonBytes = kMaxReasonCodePoints * 4;
// 128 random bits name a grant (hex).
constexpr size_t kGrantIdBytes = 16;
// Alerts waiting for the webhook thread. Grants are rare; a backlog this long means the
// receiver is down, and the log line and counter have alerted already.
constexpr size_t kMaxPendingWebhooks = 1000;

constexpr std::string_view kInvalidReason =
    "emergency access requires an X-Break-Glass-Reason header of 10 to 500 characters";
constexpr std::string_view kOnlyPeople = "break-glass is only for people";
constexpr std::string_view kTimeBoxEnded =
    "the break-glass time box for this patient has ended; authenticate again to open a new one";

Status PermissionDenied(std::string_view message) {
  return {StatusCode::kPermissionDenied, std::string(message)};
}

// The AAD binds a sealed reason to its grant: a reason copied onto another grant's row
// does not open.
std::string ReasonAad(std::string_view grant_id) { return "break-glass/" + std::string(grant_id); }

// True for a C0 control or DEL (one byte each) or a C1 control (U+0080..U+009F, encoded
// as 0xC2 0x80..0x9F). Only meaningful on valid UTF-8, where 0xC2 is always a lead byte.
bool HasControlCharacter(std::string_view utf8) {
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto b = static_cast<unsigned char>(utf8[i]);
    if (b < 0x20 || b == 0x7F) return true;
    if (b == 0xC2 && i + 1 < utf8.size()) {
      const auto next = static_cast<unsigned char>(utf8[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

}  // namespace

Status ValidateBreakGlassReason(std::string_view reason) {
  if (reason.size() > kMaxReasonBytes) return PermissionDenied(kInvalidReason);
  const std::optional<size_t> length = auth::CountCodePoints(reason);
  if (!length || *length < kMinReasonCodePoints || *length > kMaxReasonCodePoints ||
      HasControlCharacter(reason)) {
    return PermissionDenied(kInvalidReason);
  }
  return Status::Ok();
}

BreakGlass::BreakGlass(storage::Store& store, const crypto::Keyring& keyring, const Clock& clock,
                       BreakGlassOptions options, WebhookSender sender)
    : store_(store),
      keyring_(keyring),
      clock_(clock),
      options_(std::move(options)),
      sender_(std::move(sender)) {
  if (options_.webhook_url.empty()) return;  // no webhook, no thread
  if (!sender_) {
    net::HttpsPostOptions post;
    post.ca_file = options_.webhook_ca_file;
    post.timeout_ms = options_.webhook_timeout_ms;
    sender_ = [post](const std::string& url, const std::string& body) -> Status {
      Result<std::string> answer = net::HttpsPost(url, "application/json", body, post);
      return answer.ok() ? Status::Ok() : answer.status();
    };
  }
  worker_ = std::thread([this] { WebhookLoop(); });
}

BreakGlass::~BreakGlass() {
  size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
    dropped = queue_.size();
    queue_.clear();
  }
  queue_cv_.notify_all();
  idle_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (dropped > 0) {
    Log(LogLevel::kError, "break_glass.webhook_dropped",
        {{"cause", "shutdown"}, {"count", static_cast<uint64_t>(dropped)}});
  }
}

Result<BreakGlassUse> BreakGlass::Authorize(const auth::Principal& principal,
                                            std::string_view patient_id, std::string_view reason) {
  // A system client acts for nobody in particular: emergency access is a person's
  // accountable decision (checked first, so that no client id can ever match a grant).
  if (principal.kind != auth::PrincipalKind::kPerson) return PermissionDenied(kOnlyPeople);

  std::lock_guard<std::mutex> lock(open_mu_);
  const int64_t now_ms = clock_.NowMillis();
  const std::string patient(patient_id);
  ASSIGN_OR_RETURN(std::optional<storage::BreakGlassGrant> latest,
                   store_.LatestBreakGlassGrant(principal.subject, patient));
  if (latest && now_ms < latest->expires_ms) {
    return BreakGlassUse{latest->grant_id, false, latest->expires_ms};
  }

  // 0 (unknown) for a missing or absurd auth_time, so that the arithmetic cannot overflow.
  const bool auth_time_known = principal.auth_time_s > 0 &&
                               principal.auth_time_s <= std::numeric_limits<int64_t>::max() / 1000;
  const int64_t auth_time_ms = auth_time_known ? principal.auth_time_s * 1000 : 0;
  // The authentication that opened the last grant (or an older one) cannot open another:
  // otherwise a time box would be extended by simply asking again.
  if (latest && auth_time_ms <= latest->auth_time_ms) return PermissionDenied(kTimeBoxEnded);
  // A recent second factor (issue 4 §5): the person at the keyboard proved themselves
  // again moments ago, so a stolen, long-lived session cannot break the glass.
  if (!principal.mfa || !auth_time_known || now_ms - auth_time_ms > options_.mfa_max_age_ms) {
    return Status(StatusCode::kUnauthenticated, std::string(kRecentAuthenticationRequired));
  }

  storage::BreakGlassGrant grant;
  grant.grant_id = HexEncode(crypto::RandomBytes(kGrantIdBytes));
  grant.user_id = principal.subject;
  grant.client_id = principal.client_id;
  grant.patient_id = patient;
  ASSIGN_OR_RETURN(grant.reason_sealed,
                   keyring_.Seal(crypto::KeyPurpose::kData, reason, ReasonAad(grant.grant_id),
                                 &grant.key_version));
  grant.opened_ms = now_ms;
  grant.expires_ms = now_ms + options_.time_box_ms;
  grant.auth_time_ms = auth_time_ms;
  RETURN_IF_ERROR(store_.PutBreakGlassGrant(grant));

  // The alert, once per grant: only ids and times, never the patient or the reason.
  const std::string opened = FormatInstant(grant.opened_ms);
  const std::string expires = FormatInstant(grant.expires_ms);
  Log(LogLevel::kAlert, "break_glass.opened",
      {{"grant_id", grant.grant_id},
       {"user_id", grant.user_id},
       {"client_id", grant.client_id},
       {"expires", expires}});
  static Counter& alerts = GetCounter("phigate_break_glass_alerts_total",
                                      "Break-glass (emergency access) grants opened.");
  alerts.Inc();
  if (worker_.joinable()) {
    boost::json::object body;
    body["event"] = "break_glass.opened";
    body["grant_id"] = grant.grant_id;
    body["user_id"] = grant.user_id;
    body["client_id"] = grant.client_id;
    body["opened"] = opened;
    body["expires"] = expires;
    bool queued = false;
    {
      std::lock_guard<std::mutex> queue_lock(queue_mu_);
      if (queue_.size() < kMaxPendingWebhooks) {
        queue_.push_back(boost::json::serialize(body));
        queued = true;
      }
    }
    if (queued) {
      queue_cv_.notify_one();
    } else {
      Log(LogLevel::kError, "break_glass.webhook_dropped",
          {{"cause", "queue full"}, {"grant_id", grant.grant_id}});
    }
  }
  return BreakGlassUse{grant.grant_id, true, grant.expires_ms};
}

void BreakGlass::WebhookLoop() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  while (true) {
    queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    std::string body = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    Status sent;
    try {
      sent = sender_(options_.webhook_url, body);
    } catch (const std::exception&) {
      sent = Internal("webhook sender failed");
    }
    // The error names the receiver's host and the stage that failed, never the body.
    if (!sent.ok())
      Log(LogLevel::kError, "break_glass.webhook_failed", {{"error", sent.message()}});
    lock.lock();
    ++attempted_;
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  busy_ = false;
  idle_cv_.notify_all();
}

uint64_t BreakGlass::webhooks_attempted() const {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return attempted_;
}

void BreakGlass::FlushWebhooksForTest() {
  std::unique_lock<std::mutex> lock(queue_mu_);
  idle_cv_.wait(lock, [this] { return stopping_ || (queue_.empty() && !busy_); });
}

Result<std::string> BreakGlass::ListJson(int64_t since_ms, int limit) const {
  if (limit <= 0) return InvalidArgument("limit must be positive");
  ASSIGN_OR_RETURN(std::vector<storage::BreakGlassGrant> grants,
                   store_.ListBreakGlassGrants(since_ms, limit));
  const int64_t now_ms = clock_.NowMillis();
  boost::json::array list;
  list.reserve(grants.size());
  for (const storage::BreakGlassGrant& grant : grants) {
    Result<std::string> reason = keyring_.Open(crypto::KeyPurpose::kData, grant.key_version,
                                               grant.reason_sealed, ReasonAad(grant.grant_id));
    if (!reason.ok()) {
      // A reason that does not open under its own grant's AAD was altered or moved.
      Log(LogLevel::kError, "break_glass.reason_unreadable", {{"grant_id", grant.grant_id}});
      return Internal("a break-glass reason cannot be read");
    }
    boost::json::object item;
    item["grant_id"] = grant.grant_id;
    item["user_id"] = grant.user_id;
    item["client_id"] = grant.client_id;
    item["patient"] = "Patient/" + grant.patient_id;
    item["reason"] = *reason;
    item["opened"] = FormatInstant(grant.opened_ms);
    item["expires"] = FormatInstant(grant.expires_ms);
    item["active"] = now_ms < grant.expires_ms;
    list.emplace_back(std::move(item));
  }
  boost::json::object document;
  document["grants"] = std::move(list);
  return boost::json::serialize(document);
}

}  // namespace phigate::policy
