// Tests for the authentication state in the SQLite Store (storage/store.h, issue 3): client
// authentication fields, users with optimistic concurrency, refresh token families and their
// rotation state machine, access token revocation, client assertion replay, schema
// migration 2 from a version-1 database, and durability across reopen.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "storage/raw_db.h"
#include "storage/sqlite/sqlite_store.h"

namespace phigate::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1'700'000'000'000;  // the fake clock's start (Nov 2023)
constexpr int64_t kIdleMs = 15 * 60 * 1000;
constexpr int64_t kLifetimeMs = 12 * 60 * 60 * 1000;
constexpr int64_t kDayMs = 24 * 60 * 60 * 1000;

const Status& StatusOf(const Status& status) { return status; }
template <typename T>
const Status& StatusOf(const Result<T>& result) {
  return result.status();
}

MATCHER_P2(StatusIs, code, message, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.code() == code && status.message().find(message) != std::string::npos;
}

MATCHER(IsOk, "") {
  const Status& status = StatusOf(arg);
  *result_listener << "code " << static_cast<int>(status.code()) << ", message \""
                   << status.message() << "\"";
  return status.ok();
}

using ::phigate::testing::RawDb;

// The schema of version 1 exactly as the previous release wrote it (schema.cc migration 1).
// Frozen here on purpose: the upgrade test must start from the old file, not from whatever
// the current code would create.
constexpr char kVersion1Schema[] = R"sql(
CREATE TABLE resource_versions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL CHECK (length(type) > 0),
  id TEXT NOT NULL CHECK (length(id) > 0),
  version INTEGER NOT NULL CHECK (version >= 1),
  last_updated_ms INTEGER NOT NULL,
  deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
  key_version INTEGER NOT NULL CHECK (key_version BETWEEN 0 AND 4294967295),
  ciphertext BLOB NOT NULL,
  UNIQUE (type, id, version)
) STRICT;
CREATE INDEX resource_versions_by_type_seq ON resource_versions (type, seq);
CREATE INDEX resource_versions_by_resource_seq ON resource_versions (type, id, seq);
CREATE TABLE resource_current (
  type TEXT NOT NULL,
  id TEXT NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (type, id),
  FOREIGN KEY (type, id, version) REFERENCES resource_versions (type, id, version)
) STRICT, WITHOUT ROWID;
CREATE TABLE clients (
  client_id TEXT PRIMARY KEY NOT NULL CHECK (length(client_id) > 0),
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  scope TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  disabled INTEGER NOT NULL CHECK (disabled IN (0, 1))
) STRICT;
CREATE TABLE data_keys (
  version INTEGER PRIMARY KEY CHECK (version BETWEEN 0 AND 4294967295),
  wrapped BLOB NOT NULL
) STRICT;
PRAGMA user_version = 1;
)sql";

ClientRecord MakeClient(const std::string& client_id) {
  ClientRecord client;
  client.client_id = client_id;
  client.name = "App " + client_id;
  client.secret_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA";
  client.scope = "system/Observation.rs";
  client.created_ms = kT0;
  return client;
}

UserRecord MakeUser(const std::string& user_id, const std::string& username) {
  UserRecord user;
  user.user_id = user_id;
  user.username = username;
  user.roles = "clinician";
  user.fhir_user = "Practitioner/123";
  user.created_ms = kT0;
  return user;
}

RefreshFamily MakeFamily(const std::string& family_id, const std::string& user_id,
                         int64_t auth_time_ms) {
  RefreshFamily family;
  family.family_id = family_id;
  family.user_id = user_id;
  family.client_id = "app-1";
  family.scope = "openid fhirUser offline_access patient/*.rs";
  family.auth_time_ms = auth_time_ms;
  family.expires_ms = auth_time_ms + kLifetimeMs;
  family.last_used_ms = auth_time_ms;
  return family;
}

class AuthStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "phigate-auth-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/phigate.db";
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::unique_ptr<Store> Open() {
    SqliteOptions options;
    options.path = path_;
    options.read_connections = 2;
    options.clock = &clock_;
    auto store = OpenSqliteStore(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? std::move(store).value() : nullptr;
  }
  void Reopen() {
    store_.reset();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  RotateResult Rotate(const std::string& old_hash, const std::string& new_hash, int64_t now) {
    auto result = store_->RotateRefreshToken(old_hash, new_hash, now, kIdleMs);
    EXPECT_THAT(result, IsOk());
    return result.ok() ? *result : RotateResult{};
  }
  std::optional<RefreshFamily> Family(const std::string& family_id) {
    auto family = store_->GetRefreshFamily(family_id);
    EXPECT_THAT(family, IsOk());
    return family.ok() ? *family : std::nullopt;
  }
  std::vector<std::string> RevokedSince(int64_t since_ms) {
    auto families = store_->RevokedFamiliesSince(since_ms);
    EXPECT_THAT(families, IsOk());
    return families.ok() ? *families : std::vector<std::string>{"<error>"};
  }

  FakeClock clock_{kT0};
  std::string dir_;
  std::string path_;
  std::unique_ptr<Store> store_;
};

// --- clients ---------------------------------------------------------------------------------

TEST_F(AuthStoreTest, ClientAuthenticationFieldsRoundTrip) {
  ClientRecord jwt_client = MakeClient("backend-1");
  jwt_client.secret_hash.clear();
  jwt_client.auth_method = "private_key_jwt";
  jwt_client.jwks = R"({"keys":[{"kty":"EC","crv":"P-256","x":"eA","y":"eQ"}]})";
  jwt_client.roles = "clinician,auditor";
  ASSERT_THAT(store_->PutClient(jwt_client), IsOk());
  ClientRecord public_app = MakeClient("app-1");
  public_app.secret_hash.clear();
  public_app.auth_method = "none";
  public_app.redirect_uris = "https://app.example/cb http://127.0.0.1:8080/cb";
  ASSERT_THAT(store_->PutClient(public_app), IsOk());

  auto got = store_->GetClient("backend-1");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->auth_method, "private_key_jwt");
  EXPECT_EQ((*got)->jwks, jwt_client.jwks);
  EXPECT_EQ((*got)->roles, "clinician,auditor");
  EXPECT_EQ((*got)->redirect_uris, "");
  EXPECT_EQ((*got)->secret_hash, "");
  auto app = store_->GetClient("app-1");
  ASSERT_THAT(app, IsOk());
  ASSERT_TRUE(app->has_value());
  EXPECT_EQ((*app)->auth_method, "none");
  EXPECT_EQ((*app)->redirect_uris, public_app.redirect_uris);
}

