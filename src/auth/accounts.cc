#include "auth/accounts.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <utility>

#include "auth/password_policy.h"
#include "auth/roles.h"
#include "auth/totp.h"
#include "core/ascii.h"
#include "core/base64.h"
#include "crypto/crypto.h"
#include "crypto/password_hash.h"

namespace phigate::auth {

namespace {

// Optimistic updates retried this often before answering "storage busy": each retry
// means another writer changed the same user in between, which is rare.
constexpr int kMaxUpdateAttempts = 8;
// Enrollment tokens are RandomToken(32): 43 base64url characters. Anything longer is not
// one of ours and is refused before hashing.
constexpr size_t kMaxEnrollmentTokenChars = 64;
constexpr std::string_view kSealedSecretPrefix = "v";

constexpr std::array<std::string_view, 5> kFhirUserTypes = {
    "Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person"};

// An unknown, locked or disabled account answers as slowly as a wrong password.
void BurnPasswordCheck(std::string_view password) {
  crypto::BurnPasswordVerification(password.substr(0, kMaxPasswordBytes));
}

std::string HashToken(std::string_view token) { return HexEncode(crypto::Sha256(token)); }

bool IsLocked(const storage::UserRecord& user, int64_t now_ms) {
  return now_ms < user.locked_until_ms;
}

// The otpauth issuer label: "phigate <host>", so that several deployments can be told
// apart in an authenticator app. The port is left out because a ':' in the label is the
// issuer/account separator of the Key Uri Format.
std::string TotpIssuerLabel(std::string_view issuer) {
  std::string_view rest = issuer;
  if (size_t scheme = rest.find("://"); scheme != std::string_view::npos) {
    rest.remove_prefix(scheme + 3);
  }
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') {
    rest = rest.substr(0, rest.find(']') + 1);
  } else {
    rest = rest.substr(0, rest.find(':'));
  }
  return rest.empty() ? std::string("phigate") : "phigate " + std::string(rest);
}

}  // namespace

Result<std::string> NormalizeUsername(std::string_view username) {
  if (username.empty() || username.size() > kMaxUsernameChars) {
    return InvalidArgument("a username has 1 to 64 characters");
  }
  std::string lower = ToLowerAscii(username);
  for (char c : lower) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == '@' || c == '-';
    if (!ok) return InvalidArgument("a username may contain only a-z 0-9 . _ @ -");
  }
  return lower;
}

Status ValidateFhirUser(std::string_view fhir_user) {
  if (fhir_user.empty()) return Status::Ok();
  const size_t slash = fhir_user.find('/');
  const std::string_view type = fhir_user.substr(0, slash);
  const bool known_type =
      std::find(kFhirUserTypes.begin(), kFhirUserTypes.end(), type) != kFhirUserTypes.end();
  if (slash == std::string_view::npos || !known_type) {
    return InvalidArgument(
        "fhir_user must be Patient/<id>, Practitioner/<id>, PractitionerRole/<id>, "
        "RelatedPerson/<id> or Person/<id>");
  }
  // FHIR R4 datatypes.html#id: [A-Za-z0-9\-\.]{1,64}.
  const std::string_view id = fhir_user.substr(slash + 1);
  if (id.empty() || id.size() > 64 || !std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '.';
      })) {
    return InvalidArgument("fhir_user has an invalid id (1-64 of A-Z a-z 0-9 - .)");
  }
  return Status::Ok();
}

std::string EnrollmentUrl(std::string_view issuer, std::string_view token) {
  return std::string(issuer) + "/oauth2/enroll?token=" + std::string(token);
}

std::string_view UserState(const storage::UserRecord& user, int64_t now_ms) {
  if (user.disabled) return "disabled";
  if (!user.mfa_enrolled) return "pending";
  if (IsLocked(user, now_ms)) return "locked";
  return "active";
}

Accounts::Accounts(storage::Store& store, const crypto::Keyring& keyring, const Clock& clock,
                   const AuthConfig& config, SecurityEventSink& events)
    : store_(store), keyring_(keyring), clock_(clock), config_(config), events_(events) {}

