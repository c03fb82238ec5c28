// Accounts: the people of the built-in authorization server — creation, enrollment
// (password + TOTP authenticator), the two login checks, and administration (disable,
// MFA reset). See docs/authentication.md, sections Users, Enrollment, Failed attempts, TOTP.
//
// Secrets at rest: passwords as Argon2id PHC strings; the TOTP secret (160 random bits)
// sealed under the keyring's token subkey with AAD "totp/<user_id>", so a sealed secret
// copied onto another user's row does not open; the one-time enrollment token only as a
// hex SHA-256.
//
// Login protection (NIST SP 800-63B §5.2.2 "Rate Limiting (Throttling)"):
//   - every wrong password or TOTP code counts against the account; after
//     AuthConfig::max_failed_attempts consecutive failures it locks for lockout_base_s,
//     doubling with each further failure up to lockout_max_s; only a complete login
//     (password and code) resets the count, so a known password cannot be used to try
//     codes without limit;
//   - while locked, disabled or not yet enrolled, even the right password is refused with
//     the same message as a wrong one, and an unknown username costs the same Argon2id
//     work as a known one, so responses reveal neither which accounts exist nor their state;
//   - TOTP codes are single use (RFC 6238 §5.2): the highest accepted step is stored.
// Counters live on the user record and are written with optimistic concurrency
// (Store::UpdateUser with the read revision, retried on kConflict), so concurrent
// attempts, even from several processes, all count.
//
// One check per account at a time (in this process): a password or code check claims the
// account (by user id; an unknown username by its normalized name) before any Argon2id or
// TOTP work, and a second attempt on an account whose check is still running is refused
// at once with the same generic failure (reason "concurrent_attempt", not counted against
// the account, no Argon2id run). Without this, T io threads could try T guesses in the
// window between reading the lock state and recording the failures. After a right
// password the user is read again: an account that was locked or disabled meanwhile is
// refused. A wrong password or code always counts, also when a concurrent failure (another
// process) has already locked the account: the lock is then extended to what the new count
// calls for (now + lockout_base_s doubled per failure beyond max_failed_attempts, at most
// lockout_max_s), never shortened. An attempt refused because the account is locked is
// not checked and not counted (it learns nothing; docs/authentication.md).
//
// Every step emits a SecurityEvent carrying ids only (never usernames, passwords, codes).
// Error messages are client-safe: they never contain a submitted value.
//
// Thread-safety: safe from any thread if the store and the sink are; the keyring, clock,
// config and sink must outlive the object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "auth/security_events.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/status.h"
#include "crypto/keyring.h"
#include "storage/store.h"

namespace phigate::auth {

inline constexpr size_t kMaxUsernameChars = 64;
inline constexpr size_t kEnrollmentTokenBytes = 32;  // 256 bits
// Bytes of a submitted password beyond which it cannot satisfy the policy (128 code
// points of at most 4 bytes); longer input is refused without hashing it.
inline constexpr size_t kMaxPasswordBytes = 512;

// The only messages a failed login step shows (kUnauthenticated), whatever the cause.
inline constexpr std::string_view kLoginFailedMessage = "incorrect username or password";
inline constexpr std::string_view kCodeFailedMessage = "incorrect or expired code";
// A link that is unknown, used, expired, or whose user is disabled (kNotFound).
inline constexpr std::string_view kEnrollmentLinkInvalidMessage =
    "this enrollment link is invalid or has expired";

// Lower-cases `username` and checks its syntax: 1..kMaxUsernameChars of a-z 0-9 . _ @ -.
// kInvalidArgument otherwise (the message does not repeat the input).
Result<std::string> NormalizeUsername(std::string_view username);
// "" or a relative reference to the person's own resource: Patient, Practitioner,
// PractitionerRole, RelatedPerson or Person, '/', a FHIR id ([A-Za-z0-9.-]{1,64}).
Status ValidateFhirUser(std::string_view fhir_user);
// <issuer>/oauth2/enroll?token=<token> (the token is base64url: no escaping needed).
std::string EnrollmentUrl(std::string_view issuer, std::string_view token);
// "disabled", "pending" (not enrolled), "locked" (now_ms < locked_until_ms) or "active".
std::string_view UserState(const storage::UserRecord& user, int64_t now_ms);

struct NewUser {
  storage::UserRecord user;
  std::string enrollment_token;  // shown once, in the enrollment link
};

// What the enrollment page shows once a password is set: the authenticator secret.
struct EnrollmentSecret {
  std::string user_id;
  std::string username;
  std::string secret_base32;  // RFC 4648 base32, no padding
  std::string otpauth_uri;    // otpauth://totp/... for the QR code
};

// A user as an administrator sees it: no hash, no secret.
struct UserSummary {
  std::string user_id;
  std::string username;
  std::string roles;  // comma-separated
  std::string fhir_user;
  std::string state;  // see UserState
};

class Accounts {
 public:
  Accounts(storage::Store& store, const crypto::Keyring& keyring, const Clock& clock,
           const AuthConfig& config, SecurityEventSink& events);