TEST_F(AuthStoreTest, ListClientsIsOrderedByIdAndEmptyAtFirst) {
  auto empty = store_->ListClients();
  ASSERT_THAT(empty, IsOk());
  EXPECT_THAT(*empty, IsEmpty());
  ASSERT_THAT(store_->PutClient(MakeClient("b")), IsOk());
  ASSERT_THAT(store_->PutClient(MakeClient("c")), IsOk());
  ASSERT_THAT(store_->PutClient(MakeClient("a")), IsOk());
  auto clients = store_->ListClients();
  ASSERT_THAT(clients, IsOk());
  std::vector<std::string> ids;
  for (const ClientRecord& client : *clients) ids.push_back(client.client_id);
  EXPECT_THAT(ids, ElementsAre("a", "b", "c"));
  EXPECT_EQ((*clients)[0].name, "App a");
  EXPECT_EQ((*clients)[0].auth_method, "client_secret_basic");
}

TEST_F(AuthStoreTest, UnknownClientAuthMethodIsRejected) {
  ClientRecord client = MakeClient("x");
  client.auth_method = "client_secret_post";
  EXPECT_THAT(store_->PutClient(client),
              StatusIs(StatusCode::kInvalidArgument, "unknown client authentication method"));
  EXPECT_FALSE(store_->GetClient("x")->has_value());
}

// --- users -----------------------------------------------------------------------------------