void Accounts::Emit(SecurityEventType type, std::string_view user_id, std::string_view client_id,
                    std::string_view address, std::string_view reason) {
  events_.Record(SecurityEvent{type, std::string(user_id), std::string(client_id),
                               std::string(address), std::string(reason)});
}

Result<storage::UserRecord> Accounts::Mutate(
    storage::UserRecord user, const std::function<Status(storage::UserRecord&)>& mutate) {
  for (int attempt = 0; attempt < kMaxUpdateAttempts; ++attempt) {
    storage::UserRecord changed = user;
    RETURN_IF_ERROR(mutate(changed));
    Status written = store_.UpdateUser(changed, user.revision);
    if (written.ok()) {
      changed.revision = user.revision + 1;
      return changed;
    }
    if (written.code() != StatusCode::kConflict) return written;
    // Another writer got there first: start again from what it stored.
    ASSIGN_OR_RETURN(std::optional<storage::UserRecord> fresh, store_.GetUser(user.user_id));
    if (!fresh) return NotFound("no such user");
    user = std::move(*fresh);
  }
  return Unavailable("storage busy");
}

std::string Accounts::NewEnrollmentToken(storage::UserRecord& user) const {
  std::string token = crypto::RandomToken(kEnrollmentTokenBytes);
  user.enrollment_hash = HashToken(token);
  user.enrollment_expires_ms = clock_.NowMillis() + config_.enrollment_ttl_s * 1000;
  return token;
}

Result<std::string> Accounts::SealSecret(const std::string& user_id,
                                         std::string_view secret) const {
  uint32_t version = 0;
  ASSIGN_OR_RETURN(std::string sealed,
                   keyring_.Seal(crypto::KeyPurpose::kTokens, secret, "totp/" + user_id, &version));
  // "v<key version>.<base64url(nonce || ciphertext || tag)>": the key version must travel
  // with the ciphertext so that rotation leaves old secrets readable.
  return std::string(kSealedSecretPrefix) + std::to_string(version) + "." + Base64UrlEncode(sealed);
}

