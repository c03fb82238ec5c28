#include "auth/accounts.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "auth/auth_test_env.h"
#include "auth/password_policy.h"
#include "auth/security_events.h"
#include "auth/totp.h"
#include "core/base64.h"
#include "core/clock.h"
#include "crypto/crypto.h"
#include "crypto/keyring.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::auth {
namespace {

constexpr std::string_view kPassword = "violet staple orbit 42";
constexpr int64_t kStart = kAuthTestStartMs;

// One fixture: a fresh SQLite store in its own temp dir, a keyring with one data key,
// fake time and an in-memory event sink.
class AccountsTest : public AuthTestEnv {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(OpenStore("accounts", /*store_reads_fake_clock=*/false));
    ASSERT_NO_FATAL_FAILURE(AddKeyring());
    config_.issuer = "https://phigate.test:8443";
    accounts_ = std::make_unique<Accounts>(*store_, *keyring_, hook_clock_, config_, events_);
  }

  storage::UserRecord Stored(const std::string& user_id) {
    Result<std::optional<storage::UserRecord>> u = store_->GetUser(user_id);
    EXPECT_TRUE(u.ok() && u.value().has_value());
    return u.ok() && u.value() ? *u.value() : storage::UserRecord();
  }

  std::string Code(const std::string& secret, int64_t step_offset = 0) const {
    return TotpCode(secret, TotpStep(clock_.NowSeconds()) + step_offset);
  }

  struct Enrolled {
    std::string user_id;
    std::string secret;  // raw TOTP secret
  };
  // Creates and fully enrolls a user, then moves time to the next TOTP step so that a
  // login can use a fresh code.
  Enrolled Enroll(const std::string& username, std::vector<std::string> roles = {"clinician"},
                  const std::string& fhir_user = "") {
    Result<NewUser> added = accounts_->AddUser(username, roles, fhir_user);
    EXPECT_TRUE(added.ok()) << added.status().message();
    if (!added.ok()) return {};
    Result<EnrollmentSecret> begun =
        accounts_->BeginEnrollment(added->enrollment_token, kPassword, "10.0.0.1");
    EXPECT_TRUE(begun.ok()) << begun.status().message();
    if (!begun.ok()) return {};
    Result<std::string> secret = Base32Decode(begun->secret_base32);
    EXPECT_TRUE(secret.ok());
    Status confirmed =
        accounts_->ConfirmEnrollment(added->enrollment_token, Code(*secret), "10.0.0.1");
    EXPECT_TRUE(confirmed.ok()) << confirmed.message();
    clock_.Advance(kTotpStepS * 1000);
    return {added->user.user_id, *secret};
  }

  size_t CountEvents(SecurityEventType type) const {
    size_t n = 0;
    for (const SecurityEvent& e : events_.events()) n += e.type == type ? 1 : 0;
    return n;
  }

  void ExpectLoginFailed(const Result<std::string>& r) const {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(r.status().message(), kLoginFailedMessage);
  }

  HookClock hook_clock_{clock_};
  std::unique_ptr<Accounts> accounts_;
};

// --- Users ---