TEST_F(AuthStoreTest, PutUserThenGetByIdNameAndEnrollment) {
  UserRecord user = MakeUser("u1", "Alice.Smith@Example");
  user.password_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$cHc";
  user.totp_secret = std::string("\x00sealed\xff\x01", 9);
  user.mfa_enrolled = true;
  user.totp_last_step = 56'666'666;
  user.enrollment_hash = std::string(64, 'a');
  user.enrollment_expires_ms = kT0 + kDayMs;
  user.failed_attempts = 3;
  user.locked_until_ms = kT0 + 60'000;
  user.disabled = true;
  user.sessions_valid_after_ms = kT0 - 5;
  user.revision = 7;  // ignored: an insert is revision 1
  ASSERT_THAT(store_->PutUser(user), IsOk());

  auto got = store_->GetUser("u1");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(got->has_value());
  const UserRecord& u = **got;
  EXPECT_EQ(u.user_id, "u1");
  EXPECT_EQ(u.username, "alice.smith@example");  // stored lower-cased
  EXPECT_EQ(u.roles, "clinician");
  EXPECT_EQ(u.fhir_user, "Practitioner/123");
  EXPECT_EQ(u.password_hash, user.password_hash);
  EXPECT_EQ(u.totp_secret, user.totp_secret);  // sealed bytes, NULs included
  EXPECT_TRUE(u.mfa_enrolled);
  EXPECT_EQ(u.totp_last_step, 56'666'666);
  EXPECT_EQ(u.enrollment_hash, std::string(64, 'a'));
  EXPECT_EQ(u.enrollment_expires_ms, kT0 + kDayMs);
  EXPECT_EQ(u.failed_attempts, 3);
  EXPECT_EQ(u.locked_until_ms, kT0 + 60'000);
  EXPECT_TRUE(u.disabled);
  EXPECT_EQ(u.created_ms, kT0);
  EXPECT_EQ(u.sessions_valid_after_ms, kT0 - 5);
  EXPECT_EQ(u.revision, 1);

  auto by_name = store_->GetUserByName("ALICE.smith@example");
  ASSERT_THAT(by_name, IsOk());
  ASSERT_TRUE(by_name->has_value());
  EXPECT_EQ((*by_name)->user_id, "u1");
  auto by_enrollment = store_->GetUserByEnrollment(std::string(64, 'a'));
  ASSERT_THAT(by_enrollment, IsOk());
  ASSERT_TRUE(by_enrollment->has_value());
  EXPECT_EQ((*by_enrollment)->user_id, "u1");

  EXPECT_FALSE(store_->GetUser("u2")->has_value());
  EXPECT_FALSE(store_->GetUserByName("bob")->has_value());
  EXPECT_FALSE(store_->GetUserByEnrollment(std::string(64, 'b'))->has_value());
}

TEST_F(AuthStoreTest, PutUserConflictsOnIdOrUsernameInAnyCase) {
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  EXPECT_THAT(store_->PutUser(MakeUser("u1", "bob")),
              StatusIs(StatusCode::kConflict, "user exists"));
  EXPECT_THAT(store_->PutUser(MakeUser("u2", "ALICE")),
              StatusIs(StatusCode::kConflict, "user exists"));
  EXPECT_FALSE(store_->GetUser("u2")->has_value());
  EXPECT_FALSE(store_->GetUserByName("bob")->has_value());
}

TEST_F(AuthStoreTest, PutUserRejectsMalformedRecords) {
  EXPECT_THAT(store_->PutUser(MakeUser("", "alice")),
              StatusIs(StatusCode::kInvalidArgument, "user_id"));
  EXPECT_THAT(store_->PutUser(MakeUser("u1", "")),
              StatusIs(StatusCode::kInvalidArgument, "username"));
  UserRecord negative = MakeUser("u1", "alice");
  negative.failed_attempts = -1;
  EXPECT_THAT(store_->PutUser(negative),
              StatusIs(StatusCode::kInvalidArgument, "failed attempt count"));
  EXPECT_THAT(*store_->ListUsers(), IsEmpty());
}

TEST_F(AuthStoreTest, UpdateUserBumpsRevisionAndKeepsImmutableFields) {
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  UserRecord update = **store_->GetUser("u1");
  update.username = "Alice";  // the same name in another case is not a change
  update.password_hash = "$argon2id$new";
  update.totp_secret = "sealed-secret";
  update.failed_attempts = 5;
  update.locked_until_ms = kT0 + 1000;
  update.created_ms = 42;  // immutable: ignored
  update.revision = 99;    // set by the store
  ASSERT_THAT(store_->UpdateUser(update, 1), IsOk());

  const UserRecord got = **store_->GetUser("u1");
  EXPECT_EQ(got.revision, 2);
  EXPECT_EQ(got.username, "alice");
  EXPECT_EQ(got.password_hash, "$argon2id$new");
  EXPECT_EQ(got.totp_secret, "sealed-secret");
  EXPECT_EQ(got.failed_attempts, 5);
  EXPECT_EQ(got.locked_until_ms, kT0 + 1000);
  EXPECT_EQ(got.created_ms, kT0);

  update.failed_attempts = 0;
  ASSERT_THAT(store_->UpdateUser(update, 2), IsOk());
  EXPECT_EQ((*store_->GetUser("u1"))->revision, 3);
  EXPECT_EQ((*store_->GetUser("u1"))->failed_attempts, 0);
}

TEST_F(AuthStoreTest, UpdateUserWithStaleRevisionConflictsAndChangesNothing) {
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  UserRecord first = **store_->GetUser("u1");
  UserRecord second = first;  // two writers read revision 1
  first.disabled = true;
  ASSERT_THAT(store_->UpdateUser(first, 1), IsOk());
  second.failed_attempts = 1;
  EXPECT_THAT(store_->UpdateUser(second, 1), StatusIs(StatusCode::kConflict, "version conflict"));
  EXPECT_THAT(store_->UpdateUser(second, 3), StatusIs(StatusCode::kConflict, "version conflict"));
  const UserRecord got = **store_->GetUser("u1");
  EXPECT_EQ(got.revision, 2);
  EXPECT_TRUE(got.disabled);
  EXPECT_EQ(got.failed_attempts, 0);
}

TEST_F(AuthStoreTest, UpdateUserMissingOrRenamedIsRefused) {
  EXPECT_THAT(store_->UpdateUser(MakeUser("ghost", "ghost"), 1),
              StatusIs(StatusCode::kNotFound, "user not found"));
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  UserRecord renamed = **store_->GetUser("u1");
  renamed.username = "mallory";
  renamed.roles = "admin";
  EXPECT_THAT(store_->UpdateUser(renamed, 1),
              StatusIs(StatusCode::kInvalidArgument, "a username cannot change"));
  const UserRecord got = **store_->GetUser("u1");
  EXPECT_EQ(got.username, "alice");
  EXPECT_EQ(got.roles, "clinician");
  EXPECT_EQ(got.revision, 1);
  EXPECT_FALSE(store_->GetUserByName("mallory")->has_value());
}

TEST_F(AuthStoreTest, EnrollmentHashIsUniqueOnlyWhenSetAndEmptyFindsNobody) {
  // Users without an outstanding enrollment ("" hash) coexist.
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  ASSERT_THAT(store_->PutUser(MakeUser("u2", "bob")), IsOk());
  auto none = store_->GetUserByEnrollment("");
  ASSERT_THAT(none, IsOk());
  EXPECT_FALSE(none->has_value());

  UserRecord carol = MakeUser("u3", "carol");
  carol.enrollment_hash = "hash-1";
  ASSERT_THAT(store_->PutUser(carol), IsOk());
  UserRecord dave = MakeUser("u4", "dave");
  dave.enrollment_hash = "hash-1";
  EXPECT_THAT(store_->PutUser(dave), StatusIs(StatusCode::kConflict, "user exists"));
  UserRecord alice = **store_->GetUser("u1");
  alice.enrollment_hash = "hash-1";
  EXPECT_THAT(store_->UpdateUser(alice, 1),
              StatusIs(StatusCode::kConflict, "enrollment token exists"));
  EXPECT_EQ((*store_->GetUser("u1"))->revision, 1);

  // Completing the enrollment clears the hash: the link no longer finds the user.
  carol = **store_->GetUser("u3");
  carol.enrollment_hash.clear();
  carol.enrollment_expires_ms = 0;
  ASSERT_THAT(store_->UpdateUser(carol, 1), IsOk());
  EXPECT_FALSE(store_->GetUserByEnrollment("hash-1")->has_value());
  EXPECT_FALSE(store_->GetUserByEnrollment("")->has_value());
}

TEST_F(AuthStoreTest, ListUsersIsOrderedByUsername) {
  ASSERT_THAT(store_->PutUser(MakeUser("id-1", "zoe")), IsOk());
  ASSERT_THAT(store_->PutUser(MakeUser("id-2", "Adam")), IsOk());
  ASSERT_THAT(store_->PutUser(MakeUser("id-3", "mia")), IsOk());
  auto users = store_->ListUsers();
  ASSERT_THAT(users, IsOk());
  std::vector<std::string> names;
  for (const UserRecord& user : *users) names.push_back(user.username);
  EXPECT_THAT(names, ElementsAre("adam", "mia", "zoe"));
  EXPECT_EQ((*users)[0].user_id, "id-2");
}

// --- refresh token families ------------------------------------------------------------------

TEST_F(AuthStoreTest, CreateFamilyThenFindAndGet) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  auto found = store_->FindRefreshToken("h1");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  const RefreshFamily& f = **found;
  EXPECT_EQ(f.family_id, "f1");
  EXPECT_EQ(f.user_id, "u1");
  EXPECT_EQ(f.client_id, "app-1");
  EXPECT_EQ(f.scope, "openid fhirUser offline_access patient/*.rs");
  EXPECT_EQ(f.auth_time_ms, kT0);
  EXPECT_EQ(f.expires_ms, kT0 + kLifetimeMs);
  EXPECT_EQ(f.last_used_ms, kT0);
  EXPECT_FALSE(f.revoked);
  ASSERT_TRUE(Family("f1").has_value());
  EXPECT_EQ(Family("f1")->user_id, "u1");
  EXPECT_FALSE(Family("f2").has_value());
  EXPECT_FALSE(store_->FindRefreshToken("h2")->has_value());
}