Result<std::string> Accounts::OpenSecret(const storage::UserRecord& user) const {
  std::string_view stored = user.totp_secret;
  const size_t dot = stored.find('.');
  if (!stored.starts_with(kSealedSecretPrefix) || dot == std::string_view::npos) {
    return Internal("stored authenticator secret is malformed");
  }
  uint32_t version = 0;
  const std::string_view digits = stored.substr(kSealedSecretPrefix.size(), dot - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  std::optional<std::string> sealed = Base64UrlDecode(stored.substr(dot + 1));
  if (ec != std::errc() || end != digits.data() + digits.size() || !sealed) {
    return Internal("stored authenticator secret is malformed");
  }
  return keyring_.Open(crypto::KeyPurpose::kTokens, version, *sealed, "totp/" + user.user_id);
}

EnrollmentSecret Accounts::MakeEnrollmentSecret(const storage::UserRecord& user,
                                                std::string_view secret) const {
  EnrollmentSecret out;
  out.user_id = user.user_id;
  out.username = user.username;
  out.secret_base32 = Base32Encode(secret);
  out.otpauth_uri = TotpUri(TotpIssuerLabel(config_.issuer), user.username, secret);
  return out;
}

// --- Administration ---

Result<NewUser> Accounts::AddUser(std::string_view username, const std::vector<std::string>& roles,
                                  std::string_view fhir_user, std::string_view actor_address) {
  ASSIGN_OR_RETURN(std::string name, NormalizeUsername(username));
  // ParseRoles checks what a list from anywhere must satisfy: non-empty, known, no repeats.
  ASSIGN_OR_RETURN(std::vector<std::string> checked_roles, ParseRoles(JoinRoles(roles)));
  RETURN_IF_ERROR(ValidateFhirUser(fhir_user));

  NewUser out;
  storage::UserRecord& user = out.user;
  user.user_id = HexEncode(crypto::RandomBytes(16));  // 128 bits
  user.username = std::move(name);
  user.roles = JoinRoles(checked_roles);
  user.fhir_user = std::string(fhir_user);
  user.created_ms = clock_.NowMillis();
  out.enrollment_token = NewEnrollmentToken(user);
  Status put = store_.PutUser(user);
  if (put.code() == StatusCode::kConflict) {
    return Status(StatusCode::kConflict, "a user with this username exists");
  }
  RETURN_IF_ERROR(put);
  user.revision = 1;
  Emit(SecurityEventType::kUserCreated, user.user_id, {}, actor_address, "user_added");
  return out;
}

Result<std::vector<UserSummary>> Accounts::ListUsers() {
  ASSIGN_OR_RETURN(std::vector<storage::UserRecord> users, store_.ListUsers());
  const int64_t now = clock_.NowMillis();
  std::vector<UserSummary> out;
  out.reserve(users.size());
  for (const storage::UserRecord& u : users) {
    out.push_back({u.user_id, u.username, u.roles, u.fhir_user, std::string(UserState(u, now))});
  }
  return out;
}

Status Accounts::Disable(std::string_view username, std::string_view actor_address) {
  Result<std::string> name = NormalizeUsername(username);
  if (!name.ok()) return NotFound("no such user");
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> user, store_.GetUserByName(*name));
  if (!user) return NotFound("no such user");
  const int64_t now = clock_.NowMillis();
  ASSIGN_OR_RETURN(storage::UserRecord stored, Mutate(*user, [now](storage::UserRecord& u) {
                     u.disabled = true;
                     u.sessions_valid_after_ms = std::max(u.sessions_valid_after_ms, now);
                     return Status::Ok();
                   }));
  // The flag alone already stops tokens (SessionGuard reads it); revoking the refresh
  // families also ends the sessions in the store, for any other reader.
  RETURN_IF_ERROR(store_.RevokeUserSessions(stored.user_id));
  Emit(SecurityEventType::kUserDisabled, stored.user_id, {}, actor_address, "user_disabled");
  return Status::Ok();
}

Result<std::string> Accounts::ResetMfa(std::string_view username, std::string_view actor_address) {
  Result<std::string> name = NormalizeUsername(username);
  if (!name.ok()) return NotFound("no such user");
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> user, store_.GetUserByName(*name));
  if (!user) return NotFound("no such user");
  if (user->disabled) return InvalidArgument("the user is disabled");
  const int64_t now = clock_.NowMillis();
  std::string token;
  ASSIGN_OR_RETURN(storage::UserRecord stored, Mutate(*user, [&](storage::UserRecord& u) -> Status {
                     if (u.disabled) return InvalidArgument("the user is disabled");
                     u.password_hash.clear();
                     u.totp_secret.clear();
                     u.mfa_enrolled = false;
                     // Steps of the new secret have nothing to do with the old one's.
                     u.totp_last_step = 0;
                     u.failed_attempts = 0;
                     u.locked_until_ms = 0;
                     u.sessions_valid_after_ms = std::max(u.sessions_valid_after_ms, now);
                     token = NewEnrollmentToken(u);
                     return Status::Ok();
                   }));
  RETURN_IF_ERROR(store_.RevokeUserSessions(stored.user_id));
  Emit(SecurityEventType::kMfaReset, stored.user_id, {}, actor_address, "mfa_reset");
  return token;
}

// --- Enrollment ---

Result<storage::UserRecord> Accounts::FindEnrollment(std::string_view token) {
  const Status invalid(StatusCode::kNotFound, std::string(kEnrollmentLinkInvalidMessage));
  if (token.empty() || token.size() > kMaxEnrollmentTokenChars) return invalid;
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> user,
                   store_.GetUserByEnrollment(HashToken(token)));
  if (!user || user->enrollment_hash.empty() || user->disabled ||
      clock_.NowMillis() >= user->enrollment_expires_ms) {
    return invalid;
  }
  return std::move(*user);
}