  // --- Administration (the CLI; `actor_address` is "cli") ---
  // kInvalidArgument for a bad username, role list or fhir_user; kConflict ("a user with
  // this username exists") for a taken username.
  Result<NewUser> AddUser(std::string_view username, const std::vector<std::string>& roles,
                          std::string_view fhir_user, std::string_view actor_address = "cli");
  Result<std::vector<UserSummary>> ListUsers();
  // Ends every session and token of the user (sessions_valid_after_ms = now, refresh
  // families revoked). kNotFound ("no such user").
  Status Disable(std::string_view username, std::string_view actor_address = "cli");
  // Removes the password and the authenticator, ends every session, and returns a new
  // enrollment token. kNotFound; kInvalidArgument for a disabled user.
  Result<std::string> ResetMfa(std::string_view username, std::string_view actor_address = "cli");

  // --- Enrollment (the link's token; kNotFound kEnrollmentLinkInvalidMessage when it
  // does not lead to a pending enrollment) ---
  // The username the link enrolls, for the page (the link holder is that person).
  Result<std::string> EnrollmentUsername(std::string_view token);
  // Step 1: checks the password policy (kInvalidArgument naming the rule), stores its
  // hash and a fresh sealed TOTP secret (mfa_enrolled stays false), returns the secret.
  // Calling it again replaces the password and the secret.
  Result<EnrollmentSecret> BeginEnrollment(std::string_view token, std::string_view new_password,
                                           std::string_view address);
  // The secret step 1 stored, to show the page again (e.g. after a wrong first code);
  // kInvalidArgument if step 1 has not been done.
  Result<EnrollmentSecret> PendingEnrollment(std::string_view token);
  // Step 2: the first code activates the account (mfa_enrolled, the link is void,
  // sessions_valid_after_ms = now). kUnauthenticated kCodeFailedMessage for a wrong code;
  // kInvalidArgument if step 1 has not been done.
  Status ConfirmEnrollment(std::string_view token, std::string_view code, std::string_view address);

  // --- Login ---
  // Step 1: the user id on success; kUnauthenticated kLoginFailedMessage on any failure;
  // kUnavailable/kInternal for storage trouble. `client_id` only labels security events.
  Result<std::string> CheckPassword(std::string_view username, std::string_view password,
                                    std::string_view address, std::string_view client_id = {});
  // Step 2: ok if `code` is the user's next unused TOTP code; kUnauthenticated
  // kCodeFailedMessage on any failure. On success the failure count is reset and a
  // kLoginSuccess event emitted.
  Status CheckTotp(const std::string& user_id, std::string_view code, std::string_view address,
                   std::string_view client_id = {});

 private:
  // Applies `mutate` to `user` and writes it with the read revision; on kConflict re-reads
  // the user and applies `mutate` again. Returns the stored record.
  Result<storage::UserRecord> Mutate(storage::UserRecord user,
                                     const std::function<Status(storage::UserRecord&)>& mutate);
  // Counts one failed password or code against `user` (and locks it when due).
  Status RecordFailure(const storage::UserRecord& user, SecurityEventType type,
                       std::string_view reason, std::string_view address,
                       std::string_view client_id);
  // Marks `key` as having a check in flight; false if one already is. ReleaseCheck undoes.
  bool ClaimCheck(const std::string& key);
  void ReleaseCheck(const std::string& key);
  // Releases a claimed account when the check ends, whichever way it returns.
  class CheckRelease {
   public:
    CheckRelease(Accounts& accounts, std::string key) : accounts_(accounts), key_(std::move(key)) {}
    ~CheckRelease() { accounts_.ReleaseCheck(key_); }
    CheckRelease(const CheckRelease&) = delete;
    CheckRelease& operator=(const CheckRelease&) = delete;

   private:
    Accounts& accounts_;
    std::string key_;
  };
  Result<storage::UserRecord> FindEnrollment(std::string_view token);
  Result<std::string> SealSecret(const std::string& user_id, std::string_view secret) const;
  Result<std::string> OpenSecret(const storage::UserRecord& user) const;
  EnrollmentSecret MakeEnrollmentSecret(const storage::UserRecord& user,
                                        std::string_view secret) const;
  // Sets a fresh enrollment hash and expiry on `user`; returns the token.
  std::string NewEnrollmentToken(storage::UserRecord& user) const;
  void Emit(SecurityEventType type, std::string_view user_id, std::string_view client_id,
            std::string_view address, std::string_view reason);

  storage::Store& store_;
  const crypto::Keyring& keyring_;
  const Clock& clock_;
  const AuthConfig& config_;
  SecurityEventSink& events_;

  std::mutex in_flight_mu_;
  // Accounts with a password or code check running; guarded by in_flight_mu_.
  std::unordered_set<std::string> in_flight_;
};

}  // namespace phigate::auth