TEST_F(AuthStoreTest, CreateFamilyConflictsAndRejectsMalformed) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  EXPECT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u2", kT0), "h2"),
              StatusIs(StatusCode::kConflict, "session exists"));
  EXPECT_THAT(store_->CreateRefreshFamily(MakeFamily("f2", "u2", kT0), "h1"),
              StatusIs(StatusCode::kConflict, "session exists"));
  // The failed second insert took its family row with it (one transaction).
  EXPECT_FALSE(Family("f2").has_value());
  EXPECT_FALSE(store_->FindRefreshToken("h2")->has_value());
  EXPECT_EQ(Family("f1")->user_id, "u1");

  EXPECT_THAT(store_->CreateRefreshFamily(MakeFamily("", "u1", kT0), "h3"),
              StatusIs(StatusCode::kInvalidArgument, "family id"));
  EXPECT_THAT(store_->CreateRefreshFamily(MakeFamily("f3", "u1", kT0), ""),
              StatusIs(StatusCode::kInvalidArgument, "token"));
  RefreshFamily revoked = MakeFamily("f4", "u1", kT0);
  revoked.revoked = true;
  EXPECT_THAT(store_->CreateRefreshFamily(revoked, "h4"),
              StatusIs(StatusCode::kInvalidArgument, "cannot be revoked"));
}

TEST_F(AuthStoreTest, RotateTwiceThenReuseOfTheFirstTokenRevokesTheFamily) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());

  RotateResult first = Rotate("h1", "h2", kT0 + 1000);
  EXPECT_EQ(first.outcome, RotateOutcome::kRotated);
  EXPECT_EQ(first.family.family_id, "f1");
  EXPECT_EQ(first.family.last_used_ms, kT0 + 1000);
  EXPECT_FALSE(first.family.revoked);
  RotateResult second = Rotate("h2", "h3", kT0 + 2000);
  EXPECT_EQ(second.outcome, RotateOutcome::kRotated);
  EXPECT_EQ(second.family.last_used_ms, kT0 + 2000);
  EXPECT_EQ(Family("f1")->last_used_ms, kT0 + 2000);

  // Only the newest token is current.
  EXPECT_FALSE(store_->FindRefreshToken("h1")->has_value());
  EXPECT_FALSE(store_->FindRefreshToken("h2")->has_value());
  ASSERT_TRUE(store_->FindRefreshToken("h3")->has_value());
  EXPECT_THAT(RevokedSince(0), IsEmpty());

  // An attacker replays the first token: the whole session ends (RFC 9700 §4.14.2).
  RotateResult reused = Rotate("h1", "h4", kT0 + 3000);
  EXPECT_EQ(reused.outcome, RotateOutcome::kReused);
  EXPECT_EQ(reused.family.family_id, "f1");
  EXPECT_TRUE(reused.family.revoked);
  EXPECT_TRUE(Family("f1")->revoked);
  EXPECT_EQ(Family("f1")->last_used_ms, kT0 + 2000);  // reuse is not use
  EXPECT_FALSE(store_->FindRefreshToken("h4")->has_value());
  EXPECT_THAT(RevokedSince(kT0 + 3000), ElementsAre("f1"));
  EXPECT_THAT(RevokedSince(kT0 + 3001), IsEmpty());

  // The legitimate client's current token now fails too; its family is reported.
  RotateResult after = Rotate("h3", "h5", kT0 + 4000);
  EXPECT_EQ(after.outcome, RotateOutcome::kRevoked);
  EXPECT_EQ(after.family.family_id, "f1");
  EXPECT_TRUE(after.family.revoked);
  // Introspection still finds the (revoked) family of the current token.
  auto found = store_->FindRefreshToken("h3");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_TRUE((*found)->revoked);
  // A second reuse of an old token on the revoked family keeps the first revocation time.
  EXPECT_EQ(Rotate("h2", "h6", kT0 + 5000).outcome, RotateOutcome::kRevoked);
  EXPECT_THAT(RevokedSince(kT0 + 3001), IsEmpty());
}