Result<std::string> Accounts::EnrollmentUsername(std::string_view token) {
  ASSIGN_OR_RETURN(storage::UserRecord user, FindEnrollment(token));
  return user.username;
}

Result<EnrollmentSecret> Accounts::BeginEnrollment(std::string_view token,
                                                   std::string_view new_password,
                                                   std::string_view address) {
  ASSIGN_OR_RETURN(storage::UserRecord user, FindEnrollment(token));
  if (new_password.size() > kMaxPasswordBytes) {
    return InvalidArgument("the password must have at most " +
                           std::to_string(kMaxPasswordCodePoints) + " characters");
  }
  RETURN_IF_ERROR(CheckPasswordPolicy(new_password, user.username, config_.min_password_length));
  ASSIGN_OR_RETURN(std::string password_hash, crypto::HashPassword(new_password));
  const std::string secret = crypto::RandomBytes(kTotpSecretBytes);
  ASSIGN_OR_RETURN(std::string sealed, SealSecret(user.user_id, secret));
  const std::string expected_hash = user.enrollment_hash;
  const int64_t now = clock_.NowMillis();
  ASSIGN_OR_RETURN(
      storage::UserRecord stored, Mutate(user, [&](storage::UserRecord& u) -> Status {
        // The link may have been used or replaced meanwhile.
        if (u.enrollment_hash != expected_hash || u.disabled || now >= u.enrollment_expires_ms) {
          return Status(StatusCode::kNotFound, std::string(kEnrollmentLinkInvalidMessage));
        }
        u.password_hash = password_hash;
        u.totp_secret = sealed;
        u.mfa_enrolled = false;
        return Status::Ok();
      }));
  (void)address;  // the event comes with the completed enrollment
  return MakeEnrollmentSecret(stored, secret);
}

Result<EnrollmentSecret> Accounts::PendingEnrollment(std::string_view token) {
  ASSIGN_OR_RETURN(storage::UserRecord user, FindEnrollment(token));
  if (user.totp_secret.empty() || user.password_hash.empty()) {
    return InvalidArgument("set a password first");
  }
  ASSIGN_OR_RETURN(std::string secret, OpenSecret(user));
  return MakeEnrollmentSecret(user, secret);
}

Status Accounts::ConfirmEnrollment(std::string_view token, std::string_view code,
                                   std::string_view address) {
  ASSIGN_OR_RETURN(storage::UserRecord user, FindEnrollment(token));
  if (user.totp_secret.empty() || user.password_hash.empty()) {
    return InvalidArgument("set a password first");
  }
  ASSIGN_OR_RETURN(std::string secret, OpenSecret(user));
  const int64_t now = clock_.NowMillis();
  std::optional<int64_t> step = VerifyTotp(secret, code, now / 1000, user.totp_last_step);
  if (!step) {
    Emit(SecurityEventType::kMfaFailure, user.user_id, {}, address, "enrollment_code");
    return Status(StatusCode::kUnauthenticated, std::string(kCodeFailedMessage));
  }
  const std::string expected_hash = user.enrollment_hash;
  const std::string expected_secret = user.totp_secret;
  ASSIGN_OR_RETURN(
      storage::UserRecord stored, Mutate(user, [&](storage::UserRecord& u) -> Status {
        if (u.enrollment_hash != expected_hash || u.disabled || now >= u.enrollment_expires_ms) {
          return Status(StatusCode::kNotFound, std::string(kEnrollmentLinkInvalidMessage));
        }
        // A second tab started step 1 again: this code is for a stale secret.
        if (u.totp_secret != expected_secret || u.totp_last_step >= *step) {
          return Status(StatusCode::kUnauthenticated, std::string(kCodeFailedMessage));
        }
        u.mfa_enrolled = true;
        u.totp_last_step = *step;
        u.enrollment_hash.clear();
        u.enrollment_expires_ms = 0;
        u.failed_attempts = 0;
        u.locked_until_ms = 0;
        // Whole seconds: access tokens carry auth_time in seconds, and a
        // login in the same second as this confirmation must stay valid.
        u.sessions_valid_after_ms = std::max(u.sessions_valid_after_ms, now - now % 1000);
        return Status::Ok();
      }));
  Emit(SecurityEventType::kEnrollmentCompleted, stored.user_id, {}, address,
       "enrollment_completed");
  return Status::Ok();
}