TEST_F(AccountsTest, AddUserStoresAPendingUserWithAHashedOneTimeToken) {
  Result<NewUser> added = accounts_->AddUser("Dr.Alice_Smith@Example-Clinic",
                                             {"clinician", "auditor"}, "Practitioner/123");
  ASSERT_TRUE(added.ok()) << added.status().message();
  EXPECT_EQ(added->enrollment_token.size(), 43u);  // 256 bits, base64url
  const storage::UserRecord u = Stored(added->user.user_id);
  EXPECT_EQ(u.user_id.size(), 32u);  // 128 bits, hex
  EXPECT_EQ(u.user_id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(u.username, "dr.alice_smith@example-clinic");
  EXPECT_EQ(u.roles, "clinician,auditor");
  EXPECT_EQ(u.fhir_user, "Practitioner/123");
  EXPECT_EQ(u.enrollment_hash, HexEncode(crypto::Sha256(added->enrollment_token)));
  EXPECT_EQ(u.enrollment_expires_ms, kStart + 86'400'000);
  EXPECT_TRUE(u.password_hash.empty());
  EXPECT_TRUE(u.totp_secret.empty());
  EXPECT_FALSE(u.mfa_enrolled);
  EXPECT_EQ(u.created_ms, kStart);
  EXPECT_EQ(UserState(u, kStart), "pending");
  ASSERT_EQ(events_.events().size(), 1u);
  EXPECT_EQ(events_.events()[0].type, SecurityEventType::kUserCreated);
  EXPECT_EQ(events_.events()[0].user_id, u.user_id);
  EXPECT_EQ(events_.events()[0].address, "cli");
  EXPECT_EQ(EnrollmentUrl(config_.issuer, added->enrollment_token),
            "https://phigate.test:8443/oauth2/enroll?token=" + added->enrollment_token);
}

TEST_F(AccountsTest, UsernameSyntaxIsCheckedAndNormalized) {
  for (std::string_view bad : {"", "bob smith", "bob/1",
                               "b\xc3\xb8"
                               "b",
                               "bob\t", "a+b", "x:y"}) {
    Result<NewUser> r = accounts_->AddUser(bad, {"clinician"}, "");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(accounts_->AddUser("", {"clinician"}, "").status().message(),
            "a username has 1 to 64 characters");
  EXPECT_EQ(accounts_->AddUser("bob smith", {"clinician"}, "").status().message(),
            "a username may contain only a-z 0-9 . _ @ -");
  EXPECT_EQ(accounts_->AddUser(std::string(65, 'a'), {"clinician"}, "").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(accounts_->AddUser(std::string(64, 'a'), {"clinician"}, "").ok());
  EXPECT_EQ(NormalizeUsername("MiXeD.Case").value(), "mixed.case");
}

TEST_F(AccountsTest, UsernamesAreUniqueCaseInsensitively) {
  ASSERT_TRUE(accounts_->AddUser("bob", {"clinician"}, "").ok());
  Result<NewUser> again = accounts_->AddUser("BOB", {"billing"}, "");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kConflict);
  EXPECT_EQ(again.status().message(), "a user with this username exists");
}

TEST_F(AccountsTest, RolesAndFhirUserAreValidated) {
  Result<NewUser> unknown = accounts_->AddUser("bob", {"clinician", "wizard"}, "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("unknown role 'wizard'"), std::string::npos);
  EXPECT_EQ(accounts_->AddUser("bob", {}, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(accounts_->AddUser("bob", {"admin", "admin"}, "").status().code(),
            StatusCode::kInvalidArgument);
  for (std::string_view bad : {"Observation/1", "Patient/", "Patient", "Patient/a b",
                               "Practitioner/1/_history/2", "https://x/Patient/1"}) {
    EXPECT_EQ(accounts_->AddUser("bob", {"patient"}, bad).status().code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_TRUE(accounts_->AddUser("bob", {"patient"}, "Patient/pat-7.a").ok());
}

TEST_F(AccountsTest, ListUsersShowsStatesAndNoSecrets) {
  const Enrolled active = Enroll("active");
  const Enrolled locked = Enroll("locked");
  const Enrolled disabled = Enroll("disabled");
  ASSERT_TRUE(accounts_->AddUser("pending", {"billing"}, "").ok());
  for (int i = 0; i < config_.max_failed_attempts; ++i) {
    (void)accounts_->CheckPassword("locked", "wrong password!!", "10.0.0.2");
  }
  ASSERT_TRUE(accounts_->Disable("disabled").ok());
  Result<std::vector<UserSummary>> users = accounts_->ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 4u);
  // Ordered by username.
  EXPECT_EQ((*users)[0].username, "active");
  EXPECT_EQ((*users)[0].state, "active");
  EXPECT_EQ((*users)[0].user_id, active.user_id);
  EXPECT_EQ((*users)[1].username, "disabled");
  EXPECT_EQ((*users)[1].state, "disabled");
  EXPECT_EQ((*users)[2].username, "locked");
  EXPECT_EQ((*users)[2].state, "locked");
  EXPECT_EQ((*users)[3].username, "pending");
  EXPECT_EQ((*users)[3].state, "pending");
  EXPECT_EQ((*users)[3].roles, "billing");
}

// --- Enrollment ---

TEST_F(AccountsTest, EnrollmentHappyPath) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "Practitioner/9");
  ASSERT_TRUE(added.ok());
  const std::string& token = added->enrollment_token;
  EXPECT_EQ(accounts_->EnrollmentUsername(token).value(), "carol");

  Result<EnrollmentSecret> begun = accounts_->BeginEnrollment(token, kPassword, "10.0.0.1");
  ASSERT_TRUE(begun.ok()) << begun.status().message();
  EXPECT_EQ(begun->user_id, added->user.user_id);
  EXPECT_EQ(begun->username, "carol");
  EXPECT_EQ(begun->secret_base32.size(), 32u);  // 160 bits
  Result<std::string> secret = Base32Decode(begun->secret_base32);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->size(), kTotpSecretBytes);
  EXPECT_EQ(begun->otpauth_uri, TotpUri("phigate phigate.test", "carol", *secret));

  storage::UserRecord u = Stored(begun->user_id);
  EXPECT_TRUE(u.password_hash.starts_with("$argon2id$"));
  EXPECT_FALSE(u.totp_secret.empty());
  EXPECT_EQ(u.totp_secret.find(*secret), std::string::npos);  // sealed, not plain
  EXPECT_EQ(u.totp_secret.find(begun->secret_base32), std::string::npos);
  EXPECT_FALSE(u.mfa_enrolled);
  EXPECT_FALSE(u.enrollment_hash.empty());  // the link still works until confirmed

  // The page can be shown again with the same secret.
  Result<EnrollmentSecret> pending = accounts_->PendingEnrollment(token);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->secret_base32, begun->secret_base32);

  clock_.Advance(12'345);
  const int64_t step = TotpStep(clock_.NowSeconds());
  ASSERT_TRUE(accounts_->ConfirmEnrollment(token, Code(*secret), "10.0.0.1").ok());
  u = Stored(begun->user_id);
  EXPECT_TRUE(u.mfa_enrolled);
  EXPECT_TRUE(u.enrollment_hash.empty());
  EXPECT_EQ(u.enrollment_expires_ms, 0);
  EXPECT_EQ(u.totp_last_step, step);
  EXPECT_EQ(u.sessions_valid_after_ms, kStart + 12'000);  // whole seconds
  EXPECT_EQ(UserState(u, clock_.NowMillis()), "active");
  EXPECT_EQ(CountEvents(SecurityEventType::kEnrollmentCompleted), 1u);

  // Now the person can log in (with the next code: the first one is used up).
  clock_.Advance(kTotpStepS * 1000);
  Result<std::string> id = accounts_->CheckPassword("Carol", kPassword, "10.0.0.1");
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*id, begun->user_id);
  EXPECT_TRUE(accounts_->CheckTotp(*id, Code(*secret), "10.0.0.1").ok());
}

TEST_F(AccountsTest, AWrongFirstCodeDoesNotActivate) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "");
  ASSERT_TRUE(added.ok());
  Result<EnrollmentSecret> begun =
      accounts_->BeginEnrollment(added->enrollment_token, kPassword, "10.0.0.1");
  ASSERT_TRUE(begun.ok());
  const std::string secret = Base32Decode(begun->secret_base32).value();
  Status wrong = accounts_->ConfirmEnrollment(added->enrollment_token, Code(secret, 3), "a");
  EXPECT_EQ(wrong.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(wrong.message(), kCodeFailedMessage);
  EXPECT_EQ(accounts_->ConfirmEnrollment(added->enrollment_token, "12345", "a").code(),
            StatusCode::kUnauthenticated);
  EXPECT_FALSE(Stored(begun->user_id).mfa_enrolled);
  // Not enrolled: the password alone does not log in.
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "a"));
  EXPECT_TRUE(accounts_->ConfirmEnrollment(added->enrollment_token, Code(secret), "a").ok());
}

