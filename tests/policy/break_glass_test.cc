#include "policy/break_glass.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/metrics.h"
#include "crypto/crypto.h"
#include "net/https_server.h"
#include "net/test_tls_files.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::policy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2027-01-15T08:00:00.000Z, a whole second so that auth_time (seconds) lines up.
constexpr int64_t kStartMs = 1'800'000'000'000;
constexpr std::string_view kReason = "Unconscious patient in the ED, no consent possible";
constexpr std::string_view kInvalidReason =
    "emergency access requires an X-Break-Glass-Reason header of 10 to 500 characters";
constexpr std::string_view kTimeBoxEnded =
    "the break-glass time box for this patient has ended; authenticate again to open a new one";

uint64_t AlertCount() { return GetCounter("phigate_break_glass_alerts_total", "").Value(); }

std::string Repeat(std::string_view unit, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += unit;
  return out;
}

// Captures log lines written while it is alive (the logger is process-wide).
class LogCapture {
 public:
  LogCapture() : file_(std::tmpfile()) { SetLogFd(::fileno(file_)); }
  ~LogCapture() {
    SetLogFd(2);
    std::fclose(file_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string Text() const {
    std::rewind(file_);
    std::string text;
    char chunk[4096];
    size_t n = 0;
    while ((n = std::fread(chunk, 1, sizeof chunk, file_)) > 0) text.append(chunk, n);
    return text;
  }
  // The lines whose event is `event`, parsed.
  std::vector<boost::json::object> Events(std::string_view event) const {
    std::vector<boost::json::object> found;
    std::istringstream lines(Text());
    std::string line;
    while (std::getline(lines, line)) {
      boost::json::value value = boost::json::parse(line);
      if (value.as_object().at("event").as_string() == event) found.push_back(value.as_object());
    }
    return found;
  }

 private:
  std::FILE* file_;
};

std::set<std::string> Keys(const boost::json::object& object) {
  std::set<std::string> keys;
  for (const auto& entry : object) keys.insert(std::string(entry.key()));
  return keys;
}

// Records every webhook body; answers with `result`.
struct RecordingSender {
  std::mutex mu;
  std::vector<std::string> urls;    // guarded by mu
  std::vector<std::string> bodies;  // guarded by mu
  Status result;

  BreakGlass::WebhookSender Sender() {
    return [this](const std::string& url, const std::string& body) {
      std::lock_guard<std::mutex> lock(mu);
      urls.push_back(url);
      bodies.push_back(body);
      return result;
    };
  }
  std::vector<std::string> Bodies() {
    std::lock_guard<std::mutex> lock(mu);
    return bodies;
  }
};

class BreakGlassTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("phigate-break-glass-test-" + crypto::RandomToken(12));
    std::filesystem::create_directory(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
    storage::SqliteOptions options;
    options.path = (dir_ / "phigate.db").string();
    options.read_connections = 1;
    Result<std::unique_ptr<storage::Store>> store = storage::OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status().message();
    store_ = std::move(store).value();
    keyring_ = std::move(crypto::Keyring::Open(crypto::RandomBytes(32), {})).value();
    ASSERT_TRUE(keyring_->AddVersion().ok());
    options_.webhook_url = "https://alerts.example/hook";
  }

  void TearDown() override {
    break_glass_.reset();
    store_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  BreakGlass& Make() {
    break_glass_ =
        std::make_unique<BreakGlass>(*store_, *keyring_, clock_, options_, sender_.Sender());
    return *break_glass_;
  }

  // A clinician who authenticated with a second factor `auth_age_s` seconds ago.
  auth::Principal Person(int64_t auth_age_s = 0, std::string subject = "user-1") const {
    auth::Principal principal;
    principal.kind = auth::PrincipalKind::kPerson;
    principal.subject = std::move(subject);
    principal.client_id = "ehr-app";
    principal.roles = {"clinician"};
    principal.amr = {"pwd", "otp"};
    principal.mfa = true;
    principal.auth_time_s = clock_.NowSeconds() - auth_age_s;
    return principal;
  }

  // Every byte the database has on disk (main file, WAL, journal).
  std::string DatabaseBytes() const {
    std::string bytes;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      std::ifstream in(entry.path(), std::ios::binary);
      bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return bytes;
  }

  std::filesystem::path dir_;
  FakeClock clock_{kStartMs};
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<crypto::Keyring> keyring_;
  BreakGlassOptions options_;
  RecordingSender sender_;
  std::unique_ptr<BreakGlass> break_glass_;
};

// --- The reason header -----------------------------------------------------------------

TEST(BreakGlassReasonTest, TenToFiveHundredCodePointsAreAccepted) {
  for (const std::string& reason : std::initializer_list<std::string>{
           Repeat("a", 10), Repeat("a", 500),
           Repeat("\xc3\xa9", 10),           // é: 20 bytes, 10 code points
           Repeat("\xf0\x9f\x9a\x91", 500),  // 🚑: 2000 bytes, 500 code points
           "No\xc2\xa0"
           "breathing",                         // U+00A0 (no-break space) is not a control
           "Patient bewusstlos, \xe2\x82\xac",  // mixed widths
       }) {
    EXPECT_TRUE(ValidateBreakGlassReason(reason).ok()) << reason;
  }
}

TEST(BreakGlassReasonTest, TooShortTooLongInvalidOrControlIsDeniedWithoutEchoingIt) {
  for (const std::string& reason : std::initializer_list<std::string>{
           "", Repeat("a", 9), Repeat("a", 501),
           Repeat("\xe2\x82\xac", 9),        // €: 27 bytes but 9 code points
           Repeat("\xf0\x9f\x9a\x91", 501),  // 2004 bytes, 501 code points
           "Unconscious\tpatient",           // C0 (tab)
           "Unconscious\npatient",           // C0 (line feed: header injection)
           std::string("Unconscious\0patient", 19),
           "Unconscious\x7fpatient",          // DEL
           "Unconscious\xc2\x85patient",      // U+0085 NEL (C1)
           "Unconscious\xc2\x9fpatient",      // U+009F (last C1)
           "Unconscious\xffpatient",          // not UTF-8
           "Unconscious\xc0\xafpatient",      // overlong '/'
           "Unconscious\xed\xa0\x80patient",  // a UTF-16 surrogate
           "Unconscious patient\xe2\x82",     // truncated
       }) {
    const Status status = ValidateBreakGlassReason(reason);
    ASSERT_FALSE(status.ok()) << reason;
    EXPECT_EQ(status.code(), StatusCode::kPermissionDenied);
    EXPECT_EQ(status.message(), kInvalidReason);
  }
}

// --- Who may open a grant --------------------------------------------------------------

TEST_F(BreakGlassTest, SystemClientIsRefused) {
  BreakGlass& break_glass = Make();
  auth::Principal system = Person();
  system.kind = auth::PrincipalKind::kSystem;
  system.subject = "backend-service";
  const uint64_t alerts = AlertCount();
  Result<BreakGlassUse> use = break_glass.Authorize(system, "p1", kReason);
  ASSERT_FALSE(use.ok());
  EXPECT_EQ(use.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(use.status().message(), "break-glass is only for people");
  EXPECT_FALSE(store_->LatestBreakGlassGrant("backend-service", "p1")->has_value());
  EXPECT_EQ(AlertCount(), alerts);
}

TEST_F(BreakGlassTest, PersonWithoutSecondFactorMustAuthenticateAgain) {
  BreakGlass& break_glass = Make();
  auth::Principal no_mfa = Person();
  no_mfa.mfa = false;
  no_mfa.amr = {"pwd"};
  auth::Principal no_auth_time = Person();
  no_auth_time.auth_time_s = 0;
  for (const auth::Principal& principal : {no_mfa, no_auth_time}) {
    Result<BreakGlassUse> use = break_glass.Authorize(principal, "p1", kReason);
    ASSERT_FALSE(use.ok());
    EXPECT_EQ(use.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(use.status().message(), kRecentAuthenticationRequired);
  }
  EXPECT_FALSE(store_->LatestBreakGlassGrant("user-1", "p1")->has_value());
}

TEST_F(BreakGlassTest, SecondFactorOlderThanTheMaxAgeMustBeRepeated) {
  BreakGlass& break_glass = Make();
  // 300 s is the limit (5 minutes): one second more is too old.
  Result<BreakGlassUse> use = break_glass.Authorize(Person(301), "p1", kReason);
  ASSERT_FALSE(use.ok());
  EXPECT_EQ(use.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(use.status().message(), kRecentAuthenticationRequired);
  EXPECT_FALSE(store_->LatestBreakGlassGrant("user-1", "p1")->has_value());

  use = break_glass.Authorize(Person(300), "p1", kReason);
  ASSERT_TRUE(use.ok()) << use.status().message();
  EXPECT_TRUE(use->opened);
}

// --- Opening and alerting --------------------------------------------------------------

TEST_F(BreakGlassTest, OpeningStoresASealedGrantAndAlertsOnce) {
  BreakGlass& break_glass = Make();
  const uint64_t alerts = AlertCount();
  LogCapture log;
  Result<BreakGlassUse> use = break_glass.Authorize(Person(10), "patient-4711", kReason);
  ASSERT_TRUE(use.ok()) << use.status().message();
  break_glass.FlushWebhooksForTest();

  EXPECT_TRUE(use->opened);
  EXPECT_EQ(use->expires_ms, kStartMs + 3'600'000);
  EXPECT_EQ(use->grant_id.size(), 32u);
  EXPECT_EQ(use->grant_id.find_first_not_of("0123456789abcdef"), std::string::npos);

  // The stored grant: the reason only sealed, bound to its grant id.
  Result<std::optional<storage::BreakGlassGrant>> stored =
      store_->LatestBreakGlassGrant("user-1", "patient-4711");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  const storage::BreakGlassGrant& grant = **stored;
  EXPECT_EQ(grant.grant_id, use->grant_id);
  EXPECT_EQ(grant.user_id, "user-1");
  EXPECT_EQ(grant.client_id, "ehr-app");
  EXPECT_EQ(grant.patient_id, "patient-4711");
  EXPECT_EQ(grant.opened_ms, kStartMs);
  EXPECT_EQ(grant.expires_ms, kStartMs + 3'600'000);
  EXPECT_EQ(grant.auth_time_ms, kStartMs - 10'000);
  EXPECT_EQ(grant.key_version, keyring_->current_version());
  EXPECT_THAT(grant.reason_sealed, Not(HasSubstr(std::string(kReason))));
  Result<std::string> opened = keyring_->Open(crypto::KeyPurpose::kData, grant.key_version,
                                              grant.reason_sealed, "break-glass/" + grant.grant_id);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_EQ(*opened, kReason);
  EXPECT_FALSE(keyring_
                   ->Open(crypto::KeyPurpose::kData, grant.key_version, grant.reason_sealed,
                          "break-glass/another-grant")
                   .ok());
  EXPECT_THAT(DatabaseBytes(), Not(HasSubstr(std::string(kReason))));

  // Alerted exactly once: counter, log line, webhook.
  EXPECT_EQ(AlertCount(), alerts + 1);
  const std::vector<boost::json::object> lines = log.Events("break_glass.opened");
  ASSERT_EQ(lines.size(), 1u);
  const boost::json::object& line = lines[0];
  EXPECT_EQ(Keys(line), (std::set<std::string>{"time", "level", "event", "grant_id", "user_id",
                                               "client_id", "expires"}));
  EXPECT_EQ(line.at("level").as_string(), "alert");
  EXPECT_EQ(line.at("grant_id").as_string(), use->grant_id);
  EXPECT_EQ(line.at("user_id").as_string(), "user-1");
  EXPECT_EQ(line.at("client_id").as_string(), "ehr-app");
  EXPECT_EQ(line.at("expires").as_string(), "2027-01-15T09:00:00.000Z");
  EXPECT_THAT(log.Text(), Not(HasSubstr("patient-4711")));
  EXPECT_THAT(log.Text(), Not(HasSubstr("Unconscious")));

  EXPECT_EQ(break_glass.webhooks_attempted(), 1u);
  const std::vector<std::string> bodies = sender_.Bodies();
  ASSERT_EQ(bodies.size(), 1u);
  EXPECT_EQ(sender_.urls[0], "https://alerts.example/hook");
  const boost::json::object body = boost::json::parse(bodies[0]).as_object();
  EXPECT_EQ(Keys(body), (std::set<std::string>{"event", "grant_id", "user_id", "client_id",
                                               "opened", "expires"}));
  EXPECT_EQ(body.at("event").as_string(), "break_glass.opened");
  EXPECT_EQ(body.at("grant_id").as_string(), use->grant_id);
  EXPECT_EQ(body.at("user_id").as_string(), "user-1");
  EXPECT_EQ(body.at("client_id").as_string(), "ehr-app");
  EXPECT_EQ(body.at("opened").as_string(), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(body.at("expires").as_string(), "2027-01-15T09:00:00.000Z");
  EXPECT_THAT(bodies[0], Not(HasSubstr("patient-4711")));
  EXPECT_THAT(bodies[0], Not(HasSubstr("Unconscious")));
}

TEST_F(BreakGlassTest, LaterRequestsWithinTheTimeBoxUseTheGrantWithoutAlerting) {
  BreakGlass& break_glass = Make();
  Result<BreakGlassUse> first = break_glass.Authorize(Person(), "p1", kReason);
  ASSERT_TRUE(first.ok()) << first.status().message();
  break_glass.FlushWebhooksForTest();
  const uint64_t alerts = AlertCount();
  LogCapture log;

  // Even when the second factor has aged past the max age: the grant is open.
  for (int64_t offset : {int64_t{1000}, int64_t{600'000}, int64_t{3'600'000 - 1}}) {
    clock_.Set(kStartMs + offset);
    Result<BreakGlassUse> again =
        break_glass.Authorize(Person(offset / 1000 + 1), "p1", "another reason, still valid");
    ASSERT_TRUE(again.ok()) << offset << ": " << again.status().message();
    EXPECT_FALSE(again->opened);
    EXPECT_EQ(again->grant_id, first->grant_id);
    EXPECT_EQ(again->expires_ms, first->expires_ms);
  }
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(AlertCount(), alerts);
  EXPECT_TRUE(log.Events("break_glass.opened").empty());
  EXPECT_EQ(break_glass.webhooks_attempted(), 1u);
  EXPECT_EQ(sender_.Bodies().size(), 1u);
  EXPECT_EQ(store_->ListBreakGlassGrants(0, 10)->size(), 1u);
}

TEST_F(BreakGlassTest, AfterTheTimeBoxTheSameAuthenticationIsDenied) {
  options_.mfa_max_age_ms = 2 * 3'600'000;  // the authentication itself is still "recent"
  BreakGlass& break_glass = Make();
  const auth::Principal principal = Person();
  Result<BreakGlassUse> first = break_glass.Authorize(principal, "p1", kReason);
  ASSERT_TRUE(first.ok()) << first.status().message();
  const uint64_t alerts = AlertCount();

  clock_.Set(first->expires_ms);  // the box is [opened, expires)
  Result<BreakGlassUse> after = break_glass.Authorize(principal, "p1", kReason);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(after.status().message(), kTimeBoxEnded);
  EXPECT_EQ(AlertCount(), alerts);
  EXPECT_EQ(store_->ListBreakGlassGrants(0, 10)->size(), 1u);
}

TEST_F(BreakGlassTest, AfterTheTimeBoxWithDefaultsTheOldAuthenticationIsDenied) {
  BreakGlass& break_glass = Make();
  const auth::Principal principal = Person();
  ASSERT_TRUE(break_glass.Authorize(principal, "p1", kReason).ok());
  clock_.Advance(3'600'000 + 1);
  Result<BreakGlassUse> after = break_glass.Authorize(principal, "p1", kReason);
  ASSERT_FALSE(after.ok());
  EXPECT_EQ(after.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(after.status().message(), kTimeBoxEnded);
}

TEST_F(BreakGlassTest, AfterTheTimeBoxANewAuthenticationOpensANewGrantAndAlertsAgain) {
  BreakGlass& break_glass = Make();
  Result<BreakGlassUse> first = break_glass.Authorize(Person(), "p1", kReason);
  ASSERT_TRUE(first.ok()) << first.status().message();
  const uint64_t alerts = AlertCount();

  clock_.Advance(3'600'000 + 5'000);
  // Without a fresh second factor the old grant's authentication is too old anyway...
  Result<BreakGlassUse> stale = break_glass.Authorize(Person(3'605), "p1", kReason);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().message(), kTimeBoxEnded);
  // ...a newer one that is also old enough to fail the max age asks for authentication...
  Result<BreakGlassUse> old = break_glass.Authorize(Person(1'000), "p1", kReason);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.status().code(), StatusCode::kUnauthenticated);
  // ...and a recent one opens a new grant.
  Result<BreakGlassUse> second = break_glass.Authorize(Person(2), "p1", kReason);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_TRUE(second->opened);
  EXPECT_NE(second->grant_id, first->grant_id);
  EXPECT_EQ(second->expires_ms, clock_.NowMillis() + 3'600'000);
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(AlertCount(), alerts + 1);
  EXPECT_EQ(break_glass.webhooks_attempted(), 2u);
  const std::vector<std::string> bodies = sender_.Bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(boost::json::parse(bodies[1]).at("grant_id").as_string(), second->grant_id);
}

TEST_F(BreakGlassTest, EachPatientAndEachUserGetTheirOwnGrant) {
  BreakGlass& break_glass = Make();
  const uint64_t alerts = AlertCount();
  Result<BreakGlassUse> p1 = break_glass.Authorize(Person(), "p1", kReason);
  Result<BreakGlassUse> p2 = break_glass.Authorize(Person(), "p2", kReason);
  Result<BreakGlassUse> other_user = break_glass.Authorize(Person(0, "user-2"), "p1", kReason);
  ASSERT_TRUE(p1.ok() && p2.ok() && other_user.ok());
  EXPECT_TRUE(p1->opened);
  EXPECT_TRUE(p2->opened);
  EXPECT_TRUE(other_user->opened);
  EXPECT_NE(p1->grant_id, p2->grant_id);
  EXPECT_NE(p1->grant_id, other_user->grant_id);
  EXPECT_EQ(store_->LatestBreakGlassGrant("user-1", "p2")->value().grant_id, p2->grant_id);
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(AlertCount(), alerts + 3);
  EXPECT_EQ(sender_.Bodies().size(), 3u);
}

TEST_F(BreakGlassTest, ConcurrentFirstRequestsOpenOneGrantAndAlertOnce) {
  BreakGlass& break_glass = Make();
  const uint64_t alerts = AlertCount();
  constexpr int kThreads = 8;
  std::promise<void> go;
  std::shared_future<void> start = go.get_future().share();
  std::vector<std::future<Result<BreakGlassUse>>> results;
  for (int i = 0; i < kThreads; ++i) {
    results.push_back(std::async(std::launch::async, [&, start] {
      start.wait();
      return break_glass.Authorize(Person(), "p1", kReason);
    }));
  }
  go.set_value();
  int opened = 0;
  std::set<std::string> grant_ids;
  for (auto& result : results) {
    Result<BreakGlassUse> use = result.get();
    ASSERT_TRUE(use.ok()) << use.status().message();
    opened += use->opened ? 1 : 0;
    grant_ids.insert(use->grant_id);
  }
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(grant_ids.size(), 1u);
  EXPECT_EQ(store_->ListBreakGlassGrants(0, 100)->size(), 1u);
  EXPECT_EQ(AlertCount(), alerts + 1);
  EXPECT_EQ(sender_.Bodies().size(), 1u);
}

// --- The webhook -----------------------------------------------------------------------

TEST_F(BreakGlassTest, WebhookFailureIsLoggedAndDoesNotFailTheRequest) {
  sender_.result = Unavailable("alerts.example: connect");
  BreakGlass& break_glass = Make();
  LogCapture log;
  Result<BreakGlassUse> use = break_glass.Authorize(Person(), "p1", kReason);
  ASSERT_TRUE(use.ok()) << use.status().message();
  EXPECT_TRUE(use->opened);
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(break_glass.webhooks_attempted(), 1u);
  const std::vector<boost::json::object> failures = log.Events("break_glass.webhook_failed");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].at("level").as_string(), "error");
  EXPECT_EQ(failures[0].at("error").as_string(), "alerts.example: connect");
  // Not retried into later requests.
  ASSERT_TRUE(break_glass.Authorize(Person(), "p1", kReason).ok());
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(break_glass.webhooks_attempted(), 1u);
}

TEST_F(BreakGlassTest, RequestNeverWaitsForTheWebhook) {
  // The sender blocks until the test releases it (or gives up after 10 s, which a
  // synchronous send would make Authorize wait for, and which the test then reports).
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  std::atomic<bool> gave_up{false};
  break_glass_ = std::make_unique<BreakGlass>(
      *store_, *keyring_, clock_, options_,
      [&calls, &gave_up, released](const std::string&, const std::string&) {
        ++calls;
        if (released.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
          gave_up = true;
        }
        return Status::Ok();
      });
  Result<BreakGlassUse> use = break_glass_->Authorize(Person(), "p1", kReason);
  ASSERT_TRUE(use.ok()) << use.status().message();
  EXPECT_TRUE(use->opened);
  EXPECT_FALSE(gave_up.load()) << "Authorize waited for the webhook";
  release.set_value();
  break_glass_->FlushWebhooksForTest();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_FALSE(gave_up.load());
  EXPECT_EQ(break_glass_->webhooks_attempted(), 1u);
}

TEST_F(BreakGlassTest, WithoutAWebhookUrlNothingIsSent) {
  options_.webhook_url.clear();
  BreakGlass& break_glass = Make();
  const uint64_t alerts = AlertCount();
  ASSERT_TRUE(break_glass.Authorize(Person(), "p1", kReason).ok());
  break_glass.FlushWebhooksForTest();
  EXPECT_EQ(AlertCount(), alerts + 1);  // the log line and the counter still alert
  EXPECT_EQ(break_glass.webhooks_attempted(), 0u);
  EXPECT_TRUE(sender_.Bodies().empty());
}

TEST_F(BreakGlassTest, DefaultSenderPostsToAnHttpsReceiver) {
  std::mutex mu;
  std::vector<std::string> received;  // "METHOD target content-type body", guarded by mu
  net::ServerOptions server_options;
  server_options.port = 0;
  server_options.threads = 1;
  server_options.certificate_file = net::test_support::TestTlsFiles().certificate;
  server_options.private_key_file = net::test_support::TestTlsFiles().private_key;
  server_options.shutdown_grace_ms = 100;
  server_options.handle_signals = false;
  net::HttpsServer server(
      server_options,
      [&](net::Request&& request, const net::ConnectionInfo&) {
        {
          std::lock_guard<std::mutex> lock(mu);
          received.push_back(
              std::string(request.method_string()) + " " + std::string(request.target()) + " " +
              std::string(request[net::http::field::content_type]) + " " + request.body());
        }
        net::Response response{net::http::status::no_content, request.version()};
        response.keep_alive(false);
        response.prepare_payload();
        return response;
      },
      [](net::http::status status, std::string_view, std::string_view) {
        net::Response response{status, 11};
        response.prepare_payload();
        return response;
      });
  ASSERT_TRUE(server.Start().ok());
  std::thread runner([&server] { server.Run(); });

  options_.webhook_url = "https://localhost:" + std::to_string(server.port()) + "/hooks/phigate";
  options_.webhook_ca_file = net::test_support::TestTlsFiles().certificate;
  break_glass_ = std::make_unique<BreakGlass>(*store_, *keyring_, clock_, options_);
  {
    LogCapture log;
    Result<BreakGlassUse> use = break_glass_->Authorize(Person(), "p1", kReason);
    ASSERT_TRUE(use.ok()) << use.status().message();
    break_glass_->FlushWebhooksForTest();
    EXPECT_TRUE(log.Events("break_glass.webhook_failed").empty()) << log.Text();
    EXPECT_EQ(break_glass_->webhooks_attempted(), 1u);
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(received.size(), 1u);
    EXPECT_THAT(received[0], ::testing::StartsWith(
                                 "POST /hooks/phigate application/json {\"event\":\"break_glass."
                                 "opened\",\"grant_id\":\"" +
                                 use->grant_id + "\""));
  }
  server.Stop();
  runner.join();
}

// --- The auditor's list ----------------------------------------------------------------

TEST_F(BreakGlassTest, ListShowsGrantsNewestFirstWithTheReasonAndWhetherActive) {
  BreakGlass& break_glass = Make();
  Result<BreakGlassUse> first = break_glass.Authorize(Person(), "p1", kReason);
  ASSERT_TRUE(first.ok());
  clock_.Advance(30 * 60'000);  // 08:30
  Result<BreakGlassUse> second = break_glass.Authorize(
      Person(0, "user-2"), "p2", "Anaphylaxis, \xe2\x80\x9curgent\xe2\x80\x9d");
  ASSERT_TRUE(second.ok());
  clock_.Advance(45 * 60'000);  // 09:15: the first grant has ended, the second has not

  Result<std::string> json = break_glass.ListJson(0, 10);
  ASSERT_TRUE(json.ok()) << json.status().message();
  const boost::json::value document = boost::json::parse(*json);
  EXPECT_EQ(Keys(document.as_object()), std::set<std::string>{"grants"});
  const boost::json::array& grants = document.at("grants").as_array();
  ASSERT_EQ(grants.size(), 2u);
  const boost::json::object& newest = grants[0].as_object();
  EXPECT_EQ(Keys(newest), (std::set<std::string>{"grant_id", "user_id", "client_id", "patient",
                                                 "reason", "opened", "expires", "active"}));
  EXPECT_EQ(newest.at("grant_id").as_string(), second->grant_id);
  EXPECT_EQ(newest.at("user_id").as_string(), "user-2");
  EXPECT_EQ(newest.at("client_id").as_string(), "ehr-app");
  EXPECT_EQ(newest.at("patient").as_string(), "Patient/p2");
  EXPECT_EQ(newest.at("reason").as_string(), "Anaphylaxis, \xe2\x80\x9curgent\xe2\x80\x9d");
  EXPECT_EQ(newest.at("opened").as_string(), "2027-01-15T08:30:00.000Z");
  EXPECT_EQ(newest.at("expires").as_string(), "2027-01-15T09:30:00.000Z");
  EXPECT_EQ(newest.at("active").as_bool(), true);
  const boost::json::object& oldest = grants[1].as_object();
  EXPECT_EQ(oldest.at("grant_id").as_string(), first->grant_id);
  EXPECT_EQ(oldest.at("patient").as_string(), "Patient/p1");
  EXPECT_EQ(oldest.at("reason").as_string(), kReason);
  EXPECT_EQ(oldest.at("opened").as_string(), "2027-01-15T08:00:00.000Z");
  EXPECT_EQ(oldest.at("expires").as_string(), "2027-01-15T09:00:00.000Z");
  EXPECT_EQ(oldest.at("active").as_bool(), false);

  // `since` and `limit`.
  json = break_glass.ListJson(kStartMs + 1, 10);
  ASSERT_TRUE(json.ok());
  ASSERT_EQ(boost::json::parse(*json).at("grants").as_array().size(), 1u);
  json = break_glass.ListJson(0, 1);
  ASSERT_TRUE(json.ok());
  const boost::json::value limited_document = boost::json::parse(*json);
  const boost::json::array& limited = limited_document.at("grants").as_array();
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0].at("grant_id").as_string(), second->grant_id);
  Result<std::string> empty = break_glass.ListJson(clock_.NowMillis(), 10);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, R"({"grants":[]})");
  Result<std::string> bad = break_glass.ListJson(0, 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(BreakGlassTest, ListOpensReasonsSealedUnderAnOlderKeyVersion) {
  BreakGlass& break_glass = Make();
  ASSERT_TRUE(break_glass.Authorize(Person(), "p1", kReason).ok());
  ASSERT_TRUE(keyring_->AddVersion().ok());  // rotation
  Result<std::string> json = break_glass.ListJson(0, 10);
  ASSERT_TRUE(json.ok()) << json.status().message();
  EXPECT_EQ(boost::json::parse(*json).at("grants").at(0).at("reason").as_string(), kReason);
}

}  // namespace
}  // namespace phigate::policy