// --- Login ---

Status Accounts::RecordFailure(const storage::UserRecord& user, SecurityEventType type,
                               std::string_view reason, std::string_view address,
                               std::string_view client_id) {
  const int64_t now = clock_.NowMillis();
  const int max_failures = std::max(1, config_.max_failed_attempts);
  bool locked_now = false;
  ASSIGN_OR_RETURN(storage::UserRecord stored, Mutate(user, [&](storage::UserRecord& u) -> Status {
                     locked_now = false;
                     // Every checked wrong guess counts, also one that arrives after a
                     // concurrent failure (another process) locked the account: otherwise
                     // a batch of parallel guesses would cost the attacker one lock only.
                     ++u.failed_attempts;
                     if (u.failed_attempts < max_failures) return Status::Ok();
                     // lockout_base_s for the max_failures-th failure, doubling for each
                     // further one, at most lockout_max_s.
                     int64_t lock_s = std::max<int64_t>(1, config_.lockout_base_s);
                     const int64_t cap_s = std::max(lock_s, config_.lockout_max_s);
                     for (int i = max_failures; i < u.failed_attempts && lock_s < cap_s; ++i) {
                       lock_s *= 2;
                     }
                     lock_s = std::min(lock_s, cap_s);
                     // A running lock is extended, never shortened.
                     const int64_t until = now + lock_s * 1000;
                     if (until > u.locked_until_ms) {
                       u.locked_until_ms = until;
                       locked_now = true;
                     }
                     return Status::Ok();
                   }));
  Emit(type, stored.user_id, client_id, address, reason);
  if (locked_now)
    Emit(SecurityEventType::kAccountLocked, stored.user_id, client_id, address,
         "too_many_failures");
  return Status::Ok();
}

bool Accounts::ClaimCheck(const std::string& key) {
  std::lock_guard<std::mutex> lock(in_flight_mu_);
  return in_flight_.insert(key).second;
}

void Accounts::ReleaseCheck(const std::string& key) {
  std::lock_guard<std::mutex> lock(in_flight_mu_);
  in_flight_.erase(key);
}

Result<std::string> Accounts::CheckPassword(std::string_view username, std::string_view password,
                                            std::string_view address, std::string_view client_id) {
  const Status failed(StatusCode::kUnauthenticated, std::string(kLoginFailedMessage));
  Result<std::string> name = NormalizeUsername(username);
  if (!name.ok()) {
    BurnPasswordCheck(password);
    Emit(SecurityEventType::kLoginPasswordFailure, {}, client_id, address, "unknown_user");
    return failed;
  }
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> user, store_.GetUserByName(*name));
  // One check per account at a time (see the header); an unknown name is claimed too, so
  // that a concurrent attempt reads the same whether or not the account exists.
  const std::string claim = user ? "id:" + user->user_id : "name:" + *name;
  if (!ClaimCheck(claim)) {
    Emit(SecurityEventType::kLoginRefused, user ? std::string_view(user->user_id) : "", client_id,
         address, "concurrent_attempt");
    return failed;
  }
  CheckRelease release(*this, claim);
  if (!user) {
    BurnPasswordCheck(password);
    Emit(SecurityEventType::kLoginPasswordFailure, {}, client_id, address, "unknown_user");
    return failed;
  }
  auto refusal_of = [this](const storage::UserRecord& u) -> std::string_view {
    if (u.disabled) return "disabled";
    if (!u.mfa_enrolled || u.password_hash.empty()) return "not_enrolled";
    if (IsLocked(u, clock_.NowMillis())) return "locked";
    return {};
  };
  if (std::string_view refusal = refusal_of(*user); !refusal.empty()) {
    BurnPasswordCheck(password);
    Emit(SecurityEventType::kLoginRefused, user->user_id, client_id, address, refusal);
    return failed;
  }
  if (password.size() <= kMaxPasswordBytes &&
      crypto::VerifyPassword(user->password_hash, password)) {
    // Read again: the record above may predate a lock (a failure recorded by another
    // process, or before this check claimed the account), a disable or a reset.
    ASSIGN_OR_RETURN(std::optional<storage::UserRecord> fresh, store_.GetUser(user->user_id));
    std::string_view refusal = !fresh ? std::string_view("disabled") : refusal_of(*fresh);
    if (refusal.empty() && fresh->password_hash != user->password_hash) refusal = "not_enrolled";
    if (!refusal.empty()) {
      Emit(SecurityEventType::kLoginRefused, user->user_id, client_id, address, refusal);
      return failed;
    }
    // The failure count is reset only by a complete login (see the header).
    Emit(SecurityEventType::kLoginPasswordSuccess, user->user_id, client_id, address,
         "password_ok");
    return user->user_id;
  }
  if (password.size() > kMaxPasswordBytes) BurnPasswordCheck(password);
  RETURN_IF_ERROR(RecordFailure(*user, SecurityEventType::kLoginPasswordFailure, "wrong_password",
                                address, client_id));
  return failed;
}