TEST_F(AccountsTest, ConfirmBeforeAPasswordIsSetIsRefused) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "");
  ASSERT_TRUE(added.ok());
  Status s = accounts_->ConfirmEnrollment(added->enrollment_token, "123456", "a");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "set a password first");
}

TEST_F(AccountsTest, AnExpiredLinkIsRefused) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "");
  ASSERT_TRUE(added.ok());
  clock_.Advance(config_.enrollment_ttl_s * 1000);
  Result<EnrollmentSecret> begun =
      accounts_->BeginEnrollment(added->enrollment_token, kPassword, "a");
  ASSERT_FALSE(begun.ok());
  EXPECT_EQ(begun.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(begun.status().message(), kEnrollmentLinkInvalidMessage);
  EXPECT_EQ(accounts_->EnrollmentUsername(added->enrollment_token).status().code(),
            StatusCode::kNotFound);
}

TEST_F(AccountsTest, ALinkIsVoidOnceEnrollmentCompletes) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "");
  ASSERT_TRUE(added.ok());
  Result<EnrollmentSecret> begun =
      accounts_->BeginEnrollment(added->enrollment_token, kPassword, "a");
  ASSERT_TRUE(begun.ok());
  const std::string secret = Base32Decode(begun->secret_base32).value();
  ASSERT_TRUE(accounts_->ConfirmEnrollment(added->enrollment_token, Code(secret), "a").ok());
  const std::string hash_before = Stored(begun->user_id).password_hash;
  Result<EnrollmentSecret> again =
      accounts_->BeginEnrollment(added->enrollment_token, "another good passphrase", "a");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(accounts_->ConfirmEnrollment(added->enrollment_token, Code(secret, 1), "a").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(Stored(begun->user_id).password_hash, hash_before);
  // Unknown and absurd tokens too.
  EXPECT_EQ(accounts_->EnrollmentUsername("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(accounts_->EnrollmentUsername("").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(accounts_->EnrollmentUsername(std::string(5000, 'a')).status().code(),
            StatusCode::kNotFound);
}

TEST_F(AccountsTest, EnrollmentAppliesThePasswordPolicy) {
  Result<NewUser> added = accounts_->AddUser("carol", {"clinician"}, "");
  ASSERT_TRUE(added.ok());
  auto begin = [&](std::string_view password) {
    return accounts_->BeginEnrollment(added->enrollment_token, password, "a").status();
  };
  EXPECT_EQ(begin("short pass1").message(), "the password must have at least 12 characters");
  EXPECT_EQ(begin("my name is CAROL ok").message(), "the password must not contain the username");
  EXPECT_EQ(begin("Password1234").message(),
            "the password is too commonly used; choose another one");
  EXPECT_EQ(begin(std::string(129, 'x')).message(),
            "the password must have at most 128 characters");
  EXPECT_EQ(begin("\xff\xfe valid tail!!").message(), "the password is not valid UTF-8 text");
  EXPECT_EQ(begin("short pass1").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Stored(added->user.user_id).password_hash.empty());
  EXPECT_TRUE(begin("twelve chars").ok());
}

TEST(PasswordPolicyTest, CountsCodePointsAndRefusesInvalidUtf8) {
  EXPECT_EQ(CountCodePoints("abc"), 3u);
  EXPECT_EQ(CountCodePoints("\xc3\xa9t\xc3\xa9"), 3u);         // été
  EXPECT_EQ(CountCodePoints("\xe6\x97\xa5\xe6\x9c\xac"), 2u);  // 日本
  EXPECT_EQ(CountCodePoints("\xf0\x9f\x94\x91"), 1u);          // U+1F511
  EXPECT_EQ(CountCodePoints(""), 0u);
  EXPECT_FALSE(CountCodePoints("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(CountCodePoints("\xe0\x80\xaf"));      // overlong, 3 bytes
  EXPECT_FALSE(CountCodePoints("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(CountCodePoints("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(CountCodePoints("\xe6\x97"));          // truncated
  EXPECT_FALSE(CountCodePoints("\x80"));              // stray continuation
}

TEST(PasswordPolicyTest, LengthIsCountedInCodePoints) {
  // 12 two-byte characters: 24 bytes, 12 code points.
  std::string twelve;
  for (int i = 0; i < 12; ++i) twelve += "\xc3\xa9";
  EXPECT_TRUE(CheckPasswordPolicy(twelve, "bob", 12).ok());
  EXPECT_FALSE(CheckPasswordPolicy(twelve.substr(0, 22), "bob", 12).ok());
  // 128 four-byte characters are allowed, 129 are not.
  std::string emoji;
  for (int i = 0; i < 128; ++i) emoji += "\xf0\x9f\x94\x91";
  EXPECT_TRUE(CheckPasswordPolicy(emoji, "bob", 12).ok());
  EXPECT_FALSE(CheckPasswordPolicy(emoji + "\xf0\x9f\x94\x91", "bob", 12).ok());
  // No composition rules: lower-case words with spaces are fine.
  EXPECT_TRUE(CheckPasswordPolicy("correct horse battery", "bob", 12).ok());
  // The configured minimum applies.
  EXPECT_EQ(CheckPasswordPolicy("eightchr", "bob", 8).code(), StatusCode::kOk);
  EXPECT_EQ(CheckPasswordPolicy("eightchr", "bob", 9).message(),
            "the password must have at least 9 characters");
}

TEST(PasswordPolicyTest, CommonPasswordsAndTheUsernameAreRefused) {
  for (std::string_view p : {"password1234", "PASSWORD1234", "Qwertyuiop123", "iloveyou123",
                             "123456789012", "correcthorsebatterystaple", "Welcome2025"}) {
    EXPECT_TRUE(IsCommonPassword(p)) << p;
  }
  EXPECT_FALSE(IsCommonPassword("violet staple orbit 42"));
  // A lowered minimum still refuses listed passwords.
  EXPECT_EQ(CheckPasswordPolicy("sunshine", "bob", 8).message(),
            "the password is too commonly used; choose another one");
  EXPECT_EQ(CheckPasswordPolicy("xx-Dr.Bob-xx-long", "dr.bob", 12).message(),
            "the password must not contain the username");
  EXPECT_TRUE(CheckPasswordPolicy("xx-Dr.Bo-b-xx-long", "dr.bob", 12).ok());
}

// --- Login ---

TEST_F(AccountsTest, LoginWithPasswordAndCode) {
  const Enrolled e = Enroll("carol");
  Result<std::string> id = accounts_->CheckPassword("carol", kPassword, "10.0.0.9", "app1");
  ASSERT_TRUE(id.ok()) << id.status().message();
  EXPECT_EQ(*id, e.user_id);
  ASSERT_TRUE(accounts_->CheckTotp(e.user_id, Code(e.secret), "10.0.0.9", "app1").ok());
  const std::vector<SecurityEvent> events = events_.events();
  ASSERT_GE(events.size(), 2u);
  const SecurityEvent& pwd = events[events.size() - 2];
  const SecurityEvent& done = events.back();
  EXPECT_EQ(pwd.type, SecurityEventType::kLoginPasswordSuccess);
  EXPECT_EQ(done.type, SecurityEventType::kLoginSuccess);
  EXPECT_EQ(done.user_id, e.user_id);
  EXPECT_EQ(done.client_id, "app1");
  EXPECT_EQ(done.address, "10.0.0.9");
  EXPECT_EQ(Stored(e.user_id).totp_last_step, TotpStep(clock_.NowSeconds()));
}

TEST_F(AccountsTest, AWrongPasswordAndAnUnknownUserGetTheSameAnswer) {
  const Enrolled e = Enroll("carol");
  ExpectLoginFailed(accounts_->CheckPassword("carol", "not the password", "10.0.0.9"));
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 1);
  SecurityEvent last = events_.events().back();
  EXPECT_EQ(last.type, SecurityEventType::kLoginPasswordFailure);
  EXPECT_EQ(last.user_id, e.user_id);
  EXPECT_EQ(last.reason, "wrong_password");

  ExpectLoginFailed(accounts_->CheckPassword("nobody", kPassword, "10.0.0.9"));
  ExpectLoginFailed(accounts_->CheckPassword("no body!", kPassword, "10.0.0.9"));
  last = events_.events().back();
  EXPECT_EQ(last.type, SecurityEventType::kLoginPasswordFailure);
  EXPECT_EQ(last.user_id, "");
  EXPECT_EQ(last.reason, "unknown_user");
  // Events carry ids only: never the username or the password.
  for (const SecurityEvent& ev : events_.events()) {
    for (const std::string& field : {ev.user_id, ev.client_id, ev.address, ev.reason}) {
      EXPECT_EQ(field.find("carol"), std::string::npos);
      EXPECT_EQ(field.find("nobody"), std::string::npos);
      EXPECT_EQ(field.find(kPassword), std::string::npos);
      EXPECT_EQ(field.find("not the password"), std::string::npos);
    }
  }
}

TEST_F(AccountsTest, LocksAfterMaxFailuresEvenForTheRightPasswordThenUnlocks) {
  const Enrolled e = Enroll("carol");
  for (int i = 0; i < config_.max_failed_attempts; ++i) {
    ExpectLoginFailed(
        accounts_->CheckPassword("carol", "wrong password " + std::to_string(i), "10.0.0.9"));
  }
  storage::UserRecord u = Stored(e.user_id);
  EXPECT_EQ(u.failed_attempts, 5);
  EXPECT_EQ(u.locked_until_ms, clock_.NowMillis() + 60'000);
  EXPECT_EQ(CountEvents(SecurityEventType::kAccountLocked), 1u);

  // Locked: the right password gets the same answer as a wrong one, and does not count.
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "10.0.0.9"));
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kLoginRefused);
  EXPECT_EQ(events_.events().back().reason, "locked");
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 5);
  clock_.Advance(59'999);
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "10.0.0.9"));
  // The code step is refused while locked too.
  EXPECT_EQ(accounts_->CheckTotp(e.user_id, Code(e.secret), "10.0.0.9").code(),
            StatusCode::kUnauthenticated);

  clock_.Advance(1);
  ASSERT_TRUE(accounts_->CheckPassword("carol", kPassword, "10.0.0.9").ok());
  ASSERT_TRUE(accounts_->CheckTotp(e.user_id, Code(e.secret), "10.0.0.9").ok());
  u = Stored(e.user_id);
  EXPECT_EQ(u.failed_attempts, 0);  // a complete login resets the count
  EXPECT_EQ(u.locked_until_ms, 0);
}