TEST_F(AuthStoreTest, UnknownTokenIsUnknownWithEmptyFamily) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  RotateResult unknown = Rotate("nope", "h2", kT0 + 1);
  EXPECT_EQ(unknown.outcome, RotateOutcome::kUnknown);
  EXPECT_EQ(unknown.family.family_id, "");
  EXPECT_FALSE(store_->FindRefreshToken("h2")->has_value());
  EXPECT_FALSE(Family("f1")->revoked);
}

TEST_F(AuthStoreTest, IdleTimeoutExpiresAndRevokesExactlyAtTheBoundary) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  // One millisecond before the idle end: still live; the idle clock restarts from here.
  const int64_t used = kT0 + kIdleMs - 1;
  EXPECT_EQ(Rotate("h1", "h2", used).outcome, RotateOutcome::kRotated);
  RotateResult expired = Rotate("h2", "h3", used + kIdleMs);
  EXPECT_EQ(expired.outcome, RotateOutcome::kExpired);
  EXPECT_TRUE(expired.family.revoked);
  EXPECT_EQ(expired.family.last_used_ms, used);
  EXPECT_TRUE(Family("f1")->revoked);
  EXPECT_FALSE(store_->FindRefreshToken("h3")->has_value());
  EXPECT_THAT(RevokedSince(used + kIdleMs), ElementsAre("f1"));
  EXPECT_EQ(Rotate("h2", "h4", used + kIdleMs + 1).outcome, RotateOutcome::kRevoked);
}

TEST_F(AuthStoreTest, AbsoluteLifetimeExpiresEvenWhenActive) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  // Keep the session busy so the idle timeout never triggers.
  int64_t now = kT0;
  int n = 1;
  while (now + kIdleMs / 2 < kT0 + kLifetimeMs) {
    now += kIdleMs / 2;
    ASSERT_EQ(Rotate("h" + std::to_string(n), "h" + std::to_string(n + 1), now).outcome,
              RotateOutcome::kRotated)
        << now;
    ++n;
  }
  const std::string current = "h" + std::to_string(n);
  EXPECT_EQ(Rotate(current, "next", kT0 + kLifetimeMs - 1).outcome, RotateOutcome::kRotated);
  RotateResult expired = Rotate("next", "after", kT0 + kLifetimeMs);
  EXPECT_EQ(expired.outcome, RotateOutcome::kExpired);
  EXPECT_TRUE(Family("f1")->revoked);
}

TEST_F(AuthStoreTest, RotationIntoAnExistingHashConflictsAndChangesNothing) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f2", "u1", kT0), "other"), IsOk());
  EXPECT_THAT(store_->RotateRefreshToken("h1", "other", kT0 + 1, kIdleMs),
              StatusIs(StatusCode::kConflict, "refresh token exists"));
  auto found = store_->FindRefreshToken("h1");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());  // still current
  EXPECT_EQ((*found)->last_used_ms, kT0);
  EXPECT_EQ(Rotate("h1", "h2", kT0 + 2).outcome, RotateOutcome::kRotated);
}

TEST_F(AuthStoreTest, RotateRejectsMalformedArguments) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  EXPECT_THAT(store_->RotateRefreshToken("", "h2", kT0, kIdleMs),
              StatusIs(StatusCode::kInvalidArgument, "rotation"));
  EXPECT_THAT(store_->RotateRefreshToken("h1", "", kT0, kIdleMs),
              StatusIs(StatusCode::kInvalidArgument, "rotation"));
  EXPECT_THAT(store_->RotateRefreshToken("h1", "h1", kT0, kIdleMs),
              StatusIs(StatusCode::kInvalidArgument, "rotation"));
  EXPECT_THAT(store_->RotateRefreshToken("h1", "h2", kT0, 0),
              StatusIs(StatusCode::kInvalidArgument, "idle timeout"));
  EXPECT_TRUE(store_->FindRefreshToken("h1")->has_value());
}

// Regression guard for the check-then-write: two requests with the same token at once must
// not both rotate it.
TEST_F(AuthStoreTest, RacingRotationsOfOneTokenRotateItOnce) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  constexpr int kThreads = 4;
  std::vector<RotateOutcome> outcomes(kThreads, RotateOutcome::kUnknown);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      auto result = store_->RotateRefreshToken("h1", "new-" + std::to_string(i), kT0 + 1, kIdleMs);
      if (result.ok()) outcomes[static_cast<size_t>(i)] = result->outcome;
    });
  }
  for (std::thread& thread : threads) thread.join();
  int rotated = 0;
  int reused = 0;
  int revoked = 0;
  for (RotateOutcome outcome : outcomes) {
    rotated += outcome == RotateOutcome::kRotated ? 1 : 0;
    reused += outcome == RotateOutcome::kReused ? 1 : 0;
    revoked += outcome == RotateOutcome::kRevoked ? 1 : 0;
  }
  EXPECT_EQ(rotated, 1);
  EXPECT_EQ(reused, 1);  // the first replay revokes
  EXPECT_EQ(revoked, kThreads - 2);
  EXPECT_TRUE(Family("f1")->revoked);
}