Status Accounts::CheckTotp(const std::string& user_id, std::string_view code,
                           std::string_view address, std::string_view client_id) {
  const Status failed(StatusCode::kUnauthenticated, std::string(kCodeFailedMessage));
  // One check per account at a time (see the header), claimed before the read so that the
  // lock state below is not older than the last check of this account in this process.
  const std::string claim = "id:" + user_id;
  if (!ClaimCheck(claim)) {
    Emit(SecurityEventType::kLoginRefused, user_id, client_id, address, "concurrent_attempt");
    return failed;
  }
  CheckRelease release(*this, claim);
  ASSIGN_OR_RETURN(std::optional<storage::UserRecord> user, store_.GetUser(user_id));
  if (!user) return failed;
  const int64_t now = clock_.NowMillis();
  std::string_view refusal;
  if (user->disabled) {
    refusal = "disabled";
  } else if (!user->mfa_enrolled || user->totp_secret.empty()) {
    refusal = "not_enrolled";
  } else if (IsLocked(*user, now)) {
    refusal = "locked";
  }
  if (!refusal.empty()) {
    Emit(SecurityEventType::kLoginRefused, user->user_id, client_id, address, refusal);
    return failed;
  }
  ASSIGN_OR_RETURN(std::string secret, OpenSecret(*user));
  std::optional<int64_t> step = VerifyTotp(secret, code, now / 1000, user->totp_last_step);
  if (!step) {
    RETURN_IF_ERROR(
        RecordFailure(*user, SecurityEventType::kMfaFailure, "wrong_code", address, client_id));
    return failed;
  }
  const std::string expected_secret = user->totp_secret;
  Result<storage::UserRecord> stored = Mutate(*user, [&](storage::UserRecord& u) -> Status {
    // Re-checked on the fresh record: a concurrent login may have used this very code,
    // or an administrator may have acted, since the read above.
    if (u.disabled || !u.mfa_enrolled || u.totp_secret != expected_secret || IsLocked(u, now) ||
        u.totp_last_step >= *step) {
      return failed;
    }
    u.totp_last_step = *step;
    u.failed_attempts = 0;
    u.locked_until_ms = 0;
    return Status::Ok();
  });
  if (!stored.ok()) {
    if (stored.status().code() == StatusCode::kUnauthenticated) {
      Emit(SecurityEventType::kMfaFailure, user->user_id, client_id, address, "code_replayed");
    }
    return stored.status();
  }
  Emit(SecurityEventType::kLoginSuccess, user->user_id, client_id, address, "password_and_totp");
  return Status::Ok();
}

}  // namespace phigate::auth