TEST_F(AccountsTest, TheLockDoublesWithEachFurtherFailureUpToTheMaximum) {
  config_.lockout_max_s = 200;
  const Enrolled e = Enroll("carol");
  for (int i = 0; i < 5; ++i) (void)accounts_->CheckPassword("carol", "wrong wrong", "a");
  EXPECT_EQ(Stored(e.user_id).locked_until_ms, clock_.NowMillis() + 60'000);
  clock_.Advance(60'000);
  ExpectLoginFailed(accounts_->CheckPassword("carol", "wrong wrong", "a"));  // 6th
  EXPECT_EQ(Stored(e.user_id).locked_until_ms, clock_.NowMillis() + 120'000);
  clock_.Advance(60'000);
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "a"));  // still locked
  clock_.Advance(60'000);
  ExpectLoginFailed(accounts_->CheckPassword("carol", "wrong wrong", "a"));  // 7th: 240 > 200
  EXPECT_EQ(Stored(e.user_id).locked_until_ms, clock_.NowMillis() + 200'000);
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 7);
  EXPECT_EQ(CountEvents(SecurityEventType::kAccountLocked), 3u);
  clock_.Advance(200'000);
  EXPECT_TRUE(accounts_->CheckPassword("carol", kPassword, "a").ok());
}

TEST_F(AccountsTest, ARightPasswordAloneDoesNotResetTheCount) {
  // Otherwise a stolen password would allow unlimited guesses of the code.
  const Enrolled e = Enroll("carol");
  for (int i = 0; i < 4; ++i) (void)accounts_->CheckPassword("carol", "wrong wrong", "a");
  ASSERT_TRUE(accounts_->CheckPassword("carol", kPassword, "a").ok());
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 4);
  EXPECT_EQ(accounts_->CheckTotp(e.user_id, Code(e.secret, 5), "a").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 5);
  EXPECT_GT(Stored(e.user_id).locked_until_ms, clock_.NowMillis());
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kAccountLocked);
}

TEST_F(AccountsTest, ConcurrentAttemptsEitherCountOrAreRefusedUnchecked) {
  // Every attempt ends as a counted failure or as an unchecked refusal; none is lost.
  const Enrolled e = Enroll("carol");
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2; ++i) (void)accounts_->CheckPassword("carol", "wrong wrong", "a");
    });
  }
  for (std::thread& t : threads) t.join();
  size_t refused = 0;
  for (const SecurityEvent& ev : events_.events()) {
    refused += ev.type == SecurityEventType::kLoginRefused && ev.reason == "concurrent_attempt";
  }
  const size_t counted = CountEvents(SecurityEventType::kLoginPasswordFailure);
  EXPECT_GE(counted, 1u);
  EXPECT_EQ(counted + refused, 4u);
  EXPECT_EQ(Stored(e.user_id).failed_attempts, static_cast<int>(counted));
}