TEST_F(AuthStoreTest, RevokeFamilyIsIdempotentAndKeepsItsFirstTime) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  clock_.Set(kT0 + 10'000);
  ASSERT_THAT(store_->RevokeRefreshFamily("f1"), IsOk());
  clock_.Set(kT0 + 20'000);
  ASSERT_THAT(store_->RevokeRefreshFamily("f1"), IsOk());
  EXPECT_TRUE(Family("f1")->revoked);
  EXPECT_THAT(RevokedSince(kT0 + 10'000), ElementsAre("f1"));
  EXPECT_THAT(RevokedSince(kT0 + 10'001), IsEmpty());
  EXPECT_EQ(Rotate("h1", "h2", kT0 + 20'000).outcome, RotateOutcome::kRevoked);
  // Revoking a session that does not exist (or no longer does) is not an error.
  EXPECT_THAT(store_->RevokeRefreshFamily("never"), IsOk());
  EXPECT_THAT(store_->RevokeRefreshFamily(""), StatusIs(StatusCode::kInvalidArgument, "family"));
}

TEST_F(AuthStoreTest, RevokeUserSessionsRevokesOnlyThatUsersFamilies) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("a1", "alice", kT0), "ha1"), IsOk());
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("a2", "alice", kT0), "ha2"), IsOk());
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("b1", "bob", kT0), "hb1"), IsOk());
  clock_.Set(kT0 + 5000);
  ASSERT_THAT(store_->RevokeRefreshFamily("a2"), IsOk());
  clock_.Set(kT0 + 6000);
  ASSERT_THAT(store_->RevokeUserSessions("alice"), IsOk());
  EXPECT_TRUE(Family("a1")->revoked);
  EXPECT_TRUE(Family("a2")->revoked);
  EXPECT_FALSE(Family("b1")->revoked);
  // Oldest revocation first; a2 keeps its earlier time.
  EXPECT_THAT(RevokedSince(kT0), ElementsAre("a2", "a1"));
  EXPECT_THAT(RevokedSince(kT0 + 5001), ElementsAre("a1"));
  EXPECT_THAT(store_->RevokeUserSessions("nobody"), IsOk());
  EXPECT_THAT(store_->RevokeUserSessions(""), StatusIs(StatusCode::kInvalidArgument, "user_id"));
}

TEST_F(AuthStoreTest, CreatingASessionPurgesSessionsThatEndedLongAgo) {
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("old", "u1", kT0), "h-old"), IsOk());
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("recent", "u1", kT0 + kDayMs), "h-recent"),
              IsOk());
  ASSERT_EQ(Rotate("h-old", "h-old-2", kT0 + 1).outcome, RotateOutcome::kRotated);
  // "old" ended at kT0 + 12 h; a login 24 h + 12 h + 1 ms later removes it and its tokens.
  const int64_t login = kT0 + kLifetimeMs + kDayMs + 1;
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("new", "u1", login), "h-new"), IsOk());
  EXPECT_FALSE(Family("old").has_value());
  EXPECT_EQ(Rotate("h-old-2", "x", login).outcome, RotateOutcome::kUnknown);
  EXPECT_EQ(Rotate("h-old", "y", login).outcome, RotateOutcome::kUnknown);
  EXPECT_TRUE(Family("recent").has_value());
  EXPECT_TRUE(Family("new").has_value());
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("SELECT token_hash FROM refresh_tokens ORDER BY token_hash"),
              ElementsAre("h-new", "h-recent"));
}

// --- access token revocation and assertion replay ---------------------------------------------