// Regression (security review H1): a second check of an account while one is running is
// refused at once, even with the right password, so parallel requests cannot try more
// guesses than the lock allows.
TEST_F(AccountsTest, ASecondCheckOfAnAccountInFlightIsRefusedAtOnce) {
  const Enrolled e = Enroll("carol");
  Result<std::string> nested_password = Internal("not run");
  Status nested_code = Internal("not run");
  hook_clock_.Arm([&] {
    nested_password = accounts_->CheckPassword("carol", kPassword, "10.0.0.8");
    nested_code = accounts_->CheckTotp(e.user_id, Code(e.secret), "10.0.0.8");
  });
  ExpectLoginFailed(accounts_->CheckPassword("carol", "wrong wrong", "10.0.0.9"));
  ExpectLoginFailed(nested_password);
  EXPECT_EQ(nested_code.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(nested_code.message(), kCodeFailedMessage);
  size_t refused = 0;
  for (const SecurityEvent& ev : events_.events()) {
    if (ev.type == SecurityEventType::kLoginRefused && ev.reason == "concurrent_attempt") {
      EXPECT_EQ(ev.user_id, e.user_id);
      EXPECT_EQ(ev.address, "10.0.0.8");
      ++refused;
    }
  }
  EXPECT_EQ(refused, 2u);
  // The refused attempts were not checked and do not count; the outer wrong one does.
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 1);
  EXPECT_EQ(CountEvents(SecurityEventType::kLoginPasswordSuccess), 0u);
  // The claim is released when the check ends.
  EXPECT_TRUE(accounts_->CheckPassword("carol", kPassword, "10.0.0.9").ok());
}