TEST_F(AuthStoreTest, RevokedAccessTokensAreListedUntilExpiryThenPurged) {
  ASSERT_THAT(store_->RevokeAccessToken("jti-b", kT0 + 300'000), IsOk());
  ASSERT_THAT(store_->RevokeAccessToken("jti-a", kT0 + 100'000), IsOk());
  // Idempotent; a repeated revocation keeps the later expiry.
  ASSERT_THAT(store_->RevokeAccessToken("jti-a", kT0 + 200'000), IsOk());
  ASSERT_THAT(store_->RevokeAccessToken("jti-a", kT0 + 50'000), IsOk());
  EXPECT_THAT(store_->RevokeAccessToken("", kT0), StatusIs(StatusCode::kInvalidArgument, "jti"));

  auto live = store_->RevokedAccessTokens(kT0);
  ASSERT_THAT(live, IsOk());
  EXPECT_THAT(*live, ElementsAre("jti-a", "jti-b"));
  live = store_->RevokedAccessTokens(kT0 + 199'999);
  ASSERT_THAT(live, IsOk());
  EXPECT_THAT(*live, ElementsAre("jti-a", "jti-b"));
  // expires_ms == now is expired.
  live = store_->RevokedAccessTokens(kT0 + 200'000);
  ASSERT_THAT(live, IsOk());
  EXPECT_THAT(*live, ElementsAre("jti-b"));
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("SELECT jti FROM revoked_access_tokens"), ElementsAre("jti-b"));
}

TEST_F(AuthStoreTest, AssertionJtiIsSingleUseUntilItExpires) {
  auto first = store_->RecordAssertionJti("backend-1", "jti-1", kT0 + 300'000, kT0);
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(*first);
  auto replay = store_->RecordAssertionJti("backend-1", "jti-1", kT0 + 300'000, kT0 + 1000);
  ASSERT_THAT(replay, IsOk());
  EXPECT_FALSE(*replay);
  // The same jti from another client is another assertion.
  auto other_client = store_->RecordAssertionJti("backend-2", "jti-1", kT0 + 300'000, kT0);
  ASSERT_THAT(other_client, IsOk());
  EXPECT_TRUE(*other_client);
  // A replay attempt does not extend the entry.
  auto longer = store_->RecordAssertionJti("backend-1", "jti-1", kT0 + 900'000, kT0 + 2000);
  ASSERT_THAT(longer, IsOk());
  EXPECT_FALSE(*longer);
  auto last_moment = store_->RecordAssertionJti("backend-1", "jti-1", kT0 + 300'000, kT0 + 299'999);
  ASSERT_THAT(last_moment, IsOk());
  EXPECT_FALSE(*last_moment);
  // Once expired, the entry is purged and the (client, jti) may be recorded anew.
  auto expired = store_->RecordAssertionJti("backend-1", "jti-1", kT0 + 600'000, kT0 + 300'000);
  ASSERT_THAT(expired, IsOk());
  EXPECT_TRUE(*expired);

  EXPECT_THAT(store_->RecordAssertionJti("", "jti", kT0, kT0),
              StatusIs(StatusCode::kInvalidArgument, "client_id"));
  EXPECT_THAT(store_->RecordAssertionJti("backend-1", "", kT0, kT0),
              StatusIs(StatusCode::kInvalidArgument, "jti"));
}

TEST_F(AuthStoreTest, ExpiredAssertionJtisArePurged) {
  ASSERT_THAT(store_->RecordAssertionJti("c", "j1", kT0 + 10, kT0), IsOk());
  ASSERT_THAT(store_->RecordAssertionJti("c", "j2", kT0 + 20, kT0), IsOk());
  ASSERT_THAT(store_->RecordAssertionJti("c", "j3", kT0 + 30, kT0 + 20), IsOk());
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("SELECT jti FROM client_assertion_jtis ORDER BY jti"), ElementsAre("j3"));
}

// --- schema, migration, durability -----------------------------------------------------------

TEST_F(AuthStoreTest, AuthenticationTablesHaveExactlyTheExpectedColumns) {
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("PRAGMA user_version"), ElementsAre("4"));
  EXPECT_THAT(db.Columns("clients"),
              ElementsAre("client_id:TEXT", "name:TEXT", "secret_hash:TEXT", "scope:TEXT",
                          "created_ms:INTEGER", "disabled:INTEGER", "auth_method:TEXT", "jwks:TEXT",
                          "roles:TEXT", "redirect_uris:TEXT", "third_party:INTEGER",
                          "baa_counterparty:TEXT", "baa_signed_ms:INTEGER",
                          "baa_expires_ms:INTEGER", "baa_status:TEXT"));
  EXPECT_THAT(
      db.Columns("users"),
      ElementsAre("user_id:TEXT", "username:TEXT", "roles:TEXT", "fhir_user:TEXT",
                  "password_hash:TEXT", "totp_secret:BLOB", "mfa_enrolled:INTEGER",
                  "totp_last_step:INTEGER", "enrollment_hash:TEXT", "enrollment_expires_ms:INTEGER",
                  "failed_attempts:INTEGER", "locked_until_ms:INTEGER", "disabled:INTEGER",
                  "created_ms:INTEGER", "sessions_valid_after_ms:INTEGER", "revision:INTEGER"));
  EXPECT_THAT(db.Columns("refresh_families"),
              ElementsAre("family_id:TEXT", "user_id:TEXT", "client_id:TEXT", "scope:TEXT",
                          "auth_time_ms:INTEGER", "expires_ms:INTEGER", "last_used_ms:INTEGER",
                          "revoked:INTEGER", "revoked_ms:INTEGER"));
  EXPECT_THAT(db.Columns("refresh_tokens"),
              ElementsAre("token_hash:TEXT", "family_id:TEXT", "created_ms:INTEGER",
                          "is_current:INTEGER", "rotated_ms:INTEGER"));
  EXPECT_THAT(db.Columns("revoked_access_tokens"), ElementsAre("jti:TEXT", "expires_ms:INTEGER"));
  EXPECT_THAT(db.Columns("client_assertion_jtis"),
              ElementsAre("client_id:TEXT", "jti:TEXT", "expires_ms:INTEGER"));
  // Every new table is STRICT.
  EXPECT_THAT(db.Column("SELECT name FROM pragma_table_list WHERE strict = 0 AND schema = 'main'"
                        " AND name NOT LIKE 'sqlite_%' ORDER BY name"),
              IsEmpty());
}

TEST_F(AuthStoreTest, LookupsUseTheirIndexes) {
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  constexpr int kDetail = 3;  // EXPLAIN QUERY PLAN's detail column
  EXPECT_THAT(db.Column("EXPLAIN QUERY PLAN SELECT * FROM users WHERE enrollment_hash = 'x'"
                        " AND enrollment_hash <> ''",
                        kDetail),
              ElementsAre(HasSubstr("users_by_enrollment_hash")));
  EXPECT_THAT(db.Column("EXPLAIN QUERY PLAN SELECT family_id FROM refresh_families"
                        " WHERE revoked = 1 AND revoked_ms >= 5 ORDER BY revoked_ms, family_id",
                        kDetail),
              ::testing::Contains(HasSubstr("refresh_families_by_revoked_ms")));
  EXPECT_THAT(db.Column("EXPLAIN QUERY PLAN UPDATE refresh_families SET revoked = 1"
                        " WHERE user_id = 'u' AND revoked = 0",
                        kDetail),
              ElementsAre(HasSubstr("refresh_families_by_user")));
}

TEST_F(AuthStoreTest, VersionOneDatabaseMigratesAndKeepsItsClients) {
  store_.reset();
  fs::remove(path_);
  fs::remove(path_ + "-wal");
  fs::remove(path_ + "-shm");
  {
    RawDb db(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    ASSERT_TRUE(db.ok());
    ASSERT_EQ(db.Exec(kVersion1Schema), SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO clients VALUES ('lab-1', 'Lab', '$argon2id$h', "
                      "'system/Observation.rs', 1700000000123, 0),"
                      " ('lab-2', 'Old lab', '$argon2id$h2', 'system/Patient.r', 5, 1)"),
              SQLITE_OK);
    ASSERT_EQ(db.Exec("INSERT INTO data_keys VALUES (1, x'0102')"), SQLITE_OK);
    ASSERT_THAT(db.Column("PRAGMA user_version"), ElementsAre("1"));
  }
  store_ = Open();
  ASSERT_NE(store_, nullptr);

  auto clients = store_->ListClients();
  ASSERT_THAT(clients, IsOk());
  ASSERT_EQ(clients->size(), 2u);
  const ClientRecord& lab = (*clients)[0];
  EXPECT_EQ(lab.client_id, "lab-1");
  EXPECT_EQ(lab.name, "Lab");
  EXPECT_EQ(lab.secret_hash, "$argon2id$h");
  EXPECT_EQ(lab.scope, "system/Observation.rs");
  EXPECT_EQ(lab.created_ms, 1'700'000'000'123);
  EXPECT_FALSE(lab.disabled);
  // An issue-2 client keeps working as a secret client with no extras.
  EXPECT_EQ(lab.auth_method, "client_secret_basic");
  EXPECT_EQ(lab.jwks, "");
  EXPECT_EQ(lab.roles, "");
  EXPECT_EQ(lab.redirect_uris, "");
  EXPECT_TRUE((*clients)[1].disabled);
  ASSERT_EQ(store_->LoadDataKeys()->size(), 1u);

  // The new tables work, and the migration is not repeated on the next open.
  ASSERT_THAT(store_->PutUser(MakeUser("u1", "alice")), IsOk());
  ASSERT_THAT(store_->PutClient(MakeClient("lab-3")), IsOk());
  Reopen();
  EXPECT_TRUE(store_->GetUser("u1")->has_value());
  EXPECT_EQ(store_->ListClients()->size(), 3u);
  RawDb db(path_, SQLITE_OPEN_READONLY);
  ASSERT_TRUE(db.ok());
  EXPECT_THAT(db.Column("PRAGMA user_version"), ElementsAre("4"));
}

TEST_F(AuthStoreTest, AuthenticationStateSurvivesReopen) {
  ClientRecord client = MakeClient("app-1");
  client.auth_method = "none";
  client.secret_hash.clear();
  client.redirect_uris = "https://app.example/cb";
  ASSERT_THAT(store_->PutClient(client), IsOk());
  UserRecord user = MakeUser("u1", "alice");
  user.totp_secret = std::string("\x00\x01", 2);
  ASSERT_THAT(store_->PutUser(user), IsOk());
  user = **store_->GetUser("u1");
  user.mfa_enrolled = true;
  ASSERT_THAT(store_->UpdateUser(user, 1), IsOk());
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f1", "u1", kT0), "h1"), IsOk());
  ASSERT_EQ(Rotate("h1", "h2", kT0 + 1000).outcome, RotateOutcome::kRotated);
  ASSERT_THAT(store_->CreateRefreshFamily(MakeFamily("f2", "u1", kT0), "g1"), IsOk());
  clock_.Set(kT0 + 2000);
  ASSERT_THAT(store_->RevokeRefreshFamily("f2"), IsOk());
  ASSERT_THAT(store_->RevokeAccessToken("jti-1", kT0 + 300'000), IsOk());
  ASSERT_TRUE(*store_->RecordAssertionJti("backend", "a-1", kT0 + 300'000, kT0));

  Reopen();
  EXPECT_EQ((*store_->GetClient("app-1"))->redirect_uris, "https://app.example/cb");
  const UserRecord got = **store_->GetUser("u1");
  EXPECT_EQ(got.revision, 2);
  EXPECT_TRUE(got.mfa_enrolled);
  EXPECT_EQ(got.totp_secret, std::string("\x00\x01", 2));
  auto found = store_->FindRefreshToken("h2");
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->last_used_ms, kT0 + 1000);
  EXPECT_THAT(RevokedSince(kT0), ElementsAre("f2"));
  EXPECT_THAT(*store_->RevokedAccessTokens(kT0), ElementsAre("jti-1"));
  EXPECT_FALSE(*store_->RecordAssertionJti("backend", "a-1", kT0 + 300'000, kT0 + 1));
  // Reuse detection survives a restart.
  EXPECT_EQ(Rotate("h1", "h3", kT0 + 3000).outcome, RotateOutcome::kReused);
  EXPECT_THAT(RevokedSince(kT0), UnorderedElementsAre("f1", "f2"));
}

}  // namespace
}  // namespace phigate::storage