// Regression (security review H1): a right password checked against a record read before
// the account locked (a failure recorded meanwhile) must not reach the code step.
TEST_F(AccountsTest, ARightPasswordIsRefusedIfTheAccountLockedDuringTheCheck) {
  const Enrolled e = Enroll("carol");
  hook_clock_.Arm([&] {
    // Another process records the failure that locks the account, after this check read it.
    storage::UserRecord u = Stored(e.user_id);
    u.failed_attempts = 5;
    u.locked_until_ms = clock_.NowMillis() + 60'000;
    ASSERT_TRUE(store_->UpdateUser(u, u.revision).ok());
  });
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "10.0.0.9"));
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kLoginRefused);
  EXPECT_EQ(events_.events().back().reason, "locked");
  EXPECT_EQ(CountEvents(SecurityEventType::kLoginPasswordSuccess), 0u);
}

// Regression (security review H1): a wrong guess that arrives after a concurrent failure
// locked the account counts, and extends the lock by the backoff rule.
TEST_F(AccountsTest, AFailureAfterAConcurrentLockCountsAndExtendsTheLock) {
  const Enrolled e = Enroll("carol");
  const int64_t locked_at = clock_.NowMillis();
  hook_clock_.Arm([&] {
    storage::UserRecord u = Stored(e.user_id);
    u.failed_attempts = 5;
    u.locked_until_ms = locked_at + 60'000;
    ASSERT_TRUE(store_->UpdateUser(u, u.revision).ok());
  });
  ExpectLoginFailed(accounts_->CheckPassword("carol", "wrong wrong", "10.0.0.9"));
  const storage::UserRecord u = Stored(e.user_id);
  EXPECT_EQ(u.failed_attempts, 6);
  EXPECT_EQ(u.locked_until_ms, locked_at + 120'000);  // the 6th failure's lock: 2 x 60 s
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kAccountLocked);
}

TEST_F(AccountsTest, ATotpCodeIsAcceptedOnce) {
  const Enrolled e = Enroll("carol");
  const std::string code = Code(e.secret);
  ASSERT_TRUE(accounts_->CheckTotp(e.user_id, code, "a").ok());
  Status replay = accounts_->CheckTotp(e.user_id, code, "a");
  EXPECT_EQ(replay.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(replay.message(), kCodeFailedMessage);
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kMfaFailure);
  // An earlier step's code is refused too, even inside the drift window.
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, Code(e.secret, -1), "a").ok());
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 2);
  // The next step's code works.
  clock_.Advance(kTotpStepS * 1000);
  EXPECT_TRUE(accounts_->CheckTotp(e.user_id, Code(e.secret), "a").ok());
}

TEST_F(AccountsTest, CodesOutsideTheDriftWindowAreRefused) {
  const Enrolled e = Enroll("carol");
  // Well past the step the enrollment used, so that step - 1 is unused.
  clock_.Advance(2 * kTotpStepS * 1000);
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, Code(e.secret, -2), "a").ok());
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, Code(e.secret, 2), "a").ok());
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, "abcdef", "a").ok());
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, "", "a").ok());
  EXPECT_EQ(Stored(e.user_id).failed_attempts, 4);
  // One step of drift either way is accepted (RFC 6238 §5.2).
  EXPECT_TRUE(accounts_->CheckTotp(e.user_id, Code(e.secret, -1), "a").ok());
}

TEST_F(AccountsTest, ADisabledUserIsRefusedAndItsSessionsEnd) {
  const Enrolled e = Enroll("carol");
  storage::RefreshFamily family;
  family.family_id = "fam-1";
  family.user_id = e.user_id;
  family.client_id = "app1";
  family.scope = "openid";
  family.auth_time_ms = clock_.NowMillis();
  family.expires_ms = clock_.NowMillis() + 3'600'000;
  family.last_used_ms = clock_.NowMillis();
  ASSERT_TRUE(store_->CreateRefreshFamily(family, "hash-1").ok());

  clock_.Advance(5'000);
  ASSERT_TRUE(accounts_->Disable("CAROL").ok());
  const storage::UserRecord u = Stored(e.user_id);
  EXPECT_TRUE(u.disabled);
  EXPECT_EQ(u.sessions_valid_after_ms, clock_.NowMillis());
  EXPECT_TRUE(store_->GetRefreshFamily("fam-1").value()->revoked);
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kUserDisabled);

  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "a"));
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kLoginRefused);
  EXPECT_EQ(events_.events().back().reason, "disabled");
  EXPECT_EQ(accounts_->CheckTotp(e.user_id, Code(e.secret), "a").code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(accounts_->Disable("nobody").code(), StatusCode::kNotFound);
  EXPECT_EQ(accounts_->ResetMfa("carol").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(AccountsTest, ResetMfaRequiresANewEnrollment) {
  const Enrolled e = Enroll("carol");
  clock_.Advance(1'000);
  Result<std::string> token = accounts_->ResetMfa("carol");
  ASSERT_TRUE(token.ok()) << token.status().message();
  storage::UserRecord u = Stored(e.user_id);
  EXPECT_FALSE(u.mfa_enrolled);
  EXPECT_TRUE(u.password_hash.empty());
  EXPECT_TRUE(u.totp_secret.empty());
  EXPECT_EQ(u.sessions_valid_after_ms, clock_.NowMillis());
  EXPECT_EQ(u.enrollment_hash, HexEncode(crypto::Sha256(*token)));
  EXPECT_EQ(events_.events().back().type, SecurityEventType::kMfaReset);
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "a"));

  Result<EnrollmentSecret> begun =
      accounts_->BeginEnrollment(*token, "a whole new passphrase", "a");
  ASSERT_TRUE(begun.ok()) << begun.status().message();
  const std::string secret = Base32Decode(begun->secret_base32).value();
  EXPECT_NE(secret, e.secret);
  ASSERT_TRUE(accounts_->ConfirmEnrollment(*token, Code(secret), "a").ok());
  clock_.Advance(kTotpStepS * 1000);
  ExpectLoginFailed(accounts_->CheckPassword("carol", kPassword, "a"));
  ASSERT_TRUE(accounts_->CheckPassword("carol", "a whole new passphrase", "a").ok());
  EXPECT_FALSE(accounts_->CheckTotp(e.user_id, Code(e.secret), "a").ok());
  EXPECT_EQ(accounts_->ResetMfa("nobody").status().code(), StatusCode::kNotFound);
}

TEST_F(AccountsTest, ASealedSecretOnlyOpensForItsOwnUser) {
  const Enrolled carol = Enroll("carol");
  const Enrolled dave = Enroll("dave");
  // A database editor copies carol's sealed secret onto dave's row.
  storage::UserRecord d = Stored(dave.user_id);
  d.totp_secret = Stored(carol.user_id).totp_secret;
  ASSERT_TRUE(store_->UpdateUser(d, d.revision).ok());
  Status s = accounts_->CheckTotp(dave.user_id, Code(carol.secret), "a");
  EXPECT_EQ(s.code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace phigate::auth
